package policy

import (
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/moatsec/moat/internal/lazyregexp"
)

// Relaxation is one loosening of the hardened confinement a container asks for, as the runtime
// reports it (internal/runtime/spec.Relaxation, given here as plain strings so that policy
// imports no runtime package): Kind is one of the RelaxationKinds, Value what it applies to.
type Relaxation struct {
	Kind  string
	Value string
}

// The relaxation kinds a policy can permit. They are the names internal/runtime/spec reports
// (its Relax* constants) and are stable: policies and decision logs use them.
const (
	RelaxCapAdd            = "cap-add"            // Value: a capability, CAP_NET_ADMIN
	RelaxWritableRootfs    = "writable-rootfs"    // no Value
	RelaxNetwork           = "network"            // Value: host, bridge, container:NAME, or the network namespace path
	RelaxSeccompUnconfined = "seccomp-unconfined" // no Value
	RelaxSeccompProfile    = "seccomp-profile"    // Value: NAME@sha256:HEX
	RelaxNewPrivileges     = "new-privileges"     // no Value
	RelaxUnlimited         = "unlimited"          // Value: memory, cpus or pids
	RelaxBindMount         = "bind-mount"         // Value: SOURCE:DESTINATION:ro|rw
	RelaxPublish           = "publish"            // Value: [HOSTIP:]HOSTPORT:PORT/PROTO
)

// RelaxationKinds lists every kind, in the order the runtime reports them.
func RelaxationKinds() []string { return slices.Clone(relaxationKinds) }

var relaxationKinds = []string{
	RelaxCapAdd, RelaxWritableRootfs, RelaxNetwork, RelaxSeccompUnconfined,
	RelaxSeccompProfile, RelaxNewPrivileges, RelaxUnlimited, RelaxBindMount, RelaxPublish,
}

// valueless are the kinds that carry no value.
var valueless = []string{RelaxWritableRootfs, RelaxSeccompUnconfined, RelaxNewPrivileges}

// String is the relaxation as the decision log writes it: "cap-add CAP_NET_ADMIN",
// "writable-rootfs".
func (r Relaxation) String() string {
	if r.Value == "" {
		return r.Kind
	}
	return r.Kind + " " + r.Value
}

// ParseRelaxation reads a relaxation in the decision log's form (String): the kind, then,
// for the kinds that have one, a space and the value.
func ParseRelaxation(s string) (Relaxation, error) {
	kind, value, _ := strings.Cut(s, " ")
	r := Relaxation{Kind: kind, Value: value}
	switch {
	case !slices.Contains(relaxationKinds, kind):
		return r, fmt.Errorf("relaxation %q: unknown kind %q (want one of %s)", s, kind, strings.Join(relaxationKinds, ", "))
	case slices.Contains(valueless, kind) && value != "":
		return r, fmt.Errorf("relaxation %q: %s has no value", s, kind)
	case !slices.Contains(valueless, kind) && value == "":
		return r, fmt.Errorf("relaxation %q: %s needs a value", s, kind)
	}
	return r, nil
}

// MarshalText writes the relaxation as String does.
func (r Relaxation) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText reads the relaxation as ParseRelaxation does (test cases write them so).
func (r *Relaxation) UnmarshalText(b []byte) error {
	v, err := ParseRelaxation(string(b))
	if err != nil {
		return err
	}
	*r = v
	return nil
}

// permit is one entry of a rule's relaxations: "KIND" permits every relaxation of that kind,
// "KIND:VALUE" only those whose value VALUE matches (see matches).
type permit struct {
	kind string
	// any is set for a bare "KIND".
	any bool
	// value is the exact value (cap-add, unlimited), the digest (seccomp-profile) or the
	// path glob (network).
	value string
	// bind-mount: globs over the source and the destination ("" is any), and the mode ("" is
	// any; "rw" permits ro as well).
	src, dst, mode string
	// publish: the host ports permitted, and the protocol ("" is either).
	portLo, portHi int
	proto          string
}

var (
	capName = lazyregexp.New(`^CAP_[A-Z0-9_]+$`)
	digest  = lazyregexp.New(`^sha256:[0-9a-f]{64}$`)
)

