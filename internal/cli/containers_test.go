package cli

import (
	"net/netip"
	"testing"

	"github.com/moatsec/moat/internal/runtime/engine"
	"github.com/moatsec/moat/internal/runtime/network"
	"github.com/moatsec/moat/internal/runtime/spec"
)

func TestDescribeNetwork(t *testing.T) {
	p1, _ := network.ParsePort("8080:80")
	p2, _ := network.ParsePort("192.0.2.1:53:53/udp")
	for _, tt := range []struct {
		c    engine.Container
		want string
	}{
		{engine.Container{}, "none"},
		{engine.Container{Relaxations: []spec.Relaxation{{Kind: spec.RelaxCapAdd, Value: "CAP_CHOWN"}, {Kind: spec.RelaxNetwork, Value: "host"}}}, "host"},
		{engine.Container{Network: &engine.Endpoint{Address: netip.MustParseAddr("10.89.0.2")}}, "10.89.0.2"},
		{engine.Container{Network: &engine.Endpoint{Address: netip.MustParseAddr("10.89.0.3"), Ports: []network.Port{p1, p2}}}, "10.89.0.3, 8080->80/tcp, 192.0.2.1:53->53/udp"},
	} {
		if got := describeNetwork(&tt.c); got != tt.want {
			t.Errorf("describeNetwork(%+v) = %q, want %q", tt.c, got, tt.want)
		}
	}
}
