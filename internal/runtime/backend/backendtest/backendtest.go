// Package backendtest is the conformance suite every backend.Runtime must pass: foreground
// runs (exit codes, stdout and stderr, arguments, environment, stdin, confinement), the
// detached lifecycle (create, start, state, kill, delete), refusals, and that nothing is left
// behind. It runs real containers: a test program built statically in the test is the only
// file of a hand-made bundle whose spec maps container root to an unprivileged host range.
// The calling test binary must call backend.HandleShim in TestMain.
package backendtest

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/moatsec/moat/internal/runtime/backend"
)

//go:embed testdata/prog/main.go
var progSource []byte

// HostID is the first host uid and gid that container ids 0..65535 map to in the suite's
// bundles: an unprivileged range no host user owns.
const HostID = 1_000_000

// Factory returns a new runtime that keeps its state in dir.
type Factory func(t *testing.T, dir string) backend.Runtime

// Test runs the conformance suite against the runtimes newRuntime makes. Each subtest gets a
// runtime of its own in a fresh state directory, and checks when it ends that the directory
// holds nothing (after Close, for a runtime that has one).
func Test(t *testing.T, newRuntime Factory) {
	if os.Geteuid() != 0 {
		t.Skip("backend conformance tests create containers and need root")
	}
	s := &suite{prog: BuildProg(t), newRuntime: newRuntime}
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, rt backend.Runtime)
	}{
		{"RunExitCode", s.runExitCode},
		{"RunArgsEnv", s.runArgsEnv},
		{"RunStdin", s.runStdin},
		{"RunConfinement", s.runConfinement},
		{"RunBadBundle", s.runBadBundle},
		{"RunContextCancel", s.runContextCancel},
		{"Detached", s.detached},
		{"DetachedExit", s.detachedExit},
		{"KilledOutside", s.killedOutside},
		{"DeleteRunning", s.deleteRunning},
		{"DeleteCreated", s.deleteCreated},
		{"DuplicateID", s.duplicateID},
		{"UnknownID", s.unknownID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			rt := newRuntime(t, dir)
			t.Cleanup(func() { checkEmpty(t, rt, dir) })
			tc.fn(t, rt)
		})
	}
}

type suite struct {
	prog       string
	newRuntime Factory
}

// BuildProg builds the suite's test program (testdata/prog) statically, as containers have
// no C library, and returns its path.
func BuildProg(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.go"), progSource, 0o644); err != nil {
		t.Fatal(err)
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = "/usr/local/go/bin/go"
	}
	cmd := exec.Command(gobin, "build", "-trimpath", "-o", "prog", "main.go")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off", "GOFLAGS=", "GOTOOLCHAIN=local", "GO111MODULE=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the test program: %v\n%s", err, out)
	}
	return filepath.Join(dir, "prog")
}

func (s *suite) bundle(t *testing.T, args []string, env ...string) string {
	t.Helper()
	return Bundle(t, s.prog, args, env...)
}

