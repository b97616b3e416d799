package match

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/moatsec/moat/internal/sbom"
	"github.com/moatsec/moat/internal/vuln"
	"github.com/moatsec/moat/internal/vuln/version"
)

func intro(v string) vuln.Event { return vuln.Event{Introduced: v} }
func fixed(v string) vuln.Event { return vuln.Event{Fixed: v} }
func last(v string) vuln.Event  { return vuln.Event{LastAffected: v} }
func limit(v string) vuln.Event { return vuln.Event{Limit: v} }

// TestRanges checks OSV range evaluation on PyPI versions, one affected entry per case.
func TestRanges(t *testing.T) {
	tests := []struct {
		name     string
		ranges   [][]vuln.Event
		versions []string
		// affected maps installed versions to the fixed versions expected, or nil when the
		// version is not affected.
		affected map[string][]string
		// fixStatus is expected of every affected version.
		fixStatus vuln.FixStatus
	}{{
		name:   "introduced 0",
		ranges: [][]vuln.Event{{intro("0"), fixed("1.5")}},
		affected: map[string][]string{
			"0.0.1": {"1.5"}, "1.4.99": {"1.5"}, "1.5rc1": {"1.5"}, "1.5": nil, "1.5.0": nil, "1.5.post1": nil, "2.0": nil,
		},
		fixStatus: vuln.Fixed,
	}, {
		name:   "unsorted events, several intervals",
		ranges: [][]vuln.Event{{fixed("3.2"), intro("3.0"), fixed("1.5"), intro("1.0")}},
		affected: map[string][]string{
			"0.9": nil, "1.0": {"1.5", "3.2"}, "1.4": {"1.5", "3.2"}, "1.5": nil, "2.9": nil, "3.0": {"3.2"}, "3.1.9": {"3.2"}, "3.2": nil,
		},
		fixStatus: vuln.Fixed,
	}, {
		name:      "last_affected is inclusive",
		ranges:    [][]vuln.Event{{intro("1.0"), last("1.5")}},
		affected:  map[string][]string{"0.9": nil, "1.0": {}, "1.5": {}, "1.5.0": {}, "1.5.0.1": nil, "1.6": nil},
		fixStatus: vuln.NotFixed,
	}, {
		name:      "limit bounds the range",
		ranges:    [][]vuln.Event{{intro("0"), limit("2.0")}},
		affected:  map[string][]string{"1.0": {}, "1.9.9": {}, "2.0": nil, "3.0": nil},
		fixStatus: vuln.NotFixed,
	}, {
		name:     "limit with a reintroduction",
		ranges:   [][]vuln.Event{{intro("0"), fixed("1.0"), intro("1.5"), limit("2.0"), limit("1.8")}},
		affected: map[string][]string{"0.5": {"1.0"}, "1.2": nil, "1.6": {}, "1.9": {}, "2.0": nil},
	}, {
		name:     "no introduced event is from the beginning",
		ranges:   [][]vuln.Event{{fixed("1.0")}},
		affected: map[string][]string{"0.1": {"1.0"}, "1.0": nil},
	}, {
		name:     "two ranges, fixed versions of the matching ones",
		ranges:   [][]vuln.Event{{intro("1.0"), fixed("1.2")}, {intro("1.1"), fixed("1.3")}},
		affected: map[string][]string{"1.0": {"1.2"}, "1.1": {"1.2", "1.3"}, "1.2": {"1.3"}, "1.3": nil},
	}, {
		name:      "versions list: string and PEP 440 equality",
		versions:  []string{"0.5", "0.8.0-alpha2", "not a version"},
		affected:  map[string][]string{"0.5": {}, "0.5.0": {}, "0.8.0a2": {}, "0.8.0": nil, "0.6": nil},
		fixStatus: vuln.FixUnknown,
	}, {
		name:     "versions list beside a range",
		ranges:   [][]vuln.Event{{intro("2.0"), fixed("2.1")}},
		versions: []string{"1.0"},
		affected: map[string][]string{"1.0": {}, "2.0": {"2.1"}, "1.1": nil},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			af := vuln.Affected{Ecosystem: "PyPI", Name: "pkg", Versions: tc.versions}
			for _, evs := range tc.ranges {
				af.Ranges = append(af.Ranges, vuln.Range{Type: "ECOSYSTEM", Events: evs})
			}
			src := vuln.NewMemory(&vuln.Advisory{ID: "PYSEC-0000-1", Affected: []vuln.Affected{af}})
			for ver, want := range tc.affected {
				inv := &sbom.Inventory{Packages: []sbom.Package{lang(sbom.TypePyPI, "pkg", ver)}}
				res, err := Match(context.Background(), inv, src, Options{})
				if err != nil {
					t.Fatal(err)
				}
				if len(res.Warnings) != 0 {
					t.Errorf("%s: warnings %v", ver, res.Warnings)
				}
				switch {
				case want == nil && len(res.Findings) != 0:
					t.Errorf("%s: affected (%s), want not", ver, lines(res.Findings))
				case want != nil && len(res.Findings) != 1:
					t.Errorf("%s: %d findings, want 1", ver, len(res.Findings))
				case want != nil:
					f := res.Findings[0]
					if !slices.Equal(f.FixedVersions, want) && (len(want) != 0 || len(f.FixedVersions) != 0) {
						t.Errorf("%s: fixed versions %q, want %q", ver, f.FixedVersions, want)
					}
					if tc.fixStatus != "" || len(want) == 0 && len(tc.ranges) == 0 {
						if f.FixStatus != tc.fixStatus {
							t.Errorf("%s: fix status %q, want %q", ver, f.FixStatus, tc.fixStatus)
						}
					}
				}
			}
		})
	}
}

