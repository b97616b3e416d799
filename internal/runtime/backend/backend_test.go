package backend_test

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/moatsec/moat/internal/runtime/backend"
	"github.com/moatsec/moat/internal/runtime/backend/backendtest"
	"github.com/moatsec/moat/internal/testutil"
)

func TestMain(m *testing.M) {
	backend.HandleShim()
	os.Exit(m.Run())
}

func TestRunc(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real containers")
	}
	backendtest.Test(t, func(t *testing.T, dir string) backend.Runtime {
		rt, err := backend.NewRunc(dir)
		if err != nil {
			t.Fatal(err)
		}
		return rt
	})
}

func TestCrun(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real containers")
	}
	backendtest.Test(t, func(t *testing.T, dir string) backend.Runtime {
		rt, err := backend.NewCrun(dir)
		if err != nil {
			t.Fatal(err)
		}
		return rt
	})
}

func TestRunsc(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real containers")
	}
	bin := testutil.Runsc(t)
	if backend.RunscVersion != testutil.RunscVersion {
		t.Fatalf("backend.RunscVersion %s and testutil.RunscVersion %s differ", backend.RunscVersion, testutil.RunscVersion)
	}
	backendtest.Test(t, func(t *testing.T, dir string) backend.Runtime {
		rt, err := backend.NewRunsc(dir, backend.WithBinary(bin))
		if err != nil {
			t.Fatal(err)
		}
		return rt
	})
}

// BenchmarkRun compares a bare `RUNTIME run` of a bundle with Runtime.Run of the same bundle,
// for each runtime: the overhead the backend adds to a foreground container (moat run's
// budget is 20 ms over bare runc). The two alternate within each iteration so that the
// machine's load drifts over both alike; the metrics are the mean of each and their
// difference. The bundle's program exits at once. Bare crun runs in the same private mount
// namespace the backend gives it, as it cannot run on a hybrid cgroup host otherwise.
func BenchmarkRun(b *testing.B) {
	prog := backendtest.BuildProg(b)
	bundle := backendtest.Bundle(b, prog, []string{"exit", "0"})
	runtimes := map[string]func(dir string) (backend.Runtime, error){
		"runc": func(dir string) (backend.Runtime, error) { return backend.NewRunc(dir) },
		"crun": func(dir string) (backend.Runtime, error) { return backend.NewCrun(dir) },
		"runsc": func(dir string) (backend.Runtime, error) {
			return backend.NewRunsc(dir, backend.WithBinary(testutil.Runsc(b)))
		},
	}
	for _, name := range []string{"runc", "crun", "runsc"} {
		b.Run(name, func(b *testing.B) {
			rt, err := runtimes[name](b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			if c, ok := rt.(interface{ Close() error }); ok {
				defer c.Close()
			}
			var bare, moat time.Duration
			n := 0
			for b.Loop() {
				start := time.Now()
				if err := backend.BareRun(rt, bundle, fmt.Sprintf("bare-%d", n)); err != nil {
					b.Fatal(err)
				}
				mid := time.Now()
				code, err := rt.Run(context.Background(), fmt.Sprintf("backend-%d", n), bundle, backend.IO{})
				if err != nil || code != 0 {
					b.Fatal(code, err)
				}
				bare += mid.Sub(start)
				moat += time.Since(mid)
				n++
			}
			ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(n) }
			b.ReportMetric(ms(bare), "bare-ms/op")
			b.ReportMetric(ms(moat), "backend-ms/op")
			b.ReportMetric(ms(moat-bare), "overhead-ms/op")
		})
	}
}

// A container whose runtime state is gone (a reboot cleared it, or someone removed it) shows
// as stopped, not as unknown, and Delete still removes the backend's files.
const lostID = "moat-backend-test-lost"

func TestRuntimeStateLost(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real containers")
	}
	if os.Geteuid() != 0 {
		t.Skip("creates containers and needs root")
	}
	dir := t.TempDir()
	rt, err := backend.NewRunc(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	bundle := backendtest.Bundle(t, backendtest.BuildProg(t), []string{"wait"})
	if err := rt.Create(ctx, lostID, bundle, backend.IO{}); err != nil {
		t.Fatal(err)
	}
	st, err := rt.State(ctx, lostID)
	if err != nil {
		t.Fatal(err)
	}
	// By PID: the container this test created.
	if err := syscall.Kill(st.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(dir, "root", lostID)); err != nil {
		t.Fatal(err)
	}
	// runc's state named the container's cgroups; without it they stay, as they would not
	// after a reboot. This test created them, so it removes them.
	t.Cleanup(func() {
		filepath.WalkDir("/sys/fs/cgroup", func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() && d.Name() == lostID {
				if err := os.Remove(p); err != nil {
					t.Errorf("removing cgroup %s: %v", p, err)
				}
				return filepath.SkipDir
			}
			return nil
		})
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err = rt.State(ctx, lostID)
		if err != nil {
			t.Fatal(err)
		}
		if st.ExitCode != -1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if st.Status != backend.Stopped || st.ExitCode != 137 {
		t.Errorf("State of a container the runtime lost: %+v, want stopped with exit code 137", st)
	}
	if err := rt.Delete(ctx, lostID, false); err != nil {
		t.Fatal(err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*", "*")); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
}
