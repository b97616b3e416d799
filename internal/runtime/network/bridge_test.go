package network

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/moatsec/moat/internal/testutil"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces")
	}
}

// testHost pins a network namespace of the test's own, to stand for the host: the bridge,
// forwarding and NAT rule go there, never into the real host's namespace.
func testHost(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, "host")
	ns, err := pinNew(dir, p)
	if err != nil {
		t.Fatal(err)
	}
	ns.Close()
	t.Cleanup(func() {
		unix.Unmount(p, unix.MNT_DETACH)
	})
	return p
}

// testBridge is a bridge named name on subnet in a test host of its own, with its pins' directory.
func testBridge(t *testing.T, name, subnet string) (b *Bridge, hostPath, pins string) {
	t.Helper()
	requireRoot(t)
	hostPath, pins = testHost(t), t.TempDir()
	b, err := New(pins, WithHostNamespace(hostPath), WithName(name), WithSubnet(netip.MustParsePrefix(subnet)))
	if err != nil {
		t.Fatal(err)
	}
	return b, hostPath, pins
}

func TestAllocate(t *testing.T) {
	b, err := New("/run/x", WithSubnet(netip.MustParsePrefix("10.1.2.0/29")))
	if err != nil {
		t.Fatal(err)
	}
	if b.Gateway() != netip.MustParseAddr("10.1.2.1") {
		t.Errorf("gateway %s", b.Gateway())
	}
	var used []netip.Addr
	last := netip.Addr{}
	for _, want := range []string{"10.1.2.2", "10.1.2.3", "10.1.2.4", "10.1.2.5", "10.1.2.6"} {
		a, err := b.Allocate(used, last)
		if err != nil || a.String() != want {
			t.Fatalf("Allocate(%v, %s) = %s, %v; want %s", used, last, a, err, want)
		}
		used, last = append(used, a), a
	}
	if a, err := b.Allocate(used, last); err == nil || !strings.Contains(err.Error(), "every address") {
		t.Errorf("full subnet: %s, %v", a, err)
	}
	for _, tt := range []struct {
		used []netip.Addr
		last string
		want string
	}{
		{used[1:], "10.1.2.6", "10.1.2.2"},                                      // wraps around to a freed address
		{used[:2], "10.1.2.3", "10.1.2.4"},                                      // the next after the last
		{used[:2], "10.1.2.2", "10.1.2.4"},                                      // skipping one in use
		{nil, "10.1.2.7", "10.1.2.2"},                                           // the broadcast address as last
		{nil, "192.0.2.9", "10.1.2.2"},                                          // another subnet's
		{[]netip.Addr{netip.MustParseAddr("10.1.2.5")}, "10.1.2.1", "10.1.2.2"}, // the gateway as last
	} {
		var last netip.Addr
		if tt.last != "" {
			last = netip.MustParseAddr(tt.last)
		}
		if a, err := b.Allocate(tt.used, last); err != nil || a.String() != tt.want {
			t.Errorf("Allocate(%v, %s) = %s, %v; want %s", tt.used, tt.last, a, err, tt.want)
		}
	}
}

func TestOptionsRefused(t *testing.T) {
	for _, tt := range []struct {
		name string
		opt  Option
		want string
	}{
		{"long name", WithName("a-very-long-bridge-name"), "1 to 15"},
		{"slash", WithName("a/b"), "1 to 15"},
		{"v6", WithSubnet(netip.MustParsePrefix("fd00::/64")), "IPv4"},
		{"tiny", WithSubnet(netip.MustParsePrefix("10.0.0.0/30")), "/29"},
		{"invalid", WithSubnet(netip.Prefix{}), "IPv4"},
	} {
		if _, err := New("/run/x", tt.opt); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.want)
		}
	}
	if _, err := New("relative"); err == nil {
		t.Error("a relative pin directory was accepted")
	}
}

