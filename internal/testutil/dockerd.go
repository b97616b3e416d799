package testutil

import (
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// StartDockerd runs a private dockerd (Debian's docker.io; make test installs it) for the
// test and returns its host, "unix://PATH". The daemon has its own data root, exec root, pid
// file and socket in a new temporary directory, no bridge, no iptables rules and the vfs
// storage driver, so that it shares nothing with a dockerd the machine may run and changes
// nothing on the host's network; containers it runs should use --network none. It is
// stopped by PID (SIGTERM, then SIGKILL after 20 seconds) and its directory removed when the
// test ends. It needs root.
func StartDockerd(t testing.TB) string {
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
	defer log.Close()
	cmd := exec.Command(bin, "--data-root", filepath.Join(dir, "data"), "--exec-root", filepath.Join(dir, "exec"),
		"--pidfile", filepath.Join(dir, "pid"), "-H", "unix://"+sock, "--bridge=none", "--iptables=false",
		"--ip6tables=false", "--storage-driver=vfs")
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting dockerd: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	// Registered after the directory's removal, so run before it.
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	if err := waitDockerd(sock, exited); err != nil {
		b, _ := os.ReadFile(filepath.Join(dir, "log"))
		t.Fatalf("%v; dockerd's log:\n%s", err, b)
	}
	return "unix://" + sock
}

// waitDockerd polls GET /_ping on sock until it answers 200, dockerd exits or 60 seconds pass.
func waitDockerd(sock string, exited <-chan struct{}) error {
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}
	return waitReady("dockerd", c, "http://docker/_ping", exited, 60*time.Second, 200*time.Millisecond)
}
