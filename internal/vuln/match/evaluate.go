package match

import (
	"errors"
	"fmt"
	"slices"

	"github.com/moatsec/moat/internal/vuln"
	"github.com/moatsec/moat/internal/vuln/version"
)

// evaluation is the outcome for one target: the findings (without their package) and the
// advisories that name the package but could not be evaluated.
type evaluation struct {
	findings  []vuln.Finding
	unchecked []string
}

// hit is one advisory that matched a target.
type hit struct {
	adv *vuln.Advisory
	// eco and name are where it was first found.
	eco, name string
	// entries are the affected entries that matched.
	entries []*vuln.Affected
	// fixed are the fixed bounds above the installed version, in the ranges that matched.
	fixed []version.Version
	// ranged: a matched entry has version ranges.
	ranged bool
}

// installed is a target's version, parsed at most once per scheme.
type installed struct {
	raw    string
	parsed []parsedVersion
	keys   [2]uint64
	keyed  [2]bool
}

func (in *installed) digitKey(plus bool) uint64 {
	i := 0
	if plus {
		i = 1
	}
	if !in.keyed[i] {
		in.keys[i], in.keyed[i] = digitKey(in.raw, plus), true
	}
	return in.keys[i]
}

type parsedVersion struct {
	s   *version.Scheme
	v   version.Version
	err error
}

func (in *installed) parse(s *version.Scheme) (version.Version, error) {
	for _, p := range in.parsed {
		if p.s == s {
			return p.v, p.err
		}
	}
	v, err := s.Parse(in.raw)
	in.parsed = append(in.parsed, parsedVersion{s, v, err})
	return v, err
}

