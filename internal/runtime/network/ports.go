package network

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Port is a published port (-p): connections to HostPort on the host's addresses (or on
// HostIP only) go to ContainerPort at the container's address.
type Port struct {
	// HostIP, when valid, is the one host address the port is published on.
	HostIP        netip.Addr `json:"hostIP,omitzero"`
	HostPort      uint16     `json:"hostPort"`
	ContainerPort uint16     `json:"containerPort"`
	// Proto is "tcp" or "udp".
	Proto string `json:"proto"`
}

// String is the port as -p takes it and the relaxation names it: [HOSTIP:]HOSTPORT:PORT/PROTO.
func (p Port) String() string {
	s := fmt.Sprintf("%d:%d/%s", p.HostPort, p.ContainerPort, p.Proto)
	if p.HostIP.IsValid() {
		s = p.HostIP.String() + ":" + s
	}
	return s
}

// Overlaps reports whether p and q would take the same host port.
func (p Port) Overlaps(q Port) bool {
	return p.HostPort == q.HostPort && p.Proto == q.Proto &&
		(!p.HostIP.IsValid() || !q.HostIP.IsValid() || p.HostIP == q.HostIP)
}

// ParsePort reads -p's value: [HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|/udp]. The host port is
// required (moat picks none), and HOSTIP must be an IPv4 address other than a loopback one:
// connections to loopback addresses do not leave the host's loopback to reach the bridge.
func ParsePort(s string) (Port, error) {
	spec, proto, hasProto := strings.Cut(s, "/")
	p := Port{Proto: "tcp"}
	if hasProto {
		if proto != "tcp" && proto != "udp" {
			return p, fmt.Errorf("published port %q: protocol %q: want tcp or udp", s, proto)
		}
		p.Proto = proto
	}
	parts := strings.Split(spec, ":")
	switch len(parts) {
	case 2:
	case 3:
		ip, err := netip.ParseAddr(parts[0])
		if err != nil || !ip.Is4() {
			return p, fmt.Errorf("published port %q: %q is not an IPv4 address", s, parts[0])
		}
		if ip.IsLoopback() {
			return p, fmt.Errorf("published port %q: a loopback address cannot be published to (connections to it stay on the host's loopback); publish on all addresses or a host address", s)
		}
		if !ip.IsUnspecified() {
			p.HostIP = ip
		}
		parts = parts[1:]
	default:
		return p, fmt.Errorf("published port %q: want [HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|/udp]", s)
	}
	for i, dst := range []*uint16{&p.HostPort, &p.ContainerPort} {
		n, err := strconv.ParseUint(parts[i], 10, 16)
		if err != nil || n == 0 {
			return p, fmt.Errorf("published port %q: %q is not a port from 1 to 65535", s, parts[i])
		}
		*dst = uint16(n)
	}
	return p, nil
}

// Chains of the moat table that publish ports: prerouting for connections from elsewhere,
// output for the host's own (to its non-loopback addresses).
const (
	chainPrerouting = "prerouting"
	chainOutput     = "output"
)

func portChains(t *nftables.Table) []*nftables.Chain {
	return []*nftables.Chain{
		{Name: chainPrerouting, Table: t, Type: nftables.ChainTypeNAT, Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityNATDest},
		{Name: chainOutput, Table: t, Type: nftables.ChainTypeNAT, Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityNATDest},
	}
}

// publish adds, in one transaction, the rules that send ports to addr, tagged with the
// container's ID so that unpublish finds them.
func (c *nftConn) publish(id string, addr netip.Addr, ports []Port) error {
	if len(ports) == 0 {
		return nil
	}
	t := nftTableRef()
	for _, ch := range portChains(t) {
		for _, p := range ports {
			c.AddRule(&nftables.Rule{Table: t, Chain: ch, UserData: []byte(id), Exprs: dnatExprs(p, addr, ch.Name == chainOutput)})
		}
	}
	return c.Flush()
}

// unpublish deletes the rules tagged with the container's ID.
func (c *nftConn) unpublish(id string) error {
	t := nftTableRef()
	n := 0
	for _, ch := range portChains(t) {
		rules, err := c.GetRules(t, ch)
		if err != nil {
			continue // no such chain: nothing published
		}
		for _, r := range rules {
			if string(r.UserData) == id {
				if err := c.DelRule(r); err != nil {
					return err
				}
				n++
			}
		}
	}
	if n == 0 {
		return nil
	}
	return c.Flush()
}

// dnatExprs is: the destination is a local address (HostIP, if set; in the output chain,
// not a loopback one), the protocol and destination port match: DNAT to addr:ContainerPort.
func dnatExprs(p Port, addr netip.Addr, output bool) []expr.Any {
	var e []expr.Any
	e = append(e,
		&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)},
	)
	if p.HostIP.IsValid() {
		ip := p.HostIP.As4()
		e = append(e,
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ip[:]},
		)
	} else if output {
		e = append(e,
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: []byte{255, 0, 0, 0}, Xor: []byte{0, 0, 0, 0}},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{127, 0, 0, 0}},
		)
	}
	proto := byte(unix.IPPROTO_TCP)
	if p.Proto == "udp" {
		proto = unix.IPPROTO_UDP
	}
	to := addr.As4()
	e = append(e,
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: be16(p.HostPort)},
		&expr.Immediate{Register: 1, Data: to[:]},
		&expr.Immediate{Register: 2, Data: be16(p.ContainerPort)},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 2, Specified: true},
	)
	return e
}

func be16(v uint16) []byte {
	b := make([]byte, 2)
	binary.BigEndian.PutUint16(b, v)
	return b
}
