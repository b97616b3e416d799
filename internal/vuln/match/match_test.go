package match

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/moatsec/moat/internal/sbom"
	"github.com/moatsec/moat/internal/vuln"
	"github.com/moatsec/moat/internal/vuln/osv"
)

// fixtures returns every hand-written OSV record of testdata/osv.
func fixtures(t testing.TB) []*vuln.Advisory {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", "osv", "*.json"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	var out []*vuln.Advisory
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		v, err := osv.Parse(b)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		out = append(out, vuln.FromOSV(v, "testdata"))
	}
	return out
}

// line summarises a finding for comparison.
func line(f vuln.Finding) string {
	return fmt.Sprintf("%s@%s %s aliases=%s adv=%s %s(%s) fixed=%s %s",
		f.Package.Name, f.Package.Version, f.ID, strings.Join(f.Aliases, ","), strings.Join(f.Advisories, ","),
		f.Level, f.SeveritySource, strings.Join(f.FixedVersions, ","), f.FixStatus)
}

func lines(fs []vuln.Finding) []string {
	out := []string{}
	for _, f := range fs {
		out = append(out, line(f))
	}
	return out
}

func deb(name, ver, src, srcVer string) sbom.Package {
	return sbom.Package{Name: name, Version: ver, Type: sbom.TypeDeb, Source: &sbom.Source{Name: src, Version: srcVer}}
}

func apk(name, ver, origin string) sbom.Package {
	return sbom.Package{Name: name, Version: ver, Type: sbom.TypeAPK, Source: &sbom.Source{Name: origin, Version: ver}}
}

func rpm(name, ver, src string) sbom.Package {
	return sbom.Package{Name: name, Version: ver, Type: sbom.TypeRPM, Source: &sbom.Source{Name: src, Version: ver}}
}

func lang(typ sbom.Type, name, ver string) sbom.Package {
	return sbom.Package{Name: name, Version: ver, Type: typ}
}

