package bench

import (
	"context"
	"flag"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/moatsec/moat/internal/env"
	"github.com/moatsec/moat/internal/image"
	"github.com/moatsec/moat/internal/runtime/backend"
	"github.com/moatsec/moat/internal/runtime/engine"
	"github.com/moatsec/moat/internal/runtime/spec"
)

// firstRunArgs is what the first-run benchmarks run in the sample image: the smallest
// program it has, so that the measure is the start, not the work.
var firstRunArgs = []string{"/bin/true"}

var firstRunParent = flag.String("firstrun-dir", "", "BenchmarkFirstRun*: make the fresh directories under this directory (default: the system's temporary directory, on the root filesystem like moat's own data), to compare filesystems")

// scratch is the directory the first-run benchmarks unpack into; TestMain removes it once
// every benchmark has run.
var scratch struct {
	once sync.Once
	dir  string
	err  error
}

// firstRunDir returns a new directory for one first-run benchmark. Nothing under it is removed
// before the process ends: on ext4 without a journal, creating files shortly after mass
// deletions is several times slower (the inode allocator skips recently deleted inodes,
// reading each one's inode table block), so one benchmark's clean-up would slow the next.
func firstRunDir(b *testing.B, name string) string {
	b.Helper()
	scratch.once.Do(func() {
		scratch.dir, scratch.err = os.MkdirTemp(*firstRunParent, "moat-firstrun-")
		if scratch.err == nil {
			// Containers' mapped root must reach the root filesystems below it.
			scratch.err = os.Chmod(scratch.dir, 0o711)
		}
	})
	if scratch.err != nil {
		b.Fatal(scratch.err)
	}
	dir, err := os.MkdirTemp(scratch.dir, name+"-")
	if err != nil {
		b.Fatal(err)
	}
	if err := os.Chmod(dir, 0o711); err != nil {
		b.Fatal(err)
	}
	return dir
}

// removeFirstRunDirs removes what the first-run benchmarks made.
func removeFirstRunDirs() error {
	if scratch.dir == "" {
		return nil
	}
	return os.RemoveAll(scratch.dir)
}

// allCPU is the CPU time of this process and of its waited-for children (tar, gzip, runc).
func allCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru)
	return cpuTime() + time.Duration(ru.Utime.Nano()+ru.Stime.Nano())
}

// sampleBlobs returns the sample image and the paths of its layer blobs in its OCI layout,
// read once so that both first-run benchmarks start with them in the page cache (as after a
// pull).
func sampleBlobs(b *testing.B) (*image.Image, []string) {
	b.Helper()
	if os.Geteuid() != 0 {
		b.Skip("needs root: overlayfs, runc and ownership of the unpacked files")
	}
	img := sample(b)
	var blobs []string
	for _, l := range img.Layers {
		p := filepath.Join(env.SampleImage.Get(), "image.oci", "blobs", l.Digest.Algorithm, l.Digest.Hex)
		f, err := os.Open(p)
		if err != nil {
			b.Fatal(err)
		}
		_, err = io.Copy(io.Discard, f)
		f.Close()
		if err != nil {
			b.Fatal(err)
		}
		blobs = append(blobs, p)
	}
	return img, blobs
}

// BenchmarkFirstRunBaseline is the first-run baseline: what a shell script would do with the
// same layer blobs. Each iteration, in a new directory on the same filesystem as moat's data
// (not tmpfs): GNU tar extracts the layers in order (`tar -xzf`, which inflates with gzip, one
// layer after the other, no digest check, no ID shift: files keep their owners), `sync -f`
// flushes the filesystem (moat's layer cache syncs each layer before publishing it), then
// `runc run` starts /bin/true in a bundle holding the hardened spec moat generates for that
// root filesystem, used in place (no overlay).
func BenchmarkFirstRunBaseline(b *testing.B) {
	img, blobs := sampleBlobs(b)
	base := firstRunDir(b, "baseline")
	state := filepath.Join(base, "state")
	run := func(name string, args ...string) {
		if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
			b.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
	}
	cpu := allCPU()
	for i := 0; b.Loop(); i++ {
		bundle := filepath.Join(base, strconv.Itoa(i))
		rootfs := filepath.Join(bundle, "rootfs")
		if err := os.MkdirAll(rootfs, 0o755); err != nil {
			b.Fatal(err)
		}
		for _, blob := range blobs {
			run("tar", "--numeric-owner", "-xzf", blob, "-C", rootfs)
		}
		run("sync", "-f", rootfs)
		gen, err := spec.Generate(img.Config.Config, rootfs, spec.Options{Args: firstRunArgs})
		if err != nil {
			b.Fatal(err)
		}
		cfg, err := gen.ConfigJSON()
		if err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(bundle, "config.json"), cfg, 0o600); err != nil {
			b.Fatal(err)
		}
		run("runc", "--root", state, "run", "--bundle", bundle, "first-"+strconv.Itoa(i))
	}
	b.ReportMetric((allCPU()-cpu).Seconds()/float64(b.N), "cpu-s/op")
}

// BenchmarkFirstRunEngine is the first `moat run --rm` of the sample image (about 200 MB of
// tar in two gzip layers), in process: each iteration opens an engine in a new directory, so
// that its layer cache is empty, and runs /bin/true: unpack (verify, inflate, shift IDs, sync),
// overlay mount, spec, runc, removal. Target: under 2 s.
func BenchmarkFirstRunEngine(b *testing.B) {
	img, _ := sampleBlobs(b)
	base := firstRunDir(b, "engine")
	cpu := allCPU()
	for i := 0; b.Loop(); i++ {
		e, err := engine.New(filepath.Join(base, strconv.Itoa(i)))
		if err != nil {
			b.Fatal(err)
		}
		res, err := e.Run(context.Background(), img, engine.RunOptions{
			Level: spec.Hardened, Remove: true,
			Spec: spec.Options{Args: firstRunArgs},
			IO:   backend.IO{Stdout: io.Discard, Stderr: io.Discard},
		})
		if err != nil || res.ExitCode != 0 {
			b.Fatalf("run: %v %+v", err, res)
		}
		if err := e.Close(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric((allCPU()-cpu).Seconds()/float64(b.N), "cpu-s/op")
}
