package apk

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/moatsec/moat/internal/sbom"
	"github.com/moatsec/moat/internal/sbom/sbomtest"
)

// alpine is shaped like lib/apk/db/installed of alpine:3.20.
const alpine = `C:Q1SjtXEYh8QGQHIzGvbX7PhbOoN0k=
P:musl
V:1.2.5-r0
A:x86_64
S:410018
I:663552
T:the musl c library (libc) implementation
U:https://musl.libc.org/
L:MIT
o:musl
m:Timo Teräs <timo.teras@iki.fi>
t:1711566741
c:a78a9ad4a9d2f9e4f6bcb4b7bd1bf2b4b7a7f1ea
p:so:libc.musl-x86_64.so.1=1
F:lib
R:ld-musl-x86_64.so.1
a:0:0:755
Z:Q1m2tCWYEXiWuDlZMZiqq5sMyLcWw=
R:libc.musl-x86_64.so.1
a:0:0:777
Z:Q17yJ3JFNypA4mxhJJr0ou6CzsJVI=

C:Q1rPNGCmK/UlJO2SaPHSBsU+CEpHg=
P:busybox
V:1.36.1-r29
A:x86_64
S:507831
I:962560
T:Size optimized toolbox of many common UNIX utilities
U:https://busybox.net/
L:GPL-2.0-only
o:busybox
m:Sören Tempel <soeren+alpine@soeren-tempel.net>
t:1716982093
c:6f0478c2d9c6e4e1e2b6c36d3c2a1a2e9ff46f7b
D:so:libc.musl-x86_64.so.1
p:/bin/sh cmd:busybox=1.36.1-r29 cmd:sh=1.36.1-r29
r:busybox-initscripts
F:bin
R:busybox
a:0:0:755
Z:Q1WUwBY0eOGgzhOxtdfp8IK1YAGyE=
F:etc
R:securetty
Z:Q1mB95Hq2NUTZ599RDiSsj9w5FrOU=
R:udhcpd.conf
Z:Q1EgLFjj67ou3/4Oo4PqK1KMSUTLs=
F:etc/logrotate.d
R:acpid
Z:Q1TylyCINVmnS+A/Tead4vZhE7Bks=
F:etc/network
F:etc/network/if-down.d
F:usr
F:usr/sbin
F:var
F:var/cache
F:var/cache/misc
F:var/lib
F:var/lib/udhcpd

C:Q1fHCvX3gyAfOyZQYpyZyeWQVhTdk=
P:libcrypto3
V:3.3.2-r0
A:x86_64
S:1752612
I:4759552
T:Crypto library from openssl
U:https://www.openssl.org/
L:Apache-2.0
o:openssl
m:Ariadne Conill <ariadne@dereferenced.org>
t:1725458853
c:3a8b6c2e11bb5bd83e3db8d8e39e4bb8a6d2a1c0
D:so:libc.musl-x86_64.so.1
p:so:libcrypto.so.3=3
F:etc
F:etc/ssl
R:ct_log_list.cnf
Z:Q1olh8TpdAi2QnTl4FK3TjdUiSwTo=
F:usr
F:usr/lib
R:libcrypto.so.3
a:0:0:755
Z:Q1CKYx1vHv4p6Q9pKTt8IrN3VsR1k=

C:Q1j9nBoRcMh6O2hSWuP2gmzdaK8Xo=
P:ca-certificates-bundle
V:20240705-r0
A:x86_64
S:128023
I:233472
T:Pre generated bundle of Mozilla certificates
U:https://www.mozilla.org/en-US/about/governance/policies/security-group/certs/
L:MPL-2.0 AND MIT
o:ca-certificates
m:Natanael Copa <ncopa@alpinelinux.org>
t:1720196436
c:ee6c8ac9d7dd6b1d40fa3b13b4c7b4a6f3e5d1a2
r:ca-certificates
F:etc
F:etc/ssl
F:etc/ssl/certs
R:ca-certificates.crt
Z:Q1Bu0ByRP7yKHu6DyG6ymMqLmvwxI=

C:Q1HmM8SAaIbvUDyV9YQCMYULc0Oqg=
P:alpine-baselayout-data
V:3.6.5-r0
A:x86_64
S:11235
I:77824
T:Alpine base dir structure and init scripts
U:https://git.alpinelinux.org/cgit/aports/tree/main/alpine-baselayout
L:GPL-2.0-only
o:alpine-baselayout
m:Natanael Copa <ncopa@alpinelinux.org>
t:1714981135
c:66187892e05b03a41d08e9acabd19b7576a1c875
r:alpine-baselayout
F:etc
R:fstab
Z:Q11Q7hNe8QpDS531guqCdrXBzoA/o=
R:hosts
Z:Q1K3K3tYeLsntRjk+A6QrSyjnnNkc=
`

