package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/spf13/cobra"

	"github.com/moatsec/moat/internal/runtime/backend"
	"github.com/moatsec/moat/internal/runtime/engine"
)

// detachKeys is the sequence that detaches from a container's terminal, as in Docker:
// ctrl-p then ctrl-q.
var detachKeys = []byte{0x10, 0x11}

type attachOptions struct {
	NoStdin bool
}

func newAttachCmd(a *app) *cobra.Command {
	o := &attachOptions{}
	cmd := &cobra.Command{
		Use:   "attach [flags] CONTAINER",
		Short: "Attach to the terminal or standard input of a detached container",
		Long: `Connect your terminal to the terminal of a running container started with -dt: you see
what it prints from now on, and what you type goes to it. Detach with ctrl-p ctrl-q: the
container goes on running. When the container ends, moat exits with its exit code. Several
terminals may be attached to one container at once.

A container started with -di (no terminal) keeps its standard input open: what you type, or
pipe in, goes to it, and its output (standard output and error together, as its log has them)
from now on is printed. Your input ending does not end the container's; detach with ctrl-p
ctrl-q or ctrl-c. For any other container, moat logs -f follows its output.`,
		Example: `  moat run -dt --name shell alpine sh
  moat attach shell
  moat run -di --name worker alpine sh -c 'while read l; do echo "got $l"; done'
  moat attach worker`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.run(cmd.Context(), a, args[0])
		},
	}
	cmd.Flags().BoolVar(&o.NoStdin, "no-stdin", false, "do not pass standard input: only watch the output")
	return cmd
}

func (o *attachOptions) run(ctx context.Context, a *app, name string) error {
	ctx, detach := context.WithCancel(ctx)
	defer detach()
	stdio := backend.IO{Stdout: a.out, Terminal: &backend.Terminal{}}
	var keys *detachReader
	if !o.NoStdin {
		keys = &detachReader{r: a.in, detach: detach}
		stdio.Stdin = keys
	}
	return withEngine(a, func(e *engine.Engine) error {
		c, err := e.Inspect(ctx, name)
		if err != nil {
			return err
		}
		// The user's terminal, when there is one, goes raw so that every key reaches the
		// container's; input from a pipe is passed on as it is, and so is input to a
		// container without a terminal.
		if _, inTTY := terminalFd(a.in); c.Terminal && (inTTY || o.NoStdin) {
			tty, err := startTTY(a.in, a.out, inTTY && !o.NoStdin)
			if err != nil {
				return err
			}
			defer tty.Restore()
			stdio.Terminal = tty.Terminal
		}
		code, err := e.Attach(ctx, c.ID, stdio)
		// Detached by the keys, or by ctrl-c (which reaches moat, not a container without a
		// terminal).
		if errors.Is(err, context.Canceled) && (keys != nil && keys.detached() || !c.Terminal) {
			fmt.Fprintf(a.err, "\r\nmoat: detached from %s, which goes on running\r\n", name)
			return nil
		}
		if err != nil {
			return err
		}
		if code < 0 {
			fmt.Fprintf(a.err, "moat: %s has ended and was removed (--rm); its exit code is not known\n", name)
			return nil
		}
		if code != 0 {
			return &ContainerExitError{Code: code}
		}
		return nil
	})
}

// detachReader passes r on until the detach keys come, then calls detach and ends. Keys
// that start the sequence without finishing it are passed on.
type detachReader struct {
	r      io.Reader
	detach func()

	buf []byte // the reader's, read into before the keys are looked at

	mu      sync.Mutex
	matched int // how many of detachKeys the input has just had
	done    bool
}

func (d *detachReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	// One byte of room for a held-back key that turns out to be input. Only one goroutine
	// reads; the lock is not held while it waits for input, so detached never waits on it.
	want := max(1, len(p)-1)
	if len(d.buf) < want {
		d.buf = make([]byte, want)
	}
	n, err := d.r.Read(d.buf[:want])
	d.mu.Lock()
	defer d.mu.Unlock()
	out := 0
	for _, b := range d.buf[:n] {
		if b == detachKeys[d.matched] {
			d.matched++
			if d.matched == len(detachKeys) {
				d.done = true
				d.detach()
				return out, io.EOF
			}
			continue
		}
		// A partial sequence that did not go on is input after all.
		out += copy(p[out:], detachKeys[:d.matched])
		d.matched = 0
		if b == detachKeys[0] {
			d.matched = 1
			continue
		}
		p[out] = b
		out++
	}
	return out, err
}

func (d *detachReader) detached() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.done
}
