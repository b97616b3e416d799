package osv

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"context"
	"errors"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ossf/osv-schema/bindings/go/osvschema"
)

// sharedData is the project's real advisory data, beside the clone in CI and on developers'
// machines (see shared/vulndata/README.md).
const sharedData = "../../../../shared/vulndata/osv"

// sharedZip returns the bytes of the real all.zip of an ecosystem ("Go", "PyPI").
func sharedZip(t testing.TB, ecosystem string) []byte {
	t.Helper()
	p := filepath.Join(sharedData, ecosystem, "all.zip")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("the real OSV data is missing: %v (shared/vulndata must be checked out beside the repository)", err)
	}
	return b
}

// sampleRecords returns the first n records of a real all.zip.
func sampleRecords(t testing.TB, ecosystem string, n int) [][]byte {
	t.Helper()
	b := sharedZip(t, ecosystem)
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, f := range zr.File[:n] {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, data)
	}
	return out
}

// readAll reads a zip with ReadZip and returns its records by entry name, and the names in the
// order fn saw them.
func readAll(t *testing.T, b []byte) (map[string]*osvschema.Vulnerability, []string, Stats, error) {
	t.Helper()
	recs := map[string]*osvschema.Vulnerability{}
	var names []string
	st, err := ReadZip(t.Context(), bytes.NewReader(b), int64(len(b)), func(name string, v *osvschema.Vulnerability) error {
		recs[name] = v
		names = append(names, name)
		return nil
	})
	return recs, names, st, err
}

// zipNames returns the names of a zip's entries, in archive order.
func zipNames(t *testing.T, b []byte) []string {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range zr.File {
		names = append(names, f.Name)
	}
	return names
}

func TestReadZipGo(t *testing.T) {
	b := sharedZip(t, "Go")
	recs, names, st, err := readAll(t, b)
	if err != nil {
		t.Fatal(err)
	}
	want := Stats{Records: 4291, Withdrawn: 17, UnknownModified: 4291}
	if st.Records != want.Records || st.Skipped != 0 || st.Withdrawn != want.Withdrawn || st.GitRanges != 0 || st.UnknownModified != want.UnknownModified || st.Warnings != 0 {
		t.Errorf("stats = %+v, want %+v", st, want)
	}
	if !slices.Equal(names, zipNames(t, b)) {
		t.Error("fn did not see the records in archive order")
	}

	v := recs["GO-2020-0001.json"]
	if v == nil {
		t.Fatal("GO-2020-0001.json not read")
	}
	if v.GetId() != "GO-2020-0001" || v.GetPublished().AsTime().Format("2006-01-02") != "2021-04-14" {
		t.Errorf("id, published = %s, %s", v.GetId(), v.GetPublished().AsTime())
	}
	if got, want := Aliases(v), []string{"CVE-2020-36567", "GHSA-6vm3-jj99-7229"}; !slices.Equal(got, want) {
		t.Errorf("Aliases = %q, want %q", got, want)
	}
	if got := Ecosystems(v); !slices.Equal(got, []string{"Go"}) {
		t.Errorf("Ecosystems = %q", got)
	}
	a := v.GetAffected()[0]
	r := a.GetRanges()[0]
	if a.GetPackage().GetName() != "github.com/gin-gonic/gin" || r.GetType() != osvschema.Range_SEMVER ||
		!slices.Equal(events(r), []string{"introduced=0", "fixed=1.6.0"}) {
		t.Errorf("affected[0] = %v", a)
	}
	if got := v.GetDatabaseSpecific().AsMap()["review_status"]; got != "REVIEWED" {
		t.Errorf("database_specific.review_status = %v", got)
	}
	if w := recs["GO-2022-0617.json"]; !Withdrawn(w) {
		t.Error("GO-2022-0617 is not withdrawn")
	}
}

