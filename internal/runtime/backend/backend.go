// Package backend drives the OCI runtimes that run moat's containers behind one interface,
// Runtime: runc and crun for the hardened isolation level, gVisor's runsc for the sandbox
// level. Every backend keeps its state under a directory moat owns, never the runtime's
// system default (/run/runc, /run/crun, /var/run/runsc), so moat's containers and anyone
// else's never meet. The conformance suite in backendtest is what every backend must pass.
//
// Foreground containers (Run) without a terminal are the runtime's own `run` command, a
// child of the caller that forwards signals and returns the container's exit code (with a
// terminal, see below). Detached containers (Create,
// Start) are held by a shim: the caller's binary started again as a small process in its own
// session that runs the runtime's `create`, becomes the container's parent (it is a child
// subreaper) and records the exit code when the container ends, so that State can report it
// after moat itself has exited. The container's stdio are the files the caller passes, which
// the container writes to directly: log files for `moat logs`, without a copying process in
// between. A program that creates detached containers, runs a container with a terminal or
// execs a process must call HandleShim first thing in main (and in TestMain).
//
// Exec runs a further process in a running container, in the foreground, through the same
// shim in a foreground mode: the shim runs `RUNTIME exec --detach --process FILE`, becomes
// the parent of the process it starts (a child subreaper again) and reports its exit code
// back; it signals the process when the caller asks (SIGTERM when the caller's context ends,
// then SIGKILL), and kills it when the caller goes away. The caller builds the process from
// the container's own config.json process; the backend runs it as given and refuses one that
// is less confined than the container's init (a capability the init lacks, no_new_privs
// dropped, a missing or higher rlimit, another AppArmor profile or SELinux label, a lower OOM
// score). The runtimes apply the container's seccomp filter (runsc too, with --oci-seccomp),
// namespaces and cgroups to the exec'd process themselves; the conformance suite checks it.
//
// A terminal (IO.Terminal) is a pseudo-terminal the runtime makes for the process and sends
// its master end over a unix socket (--console-socket) in the container's directory (named
// through /proc/PID/fd when that path is too long for a socket address). The spec's
// process.terminal must be true with a terminal and false without one: for Run and Create
// the caller sets it in config.json, for Exec in the process; the backend refuses a mismatch.
// In the foreground (Run, Exec) the caller's process receives the master and copies Stdin to
// it and its output to Stdout, applies the size and every resize, and returns once the output
// has been read to its end (or, when something the process left behind keeps the terminal
// open, has been silent for a moment). A runtime's run command would copy the terminal to its
// own stdio instead, so Run with a terminal creates the container through a foreground shim,
// sizes the terminal and then starts it: the process sees its size from the start. Exec
// gives the size as the process's consoleSize too, which runc and crun apply before the
// process starts; runsc ignores it and starts the process without waiting, so the size is set
// as soon as runsc sends the terminal, and a process that asked before gets SIGWINCH. A
// detached container's terminal (Create) is received by the shim, which copies its output to
// the Stdout file until the container ends; nothing is written to its input (`docker run -dt`
// without attaching).
package backend

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Runtime runs OCI bundles. An id names one container within one Runtime's state directory;
// a bundle is a directory holding config.json and the root filesystem it names. While a
// foreground Run, or an Exec into a container Run started, is under way, the Runtime keeps
// its transient files (the runtime's pid file and log) in a directory of the bundle, named
// after the runtime and id, so that a bundle on a tmpfs keeps them off the disk. Every method
// that does I/O takes a context; a Runtime is safe for concurrent use on different ids.
type Runtime interface {
	// Name is the runtime's name, "runc", "crun" or "runsc".
	Name() string
	// Run runs a container in the foreground: it creates and starts it with io as its stdio,
	// waits for it to exit, deletes it and returns its exit code (128+N for a container ended
	// by signal N). An error means the container could not be run, or was stopped because
	// ctx ended (it is then sent SIGTERM, killed after a grace period, and deleted).
	Run(ctx context.Context, id, bundle string, io IO) (exitCode int, err error)
	// Create creates a detached container that waits for Start, with io's files as its stdio.
	// The container outlives the calling process; its exit code is kept for State.
	Create(ctx context.Context, id, bundle string, io IO) error
	// Start starts the process of a created container.
	Start(ctx context.Context, id string) error
	// State reports the container's status. A container the runtime has lost (its runtime
	// state is gone, say after a reboot) is reported stopped; an unknown id is ErrNotFound.
	State(ctx context.Context, id string) (State, error)
	// Kill sends sig to the container's init process.
	Kill(ctx context.Context, id string, sig syscall.Signal) error
	// Delete removes a container and everything the runtime and the backend kept for it.
	// A running or paused container is refused with ErrRunning unless force is set, in which
	// case it is killed first.
	Delete(ctx context.Context, id string, force bool) error
	// Exec runs p in the running container id, in the foreground, with io as its stdio, and
	// returns its exit code (128+N for a process ended by signal N). p is the container's own
	// config.json process with another command, environment, working directory, user or
	// terminal; one less confined than the container's init is refused. An unknown id is
	// ErrNotFound, a container that is not running ErrNotRunning. When ctx ends the process is
	// sent SIGTERM, killed after a grace period, and the error is ctx's.
	Exec(ctx context.Context, id string, p *specs.Process, io IO) (exitCode int, err error)
	// Attach connects io to the terminal of the running detached container id, created
	// with one: the terminal's output from now on goes to io.Stdout, io.Stdin is typed into
	// it and io.Terminal's sizes resize it. It returns nil once the container has ended and
	// its output is copied; when ctx ends first it returns ctx's error and the container goes
	// on running. Several callers may be attached at once.
	Attach(ctx context.Context, id string, io IO) error
}

