package policy

import (
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func relax(t testing.TB, ss ...string) []Relaxation {
	t.Helper()
	var out []Relaxation
	for _, s := range ss {
		r, err := ParseRelaxation(s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

func TestCheckRelaxations(t *testing.T) {
	const digestA = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	tests := []struct {
		name    string
		permits string // the rule's relaxations, as YAML; "" for none
		ask     []string
		refused []string
	}{
		{"nothing asked, nothing permitted", "", nil, nil},
		{"fails closed without entries", "", []string{"writable-rootfs", "cap-add CAP_NET_ADMIN"}, []string{"writable-rootfs", "cap-add CAP_NET_ADMIN"}},
		{"bare kind permits any value", "[cap-add]", []string{"cap-add CAP_NET_ADMIN", "cap-add CAP_SYS_ADMIN"}, nil},
		{"bare kind permits only its kind", "[cap-add]", []string{"cap-add CAP_NET_ADMIN", "new-privileges"}, []string{"new-privileges"}},
		{"capability exact", "['cap-add:CAP_NET_ADMIN']", []string{"cap-add CAP_NET_ADMIN", "cap-add CAP_NET_RAW"}, []string{"cap-add CAP_NET_RAW"}},
		{"capability spelt as --cap-add takes it", "['cap-add:net_admin']", []string{"cap-add CAP_NET_ADMIN"}, nil},
		{"valueless kinds", "[writable-rootfs, seccomp-unconfined, new-privileges]", []string{"writable-rootfs", "seccomp-unconfined", "new-privileges"}, nil},
		{"unlimited exact", "['unlimited:cpus']", []string{"unlimited cpus", "unlimited memory"}, []string{"unlimited memory"}},
		{"network glob", "['network:/run/netns/*']", []string{"network /run/netns/blue"}, nil},
		{"network glob does not cross slash", "['network:/run/netns/*']", []string{"network /run/netns/a/b"}, []string{"network /run/netns/a/b"}},
		{"network path not clean", "['network:/run/netns/**']", []string{"network /run/netns/../../proc/1/ns/net"}, []string{"network /run/netns/../../proc/1/ns/net"}},
		{"network host", "['network:host']", []string{"network host"}, nil},
		{"network host is not a path", "['network:/**']", []string{"network host"}, []string{"network host"}},
		{"network path is not host", "['network:host']", []string{"network /run/netns/a"}, []string{"network /run/netns/a"}},
		{"network bridge", "['network:bridge']", []string{"network bridge"}, nil},
		{"publish any", "[publish]", []string{"publish 8080:80/tcp", "publish 192.0.2.1:53:53/udp"}, nil},
		{"publish port", "['publish:8080']", []string{"publish 8080:80/tcp", "publish 8081:80/tcp"}, []string{"publish 8081:80/tcp"}},
		{"publish range and protocol", "['publish:8000-8099/tcp']", []string{"publish 192.0.2.1:8050:80/tcp", "publish 8050:80/udp", "publish 9000:80/tcp"}, []string{"publish 8050:80/udp", "publish 9000:80/tcp"}},
		{"publish is not the container port", "['publish:80']", []string{"publish 8080:80/tcp"}, []string{"publish 8080:80/tcp"}},
		{"network bridge is not host", "['network:bridge']", []string{"network host"}, []string{"network host"}},
		{"network host is not bridge", "['network:host']", []string{"network bridge"}, []string{"network bridge"}},
		{"network bridge is not a path", "['network:/**']", []string{"network bridge"}, []string{"network bridge"}},
		{"network container glob", "['network:container:web-*']", []string{"network container:web-1"}, nil},
		{"network container other", "['network:container:web-*']", []string{"network container:db", "network host"}, []string{"network container:db", "network host"}},
		{"any network", "[network]", []string{"network host", "network container:x", "network /run/netns/a"}, nil},
		{"seccomp profile by digest", "['seccomp-profile:" + digestA + "']", []string{"seccomp-profile ./p.json@" + digestA}, nil},
		{"seccomp profile other digest", "['seccomp-profile:" + digestA + "']", []string{"seccomp-profile p.json@sha256:bbbb"}, []string{"seccomp-profile p.json@sha256:bbbb"}},
		{"seccomp profile digest in the name", "['seccomp-profile:" + digestA + "']", []string{"seccomp-profile " + digestA + "@sha256:bbbb"}, []string{"seccomp-profile " + digestA + "@sha256:bbbb"}},
		{"bind source glob", "['bind-mount:/srv/data/*']", []string{"bind-mount /srv/data/a:/data:rw", "bind-mount /srv/data/a/b:/data:ro", "bind-mount /etc:/etc:ro"}, []string{"bind-mount /srv/data/a/b:/data:ro", "bind-mount /etc:/etc:ro"}},
		{"bind source double star", "['bind-mount:/srv/data/**']", []string{"bind-mount /srv/data:/d:rw", "bind-mount /srv/data/a/b:/d:rw", "bind-mount /srv/database:/d:rw"}, []string{"bind-mount /srv/database:/d:rw"}},
		{"bind source not clean", "['bind-mount:/srv/data/**']", []string{"bind-mount /srv/data/../../etc:/d:ro"}, []string{"bind-mount /srv/data/../../etc:/d:ro"}},
		{"bind destination", "['bind-mount:/srv/**:/data/**']", []string{"bind-mount /srv/a:/data/a:rw", "bind-mount /srv/a:/etc:rw"}, []string{"bind-mount /srv/a:/etc:rw"}},
		{"bind read-only", "['bind-mount:/srv/**:/**:ro']", []string{"bind-mount /srv/a:/a:ro", "bind-mount /srv/a:/b:rw"}, []string{"bind-mount /srv/a:/b:rw"}},
		{"bind rw permits ro", "['bind-mount:/srv/a:/a:rw']", []string{"bind-mount /srv/a:/a:ro", "bind-mount /srv/a:/a:rw"}, nil},
		{"bind path with a colon", "['bind-mount:/**']", []string{"bind-mount /srv/a:b:/a:ro"}, []string{"bind-mount /srv/a:b:/a:ro"}},
		{"bare bind-mount permits a colon", "[bind-mount]", []string{"bind-mount /srv/a:b:/a:ro"}, nil},
		{"unknown kind refused", "[cap-add, bind-mount, network]", []string{"device /dev/kvm"}, []string{"device /dev/kvm"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rule := "  - {name: r, action: allow, isolation: hardened}\n"
			if tt.permits != "" {
				rule = "  - {name: r, action: allow, isolation: hardened, relaxations: " + tt.permits + "}\n"
			}
			d := Evaluate(mustParse(t, rule), goodEvidence(), testNow)
			if !d.Allow {
				t.Fatalf("denied: %v", d.Reasons)
			}
			var ask []Relaxation
			for _, s := range tt.ask {
				// Built directly: the runtime's values are not necessarily ones ParseRelaxation takes.
				k, v, _ := strings.Cut(s, " ")
				ask = append(ask, Relaxation{Kind: k, Value: v})
			}
			err := d.CheckRelaxations(ask)
			if len(tt.refused) == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var re *RelaxationError
			if !errors.As(err, &re) {
				t.Fatalf("error %v, want a *RelaxationError", err)
			}
			var got []string
			for _, r := range re.Refused {
				got = append(got, r.String())
			}
			if !slices.Equal(got, tt.refused) {
				t.Errorf("refused %q, want %q", got, tt.refused)
			}
			if re.Rule != "r" || !strings.Contains(err.Error(), `rule "r"`) {
				t.Errorf("error does not name the rule: %v", err)
			}
			for _, r := range tt.refused {
				if !strings.Contains(err.Error(), r) {
					t.Errorf("error %q does not name %q", err, r)
				}
			}
		})
	}
}

func TestCheckRelaxationsWithoutAllow(t *testing.T) {
	ask := relax(t, "cap-add CAP_NET_ADMIN")
	p := mustParse(t, "  - {name: r, match: {images: [nowhere/*]}, action: allow, isolation: hardened, relaxations: [cap-add]}\n")
	for _, tt := range []struct {
		name string
		d    Decision
	}{
		{"deny", Evaluate(p, goodEvidence(), testNow)},
		{"zero decision", Decision{}},
		{"deny with entries", Decision{Rule: "r", AllowedRelaxations: []string{"cap-add"}}},
		{"allow with a bad entry", Decision{Allow: true, Rule: "r", AllowedRelaxations: []string{"cap-add:"}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var re *RelaxationError
			if err := tt.d.CheckRelaxations(ask); !errors.As(err, &re) || len(re.Refused) != 1 {
				t.Errorf("CheckRelaxations = %v, want the relaxation refused", err)
			}
			if err := tt.d.CheckRelaxations(nil); err != nil {
				t.Errorf("no relaxations: %v", err)
			}
		})
	}
}

func TestRelaxationsParseErrors(t *testing.T) {
	tests := []struct {
		name  string
		entry string
		line  int
		want  string
	}{
		{"unknown kind", "cap_add", 11, `unknown relaxation kind "cap_add"`},
		{"unknown kind with value", "'capadd:CAP_NET_ADMIN'", 11, `unknown relaxation kind "capadd"`},
		{"value on a valueless kind", "'writable-rootfs:yes'", 11, "has no value"},
		{"empty value", "'cap-add:'", 11, "not a capability"},
		{"bad capability", "'cap-add:CAP_NET ADMIN'", 11, "not a capability"},
		{"ALL with a value", "'cap-add:ALL'", 11, "ALL is written"},
		{"bad limit", "'unlimited:disk'", 11, "unlimited:memory"},
		{"seccomp by name", "'seccomp-profile:my.json'", 11, "digest"},
		{"relative network", "'network:run/netns/x'", 11, "not an absolute path"},
		{"empty container", "'network:container:'", 11, "network:container:NAME-GLOB"},
		{"unclean source", "'bind-mount:/srv/../etc'", 11, "not a clean path"},
		{"trailing slash", "'bind-mount:/srv/'", 11, "not a clean path"},
		{"malformed glob", "'bind-mount:/srv/[a'", 11, "malformed glob"},
		{"bad mode", "'bind-mount:/srv:/srv:rx'", 11, `mode "rx"`},
		{"publish not a port", "'publish:http'", 11, "publish:HOSTPORT"},
		{"publish range backwards", "'publish:9000-8000'", 11, "publish:HOSTPORT"},
		{"publish port 0", "'publish:0'", 11, "publish:HOSTPORT"},
		{"publish protocol", "'publish:80/sctp'", 11, `protocol "sctp"`},
		{"too many parts", "'bind-mount:/a:/b:ro:x'", 11, "SOURCE[:DESTINATION"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := header + "  - name: a\n    action: allow\n    isolation: hardened\n    relaxations:\n      - " + tt.entry + "\n"
			_, err := Parse("p.yaml", []byte(doc))
			var pe *Error
			if !errors.As(err, &pe) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %T %v, want *Error", err, err)
			}
			if pe.Line != tt.line || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "/rules/0/relaxations/0") {
				t.Errorf("error %q (line %d), want line %d, /rules/0/relaxations/0 and %q", err, pe.Line, tt.line, tt.want)
			}
		})
	}
	_, err := Parse("p.yaml", []byte(header+"  - name: a\n    action: deny\n    relaxations: [cap-add]\n"))
	var pe *Error
	if !errors.As(err, &pe) || pe.Line != 9 || !strings.Contains(err.Error(), "deny rule") {
		t.Errorf("relaxations on a deny rule: %v", err)
	}
}

func TestParseRelaxation(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Relaxation
		err  string
	}{
		{"cap-add CAP_NET_ADMIN", Relaxation{"cap-add", "CAP_NET_ADMIN"}, ""},
		{"writable-rootfs", Relaxation{Kind: "writable-rootfs"}, ""},
		{"bind-mount /srv/my data:/data:ro", Relaxation{"bind-mount", "/srv/my data:/data:ro"}, ""},
		{"cap_add CAP_NET_ADMIN", Relaxation{}, "unknown kind"},
		{"writable-rootfs yes", Relaxation{}, "has no value"},
		{"cap-add", Relaxation{}, "needs a value"},
	} {
		got, err := ParseRelaxation(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseRelaxation(%q) error %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want || got.String() != tt.in {
			t.Errorf("ParseRelaxation(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

func TestRecordRefuse(t *testing.T) {
	p := mustParse(t, "  - {name: dev, action: allow, isolation: hardened, relaxations: ['unlimited:cpus']}\n")
	ev := goodEvidence()
	d := Evaluate(p, ev, testNow)
	if !slices.Equal(d.AllowedRelaxations, []string{"unlimited:cpus"}) {
		t.Fatalf("allowed relaxations %q", d.AllowedRelaxations)
	}
	r := NewRecord(testNow, ev, d)
	r.Container = "moat-1"
	r.Relaxations = []string{"unlimited cpus", "cap-add CAP_SYS_ADMIN"}
	err := d.CheckRelaxations(relax(t, "unlimited cpus", "cap-add CAP_SYS_ADMIN"))
	var re *RelaxationError
	if !errors.As(err, &re) {
		t.Fatalf("CheckRelaxations = %v", err)
	}
	r.Refuse(re)
	last := r.Reasons[len(r.Reasons)-1]
	if r.Decision != Deny || !slices.Equal(r.Refused, []string{"cap-add CAP_SYS_ADMIN"}) ||
		!strings.HasPrefix(last, "deny: ") || !strings.Contains(last, `rule "dev"`) || !strings.Contains(last, "unlimited:cpus") {
		t.Errorf("record %+v", r)
	}
	if len(d.Reasons) == len(r.Reasons) {
		t.Error("the reason was not added")
	}
	if d.Reasons[len(d.Reasons)-1] == last {
		t.Error("Refuse changed the decision's reasons")
	}
}

func TestCaseRelaxations(t *testing.T) {
	p := mustParse(t, "  - {name: dev, action: allow, isolation: hardened, relaxations: ['bind-mount:/srv/**:/**:ro']}\n")
	evidence := "evidence: {image: {reference: registry.example.com/team/app, registry: registry.example.com, repository: team/app}}\n"
	for _, tt := range []struct {
		name, doc, mismatch, err string
	}{
		{"permitted", "relaxations: ['bind-mount /srv/a:/a:ro']\nexpect: {allow: true}\n", "", ""},
		{"refusal expected", "relaxations: ['bind-mount /srv/a:/a:rw', writable-rootfs]\nexpect: {allow: true, refused: [writable-rootfs, 'bind-mount /srv/a:/a:rw']}\n", "", ""},
		{"refusal not expected", "relaxations: ['bind-mount /srv/a:/a:rw']\nexpect: {allow: true}\n", "refused relaxations are [bind-mount /srv/a:/a:rw], want none", ""},
		{"refusal expected but permitted", "relaxations: ['bind-mount /srv/a:/a:ro']\nexpect: {allow: true, refused: ['bind-mount /srv/a:/a:ro']}\n", "refused relaxations are none", ""},
		{"bad relaxation", "relaxations: ['bind_mount /a:/b:ro']\nexpect: {allow: true}\n", "", "unknown kind"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			name := filepath.Join(t.TempDir(), "c.yaml")
			if err := os.WriteFile(name, []byte(evidence+tt.doc), 0o600); err != nil {
				t.Fatal(err)
			}
			c, err := LoadCase(name)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("LoadCase error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			r := RunCase(p, c)
			if tt.mismatch == "" {
				if !r.Pass {
					t.Errorf("mismatches %q", r.Mismatches)
				}
				return
			}
			if r.Pass || !strings.Contains(strings.Join(r.Mismatches, "; "), tt.mismatch) {
				t.Errorf("mismatches %q, want %q", r.Mismatches, tt.mismatch)
			}
		})
	}
}

// FuzzRelaxations checks entries of a rule's relaxations against relaxations: never a panic,
// a path that is not clean is permitted only by a bare kind, and a container's name (which
// cannot hold a '/') is not matched across one by a single-segment glob.
func FuzzRelaxations(f *testing.F) {
	f.Add("bind-mount:/srv/**:/data/**:ro", "bind-mount", "/srv/a/../../etc:/data:ro")
	f.Add("network:/run/netns/*", "network", "/run/netns/x")
	f.Add("network:container:web-*", "network", "container:web-1")
	f.Add("network:host", "network", "host")
	f.Add("cap-add:net_admin", "cap-add", "CAP_NET_ADMIN")
	f.Add("seccomp-profile:sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "seccomp-profile", "x@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")
	f.Fuzz(func(t *testing.T, entry, kind, value string) {
		p, err := parsePermit(entry)
		if err != nil {
			return
		}
		r := Relaxation{Kind: kind, Value: value}
		if !p.matches(r) || p.any {
			return
		}
		var paths []string
		switch kind {
		case RelaxNetwork:
			if name, ok := strings.CutPrefix(value, "container:"); ok {
				if strings.Contains(name, "/") && !strings.Contains(entry, "**") {
					t.Fatalf("%q permits %v, a container name with '/'", entry, r)
				}
			} else if value != "host" {
				paths = []string{value}
			}
		case RelaxBindMount:
			paths = strings.Split(value, ":")[:2]
		}
		for _, q := range paths {
			if !cleanAbs(q) {
				t.Fatalf("%q permits %v, whose path %q is not clean", entry, r, q)
			}
		}
	})
}

// TestRelaxationKindsMatchSpec keeps RelaxationKinds equal to the kinds the runtime reports
// (internal/runtime/spec's RelaxationKind constants), read from its source: policy imports
// no runtime package.
func TestRelaxationKindsMatchSpec(t *testing.T) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, filepath.Join("..", "runtime", "spec", "generate.go"), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, decl := range f.Decls {
		g, ok := decl.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, s := range g.Specs {
			vs := s.(*ast.ValueSpec)
			if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != "RelaxationKind" {
				continue
			}
			for _, v := range vs.Values {
				if lit, ok := v.(*ast.BasicLit); ok && lit.Kind == token.STRING {
					s, err := strconv.Unquote(lit.Value)
					if err != nil {
						t.Fatal(err)
					}
					kinds = append(kinds, s)
				}
			}
		}
	}
	if !slices.Equal(kinds, RelaxationKinds()) {
		t.Errorf("spec reports %q, policy knows %q", kinds, RelaxationKinds())
	}
}
