// Package backendtest is the conformance suite every backend.Runtime must pass: foreground
// runs (exit codes, stdout and stderr, arguments, environment, stdin, confinement), the
// detached lifecycle (create, start, state, kill, delete), exec'd processes (exit codes,
// stdio, confinement equal to the init's: seccomp, no_new_privs, capabilities, limits),
// terminals (foreground, exec'd and detached: the process sees terminals of the size asked
// for, input reaches it, resizes reach it, output arrives whole), refusals, and that nothing
// is left behind. It runs real containers: a test program built statically in the test is the only
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
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/moatsec/moat/internal/runtime/backend"
	"github.com/moatsec/moat/internal/testutil"
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
	// These run with the runtime's state in a directory too deep for a unix socket's address
	// (108 bytes), where the backend's console sockets are.
	deep := map[string]bool{"ExecTerminal": true, "DetachedTerminal": true}
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
		{"ExitCommand", s.exitCommand},
		{"KilledOutside", s.killedOutside},
		{"DeleteRunning", s.deleteRunning},
		{"DeleteCreated", s.deleteCreated},
		{"DuplicateID", s.duplicateID},
		{"UnknownID", s.unknownID},
		{"Exec", s.exec},
		{"ExecForeground", s.execForeground},
		{"ExecConfinement", s.execConfinement},
		{"ExecRefusals", s.execRefusals},
		{"ExecContextCancel", s.execContextCancel},
		{"RunTerminal", s.runTerminal},
		{"ExecTerminal", s.execTerminal},
		{"DetachedTerminal", s.detachedTerminal},
		{"Attach", s.attach},
		{"AttachStdin", s.attachStdin},
		{"TerminalMismatch", s.terminalMismatch},
		{"EarlyRun", s.earlyRun},
		{"EarlyRunAbort", s.earlyRunAbort},
		{"EarlyRunBadSpec", s.earlyRunBadSpec},
		{"EarlyRunExec", s.earlyRunExec},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if deep[tc.name] {
				dir = filepath.Join(dir, strings.Repeat("d", 100))
				if err := os.Mkdir(dir, 0o700); err != nil {
					t.Fatal(err)
				}
			}
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
	return bundleWith(t, prog, args, env, nil)
}

// bundleWith is Bundle with edit applied to the spec (when not nil).
func bundleWith(t testing.TB, prog string, args, env []string, edit func(*specs.Spec)) string {
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
	if edit != nil {
		edit(spec)
	}
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
// tmpfs /tmp, a devpts of its own (for terminals), a pids limit.
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
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
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

// exitCommand: a detached container's exit command runs once it has ended, with its exit
// code recorded by then.
func (s *suite) exitCommand(t *testing.T, rt backend.Runtime) {
	id := id(t, "e")
	mark := filepath.Join(t.TempDir(), "ended")
	cmd := &backend.Command{Path: "/bin/sh", Args: []string{"sh", "-c", `echo ended > "$0"`, mark}}
	if err := rt.Create(ctx(t), id, s.bundle(t, []string{"exit", "3"}), backend.IO{ExitCommand: cmd}); err != nil {
		t.Fatalf("Create: %v", err)
	}
	track(t, rt, id)
	if _, err := os.Stat(mark); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the exit command ran before the container started: %v", err)
	}
	if err := rt.Start(ctx(t), id); err != nil {
		t.Fatalf("Start: %v", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if b, err := os.ReadFile(mark); err == nil && string(b) == "ended\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the exit command did not run within 30s of the container's start")
		}
		time.Sleep(10 * time.Millisecond)
	}
	st, err := rt.State(ctx(t), id)
	if err != nil || st.Status != backend.Stopped || st.ExitCode != 3 {
		t.Errorf("after the exit command: %+v %v, want stopped with exit code 3", st, err)
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

// startWaiting creates and starts a detached container running `prog wait` from bundle
// (a new one when bundle is ""), and waits until it runs.
func (s *suite) startWaiting(t *testing.T, rt backend.Runtime, bundle string) string {
	t.Helper()
	if bundle == "" {
		bundle = s.bundle(t, []string{"wait"})
	}
	id := id(t, "w")
	if err := rt.Create(ctx(t), id, bundle, backend.IO{}); err != nil {
		t.Fatalf("Create: %v", err)
	}
	track(t, rt, id)
	if err := rt.Start(ctx(t), id); err != nil {
		t.Fatalf("Start: %v", err)
	}
	waitFor(t, rt, id, "running", func(st backend.State) bool { return st.Status == backend.Running })
	return id
}

// execForeground execs into a container a foreground Run holds, which has no directory in
// the backend's state directory: the transient files of both go in the bundle, and none is
// left there once Run returns.
func (s *suite) execForeground(t *testing.T, rt backend.Runtime) {
	bundle := s.bundle(t, []string{"wait"})
	s.execForegroundWith(t, rt, bundle, func(ctx context.Context, id string) error {
		_, err := rt.Run(ctx, id, bundle, backend.IO{})
		return err
	})
}

// execForegroundWith checks Exec into a foreground container of bundle that run runs.
func (s *suite) execForegroundWith(t *testing.T, rt backend.Runtime, bundle string, run func(ctx context.Context, id string) error) {
	id := id(t, "fg")
	done := make(chan error, 1)
	runCtx, stop := context.WithCancel(ctx(t))
	go func() {
		done <- run(runCtx, id)
	}()
	// Whatever happens, Run has returned before the suite checks what is left.
	t.Cleanup(func() {
		stop()
		<-done
	})
	// Until the runtime has created it, the container is unknown.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) {
		st, err := rt.State(ctx(t), id)
		if err == nil && st.Status == backend.Running {
			break
		}
		if err != nil && !errors.Is(err, backend.ErrNotFound) || time.Now().After(deadline) {
			t.Fatalf("waiting for the foreground container to run: %+v, %v", st, err)
		}
	}
	var out bytes.Buffer
	code, err := rt.Exec(ctx(t), id, execProcess(t, rt, id, "exit", "3"), backend.IO{Stdout: &out, Stderr: &out})
	if err != nil || code != 3 || out.String() != "out\nerr\n" {
		t.Errorf("Exec into a foreground container: %d, %v, %q", code, err, out.String())
	}
	stop() // Run sends SIGTERM, which `prog wait` ends on
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("Run: %v", err)
	}
	done <- nil // for the cleanup
	entries, err := os.ReadDir(bundle)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != "config.json" && e.Name() != "rootfs" {
			t.Errorf("left in the bundle: %s", e.Name())
		}
	}
}

