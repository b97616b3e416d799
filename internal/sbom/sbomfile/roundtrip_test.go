package sbomfile_test

import (
	"bytes"
	"cmp"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moatsec/moat/internal/report"
	"github.com/moatsec/moat/internal/sbom"
	"github.com/moatsec/moat/internal/sbom/sbomfile"
)

// digest is a fake sha256 digest made of one repeated hex byte.
func digest(b string) string { return "sha256:" + strings.Repeat(b, 32) }

// roundTripInventory is an inventory with what vulnerability matching needs from every
// ecosystem: OS packages with source packages and an epoch, an OS-owned language package,
// names that package URLs respell (npm scope, Maven group, Go module path with capitals,
// PyPI name with capitals), a package found twice, metadata, a package without a package URL,
// layers, a distribution and warnings.
func roundTripInventory() *sbom.Inventory {
	layers := []sbom.LayerRef{
		{Index: 0, Digest: digest("10"), DiffID: digest("20"), CreatedBy: "debootstrap --variant=minbase bookworm"},
		{Index: 1, Digest: digest("11"), DiffID: digest("21"), CreatedBy: "RUN apt-get install -y python3-yaml"},
		{Index: 2, Digest: digest("12"), DiffID: digest("22"), CreatedBy: "COPY app/ /app"},
	}
	created := time.Date(2024, 5, 30, 8, 30, 0, 0, time.UTC)
	distro := &sbom.Release{
		ID:              "debian",
		VersionID:       "12",
		VersionCodename: "bookworm",
		PrettyName:      "Debian GNU/Linux 12 (bookworm)",
		Source:          "/etc/os-release",
	}
	at := func(path string, l int) []sbom.Location {
		return []sbom.Location{{Path: path, LayerDigest: layers[l].DiffID}}
	}
	pkgs := []sbom.Package{
		{Name: "libssl3", Version: "3.0.13-1~deb12u1", Type: sbom.TypeDeb, Arch: "amd64",
			Source: &sbom.Source{Name: "openssl", Version: "3.0.13-1~deb12u1"}, Licenses: []string{"Apache-2.0"},
			Locations: at("/var/lib/dpkg/status", 1), Layer: &layers[1], FoundBy: "dpkg"},
		{Name: "zlib1g", Version: "1:1.2.13.dfsg-1", Type: sbom.TypeDeb, Arch: "amd64",
			Source:    &sbom.Source{Name: "zlib", Version: "1:1.2.13.dfsg-1"},
			Locations: at("/var/lib/dpkg/status", 0), Layer: &layers[0], FoundBy: "dpkg"},
		{Name: "python3-yaml", Version: "6.0-3+b2", Type: sbom.TypeDeb, Arch: "amd64",
			Source:    &sbom.Source{Name: "pyyaml", Version: "6.0-3"},
			Locations: at("/var/lib/dpkg/status", 1), Layer: &layers[1], FoundBy: "dpkg"},
		{Name: "PyYAML", Version: "6.0", Type: sbom.TypePyPI, Licenses: []string{"MIT"},
			Locations: at("/usr/lib/python3/dist-packages/PyYAML-6.0.egg-info/PKG-INFO", 1),
			Layer:     &layers[1], OwnedBy: "deb:python3-yaml", FoundBy: "python"},
		{Name: "@types/node", Version: "20.11.5", Type: sbom.TypeNPM, Licenses: []string{"MIT"},
			Locations: at("/app/node_modules/@types/node/package.json", 2), Layer: &layers[2], FoundBy: "npm"},
		{Name: "lodash", Version: "4.17.21", Type: sbom.TypeNPM,
			Locations: at("/app/node_modules/lodash/package.json", 2), Layer: &layers[2], FoundBy: "npm"},
		{Name: "lodash", Version: "4.17.21", Type: sbom.TypeNPM,
			Locations: at("/app/node_modules/legacy/node_modules/lodash/package.json", 2), Layer: &layers[2], FoundBy: "npm"},
		{Name: "org.apache.commons:commons-lang3", Version: "3.14.0", Type: sbom.TypeMaven,
			Locations: at("/app/lib/commons-lang3-3.14.0.jar", 2), Layer: &layers[2], FoundBy: "java-archive",
			Metadata: map[string]string{"manifestTitle": "Apache Commons Lang"}},
		{Name: "github.com/BurntSushi/toml", Version: "v1.3.2", Type: sbom.TypeGolang,
			Locations: at("/app/bin/server", 2), Layer: &layers[2], FoundBy: "go-binary"},
		{Name: "stdlib", Version: "1.22.3", Type: sbom.TypeGolang,
			Locations: at("/app/bin/server", 2), Layer: &layers[2], FoundBy: "go-binary",
			Metadata: map[string]string{"goToolchain": "go1.22.3"}},
		{Name: "serde", Version: "1.0.197", Type: sbom.TypeCargo,
			Locations: at("/app/bin/server", 2), Layer: &layers[2], FoundBy: "cargo-auditable"},
		{Name: "rails", Version: "7.1.3", Type: sbom.TypeGem,
			Locations: at("/usr/local/bundle/specifications/rails-7.1.3.gemspec", 2), Layer: &layers[2], FoundBy: "gemspec"},
		{Name: "symfony/console", Version: "v6.4.4", Type: sbom.TypeComposer,
			Locations: at("/app/vendor/composer/installed.json", 2), Layer: &layers[2], FoundBy: "composer"},
		{Name: "Newtonsoft.Json", Version: "13.0.3", Type: sbom.TypeNuGet,
			Locations: at("/app/App.deps.json", 2), Layer: &layers[2], FoundBy: "dotnet"},
	}
	for i := range pkgs {
		pkgs[i].PURL = sbom.PURL(pkgs[i], distro)
	}
	// A package without a package URL: moat's CycloneDX still says what it is.
	pkgs = append(pkgs, sbom.Package{Name: "acme/internal", Version: "1.0.0", Type: sbom.TypeComposer,
		Locations: at("/app/vendor/composer/installed.json", 2), Layer: &layers[2], FoundBy: "composer"})
	return &sbom.Inventory{
		SchemaVersion: sbom.SchemaVersion,
		Tool:          sbom.Tool{Name: "moat", Version: "0.4.0"},
		Created:       time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC),
		Image: sbom.ImageInfo{
			Name:        "registry.example.com/team/app:1.4",
			Source:      "registry",
			Reference:   "registry.example.com/team/app@" + digest("ab"),
			Digest:      digest("ab"),
			ID:          digest("cd"),
			Platform:    "linux/amd64",
			Created:     &created,
			Layers:      layers,
			RepoTags:    []string{"registry.example.com/team/app:1.4"},
			RepoDigests: []string{"registry.example.com/team/app@" + digest("ab")},
		},
		Distro:   distro,
		Packages: pkgs,
		Warnings: []sbom.Warning{
			{Layer: layers[1].DiffID, Path: "var/lib/dpkg/status", Message: "skipped 1 malformed entry"},
			{Path: "app/node_modules/broken/package.json", Message: "parsing package.json: unexpected end of JSON input"},
		},
	}
}

