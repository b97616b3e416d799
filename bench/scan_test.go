package bench

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/ossf/osv-schema/bindings/go/osvschema"

	"github.com/moatsec/moat/internal/sbom"
	"github.com/moatsec/moat/internal/sbom/catalogers"
	"github.com/moatsec/moat/internal/sbom/engine"
	"github.com/moatsec/moat/internal/vuln/db"
	"github.com/moatsec/moat/internal/vuln/match"
	"github.com/moatsec/moat/internal/vuln/osv"
)

// vulndata is ../shared/vulndata/osv, the real Go and PyPI advisories.
func vulndata(b *testing.B, eco string) string {
	b.Helper()
	p := filepath.Join("..", "..", "shared", "vulndata", "osv", eco, "all.zip")
	if _, err := os.Stat(p); err != nil {
		b.Skipf("no shared advisory data: %v", err)
	}
	return p
}

// fullDB builds the database every scan benchmark reads: the real Go and PyPI archives and the
// hand-written Debian, npm and Maven fixtures (testdata/osv).
func fullDB(b *testing.B) *db.DB {
	b.Helper()
	dir := b.TempDir()
	inputs := []db.Input{{Path: vulndata(b, "Go")}, {Path: vulndata(b, "PyPI")}}
	for _, eco := range []string{"Debian", "npm", "Maven"} {
		inputs = append(inputs, db.Input{Path: filepath.Join("..", "testdata", "osv", eco)})
	}
	if _, err := db.Update(context.Background(), dir, inputs, db.UpdateOptions{}); err != nil {
		b.Fatal(err)
	}
	d, err := db.Open(dir)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { d.Close() })
	return d
}

// BenchmarkParseGo is the import baseline: parse every record of the Go archive, store nothing.
func BenchmarkParseGo(b *testing.B) {
	p := vulndata(b, "Go")
	f, err := os.Open(p)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	measure(b, func() {
		if _, err := osv.ReadZip(context.Background(), f, fi.Size(), func(string, *osvschema.Vulnerability) error { return nil }); err != nil {
			b.Fatal(err)
		}
	})
}

// BenchmarkImportGo imports the Go archive (4,291 records) into a new database, as `moat db
// import` does: parse, convert, index, write, sync and swap in.
func BenchmarkImportGo(b *testing.B) {
	p := vulndata(b, "Go")
	root := b.TempDir()
	i := 0
	measure(b, func() {
		i++
		if _, err := db.Update(context.Background(), filepath.Join(root, fmt.Sprint(i)), []db.Input{{Path: p}}, db.UpdateOptions{}); err != nil {
			b.Fatal(err)
		}
	})
}

// thousandPackages is an inventory of 1,000 language packages: 600 named by advisories in the
// database (at old versions, so that many match) and 400 that no advisory names.
func thousandPackages(b *testing.B) *sbom.Inventory {
	b.Helper()
	var names []sbom.Package
	for _, eco := range []string{"Go", "PyPI"} {
		p := vulndata(b, eco)
		f, err := os.Open(p)
		if err != nil {
			b.Fatal(err)
		}
		fi, _ := f.Stat()
		seen := map[string]bool{}
		_, err = osv.ReadZip(context.Background(), f, fi.Size(), func(_ string, v *osvschema.Vulnerability) error {
			for _, a := range v.GetAffected() {
				n := a.GetPackage().GetName()
				if a.GetPackage().GetEcosystem() != eco || seen[n] || n == "stdlib" || n == "toolchain" {
					continue
				}
				seen[n] = true
				if eco == "Go" {
					names = append(names, sbom.Package{Name: n, Version: "v0.1.0", Type: sbom.TypeGolang})
				} else {
					names = append(names, sbom.Package{Name: n, Version: "1.0.0", Type: sbom.TypePyPI})
				}
			}
			return nil
		})
		f.Close()
		if err != nil {
			b.Fatal(err)
		}
	}
	rng := rand.New(rand.NewSource(1))
	rng.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
	pkgs := slices.Clip(names[:600])
	for i := range 400 {
		if i%2 == 0 {
			pkgs = append(pkgs, sbom.Package{Name: fmt.Sprintf("example.com/clean/mod%d", i), Version: "v1.2.3", Type: sbom.TypeGolang})
		} else {
			pkgs = append(pkgs, sbom.Package{Name: fmt.Sprintf("clean-dist-%d", i), Version: "2.0.0", Type: sbom.TypePyPI})
		}
	}
	return &sbom.Inventory{Packages: pkgs}
}

// BenchmarkLookup1000 is the matching baseline: the 1,000 database lookups a match makes, and
// nothing else.
func BenchmarkLookup1000(b *testing.B) {
	d := fullDB(b)
	inv := thousandPackages(b)
	ctx := context.Background()
	measure(b, func() {
		for _, p := range inv.Packages {
			eco := "Go"
			if p.Type == sbom.TypePyPI {
				eco = "PyPI"
			}
			if _, err := d.Lookup(ctx, eco, p.Name); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkMatch1000 matches 1,000 packages against the full database.
func BenchmarkMatch1000(b *testing.B) {
	d := fullDB(b)
	inv := thousandPackages(b)
	var n int
	measure(b, func() {
		res, err := match.Match(context.Background(), inv, d, match.Options{})
		if err != nil {
			b.Fatal(err)
		}
		n = len(res.Findings)
	})
	b.ReportMetric(float64(n), "findings")
}

// BenchmarkScanCold inventories the sample image with an empty layer cache and matches it: a
// first `moat scan`, minus printing.
func BenchmarkScanCold(b *testing.B) {
	img := sample(b)
	d := fullDB(b)
	tmp := b.TempDir()
	e, err := engine.New(catalogers.Default(tmp), engine.WithTempDir(tmp))
	if err != nil {
		b.Fatal(err)
	}
	measure(b, func() {
		inv, err := e.Inventory(context.Background(), img)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := match.Match(context.Background(), inv, d, match.Options{}); err != nil {
			b.Fatal(err)
		}
	})
}

// BenchmarkScanWarm is BenchmarkScanCold with every layer cached.
func BenchmarkScanWarm(b *testing.B) {
	img := sample(b)
	d := fullDB(b)
	e := warmEngine(b, img)
	measure(b, func() {
		inv, err := e.Inventory(context.Background(), img)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := match.Match(context.Background(), inv, d, match.Options{}); err != nil {
			b.Fatal(err)
		}
	})
}