// earlyRunner is rt as a backend.EarlyRunner; the test is skipped for a runtime that is not.
func earlyRunner(t *testing.T, rt backend.Runtime) backend.EarlyRunner {
	er, ok := rt.(backend.EarlyRunner)
	if !ok {
		t.Skipf("%s cannot begin a run before its spec is written", rt.Name())
	}
	return er
}

// earlyBundle is a bundle for args whose config.json is not written: its spec is returned.
func (s *suite) earlyBundle(t *testing.T, args ...string) (string, []byte) {
	bundle := s.bundle(t, args)
	path := filepath.Join(bundle, "config.json")
	spec, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	// Ending in a newline, as moat's specs do: a runtime that reads one JSON value leaves it.
	return bundle, append(spec, '\n')
}

// earlyRun begins runs and writes their specs at once and once the runtime waits for them:
// each runs as Run would, and leaves the spec in the bundle as a regular file.
func (s *suite) earlyRun(t *testing.T, rt backend.Runtime) {
	er := earlyRunner(t, rt)
	for _, delay := range []time.Duration{0, 300 * time.Millisecond} {
		bundle, spec := s.earlyBundle(t, "exit", "3")
		var out, errOut bytes.Buffer
		p, err := er.BeginRun(ctx(t), id(t, "early"), bundle, backend.IO{Stdout: &out, Stderr: &errOut})
		if err != nil {
			t.Fatalf("BeginRun: %v", err)
		}
		time.Sleep(delay)
		code, err := p.Run(ctx(t), spec)
		if err != nil || code != 3 {
			t.Fatalf("Run after %v: %d, %v (stderr %q); want exit code 3", delay, code, err, errOut.String())
		}
		if out.String() != "out\n" || errOut.String() != "err\n" {
			t.Errorf("stdout %q, stderr %q; want \"out\\n\", \"err\\n\"", out.String(), errOut.String())
		}
		path := filepath.Join(bundle, "config.json")
		if fi, err := os.Lstat(path); err != nil || !fi.Mode().IsRegular() {
			t.Errorf("after the run, config.json: %v, %v; want a regular file", fi, err)
		} else if b, err := os.ReadFile(path); err != nil || !bytes.Equal(b, spec) {
			t.Errorf("after the run, config.json holds %d bytes (%v), not the spec's %d", len(b), err, len(spec))
		}
	}
}