// write encodes inv with moat's own writer.
func write(t testing.TB, f report.Format, inv *sbom.Inventory) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := report.WriteInventory(&buf, f, inv, report.Options{}); err != nil {
		t.Fatalf("WriteInventory(%s): %v", f, err)
	}
	return buf.Bytes()
}

// sorted orders packages the way moat's CycloneDX and SPDX writers do.
func sorted(pkgs []sbom.Package) []sbom.Package {
	out := slices.Clone(pkgs)
	slices.SortStableFunc(out, func(a, b sbom.Package) int {
		return cmp.Or(cmp.Compare(a.Type, b.Type), cmp.Compare(a.Name, b.Name), cmp.Compare(a.Version, b.Version),
			cmp.Compare(a.PURL, b.PURL), cmp.Compare(firstPath(a), firstPath(b)))
	})
	return out
}

func firstPath(p sbom.Package) string {
	if len(p.Locations) == 0 {
		return ""
	}
	return p.Locations[0].Path
}

// essentials is what a package must keep through a format.
type essentials struct {
	Name, Version, PURL, Arch, OwnedBy, FoundBy string
	Type                                        sbom.Type
	Source                                      sbom.Source
	Layer                                       sbom.LayerRef
	Locations                                   []sbom.Location
	Licenses                                    []string
	Metadata                                    map[string]string
}

func essentialsOf(p sbom.Package) essentials {
	e := essentials{Name: p.Name, Version: p.Version, PURL: p.PURL, Arch: p.Arch, OwnedBy: p.OwnedBy,
		FoundBy: p.FoundBy, Type: p.Type, Licenses: p.Licenses, Metadata: p.Metadata}
	if p.Source != nil {
		e.Source = *p.Source
	}
	if p.Layer != nil {
		e.Layer = *p.Layer
	}
	e.Locations = append([]sbom.Location{}, p.Locations...)
	return e
}

func TestRoundTripJSON(t *testing.T) {
	want := roundTripInventory()
	got, err := sbomfile.Decode(write(t, report.FormatJSON, want), "app.json")
	if err != nil {
		t.Fatal(err)
	}
	want.Image.Source = sbomfile.ImageSource
	if !reflect.DeepEqual(got, want) {
		t.Errorf("moat JSON round trip changed the inventory:\n got %+v\nwant %+v", got, want)
		for i := range min(len(got.Packages), len(want.Packages)) {
			if !reflect.DeepEqual(got.Packages[i], want.Packages[i]) {
				t.Errorf("package %d:\n got %+v\nwant %+v", i, got.Packages[i], want.Packages[i])
			}
		}
	}
}

