package match

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/ossf/osv-schema/bindings/go/osvschema"

	"github.com/moatsec/moat/internal/sbom"
	"github.com/moatsec/moat/internal/vuln"
	"github.com/moatsec/moat/internal/vuln/osv"
	"github.com/moatsec/moat/internal/vuln/version"
)

// sharedData holds the real OSV exports, checked out beside the repository.
var sharedData = filepath.Join("..", "..", "..", "..", "shared", "vulndata", "osv")

// realDB is the Go and PyPI databases in a Memory, with a sample version of every package they
// name (a fixed version from one of its records), for the benchmark.
type realDB struct {
	src      *vuln.Memory
	packages []sbom.Package
}

var (
	realOnce sync.Once
	real     *realDB
	realErr  error
)

func loadReal(tb testing.TB) *realDB {
	tb.Helper()
	if testing.Short() {
		tb.Skip("loads the real Go and PyPI databases")
	}
	realOnce.Do(func() {
		db := &realDB{src: vuln.NewMemory()}
		sample := map[string]sbom.Package{}
		for _, eco := range []string{"Go", "PyPI"} {
			f, err := os.Open(filepath.Join(sharedData, eco, "all.zip"))
			if err != nil {
				realErr = fmt.Errorf("the real OSV data is missing (shared/vulndata must be checked out beside the repository): %w", err)
				return
			}
			st, err := f.Stat()
			if err != nil {
				realErr = err
				return
			}
			_, err = osv.ReadZip(context.Background(), f, st.Size(), func(_ string, v *osvschema.Vulnerability) error {
				a := vuln.FromOSV(v, eco)
				db.src.Add(a)
				for _, af := range a.Affected {
					k := af.Ecosystem + "\x00" + af.Name
					if _, ok := sample[k]; ok || af.Name == "stdlib" || af.Name == "toolchain" {
						continue
					}
					for _, r := range af.Ranges {
						for _, e := range r.Events {
							if e.Fixed == "" {
								continue
							}
							p := sbom.Package{Name: af.Name, Version: e.Fixed, Type: sbom.TypePyPI}
							if eco == "Go" {
								p.Type, p.Version = sbom.TypeGolang, "v"+e.Fixed
							}
							sample[k] = p
						}
					}
				}
				return nil
			})
			f.Close()
			if err != nil {
				realErr = err
				return
			}
		}
		keys := make([]string, 0, len(sample))
		for k := range sample {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			db.packages = append(db.packages, sample[k])
		}
		real = db
	})
	if realErr != nil {
		tb.Fatal(realErr)
	}
	return real
}

func ids(fs []vuln.Finding, pkg, ver string) []string {
	var out []string
	for _, f := range fs {
		if f.Package.Name == pkg && f.Package.Version == ver {
			out = append(out, f.ID)
		}
	}
	slices.Sort(out)
	return out
}

