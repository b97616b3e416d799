package bench

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/moatsec/moat/internal/runtime/spec"
)

// BenchmarkRunCommandRunc times `moat run --rm IMAGE exit 0` as a user waits for it: the
// whole moat command (process start, no policy, the decision log, the engine, runc, removal)
// against `runc run` of a bundle holding the same spec and an unpacked root (what a user of
// bare runc waits for). Each iteration runs both, one after the other; the metrics are the
// medians of each and of the per-iteration differences (target: within 20 ms).
//
// The moat binary is MOAT_BIN when set (make bench sets bin/moat), else built here.
func BenchmarkRunCommandRunc(b *testing.B) {
	bare := bareRunner(b, spec.Hardened, func(root, bundle, id string) *exec.Cmd {
		return exec.Command("runc", "--root", root, "run", "--bundle", bundle, id)
	})
	pair(b, bare, moatCommand(b), "moat-ms")
}

// moatCommand returns a function that runs the test program's one-file image with the moat
// binary, in a MOAT_HOME of its own, as `moat run --rm oci-dir:DIR exit 0`.
func moatCommand(b *testing.B) func() {
	bin := moatBinary(b)
	ref := "oci-dir:" + progLayout(b)
	home := reachable(b)
	env := append(withoutTMPDIR(), "MOAT_HOME="+home)
	b.Cleanup(func() {
		// The engine's directory holds the layer cache, owned by the containers' ID range.
		exec.Command("rm", "-rf", filepath.Join(home, "state")).Run()
	})
	return func() {
		cmd := exec.Command(bin, "run", "--rm", ref, "exit", "0")
		cmd.Env = env
		cmd.Stderr = io.Discard
		if out, err := cmd.Output(); err != nil {
			b.Fatalf("%v: %v\n%s", cmd.Args, err, out)
		}
	}
}

// moatBinary is MOAT_BIN, or moat built into the benchmark's temporary directory (the Go
// build cache makes every build after the first a link).
func moatBinary(b *testing.B) string {
	if p := os.Getenv("MOAT_BIN"); p != "" {
		if !filepath.IsAbs(p) {
			b.Fatalf("MOAT_BIN=%s: give an absolute path (the benchmark runs in bench/)", p)
		}
		return p
	}
	bin := filepath.Join(b.TempDir(), "moat")
	args := []string{"build"}
	if tags := os.Getenv("TAGS"); tags != "" {
		args = append(args, "-tags", tags)
	}
	cmd := exec.Command("go", append(args, "-o", bin, "github.com/moatsec/moat/cmd/moat")...)
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("building moat: %v\n%s", err, out)
	}
	return bin
}

// timed runs f and returns how long it took, in milliseconds.
func timed(f func()) float64 {
	t := time.Now()
	f()
	return time.Since(t).Seconds() * 1e3
}
