package engine

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/moatsec/moat/internal/runtime/backend"
	"github.com/moatsec/moat/internal/runtime/spec"
)

// TestNetwork runs the networks --network grants. All traffic stays on loopback: the test's
// own (shared with --network host) or a container's (shared with --network container:NAME).
func TestNetwork(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real containers")
	}
	img := progImage(t)
	// A listener on this process's loopback: only a container sharing the host's network
	// reaches it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("from the host"))
			c.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	e := newEngine(t, engineDir(t), "")
	run := func(level spec.Level, o RunOptions, args ...string) (string, *Result, error) {
		t.Helper()
		var out bytes.Buffer
		o.Level, o.Remove = level, true
		o.Spec.Args = args
		o.IO = backend.IO{Stdout: &out, Stderr: &out}
		res, err := e.Run(ctx, img, o)
		return out.String(), res, err
	}
	for _, level := range []spec.Level{spec.Hardened, spec.Sandbox} {
		out, res, err := run(level, RunOptions{}, "dial", l.Addr().String())
		if err != nil || res.ExitCode != 1 || !strings.HasPrefix(out, "refused:") {
			t.Errorf("%s, no network: reached the host's loopback: %v %+v %q", level, err, res, out)
		}
		out, res, err = run(level, RunOptions{Spec: spec.Options{HostNetwork: true}}, "dial", l.Addr().String())
		if err != nil || res.ExitCode != 0 || out != "connected: from the host\n" {
			t.Errorf("%s, --network host: %v %+v %q", level, err, res, out)
		}
		if res != nil && !slices.Contains(res.Relaxations, spec.Relaxation{Kind: spec.RelaxNetwork, Value: "host"}) {
			t.Errorf("%s, --network host: relaxations %v", level, res.Relaxations)
		}
	}

	// crun too (its recursive read-only bind of /sys).
	ce := newEngine(t, engineDir(t), "crun")
	var out bytes.Buffer
	res, err := ce.Run(ctx, img, RunOptions{Remove: true, Spec: spec.Options{HostNetwork: true, Args: []string{"dial", l.Addr().String()}}, IO: backend.IO{Stdout: &out, Stderr: &out}})
	if err != nil || res.ExitCode != 0 || out.String() != "connected: from the host\n" {
		t.Errorf("crun, --network host: %v %+v %q", err, res, out.String())
	}

	// --network container:NAME: a client joins a listening container's namespace.
	if _, err := e.Start(ctx, img, RunOptions{Name: "server", Spec: spec.Options{Args: []string{"listen", "127.0.0.1:8080"}}}); err != nil {
		t.Fatal(err)
	}
	waitLog(t, e, "server", "listening\n")
	sout, res, err := run(spec.Hardened, RunOptions{NetworkContainer: "server"}, "dial", "127.0.0.1:8080")
	if err != nil || res.ExitCode != 0 || sout != "connected: hello\n" {
		t.Errorf("--network container:server: %v %+v %q", err, res, sout)
	}
	if res != nil && !slices.Contains(res.Relaxations, spec.Relaxation{Kind: spec.RelaxNetwork, Value: "container:server"}) {
		t.Errorf("--network container:server: relaxations %v", res.Relaxations)
	}
	// Without it, the client's own loopback has no listener.
	if out, res, err := run(spec.Hardened, RunOptions{}, "dial", "127.0.0.1:8080"); err != nil || res.ExitCode != 1 {
		t.Errorf("no network reached the server: %v %+v %q", err, res, out)
	}
	for _, tc := range []struct {
		name  string
		level spec.Level
		o     RunOptions
		want  string
	}{
		{"sandbox joins", spec.Sandbox, RunOptions{NetworkContainer: "server"}, "inside gVisor"},
		{"unknown container", spec.Hardened, RunOptions{NetworkContainer: "nobody"}, "no such container"},
		{"with host", spec.Hardened, RunOptions{NetworkContainer: "server", Spec: spec.Options{HostNetwork: true}}, "conflicts"},
	} {
		if _, _, err := run(tc.level, tc.o, "exit", "0"); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	if err := e.Remove(ctx, "server", true); err != nil {
		t.Fatal(err)
	}
	// An exited container has no network to share.
	if _, err := e.Start(ctx, img, RunOptions{Name: "done", Spec: spec.Options{Args: []string{"exit", "0"}}}); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, e, "done", StatusExited)
	if _, _, err := run(spec.Hardened, RunOptions{NetworkContainer: "done"}, "exit", "0"); err == nil || !strings.Contains(err.Error(), "not running") {
		t.Errorf("joining an exited container: %v", err)
	}
	if err := e.Remove(ctx, "done", false); err != nil {
		t.Fatal(err)
	}

	// --network ns:PATH: two containers in a network namespace the test made.
	ns := netns(t)
	if _, err := e.Start(ctx, img, RunOptions{Name: "ns-server", Spec: spec.Options{NetNSPath: ns, Args: []string{"listen", "127.0.0.1:8080"}}}); err != nil {
		t.Fatal(err)
	}
	waitLog(t, e, "ns-server", "listening\n")
	nout, res, err := run(spec.Hardened, RunOptions{Spec: spec.Options{NetNSPath: ns}}, "dial", "127.0.0.1:8080")
	if err != nil || res.ExitCode != 0 || nout != "connected: hello\n" {
		t.Errorf("--network ns:%s: %v %+v %q", ns, err, res, nout)
	}
	if res != nil && !slices.Contains(res.Relaxations, spec.Relaxation{Kind: spec.RelaxNetwork, Value: ns}) {
		t.Errorf("--network ns: relaxations %v", res.Relaxations)
	}
	if err := e.Remove(ctx, "ns-server", true); err != nil {
		t.Fatal(err)
	}
}

// netns creates a network namespace with loopback up, pinned on a file the test removes.
func netns(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "netns")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("unshare", "--net="+p, "ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("creating a network namespace: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(p, unix.MNT_DETACH); err != nil {
			t.Errorf("unpinning the network namespace: %v", err)
		}
	})
	return p
}
