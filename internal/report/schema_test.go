package report

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	cdx "github.com/CycloneDX/cyclonedx-go"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/moatsec/moat/internal/sbom"
	"github.com/moatsec/moat/internal/testutil"
)

// compile compiles the schema with id root from in-memory resources (no network).
func compile(t *testing.T, root string, resources map[string][]byte) *jsonschema.Schema {
	t.Helper()
	return testutil.CompileSchema(t, root, resources)
}

func validate(t *testing.T, s *jsonschema.Schema, doc []byte) error {
	t.Helper()
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		t.Fatalf("output is not JSON: %v", err)
	}
	return s.Validate(v)
}

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

const sbomSchemaID = "https://raw.githubusercontent.com/moatsec/moat/main/docs/formats/sbom.schema.json"

var inventories = map[string]func() *sbom.Inventory{
	"full":    testInventory,
	"empty":   emptyInventory,
	"hostile": hostileInventory,
}

func TestJSONMatchesSchema(t *testing.T) {
	s := compile(t, sbomSchemaID, map[string][]byte{sbomSchemaID: SBOMSchema})
	for name, inv := range inventories {
		if err := validate(t, s, write(t, FormatJSON, inv(), Options{})); err != nil {
			t.Errorf("%s inventory does not match sbom.schema.json: %v", name, err)
		}
	}
	// The schema rejects what it should.
	bad := map[string]func(*sbom.Inventory){
		"unknown version": func(inv *sbom.Inventory) { inv.SchemaVersion = "2.0" },
		"relative path":   func(inv *sbom.Inventory) { inv.Packages[0].Locations[0].Path = "var/lib/dpkg/status" },
		"bad digest":      func(inv *sbom.Inventory) { inv.Image.Digest = "not a digest" },
		"bad owner":       func(inv *sbom.Inventory) { inv.Packages[2].OwnedBy = "python3-yaml" },
	}
	for name, mutate := range bad {
		inv := testInventory()
		mutate(inv)
		if err := validate(t, s, write(t, FormatJSON, inv, Options{})); err == nil {
			t.Errorf("%s: schema accepted an invalid inventory", name)
		}
	}
}

func TestJSONRoundTrip(t *testing.T) {
	first := write(t, FormatJSON, testInventory(), Options{})
	var inv sbom.Inventory
	if err := json.Unmarshal(first, &inv); err != nil {
		t.Fatal(err)
	}
	if second := write(t, FormatJSON, &inv, Options{}); !bytes.Equal(first, second) {
		t.Error("json output read back and written again differs")
	}
}

// TestDocsSchemaInSync keeps docs/formats/sbom.schema.json identical to the embedded schema.
func TestDocsSchemaInSync(t *testing.T) {
	docs, err := os.ReadFile(filepath.Join("..", "..", "docs", "formats", "sbom.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(docs, SBOMSchema) {
		t.Error("docs/formats/sbom.schema.json differs from internal/report/schema/sbom.schema.json; copy the latter over the former")
	}
}

// TestSchemaMatchesInventoryTypes checks that every struct of the inventory has a definition
// in the schema with the same properties, and that exactly the fields without omitempty are
// required, so that a field added to the Go types cannot be forgotten in the schema.
func TestSchemaMatchesInventoryTypes(t *testing.T) {
	var schema struct {
		Defs map[string]struct {
			Properties map[string]json.RawMessage `json:"properties"`
			Required   []string                   `json:"required"`
		} `json:"$defs"`
	}
	if err := json.Unmarshal(SBOMSchema, &schema); err != nil {
		t.Fatal(err)
	}
	pkgPath := reflect.TypeFor[sbom.Inventory]().PkgPath()
	seen := map[reflect.Type]bool{}
	var walk func(reflect.Type)
	walk = func(rt reflect.Type) {
		for rt.Kind() == reflect.Pointer || rt.Kind() == reflect.Slice || rt.Kind() == reflect.Map {
			rt = rt.Elem()
		}
		if rt.Kind() != reflect.Struct || rt.PkgPath() != pkgPath || seen[rt] {
			return
		}
		seen[rt] = true
		def, ok := schema.Defs[rt.Name()]
		if !ok {
			t.Errorf("schema has no $defs/%s", rt.Name())
			return
		}
		var props, required []string
		for i := range rt.NumField() {
			f := rt.Field(i)
			name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" || !f.IsExported() {
				continue
			}
			props = append(props, name)
			if !strings.Contains(opts, "omitempty") {
				required = append(required, name)
			}
			walk(f.Type)
		}
		var schemaProps []string
		for p := range def.Properties {
			schemaProps = append(schemaProps, p)
		}
		slices.Sort(props)
		slices.Sort(schemaProps)
		slices.Sort(required)
		schemaRequired := slices.Sorted(slices.Values(def.Required))
		if !slices.Equal(props, schemaProps) {
			t.Errorf("$defs/%s properties = %v, Go fields = %v", rt.Name(), schemaProps, props)
		}
		if !slices.Equal(required, schemaRequired) {
			t.Errorf("$defs/%s required = %v, Go fields without omitempty = %v", rt.Name(), schemaRequired, required)
		}
	}
	walk(reflect.TypeFor[sbom.Inventory]())
}