// earlyRunAbort aborts begun runs, at once and once the runtime waits: the runtime's process
// ends, having created nothing, and the bundle is as it was.
func (s *suite) earlyRunAbort(t *testing.T, rt backend.Runtime) {
	er := earlyRunner(t, rt)
	for _, delay := range []time.Duration{0, 300 * time.Millisecond} {
		bundle, _ := s.earlyBundle(t, "exit", "0")
		id := id(t, "abort")
		p, err := er.BeginRun(ctx(t), id, bundle, backend.IO{})
		if err != nil {
			t.Fatalf("BeginRun: %v", err)
		}
		time.Sleep(delay)
		p.Abort()
		if _, err := rt.State(ctx(t), id); !errors.Is(err, backend.ErrNotFound) {
			t.Errorf("State of an aborted run: %v, want ErrNotFound", err)
		}
		entries, _ := os.ReadDir(bundle)
		for _, e := range entries {
			if e.Name() != "rootfs" {
				t.Errorf("left in the bundle by an aborted run: %s", e.Name())
			}
		}
	}
}

// earlyRunBadSpec gives begun runs a spec that is not JSON and one that asks for a terminal:
// both fail, and nothing is left.
func (s *suite) earlyRunBadSpec(t *testing.T, rt backend.Runtime) {
	er := earlyRunner(t, rt)
	_, spec := s.earlyBundle(t, "exit", "0")
	var sp specs.Spec
	if err := json.Unmarshal(spec, &sp); err != nil {
		t.Fatal(err)
	}
	sp.Process.Terminal = true
	terminal, err := json.Marshal(&sp)
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][]byte{[]byte("{"), terminal} {
		bundle, _ := s.earlyBundle(t, "exit", "0")
		p, err := er.BeginRun(ctx(t), id(t, "bad"), bundle, backend.IO{})
		if err != nil {
			t.Fatalf("BeginRun: %v", err)
		}
		code, err := p.Run(ctx(t), bad)
		if err == nil {
			t.Errorf("Run with the spec %.40q: exit code %d and no error", bad, code)
		}
		t.Logf("Run with a bad spec: %v", err)
	}
	if _, err := er.BeginRun(ctx(t), id(t, "exists"), s.bundle(t, []string{"exit", "0"}), backend.IO{}); err == nil {
		t.Error("BeginRun in a bundle that has its config.json: no error")
	}
}

// earlyRunExec execs into a container whose run began early: Exec reads the spec the run
// left in the bundle.
func (s *suite) earlyRunExec(t *testing.T, rt backend.Runtime) {
	er := earlyRunner(t, rt)
	bundle, spec := s.earlyBundle(t, "wait")
	s.execForegroundWith(t, rt, bundle, func(ctx context.Context, id string) error {
		p, err := er.BeginRun(ctx, id, bundle, backend.IO{})
		if err != nil {
			return err
		}
		_, err = p.Run(ctx, spec)
		return err
	})
}

