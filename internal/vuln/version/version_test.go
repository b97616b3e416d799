package version

import (
	"errors"
	"strings"
	"testing"
)

// ordered lists versions of one scheme in rising order; each row is a group whose members are
// equal, and every group sorts strictly after the one before it. Every pair, in both
// directions, is checked.
type ordered struct {
	ecosystem string
	groups    [][]string
}

var orderings = []ordered{
	{"Debian:12", [][]string{
		{"0.9"},
		{"1.0~~"},
		{"1.0~~a"},
		{"1.0~"},
		{"1.0", "1.0-0", "0:1.0", "1.00"},
		{"1.0-1"},
		{"1.0-1.1"},
		{"1.0a"},
		{"1.0+"},
		{"1.01-2", "1.1-2"},
		{"1.2~rc1"},
		{"1.2~rc2"},
		{"1.2"},
		{"1.2-3~bpo11+1"},
		{"1.2-3"},
		// Letters sort before other characters: an Ubuntu revision before a Debian update.
		{"1.2-3ubuntu1"},
		{"1.2-3+deb12u1"},
		{"1.2-3+deb12u2"},
		{"1.2-3+deb12u10"},
		{"1.3-1"},
		{"1.99999999999999999999998"},
		{"1.99999999999999999999999"},
		{"1:1.2-1", "01:1.2-1"},
		{"2:0.1"},
	}},
	{"Debian", [][]string{
		{"2.36-9+deb12u4"},
		{"2.36-9+deb12u10"},
	}},
	{"Ubuntu:22.04:LTS", [][]string{
		{"3.0.2-0ubuntu1.9"},
		{"3.0.2-0ubuntu1.10"},
		{"3.0.2-0ubuntu1.10+esm1"},
		{"1:3.0.2-0ubuntu1"},
		// A revision may hold '-' in its upstream part: dpkg splits at the last one.
		{"1:3.0.2-rc1-1"},
	}},
	{"Alpine:v3.19", [][]string{
		{"0.9"},
		{"1"},
		{"1.0"},
		{"1.01"},
		{"1.1"},
		{"1.2.3_alpha"},
		{"1.2.3_beta"},
		{"1.2.3_pre"},
		{"1.2.3_rc"},
		{"1.2.3_rc1"},
		{"1.2.3_rc2"},
		{"1.2.3_rc2-r1"},
		{"1.2.3"},
		{"1.2.3-r0"},
		{"1.2.3-r1"},
		{"1.2.3-r9"},
		{"1.2.3-r10"},
		{"1.2.3_cvs"},
		{"1.2.3_git20230101"},
		{"1.2.3_p1"},
		{"1.2.3_p1-r2"},
		{"1.2.3_p2"},
		{"1.2.3a"},
		{"1.2.3b"},
		{"1.2.4"},
		{"6.5-r3"},
		{"6.5_p20250503-r0"},
	}},
	{"Wolfi", [][]string{{"3.0.13-r0"}, {"3.0.13-r1"}, {"3.1.0-r0"}}},
	{"Red Hat:enterprise_linux:9::appstream", [][]string{
		{"1.0~rc1"},
		{"1.0~rc2"},
		{"1.0", "0:1.0", "1_0", "1.00"},
		{"1.0-1"},
		{"1.0-1.el8"},
		{"1.0-1.el9"},
		{"1.0^"},
		{"1.0^post1"},
		{"1.0^post2"},
		{"1.0a"},
		{"1.0.1"},
		{"1.10"},
		{"1.123456789012345678901234567889"},
		{"1.123456789012345678901234567890"},
		{"2.0"},
		{"1:1.0"},
	}},
	{"Rocky Linux:8", [][]string{
		{"2.28-225.el8"},
		{"2.28-225.el8_5"},
		{"2.28-225.el8_5.1"},
		{"2.28-225.el8_6"},
		{"5.14.0-362.8.1.el9_3"},
		{"5.14.0-362.13.1.el9_3"},
	}},
	{"SUSE:Linux Enterprise Server 15 SP5", [][]string{{"1.1.1l-150400.7.28.1"}, {"1.1.1l-150400.7.60.2"}}},
	{"PyPI", [][]string{
		{"0.9"},
		{"1.0.dev1", "1.0-dev1", "1.0dev1"},
		{"1.0a1.dev1"},
		{"1.0a1", "1.0.alpha1", "1.0-a-1", "1.0A1"},
		{"1.0a1.post1"},
		{"1.0a2"},
		{"1.0b1", "1.0beta1"},
		{"1.0rc1", "1.0c1", "1.0-RC-1", "1.0pre1", "1.0preview1"},
		{"1.0", "1.0.0", "v1.0", "1"},
		{"1.0+abc"},
		{"1.0+abc.1"},
		{"1.0+1"},
		{"1.0+1.2", "1.0+1-2", "1.0+1_2"},
		{"1.0+1.10"},
		{"1.0.post1.dev1"},
		{"1.0.post1", "1.0-1", "1.0post1", "1.0.r1", "1.0-rev1"},
		{"1.0.post2"},
		{"1.1.dev1"},
		{"1.1"},
		{"2.0"},
		{"1!0.1", "1!0.1.0"},
		{"1!1.0"},
	}},
	{"Maven", [][]string{
		{"1.0-alpha", "1.0-ALPHA"},
		{"1.0-alpha1", "1.0-a1"},
		{"1.0-beta", "1.0-BETA"},
		{"1.0-milestone"},
		{"1.0-rc", "1.0-cr"},
		{"1.0-rc1", "1.0-cr1"},
		{"1.0-snapshot", "1.0-SNAPSHOT"},
		{"1", "1.0", "1.0.0", "1.0-ga", "1.0-final", "1.0.0.RELEASE", "1.0.0.Final"},
		{"1.0-sp"},
		{"1.0-sp1"},
		{"1.0-xyz"},
		{"1.0-1"},
		{"1.0.1"},
		{"1.9"},
		{"1.10"},
		{"2.12.7"},
		{"2.12.7.1"},
	}},
	{"npm", [][]string{
		{"1.0.0-0"},
		{"1.0.0-alpha"},
		{"1.0.0-alpha.1"},
		{"1.0.0-alpha.beta"},
		{"1.0.0-beta"},
		{"1.0.0-beta.2"},
		{"1.0.0-beta.11"},
		{"1.0.0-rc.1"},
		{"1.0.0", "v1.0.0", "1.0.0+build.5"},
		{"1.0.1"},
		{"1.10.0"},
	}},
	{"Go", [][]string{
		{"v0.0.0-20200101000000-abcdef123456", "0.0.0-20200101000000-abcdef123456"},
		{"v0.0.0-20210101000000-123456abcdef"},
		{"v0.1.0"},
		{"v1.2.3", "1.2.3"},
		{"v1.2.4-0.20200101000000-abcdef123456"},
		{"v1.2.4-pre"},
		{"v1.2.4-pre.0.20200101000000-abcdef123456"},
		{"v1.2.4"},
		{"v1.20", "1.20.0", "go1.20"},
		{"1.21.0-0"},
		{"go1.21rc2", "1.21rc2", "1.21.0-rc.2"},
		{"1.21.0", "go1.21.0"},
		{"1.21.10"},
		{"1.22.3"},
		{"v2.0.0+incompatible", "2.0.0", "v2.0.0"},
		{"v2.1.0+incompatible"},
	}},
	{"RubyGems", [][]string{
		{"0.9"},
		// A missing segment is 0, and a number sorts after letters.
		{"1.0.a.b"},
		{"1.0.a", "1.0.a0", "1.0.0.a", "1.0a"},
		{"1.0.a1"},
		{"1.0.ab"},
		{"1.0.b"},
		{"1.0.beta"},
		{"1.0.beta.2", "1.0.beta2"},
		{"1.0.beta.10"},
		{"1.0.pre"},
		{"1.0-1", "1.0.pre.1"},
		{"1.0.preview"},
		{"1.0.rc1"},
		{"1.0", "1.0.0", "1", "01.0"},
		{"1.0.1"},
		{"1.9"},
		{"1.10"},
		{"1.99999999999999999999998"},
		{"1.99999999999999999999999"},
	}},
	{"crates.io", [][]string{
		{"0.0.1"},
		{"1.0.0-alpha"},
		{"1.0.0-alpha.1"},
		{"1.0.0-alpha.beta"},
		{"1.0.0-beta"},
		{"1.0.0-beta.2"},
		{"1.0.0-beta.11"},
		{"1.0.0-rc.1"},
		{"1.0.0", "1.0.0+20130313144700"},
		{"2.0.0"},
	}},
	{"NuGet", [][]string{
		{"1.0.0-alpha"},
		{"1.0.0-beta", "1.0.0-Beta", "1.0.0-BETA+meta"},
		{"1.0.0-beta.2"},
		{"1.0.0-beta.10"},
		{"1.0.0-beta10"},
		{"1.0.0-beta2"},
		{"1", "1.0", "1.0.0", "1.0.0.0", "1.0.0+abc"},
		{"1.0.0.1"},
		{"1.0.1"},
		{"4.3.0.1"},
		{"4.3.1"},
	}},
	{"Packagist", [][]string{
		{"1.0.0-dev", "1.0.0.dev", "1.0dev"},
		{"1.0.0-alpha1-dev"},
		{"1.0.0-alpha1", "1.0.0-a1", "1.0.0alpha1"},
		{"1.0.0-beta", "1.0.0-b"},
		{"1.0.0-beta1-dev"},
		{"1.0.0-beta1", "1.0.0-beta.1", "1.0.0_beta1", "1.0.0-BETA1"},
		{"1.0.0-beta1.2"},
		{"1.0.0-beta2"},
		{"1.0.0-beta10"},
		{"1.0.0-RC1", "1.0.0-rc1", "1.0.0RC1", "1.0.0.RC1"},
		{"1.0.0", "v1.0.0", "1.0", "1", "1.0.0.0", "1.0.0-stable", "V1.0.0+build"},
		{"1.0.0-patch1", "1.0.0-pl1", "1.0.0-p1"},
		{"1.0.0.1"},
		{"1.0.1"},
		{"2.0.0"},
	}},
}

