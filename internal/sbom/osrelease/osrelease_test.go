package osrelease

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/moatsec/moat/internal/sbom"
	"github.com/moatsec/moat/internal/sbom/sbomtest"
)

const debian12 = `PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
SUPPORT_URL="https://www.debian.org/support"
BUG_REPORT_URL="https://bugs.debian.org/"
`

const ubuntu2404 = `PRETTY_NAME="Ubuntu 24.04.1 LTS"
NAME="Ubuntu"
VERSION_ID="24.04"
VERSION="24.04.1 LTS (Noble Numbat)"
VERSION_CODENAME=noble
ID=ubuntu
ID_LIKE=debian
HOME_URL="https://www.ubuntu.com/"
SUPPORT_URL="https://help.ubuntu.com/"
BUG_REPORT_URL="https://bugs.launchpad.net/ubuntu/"
PRIVACY_POLICY_URL="https://www.ubuntu.com/legal/terms-and-policies/privacy-policy"
UBUNTU_CODENAME=noble
LOGO=ubuntu-logo
`

const alpine320 = `NAME="Alpine Linux"
ID=alpine
VERSION_ID=3.20.3
PRETTY_NAME="Alpine Linux v3.20"
HOME_URL="https://alpinelinux.org/"
BUG_REPORT_URL="https://gitlab.alpinelinux.org/alpine/aports/-/issues"
`

const rhel9 = `NAME="Red Hat Enterprise Linux"
VERSION="9.4 (Plow)"
ID="rhel"
ID_LIKE="fedora"
VERSION_ID="9.4"
PLATFORM_ID="platform:el9"
PRETTY_NAME="Red Hat Enterprise Linux 9.4 (Plow)"
ANSI_COLOR="0;31"
LOGO="fedora-logo-icon"
CPE_NAME="cpe:/o:redhat:enterprise_linux:9::baseos"
HOME_URL="https://www.redhat.com/"
DOCUMENTATION_URL="https://access.redhat.com/documentation/en-us/red_hat_enterprise_linux/9"
BUG_REPORT_URL="https://issues.redhat.com/"

REDHAT_BUGZILLA_PRODUCT="Red Hat Enterprise Linux 9"
REDHAT_BUGZILLA_PRODUCT_VERSION=9.4
REDHAT_SUPPORT_PRODUCT="Red Hat Enterprise Linux"
REDHAT_SUPPORT_PRODUCT_VERSION="9.4"
`

const wolfi = `ID=wolfi
NAME="Wolfi"
PRETTY_NAME="Wolfi"
VERSION_ID="20230201"
HOME_URL="https://wolfi.dev"
`

const chainguard = `ID="chainguard"
NAME="Chainguard"
PRETTY_NAME="Chainguard"
VERSION_ID="20230214"
HOME_URL="https://chainguard.dev/"
`

const distroless = `PRETTY_NAME="Distroless"
NAME="Debian GNU/Linux"
ID="debian"
VERSION_ID="12"
VERSION="Debian GNU/Linux 12 (bookworm)"
HOME_URL="https://github.com/GoogleContainerTools/distroless"
SUPPORT_URL="https://github.com/GoogleContainerTools/distroless/blob/master/README.md"
BUG_REPORT_URL="https://github.com/GoogleContainerTools/distroless/issues/new"
`

const leap156 = `NAME="openSUSE Leap"
VERSION="15.6"
ID="opensuse-leap"
ID_LIKE="suse opensuse"
VERSION_ID="15.6"
PRETTY_NAME="openSUSE Leap 15.6"
ANSI_COLOR="0;32"
CPE_NAME="cpe:/o:opensuse:leap:15.6"
BUG_REPORT_URL="https://bugs.opensuse.org"
HOME_URL="https://www.opensuse.org/"
DOCUMENTATION_URL="https://en.opensuse.org/Portal:Leap"
LOGO="distributor-logo-Leap"
`