func TestRoundTripCycloneDX(t *testing.T) {
	want := roundTripInventory()
	got, err := sbomfile.Decode(write(t, report.FormatCycloneDXJSON, want), "app.cdx.json")
	if err != nil {
		t.Fatal(err)
	}
	if got.Tool != want.Tool || !got.Created.Equal(want.Created) {
		t.Errorf("tool %+v created %v, want %+v %v", got.Tool, got.Created, want.Tool, want.Created)
	}
	wantImage := want.Image
	wantImage.Source = sbomfile.ImageSource
	if !reflect.DeepEqual(got.Image, wantImage) {
		t.Errorf("image:\n got %+v\nwant %+v", got.Image, wantImage)
	}
	if !reflect.DeepEqual(got.Distro, want.Distro) {
		t.Errorf("distro = %+v, want %+v", got.Distro, want.Distro)
	}
	comparePackages(t, got.Packages, sorted(want.Packages), essentialsOf)
	if len(got.Warnings) != len(want.Warnings) {
		t.Fatalf("warnings = %+v, want %d", got.Warnings, len(want.Warnings))
	}
	for i, w := range want.Warnings {
		if !strings.Contains(got.Warnings[i].Message, w.Message) || !strings.Contains(got.Warnings[i].Message, w.Path) {
			t.Errorf("warning %d = %q, want it to carry %q and %q", i, got.Warnings[i].Message, w.Path, w.Message)
		}
	}
}

func TestRoundTripSPDX(t *testing.T) {
	want := roundTripInventory()
	got, err := sbomfile.Decode(write(t, report.FormatSPDXJSON, want), "app.spdx.json")
	if err != nil {
		t.Fatal(err)
	}
	if got.Tool != want.Tool || !got.Created.Equal(want.Created) {
		t.Errorf("tool %+v created %v, want %+v %v", got.Tool, got.Created, want.Tool, want.Created)
	}
	if got.Image.Name != want.Image.Name || got.Image.Digest != want.Image.Digest || got.Image.Source != sbomfile.ImageSource {
		t.Errorf("image = %+v", got.Image)
	}
	wantDistro := sbom.Release{ID: "debian", VersionID: "12", PrettyName: want.Distro.PrettyName}
	if got.Distro == nil || !reflect.DeepEqual(*got.Distro, wantDistro) {
		t.Errorf("distro = %+v, want %+v", got.Distro, wantDistro)
	}
	// SPDX carries the layer's index and diffID, and the paths without their layers; moat's
	// SPDX has no type for a package without a package URL, so that one is left out.
	spdxEssentials := func(p sbom.Package) essentials {
		e := essentialsOf(p)
		e.Licenses, e.Metadata = nil, nil
		e.Layer = sbom.LayerRef{Index: e.Layer.Index, DiffID: e.Layer.DiffID}
		for i := range e.Locations {
			e.Locations[i].LayerDigest = ""
		}
		return e
	}
	var withPURL []sbom.Package
	for _, p := range sorted(want.Packages) {
		if p.PURL != "" {
			withPURL = append(withPURL, p)
		}
	}
	comparePackages(t, got.Packages, withPURL, spdxEssentials)
	if len(got.Warnings) != 1 || !strings.Contains(got.Warnings[0].Message, `without a package URL (first: "acme/internal")`) {
		t.Errorf("warnings = %+v, want one for acme/internal", got.Warnings)
	}
}

func comparePackages(t *testing.T, got, want []sbom.Package, view func(sbom.Package) essentials) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%d packages, want %d", len(got), len(want))
	}
	for i := range min(len(got), len(want)) {
		if g, w := view(got[i]), view(want[i]); !reflect.DeepEqual(g, w) {
			t.Errorf("package %d:\n got %+v\nwant %+v", i, g, w)
		}
	}
}

// TestRoundTripHostile writes an inventory full of what a hostile image can declare with
// every moat writer: reading it back must drop what is unsafe and keep the rest.
func TestRoundTripHostile(t *testing.T) {
	for _, f := range []report.Format{report.FormatJSON, report.FormatCycloneDXJSON, report.FormatSPDXJSON} {
		t.Run(string(f), func(t *testing.T) {
			inv, err := sbomfile.Decode(write(t, f, hostileInventory()), "hostile")
			if err != nil {
				t.Fatal(err)
			}
			checkInventory(t, inv)
			var names []string
			for _, p := range inv.Packages {
				names = append(names, p.Name)
			}
			slices.Sort(names)
			// JSON encoders write invalid UTF-8 as U+FFFD, which makes a valid name.
			if want := []string{"bad\uFFFDutf8", "ok"}; !slices.Equal(names, want) {
				t.Errorf("packages = %q, want %q", names, want)
			}
			if len(inv.Warnings) == 0 {
				t.Errorf("no warning about the packages left out")
			}
		})
	}
}

