package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	spdxjson "github.com/spdx/tools-golang/json"
	"github.com/spdx/tools-golang/spdx/v2/common"
	"github.com/spdx/tools-golang/spdx/v2/v2_3"
)

// SPDX output is checked three ways: against the official SPDX 2.3 JSON schema
// (testdata/schema/spdx-schema-2.3.json, see TestSPDXMatchesOfficialSchema), by reading it back
// with tools-golang, and by the structural rules below. The schema only constrains shapes, field
// names and enumerations; the rules restate what it cannot express and moat's documents rely on:
// the element id pattern, date format, license expressions and declared LicenseRefs, relationship
// targets, and the values moat itself promises (downloadLocation, filesAnalyzed, purl refs).
var (
	spdxIDPattern      = regexp.MustCompile(`^SPDXRef-[a-zA-Z0-9.-]+$`)
	spdxDatePattern    = regexp.MustCompile(`^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]Z$`)
	licenseRefPattern  = regexp.MustCompile(`^LicenseRef-[a-zA-Z0-9.-]+$`)
	licenseRefInExpr   = regexp.MustCompile(`LicenseRef-[a-zA-Z0-9.-]+`)
	hexPattern         = regexp.MustCompile(`^[0-9a-f]+$`)
	spdxDocumentFields = []string{"SPDXID", "spdxVersion", "dataLicense", "name", "documentNamespace", "creationInfo", "packages", "relationships", "hasExtractedLicensingInfos"}
	spdxPackageFields  = []string{"SPDXID", "name", "versionInfo", "downloadLocation", "filesAnalyzed", "licenseConcluded", "licenseDeclared", "copyrightText", "externalRefs", "checksums", "primaryPackagePurpose", "sourceInfo", "comment", "description"}
	spdxPurposes       = []string{"OTHER", "INSTALL", "ARCHIVE", "FIRMWARE", "APPLICATION", "FRAMEWORK", "LIBRARY", "CONTAINER", "SOURCE", "DEVICE", "OPERATING-SYSTEM", "FILE"}
)

type spdxDoc struct {
	SPDXID            string `json:"SPDXID"`
	SPDXVersion       string `json:"spdxVersion"`
	DataLicense       string `json:"dataLicense"`
	Name              string `json:"name"`
	DocumentNamespace string `json:"documentNamespace"`
	CreationInfo      struct {
		Created            string   `json:"created"`
		Creators           []string `json:"creators"`
		LicenseListVersion string   `json:"licenseListVersion"`
	} `json:"creationInfo"`
	Packages []struct {
		SPDXID                string `json:"SPDXID"`
		Name                  *string
		DownloadLocation      string `json:"downloadLocation"`
		FilesAnalyzed         *bool  `json:"filesAnalyzed"`
		LicenseConcluded      string `json:"licenseConcluded"`
		LicenseDeclared       string `json:"licenseDeclared"`
		PrimaryPackagePurpose string `json:"primaryPackagePurpose"`
		ExternalRefs          []struct {
			Category string `json:"referenceCategory"`
			Type     string `json:"referenceType"`
			Locator  string `json:"referenceLocator"`
		} `json:"externalRefs"`
		Checksums []struct {
			Algorithm string `json:"algorithm"`
			Value     string `json:"checksumValue"`
		} `json:"checksums"`
	} `json:"packages"`
	Relationships []struct {
		A    string `json:"spdxElementId"`
		B    string `json:"relatedSpdxElement"`
		Type string `json:"relationshipType"`
	} `json:"relationships"`
	Extracted []struct {
		ID   string  `json:"licenseId"`
		Text *string `json:"extractedText"`
	} `json:"hasExtractedLicensingInfos"`
}

