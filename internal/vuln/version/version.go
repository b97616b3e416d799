// Package version orders the version strings of each package ecosystem, so that an installed
// package can be placed against the bounds of an OSV advisory's affected ranges
// (https://ossf.github.io/osv-schema/).
//
// Matching parses a package's version once with the Scheme of its ecosystem and compares the
// result with many advisory bounds, so parsing does the work and Compare is cheap: it
// allocates nothing, except in the Maven library and for SemVer pre-releases (see
// BenchmarkCompare and BenchmarkParse for the costs).
//
// Each ordering follows the ecosystem's own tool (dpkg, apk-tools, rpm, pip's packaging,
// Maven, node-semver, the go command, RubyGems, NuGet, Composer) and, where moat implements it
// rather than a library, is tested against that library (reference_test.go).
//
// Nothing here guesses. An ecosystem without a scheme is ErrUnsupported and a string that is
// not a version of the scheme is ErrInvalid; a caller must take either as "cannot tell", never
// as "not affected". OSV's `introduced: "0"` ("from the first version") is not a version in
// most schemes and is the caller's to recognise before parsing.
package version

import (
	"cmp"
	"errors"
	"fmt"
	"strings"
)

// MaxLen is the longest version string Parse accepts, in bytes. Real versions are far shorter;
// the bound keeps hostile input from costing time or memory.
const MaxLen = 256

var (
	// ErrUnsupported is returned by For and ForRange for an ecosystem or range type that has
	// no scheme here.
	ErrUnsupported = errors.New("no version scheme")
	// ErrInvalid is wrapped by every Parse error: the string is not a version of the scheme.
	ErrInvalid = errors.New("invalid version")
)

// Scheme parses the versions of one family of ecosystems. The schemes are fixed values shared
// by every caller; For and ForRange hand them out.
type Scheme struct {
	name string
	// rank orders versions of different schemes against each other (see Version.Compare).
	rank int
	// parse reads a string that has passed checkText.
	parse func(s string) (key, error)
}

// key is a parsed version of one scheme. compare is only ever given a key of the same scheme
// and returns -1, 0 or +1.
type key interface {
	compare(o key) int
}

// Name identifies the scheme ("dpkg", "apk", "rpm", "pep440", "maven", "npm", "go", "rubygems",
// "semver", "nuget", "packagist"); it is "" for a nil Scheme.
func (s *Scheme) Name() string {
	if s == nil {
		return ""
	}
	return s.name
}

// String returns the scheme's name.
func (s *Scheme) String() string { return s.Name() }

// Parse reads v as a version of the scheme. Parse never panics: a library that panics on odd
// input is recovered from and the input reported as invalid.
func (s *Scheme) Parse(v string) (Version, error) {
	if s == nil || s.parse == nil {
		return Version{}, fmt.Errorf("parsing version %s: %w: the scheme did not come from For or ForRange", quote(v), ErrUnsupported)
	}
	if err := checkText(v); err != nil {
		return Version{}, fmt.Errorf("parsing %s version %s: %w: %w", s.name, quote(v), ErrInvalid, err)
	}
	k, err := s.parse(v)
	if err != nil {
		return Version{}, fmt.Errorf("parsing %s version %s: %w: %w", s.name, quote(v), ErrInvalid, err)
	}
	return Version{scheme: s, raw: v, key: k}, nil
}

// Version is a parsed version. The zero Version is valid and sorts before every parsed one.
// Order versions with Compare: == on two Versions tells whether they are the same parse, not
// whether they are equal versions ("1.0" and "1.0.0" are equal PyPI versions).
type Version struct {
	scheme *Scheme
	raw    string
	key    key
}

// Compare returns -1, 0 or +1 as v sorts before, with or after w in their scheme.
//
// Comparing versions of different schemes means nothing; so that Compare stays a total order
// (and sorting never misbehaves) such versions are ordered by scheme, which a matcher that uses
// one scheme per range never sees.
func (v Version) Compare(w Version) int {
	if v.scheme != w.scheme {
		return cmp.Compare(v.scheme.order(), w.scheme.order())
	}
	if v.key == nil {
		return 0
	}
	return v.key.compare(w.key)
}

// String returns the version as it was given to Parse.
func (v Version) String() string { return v.raw }

// Scheme returns the scheme that parsed v, or nil for the zero Version.
func (v Version) Scheme() *Scheme { return v.scheme }

func (s *Scheme) order() int {
	if s == nil {
		return -1
	}
	return s.rank
}

// The schemes, in the order Version.Compare puts them when they are mixed.
var (
	dpkgScheme      = &Scheme{name: "dpkg", rank: 0, parse: parseDpkg}
	apkScheme       = &Scheme{name: "apk", rank: 1, parse: parseAPK}
	rpmScheme       = &Scheme{name: "rpm", rank: 2, parse: parseRPM}
	pep440Scheme    = &Scheme{name: "pep440", rank: 3, parse: parsePEP440}
	mavenScheme     = &Scheme{name: "maven", rank: 4, parse: parseMaven}
	npmScheme       = &Scheme{name: "npm", rank: 5, parse: parseNPM}
	goScheme        = &Scheme{name: "go", rank: 6, parse: parseGo}
	gemScheme       = &Scheme{name: "rubygems", rank: 7, parse: parseGem}
	semverScheme    = &Scheme{name: "semver", rank: 8, parse: parseSemVer}
	nugetScheme     = &Scheme{name: "nuget", rank: 9, parse: parseNuGet}
	packagistScheme = &Scheme{name: "packagist", rank: 10, parse: parsePackagist}
)

