package backend

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ociCLI drives a runtime with runc's command line (create, start, state, kill, delete, run),
// which runc, crun and runsc all share. Runc, Crun and Runsc differ only in the flags they
// give it and, for crun on a hybrid cgroup host, in the mount namespace it runs in.
//
// Layout of the caller's state directory:
//
//	root/             the runtime's --root: its own state, one entry per container
//	shared/           runsc's --shared-root: state shared between sandboxes (a pinned empty
//	                  network namespace), released by Runsc.Close
//	containers/ID/    the backend's own files for one container: pid (the runtime's
//	                  --pid-file), exit (the exit code the shim recorded), runtime.log (the
//	                  runtime's error log), shim.lock (held by the shim while it lives),
//	                  console.sock (the --console-socket of a container with a terminal,
//	                  while it is created)
//	containers/ID/exec-N/  one Exec's files while it runs: process.json, pid, internal-pid
//	                  (runsc), runtime.log, console.sock
type ociCLI struct {
	name   string
	binary string
	root   string
	ctrs   string
	log    *slog.Logger
	// global are the flags before the subcommand, for every command.
	global []string
	// createFlags are further global flags for create and run, chosen from the bundle.
	createFlags func(bundle string) ([]string, error)
	// logFlags send the runtime's own errors to path, nil when it has no such option.
	logFlags func(path string) []string
	// hideCgroup2 is a cgroup2 mount the runtime must not see (crun on a hybrid host), "" for
	// none: the runtime runs in a private mount namespace in which it is unmounted.
	hideCgroup2 string
	// execInSandbox says that exec'd processes live in a sandbox (runsc): they are signalled
	// through `kill --pid` with their pid in the sandbox, not by their host pid.
	execInSandbox bool
}

// grace is how long Run waits for a container sent SIGTERM (because its context ended) before
// killing it, and how long Delete waits for a detached container's shim to record its exit.
const grace = 10 * time.Second

func newCLI(name, dir string, o options) (*ociCLI, error) {
	if dir == "" {
		return nil, fmt.Errorf("%s: no state directory", name)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("%s: state directory %s: %w", name, dir, err)
	}
	c := &ociCLI{name: name, root: filepath.Join(abs, "root"), ctrs: filepath.Join(abs, "containers"), log: o.logger}
	for _, d := range []string{c.root, c.ctrs} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("%s: creating state directory: %w", name, err)
		}
	}
	return c, nil
}

// Name is the runtime's name.
func (c *ociCLI) Name() string { return c.name }

// ValidID reports whether s is usable as a container id or name: 1 to 128 ASCII letters,
// digits, '_', '.' and '-', starting with a letter or digit. It is a loop rather than a
// regular expression because the expression's bounded repetition took most of a
// millisecond to compile at every process start.
func ValidID(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '_' && c != '.' && c != '-') {
			return false
		}
	}
	return true
}

func (c *ociCLI) checkID(id string) error {
	if !ValidID(id) {
		return fmt.Errorf("%s: invalid container id %q: letters, digits, '_', '.' and '-', at most 128", c.name, id)
	}
	return nil
}

func (c *ociCLI) dirOf(id string) string { return filepath.Join(c.ctrs, id) }

// newContainerDir claims id: the directory's creation is what makes two Creates of one id
// collide.
func (c *ociCLI) newContainerDir(id string) (string, error) {
	if err := c.checkID(id); err != nil {
		return "", err
	}
	d := c.dirOf(id)
	if err := os.Mkdir(d, 0o700); err != nil {
		if errors.Is(err, os.ErrExist) {
			return "", fmt.Errorf("%s: %s: %w", c.name, id, ErrExists)
		}
		return "", fmt.Errorf("%s: creating container directory: %w", c.name, err)
	}
	return d, nil
}