// evaluate matches a target against its advisories, once per distinct target.
func (m *matcher) evaluate(t *target) (*evaluation, error) {
	if ev, ok := m.evals[t.key]; ok {
		return ev, nil
	}
	in := &installed{raw: t.version}
	consulted := m.consulted[t.label]
	if consulted == nil {
		consulted = map[string]struct{}{}
		m.consulted[t.label] = consulted
	}
	var hits []*hit
	byID := map[string]*hit{}
	unchecked := map[string]bool{}
	var versionErr error
	for _, eco := range t.ecosystems {
		for _, name := range t.names {
			advs, err := m.lookup(eco, name)
			if err != nil {
				return nil, err
			}
			norm := ""
			for _, adv := range advs {
				consulted[adv.ID] = struct{}{}
				if adv.Withdrawn != nil {
					continue
				}
				for i := range adv.Affected {
					af := &adv.Affected[i]
					if af.Ecosystem != eco {
						continue
					}
					if af.Name != name {
						if norm == "" {
							norm = vuln.NormalizeName(eco, name)
						}
						if vuln.NormalizeName(eco, af.Name) != norm {
							continue
						}
					}
					o := m.affects(t, adv, af, eco, in)
					if !o.matched {
						if o.unknown {
							// true when the installed version is what could not be read.
							unchecked[adv.ID] = unchecked[adv.ID] || o.versionErr != nil
						}
						if o.versionErr != nil {
							versionErr = o.versionErr
						}
						continue
					}
					h := byID[adv.ID]
					if h == nil {
						h = &hit{adv: adv, eco: eco, name: name}
						byID[adv.ID] = h
						hits = append(hits, h)
					}
					if !slices.Contains(h.entries, af) {
						h.entries = append(h.entries, af)
						h.fixed = append(h.fixed, o.fixed...)
						h.ranged = h.ranged || len(af.Ranges) > 0
					}
				}
			}
		}
	}
	ev := &evaluation{}
	var byVersion []string
	for id, isVersion := range unchecked {
		if byID[id] != nil {
			continue
		}
		ev.unchecked = append(ev.unchecked, id)
		if isVersion {
			byVersion = append(byVersion, id)
		}
	}
	slices.Sort(ev.unchecked)
	slices.Sort(byVersion)
	if len(byVersion) > 0 {
		m.warn(Warning{
			Kind: KindVersion, Ecosystem: t.label, Package: t.names[0] + "@" + t.version, Advisories: byVersion,
			Message: fmt.Sprintf("version %q cannot be compared with %s that name the package, which is not reported as affected or unaffected by them: %v",
				t.version, plural(len(byVersion), "advisory", "advisories"), versionErr),
		}, "version\x00"+t.key)
	}
	ev.findings = m.merge(t, hits)
	m.evals[t.key] = ev
	return ev, nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// outcome is what one affected entry says about the installed version.
type outcome struct {
	matched bool
	// unknown: part of the entry could not be evaluated (and nothing in it matched).
	unknown bool
	fixed   []version.Version
	// versionErr is set when the installed version is what could not be read.
	versionErr error
}

// affects evaluates one affected entry: its ranges, then its versions list.
func (m *matcher) affects(t *target, adv *vuln.Advisory, af *vuln.Affected, eco string, in *installed) outcome {
	var o outcome
	for ri := range af.Ranges {
		r := &af.Ranges[ri]
		s, err := version.ForRange(r.Type, eco)
		if err != nil {
			m.skipRange(t, adv, af, ri, err)
			o.unknown = true
			continue
		}
		iv, err := in.parse(s)
		if err != nil {
			o.unknown, o.versionErr = true, err
			continue
		}
		affected, fixed, err := m.inRange(r, s, iv)
		if err != nil {
			m.skipRange(t, adv, af, ri, err)
			o.unknown = true
			continue
		}
		if affected {
			o.matched = true
			o.fixed = append(o.fixed, fixed...)
		}
	}
	if o.matched {
		return outcome{matched: true, fixed: o.fixed}
	}
	if len(af.Versions) == 0 {
		return o
	}
	if slices.Contains(af.Versions, in.raw) {
		return outcome{matched: true}
	}
	s, err := version.For(eco)
	if err != nil {
		o.unknown = true
		return o
	}
	iv, err := in.parse(s)
	if err != nil {
		o.unknown, o.versionErr = true, err
		return o
	}
	plus := ignoresBuild(s)
	key := in.digitKey(plus)
	for _, raw := range af.Versions {
		if digitKey(raw, plus) != key {
			continue
		}
		// A listed version the scheme cannot read equals no version it can.
		if v, err := m.bound(s, raw); err == nil && v.Compare(iv) == 0 {
			return outcome{matched: true}
		}
	}
	return o
}

// ignoresBuild tells whether a scheme ignores what follows a '+' (SemVer build metadata).
func ignoresBuild(s *version.Scheme) bool {
	switch s.Name() {
	case "go", "npm", "semver", "nuget", "packagist":
		return true
	}
	return false
}

// digitKey summarises the numbers in a version string: a hash of its runs of digits, each
// without leading zeros, runs of only zeros left out; with plus, nothing after a '+' counts.
//
// Two versions that a scheme holds equal have the same key, in every scheme here: equal
// versions differ at most in separators, letters that spell the same thing ("alpha" and "a"),
// leading zeros, implicit or trailing zero components ("1.0" and "1.0.0", a missing epoch and
// "0:"), and, where plus is set, build metadata. The key lets a long versions list be checked
// without parsing every entry: only entries with the installed version's key are parsed and
// compared.
func digitKey(v string, plus bool) uint64 {
	const prime = 1099511628211
	h := uint64(14695981039346656037)
	for i := 0; i < len(v); {
		c := v[i]
		if plus && c == '+' {
			break
		}
		if c < '0' || c > '9' {
			i++
			continue
		}
		for i < len(v) && v[i] == '0' {
			i++
		}
		start := i
		for i < len(v) && v[i] >= '0' && v[i] <= '9' {
			i++
		}
		if i == start {
			continue // zeros only
		}
		for j := start; j < i; j++ {
			h = (h ^ uint64(v[j])) * prime
		}
		h = (h ^ '.') * prime
	}
	return h
}

// skipRange records a range that could not be evaluated.
func (m *matcher) skipRange(t *target, adv *vuln.Advisory, af *vuln.Affected, ri int, err error) {
	ai := 0
	for i := range adv.Affected {
		if &adv.Affected[i] == af {
			ai = i
		}
	}
	key := fmt.Sprintf("%s\x00%d\x00%d", adv.ID, ai, ri)
	if !m.skipped[key] {
		m.skipped[key] = true
		m.stat(t.label).SkippedRanges++
	}
	m.warn(Warning{
		Kind: KindRange, Ecosystem: af.Ecosystem, Package: af.Name, Advisories: []string{adv.ID},
		Message: fmt.Sprintf("a %s range of %s was skipped, so it cannot say whether a version is affected: %v", af.Ranges[ri].Type, adv.ID, err),
	}, "range\x00"+key)
}

const (
	evIntroduced = iota
	evFixed
	evLastAffected
)

type event struct {
	kind int
	// zero marks `introduced: "0"`, before every version.
	zero bool
	v    version.Version
}

var errNoEvents = errors.New("the range has no events")

// inRange evaluates one OSV range (https://ossf.github.io/osv-schema/#evaluation) and returns
// the fixed bounds above iv when iv is affected. A bound the scheme cannot read is an error.
func (m *matcher) inRange(r *vuln.Range, s *version.Scheme, iv version.Version) (bool, []version.Version, error) {
	evs := m.events[:0]
	defer func() { m.events = evs[:0] }()
	limited, belowLimit, introduced := false, false, false
	for _, e := range r.Events {
		var kind int
		var raw string
		switch {
		case e.Introduced != "":
			introduced = true
			if e.Introduced == "0" {
				evs = append(evs, event{kind: evIntroduced, zero: true})
				continue
			}
			kind, raw = evIntroduced, e.Introduced
		case e.Fixed != "":
			kind, raw = evFixed, e.Fixed
		case e.LastAffected != "":
			kind, raw = evLastAffected, e.LastAffected
		case e.Limit != "":
			limited = true
			if e.Limit == "*" {
				belowLimit = true
				continue
			}
			v, err := m.bound(s, e.Limit)
			if err != nil {
				return false, nil, err
			}
			if iv.Compare(v) < 0 {
				belowLimit = true
			}
			continue
		default:
			continue
		}
		v, err := m.bound(s, raw)
		if err != nil {
			return false, nil, err
		}
		evs = append(evs, event{kind: kind, v: v})
	}
	if len(evs) == 0 && !limited {
		return false, nil, errNoEvents
	}
	if limited && !belowLimit {
		return false, nil, nil
	}
	if !introduced {
		// The schema requires an introduced event; a range without one is read as affected
		// from the beginning rather than not at all.
		evs = append(evs, event{kind: evIntroduced, zero: true})
	}
	slices.SortStableFunc(evs, func(a, b event) int {
		switch {
		case a.zero && b.zero:
			return 0
		case a.zero:
			return -1
		case b.zero:
			return 1
		}
		return a.v.Compare(b.v)
	})
	affected := false
	for _, e := range evs {
		switch e.kind {
		case evIntroduced:
			if e.zero || iv.Compare(e.v) >= 0 {
				affected = true
			}
		case evFixed:
			if iv.Compare(e.v) >= 0 {
				affected = false
			}
		case evLastAffected:
			if iv.Compare(e.v) > 0 {
				affected = false
			}
		}
	}
	if !affected {
		return false, nil, nil
	}
	var fixed []version.Version
	for _, e := range evs {
		if e.kind == evFixed && e.v.Compare(iv) > 0 {
			fixed = append(fixed, e.v)
		}
	}
	return true, fixed, nil
}
