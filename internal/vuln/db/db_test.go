package db

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ossf/osv-schema/bindings/go/osvschema"

	"github.com/moatsec/moat/internal/vuln"
	"github.com/moatsec/moat/internal/vuln/osv"
)

// readReal reads a real all.zip with osv.ReadZip: the advisories moat keeps (in a vuln.Memory,
// as a reference for the database) and the IDs of the withdrawn records.
func readReal(t testing.TB, ecosystem string) (*vuln.Memory, []*vuln.Advisory, []string) {
	t.Helper()
	p := sharedZip(t, ecosystem)
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	var kept []*vuln.Advisory
	var withdrawn []string
	_, err = osv.ReadZip(context.Background(), f, fi.Size(), func(_ string, v *osvschema.Vulnerability) error {
		if osv.Withdrawn(v) {
			withdrawn = append(withdrawn, v.GetId())
			return nil
		}
		kept = append(kept, vuln.FromOSV(v, ecosystem))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return vuln.NewMemory(kept...), kept, withdrawn
}

func asJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestImportReal imports the real Go and PyPI exports and checks every package of every
// advisory against an in-memory index of the same records.
func TestImportReal(t *testing.T) {
	slow(t)
	dir := t.TempDir()
	res := mustUpdate(t, dir, []Input{{Path: sharedZip(t, "Go")}, {Path: sharedZip(t, "PyPI")}}, UpdateOptions{})
	if !slices.Equal(res.Updated, []string{"Go", "PyPI"}) || len(res.Kept) != 0 || res.Discarded != "" {
		t.Errorf("result: updated %v kept %v discarded %q", res.Updated, res.Kept, res.Discarded)
	}
	d := mustOpen(t, dir)
	ctx := context.Background()

	want := map[string]struct{ records, withdrawn int }{"Go": {4274, 17}, "PyPI": {2650, 10}}
	for name, w := range want {
		s, ok := d.Status().Source(name)
		if !ok {
			t.Fatalf("no source %s in %+v", name, d.Status())
		}
		if s.Records != w.records || s.Withdrawn != w.withdrawn || s.Ecosystems[name] != w.records {
			t.Errorf("%s: records %d withdrawn %d ecosystems %v, want %d, %d", name, s.Records, s.Withdrawn, s.Ecosystems, w.records, w.withdrawn)
		}
		if len(s.Inputs) != 1 || len(s.Inputs[0].SHA256) != 64 || s.Inputs[0].Size == 0 || !filepath.IsAbs(s.Inputs[0].Origin) {
			t.Errorf("%s: inputs %+v", name, s.Inputs)
		}
		if s.AsOf.IsZero() || s.ImportedAt.IsZero() {
			t.Errorf("%s: asOf %v importedAt %v", name, s.AsOf, s.ImportedAt)
		}
	}
	if st, _ := d.Status().Source("PyPI"); !st.NewestModified.Equal(time.Date(2024, 10, 10, 17, 22, 0, 0, time.UTC)) || !st.AsOf.Equal(st.NewestModified) {
		t.Errorf("PyPI: newest modified %v, asOf %v", st.NewestModified, st.AsOf)
	}
	// One PyPI record has a malformed modified time ("1-01-01T00:00:00Z"): skipped, not fatal.
	if st, _ := d.Status().Source("PyPI"); st.Skipped != 1 || st.Warnings != 1 || len(st.Examples) != 1 || !strings.Contains(st.Examples[0], "PYSEC-2024-55.json") {
		t.Errorf("PyPI: skipped %d warnings %d examples %q", st.Skipped, st.Warnings, st.Examples)
	}
	if got := d.Status().Records(); got != 4274+2650 {
		t.Errorf("Records() = %d", got)
	}
	ecos, err := d.Ecosystems(ctx)
	if err != nil || ecos["Go"] != 4274 || ecos["PyPI"] != 2650 || len(ecos) != 2 {
		t.Errorf("Ecosystems() = %v, %v", ecos, err)
	}

	if ids := lookupIDs(t, d, "Go", "golang.org/x/text"); !slices.Contains(ids, "GO-2022-1059") || !slices.IsSorted(ids) {
		t.Errorf("golang.org/x/text: %v, want GO-2022-1059 among them, sorted", ids)
	}
	// PEP 503: "Requests" and "requests" are one package.
	upper, lower := lookupIDs(t, d, "PyPI", "Requests"), lookupIDs(t, d, "PyPI", "requests")
	if len(upper) == 0 || !slices.Equal(upper, lower) {
		t.Errorf("PyPI Requests %v, requests %v", upper, lower)
	}
	for _, miss := range [][2]string{{"Go", "example.com/not/a/module"}, {"PyPI", "golang.org/x/text"}, {"npm", "requests"}, {"", ""}} {
		if ids := lookupIDs(t, d, miss[0], miss[1]); len(ids) != 0 {
			t.Errorf("Lookup(%q, %q) = %v", miss[0], miss[1], ids)
		}
	}

	for _, eco := range []string{"Go", "PyPI"} {
		mem, kept, withdrawn := readReal(t, eco)
		if len(withdrawn) == 0 {
			t.Fatalf("%s: the data has no withdrawn records to test with", eco)
		}
		for _, id := range withdrawn {
			if _, err := d.Get(ctx, id); !errors.Is(err, ErrNotFound) {
				t.Errorf("withdrawn %s: Get error %v, want ErrNotFound", id, err)
			}
		}
		// Every package finds the same advisories as in memory...
		checked := map[string]bool{}
		for _, a := range kept {
			for _, af := range a.Affected {
				k := vuln.IndexKey(af.Ecosystem, af.Name)
				if checked[k] {
					continue
				}
				checked[k] = true
				var want []string
				wantAs, _ := mem.Lookup(ctx, af.Ecosystem, af.Name)
				for _, w := range wantAs {
					want = append(want, w.ID)
				}
				slices.Sort(want)
				if got := lookupIDs(t, d, af.Ecosystem, af.Name); !slices.Equal(got, want) {
					t.Fatalf("Lookup(%q, %q) = %v, want %v", af.Ecosystem, af.Name, got, want)
				}
			}
		}
		// ... and every advisory is stored as it was read.
		for _, w := range kept {
			got, err := d.Get(ctx, w.ID)
			if err != nil {
				t.Fatal(err)
			}
			if g, w := asJSON(t, got), asJSON(t, w); g != w {
				t.Fatalf("Get:\n got %.500s\nwant %.500s", g, w)
			}
		}
	}
	if _, err := Verify(ctx, d.Path()); err != nil {
		t.Errorf("Verify: %v", err)
	}
}

// fixtures is the directory of hand-written records, one subdirectory per ecosystem.
const fixtures = "testdata/osv"

// zipDir writes the .json files of dir into a new zip at path, as the OSV bucket lays them out.
func zipDir(t testing.TB, dir, path string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		w, err := zw.Create(filepath.Base(f))
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestImportFixtures imports the hand-written distribution and language records as
// directories, single files and zips, and looks each package up.
func TestImportFixtures(t *testing.T) {
	tmp := t.TempDir()
	debZip := filepath.Join(tmp, "Debian", "all.zip")
	zipDir(t, filepath.Join(fixtures, "Debian"), debZip)
	// Not the bucket's layout: the source comes from the records.
	npmZip := filepath.Join(tmp, "exports", "npm-2024.zip")
	zipDir(t, filepath.Join(fixtures, "npm"), npmZip)
	// A copy of the OSV bucket: <ecosystem>/all.zip.
	mirror := filepath.Join(tmp, "mirror")
	zipDir(t, filepath.Join(fixtures, "Debian"), filepath.Join(mirror, "Debian", "all.zip"))
	zipDir(t, filepath.Join(fixtures, "Rocky Linux"), filepath.Join(mirror, "Rocky Linux", "all.zip"))
	os.WriteFile(filepath.Join(mirror, "README"), []byte("copied from gs://osv-vulnerabilities"), 0o644)
	alpineZipElsewhere := filepath.Join(tmp, "download", "all.zip")
	zipDir(t, filepath.Join(fixtures, "Alpine"), alpineZipElsewhere)

	type lookup struct {
		eco, name string
		want      []string
	}
	debianLookups := []lookup{
		{"Debian:12", "libexample", []string{"DSA-5800-1"}},
		{"Debian:12", "openssl", []string{"DEBIAN-CVE-2024-2511"}},
		{"Debian:11", "openssl", []string{"DEBIAN-CVE-2024-2511"}},
		{"Debian:13", "libexample", nil},
		{"Debian", "openssl", nil},
	}
	tests := []struct {
		name     string
		inputs   []Input
		sources  []string
		lookups  []lookup
		wantErr  string
		withdraw int
	}{
		{name: "directory per ecosystem", inputs: []Input{
			{Path: filepath.Join(fixtures, "Debian")}, {Path: filepath.Join(fixtures, "Alpine")},
			{Path: filepath.Join(fixtures, "Red Hat")}, {Path: filepath.Join(fixtures, "Rocky Linux")},
			{Path: filepath.Join(fixtures, "npm")}, {Path: filepath.Join(fixtures, "Maven")},
		},
			sources: []string{"Alpine", "Debian", "Maven", "Red Hat", "Rocky Linux", "npm"},
			lookups: append(debianLookups,
				lookup{"Alpine:v3.20", "openssl", []string{"ALPINE-CVE-2024-6119"}},
				lookup{"Alpine:v3.19", "openssl", []string{"ALPINE-CVE-2024-6119"}},
				lookup{"Red Hat:enterprise_linux:9::baseos", "openssl-libs", []string{"RHSA-2024:2447"}},
				lookup{"Rocky Linux:9", "openssl", []string{"RLSA-2024:2447"}},
				lookup{"npm", "lodash", []string{"GHSA-35jh-r3h4-6jhm"}},
				lookup{"npm", "Lodash", nil}, // npm names are case-sensitive
				lookup{"Maven", "org.apache.logging.log4j:log4j-core", []string{"GHSA-jfh8-c2jp-5v3q"}},
			),
			withdraw: 1},
		{name: "bucket layout zip", inputs: []Input{{Path: debZip}}, sources: []string{"Debian"}, lookups: debianLookups, withdraw: 1},
		{name: "copy of the OSV bucket", inputs: []Input{{Path: mirror}}, sources: []string{"Debian", "Rocky Linux"},
			lookups: append(debianLookups, lookup{"Rocky Linux:9", "openssl", []string{"RLSA-2024:2447"}}), withdraw: 1},
		{name: "zip named by its records", inputs: []Input{{Path: npmZip}, {Path: alpineZipElsewhere}}, sources: []string{"Alpine", "npm"},
			lookups: []lookup{{"npm", "lodash-es", []string{"GHSA-35jh-r3h4-6jhm"}}, {"Alpine:v3.20", "openssl", []string{"ALPINE-CVE-2024-6119"}}}},
		{name: "single files", inputs: []Input{
			{Path: filepath.Join(fixtures, "Debian", "DSA-5800-1.json")},
			{Path: filepath.Join(fixtures, "Debian", "DEBIAN-CVE-2024-2511.json")},
			{Path: filepath.Join(fixtures, "Red Hat", "RHSA-2024-2447.json")},
		},
			sources: []string{"Debian", "Red Hat"},
			lookups: []lookup{{"Debian:12", "libexample", []string{"DSA-5800-1"}}, {"Debian:13", "openssl", []string{"DEBIAN-CVE-2024-2511"}},
				{"Red Hat:enterprise_linux:9::baseos", "openssl", []string{"RHSA-2024:2447"}}}},
		{name: "explicit source for a mixed directory", inputs: []Input{{Path: fixtures, Source: "fixtures"}}, sources: []string{"fixtures"},
			lookups: append(debianLookups, lookup{"Maven", "org.apache.logging.log4j:log4j-core", []string{"GHSA-jfh8-c2jp-5v3q"}}), withdraw: 1},
		{name: "mixed directory without a source", inputs: []Input{{Path: fixtures}}, wantErr: "several ecosystems (Alpine, Debian, Maven, Red Hat, Rocky Linux, npm): name the source"},
		{name: "withdrawn record alone", inputs: []Input{{Path: filepath.Join(fixtures, "Debian", "DEBIAN-CVE-2023-9999.json")}},
			sources: []string{"Debian"}, lookups: []lookup{{"Debian:12", "libexample", nil}}, withdraw: 1},
		{name: "missing input", inputs: []Input{{Path: filepath.Join(tmp, "nope.zip")}}, wantErr: "no such file"},
		{name: "not a record", inputs: []Input{{Path: filepath.Join(fixtures, "README.txt")}}, wantErr: "invalid OSV record"},
		{name: "bad source name", inputs: []Input{{Path: debZip, Source: "../x"}}, wantErr: "invalid source name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			res, err := Update(context.Background(), dir, tc.inputs, UpdateOptions{})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				if files := dirFiles(t, dir); slices.Contains(files, FileName) || len(files) > 1 {
					t.Errorf("files left: %v", files)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(res.Updated, tc.sources) {
				t.Errorf("updated %v, want %v", res.Updated, tc.sources)
			}
			d := mustOpen(t, dir)
			withdrawn := 0
			for _, s := range d.Status().Sources {
				withdrawn += s.Withdrawn
			}
			if withdrawn != tc.withdraw {
				t.Errorf("withdrawn %d, want %d", withdrawn, tc.withdraw)
			}
			for _, l := range tc.lookups {
				if got := lookupIDs(t, d, l.eco, l.name); !slices.Equal(got, l.want) {
					t.Errorf("Lookup(%q, %q) = %v, want %v", l.eco, l.name, got, l.want)
				}
			}
			if _, err := d.Get(context.Background(), "DEBIAN-CVE-2023-9999"); !errors.Is(err, ErrNotFound) {
				t.Errorf("the withdrawn record: Get error %v", err)
			}
			if _, err := Verify(context.Background(), d.Path()); err != nil {
				t.Errorf("Verify: %v", err)
			}
		})
	}
}

// TestAdvisoryContent checks that a stored advisory keeps what matching needs.
func TestAdvisoryContent(t *testing.T) {
	dir := t.TempDir()
	mustUpdate(t, dir, []Input{{Path: filepath.Join(fixtures, "Debian")}, {Path: filepath.Join(fixtures, "Maven")}}, UpdateOptions{})
	d := mustOpen(t, dir)
	as, err := d.Lookup(context.Background(), "Debian:12", "libexample")
	if err != nil || len(as) != 1 {
		t.Fatalf("Lookup: %v, %v", as, err)
	}
	a := as[0]
	if a.Source != "Debian" || a.Summary != "libexample - security update" || !slices.Equal(a.Aliases, []string{"CVE-2024-0727"}) {
		t.Errorf("advisory %+v", a)
	}
	if len(a.Affected) != 1 || a.Affected[0].Ranges[0].Events[1].Fixed != "1.2-3+deb12u1" ||
		!slices.Equal(a.Affected[0].Severity, []vuln.Severity{{Type: "Debian", Score: "medium"}}) {
		t.Errorf("affected %+v", a.Affected)
	}
	if !a.Modified.Equal(time.Date(2024, 10, 20, 8, 15, 0, 0, time.UTC)) {
		t.Errorf("modified %v", a.Modified)
	}
	m, err := d.Get(context.Background(), "GHSA-jfh8-c2jp-5v3q")
	if err != nil || len(m.Affected[0].Ranges) != 3 || m.Severity[1] != (vuln.Severity{Type: "GHSA", Score: "CRITICAL"}) {
		t.Errorf("Get: %+v, %v", m, err)
	}
}

// TestSameRecordInTwoSources imports one record as two sources: it is found and counted once.
func TestSameRecordInTwoSources(t *testing.T) {
	dir := t.TempDir()
	npm := filepath.Join(fixtures, "npm")
	mustUpdate(t, dir, []Input{{Path: npm}, {Path: npm, Source: "GHSA"}}, UpdateOptions{})
	d := mustOpen(t, dir)
	as, err := d.Lookup(context.Background(), "npm", "lodash")
	if err != nil || len(as) != 1 || as[0].Source != "npm" {
		t.Fatalf("Lookup: %v, %v", as, err)
	}
	ecos, err := d.Ecosystems(context.Background())
	if err != nil || ecos["npm"] != 1 {
		t.Errorf("Ecosystems() = %v, %v", ecos, err)
	}
	if d.Status().Records() != 2 {
		t.Errorf("records %d", d.Status().Records())
	}
}

// TestSameSourceTwoInputs imports two inputs into one source; the later-modified copy of a
// record both hold wins.
func TestSameSourceTwoInputs(t *testing.T) {
	tmp := t.TempDir()
	orig, err := os.ReadFile(filepath.Join(fixtures, "Debian", "DSA-5800-1.json"))
	if err != nil {
		t.Fatal(err)
	}
	newer := bytes.Replace(orig, []byte(`"modified": "2024-10-20T08:15:00Z"`), []byte(`"modified": "2025-01-01T00:00:00Z"`), 1)
	newer = bytes.Replace(newer, []byte("libexample - security update"), []byte("libexample - regression update"), 1)
	newerPath := filepath.Join(tmp, "newer", "DSA-5800-1.json")
	os.MkdirAll(filepath.Dir(newerPath), 0o755)
	if err := os.WriteFile(newerPath, newer, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, order := range [][]Input{
		{{Path: filepath.Join(fixtures, "Debian")}, {Path: newerPath}},
		{{Path: newerPath}, {Path: filepath.Join(fixtures, "Debian")}},
	} {
		dir := t.TempDir()
		mustUpdate(t, dir, order, UpdateOptions{})
		d := mustOpen(t, dir)
		a, err := d.Get(context.Background(), "DSA-5800-1")
		if err != nil || a.Summary != "libexample - regression update" {
			t.Errorf("Get: %+v, %v", a, err)
		}
		s, _ := d.Status().Source("Debian")
		if s.Records != 2 || len(s.Inputs) != 2 || !s.AsOf.Equal(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)) {
			t.Errorf("status %+v", s)
		}
		if ids := lookupIDs(t, d, "Debian:12", "libexample"); !slices.Equal(ids, []string{"DSA-5800-1"}) {
			t.Errorf("lookup %v", ids)
		}
	}
}

// TestPartialUpdate updates one source and removes another; the rest is kept as it was.
func TestPartialUpdate(t *testing.T) {
	slow(t)
	dir := t.TempDir()
	mustUpdate(t, dir, []Input{{Path: sharedZip(t, "Go")}, {Path: filepath.Join(fixtures, "npm")}}, UpdateOptions{})
	before := mustOpen(t, dir).Status()

	res := mustUpdate(t, dir, []Input{{Path: sharedZip(t, "PyPI")}}, UpdateOptions{})
	if !slices.Equal(res.Updated, []string{"PyPI"}) || !slices.Equal(res.Kept, []string{"Go", "npm"}) {
		t.Errorf("updated %v kept %v", res.Updated, res.Kept)
	}
	d := mustOpen(t, dir)
	for _, name := range []string{"Go", "npm"} {
		was, _ := before.Source(name)
		now, ok := d.Status().Source(name)
		if !ok || asJSON(t, was) != asJSON(t, now) {
			t.Errorf("%s: status %+v, was %+v", name, now, was)
		}
	}
	if ids := lookupIDs(t, d, "Go", "golang.org/x/text"); !slices.Contains(ids, "GO-2022-1059") {
		t.Errorf("Go data lost: %v", ids)
	}
	if ids := lookupIDs(t, d, "PyPI", "requests"); len(ids) == 0 {
		t.Error("PyPI data missing")
	}
	if _, err := Verify(context.Background(), d.Path()); err != nil {
		t.Errorf("Verify: %v", err)
	}

	res = mustUpdate(t, dir, nil, UpdateOptions{Remove: []string{"Go"}})
	if !slices.Equal(res.Removed, []string{"Go"}) || !slices.Equal(res.Kept, []string{"PyPI", "npm"}) {
		t.Errorf("removed %v kept %v", res.Removed, res.Kept)
	}
	d2 := mustOpen(t, dir)
	if ids := lookupIDs(t, d2, "Go", "golang.org/x/text"); len(ids) != 0 {
		t.Errorf("removed source still found: %v", ids)
	}
	if _, err := Update(context.Background(), dir, nil, UpdateOptions{Remove: []string{"Go"}}); err == nil || !strings.Contains(err.Error(), `no such source`) {
		t.Errorf("removing a missing source: %v", err)
	}
	if _, err := Update(context.Background(), dir, nil, UpdateOptions{}); err == nil {
		t.Error("an update with nothing to do succeeded")
	}
}

// TestLeftoversRemoved plays a crashed update: its files are removed by the next one.
func TestLeftoversRemoved(t *testing.T) {
	dir := t.TempDir()
	mustUpdate(t, dir, []Input{{Path: filepath.Join(fixtures, "npm")}}, UpdateOptions{})
	for _, name := range []string{FileName + ".new-123", "download-456.zip"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("half-written"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// The live database still opens with the leftovers beside it.
	mustOpen(t, dir)
	mustUpdate(t, dir, []Input{{Path: filepath.Join(fixtures, "Maven")}}, UpdateOptions{})
	if got := dirFiles(t, dir); !slices.Equal(got, []string{FileName, lockName}) {
		t.Errorf("files %v", got)
	}
}

func TestStatusAge(t *testing.T) {
	now := time.Date(2026, 1, 10, 0, 0, 0, 0, time.UTC)
	s := Status{Sources: []SourceStatus{
		{Name: "Go", AsOf: now.Add(-2 * time.Hour)},
		{Name: "Debian", AsOf: now.Add(-50 * time.Hour)},
		{Name: "future", AsOf: now.Add(time.Hour)},
	}}
	if got := s.Age(now); got != 50*time.Hour {
		t.Errorf("Age = %v", got)
	}
	tests := []struct {
		maxAge time.Duration
		want   []string
	}{
		{24 * time.Hour, []string{"Debian"}},
		{time.Hour, []string{"Go", "Debian"}},
		{100 * time.Hour, nil},
		{0, nil},
	}
	for _, tc := range tests {
		if got := s.Stale(now, tc.maxAge); !slices.Equal(got, tc.want) {
			t.Errorf("Stale(%v) = %v, want %v", tc.maxAge, got, tc.want)
		}
	}
	if (Status{}).Age(now) != 0 {
		t.Error("an empty status has an age")
	}
	if s.Sources[2].Age(now) != 0 {
		t.Error("data from the future has a negative age")
	}
}

// TestLargeInputsOneSource imports two large archives as one source, which moves one staged
// bucket and copies the other: every advisory must survive the pages freed on the way.
func TestLargeInputsOneSource(t *testing.T) {
	slow(t)
	dir := t.TempDir()
	// Small batches: many commits, each invalidating the bucket handles of the one before.
	opts := UpdateOptions{batchBytes: 256 << 10}
	mustUpdate(t, dir, []Input{{Path: sharedZip(t, "Go"), Source: "mixed"}, {Path: sharedZip(t, "PyPI"), Source: "mixed"}}, opts)
	st, err := Verify(context.Background(), filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	s, _ := st.Source("mixed")
	if s.Records != 4274+2650 || len(s.Inputs) != 2 || s.Ecosystems["Go"] != 4274 || s.Ecosystems["PyPI"] != 2650 {
		t.Errorf("status %+v", s)
	}
	d := mustOpen(t, dir)
	if ids := lookupIDs(t, d, "Go", "golang.org/x/text"); !slices.Contains(ids, "GO-2022-1059") {
		t.Errorf("Go lookup %v", ids)
	}
	if ids := lookupIDs(t, d, "PyPI", "requests"); len(ids) == 0 {
		t.Error("PyPI lookup found nothing")
	}
	// Update again, keeping "mixed" as it is: the copy of a large source.
	mustUpdate(t, dir, []Input{{Path: filepath.Join(fixtures, "npm")}}, opts)
	if _, err := Verify(context.Background(), filepath.Join(dir, FileName)); err != nil {
		t.Fatal(err)
	}
	if ids := lookupIDs(t, mustOpen(t, dir), "Go", "golang.org/x/text"); !slices.Contains(ids, "GO-2022-1059") {
		t.Errorf("Go lookup after the copy: %v", ids)
	}
}
