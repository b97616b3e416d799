package db

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// BenchmarkImportGo imports the real Go export (4,291 records) into a fresh directory.
func BenchmarkImportGo(b *testing.B) {
	zip := sharedZip(b, "Go")
	root := b.TempDir()
	for i := 0; b.Loop(); i++ {
		dir := filepath.Join(root, fmt.Sprint(i))
		if _, err := Update(context.Background(), dir, []Input{{Path: zip}}, UpdateOptions{}); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		os.RemoveAll(dir)
		b.StartTimer()
	}
}

// lookupSet returns n packages of the real Go and PyPI data, spread over the index: every one
// has advisories, which makes this the expensive case of a scan.
func lookupSet(b *testing.B, n int) [][2]string {
	var all [][2]string
	for _, eco := range []string{"Go", "PyPI"} {
		_, kept, _ := readReal(b, eco)
		seen := map[string]bool{}
		for _, a := range kept {
			for _, af := range a.Affected {
				if k := af.Ecosystem + "\x00" + af.Name; !seen[k] {
					seen[k] = true
					all = append(all, [2]string{af.Ecosystem, af.Name})
				}
			}
		}
	}
	slices.SortFunc(all, func(x, y [2]string) int {
		return cmp.Or(cmp.Compare(x[0], y[0]), cmp.Compare(x[1], y[1]))
	})
	if len(all) < n {
		b.Fatalf("only %d packages", len(all))
	}
	out := make([][2]string, 0, n)
	for i := range n {
		out = append(out, all[i*len(all)/n])
	}
	return out
}

// BenchmarkLookup looks up 1,000 packages (one op) in a database of the real Go and PyPI data:
// "hits" are packages that all have advisories, "misses" packages that have none, as most
// packages of an image.
func BenchmarkLookup(b *testing.B) {
	dir := b.TempDir()
	if _, err := Update(context.Background(), dir, []Input{{Path: sharedZip(b, "Go")}, {Path: sharedZip(b, "PyPI")}}, UpdateOptions{}); err != nil {
		b.Fatal(err)
	}
	d, err := Open(dir)
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	hits := lookupSet(b, 1000)
	var misses [][2]string
	for i := range 1000 {
		eco := []string{"Go", "PyPI", "Debian:12"}[i%3]
		misses = append(misses, [2]string{eco, fmt.Sprintf("example.com/package-%d", i)})
	}
	ctx := context.Background()
	for _, set := range []struct {
		name string
		pkgs [][2]string
	}{{"hits", hits}, {"misses", misses}} {
		b.Run(set.name, func(b *testing.B) {
			found := 0
			for b.Loop() {
				found = 0
				for _, p := range set.pkgs {
					as, err := d.Lookup(ctx, p[0], p[1])
					if err != nil {
						b.Fatal(err)
					}
					found += len(as)
				}
			}
			b.ReportMetric(float64(found), "advisories/op")
		})
	}
}

// BenchmarkCheckPages measures the full page check that Open runs on a file it has not
// checked before, here the real Go data.
func BenchmarkCheckPages(b *testing.B) {
	dir := b.TempDir()
	mustUpdate(b, dir, []Input{{Path: sharedZip(b, "Go")}}, UpdateOptions{})
	f, err := os.Open(filepath.Join(dir, FileName))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(fi.Size())
	for b.Loop() {
		if err := checkPages(f, fi.Size()); err != nil {
			b.Fatal(err)
		}
	}
}