// wolfi is shaped like usr/lib/apk/db/installed of a cgr.dev/chainguard image (merged /usr).
const wolfi = `C:Q1dMgcdfmAEmWsOrFzFqpMqDxCRV4=
P:glibc
V:2.40-r3
A:aarch64
S:3179431
I:10387456
T:the GNU C library
U:https://www.gnu.org/software/libc
L:LGPL-2.1-or-later
o:glibc
m:Chainguard <support@chainguard.dev>
t:1728497071
c:0d1af5f25d14fdc0f5a2e0a1b2a6c3b2e1f9c8d7
p:so:libc.so.6=6 so:ld-linux-aarch64.so.1=1
F:usr
F:usr/lib
R:libc.so.6
a:0:0:755
Z:Q1x5k4r3cQfR9s0m2OB2QmJYc5ihA=

C:Q1ePjhW2PLSxx8KJaR8l1JfUr7gJQ=
P:wolfi-baselayout
V:20230201-r15
A:aarch64
S:6453
I:24576
T:baselayout data for Wolfi
U:
L:MIT
o:wolfi-baselayout
m:Chainguard <support@chainguard.dev>
t:1724963733
F:etc
R:os-release
Z:Q1d8R3qYb4Q0qz7n8v4JpR6hU0p8M=
`

