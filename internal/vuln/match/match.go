// Package match finds the known vulnerabilities of an inventory: it places every installed
// package against the affected ranges of the advisories that name it and turns what matches
// into findings, one per vulnerability and package.
//
// # Which advisories a package is matched against
//
// OS packages (deb, apk, rpm) are matched only against their distribution's own advisories, for
// the image's release, never against upstream ones: a distribution backports fixes without
// changing the upstream version, and only its own records know which package versions carry
// them. The release comes from the inventory's os-release (see "Distributions" below).
// Debian, Ubuntu, Alpine, Wolfi and Chainguard track source packages, so a binary
// package is looked up by its source package's name (the binary's own name when it has none);
// the RPM distributions track binary packages, so an RPM is looked up by its own name and by its
// source package's name, and a record found both ways counts once. The version compared is the
// installed binary package's, except for deb packages, where it is the source package's version
// when the inventory has one: Debian and Ubuntu record source versions, and a binNMU
// ("1.2-3+b1" built from source "1.2-3") must compare as its source.
//
// # Distributions
//
// The os-release ID and VERSION_ID select the OSV ecosystems:
//
//	debian 12                  Debian:12 (the major version; without VERSION_ID, the codename:
//	                           buster 10, bullseye 11, bookworm 12, trixie 13, forky 14)
//	ubuntu 22.04               Ubuntu:22.04 and Ubuntu:22.04:LTS, whichever the database has;
//	                           Ubuntu:Pro:22.04:LTS for packages whose version carries "+esm"
//	                           (installed from Ubuntu Pro's ESM archive, which only the Pro
//	                           records track), and for every package when the database has no
//	                           standard records for the release (one past standard support)
//	alpine 3.20.3              Alpine:v3.20
//	wolfi, chainguard          Wolfi, Chainguard
//	rhel 9.4                   every Red Hat:enterprise_linux:9... ecosystem in the database
//	                           (one per repository: ::baseos, ::appstream, ...; 10.0 and 10.1
//	                           for RHEL 10); the EUS, E4S, AUS and SAP streams and the software
//	                           collections are other products, with their own fixed versions,
//	                           and are not used
//	rocky 9.3, almalinux 9.4   Rocky Linux:9, AlmaLinux:9
//	sles 15.5                  SUSE:Linux Enterprise Server 15 SP5 (15: ...Server 15)
//	opensuse-leap 15.5         openSUSE:Leap 15.5
//	opensuse-tumbleweed        openSUSE:Tumbleweed
//
// ID_LIKE is not followed: matching a derivative against its parent's advisories would compare
// versions the parent never shipped. Any other distribution, or an image with OS packages and
// no identified distribution, is ErrUnsupportedDistro; OS packages of another type than the
// distribution's (rpm packages in a Debian image) are too.
//
// Language packages are matched against their ecosystem's advisories (golang: Go, npm, pypi:
// PyPI, maven: Maven, cargo: crates.io, gem: RubyGems, composer: Packagist, nuget: NuGet), by
// name and their own version. Go module versions compare with or without their "v", and the Go
// toolchain, which the inventory calls "stdlib" with a release version ("1.21.5"), matches the
// Go database's records for "stdlib". A language package that an OS package owns
// (Package.OwnedBy) is not matched here at all: the distribution's advisories for the owning
// package cover it, and
// matching it upstream as well would bring back the false positives that backported fixes are
// meant to remove.
//
// A package type or distribution with no advisories in the database fails the whole match with
// ErrNoData or ErrUnsupportedDistro, naming what is missing, unless Options.AllowMissing turns
// the gap into a warning: silence would read as "no vulnerabilities".
//
// # Affected ranges
//
// OSV ranges of type ECOSYSTEM and SEMVER are evaluated as the OSV schema specifies: events
// are put in version order (they may come in any order; ties keep the record's order), and
// `introduced: "0"` is before every version; an introduced event opens an affected interval,
// `fixed` closes it exclusively and `last_affected` inclusively; `limit` events bound the whole
// range from above ("*" is no bound). A record may have several introduced/fixed pairs; a range
// without an introduced event, which the schema does not allow, is read as affected from the
// first version rather than not at all. An affected entry's
// `versions` list matches a package whose version equals one of them, as a string or under the
// ecosystem's version scheme. GIT ranges are not evaluated (vuln.FromOSV drops them) and
// withdrawn advisories never match.
//
// Nothing that cannot be compared is taken as "not affected". A range with a bound the
// ecosystem's scheme cannot read is skipped with a warning (a KindRange warning, counted in
// Stats.SkippedRanges); an installed version the scheme cannot read (a Go main module's
// "(devel)", for example) is compared only by exact string with `versions` lists, and every
// advisory that names the package but could not be evaluated is listed in a KindVersion
// warning, with the package counted in Stats.Unchecked. Such packages are not reported as
// findings: a finding states that a package is affected, and nothing here says so. The
// warnings are the fail-closed signal: a caller gating on findings must also gate on them. A
// package whose version cannot be read but that no advisory names produces no warning, since
// nothing in the database could affect it.
//
// # Primary IDs and aliases
//
// Advisories that match the same package and share an identifier (their IDs and aliases, and
// their `upstream` ID when they list exactly one: a record that fixes several upstream
// vulnerabilities is not the same vulnerability as each of them) are merged into one finding.
// The finding's ID is chosen by one rule: the CVE ID if there is one (the oldest by year, then
// number, if there are several), else the GHSA ID (the lexicographically smallest if several),
// else the lexicographically smallest ID. Aliases holds every other identifier of the group and
// Advisories the IDs of the records that matched.
//
// # Severity
//
// A finding's Level comes from the first of these that gives one:
//
//  1. For OS packages, the distribution's own rating from the matched records (Debian's
//     urgency, Ubuntu's priority, a distribution database's severity label): it says how the
//     vulnerability affects the distribution's build, which a CVSS vector for the upstream
//     project does not. Labels that rate nothing ("not yet assigned") are skipped.
//  2. A CVSS vector, scored with github.com/pandatix/go-cvss: the newest CVSS version present
//     (v4.0, then v3.1, v3.0, v2), and of several vectors of that version the highest score.
//     v3 and v4 scores map to levels by the CVSS qualitative bands (0 none, 0.1-3.9 low,
//     4.0-6.9 medium, 7.0-8.9 high, 9.0-10 critical), v2 by NVD's (0-3.9 low, 4.0-6.9 medium,
//     7.0-10 high).
//  3. The database's own label (GHSA's "MODERATE" is medium).
//
// When several records give a rating of the same step, the highest wins. With none of them the
// Level is vuln.Unknown: an unknown severity is never guessed. Score is the CVSS score of step
// 2 whenever a vector was present, even when Level came from step 1; SeveritySource says which
// statement Level came from ("Debian urgency from DEBIAN-CVE-2024-1", "CVSS_V3 vector from
// GHSA-xxxx-xxxx-xxxx"), and Severities lists every statement of the matched records. An
// invalid vector is ignored with a KindSeverity warning.
//
// # Fix status
//
// FixedVersions are the `fixed` events above the installed version in the ranges that matched,
// deduplicated and in version order. FixStatus is vuln.Fixed when there is one; else
// vuln.WillNotFix when a matched record says the distribution will not fix it; else
// vuln.NotFixed when a matched record has version ranges (they name no fix) or says so; else
// vuln.FixUnknown, for a package matched only by a `versions` list with no ranges beside it,
// which says nothing about fixes.
//
// Findings are sorted by Level (highest first), then package (name, version, type, location),
// then ID.
package match

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/moatsec/moat/internal/sbom"
	"github.com/moatsec/moat/internal/vuln"
	"github.com/moatsec/moat/internal/vuln/version"
)

