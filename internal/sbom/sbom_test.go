package sbom

import (
	"bytes"
	"strings"
	"testing"
)

func TestPURL(t *testing.T) {
	deb12 := &Release{ID: "debian", VersionID: "12"}
	cases := []struct {
		p    Package
		rel  *Release
		want string
	}{
		{Package{Name: "libc6", Version: "2.36-9+deb12u4", Type: TypeDeb, Arch: "amd64", Source: &Source{Name: "glibc"}}, deb12,
			"pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&distro=debian-12&upstream=glibc"},
		{Package{Name: "bash", Version: "5.2", Type: TypeDeb, Source: &Source{Name: "bash"}}, &Release{ID: "ubuntu", VersionID: "24.04"},
			"pkg:deb/ubuntu/bash@5.2?distro=ubuntu-24.04"},
		{Package{Name: "musl", Version: "1.2.5-r0", Type: TypeAPK, Arch: "x86_64"}, &Release{ID: "alpine", VersionID: "3.20.3"},
			"pkg:apk/alpine/musl@1.2.5-r0?arch=x86_64&distro=alpine-3.20.3"},
		{Package{Name: "openssl", Version: "1:3.0.7-27.el9", Type: TypeRPM, Arch: "x86_64"}, &Release{ID: "rhel", VersionID: "9.3"},
			"pkg:rpm/redhat/openssl@3.0.7-27.el9?arch=x86_64&distro=rhel-9.3&epoch=1"},
		{Package{Name: "golang.org/x/text", Version: "v0.3.7", Type: TypeGolang}, nil, "pkg:golang/golang.org/x/text@v0.3.7"},
		{Package{Name: "stdlib", Version: "1.22.3", Type: TypeGolang}, nil, "pkg:golang/stdlib@1.22.3"},
		{Package{Name: "@types/node", Version: "20.1.0", Type: TypeNPM}, nil, "pkg:npm/%40types/node@20.1.0"},
		{Package{Name: "PyYAML", Version: "6.0", Type: TypePyPI}, nil, "pkg:pypi/pyyaml@6.0"},
		{Package{Name: "zope.interface", Version: "6.0", Type: TypePyPI}, nil, "pkg:pypi/zope-interface@6.0"},
		{Package{Name: "org.apache.logging.log4j:log4j-core", Version: "2.14.1", Type: TypeMaven}, nil, "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1"},
		{Package{Name: "symfony/console", Version: "v6.3.0", Type: TypeComposer}, nil, "pkg:composer/symfony/console@v6.3.0"},
		{Package{Name: "serde", Version: "1.0.190", Type: TypeCargo}, nil, "pkg:cargo/serde@1.0.190"},
		{Package{Name: "Newtonsoft.Json", Version: "13.0.1", Type: TypeNuGet}, nil, "pkg:nuget/Newtonsoft.Json@13.0.1"},
		{Package{Name: "rack", Version: "3.0.8", Type: TypeGem}, nil, "pkg:gem/rack@3.0.8"},
	}
	for _, tc := range cases {
		if got := PURL(tc.p, tc.rel); got != tc.want {
			t.Errorf("PURL(%s %s) = %s, want %s", tc.p.Type, tc.p.Name, got, tc.want)
		}
	}
}

func TestValidToken(t *testing.T) {
	for s, want := range map[string]bool{
		"libc6": true, "1:2.36-9+deb12u4": true, "": false, "a b": false, "a\nb": false,
		"a\x1b[31m": false, "\xff": false, strings.Repeat("a", 65): false, "ünïcode": true,
	} {
		if got := ValidToken(s, 64); got != want {
			t.Errorf("ValidToken(%q) = %v, want %v", s, got, want)
		}
	}
	if !ValidText("MIT or Apache 2.0", 64) || ValidText("two\nlines", 64) {
		t.Error("ValidText accepts spaces, not newlines")
	}
}

func TestReadAll(t *testing.T) {
	got, err := ReadAll(bytes.NewReader([]byte("\xef\xbb\xbf{}")), 10)
	if err != nil || string(got) != "{}" {
		t.Fatalf("ReadAll with BOM = %q, %v", got, err)
	}
	if _, err := ReadAll(bytes.NewReader(make([]byte, 11)), 10); err == nil {
		t.Fatal("ReadAll read past its limit")
	}
}
