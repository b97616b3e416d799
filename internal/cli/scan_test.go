package cli

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/moatsec/moat/internal/report"
	"github.com/moatsec/moat/internal/testutil"
)

// Advisories for the test image (imageFiles): libc6 from source glibc 2.36-9+deb12u4, bash,
// and the npm packages left-pad 1.3.0 and @types/node 20.11.5.
var testAdvisories = map[string]map[string]string{
	"Debian": {
		// The fix was backported into the installed version: not reported.
		"DSA-9001-1.json": `{"id": "DSA-9001-1", "modified": "2024-01-01T00:00:00Z", "upstream": ["CVE-2099-1000"],
			"summary": "glibc - security update",
			"affected": [{"package": {"ecosystem": "Debian:12", "name": "glibc"},
			"ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.36-9+deb12u4"}]}]}]}`,
		// Fixed after the installed version: reported, rated by Debian's urgency.
		"DEBIAN-CVE-2099-2000.json": `{"id": "DEBIAN-CVE-2099-2000", "modified": "2024-02-01T00:00:00Z", "upstream": ["CVE-2099-2000"],
			"summary": "glibc: buffer overflow in the test",
			"affected": [{"package": {"ecosystem": "Debian:12", "name": "glibc"},
			"ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.36-9+deb12u5"}]}],
			"ecosystem_specific": {"urgency": "high"}}]}`,
		// No fix: reported as not fixed.
		"DEBIAN-CVE-2099-3000.json": `{"id": "DEBIAN-CVE-2099-3000", "modified": "2024-03-01T00:00:00Z", "upstream": ["CVE-2099-3000"],
			"summary": "bash: unfixed test issue",
			"affected": [{"package": {"ecosystem": "Debian:12", "name": "bash"},
			"ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}],
			"ecosystem_specific": {"urgency": "low"}}]}`,
		// Another release: never used for a Debian 12 image.
		"DEBIAN-CVE-2099-4000.json": `{"id": "DEBIAN-CVE-2099-4000", "modified": "2024-03-01T00:00:00Z",
			"affected": [{"package": {"ecosystem": "Debian:11", "name": "bash"},
			"ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}]}]}`,
	},
	"npm": {
		// Fixed before the installed version: not reported.
		"GHSA-test-0001-aaaa.json": `{"id": "GHSA-test-0001-aaaa", "modified": "2024-01-01T00:00:00Z", "aliases": ["CVE-2099-5000"],
			"affected": [{"package": {"ecosystem": "npm", "name": "left-pad"},
			"ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.2.0"}]}]}],
			"database_specific": {"severity": "CRITICAL"}}`,
	},
}

// writeAdvisories writes the advisories as the OSV bucket lays them out: DIR/ECOSYSTEM/all.zip.
func writeAdvisories(t *testing.T, sources map[string]map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for eco, files := range sources {
		if err := os.MkdirAll(filepath.Join(dir, eco), 0o755); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, eco, "all.zip"), zipOf(t, files), 0o644)
	}
	return dir
}

func zipOf(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		w, err := zw.Create(n)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(files[n]))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// importAdvisories builds the database in the test's MOAT_HOME.
func importAdvisories(t *testing.T, sources map[string]map[string]string) {
	t.Helper()
	dir := writeAdvisories(t, sources)
	args := []string{"db", "import"}
	for eco := range sources {
		args = append(args, filepath.Join(dir, eco, "all.zip"))
	}
	mustRun(t, args...)
}

func scanSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	const base = "https://raw.githubusercontent.com/moatsec/moat/main/docs/formats/"
	return testutil.CompileSchema(t, base+"scan.schema.json", map[string][]byte{
		base + "scan.schema.json": report.ScanSchema,
		base + "sbom.schema.json": report.SBOMSchema,
	})
}

type scanDoc struct {
	Findings []struct {
		ID         string   `json:"id"`
		Aliases    []string `json:"aliases"`
		Advisories []string `json:"advisories"`
		Package    struct {
			Name, Version string
		} `json:"package"`
		Severity      string   `json:"severity"`
		FixStatus     string   `json:"fixStatus"`
		FixedVersions []string `json:"fixedVersions"`
		Suppressed    *struct {
			Kind, Reason string
		} `json:"suppressed"`
	} `json:"findings"`
	Warnings []string `json:"warnings"`
}