func TestMatchRealData(t *testing.T) {
	db := loadReal(t)
	inv := &sbom.Inventory{Packages: []sbom.Package{
		lang(sbom.TypeGolang, "golang.org/x/text", "v0.3.7"),
		lang(sbom.TypeGolang, "gopkg.in/yaml.v3", "v3.0.0-20200313102051-9f266ea9e77c"),
		lang(sbom.TypeGolang, "stdlib", "1.20.0"),
		lang(sbom.TypeGolang, "github.com/gorilla/sessions", "v1.2.1"),
		lang(sbom.TypePyPI, "requests", "2.19.0"),
		lang(sbom.TypePyPI, "PyYAML", "5.3"),
		lang(sbom.TypePyPI, "Jinja2", "2.10"),
		lang(sbom.TypePyPI, "py", "1.11.0"),
		lang(sbom.TypePyPI, "gratient", "0.5"),
		lang(sbom.TypePyPI, "gratient", "0.5.0"),
		lang(sbom.TypePyPI, "flask_caching", "1.10.1"),
		lang(sbom.TypePyPI, "apache-atlas", "0.8.0"),
		// Clean: the latest versions the databases know.
		lang(sbom.TypeGolang, "golang.org/x/text", "v0.39.0"),
		lang(sbom.TypeGolang, "gopkg.in/yaml.v3", "v3.0.1"),
		lang(sbom.TypePyPI, "requests", "2.32.3"),
		lang(sbom.TypePyPI, "pyyaml", "6.0.2"),
		lang(sbom.TypePyPI, "jinja2", "3.1.6"),
		lang(sbom.TypePyPI, "gratient", "0.6"),
		lang(sbom.TypePyPI, "no-such-package-anywhere", "1.0"),
		// Owned by an OS package: left to the distribution.
		{Name: "PyYAML", Version: "5.3", Type: sbom.TypePyPI, OwnedBy: "deb:python3-yaml"},
		// Versions that cannot be compared.
		lang(sbom.TypeGolang, "golang.org/x/text", "(devel)"),
		lang(sbom.TypePyPI, "requests", "2.19.0 final"),
	}}
	res, err := Match(context.Background(), inv, db.src, Options{})
	if err != nil {
		t.Fatal(err)
	}
	fs := res.Findings

	var text *vuln.Finding
	for i := range fs {
		if fs[i].ID == "CVE-2022-32149" {
			text = &fs[i]
		}
	}
	if text == nil {
		t.Fatalf("no CVE-2022-32149 in %s", strings.Join(lines(fs), "\n"))
	}
	if !slices.Equal(text.Aliases, []string{"GHSA-69ch-w2m2-3vjp", "GO-2022-1059"}) || !slices.Equal(text.Advisories, []string{"GO-2022-1059"}) ||
		!slices.Equal(text.FixedVersions, []string{"0.3.8"}) || text.FixStatus != vuln.Fixed || text.Package.Version != "v0.3.7" {
		t.Errorf("x/text finding: %s", line(*text))
	}
	if text.Level != vuln.Unknown || text.SeveritySource != "" {
		t.Errorf("the Go database rates nothing, yet %s", line(*text))
	}

	exact := []struct {
		pkg, ver string
		want     []string
	}{
		{"golang.org/x/text", "v0.3.7", []string{"CVE-2022-32149", "CVE-2026-56852"}},
		{"gopkg.in/yaml.v3", "v3.0.0-20200313102051-9f266ea9e77c", []string{"CVE-2022-28948"}},
		{"github.com/gorilla/sessions", "v1.2.1", nil}, // GO-2024-2730 is withdrawn
		{"requests", "2.19.0", []string{"CVE-2018-18074", "CVE-2023-32681"}},
		{"PyYAML", "5.3", []string{"CVE-2020-14343", "CVE-2020-1747"}},
		{"Jinja2", "2.10", []string{"CVE-2019-10906", "CVE-2020-28493"}},
		{"py", "1.11.0", []string{"CVE-2022-42969"}}, // last_affected 1.11.0
		{"gratient", "0.5", []string{"PYSEC-2024-1"}},
		{"gratient", "0.5.0", []string{"PYSEC-2024-1"}},
		{"flask_caching", "1.10.1", nil}, // PYSEC-2021-13 is withdrawn
		{"golang.org/x/text", "v0.39.0", nil},
		{"gopkg.in/yaml.v3", "v3.0.1", nil},
		{"requests", "2.32.3", nil},
		{"pyyaml", "6.0.2", nil},
		{"jinja2", "3.1.6", nil},
		{"gratient", "0.6", nil},
		{"no-such-package-anywhere", "1.0", nil},
		{"golang.org/x/text", "(devel)", nil},
		{"requests", "2.19.0 final", nil},
	}
	for _, tc := range exact {
		if got := ids(fs, tc.pkg, tc.ver); !slices.Equal(got, tc.want) {
			t.Errorf("%s %s: %q, want %q", tc.pkg, tc.ver, got, tc.want)
		}
	}
	for _, f := range fs {
		switch {
		case f.Package.Name == "py" && (f.FixStatus != vuln.NotFixed || f.Level != vuln.Unknown):
			t.Errorf("py: %s (the record has last_affected and no severity)", line(f))
		case f.ID == "CVE-2016-8752" && (f.Level != vuln.High || f.Score != 7.5 || f.SeveritySource != "CVSS_V3 vector from PYSEC-2017-105"):
			t.Errorf("apache-atlas: %s, score %v", line(f), f.Score)
		case f.Package.Name == "gratient" && f.FixStatus != vuln.FixUnknown:
			t.Errorf("gratient: %s (a versions list alone says nothing of fixes)", line(f))
		case f.Package.OwnedBy != "":
			t.Errorf("owned package matched: %s", line(f))
		}
	}
	if !slices.Contains(ids(fs, "apache-atlas", "0.8.0"), "CVE-2016-8752") {
		t.Errorf("apache-atlas 0.8.0: %q", ids(fs, "apache-atlas", "0.8.0"))
	}
	if res.Owned != 1 {
		t.Errorf("owned = %d", res.Owned)
	}

	stdlib := ids(fs, "stdlib", "1.20.0")
	if len(stdlib) < 30 {
		t.Errorf("stdlib 1.20.0: %d findings: %q", len(stdlib), stdlib)
	}
	if !slices.Contains(stdlib, "CVE-2023-24536") || !slices.Contains(stdlib, "CVE-2023-45288") {
		t.Errorf("stdlib 1.20.0: %q lacks CVE-2023-24536 (fixed 1.20.3) or CVE-2023-45288 (fixed 1.21.9)", stdlib)
	}
	seen := map[string]bool{}
	for _, f := range fs {
		k := f.Package.Name + "@" + f.Package.Version + " " + f.ID
		if seen[k] {
			t.Errorf("two findings %s", k)
		}
		seen[k] = true
		for _, a := range f.Aliases {
			if seen[f.Package.Name+"@"+f.Package.Version+" "+a] {
				t.Errorf("alias %s of %s is also a finding", a, k)
			}
		}
	}

	var warned []string
	for _, w := range res.Warnings {
		warned = append(warned, string(w.Kind)+" "+w.Package)
	}
	wantWarned := []string{"version golang.org/x/text@(devel)", "version requests@2.19.0 final"}
	if !slices.Equal(warned, wantWarned) {
		t.Errorf("warnings %q, want %q", res.Warnings, wantWarned)
	}
	if w := res.Warnings[0]; !slices.Equal(w.Advisories, []string{"GO-2020-0015", "GO-2021-0113", "GO-2022-1059", "GO-2026-5970"}) {
		t.Errorf("warning %s names %q", w, w.Advisories)
	}
	var goStats, pypiStats Stats
	for _, st := range res.Stats {
		switch st.Ecosystem {
		case "Go":
			goStats = st
		case "PyPI":
			pypiStats = st
		}
	}
	if goStats.Packages != 7 || goStats.Unchecked != 1 || goStats.Advisories < 40 || pypiStats.Packages != 14 || pypiStats.Unchecked != 1 {
		t.Errorf("stats %+v", res.Stats)
	}
}