// TestAttach attaches two namespaces to a bridge in a test namespace and connects one to
// the other, and to the gateway, over TCP; then detaches and finds nothing left.
func TestAttach(t *testing.T) {
	b, hostPath, pins := testBridge(t, "mtest0", "10.77.0.0/24")
	ctx := context.Background()
	ids := []string{"aaaaaaaaaaaa1111", "bbbbbbbbbbbb2222"}
	addrs := []netip.Addr{netip.MustParseAddr("10.77.0.2"), netip.MustParseAddr("10.77.0.3")}
	paths := make([]string, 2)
	var err error
	for i, id := range ids {
		if paths[i], err = b.Attach(ctx, id, addrs[i]); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Detach(id) })
	}
	// A second Attach of the same ID fails and leaves the first intact.
	if _, err := b.Attach(ctx, ids[0], netip.MustParseAddr("10.77.0.9")); err == nil {
		t.Error("attaching an ID twice succeeded")
	}
	// Listen in the first container namespace and on the gateway, in the host namespace.
	l := listenIn(t, paths[0], "10.77.0.2:7000")
	gl := listenIn(t, hostPath, "10.77.0.1:7001")
	for _, target := range []string{l.Addr().String(), gl.Addr().String()} {
		got := dialFrom(t, paths[1], target)
		if got != "10.77.0.3" {
			t.Errorf("dialling %s from the second namespace: the peer saw %q, want 10.77.0.3", target, got)
		}
	}
	// Beyond the host: a namespace standing for the outside world, linked to the test host by
	// a veth pair, with no route back to the bridge's subnet. Only masquerading gets an answer
	// back, and the outside sees the host's address.
	outside := testHost(t)
	linkNamespaces(t, hostPath, "192.0.2.1/24", outside, "192.0.2.2/24")
	ol := listenIn(t, outside, "192.0.2.2:7002")
	if got := dialFrom(t, paths[1], ol.Addr().String()); got != "192.0.2.1" {
		t.Errorf("dialling beyond the host: the peer saw %q, want the host's 192.0.2.1", got)
	}
	for _, s := range []string{"ip_unprivileged_port_start", "ping_group_range"} {
		if v := sysctlIn(t, paths[0], "net/ipv4/"+s); v == "" || strings.HasPrefix(v, "1024") || v == "1\t0" {
			t.Errorf("%s in a container namespace = %q", s, v)
		}
	}
	if v := sysctlIn(t, hostPath, "net/ipv4/ip_forward"); v != "1" {
		t.Errorf("forwarding in the host namespace = %q", v)
	}
	want := []string{
		fmt.Sprintf("cmp %d %q cmp %d %q masq", expr.CmpOpEq, "\x0aM", expr.CmpOpNeq, "mtest0"),
		fmt.Sprintf("cmp %d %q cmp %d %q cmp %d %q masq", expr.CmpOpEq, "\x0aM", expr.CmpOpEq, "mtest0", expr.CmpOpNeq, ""),
	}
	if rules := masqRules(t, hostPath); !slices.Equal(rules, want) {
		t.Errorf("masquerade rules %q, want %q", rules, want)
	}
	// What is in place is recognised, so that the next attach writes nothing.
	func() {
		ns, _ := b.hostNamespace()
		defer ns.Close()
		c, err := openNFT(ns)
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseLasting()
		if !b.hasMasquerade(c) {
			t.Error("the rules masquerade wrote are not recognised")
		}
	}()
	// Attaching again rewrites the NAT table rather than adding a second rule.
	b.Detach(ids[1])
	if _, err := b.Attach(ctx, ids[1], addrs[1]); err != nil {
		t.Fatal(err)
	}
	if rules := masqRules(t, hostPath); len(rules) != 2 {
		t.Errorf("masquerade rules after a second attach: %q", rules)
	}
	l.Close() // a socket holds its namespace
	for _, id := range ids {
		if err := b.Detach(id); err != nil {
			t.Error(err)
		}
		if err := b.Detach(id); err != nil {
			t.Errorf("a second Detach: %v", err)
		}
	}
	// The kernel destroys the namespaces, and their veth pairs with them, on its own time.
	host, ns, err := b.hostHandle()
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	defer host.Close()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		var left []string
		links, _ := host.LinkList()
		for _, l := range links {
			if strings.HasPrefix(l.Attrs().Name, "mt") && l.Attrs().Name != "mtest0" {
				left = append(left, l.Attrs().Name)
			}
		}
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("left behind: interfaces %v", left)
			break
		}
	}
	if ents, _ := os.ReadDir(pins); len(ents) != 0 {
		t.Errorf("left behind in the pin directory: %v", ents)
	}
}