func TestOrder(t *testing.T) {
	for _, o := range orderings {
		s, err := For(o.ecosystem)
		if err != nil {
			t.Fatal(err)
		}
		var parsed [][]Version
		for _, g := range o.groups {
			var pg []Version
			for _, v := range g {
				p, err := s.Parse(v)
				if err != nil {
					t.Errorf("%s: %v", o.ecosystem, err)
					continue
				}
				if p.String() != v || p.Scheme() != s {
					t.Errorf("%s: Parse(%q) gave %q of %s", o.ecosystem, v, p.String(), p.Scheme())
				}
				pg = append(pg, p)
			}
			parsed = append(parsed, pg)
		}
		for i, gi := range parsed {
			for j, gj := range parsed {
				want := sign(i - j)
				for _, a := range gi {
					for _, b := range gj {
						if got := a.Compare(b); got != want {
							t.Errorf("%s: %q vs %q: got %d, want %d", s.Name(), a, b, got, want)
						}
					}
				}
			}
		}
	}
}

var invalid = map[string][]string{
	"Debian": {"", " 1.0", "1.0 ", "a1.0", "1.0-", "1.0-1-", ":1.0", "x:1.0", "+1:1.0", "-1:1.0", "1:",
		"1.0_1", "1.0-a_b", "1.0-a:b", "1.0\x00", "1.0é", "1.0$", strings.Repeat("1", MaxLen+1)},
	"Alpine": {"", "1.2.3-r", "1.2.3-x1", "1.2.3-r1.2", "1.2.3_foo", "1.2.3A", "1.2.3-r1_p1", "1.2.3-r-r1",
		"1.2.3ab", "1.1234567890123456789", "1.2.3 "},
	"Red Hat": {"", "1:2:3", "a:1.0", ":1.0", "1.0-1-1", "1.0-", "-1", "99999999999:1.0", "...", "1.0-.",
		"1.0 -1"},
	"PyPI": {"", "abc", "1.0+", "1..0", "1.0-beta-gamma", "1.0.post1.post2", "1.0+ü", "1.0 ",
		"1.99999999999999999999"},
	"Maven": {"", "...", "-", "1.0 beta", "1.0\tbeta", "1.1234567890123456789", "1.0ß"},
	"npm": {"", "1.2", "01.2.3", "1.2.3-01", "=1.2.3", "vv1.2.3", "1.2.3.4", "latest", "^1.2.3", "1.2.3-",
		"1.2.3+", "1.2.3 - 2.0.0"},
	"Go": {"", "(devel)", "1.2.3.4", "v01.2.3", "go1.21rc", "go1.21rc01", "go", "latest", "v1.2.3-",
		"master", "1.21beta", "go1.2.3.4"},
	"RubyGems":  {"", "a", "1.0..0", "1.0 beta", "=1.0", "1.0_1", "1.0-", ".1", "1.", "-1"},
	"crates.io": {"", "v1.2.3", "1.2", "0", "1.2.3-", "1.2.3-01", "1.2.3.4"},
	"NuGet": {"", "1.0.0.0.0", "v1.0.0", "1.0.0-", "1.0.0-be_ta", "1..0", "a.b", "1.0.0+", "1.0.0-a..b",
		"1.12345678901234567890"},
	"Packagist": {"", "dev-master", "dev-1.x", "1.x-dev", "1.0.0.0.0", "1.0.0-foo", "latest", "1.0-",
		"1.0.0-beta_1", "1.0.0-beta1-dev-dev", "1.", "v", "1.0.0-stablex"},
}

