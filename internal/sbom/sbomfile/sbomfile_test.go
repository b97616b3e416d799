package sbomfile_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moatsec/moat/internal/report"
	"github.com/moatsec/moat/internal/sbom/sbomfile"
)

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestDetectFormat(t *testing.T) {
	inv := roundTripInventory()
	tests := []struct {
		name string
		data []byte
		want sbomfile.Format
	}{
		{"moat json", write(t, report.FormatJSON, inv), sbomfile.FormatMoatJSON},
		{"moat cyclonedx", write(t, report.FormatCycloneDXJSON, inv), sbomfile.FormatCycloneDXJSON},
		{"moat spdx", write(t, report.FormatSPDXJSON, inv), sbomfile.FormatSPDXJSON},
		{"byte-order mark and blank lines", []byte("\xef\xbb\xbf\n\n  {\"bomFormat\": \"CycloneDX\", \"specVersion\": \"1.4\"}"), sbomfile.FormatCycloneDXJSON},
		{"field of the wrong type", []byte(`{"bomFormat": "CycloneDX", "specVersion": 1.4}`), sbomfile.FormatCycloneDXJSON},
		{"cyclonedx xml", []byte(`<?xml version="1.0"?><bom xmlns="http://cyclonedx.org/schema/bom/1.3" version="1"/>`), sbomfile.FormatCycloneDXXML},
		{"tag-value after comments", []byte("# made by hand\n\nSPDXVersion: SPDX-2.3\nDataLicense: CC0-1.0\n"), sbomfile.FormatSPDXTagValue},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := sbomfile.DetectFormat(tt.data)
			if err != nil || got != tt.want {
				t.Errorf("DetectFormat = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// nestedCycloneDX is a CycloneDX document whose components nest depth levels deep.
func nestedCycloneDX(depth int) []byte {
	var b strings.Builder
	b.WriteString(`{"bomFormat": "CycloneDX", "specVersion": "1.6", "components": `)
	for i := range depth {
		b.WriteString(`[{"type": "library", "name": "p` + itoa(i) + `", "version": "1.0", "purl": "pkg:npm/p` + itoa(i) + `@1.0", "components": `)
	}
	b.WriteString("[]")
	for range depth {
		b.WriteString("}]")
	}
	b.WriteString("}")
	return []byte(b.String())
}

func itoa(i int) string {
	const digits = "0123456789"
	if i < 10 {
		return digits[i : i+1]
	}
	return itoa(i/10) + digits[i%10:i%10+1]
}

func TestNesting(t *testing.T) {
	inv, err := sbomfile.Decode(nestedCycloneDX(64), "deep.json")
	if err != nil {
		t.Fatalf("64 levels: %v", err)
	}
	if len(inv.Packages) != 64 {
		t.Errorf("64 levels: %d packages", len(inv.Packages))
	}
	if _, err := sbomfile.Decode(nestedCycloneDX(65), "deeper.json"); err == nil || !strings.Contains(err.Error(), "nested more than 64 levels") {
		t.Errorf("65 levels: %v, want an error about nesting", err)
	}
}

func TestDecodeErrors(t *testing.T) {
	nulls := `{"spdxVersion": "SPDX-2.3", "SPDXID": "SPDXRef-DOCUMENT", "relationships": [` +
		strings.Repeat("null,", 100000) + `null]}`
	deepJSON := `{"bomFormat": "CycloneDX", "specVersion": "1.6", "x": ` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + "}"
	deepXML := `<bom xmlns="http://cyclonedx.org/schema/bom/1.6"><components>` +
		strings.Repeat("<component><components>", 10000) + strings.Repeat("</components></component>", 10000) + "</components></bom>"
	cdx := string(write(t, report.FormatCycloneDXJSON, roundTripInventory()))
	tests := []struct {
		name    string
		data    string
		target  error  // when set, errors.Is must hold
		message string // the error must contain it
	}{
		{"empty", "", sbomfile.ErrEmpty, "file is empty"},
		{"blank", " \n\t\r\n", sbomfile.ErrEmpty, "file is empty"},
		{"truncated JSON", cdx[:len(cdx)/2], nil, "not valid JSON: unexpected end of JSON input"},
		{"JSON array", `[{"bomFormat": "CycloneDX"}]`, sbomfile.ErrUnknownFormat, "a JSON array"},
		{"other JSON", `{"name": "left-pad", "version": "1.3.0"}`, sbomfile.ErrUnknownFormat, "without bomFormat, spdxVersion or schemaVersion"},
		{"other bomFormat", `{"bomFormat": "SWID"}`, sbomfile.ErrUnknownFormat, `bomFormat is "SWID"`},
		{"text", "hello, world\n", sbomfile.ErrUnknownFormat, `starts with "hello, world\n"`},
		{"binary", "\x1f\x8b\x08\x00\x00\x00", sbomfile.ErrUnknownFormat, `starts with "\x1f\x8b`},
		{"HTML", "<!DOCTYPE html><html><body>404</body></html>", sbomfile.ErrUnknownFormat, `XML root element "html"`},
		{"SPDX RDF", `<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns:spdx="http://spdx.org/rdf/terms#"/>`, sbomfile.ErrUnknownFormat, "SPDX RDF/XML is not supported"},
		{"SPDX 3", `{"@context": "https://spdx.org/rdf/3.0.1/spdx-context.jsonld", "@graph": []}`, sbomfile.ErrUnknownFormat, "SPDX 3"},
		{"SPDX 2.4", `{"spdxVersion": "SPDX-2.4", "SPDXID": "SPDXRef-DOCUMENT"}`, nil, "SPDX JSON: decoding: unsupported"},
		{"CycloneDX 1.9", `{"bomFormat": "CycloneDX", "specVersion": "1.9"}`, nil, "CycloneDX JSON: decoding: invalid specification version"},
		{"CycloneDX wrong types", `{"bomFormat": "CycloneDX", "specVersion": "1.6", "components": {"name": "x"}}`, nil, "CycloneDX JSON: decoding: json: cannot unmarshal object"},
		{"CycloneDX XML unknown version", `<bom xmlns="http://cyclonedx.org/schema/bom/1.9"/>`, nil, "unknown CycloneDX version"},
		{"truncated XML", `<bom xmlns="http://cyclonedx.org/schema/bom/1.5"><components><component type="library">`, nil, "CycloneDX XML: decoding: XML syntax error"},
		{"moat schema 2", `{"schemaVersion": "2.0", "tool": {"name": "moat"}, "packages": []}`, nil, `schema version "2.0" is not supported`},
		{"moat wrong types", `{"schemaVersion": "1.0", "tool": {"name": "moat"}, "packages": "none"}`, nil, "moat JSON: decoding: json: cannot unmarshal string"},
		{"tag-value without a document", "SPDXVersion: SPDX-2.2\nPackageName: x\n", nil, "SPDX tag-value: decoding:"},
		{"nested too deep", string(nestedCycloneDX(1000)), nil, "nested more than 64 levels deep"},
		{"JSON nested too deep", deepJSON, nil, "exceeded max depth"},
		{"XML nested too deep", deepXML, nil, "CycloneDX XML: decoding: exceeded max depth"},
		{"null relationships", nulls, nil, "relationships has 100001 null entries"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv, err := sbomfile.Decode([]byte(tt.data), "bom.json")
			if err == nil {
				t.Fatalf("no error; read %d packages", len(inv.Packages))
			}
			if !strings.HasPrefix(err.Error(), "reading SBOM bom.json: ") || !strings.Contains(err.Error(), tt.message) {
				t.Errorf("error %q, want one naming the file and containing %q", err, tt.message)
			}
			if tt.target != nil && !errors.Is(err, tt.target) {
				t.Errorf("error %q is not %v", err, tt.target)
			}
		})
	}
}

// TestLeftOut checks that entries moat cannot use are left out with one warning per kind.
func TestLeftOut(t *testing.T) {
	comp := func(name, version, purl string) string {
		return `{"type": "library", "name": "` + name + `", "version": "` + version + `", "purl": "` + purl + `"}`
	}
	components := []string{
		comp("ok", "1.0.0", "pkg:npm/ok@1.0.0"),
		comp("broken", "1", "pkg:deb"),
		comp("not-a-purl", "1", "npm:left-pad@1.3.0"),
		comp("bad-escape", "1", "pkg:npm/%zz@1"),
		comp("generic", "1", "pkg:generic/thing@1"),
		comp("generic2", "1", "pkg:generic/other@2"),
		comp("oci", "1", "pkg:oci/alpine@sha256%3Aabc"),
		comp("no-version", "", "pkg:npm/no-version"),
		comp("newline", "1", "pkg:npm/evil%0Aname@1"),
		comp("space", "1 2", "pkg:pypi/space"),
		`{"type": "library", "name": "no-purl"}`,
		`{"type": "framework", "name": "no-purl-either"}`,
		`{"type": "file", "name": "/etc/passwd"}`,
	}
	data := `{"bomFormat": "CycloneDX", "specVersion": "1.6", "components": [` + strings.Join(components, ",") + `]}`
	inv, err := sbomfile.Decode([]byte(data), "bom.json")
	if err != nil {
		t.Fatal(err)
	}
	checkInventory(t, inv)
	if len(inv.Packages) != 1 || inv.Packages[0].Name != "ok" {
		t.Errorf("packages = %+v, want only ok", inv.Packages)
	}
	want := []string{
		`left out 2 components without a package URL (first: "no-purl")`,
		`left out 3 components with an invalid package URL (first: "pkg:deb")`,
		`left out packages of types moat does not match: "generic" (2), "oci" (1)`,
		`left out 3 packages with a missing or invalid name or version (first: "no-version")`,
	}
	var got []string
	for _, w := range inv.Warnings {
		got = append(got, w.Message)
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestDistroFromPURLs checks that without an operating-system component the distribution
// comes from the package URLs, the one most of them name, with a warning when they disagree.
func TestDistroFromPURLs(t *testing.T) {
	comp := func(purl string) string {
		return `{"type": "library", "name": "x", "version": "1", "purl": "` + purl + `"}`
	}
	data := `{"bomFormat": "CycloneDX", "specVersion": "1.5", "components": [` + strings.Join([]string{
		comp("pkg:rpm/redhat/a@1-1.el9?arch=x86_64&distro=redhat-9.4"),
		comp("pkg:rpm/redhat/b@1-1.el9?arch=x86_64&distro=rhel-9.4"),
		comp("pkg:rpm/centos/c@1-1.el8?distro=centos-8"),
		comp("pkg:npm/d@1"),
	}, ",") + `]}`
	inv, err := sbomfile.Decode([]byte(data), "bom.json")
	if err != nil {
		t.Fatal(err)
	}
	if inv.Distro == nil || inv.Distro.ID != "rhel" || inv.Distro.VersionID != "9.4" {
		t.Errorf("distro = %+v, want rhel 9.4", inv.Distro)
	}
	if len(inv.Warnings) != 1 || !strings.Contains(inv.Warnings[0].Message, "2 distributions (rhel-9.4, centos-8); using rhel-9.4") {
		t.Errorf("warnings = %+v", inv.Warnings)
	}
}

func TestRead(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.cdx.json")
	if err := os.WriteFile(good, write(t, report.FormatCycloneDXJSON, roundTripInventory()), 0o644); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.json")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// A sparse file larger than MaxSize: refused from its size, before it is read.
	huge := filepath.Join(dir, "huge.json")
	f, err := os.Create(huge)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(sbomfile.MaxSize + 1); err != nil {
		t.Fatal(err)
	}
	f.Close()
	canceled, cancel := context.WithCancel(context.Background())
	cancel()

	inv, err := sbomfile.Read(context.Background(), good)
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Packages) != len(roundTripInventory().Packages) {
		t.Errorf("%d packages", len(inv.Packages))
	}

	tests := []struct {
		name    string
		ctx     context.Context
		path    string
		target  error
		message string
	}{
		{"missing", context.Background(), filepath.Join(dir, "missing.json"), fs.ErrNotExist, "no such file"},
		{"directory", context.Background(), dir, nil, "is a directory"},
		{"empty", context.Background(), empty, sbomfile.ErrEmpty, "file is empty"},
		{"too large", context.Background(), huge, sbomfile.ErrTooLarge, "more than the 268435456 read"},
		{"canceled", canceled, good, context.Canceled, "canceled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := sbomfile.Read(tt.ctx, tt.path)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.HasPrefix(err.Error(), "reading SBOM") || !strings.Contains(err.Error(), tt.path) || !strings.Contains(err.Error(), tt.message) {
				t.Errorf("error %q, want one naming %s and containing %q", err, tt.path, tt.message)
			}
			if tt.target != nil && !errors.Is(err, tt.target) {
				t.Errorf("error %q is not %v", err, tt.target)
			}
		})
	}
}

// TestFormatString checks that every format has a name for people.
func TestFormatString(t *testing.T) {
	for _, f := range []sbomfile.Format{sbomfile.FormatMoatJSON, sbomfile.FormatCycloneDXJSON,
		sbomfile.FormatCycloneDXXML, sbomfile.FormatSPDXJSON, sbomfile.FormatSPDXTagValue} {
		if s := f.String(); s == string(f) || s == "" {
			t.Errorf("%q.String() = %q", f, s)
		}
	}
}