func TestMatchFixtures(t *testing.T) {
	src := vuln.NewMemory(fixtures(t)...)
	tests := []struct {
		name     string
		distro   *sbom.Release
		packages []sbom.Package
		want     []string
		// scores are the expected Score of the findings, in order.
		scores   []float64
		warnings []WarningKind
	}{{
		name:     "debian backported fix is not reported, upstream record unused",
		distro:   &sbom.Release{ID: "debian", VersionID: "12"},
		packages: []sbom.Package{deb("foo", "1.2-3+deb12u1", "foo", "1.2-3+deb12u1")},
		want:     []string{},
	}, {
		name:     "debian before the backport",
		distro:   &sbom.Release{ID: "debian", VersionID: "12"},
		packages: []sbom.Package{deb("foo", "1.2-3", "foo", "1.2-3")},
		want: []string{
			"foo@1.2-3 CVE-2024-1000 aliases=DEBIAN-CVE-2024-1000,DSA-5700-1 adv=DEBIAN-CVE-2024-1000,DSA-5700-1 medium(Debian urgency from DEBIAN-CVE-2024-1000) fixed=1.2-3+deb12u1 fixed",
		},
		scores: []float64{9.8},
	}, {
		name:   "debian image",
		distro: &sbom.Release{ID: "debian", VersionID: "12", VersionCodename: "bookworm"},
		packages: []sbom.Package{
			deb("zlib1g", "1:1.2.13.dfsg-1", "zlib", "1:1.2.13.dfsg-1"),
			deb("baz", "1.0-1", "baz", "1.0-1"),
			// Matched by its source, with the source's version (the binary's own is higher).
			deb("libfoo-tool", "5.0+1.2-3", "foo", "1.2-3"),
			deb("bar", "2.0-1", "bar", "2.0-1"),
			// A binNMU of the fixed source.
			deb("libfoo1", "1.2-3+deb12u1+b1", "foo", "1.2-3+deb12u1"),
			deb("foo", "1.2-3", "foo", "1.2-3"),
			// An entry without a source package is looked up by its own name.
			{Name: "foo", Version: "1.2-2", Type: sbom.TypeDeb},
		},
		want: []string{
			"foo@1.2-2 CVE-2024-1000 aliases=DEBIAN-CVE-2024-1000,DSA-5700-1 adv=DEBIAN-CVE-2024-1000,DSA-5700-1 medium(Debian urgency from DEBIAN-CVE-2024-1000) fixed=1.2-3+deb12u1 fixed",
			"foo@1.2-3 CVE-2024-1000 aliases=DEBIAN-CVE-2024-1000,DSA-5700-1 adv=DEBIAN-CVE-2024-1000,DSA-5700-1 medium(Debian urgency from DEBIAN-CVE-2024-1000) fixed=1.2-3+deb12u1 fixed",
			"libfoo-tool@5.0+1.2-3 CVE-2024-1000 aliases=DEBIAN-CVE-2024-1000,DSA-5700-1 adv=DEBIAN-CVE-2024-1000,DSA-5700-1 medium(Debian urgency from DEBIAN-CVE-2024-1000) fixed=1.2-3+deb12u1 fixed",
			"bar@2.0-1 CVE-2024-4000 aliases=DEBIAN-CVE-2024-4000 adv=DEBIAN-CVE-2024-4000 low(Debian urgency from DEBIAN-CVE-2024-4000) fixed= will-not-fix",
			"baz@1.0-1 CVE-2024-2000 aliases=DEBIAN-CVE-2024-2000 adv=DEBIAN-CVE-2024-2000 none(Debian urgency from DEBIAN-CVE-2024-2000) fixed= not-fixed",
			"baz@1.0-1 CVE-2024-3000 aliases=DEBIAN-CVE-2024-3000 adv=DEBIAN-CVE-2024-3000 unknown() fixed=1.2-3+deb12u2 fixed",
			// Upstream names two CVEs: not merged with either.
			"baz@1.0-1 DSA-5800-1 aliases= adv=DSA-5800-1 unknown() fixed=1.2-3+deb12u2 fixed",
		},
		scores: []float64{9.8, 9.8, 9.8, 0, 7.5, 0, 0},
	}, {
		name:   "alpine origin package",
		distro: &sbom.Release{ID: "alpine", VersionID: "3.20.3"},
		packages: []sbom.Package{
			apk("libcrypto3", "3.3.1-r0", "openssl"),
			apk("libssl3", "3.3.1-r1", "openssl"),
			apk("busybox", "1.36.1-r29", "busybox"),
		},
		want: []string{
			"libcrypto3@3.3.1-r0 CVE-2024-5535 aliases=ALPINE-CVE-2024-5535 adv=ALPINE-CVE-2024-5535 unknown() fixed=3.3.1-r1 fixed",
		},
	}, {
		name:   "ubuntu standard and pro",
		distro: &sbom.Release{ID: "ubuntu", VersionID: "22.04", IDLike: []string{"debian"}},
		packages: []sbom.Package{
			deb("libssl3", "3.0.2-0ubuntu1.1", "openssl", "3.0.2-0ubuntu1.1"),
			deb("openssl", "3.0.2-0ubuntu1.5", "openssl", "3.0.2-0ubuntu1.5"),
			deb("libfoo", "1.0-1", "libfoo", "1.0-1"),
			// From the ESM archive: Pro's records say it is fixed.
			deb("libfoo2", "1.0-1ubuntu0.1+esm1", "libfoo", "1.0-1ubuntu0.1+esm1"),
		},
		want: []string{
			"libssl3@3.0.2-0ubuntu1.1 CVE-2022-1292 aliases=UBUNTU-CVE-2022-1292 adv=UBUNTU-CVE-2022-1292 medium(Ubuntu severity from UBUNTU-CVE-2022-1292) fixed=3.0.2-0ubuntu1.5 fixed",
			"libfoo@1.0-1 CVE-2024-7000 aliases=UBUNTU-CVE-2024-7000 adv=UBUNTU-CVE-2024-7000 low(Ubuntu severity from UBUNTU-CVE-2024-7000) fixed= not-fixed",
		},
		scores: []float64{9.8, 0},
	}, {
		name:   "red hat repositories, epochs, not the EUS stream",
		distro: &sbom.Release{ID: "rhel", VersionID: "9.4", IDLike: []string{"fedora"}},
		packages: []sbom.Package{
			rpm("openssl-libs", "1:3.0.7-25.el9", "openssl"),
			rpm("curl", "7.76.1-29.el9_4", "curl"),
			rpm("zlib", "1.2.11-40.el9", "zlib"),
			rpm("openssl-libs", "1:3.0.7-27.el9", "openssl"),
		},
		want: []string{
			"curl@7.76.1-29.el9_4 CVE-2024-2398 aliases=RHSA-2024:2000 adv=RHSA-2024:2000 medium(CVSS_V3 vector from RHSA-2024:2000) fixed=0:7.76.1-29.el9_4.1 fixed",
			"openssl-libs@1:3.0.7-25.el9 RHSA-2024:1234 aliases= adv=RHSA-2024:1234 medium(CVSS_V3 vector from RHSA-2024:1234) fixed=1:3.0.7-27.el9 fixed",
		},
		scores: []float64{5.9, 5.5},
	}, {
		name:     "rocky",
		distro:   &sbom.Release{ID: "rocky", VersionID: "9.3"},
		packages: []sbom.Package{rpm("openssl-libs", "1:3.0.7-25.el9", "openssl")},
		want: []string{
			"openssl-libs@1:3.0.7-25.el9 CVE-2024-0727 aliases=RLSA-2024:1234 adv=RLSA-2024:1234 medium(RLSA severity from RLSA-2024:1234) fixed=1:3.0.7-27.el9 fixed",
		},
	}, {
		name: "npm",
		packages: []sbom.Package{
			lang(sbom.TypeNPM, "lodash", "4.17.20"),
			lang(sbom.TypeNPM, "lodash", "4.17.21"),
			lang(sbom.TypeNPM, "minimist", "0.1.0"),
			lang(sbom.TypeNPM, "minimist", "1.2.5"),
			lang(sbom.TypeNPM, "minimist", "1.2.6"),
			lang(sbom.TypeNPM, "minimist", "0.2.4"),
			lang(sbom.TypeNPM, "@example/pkg", "2.3.0"),
			lang(sbom.TypeNPM, "@example/pkg", "2.3.1"),
			lang(sbom.TypeNPM, "@example/pkg", "2.0.0-beta.2"),
			lang(sbom.TypeNPM, "@example/pkg", "2.0.0-alpha.1"),
		},
		want: []string{
			"lodash@4.17.20 CVE-2021-23337 aliases=GHSA-35jh-r3h4-6jhm adv=GHSA-35jh-r3h4-6jhm high(CVSS_V3 vector from GHSA-35jh-r3h4-6jhm) fixed=4.17.21 fixed",
			"@example/pkg@2.0.0-beta.2 GHSA-4v4v-4v4v-4v4v aliases= adv=GHSA-4v4v-4v4v-4v4v medium(CVSS_V4 vector from GHSA-4v4v-4v4v-4v4v) fixed= not-fixed",
			"@example/pkg@2.3.0 GHSA-4v4v-4v4v-4v4v aliases= adv=GHSA-4v4v-4v4v-4v4v medium(CVSS_V4 vector from GHSA-4v4v-4v4v-4v4v) fixed= not-fixed",
			"minimist@0.1.0 CVE-2021-44906 aliases=GHSA-xvch-5gv4-984h adv=GHSA-xvch-5gv4-984h medium(GHSA severity from GHSA-xvch-5gv4-984h) fixed=0.2.4 fixed",
			"minimist@1.2.5 CVE-2021-44906 aliases=GHSA-xvch-5gv4-984h adv=GHSA-xvch-5gv4-984h medium(GHSA severity from GHSA-xvch-5gv4-984h) fixed=1.2.6 fixed",
		},
		scores:   []float64{7.2, 6.9, 6.9, 0, 0},
		warnings: []WarningKind{KindSeverity},
	}, {
		name: "maven, unsorted events, several intervals",
		packages: []sbom.Package{
			lang(sbom.TypeMaven, "org.apache.logging.log4j:log4j-core", "2.14.1"),
			lang(sbom.TypeMaven, "org.apache.logging.log4j:log4j-core", "2.12.1"),
			lang(sbom.TypeMaven, "org.apache.logging.log4j:log4j-core", "2.3.1"),
			lang(sbom.TypeMaven, "org.apache.logging.log4j:log4j-core", "2.0-beta9"),
			lang(sbom.TypeMaven, "org.apache.logging.log4j:log4j-core", "2.0-beta8"),
			lang(sbom.TypeMaven, "org.apache.logging.log4j:log4j-core", "2.15.0"),
			lang(sbom.TypeMaven, "org.apache.logging.log4j:log4j-core", "2.12.2"),
			// Its advisory's only range has a bound Maven cannot read.
			lang(sbom.TypeMaven, "org.example:broken", "0.5"),
		},
		want: []string{
			"org.apache.logging.log4j:log4j-core@2.0-beta9 CVE-2021-44228 aliases=GHSA-jfh8-c2jp-5v3q adv=GHSA-jfh8-c2jp-5v3q critical(CVSS_V3 vector from GHSA-jfh8-c2jp-5v3q) fixed=2.3.1,2.12.2,2.15.0 fixed",
			"org.apache.logging.log4j:log4j-core@2.12.1 CVE-2021-44228 aliases=GHSA-jfh8-c2jp-5v3q adv=GHSA-jfh8-c2jp-5v3q critical(CVSS_V3 vector from GHSA-jfh8-c2jp-5v3q) fixed=2.12.2,2.15.0 fixed",
			"org.apache.logging.log4j:log4j-core@2.14.1 CVE-2021-44228 aliases=GHSA-jfh8-c2jp-5v3q adv=GHSA-jfh8-c2jp-5v3q critical(CVSS_V3 vector from GHSA-jfh8-c2jp-5v3q) fixed=2.15.0 fixed",
		},
		scores:   []float64{10, 10, 10},
		warnings: []WarningKind{KindRange},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			inv := &sbom.Inventory{Distro: tc.distro, Packages: tc.packages}
			res, err := Match(context.Background(), inv, src, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if got := lines(res.Findings); !slices.Equal(got, tc.want) {
				t.Errorf("findings:\n got  %s\n want %s", strings.Join(got, "\n      "), strings.Join(tc.want, "\n      "))
			}
			if tc.scores != nil && len(res.Findings) == len(tc.scores) {
				for i, f := range res.Findings {
					if f.Score != tc.scores[i] {
						t.Errorf("finding %d (%s): score %v, want %v", i, f.ID, f.Score, tc.scores[i])
					}
				}
			}
			var kinds []WarningKind
			for _, w := range res.Warnings {
				kinds = append(kinds, w.Kind)
			}
			if !slices.Equal(kinds, tc.warnings) {
				t.Errorf("warnings = %v, want kinds %v", res.Warnings, tc.warnings)
			}
		})
	}
}

