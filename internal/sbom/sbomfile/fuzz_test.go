package sbomfile_test

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/moatsec/moat/internal/report"
	"github.com/moatsec/moat/internal/sbom/sbomfile"
)

// FuzzDecode checks that no input makes Decode panic, that whatever it accepts satisfies the
// inventory's invariants (checkInventory), and that it is deterministic.
func FuzzDecode(f *testing.F) {
	files, err := filepath.Glob("testdata/*")
	if err != nil {
		f.Fatal(err)
	}
	for _, file := range files {
		f.Add(readFile(f, file))
	}
	for _, format := range []report.Format{report.FormatJSON, report.FormatCycloneDXJSON, report.FormatSPDXJSON} {
		f.Add(write(f, format, roundTripInventory()))
		f.Add(write(f, format, hostileInventory()))
	}
	for _, s := range []string{
		"", " ", "{}", "[]", "null", "<bom/>", "SPDXVersion: SPDX-2.3\n",
		`{"bomFormat": "CycloneDX", "specVersion": "1.6", "components": [{"type": "library", "name": "x", "purl": "pkg:npm/x@1", "components": [{"type": "operating-system", "name": "debian"}]}]}`,
		`{"bomFormat": "CycloneDX", "specVersion": "1.6", "metadata": {"component": {"type": "container", "name": "x", "properties": [{"name": "moat:image:layer:99999999999:diffID", "value": "sha256:00"}]}}}`,
		`{"bomFormat": "CycloneDX", "components": [{"type": "library", "name": "x", "version": "1", "purl": "pkg:rpm/redhat/x@1-1?epoch=01&upstream=.src.rpm&distro=-9", "properties": [{"name": "moat:layer:index", "value": "-1"}, {"name": "moat:location:-1:path", "value": "a"}]}]}`,
		`{"spdxVersion": "SPDX-2.3", "SPDXID": "SPDXRef-DOCUMENT", "packages": [{"SPDXID": "SPDXRef-a", "name": "a", "versionInfo": "1", "comment": "introduced by layer #x (; built from source package ; installed by OS package deb:", "sourceInfo": "acquired package info from : , ,/x", "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": "pkg:deb/debian/a@1?distro=debian"}]}], "relationships": [{"spdxElementId": "SPDXRef-a", "relatedSpdxElement": "SPDXRef-a", "relationshipType": "CONTAINS"}, null]}`,
		`{"schemaVersion": "1.0", "tool": {"name": "moat"}, "packages": [{"name": "x", "version": "1", "type": "deb", "layer": {"index": -5}, "locations": null, "source": {"name": ""}}]}`,
		string(nestedCycloneDX(70)),
		`<bom xmlns="http://cyclonedx.org/schema/bom/1.4"><components><component type="library"><name>x</name><purl>pkg:npm/x@1</purl></component></components></bom>`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		inv, err := sbomfile.Decode(data, "fuzz.json")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "reading SBOM fuzz.json: ") {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		checkInventory(t, inv)
		again, err := sbomfile.Decode(data, "fuzz.json")
		if err != nil || !reflect.DeepEqual(inv, again) {
			t.Fatalf("Decode is not deterministic: %v", err)
		}
	})
}
