package match

import (
	"slices"
	"strings"
	"testing"

	"github.com/moatsec/moat/internal/sbom"
)

func TestPlanDistro(t *testing.T) {
	have := map[string]int{
		"Debian:11": 1, "Debian:12": 1, "Debian:13": 1,
		"Ubuntu:22.04:LTS": 1, "Ubuntu:Pro:22.04:LTS": 1, "Ubuntu:24.10": 1, "Ubuntu:Pro:16.04:LTS": 1,
		"Alpine:v3.20": 1, "Alpine:v3.21": 1, "Wolfi": 1, "Chainguard": 1,
		"Red Hat:enterprise_linux:9::appstream": 1, "Red Hat:enterprise_linux:9::baseos": 1,
		"Red Hat:enterprise_linux:9::crb": 0, "Red Hat:enterprise_linux:8::baseos": 1,
		"Red Hat:rhel_eus:9.2::baseos": 1, "Red Hat:enterprise_linux:10.0": 1, "Red Hat:enterprise_linux:10.1": 1,
		"Rocky Linux:9": 1, "AlmaLinux:8": 1,
		"SUSE:Linux Enterprise Server 15 SP5": 1, "SUSE:Linux Enterprise Server 12": 1,
		"openSUSE:Leap 15.5": 1, "openSUSE:Tumbleweed": 1,
	}
	tests := []struct {
		rel               sbom.Release
		label, bucket     string
		ecosystems, pro   []string
		unsupportedReason string
	}{
		{rel: sbom.Release{ID: "debian", VersionID: "12"}, label: "Debian:12", bucket: "Debian", ecosystems: []string{"Debian:12"}},
		{rel: sbom.Release{ID: "debian", VersionCodename: "trixie"}, label: "Debian:13", bucket: "Debian", ecosystems: []string{"Debian:13"}},
		{rel: sbom.Release{ID: "debian", VersionCodename: "sid"}, unsupportedReason: "no release number"},
		{rel: sbom.Release{ID: "debian", VersionID: "10"}, label: "Debian:10", bucket: "Debian"},
		{rel: sbom.Release{ID: "ubuntu", VersionID: "22.04"}, label: "Ubuntu:22.04", bucket: "Ubuntu",
			ecosystems: []string{"Ubuntu:22.04:LTS"}, pro: []string{"Ubuntu:Pro:22.04:LTS"}},
		{rel: sbom.Release{ID: "ubuntu", VersionID: "24.10"}, label: "Ubuntu:24.10", bucket: "Ubuntu", ecosystems: []string{"Ubuntu:24.10"}},
		{rel: sbom.Release{ID: "ubuntu", VersionID: "16.04"}, label: "Ubuntu:16.04", bucket: "Ubuntu", pro: []string{"Ubuntu:Pro:16.04:LTS"}},
		{rel: sbom.Release{ID: "alpine", VersionID: "3.20.3"}, label: "Alpine:v3.20", bucket: "Alpine", ecosystems: []string{"Alpine:v3.20"}},
		{rel: sbom.Release{ID: "alpine", VersionID: "3.21.0_alpha20240807"}, label: "Alpine:v3.21", bucket: "Alpine", ecosystems: []string{"Alpine:v3.21"}},
		{rel: sbom.Release{ID: "wolfi", VersionID: "20230201"}, label: "Wolfi", bucket: "Wolfi", ecosystems: []string{"Wolfi"}},
		{rel: sbom.Release{ID: "chainguard"}, label: "Chainguard", bucket: "Chainguard", ecosystems: []string{"Chainguard"}},
		{rel: sbom.Release{ID: "rhel", VersionID: "9.4"}, label: "Red Hat:enterprise_linux:9", bucket: "Red Hat",
			ecosystems: []string{"Red Hat:enterprise_linux:9::appstream", "Red Hat:enterprise_linux:9::baseos"}},
		{rel: sbom.Release{ID: "rhel", VersionID: "10.0"}, label: "Red Hat:enterprise_linux:10", bucket: "Red Hat",
			ecosystems: []string{"Red Hat:enterprise_linux:10.0", "Red Hat:enterprise_linux:10.1"}},
		{rel: sbom.Release{ID: "rocky", VersionID: "9.3"}, label: "Rocky Linux:9", bucket: "Rocky Linux", ecosystems: []string{"Rocky Linux:9"}},
		{rel: sbom.Release{ID: "almalinux", VersionID: "8.10"}, label: "AlmaLinux:8", bucket: "AlmaLinux", ecosystems: []string{"AlmaLinux:8"}},
		{rel: sbom.Release{ID: "sles", VersionID: "15.5"}, label: "SUSE:Linux Enterprise Server 15 SP5", bucket: "SUSE",
			ecosystems: []string{"SUSE:Linux Enterprise Server 15 SP5"}},
		{rel: sbom.Release{ID: "sles", VersionID: "12"}, label: "SUSE:Linux Enterprise Server 12", bucket: "SUSE",
			ecosystems: []string{"SUSE:Linux Enterprise Server 12"}},
		{rel: sbom.Release{ID: "opensuse-leap", VersionID: "15.5"}, label: "openSUSE:Leap 15.5", bucket: "openSUSE", ecosystems: []string{"openSUSE:Leap 15.5"}},
		{rel: sbom.Release{ID: "opensuse-tumbleweed", VersionID: "20240101"}, label: "openSUSE:Tumbleweed", bucket: "openSUSE", ecosystems: []string{"openSUSE:Tumbleweed"}},
		{rel: sbom.Release{ID: "centos", VersionID: "7", IDLike: []string{"rhel", "fedora"}}, unsupportedReason: `"centos 7" (ID_LIKE rhel fedora)`},
		{rel: sbom.Release{ID: "linuxmint", VersionID: "21", IDLike: []string{"ubuntu"}}, unsupportedReason: "linuxmint"},
		{rel: sbom.Release{ID: "ubuntu"}, unsupportedReason: "no VERSION_ID"},
	}
	for _, tc := range tests {
		d := planDistro(&tc.rel, have)
		if tc.unsupportedReason != "" {
			if !strings.Contains(d.unsupported, tc.unsupportedReason) {
				t.Errorf("%+v: unsupported %q, want it to mention %q", tc.rel, d.unsupported, tc.unsupportedReason)
			}
			continue
		}
		if !slices.Contains(Sources(), d.bucket) {
			t.Errorf("%+v: bucket %q is not in Sources() %q", tc.rel, d.bucket, Sources())
		}
		if d.unsupported != "" || d.label != tc.label || d.bucket != tc.bucket || !slices.Equal(d.ecosystems, tc.ecosystems) || !slices.Equal(d.pro, tc.pro) {
			t.Errorf("%+v: got %q %q %q %q (%s), want %q %q %q %q", tc.rel, d.label, d.bucket, d.ecosystems, d.pro, d.unsupported,
				tc.label, tc.bucket, tc.ecosystems, tc.pro)
		}
	}
	if d := planDistro(nil, have); d.unsupported == "" {
		t.Error("no release: supported")
	}
}

