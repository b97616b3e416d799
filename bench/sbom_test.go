// Package bench holds moat's benchmarks. Each compares moat against a baseline measured in the
// same run, so results are ratios that hold across machines: `make bench` prints them.
package bench

import (
	"context"
	"io"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/moatsec/moat/internal/env"
	"github.com/moatsec/moat/internal/image"
	"github.com/moatsec/moat/internal/sbom/catalogers"
	"github.com/moatsec/moat/internal/sbom/engine"
	"github.com/moatsec/moat/internal/store"
	"golang.org/x/sync/errgroup"
)

func sample(b *testing.B) *image.Image {
	b.Helper()
	dir := env.SampleImage.Get()
	if dir == "" {
		b.Skip("MOAT_SAMPLE_IMAGE is not set: run `make bench`, which builds the sample image")
	}
	img, err := image.Open(context.Background(), image.Target{Source: image.SourceOCIDir, Ref: filepath.Join(dir, "image.oci")}, image.Options{TempDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { img.Close() })
	return img
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// measure runs fn b.N times and reports CPU seconds per operation beside wall time.
func measure(b *testing.B, fn func()) {
	b.ReportAllocs()
	c0 := cpuTime()
	b.ResetTimer()
	for b.Loop() {
		fn()
	}
	b.StopTimer()
	b.ReportMetric((cpuTime()-c0).Seconds()/float64(b.N), "cpu-s/op")
}

// BenchmarkFloor is the baseline: read and decompress every layer once, in parallel as the
// engine does, and verify its digest; nothing else.
func BenchmarkFloor(b *testing.B) {
	img := sample(b)
	measure(b, func() {
		var g errgroup.Group
		for _, l := range img.Layers {
			g.Go(func() error {
				rc, err := l.Open(context.Background())
				if err != nil {
					return err
				}
				defer rc.Close()
				_, err = io.Copy(io.Discard, rc)
				return err
			})
		}
		if err := g.Wait(); err != nil {
			b.Fatal(err)
		}
	})
}

// BenchmarkInventoryCold inventories the sample image with an empty cache every time.
func BenchmarkInventoryCold(b *testing.B) {
	img := sample(b)
	tmp := b.TempDir()
	e, err := engine.New(catalogers.Default(tmp), engine.WithTempDir(tmp))
	if err != nil {
		b.Fatal(err)
	}
	measure(b, func() {
		if _, err := e.Inventory(context.Background(), img); err != nil {
			b.Fatal(err)
		}
	})
}

// warmEngine returns an engine whose layer cache already holds every layer of img.
func warmEngine(b *testing.B, img *image.Image) *engine.Engine {
	b.Helper()
	tmp := b.TempDir()
	st, err := store.Open(filepath.Join(tmp, "moat.db"), time.Second)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	e, err := engine.New(catalogers.Default(tmp), engine.WithTempDir(tmp), engine.WithCache(st))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := e.Inventory(context.Background(), img); err != nil {
		b.Fatal(err)
	}
	return e
}

// BenchmarkInventoryWarm inventories the sample image when every layer is cached.
func BenchmarkInventoryWarm(b *testing.B) {
	img := sample(b)
	e := warmEngine(b, img)
	measure(b, func() {
		if _, err := e.Inventory(context.Background(), img); err != nil {
			b.Fatal(err)
		}
	})
}
