package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/moatsec/moat/internal/image"
	"github.com/moatsec/moat/internal/runtime/backend"
	"github.com/moatsec/moat/internal/runtime/spec"
)

// ErrNotRunning is returned by Exec and Kill for a container that is not running.
var ErrNotRunning = backend.ErrNotRunning

// Start runs img detached: the container outlives this process, its standard output and error
// go to its log (see Logs), and its standard input is empty — or, with a terminal, a terminal
// nobody types into. It returns once the container's process has started.
func (e *Engine) Start(ctx context.Context, img *image.Image, o RunOptions) (*Container, error) {
	release, err := e.joinNetwork(ctx, &o)
	if err != nil {
		return nil, err
	}
	defer release()
	cr, err := e.create(ctx, img, o, true, nil)
	if err != nil {
		return nil, err
	}
	c, rt := cr.c, cr.rt
	fail := func(err error) (*Container, error) {
		if derr := rt.Delete(context.WithoutCancel(ctx), c.ID, true); derr != nil && !errors.Is(derr, backend.ErrNotFound) {
			e.log.Warn("deleting a container that failed to start", "container", c.Name, "error", derr)
		}
		e.discard(c, -1)
		return nil, err
	}
	log, err := openLog(c)
	if err != nil {
		return fail(err)
	}
	defer log.Close()
	bio := backend.IO{Stdout: log, Stderr: log}
	if o.Remove {
		bio.ExitCommand = e.autoRemoveCommand(c)
	}
	if o.IO.Terminal != nil {
		// Nobody types into a detached container's terminal, and nobody resizes it.
		bio.Terminal = &backend.Terminal{Size: o.IO.Terminal.Size}
	} else if c.Stdin {
		bio.OpenStdin = true
	}
	if err := rt.Create(ctx, c.ID, c.Dir, bio); err != nil {
		return fail(fmt.Errorf("creating %s with %s: %w", c.Name, rt.Name(), err))
	}
	e.log.Info("starting container", "container", c.Name, "id", c.ID, "image", img.Name, "digest", img.Digest, "level", c.Level, "runtime", rt.Name())
	if err := rt.Start(ctx, c.ID); err != nil {
		return fail(fmt.Errorf("starting %s with %s: %w", c.Name, rt.Name(), err))
	}
	c.Status, c.Started, c.Owner = StatusRunning, time.Now().UTC(), nil
	if st, err := rt.State(ctx, c.ID); err == nil {
		c.Pid = st.Pid
	}
	if err := e.save(c); err != nil {
		return c, fmt.Errorf("recording container %s (it runs; moat stop/rm will find it): %w", c.Name, err)
	}
	return c, nil
}

// openLog opens (creating) c's log for appending.
func openLog(c *Container) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(c.LogPath()), 0o700); err != nil {
		return nil, fmt.Errorf("creating the container's data directory: %w", err)
	}
	f, err := os.OpenFile(c.LogPath(), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening the container's log: %w", err)
	}
	return f, nil
}

// tee writes to w (when set) and to log.
func tee(w io.Writer, log *os.File) io.Writer {
	if w == nil {
		return log
	}
	return io.MultiWriter(w, log)
}

// running looks ref up and checks with its runtime that it runs.
func (e *Engine) running(ctx context.Context, ref string) (*Container, backend.Runtime, error) {
	c, err := e.Inspect(ctx, ref)
	if err != nil {
		return nil, nil, err
	}
	if c.Status != StatusRunning {
		return c, nil, fmt.Errorf("%s: %w (it is %s)", c.Name, ErrNotRunning, c.Status)
	}
	rt, err := e.runtimeNamed(c.Runtime)
	return c, rt, err
}

// Kill sends sig to the container's init process.
func (e *Engine) Kill(ctx context.Context, ref string, sig syscall.Signal) error {
	c, rt, err := e.running(ctx, ref)
	if err != nil {
		return err
	}
	if err := rt.Kill(ctx, c.ID, sig); err != nil {
		return fmt.Errorf("signalling %s: %w", c.Name, err)
	}
	return nil
}