// foregroundDir makes the directory of the runtime's pid file and log for a foreground run,
// which live only as long as the run: in the bundle, which moat keeps on a tmpfs, rather than
// in the state directory, whose filesystem may be committing its journal as the runtime
// exits (removing the pid file and directory there took 3 ms after runc run on ext4). A
// bundle that cannot hold it (read-only, say) falls back to the state directory.
func (c *ociCLI) foregroundDir(id, bundle string) (string, error) {
	if err := c.checkID(id); err != nil {
		return "", err
	}
	// A container created by this backend holds the id (the runtime would refuse it too).
	if _, err := os.Lstat(c.dirOf(id)); err == nil {
		return "", fmt.Errorf("%s: %s: %w", c.name, id, ErrExists)
	}
	d := filepath.Join(bundle, ".runtime-"+c.name+"-"+id)
	err := os.Mkdir(d, 0o700)
	switch {
	case err == nil:
		return d, nil
	case errors.Is(err, os.ErrExist):
		return "", fmt.Errorf("%s: %s: %w", c.name, id, ErrExists)
	}
	return c.newContainerDir(id)
}

// args is the runtime's command line for subcommand sub, with create flags when bundle is set.
func (c *ociCLI) args(bundle, logFile string, sub ...string) ([]string, error) {
	args := append([]string{}, c.global...)
	if bundle != "" && c.createFlags != nil {
		extra, err := c.createFlags(bundle)
		if err != nil {
			return nil, err
		}
		args = append(args, extra...)
	}
	if logFile != "" && c.logFlags != nil {
		args = append(args, c.logFlags(logFile)...)
	}
	return append(args, sub...), nil
}

// command runs a short runtime command and returns its standard output.
func (c *ociCLI) command(ctx context.Context, id string, sub ...string) ([]byte, error) {
	args, err := c.args("", "", sub...)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, c.binary, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	c.log.Debug("runtime command", "runtime", c.name, "args", args)
	err = startCommand(cmd, c.hideCgroup2)
	if err == nil {
		err = cmd.Wait()
	}
	if err != nil {
		return stdout.Bytes(), &RuntimeError{Runtime: c.name, Command: sub[0], ID: id, Message: runtimeMessage(stderr.Bytes()), Err: err}
	}
	return stdout.Bytes(), nil
}

// runtimeMessage turns what a runtime wrote about a failure (plain text, or runc's and
// crun's JSON log lines) into one line.
func runtimeMessage(b []byte) string {
	var msgs []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		var entry struct{ Level, Msg string }
		if json.Unmarshal([]byte(line), &entry) == nil && entry.Msg != "" {
			if entry.Level != "" && entry.Level != "error" && entry.Level != "fatal" {
				continue
			}
			line = entry.Msg
		}
		msgs = append(msgs, line)
	}
	return strings.Join(msgs, "; ")
}

// Run runs a container in the foreground: with the runtime's own run command, or with a
// terminal as create (through a foreground shim, see runTerminal) and start.
func (c *ociCLI) Run(ctx context.Context, id, bundle string, stdio IO) (int, error) {
	if err := c.checkID(id); err != nil {
		return -1, err
	}
	terminal, err := bundleTerminal(bundle)
	if err != nil {
		return -1, fmt.Errorf("%s run %s: %w", c.name, id, err)
	}
	if err := c.checkTerminal("run", id, terminal, stdio); err != nil {
		return -1, err
	}
	if terminal {
		return c.runTerminal(ctx, id, bundle, stdio)
	}
	r, err := c.startRun(id, bundle, stdio)
	if err != nil {
		return -1, err
	}
	return r.wait(ctx)
}

// foregroundRun is a runtime's run command started for a foreground container.
type foregroundRun struct {
	c                *ociCLI
	id               string
	dir              string // the runtime's pid file and log, removed by wait
	pidFile, logFile string
	cmd              *exec.Cmd
	done             chan struct{} // closed when cmd has exited and waitErr is set
	waitErr          error
}