// findings validates a JSON scan report and returns "ID package" for each finding, marking
// suppressed ones with a trailing " (suppressed)".
func findings(t *testing.T, out string) (map[string]string, scanDoc) {
	t.Helper()
	v, err := jsonschema.UnmarshalJSON(strings.NewReader(out))
	if err != nil {
		t.Fatalf("scan output is not JSON: %v\n%s", err, out)
	}
	if err := scanSchema(t).Validate(v); err != nil {
		t.Errorf("scan output does not match scan.schema.json: %v", err)
	}
	var doc scanDoc
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, f := range doc.Findings {
		k := f.ID + " " + f.Package.Name
		v := f.Severity + " " + f.FixStatus + " " + strings.Join(f.FixedVersions, ",")
		if f.Suppressed != nil {
			v += " (suppressed: " + f.Suppressed.Kind + ")"
		}
		got[k] = v
	}
	return got, doc
}

// runMsg is run with the error message appended to stderr, as the moat binary prints it.
func runMsg(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	stdout, stderr, code, err := run(t, args...)
	if err != nil {
		stderr += "moat: " + err.Error() + "\n"
	}
	return stdout, stderr, code
}

func wantFindings(t *testing.T, got, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got[k] != v {
			t.Errorf("finding %s = %q, want %q", k, got[k], v)
		}
	}
	for k, v := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected finding %s: %s", k, v)
		}
	}
}

func TestScan(t *testing.T) {
	setup(t)
	importAdvisories(t, testAdvisories)
	tg := targets(t)
	want := map[string]string{
		"CVE-2099-2000 libc6": "high fixed 2.36-9+deb12u5",
		"CVE-2099-3000 bash":  "low not-fixed ",
	}
	for _, name := range []string{"oci-archive", "dir", "registry"} {
		t.Run(name, func(t *testing.T) {
			args := []string{"scan", tg[name], "-o", "json"}
			if strings.HasPrefix(name, "registry") {
				args = append(args, "--insecure")
			}
			out, _ := mustRun(t, args...)
			got, _ := findings(t, out)
			wantFindings(t, got, want)
		})
	}

	// Every format is written; the formats agree on what was found.
	for _, f := range report.ScanFormats() {
		out, _ := mustRun(t, "scan", tg["oci-archive"], "-o", string(f))
		for _, id := range []string{"CVE-2099-2000", "CVE-2099-3000"} {
			if !strings.Contains(out, id) {
				t.Errorf("%s output does not mention %s", f, id)
			}
		}
		for _, id := range []string{"CVE-2099-1000", "CVE-2099-5000", "DEBIAN-CVE-2099-4000"} {
			if strings.Contains(out, id) {
				t.Errorf("%s output mentions %s, which does not affect the image", f, id)
			}
		}
	}
}

