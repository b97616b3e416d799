package backend

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// EarlyRunner is a Runtime whose foreground run can begin before the bundle's runtime spec
// exists. A runtime process takes milliseconds to start (runc, a Go program, 5 ms before it
// reads its spec here); begun early, that start overlaps the caller's own work of preparing
// the bundle (mounting the root filesystem, generating and logging the spec) instead of
// following it.
//
// The spec reaches the runtime through a FIFO at the bundle's config.json, which it opens
// and blocks reading. Until PendingRun.Run writes the spec, the runtime has created nothing:
// no state, no cgroup, no namespace, no process of the container. Only a runtime that reads
// config.json once, from the front, can do this: runc. crun reads the file twice and runsc
// seeks in it.
type EarlyRunner interface {
	Runtime
	// BeginRun starts the runtime's run of container id in bundle, whose config.json must not
	// exist yet, with io as its stdio (no terminal). Exactly one of the PendingRun's Run and
	// Abort must follow.
	BeginRun(ctx context.Context, id, bundle string, io IO) (*PendingRun, error)
}

// PendingRun is a run begun by EarlyRunner.BeginRun, waiting for its spec.
type PendingRun struct {
	fifo *os.File // the FIFO's both ends: it never blocks opening, and the runtime never reads EOF early
	path string
	once sync.Once
	fed  chan struct{} // closed when feed is done with the bundle
	run  *foregroundRun
}

// BeginRun is EarlyRunner.BeginRun for runc.
func (r *Runc) BeginRun(ctx context.Context, id, bundle string, stdio IO) (*PendingRun, error) {
	return r.beginRun(id, bundle, stdio)
}

func (c *ociCLI) beginRun(id, bundle string, stdio IO) (*PendingRun, error) {
	if err := c.checkID(id); err != nil {
		return nil, err
	}
	if stdio.Terminal != nil {
		return nil, fmt.Errorf("%s run %s: a run with a terminal cannot begin before its spec is written", c.name, id)
	}
	path := filepath.Join(bundle, "config.json")
	if err := unix.Mkfifo(path, 0o600); err != nil {
		return nil, fmt.Errorf("%s run %s: making the spec's FIFO %s: %w", c.name, id, path, err)
	}
	// Opened for reading and writing, the FIFO opens at once, and it keeps a writer until
	// the spec is read: a runtime that opens it before or after the spec is written reads the
	// whole spec, and one that reads on after it reads EOF only once the spec is consumed.
	fifo, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("%s run %s: opening the spec's FIFO: %w", c.name, id, err)
	}
	// Started here rather than in a goroutine: one would wait for a free processor while the
	// caller goes on, and the point is that the runtime starts at once.
	run, err := c.startRun(id, bundle, stdio)
	if err != nil {
		fifo.Close()
		os.Remove(path)
		return nil, err
	}
	return &PendingRun{fifo: fifo, path: path, fed: make(chan struct{}), run: run}, nil
}

// ReadSpec reads the bundle's config.json. While a run begun early is handing the spec to
// its runtime the file is a FIFO, which is refused rather than read: reading it would take
// the runtime's spec, or block.
func ReadSpec(bundle string) ([]byte, error) {
	path := filepath.Join(bundle, "config.json")
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NONBLOCK|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, fmt.Errorf("reading the bundle's spec: %w", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil {
		return nil, fmt.Errorf("reading the bundle's spec: %w", err)
	} else if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("reading the bundle's spec: %s is not a regular file (%s): the runtime may still be reading it", path, fi.Mode().Type())
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("reading the bundle's spec: %w", err)
	}
	return b, nil
}

// Run writes spec, the bundle's config.json, to the waiting runtime, and then is
// Runtime.Run: it waits for the container to exit, deletes it and returns its exit code.
func (p *PendingRun) Run(ctx context.Context, spec []byte) (int, error) {
	r := p.run
	terminal, err := processTerminal(spec)
	if err != nil {
		p.Abort()
		return -1, fmt.Errorf("%s run %s: the runtime spec: %w", r.c.name, r.id, err)
	}
	if terminal {
		p.Abort()
		return -1, fmt.Errorf("%s run %s: the process asks for a terminal (process.terminal), which a run begun early has not", r.c.name, r.id)
	}
	p.once.Do(func() {
		go func() {
			defer close(p.fed)
			p.feed(spec)
		}()
	})
	code, err := r.wait(ctx)
	// The caller may remove the bundle once Run returns: feed must be done with it.
	<-p.fed
	return code, err
}

