package rootfs

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/moatsec/moat/internal/env"
	"github.com/moatsec/moat/internal/image"
	"golang.org/x/sync/errgroup"
)

// sampleImage opens the sample image `make sample-image` builds (Debian 12 plus an
// application layer: 93 MB of gzip, 200 MB of tar), or skips.
func sampleImage(b *testing.B) *image.Image {
	b.Helper()
	dir := env.SampleImage.Get()
	if dir == "" {
		b.Skipf("set %s (make bench sets it)", env.SampleImage.Name)
	}
	img, err := image.Open(context.Background(), image.Target{Source: image.SourceOCIDir, Ref: filepath.Join(dir, "image.oci")}, image.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { img.Close() })
	return img
}

var benchParent = flag.String("rootfs-bench-dir", "", "BenchmarkUnpackSample: make caches under this directory (default: the test's temporary directory), to compare filesystems")

func benchDir(b *testing.B) string {
	if *benchParent == "" {
		return b.TempDir()
	}
	d, err := os.MkdirTemp(*benchParent, "bench-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// BenchmarkUnpackSample unpacks the sample image into an empty cache: the first run of an
// image. Floor is the baseline of the same run: read, verify and decompress every layer,
// discarding the bytes. Warm is a second container of the image: nothing to unpack.
func BenchmarkUnpackSample(b *testing.B) {
	requireRoot(b)
	img := sampleImage(b)
	var tarBytes int64
	b.Run("Floor", func(b *testing.B) {
		cpu := cpuSeconds()
		for b.Loop() {
			var g errgroup.Group
			var sizes = make([]int64, len(img.Layers))
			for i, l := range img.Layers {
				g.Go(func() error {
					rc, err := l.Open(context.Background())
					if err != nil {
						return err
					}
					defer rc.Close()
					sizes[i], err = io.Copy(io.Discard, rc)
					return err
				})
			}
			if err := g.Wait(); err != nil {
				b.Fatal(err)
			}
			tarBytes = 0
			for _, s := range sizes {
				tarBytes += s
			}
		}
		b.ReportMetric((cpuSeconds()-cpu)/float64(b.N), "cpu-s/op")
		b.SetBytes(tarBytes)
	})
	for _, bc := range []struct {
		name string
		opts []Option
	}{{"Cold", nil}, {"ColdNoSync", []Option{WithoutSync()}}} {
		b.Run(bc.name, func(b *testing.B) {
			// Each run gets a cache of its own, all removed at the end: removing one right
			// before the next run would time ext4's inode allocator skipping the inodes just
			// freed (recently_deleted), which is quadratic for a while after mass deletes.
			base := benchDir(b)
			cpu := cpuSeconds()
			for i := 0; i < b.N; i++ {
				c, err := NewCache(filepath.Join(base, fmt.Sprint(i)), bc.opts...)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := c.UnpackAll(context.Background(), img.Layers, IDMap{}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric((cpuSeconds()-cpu)/float64(b.N), "cpu-s/op")
			b.SetBytes(tarBytes)
		})
	}
	b.Run("Warm", func(b *testing.B) {
		c, err := NewCache(benchDir(b))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.UnpackAll(context.Background(), img.Layers, IDMap{}); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			us, err := c.UnpackAll(context.Background(), img.Layers, IDMap{})
			if err != nil || us[0].Fresh {
				b.Fatal(err)
			}
		}
	})
}
