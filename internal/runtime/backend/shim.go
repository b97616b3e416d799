package backend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// The shim holds a detached container. It is the calling program started again through
// /proc/self/exe with argv[0] set to shimArg0 and its configuration as JSON in argv[1], in a
// session of its own so that the terminal's signals do not reach it. It
//
//  1. becomes a child subreaper, so that the container's init, orphaned when the runtime's
//     create command exits, is reparented to it;
//  2. runs the runtime's create command with its own stdio (the container's files), and
//     takes a shared lock on shim.lock for as long as it lives;
//  3. reports {"pid": N} or {"error": "..."} on file descriptor 3 and closes it, which is
//     when Create returns; then drops its stdio, so it holds no log file or pipe open;
//  4. reaps children until the container's init exits, writes its exit code (128+N for a
//     signal) to the exit file, reaps the runtime's other children (gVisor's gofer and
//     sandbox) and exits.
//
// Runtime commands see no difference: start, kill, state and delete go to the runtime as for
// any container. Delete waits for the shim's lock before it removes the container's files.
const shimArg0 = "moat-runtime-shim"

type shimConfig struct {
	Argv        []string `json:"argv"`
	PidFile     string   `json:"pidFile"`
	ExitFile    string   `json:"exitFile"`
	LockFile    string   `json:"lockFile"`
	HideCgroup2 string   `json:"hideCgroup2,omitempty"`
}

type shimReport struct {
	Pid   int    `json:"pid,omitempty"`
	Error string `json:"error,omitempty"`
}

// HandleShim turns this process into a container shim when it was started as one, and then
// never returns. Any program that creates detached containers calls it first thing in main
// (and tests in TestMain), before flags are parsed; in any other process it does nothing.
func HandleShim() {
	if len(os.Args) == 2 && os.Args[0] == shimArg0 {
		os.Exit(shimMain(os.Args[1]))
	}
	shimHandled.Store(true)
}

// shimHandled records that HandleShim ran in this process. Without it a shim started from
// /proc/self/exe would be the whole program run again with strange arguments (for a test
// binary: every test, creating containers of its own), so Create refuses to start one.
var shimHandled atomic.Bool

// startShim starts a shim for cfg with files as the container's stdio and waits for its
// report. It returns the runtime's message with the error when the create failed.
func startShim(ctx context.Context, cfg shimConfig, files [3]*os.File) (string, error) {
	if !shimHandled.Load() {
		return "", errors.New("this program does not call backend.HandleShim in main, so it cannot hold detached containers")
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		return "", err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return "", fmt.Errorf("creating the shim's pipe: %w", err)
	}
	defer r.Close()
	cmd := &exec.Cmd{
		Path:        "/proc/self/exe",
		Args:        []string{shimArg0, string(b)},
		Stdin:       files[0],
		Stdout:      files[1],
		Stderr:      files[2],
		ExtraFiles:  []*os.File{w},
		Dir:         "/",
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	err = cmd.Start()
	w.Close()
	if err != nil {
		return "", fmt.Errorf("starting the shim: %w", err)
	}
	// The shim outlives Create; this only reaps it if it ends while this process lives.
	go cmd.Wait()
	type result struct {
		rep shimReport
		err error
	}
	res := make(chan result, 1)
	go func() {
		var rep shimReport
		err := json.NewDecoder(r).Decode(&rep)
		res <- result{rep, err}
	}()
	select {
	case <-ctx.Done():
		// By PID: the shim this call started. What it created is removed by the caller.
		cmd.Process.Kill()
		return "", ctx.Err()
	case got := <-res:
		if got.err != nil {
			return "", fmt.Errorf("reading the shim's report: %w", got.err)
		}
		if got.rep.Error != "" {
			return got.rep.Error, errors.New("create failed")
		}
		return "", nil
	}
}

func shimMain(config string) int {
	report := os.NewFile(3, "report")
	syscall.CloseOnExec(3)
	send := func(rep shimReport) {
		json.NewEncoder(report).Encode(rep)
		report.Close()
	}
	var cfg shimConfig
	if err := json.Unmarshal([]byte(config), &cfg); err != nil || len(cfg.Argv) == 0 {
		send(shimReport{Error: fmt.Sprintf("shim: bad configuration: %v", err)})
		return 2
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		send(shimReport{Error: fmt.Sprintf("shim: becoming a subreaper: %v", err)})
		return 2
	}
	lock, err := os.OpenFile(cfg.LockFile, os.O_RDWR|os.O_CREATE, 0o600)
	if err == nil {
		err = unix.Flock(int(lock.Fd()), unix.LOCK_EX)
	}
	if err != nil {
		send(shimReport{Error: fmt.Sprintf("shim: locking %s: %v", cfg.LockFile, err)})
		return 2
	}
	cmd := exec.Command(cfg.Argv[0], cfg.Argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	err = startCommand(cmd, cfg.HideCgroup2)
	if err == nil {
		err = cmd.Wait()
	}
	if err != nil {
		send(shimReport{Error: err.Error()})
		return 1
	}
	b, err := os.ReadFile(cfg.PidFile)
	pid, convErr := strconv.Atoi(string(trimSpace(b)))
	if err != nil || convErr != nil || pid <= 0 {
		send(shimReport{Error: fmt.Sprintf("shim: reading the container's pid file: %v %v", err, convErr)})
		return 1
	}
	// The container has the stdio now; the shim keeps none of it open.
	if null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0); err == nil {
		for fd := 0; fd < 3; fd++ {
			unix.Dup2(int(null.Fd()), fd)
		}
		null.Close()
	}
	send(shimReport{Pid: pid})
	for {
		var ws unix.WaitStatus
		got, err := unix.Wait4(-1, &ws, 0, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return 0 // ECHILD: nothing left to reap
		}
		if got == pid {
			code := ws.ExitStatus()
			if ws.Signaled() {
				code = 128 + int(ws.Signal())
			}
			writeExit(cfg.ExitFile, code)
		}
	}
}

// writeExit writes the exit code atomically: a reader sees the whole number or no file.
func writeExit(path string, code int) {
	tmp := filepath.Join(filepath.Dir(path), ".exit.tmp")
	if os.WriteFile(tmp, []byte(strconv.Itoa(code)+"\n"), 0o600) == nil {
		os.Rename(tmp, path)
	}
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return b
}