// parsePermit reads and checks one entry of a rule's relaxations.
func parsePermit(s string) (permit, error) {
	kind, value, hasValue := strings.Cut(s, ":")
	p := permit{kind: kind, any: !hasValue}
	if !slices.Contains(relaxationKinds, kind) {
		return p, fmt.Errorf("unknown relaxation kind %q (want one of %s)", kind, strings.Join(relaxationKinds, ", "))
	}
	if !hasValue {
		return p, nil
	}
	switch kind {
	case RelaxWritableRootfs, RelaxSeccompUnconfined, RelaxNewPrivileges:
		return p, fmt.Errorf("relaxation %q: %s has no value: write %q", s, kind, kind)
	case RelaxCapAdd:
		c := strings.ToUpper(value)
		if !strings.HasPrefix(c, "CAP_") {
			c = "CAP_" + c
		}
		if !capName().MatchString(c) || c == "CAP_ALL" {
			return p, fmt.Errorf("relaxation %q: %q is not a capability name such as CAP_NET_ADMIN (ALL is written %q)", s, value, kind)
		}
		p.value = c
	case RelaxUnlimited:
		if value != "memory" && value != "cpus" && value != "pids" {
			return p, fmt.Errorf("relaxation %q: want unlimited:memory, unlimited:cpus or unlimited:pids", s)
		}
		p.value = value
	case RelaxSeccompProfile:
		if !digest().MatchString(value) {
			return p, fmt.Errorf("relaxation %q: a seccomp profile is permitted by the digest of its file: seccomp-profile:sha256:<64 hex digits>", s)
		}
		p.value = value
	case RelaxNetwork:
		switch {
		case value == "host" || value == "bridge":
		case strings.HasPrefix(value, "container:"):
			if err := checkGlob(strings.TrimPrefix(value, "container:")); err != nil || value == "container:" {
				return p, fmt.Errorf("relaxation %q: want network:container:NAME-GLOB", s)
			}
		default:
			if err := checkPathGlob(value); err != nil {
				return p, fmt.Errorf("relaxation %q: want network:host, network:bridge, network:container:NAME-GLOB or network:PATH-GLOB: %w", s, err)
			}
		}
		p.value = value
	case RelaxPublish:
		ports, proto, hasProto := strings.Cut(value, "/")
		if hasProto && proto != "tcp" && proto != "udp" {
			return p, fmt.Errorf("relaxation %q: protocol %q: want tcp or udp", s, proto)
		}
		p.proto = proto
		lo, hi, isRange := strings.Cut(ports, "-")
		if !isRange {
			hi = lo
		}
		var err1, err2 error
		p.portLo, err1 = strconv.Atoi(lo)
		p.portHi, err2 = strconv.Atoi(hi)
		if err1 != nil || err2 != nil || p.portLo < 1 || p.portHi > 65535 || p.portLo > p.portHi {
			return p, fmt.Errorf("relaxation %q: want publish:HOSTPORT, publish:LOW-HIGH, either with /tcp or /udp", s)
		}
	case RelaxBindMount:
		parts := strings.Split(value, ":")
		if len(parts) > 3 {
			return p, fmt.Errorf("relaxation %q: want bind-mount:SOURCE[:DESTINATION[:ro|rw]]", s)
		}
		p.src = parts[0]
		if err := checkPathGlob(p.src); err != nil {
			return p, fmt.Errorf("relaxation %q: source: %w", s, err)
		}
		if len(parts) > 1 {
			p.dst = parts[1]
			if err := checkPathGlob(p.dst); err != nil {
				return p, fmt.Errorf("relaxation %q: destination: %w", s, err)
			}
		}
		if len(parts) > 2 {
			p.mode = parts[2]
			if p.mode != "ro" && p.mode != "rw" {
				return p, fmt.Errorf("relaxation %q: mode %q is not ro or rw", s, p.mode)
			}
		}
	}
	return p, nil
}

// checkPathGlob accepts an absolute, clean path glob: path.Match syntax per segment, "**" for
// any number of segments.
func checkPathGlob(g string) error {
	if !strings.HasPrefix(g, "/") {
		return fmt.Errorf("%q is not an absolute path", g)
	}
	if path.Clean(g) != g {
		return fmt.Errorf("%q is not a clean path (no trailing /, //, . or .. segments)", g)
	}
	if g == "/" {
		return nil
	}
	if err := checkGlob(g[1:]); err != nil {
		return fmt.Errorf("malformed glob %q", g)
	}
	return nil
}

// cleanAbs reports whether p is an absolute path with nothing to clean.
func cleanAbs(p string) bool {
	return strings.HasPrefix(p, "/") && path.Clean(p) == p && !strings.ContainsRune(p, 0)
}

// matchPath matches a path against a glob checked by checkPathGlob. A path that is not clean
// and absolute matches nothing: ".." must not walk out of what a glob names.
func matchPath(glob, p string) bool { return cleanAbs(p) && matchGlob(glob, p) }

