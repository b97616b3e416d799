package image

import (
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	tu "github.com/moatsec/moat/internal/testutil"
)

// startDockerd runs a private dockerd for the test: its own data root, exec root, pid file and
// socket, no bridge, no iptables, the vfs storage driver. It is stopped by PID at cleanup.
func startDockerd(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("dockerd")
	if err != nil {
		t.Fatalf("dockerd is not installed (make test installs docker.io): %v", err)
	}
	dir, err := os.MkdirTemp("", "moat-dockerd-") // short: the socket path must fit in sun_path
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "d.sock")
	log, err := os.Create(filepath.Join(dir, "log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--data-root", filepath.Join(dir, "data"), "--exec-root", filepath.Join(dir, "exec"),
		"--pidfile", filepath.Join(dir, "pid"), "-H", "unix://"+sock, "--bridge=none", "--iptables=false",
		"--ip6tables=false", "--storage-driver=vfs")
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting dockerd: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	c, base, err := dockerClient("unix://" + sock)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := c.Get(base + "/_ping")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return "unix://" + sock
			}
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(dir, "log"))
			t.Fatalf("dockerd did not answer within 60s: %v\n%s", err, b)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestDockerDaemon loads an image into a real dockerd and reads it back through the Engine API.
func TestDockerDaemon(t *testing.T) {
	if testing.Short() {
		t.Skip("starts dockerd")
	}
	if os.Geteuid() != 0 {
		t.Fatal("this test starts dockerd and needs root, as make test runs it")
	}
	host := startDockerd(t)
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
