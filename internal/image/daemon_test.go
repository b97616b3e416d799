package image

import (
	"context"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	tu "github.com/moatsec/moat/internal/testutil"
)

// TestDockerDaemon loads an image into a real dockerd and reads it back through the Engine API.
func TestDockerDaemon(t *testing.T) {
	if testing.Short() {
		t.Skip("starts dockerd")
	}
	if os.Geteuid() != 0 {
		t.Fatal("this test starts dockerd and needs root, as make test runs it")
	}
	host := tu.StartDockerd(t)
	img := tu.Image(t,
		tu.Layer(t, tu.File("etc/os-release", "ID=debian\nVERSION_ID=12\n")),
		tu.Layer(t, tu.File("app/hello.txt", "hello")),
	)
	archive := tu.DockerArchive(t, img, "moat.test/daemon:1")
	c, base, _ := dockerClient(host)
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	resp, err := c.Post(base+"/images/load?quiet=1", "application/x-tar", f)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || strings.Contains(string(body), "errorDetail") {
		t.Fatalf("loading image: %s %s", resp.Status, body)
	}

	ctx := context.Background()
	tmp := t.TempDir()
	got, err := Open(ctx, Target{Source: SourceDocker, Ref: "moat.test/daemon:1"}, Options{DockerHost: host, TempDir: tmp})
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	wantID, _ := img.ConfigName()
	if got.ID != wantID.String() {
		t.Errorf("ID = %s, want %s", got.ID, wantID)
	}
	if len(got.Layers) != 2 || len(got.RepoTags) == 0 || got.RepoTags[0] != "moat.test/daemon:1" {
		t.Fatalf("layers %d, tags %v", len(got.Layers), got.RepoTags)
	}
	for _, l := range got.Layers {
		rc, err := l.Open(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, rc); err != nil {
			t.Errorf("reading layer %d from the daemon's export: %v", l.Index, err)
		}
		rc.Close()
	}
	got.Close()
	if ents, _ := os.ReadDir(tmp); len(ents) != 0 {
		t.Errorf("the spooled export was not removed: %v", ents)
	}

	_, err = Open(ctx, Target{Source: SourceDocker, Ref: "moat.test/absent:1"}, Options{DockerHost: host, TempDir: tmp})
	if err == nil || !strings.Contains(err.Error(), "No such image") && !strings.Contains(err.Error(), "404") {
		t.Errorf("missing image: err = %v, want the daemon's not-found answer", err)
	}
	_, err = Open(ctx, Target{Source: SourceDocker, Ref: "x"}, Options{DockerHost: "unix:///nonexistent/docker.sock", TempDir: tmp})
	if err == nil || !strings.Contains(err.Error(), "Docker daemon") {
		t.Errorf("no daemon: err = %v", err)
	}
}