func TestReadZipPyPI(t *testing.T) {
	b := sharedZip(t, "PyPI")
	recs, names, st, err := readAll(t, b)
	if err != nil {
		t.Fatal(err)
	}
	// One record of the snapshot is broken at its source: PYSEC-2024-55 has
	// "modified": "1-01-01T00:00:00Z", which is not an RFC 3339 time.
	if st.Records != 2661 || st.Skipped != 1 || st.Withdrawn != 10 || st.Warnings != 1 || st.UnknownModified != 0 {
		t.Errorf("stats = %+v, want 2661 records, 1 skipped, 10 withdrawn, 1 warning", st)
	}
	if len(st.Examples) != 1 || st.Examples[0].Name != "PYSEC-2024-55.json" || !errors.Is(st.Examples[0].Err, ErrInvalidRecord) ||
		!strings.Contains(st.Examples[0].Err.Error(), "modified") {
		t.Errorf("warnings = %v, want PYSEC-2024-55.json's modified time", st.Examples)
	}
	if st.GitRanges == 0 {
		t.Error("no record with GIT ranges")
	}
	if len(recs) != 2660 || len(names) != 2660 {
		t.Errorf("fn saw %d records, want 2660", len(names))
	}

	v := recs["PYSEC-2021-335.json"]
	if v == nil {
		t.Fatal("PYSEC-2021-335.json not read")
	}
	if got, want := Aliases(v), []string{"CVE-2021-32807", "GHSA-qcx9-j53g-ccgf"}; !slices.Equal(got, want) {
		t.Errorf("Aliases = %q, want %q", got, want)
	}
	a := v.GetAffected()[0]
	if a.GetPackage().GetEcosystem() != "PyPI" || a.GetPackage().GetName() != "accesscontrol" || a.GetPackage().GetPurl() != "pkg:pypi/accesscontrol" {
		t.Errorf("package = %v", a.GetPackage())
	}
	if len(a.GetRanges()) != 2 {
		t.Fatalf("%d ranges, want 2", len(a.GetRanges()))
	}
	if g := a.GetRanges()[0]; g.GetType() != osvschema.Range_GIT || g.GetRepo() != "https://github.com/zopefoundation/AccessControl" {
		t.Errorf("ranges[0] = %v", g)
	}
	e := a.GetRanges()[1]
	if e.GetType() != osvschema.Range_ECOSYSTEM || !slices.Equal(events(e), []string{"introduced=4.0", "fixed=4.3", "introduced=5.0", "fixed=5.2"}) {
		t.Errorf("ranges[1] = %v", e)
	}
	if !slices.Equal(a.GetVersions(), []string{"4.0", "4.1", "4.2", "5.0", "5.1"}) {
		t.Errorf("versions = %q", a.GetVersions())
	}
	if !HasGitRanges(v) || Withdrawn(v) || !KnownModified(v) {
		t.Errorf("HasGitRanges, Withdrawn, KnownModified = %v, %v, %v", HasGitRanges(v), Withdrawn(v), KnownModified(v))
	}
}

// entry is one file of a hand-made zip.
type entry struct {
	name string
	data string
}