// ecosystems maps OSV ecosystem names (the part before any ':') to their ECOSYSTEM ordering.
var ecosystems = map[string]*Scheme{
	"Debian": dpkgScheme,
	"Ubuntu": dpkgScheme,

	"Alpine":     apkScheme,
	"Alpaquita":  apkScheme,
	"Chainguard": apkScheme,
	"MinimOS":    apkScheme,
	"Wolfi":      apkScheme,

	"AlmaLinux":   rpmScheme,
	"Mageia":      rpmScheme,
	"openEuler":   rpmScheme,
	"openSUSE":    rpmScheme,
	"Photon OS":   rpmScheme,
	"Red Hat":     rpmScheme,
	"Rocky Linux": rpmScheme,
	"SUSE":        rpmScheme,

	"PyPI":      pep440Scheme,
	"Maven":     mavenScheme,
	"npm":       npmScheme,
	"Go":        goScheme,
	"RubyGems":  gemScheme,
	"crates.io": semverScheme,
	"NuGet":     nugetScheme,
	"Packagist": packagistScheme,
}

// For returns the scheme that orders versions of an OSV ecosystem, for ranges of type
// ECOSYSTEM. A release suffix is ignored: "Debian:12", "Ubuntu:Pro:18.04:LTS" and
// "Red Hat:enterprise_linux:9::appstream" are Debian, Ubuntu and Red Hat. Names are matched
// exactly, as OSV spells them.
func For(ecosystem string) (*Scheme, error) {
	name, _, _ := strings.Cut(ecosystem, ":")
	if s, ok := ecosystems[name]; ok {
		return s, nil
	}
	return nil, fmt.Errorf("choosing a version scheme for ecosystem %s: %w", quote(ecosystem), ErrUnsupported)
}

// ForRange returns the scheme for an OSV range of the given type ("ECOSYSTEM", "SEMVER") in an
// ecosystem. ECOSYSTEM ranges use For. SEMVER ranges use SemVer 2.0 precedence: through the
// ecosystem's own scheme when that already orders by SemVer and reads the ecosystem's
// spelling (Go's "v1.2.3", npm's "v1.2.3"), otherwise through strict SemVer, which reads
// versions without a "v" as OSV writes them. GIT ranges name commits, not versions, and are
// ErrUnsupported.
func ForRange(rangeType, ecosystem string) (*Scheme, error) {
	switch rangeType {
	case "ECOSYSTEM":
		return For(ecosystem)
	case "SEMVER":
		if s, err := For(ecosystem); err == nil && (s == goScheme || s == npmScheme || s == semverScheme) {
			return s, nil
		}
		return semverScheme, nil
	}
	return nil, fmt.Errorf("choosing a version scheme for range type %s: %w", quote(rangeType), ErrUnsupported)
}

// checkText rejects what no scheme accepts: the empty string, anything longer than MaxLen, and
// bytes outside printable ASCII (spaces and control characters included). Every ecosystem's
// versions are ASCII, and the libraries below index strings by byte.
func checkText(s string) error {
	if s == "" {
		return errors.New("empty")
	}
	if len(s) > MaxLen {
		return fmt.Errorf("longer than %d bytes", MaxLen)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c > '~' {
			return fmt.Errorf("byte 0x%02x at offset %d is not printable ASCII", c, i)
		}
	}
	return nil
}

// quote renders untrusted input for an error message, shortened if it is long.
func quote(s string) string {
	const max = 64
	if len(s) > max {
		return fmt.Sprintf("%q... (%d bytes)", s[:max], len(s))
	}
	return fmt.Sprintf("%q", s)
}

// safely runs f, turning a panic inside a third-party parser into an error.
func safely(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("version library panicked: %v", r)
		}
	}()
	return f()
}

// isDigit reports whether c is an ASCII digit.
func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// isAlpha reports whether c is an ASCII letter.
func isAlpha(c byte) bool { return 'A' <= c&^0x20 && c&^0x20 <= 'Z' }

// allDigits reports whether s is one or more ASCII digits.
func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}

// maxDigits is the longest run of digits accepted where a scheme (or its library) reads
// numbers into 64-bit integers: 18 digits always fit, so no value wraps or saturates.
const maxDigits = 18

// checkDigitRuns rejects a run of more than maxDigits digits.
func checkDigitRuns(s string) error {
	run := 0
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			run = 0
			continue
		}
		if run++; run > maxDigits {
			return fmt.Errorf("a number has more than %d digits", maxDigits)
		}
	}
	return nil
}

// compareDigits orders two runs of ASCII digits by value, however long they are.
func compareDigits(a, b string) int {
	a = strings.TrimLeft(a, "0")
	b = strings.TrimLeft(b, "0")
	if len(a) != len(b) {
		return cmp.Compare(len(a), len(b))
	}
	return strings.Compare(a, b)
}

// sign maps any int to -1, 0 or +1.
func sign(n int) int {
	switch {
	case n < 0:
		return -1
	case n > 0:
		return 1
	}
	return 0
}

// segment is one run of a version that several schemes split into numbers and words: digits
// without leading zeros, or other characters.
type segment struct {
	num   bool
	value string
}

// compare orders segments: a number above a word, numbers by value, words by bytes.
func (a segment) compare(b segment) int {
	switch {
	case a.num != b.num:
		return boolOrder(a.num, b.num)
	case a.num:
		return compareDigits(a.value, b.value)
	}
	return strings.Compare(a.value, b.value)
}