func TestUncomparable(t *testing.T) {
	src := vuln.NewMemory(
		&vuln.Advisory{ID: "GO-0000-1", Aliases: []string{"CVE-2000-1"}, Affected: []vuln.Affected{{Ecosystem: "Go", Name: "example.com/mod",
			Ranges: []vuln.Range{{Type: "SEMVER", Events: []vuln.Event{intro("0"), fixed("1.2.0")}}}}}},
		&vuln.Advisory{ID: "GO-0000-2", Affected: []vuln.Affected{{Ecosystem: "Go", Name: "example.com/mod",
			Ranges:   []vuln.Range{{Type: "SEMVER", Events: []vuln.Event{intro("0"), fixed("1.0.0")}}},
			Versions: []string{"(devel)"}}}},
		&vuln.Advisory{ID: "GO-0000-3", Affected: []vuln.Affected{{Ecosystem: "Go", Name: "example.com/mod",
			Ranges: []vuln.Range{{Type: "SEMVER", Events: []vuln.Event{intro("0"), fixed("not-a-version")}}}}}},
	)
	inv := &sbom.Inventory{Packages: []sbom.Package{
		lang(sbom.TypeGolang, "example.com/mod", "(devel)"),
		lang(sbom.TypeGolang, "example.com/mod", "(devel)"),
		lang(sbom.TypeGolang, "example.com/other", "(devel)"),
		lang(sbom.TypeGolang, "example.com/mod", "v1.1.0"),
	}}
	res, err := Match(context.Background(), inv, src, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		// An exact string in a versions list matches whatever the scheme thinks of it.
		"example.com/mod@(devel) GO-0000-2 aliases= adv=GO-0000-2 unknown() fixed= not-fixed",
		"example.com/mod@(devel) GO-0000-2 aliases= adv=GO-0000-2 unknown() fixed= not-fixed",
		"example.com/mod@v1.1.0 CVE-2000-1 aliases=GO-0000-1 adv=GO-0000-1 unknown() fixed=1.2.0 fixed",
	}
	if got := lines(res.Findings); !slices.Equal(got, want) {
		t.Errorf("findings:\n got  %s\n want %s", strings.Join(got, "\n      "), strings.Join(want, "\n      "))
	}
	var got []string
	for _, w := range res.Warnings {
		got = append(got, string(w.Kind)+" "+w.Package+" "+strings.Join(w.Advisories, ","))
	}
	wantWarn := []string{
		"version example.com/mod@(devel) GO-0000-1,GO-0000-3",
		"range example.com/mod GO-0000-3",
	}
	if !slices.Equal(got, wantWarn) {
		t.Errorf("warnings:\n got  %q\n want %q", got, wantWarn)
	}
	st := res.Stats[0]
	if st.Packages != 4 || st.Unchecked != 3 || st.SkippedRanges != 1 || st.Findings != 3 {
		t.Errorf("stats = %+v", st)
	}
}

// TestDigitKey checks the property the versions-list shortcut relies on: versions a scheme
// holds equal have the same digitKey.
func TestDigitKey(t *testing.T) {
	equal := []struct {
		eco  string
		a, b string
	}{
		{"PyPI", "1.0", "1.0.0"},
		{"PyPI", "0.8.0-alpha2", "0.8.0a2"},
		{"PyPI", "1.0-1", "1.0.post1"},
		{"PyPI", "1.0.post", "1.0.post0"},
		{"PyPI", "v01.02", "1.2"},
		{"PyPI", "0!1.0rc1", "1.0c1"},
		{"PyPI", "1.0+Ubuntu-01", "1.0+ubuntu.1"},
		{"Debian:12", "0:1.2-3", "1.2-3"},
		{"Debian:12", "1.02-3", "1.2-3"},
		{"Debian:12", "1.2", "1.2-0"},
		{"Red Hat:enterprise_linux:9", "0:1.0-1.el9", "1.0-1.el9"},
		{"Red Hat:enterprise_linux:9", "1.0+1", "1.0.1"},
		{"Red Hat:enterprise_linux:9", "1.00-01", "1.0-1"},
		{"Maven", "1.0.0", "1"},
		{"Maven", "1.0-alpha-1", "1.0-a1"},
		{"Maven", "1-ga", "1.0"},
		{"npm", "v1.2.3", "1.2.3+build.5"},
		{"Go", "v1.2.3+incompatible", "1.2.3"},
		{"Go", "1.21rc2", "v1.21.0-rc.2"},
		{"Go", "go1.20", "1.20.0"},
		{"crates.io", "1.2.3+build9", "1.2.3"},
		{"NuGet", "1.0.0.0", "1.0"},
		{"NuGet", "1.0.0-Beta.1+meta7", "1.0.0-beta.1"},
		{"RubyGems", "1.0.0", "1.0"},
		{"Packagist", "v1.0.0-RC1", "1.0.0.0rc1"},
		{"Packagist", "1.0+build5", "1.0.0"},
	}
	for _, tc := range equal {
		s, err := version.For(tc.eco)
		if err != nil {
			t.Fatal(err)
		}
		a, errA := s.Parse(tc.a)
		b, errB := s.Parse(tc.b)
		if errA != nil || errB != nil || a.Compare(b) != 0 {
			t.Errorf("%s: %q and %q are not equal versions (%v, %v)", tc.eco, tc.a, tc.b, errA, errB)
			continue
		}
		if plus := ignoresBuild(s); digitKey(tc.a, plus) != digitKey(tc.b, plus) {
			t.Errorf("%s: %q and %q are equal but their keys differ", tc.eco, tc.a, tc.b)
		}
	}
	if digitKey("1.10", false) == digitKey("1.1", false) || digitKey("2.0", false) == digitKey("1.0", false) {
		t.Error("keys do not tell numbers apart")
	}
}