// execProcess is what a caller of Exec builds: the process of the container's config.json
// with another command.
func execProcess(t *testing.T, rt backend.Runtime, id string, args ...string) *specs.Process {
	t.Helper()
	st, err := rt.State(ctx(t), id)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(st.Bundle, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var spec specs.Spec
	if err := json.Unmarshal(b, &spec); err != nil {
		t.Fatal(err)
	}
	p := spec.Process
	p.Args = append([]string{"/prog"}, args...)
	return p
}

func (s *suite) exec(t *testing.T, rt backend.Runtime) {
	id := s.startWaiting(t, rt, "")
	var out, errOut bytes.Buffer
	run := func(p *specs.Process, stdin string) int {
		t.Helper()
		out.Reset()
		errOut.Reset()
		stdio := backend.IO{Stdout: &out, Stderr: &errOut}
		if stdin != "" {
			stdio.Stdin = strings.NewReader(stdin)
		}
		code, err := rt.Exec(ctx(t), id, p, stdio)
		if err != nil {
			t.Fatalf("Exec %q: %v (stderr %q)", p.Args, err, errOut.String())
		}
		return code
	}
	for _, code := range []int{0, 3, 255} {
		if got := run(execProcess(t, rt, id, "exit", fmt.Sprint(code)), ""); got != code {
			t.Errorf("exit code %d, want %d", got, code)
		}
		if out.String() != "out\n" || errOut.String() != "err\n" {
			t.Errorf("stdout %q, stderr %q; want \"out\\n\", \"err\\n\"", out.String(), errOut.String())
		}
	}
	if got := run(execProcess(t, rt, id, "signal", "9"), ""); got != 128+9 {
		t.Errorf("exit code of a process killed by SIGKILL: %d, want %d", got, 128+9)
	}
	args := []string{"a", "b c", "", "ünï'\"$x"}
	if run(execProcess(t, rt, id, append([]string{"args"}, args...)...), ""); out.String() != strings.Join(args, "\n")+"\n" {
		t.Errorf("args: got %q, want %q", out.String(), strings.Join(args, "\n")+"\n")
	}
	p := execProcess(t, rt, id, "env", "GREETING")
	p.Env = append(p.Env, "GREETING=hello exec")
	if run(p, ""); out.String() != "hello exec\n" {
		t.Errorf("env: got %q", out.String())
	}
	p = execProcess(t, rt, id, "pwd")
	p.Cwd = "/tmp"
	if run(p, ""); out.String() != "/tmp\n" {
		t.Errorf("cwd: got %q, want \"/tmp\\n\"", out.String())
	}
	in := strings.Repeat("stdin reaches the exec'd process\n", 1000)
	if run(execProcess(t, rt, id, "cat"), in); out.String() != in {
		t.Errorf("stdout has %d bytes, want the %d of stdin", out.Len(), len(in))
	}
	// The container's own process is untouched.
	if st, err := rt.State(ctx(t), id); err != nil || st.Status != backend.Running {
		t.Errorf("State after the execs: %+v, %v; want running", st, err)
	}
}

// denyMkdir gives the spec a seccomp profile that allows everything but mkdir and mkdirat,
// which fail with EPERM.
func denyMkdir(spec *specs.Spec) {
	spec.Linux.Seccomp = &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Syscalls:      []specs.LinuxSyscall{{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActErrno}},
	}
}

// execConfinement checks that an exec'd process is confined as the container's init is: the
// same seccomp filter (a denied system call stays denied), no_new_privs, capabilities and
// limits; and that Exec refuses a process less confined than the init.
func (s *suite) execConfinement(t *testing.T, rt backend.Runtime) {
	var initOut, errOut bytes.Buffer
	code, err := rt.Run(ctx(t), id(t, "init"), bundleWith(t, s.prog, []string{"confined"}, nil, denyMkdir), backend.IO{Stdout: &initOut, Stderr: &errOut})
	if err != nil || code != 0 {
		t.Fatalf("Run: %d, %v (stderr %q)", code, err, errOut.String())
	}
	want := `nnp=1 seccomp=2 capeff=0000000000000000 capbnd=0000000000000000 nofile=1024/1024 mkdir="operation not permitted"` + "\n"
	if initOut.String() != want {
		t.Errorf("the container's init: %q, want %q", initOut.String(), want)
	}
	id := s.startWaiting(t, rt, bundleWith(t, s.prog, []string{"wait"}, nil, denyMkdir))
	var out bytes.Buffer
	code, err = rt.Exec(ctx(t), id, execProcess(t, rt, id, "confined"), backend.IO{Stdout: &out, Stderr: &errOut})
	if err != nil || code != 0 {
		t.Fatalf("Exec: %d, %v (stderr %q)", code, err, errOut.String())
	}
	if out.String() != initOut.String() {
		t.Errorf("the exec'd process: %q, the container's init: %q", out.String(), initOut.String())
	}
	for _, tc := range []struct {
		name string
		edit func(p *specs.Process)
	}{
		{"no_new_privs off", func(p *specs.Process) { p.NoNewPrivileges = false }},
		{"a capability", func(p *specs.Process) { p.Capabilities.Bounding = append(p.Capabilities.Bounding, "CAP_SYS_ADMIN") }},
		{"no capability sets", func(p *specs.Process) { p.Capabilities = nil }},
		{"no rlimits", func(p *specs.Process) { p.Rlimits = nil }},
		{"a higher rlimit", func(p *specs.Process) { p.Rlimits[0].Hard = 1 << 20 }},
	} {
		p := execProcess(t, rt, id, "confined")
		tc.edit(p)
		code, err := rt.Exec(ctx(t), id, p, backend.IO{})
		if err == nil {
			t.Errorf("Exec of a process with %s: exit code %d and no error", tc.name, code)
		} else if !strings.Contains(err.Error(), "less confined") {
			t.Errorf("Exec of a process with %s: %v, want a refusal", tc.name, err)
		}
	}
}

