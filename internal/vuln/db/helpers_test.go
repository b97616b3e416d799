package db

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// sharedData is the project's real advisory data, beside the clone in CI and on developers'
// machines (see shared/vulndata/README.md).
const sharedData = "../../../../shared/vulndata/osv"

// sharedZip returns the path of the real all.zip of an ecosystem ("Go", "PyPI").
func sharedZip(t testing.TB, ecosystem string) string {
	t.Helper()
	p := filepath.Join(sharedData, ecosystem, "all.zip")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("the real OSV data is missing: %v (shared/vulndata must be checked out beside the repository)", err)
	}
	return p
}

// slow skips a test that imports the real data in -short mode.
func slow(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("imports the real Go and PyPI data")
	}
}

// mustUpdate runs Update and fails the test on error.
func mustUpdate(t testing.TB, dir string, inputs []Input, opts UpdateOptions) *Result {
	t.Helper()
	res, err := Update(context.Background(), dir, inputs, opts)
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	return res
}

// mustOpen opens the database in dir and closes it when the test ends.
func mustOpen(t testing.TB, dir string) *DB {
	t.Helper()
	d, err := Open(dir)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// lookupIDs returns the IDs Lookup finds.
func lookupIDs(t testing.TB, d *DB, ecosystem, name string) []string {
	t.Helper()
	as, err := d.Lookup(context.Background(), ecosystem, name)
	if err != nil {
		t.Fatalf("Lookup(%q, %q): %v", ecosystem, name, err)
	}
	var ids []string
	for _, a := range as {
		ids = append(ids, a.ID)
	}
	return ids
}

// dirFiles lists dir's file names, sorted, leaving out the stamp of the live database, which any Open may write.
func dirFiles(t testing.TB, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		if e.Name() != FileName+stampSuffix {
			out = append(out, e.Name())
		}
	}
	slices.Sort(out)
	return out
}