// Bundle makes a bundle in a temporary directory whose root filesystem holds only prog (see
// BuildProg), owned by HostID, and whose spec (Spec) runs /prog with args and env.
func Bundle(t testing.TB, prog string, args []string, env ...string) string {
	t.Helper()
	dir := t.TempDir()
	// Container root, an unprivileged host user, must reach the bundle. Only the test's own
	// directories are opened up: this one and the test's temporary root above it.
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	rootfs := filepath.Join(dir, "rootfs")
	for _, d := range []string{"", "proc", "dev", "tmp"} {
		if err := os.Mkdir(filepath.Join(rootfs, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(prog)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "prog"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	err = filepath.WalkDir(rootfs, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, HostID, HostID)
	})
	if err != nil {
		t.Fatal(err)
	}
	spec := Spec(append([]string{"/prog"}, args...), env)
	cfg, err := json.MarshalIndent(spec, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// SpecVersion is the ociVersion of the suite's bundles. crun 1.8 (Debian 12) refuses any
// version but 1.0.x and 1.1.x ("unknown version specified"), and specs-go's own
// specs.Version is newer.
const SpecVersion = "1.0.2"

// Spec is the suite's minimal sane spec: its own user (root mapped to HostID), pid, mount,
// ipc, uts and network namespaces, no capabilities, no_new_privs, a read-only root with a
// tmpfs /tmp, a pids limit.
func Spec(args, env []string) *specs.Spec {
	mapping := []specs.LinuxIDMapping{{ContainerID: 0, HostID: HostID, Size: 65536}}
	pids := int64(64)
	return &specs.Spec{
		Version:  SpecVersion,
		Hostname: "moat-test",
		Root:     &specs.Root{Path: "rootfs", Readonly: true},
		Process: &specs.Process{
			Args:            args,
			Env:             append([]string{"PATH=/"}, env...),
			Cwd:             "/",
			NoNewPrivileges: true,
			Capabilities:    &specs.LinuxCapabilities{Bounding: []string{}, Effective: []string{}, Permitted: []string{}, Inheritable: []string{}, Ambient: []string{}},
			Rlimits:         []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 1024, Soft: 1024}},
		},
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "mode=1777", "size=16m"}},
		},
		Linux: &specs.Linux{
			UIDMappings: mapping,
			GIDMappings: mapping,
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace}, {Type: specs.NetworkNamespace}, {Type: specs.IPCNamespace},
				{Type: specs.UTSNamespace}, {Type: specs.MountNamespace}, {Type: specs.UserNamespace},
			},
			Resources:     &specs.LinuxResources{Pids: &specs.LinuxPids{Limit: &pids}},
			MaskedPaths:   []string{"/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug", "/proc/scsi", "/sys/firmware"},
			ReadonlyPaths: []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"},
		},
	}
}

// id names a container after the test, unique within the suite's run.
func id(t *testing.T, suffix string) string {
	return fmt.Sprintf("%s%s-%d", idPrefix(t), suffix, time.Now().UnixNano()%1_000_000)
}

func idPrefix(t *testing.T) string {
	return strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name())) + "-"
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

// track force-deletes a detached container when the test ends, whatever happened.
func track(t *testing.T, rt backend.Runtime, id string) {
	t.Cleanup(func() {
		err := rt.Delete(context.Background(), id, true)
		if err != nil && !errors.Is(err, backend.ErrNotFound) {
			t.Errorf("cleaning up %s: %v", id, err)
		}
	})
}

// checkEmpty fails when the state directory holds anything but empty top-level directories.
func checkEmpty(t *testing.T, rt backend.Runtime, dir string) {
	if c, ok := rt.(interface{ Close() error }); ok {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}
	var left []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if !d.IsDir() || strings.Contains(rel, "/") {
			left = append(left, rel)
		}
		return nil
	})
	if len(left) > 0 {
		t.Errorf("%s left in its state directory: %s", rt.Name(), strings.Join(left, ", "))
	}
	// Nor a cgroup named after one of the test's containers (every runtime names them after
	// the id when the spec has no cgroupsPath), nor a process that names the directory (a
	// shim, or gVisor's sandbox and gofer, carry it in their arguments).
	prefix := idPrefix(t)
	filepath.WalkDir("/sys/fs/cgroup", func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() && strings.HasPrefix(d.Name(), prefix) {
			t.Errorf("cgroup %s left behind", p)
		}
		return nil
	})
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err == nil && bytes.Contains(b, []byte(dir)) {
			t.Errorf("process %s left behind: %q", filepath.Base(filepath.Dir(p)), bytes.ReplaceAll(b, []byte{0}, []byte{' '}))
		}
	}
}

func (s *suite) runExitCode(t *testing.T, rt backend.Runtime) {
	for _, code := range []int{0, 3, 255} {
		var out, errOut bytes.Buffer
		got, err := rt.Run(ctx(t), id(t, fmt.Sprint(code)), s.bundle(t, []string{"exit", fmt.Sprint(code)}), backend.IO{Stdout: &out, Stderr: &errOut})
		if err != nil {
			t.Fatalf("Run: %v (stderr %q)", err, errOut.String())
		}
		if got != code {
			t.Errorf("exit code %d, want %d", got, code)
		}
		if out.String() != "out\n" || errOut.String() != "err\n" {
			t.Errorf("stdout %q, stderr %q; want \"out\\n\", \"err\\n\"", out.String(), errOut.String())
		}
	}
}

