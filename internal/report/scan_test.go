package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	cdx "github.com/CycloneDX/cyclonedx-go"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/moatsec/moat/internal/sbom"
	"github.com/moatsec/moat/internal/vuln"
)

func writeScan(t *testing.T, f Format, r *ScanReport, opts Options) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := WriteScan(&buf, f, r, opts); err != nil {
		t.Fatalf("WriteScan(%s): %v", f, err)
	}
	return buf.Bytes()
}

var scans = map[string]func() *ScanReport{
	"full":    testScan,
	"empty":   emptyScan,
	"hostile": hostileScan,
}

func TestScanGolden(t *testing.T) {
	tests := []struct {
		file   string
		format Format
		opts   Options
		report func() *ScanReport
	}{
		{"table.golden", FormatTable, Options{}, testScan},
		{"table-color.golden", FormatTable, Options{Color: true}, testScan},
		{"table-empty.golden", FormatTable, Options{}, emptyScan},
		{"json.golden", FormatJSON, Options{}, testScan},
		{"sarif.golden", FormatSARIF, Options{}, testScan},
		{"cyclonedx.golden", FormatCycloneDXJSON, Options{}, testScan},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got := writeScan(t, tt.format, tt.report(), tt.opts)
			path := filepath.Join("testdata", "scan", tt.file)
			if *update {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("reading golden file (run go test ./internal/report -update to create it): %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from the golden file; run go test ./internal/report -update and review the diff.\ngot:\n%s", tt.file, got)
			}
		})
	}
}

func TestWriteScanErrors(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteScan(&buf, FormatSPDXJSON, testScan(), Options{}); !errors.Is(err, ErrUnknownFormat) {
		t.Errorf("spdx-json: %v, want ErrUnknownFormat", err)
	}
	if err := WriteScan(&buf, "xml", testScan(), Options{}); !errors.Is(err, ErrUnknownFormat) {
		t.Errorf("xml: %v, want ErrUnknownFormat", err)
	}
	if err := WriteScan(&buf, FormatJSON, nil, Options{}); err == nil {
		t.Error("no error for a nil report")
	}
	if buf.Len() != 0 {
		t.Errorf("failed writes wrote %q", buf.String())
	}
}

