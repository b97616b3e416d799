// Package network gives containers a network of their own: a network namespace per
// container, pinned on a file, joined to a host bridge by a veth pair, with an address from
// the bridge's subnet, a default route through the bridge and masquerading (source NAT) for
// traffic that leaves the host. It is what `moat run --network bridge` uses; the namespaces
// are handed to the OCI runtime by path.
//
// What it changes on the host, and only when a container asks for the bridge: a bridge
// interface (moat0 unless configured), IPv4 forwarding (net.ipv4.ip_forward=1, as Docker
// sets it), and an nftables table of its own ("ip moat") with two masquerade rules (traffic
// leaving the host, and a container's traffic to another's published port through the host),
// and one DNAT rule per published port and hook (prerouting, output) while its container
// lives. It installs no filter rules: a host whose forward chain drops forwarded packets
// (Docker sets iptables' FORWARD policy to DROP) also drops the containers' outbound traffic.
//
// Addresses are handed out in turn (Allocate), and Detach removes a container's address and
// unpins its namespace, leaving the kernel to destroy the namespace and its veth pair once
// nothing holds it: deleting the pair synchronously costs 20 to 40 ms of RCU waits here.
package network

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Defaults for Bridge.
const (
	DefaultName   = "moat0"
	DefaultSubnet = "10.89.0.0/24"
	nftTable      = "moat"
	// ifName is the container's end of its veth pair, inside its namespace.
	ifName = "eth0"
)

// Bridge is a host bridge containers attach to. Its zero value is not usable: use New.
type Bridge struct {
	name   string
	subnet netip.Prefix
	hostNS string
	pinDir string
}

// Option configures New.
type Option func(*Bridge) error

// WithName names the bridge interface (default moat0).
func WithName(name string) Option {
	return func(b *Bridge) error {
		if name == "" || len(name) > 15 || strings.ContainsAny(name, "/: \t\n") {
			return fmt.Errorf("bridge name %q: want 1 to 15 characters, none of them '/', ':' or space", name)
		}
		b.name = name
		return nil
	}
}

// WithSubnet sets the bridge's IPv4 subnet (default 10.89.0.0/24): the bridge takes its first
// address and containers the others.
func WithSubnet(p netip.Prefix) Option {
	return func(b *Bridge) error {
		if !p.IsValid() || !p.Addr().Is4() || p.Bits() > 29 || p.Bits() < 8 {
			return fmt.Errorf("bridge subnet %s: want an IPv4 prefix from /8 to /29", p)
		}
		b.subnet = p.Masked()
		return nil
	}
}

// WithHostNamespace puts the bridge in the network namespace pinned at path instead of the
// calling process's (tests give one of their own).
func WithHostNamespace(path string) Option {
	return func(b *Bridge) error { b.hostNS = path; return nil }
}

// New describes the bridge whose containers' namespaces are pinned in pinDir. Nothing is
// created until Attach.
func New(pinDir string, opts ...Option) (*Bridge, error) {
	b := &Bridge{name: DefaultName, subnet: netip.MustParsePrefix(DefaultSubnet), pinDir: pinDir}
	for _, o := range opts {
		if err := o(b); err != nil {
			return nil, err
		}
	}
	if !filepath.IsAbs(pinDir) {
		return nil, fmt.Errorf("network namespace directory %q is not absolute", pinDir)
	}
	return b, nil
}

// Name is the bridge interface's name.
func (b *Bridge) Name() string { return b.name }

// Gateway is the bridge's own address, the containers' default route.
func (b *Bridge) Gateway() netip.Addr { return b.subnet.Addr().Next() }

// Allocate returns the first address of the subnet after last that is not in used, wrapping
// around (the gateway, the network and broadcast addresses excluded); an invalid last starts
// from the beginning. Handing addresses out in turn rather than lowest first keeps an address
// from going to a new container while the namespace of the container that had it may still
// be on its way out (Detach leaves its destruction to the kernel).
func (b *Bridge) Allocate(used []netip.Addr, last netip.Addr) (netip.Addr, error) {
	taken := map[netip.Addr]bool{}
	for _, a := range used {
		taken[a] = true
	}
	first, end := b.Gateway().Next(), broadcast(b.subnet)
	start := first
	if b.subnet.Contains(last) && !last.Less(first) && last.Less(end) {
		start = last.Next()
	}
	a := start
	for {
		if a == end {
			a = first
		}
		if !taken[a] {
			return a, nil
		}
		a = a.Next()
		if a == start {
			return netip.Addr{}, fmt.Errorf("bridge %s: every address of %s is taken", b.name, b.subnet)
		}
	}
}

