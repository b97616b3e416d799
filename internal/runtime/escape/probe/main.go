//go:build linux

// The Go runtime keeps the CPU cgroup files open to follow the container's CPU limit; they
// would look like descriptors leaked by the runtime. It reads them once at start, closes
// them and lets GOMAXPROCS be the number of CPUs.
//
//go:debug containermaxprocs=0

// Command probe is the escape test suite's probe (package escape). It runs inside a container
// and attempts, harmlessly, each known escape or abuse primitive, then writes one JSON array
// to stdout, one element per check:
//
//	[{"name": "mount", "attempt": "...", "blocked": true, "detail": "mount: EPERM; fsopen: EPERM"}, ...]
//
// blocked says whether the container was kept from doing what the attempt tried; detail says
// why (an errno) or what happened. inconclusive marks a check that could not be made as
// designed (a helper missing from the image, say): it counts as neither.
//
// Every attempt is bounded in time and resources, and undoes what it managed to do: a mount
// is unmounted, a key invalidated, descriptors closed, processes killed and reaped. Nothing is
// ever written to a kernel interface: /proc/sysrq-trigger, /proc/sys, release_agent and /sys
// files are only opened for writing, never written.
//
// Usage:
//
//	probe              runs the checks of the default set, as container root
//	probe CHECK...     runs the named checks
//	probe describe     writes every check as JSON: name, attempt and how it must run ("run"):
//	                   "default", in the default set; "non-root", alone as a non-root user;
//	                   "alone", alone as container root, in a container of its own, which the
//	                   check may end (the memory hog, when the limit kills the whole sandbox)
//
// The checks need, in the image beside the probe: /probe-suid, a copy of the probe that is
// setuid root (mode 04755, owned by 0); /pause, a static program that sleeps until it is
// killed and is one process with one thread (the fork bomb's children); and /etc/passwd. The
// modes below are the probe running itself for one check; they are not meant to be called
// directly: true, whoami, memhog MIB, chroot DIR.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Paths of the probe's helpers in the image.
const (
	suidPath  = "/probe-suid"
	pausePath = "/pause"
)

// result is one check's outcome, as the JSON output has it.
type result struct {
	Name         string `json:"name"`
	Attempt      string `json:"attempt"`
	Blocked      bool   `json:"blocked"`
	Detail       string `json:"detail"`
	Inconclusive bool   `json:"inconclusive,omitempty"`
}

// outcome is what a check function returns; the name and attempt come from the check.
type outcome struct {
	blocked, inconclusive bool
	detail                string
}

func blocked(format string, a ...any) outcome {
	return outcome{blocked: true, detail: fmt.Sprintf(format, a...)}
}
func allowed(format string, a ...any) outcome { return outcome{detail: fmt.Sprintf(format, a...)} }
func inconclusive(format string, a ...any) outcome {
	return outcome{inconclusive: true, detail: fmt.Sprintf(format, a...)}
}

// check is one attempt. attempt says what is tried and what counts as blocked.
type check struct {
	name    string
	attempt string
	run     func(*probe) outcome
	mode    runMode
}

// runMode says how a check must be run.
type runMode string

const (
	// inDefault checks run together, as container root: probe with no arguments.
	inDefault runMode = "default"
	// nonRoot checks run on their own as a non-root user (the setuid check).
	nonRoot runMode = "non-root"
	// alone checks run on their own as container root, in a container of their own: they may
	// end it (the memory hog, when the memory limit kills the whole gVisor sandbox).
	alone runMode = "alone"
)

// describe writes every check's name, attempt and run mode as a JSON array.
func describe() {
	type desc struct {
		Name    string  `json:"name"`
		Attempt string  `json:"attempt"`
		Run     runMode `json:"run"`
	}
	var out []desc
	for _, c := range checks {
		out = append(out, desc{c.name, c.attempt, c.mode})
	}
	b, _ := json.MarshalIndent(out, "", "  ")
	os.Stdout.Write(append(b, '\n'))
}

// probe is the state the checks share.
type probe struct {
	self    string // the probe's own path, to run itself in another mode
	scratch string // a writable directory, removed at the end
	// fds are the descriptors the probe had when it started, besides stdio: whatever the
	// runtime leaked into the container.
	fds []inheritedFD
}