// matches reports whether the entry permits r.
func (p permit) matches(r Relaxation) bool {
	if r.Kind != p.kind {
		return false
	}
	if p.any {
		return true
	}
	switch p.kind {
	case RelaxCapAdd, RelaxUnlimited:
		return r.Value == p.value
	case RelaxSeccompProfile:
		// NAME@sha256:HEX: the name is whatever the user called the file; the digest is what
		// was loaded.
		i := strings.LastIndexByte(r.Value, '@')
		return i >= 0 && r.Value[i+1:] == p.value
	case RelaxNetwork:
		switch {
		case p.value == "host" || r.Value == "host" || p.value == "bridge" || r.Value == "bridge":
			return p.value == r.Value
		case strings.HasPrefix(p.value, "container:"):
			name, ok := strings.CutPrefix(r.Value, "container:")
			return ok && matchGlob(strings.TrimPrefix(p.value, "container:"), name)
		}
		return matchPath(p.value, r.Value)
	case RelaxPublish:
		// [HOSTIP:]HOSTPORT:PORT/PROTO: the host port and the protocol are what is permitted.
		spec, proto, _ := strings.Cut(r.Value, "/")
		parts := strings.Split(spec, ":")
		if len(parts) < 2 {
			return false
		}
		port, err := strconv.Atoi(parts[len(parts)-2])
		if err != nil {
			return false
		}
		return port >= p.portLo && port <= p.portHi && (p.proto == "" || p.proto == proto)
	case RelaxBindMount:
		// SOURCE:DESTINATION:MODE. A path with a ':' in it makes the split ambiguous, so such a
		// mount is permitted only by a bare "bind-mount".
		parts := strings.Split(r.Value, ":")
		if len(parts) != 3 {
			return false
		}
		src, dst, mode := parts[0], parts[1], parts[2]
		if mode != "ro" && mode != "rw" {
			return false
		}
		if !matchPath(p.src, src) || !cleanAbs(dst) {
			return false
		}
		if p.dst != "" && !matchPath(p.dst, dst) {
			return false
		}
		return p.mode == "" || p.mode == mode || (p.mode == "rw" && mode == "ro")
	}
	return false
}

// RelaxationError is the refusal of relaxations the decision does not permit.
type RelaxationError struct {
	// Rule is the deciding rule; empty when no rule decided.
	Rule string
	// Allow is the decision's; on a deny every relaxation is refused.
	Allow bool
	// Refused are the relaxations not permitted, in the order asked for.
	Refused []Relaxation
	// Permitted are the deciding rule's relaxations entries, as written in the policy.
	Permitted []string
}

func (e *RelaxationError) Error() string {
	list := make([]string, len(e.Refused))
	for i, r := range e.Refused {
		list[i] = r.String()
	}
	switch {
	case !e.Allow:
		return "the policy denied the image, so no relaxation is permitted: " + strings.Join(list, ", ")
	case e.Rule == "":
		return "no policy rule permits the relaxations " + strings.Join(list, ", ")
	}
	permitted := "none"
	if len(e.Permitted) > 0 {
		permitted = strings.Join(e.Permitted, ", ")
	}
	return fmt.Sprintf("policy rule %q does not permit the relaxations %s (it permits: %s)", e.Rule, strings.Join(list, ", "), permitted)
}

// CheckRelaxations decides whether a container may run with rs under d, the decision for its
// image. It fails closed: a relaxation is permitted only when d is an allow and an entry of
// the deciding rule's relaxations (d.AllowedRelaxations) matches it; everything else is
// refused. It returns nil when every relaxation is permitted (always, when rs is empty) and
// otherwise a *RelaxationError listing each refused one.
//
// Call it only when a policy is in force: a decision made up without one has no rule and
// permits nothing.
func (d Decision) CheckRelaxations(rs []Relaxation) error {
	var permits []permit
	if d.Allow {
		for _, s := range d.AllowedRelaxations {
			// Entries were checked when the policy loaded; one that does not parse (a decision
			// decoded from elsewhere) permits nothing.
			if p, err := parsePermit(s); err == nil {
				permits = append(permits, p)
			}
		}
	}
	var refused []Relaxation
	for _, r := range rs {
		if !slices.ContainsFunc(permits, func(p permit) bool { return p.matches(r) }) {
			refused = append(refused, r)
		}
	}
	if len(refused) == 0 {
		return nil
	}
	e := &RelaxationError{Rule: d.Rule, Allow: d.Allow, Refused: refused}
	if d.Allow {
		e.Permitted = slices.Clone(d.AllowedRelaxations)
	}
	return e
}
