package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/moatsec/moat/internal/image"
	"github.com/moatsec/moat/internal/runtime/backend"
	"github.com/moatsec/moat/internal/runtime/backend/backendtest"
	"github.com/moatsec/moat/internal/runtime/engine"
	"github.com/moatsec/moat/internal/runtime/spec"
	"github.com/moatsec/moat/internal/testutil"
)

func TestMain(m *testing.M) {
	backend.HandleShim()
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

// BenchmarkRunBareRunc is the run baseline: `runc run` of a bundle holding the same hardened
// spec moat generates and an already unpacked root filesystem (the test program only).
func BenchmarkRunBareRunc(b *testing.B) {
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
	gen, err := spec.Generate(v1.Config{Entrypoint: []string{"/bin/prog"}}, rootfs, spec.Options{Args: []string{"exit", "0"}, Files: os.DirFS(rootfs)})
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
	for i := 0; b.Loop(); i++ {
		cmd := exec.Command("runc", "--root", root, "run", "--bundle", dir, fmt.Sprintf("bare-%d", i))
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("runc run: %v\n%s", err, out)
		}
	}
}

// BenchmarkRunEngine is `moat run --rm IMAGE` without process start, warm layer cache:
// overlay assembly, spec generation, runc run, and removal (target: within 20 ms of the
// baseline).
func BenchmarkRunEngine(b *testing.B) {
	data, err := os.ReadFile(backendtest.BuildProg(b))
	if err != nil {
		b.Fatal(err)
	}
	img := testutil.Image(b, testutil.Layer(b, testutil.Dir("bin/"), testutil.Exec("bin/prog", string(data))))
	img, err = mutate.Config(img, v1.Config{Entrypoint: []string{"/bin/prog"}})
	if err != nil {
		b.Fatal(err)
	}
	opened, err := image.Open(context.Background(), image.Target{Source: image.SourceOCIDir, Ref: testutil.OCIDir(b, img)}, image.Options{TempDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer opened.Close()
	e, err := engine.New(filepath.Join(reachable(b), "engine"))
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	run := func() {
		res, err := e.Run(context.Background(), opened, engine.RunOptions{Level: spec.Hardened, Remove: true, Spec: spec.Options{Args: []string{"exit", "0"}}, IO: backend.IO{Stdout: io.Discard, Stderr: io.Discard}})
		if err != nil || res.ExitCode != 0 {
			b.Fatalf("run: %v %+v", err, res)
		}
	}
	run() // fills the layer cache
	for b.Loop() {
		run()
	}
}