// Stop sends the container its stop signal (the image's, else SIGTERM), waits up to timeout
// for it to exit, then kills it. Stopping a container that is not running does nothing.
func (e *Engine) Stop(ctx context.Context, ref string, timeout time.Duration) error {
	c, rt, err := e.running(ctx, ref)
	if errors.Is(err, ErrNotRunning) {
		return nil
	}
	if err != nil {
		return err
	}
	sig := syscall.SIGTERM
	if c.StopSignal != "" {
		if s, err := ParseSignal(c.StopSignal); err == nil {
			sig = s
		} else {
			e.log.Warn("the image's stop signal is not understood; sending SIGTERM", "container", c.Name, "signal", c.StopSignal)
		}
	}
	if err := rt.Kill(ctx, c.ID, sig); err == nil && e.waitStopped(ctx, c, rt, timeout) {
		return e.refresh(ctx, c)
	}
	if err := rt.Kill(ctx, c.ID, syscall.SIGKILL); err != nil {
		if st, serr := rt.State(ctx, c.ID); serr == nil && st.Status == backend.Stopped {
			return e.refresh(ctx, c)
		}
		return fmt.Errorf("killing %s: %w", c.Name, err)
	}
	if !e.waitStopped(ctx, c, rt, 10*time.Second) {
		return fmt.Errorf("%s did not stop within 10s of SIGKILL", c.Name)
	}
	return e.refresh(ctx, c)
}

// waitStopped polls the runtime until c has stopped or d has passed.
func (e *Engine) waitStopped(ctx context.Context, c *Container, rt backend.Runtime, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for wait := 5 * time.Millisecond; ; wait = min(wait*2, 100*time.Millisecond) {
		st, err := rt.State(ctx, c.ID)
		if errors.Is(err, backend.ErrNotFound) || err == nil && st.Status == backend.Stopped {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(wait)
	}
}

// Remove removes a container: its runtime state and cgroups, its root filesystem mount,
// writable layer, bundle and log, and its record. A running container is refused unless
// force is set, in which case it is killed first.
func (e *Engine) Remove(ctx context.Context, ref string, force bool) error {
	c, err := e.Inspect(ctx, ref)
	if err != nil {
		return err
	}
	return e.remove(ctx, c, force)
}

func (e *Engine) remove(ctx context.Context, c *Container, force bool) error {
	if c.Status != StatusExited && !force {
		return fmt.Errorf("container %s is %s: stop it first (moat stop %s) or remove it with --force", c.Name, c.Status, c.Name)
	}
	rt, err := e.runtimeNamed(c.Runtime)
	if err != nil {
		return err
	}
	if err := rt.Delete(ctx, c.ID, force); err != nil && !errors.Is(err, backend.ErrNotFound) {
		return fmt.Errorf("removing %s: %w", c.Name, err)
	}
	if err := e.removeFiles(c); err != nil {
		return fmt.Errorf("removing %s: %w", c.Name, err)
	}
	return e.forget(c)
}

// ExecOptions describe a process to run in a running container.
type ExecOptions struct {
	spec.ExecOptions
	IO backend.IO
}

// Exec runs a process in the running container ref, in the foreground, confined exactly as
// the container's own process is (its capabilities, seccomp profile, no_new_privs, limits and
// namespaces), and returns its exit code.
func (e *Engine) Exec(ctx context.Context, ref string, o ExecOptions) (int, error) {
	c, rt, err := e.running(ctx, ref)
	if err != nil {
		return -1, err
	}
	b, err := backend.ReadSpec(c.Dir)
	if err != nil {
		return -1, fmt.Errorf("%s: %w", c.Name, err)
	}
	var s specs.Spec
	if err := json.Unmarshal(b, &s); err != nil || s.Process == nil {
		return -1, fmt.Errorf("reading %s's runtime spec: %v", c.Name, err)
	}
	p, err := spec.ExecProcess(*s.Process, filepath.Join(c.Dir, "rootfs"), c.IDMap, o.ExecOptions)
	if err != nil {
		return -1, err
	}
	code, err := rt.Exec(ctx, c.ID, p, o.IO)
	if err != nil {
		return -1, fmt.Errorf("exec in %s: %w", c.Name, err)
	}
	return code, nil
}

// Attach connects io to the terminal of a running detached container started with one
// (`moat run -dt`): the terminal's output from now on goes to io.Stdout, io.Stdin is typed
// into it and io.Terminal's sizes resize it. It returns the container's exit code once it
// has ended (-1 when it is not known: a --rm container removed at once), or -1 and ctx's
// error when ctx ends first: the container goes on running.
func (e *Engine) Attach(ctx context.Context, ref string, io backend.IO) (int, error) {
	c, rt, err := e.running(ctx, ref)
	if err != nil {
		return -1, err
	}
	if !c.Detached || !c.Terminal && !c.Stdin {
		how := "moat logs -f shows its output"
		if !c.Detached {
			how = "it runs in the foreground, attached to the terminal that started it"
		}
		return -1, fmt.Errorf("%s has no terminal or open standard input to attach to (only containers started with -dt or -di have one): %s", c.Name, how)
	}
	if c.Terminal {
		if err := rt.Attach(ctx, c.ID, io); err != nil {
			return -1, fmt.Errorf("attaching to %s: %w", c.Name, err)
		}
	} else if err := e.attachStdin(ctx, c, rt, io); err != nil {
		return -1, err
	}
	// The shim records the exit code just after the output ends.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		got, err := e.Inspect(ctx, c.ID)
		if errors.Is(err, ErrNotFound) {
			return -1, nil
		}
		if err != nil {
			return -1, err
		}
		if got.Status == StatusExited || time.Now().After(deadline) {
			return got.ExitCode, nil
		}
	}
}

