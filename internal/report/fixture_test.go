package report

import (
	"strings"
	"time"

	"github.com/moatsec/moat/internal/sbom"
)

// dg is a fake sha256 digest made of one repeated hex byte.
func dg(b string) string { return "sha256:" + strings.Repeat(b, 32) }

// testInventory is a hand-built inventory that uses every field: OS and language packages
// from several layers, an OS-owned language package, two copies of one npm package, licenses
// of every kind, a package without a package URL, a distribution and warnings. The packages
// are deliberately out of order.
func testInventory() *sbom.Inventory {
	layers := []sbom.LayerRef{
		{Index: 0, Digest: dg("10"), DiffID: dg("20"), CreatedBy: "/bin/sh -c #(nop) ADD file:6d5b2a in / "},
		{Index: 1, Digest: dg("11"), DiffID: dg("21"), CreatedBy: "RUN apt-get update && apt-get install -y libssl3 python3-yaml"},
		{Index: 2, Digest: dg("12"), DiffID: dg("22"), CreatedBy: "COPY app /app # buildkit"},
	}
	imageCreated := time.Date(2024, 5, 30, 8, 30, 0, 0, time.UTC)
	status := func(l int) []sbom.Location {
		return []sbom.Location{{Path: "/var/lib/dpkg/status", LayerDigest: layers[l].DiffID}}
	}
	at := func(path string, l int) []sbom.Location {
		return []sbom.Location{{Path: path, LayerDigest: layers[l].DiffID}}
	}
	return &sbom.Inventory{
		SchemaVersion: sbom.SchemaVersion,
		Tool:          sbom.Tool{Name: "moat", Version: "0.1.0-test"},
		Created:       time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC),
		Image: sbom.ImageInfo{
			Name:        "registry.example.com/team/app:1.4",
			Source:      "registry",
			Reference:   "registry.example.com/team/app@" + dg("ab"),
			Digest:      dg("ab"),
			ID:          dg("cd"),
			Platform:    "linux/amd64",
			Created:     &imageCreated,
			Layers:      layers,
			RepoTags:    []string{"registry.example.com/team/app:1.4"},
			RepoDigests: []string{"registry.example.com/team/app@" + dg("ab")},
		},
		Distro: &sbom.Release{
			ID:              "debian",
			VersionID:       "12",
			VersionCodename: "bookworm",
			PrettyName:      "Debian GNU/Linux 12 (bookworm)",
			Source:          "/etc/os-release",
		},
		Packages: []sbom.Package{
			{
				Name: "lodash", Version: "4.17.21", Type: sbom.TypeNPM,
				PURL:      "pkg:npm/lodash@4.17.21",
				Licenses:  []string{"MIT"},
				Locations: at("/app/node_modules/lodash/package.json", 2),
				Layer:     &layers[2], FoundBy: "npm",
			},
			{
				Name: "libssl3", Version: "3.0.11-1~deb12u2", Type: sbom.TypeDeb,
				PURL:      "pkg:deb/debian/libssl3@3.0.11-1~deb12u2?arch=amd64&distro=debian-12",
				Arch:      "amd64",
				Source:    &sbom.Source{Name: "openssl", Version: "3.0.11-1~deb12u2"},
				Licenses:  []string{"Apache-2.0"},
				Locations: status(1), Layer: &layers[1], FoundBy: "dpkg",
			},
			{
				Name: "PyYAML", Version: "6.0", Type: sbom.TypePyPI,
				PURL:      "pkg:pypi/pyyaml@6.0",
				Licenses:  []string{"MIT"},
				Locations: at("/usr/lib/python3/dist-packages/PyYAML-6.0.egg-info/PKG-INFO", 1),
				Layer:     &layers[1], OwnedBy: "deb:python3-yaml", FoundBy: "python",
			},
			{
				Name: "python3-yaml", Version: "6.0-3+b2", Type: sbom.TypeDeb,
				PURL:      "pkg:deb/debian/python3-yaml@6.0-3%2Bb2?arch=amd64&distro=debian-12",
				Arch:      "amd64",
				Source:    &sbom.Source{Name: "pyyaml", Version: "6.0-3"},
				Locations: status(1), Layer: &layers[1], FoundBy: "dpkg",
			},
			{
				Name: "adduser", Version: "3.134", Type: sbom.TypeDeb,
				PURL:      "pkg:deb/debian/adduser@3.134?arch=all&distro=debian-12",
				Arch:      "all",
				Licenses:  []string{"GPL-2+"},
				Locations: status(0), Layer: &layers[0], FoundBy: "dpkg",
			},
			{
				Name: "lodash", Version: "4.17.21", Type: sbom.TypeNPM,
				PURL:      "pkg:npm/lodash@4.17.21",
				Licenses:  []string{"MIT"},
				Locations: at("/app/node_modules/legacy/node_modules/lodash/package.json", 2),
				Layer:     &layers[2], FoundBy: "npm",
			},
			{
				Name: "@types/node", Version: "20.11.5", Type: sbom.TypeNPM,
				PURL:      "pkg:npm/%40types/node@20.11.5",
				Licenses:  []string{"MIT OR Apache-2.0"},
				Locations: at("/app/node_modules/@types/node/package.json", 2),
				Layer:     &layers[2], FoundBy: "npm",
			},
			{
				Name: "org.apache.commons:commons-lang3", Version: "3.14.0", Type: sbom.TypeMaven,
				PURL:      "pkg:maven/org.apache.commons/commons-lang3@3.14.0",
				Licenses:  []string{"Apache License, Version 2.0"},
				Locations: at("/app/lib/commons-lang3-3.14.0.jar", 2),
				Layer:     &layers[2], FoundBy: "java-archive",
				Metadata: map[string]string{"manifestTitle": "Apache Commons Lang", "implementationVendor": "The Apache Software Foundation"},
			},
			{
				Name: "stdlib", Version: "1.22.3", Type: sbom.TypeGolang,
				PURL:      "pkg:golang/stdlib@1.22.3",
				Licenses:  []string{"BSD-3-Clause"},
				Locations: at("/app/bin/server", 2),
				Layer:     &layers[2], FoundBy: "go-binary",
				Metadata: map[string]string{"goToolchain": "go1.22.3"},
			},
			{
				Name: "bundler", Version: "2.5.6", Type: sbom.TypeGem,
				PURL:      "pkg:gem/bundler@2.5.6",
				Licenses:  []string{"MIT", "mit", "GPL-2.0-only WITH Classpath-exception-2.0"},
				Locations: at("/usr/local/bundle/specifications/bundler-2.5.6.gemspec", 2),
				Layer:     &layers[2], FoundBy: "gemspec",
			},
			{
				Name: "acme/internal", Version: "1.0.0", Type: sbom.TypeComposer,
				Licenses:  []string{"proprietary", "LicenseRef-Acme-EULA"},
				Locations: at("/app/vendor/composer/installed.json", 2),
				Layer:     &layers[2], FoundBy: "composer",
			},
		},
		Warnings: []sbom.Warning{
			{Layer: layers[1].DiffID, Path: "var/lib/dpkg/status", Message: "skipped 1 malformed entry"},
			{Path: "app/node_modules/broken/package.json", Message: "parsing package.json: unexpected end of JSON input"},
		},
	}
}

