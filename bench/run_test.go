package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"golang.org/x/sys/unix"

	"github.com/moatsec/moat/internal/image"
	"github.com/moatsec/moat/internal/runtime/backend"
	"github.com/moatsec/moat/internal/runtime/backend/backendtest"
	"github.com/moatsec/moat/internal/runtime/engine"
	"github.com/moatsec/moat/internal/runtime/spec"
	"github.com/moatsec/moat/internal/testutil"
)

func TestMain(m *testing.M) {
	backend.HandleShim()
	engine.HandleAutoRemove()
	code := m.Run()
	if err := removeFirstRunDirs(); err != nil {
		fmt.Fprintln(os.Stderr, "removing the first-run benchmarks' directories:", err)
	}
	os.Exit(code)
}

// reachable makes a benchmark's temporary directory (and its root) searchable by the
// containers' mapped root.
func reachable(b *testing.B) string {
	b.Helper()
	dir := b.TempDir()
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o711); err != nil {
			b.Fatal(err)
		}
	}
	return dir
}

// The run benchmarks time `moat run --rm IMAGE` without process start (engine.Run: store
// record, overlay mount, spec, the runtime's run, removal) against its baseline, the runtime's
// own run of a bundle holding the same spec and an already unpacked root filesystem (the test
// program only). Each iteration runs the baseline and then the engine, so that whatever else
// the machine is doing weighs on both alike; they report the median of each and the median of
// the per-iteration differences (target: within 20 ms).

// BenchmarkRunRunc pairs `runc run` with the engine at the hardened level.
func BenchmarkRunRunc(b *testing.B) {
	benchPair(b, spec.Hardened, func(root, bundle, id string) *exec.Cmd {
		return exec.Command("runc", "--root", root, "run", "--bundle", bundle, id)
	})
}

// BenchmarkRunCrun pairs `crun run`, in a mount namespace of its own with the hybrid host's
// cgroup v2 mount hidden, which crun 1.8 needs here (as the backend does it), with the engine
// running crun at the hardened level.
func BenchmarkRunCrun(b *testing.B) {
	benchPair(b, spec.Hardened, func(root, bundle, id string) *exec.Cmd {
		return exec.Command("unshare", "--mount", "--propagation", "slave", "sh", "-c",
			`umount -l /sys/fs/cgroup/unified 2>/dev/null; exec crun --root "$0" run --bundle "$1" "$2"`, root, bundle, id)
	}, engine.WithHardenedRuntime("crun"))
}

// BenchmarkRunRunsc pairs `runsc run` (systrap, the spec's seccomp profile applied inside the
// sandbox) with the engine at the sandbox level.
func BenchmarkRunRunsc(b *testing.B) {
	runsc := runscBinary(b)
	benchPair(b, spec.Sandbox, func(root, bundle, id string) *exec.Cmd {
		return exec.Command(runsc, "--root="+root, "--platform=systrap", "--oci-seccomp", "run", "--bundle", bundle, id)
	}, engine.WithRuntimeBinary("runsc", runsc))
}

// runscBinary is the pinned runsc `make tools` builds.
func runscBinary(b *testing.B) string {
	p, err := exec.LookPath("runsc")
	if err != nil {
		b.Fatalf("runsc is not in PATH (make bench builds it with make tools): %v", err)
	}
	return p
}

// benchPair runs the baseline command and the engine alternately at level.
func benchPair(b *testing.B, level spec.Level, command func(root, bundle, id string) *exec.Cmd, opts ...engine.Option) {
	pair(b, bareRunner(b, level, command), engineRunner(b, level, opts...), "engine-ms")
}

// pair runs bare and then moat once each (the first run of moat fills the layer cache), and
// then both in every iteration, one after the other; it reports the medians of each (bare-ms
// and moatMetric) and of the per-iteration differences (over-ms).
func pair(b *testing.B, bare, moat func(), moatMetric string) {
	bare()
	moat()
	var bares, moats, diffs []float64
	for b.Loop() {
		bm, mm := timed(bare), timed(moat)
		bares, moats, diffs = append(bares, bm), append(moats, mm), append(diffs, mm-bm)
	}
	b.ReportMetric(median(bares), "bare-ms")
	b.ReportMetric(median(moats), moatMetric)
	b.ReportMetric(median(diffs), "over-ms")
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	v = slices.Clone(v)
	slices.Sort(v)
	return v[len(v)/2]
}

// bareRunner prepares a bundle with the spec of level and the test program and returns a
// function that runs command on it.
func bareRunner(b *testing.B, level spec.Level, command func(root, bundle, id string) *exec.Cmd) func() {
	prog := backendtest.BuildProg(b)
	dir := reachable(b)
	rootfs := filepath.Join(dir, "rootfs")
	m := spec.DefaultIDMap()
	for _, d := range []string{rootfs, filepath.Join(rootfs, "bin")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			b.Fatal(err)
		}
		os.Chown(d, int(m.HostUID), int(m.HostGID))
	}
	data, err := os.ReadFile(prog)
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "bin", "prog"), data, 0o755); err != nil {
		b.Fatal(err)
	}
	gen, err := spec.Generate(v1.Config{Entrypoint: []string{"/bin/prog"}}, rootfs, spec.Options{Level: level, Args: []string{"exit", "0"}, Files: os.DirFS(rootfs)})
	if err != nil {
		b.Fatal(err)
	}
	cfg, err := gen.ConfigJSON()
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), cfg, 0o600); err != nil {
		b.Fatal(err)
	}
	root := filepath.Join(dir, "state")
	// runsc pins an empty network namespace in its root, a bind mount that outlives its runs.
	b.Cleanup(func() { unix.Unmount(filepath.Join(root, "null-netns"), unix.MNT_DETACH) })
	i := 0
	return func() {
		i++
		cmd := command(root, dir, fmt.Sprintf("bare-%d", i))
		cmd.Env = withoutTMPDIR()
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("%v: %v\n%s", cmd.Args, err, out)
		}
	}
}

// withoutTMPDIR is the environment the backends give runtimes.
func withoutTMPDIR() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TMPDIR=") {
			out = append(out, kv)
		}
	}
	return out
}

// progLayout writes a one-file image, the test program as its entrypoint, as an OCI layout
// and returns the layout's directory.
func progLayout(b *testing.B) string {
	data, err := os.ReadFile(backendtest.BuildProg(b))
	if err != nil {
		b.Fatal(err)
	}
	img := testutil.Image(b, testutil.Layer(b, testutil.Dir("bin/"), testutil.Exec("bin/prog", string(data))))
	img, err = mutate.Config(img, v1.Config{Entrypoint: []string{"/bin/prog"}})
	if err != nil {
		b.Fatal(err)
	}
	return testutil.OCIDir(b, img)
}

// engineRunner returns a function that runs a one-file image (the test program) with the
// engine at level, with --rm.
func engineRunner(b *testing.B, level spec.Level, opts ...engine.Option) func() {
	opened, err := image.Open(context.Background(), image.Target{Source: image.SourceOCIDir, Ref: progLayout(b)}, image.Options{TempDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { opened.Close() })
	e, err := engine.New(filepath.Join(reachable(b), "engine"), opts...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.Close() })
	return func() {
		res, err := e.Run(context.Background(), opened, engine.RunOptions{Level: level, Remove: true, Spec: spec.Options{Args: []string{"exit", "0"}}, IO: backend.IO{Stdout: io.Discard, Stderr: io.Discard}})
		if err != nil || res.ExitCode != 0 {
			b.Fatalf("run: %v %+v", err, res)
		}
	}
}