func TestDistroNamesAndVersions(t *testing.T) {
	debPlan := &distroPlan{pkgType: sbom.TypeDeb}
	rpmPlan := &distroPlan{pkgType: sbom.TypeRPM, byBinary: true}
	tests := []struct {
		plan    *distroPlan
		p       sbom.Package
		names   []string
		version string
	}{
		{debPlan, deb("libssl3", "3.0.11-1~deb12u2", "openssl", "3.0.11-1~deb12u2"), []string{"openssl"}, "3.0.11-1~deb12u2"},
		{debPlan, deb("libfoo1", "1.2-3+b1", "foo", "1.2-3"), []string{"foo"}, "1.2-3"},
		{debPlan, sbom.Package{Name: "foo", Version: "1.0", Type: sbom.TypeDeb}, []string{"foo"}, "1.0"},
		{rpmPlan, rpm("openssl-libs", "1:3.0.7-27.el9", "openssl"), []string{"openssl-libs", "openssl"}, "1:3.0.7-27.el9"},
		{rpmPlan, rpm("curl", "7.76.1-29.el9_4", "curl"), []string{"curl"}, "7.76.1-29.el9_4"},
		{rpmPlan, sbom.Package{Name: "curl", Version: "7.76.1-29.el9_4", Type: sbom.TypeRPM}, []string{"curl"}, "7.76.1-29.el9_4"},
	}
	for _, tc := range tests {
		if got := tc.plan.names(&tc.p); !slices.Equal(got, tc.names) {
			t.Errorf("%s: names %q, want %q", tc.p.Name, got, tc.names)
		}
		if got := tc.plan.version(&tc.p); got != tc.version {
			t.Errorf("%s: version %q, want %q", tc.p.Name, got, tc.version)
		}
	}
}