func broadcast(p netip.Prefix) netip.Addr {
	a := p.Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3]) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// PinPath is where container id's network namespace is pinned.
func (b *Bridge) PinPath(id string) string { return filepath.Join(b.pinDir, id) }

// hostEnd names the host's end of a container's veth pair: "mt" and the first 12
// characters of its ID (interface names hold at most 15).
func hostEnd(id string) string { return "mt" + id[:min(12, len(id))] }

// Attach makes container id's network namespace, pinned at PinPath(id), with loopback and
// eth0 (addr on the bridge's subnet, default route through the bridge), creating the bridge
// and its NAT rule first if needed, publishes ports to it, and returns the pin's path. On
// error nothing of it is left.
func (b *Bridge) Attach(ctx context.Context, id string, addr netip.Addr, ports ...Port) (path string, err error) {
	if len(id) < 12 || strings.ContainsAny(id, "/.") {
		return "", fmt.Errorf("attaching to bridge %s: container ID %q", b.name, id)
	}
	if !b.subnet.Contains(addr) || addr == b.Gateway() || addr == b.subnet.Addr() || addr == broadcast(b.subnet) {
		return "", fmt.Errorf("attaching to bridge %s: address %s is not a container address of %s", b.name, addr, b.subnet)
	}
	host, hostNS, err := b.hostHandle()
	if err != nil {
		return "", err
	}
	defer host.Close()
	defer hostNS.Close()
	nft, err := openNFT(hostNS)
	if err != nil {
		return "", fmt.Errorf("attaching to bridge %s: %w", b.name, err)
	}
	defer nft.CloseLasting()
	br, err := b.ensure(host, hostNS, nft)
	if err != nil {
		return "", err
	}
	path = b.PinPath(id)
	ns, err := pinNew(b.pinDir, path) // fails if the ID has a pin already
	if err != nil {
		return "", fmt.Errorf("attaching to bridge %s: %w", b.name, err)
	}
	defer ns.Close()
	defer func() {
		if err != nil {
			b.Detach(id)
		}
	}()
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: hostEnd(id), MasterIndex: br.Attrs().Index, MTU: br.Attrs().MTU},
		PeerName:      ifName,
		PeerNamespace: netlink.NsFd(int(ns)),
	}
	err = host.LinkAdd(veth)
	if errors.Is(err, unix.EEXIST) {
		// The pair of this ID's earlier namespace, which the kernel has not destroyed yet.
		if old, lerr := host.LinkByName(veth.Name); lerr == nil && host.LinkDel(old) == nil {
			err = host.LinkAdd(veth)
		}
	}
	if err != nil {
		return "", fmt.Errorf("attaching to bridge %s: creating the veth pair %s: %w", b.name, veth.Name, err)
	}
	if err := host.LinkSetUp(veth); err != nil {
		return "", fmt.Errorf("attaching to bridge %s: %w", b.name, err)
	}
	in, err := netlink.NewHandleAt(ns)
	if err != nil {
		return "", fmt.Errorf("attaching to bridge %s: %w", b.name, err)
	}
	defer in.Close()
	eth, err := in.LinkByName(ifName)
	if err != nil {
		return "", fmt.Errorf("attaching to bridge %s: %w", b.name, err)
	}
	ip := &net.IPNet{IP: addr.AsSlice(), Mask: net.CIDRMask(b.subnet.Bits(), 32)}
	if err := in.AddrAdd(eth, &netlink.Addr{IPNet: ip}); err != nil {
		return "", fmt.Errorf("attaching to bridge %s: addressing eth0: %w", b.name, err)
	}
	lo, err := in.LinkByName("lo")
	if err != nil {
		return "", fmt.Errorf("attaching to bridge %s: %w", b.name, err)
	}
	for _, l := range []netlink.Link{lo, eth} {
		if err := in.LinkSetUp(l); err != nil {
			return "", fmt.Errorf("attaching to bridge %s: %w", b.name, err)
		}
	}
	if err := in.RouteAdd(&netlink.Route{LinkIndex: eth.Attrs().Index, Gw: b.Gateway().AsSlice()}); err != nil {
		return "", fmt.Errorf("attaching to bridge %s: the default route: %w", b.name, err)
	}
	if err := nft.publish(id, addr, ports); err != nil {
		return "", fmt.Errorf("attaching to bridge %s: publishing ports: %w", b.name, err)
	}
	return path, ctx.Err()
}