var (
	// ErrNoData is wrapped by Match errors about packages whose ecosystem (or distribution
	// release) has no advisories in the database.
	ErrNoData = errors.New("no vulnerability data")
	// ErrUnsupportedDistro is wrapped by Match errors about OS packages in an image whose
	// distribution is unknown or has no advisory source moat can match against.
	ErrUnsupportedDistro = errors.New("unsupported distribution")
)

// Options adjusts Match.
type Options struct {
	// AllowMissing reports the gap as a warning instead: packages whose ecosystem or
	// distribution has no advisories are left unmatched with a KindNoData warning, rather than
	// failing the match.
	AllowMissing bool
}

// Result is what Match found.
type Result struct {
	// Findings are sorted by severity (highest first), then package, then ID.
	Findings []vuln.Finding `json:"findings"`
	// Stats has one entry per ecosystem the inventory needed, sorted by Ecosystem.
	Stats []Stats `json:"stats"`
	// Warnings are the problems that did not stop the match but leave it incomplete; reports
	// must show them.
	Warnings []Warning `json:"warnings,omitempty"`
	// Owned is the number of language packages not matched because an OS package owns them.
	Owned int `json:"owned,omitempty"`
}

// Stats counts the work done for one ecosystem.
type Stats struct {
	// Ecosystem is what the packages were matched as: an OSV ecosystem ("Go", "Debian:12"),
	// or for Red Hat the release whose repositories were all used
	// ("Red Hat:enterprise_linux:9").
	Ecosystem string `json:"ecosystem"`
	// Packages is the number of inventory packages matched against it.
	Packages int `json:"packages"`
	// Advisories is the number of distinct advisories looked at for those packages.
	Advisories int `json:"advisories"`
	// Findings is the number of findings in those packages.
	Findings int `json:"findings"`
	// Unchecked is the number of packages whose version could not be compared with at least
	// one advisory that names them (see KindVersion and KindRange).
	Unchecked int `json:"unchecked,omitempty"`
	// SkippedRanges is the number of distinct advisory ranges skipped because a bound could
	// not be read (see KindRange).
	SkippedRanges int `json:"skippedRanges,omitempty"`
	// Missing is set when the database has no advisories for the ecosystem and
	// Options.AllowMissing let the match go on; Packages were then not matched.
	Missing bool `json:"missing,omitempty"`
}