func TestScanFailOn(t *testing.T) {
	e := setup(t)
	importAdvisories(t, testAdvisories)
	target := targets(t)["oci-archive"]
	tests := []struct {
		name string
		args []string
		code int
	}{
		{"no threshold", nil, ExitOK},
		{"high", []string{"--fail-on", "high"}, ExitFindings},
		{"critical", []string{"--fail-on", "critical"}, ExitOK},
		{"low", []string{"--fail-on", "LOW"}, ExitFindings},
		{"bad level", []string{"--fail-on", "severe"}, ExitUsage},
		{"unknown is not a threshold", []string{"--fail-on", "unknown"}, ExitUsage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, stderr, code, err := run(t, append([]string{"scan", target, "-o", "json"}, tt.args...)...)
			if code != tt.code {
				t.Fatalf("exit %d (%v), want %d; stderr:\n%s", code, err, tt.code, stderr)
			}
		})
	}

	// An ignore file hides the high finding (with its reason in the JSON); an expired entry
	// no longer does and is reported.
	ignore := filepath.Join(e.work, ".moatignore.yaml")
	os.WriteFile(ignore, []byte("ignore:\n  - id: CVE-2099-2000\n    package: libc6\n    reason: not reachable in this service\n    expires: 2999-01-01\n"), 0o644)
	out, stderr, code, _ := run(t, "scan", target, "-o", "json", "--fail-on", "high")
	if code != ExitOK {
		t.Fatalf("with the ignore file: exit %d, stderr:\n%s", code, stderr)
	}
	got, _ := findings(t, out)
	if got["CVE-2099-2000 libc6"] != "high fixed 2.36-9+deb12u5 (suppressed: ignore)" {
		t.Errorf("ignored finding = %q", got["CVE-2099-2000 libc6"])
	}
	os.WriteFile(ignore, []byte("ignore:\n  - id: CVE-2099-2000\n    reason: accepted until the rebuild\n    expires: 2020-01-01\n"), 0o644)
	_, stderr, code = runMsg(t, "scan", target, "-o", "json", "--fail-on", "high")
	if code != ExitFindings || !strings.Contains(stderr, "expired") {
		t.Errorf("with an expired entry: exit %d, stderr:\n%s", code, stderr)
	}
	os.WriteFile(ignore, []byte("ignore:\n  - id: CVE-2099-2000\n    resaon: typo\n"), 0o644)
	_, stderr, code = runMsg(t, "scan", target, "-o", "json")
	if code != ExitError || !strings.Contains(stderr, ".moatignore.yaml:3") {
		t.Errorf("with a broken ignore file: exit %d, stderr:\n%s", code, stderr)
	}
	os.Remove(ignore)

	// --ignore-unfixed leaves out the finding without a fix.
	out, _ = mustRun(t, "scan", target, "-o", "json", "--ignore-unfixed")
	got, _ = findings(t, out)
	if _, ok := got["CVE-2099-3000 bash"]; ok || len(got) != 1 {
		t.Errorf("--ignore-unfixed: findings %v", got)
	}

	// An OpenVEX statement that the image's libc6 is not affected suppresses the finding.
	vex := filepath.Join(e.work, "app.openvex.json")
	os.WriteFile(vex, []byte(`{
  "@context": "https://openvex.dev/ns/v0.2.0",
  "@id": "https://example.com/vex/1",
  "author": "Example Security",
  "timestamp": "2024-05-01T00:00:00Z",
  "version": 1,
  "statements": [{
    "vulnerability": {"name": "CVE-2099-2000"},
    "products": [{"@id": "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&distro=debian-12"}],
    "status": "not_affected",
    "justification": "vulnerable_code_not_in_execute_path"
  }]
}`), 0o644)
	out, stderr, code, _ = run(t, "scan", target, "-o", "json", "--fail-on", "high", "--vex", vex)
	got, _ = findings(t, out)
	if code != ExitOK || got["CVE-2099-2000 libc6"] != "high fixed 2.36-9+deb12u5 (suppressed: vex)" {
		t.Errorf("with VEX: exit %d, findings %v, stderr:\n%s", code, got, stderr)
	}
	_, _, code, _ = run(t, "scan", target, "--vex", filepath.Join(e.work, "missing.json"))
	if code != ExitError {
		t.Errorf("a missing --vex file: exit %d, want %d", code, ExitError)
	}
}

// TestScanSBOM scans an SBOM written earlier and finds what scanning the image finds.
func TestScanSBOM(t *testing.T) {
	e := setup(t)
	importAdvisories(t, testAdvisories)
	target := targets(t)["oci-archive"]
	direct, _ := mustRun(t, "scan", target, "-o", "json")
	want, _ := findings(t, direct)
	for _, f := range []string{"json", "cyclonedx-json", "spdx-json"} {
		t.Run(f, func(t *testing.T) {
			p := filepath.Join(e.work, "app."+f)
			mustRun(t, "sbom", target, "-o", f, "--output-file", p)
			out, _ := mustRun(t, "scan", "sbom:"+p, "-o", "json")
			got, _ := findings(t, out)
			wantFindings(t, got, want)
			os.Remove(p)
		})
	}
	_, stderr, code := runMsg(t, "scan", "sbom:"+filepath.Join(e.work, "nope.json"))
	if code != ExitError || !strings.Contains(stderr, "nope.json") {
		t.Errorf("missing SBOM: exit %d, stderr %s", code, stderr)
	}
}

// TestScanNeverLooksClean: a database without data for what the image holds is an error, not
// an empty report.
func TestScanNeverLooksClean(t *testing.T) {
	setup(t)
	target := targets(t)["oci-archive"]
	_, stderr, code := runMsg(t, "scan", target)
	if code != ExitError || !strings.Contains(stderr, "moat db update") {
		t.Errorf("no database: exit %d, stderr:\n%s", code, stderr)
	}
	importAdvisories(t, map[string]map[string]string{"Debian": testAdvisories["Debian"]})
	_, stderr, code = runMsg(t, "scan", target, "--fail-on", "critical")
	if code != ExitError || !strings.Contains(stderr, "npm") {
		t.Errorf("no npm data: exit %d, stderr:\n%s", code, stderr)
	}
	out, stderr, code := runMsg(t, "scan", target, "-o", "json", "--allow-missing-data")
	_, doc := findings(t, out)
	if code != ExitOK || !slices.ContainsFunc(doc.Warnings, func(w string) bool { return strings.Contains(w, "npm") }) {
		t.Errorf("--allow-missing-data: exit %d, warnings %v, stderr:\n%s", code, doc.Warnings, stderr)
	}
}