// processTerminal reads process.terminal from a runtime spec, decoding the members before
// process (moat's specs have one, ociVersion) and the process member itself, not the rest: the
// whole spec, mostly its seccomp filter, would cost a third of a millisecond. The runtime
// reads and checks all of it.
func processTerminal(spec []byte) (bool, error) {
	dec := json.NewDecoder(bytes.NewReader(spec))
	if tok, err := dec.Token(); err != nil {
		return false, err
	} else if d, ok := tok.(json.Delim); !ok || d != '{' {
		return false, errors.New("not a JSON object")
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return false, err
		}
		if key, _ := tok.(string); strings.EqualFold(key, "process") { // as encoding/json, and runc, match it
			var p struct {
				Terminal bool `json:"terminal"`
			}
			if err := dec.Decode(&p); err != nil {
				return false, fmt.Errorf("process: %w", err)
			}
			return p.Terminal, nil
		}
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return false, err
		}
	}
	if _, err := dec.Token(); err != nil {
		return false, err
	}
	return false, nil
}

// feed writes spec to the FIFO, waits until the runtime has read all of it (or has exited),
// closes the FIFO, so that a runtime reading on gets EOF, and puts the spec in its place as
// a regular file, for whoever reads the bundle later (Exec checks a process against it).
// The spec is written by a goroutine because the FIFO holds only 64 KiB until it is read.
func (p *PendingRun) feed(spec []byte) {
	exited := p.run.done
	written := make(chan error, 1)
	go func() {
		// Without the whitespace after the JSON value: a runtime that reads one value (runc's
		// decoder) would leave it in the FIFO, which would then never be empty.
		_, err := p.fifo.Write(bytes.TrimRight(spec, " \t\r\n"))
		written <- err
	}()
	select {
	case err := <-written:
		if err == nil {
			// What is still in the FIFO is what the runtime has not read yet.
			p.waitRead(exited)
		}
	case <-exited:
	}
	p.fifo.Close() // ends a write still blocked
	// Replaced even when the runtime has already exited (a short container can end before
	// this line): the bundle then holds the spec that ran, never a FIFO.
	if err := writeFileAtomic(p.path, spec); err != nil {
		p.run.c.log.Warn("replacing the spec's FIFO with the spec", "path", p.path, "error", err)
		os.Remove(p.path)
	}
}

// waitRead returns once the FIFO is empty or exited is closed.
func (p *PendingRun) waitRead(exited <-chan struct{}) {
	for delay := 50 * time.Microsecond; ; delay = min(2*delay, 2*time.Millisecond) {
		if n, err := unread(p.fifo); err != nil || n == 0 {
			return
		}
		select {
		case <-exited:
			return
		case <-time.After(delay):
		}
	}
}

// writeFileAtomic writes b to a new file next to path and renames it over path.
func writeFileAtomic(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

// unread is how many bytes f, a FIFO, holds (FIONREAD, which Linux calls TIOCINQ).
func unread(f *os.File) (int, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, err
	}
	var n int
	var ioErr error
	if err := rc.Control(func(fd uintptr) { n, ioErr = unix.IoctlGetInt(int(fd), unix.TIOCINQ) }); err != nil {
		return 0, err
	}
	return n, ioErr
}

// Abort ends a run whose spec was never written: the runtime, blocked reading it, has
// created nothing and is killed; the FIFO and the runtime's files are removed.
func (p *PendingRun) Abort() {
	p.once.Do(func() {
		close(p.fed)
		r := p.run
		r.cmd.Process.Kill()
		<-r.done
		os.RemoveAll(r.dir)
		p.fifo.Close()
		os.Remove(p.path)
	})
}