// WarningKind classifies a Warning.
type WarningKind string

// Warning kinds.
const (
	// KindVersion: an installed version the ecosystem's scheme cannot read, with advisories
	// that name the package and could not be evaluated.
	KindVersion WarningKind = "version"
	// KindRange: an advisory range skipped because one of its bounds cannot be read.
	KindRange WarningKind = "range"
	// KindSeverity: a CVSS vector that is not valid, ignored.
	KindSeverity WarningKind = "severity"
	// KindNoData: packages left unmatched because their ecosystem or distribution has no
	// advisories (only with Options.AllowMissing).
	KindNoData WarningKind = "no-data"
)

// Warning is a problem that leaves the match incomplete.
type Warning struct {
	Kind      WarningKind `json:"kind"`
	Ecosystem string      `json:"ecosystem,omitempty"`
	// Package is "name@version" of the package concerned (as it was looked up: a deb's source
	// package), or for KindRange the name the advisory's range is for.
	Package string `json:"package,omitempty"`
	// Advisories are the advisories concerned, sorted.
	Advisories []string `json:"advisories,omitempty"`
	Message    string   `json:"message"`
}

// String formats the warning as one report line.
func (w Warning) String() string {
	var b strings.Builder
	if w.Package != "" {
		b.WriteString(w.Package)
		if w.Ecosystem != "" {
			fmt.Fprintf(&b, " (%s)", w.Ecosystem)
		}
		b.WriteString(": ")
	} else if w.Ecosystem != "" {
		b.WriteString(w.Ecosystem + ": ")
	}
	b.WriteString(w.Message)
	return b.String()
}

