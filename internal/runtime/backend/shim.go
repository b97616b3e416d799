package backend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The shim holds a container, or a process exec'd in one, on behalf of the caller. It is the
// calling program started again through /proc/self/exe with argv[0] set to shimArg0 and its
// configuration as JSON in argv[1], in a session of its own so that the terminal's signals
// do not reach it. It
//
//  1. becomes a child subreaper, so that the process the runtime starts (the container's
//     init, or the exec'd process), orphaned when the runtime's command exits, is reparented
//     to it;
//  2. runs the runtime's command (create, or exec --detach) with its own stdio, and, when
//     detached, takes a shared lock on shim.lock for as long as it lives;
//  3. for a detached container with a terminal, receives the terminal's master end on the
//     console socket it was given as file descriptor 4 and sets the terminal's size;
//  4. reports {"pid": N} or {"error": "..."} on file descriptor 3, a unix socket, then
//     drops its stdio, so it holds no log file or pipe open (but the log a terminal's output
//     is copied to);
//  5. waits for the process to end: a detached shim writes its exit code (128+N for signal N)
//     to the exit file once the terminal's output, if any, has been copied to its end; a
//     foreground shim reports {"exit": N} on descriptor 3. Then it reaps the runtime's other
//     children (gVisor's gofer and sandbox) and exits.
//
// A detached shim closes descriptor 3 after its first report. A foreground shim keeps it and
// reads requests from the caller on it, {"signal": N}, which it sends to the process; when
// the caller hangs up (shuts down or closes its end, or dies) it kills the process. Requests
// sent before the process has started wait in the socket. The shim signals the process by
// pid, which is safe because the process is its child and is reaped only once no signal can
// be sent any more; for runsc, whose exec'd process lives in the sandbox, it signals through
// the runtime's kill --pid instead.
//
// Runtime commands see no difference: start, kill, state and delete go to the runtime as for
// any container. Delete waits for the shim's lock before it removes the container's files.
const shimArg0 = "moat-runtime-shim"

type shimConfig struct {
	Argv        []string `json:"argv"`
	PidFile     string   `json:"pidFile"`
	ExitFile    string   `json:"exitFile,omitempty"`
	LockFile    string   `json:"lockFile,omitempty"`
	HideCgroup2 string   `json:"hideCgroup2,omitempty"`
	// Console says that descriptor 4 is the console socket the runtime sends the terminal
	// to (detached only); Size is the terminal's initial size.
	Console bool    `json:"console,omitempty"`
	Size    WinSize `json:"size,omitzero"`
	// Attach is the path of the attach socket (attach.go), listening on the next
	// descriptor, which the shim serves while the container runs and removes after.
	Attach string `json:"attach,omitempty"`
	// StdinPipe says that the next descriptor is the write end of the container's stdin
	// pipe (IO.OpenStdin), which attached clients' input goes to.
	StdinPipe bool `json:"stdinPipe,omitempty"`
	// Foreground reports the exit code on descriptor 3 instead of in the exit file, takes
	// signal requests on it, and kills the process when the caller hangs up.
	Foreground bool `json:"foreground,omitempty"`
	// SignalArgv, when set, is the command that signals the foreground process instead of
	// kill(2) on its pid: "{pid}" in it is replaced by the number in InternalPidFile and
	// "{signal}" by the signal's number.
	SignalArgv      []string `json:"signalArgv,omitempty"`
	InternalPidFile string   `json:"internalPidFile,omitempty"`
	// ExitCommand (detached only) is started once the process has ended, its exit code is
	// written and everything below the shim is reaped, just before the shim exits.
	ExitCommand *Command `json:"exitCommand,omitempty"`
}

type shimReport struct {
	Pid   int    `json:"pid,omitempty"`
	Exit  *int   `json:"exit,omitempty"`
	Error string `json:"error,omitempty"`
}

// shimRequest is what the caller asks of a foreground shim.
type shimRequest struct {
	Signal int `json:"signal"`
}

// HandleShim turns this process into a container shim when it was started as one, and then
// never returns. Any program that creates detached containers, runs one with a terminal or
// execs processes calls it first thing in main (and tests in TestMain), before flags are
// parsed; in any other process it does nothing.
func HandleShim() {
	if len(os.Args) == 2 && os.Args[0] == shimArg0 {
		os.Exit(shimMain(os.Args[1]))
	}
	shimHandled.Store(true)
}

// shimHandled records that HandleShim ran in this process. Without it a shim started from
// /proc/self/exe would be the whole program run again with strange arguments (for a test
// binary: every test, creating containers of its own), so nothing starts one.
var shimHandled atomic.Bool

