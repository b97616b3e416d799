package engine

import (
	"net/netip"
	"strings"
	"testing"
)

func TestFilterResolvConf(t *testing.T) {
	for _, tt := range []struct {
		name, in, want string
		servers        int
	}{
		{"plain", "nameserver 192.0.2.53\nsearch example.com\noptions ndots:2\n", "nameserver 192.0.2.53\nsearch example.com\noptions ndots:2\n", 1},
		{"systemd-resolved stub", "# managed\nnameserver 127.0.0.53\noptions edns0 trust-ad\nsearch .\n", "options edns0 trust-ad\nsearch .\n", 0},
		{"loopback v6 and unspecified", "nameserver ::1\nnameserver 0.0.0.0\nnameserver 2001:db8::1\n", "nameserver 2001:db8::1\n", 1},
		{"link-local with a zone", "nameserver fe80::1%eth0\nnameserver 198.51.100.1\n", "nameserver 198.51.100.1\n", 1},
		{"junk", "nameserver\nnameserver not-an-ip\nsortlist 1.2.3.4\n\x00\xff\n   \nlookup file bind\n", "", 0},
		{"tabs and spaces", "nameserver\t 192.0.2.1  \n", "nameserver 192.0.2.1\n", 1},
	} {
		got, n := filterResolvConf([]byte(tt.in))
		if string(got) != tt.want || n != tt.servers {
			t.Errorf("%s: %q, %d; want %q, %d", tt.name, got, n, tt.want, tt.servers)
		}
	}
}

// FuzzFilterResolvConf: whatever the host's file holds, what a container gets is only
// nameserver lines with a reachable address and search, domain and options lines.
func FuzzFilterResolvConf(f *testing.F) {
	f.Add([]byte("nameserver 127.0.0.53\nsearch a b\n"))
	f.Add([]byte("nameserver 192.0.2.1\noptions rotate\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		out, n := filterResolvConf(in)
		servers := 0
		for line := range strings.Lines(string(out)) {
			f := strings.Fields(line)
			if len(f) < 2 || !strings.HasSuffix(line, "\n") {
				t.Fatalf("line %q", line)
			}
			switch f[0] {
			case "nameserver":
				a, err := netip.ParseAddr(f[1])
				if err != nil || a.IsLoopback() || a.IsUnspecified() || len(f) != 2 {
					t.Fatalf("nameserver line %q", line)
				}
				servers++
			case "search", "domain", "options":
			default:
				t.Fatalf("line %q", line)
			}
		}
		if servers != n {
			t.Fatalf("%d nameservers kept, %d reported", servers, n)
		}
	})
}