// TestAttachRefuses: bad IDs and addresses, and a host interface of the bridge's name that
// is not a bridge, fail before anything is made.
func TestAttachRefuses(t *testing.T) {
	b, _, pins := testBridge(t, "notabridge", "10.78.0.0/24")
	ctx := context.Background()
	for _, tt := range []struct {
		id, addr, want string
	}{
		{"short", "10.78.0.2", "container ID"},
		{"../../../etc/xx", "10.78.0.2", "container ID"},
		{"cccccccccccc", "10.78.0.1", "not a container address"},
		{"cccccccccccc", "10.78.0.255", "not a container address"},
		{"cccccccccccc", "10.79.0.2", "not a container address"},
	} {
		if _, err := b.Attach(ctx, tt.id, netip.MustParseAddr(tt.addr)); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Attach(%q, %s): %v, want %q", tt.id, tt.addr, err, tt.want)
		}
	}
	host, ns, err := b.hostHandle()
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	defer host.Close()
	if err := host.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "notabridge"}, PeerName: "notabridge1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Attach(ctx, "cccccccccccc", netip.MustParseAddr("10.78.0.2")); err == nil || !strings.Contains(err.Error(), "not a bridge") {
		t.Errorf("a dummy interface in the way: %v", err)
	}
	if ents, _ := os.ReadDir(pins); len(ents) != 0 {
		t.Errorf("left behind in the pin directory: %v", ents)
	}
}

// linkNamespaces joins the namespaces at a and b with a veth pair addressed aAddr and bAddr.
func linkNamespaces(t *testing.T, a, aAddr, b, bAddr string) {
	t.Helper()
	var handles []*netlink.Handle
	for _, p := range []string{a, b} {
		ns, err := netns.GetFromPath(p)
		if err != nil {
			t.Fatal(err)
		}
		defer ns.Close()
		h, err := netlink.NewHandleAt(ns)
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		handles = append(handles, h)
	}
	bns, _ := netns.GetFromPath(b)
	defer bns.Close()
	if err := handles[0].LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "out0"}, PeerName: "out1", PeerNamespace: netlink.NsFd(int(bns))}); err != nil {
		t.Fatal(err)
	}
	for i, x := range []struct{ name, addr string }{{"out0", aAddr}, {"out1", bAddr}} {
		l, err := handles[i].LinkByName(x.name)
		if err != nil {
			t.Fatal(err)
		}
		ad, err := netlink.ParseAddr(x.addr)
		if err != nil {
			t.Fatal(err)
		}
		if err := handles[i].AddrAdd(l, ad); err != nil {
			t.Fatal(err)
		}
		if err := handles[i].LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
	}
}