// TestDBUpdate downloads archives from a loopback mirror; a failing mirror leaves the database
// as it was.
func TestDBUpdate(t *testing.T) {
	setup(t)
	dir := writeAdvisories(t, testAdvisories)
	var fail bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fail {
			http.Error(w, "boom", http.StatusInternalServerError)
			return
		}
		http.FileServer(http.Dir(dir)).ServeHTTP(w, r)
	}))
	defer srv.Close()
	out, stderr := mustRun(t, "db", "update", "--ecosystem", "Debian", "--ecosystem", "npm", "--base-url", srv.URL)
	if !strings.Contains(out, "Debian") || !strings.Contains(out, "npm") {
		t.Errorf("db update printed:\n%s\n%s", out, stderr)
	}
	before, _ := mustRun(t, "db", "status", "-o", "json")
	var st struct {
		Sources []struct {
			Name    string
			Records int
			Inputs  []struct{ Origin string }
		}
	}
	if err := json.Unmarshal([]byte(before), &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Sources) != 2 || st.Sources[0].Records != 4 || !strings.HasPrefix(st.Sources[0].Inputs[0].Origin, srv.URL) {
		t.Errorf("status after update: %s", before)
	}

	fail = true
	_, stderr, code := runMsg(t, "db", "update", "--base-url", srv.URL)
	if code != ExitError || !strings.Contains(stderr, "500") {
		t.Errorf("update from a failing mirror: exit %d, stderr:\n%s", code, stderr)
	}
	after, _ := mustRun(t, "db", "status", "-o", "json")
	if after != before {
		t.Errorf("a failed update changed the database:\nbefore %s\nafter %s", before, after)
	}
	// Without --ecosystem, the sources already there are updated.
	fail = false
	out, _ = mustRun(t, "db", "update", "--base-url", srv.URL)
	if !strings.Contains(out, "Debian") || !strings.Contains(out, "npm") {
		t.Errorf("db update without --ecosystem printed:\n%s", out)
	}
	for _, args := range [][]string{
		{"db", "update", "--ecosystem", "../etc"},
		{"db", "status", "-o", "xml"},
	} {
		if _, _, code, _ := run(t, args...); code != ExitUsage {
			t.Errorf("moat %s: exit %d, want %d", strings.Join(args, " "), code, ExitUsage)
		}
	}
	// Plain HTTP is refused off loopback.
	if _, stderr, code, _ := run(t, "db", "update", "--ecosystem", "Go", "--base-url", "http://"+nonLoopbackAddr()); code != ExitError {
		t.Errorf("plain HTTP to a non-loopback mirror: exit %d, stderr %s", code, stderr)
	}
}

// TestDBPushPull mirrors the database through a registry into a second moat home.
func TestDBPushPull(t *testing.T) {
	setup(t)
	importAdvisories(t, testAdvisories)
	reg := testutil.Registry(t)
	ref := reg + "/security/moat-db:latest"
	out, _ := mustRun(t, "db", "push", "--insecure", ref)
	if !strings.Contains(out, "pushed") {
		t.Errorf("db push printed %q", out)
	}
	want, _ := mustRun(t, "scan", targets(t)["oci-archive"], "-o", "json")

	t.Setenv("MOAT_HOME", t.TempDir())
	out, _ = mustRun(t, "db", "pull", "--insecure", ref)
	if !strings.Contains(out, "installed") {
		t.Errorf("db pull printed %q", out)
	}
	got, _ := mustRun(t, "scan", targets(t)["oci-archive"], "-o", "json")
	g, _ := findings(t, got)
	w, _ := findings(t, want)
	wantFindings(t, g, w)

	// An image that is not a database is refused and the installed one stays.
	testutil.Push(t, reg+"/app:1", testImage(t))
	if _, stderr, code := runMsg(t, "db", "pull", "--insecure", reg+"/app:1"); code != ExitError || !strings.Contains(stderr, "not a moat advisory database") {
		t.Errorf("pulling an image: exit %d, stderr %s", code, stderr)
	}
	mustRun(t, "db", "status")
}