func (s *suite) execRefusals(t *testing.T, rt backend.Runtime) {
	p := Spec([]string{"/prog", "exit", "0"}, nil).Process
	if _, err := rt.Exec(ctx(t), "nonexistent", p, backend.IO{}); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("Exec in an unknown container: %v, want ErrNotFound", err)
	}
	created := id(t, "c")
	if err := rt.Create(ctx(t), created, s.bundle(t, []string{"wait"}), backend.IO{}); err != nil {
		t.Fatalf("Create: %v", err)
	}
	track(t, rt, created)
	if _, err := rt.Exec(ctx(t), created, execProcess(t, rt, created, "exit", "0"), backend.IO{}); !errors.Is(err, backend.ErrNotRunning) {
		t.Errorf("Exec in a created container: %v, want ErrNotRunning", err)
	}
	stopped := id(t, "s")
	if err := rt.Create(ctx(t), stopped, s.bundle(t, []string{"exit", "0"}), backend.IO{}); err != nil {
		t.Fatalf("Create: %v", err)
	}
	track(t, rt, stopped)
	p = execProcess(t, rt, stopped, "exit", "0")
	if err := rt.Start(ctx(t), stopped); err != nil {
		t.Fatalf("Start: %v", err)
	}
	waitFor(t, rt, stopped, "stopped", func(st backend.State) bool { return st.Status == backend.Stopped })
	if _, err := rt.Exec(ctx(t), stopped, p, backend.IO{}); !errors.Is(err, backend.ErrNotRunning) {
		t.Errorf("Exec in a stopped container: %v, want ErrNotRunning", err)
	}
	if _, err := rt.Exec(ctx(t), "../escape", p, backend.IO{}); err == nil {
		t.Errorf("Exec with id ../escape: no error")
	}
	// A process that cannot start is an error, not an exit code.
	id := s.startWaiting(t, rt, "")
	p = execProcess(t, rt, id)
	p.Args = []string{"/nonexistent"}
	var errOut bytes.Buffer
	if code, err := rt.Exec(ctx(t), id, p, backend.IO{Stderr: &errOut}); err == nil {
		t.Errorf("Exec of a missing program: exit code %d and no error", code)
	} else {
		t.Logf("Exec of a missing program: %v", err)
	}
}

func (s *suite) execContextCancel(t *testing.T, rt backend.Runtime) {
	id := s.startWaiting(t, rt, "")
	c, cancel := context.WithCancel(ctx(t))
	defer cancel()
	out := newWatcher()
	done := make(chan error, 1)
	go func() {
		_, err := rt.Exec(c, id, execProcess(t, rt, id, "wait"), backend.IO{Stdout: out})
		done <- err
	}()
	out.waitFor(t, "ready\n", nil)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Exec after cancel: %v; want context.Canceled", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Exec did not return within 30s of its context's end")
	}
	// SIGTERM reached the process, which wrote "term" and exited.
	if got := out.String(); got != "ready\nterm\n" {
		t.Errorf("the exec'd process wrote %q, want \"ready\\nterm\\n\"", got)
	}
	if st, err := rt.State(ctx(t), id); err != nil || st.Status != backend.Running {
		t.Errorf("State after a cancelled Exec: %+v, %v; want running", st, err)
	}
}

// watcher is a writer that keeps what is written to it, for a test to wait for.
type watcher struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func newWatcher() *watcher { return &watcher{} }

func (w *watcher) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (w *watcher) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// waitFor waits at most 30 seconds for s to have been written, or for stop to be ready
// (then it returns false).
func (w *watcher) waitFor(t *testing.T, s string, stop <-chan struct{}) bool {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for !strings.Contains(w.String(), s) {
		select {
		case <-stop:
			return false
		case <-timeout:
			t.Fatalf("waiting for %q; got %q", s, w.String())
		case <-time.After(5 * time.Millisecond):
		}
	}
	return true
}

// terminalBundle makes a bundle whose process, `prog args...`, asks for a terminal.
func (s *suite) terminalBundle(t *testing.T, args ...string) string {
	return bundleWith(t, s.prog, args, []string{"TERM=xterm"}, func(spec *specs.Spec) { spec.Process.Terminal = true })
}

