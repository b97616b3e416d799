package version

import (
	"errors"
	"strings"

	gosemver "golang.org/x/mod/semver"
)

// semverKey is a SemVer 2.0 version (https://semver.org), read strictly and ordered by
// precedence (build metadata ignored) with golang.org/x/mod/semver, in its spelling with a
// "v". Two schemes use it: "semver" for OSV SEMVER ranges and crates.io, which takes exactly
// MAJOR.MINOR.PATCH[-PRE][+BUILD] with no "v" (as OSV writes SEMVER versions), and "npm",
// which also takes the single leading "v" that node-semver's strict parser allows.
//
// x/mod/semver has no regular expressions to compile at start-up, as Masterminds/semver's
// half a millisecond in every moat process did; the tests check it against Masterminds.
type semverKey string

func parseSemVer(s string) (key, error) {
	v := "v" + s
	if !gosemver.IsValid(v) {
		return nil, errors.New("not a SemVer 2.0 version (MAJOR.MINOR.PATCH[-PRE][+BUILD])")
	}
	// x/mod/semver also reads "v1" and "v1.2" as v1.0.0 and v1.2.0; SemVer does not.
	core := v
	if i := strings.IndexAny(v, "-+"); i >= 0 {
		core = v[:i]
	}
	if strings.Count(core, ".") != 2 {
		return nil, errors.New("not a SemVer 2.0 version: MAJOR.MINOR.PATCH needs all three numbers")
	}
	return semverKey(v), nil
}

func parseNPM(s string) (key, error) {
	return parseSemVer(strings.TrimPrefix(s, "v"))
}

func (k semverKey) compare(o key) int { return gosemver.Compare(string(k), string(o.(semverKey))) }

// goKey is a Go module version in golang.org/x/mod/semver's canonical spelling, with the "v".
//
// Go binaries and go.mod files write "v1.2.3"; OSV's Go records write "1.2.3"; both are
// accepted. Pseudo-versions ("v0.0.0-20240101120000-abcdef123456", "v1.2.4-0.2024...") are
// pre-releases and order by their timestamp; "+incompatible" is build metadata and ignored
// ("v2.0.0+incompatible" == "v2.0.0"). The toolchain's own tags, as the Go cataloger
// reports them for "stdlib" ("1.21.5", "go1.21rc2", "1.20"), become the versions OSV uses for
// the standard library ("1.21.0-rc.2", "1.20.0").
type goKey string

func parseGo(s string) (key, error) {
	if v, ok := goModuleVersion(s); ok {
		return goKey(v), nil
	}
	if v, ok := goToolchainVersion(s); ok {
		return goKey(v), nil
	}
	return nil, errors.New("neither a Go module version nor a Go release")
}

// goModuleVersion reads "v1.2.3" or "1.2.3" (and shorter forms "v1", "v1.2").
func goModuleVersion(s string) (string, bool) {
	if !strings.HasPrefix(s, "v") {
		s = "v" + s
	}
	return s, gosemver.IsValid(s)
}

// goToolchainVersion reads a Go release tag, with or without "go": "1.21.5", "1.21rc2",
// "1.9beta1".
func goToolchainVersion(s string) (string, bool) {
	s = strings.TrimPrefix(s, "go")
	end := 0
	for end < len(s) && (isDigit(s[end]) || s[end] == '.') {
		end++
	}
	nums, pre := s[:end], s[end:]
	parts := strings.Split(nums, ".")
	if len(parts) > 3 {
		return "", false
	}
	for len(parts) < 3 {
		parts = append(parts, "0")
	}
	v := "v" + strings.Join(parts, ".")
	if pre != "" {
		label := strings.TrimRight(pre, "0123456789")
		n := pre[len(label):]
		if (label != "alpha" && label != "beta" && label != "rc") || n == "" {
			return "", false
		}
		v += "-" + label + "." + n
	}
	return v, gosemver.IsValid(v)
}

func (k goKey) compare(o key) int {
	p := o.(goKey)
	return guarded(string(k), string(p), func() int { return gosemver.Compare(string(k), string(p)) })
}
