package dpkg

import (
	"testing"

	"github.com/moatsec/moat/internal/sbom"
	"github.com/moatsec/moat/internal/sbom/sbomtest"
)

const status = `Package: libc6
Status: install ok installed
Priority: optional
Section: libs
Installed-Size: 12986
Maintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>
Architecture: amd64
Multi-Arch: same
Source: glibc
Version: 2.36-9+deb12u4
Description: GNU C Library: Shared libraries
 Contains the standard libraries that are used by nearly all programs on
 the system.

Package: libssl3
Status: install ok installed
Architecture: amd64
Source: openssl (3.0.11-1~deb12u2)
Version: 3.0.13-1~deb12u1

Package: removed-thing
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0

Package: bash
Status: install ok installed
Architecture: amd64
Version: 5.2.15-2+b2
`

var cases = []sbomtest.Case{
	{
		Name: "status", Path: "var/lib/dpkg/status", Content: []byte(status), WantCount: 3,
		Want: []sbom.Package{
			{Name: "libc6", Version: "2.36-9+deb12u4", Type: sbom.TypeDeb, Arch: "amd64", Source: &sbom.Source{Name: "glibc", Version: "2.36-9+deb12u4"}},
			{Name: "libssl3", Version: "3.0.13-1~deb12u1", Type: sbom.TypeDeb, Source: &sbom.Source{Name: "openssl", Version: "3.0.11-1~deb12u2"}},
			{Name: "bash", Version: "5.2.15-2+b2", Type: sbom.TypeDeb, Source: &sbom.Source{Name: "bash", Version: "5.2.15-2+b2"}},
		},
	},
	{
		Name: "distroless status.d", Path: "var/lib/dpkg/status.d/tzdata",
		Content:   []byte("Package: tzdata\nVersion: 2024a-0+deb12u1\nArchitecture: all\n"),
		WantCount: 1, Want: []sbom.Package{{Name: "tzdata", Version: "2024a-0+deb12u1", Type: sbom.TypeDeb, Arch: "all"}},
	},
	{
		Name: "partly broken", Path: "var/lib/dpkg/status",
		Content:   []byte("Package: good\nStatus: install ok installed\nVersion: 1.0\n\nthis is not a field\nVersion: 2\n\nPackage: noversion\nStatus: install ok installed\n"),
		WantCount: 1, WantWarning: true, Want: []sbom.Package{{Name: "good", Version: "1.0", Type: sbom.TypeDeb}},
	},
	{Name: "garbage", Path: "var/lib/dpkg/status", Content: []byte("garbage\n\nmore garbage\n"), WantErr: true},
	{
		Name: "file list", Path: "var/lib/dpkg/info/python3-yaml:amd64.list",
		Content:    []byte("/.\n/usr\n/usr/lib/python3/dist-packages/PyYAML-6.0.dist-info/METADATA\n"),
		WantOwners: []sbom.FileOwner{{Type: sbom.TypeDeb, Package: "python3-yaml", Paths: []string{"usr/lib/python3/dist-packages/PyYAML-6.0.dist-info/METADATA"}}},
	},
	{Name: "md5sums", Path: "var/lib/dpkg/status.d/tzdata.md5sums", NoMatch: true},
	{Name: "elsewhere", Path: "usr/share/doc/status", NoMatch: true},
}

func TestConformance(t *testing.T) { sbomtest.Run(t, New(), cases) }

func FuzzParse(f *testing.F) { sbomtest.Fuzz(f, New(), cases) }