// startRun starts the runtime's run command for container id in bundle.
func (c *ociCLI) startRun(id, bundle string, stdio IO) (*foregroundRun, error) {
	dir, err := c.foregroundDir(id, bundle)
	if err != nil {
		return nil, err
	}
	r := &foregroundRun{c: c, id: id, dir: dir, pidFile: filepath.Join(dir, "pid"), logFile: filepath.Join(dir, "runtime.log")}
	args, err := c.args(bundle, r.logFile, "run", "--bundle", bundle, "--pid-file", r.pidFile, id)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	r.cmd = exec.Command(c.binary, args...)
	r.cmd.Stdin, r.cmd.Stdout, r.cmd.Stderr = stdio.Stdin, stdio.Stdout, stdio.Stderr
	// Once the runtime has exited, copying to non-file writers stops after this long even if
	// something still holds the pipes.
	r.cmd.WaitDelay = grace
	c.log.Debug("runtime command", "runtime", c.name, "args", args)
	if err := startCommand(r.cmd, c.hideCgroup2); err != nil {
		os.RemoveAll(dir)
		return nil, &RuntimeError{Runtime: c.name, Command: "run", ID: id, Err: err}
	}
	r.done = make(chan struct{})
	go func() {
		r.waitErr = r.cmd.Wait()
		close(r.done)
	}()
	return r, nil
}

// wait waits for the run to end and returns the container's exit code. When ctx ends first
// the container is sent SIGTERM, killed after grace, and deleted.
func (r *foregroundRun) wait(ctx context.Context) (int, error) {
	c, id := r.c, r.id
	defer os.RemoveAll(r.dir)
	select {
	case <-r.done:
	case <-ctx.Done():
		// The runtime forwards SIGTERM to the container; a container that ignores it is killed.
		r.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-r.done:
		case <-time.After(grace):
			kctx, cancel := context.WithTimeout(context.Background(), grace)
			c.command(kctx, id, "kill", id, "SIGKILL")
			cancel()
			r.cmd.Process.Kill()
			<-r.done
		}
		c.forceDelete(id)
		return -1, fmt.Errorf("%s run %s: %w", c.name, id, ctx.Err())
	}
	code, err := 0, r.waitErr
	if err != nil {
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() < 0 {
			c.forceDelete(id)
			return -1, &RuntimeError{Runtime: c.name, Command: "run", ID: id, Err: err}
		}
		code = exit.ExitCode()
	}
	if _, statErr := os.Stat(r.pidFile); statErr != nil {
		// No pid file: the runtime failed before the container existed, and the exit code is
		// its own, not the container's.
		msg, _ := os.ReadFile(r.logFile)
		m := runtimeMessage(msg)
		if m == "" {
			m = "the runtime's message is on the container's stderr"
		}
		if err == nil {
			err = errors.New("exited before creating the container")
		}
		return -1, &RuntimeError{Runtime: c.name, Command: "run", ID: id, Message: m, Err: err}
	}
	return code, nil
}

// runTerminal runs a container with a terminal in the foreground. The runtime's run command
// would copy the terminal to its own stdio (runc refuses --console-socket with it), so the
// container is created through a foreground shim, which is its parent and reports its exit
// code, with --console-socket; the terminal is received and sized, and then the container is
// started, so that its process sees the size from the start.
func (c *ociCLI) runTerminal(ctx context.Context, id, bundle string, stdio IO) (int, error) {
	dir, err := c.newContainerDir(id)
	if err != nil {
		return -1, err
	}
	defer os.RemoveAll(dir)
	con, err := listenConsole(dir)
	if err != nil {
		return -1, fmt.Errorf("%s run %s: %w", c.name, id, err)
	}
	defer con.Close()
	pidFile, logFile := filepath.Join(dir, "pid"), filepath.Join(dir, "runtime.log")
	args, err := c.args(bundle, logFile, "create", "--bundle", bundle, "--pid-file", pidFile, "--console-socket", con.addr, id)
	if err != nil {
		return -1, err
	}
	cfg := shimConfig{Argv: append([]string{c.binary}, args...), PidFile: pidFile, HideCgroup2: c.hideCgroup2, Foreground: true}
	c.log.Debug("runtime command", "runtime", c.name, "args", args, "shim", "foreground")
	// The start is not cut short by ctx: the process may already run when runtime's start
	// command is killed, and would then be hung up on with its last output lost. A context
	// that ends meanwhile stops the started process as it would at any later time.
	start := func() error {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
		defer cancel()
		return c.Start(sctx, id)
	}
	stop := func(s *shimProc, sig syscall.Signal) {
		// The container's init, through the runtime as for Kill; the shim kills what it
		// holds (the init, or gVisor's sandbox) once hung up on.
		kctx, cancel := context.WithTimeout(context.Background(), grace)
		_, err := c.command(kctx, id, "kill", id, unix.SignalName(sig))
		cancel()
		if err != nil || sig == syscall.SIGKILL {
			// Not created yet, or gone: the shim kills whatever it holds.
			s.hangUp()
		}
	}
	code, err := c.foreground(ctx, "run", id, cfg, stdio, con, logFile, start, stop)
	c.forceDelete(id)
	return code, err
}