// Detach removes what Attach made for container id: the container's address, then the
// namespace's pin. The kernel destroys the namespace once nothing holds it, and the veth pair
// with it, off moat's path (deleting the pair itself takes 20 to 40 ms of waiting on RCU
// here); the address goes first so that a namespace that lingers never answers for an
// address given to another container. What is already gone is not an error.
func (b *Bridge) Detach(id string) error {
	var errs []error
	if hostNS, err := b.hostNamespace(); err == nil {
		if nft, err := openNFT(hostNS); err == nil {
			if err := nft.unpublish(id); err != nil {
				errs = append(errs, fmt.Errorf("unpublishing ports: %w", err))
			}
			nft.CloseLasting()
		} else {
			errs = append(errs, err)
		}
		hostNS.Close()
	} else {
		errs = append(errs, err)
	}
	path := b.PinPath(id)
	if ns, err := netns.GetFromPath(path); err == nil {
		if err := flushAddresses(ns); err != nil {
			errs = append(errs, err)
		}
		ns.Close()
	}
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		errs = append(errs, fmt.Errorf("unpinning the network namespace %s: %w", path, err))
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("detaching from bridge %s: %w", b.name, err)
	}
	return nil
}

// flushAddresses removes the addresses of eth0 in ns.
func flushAddresses(ns netns.NsHandle) error {
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	eth, err := h.LinkByName(ifName)
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	addrs, err := h.AddrList(eth, netlink.FAMILY_ALL)
	if err != nil {
		return err
	}
	for _, a := range addrs {
		if err := h.AddrDel(eth, &a); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
			return fmt.Errorf("removing %s from the container's eth0: %w", a.IPNet, err)
		}
	}
	return nil
}

func isNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf)
}

// hostNamespace opens the namespace the bridge lives in.
func (b *Bridge) hostNamespace() (netns.NsHandle, error) {
	p := b.hostNS
	if p == "" {
		p = "/proc/self/ns/net"
	}
	ns, err := netns.GetFromPath(p)
	if err != nil {
		return 0, fmt.Errorf("bridge %s: opening the host's network namespace: %w", b.name, err)
	}
	return ns, nil
}

// hostHandle opens the namespace the bridge lives in and a netlink handle in it.
func (b *Bridge) hostHandle() (*netlink.Handle, netns.NsHandle, error) {
	ns, err := b.hostNamespace()
	if err != nil {
		return nil, 0, err
	}
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		ns.Close()
		return nil, 0, fmt.Errorf("bridge %s: %w", b.name, err)
	}
	return h, ns, nil
}

// ensure makes the bridge, with the gateway address, up; turns on forwarding; and installs
// the masquerade rules through nft. Each step tolerates its work having been done (by
// another moat).
func (b *Bridge) ensure(host *netlink.Handle, hostNS netns.NsHandle, nft *nftConn) (netlink.Link, error) {
	br, err := host.LinkByName(b.name)
	if isNotFound(err) {
		err = host.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: b.name}})
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return nil, fmt.Errorf("creating bridge %s: %w", b.name, err)
		}
		br, err = host.LinkByName(b.name)
	}
	if err != nil {
		return nil, fmt.Errorf("bridge %s: %w", b.name, err)
	}
	if br.Type() != "bridge" {
		return nil, fmt.Errorf("bridge %s: the host has an interface of that name that is a %s, not a bridge", b.name, br.Type())
	}
	gw := &net.IPNet{IP: b.Gateway().AsSlice(), Mask: net.CIDRMask(b.subnet.Bits(), 32)}
	if err := host.AddrAdd(br, &netlink.Addr{IPNet: gw}); err != nil && !errors.Is(err, unix.EEXIST) {
		return nil, fmt.Errorf("bridge %s: adding address %s: %w", b.name, gw, err)
	}
	if err := host.LinkSetUp(br); err != nil {
		return nil, fmt.Errorf("bridge %s: %w", b.name, err)
	}
	if err := inNamespace(hostNS, func() error {
		if v, err := os.ReadFile("/proc/sys/net/ipv4/ip_forward"); err == nil && strings.TrimSpace(string(v)) == "1" {
			return nil
		}
		return writeSysctl("net/ipv4/ip_forward", "1")
	}); err != nil {
		return nil, fmt.Errorf("bridge %s: turning on IPv4 forwarding: %w", b.name, err)
	}
	if err := b.masquerade(nft); err != nil {
		return nil, fmt.Errorf("bridge %s: installing the masquerade rules: %w", b.name, err)
	}
	return br, nil
}