func TestInvalid(t *testing.T) {
	for eco, vs := range invalid {
		s, err := For(eco)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range vs {
			p, err := s.Parse(v)
			if err == nil {
				t.Errorf("%s: Parse(%q) = %q, want an error", eco, v, p)
				continue
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("%s: Parse(%q) error %v does not wrap ErrInvalid", eco, v, err)
			}
			if !strings.HasPrefix(err.Error(), "parsing "+s.Name()+" version ") {
				t.Errorf("%s: Parse(%q) error %q does not say what was being done", eco, v, err)
			}
		}
	}
}

func TestFor(t *testing.T) {
	for eco, want := range map[string]string{
		"Debian": "dpkg", "Debian:12": "dpkg", "Ubuntu:Pro:18.04:LTS": "dpkg",
		"Alpine:v3.19": "apk", "Alpaquita:stream": "apk", "Chainguard": "apk", "MinimOS": "apk", "Wolfi": "apk",
		"AlmaLinux:9": "rpm", "Mageia:9": "rpm", "openEuler:22.03-LTS": "rpm",
		"openSUSE:Leap 15.5": "rpm", "Photon OS:5.0": "rpm", "Red Hat:enterprise_linux:9::appstream": "rpm",
		"Rocky Linux:9": "rpm", "SUSE:Linux Enterprise Server 15 SP5": "rpm",
		"PyPI": "pep440", "Maven": "maven", "Maven:https://maven.google.com": "maven", "npm": "npm",
		"Go": "go", "RubyGems": "rubygems", "crates.io": "semver", "NuGet": "nuget", "Packagist": "packagist",
	} {
		s, err := For(eco)
		if err != nil || s.Name() != want {
			t.Errorf("For(%q) = %v, %v; want %s", eco, s, err, want)
		}
	}
	for _, eco := range []string{"", "debian", "GIT", "SEMVER", "Linux", "Android", "OSS-Fuzz", "Hex", "Pub",
		"CRAN", "Hackage", "GitHub Actions", "Bitnami", "SwiftURL", ":Debian"} {
		s, err := For(eco)
		if !errors.Is(err, ErrUnsupported) {
			t.Errorf("For(%q) = %v, %v; want ErrUnsupported", eco, s, err)
		}
	}
}