// shimProc is a shim this process started.
type shimProc struct {
	cmd  *exec.Cmd
	conn *os.File   // this side of descriptor 3
	mu   sync.Mutex // serializes requests
	// reports delivers the shim's reports, and is closed when it closes descriptor 3.
	reports chan shimReport
	exited  chan struct{} // closed once the shim has exited and its stdio are copied
}

// spawnShim starts a shim for cfg with the given stdio (any reader and writers, as for
// exec.Cmd) and extra files from descriptor 4 on.
func spawnShim(cfg shimConfig, stdin io.Reader, stdout, stderr io.Writer, extra ...*os.File) (*shimProc, error) {
	if !shimHandled.Load() {
		return nil, errors.New("this program does not call backend.HandleShim in main, so it cannot start a shim")
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("creating the shim's socket: %w", err)
	}
	mine, theirs := os.NewFile(uintptr(fds[0]), "shim"), os.NewFile(uintptr(fds[1]), "shim")
	cmd := &exec.Cmd{
		Path:        "/proc/self/exe",
		Args:        []string{shimArg0, string(b)},
		Stdin:       stdin,
		Stdout:      stdout,
		Stderr:      stderr,
		ExtraFiles:  append([]*os.File{theirs}, extra...),
		Dir:         "/",
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
		// Once the shim has exited, copying to non-file writers stops after this long even
		// if a process it left behind still holds the pipes.
		WaitDelay: grace,
	}
	err = cmd.Start()
	theirs.Close()
	if err != nil {
		mine.Close()
		return nil, fmt.Errorf("starting the shim: %w", err)
	}
	s := &shimProc{cmd: cmd, conn: mine, reports: make(chan shimReport, 2), exited: make(chan struct{})}
	go func() {
		dec := json.NewDecoder(mine)
		for {
			var rep shimReport
			if dec.Decode(&rep) != nil {
				close(s.reports)
				return
			}
			s.reports <- rep
		}
	}()
	// A detached shim outlives its caller; this only reaps it if it ends while the caller lives.
	go func() {
		cmd.Wait()
		close(s.exited)
	}()
	return s, nil
}

// started waits for the shim's first report: the pid of the process it holds, or the
// runtime's message with an error when the runtime's command failed, or ctx's error.
func (s *shimProc) started(ctx context.Context) (pid int, msg string, err error) {
	select {
	case rep, ok := <-s.reports:
		switch {
		case !ok:
			return 0, "", errors.New("the shim ended without a report")
		case rep.Error != "":
			return 0, rep.Error, errors.New("the runtime's command failed")
		case rep.Pid <= 0:
			return 0, "", fmt.Errorf("the shim reported pid %d", rep.Pid)
		}
		return rep.Pid, "", nil
	case <-ctx.Done():
		return 0, "", ctx.Err()
	}
}

// exitCode waits for a foreground shim's exit report. When ctx ends first, the process is
// stopped (see cancel) and the error is ctx's.
func (s *shimProc) exitCode(ctx context.Context, stop func(syscall.Signal)) (int, error) {
	select {
	case rep, ok := <-s.reports:
		return rep.exit(ok)
	case <-ctx.Done():
		s.cancel(stop)
		return -1, ctx.Err()
	}
}

// cancel stops a foreground shim's process because the caller's context ended, whether it
// has started yet or not: stop is asked to send it SIGTERM, then SIGKILL after grace; after
// another grace the shim is hung up on and killed. It returns once the shim has reported the
// process's end (or failed, or gone).
func (s *shimProc) cancel(stop func(syscall.Signal)) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		stop(sig)
		timeout := time.After(grace)
		for waiting := true; waiting; {
			select {
			case rep, ok := <-s.reports:
				if !ok || rep.Exit != nil || rep.Error != "" {
					return
				}
				// The pid: the process has only just started.
			case <-timeout:
				waiting = false
			}
		}
	}
	s.hangUp()
	s.wait(grace)
}

func (rep shimReport) exit(ok bool) (int, error) {
	switch {
	case !ok:
		return -1, errors.New("the shim ended without reporting an exit code")
	case rep.Error != "":
		return -1, errors.New(rep.Error)
	case rep.Exit == nil:
		return -1, fmt.Errorf("unexpected report from the shim: %+v", rep)
	}
	return *rep.Exit, nil
}

// signal asks a foreground shim to send sig to its process.
func (s *shimProc) signal(sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	json.NewEncoder(s.conn).Encode(shimRequest{Signal: int(sig)})
}

// hangUp tells a foreground shim that the caller is gone: it kills its process. The shim's
// reports can still be read.
func (s *shimProc) hangUp() { unix.Shutdown(int(s.conn.Fd()), unix.SHUT_WR) }

