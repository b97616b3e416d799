package image

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
)

// DefaultDockerHost is where the Docker daemon listens unless DOCKER_HOST says otherwise.
const DefaultDockerHost = "unix:///var/run/docker.sock"

// dockerClient speaks the Docker Engine API over its unix socket; moat needs two calls, so it
// does not carry the Docker client library.
func dockerClient(host string) (*http.Client, string, error) {
	if host == "" {
		host = DefaultDockerHost
	}
	sock, ok := strings.CutPrefix(host, "unix://")
	if !ok {
		return nil, "", fmt.Errorf("docker host %q: only unix:// sockets are supported", host)
	}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}
	return &http.Client{Transport: tr}, "http://docker", nil
}

type dockerInspect struct {
	ID          string   `json:"Id"`
	RepoTags    []string `json:"RepoTags"`
	RepoDigests []string `json:"RepoDigests"`
}

func dockerGet(ctx context.Context, c *http.Client, u string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("contacting the Docker daemon: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		var msg struct {
			Message string `json:"message"`
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		_ = json.Unmarshal(b, &msg)
		return nil, fmt.Errorf("docker daemon answered %s: %s", resp.Status, msg.Message)
	}
	return resp, nil
}

// openDaemon exports the image from the Docker daemon (GET /images/{name}/get, the API behind
// `docker save`) into a temporary file and reads it as a docker save archive.
func openDaemon(ctx context.Context, ref string, opts Options) (*Image, error) {
	c, base, err := dockerClient(opts.DockerHost)
	if err != nil {
		return nil, err
	}
	esc := url.PathEscape(ref)
	resp, err := dockerGet(ctx, c, base+"/images/"+esc+"/json")
	if err != nil {
		return nil, err
	}
	var info dockerInspect
	err = json.NewDecoder(io.LimitReader(resp.Body, maxMetadataFile)).Decode(&info)
	resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("parsing image inspect: %w", err)
	}
	resp, err = dockerGet(ctx, c, base+"/images/"+esc+"/get")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	img := &Image{}
	tmp, err := os.CreateTemp(opts.TempDir, "docker-save-*.tar")
	if err != nil {
		return nil, fmt.Errorf("creating temporary file: %w", err)
	}
	img.onClose(func() error { tmp.Close(); return os.Remove(tmp.Name()) })
	if _, err := io.Copy(tmp, resp.Body); err != nil {
		img.Close()
		return nil, fmt.Errorf("exporting image from the Docker daemon: %w", err)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		img.Close()
		return nil, err
	}
	idx, err := indexTar(tmp)
	if err != nil {
		img.Close()
		return nil, err
	}
	if err := readDockerArchive(img, idx); err != nil {
		img.Close()
		return nil, err
	}
	img.RepoTags, img.RepoDigests = info.RepoTags, info.RepoDigests
	if info.ID != "" && info.ID != img.ID {
		img.Close()
		return nil, fmt.Errorf("daemon exported config %s for image %s", img.ID, info.ID)
	}
	return img, nil
}