func (s *suite) runArgsEnv(t *testing.T, rt backend.Runtime) {
	args := []string{"a", "b c", "", "ünï'\"$x"}
	var out, errOut bytes.Buffer
	code, err := rt.Run(ctx(t), id(t, "args"), s.bundle(t, append([]string{"args"}, args...)), backend.IO{Stdout: &out, Stderr: &errOut})
	if err != nil || code != 0 {
		t.Fatalf("Run: %d, %v (stderr %q)", code, err, errOut.String())
	}
	if want := strings.Join(args, "\n") + "\n"; out.String() != want {
		t.Errorf("args: got %q, want %q", out.String(), want)
	}
	out.Reset()
	code, err = rt.Run(ctx(t), id(t, "env"), s.bundle(t, []string{"env", "GREETING"}, "GREETING=hello world"), backend.IO{Stdout: &out, Stderr: &errOut})
	if err != nil || code != 0 {
		t.Fatalf("Run: %d, %v (stderr %q)", code, err, errOut.String())
	}
	if out.String() != "hello world\n" {
		t.Errorf("env: got %q, want %q", out.String(), "hello world\n")
	}
}

func (s *suite) runStdin(t *testing.T, rt backend.Runtime) {
	var out, errOut bytes.Buffer
	in := strings.Repeat("stdin reaches the container\n", 1000)
	code, err := rt.Run(ctx(t), id(t, "cat"), s.bundle(t, []string{"cat"}), backend.IO{Stdin: strings.NewReader(in), Stdout: &out, Stderr: &errOut})
	if err != nil || code != 0 {
		t.Fatalf("Run: %d, %v (stderr %q)", code, err, errOut.String())
	}
	if out.String() != in {
		t.Errorf("stdout has %d bytes, want the %d of stdin", out.Len(), len(in))
	}
}

func (s *suite) runConfinement(t *testing.T, rt backend.Runtime) {
	var out, errOut bytes.Buffer
	code, err := rt.Run(ctx(t), id(t, "check"), s.bundle(t, []string{"check"}), backend.IO{Stdout: &out, Stderr: &errOut})
	if err != nil || code != 0 {
		t.Fatalf("Run: %d, %v (stderr %q)", code, err, errOut.String())
	}
	if want := "uid=0 gid=0 hostname=moat-test readonly-root=true pid=1\n"; out.String() != want {
		t.Errorf("got %q, want %q", out.String(), want)
	}
}

func (s *suite) runBadBundle(t *testing.T, rt backend.Runtime) {
	bundle := s.bundle(t, []string{"exit", "0"})
	if err := os.Remove(filepath.Join(bundle, "config.json")); err != nil {
		t.Fatal(err)
	}
	var errOut bytes.Buffer
	code, err := rt.Run(ctx(t), id(t, "bad"), bundle, backend.IO{Stderr: &errOut})
	if err == nil {
		t.Fatalf("Run of a bundle without config.json: exit code %d and no error", code)
	}
	t.Logf("Run of a bundle without config.json: %v", err)
	code, err = rt.Run(ctx(t), id(t, "bad2"), t.TempDir(), backend.IO{Stderr: &errOut})
	if err == nil {
		t.Fatalf("Run of an empty directory: exit code %d and no error", code)
	}
}

func (s *suite) runContextCancel(t *testing.T, rt backend.Runtime) {
	c, cancel := context.WithCancel(ctx(t))
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	done := make(chan error, 1)
	var code int
	go func() {
		var err error
		code, err = rt.Run(c, id(t, "cancel"), s.bundle(t, []string{"wait"}), backend.IO{Stdout: w})
		w.Close()
		done <- err
	}()
	buf := make([]byte, 6)
	if _, err := r.Read(buf); err != nil || string(buf) != "ready\n" {
		t.Fatalf("reading the container's first line: %q, %v", buf, err)
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Run after cancel: %d, %v; want context.Canceled", code, err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return within 30s of its context's end")
	}
}