// foreground runs a process held by a foreground shim: the shim runs cfg's runtime command
// (create for Run, exec for Exec) and reports the pid; the terminal, when con is set, is
// received and its copying started; start, when set, is called (Run's start); then the
// process's exit code is waited for. When ctx ends first, stop is asked to send the process
// SIGTERM, then SIGKILL after grace, and the error is ctx's. Whatever happens the shim is
// hung up on before this returns, so the process does not outlive it.
func (c *ociCLI) foreground(ctx context.Context, op, id string, cfg shimConfig, stdio IO, con *consoleSocket, logFile string, start func() error, stop func(*shimProc, syscall.Signal)) (int, error) {
	stdin, stdout := stdio.Stdin, stdio.Stdout
	var rcv *consoleReceiver
	if con != nil {
		stdin, stdout = nil, nil // they go through the terminal
		var err error
		if rcv, err = receiveConsole(con.ln, stdio.Terminal.Size); err != nil {
			return -1, fmt.Errorf("%s %s %s: %w", c.name, op, id, err)
		}
	}
	s, err := spawnShim(cfg, stdin, stdout, stdio.Stderr)
	if err != nil {
		rcv.abort()
		return -1, fmt.Errorf("%s %s %s: %w", c.name, op, id, err)
	}
	defer s.close()
	if _, msg, err := s.started(ctx); err != nil {
		rcv.abort()
		if ctx.Err() != nil {
			s.cancel(func(sig syscall.Signal) { stop(s, sig) })
			return -1, fmt.Errorf("%s %s %s: %w", c.name, op, id, err)
		}
		return -1, c.shimFailure(op, id, logFile, msg, err)
	}
	var pty *ptySession
	if rcv != nil {
		master, err := rcv.wait(grace)
		con.Close()
		if err != nil {
			return -1, fmt.Errorf("%s %s %s: %w", c.name, op, id, err)
		}
		pty = startPTY(master, stdio)
	}
	if start != nil {
		if err := start(); err != nil {
			pty.finish(0)
			if ctx.Err() != nil {
				err = fmt.Errorf("%s %s %s: %w", c.name, op, id, ctx.Err())
			}
			return -1, err
		}
	}
	code, err := s.exitCode(ctx, func(sig syscall.Signal) { stop(s, sig) })
	// The process has ended (or is being killed): its output is read to the end.
	pty.finish(grace)
	if err != nil {
		return -1, fmt.Errorf("%s %s %s: %w", c.name, op, id, err)
	}
	return code, nil
}

// shimFailure is the error of a runtime command a shim ran that failed: the runtime's own
// message from its log file, else what the shim reported.
func (c *ociCLI) shimFailure(op, id, logFile, rep string, err error) error {
	msg, _ := os.ReadFile(logFile)
	if m := runtimeMessage(msg); m != "" {
		rep = m
	} else if rep == "" || strings.HasPrefix(rep, "exit status") {
		rep = "the runtime's message is on the stderr given to it"
	}
	return &RuntimeError{Runtime: c.name, Command: op, ID: id, Message: rep, Err: err}
}

// bundleTerminal reads whether the bundle's process asks for a terminal.
func bundleTerminal(bundle string) (bool, error) {
	spec, err := readBundle(bundle)
	if err != nil {
		return false, err
	}
	return spec.Process != nil && spec.Process.Terminal, nil
}