// Match matches every package of inv against the advisories of src.
//
// It fails with ErrNoData or ErrUnsupportedDistro (both may be joined) before matching
// anything when the database cannot cover the inventory, unless opts.AllowMissing is set;
// other errors come from src.
func Match(ctx context.Context, inv *sbom.Inventory, src vuln.Source, opts Options) (*Result, error) {
	if inv == nil {
		return nil, errors.New("matching vulnerabilities: no inventory")
	}
	if src == nil {
		return nil, errors.New("matching vulnerabilities: no advisory source")
	}
	have, err := src.Ecosystems(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing the ecosystems of the vulnerability database: %w", err)
	}
	m := newMatcher(ctx, src)
	res := &Result{Findings: []vuln.Finding{}}

	targets, err := m.plan(inv, have, opts, res)
	if err != nil {
		return nil, err
	}
	stop := m.prefetch(targets)
	defer stop()
	var found []pending
	for i := range inv.Packages {
		t := targets[i]
		if t == nil {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("matching vulnerabilities: %w", err)
		}
		st := m.stat(t.label)
		st.Packages++
		ev, err := m.evaluate(t)
		if err != nil {
			return nil, err
		}
		if len(ev.unchecked) > 0 {
			st.Unchecked++
		}
		for j := range ev.findings {
			found = append(found, pending{p: &inv.Packages[i], f: &ev.findings[j]})
		}
		st.Findings += len(ev.findings)
	}

	sortFindings(found)
	res.Findings = make([]vuln.Finding, len(found))
	for i, x := range found {
		res.Findings[i] = withPackage(*x.f, vuln.Ref(x.p))
	}
	for _, label := range slices.Sorted(maps.Keys(m.stats)) {
		st := m.stats[label]
		st.Advisories = len(m.consulted[label])
		res.Stats = append(res.Stats, *st)
	}
	res.Warnings = sortWarnings(m.warnings)
	return res, nil
}

var kindOrder = map[WarningKind]int{KindNoData: 0, KindVersion: 1, KindRange: 2, KindSeverity: 3}

// sortWarnings orders warnings by kind, then what they are about, whatever the order of the
// inventory.
func sortWarnings(ws []Warning) []Warning {
	slices.SortStableFunc(ws, func(a, b Warning) int {
		return cmp.Or(
			cmp.Compare(kindOrder[a.Kind], kindOrder[b.Kind]),
			cmp.Compare(a.Ecosystem, b.Ecosystem),
			cmp.Compare(a.Package, b.Package),
			slices.Compare(a.Advisories, b.Advisories),
			cmp.Compare(a.Message, b.Message))
	})
	return ws
}

// target is what one package is matched as.
type target struct {
	// label names the ecosystem in Stats and errors; bucket is the OSV export to download.
	label, bucket string
	ecosystems    []string
	names         []string
	version       string
	distro        bool
	key           string
}

func newTarget(label, bucket string, ecosystems, names []string, ver string, distro bool) *target {
	t := &target{label: label, bucket: bucket, ecosystems: ecosystems, names: names, version: ver, distro: distro}
	t.key = label + "\x00" + strings.Join(ecosystems, "\x01") + "\x00" + strings.Join(names, "\x01") + "\x00" + ver
	return t
}

// languageEcosystems maps the package types of language ecosystems to OSV's ecosystems.
var languageEcosystems = map[sbom.Type]string{
	sbom.TypeGolang:   "Go",
	sbom.TypeNPM:      "npm",
	sbom.TypePyPI:     "PyPI",
	sbom.TypeMaven:    "Maven",
	sbom.TypeCargo:    "crates.io",
	sbom.TypeGem:      "RubyGems",
	sbom.TypeComposer: "Packagist",
	sbom.TypeNuGet:    "NuGet",
}

// missing is a gap between the inventory and the database.
type missing struct {
	label, bucket string
	packages      int
	distro        bool
	reason        string
}