func TestMatchFindingDetails(t *testing.T) {
	src := vuln.NewMemory(fixtures(t)...)
	inv := &sbom.Inventory{
		Distro: &sbom.Release{ID: "debian", VersionID: "12"},
		Packages: []sbom.Package{
			{Name: "libfoo1", Version: "1.2-3", Type: sbom.TypeDeb, Source: &sbom.Source{Name: "foo", Version: "1.2-3"},
				PURL: "pkg:deb/debian/libfoo1@1.2-3?distro=debian-12", Locations: []sbom.Location{{Path: "/var/lib/dpkg/status"}}},
		},
	}
	res, err := Match(context.Background(), inv, src, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Findings) != 1 {
		t.Fatalf("findings = %v", lines(res.Findings))
	}
	f := res.Findings[0]
	if f.Ecosystem != "Debian:12" || f.Name != "foo" {
		t.Errorf("matched as %s %s, want Debian:12 foo", f.Ecosystem, f.Name)
	}
	if f.Package.Name != "libfoo1" || f.Package.PURL == "" || len(f.Package.Locations) != 1 {
		t.Errorf("package = %+v", f.Package)
	}
	if f.Summary != "foo - security update" {
		t.Errorf("summary = %q", f.Summary)
	}
	wantSev := []vuln.Severity{
		{Type: "CVSS_V3", Score: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"},
		{Type: "Debian", Score: "medium"},
	}
	if !slices.Equal(f.Severities, wantSev) {
		t.Errorf("severities = %v, want %v", f.Severities, wantSev)
	}
	if len(f.References) != 2 || f.Published.IsZero() || f.Modified.Format("2006-01-02") != "2024-06-02" {
		t.Errorf("references %v, published %v, modified %v", f.References, f.Published, f.Modified)
	}
	if len(res.Stats) != 1 || res.Stats[0] != (Stats{Ecosystem: "Debian:12", Packages: 1, Advisories: 3, Findings: 1}) {
		t.Errorf("stats = %+v", res.Stats)
	}
}

func TestMatchMissingData(t *testing.T) {
	all := fixtures(t)
	var noDebian12 []*vuln.Advisory
	for _, a := range all {
		if !strings.HasPrefix(a.ID, "DEBIAN-") && !strings.HasPrefix(a.ID, "DSA-") {
			noDebian12 = append(noDebian12, a)
		}
	}
	debian := []sbom.Package{deb("foo", "1.2-3", "foo", "1.2-3"), deb("bar", "1.0", "bar", "1.0")}
	tests := []struct {
		name     string
		src      vuln.Source
		distro   *sbom.Release
		packages []sbom.Package
		want     error
		mention  []string
	}{{
		name: "no Debian:12 data", src: vuln.NewMemory(noDebian12...),
		distro: &sbom.Release{ID: "debian", VersionID: "12"}, packages: debian,
		want: ErrNoData, mention: []string{"Debian:12", "2 packages", "moat db update --ecosystem Debian"},
	}, {
		name: "empty database", src: vuln.NewMemory(),
		packages: []sbom.Package{lang(sbom.TypeGolang, "golang.org/x/text", "v0.3.7"), lang(sbom.TypePyPI, "requests", "2.19.0")},
		want:     ErrNoData, mention: []string{"Go", "PyPI", "--ecosystem PyPI", "1 package)"},
	}, {
		name: "red hat release without data", src: vuln.NewMemory(all...),
		distro: &sbom.Release{ID: "rhel", VersionID: "7.9"}, packages: []sbom.Package{rpm("curl", "7.29.0-59.el7", "curl")},
		want: ErrNoData, mention: []string{"Red Hat:enterprise_linux:7", `--ecosystem "Red Hat"`},
	}, {
		name: "unknown distribution", src: vuln.NewMemory(all...),
		distro: &sbom.Release{ID: "centos", VersionID: "7", IDLike: []string{"rhel", "fedora"}}, packages: []sbom.Package{rpm("curl", "7.29.0-59.el7", "curl")},
		want: ErrUnsupportedDistro, mention: []string{`"centos 7"`, "ID_LIKE rhel fedora"},
	}, {
		name: "no distribution", src: vuln.NewMemory(all...), packages: debian,
		want: ErrUnsupportedDistro, mention: []string{"not identified"},
	}, {
		name: "packages of another distribution's type", src: vuln.NewMemory(all...),
		distro: &sbom.Release{ID: "debian", VersionID: "12"}, packages: []sbom.Package{rpm("curl", "7.29.0-59.el7", "curl")},
		want: ErrUnsupportedDistro, mention: []string{"rpm packages in a Debian:12 image"},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			inv := &sbom.Inventory{Distro: tc.distro, Packages: tc.packages}
			res, err := Match(context.Background(), inv, tc.src, Options{})
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v (result %v), want %v", err, res, tc.want)
			}
			for _, s := range tc.mention {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}

			res, err = Match(context.Background(), inv, tc.src, Options{AllowMissing: true})
			if err != nil {
				t.Fatalf("with AllowMissing: %v", err)
			}
			if len(res.Warnings) == 0 || res.Warnings[0].Kind != KindNoData {
				t.Errorf("with AllowMissing: warnings = %v", res.Warnings)
			}
			missing := 0
			for _, st := range res.Stats {
				if st.Missing {
					missing += st.Packages
				}
			}
			if missing != len(tc.packages) {
				t.Errorf("with AllowMissing: stats = %+v", res.Stats)
			}
		})
	}
}