// nftConn is a netlink connection to nftables in the bridge's host namespace, one socket for
// all its requests until CloseLasting.
type nftConn struct{ *nftables.Conn }

func openNFT(hostNS netns.NsHandle) (*nftConn, error) {
	c, err := nftables.New(nftables.WithNetNSFd(int(hostNS)), nftables.AsLasting())
	if err != nil {
		return nil, err
	}
	return &nftConn{c}, nil
}

func nftTableRef() *nftables.Table {
	return &nftables.Table{Family: nftables.TableFamilyIPv4, Name: nftTable}
}

func (b *Bridge) postrouting(t *nftables.Table) *nftables.Chain {
	return &nftables.Chain{
		Name: "postrouting", Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource,
	}
}

// masquerade makes the table "ip moat" hold its chains (postrouting, and the chains published
// ports go in) and the postrouting chain exactly the rules of postroutingRules: in one
// transaction, and only when they are not so already (a transaction costs 10 ms here;
// reading, less than one). Published ports' rules are left as they are.
func (b *Bridge) masquerade(c *nftConn) error {
	if b.hasMasquerade(c) {
		return nil
	}
	t := c.AddTable(nftTableRef())
	ch := c.AddChain(b.postrouting(t))
	for _, pc := range portChains(t) {
		c.AddChain(pc)
	}
	c.FlushChain(ch)
	for _, exprs := range b.postroutingRules() {
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: exprs})
	}
	return c.Flush()
}

// ipsDstNAT is conntrack's status bit for a connection whose destination was translated
// (IPS_DST_NAT).
const ipsDstNAT = 1 << 5

// postroutingRules are the postrouting chain's rules: masquerade what comes from the subnet
// and leaves by another interface than the bridge (the containers' traffic out of the host),
// and what comes from the subnet and goes back into the bridge after a published port's
// DNAT (a container reaching another's published port through the host: without it the
// answer would go straight back over the bridge, from an address the client never called).
func (b *Bridge) postroutingRules() [][]expr.Any {
	network := b.subnet.Addr().As4()
	fromSubnet := []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: net.CIDRMask(b.subnet.Bits(), 32), Xor: []byte{0, 0, 0, 0}},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: network[:]},
	}
	out := append(slices.Clone(fromSubnet),
		&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: ifname(b.name)},
		&expr.Masq{},
	)
	hairpin := append(slices.Clone(fromSubnet),
		&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname(b.name)},
		&expr.Ct{Key: expr.CtKeySTATUS, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: binaryutil.NativeEndian.PutUint32(ipsDstNAT), Xor: []byte{0, 0, 0, 0}},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{0, 0, 0, 0}},
		&expr.Masq{},
	)
	return [][]expr.Any{out, hairpin}
}

// describeExprs names a rule's expressions and what they compare, as far as the rules moat
// writes need: "" for a rule with any other expression.
func describeExprs(exprs []expr.Any) string {
	var got []string
	for _, e := range exprs {
		switch e := e.(type) {
		case *expr.Payload:
			got = append(got, fmt.Sprintf("payload %d %d %d", e.Base, e.Offset, e.Len))
		case *expr.Bitwise:
			got = append(got, fmt.Sprintf("bitwise %x", e.Mask))
		case *expr.Cmp:
			got = append(got, fmt.Sprintf("cmp %d %x", e.Op, e.Data))
		case *expr.Meta:
			got = append(got, fmt.Sprintf("meta %d", e.Key))
		case *expr.Ct:
			got = append(got, fmt.Sprintf("ct %d", e.Key))
		case *expr.Masq:
			got = append(got, "masq")
		default:
			return ""
		}
	}
	return strings.Join(got, ", ")
}