const amzn2023 = `NAME="Amazon Linux"
VERSION="2023"
ID="amzn"
ID_LIKE="fedora"
VERSION_ID="2023"
PLATFORM_ID="platform:al2023"
PRETTY_NAME="Amazon Linux 2023.4.20240401"
ANSI_COLOR="0;33"
CPE_NAME="cpe:2.3:o:amazon:amazon_linux:2023"
HOME_URL="https://aws.amazon.com/linux/amazon-linux-2023/"
`

const ubuntuLSB = `DISTRIB_ID=Ubuntu
DISTRIB_RELEASE=24.04
DISTRIB_CODENAME=noble
DISTRIB_DESCRIPTION="Ubuntu 24.04.1 LTS"
`

var cases = []sbomtest.Case{
	{Name: "debian 12", Path: "usr/lib/os-release", Content: []byte(debian12), WantRelease: &sbom.Release{
		ID: "debian", VersionID: "12", VersionCodename: "bookworm", PrettyName: "Debian GNU/Linux 12 (bookworm)"}},
	{Name: "ubuntu 24.04", Path: "usr/lib/os-release", Content: []byte(ubuntu2404), WantRelease: &sbom.Release{
		ID: "ubuntu", IDLike: []string{"debian"}, VersionID: "24.04", VersionCodename: "noble", PrettyName: "Ubuntu 24.04.1 LTS"}},
	{Name: "alpine 3.20", Path: "etc/os-release", Content: []byte(alpine320), WantRelease: &sbom.Release{
		ID: "alpine", VersionID: "3.20.3", PrettyName: "Alpine Linux v3.20"}},
	{Name: "rhel 9", Path: "etc/os-release", Content: []byte(rhel9), WantRelease: &sbom.Release{
		ID: "rhel", IDLike: []string{"fedora"}, VersionID: "9.4", PrettyName: "Red Hat Enterprise Linux 9.4 (Plow)"}},
	{Name: "wolfi", Path: "etc/os-release", Content: []byte(wolfi), WantRelease: &sbom.Release{
		ID: "wolfi", VersionID: "20230201", PrettyName: "Wolfi"}},
	{Name: "chainguard", Path: "etc/os-release", Content: []byte(chainguard), WantRelease: &sbom.Release{
		ID: "chainguard", VersionID: "20230214", PrettyName: "Chainguard"}},
	{Name: "distroless", Path: "etc/os-release", Content: []byte(distroless), WantRelease: &sbom.Release{
		ID: "debian", VersionID: "12", PrettyName: "Distroless"}},
	{Name: "opensuse leap", Path: "usr/lib/os-release", Content: []byte(leap156), WantRelease: &sbom.Release{
		ID: "opensuse-leap", IDLike: []string{"suse", "opensuse"}, VersionID: "15.6", PrettyName: "openSUSE Leap 15.6"}},
	{Name: "amazon linux 2023", Path: "etc/os-release", Content: []byte(amzn2023), WantRelease: &sbom.Release{
		ID: "amzn", IDLike: []string{"fedora"}, VersionID: "2023", PrettyName: "Amazon Linux 2023.4.20240401"}},
	{Name: "quoting and escapes", Path: "etc/os-release",
		Content:     []byte("# comment\n ID='Debian'\nVERSION_ID=\"1\\\"2\"\nPRETTY_NAME='It'\\''s \"odd\" \\$x'\nVERSION_CODENAME=a\\ b\nID_LIKE=\"x  y\"\n"),
		WantRelease: &sbom.Release{ID: "debian", IDLike: []string{"x", "y"}, VersionID: `1"2`, PrettyName: `It's "odd" \$x`}},
	{Name: "no ID defaults to linux", Path: "etc/os-release", Content: []byte("NAME=\"Some Linux\"\nVERSION_ID=1\n"),
		WantRelease: &sbom.Release{ID: "linux", VersionID: "1"}},
	{Name: "os-release without fields", Path: "etc/os-release", Content: []byte("just some text\n"), WantErr: true},
	{Name: "invalid ID", Path: "etc/os-release", Content: []byte("ID=\"has space\"\n"), WantErr: true},
	{Name: "os-release truncated", Path: "etc/os-release", Content: []byte(debian12[:60]), WantRelease: &sbom.Release{
		ID: "linux", PrettyName: "Debian GNU/Linux 12 (bookworm)"}},
	{Name: "ubuntu lsb-release", Path: "etc/lsb-release", Content: []byte(ubuntuLSB), WantRelease: &sbom.Release{
		ID: "ubuntu", VersionID: "24.04", VersionCodename: "noble", PrettyName: "Ubuntu 24.04.1 LTS"}},
	{Name: "lsb-release without ID", Path: "etc/lsb-release", Content: []byte("DISTRIB_RELEASE=1\n"), WantErr: true},
	{Name: "debian_version point release", Path: "etc/debian_version", Content: []byte("12.5\n"), WantRelease: &sbom.Release{
		ID: "debian", VersionID: "12", VersionCodename: "bookworm", PrettyName: "Debian GNU/Linux 12.5"}},
	{Name: "debian_version testing", Path: "etc/debian_version", Content: []byte("trixie/sid\n"), WantRelease: &sbom.Release{
		ID: "debian", VersionCodename: "trixie", PrettyName: "Debian GNU/Linux trixie/sid"}},
	{Name: "debian_version garbage", Path: "etc/debian_version", Content: []byte("\x00\x01garbage"), WantErr: true},
	{Name: "alpine-release", Path: "etc/alpine-release", Content: []byte("3.20.3\n"), WantRelease: &sbom.Release{
		ID: "alpine", VersionID: "3.20.3", PrettyName: "Alpine Linux v3.20.3"}},
	{Name: "alpine-release edge", Path: "etc/alpine-release", Content: []byte("3.21_alpha20240923\n"), WantRelease: &sbom.Release{
		ID: "alpine", VersionID: "3.21_alpha20240923", PrettyName: "Alpine Linux v3.21_alpha20240923"}},
	{Name: "alpine-release empty", Path: "etc/alpine-release", Content: nil, WantErr: true},
	{Name: "redhat-release", Path: "etc/redhat-release", Content: []byte("Red Hat Enterprise Linux release 9.4 (Plow)\n"),
		WantRelease: &sbom.Release{ID: "rhel", VersionID: "9.4", PrettyName: "Red Hat Enterprise Linux release 9.4 (Plow)"}},
	{Name: "centos-release", Path: "etc/centos-release", Content: []byte("CentOS Linux release 7.9.2009 (Core)\n"),
		WantRelease: &sbom.Release{ID: "centos", VersionID: "7", PrettyName: "CentOS Linux release 7.9.2009 (Core)"}},
	{Name: "centos stream", Path: "etc/centos-release", Content: []byte("CentOS Stream release 9\n"),
		WantRelease: &sbom.Release{ID: "centos", VersionID: "9", PrettyName: "CentOS Stream release 9"}},
	{Name: "rocky-release", Path: "etc/rocky-release", Content: []byte("Rocky Linux release 9.3 (Blue Onyx)\n"),
		WantRelease: &sbom.Release{ID: "rocky", VersionID: "9.3", PrettyName: "Rocky Linux release 9.3 (Blue Onyx)"}},
	{Name: "almalinux-release", Path: "etc/almalinux-release", Content: []byte("AlmaLinux release 9.3 (Shamrock Pampas Cat)\n"),
		WantRelease: &sbom.Release{ID: "almalinux", VersionID: "9.3", PrettyName: "AlmaLinux release 9.3 (Shamrock Pampas Cat)"}},
	{Name: "amazon system-release", Path: "etc/system-release", Content: []byte("Amazon Linux release 2023.4.20240401 (Amazon Linux)\n"),
		WantRelease: &sbom.Release{ID: "amzn", VersionID: "2023", PrettyName: "Amazon Linux release 2023.4.20240401 (Amazon Linux)"}},
	{Name: "fedora system-release", Path: "etc/system-release", Content: []byte("Fedora release 40 (Forty)\n"),
		WantRelease: &sbom.Release{ID: "fedora", VersionID: "40", PrettyName: "Fedora release 40 (Forty)"}},
	{Name: "unknown distribution in redhat-release", Path: "etc/redhat-release", Content: []byte("Mystery Linux release 1.0\n"), WantErr: true},
	{Name: "not a release line", Path: "etc/rocky-release", Content: []byte("hello\n"), WantErr: true},
	{Name: "os-release elsewhere", Path: "opt/app/etc/os-release", NoMatch: true},
	{Name: "issue", Path: "etc/issue", NoMatch: true},
}