// TestMatchDeterministic runs a large inventory twice, its packages in different orders.
func TestMatchDeterministic(t *testing.T) {
	db := loadReal(t)
	inv := benchInventory(db, 300)
	a, err := Match(context.Background(), inv, db.src, Options{})
	if err != nil {
		t.Fatal(err)
	}
	rand.New(rand.NewPCG(3, 4)).Shuffle(len(inv.Packages), func(i, j int) {
		inv.Packages[i], inv.Packages[j] = inv.Packages[j], inv.Packages[i]
	})
	b, err := Match(context.Background(), inv, db.src, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Findings) < 100 || !slices.Equal(lines(a.Findings), lines(b.Findings)) {
		t.Errorf("%d and %d findings, or not in the same order", len(a.Findings), len(b.Findings))
	}
	if !slices.EqualFunc(a.Warnings, b.Warnings, func(x, y Warning) bool { return x.String() == y.String() }) {
		t.Errorf("warnings differ:\n%v\n%v", a.Warnings, b.Warnings)
	}
}

// benchInventory returns n packages: 60% named in the databases (at a fixed version of one of
// their records, so some are affected by other records and some are not) and 40% that no
// advisory names.
func benchInventory(db *realDB, n int) *sbom.Inventory {
	r := rand.New(rand.NewPCG(1, 2))
	inv := &sbom.Inventory{}
	for i := range n {
		if i%5 < 3 {
			inv.Packages = append(inv.Packages, db.packages[r.IntN(len(db.packages))])
			continue
		}
		if i%2 == 0 {
			inv.Packages = append(inv.Packages, lang(sbom.TypeGolang, fmt.Sprintf("example.com/clean/mod%d", r.IntN(1e6)), fmt.Sprintf("v1.%d.0", r.IntN(20))))
		} else {
			inv.Packages = append(inv.Packages, lang(sbom.TypePyPI, fmt.Sprintf("clean-package-%d", r.IntN(1e6)), fmt.Sprintf("2.%d", r.IntN(20))))
		}
	}
	return inv
}

func BenchmarkMatch1000(b *testing.B) {
	db := loadReal(b)
	inv := benchInventory(db, 1000)
	b.ReportAllocs()
	var findings int
	for b.Loop() {
		res, err := Match(context.Background(), inv, db.src, Options{})
		if err != nil {
			b.Fatal(err)
		}
		findings = len(res.Findings)
	}
	b.ReportMetric(float64(findings), "findings")
}

// TestDigitKeyRealVersions checks digitKey's property on every version the real databases
// name: any two that their scheme holds equal have the same key.
func TestDigitKeyRealVersions(t *testing.T) {
	db := loadReal(t)
	for _, eco := range []string{"Go", "PyPI"} {
		s, err := version.For(eco)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		var vs []version.Version
		for _, p := range db.packages {
			if (eco == "Go") != (p.Type == sbom.TypeGolang) {
				continue
			}
			advs, _ := db.src.Lookup(context.Background(), eco, p.Name)
			for _, a := range advs {
				for _, af := range a.Affected {
					raws := slices.Clone(af.Versions)
					for _, r := range af.Ranges {
						for _, e := range r.Events {
							raws = append(raws, e.Introduced, e.Fixed, e.LastAffected)
						}
					}
					for _, raw := range raws {
						if raw == "" || seen[raw] {
							continue
						}
						seen[raw] = true
						if v, err := s.Parse(raw); err == nil {
							vs = append(vs, v)
						}
					}
				}
			}
		}
		slices.SortFunc(vs, version.Version.Compare)
		plus, pairs := ignoresBuild(s), 0
		for i := 1; i < len(vs); i++ {
			if vs[i-1].Compare(vs[i]) != 0 {
				continue
			}
			pairs++
			if a, b := vs[i-1].String(), vs[i].String(); digitKey(a, plus) != digitKey(b, plus) {
				t.Errorf("%s: %q and %q are equal but their keys differ", eco, a, b)
			}
		}
		t.Logf("%s: %d versions, %d equal pairs with different spellings", eco, len(vs), pairs)
	}
}