func TestForRange(t *testing.T) {
	for _, c := range []struct{ typ, eco, want string }{
		{"ECOSYSTEM", "Debian:11", "dpkg"},
		{"ECOSYSTEM", "PyPI", "pep440"},
		{"SEMVER", "Go", "go"},
		{"SEMVER", "npm", "npm"},
		{"SEMVER", "crates.io", "semver"},
		{"SEMVER", "Hex", "semver"},
		{"SEMVER", "", "semver"},
		{"SEMVER", "PyPI", "semver"},
	} {
		s, err := ForRange(c.typ, c.eco)
		if err != nil || s.Name() != c.want {
			t.Errorf("ForRange(%q, %q) = %v, %v; want %s", c.typ, c.eco, s, err, c.want)
		}
	}
	for _, c := range [][2]string{{"GIT", "Go"}, {"", "Go"}, {"semver", "Go"}, {"ECOSYSTEM", "Hex"}} {
		if s, err := ForRange(c[0], c[1]); !errors.Is(err, ErrUnsupported) {
			t.Errorf("ForRange(%q, %q) = %v, %v; want ErrUnsupported", c[0], c[1], s, err)
		}
	}
	// Go's SEMVER ranges are written without "v"; Go binaries report it.
	s, _ := ForRange("SEMVER", "Go")
	fixed, _ := s.Parse("1.2.4")
	installed, _ := s.Parse("v1.2.4-0.20240101000000-abcdef123456")
	if installed.Compare(fixed) != -1 {
		t.Errorf("pseudo-version before 1.2.4 should sort before it")
	}
}

func TestMixedSchemes(t *testing.T) {
	deb, _ := For("Debian")
	apk, _ := For("Alpine")
	a, _ := deb.Parse("1.0")
	b, _ := apk.Parse("1.0")
	var zero Version
	if a.Compare(b) != -b.Compare(a) || a.Compare(b) == 0 {
		t.Errorf("versions of different schemes must order consistently and never equal")
	}
	if zero.Compare(a) != -1 || a.Compare(zero) != 1 || zero.Compare(zero) != 0 {
		t.Errorf("the zero Version must sort first")
	}
	if zero.String() != "" || zero.Scheme() != nil {
		t.Errorf("zero Version: %q %v", zero, zero.Scheme())
	}
}

func TestHandMadeScheme(t *testing.T) {
	var nilScheme *Scheme
	for _, s := range []*Scheme{nilScheme, {}} {
		if _, err := s.Parse("1.0"); !errors.Is(err, ErrUnsupported) {
			t.Errorf("Parse with a Scheme not from For: %v, want ErrUnsupported", err)
		}
	}
	if nilScheme.Name() != "" {
		t.Errorf("nil Scheme has name %q", nilScheme.Name())
	}
}

func TestLongInputErrorIsShort(t *testing.T) {
	s, _ := For("npm")
	_, err := s.Parse(strings.Repeat("9", 100000))
	if err == nil || len(err.Error()) > 200 {
		t.Errorf("error for a long input should be short, got %d bytes", len(err.Error()))
	}
}