func TestMatchOwnedOSPackagesOnly(t *testing.T) {
	// Language packages that a deb owns are left to the distribution, even when the upstream
	// ecosystem has no data at all: they need none.
	src := vuln.NewMemory(fixtures(t)...)
	inv := &sbom.Inventory{
		Distro: &sbom.Release{ID: "debian", VersionID: "12"},
		Packages: []sbom.Package{
			deb("foo", "1.2-3+deb12u1", "foo", "1.2-3+deb12u1"),
			{Name: "foo", Version: "1.0", Type: sbom.TypePyPI, OwnedBy: "deb:foo"},
			{Name: "yaml", Version: "1.0", Type: sbom.TypeGem, OwnedBy: "deb:ruby-yaml"},
		},
	}
	res, err := Match(context.Background(), inv, src, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Findings) != 0 || res.Owned != 2 {
		t.Errorf("findings %v, owned %d", lines(res.Findings), res.Owned)
	}
}

func TestMatchCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	inv := &sbom.Inventory{Packages: []sbom.Package{lang(sbom.TypeNPM, "lodash", "4.17.20")}}
	if _, err := Match(ctx, inv, vuln.NewMemory(fixtures(t)...), Options{}); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v", err)
	}
}

func TestPrimaryID(t *testing.T) {
	tests := []struct {
		ids  []string
		want string
	}{
		{[]string{"GO-2022-1059", "GHSA-69ch-w2m2-3vjp", "CVE-2022-32149"}, "CVE-2022-32149"},
		{[]string{"CVE-2021-10000", "CVE-2021-9999", "CVE-2020-50000"}, "CVE-2020-50000"},
		{[]string{"CVE-2021-10000", "CVE-2021-9999"}, "CVE-2021-9999"},
		{[]string{"PYSEC-2021-1", "GHSA-zzzz-zzzz-zzzz", "GHSA-aaaa-aaaa-aaaa"}, "GHSA-aaaa-aaaa-aaaa"},
		{[]string{"PYSEC-2021-1", "GO-2021-1", "DSA-5000-1"}, "DSA-5000-1"},
		{[]string{"CVE-bogus", "GO-2021-1"}, "CVE-bogus"},
		{nil, ""},
	}
	for _, tc := range tests {
		if got := PrimaryID(tc.ids); got != tc.want {
			t.Errorf("PrimaryID(%v) = %q, want %q", tc.ids, got, tc.want)
		}
	}
}
