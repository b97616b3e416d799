package engine

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/moatsec/moat/internal/runtime/backend"
	"github.com/moatsec/moat/internal/runtime/network"
	"github.com/moatsec/moat/internal/runtime/spec"
	"github.com/moatsec/moat/internal/testutil"
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
	testutil.Serve(t, l, fromHost)
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

// TestBridgeNetwork runs containers on a bridge that lives in a network namespace the test
// made (standing for the host): one listens on port 80 as its root, others reach it by its
// address, reach the host at the gateway, get resolv.conf and hosts files, and leave nothing
// behind when removed.
func TestBridgeNetwork(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real containers")
	}
	img := progImage(t)
	host := netns(t)
	pins := t.TempDir()
	b, err := network.New(pins, network.WithHostNamespace(host), network.WithName("mtb0"), network.WithSubnet(netip.MustParsePrefix("10.90.0.0/24")))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	e := newEngine(t, engineDir(t), "", WithBridge(b))
	// Beyond the test host: a namespace it reaches through a veth pair, 192.0.2.1 to 192.0.2.2.
	outside := netns(t)
	linkOutside(t, host, outside)
	run := func(level spec.Level, o RunOptions, args ...string) (string, *Result, error) {
		t.Helper()
		var out bytes.Buffer
		o.Level, o.Remove, o.Bridge = level, true, true
		o.Spec.Args = args
		o.IO = backend.IO{Stdout: &out, Stderr: &out}
		res, err := e.Run(ctx, img, o)
		return out.String(), res, err
	}
	web8080, err := network.ParsePort("8080:80")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Start(ctx, img, RunOptions{Name: "web", Bridge: true, Publish: []network.Port{web8080}, Spec: spec.Options{Args: []string{"listen", "0.0.0.0:80"}}}); err != nil {
		t.Fatal(err)
	}
	waitLog(t, e, "web", "listening\n")
	// Its port 80 is published on the host's port 8080: reached from outside the host.
	if got := dialIn(t, outside, "192.0.2.1:8080"); got != "hello" {
		t.Errorf("the published port from outside the host: %q", got)
	}
	if _, err := e.Start(ctx, img, RunOptions{Name: "web2", Bridge: true, Publish: []network.Port{web8080}, Spec: spec.Options{Args: []string{"wait"}}}); err == nil || !strings.Contains(err.Error(), "container web publishes 8080:80/tcp") {
		t.Errorf("a second container publishing 8080: %v", err)
	}
	if _, err := e.Start(ctx, img, RunOptions{Name: "web3", Publish: []network.Port{web8080}, Spec: spec.Options{Args: []string{"wait"}}}); err == nil || !strings.Contains(err.Error(), "needs the bridge") {
		t.Errorf("publishing without the bridge: %v", err)
	}
	// A sandbox's port too: gVisor's network stack answers on the namespace's eth0.
	sandbox8081, _ := network.ParsePort("8081:80")
	if _, err := e.Start(ctx, img, RunOptions{Name: "sandboxed", Level: spec.Sandbox, Bridge: true, Publish: []network.Port{sandbox8081}, Spec: spec.Options{Args: []string{"listen", "0.0.0.0:80"}}}); err != nil {
		t.Fatal(err)
	}
	waitLog(t, e, "sandboxed", "listening\n")
	if got := dialIn(t, outside, "192.0.2.1:8081"); got != "hello" {
		t.Errorf("a sandbox's published port from outside the host: %q", got)
	}
	if err := e.Remove(ctx, "sandboxed", true); err != nil {
		t.Fatal(err)
	}
	web, err := e.Inspect(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	if web.Network == nil || web.Network.Address != netip.MustParseAddr("10.90.0.2") || web.Network.Gateway != netip.MustParseAddr("10.90.0.1") {
		t.Fatalf("web's network: %+v", web.Network)
	}
	if !slices.Contains(web.Relaxations, spec.Relaxation{Kind: spec.RelaxNetwork, Value: "bridge"}) || !slices.Contains(web.Relaxations, spec.Relaxation{Kind: spec.RelaxPublish, Value: "8080:80/tcp"}) {
		t.Errorf("web's relaxations: %v", web.Relaxations)
	}
	// What callers check before the host is touched is what the container reports.
	for _, r := range BridgeRelaxations(RunOptions{Bridge: true, Publish: []network.Port{web8080}}) {
		if !slices.Contains(web.Relaxations, r) {
			t.Errorf("BridgeRelaxations gives %v, which web's relaxations %v lack", r, web.Relaxations)
		}
	}
	// The host, at the gateway address, in the test's namespace.
	gw := listenIn(t, host, "10.90.0.1:0")
	for _, level := range []spec.Level{spec.Hardened, spec.Sandbox} {
		for _, target := range []struct{ addr, want string }{{"10.90.0.2:80", "connected: hello\n"}, {gw.Addr().String(), "connected: from the host\n"}} {
			out, res, err := run(level, RunOptions{}, "dial", target.addr)
			if err != nil || res.ExitCode != 0 || out != target.want {
				t.Errorf("%s on the bridge, dialling %s: %v %+v %q", level, target.addr, err, res, out)
			}
		}
	}
	out, _, err := run(spec.Hardened, RunOptions{Spec: spec.Options{Hostname: "box"}}, "readfile", "/etc/hosts")
	if err != nil || !strings.Contains(out, "10.90.0.8\tbox\n") || !strings.Contains(out, "127.0.0.1\tlocalhost") {
		t.Errorf("/etc/hosts: %v %q", err, out)
	}
	if out, _, err := run(spec.Hardened, RunOptions{}, "readfile", "/etc/resolv.conf"); err != nil || strings.Contains(out, "nameserver 127.") {
		t.Errorf("/etc/resolv.conf: %v %q", err, out)
	}
	// Without the bridge, the web container is out of reach.
	var nout bytes.Buffer
	if res, err := e.Run(ctx, img, RunOptions{Remove: true, Spec: spec.Options{Args: []string{"dial", "10.90.0.2:80"}}, IO: backend.IO{Stdout: &nout, Stderr: &nout}}); err != nil || res.ExitCode != 1 {
		t.Errorf("no network reached the bridge: %v %+v %q", err, res, nout.String())
	}
	for _, tc := range []struct {
		name string
		o    RunOptions
	}{
		{"with host", RunOptions{Spec: spec.Options{HostNetwork: true}}},
		{"with a container's", RunOptions{NetworkContainer: "web"}},
		{"with a namespace", RunOptions{Spec: spec.Options{NetNSPath: host}}},
	} {
		if _, _, err := run(spec.Hardened, tc.o, "exit", "0"); err == nil || !strings.Contains(err.Error(), "conflicts") {
			t.Errorf("bridge %s: %v, want a conflict", tc.name, err)
		}
	}
	if err := e.Remove(ctx, "web", true); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(pins); len(ents) != 0 {
		t.Errorf("left in the namespace pins' directory: %v", ents)
	}
	if got := dialIn(t, outside, "192.0.2.1:8080"); !strings.HasPrefix(got, "refused") {
		t.Errorf("the published port after web's removal: %q", got)
	}
	// Addresses are handed out in turn: the next container gets the one after the last
	// (.2 web, .3 the sandboxed server, .4 and .5 the hardened dials, .6 and .7 the sandbox
	// ones, .8 and .9 the files).
	if _, err := e.Start(ctx, img, RunOptions{Name: "again", Bridge: true, Spec: spec.Options{Args: []string{"wait"}}}); err != nil {
		t.Fatal(err)
	}
	if c, err := e.Inspect(ctx, "again"); err != nil || c.Network == nil || c.Network.Address != netip.MustParseAddr("10.90.0.10") {
		t.Errorf("after web's removal: %+v %v", c, err)
	}
	if err := e.Remove(ctx, "again", true); err != nil {
		t.Fatal(err)
	}
	// The kernel destroys the containers' namespaces, and their veth pairs, on its own time.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		hostEnds, err := exec.Command("nsenter", "--net="+host, "ip", "-o", "link", "show").CombinedOutput()
		if err != nil {
			t.Fatal(err)
		}
		if !regexp.MustCompile(`: mt[0-9a-f]{12}[@:]`).Match(hostEnds) {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("veth ends left in the host namespace:\n%s", hostEnds)
			break
		}
	}
}

