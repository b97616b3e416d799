package db

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/moatsec/moat/internal/vuln"
)

var vulnAdvisoryX = vuln.Advisory{ID: "X-1", Affected: []vuln.Affected{}}

// smallDB builds a database of the npm and Maven fixtures and returns its file's bytes.
func smallDB(t *testing.T) []byte {
	t.Helper()
	dir := t.TempDir()
	mustUpdate(t, dir, []Input{{Path: filepath.Join(fixtures, "npm")}, {Path: filepath.Join(fixtures, "Maven")}}, UpdateOptions{})
	b, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// tamper writes a copy of a database and lets fn change it through bbolt.
func tamper(t *testing.T, good []byte, fn func(tx *bolt.Tx) error) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), FileName)
	if err := os.WriteFile(p, good, 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := bolt.Open(p, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Update(fn); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

func putMeta(key, value string) func(tx *bolt.Tx) error {
	return func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put([]byte(key), []byte(value)) }
}

// TestOpenBadFiles opens files that are not databases, damaged databases and databases of
// another schema: each gives a clear error, none a crash.
func TestOpenBadFiles(t *testing.T) {
	good := smallDB(t)
	write := func(b []byte) string {
		p := filepath.Join(t.TempDir(), FileName)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	garbage := bytes.Repeat([]byte("not a database "), 4000)
	tests := []struct {
		name    string
		path    string
		want    error
		message string
	}{
		{"missing", filepath.Join(t.TempDir(), FileName), ErrNoDatabase, "run `moat db update`"},
		{"directory", t.TempDir(), ErrCorrupt, "not a regular file"},
		{"empty", write(nil), ErrCorrupt, "too small"},
		{"garbage", write(garbage), ErrCorrupt, ""},
		{"a few bytes", write([]byte("PK\x03\x04")), ErrCorrupt, "too small"},
		{"first page only", write(good[:4096]), ErrCorrupt, ""},
		{"truncated past the meta pages", write(good[:8192+100]), ErrCorrupt, "truncated"},
		{"truncated by one page", write(good[:len(good)-4096]), ErrCorrupt, "truncated"},
		{"meta pages zeroed", write(append(make([]byte, 8192), good[8192:]...)), ErrCorrupt, ""},
		{"newer schema", tamper(t, good, putMeta("schema", "2")), ErrSchema, "newer moat"},
		{"older schema", tamper(t, good, putMeta("schema", "0")), ErrSchema, "rebuild"},
		{"schema not a number", tamper(t, good, putMeta("schema", "one")), ErrCorrupt, "schema version"},
		{"no meta", tamper(t, good, func(tx *bolt.Tx) error { return tx.DeleteBucket(bucketMeta) }), ErrCorrupt, "no meta bucket"},
		{"info not JSON", tamper(t, good, putMeta("info", "{")), ErrCorrupt, "reading info"},
		{"info names a bad source", tamper(t, good, putMeta("info", `{"sources":[{"name":"../../x"}]}`)), ErrCorrupt, "invalid source name"},
		{"source without bucket", tamper(t, good, func(tx *bolt.Tx) error { return tx.DeleteBucket(sourceBucket("npm")) }), ErrCorrupt, `"npm" is listed but has no bucket`},
		{"a bolt database of something else", tamper(t, good, func(tx *bolt.Tx) error {
			tx.DeleteBucket(bucketMeta)
			_, err := tx.CreateBucket([]byte("layers"))
			return err
		}), ErrCorrupt, "no meta bucket"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := OpenFile(tc.path)
			if err == nil {
				d.Close()
				t.Fatal("no error")
			}
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.message) {
				t.Errorf("error %q, want %v containing %q", err, tc.want, tc.message)
			}
			if _, err := Verify(context.Background(), tc.path); err == nil {
				t.Error("Verify: no error")
			}
		})
	}
}

// TestVerifyDamage damages what Open does not read; Verify finds it, Lookup and Get report it.
func TestVerifyDamage(t *testing.T) {
	good := smallDB(t)
	idxPut := func(k, v string) func(tx *bolt.Tx) error {
		return func(tx *bolt.Tx) error {
			return tx.Bucket(sourceBucket("npm")).Bucket(bucketIdx).Put([]byte(k), []byte(v))
		}
	}
	advPut := func(k string, v []byte) func(tx *bolt.Tx) error {
		return func(tx *bolt.Tx) error { return tx.Bucket(sourceBucket("npm")).Bucket(bucketAdv).Put([]byte(k), v) }
	}
	tests := []struct {
		name    string
		fn      func(tx *bolt.Tx) error
		lookup  bool // whether Lookup("npm", "lodash") sees the damage
		message string
	}{
		{"index names a missing advisory", idxPut("npm\x00lodash", "GHSA-35jh-r3h4-6jhm\nGHSA-zzzz"), true, `"GHSA-zzzz"`},
		{"index entry empty", idxPut("npm\x00lodash", ""), true, "empty index entry"},
		{"index ids unsorted", idxPut("npm\x00lodash", "b\na"), true, "not sorted"},
		{"index key without ecosystem", idxPut("lodash", "GHSA-35jh-r3h4-6jhm"), false, "has no ecosystem"},
		{"index key of an unlisted ecosystem", idxPut("PyPI\x00x", "GHSA-35jh-r3h4-6jhm"), false, "not in the status"},
		{"advisory garbled", advPut("GHSA-35jh-r3h4-6jhm", []byte{1, 0xff}), true, "GHSA-35jh-r3h4-6jhm"},
		{"advisory under another id", advPut("GHSA-35jh-r3h4-6jhm", encodeAdvisory(nil, &vulnAdvisoryX)), true, `has id "X-1"`},
		{"extra advisory", advPut("X-1", encodeAdvisory(nil, &vulnAdvisoryX)), false, "2 advisories stored, the status says 1"},
		{"unlisted bucket", func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("source:PyPI")); return err }, false, "not a listed source"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := tamper(t, good, tc.fn)
			d, err := OpenFile(p)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer d.Close()
			_, err = Verify(context.Background(), p)
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), tc.message) {
				t.Errorf("Verify: %v, want ErrCorrupt containing %q", err, tc.message)
			}
			_, err = d.Lookup(context.Background(), "npm", "lodash")
			if tc.lookup != (err != nil) || (err != nil && !errors.Is(err, ErrCorrupt)) {
				t.Errorf("Lookup: %v", err)
			}
			// Other sources are unaffected.
			if ids := lookupIDs(t, d, "Maven", "org.apache.logging.log4j:log4j-core"); len(ids) != 1 {
				t.Errorf("Maven lookup: %v", ids)
			}
		})
	}
}