func TestConformance(t *testing.T) { sbomtest.Run(t, New(), cases) }

func FuzzParse(f *testing.F) { sbomtest.Fuzz(f, New(), cases) }

func TestSourceAndNoPackages(t *testing.T) {
	res, err := New().Parse(context.Background(), sbom.FileInfo{Path: "etc/os-release"}, strings.NewReader(debian12))
	if err != nil {
		t.Fatal(err)
	}
	if res.Release.Source != "etc/os-release" || len(res.Packages) != 0 {
		t.Errorf("got source %q and %d packages, want etc/os-release and none", res.Release.Source, len(res.Packages))
	}
}

func TestOversized(t *testing.T) {
	in := debian12 + strings.Repeat("# padding\n", maxSize/10+10)
	res, err := New().Parse(context.Background(), sbom.FileInfo{Path: "etc/os-release"}, strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if res.Release.ID != "debian" || len(res.Warnings) == 0 {
		t.Errorf("got %+v, warnings %v; want debian and a warning", res.Release, res.Warnings)
	}
}

func TestBest(t *testing.T) {
	debOS := sbom.Release{ID: "debian", VersionID: "12", VersionCodename: "bookworm", Source: "usr/lib/os-release"}
	debVer := sbom.Release{ID: "debian", VersionID: "12", VersionCodename: "bookworm", PrettyName: "Debian GNU/Linux 12.5", Source: "etc/debian_version"}
	ubuOS := sbom.Release{ID: "ubuntu", IDLike: []string{"debian"}, VersionID: "24.04", VersionCodename: "noble", Source: "etc/os-release"}
	ubuDeb := sbom.Release{ID: "debian", VersionCodename: "trixie", Source: "etc/debian_version"}
	ubuLSB := sbom.Release{ID: "ubuntu", VersionID: "24.04", Source: "etc/lsb-release"}
	sidOS := sbom.Release{ID: "debian", PrettyName: "Debian GNU/Linux trixie/sid", Source: "etc/os-release"}
	centOS := sbom.Release{ID: "centos", VersionID: "7", Source: "/etc/os-release"}
	centRel := sbom.Release{ID: "centos", VersionID: "7", Source: "etc/centos-release"}
	other := sbom.Release{ID: "linux", Source: "somewhere/else"}

	tests := []struct {
		name string
		in   []sbom.Release
		want *sbom.Release
	}{
		{"none", nil, nil},
		{"one", []sbom.Release{debVer}, &debVer},
		{"os-release beats debian_version", []sbom.Release{debVer, debOS}, &debOS},
		{"ubuntu is not its debian_version", []sbom.Release{ubuDeb, ubuLSB, ubuOS}, &ubuOS},
		{"distro file beats lsb-release", []sbom.Release{ubuLSB, ubuDeb}, &ubuDeb},
		{"etc beats usr/lib, leading slash accepted", []sbom.Release{centRel, centOS}, &centOS},
		{"unknown source ranks last", []sbom.Release{other, centRel}, &centRel},
		{"fill codename from same ID only", []sbom.Release{sidOS, ubuDeb, ubuOS},
			&sbom.Release{ID: "debian", VersionCodename: "trixie", PrettyName: "Debian GNU/Linux trixie/sid", Source: "etc/os-release"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := append([]sbom.Release(nil), tt.in...)
			got := Best(in)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Best = %+v, want %+v", got, tt.want)
			}
			if !reflect.DeepEqual(in, tt.in) {
				t.Errorf("Best modified its input")
			}
		})
	}
}
