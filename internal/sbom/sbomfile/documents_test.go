package sbomfile_test

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/moatsec/moat/internal/sbom"
	"github.com/moatsec/moat/internal/sbom/sbomfile"
)

// pkgWant is a package as a test expects it, in a form easy to write: source is
// "name@version", layer is the layer index (-1 for none), locations are "path" or
// "path@layerDigest".
type pkgWant struct {
	name, version string
	typ           sbom.Type
	arch, source  string
	ownedBy       string
	foundBy       string
	layer         int
	locations     []string
}

func wantOf(p sbom.Package) pkgWant {
	w := pkgWant{name: p.Name, version: p.Version, typ: p.Type, arch: p.Arch, ownedBy: p.OwnedBy, foundBy: p.FoundBy, layer: -1}
	if p.Source != nil {
		w.source = p.Source.Name + "@" + p.Source.Version
	}
	if p.Layer != nil {
		w.layer = p.Layer.Index
	}
	for _, l := range p.Locations {
		s := l.Path
		if l.LayerDigest != "" {
			s += "@" + l.LayerDigest
		}
		w.locations = append(w.locations, s)
	}
	return w
}

// TestDocuments reads SBOMs written in the shape Trivy, Syft and CycloneDX's own tools give
// them (testdata/*), in every format moat reads.
func TestDocuments(t *testing.T) {
	tests := []struct {
		file     string
		format   sbomfile.Format
		tool     sbom.Tool
		image    sbom.ImageInfo // Source and Layers are not compared
		layers   int
		distro   *sbom.Release
		pkgs     []pkgWant
		warnings []string
	}{
		{
			file:   "trivy-alpine.cdx.json",
			format: sbomfile.FormatCycloneDXJSON,
			tool:   sbom.Tool{Name: "trivy", Version: "0.53.0"},
			image: sbom.ImageInfo{
				Name:        "registry.example.org/shop/shop-api:2.1",
				Digest:      digest("d1"),
				ID:          digest("1d"),
				RepoTags:    []string{"registry.example.org/shop/shop-api:2.1"},
				RepoDigests: []string{"registry.example.org/shop/shop-api@" + digest("d1")},
			},
			layers: 2,
			distro: &sbom.Release{ID: "alpine", VersionID: "3.20.1"},
			pkgs: []pkgWant{
				{name: "libcrypto3", version: "3.3.1-r0", typ: sbom.TypeAPK, arch: "x86_64", source: "openssl@3.3.1-r0", foundBy: "sbom", layer: 0},
				{name: "musl", version: "1.2.5-r0", typ: sbom.TypeAPK, arch: "x86_64", source: "musl@1.2.5-r0", foundBy: "sbom", layer: 0},
				{name: "@babel/core", version: "7.24.7", typ: sbom.TypeNPM, foundBy: "sbom", layer: 1,
					locations: []string{"/app/node_modules/@babel/core/package.json@" + digest("a1")}},
				{name: "github.com/BurntSushi/toml", version: "v1.4.0", typ: sbom.TypeGolang, foundBy: "sbom", layer: 1,
					locations: []string{"/app/bin/api@" + digest("a1")}},
				{name: "stdlib", version: "1.22.4", typ: sbom.TypeGolang, foundBy: "sbom", layer: 1,
					locations: []string{"/app/bin/api@" + digest("a1")}},
			},
		},
		{
			file:   "syft-debian.cdx.json",
			format: sbomfile.FormatCycloneDXJSON,
			tool:   sbom.Tool{Name: "syft", Version: "1.9.0"},
			image:  sbom.ImageInfo{Name: "python:3.11-slim", Digest: digest("d2")},
			distro: &sbom.Release{ID: "debian", VersionID: "12", VersionCodename: "bookworm", PrettyName: "Debian GNU/Linux 12 (bookworm)"},
			pkgs: []pkgWant{
				{name: "libssl3", version: "3.0.13-1~deb12u1", typ: sbom.TypeDeb, arch: "amd64", source: "openssl@3.0.13-1~deb12u1",
					foundBy: "dpkg-db-cataloger", layer: -1, locations: []string{"/var/lib/dpkg/status@" + digest("c0")}},
				{name: "libgcc-s1", version: "12.2.0-14", typ: sbom.TypeDeb, arch: "amd64", source: "gcc-12@12.2.0-14",
					foundBy: "dpkg-db-cataloger", layer: -1, locations: []string{"/var/lib/dpkg/status@" + digest("c0")}},
				{name: "zlib1g", version: "1:1.2.13.dfsg-1", typ: sbom.TypeDeb, arch: "amd64", source: "zlib@1:1.2.13.dfsg-1",
					foundBy: "dpkg-db-cataloger", layer: -1, locations: []string{"/var/lib/dpkg/status@" + digest("c0")}},
				{name: "PyYAML", version: "6.0.1", typ: sbom.TypePyPI, foundBy: "python-installed-package-cataloger", layer: -1,
					locations: []string{"/usr/lib/python3/dist-packages/PyYAML-6.0.1.dist-info/METADATA@" + digest("c1")}},
			},
			warnings: []string{
				`left out 1 component without a package URL (first: "vendored-helper")`,
				`left out packages of types moat does not match: "generic" (1)`,
			},
		},
		{
			file:   "nested-maven.cdx.xml",
			format: sbomfile.FormatCycloneDXXML,
			tool:   sbom.Tool{Name: "CycloneDX Maven plugin", Version: "2.7.11"},
			image:  sbom.ImageInfo{Name: "orders"},
			pkgs: []pkgWant{
				{name: "org.springframework.boot:spring-boot", version: "3.2.5", typ: sbom.TypeMaven, foundBy: "sbom", layer: -1},
				{name: "org.springframework:spring-core", version: "6.1.6", typ: sbom.TypeMaven, foundBy: "sbom", layer: -1},
				{name: "org.yaml:snakeyaml", version: "2.2", typ: sbom.TypeMaven, foundBy: "sbom", layer: -1},
				{name: "io.netty:netty-handler", version: "4.1.109.Final", typ: sbom.TypeMaven, foundBy: "sbom", layer: -1},
			},
		},
		{
			file:   "legacy-npm.cdx.json",
			format: sbomfile.FormatCycloneDXJSON,
			tool:   sbom.Tool{Name: "bom", Version: "3.1.1"},
			image:  sbom.ImageInfo{Name: "storefront"},
			pkgs: []pkgWant{
				{name: "@angular/core", version: "12.2.5", typ: sbom.TypeNPM, foundBy: "sbom", layer: -1},
				{name: "tslib", version: "2.3.1", typ: sbom.TypeNPM, foundBy: "sbom", layer: -1},
				{name: "left-pad", version: "1.3.0", typ: sbom.TypeNPM, foundBy: "sbom", layer: -1},
				{name: "storefront-ui", version: "0.9.0", typ: sbom.TypeNPM, foundBy: "sbom", layer: -1},
			},
		},
		{
			file:   "syft-rhel.spdx.json",
			format: sbomfile.FormatSPDXJSON,
			tool:   sbom.Tool{Name: "syft", Version: "1.9.0"},
			image:  sbom.ImageInfo{Name: "registry.access.redhat.com/ubi9/ubi:9.4", Digest: digest("d3")},
			distro: &sbom.Release{ID: "rhel", VersionID: "9.4"},
			pkgs: []pkgWant{
				{name: "openssl-libs", version: "1:3.0.7-27.el9", typ: sbom.TypeRPM, arch: "x86_64", source: "openssl@1:3.0.7-27.el9",
					foundBy: "sbom", layer: -1, locations: []string{"/var/lib/rpm/rpmdb.sqlite"}},
				{name: "python3-requests", version: "2.25.1-8.el9", typ: sbom.TypeRPM, arch: "noarch", source: "python-requests@2.25.1-8.el9",
					foundBy: "sbom", layer: -1, locations: []string{"/var/lib/rpm/rpmdb.sqlite"}},
				{name: "requests", version: "2.25.1", typ: sbom.TypePyPI, ownedBy: "rpm:python3-requests", foundBy: "sbom", layer: -1,
					locations: []string{"/usr/lib/python3.9/site-packages/requests-2.25.1-py3.9.egg-info/PKG-INFO"}},
			},
		},
		{
			file:   "trivy-ubuntu.spdx.json",
			format: sbomfile.FormatSPDXJSON,
			tool:   sbom.Tool{Name: "trivy", Version: "0.45.1"},
			image: sbom.ImageInfo{
				Name:        "ubuntu:22.04",
				Digest:      digest("d4"),
				ID:          digest("4d"),
				RepoTags:    []string{"ubuntu:22.04"},
				RepoDigests: []string{"ubuntu@" + digest("d4")},
			},
			layers: 2,
			distro: &sbom.Release{ID: "ubuntu", VersionID: "22.04"},
			pkgs: []pkgWant{
				{name: "libssl3", version: "3.0.2-0ubuntu1.15", typ: sbom.TypeDeb, arch: "amd64", source: "openssl@3.0.2-0ubuntu1.15", foundBy: "sbom", layer: 0},
				{name: "libcrypt1", version: "1:4.4.27-1", typ: sbom.TypeDeb, arch: "amd64", source: "libxcrypt@1:4.4.27-1", foundBy: "sbom", layer: 0},
				{name: "PyJWT", version: "2.3.0", typ: sbom.TypePyPI, foundBy: "sbom", layer: 1,
					locations: []string{"/usr/lib/python3/dist-packages/PyJWT-2.3.0.egg-info/PKG-INFO@" + digest("e1")}},
			},
		},
		{
			file:   "syft-alpine.spdx",
			format: sbomfile.FormatSPDXTagValue,
			tool:   sbom.Tool{Name: "syft", Version: "0.105.0"},
			image:  sbom.ImageInfo{Name: "alpine:3.19", Digest: digest("d5")},
			distro: &sbom.Release{ID: "alpine", VersionID: "3.19.1"},
			pkgs: []pkgWant{
				{name: "alpine-baselayout", version: "3.4.3-r2", typ: sbom.TypeAPK, arch: "x86_64", source: "alpine-baselayout@3.4.3-r2",
					foundBy: "sbom", layer: -1, locations: []string{"/lib/apk/db/installed"}},
				{name: "ssl_client", version: "3.1.4-r5", typ: sbom.TypeAPK, arch: "x86_64", source: "openssl@3.1.4-r5",
					foundBy: "sbom", layer: -1, locations: []string{"/lib/apk/db/installed"}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			path := filepath.Join("testdata", tt.file)
			data := readFile(t, path)
			if f, err := sbomfile.DetectFormat(data); err != nil || f != tt.format {
				t.Errorf("DetectFormat = %q, %v; want %q", f, err, tt.format)
			}
			inv, err := sbomfile.Read(context.Background(), path)
			if err != nil {
				t.Fatal(err)
			}
			checkInventory(t, inv)
			if inv.Tool != tt.tool {
				t.Errorf("tool = %+v, want %+v", inv.Tool, tt.tool)
			}
			if inv.Created.IsZero() {
				t.Errorf("no creation time")
			}
			img := inv.Image
			if len(img.Layers) != tt.layers {
				t.Errorf("%d layers, want %d", len(img.Layers), tt.layers)
			}
			img.Source, img.Layers = "", nil
			if !reflect.DeepEqual(img, tt.image) {
				t.Errorf("image:\n got %+v\nwant %+v", img, tt.image)
			}
			if !reflect.DeepEqual(inv.Distro, tt.distro) {
				t.Errorf("distro = %+v, want %+v", inv.Distro, tt.distro)
			}
			var got []pkgWant
			for _, p := range inv.Packages {
				got = append(got, wantOf(p))
			}
			if !reflect.DeepEqual(got, tt.pkgs) {
				t.Errorf("packages:\n%s", diffPackages(got, tt.pkgs))
			}
			var warnings []string
			for _, w := range inv.Warnings {
				warnings = append(warnings, w.Message)
			}
			if !reflect.DeepEqual(warnings, tt.warnings) {
				t.Errorf("warnings = %q, want %q", warnings, tt.warnings)
			}
		})
	}
}

func diffPackages(got, want []pkgWant) string {
	var b strings.Builder
	for i := range max(len(got), len(want)) {
		var g, w string
		if i < len(got) {
			g = fmt.Sprintf("%+v", got[i])
		}
		if i < len(want) {
			w = fmt.Sprintf("%+v", want[i])
		}
		if g != w {
			fmt.Fprintf(&b, "  %d:\n     got %s\n    want %s\n", i, g, w)
		}
	}
	return b.String()
}

// TestSmallDocuments covers shapes the files in testdata do not: Trivy's RPM source packages
// and distribution names, Syft's codename-only distro qualifier, and SPDX tool names.
func TestSmallDocuments(t *testing.T) {
	cdx := func(components ...string) string {
		return `{"bomFormat": "CycloneDX", "specVersion": "1.5", "components": [` + strings.Join(components, ",") + `]}`
	}
	spdxTool := func(creator string) string {
		return `{"spdxVersion": "SPDX-2.3", "SPDXID": "SPDXRef-DOCUMENT", "name": "x", "creationInfo": {"created": "2024-01-01T00:00:00Z", "creators": ["` + creator + `"]}}`
	}
	tests := []struct {
		name   string
		data   string
		tool   sbom.Tool
		distro *sbom.Release
		pkgs   []pkgWant
	}{
		{
			name: "Trivy RPM",
			data: cdx(`{"type": "operating-system", "name": "redhat", "version": "9.4"}`,
				`{"type": "library", "name": "openssl-libs", "version": "1:3.0.7-27.el9",
				  "purl": "pkg:rpm/redhat/openssl-libs@3.0.7-27.el9?arch=x86_64&epoch=1&distro=redhat-9.4",
				  "properties": [
				    {"name": "aquasecurity:trivy:SrcName", "value": "openssl"},
				    {"name": "aquasecurity:trivy:SrcVersion", "value": "3.0.7"},
				    {"name": "aquasecurity:trivy:SrcRelease", "value": "27.el9"},
				    {"name": "aquasecurity:trivy:SrcEpoch", "value": "1"}]}`),
			distro: &sbom.Release{ID: "rhel", VersionID: "9.4"},
			pkgs: []pkgWant{{name: "openssl-libs", version: "1:3.0.7-27.el9", typ: sbom.TypeRPM, arch: "x86_64",
				source: "openssl@1:3.0.7-27.el9", foundBy: "sbom", layer: -1}},
		},
		{
			name:   "Trivy Amazon Linux 2",
			data:   cdx(`{"type": "operating-system", "name": "amazon", "version": "2 (Karoo)"}`),
			distro: &sbom.Release{ID: "amzn", VersionID: "2"},
		},
		{
			name:   "Syft codename qualifier",
			data:   cdx(`{"type": "library", "name": "bash", "version": "5.2.15-2+b2", "purl": "pkg:deb/debian/bash@5.2.15-2%2Bb2?arch=amd64&distro=bookworm"}`),
			distro: &sbom.Release{ID: "debian", VersionCodename: "bookworm"},
			pkgs: []pkgWant{{name: "bash", version: "5.2.15-2+b2", typ: sbom.TypeDeb, arch: "amd64",
				source: "bash@5.2.15-2+b2", foundBy: "sbom", layer: -1}},
		},
		{name: "tool with a dash", data: spdxTool("Tool: sbom-tool-2.2.1"), tool: sbom.Tool{Name: "sbom-tool", Version: "2.2.1"}},
		{name: "tool with a v", data: spdxTool("Tool: cdxgen-v10.2.1"), tool: sbom.Tool{Name: "cdxgen", Version: "v10.2.1"}},
		{name: "tool without a version", data: spdxTool("Tool: custom"), tool: sbom.Tool{Name: "custom"}},
		{name: "moat without a version number", data: spdxTool("Tool: moat-dev"), tool: sbom.Tool{Name: "moat", Version: "dev"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv, err := sbomfile.Decode([]byte(tt.data), "bom.json")
			if err != nil {
				t.Fatal(err)
			}
			checkInventory(t, inv)
			if inv.Tool != tt.tool {
				t.Errorf("tool = %+v, want %+v", inv.Tool, tt.tool)
			}
			if !reflect.DeepEqual(inv.Distro, tt.distro) {
				t.Errorf("distro = %+v, want %+v", inv.Distro, tt.distro)
			}
			var got []pkgWant
			for _, p := range inv.Packages {
				got = append(got, wantOf(p))
			}
			if !reflect.DeepEqual(got, tt.pkgs) {
				t.Errorf("packages:\n%s", diffPackages(got, tt.pkgs))
			}
		})
	}
}