// attachStdin attaches to a container started with an open standard input and no terminal:
// io.Stdin goes to the container through its shim, and its output (standard output and
// error, as its log has them) from now on is copied to io.Stdout until it ends.
func (e *Engine) attachStdin(ctx context.Context, c *Container, rt backend.Runtime, stdio backend.IO) error {
	out := stdio.Stdout
	if out == nil {
		out = io.Discard
	}
	// The log's end is found before any input is sent, so that no output it causes is missed.
	f, err := os.Open(c.LogPath())
	if err != nil {
		return fmt.Errorf("opening %s's log: %w", c.Name, err)
	}
	defer f.Close()
	if _, err := f.Seek(0, io.SeekEnd); err != nil {
		return fmt.Errorf("reading %s's log: %w", c.Name, err)
	}
	lctx, stopLogs := context.WithCancel(ctx)
	defer stopLogs()
	logged := make(chan error, 1)
	go func() { logged <- e.follow(lctx, c, f, out, true) }()
	if err := rt.Attach(ctx, c.ID, backend.IO{Stdin: stdio.Stdin, Stdout: io.Discard}); err != nil {
		stopLogs()
		<-logged
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		return fmt.Errorf("attaching to %s: %w", c.Name, err)
	}
	// The container has ended: following its log ends with what it wrote last.
	if err := <-logged; err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	return nil
}

// LogOptions choose what Logs writes.
type LogOptions struct {
	// Follow keeps writing what the container writes until it exits or ctx ends.
	Follow bool
	// Tail, when positive, starts with the last Tail lines instead of the whole log.
	Tail int
}

// Logs writes the container's output (standard output and error, interleaved as written) to w.
func (e *Engine) Logs(ctx context.Context, ref string, w io.Writer, o LogOptions) error {
	c, err := e.Inspect(ctx, ref)
	if err != nil {
		return err
	}
	f, err := os.Open(c.LogPath())
	if errors.Is(err, os.ErrNotExist) {
		if c.AutoRemove && !c.Detached {
			return fmt.Errorf("%s keeps no log: it runs in the foreground with --rm", c.Name)
		}
		return nil // nothing written yet
	}
	if err != nil {
		return fmt.Errorf("opening %s's log: %w", c.Name, err)
	}
	defer f.Close()
	if o.Tail > 0 {
		if err := seekTail(f, o.Tail); err != nil {
			return fmt.Errorf("reading %s's log: %w", c.Name, err)
		}
	}
	return e.follow(ctx, c, f, w, o.Follow)
}

// follow copies f, c's log, to w from where it is; with more, then what the container
// writes until it has exited or ctx ends.
func (e *Engine) follow(ctx context.Context, c *Container, f *os.File, w io.Writer, more bool) error {
	for {
		if _, err := io.Copy(w, f); err != nil {
			return fmt.Errorf("reading %s's log: %w", c.Name, err)
		}
		if !more || c.Status == StatusExited {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(200 * time.Millisecond):
		}
		if err := e.refresh(ctx, c); err != nil {
			return err
		}
		// Once it has exited, one more copy takes what it wrote last.
	}
}

// seekTail positions f at the start of its last n lines.
func seekTail(f *os.File, n int) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	end := fi.Size()
	buf := make([]byte, 32<<10)
	lines := 0
	for pos := end; pos > 0; {
		size := min(int64(len(buf)), pos)
		pos -= size
		if _, err := f.ReadAt(buf[:size], pos); err != nil {
			return err
		}
		for i := size - 1; i >= 0; i-- {
			if buf[i] != '\n' || pos+i == end-1 {
				continue
			}
			if lines++; lines == n {
				_, err := f.Seek(pos+i+1, io.SeekStart)
				return err
			}
		}
	}
	_, err = f.Seek(0, io.SeekStart)
	return err
}

// ParseSignal reads a signal as Docker and images name it: SIGTERM, TERM or 15.
func ParseSignal(s string) (syscall.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n <= 0 || n > 64 {
			return 0, fmt.Errorf("signal %q is out of range", s)
		}
		return syscall.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	return 0, fmt.Errorf("unknown signal %q", s)
}