// emptyInventory is the least an inventory can hold: an image read from a directory, with no
// digest, no distribution and no packages.
func emptyInventory() *sbom.Inventory {
	return &sbom.Inventory{
		SchemaVersion: sbom.SchemaVersion,
		Tool:          sbom.Tool{Name: "moat", Version: "0.1.0-test"},
		Created:       time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC),
		Image:         sbom.ImageInfo{Name: "dir:./rootfs", Source: "dir"},
	}
}

// hostileInventory carries the kind of strings an attacker's image can put into package
// metadata: escape sequences, newlines, bidirectional overrides, invalid UTF-8, very long
// names and licenses that look like expressions but are not.
func hostileInventory() *sbom.Inventory {
	inv := emptyInventory()
	inv.Image.Name = "evil\x1b]0;pwned\x07:latest"
	inv.Distro = &sbom.Release{ID: "alp\u202eine", PrettyName: "Alpine\x1b[2J"}
	long := strings.Repeat("a", 5000)
	inv.Packages = []sbom.Package{
		{Name: "red\x1b[31mpkg", Version: "1\n2", Type: sbom.TypeAPK, FoundBy: "apk", Licenses: []string{"MIT AND", "(MIT", "MIT)"}},
		{Name: long, Version: long, Type: sbom.TypeNPM, FoundBy: "npm", PURL: "pkg:npm/" + long + "@1", Licenses: []string{long}},
		{Name: "bad\xffutf8", Version: "\t", Type: sbom.TypePyPI, FoundBy: "python", Licenses: []string{"GPL-2.0 WITH", "WITH MIT", "DocumentRef-x:LicenseRef-y", "LicenseRef-", "Apache-2.0+ OR (MIT AND (BSD-2-Clause OR ISC))"}},
		{Name: "", Version: "", Type: sbom.TypeCargo, FoundBy: "cargo", OwnedBy: "apk:missing", Licenses: []string{"NONE"}},
		{Name: "x", Version: "1", Type: sbom.TypeCargo, FoundBy: "cargo", Licenses: []string{"©©©", "NOASSERTION", "MIT"}},
		{Name: "x", Version: "1", Type: sbom.TypeCargo, FoundBy: "cargo", Licenses: []string{strings.Repeat("(", 40) + "MIT" + strings.Repeat(")", 40)}},
	}
	inv.Warnings = []sbom.Warning{{Message: "line1\nline2\x1b[0m"}}
	return inv
}