// listenIn listens on addr inside the namespace at path and answers each connection with
// the address it came from.
func listenIn(t *testing.T, path, addr string) net.Listener {
	t.Helper()
	var l net.Listener
	err := InNamespace(path, func() (err error) {
		l, err = net.Listen("tcp", addr)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	testutil.Serve(t, l, func(c net.Conn) string {
		host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
		return host
	})
	return l
}

func dialFrom(t *testing.T, path, addr string) string {
	t.Helper()
	var c net.Conn
	err := InNamespace(path, func() (err error) {
		c, err = net.DialTimeout("tcp", addr, 5*time.Second)
		return err
	})
	if err != nil {
		t.Fatalf("dialling %s: %v", addr, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, 64)
	n, _ := c.Read(b)
	return string(b[:n])
}

func sysctlIn(t *testing.T, path, name string) string {
	t.Helper()
	var v []byte
	if err := InNamespace(path, func() (err error) {
		v, err = os.ReadFile("/proc/sys/" + name)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(v))
}

// masqRules returns the rules of the moat table's postrouting chain in the namespace at path,
// each as the kinds of its expressions and the data they compare with.
func masqRules(t *testing.T, path string) []string {
	t.Helper()
	ns, err := netns.GetFromPath(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(ns)))
	if err != nil {
		t.Fatal(err)
	}
	tbl := &nftables.Table{Family: nftables.TableFamilyIPv4, Name: nftTable}
	rules, err := c.GetRules(tbl, &nftables.Chain{Name: "postrouting", Table: tbl})
	if err != nil {
		t.Fatalf("listing the masquerade rules: %v", err)
	}
	var out []string
	for _, r := range rules {
		var parts []string
		for _, e := range r.Exprs {
			switch e := e.(type) {
			case *expr.Cmp:
				parts = append(parts, fmt.Sprintf("cmp %d %q", e.Op, strings.TrimRight(string(e.Data), "\x00")))
			case *expr.Masq:
				parts = append(parts, "masq")
			}
		}
		out = append(out, strings.Join(parts, " "))
	}
	return out
}

// BenchmarkAttachDetach is the cost --network bridge adds to a container's start and removal
// (the bridge and its NAT rule exist already after the first iteration).
func BenchmarkAttachDetach(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	dir := b.TempDir()
	hostPath := filepath.Join(dir, "host")
	ns, err := pinNew(dir, hostPath)
	if err != nil {
		b.Fatal(err)
	}
	ns.Close()
	defer unix.Unmount(hostPath, unix.MNT_DETACH)
	br, err := New(filepath.Join(dir, "pins"), WithHostNamespace(hostPath), WithName("mbench0"))
	if err != nil {
		b.Fatal(err)
	}
	addr := netip.MustParseAddr("10.89.0.2")
	for i := 0; b.Loop(); i++ {
		id := fmt.Sprintf("%016x", i)
		if _, err := br.Attach(context.Background(), id, addr); err != nil {
			b.Fatal(err)
		}
		if err := br.Detach(id); err != nil {
			b.Fatal(err)
		}
		// Let the kernel destroy the namespace, as it does between one `moat run` and the
		// next: back to back, its destruction (RCU waits under the rtnl lock) delays the
		// next Attach by 20 to 40 ms.
		b.StopTimer()
		time.Sleep(100 * time.Millisecond)
		b.StartTimer()
	}
}

func TestParsePort(t *testing.T) {
	for _, tt := range []struct {
		in, want, err string
	}{
		{"8080:80", "8080:80/tcp", ""},
		{"8080:80/udp", "8080:80/udp", ""},
		{"192.0.2.1:8080:80/tcp", "192.0.2.1:8080:80/tcp", ""},
		{"0.0.0.0:53:53/udp", "53:53/udp", ""},
		{"80", "", "want [HOSTIP:]HOSTPORT"},
		{"1:2:3:4", "", "want [HOSTIP:]HOSTPORT"},
		{"8080:80/sctp", "", "protocol"},
		{"0:80", "", "not a port"},
		{"8080:65536", "", "not a port"},
		{"x:80", "", "not a port"},
		{"127.0.0.1:8080:80", "", "loopback"},
		{"[::1]:8080:80", "", "want [HOSTIP:]HOSTPORT"},
		{"::1:8080:80", "", "want [HOSTIP:]HOSTPORT"},
		{"2001:db8::1:80:80", "", "want [HOSTIP:]HOSTPORT"},
		{"192.0.2.300:1:1", "", "IPv4"},
		{"fe80::1:8080:80", "", "want [HOSTIP:]HOSTPORT"},
	} {
		p, err := ParsePort(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParsePort(%q) = %v, %v; want an error with %q", tt.in, p, err, tt.err)
			}
			continue
		}
		if err != nil || p.String() != tt.want {
			t.Errorf("ParsePort(%q) = %v, %v; want %s", tt.in, p, err, tt.want)
		}
	}
	a, _ := ParsePort("8080:80")
	b, _ := ParsePort("192.0.2.1:8080:81")
	c, _ := ParsePort("8080:80/udp")
	d, _ := ParsePort("192.0.2.2:8080:80")
	if !a.Overlaps(b) || a.Overlaps(c) || b.Overlaps(d) {
		t.Errorf("Overlaps: %v %v %v", a.Overlaps(b), a.Overlaps(c), b.Overlaps(d))
	}
}

// TestPublish publishes a container's port on the test host and reaches it from outside the
// host (the client's address preserved), from the host itself, and on one host address only;
// detaching removes the rules.
func TestPublish(t *testing.T) {
	b, hostPath, _ := testBridge(t, "mpub0", "10.79.0.0/24")
	outside := testHost(t)
	linkNamespaces(t, hostPath, "192.0.2.1/24", outside, "192.0.2.2/24")
	var ports []Port
	for _, s := range []string{"8080:7000", "192.0.2.1:8081:7000", "8082:7000/udp"} {
		p, err := ParsePort(s)
		if err != nil {
			t.Fatal(err)
		}
		ports = append(ports, p)
	}
	id := "ddddddddddddd444"
	path, err := b.Attach(context.Background(), id, netip.MustParseAddr("10.79.0.2"), ports...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Detach(id) })
	l := listenIn(t, path, "0.0.0.0:7000")
	for _, tt := range []struct{ from, addr, want string }{
		{outside, "192.0.2.1:8080", "192.0.2.2"},
		{outside, "192.0.2.1:8081", "192.0.2.2"},
		{hostPath, "192.0.2.1:8080", "192.0.2.1"},
		{hostPath, "10.79.0.1:8080", "10.79.0.1"},
	} {
		if got := dialFrom(t, tt.from, tt.addr); got != tt.want {
			t.Errorf("dialling %s: the container saw %q, want %q", tt.addr, got, tt.want)
		}
	}
	// 8081 is published on 192.0.2.1 only.
	if err := InNamespace(hostPath, func() error {
		c, err := net.DialTimeout("tcp", "10.79.0.1:8081", 2*time.Second)
		if err == nil {
			c.Close()
			return fmt.Errorf("connected")
		}
		return nil
	}); err != nil {
		t.Errorf("8081 reached on the bridge's address: %v", err)
	}
	// Attaching another container leaves the rules as they are.
	if _, err := b.Attach(context.Background(), "eeeeeeeeeeee5555", netip.MustParseAddr("10.79.0.3")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Detach("eeeeeeeeeeee5555") })
	if got := dialFrom(t, outside, "192.0.2.1:8080"); got != "192.0.2.2" {
		t.Errorf("after another attach: %q", got)
	}
	// That container reaches the published port through the host, masqueraded as the
	// gateway so that the answer comes back the way the question went.
	if got := dialFrom(t, b.PinPath("eeeeeeeeeeee5555"), "192.0.2.1:8080"); got != "10.79.0.1" {
		t.Errorf("hairpin: the published container saw %q, want the gateway 10.79.0.1", got)
	}
	l.Close()
	if err := b.Detach(id); err != nil {
		t.Fatal(err)
	}
	ns, _ := b.hostNamespace()
	defer ns.Close()
	c, err := openNFT(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseLasting()
	tbl := nftTableRef()
	for _, ch := range portChains(tbl) {
		if rules, err := c.GetRules(tbl, ch); err != nil || len(rules) != 0 {
			t.Errorf("chain %s after Detach: %d rules, %v", ch.Name, len(rules), err)
		}
	}
}

// FuzzParsePort: -p's value either fails with an error or reads back as itself.
func FuzzParsePort(f *testing.F) {
	for _, s := range []string{"8080:80", "192.0.2.1:53:53/udp", "0.0.0.0:1:65535/tcp", "127.0.0.1:1:1", "::"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePort(s)
		if err != nil {
			return
		}
		if p.HostPort == 0 || p.ContainerPort == 0 || (p.Proto != "tcp" && p.Proto != "udp") || p.HostIP.IsValid() && (!p.HostIP.Is4() || p.HostIP.IsLoopback()) {
			t.Fatalf("ParsePort(%q) = %+v", s, p)
		}
		q, err := ParsePort(p.String())
		if err != nil || q != p {
			t.Fatalf("ParsePort(%q) = %+v, but its String %q reads back as %+v, %v", s, p, p.String(), q, err)
		}
	})
}