// bundleSpec is what the backend reads of a bundle's config.json.
type bundleSpec struct {
	Process *struct {
		Terminal bool `json:"terminal"`
	} `json:"process"`
	Linux *struct {
		CgroupsPath string `json:"cgroupsPath"`
	} `json:"linux"`
}

func readBundle(bundle string) (bundleSpec, error) {
	var spec bundleSpec
	b, err := ReadSpec(bundle)
	if err != nil {
		return spec, err
	}
	if err := json.Unmarshal(b, &spec); err != nil {
		return spec, fmt.Errorf("decoding %s/config.json: %w", bundle, err)
	}
	return spec, nil
}

// cgroupFile records, in a detached container's backend directory, the cgroup path its spec
// named, so that Delete can remove the cgroups of a container the runtime has lost.
const cgroupFile = "cgroup"

// recordCgroup writes the bundle's cgroup path to dir, when it names a plain path.
func recordCgroup(dir, bundle string) error {
	spec, err := readBundle(bundle)
	if err != nil || spec.Linux == nil || !strings.HasPrefix(spec.Linux.CgroupsPath, "/") {
		return err
	}
	return os.WriteFile(filepath.Join(dir, cgroupFile), []byte(spec.Linux.CgroupsPath), 0o600)
}

// removeLostCgroups removes the cgroups of a container the runtime no longer knows, in every
// hierarchy, from the path recordCgroup kept. Its processes have ended, so the cgroups are
// empty; one that is not (ENOTEMPTY, EBUSY) is an error naming it.
func removeLostCgroups(dir string) error {
	b, err := os.ReadFile(filepath.Join(dir, cgroupFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	p := filepath.Clean(string(b))
	if !filepath.IsAbs(p) || p == "/" || strings.Contains(string(b), "..") {
		return fmt.Errorf("recorded cgroup path %q is not a container's", b)
	}
	paths, _ := filepath.Glob(filepath.Join(cgroupRoot, "*") + p)
	paths = append(paths, filepath.Join(cgroupRoot, p))
	var errs []error
	for _, d := range paths {
		if err := os.Remove(d); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("removing cgroup %s: %w", d, err))
		}
	}
	return errors.Join(errs...)
}

// checkTerminal refuses a process whose spec and IO disagree about a terminal.
func (c *ociCLI) checkTerminal(op, id string, spec bool, stdio IO) error {
	switch {
	case spec && stdio.Terminal == nil:
		return fmt.Errorf("%s %s %s: the process asks for a terminal (process.terminal) but IO has none", c.name, op, id)
	case !spec && stdio.Terminal != nil:
		return fmt.Errorf("%s %s %s: IO has a terminal but the process does not ask for one: set process.terminal", c.name, op, id)
	}
	return nil
}

// forceDelete removes what is left of a container after a failure, best effort.
func (c *ociCLI) forceDelete(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	c.command(ctx, id, "delete", "--force", id)
}

// stdioFiles returns the files a detached container gets as its stdio: the caller's files,
// and /dev/null for the nil ones.
func stdioFiles(stdio IO) ([3]*os.File, func(), error) {
	var files [3]*os.File
	var opened []*os.File
	closeAll := func() {
		for _, f := range opened {
			f.Close()
		}
	}
	for i, s := range []any{stdio.Stdin, stdio.Stdout, stdio.Stderr} {
		switch f := s.(type) {
		case *os.File:
			if f == nil {
				return files, closeAll, errors.New("nil *os.File in IO")
			}
			files[i] = f
		case nil:
			flag := os.O_WRONLY
			if i == 0 {
				flag = os.O_RDONLY
			}
			null, err := os.OpenFile(os.DevNull, flag, 0)
			if err != nil {
				closeAll()
				return files, func() {}, err
			}
			opened = append(opened, null)
			files[i] = null
		default:
			closeAll()
			return files, func() {}, fmt.Errorf("a detached container's stdio must be files (or nil), not %T", s)
		}
	}
	return files, closeAll, nil
}