func TestParseScanFormat(t *testing.T) {
	tests := []struct {
		in   string
		want Format
	}{
		{"table", FormatTable}, {"json", FormatJSON}, {"moat-json", FormatJSON}, {"SARIF", FormatSARIF},
		{"cyclonedx-json", FormatCycloneDXJSON}, {"cdx", FormatCycloneDXJSON}, {" cyclonedx ", FormatCycloneDXJSON},
		{"spdx-json", ""}, {"spdx", ""}, {"", ""}, {"sarif-json", ""},
	}
	for _, tt := range tests {
		got, err := ParseScanFormat(tt.in)
		if got != tt.want || (err != nil) != (tt.want == "") {
			t.Errorf("ParseScanFormat(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
		if err != nil && !errors.Is(err, ErrUnknownFormat) {
			t.Errorf("ParseScanFormat(%q): %v is not ErrUnknownFormat", tt.in, err)
		}
	}
}

func TestScanSummary(t *testing.T) {
	sum := testScan().Summary()
	want := map[vuln.Level]int{vuln.Critical: 1, vuln.High: 1, vuln.Medium: 1, vuln.Unknown: 1}
	if sum.Total != 4 || sum.Suppressed != 2 || !reflect.DeepEqual(sum.ByLevel, want) {
		t.Errorf("summary = %+v", sum)
	}
}

var ansi = regexp.MustCompile("\x1b\\[[0-9;]*m")

func TestScanTable(t *testing.T) {
	plain := string(writeScan(t, FormatTable, testScan(), Options{}))
	for _, hidden := range []string{"CVE-2024-2511", "CVE-2021-23337"} {
		if strings.Contains(plain, hidden) {
			t.Errorf("suppressed finding %s is listed", hidden)
		}
	}
	for _, want := range []string{
		"4 vulnerabilities (2 suppressed)",
		"Total: 4 (critical 1, high 1, medium 1, low 0, none 0, unknown 1); 2 suppressed",
		"will not fix", "not fixed", "3.0.13-1~deb12u1",
		"1 ignore entry expired", "CVE-2023-5678 (package libssl3) expired 2024-05-01T00:00:00Z, .moatignore.yaml:7",
		"1 warning", "Database built 2024-06-01T06:00:00Z, 60341 records from 3 sources",
	} {
		if !strings.Contains(plain, want) {
			t.Errorf("table lacks %q:\n%s", want, plain)
		}
	}
	// Most severe first.
	order := []string{"CVE-2023-45853", "GO-2024-2687", "CVE-2024-0727", "TEMP-0841856-B18BAF"}
	last := -1
	for _, id := range order {
		i := strings.Index(plain, id)
		if i < last {
			t.Errorf("%s is listed out of order", id)
		}
		last = i
	}
	// Colour changes nothing but the escape codes, and keeps the columns aligned.
	color := string(writeScan(t, FormatTable, testScan(), Options{Color: true}))
	if !strings.Contains(color, ansiBrightRed+"CRITICAL") {
		t.Error("critical is not coloured")
	}
	if got := ansi.ReplaceAllString(color, ""); got != plain {
		t.Errorf("coloured table without escape codes differs from the plain table:\n%s\nplain:\n%s", got, plain)
	}

	hostile := string(writeScan(t, FormatTable, hostileScan(), Options{}))
	if strings.ContainsAny(hostile, "\x1b\x07\u202e") {
		t.Errorf("control characters reach the terminal: %q", hostile)
	}
}

const scanSchemaID = "https://raw.githubusercontent.com/moatsec/moat/main/docs/formats/scan.schema.json"

func TestScanJSONMatchesSchema(t *testing.T) {
	s := compile(t, scanSchemaID, map[string][]byte{scanSchemaID: ScanSchema, sbomSchemaID: SBOMSchema})
	for name, r := range scans {
		if err := validate(t, s, writeScan(t, FormatJSON, r(), Options{})); err != nil {
			t.Errorf("%s report does not match scan.schema.json: %v", name, err)
		}
	}
	bad := map[string]func(*ScanReport){
		"bad suppression kind": func(r *ScanReport) { r.Findings[4].Suppressed.Kind = "waiver" },
		"relative location":    func(r *ScanReport) { r.Findings[0].Package.Locations[0].Path = "app/bin/server" },
		"bad fix status":       func(r *ScanReport) { r.Findings[0].FixStatus = "maybe" },
		"empty ID":             func(r *ScanReport) { r.Findings[0].ID = "" },
	}
	for name, mutate := range bad {
		r := testScan()
		mutate(r)
		if err := validate(t, s, writeScan(t, FormatJSON, r, Options{})); err == nil {
			t.Errorf("%s: schema accepted an invalid report", name)
		}
	}
	out := writeScan(t, FormatJSON, testScan(), Options{})
	for _, edit := range [][2]string{
		{`"severity": "high"`, `"severity": "severe"`},
		{`"schemaVersion": "1.0"`, `"schemaVersion": "2.0"`},
		{`"ignoreUnfixed": false`, `"ignoreUnfixed": "no"`},
		{`"total": 4`, `"total": 4, "fixable": 2`},
	} {
		if err := validate(t, s, bytes.Replace(out, []byte(edit[0]), []byte(edit[1]), 1)); err == nil {
			t.Errorf("schema accepted %s", edit[1])
		}
	}
}

func TestScanJSONRoundTrip(t *testing.T) {
	first := writeScan(t, FormatJSON, testScan(), Options{})
	var doc scanDocument
	if err := json.Unmarshal(first, &doc); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(&doc); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first, buf.Bytes()) {
		t.Errorf("json scan report read back and written again differs:\n%s", buf.Bytes())
	}
}

// TestScanDocsInSync keeps docs/formats/scan.schema.json identical to the embedded schema.
func TestScanDocsInSync(t *testing.T) {
	docs, err := os.ReadFile(filepath.Join("..", "..", "docs", "formats", "scan.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(docs, ScanSchema) {
		t.Error("docs/formats/scan.schema.json differs from internal/report/schema/scan.schema.json; copy the latter over the former")
	}
}

// TestScanSchemaMatchesTypes checks that every struct written in the JSON scan report has a
// definition with the same properties, in scan.schema.json or, for the inventory's types,
// sbom.schema.json, and that exactly the fields without omitempty or omitzero are required.
func TestScanSchemaMatchesTypes(t *testing.T) {
	type defs struct {
		Defs map[string]struct {
			Properties map[string]json.RawMessage `json:"properties"`
			Required   []string                   `json:"required"`
		} `json:"$defs"`
	}
	var scanDefs, sbomDefs defs
	if err := json.Unmarshal(ScanSchema, &scanDefs); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(SBOMSchema, &sbomDefs); err != nil {
		t.Fatal(err)
	}
	names := map[reflect.Type]string{
		reflect.TypeFor[scanDocument](): "ScanReport",
		reflect.TypeFor[scanDatabase](): "Database",
		reflect.TypeFor[scanSettings](): "Settings",
		reflect.TypeFor[scanSummary]():  "Summary",
	}
	sbomPkg := reflect.TypeFor[sbom.Inventory]().PkgPath()
	ours := func(rt reflect.Type) bool {
		return strings.HasPrefix(rt.PkgPath(), "github.com/moatsec/moat/")
	}
	seen := map[reflect.Type]bool{}
	var walk func(reflect.Type)
	walk = func(rt reflect.Type) {
		for rt.Kind() == reflect.Pointer || rt.Kind() == reflect.Slice || rt.Kind() == reflect.Map {
			rt = rt.Elem()
		}
		if rt.Kind() != reflect.Struct || !ours(rt) || seen[rt] {
			return
		}
		seen[rt] = true
		name, ok := names[rt]
		if !ok {
			name = rt.Name()
		}
		schema, file := scanDefs, "scan.schema.json"
		if rt.PkgPath() == sbomPkg {
			schema, file = sbomDefs, "sbom.schema.json"
		}
		def, ok := schema.Defs[name]
		if !ok {
			t.Errorf("%s has no $defs/%s for %s", file, name, rt)
			return
		}
		var props, required []string
		for i := range rt.NumField() {
			f := rt.Field(i)
			tag, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
			if tag == "-" || !f.IsExported() {
				continue
			}
			props = append(props, tag)
			if !strings.Contains(opts, "omitempty") && !strings.Contains(opts, "omitzero") {
				required = append(required, tag)
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
			t.Errorf("%s $defs/%s properties = %v, Go fields = %v", file, name, schemaProps, props)
		}
		if !slices.Equal(required, schemaRequired) {
			t.Errorf("%s $defs/%s required = %v, Go fields without omitempty = %v", file, name, schemaRequired, required)
		}
	}
	walk(reflect.TypeFor[scanDocument]())
}

// sarifSchema compiles the official SARIF 2.1.0 schema (testdata/README.md says where it is
// from).
func sarifSchema(t *testing.T) *jsonschema.Schema {
	const id = "https://raw.githubusercontent.com/oasis-tcs/sarif-spec/master/Schemata/sarif-schema-2.1.0.json"
	return compile(t, id, map[string][]byte{id: readTestdata(t, "sarif-schema-2.1.0.json")})
}

func TestSARIFMatchesSchema(t *testing.T) {
	s := sarifSchema(t)
	for name, r := range scans {
		if err := validate(t, s, writeScan(t, FormatSARIF, r(), Options{})); err != nil {
			t.Errorf("%s report: SARIF output does not match sarif-schema-2.1.0.json: %v", name, err)
		}
	}
	// The schema is really checking.
	out := writeScan(t, FormatSARIF, testScan(), Options{})
	for _, bad := range [][2]string{
		{`"level": "error"`, `"level": "fatal"`},
		{`"kind": "external"`, `"kind": "manual"`},
		{`"version": "2.1.0"`, `"version": "2.0.0"`},
	} {
		if err := validate(t, s, bytes.Replace(out, []byte(bad[0]), []byte(bad[1]), 1)); err == nil {
			t.Errorf("the SARIF schema accepted %s", bad[1])
		}
	}
}

// TestSARIFForCodeScanning checks what GitHub code scanning needs beyond the schema: rules
// with security-severity, results pointing at their rule, a relative location for every
// result, and suppressions for suppressed findings.
func TestSARIFForCodeScanning(t *testing.T) {
	for name, newReport := range scans {
		r := newReport()
		var log sarifLog
		if err := json.Unmarshal(writeScan(t, FormatSARIF, r, Options{}), &log); err != nil {
			t.Fatal(err)
		}
		if len(log.Runs) != 1 {
			t.Fatalf("%s: %d runs", name, len(log.Runs))
		}
		run := log.Runs[0]
		ids := map[string]bool{}
		for _, rule := range run.Tool.Driver.Rules {
			if ids[rule.ID] {
				t.Errorf("%s: rule %s twice", name, rule.ID)
			}
			ids[rule.ID] = true
			if rule.ShortDescription.Text == "" || rule.FullDescription.Text == "" || rule.Help.Text == "" || !validURL(rule.HelpURI) {
				t.Errorf("%s: rule %s lacks a description, help or helpUri: %+v", name, rule.ID, rule)
			}
			if !slices.Contains(rule.Properties.Tags, "security") {
				t.Errorf("%s: rule %s has no security tag", name, rule.ID)
			}
			if s := rule.Properties.SecuritySeverity; s != "" {
				if v, err := strconv.ParseFloat(s, 64); err != nil || v < 0 || v > 10 {
					t.Errorf("%s: rule %s security-severity %q", name, rule.ID, s)
				}
			}
		}
		if len(run.Results) != len(r.Findings) {
			t.Errorf("%s: %d results for %d findings", name, len(run.Results), len(r.Findings))
		}
		suppressed := 0
		for _, res := range run.Results {
			if res.RuleIndex >= len(run.Tool.Driver.Rules) || run.Tool.Driver.Rules[res.RuleIndex].ID != res.RuleID {
				t.Errorf("%s: result %s points at rule %d", name, res.RuleID, res.RuleIndex)
			}
			if len(res.Locations) != 1 {
				t.Errorf("%s: result %s has %d locations", name, res.RuleID, len(res.Locations))
				continue
			}
			uri := res.Locations[0].PhysicalLocation.ArtifactLocation.URI
			if uri == "" || strings.HasPrefix(uri, "/") || strings.Contains(uri, "://") {
				t.Errorf("%s: result %s location %q is not a relative path", name, res.RuleID, uri)
			}
			if len(res.Suppressions) > 0 {
				suppressed++
				if res.Suppressions[0].Justification == "" {
					t.Errorf("%s: suppression of %s has no justification", name, res.RuleID)
				}
			}
		}
		if want := r.Summary().Suppressed; suppressed != want {
			t.Errorf("%s: %d suppressed results, want %d", name, suppressed, want)
		}
	}
}

func TestSARIFMapping(t *testing.T) {
	tests := []struct {
		level    vuln.Level
		score    float64
		want     string
		severity string
	}{
		{vuln.Critical, 9.8, "error", "9.8"},
		{vuln.High, 7.5, "error", "7.5"},
		{vuln.High, 0, "error", "8.0"},
		{vuln.High, 5.0, "error", "8.0"}, // a score that disagrees with the level is not used
		{vuln.Medium, 5.5, "warning", "5.5"},
		{vuln.Low, 3.7, "note", "3.7"},
		{vuln.None, 0, "note", "0.0"},
		{vuln.Unknown, 0, "note", ""},
	}
	for _, tt := range tests {
		f := &vuln.Finding{Level: tt.level, Score: tt.score}
		got := ""
		if s, ok := securitySeverity(f); ok {
			got = strconv.FormatFloat(s, 'f', 1, 64)
		}
		if sarifLevel(tt.level) != tt.want || got != tt.severity {
			t.Errorf("%s %.1f: level %s, security-severity %q; want %s, %q", tt.level, tt.score, sarifLevel(tt.level), got, tt.want, tt.severity)
		}
	}
	uris := map[string]string{
		"/var/lib/dpkg/status": "var/lib/dpkg/status",
		"/app/bin/a b:c%d":     "app/bin/a%20b:c%25d",
		"/a:b/c":               "./a:b/c",
	}
	for path, want := range uris {
		if got := artifactURI(vuln.PackageRef{Locations: []sbom.Location{{Path: path}}}, "img"); got != want {
			t.Errorf("artifactURI(%q) = %q, want %q", path, got, want)
		}
	}
	if got := artifactURI(vuln.PackageRef{}, "docker-archive:app.tar"); got != "./docker-archive:app.tar" {
		t.Errorf("artifactURI without a location = %q", got)
	}
}

func TestScanCycloneDXMatchesSchema(t *testing.T) {
	s := cyclonedxSchema(t)
	for name, r := range scans {
		if err := validate(t, s, writeScan(t, FormatCycloneDXJSON, r(), Options{})); err != nil {
			t.Errorf("%s report: CycloneDX output does not match bom-1.6.schema.json: %v", name, err)
		}
	}
	bad := bytes.Replace(writeScan(t, FormatCycloneDXJSON, testScan(), Options{}), []byte(`"state": "not_affected"`), []byte(`"state": "fine"`), 1)
	if err := validate(t, s, bad); err == nil {
		t.Error("bom-1.6 schema accepted an analysis state of fine")
	}
}

func TestScanCycloneDX(t *testing.T) {
	var bom cdx.BOM
	out := writeScan(t, FormatCycloneDXJSON, testScan(), Options{})
	if err := cdx.NewBOMDecoder(bytes.NewReader(out), cdx.BOMFileFormatJSON).Decode(&bom); err != nil {
		t.Fatal(err)
	}
	refs := map[string]bool{bom.Metadata.Component.BOMRef: true}
	for _, c := range *bom.Components {
		if refs[c.BOMRef] {
			t.Errorf("bom-ref %q twice", c.BOMRef)
		}
		refs[c.BOMRef] = true
	}
	// The distribution and the five affected packages (libssl3 has two findings).
	if n := len(*bom.Components); n != 6 {
		t.Errorf("%d components, want 6", n)
	}
	byID := map[string]cdx.Vulnerability{}
	for _, v := range *bom.Vulnerabilities {
		if refs[v.BOMRef] {
			t.Errorf("bom-ref %q twice", v.BOMRef)
		}
		refs[v.BOMRef] = true
		byID[v.ID] = v
		for _, a := range *v.Affects {
			if !refs[a.Ref] {
				t.Errorf("%s affects unknown component %q", v.ID, a.Ref)
			}
		}
	}
	if len(byID) != 6 {
		t.Errorf("%d vulnerabilities, want 6", len(byID))
	}
	goVuln := byID["GO-2024-2687"]
	if goVuln.Source.Name != "Go" || len(*goVuln.References) != 2 || (*goVuln.References)[1].ID != "GHSA-4v7x-pqxf-cx7m" || (*goVuln.References)[1].Source.Name != "GitHub" {
		t.Errorf("GO-2024-2687 = %+v", goVuln)
	}
	ratings := *goVuln.Ratings
	if len(ratings) != 2 || ratings[0].Method != cdx.ScoringMethodCVSSv31 || ratings[0].Score == nil || *ratings[0].Score != 7.5 ||
		ratings[0].Severity != cdx.SeverityHigh || ratings[1].Method != cdx.ScoringMethodOther || ratings[1].Severity != cdx.SeverityMedium {
		t.Errorf("GO-2024-2687 ratings = %+v", ratings)
	}
	if a := byID["CVE-2024-2511"].Analysis; a == nil || a.State != cdx.IASNotAffected || a.Justification != cdx.IAJCodeNotReachable ||
		!strings.Contains(a.Detail, "never resumes TLS 1.3 sessions") {
		t.Errorf("VEX suppression analysis = %+v", a)
	}
	if v := byID["CVE-2024-2511"]; (*v.Affects)[0].Range == nil || (*(*v.Affects)[0].Range)[0].Status != cdx.VulnerabilityStatusNotAffected {
		t.Errorf("not_affected finding's version status = %+v", v.Affects)
	}
	if a := byID["CVE-2021-23337"].Analysis; a == nil || a.State != "" || !strings.Contains(a.Detail, "template() is never called") {
		t.Errorf("ignore suppression analysis = %+v", a)
	}
	if a := byID["CVE-2024-0727"].Analysis; a != nil {
		t.Errorf("a finding that is not suppressed has an analysis: %+v", a)
	}
	if r := byID["TEMP-0841856-B18BAF"].Ratings; r == nil || (*r)[0].Severity != cdx.SeverityUnknown {
		t.Errorf("unknown severity ratings = %+v", r)
	}
}

func TestCDXAnalysis(t *testing.T) {
	tests := []struct {
		s     vuln.Suppression
		state cdx.ImpactAnalysisState
		just  cdx.ImpactAnalysisJustification
	}{
		{vuln.Suppression{Kind: "vex", Reason: "vex: fixed", Source: "v.json"}, cdx.IASResolved, ""},
		{vuln.Suppression{Kind: "vex", Reason: "vex: not_affected (component_not_present)", Source: "v.json"}, cdx.IASNotAffected, cdx.IAJCodeNotPresent},
		{vuln.Suppression{Kind: "vex", Reason: "vex: not_affected (vulnerable_code_cannot_be_controlled_by_adversary)", Source: "v.json"}, cdx.IASNotAffected, ""},
		{vuln.Suppression{Kind: "vex", Reason: "vex: not_affected: only used offline", Source: "v.json"}, cdx.IASNotAffected, ""},
		{vuln.Suppression{Kind: "vex", Reason: "hand-written", Source: "v.json"}, "", ""},
		{vuln.Suppression{Kind: "ignore", Reason: "accepted", Source: ".moatignore.yaml"}, "", ""},
	}
	for _, tt := range tests {
		a := cdxAnalysis(&tt.s)
		if a.State != tt.state || a.Justification != tt.just || !strings.Contains(a.Detail, tt.s.Source) {
			t.Errorf("%+v: analysis %+v", tt.s, a)
		}
	}
}

func TestScanDeterministic(t *testing.T) {
	for _, f := range ScanFormats() {
		r := testScan()
		first := writeScan(t, f, r, Options{})
		slices.Reverse(r.Findings)
		if second := writeScan(t, f, r, Options{}); !bytes.Equal(first, second) {
			t.Errorf("%s: the order of the findings changes the output", f)
		}
	}
	a, b := testScan(), testScan()
	b.Created = b.Created.Add(1)
	if scanDocumentUUID(a) == scanDocumentUUID(b) {
		t.Error("two scans of one image at different times have the same serial number")
	}
	if scanDocumentUUID(a) != scanDocumentUUID(testScan()) {
		t.Error("the serial number is not deterministic")
	}
}