// spdxProblems lists every way out breaks the SPDX 2.3 rules moat's documents must follow.
func spdxProblems(out []byte) []string {
	var problems []string
	errorf := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	var raw map[string]json.RawMessage
	if err := json.Unmarshal(out, &raw); err != nil {
		return []string{"not JSON: " + err.Error()}
	}
	for k := range raw {
		if !slices.Contains(spdxDocumentFields, k) {
			errorf("unexpected document field %q", k)
		}
	}
	var rawPkgs []map[string]json.RawMessage
	if err := json.Unmarshal(raw["packages"], &rawPkgs); err != nil {
		return append(problems, "packages: "+err.Error())
	}
	for _, p := range rawPkgs {
		for k := range p {
			if !slices.Contains(spdxPackageFields, k) {
				errorf("unexpected package field %q", k)
			}
		}
	}

	var doc spdxDoc
	if err := json.Unmarshal(out, &doc); err != nil {
		return append(problems, err.Error())
	}
	if doc.SPDXID != "SPDXRef-DOCUMENT" || doc.SPDXVersion != "SPDX-2.3" || doc.DataLicense != "CC0-1.0" || doc.Name == "" {
		errorf("document header = %s %s %s %q", doc.SPDXID, doc.SPDXVersion, doc.DataLicense, doc.Name)
	}
	if u, err := url.Parse(doc.DocumentNamespace); err != nil || u.Scheme != "https" || u.Fragment != "" || strings.ContainsAny(doc.DocumentNamespace, "# ") {
		errorf("documentNamespace %q is not an absolute URI without a fragment", doc.DocumentNamespace)
	}
	if !spdxDatePattern.MatchString(doc.CreationInfo.Created) {
		errorf("created %q is not YYYY-MM-DDThh:mm:ssZ", doc.CreationInfo.Created)
	}
	if len(doc.CreationInfo.Creators) == 0 || !strings.HasPrefix(doc.CreationInfo.Creators[0], "Tool: ") {
		errorf("creators = %q", doc.CreationInfo.Creators)
	}

	declared := map[string]bool{}
	for _, e := range doc.Extracted {
		if !licenseRefPattern.MatchString(e.ID) || e.Text == nil {
			errorf("extracted licensing info %q has a bad id or no text", e.ID)
		}
		if declared[e.ID] {
			errorf("license %s is declared twice", e.ID)
		}
		declared[e.ID] = true
	}
	checkLicense := func(pkg, expr string) {
		if expr == "NOASSERTION" || expr == "NONE" {
			return
		}
		e, ok := parseLicenseExpression(expr)
		if !ok {
			errorf("package %s: license %q is not a valid SPDX expression", pkg, expr)
			return
		}
		if e.text != expr {
			errorf("package %s: license %q is not in canonical form %q", pkg, expr, e.text)
		}
		for _, r := range licenseRefInExpr.FindAllString(expr, -1) {
			if !declared[r] {
				errorf("package %s: %s is not declared in hasExtractedLicensingInfos", pkg, r)
			}
		}
	}

	ids := map[string]bool{"SPDXRef-DOCUMENT": true}
	for _, p := range doc.Packages {
		if !spdxIDPattern.MatchString(p.SPDXID) {
			errorf("SPDXID %q does not match %s", p.SPDXID, spdxIDPattern)
		}
		if ids[p.SPDXID] {
			errorf("SPDXID %q is used twice", p.SPDXID)
		}
		ids[p.SPDXID] = true
		if p.Name == nil || p.DownloadLocation != "NOASSERTION" || p.FilesAnalyzed == nil || *p.FilesAnalyzed {
			errorf("package %s: name, downloadLocation NOASSERTION and filesAnalyzed false are required", p.SPDXID)
		}
		if p.PrimaryPackagePurpose != "" && !slices.Contains(spdxPurposes, p.PrimaryPackagePurpose) {
			errorf("package %s: primaryPackagePurpose %q", p.SPDXID, p.PrimaryPackagePurpose)
		}
		checkLicense(p.SPDXID, p.LicenseConcluded)
		checkLicense(p.SPDXID, p.LicenseDeclared)
		for _, r := range p.ExternalRefs {
			if r.Category != "PACKAGE-MANAGER" || r.Type != "purl" || !strings.HasPrefix(r.Locator, "pkg:") || strings.ContainsAny(r.Locator, " \t\n") {
				errorf("package %s: external ref %+v", p.SPDXID, r)
			}
		}
		for _, c := range p.Checksums {
			if c.Algorithm != "SHA256" || len(c.Value) != 64 || !hexPattern.MatchString(c.Value) {
				errorf("package %s: checksum %+v", p.SPDXID, c)
			}
		}
	}
	describes := 0
	for _, r := range doc.Relationships {
		if !ids[r.A] || !ids[r.B] {
			errorf("relationship %s %s %s refers to an unknown element", r.A, r.Type, r.B)
		}
		switch r.Type {
		case "DESCRIBES":
			describes++
			if r.A != "SPDXRef-DOCUMENT" {
				errorf("%s DESCRIBES %s", r.A, r.B)
			}
		case "CONTAINS":
		default:
			errorf("relationship type %q", r.Type)
		}
	}
	if describes != 1 {
		errorf("%d DESCRIBES relationships, want 1", describes)
	}

	// tools-golang reads the document back.
	var back v2_3.Document
	if err := spdxjson.ReadInto(bytes.NewReader(out), &back); err != nil {
		errorf("tools-golang cannot read the document: %v", err)
		return problems
	}
	if len(back.Packages) != len(doc.Packages) || len(back.Relationships) != len(doc.Relationships) {
		errorf("read back %d packages and %d relationships, wrote %d and %d",
			len(back.Packages), len(back.Relationships), len(doc.Packages), len(doc.Relationships))
	}
	return problems
}