// waitFor polls State until cond holds, for at most 30 seconds.
func waitFor(t *testing.T, rt backend.Runtime, id string, what string, cond func(backend.State) bool) backend.State {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := rt.State(ctx(t), id)
		if err != nil {
			t.Fatalf("State while waiting for %s: %v", what, err)
		}
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still %+v after 30s", what, st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// logs makes the stdout and stderr files of a detached container.
func logs(t *testing.T) (stdout, stderr *os.File) {
	dir := t.TempDir()
	var files [2]*os.File
	for i, name := range []string{"stdout.log", "stderr.log"} {
		f, err := os.OpenFile(filepath.Join(dir, name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		files[i] = f
	}
	return files[0], files[1]
}

func readFile(t *testing.T, f *os.File) string {
	b, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func (s *suite) detached(t *testing.T, rt backend.Runtime) {
	id := id(t, "d")
	stdout, stderr := logs(t)
	if err := rt.Create(ctx(t), id, s.bundle(t, []string{"wait"}), backend.IO{Stdout: stdout, Stderr: stderr}); err != nil {
		t.Fatalf("Create: %v", err)
	}
	track(t, rt, id)
	// The caller's files can go: the container has its own.
	stdout.Close()
	stderr.Close()
	st, err := rt.State(ctx(t), id)
	if err != nil {
		t.Fatalf("State: %v", err)
	}
	if st.Status != backend.Created || st.Pid <= 0 || st.ID != id {
		t.Errorf("State after Create: %+v, want created with a pid", st)
	}
	if err := rt.Start(ctx(t), id); err != nil {
		t.Fatalf("Start: %v", err)
	}
	st = waitFor(t, rt, id, "running", func(st backend.State) bool { return st.Status == backend.Running })
	if st.Pid <= 0 || st.ExitCode != -1 {
		t.Errorf("State of a running container: %+v", st)
	}
	deadline := time.Now().Add(30 * time.Second)
	for readFile(t, stdout) != "ready\n" {
		if time.Now().After(deadline) {
			t.Fatalf("stdout log %q, want \"ready\\n\"", readFile(t, stdout))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := rt.Kill(ctx(t), id, syscall.SIGTERM); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	st = waitFor(t, rt, id, "stopped with its exit code", func(st backend.State) bool { return st.Status == backend.Stopped && st.ExitCode != -1 })
	if st.ExitCode != 42 || st.Pid != 0 {
		t.Errorf("State after SIGTERM: %+v, want stopped with exit code 42", st)
	}
	if got := readFile(t, stdout); got != "ready\nterm\n" {
		t.Errorf("stdout log %q, want \"ready\\nterm\\n\"", got)
	}
	if err := rt.Delete(ctx(t), id, false); err != nil {
		t.Fatalf("Delete of a stopped container: %v", err)
	}
	if _, err := rt.State(ctx(t), id); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("State after Delete: %v, want ErrNotFound", err)
	}
}

func (s *suite) detachedExit(t *testing.T, rt backend.Runtime) {
	id := id(t, "x")
	stdout, stderr := logs(t)
	if err := rt.Create(ctx(t), id, s.bundle(t, []string{"exit", "7"}), backend.IO{Stdout: stdout, Stderr: stderr}); err != nil {
		t.Fatalf("Create: %v", err)
	}
	track(t, rt, id)
	if err := rt.Start(ctx(t), id); err != nil {
		t.Fatalf("Start: %v", err)
	}
	st := waitFor(t, rt, id, "stopped", func(st backend.State) bool { return st.Status == backend.Stopped && st.ExitCode != -1 })
	if st.ExitCode != 7 {
		t.Errorf("exit code %d, want 7", st.ExitCode)
	}
	if o, e := readFile(t, stdout), readFile(t, stderr); o != "out\n" || e != "err\n" {
		t.Errorf("logs: stdout %q, stderr %q", o, e)
	}
	if err := rt.Kill(ctx(t), id, syscall.SIGTERM); err == nil {
		t.Errorf("Kill of a stopped container: no error")
	}
	if err := rt.Delete(ctx(t), id, false); err != nil {
		t.Fatalf("Delete: %v", err)
	}
}

// killedOutside kills the container's process (gVisor's sandbox for runsc) behind the
// runtime's back, as the kernel's OOM killer would: the container must show as stopped, with
// 128+SIGKILL as its exit code.
func (s *suite) killedOutside(t *testing.T, rt backend.Runtime) {
	id := id(t, "k")
	if err := rt.Create(ctx(t), id, s.bundle(t, []string{"wait"}), backend.IO{}); err != nil {
		t.Fatalf("Create: %v", err)
	}
	track(t, rt, id)
	if err := rt.Start(ctx(t), id); err != nil {
		t.Fatalf("Start: %v", err)
	}
	st := waitFor(t, rt, id, "running", func(st backend.State) bool { return st.Status == backend.Running })
	if err := syscall.Kill(st.Pid, syscall.SIGKILL); err != nil {
		t.Fatalf("killing pid %d: %v", st.Pid, err)
	}
	st = waitFor(t, rt, id, "stopped", func(st backend.State) bool { return st.Status == backend.Stopped && st.ExitCode != -1 })
	if st.ExitCode != 128+int(syscall.SIGKILL) {
		t.Errorf("exit code %d, want %d", st.ExitCode, 128+int(syscall.SIGKILL))
	}
	if err := rt.Delete(ctx(t), id, false); err != nil {
		t.Fatalf("Delete: %v", err)
	}
}

func (s *suite) deleteRunning(t *testing.T, rt backend.Runtime) {
	id := id(t, "r")
	if err := rt.Create(ctx(t), id, s.bundle(t, []string{"wait"}), backend.IO{}); err != nil {
		t.Fatalf("Create: %v", err)
	}
	track(t, rt, id)
	if err := rt.Start(ctx(t), id); err != nil {
		t.Fatalf("Start: %v", err)
	}
	waitFor(t, rt, id, "running", func(st backend.State) bool { return st.Status == backend.Running })
	if err := rt.Delete(ctx(t), id, false); !errors.Is(err, backend.ErrRunning) {
		t.Fatalf("Delete of a running container without force: %v, want ErrRunning", err)
	}
	if st, err := rt.State(ctx(t), id); err != nil || st.Status != backend.Running {
		t.Fatalf("State after a refused Delete: %+v, %v; want running", st, err)
	}
	if err := rt.Delete(ctx(t), id, true); err != nil {
		t.Fatalf("Delete with force: %v", err)
	}
	if _, err := rt.State(ctx(t), id); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("State after a forced Delete: %v, want ErrNotFound", err)
	}
}

func (s *suite) deleteCreated(t *testing.T, rt backend.Runtime) {
	id := id(t, "c")
	if err := rt.Create(ctx(t), id, s.bundle(t, []string{"wait"}), backend.IO{}); err != nil {
		t.Fatalf("Create: %v", err)
	}
	track(t, rt, id)
	if err := rt.Delete(ctx(t), id, false); err != nil {
		t.Fatalf("Delete of a created, never started container: %v", err)
	}
	if _, err := rt.State(ctx(t), id); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("State after Delete: %v, want ErrNotFound", err)
	}
}

func (s *suite) duplicateID(t *testing.T, rt backend.Runtime) {
	id := id(t, "dup")
	bundle := s.bundle(t, []string{"wait"})
	if err := rt.Create(ctx(t), id, bundle, backend.IO{}); err != nil {
		t.Fatalf("Create: %v", err)
	}
	track(t, rt, id)
	if err := rt.Create(ctx(t), id, bundle, backend.IO{}); !errors.Is(err, backend.ErrExists) {
		t.Errorf("second Create of %s: %v, want ErrExists", id, err)
	}
	if _, err := rt.Run(ctx(t), id, bundle, backend.IO{}); !errors.Is(err, backend.ErrExists) {
		t.Errorf("Run of %s while it exists: %v, want ErrExists", id, err)
	}
	if st, err := rt.State(ctx(t), id); err != nil || st.Status != backend.Created {
		t.Errorf("State of the first container: %+v, %v; want created", st, err)
	}
}

func (s *suite) unknownID(t *testing.T, rt backend.Runtime) {
	if _, err := rt.State(ctx(t), "nonexistent"); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("State: %v, want ErrNotFound", err)
	}
	if err := rt.Delete(ctx(t), "nonexistent", true); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("Delete: %v, want ErrNotFound", err)
	}
	if err := rt.Kill(ctx(t), "nonexistent", syscall.SIGKILL); err == nil {
		t.Errorf("Kill: no error")
	}
	if err := rt.Start(ctx(t), "nonexistent"); err == nil {
		t.Errorf("Start: no error")
	}
	if err := rt.Create(ctx(t), "../escape", t.TempDir(), backend.IO{}); err == nil {
		t.Errorf("Create with id ../escape: no error")
	}
}