func hostileInventory() *sbom.Inventory {
	long := strings.Repeat("a", 5000)
	pkgs := []sbom.Package{
		{Name: "red\x1b[31mpkg", Version: "1", Type: sbom.TypeNPM},
		{Name: long, Version: "1", Type: sbom.TypeNPM},
		{Name: "newline", Version: "1\n2", Type: sbom.TypeNPM},
		{Name: "bad\xffutf8", Version: "1", Type: sbom.TypePyPI},
		{Name: "", Version: "", Type: sbom.TypeCargo},
		{Name: "ok", Version: "1.0", Type: sbom.TypeCargo, OwnedBy: "apk:\x1b", Licenses: []string{"MIT\x07"},
			Metadata: map[string]string{"k\n": "v", "ok": "\x1b[2J"}},
	}
	for i := range pkgs {
		pkgs[i].FoundBy = "test"
		pkgs[i].PURL = sbom.PURL(pkgs[i], nil)
	}
	return &sbom.Inventory{
		SchemaVersion: sbom.SchemaVersion,
		Tool:          sbom.Tool{Name: "moat", Version: "0.4.0"},
		Image:         sbom.ImageInfo{Name: "evil\x1b]0;pwned\x07:latest", Source: "dir"},
		Distro:        &sbom.Release{ID: "alp\u202eine\n", PrettyName: "Alpine\x1b[2J"},
		Packages:      pkgs,
		Warnings:      []sbom.Warning{{Message: "line1\nline2\x1b[0m"}},
	}
}

// checkInventory checks what every inventory Decode returns must satisfy, whatever it read.
func checkInventory(t testing.TB, inv *sbom.Inventory) {
	t.Helper()
	if inv == nil {
		t.Fatal("nil inventory without an error")
		return
	}
	if inv.SchemaVersion != sbom.SchemaVersion || inv.Image.Source != sbomfile.ImageSource || inv.Image.Name == "" {
		t.Errorf("inventory header = %q %+v", inv.SchemaVersion, inv.Image)
	}
	valid := func(what, s string) {
		if !sbom.ValidToken(s, sbom.DefaultMaxToken) {
			t.Errorf("%s %q is not a valid token", what, s)
		}
	}
	if inv.Distro != nil {
		valid("distro ID", inv.Distro.ID)
	}
	known := []sbom.Type{sbom.TypeDeb, sbom.TypeAPK, sbom.TypeRPM, sbom.TypeGolang, sbom.TypeNPM,
		sbom.TypePyPI, sbom.TypeMaven, sbom.TypeCargo, sbom.TypeGem, sbom.TypeComposer, sbom.TypeNuGet}
	for _, p := range inv.Packages {
		if !slices.Contains(known, p.Type) {
			t.Errorf("package %q has type %q", p.Name, p.Type)
		}
		valid("name", p.Name)
		valid("version", p.Version)
		valid("foundBy", p.FoundBy)
		if p.Source != nil {
			valid("source name", p.Source.Name)
		}
		if p.Type.IsOS() && p.Source == nil {
			t.Errorf("OS package %q has no source package", p.Name)
		}
		for _, l := range p.Locations {
			if !strings.HasPrefix(l.Path, "/") || !sbom.ValidText(l.Path, sbom.DefaultMaxToken) {
				t.Errorf("package %q location %q", p.Name, l.Path)
			}
		}
		for _, l := range p.Licenses {
			if !sbom.ValidText(l, sbom.DefaultMaxToken) {
				t.Errorf("package %q license %q", p.Name, l)
			}
		}
		for k, v := range p.Metadata {
			valid("metadata key", k)
			if !sbom.ValidText(v, sbom.DefaultMaxToken) {
				t.Errorf("package %q metadata %q", p.Name, v)
			}
		}
		if p.OwnedBy != "" {
			typ, name, _ := strings.Cut(p.OwnedBy, ":")
			if !sbom.Type(typ).IsOS() {
				t.Errorf("package %q ownedBy %q", p.Name, p.OwnedBy)
			}
			valid("owner", name)
		}
	}
	for _, w := range inv.Warnings {
		if w.Message == "" || strings.ContainsFunc(w.Message, func(r rune) bool { return r < ' ' || r == 0x7f }) {
			t.Errorf("warning %q", w.Message)
		}
	}
	if !sbom.ValidText(inv.Image.Name, sbom.DefaultMaxToken) {
		t.Errorf("image name %q", inv.Image.Name)
	}
}