// spdxSchemaID is the $id of the official SPDX 2.3 JSON schema (testdata/schema/README.md says
// where the copy comes from).
const spdxSchemaID = "http://spdx.org/rdf/terms/2.3"

func spdxSchema(t *testing.T) *jsonschema.Schema {
	return compile(t, spdxSchemaID, map[string][]byte{spdxSchemaID: readTestdata(t, "schema/spdx-schema-2.3.json")})
}

// validateSPDX validates an SPDX document against the official 2.3 schema, with one known
// erratum of that schema allowed for: the specification (clause 7.24) spells the primary package
// purpose OPERATING-SYSTEM, which moat writes, while the enum of the released 2.3 schema has
// OPERATING_SYSTEM (spdx/spdx-spec#813; the 2.3.1 schema and the schema of SPDX's own validator,
// spdx/tools-java#211, have since switched to the dash). That value is swapped for the schema's
// spelling before validating; everything else is checked as written.
func validateSPDX(t *testing.T, s *jsonschema.Schema, doc []byte) error {
	t.Helper()
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		t.Fatalf("output is not JSON: %v", err)
	}
	if m, ok := v.(map[string]any); ok {
		pkgs, _ := m["packages"].([]any)
		for _, p := range pkgs {
			if p, ok := p.(map[string]any); ok && p["primaryPackagePurpose"] == "OPERATING-SYSTEM" {
				p["primaryPackagePurpose"] = "OPERATING_SYSTEM"
			}
		}
	}
	return s.Validate(v)
}

// schemaErrorLocations lists the instance locations of the leaf errors of a validation error.
func schemaErrorLocations(err error) []string {
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return nil
	}
	var locs []string
	var walk func(*jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) == 0 {
			locs = append(locs, "/"+strings.Join(e.InstanceLocation, "/"))
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(ve)
	return locs
}