// converseTTY drives `prog tty` through its terminal while run (Run or Exec) runs it: the
// program must see terminals of 33x97, read the line typed, see the resize to 40x120, and
// its output must arrive whole. With late, the program may see 0x0 first if it then gets a
// SIGWINCH and sees 33x97 (Exec with runsc, which takes no consoleSize and starts the
// process without waiting for the terminal's size to be set).
func converseTTY(t *testing.T, late bool, run func(stdio backend.IO) (int, error)) {
	out := newWatcher()
	inR, inW := io.Pipe()
	defer inW.Close()
	resize := make(chan backend.WinSize, 1)
	var errOut bytes.Buffer
	type result struct {
		code int
		err  error
	}
	done := make(chan result, 1)
	go func() {
		code, err := run(backend.IO{Stdin: inR, Stdout: out, Stderr: &errOut,
			Terminal: &backend.Terminal{Size: backend.WinSize{Rows: 33, Cols: 97}, Resize: resize}})
		done <- result{code, err}
	}()
	var res result
	ended := make(chan struct{})
	go func() {
		res = <-done
		close(ended)
	}()
	step := func(want string) {
		t.Helper()
		out.waitFor(t, want, ended)
	}
	info := "tty stdin=true stdout=true stderr=true size=33x97"
	if late {
		step(info)
	} else {
		step(info + "\r\n")
	}
	if _, err := inW.Write([]byte("hello\n")); err != nil {
		t.Fatal(err)
	}
	step("winch?\r\n")
	resize <- backend.WinSize{Rows: 40, Cols: 120}
	select {
	case <-ended:
	case <-time.After(60 * time.Second):
		t.Fatalf("the program did not end; it wrote %q", out.String())
	}
	if res.err != nil || res.code != 3 {
		t.Fatalf("exit code %d, error %v, want 3 (stderr %q, output %q)", res.code, res.err, errOut.String(), out.String())
	}
	got := out.String()
	for _, want := range []string{"hello\r\n", `read "hello" <nil>` + "\r\n", "resized 40x120\r\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q: %q", want, got)
		}
	}
	// All of the output, the end included: nothing lost when the process ended.
	i := strings.Index(got, "winch?\r\n")
	lines := strings.Split(strings.TrimSuffix(got[i:], "\r\n"), "\r\n")
	if n := len(lines); n != 8192+3 || lines[n-1] != "end" || lines[n-2] != fmt.Sprintf("%031d", 8191) {
		t.Errorf("the output after the resize has %d lines ending %q, want 8195 ending in \"end\"", n, lines[max(0, n-2):])
	}
}

func (s *suite) runTerminal(t *testing.T, rt backend.Runtime) {
	bundle := s.terminalBundle(t, "tty")
	converseTTY(t, false, func(stdio backend.IO) (int, error) { return rt.Run(ctx(t), id(t, "t"), bundle, stdio) })

	// Cancelled, the container is sent SIGTERM, and its last words still arrive.
	c, cancel := context.WithCancel(ctx(t))
	defer cancel()
	out := newWatcher()
	done := make(chan error, 1)
	go func() {
		_, err := rt.Run(c, id(t, "c"), s.terminalBundle(t, "wait"), backend.IO{Stdout: out, Terminal: &backend.Terminal{}})
		done <- err
	}()
	out.waitFor(t, "ready\r\n", nil)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Run after cancel: %v; want context.Canceled", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return within 30s of its context's end")
	}
	if got := out.String(); got != "ready\r\nterm\r\n" {
		t.Errorf("the container wrote %q, want \"ready\\r\\nterm\\r\\n\"", got)
	}
}

func (s *suite) execTerminal(t *testing.T, rt backend.Runtime) {
	id := s.startWaiting(t, rt, "")
	// runsc is the one runtime that does not size an exec'd process's terminal itself.
	converseTTY(t, rt.Name() == "runsc", func(stdio backend.IO) (int, error) {
		p := execProcess(t, rt, id, "tty")
		p.Terminal = true
		return rt.Exec(ctx(t), id, p, stdio)
	})
	if st, err := rt.State(ctx(t), id); err != nil || st.Status != backend.Running {
		t.Errorf("State after the exec: %+v, %v; want running", st, err)
	}
}

// startTerminal creates and starts a detached container running `prog mode` on a 20x60
// terminal, whose output goes to the stdout file it returns, with the stderr file.
func (s *suite) startTerminal(t *testing.T, rt backend.Runtime, suffix, mode string) (string, *os.File, *os.File) {
	t.Helper()
	id := id(t, suffix)
	stdout, stderr := logs(t)
	err := rt.Create(ctx(t), id, s.terminalBundle(t, mode), backend.IO{Stdout: stdout, Stderr: stderr,
		Terminal: &backend.Terminal{Size: backend.WinSize{Rows: 20, Cols: 60}}})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	track(t, rt, id)
	if err := rt.Start(ctx(t), id); err != nil {
		t.Fatalf("Start: %v", err)
	}
	return id, stdout, stderr
}