// Create creates a detached container through a shim (see shim.go). With a terminal the
// shim also receives the terminal and copies its output to the Stdout file.
func (c *ociCLI) Create(ctx context.Context, id, bundle string, stdio IO) (err error) {
	if t := stdio.Terminal; t != nil && (stdio.Stdin != nil || t.Resize != nil) {
		return fmt.Errorf("%s create %s: a detached container's terminal takes no Stdin and no Resize", c.name, id)
	}
	if stdio.OpenStdin && (stdio.Terminal != nil || stdio.Stdin != nil) {
		return fmt.Errorf("%s create %s: OpenStdin is for a container without a terminal, and takes no Stdin", c.name, id)
	}
	files, closeFiles, err := stdioFiles(stdio)
	if err != nil {
		return fmt.Errorf("%s create %s: %w", c.name, id, err)
	}
	defer closeFiles()
	var stdinW *os.File
	if stdio.OpenStdin {
		r, w, err := os.Pipe()
		if err != nil {
			return fmt.Errorf("%s create %s: %w", c.name, id, err)
		}
		// The container and the shim get their own descriptors; these go when Create returns.
		defer r.Close()
		defer w.Close()
		files[0], stdinW = r, w
	}
	dir, err := c.newContainerDir(id)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
		}
	}()
	terminal, err := bundleTerminal(bundle)
	if err != nil {
		return fmt.Errorf("%s create %s: %w", c.name, id, err)
	}
	if err := c.checkTerminal("create", id, terminal, stdio); err != nil {
		return err
	}
	if err := recordCgroup(dir, bundle); err != nil {
		return fmt.Errorf("%s create %s: %w", c.name, id, err)
	}
	cfg := shimConfig{
		PidFile:     filepath.Join(dir, "pid"),
		ExitFile:    filepath.Join(dir, "exit"),
		LockFile:    filepath.Join(dir, "shim.lock"),
		HideCgroup2: c.hideCgroup2,
		ExitCommand: stdio.ExitCommand,
	}
	logFile := filepath.Join(dir, "runtime.log")
	sub := []string{"create", "--bundle", bundle, "--pid-file", cfg.PidFile}
	var extra []*os.File
	if terminal {
		con, err := listenConsole(dir)
		if err != nil {
			return fmt.Errorf("%s create %s: %w", c.name, id, err)
		}
		// The shim has its own descriptor of the socket; the caller's goes when Create returns.
		defer con.Close()
		sub = append(sub, "--console-socket", con.addr)
		cfg.Console, cfg.Size = true, stdio.Terminal.Size
		extra = append(extra, con.ln)
	}
	if terminal || stdinW != nil {
		// The attach socket outlives Create: the shim serves it, and removes it.
		att, err := listenSocket(dir, attachName)
		if err != nil {
			return fmt.Errorf("%s create %s: %w", c.name, id, err)
		}
		defer func() {
			att.ln.Close()
			if att.dir != nil {
				att.dir.Close()
			}
		}()
		cfg.Attach = att.path
		extra = append(extra, att.ln)
	}
	if stdinW != nil {
		cfg.StdinPipe = true
		extra = append(extra, stdinW)
	}
	args, err := c.args(bundle, logFile, append(sub, id)...)
	if err != nil {
		return err
	}
	cfg.Argv = append([]string{c.binary}, args...)
	c.log.Debug("runtime command", "runtime", c.name, "args", args, "shim", true)
	rep, err := startShim(ctx, cfg, files, extra...)
	if err != nil {
		c.forceDelete(id)
		return c.shimFailure("create", id, logFile, rep, err)
	}
	return nil
}

// Start starts a created container.
func (c *ociCLI) Start(ctx context.Context, id string) error {
	if err := c.checkID(id); err != nil {
		return err
	}
	_, err := c.command(ctx, id, "start", id)
	return err
}

// Kill sends sig to the container's init process.
func (c *ociCLI) Kill(ctx context.Context, id string, sig syscall.Signal) error {
	if err := c.checkID(id); err != nil {
		return err
	}
	name := unix.SignalName(sig)
	if name == "" {
		return fmt.Errorf("%s kill %s: unknown signal %d", c.name, id, int(sig))
	}
	_, err := c.command(ctx, id, "kill", id, name)
	return err
}

