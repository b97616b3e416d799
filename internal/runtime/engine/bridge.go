package engine

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/moatsec/moat/internal/runtime/spec"
)

// bridgeNetwork is the network relaxation's value for the bridge.
const bridgeNetwork = "bridge"

// attach puts c, whose record holds its address, on the engine's bridge, and points so at its
// network namespace and at the resolv.conf and hosts files made for it in its bundle.
func (e *Engine) attach(ctx context.Context, c *Container, so *spec.Options) error {
	ns, err := e.bridge.Attach(ctx, c.ID, c.Network.Address, c.Network.Ports...)
	if err != nil {
		return fmt.Errorf("--network bridge: %w", err)
	}
	so.NetNSPath, so.NetNSOf = ns, bridgeNetwork
	resolv, err := resolvConf()
	if err != nil {
		return fmt.Errorf("--network bridge: %w", err)
	}
	hostname := so.Hostname
	if hostname == "" {
		hostname = spec.DefaultHostname
	}
	hosts := fmt.Sprintf("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n%s\t%s\n", c.Network.Address, hostname)
	for _, f := range []struct {
		name string
		body []byte
		to   *string
	}{{"resolv.conf", resolv, &so.ResolvConf}, {"hosts", []byte(hosts), &so.Hosts}} {
		p := filepath.Join(c.Dir, f.name)
		if err := os.WriteFile(p, f.body, 0o644); err != nil {
			return fmt.Errorf("--network bridge: writing the container's %s: %w", f.name, err)
		}
		*f.to = p
	}
	return nil
}

// resolvConf is the host's resolver configuration for a container on the bridge: its
// nameservers, search domains and options, without loopback nameservers, which the container
// cannot reach (its loopback is its own). When the host's /etc/resolv.conf names only
// loopback nameservers (systemd-resolved's stub), the upstream list systemd-resolved keeps is
// used instead. With no nameserver left the file has none, and names do not resolve.
func resolvConf() ([]byte, error) {
	var out []byte
	for _, p := range []string{"/etc/resolv.conf", "/run/systemd/resolve/resolv.conf"} {
		b, err := os.ReadFile(p)
		if err != nil {
			if os.IsNotExist(err) {
				continue
			}
			return nil, fmt.Errorf("reading the host's %s: %w", p, err)
		}
		var servers int
		out, servers = filterResolvConf(b)
		if servers > 0 {
			break
		}
	}
	return out, nil
}

// filterResolvConf keeps the nameserver lines of b that name a reachable address, and its
// search, domain and options lines; it returns them and how many nameservers it kept.
func filterResolvConf(b []byte) ([]byte, int) {
	var out bytes.Buffer
	servers := 0
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "nameserver":
			a, err := netip.ParseAddr(f[1])
			if err != nil || a.IsLoopback() || a.IsUnspecified() || a.Is6() && a.Zone() != "" {
				continue
			}
			servers++
			f = []string{"nameserver", a.String()} // what follows the address means nothing
		case "search", "domain", "options":
		default:
			continue
		}
		out.WriteString(strings.Join(f, " ") + "\n")
	}
	return out.Bytes(), servers
}