// plan decides what each package is matched as, and checks that the database covers it all.
func (m *matcher) plan(inv *sbom.Inventory, have map[string]int, opts Options, res *Result) ([]*target, error) {
	targets := make([]*target, len(inv.Packages))
	var osPlan *distroPlan
	gaps := map[string]*missing{}
	gap := func(label, bucket string, distro bool, reason string) {
		g := gaps[label]
		if g == nil {
			g = &missing{label: label, bucket: bucket, distro: distro, reason: reason}
			gaps[label] = g
		}
		g.packages++
	}
	for i := range inv.Packages {
		p := &inv.Packages[i]
		if p.Type.IsOS() {
			if osPlan == nil {
				osPlan = planDistro(inv.Distro, have)
			}
			if osPlan.unsupported != "" {
				gap(osPlan.label, "", true, osPlan.unsupported)
				continue
			}
			if p.Type != osPlan.pkgType {
				gap(osPlan.label+" "+string(p.Type), "", true,
					fmt.Sprintf("%s packages in a %s image cannot be matched against its advisories", p.Type, osPlan.label))
				continue
			}
			ecos := osPlan.ecosystemsFor(p)
			if len(ecos) == 0 {
				gap(osPlan.label, osPlan.bucket, true, "")
				continue
			}
			targets[i] = newTarget(osPlan.label, osPlan.bucket, ecos, osPlan.names(p), osPlan.version(p), true)
			continue
		}
		if p.OwnedBy != "" {
			res.Owned++
			continue
		}
		eco, ok := languageEcosystems[p.Type]
		if !ok {
			gap("type "+string(p.Type), "", false, fmt.Sprintf("moat has no advisory ecosystem for %q packages", p.Type))
			continue
		}
		if have[eco] == 0 {
			gap(eco, eco, false, "")
			continue
		}
		targets[i] = newTarget(eco, eco, []string{eco}, []string{p.Name}, p.Version, false)
	}
	if len(gaps) == 0 {
		return targets, nil
	}
	var errs []error
	for _, label := range slices.Sorted(maps.Keys(gaps)) {
		g := gaps[label]
		msg := gapMessage(g)
		if opts.AllowMissing {
			m.warn(Warning{Kind: KindNoData, Ecosystem: g.label, Message: msg}, "nodata\x00"+g.label)
			st := m.stat(g.label)
			st.Packages += g.packages
			st.Missing = true
			continue
		}
		sentinel := ErrNoData
		if g.distro && g.bucket == "" {
			sentinel = ErrUnsupportedDistro
		}
		errs = append(errs, fmt.Errorf("%w: %s", sentinel, msg))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("matching vulnerabilities: %w", errors.Join(errs...))
	}
	return targets, nil
}

func gapMessage(g *missing) string {
	n := fmt.Sprintf("%d package", g.packages)
	if g.packages != 1 {
		n += "s"
	}
	if g.reason != "" {
		return fmt.Sprintf("%s (%s) not matched: %s", n, g.label, g.reason)
	}
	bucket := g.bucket
	if strings.ContainsRune(bucket, ' ') {
		bucket = `"` + bucket + `"`
	}
	return fmt.Sprintf("the database has no advisories for %s (needed by %s); run `moat db update --ecosystem %s`",
		g.label, n, bucket)
}

// withPackage returns a copy of f for one package, sharing nothing with f that a caller could
// change.
func withPackage(f vuln.Finding, ref vuln.PackageRef) vuln.Finding {
	f.Package = ref
	f.Aliases = slices.Clone(f.Aliases)
	f.Advisories = slices.Clone(f.Advisories)
	f.Severities = slices.Clone(f.Severities)
	f.FixedVersions = slices.Clone(f.FixedVersions)
	f.References = slices.Clone(f.References)
	return f
}

// pending is a finding before it is given its package.
type pending struct {
	p *sbom.Package
	f *vuln.Finding
}

// sortFindings puts findings in report order; equal ones keep the inventory's order.
func sortFindings(fs []pending) {
	slices.SortStableFunc(fs, func(a, b pending) int {
		if c := cmp.Compare(b.f.Level, a.f.Level); c != 0 {
			return c
		}
		if c := comparePackages(a.p, b.p); c != 0 {
			return c
		}
		return cmp.Compare(a.f.ID, b.f.ID)
	})
}