// State asks the runtime, and the shim's exit file once the container has stopped.
func (c *ociCLI) State(ctx context.Context, id string) (State, error) {
	st, _, err := c.state(ctx, id)
	return st, err
}

// state also says whether the runtime still knows the container.
func (c *ociCLI) state(ctx context.Context, id string) (State, bool, error) {
	if err := c.checkID(id); err != nil {
		return State{}, false, err
	}
	dir := c.dirOf(id)
	out, err := c.command(ctx, id, "state", id)
	if err != nil {
		if ctx.Err() != nil {
			return State{}, false, err
		}
		if _, statErr := os.Stat(dir); statErr != nil {
			return State{}, false, fmt.Errorf("%s state %s: %w", c.name, id, ErrNotFound)
		}
		// The backend created it and the runtime has lost it: it is not running.
		return State{ID: id, Status: Stopped, ExitCode: c.exitCode(ctx, dir)}, false, nil
	}
	var raw struct {
		ID     string `json:"id"`
		Status string `json:"status"`
		Pid    int    `json:"pid"`
		Bundle string `json:"bundle"`
	}
	if err := json.Unmarshal(out, &raw); err != nil {
		return State{}, true, fmt.Errorf("%s state %s: decoding %q: %w", c.name, id, out, err)
	}
	st := State{ID: id, Status: Status(raw.Status), Pid: raw.Pid, Bundle: raw.Bundle, ExitCode: -1}
	if st.Status == Stopped {
		st.Pid = 0
		st.ExitCode = c.exitCode(ctx, dir)
	}
	return st, true, nil
}

// exitCode is the exit code of a stopped container. The runtime reports it stopped as soon
// as its process has died, which may be before the shim, which reaps it, has written the
// exit file: while a shim still holds the container, this waits for it (at most grace).
func (c *ociCLI) exitCode(ctx context.Context, dir string) int {
	if code := readExit(dir); code >= 0 {
		return code
	}
	if err := waitShim(ctx, filepath.Join(dir, "shim.lock")); err != nil {
		c.log.Debug("waiting for a shim to record an exit code", "dir", dir, "error", err)
	}
	return readExit(dir)
}

// readExit reads the exit code the shim recorded, -1 when there is none.
func readExit(dir string) int {
	b, err := os.ReadFile(filepath.Join(dir, "exit"))
	if err != nil {
		return -1
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return -1
	}
	return n
}

// Delete deletes the container from the runtime, waits for its shim to finish and removes
// the backend's files.
func (c *ociCLI) Delete(ctx context.Context, id string, force bool) error {
	st, known, err := c.state(ctx, id)
	if err != nil {
		return err
	}
	if !force && (st.Status == Running || st.Status == Paused) {
		return fmt.Errorf("%s delete %s: %w (stop it first, or force)", c.name, id, ErrRunning)
	}
	if known {
		sub := []string{"delete", id}
		if force {
			sub = []string{"delete", "--force", id}
		}
		if _, err := c.command(ctx, id, sub...); err != nil {
			return err
		}
	}
	dir := c.dirOf(id)
	if err := waitShim(ctx, filepath.Join(dir, "shim.lock")); err != nil {
		return fmt.Errorf("%s delete %s: %w", c.name, id, err)
	}
	if !known {
		// The runtime's delete would have removed the cgroups; it has lost the container.
		if err := removeLostCgroups(dir); err != nil {
			return fmt.Errorf("%s delete %s: %w", c.name, id, err)
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("%s delete %s: %w", c.name, id, err)
	}
	return nil
}

// waitShim waits until no shim holds the lock file, that is until the shim has recorded the
// exit code and ended. A missing lock file means there is no shim.
func waitShim(ctx context.Context, lockFile string) error {
	f, err := os.Open(lockFile)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	defer f.Close()
	deadline := time.Now().Add(grace)
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB)
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			return fmt.Errorf("waiting for the shim: %w", err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the shim did not end within %s", grace)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}