// wait waits for the shim to exit, killing it after max.
func (s *shimProc) wait(max time.Duration) {
	select {
	case <-s.exited:
	case <-time.After(max):
		s.cmd.Process.Kill()
		<-s.exited
	}
}

// close ends this side of a foreground shim once it has reported: it hangs up and waits for
// the shim to reap what is left and exit.
func (s *shimProc) close() {
	s.hangUp()
	s.wait(grace)
	s.conn.Close()
}

// startShim starts a detached shim for cfg with files as the container's stdio and waits for
// its report. It returns the runtime's message with the error when the create failed.
func startShim(ctx context.Context, cfg shimConfig, files [3]*os.File, extra ...*os.File) (string, error) {
	s, err := spawnShim(cfg, files[0], files[1], files[2], extra...)
	if err != nil {
		return "", err
	}
	defer s.conn.Close()
	_, msg, err := s.started(ctx)
	if err != nil && ctx.Err() != nil {
		// By PID: the shim this call started. What it created is removed by the caller.
		s.cmd.Process.Kill()
	}
	return msg, err
}

func shimMain(config string) int {
	report := os.NewFile(3, "report")
	syscall.CloseOnExec(3)
	enc := json.NewEncoder(report)
	send := func(rep shimReport) { enc.Encode(rep) }
	fail := func(format string, args ...any) int {
		send(shimReport{Error: fmt.Sprintf(format, args...)})
		return 1
	}
	var cfg shimConfig
	if err := json.Unmarshal([]byte(config), &cfg); err != nil || len(cfg.Argv) == 0 {
		fail("shim: bad configuration: %v", err)
		return 2
	}
	// Descriptors from 4 on, in this order: the console socket, the attach socket, the
	// stdin pipe's write end, each when configured.
	var ln, attachLn, stdinW *os.File
	next := 4
	take := func(name string) *os.File {
		f := os.NewFile(uintptr(next), name)
		syscall.CloseOnExec(next)
		next++
		return f
	}
	if cfg.Console {
		ln = take("console socket")
	}
	if cfg.Attach != "" {
		attachLn = take("attach socket")
	}
	if cfg.StdinPipe {
		stdinW = take("stdin pipe")
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		fail("shim: becoming a subreaper: %v", err)
		return 2
	}
	if cfg.LockFile != "" {
		lock, err := os.OpenFile(cfg.LockFile, os.O_RDWR|os.O_CREATE, 0o600)
		if err == nil {
			err = unix.Flock(int(lock.Fd()), unix.LOCK_EX)
		}
		if err != nil {
			fail("shim: locking %s: %v", cfg.LockFile, err)
			return 2
		}
	}
	cmd := exec.Command(cfg.Argv[0], cfg.Argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	err := startCommand(cmd, cfg.HideCgroup2)
	if err == nil {
		err = cmd.Wait()
	}
	if err != nil {
		return fail("%v", err)
	}
	b, err := os.ReadFile(cfg.PidFile)
	pid, convErr := strconv.Atoi(string(trimSpace(b)))
	if err != nil || convErr != nil || pid <= 0 {
		return fail("shim: reading the process's pid file: %v %v", err, convErr)
	}
	var master, log *os.File
	if ln != nil {
		rcv, err := receiveConsole(ln, cfg.Size)
		if err == nil {
			master, err = rcv.wait(grace)
		}
		ln.Close()
		if err != nil {
			return fail("shim: %v", err)
		}
		// The terminal's output goes to the container's stdout file, which the shim keeps.
		fd, err := unix.FcntlInt(1, unix.F_DUPFD_CLOEXEC, 3)
		if err != nil {
			return fail("shim: keeping the log: %v", err)
		}
		log = os.NewFile(uintptr(fd), "log")
	}
	// The process has the stdio now; the shim keeps none of it open.
	if null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0); err == nil {
		for fd := 0; fd < 3; fd++ {
			unix.Dup2(int(null.Fd()), fd)
		}
		null.Close()
	}
	if cfg.Foreground {
		return holdForeground(cfg, pid, report, send)
	}
	send(shimReport{Pid: pid})
	report.Close()
	var out *ptyOutput
	var hub *attachHub
	var attachL *net.UnixListener
	var in io.Writer               // where attached clients' input goes
	var resize func(WinSize) error // nil: no terminal to resize
	if master != nil {
		hub = newAttachHub(log)
		out = copyPTYOutput(hub, master)
		in, resize = master, func(s WinSize) error { return setSize(master, s) }
	} else if stdinW != nil {
		// Clients only write: the output goes to the log, which they follow.
		hub = newAttachHub(io.Discard)
		in = stdinW
	}
	if attachLn != nil && hub != nil {
		if l, err := net.FileListener(attachLn); err == nil {
			if ul, ok := l.(*net.UnixListener); ok {
				attachL = ul
				go serveAttach(ul, in, resize, hub)
			} else {
				l.Close()
			}
		}
	}
	if attachLn != nil {
		attachLn.Close()
	}
	exited := false
	for {
		var ws unix.WaitStatus
		got, err := unix.Wait4(-1, &ws, 0, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			// ECHILD: nothing left to reap. The shim lets go of the container as it exits
			// (its lock goes with it), so the exit command, which may delete it, runs after.
			if exited && cfg.ExitCommand != nil {
				startExitCommand(cfg.ExitCommand)
			}
			return 0
		}
		if got == pid {
			exited = true
			// The log is complete before the exit code says the container has ended;
			// attached clients get the output to its end, then their connections close.
			if out != nil {
				out.wait(grace)
			}
			if attachL != nil {
				attachL.Close()
				os.Remove(cfg.Attach)
			}
			if hub != nil {
				hub.closeAll()
			}
			if master != nil {
				master.Close()
				<-out.done
				log.Close()
			}
			if stdinW != nil {
				stdinW.Close()
			}
			writeExit(cfg.ExitFile, exitStatus(ws))
			if hub != nil {
				// Attached clients' writers may still be sending the end of the output, which
				// the shim's exit would cut off.
				hub.drain(grace)
			}
		}
	}
}

