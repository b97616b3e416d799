package engine

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moatsec/moat/internal/runtime/backend"
	"github.com/moatsec/moat/internal/runtime/rootfs"
	"github.com/moatsec/moat/internal/runtime/spec"
	"github.com/moatsec/moat/internal/testutil"
)

// levels are the isolation levels and runtimes every lifecycle test runs at.
var levels = []struct {
	name    string
	level   spec.Level
	runtime string
}{
	{"hardened runc", spec.Hardened, "runc"},
	{"hardened crun", spec.Hardened, "crun"},
	{"sandbox runsc", spec.Sandbox, ""},
}

func newEngine(t *testing.T, dir, runtime string, more ...Option) *Engine {
	t.Helper()
	opts := append([]Option{WithRuntimeBinary("runsc", testutil.Runsc(t))}, more...)
	if runtime != "" {
		opts = append(opts, WithHardenedRuntime(runtime))
	}
	e, err := New(dir, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// waitStatus polls until the container has status want.
func waitStatus(t *testing.T, e *Engine, name string, want Status) *Container {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := e.Inspect(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		if c.Status == want {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s is %s, want %s", name, c.Status, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkGone checks that nothing of the container is left: record, directory, runtime state,
// cgroups.
func checkGone(t *testing.T, e *Engine, dir string, c *Container) {
	t.Helper()
	if _, err := e.Inspect(context.Background(), c.Name); !errors.Is(err, ErrNotFound) {
		t.Errorf("%s is still known: %v", c.Name, err)
	}
	for _, d := range []string{c.Dir, c.Data} {
		if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s is left: %v", d, err)
		}
	}
	for _, rt := range []string{"runc", "crun", "runsc"} {
		if ents, _ := os.ReadDir(filepath.Join(dir, "runtimes", rt, "containers")); len(ents) != 0 {
			t.Errorf("%s state left: %v", rt, ents)
		}
	}
	cg, _ := filepath.Glob("/sys/fs/cgroup/*/moat/" + c.ID)
	cg2, _ := filepath.Glob("/sys/fs/cgroup/moat/" + c.ID)
	if left := append(cg, cg2...); len(left) != 0 {
		t.Errorf("cgroups left: %v", left)
	}
}

func TestLifecycle(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real containers")
	}
	img := progImage(t)
	for _, tc := range levels {
		t.Run(tc.name, func(t *testing.T) {
			dir := engineDir(t)
			e := newEngine(t, dir, tc.runtime)
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()

			// Detached: the container runs after Start returns, its output in its log.
			c, err := e.Start(ctx, img, RunOptions{Name: "web", Level: tc.level, Spec: spec.Options{Args: []string{"wait"}}})
			if err != nil {
				t.Fatal(err)
			}
			if c.Status != StatusRunning || c.Pid <= 0 || len(c.ID) != 64 || !c.Detached {
				t.Errorf("started: %+v", c)
			}
			waitLog(t, e, "web", "ready\n")
			// A second container cannot take the name.
			if _, err := e.Start(ctx, img, RunOptions{Name: "web", Level: tc.level}); err == nil || !strings.Contains(err.Error(), "in use") {
				t.Errorf("a second web: %v", err)
			}
			// Another engine on the same directory (a later moat process) sees it, by name or ID prefix.
			e2 := newEngine(t, dir, tc.runtime)
			list, err := e2.List(ctx, false)
			if err != nil || len(list) != 1 || list[0].ID != c.ID || list[0].Status != StatusRunning {
				t.Fatalf("List: %v %+v", err, list)
			}
			if got, err := e2.Inspect(ctx, c.ID[:8]); err != nil || got.Name != "web" {
				t.Errorf("Inspect by ID prefix: %v %+v", err, got)
			}
			// Remove refuses a running container.
			if err := e2.Remove(ctx, "web", false); err == nil || !strings.Contains(err.Error(), "running") {
				t.Errorf("Remove of a running container: %v", err)
			}
			// Stop sends SIGTERM; the program exits 42.
			if err := e2.Stop(ctx, "web", 10*time.Second); err != nil {
				t.Fatal(err)
			}
			got := waitStatus(t, e2, "web", StatusExited)
			if got.ExitCode != 42 || got.Finished.IsZero() {
				t.Errorf("after stop: exit %d, finished %v", got.ExitCode, got.Finished)
			}
			waitLog(t, e, "web", "ready\nterm\n")
			if running, _ := e.List(ctx, false); len(running) != 0 {
				t.Errorf("List without all shows exited containers: %+v", running)
			}
			if err := e.Kill(ctx, "web", syscall.SIGKILL); !errors.Is(err, ErrNotRunning) {
				t.Errorf("Kill of an exited container: %v", err)
			}
			if err := e.Remove(ctx, "web", false); err != nil {
				t.Fatal(err)
			}
			checkGone(t, e, dir, c)

			// Kill, then a forced remove of a running container.
			c, err = e.Start(ctx, img, RunOptions{Level: tc.level, Spec: spec.Options{Args: []string{"wait"}}})
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(c.Name, "moat-"+c.ID[:12]) {
				t.Errorf("default name %q", c.Name)
			}
			if err := e.Kill(ctx, c.Name, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			if got := waitStatus(t, e, c.Name, StatusExited); got.ExitCode != 128+9 {
				t.Errorf("killed: exit %d", got.ExitCode)
			}
			if err := e.Remove(ctx, c.Name, false); err != nil {
				t.Fatal(err)
			}
			checkGone(t, e, dir, c)
			c, err = e.Start(ctx, img, RunOptions{Level: tc.level, Spec: spec.Options{Args: []string{"wait"}}})
			if err != nil {
				t.Fatal(err)
			}
			if err := e.Remove(ctx, c.ID, true); err != nil {
				t.Fatal(err)
			}
			checkGone(t, e, dir, c)

			// A foreground container without Remove stays, exited, with its output logged.
			var out bytes.Buffer
			res, err := e.Run(ctx, img, RunOptions{Name: "once", Level: tc.level, Spec: spec.Options{Args: []string{"exit", "3"}}, IO: backend.IO{Stdout: &out, Stderr: &out}})
			if err != nil || res.ExitCode != 3 {
				t.Fatalf("Run: %v %+v", err, res)
			}
			got = waitStatus(t, e, "once", StatusExited)
			if got.ExitCode != 3 || got.Owner != nil {
				t.Errorf("foreground exit: %+v", got)
			}
			var log bytes.Buffer
			if err := e.Logs(ctx, "once", &log, LogOptions{}); err != nil || !strings.Contains(log.String(), "out\n") || !strings.Contains(log.String(), "err\n") {
				t.Errorf("Logs: %v %q", err, log.String())
			}
			log.Reset()
			if err := e.Logs(ctx, "once", &log, LogOptions{Tail: 1}); err != nil || strings.Count(log.String(), "\n") != 1 {
				t.Errorf("Logs --tail 1: %v %q", err, log.String())
			}
			if err := e.Remove(ctx, "once", false); err != nil {
				t.Fatal(err)
			}

			// Detached with Remove: removed when it ends, by this program started again by its
			// shim (looked up without a status check, which would remove it too).
			c, err = e.Start(ctx, img, RunOptions{Level: tc.level, Remove: true, Spec: spec.Options{Args: []string{"exit", "0"}}})
			if err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(30 * time.Second)
			for {
				_, err := e.lookup(c.ID)
				if errors.Is(err, ErrNotFound) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if time.Now().After(deadline) {
					t.Fatal("an exited --rm container was not removed when it ended")
				}
				time.Sleep(20 * time.Millisecond)
			}
			checkGone(t, e, dir, c)

			// Where its program cannot be started again to remove it, the first List that
			// finds it exited does.
			autoRemoveHandled.Store(false)
			c, err = e.Start(ctx, img, RunOptions{Level: tc.level, Remove: true, Spec: spec.Options{Args: []string{"exit", "0"}}})
			autoRemoveHandled.Store(true)
			if err != nil {
				t.Fatal(err)
			}
			waitStatus(t, e, c.ID, StatusExited)
			if _, err := e.lookup(c.ID); err != nil {
				t.Fatalf("removed without an exit command: %v", err)
			}
			if list, err := e.List(ctx, true); err != nil || len(list) != 0 {
				t.Fatalf("List left %v, %v", list, err)
			}
			checkGone(t, e, dir, c)
		})
	}
}

// waitLog waits until the container's log is want.
func waitLog(t *testing.T, e *Engine, name, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var b bytes.Buffer
		if err := e.Logs(context.Background(), name, &b, LogOptions{}); err != nil {
			t.Fatal(err)
		}
		if b.String() == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("log of %s is %q, want %q", name, b.String(), want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestLostContainer: a container killed from outside moat shows as exited with the code its
// shim recorded; one whose runtime state and exit code are gone (a killed shim, a lost
// runtime state directory) shows as exited with an unknown code and the reason. rm cleans up
// both.
func TestLostContainer(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real containers")
	}
	img := progImage(t)
	dir := engineDir(t)
	e := newEngine(t, dir, "runc")
	ctx := context.Background()
	c, err := e.Start(ctx, img, RunOptions{Name: "lost", Spec: spec.Options{Args: []string{"wait"}}})
	if err != nil {
		t.Fatal(err)
	}
	// Killed by its PID, outside moat and the runtime.
	if err := syscall.Kill(c.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	got := waitStatus(t, e, "lost", StatusExited)
	if got.ExitCode != 128+9 {
		t.Errorf("killed from outside: exit %d (%s)", got.ExitCode, got.Error)
	}
	if err := e.Remove(ctx, "lost", false); err != nil {
		t.Fatal(err)
	}
	checkGone(t, e, dir, c)
	if err := e.Remove(ctx, "lost", false); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Remove: %v", err)
	}

	// Lost: the process dies, and before any moat looks, the runtime's state and the shim's
	// exit file go too.
	c, err = e.Start(ctx, img, RunOptions{Name: "gone", Spec: spec.Options{Args: []string{"wait"}}})
	if err != nil {
		t.Fatal(err)
	}
	exit := filepath.Join(dir, "runtimes", "runc", "containers", c.ID, "exit")
	if err := syscall.Kill(c.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(exit); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the shim wrote no exit file")
		}
	}
	if err := os.Remove(exit); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(dir, "runtimes", "runc", "root", c.ID)); err != nil {
		t.Fatal(err)
	}
	got = waitStatus(t, e, "gone", StatusExited)
	if got.ExitCode != -1 || got.Error == "" {
		t.Errorf("lost: exit %d, error %q; want -1 and a reason", got.ExitCode, got.Error)
	}
	if err := e.Remove(ctx, "gone", false); err != nil {
		t.Fatal(err)
	}
	checkGone(t, e, dir, c)
}

// TestLayerOwnership: where the kernel mounts layers idmapped, the cache holds them as the
// tar records them (host root owns them: a container's root cannot write them even outside
// its namespaces) and containers see them through their mapping; the fallback caches them
// shifted. Either way the container's root owns its files.
func TestLayerOwnership(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real containers")
	}
	img := progImage(t)
	m := spec.DefaultIDMap()
	for _, tc := range []struct {
		name     string
		opts     []Option
		cacheUID uint32
		idmapped bool
	}{
		{"idmapped", nil, 0, true},
		{"shifted", []Option{WithoutIDMappedLayers()}, m.HostUID, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := engineDir(t)
			e, err := New(dir, tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			ctx := context.Background()
			if tc.idmapped && !e.idmappedLayers(ctx, rootfsMap(m)) {
				t.Skip("this kernel cannot mount overlayfs layers idmapped")
			}
			if tc.idmapped {
				// The probe's answer is kept for the next engine (the next moat process).
				if b, err := os.ReadFile(filepath.Join(dir, idmappedFile)); err != nil || string(b) != kernelRelease()+" yes\n" {
					t.Errorf("recorded answer %q, %v", b, err)
				}
			}
			c, err := e.Start(ctx, img, RunOptions{Spec: spec.Options{Args: []string{"wait"}}})
			if err != nil {
				t.Fatal(err)
			}
			defer e.Remove(ctx, c.ID, true)
			var st syscall.Stat_t
			if err := syscall.Stat(filepath.Join(c.Dir, "rootfs", "bin", "prog"), &st); err != nil {
				t.Fatal(err)
			}
			if st.Uid != m.HostUID {
				t.Errorf("the container's /bin/prog is owned by host uid %d, want %d", st.Uid, m.HostUID)
			}
			cached, _ := filepath.Glob(filepath.Join(dir, "cache", "layers", "sha256", "*", "fs", "bin", "prog"))
			if len(cached) == 0 {
				cached, _ = filepath.Glob(filepath.Join(dir, "cache", "layers", "sha256", "*", "*", "fs", "bin", "prog"))
			}
			if len(cached) != 1 {
				t.Fatalf("cached /bin/prog: %v", cached)
			}
			if err := syscall.Stat(cached[0], &st); err != nil {
				t.Fatal(err)
			}
			if st.Uid != tc.cacheUID {
				t.Errorf("the cached layer's /bin/prog is owned by host uid %d, want %d", st.Uid, tc.cacheUID)
			}
			var out bytes.Buffer
			if code, err := e.Exec(ctx, c.Name, ExecOptions{ExecOptions: spec.ExecOptions{Args: []string{"/bin/prog", "check"}, User: "app"}, IO: backend.IO{Stdout: &out}}); err != nil || code != 0 || !strings.Contains(out.String(), "uid=1000") {
				t.Errorf("exec as app: %d %v %q", code, err, out.String())
			}
		})
	}
}

func rootfsMap(m spec.IDMap) rootfs.IDMap {
	return rootfs.IDMap{UID: m.HostUID, GID: m.HostGID, Size: m.Size}
}

// TestTerminal: a container with a terminal, in the foreground, detached and through exec.
func TestTerminal(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real containers")
	}
	img := progImage(t)
	for _, tc := range levels {
		t.Run(tc.name, func(t *testing.T) {
			e := newEngine(t, engineDir(t), tc.runtime)
			ctx := context.Background()
			term := &backend.Terminal{Size: backend.WinSize{Rows: 30, Cols: 100}}
			var out bytes.Buffer
			res, err := e.Run(ctx, img, RunOptions{Level: tc.level, Remove: true, Spec: spec.Options{Terminal: true, Args: []string{"ttyinfo"}}, IO: backend.IO{Stdout: &out, Terminal: term}})
			if err != nil || res.ExitCode != 0 || !strings.Contains(out.String(), "stdin=true stdout=true") || !strings.Contains(out.String(), "30x100") {
				t.Errorf("foreground: %v %+v %q", err, res, out.String())
			}
			c, err := e.Start(ctx, img, RunOptions{Level: tc.level, Spec: spec.Options{Terminal: true, Args: []string{"wait"}}, IO: backend.IO{Terminal: term}})
			if err != nil {
				t.Fatal(err)
			}
			defer e.Remove(ctx, c.ID, true)
			waitLog(t, e, c.Name, "ready\r\n")
			out.Reset()
			code, err := e.Exec(ctx, c.Name, ExecOptions{ExecOptions: spec.ExecOptions{Terminal: true, Args: []string{"/bin/prog", "ttyinfo"}}, IO: backend.IO{Stdout: &out, Terminal: term}})
			if err != nil || code != 0 || !strings.Contains(out.String(), "stdout=true") {
				t.Errorf("exec: %v %d %q", err, code, out.String())
			}
		})
	}
}

// TestIDMappedRecorded: a recorded answer for this kernel is taken without probing; one for
// another kernel is probed again.
func TestIDMappedRecorded(t *testing.T) {
	dir := engineDir(t)
	if err := os.MkdirAll(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	m := rootfsMap(spec.DefaultIDMap())
	os.WriteFile(filepath.Join(dir, idmappedFile), []byte(kernelRelease()+" no\n"), 0o600)
	e, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	if e.idmappedLayers(context.Background(), m) {
		t.Error("a recorded no was not taken")
	}
	os.WriteFile(filepath.Join(dir, idmappedFile), []byte("0.0.1-other no\n"), 0o600)
	e, err = New(dir)
	if err != nil {
		t.Fatal(err)
	}
	got := e.idmappedLayers(context.Background(), m)
	b, _ := os.ReadFile(filepath.Join(dir, idmappedFile))
	want := "no"
	if got {
		want = "yes"
	}
	if string(b) != kernelRelease()+" "+want+"\n" {
		t.Errorf("after probing again: recorded %q, probe said %v", b, got)
	}
}

// TestAttachStdin starts a container with an open standard input and no terminal (-d -i):
// an attached client's input reaches it and its output from then on comes back, a client that
// detaches leaves it running, and Attach returns the exit code once it is killed.
func TestAttachStdin(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real containers")
	}
	img := progImage(t)
	e := newEngine(t, engineDir(t), "")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := e.Start(ctx, img, RunOptions{Name: "reader", OpenStdin: true, Spec: spec.Options{Args: []string{"cat"}}})
	if err != nil {
		t.Fatal(err)
	}
	if !c.Stdin || c.Terminal {
		t.Errorf("record: stdin %v, terminal %v", c.Stdin, c.Terminal)
	}
	attach := func(actx context.Context, in io.Reader, out io.Writer) chan error {
		done := make(chan error, 1)
		go func() {
			_, err := e.Attach(actx, "reader", backend.IO{Stdin: in, Stdout: out})
			done <- err
		}()
		return done
	}
	waitOut := func(out *testutil.LockedBuffer, want string) {
		t.Helper()
		for deadline := time.Now().Add(time.Minute); !strings.Contains(out.String(), want); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("attached output %q lacks %q", out.String(), want)
			}
		}
	}
	// The first client's output starts when it attaches: what it sends comes back; it
	// detaches.
	dctx, detach := context.WithCancel(ctx)
	first := &testutil.LockedBuffer{}
	in, typing := io.Pipe()
	done := attach(dctx, in, first)
	for deadline := time.Now().Add(time.Minute); !strings.Contains(first.String(), "one"); time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("attached output %q", first.String())
		}
		typing.Write([]byte("one\n"))
	}
	detach()
	typing.Close()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Attach after detaching: %v", err)
	}
	waitStatus(t, e, "reader", StatusRunning)
	// A second client sees only what is written after it attached.
	second := &testutil.LockedBuffer{}
	done = attach(ctx, strings.NewReader("two\n"), second)
	waitOut(second, "two\n")
	if strings.Contains(second.String(), "one") {
		t.Errorf("the second client got output from before it attached: %q", second.String())
	}
	if err := e.Kill(ctx, "reader", syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	testutil.Await(t, done, time.Minute, "Attach when the container was killed", func(err error) bool { return err == nil })
	var log bytes.Buffer
	if err := e.Logs(ctx, "reader", &log, LogOptions{}); err != nil || !strings.Contains(log.String(), "two\n") {
		t.Errorf("log %q, %v", log.String(), err)
	}
	if err := e.Remove(ctx, "reader", false); err != nil {
		t.Fatal(err)
	}
	// A detached container without -i has nothing to attach to.
	if _, err := e.Start(ctx, img, RunOptions{Name: "plain", Spec: spec.Options{Args: []string{"wait"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Attach(ctx, "plain", backend.IO{Stdout: io.Discard}); err == nil || !strings.Contains(err.Error(), "-di") {
		t.Errorf("Attach to a container without open stdin: %v", err)
	}
	if err := e.Remove(ctx, "plain", true); err != nil {
		t.Fatal(err)
	}
}