// cyclonedxSchema compiles the official CycloneDX 1.6 JSON schema with the two schemas it
// references: the SPDX license list and JSON Signature Format.
func cyclonedxSchema(t *testing.T) *jsonschema.Schema {
	const base = "http://cyclonedx.org/schema/"
	return compile(t, base+"bom-1.6.schema.json", map[string][]byte{
		base + "bom-1.6.schema.json":  readTestdata(t, "schema/bom-1.6.schema.json"),
		base + "jsf-0.82.schema.json": readTestdata(t, "schema/jsf-0.82.schema.json"),
		base + "spdx.schema.json":     spdxListJSON,
	})
}

func TestCycloneDXMatchesSchema(t *testing.T) {
	s := cyclonedxSchema(t)
	for name, inv := range inventories {
		if err := validate(t, s, write(t, FormatCycloneDXJSON, inv(), Options{})); err != nil {
			t.Errorf("%s inventory: CycloneDX output does not match bom-1.6.schema.json: %v", name, err)
		}
	}
	// The schema is really checking: a made-up component type is rejected.
	bad := bytes.Replace(write(t, FormatCycloneDXJSON, testInventory(), Options{}), []byte(`"type": "library"`), []byte(`"type": "libary"`), 1)
	if err := validate(t, s, bad); err == nil {
		t.Error("bom-1.6 schema accepted a component of type libary")
	}
}

func TestCycloneDXStructure(t *testing.T) {
	for name, newInv := range inventories {
		inv := newInv()
		var bom cdx.BOM
		out := write(t, FormatCycloneDXJSON, inv, Options{})
		if err := cdx.NewBOMDecoder(bytes.NewReader(out), cdx.BOMFileFormatJSON).Decode(&bom); err != nil {
			t.Fatalf("%s: decoding: %v", name, err)
		}
		if bom.SpecVersion != cdx.SpecVersion1_6 || bom.Metadata == nil || bom.Metadata.Component == nil {
			t.Fatalf("%s: spec %v, metadata %+v", name, bom.SpecVersion, bom.Metadata)
		}
		image := bom.Metadata.Component
		if image.Type != cdx.ComponentTypeContainer || image.Version != imageVersion(inv.Image) {
			t.Errorf("%s: image component %+v", name, image)
		}
		refs := map[string]bool{image.BOMRef: true}
		var components []cdx.Component
		if bom.Components != nil {
			components = *bom.Components
		}
		for _, c := range components {
			if refs[c.BOMRef] {
				t.Errorf("%s: bom-ref %q is used twice", name, c.BOMRef)
			}
			refs[c.BOMRef] = true
		}
		want := len(inv.Packages)
		if inv.Distro != nil {
			want++
		}
		if len(components) != want {
			t.Errorf("%s: %d components, want %d", name, len(components), want)
		}
		if want == 0 {
			continue
		}
		deps := *bom.Dependencies
		if len(deps) != 1 || deps[0].Ref != image.BOMRef || len(*deps[0].Dependencies) != want {
			t.Errorf("%s: dependencies = %+v", name, deps)
		}
	}
}