func TestSPDXMatchesOfficialSchema(t *testing.T) {
	s := spdxSchema(t)
	for name, inv := range inventories {
		if err := validateSPDX(t, s, write(t, FormatSPDXJSON, inv(), Options{})); err != nil {
			t.Errorf("%s inventory: SPDX output does not match spdx-schema-2.3.json: %v", name, err)
		}
	}
	golden := readTestdata(t, "golden/spdx.json")
	if err := validateSPDX(t, s, golden); err != nil {
		t.Errorf("golden/spdx.json does not match spdx-schema-2.3.json: %v", err)
	}

	// The erratum is the only thing the schema rejects in the document as written: if a
	// corrected schema replaces this copy, this fails and validateSPDX's swap must go.
	err := validate(t, s, golden)
	if locs := schemaErrorLocations(err); !slices.Equal(locs, []string{"/packages/1/primaryPackagePurpose"}) {
		t.Errorf("unswapped golden document: schema errors at %q, want only the distribution's primaryPackagePurpose (%v)", locs, err)
	}

	// The schema is really checking.
	for name, edit := range map[string][2]string{
		"relationship type":  {`"relationshipType": "CONTAINS"`, `"relationshipType": "CONTAIN"`},
		"reference category": {`"referenceCategory": "PACKAGE-MANAGER"`, `"referenceCategory": "PACKAGE-MANAGERS"`},
		"checksum algorithm": {`"algorithm": "SHA256"`, `"algorithm": "SHA-256"`},
		"unknown field":      {`"filesAnalyzed": false`, `"filesAnalysed": false`},
		"missing SPDXID":     {`"SPDXID": "SPDXRef-DOCUMENT",`, ``},
	} {
		bad := bytes.Replace(golden, []byte(edit[0]), []byte(edit[1]), 1)
		if bytes.Equal(bad, golden) {
			t.Fatalf("%s: the replacement did not apply", name)
		}
		if err := validateSPDX(t, s, bad); err == nil {
			t.Errorf("%s: the SPDX schema accepted %s", name, edit[1])
		}
	}
}

func TestSPDXStructure(t *testing.T) {
	for name, inv := range inventories {
		for _, p := range spdxProblems(write(t, FormatSPDXJSON, inv(), Options{})) {
			t.Errorf("%s inventory: %s", name, p)
		}
	}
	// The checks catch what they should.
	good := write(t, FormatSPDXJSON, testInventory(), Options{})
	for name, bad := range map[string][]byte{
		"bad SPDXID":        bytes.Replace(good, []byte(`"SPDXRef-Package-npm-lodash-4.17.21"`), []byte(`"SPDXRef-Package-npm-lodash@4.17.21"`), 1),
		"undeclared ref":    bytes.Replace(good, []byte(`"licenseId": "LicenseRef-proprietary"`), []byte(`"licenseId": "LicenseRef-other"`), 1),
		"invalid license":   bytes.Replace(good, []byte(`"licenseDeclared": "MIT"`), []byte(`"licenseDeclared": "MIT License"`), 1),
		"unknown reference": bytes.Replace(good, []byte(`"relatedSpdxElement": "SPDXRef-Package-npm-lodash-4.17.21"`), []byte(`"relatedSpdxElement": "SPDXRef-nothing"`), 1),
	} {
		if bytes.Equal(bad, good) {
			t.Fatalf("%s: the replacement did not apply", name)
		}
		if len(spdxProblems(bad)) == 0 {
			t.Errorf("%s: structural checks passed a broken document", name)
		}
	}
}

func TestSPDXPackages(t *testing.T) {
	var doc v2_3.Document
	if err := spdxjson.ReadInto(bytes.NewReader(write(t, FormatSPDXJSON, testInventory(), Options{})), &doc); err != nil {
		t.Fatal(err)
	}
	byID := map[common.ElementID]*v2_3.Package{}
	for _, p := range doc.Packages {
		byID[p.PackageSPDXIdentifier] = p
	}
	image := byID["Image-registry.example.com-team-app-1.4"]
	if image == nil || image.PrimaryPackagePurpose != "CONTAINER" || image.PackageVersion != dg("ab") {
		t.Fatalf("image package = %+v", image)
	}
	if os := byID["OperatingSystem-debian-12"]; os == nil || os.PrimaryPackagePurpose != "OPERATING-SYSTEM" {
		t.Errorf("distro package = %+v", os)
	}
	if byID["Package-npm-lodash-4.17.21"] == nil || byID["Package-npm-lodash-4.17.21-2"] == nil {
		t.Error("the two lodash packages did not get distinct SPDX ids")
	}
	yaml := byID["Package-pypi-PyYAML-6.0"]
	if yaml == nil || len(yaml.PackageExternalReferences) != 1 || yaml.PackageExternalReferences[0].Locator != "pkg:pypi/pyyaml@6.0" {
		t.Fatalf("PyYAML = %+v", yaml)
	}
	owned := false
	for _, r := range doc.Relationships {
		if r.RefA.ElementRefID == "Package-deb-python3-yaml-6.0-3-b2" && r.Relationship == "CONTAINS" && r.RefB.ElementRefID == "Package-pypi-PyYAML-6.0" {
			owned = true
		}
	}
	if !owned {
		t.Error("python3-yaml does not CONTAIN PyYAML")
	}
	if p := byID["Package-composer-acme-internal-1.0.0"]; p == nil || p.PackageExternalReferences != nil {
		t.Errorf("a package without a package URL = %+v", p)
	}
}