// hasMasquerade reports whether the table holds the chains and the rules masquerade writes.
func (b *Bridge) hasMasquerade(c *nftConn) bool {
	t := nftTableRef()
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyIPv4)
	if err != nil {
		return false
	}
	want := map[string]*nftables.Chain{}
	for _, ch := range append(portChains(t), b.postrouting(t)) {
		want[ch.Name] = ch
	}
	found := 0
	for _, ch := range chains {
		if ch.Table.Name != nftTable {
			continue
		}
		w, ok := want[ch.Name]
		if !ok || ch.Hooknum == nil || *ch.Hooknum != *w.Hooknum || ch.Type != w.Type {
			return false
		}
		found++
	}
	if found != len(want) {
		return false
	}
	rules, err := c.GetRules(t, b.postrouting(t))
	wantRules := b.postroutingRules()
	if err != nil || len(rules) != len(wantRules) {
		return false
	}
	for i, r := range rules {
		if d := describeExprs(r.Exprs); d == "" || d != describeExprs(wantRules[i]) {
			return false
		}
	}
	return true
}

// ifname is an interface name as nftables compares it: NUL-padded to IFNAMSIZ.
func ifname(n string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, n)
	return b
}

// pinNew creates a network namespace and pins it on path, a new file in dir (created mode
// 0700), and returns a handle to it. Sysctls that containers in user namespaces need are
// set in it: binding ports below 1024 and ping, as Docker sets them.
func pinNew(dir, path string) (netns.NsHandle, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return 0, err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o600)
	if err != nil {
		return 0, fmt.Errorf("pinning a network namespace: %w", err)
	}
	f.Close()
	var ns netns.NsHandle
	err = onThread(func() error {
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("creating a network namespace: %w", err)
		}
		self := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
		if err := unix.Mount(self, path, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("pinning the network namespace on %s: %w", path, err)
		}
		for _, s := range [][2]string{{"net/ipv4/ip_unprivileged_port_start", "0"}, {"net/ipv4/ping_group_range", "0 2147483647"}} {
			if err := writeSysctl(s[0], s[1]); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		ns, err = netns.GetFromPath(path)
	}
	if err != nil {
		unix.Unmount(path, unix.MNT_DETACH)
		os.Remove(path)
		return 0, err
	}
	return ns, nil
}

// onThread runs fn on a goroutine locked to its OS thread, then puts the thread back into the
// network namespace it started in before unlocking it, so that a namespace fn enters never
// leaks to other goroutines, nor stays held by the thread. (Leaving the thread locked for Go
// to end with the goroutine is not enough: the main thread is never ended, only parked, and
// would hold the namespace for as long as the process lives.) If the way back fails, the
// thread stays locked and goes with the goroutine.
func onThread(fn func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread() // nothing changed yet
			done <- fmt.Errorf("opening this thread's network namespace: %w", err)
			return
		}
		defer orig.Close()
		err = fn()
		if serr := netns.Set(orig); serr != nil {
			done <- errors.Join(err, fmt.Errorf("returning to the network namespace: %w", serr))
			return
		}
		runtime.UnlockOSThread()
		done <- err
	}()
	return <-done
}

// InNamespace runs fn on a thread inside the network namespace at path (a pinned namespace,
// /proc/PID/ns/net) and puts the thread back where it was afterwards; sockets fn opens stay
// in that namespace.
func InNamespace(path string, fn func() error) error {
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return fmt.Errorf("opening the network namespace %s: %w", path, err)
	}
	defer ns.Close()
	return inNamespace(ns, fn)
}

// inNamespace runs fn on a thread inside the network namespace ns (onThread).
func inNamespace(ns netns.NsHandle, fn func() error) error {
	return onThread(func() error {
		if err := unix.Setns(int(ns), unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("entering a network namespace: %w", err)
		}
		return fn()
	})
}

// writeSysctl writes a sysctl of the calling thread's network namespace.
func writeSysctl(name, value string) error {
	p := "/proc/sys/" + name // the namespace of the thread that opens it
	if err := os.WriteFile(p, []byte(value), 0o644); err != nil {
		return fmt.Errorf("setting %s: %w", strings.ReplaceAll(name, "/", "."), err)
	}
	return nil
}