// TestCycloneDXComponents spot-checks the mapping of the fixture's packages.
func TestCycloneDXComponents(t *testing.T) {
	var bom cdx.BOM
	out := write(t, FormatCycloneDXJSON, testInventory(), Options{})
	if err := cdx.NewBOMDecoder(bytes.NewReader(out), cdx.BOMFileFormatJSON).Decode(&bom); err != nil {
		t.Fatal(err)
	}
	byRef := map[string]cdx.Component{}
	for _, c := range *bom.Components {
		byRef[c.BOMRef] = c
	}
	prop := func(c cdx.Component, name string) string {
		for _, p := range *c.Properties {
			if p.Name == name {
				return p.Value
			}
		}
		return ""
	}
	if _, ok := byRef["pkg:npm/lodash@4.17.21?package-id=2"]; !ok {
		t.Error("the second lodash did not get a distinct bom-ref")
	}
	os := byRef["os:debian@12"]
	if os.Type != cdx.ComponentTypeOS || os.Name != "debian" || os.Version != "12" {
		t.Errorf("distro component = %+v", os)
	}
	yaml := byRef["pkg:pypi/pyyaml@6.0"]
	for name, want := range map[string]string{
		sbom.PropOwnedBy: "deb:python3-yaml", sbom.PropFoundBy: "python", sbom.PropLayerIndex: "1",
		sbom.PropLayerDiffID: dg("21"), sbom.PropPackageType: "pypi",
		"moat:location:0:path": "/usr/lib/python3/dist-packages/PyYAML-6.0.egg-info/PKG-INFO",
	} {
		if got := prop(yaml, name); got != want {
			t.Errorf("PyYAML property %s = %q, want %q", name, got, want)
		}
	}
	ssl := byRef["pkg:deb/debian/libssl3@3.0.11-1~deb12u2?arch=amd64&distro=debian-12"]
	if prop(ssl, sbom.PropSourceName) != "openssl" || (*ssl.Licenses)[0].License.ID != "Apache-2.0" {
		t.Errorf("libssl3 = %+v", ssl)
	}
	if c, ok := byRef["composer:acme/internal@1.0.0"]; !ok || c.PackageURL != "" {
		t.Errorf("a package without a package URL: %+v, bom-ref derived from its name %v", c, ok)
	}
	if got := bom.Metadata.Component.PackageURL; got != "pkg:oci/app@sha256:"+strings.Repeat("ab", 32)+"?arch=amd64&repository_url=registry.example.com%2Fteam%2Fapp&tag=1.4" {
		t.Errorf("image purl = %s", got)
	}
}

func TestCycloneDXLicenses(t *testing.T) {
	tests := []struct {
		name string
		in   []string
		want string // JSON of the licenses, "" for none
	}{
		{"none", nil, ""},
		{"blank", []string{" ", ""}, ""},
		{"id", []string{"MIT"}, `[{"license":{"id":"MIT"}}]`},
		{"id any case", []string{"apache-2.0"}, `[{"license":{"id":"Apache-2.0"}}]`},
		{"name", []string{"Apache License, Version 2.0"}, `[{"license":{"name":"Apache License, Version 2.0"}}]`},
		{"expression", []string{"MIT OR Apache-2.0"}, `[{"expression":"MIT OR Apache-2.0"}]`},
		{"with", []string{"GPL-2.0-only WITH Classpath-exception-2.0"}, `[{"expression":"GPL-2.0-only WITH Classpath-exception-2.0"}]`},
		{"or later", []string{"LGPL-2.1+"}, `[{"license":{"id":"LGPL-2.1+"}}]`},
		{"plus", []string{"MPL-2.0+"}, `[{"expression":"MPL-2.0+"}]`},
		{"license ref", []string{"LicenseRef-Acme"}, `[{"expression":"LicenseRef-Acme"}]`},
		{"several", []string{"MIT", "BSD-3-Clause", "mit"}, `[{"license":{"id":"MIT"}},{"license":{"id":"BSD-3-Clause"}}]`},
		{"several with expression", []string{"MIT", "ISC OR BSD-2-Clause"}, `[{"license":{"id":"MIT"}},{"license":{"name":"ISC OR BSD-2-Clause"}}]`},
		{"invalid expression", []string{"MIT or GPL"}, `[{"license":{"name":"MIT or GPL"}}]`},
	}
	for _, tt := range tests {
		got := ""
		if l := cdxLicenses(tt.in); l != nil {
			b, err := json.Marshal(l)
			if err != nil {
				t.Fatal(err)
			}
			got = string(b)
		}
		if got != tt.want {
			t.Errorf("%s: cdxLicenses(%q) = %s, want %s", tt.name, tt.in, got, tt.want)
		}
	}
}

func TestImagePURL(t *testing.T) {
	tests := []struct {
		name string
		img  sbom.ImageInfo
		want string
	}{
		{"no reference", sbom.ImageInfo{Name: "app.tar", Digest: dg("ab")}, ""},
		{"no digest", sbom.ImageInfo{Name: "alpine", Reference: "index.docker.io/library/alpine"}, ""},
		{
			"docker hub",
			sbom.ImageInfo{Name: "alpine:3.20", Reference: "index.docker.io/library/alpine@" + dg("ab"), Digest: dg("ab"), Platform: "linux/arm64/v8"},
			"pkg:oci/alpine@sha256:" + strings.Repeat("ab", 32) + "?arch=arm64&repository_url=index.docker.io%2Flibrary%2Falpine&tag=3.20",
		},
		{
			"registry port, pinned name",
			sbom.ImageInfo{Name: "localhost:5000/App@" + dg("ab"), Reference: "localhost:5000/App@" + dg("ab"), Digest: dg("ab")},
			"pkg:oci/app@sha256:" + strings.Repeat("ab", 32) + "?repository_url=localhost:5000%2FApp",
		},
	}
	for _, tt := range tests {
		if got := imagePURL(tt.img); got != tt.want {
			t.Errorf("%s: imagePURL = %s, want %s", tt.name, got, tt.want)
		}
	}
}