// detachedTerminal creates a detached container with a terminal: its output goes to the
// stdout file, with the terminal's line endings.
func (s *suite) detachedTerminal(t *testing.T, rt backend.Runtime) {
	id, stdout, stderr := s.startTerminal(t, rt, "dt", "ttyinfo")
	st := waitFor(t, rt, id, "stopped", func(st backend.State) bool { return st.Status == backend.Stopped && st.ExitCode != -1 })
	if st.ExitCode != 0 {
		t.Errorf("exit code %d, want 0", st.ExitCode)
	}
	if got, want := readFile(t, stdout), "tty stdin=true stdout=true stderr=true size=20x60\r\n"; got != want {
		t.Errorf("stdout log %q, want %q", got, want)
	}
	if got := readFile(t, stderr); got != "" {
		t.Errorf("stderr log %q, want nothing", got)
	}
	if err := rt.Delete(ctx(t), id, false); err != nil {
		t.Fatalf("Delete: %v", err)
	}
}

// attach attaches to a detached container's terminal: a client that detaches (its ctx
// ends) leaves the container running; the next one types a line into it, resizes it and
// gets its output to the end, which the log gets too; Attach returns once the container has
// ended. A container without a terminal, or one that is not running, is refused.
func (s *suite) attach(t *testing.T, rt backend.Runtime) {
	id, stdout, _ := s.startTerminal(t, rt, "at", "tty")
	waitFor(t, rt, id, "running", func(st backend.State) bool { return st.Status == backend.Running })

	// A client that detaches at once.
	dctx, detach := context.WithCancel(ctx(t))
	detached := make(chan error, 1)
	go func() { detached <- rt.Attach(dctx, id, backend.IO{Stdout: io.Discard, Terminal: &backend.Terminal{}}) }()
	time.Sleep(100 * time.Millisecond)
	detach()
	if err := <-detached; !errors.Is(err, context.Canceled) {
		t.Errorf("Attach after detaching: %v, want context.Canceled", err)
	}
	if st, err := rt.State(ctx(t), id); err != nil || st.Status != backend.Running {
		t.Fatalf("after a client detached: %+v, %v; want running", st, err)
	}

	in, typing := io.Pipe()
	defer typing.Close()
	out := &testutil.LockedBuffer{}
	resize := make(chan backend.WinSize, 1)
	attached := make(chan error, 1)
	go func() {
		attached <- rt.Attach(ctx(t), id, backend.IO{Stdin: in, Stdout: out, Terminal: &backend.Terminal{Resize: resize}})
	}()
	// The connection is made when the client's output starts; the line typed is echoed.
	for deadline := time.Now().Add(time.Minute); !strings.Contains(out.String(), "hello"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the line typed never came back; output %q", out.String())
		}
		typing.Write([]byte("hello\n"))
		time.Sleep(100 * time.Millisecond)
	}
	for deadline := time.Now().Add(time.Minute); !strings.Contains(out.String(), "winch?"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no winch? in %q", out.String())
		}
	}
	resize <- backend.WinSize{Rows: 30, Cols: 100}
	select {
	case err := <-attached:
		if err != nil {
			t.Fatalf("Attach: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Attach did not return once the container ended")
	}
	got := out.String()
	for _, want := range []string{`read "hello" <nil>`, "resized 30x100", fmt.Sprintf("%031d\r\nend\r\n", 8191)} {
		if !strings.Contains(got, want) {
			t.Errorf("attached output lacks %q", want)
		}
	}
	if log := readFile(t, stdout); !strings.HasPrefix(log, "tty stdin=true stdout=true stderr=true size=20x60\r\n") || !strings.HasSuffix(log, "end\r\n") {
		t.Errorf("the log lacks the start or the end of the output: %.80q ... ", log)
	}
	st := waitFor(t, rt, id, "stopped", func(st backend.State) bool { return st.Status == backend.Stopped && st.ExitCode != -1 })
	if st.ExitCode != 3 {
		t.Errorf("exit code %d, want 3", st.ExitCode)
	}
	if err := rt.Attach(ctx(t), id, backend.IO{Stdout: io.Discard}); !errors.Is(err, backend.ErrNotRunning) {
		t.Errorf("Attach to an exited container: %v, want ErrNotRunning", err)
	}
	plain := s.startWaiting(t, rt, "")
	if err := rt.Attach(ctx(t), plain, backend.IO{Stdout: io.Discard}); err == nil || !strings.Contains(err.Error(), "no terminal") {
		t.Errorf("Attach to a container without a terminal: %v", err)
	}
}

