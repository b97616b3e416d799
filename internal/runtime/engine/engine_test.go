package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"golang.org/x/sys/unix"

	"github.com/moatsec/moat/internal/image"
	"github.com/moatsec/moat/internal/runtime/backend"
	"github.com/moatsec/moat/internal/runtime/backend/backendtest"
	"github.com/moatsec/moat/internal/runtime/rootfs"
	"github.com/moatsec/moat/internal/runtime/spec"
	"github.com/moatsec/moat/internal/testutil"
)

func TestMain(m *testing.M) {
	backend.HandleShim()
	HandleAutoRemove()
	os.Exit(m.Run())
}

// progImage is an image whose only file is the conformance suite's static test program,
// with it as the entrypoint, and account files; more are layers on top.
func progImage(t *testing.T, more ...v1.Layer) *image.Image {
	t.Helper()
	prog, err := os.ReadFile(backendtest.BuildProg(t))
	if err != nil {
		t.Fatal(err)
	}
	img := testutil.Image(t, append([]v1.Layer{testutil.Layer(t, testutil.Dir("bin/"), testutil.Exec("bin/prog", string(prog)), testutil.Dir("etc/")),
		testutil.Layer(t, testutil.File("etc/passwd", "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n"),
			testutil.File("etc/group", "root:x:0:\napp:x:1000:\n"))}, more...)...)
	img, err = mutate.Config(img, v1.Config{Entrypoint: []string{"/bin/prog"}, Cmd: []string{"check"}, Env: []string{"FROM_IMAGE=yes"}})
	if err != nil {
		t.Fatal(err)
	}
	opened, err := image.Open(context.Background(), image.Target{Source: image.SourceOCIDir, Ref: testutil.OCIDir(t, img)}, image.Options{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { opened.Close() })
	return opened
}

// engineDir is a directory for an engine whose parents containers can search.
func engineDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	// Only the test's own directories: this one and the test's temporary root above it.
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "engine")
}

func TestRun(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real containers")
	}
	img := progImage(t)
	// What an image has in /run is there in the container, on the tmpfs over it (copied up).
	withRun := progImage(t, testutil.Layer(t, testutil.Dir("run/"), testutil.Dir("run/app/"), testutil.File("run/app/marker", "from the image")))
	type level = struct {
		name    string
		level   spec.Level
		runtime string
	}
	// runc begins its run before the spec is written (backend.EarlyRunner); once more with
	// the spec written first.
	for _, tc := range append(levels, level{"hardened runc spec first", spec.Hardened, "runc"}) {
		t.Run(tc.name, func(t *testing.T) {
			dir := engineDir(t)
			var opts []Option
			if strings.HasSuffix(tc.name, "spec first") {
				opts = append(opts, WithoutEarlyRun())
			}
			e := newEngine(t, dir, tc.runtime, opts...)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			runImage := func(img *image.Image, o RunOptions) (string, string, *Result) {
				t.Helper()
				var out, errb bytes.Buffer
				o.Level = tc.level
				o.Remove = true
				o.IO = backend.IO{Stdout: &out, Stderr: &errb}
				res, err := e.Run(ctx, img, o)
				if err != nil {
					t.Fatalf("Run: %v (stderr %q)", err, errb.String())
				}
				return out.String(), errb.String(), res
			}
			run := func(o RunOptions) (string, string, *Result) {
				t.Helper()
				return runImage(img, o)
			}
			// The image's entrypoint and command, confined: root in the container, read-only root.
			out, _, res := run(RunOptions{})
			if res.ExitCode != 0 || !strings.Contains(out, "uid=0 ") || !strings.Contains(out, "readonly-root=true") || !strings.Contains(out, "pid=1") {
				t.Errorf("check: exit %d, output %q", res.ExitCode, out)
			}
			// Arguments, environment and exit codes come through; the user resolves from the image.
			out, _, res = run(RunOptions{Spec: spec.Options{Args: []string{"env", "FROM_IMAGE"}}})
			if strings.TrimSpace(out) != "yes" || res.ExitCode != 0 {
				t.Errorf("env: exit %d, %q", res.ExitCode, out)
			}
			out, stderr, res := run(RunOptions{Spec: spec.Options{Args: []string{"exit", "3"}}})
			if res.ExitCode != 3 || out != "out\n" || stderr != "err\n" {
				t.Errorf("exit 3: %d %q %q", res.ExitCode, out, stderr)
			}
			out, _, _ = run(RunOptions{Spec: spec.Options{User: "app", Args: []string{"check"}}})
			if !strings.Contains(out, "uid=1000 gid=1000") {
				t.Errorf("user app: %q", out)
			}
			if tc.level != spec.Sandbox { // gVisor ignores tmpcopyup (docs/isolation.md)
				out, _, res = runImage(withRun, RunOptions{Spec: spec.Options{Args: []string{"readfile", "/run/app/marker"}}})
				if res.ExitCode != 0 || out != "from the image" {
					t.Errorf("the image's /run/app/marker: exit %d, %q", res.ExitCode, out)
				}
			}
			// Nothing is left but the layer cache.
			checkNoContainers(t, dir)
		})
	}
}