// holdForeground is the rest of a foreground shim, once the runtime has started the process
// pid: it reports the pid, signals the process as the caller asks until it has ended,
// reports its exit code, and reaps what else is left.
func holdForeground(cfg shimConfig, pid int, report *os.File, send func(shimReport)) int {
	var (
		mu       sync.Mutex
		ended    bool
		inflight sync.WaitGroup
	)
	kill := func(sig unix.Signal) {
		mu.Lock()
		defer mu.Unlock()
		if ended {
			return
		}
		if len(cfg.SignalArgv) == 0 {
			// pid is this process's child and not reaped while ended is false: it is the
			// process's, whatever has happened to it.
			unix.Kill(pid, sig)
			return
		}
		b, err := os.ReadFile(cfg.InternalPidFile)
		inner, convErr := strconv.Atoi(string(trimSpace(b)))
		if err != nil || convErr != nil || inner <= 0 {
			return
		}
		argv := make([]string, len(cfg.SignalArgv))
		r := strings.NewReplacer("{pid}", strconv.Itoa(inner), "{signal}", strconv.Itoa(int(sig)))
		for i, a := range cfg.SignalArgv {
			argv[i] = r.Replace(a)
		}
		inflight.Add(1)
		go func() {
			defer inflight.Done()
			cmd := exec.Command(argv[0], argv[1:]...)
			if startCommand(cmd, cfg.HideCgroup2) == nil {
				cmd.Wait()
			}
		}()
	}
	send(shimReport{Pid: pid})
	go func() {
		dec := json.NewDecoder(report)
		for {
			var req shimRequest
			if err := dec.Decode(&req); err != nil {
				// The caller hung up, or died: the process does not outlive it.
				kill(unix.SIGKILL)
				return
			}
			if req.Signal > 0 && req.Signal < 65 {
				kill(unix.Signal(req.Signal))
			}
		}
	}()
	// Wait for the process without reaping it, so that its pid stays its own while a signal
	// may still be sent to it; then reap it.
	for {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EINTR) {
			send(shimReport{Error: fmt.Sprintf("shim: waiting for pid %d: %v", pid, err)})
			return 1
		}
	}
	mu.Lock()
	ended = true
	mu.Unlock()
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(pid, &ws, 0, nil)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	code := exitStatus(ws)
	send(shimReport{Exit: &code})
	// The signal commands are waited for by their own goroutines; what is left after them
	// (gVisor's gofer) by this loop.
	inflight.Wait()
	for {
		_, err := unix.Wait4(-1, &ws, 0, nil)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return 0
		}
	}
}

// exitStatus is a wait status as an exit code: 128+N for a process ended by signal N.
func exitStatus(ws unix.WaitStatus) int {
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// writeExit writes the exit code atomically: a reader sees the whole number or no file.
func writeExit(path string, code int) {
	writeFileAtomic(path, []byte(strconv.Itoa(code)+"\n"))
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return b
}

// startExitCommand starts c in a session of its own, its stdio /dev/null, and does not wait:
// its parent, the shim, is about to exit.
func startExitCommand(c *Command) {
	if c.Path == "" || len(c.Args) == 0 {
		return
	}
	cmd := &exec.Cmd{Path: c.Path, Args: c.Args, SysProcAttr: &syscall.SysProcAttr{Setsid: true}}
	if err := cmd.Start(); err == nil {
		cmd.Process.Release()
	}
}