// listenIn listens on addr in the network namespace at path, answering "from the host".
func listenIn(t *testing.T, path, addr string) net.Listener {
	t.Helper()
	var l net.Listener
	err := network.InNamespace(path, func() (err error) {
		l, err = net.Listen("tcp", addr)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	testutil.Serve(t, l, fromHost)
	return l
}

func fromHost(net.Conn) string { return "from the host" }

// linkOutside joins the namespaces at host (192.0.2.1/24) and outside (192.0.2.2/24) with a
// veth pair.
func linkOutside(t *testing.T, host, outside string) {
	t.Helper()
	for _, args := range [][]string{
		{"--net=" + host, "ip", "link", "add", "out0", "type", "veth", "peer", "name", "out1"},
		{"--net=" + host, "ip", "addr", "add", "192.0.2.1/24", "dev", "out0"},
		{"--net=" + host, "ip", "link", "set", "out0", "up"},
	} {
		if out, err := exec.Command("nsenter", args...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v: %s", args, err, out)
		}
	}
	ns, err := os.Open(outside)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	cmd := exec.Command("nsenter", "--net="+host, "ip", "link", "set", "out1", "netns", "/proc/self/fd/3")
	cmd.ExtraFiles = []*os.File{ns}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("moving out1: %v: %s", err, out)
	}
	for _, args := range [][]string{
		{"--net=" + outside, "ip", "addr", "add", "192.0.2.2/24", "dev", "out1"},
		{"--net=" + outside, "ip", "link", "set", "out1", "up"},
	} {
		if out, err := exec.Command("nsenter", args...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v: %s", args, err, out)
		}
	}
}

// dialIn connects to addr from the namespace at path and returns what it reads, or
// "refused: ..." when it cannot connect.
func dialIn(t *testing.T, path, addr string) string {
	t.Helper()
	var c net.Conn
	err := network.InNamespace(path, func() (err error) {
		c, err = net.DialTimeout("tcp", addr, 3*time.Second)
		return err
	})
	if err != nil {
		return "refused: " + err.Error()
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	b, _ := io.ReadAll(c)
	return string(b)
}