func TestSPDXLicense(t *testing.T) {
	tests := []struct {
		name     string
		in       []string
		want     string
		declared []string // LicenseRefs declared after this one call
	}{
		{"none", nil, "NOASSERTION", nil},
		{"NONE", []string{"NONE"}, "NONE", nil},
		{"id", []string{"mit"}, "MIT", nil},
		{"expression", []string{"MIT OR Apache-2.0"}, "MIT OR Apache-2.0", nil},
		{"several", []string{"MIT", "ISC OR BSD-2-Clause"}, "MIT AND (ISC OR BSD-2-Clause)", nil},
		{"repeated", []string{"MIT", "mit", "Foo", "MIT"}, "MIT AND LicenseRef-Foo", []string{"LicenseRef-Foo"}},
		{"plus kept", []string{"GPL-2.0-or-later", "LGPL-2.1+"}, "GPL-2.0-or-later AND LGPL-2.1+", nil},
		{"free text", []string{"Apache License, Version 2.0"}, "LicenseRef-Apache-License-Version-2.0", []string{"LicenseRef-Apache-License-Version-2.0"}},
		{"given ref", []string{"LicenseRef-Acme"}, "LicenseRef-Acme", []string{"LicenseRef-Acme"}},
		{"mixed", []string{"GPL-2+", "NOASSERTION", "BSD-3-Clause"}, "LicenseRef-GPL-2 AND BSD-3-Clause", []string{"LicenseRef-GPL-2"}},
		{"nothing printable", []string{"©"}, "LicenseRef-" + shortHash("©"), []string{"LicenseRef-" + shortHash("©")}},
		{"unbalanced", []string{"(MIT"}, "LicenseRef-MIT", []string{"LicenseRef-MIT"}},
	}
	for _, tt := range tests {
		b := newSPDXBuilder()
		if got := b.license(tt.in); got != tt.want {
			t.Errorf("%s: license(%q) = %q, want %q", tt.name, tt.in, got, tt.want)
		}
		var declared []string
		for _, o := range b.others {
			declared = append(declared, o.LicenseIdentifier)
		}
		if !slices.Equal(declared, tt.declared) {
			t.Errorf("%s: declared %v, want %v", tt.name, declared, tt.declared)
		}
	}

	// Different strings that sanitise alike get different references; the same string
	// always gets the same one.
	b := newSPDXBuilder()
	first, second, again := b.license([]string{"GPL v2"}), b.license([]string{"GPL-v2!"}), b.license([]string{"GPL v2"})
	if first == second || first != again || len(b.others) != 2 {
		t.Errorf("GPL v2 -> %s, GPL-v2! -> %s, GPL v2 again -> %s, %d declared", first, second, again, len(b.others))
	}
}

func shortHash(s string) string {
	b := newSPDXBuilder()
	ref := b.licenseRef(s)
	return strings.TrimPrefix(ref, "LicenseRef-")
}

func TestSanitizeID(t *testing.T) {
	tests := []struct {
		in   string
		max  int
		want string
	}{
		{"Package-npm-@types/node-20.11.5", 100, "Package-npm-types-node-20.11.5"},
		{"a__b  c", 100, "a-b-c"},
		{"--lead", 100, "lead"},
		{"trail!!", 100, "trail"},
		{"日本", 100, ""},
		{"abcdef", 3, "abc"},
	}
	for _, tt := range tests {
		if got := sanitizeID(tt.in, tt.max); got != tt.want {
			t.Errorf("sanitizeID(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
		}
	}
}