// checkTimeout bounds one check; the fork bomb and the memory hog bound themselves below it.
const checkTimeout = 60 * time.Second

func main() {
	// First, before the Go runtime or the checks open anything: the descriptors the
	// container was started with.
	fds, fdErr := inheritedFDs()
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "true":
			return
		case "whoami":
			whoami()
			return
		case "memhog":
			memhog(os.Args[2:])
			return
		case "chroot":
			chrootEscape(os.Args[2:])
			return
		case "describe":
			describe()
			return
		}
	}
	selected, err := selectChecks(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "probe:", err)
		os.Exit(2)
	}
	p := &probe{fds: fds}
	if fdErr != nil {
		fmt.Fprintln(os.Stderr, "probe: listing inherited descriptors:", fdErr)
	}
	if p.self, err = os.Executable(); err != nil {
		p.self = "/proc/self/exe"
	}
	p.scratch = scratchDir()
	defer func() {
		if p.scratch != "" {
			os.RemoveAll(p.scratch)
		}
	}()

	results := make([]result, 0, len(selected))
	for _, c := range selected {
		fmt.Fprintf(os.Stderr, "probe: %s\n", c.name)
		o := runBounded(c, p)
		results = append(results, result{Name: c.name, Attempt: c.attempt, Blocked: o.blocked && !o.inconclusive, Detail: o.detail, Inconclusive: o.inconclusive})
	}
	out, err := json.MarshalIndent(results, "", "  ")
	if err != nil {
		fmt.Fprintln(os.Stderr, "probe:", err)
		os.Exit(1)
	}
	os.Stdout.Write(append(out, '\n'))
}

// runBounded runs c, giving up (inconclusive) after checkTimeout.
func runBounded(c check, p *probe) outcome {
	done := make(chan outcome, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				done <- inconclusive("the check panicked: %v", r)
			}
		}()
		done <- c.run(p)
	}()
	select {
	case o := <-done:
		return o
	case <-time.After(checkTimeout):
		return inconclusive("no answer within %s", checkTimeout)
	}
}

// selectChecks returns the checks args name, or the default set.
func selectChecks(args []string) ([]check, error) {
	if len(args) == 0 {
		var out []check
		for _, c := range checks {
			if c.mode == inDefault {
				out = append(out, c)
			}
		}
		return out, nil
	}
	var out []check
	for _, a := range args {
		i := slices.IndexFunc(checks, func(c check) bool { return c.name == a })
		if i < 0 {
			return nil, fmt.Errorf("unknown check %q (probe describe lists them)", a)
		}
		out = append(out, checks[i])
	}
	return out, nil
}

// scratchDir makes a directory the checks may write in: /tmp, else /dev/shm or /run.
func scratchDir() string {
	for _, d := range []string{"/tmp", "/dev/shm", "/run"} {
		if dir, err := os.MkdirTemp(d, "moat-probe-"); err == nil {
			return dir
		}
	}
	return ""
}

// errName is an error as its errno's name (EPERM) when it has one.
func errName(err error) string {
	var e syscall.Errno
	if errors.As(err, &e) {
		if n := unix.ErrnoName(e); n != "" {
			return n
		}
	}
	return err.Error()
}

// denied reports whether err is a refusal to make the call at all: the seccomp filter's
// EPERM or ENOSYS, or the kernel's capability check. An errno past those (EINVAL, ENOEXEC)
// means the call reached the code it was meant to reach.
func denied(err error) bool {
	return errors.Is(err, unix.EPERM) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EACCES)
}

// joinErrs describes several attempts, "what: ERRNO", merging them when all agree.
type attempts []struct{ what, res string }

func (a *attempts) add(what string, err error) {
	res := "ok"
	if err != nil {
		res = errName(err)
	}
	*a = append(*a, struct{ what, res string }{what, res})
}

func (a attempts) String() string {
	var parts []string
	for _, x := range a {
		parts = append(parts, x.what+": "+x.res)
	}
	return strings.Join(parts, "; ")
}