func TestRunRefusals(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the runtimes")
	}
	img := progImage(t)
	dir := engineDir(t)
	e, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	// The same program with no entrypoint and no command.
	bare := *img
	cfg := *img.Config
	cfg.Config.Entrypoint, cfg.Config.Cmd = nil, nil
	bare.Config = &cfg
	for _, tc := range []struct {
		name string
		img  *image.Image
		o    RunOptions
		want string
	}{
		{"no command", &bare, RunOptions{}, "no entrypoint or command"},
		{"vm level", nil, RunOptions{Level: spec.VM}, "no backend yet"},
		{"bad name", nil, RunOptions{Name: "../x"}, "container name"},
		{"unknown user", nil, RunOptions{Spec: spec.Options{User: "nobody-here"}}, "unknown user"},
		{"missing bind source", nil, RunOptions{Spec: spec.Options{Mounts: []spec.Mount{{Type: spec.Bind, Source: "/nonexistent/x", Destination: "/data"}}}}, "/nonexistent/x"},
		{"conflicting networks", nil, RunOptions{Spec: spec.Options{HostNetwork: true, NetNSPath: "/run/netns/a"}}, "conflict"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			i := img
			if tc.img != nil {
				i = tc.img
			}
			_, err := e.Run(context.Background(), i, tc.o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
	// A runtime that is not installed is an error naming it, before anything is created.
	missing, err := New(dir, WithRuntimeBinary("runc", "/nonexistent/runc"))
	if err != nil {
		t.Fatal(err)
	}
	defer missing.Close()
	if _, err := missing.Run(context.Background(), img, RunOptions{}); err == nil || !strings.Contains(err.Error(), "/nonexistent/runc") {
		t.Errorf("a missing runtime binary: %v", err)
	}
	// Nothing of the refused containers is left: no record, no directory.
	if cs, err := e.List(context.Background(), true); err != nil || len(cs) != 0 {
		t.Errorf("containers recorded after refusals: %v %v", cs, err)
	}
	checkNoContainers(t, dir)
	if _, err := New(engineDir(t), WithHardenedRuntime("docker")); err == nil {
		t.Error("an unknown hardened runtime was accepted")
	}
	private := t.TempDir()
	if err := os.Chmod(private, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := New(filepath.Join(private, "engine")); err == nil || !strings.Contains(err.Error(), "not searchable") {
		t.Errorf("a directory containers cannot reach: %v", err)
	}
}

// TestBundleAndData checks where a container's files live: the bundle on a tmpfs of its own
// while the container exists, the log and a writable root's writable layer in its data
// directory, which outlive the run until Remove.
func TestBundleAndData(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real containers")
	}
	img := progImage(t)
	for _, tc := range []struct {
		name  string
		level spec.Level
	}{{"hardened", spec.Hardened}, {"sandbox", spec.Sandbox}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := engineDir(t)
			e := newEngine(t, dir, "")
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			for _, writable := range []bool{false, true} {
				var out bytes.Buffer
				var c *Container
				res, err := e.Run(ctx, img, RunOptions{
					Level: tc.level, Spec: spec.Options{Args: []string{"check"}, WritableRootfs: writable},
					IO: backend.IO{Stdout: &out, Stderr: &out},
					Prepared: func(pc *Container) error {
						c = pc
						var st unix.Statfs_t
						if err := unix.Statfs(pc.Dir, &st); err != nil {
							return err
						}
						if st.Type != unix.TMPFS_MAGIC {
							t.Errorf("writable=%v: the bundle is on filesystem %#x, not a tmpfs", writable, st.Type)
						}
						return nil
					},
				})
				if err != nil || res.ExitCode != 0 {
					t.Fatalf("writable=%v: %v %+v %q", writable, err, res, out.String())
				}
				if want := fmt.Sprintf("readonly-root=%v", !writable); !strings.Contains(out.String(), want) {
					t.Errorf("writable=%v: %q, want %s", writable, out.String(), want)
				}
				// Exited: the bundle is gone; the log stays, and the writable layer of a
				// writable root with what the container wrote.
				if _, err := os.Stat(c.Dir); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("writable=%v: the bundle of an exited container stays: %v", writable, err)
				}
				if log, err := os.ReadFile(c.LogPath()); err != nil || !bytes.Equal(log, out.Bytes()) {
					t.Errorf("writable=%v: log %q, %v; want %q", writable, log, err, out.String())
				}
				// (gVisor keeps a sandbox's writes to its root in an overlay of its own.)
				written, err := os.ReadFile(filepath.Join(c.Data, "upper", "written"))
				if writable && tc.level == spec.Hardened && (err != nil || string(written) != "x") {
					t.Errorf("the writable layer does not hold what the container wrote: %q %v", written, err)
				}
				if !writable && !errors.Is(err, os.ErrNotExist) {
					t.Errorf("a read-only root left a writable layer on disk: %v", err)
				}
				if err := e.Remove(ctx, c.ID, false); err != nil {
					t.Fatal(err)
				}
				for _, d := range []string{c.Dir, c.Data} {
					if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
						t.Errorf("writable=%v: %s stays after Remove: %v", writable, d, err)
					}
				}
			}
			// --rm leaves nothing in either directory.
			res, err := e.Run(ctx, img, RunOptions{Level: tc.level, Remove: true, Spec: spec.Options{Args: []string{"check"}, WritableRootfs: true}, IO: backend.IO{Stdout: io.Discard, Stderr: io.Discard}})
			if err != nil || res.ExitCode != 0 {
				t.Fatalf("--rm: %v %+v", err, res)
			}
			checkNoContainers(t, dir)
		})
	}
}