// IO is a container's standard streams. A nil stream is /dev/null. Run and Exec accept any
// reader and writers; Create needs *os.File values (or nil), which the detached container
// keeps after the caller has gone.
//
// With a Terminal the process's stdin, stdout and stderr are a pseudo-terminal: Stdin is
// copied to it and everything the process writes to it (stdout and stderr alike, with the
// terminal's "\r\n" line endings) to Stdout, while Stderr gets only what the runtime itself
// reports. The end of Stdin is not passed on (a terminal has no end of input), and Run and
// Exec return without waiting for a Stdin read that blocks: the copy ends at its next read.
// Create with a terminal takes no Stdin and no Resize, and writes the terminal's output to
// the Stdout file.
type IO struct {
	Stdin    io.Reader
	Stdout   io.Writer
	Stderr   io.Writer
	Terminal *Terminal
	// OpenStdin, for Create only and without a terminal, gives the container a pipe for
	// standard input that its shim holds open while it runs (Stdin must be nil): Attach
	// writes to it, and it never reaches end of file. Docker's -d -i.
	OpenStdin bool
	// ExitCommand, for Create only, is run once the container has ended, its exit code is
	// recorded and its shim has let go of it (so that Delete does not wait for the shim), in
	// a session of its own with no stdio and nobody waiting for it: conmon's --exit-command.
	// A caller without a daemon removes a --rm container with it.
	ExitCommand *Command
}

// Command is a program to run: Path ("/proc/self/exe" is the program that created the
// container, as the shim sees it), and Args, Args[0] the name it runs as.
type Command struct {
	Path string   `json:"path"`
	Args []string `json:"args"`
}

// Terminal asks for a pseudo-terminal as the process's stdio.
type Terminal struct {
	// Size is the terminal's size when the process starts; zero leaves the kernel's 0x0.
	Size WinSize
	// Resize, when not nil, delivers the terminal's new sizes while the process runs.
	Resize <-chan WinSize
}

// WinSize is a terminal's size in characters.
type WinSize struct {
	Rows, Cols uint16
}

// Status is a container's lifecycle status, as the OCI runtime spec names them.
type Status string

// The statuses of the OCI runtime spec.
const (
	Creating Status = "creating"
	Created  Status = "created"
	Running  Status = "running"
	Paused   Status = "paused"
	Stopped  Status = "stopped"
)

// State is what a runtime reports about one container.
type State struct {
	ID     string
	Status Status
	// Pid is the container's init process on the host, 0 once it has stopped.
	Pid int
	// Bundle is the bundle directory the container was created from, "" when unknown.
	Bundle string
	// ExitCode is the exit code of a stopped container (128+N when ended by signal N), or
	// -1 while it runs or when it is not known (the shim was killed too).
	ExitCode int
}

var (
	// ErrNotFound is returned for an id the runtime does not know.
	ErrNotFound = errors.New("no such container")
	// ErrExists is returned by Create and Run for an id that is already in use.
	ErrExists = errors.New("container already exists")
	// ErrRunning is returned by Delete without force for a running or paused container.
	ErrRunning = errors.New("container is running")
	// ErrNotRunning is returned by Exec for a container that is created, paused or stopped.
	ErrNotRunning = errors.New("container is not running")
	// ErrUnavailable is what an *UnavailableError is: the runtime cannot run on this machine.
	ErrUnavailable = errors.New("container runtime unavailable")
)

// UnavailableError says why a runtime cannot be used on this machine and how to fix it.
// Constructors return it before anything is created.
type UnavailableError struct {
	Runtime string // "runc", "crun" or "runsc"
	Missing string // the binary or kernel feature that is missing
	Hint    string // what installs or enables it
	Err     error  // the underlying error, if any
}

func (e *UnavailableError) Error() string {
	msg := fmt.Sprintf("%s cannot run containers here: %s", e.Runtime, e.Missing)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	if e.Hint != "" {
		msg += " (" + e.Hint + ")"
	}
	return msg
}

// Is makes errors.Is(err, ErrUnavailable) true.
func (e *UnavailableError) Is(target error) bool { return target == ErrUnavailable }

func (e *UnavailableError) Unwrap() error { return e.Err }

// RuntimeError is a runtime command that failed: which command, and what the runtime said.
type RuntimeError struct {
	Runtime string
	Command string // the subcommand: "create", "start", "kill", ...
	ID      string
	Message string // the runtime's own message, trimmed
	Err     error  // how the command ended
}

func (e *RuntimeError) Error() string {
	msg := fmt.Sprintf("%s %s %s: %v", e.Runtime, e.Command, e.ID, e.Err)
	if e.Message != "" {
		msg += ": " + e.Message
	}
	return msg
}

func (e *RuntimeError) Unwrap() error { return e.Err }

// Option configures a runtime at construction.
type Option func(*options)

type options struct {
	binary   string
	logger   *slog.Logger
	platform string
}

// WithBinary runs the runtime from path instead of the first one on PATH.
func WithBinary(path string) Option { return func(o *options) { o.binary = path } }

// WithLogger logs every runtime command at debug level to l. Backends log nothing by default.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithPlatform chooses gVisor's platform (runsc only; default "systrap"). "kvm" needs
// /dev/kvm; "ptrace" works everywhere and is slower.
func WithPlatform(name string) Option { return func(o *options) { o.platform = name } }

func buildOptions(runtime string, opts []Option) (options, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if o.logger == nil {
		o.logger = slog.New(slog.DiscardHandler)
	}
	if o.platform != "" && runtime != "runsc" {
		return o, fmt.Errorf("%s: WithPlatform is a runsc option", runtime)
	}
	return o, nil
}