// attachStdin: a detached container without a terminal created with OpenStdin reads what
// attached clients send, from each in turn, while its output goes to its log; its input never
// ends, even when a client's does; it ends when stopped.
func (s *suite) attachStdin(t *testing.T, rt backend.Runtime) {
	id := id(t, "in")
	stdout, stderr := logs(t)
	if err := rt.Create(ctx(t), id, s.bundle(t, []string{"cat"}), backend.IO{Stdout: stdout, Stderr: stderr, OpenStdin: true}); err != nil {
		t.Fatalf("Create: %v", err)
	}
	track(t, rt, id)
	if err := rt.Start(ctx(t), id); err != nil {
		t.Fatalf("Start: %v", err)
	}
	waitFor(t, rt, id, "running", func(st backend.State) bool { return st.Status == backend.Running })
	var want string
	for _, line := range []string{"first\n", "second\n"} {
		// A client whose input ends after one line, and who detaches once it is echoed: the
		// container's input goes on.
		actx, detach := context.WithCancel(ctx(t))
		done := make(chan error, 1)
		go func() {
			done <- rt.Attach(actx, id, backend.IO{Stdin: strings.NewReader(line), Stdout: io.Discard})
		}()
		want += line
		for deadline := time.Now().Add(time.Minute); readFile(t, stdout) != want; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("the log holds %q, want %q", readFile(t, stdout), want)
			}
		}
		detach()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Attach after detaching: %v, want context.Canceled", err)
		}
	}
	if st, err := rt.State(ctx(t), id); err != nil || st.Status != backend.Running {
		t.Fatalf("after the clients' input ended: %+v, %v; want running", st, err)
	}
	// A client attached when the container is killed: its Attach returns.
	done := make(chan error, 1)
	go func() { done <- rt.Attach(ctx(t), id, backend.IO{Stdout: io.Discard}) }()
	time.Sleep(100 * time.Millisecond)
	if err := rt.Kill(ctx(t), id, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	testutil.Await(t, done, time.Minute, "Attach when the container was killed", func(err error) bool { return err == nil })
	waitFor(t, rt, id, "stopped", func(st backend.State) bool { return st.Status == backend.Stopped && st.ExitCode != -1 })
	if err := rt.Attach(ctx(t), id, backend.IO{Stdout: io.Discard}); !errors.Is(err, backend.ErrNotRunning) {
		t.Errorf("Attach to an exited container: %v, want ErrNotRunning", err)
	}
	for _, bad := range []backend.IO{{OpenStdin: true, Stdin: strings.NewReader("x")}, {OpenStdin: true, Terminal: &backend.Terminal{}}} {
		if err := rt.Create(ctx(t), id+"x", s.bundle(t, []string{"cat"}), bad); err == nil {
			track(t, rt, id+"x")
			t.Errorf("Create with %+v: no error", bad)
		}
	}
}

// terminalMismatch: a process that asks for a terminal without IO having one, or the
// reverse, is refused before anything runs.
func (s *suite) terminalMismatch(t *testing.T, rt backend.Runtime) {
	tty := &backend.Terminal{}
	plain, withTTY := s.bundle(t, []string{"exit", "0"}), s.terminalBundle(t, "ttyinfo")
	if _, err := rt.Run(ctx(t), id(t, "a"), plain, backend.IO{Terminal: tty}); err == nil || !strings.Contains(err.Error(), "terminal") {
		t.Errorf("Run with a terminal of a process without one: %v", err)
	}
	if _, err := rt.Run(ctx(t), id(t, "b"), withTTY, backend.IO{}); err == nil || !strings.Contains(err.Error(), "terminal") {
		t.Errorf("Run without a terminal of a process with one: %v", err)
	}
	if err := rt.Create(ctx(t), id(t, "c"), withTTY, backend.IO{}); err == nil || !strings.Contains(err.Error(), "terminal") {
		t.Errorf("Create without a terminal of a process with one: %v", err)
	}
	if err := rt.Create(ctx(t), id(t, "d"), withTTY, backend.IO{Stdin: os.Stdin, Terminal: tty}); err == nil {
		t.Errorf("Create with a terminal and stdin: no error")
	}
	id := s.startWaiting(t, rt, "")
	if _, err := rt.Exec(ctx(t), id, execProcess(t, rt, id, "ttyinfo"), backend.IO{Terminal: tty}); err == nil || !strings.Contains(err.Error(), "terminal") {
		t.Errorf("Exec with a terminal of a process without one: %v", err)
	}
}