var cases = []sbomtest.Case{
	{
		Name: "alpine 3.20", Path: "lib/apk/db/installed", Content: []byte(alpine), WantCount: 5,
		Want: []sbom.Package{
			{Name: "musl", Version: "1.2.5-r0", Type: sbom.TypeAPK, Arch: "x86_64",
				Source: &sbom.Source{Name: "musl", Version: "1.2.5-r0"}, Licenses: []string{"MIT"}},
			{Name: "busybox", Version: "1.36.1-r29", Type: sbom.TypeAPK, Licenses: []string{"GPL-2.0-only"}},
			{Name: "libcrypto3", Version: "3.3.2-r0", Type: sbom.TypeAPK,
				Source: &sbom.Source{Name: "openssl", Version: "3.3.2-r0"}, Licenses: []string{"Apache-2.0"}},
			{Name: "ca-certificates-bundle", Version: "20240705-r0", Type: sbom.TypeAPK,
				Source: &sbom.Source{Name: "ca-certificates", Version: "20240705-r0"}, Licenses: []string{"MPL-2.0 AND MIT"}},
			{Name: "alpine-baselayout-data", Version: "3.6.5-r0", Type: sbom.TypeAPK},
		},
		WantOwners: []sbom.FileOwner{
			{Type: sbom.TypeAPK, Package: "musl", Paths: []string{"lib/ld-musl-x86_64.so.1", "lib/libc.musl-x86_64.so.1"}},
			{Type: sbom.TypeAPK, Package: "busybox", Paths: []string{"bin/busybox", "etc/securetty", "etc/udhcpd.conf", "etc/logrotate.d/acpid"}},
			{Type: sbom.TypeAPK, Package: "libcrypto3", Paths: []string{"etc/ssl/ct_log_list.cnf", "usr/lib/libcrypto.so.3"}},
		},
	},
	{
		Name: "wolfi merged usr", Path: "usr/lib/apk/db/installed", Content: []byte(wolfi), WantCount: 2,
		Want: []sbom.Package{
			{Name: "glibc", Version: "2.40-r3", Type: sbom.TypeAPK, Arch: "aarch64", Licenses: []string{"LGPL-2.1-or-later"}},
			{Name: "wolfi-baselayout", Version: "20230201-r15", Type: sbom.TypeAPK},
		},
		WantOwners: []sbom.FileOwner{{Type: sbom.TypeAPK, Package: "wolfi-baselayout", Paths: []string{"etc/os-release"}}},
	},
	{
		Name: "minimal record without origin", Path: "lib/apk/db/installed",
		Content:   []byte("P:scanelf\nV:1.3.7-r2\n"),
		WantCount: 1, Want: []sbom.Package{{Name: "scanelf", Version: "1.3.7-r2", Type: sbom.TypeAPK, Source: &sbom.Source{Name: "scanelf", Version: "1.3.7-r2"}}},
	},
	{
		Name: "partly broken", Path: "lib/apk/db/installed",
		Content: []byte("P:musl\nV:1.2.5-r0\nF:lib\nR:libc.so\n\nP:noversion\nA:x86_64\n\nnot a field at all\n\n" +
			"P:evil\nV:1\nF:../../etc\nR:passwd\nF:usr\nR:..\nR:ok\n"),
		WantCount: 2, WantWarning: true,
		Want:       []sbom.Package{{Name: "musl", Version: "1.2.5-r0", Type: sbom.TypeAPK}, {Name: "evil", Version: "1", Type: sbom.TypeAPK}},
		WantOwners: []sbom.FileOwner{{Type: sbom.TypeAPK, Package: "evil", Paths: []string{"usr/ok"}}},
	},
	{
		Name: "truncated last record", Path: "lib/apk/db/installed", Content: []byte(alpine[:strings.Index(alpine, "P:busybox")+11]),
		WantCount: 1, WantWarning: true,
	},
	{Name: "empty", Path: "lib/apk/db/installed", Content: nil},
	{Name: "garbage", Path: "lib/apk/db/installed", Content: []byte("garbage\n\nmore garbage\n"), WantErr: true},
	{Name: "binary", Path: "lib/apk/db/installed", Content: bytes.Repeat([]byte{0, 1, 2, 0xff}, 300), WantErr: true},
	{Name: "scripts tarball", Path: "lib/apk/db/scripts.tar", NoMatch: true},
	{Name: "elsewhere", Path: "home/user/lib/apk/db/installed", NoMatch: true},
}

func TestConformance(t *testing.T) { sbomtest.Run(t, New(), cases) }

func FuzzParse(f *testing.F) { sbomtest.Fuzz(f, New(), cases) }

func TestBounds(t *testing.T) {
	var b strings.Builder
	b.WriteString("P:big\nV:1\nF:usr/share\n")
	for i := 0; i < maxPaths+10; i++ {
		b.WriteString("R:f\n")
	}
	res, err := New().Parse(context.Background(), sbom.FileInfo{Path: "lib/apk/db/installed"}, strings.NewReader(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Owners) != 1 || len(res.Owners[0].Paths) != maxPaths || len(res.Warnings) == 0 {
		t.Errorf("got %d owners, %d warnings; want the paths capped at %d with a warning", len(res.Owners), len(res.Warnings), maxPaths)
	}
}

func TestLongLine(t *testing.T) {
	in := "P:a\nV:1\n\nP:b\nV:2\nT:" + strings.Repeat("x", maxLine+1) + "\n\nP:c\nV:3\n"
	res, err := New().Parse(context.Background(), sbom.FileInfo{Path: "lib/apk/db/installed"}, strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	// The record being read when the scanner gave up keeps the fields it had; c is lost.
	if len(res.Packages) != 2 || len(res.Warnings) == 0 {
		t.Errorf("got %v with warnings %v; want packages a and b and a warning", res.Packages, res.Warnings)
	}
}