func comparePackages(a, b *sbom.Package) int {
	if c := cmp.Compare(a.Name, b.Name); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Version, b.Version); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Type, b.Type); c != 0 {
		return c
	}
	if c := cmp.Compare(a.PURL, b.PURL); c != 0 {
		return c
	}
	return slices.CompareFunc(a.Locations, b.Locations, func(x, y sbom.Location) int {
		return cmp.Or(cmp.Compare(x.Path, y.Path), cmp.Compare(x.LayerDigest, y.LayerDigest))
	})
}

// matcher holds the caches of one Match call.
type matcher struct {
	ctx context.Context
	src vuln.Source

	lookups   map[string]*future
	bounds    map[boundKey]boundVal
	evals     map[string]*evaluation
	scores    map[string]cvssResult
	consulted map[string]map[string]struct{}
	stats     map[string]*Stats
	skipped   map[string]bool

	warnings []Warning
	warned   map[string]bool
	events   []event // scratch for range evaluation
}

func newMatcher(ctx context.Context, src vuln.Source) *matcher {
	return &matcher{
		ctx: ctx, src: src,
		lookups:   map[string]*future{},
		bounds:    map[boundKey]boundVal{},
		evals:     map[string]*evaluation{},
		scores:    map[string]cvssResult{},
		consulted: map[string]map[string]struct{}{},
		stats:     map[string]*Stats{},
		skipped:   map[string]bool{},
		warned:    map[string]bool{},
	}
}

func (m *matcher) stat(label string) *Stats {
	st := m.stats[label]
	if st == nil {
		st = &Stats{Ecosystem: label}
		m.stats[label] = st
	}
	return st
}

// warn records w once per key.
func (m *matcher) warn(w Warning, key string) {
	if m.warned[key] {
		return
	}
	m.warned[key] = true
	m.warnings = append(m.warnings, w)
}

// future is one lookup, made by a prefetch worker or on demand.
type future struct {
	done chan struct{}
	advs []*vuln.Advisory
	err  error
}

// prefetch starts looking up every (ecosystem, name) the targets need, in target order, on
// up to GOMAXPROCS goroutines, so that database reads overlap with evaluation. lookup waits
// for a prefetched result. The returned function stops the workers and waits for them.
func (m *matcher) prefetch(targets []*target) (stop func()) {
	var keys [][2]string
	for _, t := range targets {
		if t == nil {
			continue
		}
		for _, eco := range t.ecosystems {
			for _, name := range t.names {
				k := eco + "\x00" + name
				if _, ok := m.lookups[k]; ok {
					continue
				}
				m.lookups[k] = &future{done: make(chan struct{})}
				keys = append(keys, [2]string{eco, name})
			}
		}
	}
	ctx, cancel := context.WithCancel(m.ctx)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), max(1, len(keys)/16)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(keys) {
					return
				}
				k := keys[i]
				f := m.lookups[k[0]+"\x00"+k[1]] // the map is not written while workers run
				if err := ctx.Err(); err != nil {
					f.err = err
				} else {
					f.advs, f.err = m.src.Lookup(ctx, k[0], k[1])
				}
				close(f.done)
			}
		}()
	}
	return func() { cancel(); wg.Wait() }
}

func (m *matcher) lookup(eco, name string) ([]*vuln.Advisory, error) {
	f, ok := m.lookups[eco+"\x00"+name]
	if !ok {
		// Not planned (cannot happen for targets given to prefetch): look it up now.
		f = &future{done: make(chan struct{})}
		f.advs, f.err = m.src.Lookup(m.ctx, eco, name)
		close(f.done)
	}
	<-f.done
	if f.err != nil {
		return nil, fmt.Errorf("looking up advisories for %s in %s: %w", name, eco, f.err)
	}
	return f.advs, nil
}

type boundKey struct {
	s   *version.Scheme
	raw string
}

type boundVal struct {
	v   version.Version
	err error
}

// bound parses an advisory version once per match.
func (m *matcher) bound(s *version.Scheme, raw string) (version.Version, error) {
	k := boundKey{s, raw}
	if b, ok := m.bounds[k]; ok {
		return b.v, b.err
	}
	v, err := s.Parse(raw)
	m.bounds[k] = boundVal{v, err}
	return v, err
}