// checkNoContainers checks that the engine in dir holds no container's bundle or data, and
// that no process names the directory (a runtime begun early and never given its spec, say).
func checkNoContainers(t *testing.T, dir string) {
	t.Helper()
	for _, d := range []string{"containers", "data"} {
		if ents, _ := os.ReadDir(filepath.Join(dir, d)); len(ents) != 0 {
			t.Errorf("%s/ holds %v", d, ents)
		}
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		if b, err := os.ReadFile(p); err == nil && bytes.Contains(b, []byte(dir)) {
			t.Errorf("process %s left behind: %q", filepath.Base(filepath.Dir(p)), bytes.ReplaceAll(b, []byte{0}, []byte{' '}))
		}
	}
}

// The user namespace idmapped layers are mounted through is pinned in the run directory by
// the first container and reused by the next; a run directory others could write to is not
// used, and containers still run.
func TestPinnedUserNamespace(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real containers")
	}
	img := progImage(t)
	runDir := t.TempDir()
	m := spec.DefaultIDMap()
	pin := filepath.Join(runDir, "userns", fmt.Sprintf("%d-%d-%d", m.HostUID, m.HostGID, m.Size))
	t.Cleanup(func() {
		if err := rootfs.UnpinUserNamespace(pin); err != nil {
			t.Error(err)
		}
	})
	e, err := New(engineDir(t), WithRunDir(runDir))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if !e.idmappedLayers(context.Background(), rootfs.IDMap{UID: m.HostUID, GID: m.HostGID, Size: m.Size}) {
		t.Skip("no idmapped layers on this kernel: nothing is pinned")
	}
	run := func(e *Engine) {
		t.Helper()
		var out bytes.Buffer
		res, err := e.Run(context.Background(), img, RunOptions{Remove: true, Spec: spec.Options{Args: []string{"check"}}, IO: backend.IO{Stdout: &out, Stderr: &out}})
		if err != nil || res.ExitCode != 0 || !strings.Contains(out.String(), "uid=0 ") {
			t.Fatalf("run: %v %+v %q", err, res, out.String())
		}
	}
	pinned := func() uint64 {
		t.Helper()
		var st unix.Stat_t
		var fs unix.Statfs_t
		if err := unix.Stat(pin, &st); err != nil {
			t.Fatalf("nothing pinned at %s: %v", pin, err)
		}
		if err := unix.Statfs(pin, &fs); err != nil || fs.Type != unix.NSFS_MAGIC {
			t.Fatalf("%s is not a pinned namespace (%#x, %v)", pin, fs.Type, err)
		}
		return st.Ino
	}
	run(e)
	first := pinned()
	run(e)
	if pinned() != first {
		t.Error("the second container pinned another namespace")
	}

	open, err := New(engineDir(t), WithRunDir(runDir+"/open"))
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	if err := os.Mkdir(runDir+"/open", 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(runDir+"/open", 0o777); err != nil {
		t.Fatal(err)
	}
	run(open)
	if _, err := os.Lstat(runDir + "/open/userns"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a world-writable run directory was used (%v)", err)
	}
}