// TestScanSampleImage scans the sample image (make sample-image) against the real Go and PyPI
// advisories of ../shared/vulndata and the hand-written Debian, npm and Maven fixtures of
// testdata/osv. The image holds a Go program built against old golang.org/x/text and
// gopkg.in/yaml.v3, old Python distributions' metadata, npm and Maven packages, and Debian's
// python3-requests, whose PyPI advisories must not be used (Debian's package owns it).
func TestScanSampleImage(t *testing.T) {
	sample := os.Getenv("MOAT_SAMPLE_IMAGE")
	if sample == "" {
		t.Skip("MOAT_SAMPLE_IMAGE is not set; `make test` builds the sample image and sets it")
	}
	shared := filepath.Join("..", "..", "..", "shared", "vulndata", "osv")
	if _, err := os.Stat(shared); err != nil {
		t.Skipf("no shared advisory data: %v", err)
	}
	abs := func(p string) string {
		a, err := filepath.Abs(p)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	paths := []string{abs(filepath.Join(shared, "Go", "all.zip")), abs(filepath.Join(shared, "PyPI", "all.zip"))}
	for _, eco := range []string{"Debian", "npm", "Maven"} {
		paths = append(paths, abs(filepath.Join("..", "..", "testdata", "osv", eco)))
	}
	setup(t)
	mustRun(t, append([]string{"db", "import"}, paths...)...)
	out, _, code := runMsg(t, "scan", "oci-dir:"+filepath.Join(sample, "image.oci"), "-o", "json", "--fail-on", "critical")
	if code != ExitFindings {
		t.Errorf("exit %d, want %d (a critical finding)", code, ExitFindings)
	}
	got, doc := findings(t, out)
	want := map[string]string{
		// Go: the sample program's old modules (aliases merged: GO-2022-1059 and its GHSA).
		"CVE-2022-32149 golang.org/x/text": "unknown fixed 0.3.8",
		"CVE-2022-28948 gopkg.in/yaml.v3":  "unknown fixed 3.0.0-20220521103104-8f96da9f5d5e",
		// PyPI: distributions installed outside dpkg.
		"CVE-2023-43804 urllib3": "high fixed 1.26.17,2.0.6",
		"CVE-2024-3651 idna":     "high fixed 3.7",
		// npm and Maven fixtures.
		"CVE-2021-44906 minimist":                         "critical fixed 1.2.6",
		"CVE-2021-23337 lodash":                           "high fixed 4.17.21",
		"CVE-2022-24999 qs":                               "high fixed 6.7.3",
		"CVE-2024-29041 express":                          "medium fixed 4.19.2",
		"CVE-2024-47554 commons-io:commons-io":            "medium fixed 2.14.0",
		"CVE-2025-48924 org.apache.commons:commons-lang3": "medium fixed 3.18.0",
		// Debian fixtures: by source package, with Debian's urgency.
		"CVE-2025-9230 openssl":   "medium fixed 3.0.20-1~deb12u3",
		"CVE-2025-9230 libssl3":   "medium fixed 3.0.20-1~deb12u3",
		"CVE-2016-2781 coreutils": "low not-fixed ",
		"CVE-2010-4756 libc6":     "none will-not-fix ",
		"CVE-2010-4756 libc-bin":  "none will-not-fix ",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("finding %s = %q, want %q", k, got[k], v)
		}
	}
	for k := range got {
		for _, never := range []string{
			"CVE-2023-2650 ",  // DSA-5417-1: fixed by a backport before the installed openssl
			"CVE-2023-23583 ", // a package the image does not have
			"CVE-2017-20162 ", // ms: the installed 2.0.0 is the fixed version
			"CVE-2022-42003 ", // jackson-databind 2.14.0 is past both ranges
			" requests",       // Debian's python3-requests: matched through Debian only
			" PyYAML",         // Debian's python3-yaml
		} {
			if strings.Contains(k, never) {
				t.Errorf("unexpected finding %s", k)
			}
		}
	}
	for _, f := range doc.Findings {
		if f.ID == "CVE-2022-32149" && (!slices.Contains(f.Aliases, "GO-2022-1059") || !slices.Contains(f.Aliases, "GHSA-69ch-w2m2-3vjp")) {
			t.Errorf("CVE-2022-32149 aliases = %v, want GO-2022-1059 and GHSA-69ch-w2m2-3vjp", f.Aliases)
		}
	}
}