func makeZip(t *testing.T, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		w, err := zw.Create(e.name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(w, e.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

const goodRecord = `{"id":"GO-1","modified":"2024-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"Go","name":"m"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"}]}]}]}`

func TestReadZipRecordWarnings(t *testing.T) {
	b := makeZip(t,
		entry{"a/GO-1.json", goodRecord},
		entry{"dir/", ""},
		entry{"b/c/bad-type.json", `{"id":"X-2","modified":"2024-01-01T00:00:00Z","aliases":[1]}`},
		entry{"no-package.json", `{"id":"X-3","modified":"2024-01-01T00:00:00Z","affected":[{"versions":["1"]}]}`},
		entry{"withdrawn.json", `{"id":"X-4","modified":"2024-01-01T00:00:00Z","withdrawn":"2024-02-01T00:00:00Z"}`},
	)
	recs, names, st, err := readAll(t, b)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a/GO-1.json", "no-package.json", "withdrawn.json"}; !slices.Equal(names, want) {
		t.Errorf("fn saw %q, want %q", names, want)
	}
	if st.Records != 4 || st.Skipped != 1 || st.Withdrawn != 1 || st.Warnings != 2 || len(st.Examples) != 2 {
		t.Errorf("stats = %+v", st)
	}
	if w := st.Examples[0]; w.Name != "b/c/bad-type.json" || !errors.Is(w.Err, ErrInvalidRecord) || !strings.Contains(w.String(), "aliases") {
		t.Errorf("warning[0] = %v", w)
	}
	if w := st.Examples[1]; w.Name != "no-package.json" || !strings.Contains(w.String(), "dropped") {
		t.Errorf("warning[1] = %v", w)
	}
	if len(recs["no-package.json"].GetAffected()) != 0 {
		t.Error("affected entry without package kept")
	}
}

func TestReadZipWarningExamplesBounded(t *testing.T) {
	var entries []entry
	for i := range 3 * MaxWarningExamples {
		entries = append(entries, entry{name: string(rune('a'+i%26)) + strings.Repeat("x", i) + ".json", data: "{"})
	}
	_, _, st, err := readAll(t, makeZip(t, entries...))
	if err != nil {
		t.Fatal(err)
	}
	if st.Warnings != 3*MaxWarningExamples || st.Skipped != 3*MaxWarningExamples || len(st.Examples) != MaxWarningExamples {
		t.Errorf("warnings %d, skipped %d, examples %d", st.Warnings, st.Skipped, len(st.Examples))
	}
}

// rawZip makes a zip of one entry whose header says what h says, whatever data holds; the data
// is deflated unless h.Method is zip.Store.
func rawZip(t *testing.T, h *zip.FileHeader, data []byte) []byte {
	t.Helper()
	var comp bytes.Buffer
	if h.Method == zip.Deflate {
		fw, err := flate.NewWriter(&comp, flate.BestCompression)
		if err != nil {
			t.Fatal(err)
		}
		fw.Write(data)
		fw.Close()
	} else {
		comp.Write(data)
	}
	h.CompressedSize64 = uint64(comp.Len())
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, err := zw.CreateRaw(h)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(comp.Bytes())
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestReadZipBroken(t *testing.T) {
	good := makeZip(t, entry{"GO-1.json", goodRecord}, entry{"GO-2.json", strings.Replace(goodRecord, "GO-1", "GO-2", 1)})
	realGo := sharedZip(t, "Go")

	corruptCD := bytes.Clone(good)
	cd := bytes.LastIndex(corruptCD, []byte("PK\x01\x02"))
	corruptCD[cd+3] = 0xff

	corruptData := bytes.Clone(good)
	corruptData[bytes.Index(corruptData, []byte("GO-1.json"))+len("GO-1.json")+2] ^= 0xff

	zeros := make([]byte, MaxRecordSize+1)
	bigEntry := makeZip(t, entry{"bomb.json", string(zeros)})
	ratioBomb := makeZip(t, entry{"bomb.json", string(zeros[:1<<20])})
	// The header claims 100 bytes; the data inflates to 4 MiB.
	lying := rawZip(t, &zip.FileHeader{Name: "liar.json", Method: zip.Deflate, UncompressedSize64: 100, CRC32: crc32.ChecksumIEEE(zeros[:100])}, zeros[:MaxRecordSize])
	badCRC := rawZip(t, &zip.FileHeader{Name: "crc.json", Method: zip.Deflate, UncompressedSize64: uint64(len(goodRecord)), CRC32: 1}, []byte(goodRecord))

	tests := []struct {
		name string
		zip  []byte
		want string
	}{
		{"empty file", nil, "not a valid zip"},
		{"not a zip", []byte(goodRecord), "not a valid zip"},
		{"truncated", good[:len(good)-10], "not a valid zip"},
		{"truncated real archive", realGo[:len(realGo)/2], "not a valid zip"},
		{"corrupt central directory", corruptCD, "not a valid zip"},
		{"corrupt data", corruptData, "GO-1.json"},
		{"bad checksum", badCRC, "checksum"},
		{"entry too large", bigEntry, "more than the limit"},
		{"zip bomb ratio", ratioBomb, "ratio"},
		{"size in header is a lie", lying, "liar.json"},
		{"non-JSON entry", makeZip(t, entry{"GO-1.json", goodRecord}, entry{"README.md", "hello"}), `"README.md" is not a .json file`},
		{"symlink entry", func() []byte {
			h := &zip.FileHeader{Name: "link.json", Method: zip.Store}
			h.SetMode(os.ModeSymlink | 0o777)
			return rawZip(t, h, []byte("/etc/passwd"))
		}(), "not a .json file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var seen int
			_, err := ReadZip(t.Context(), bytes.NewReader(tt.zip), int64(len(tt.zip)), func(string, *osvschema.Vulnerability) error {
				seen++
				return nil
			})
			if err == nil {
				t.Fatalf("ReadZip succeeded, fn saw %d records", seen)
			}
			if !errors.Is(err, ErrInvalidArchive) {
				t.Errorf("error %q does not wrap ErrInvalidArchive", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
		})
	}
}

func TestReadZipStops(t *testing.T) {
	b := sharedZip(t, "Go")
	stop := errors.New("stop")
	var n int
	st, err := ReadZip(t.Context(), bytes.NewReader(b), int64(len(b)), func(string, *osvschema.Vulnerability) error {
		n++
		if n == 10 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 10 || st.Records != 10 {
		t.Errorf("err = %v after %d calls, %d records; want stop after 10", err, n, st.Records)
	}

	ctx, cancel := context.WithCancel(t.Context())
	n = 0
	_, err = ReadZip(ctx, bytes.NewReader(b), int64(len(b)), func(string, *osvschema.Vulnerability) error {
		n++
		if n == 10 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || n != 10 {
		t.Errorf("err = %v after %d calls; want context.Canceled after 10", err, n)
	}
}

// BenchmarkReadZipGo reads the whole Go database, 4,291 records, without storing them.
func BenchmarkReadZipGo(b *testing.B) {
	data := sharedZip(b, "Go")
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		st, err := ReadZip(b.Context(), bytes.NewReader(data), int64(len(data)), func(string, *osvschema.Vulnerability) error { return nil })
		if err != nil || st.Records != 4291 {
			b.Fatal(st, err)
		}
	}
}
