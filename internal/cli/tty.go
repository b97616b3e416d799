package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"golang.org/x/term"

	"github.com/moatsec/moat/internal/runtime/backend"
)

// errNotATTY refuses -i with -t when standard input is not a terminal, as Docker does: the
// container's terminal would get a pipe's or a file's bytes as if typed.
var errNotATTY = errors.New("the input device is not a TTY: -i with -t needs a terminal on standard input (leave out -t, or -i)")

// ttySession is the user's side of a container's terminal (moat run -t, moat exec -t), for as
// long as the container's process runs.
type ttySession struct {
	// Terminal goes into backend.IO: the size of the user's terminal when the session began,
	// and its new sizes when it is resized (SIGWINCH).
	Terminal *backend.Terminal

	restoreOnce sync.Once
	restore     func() error
}

// startTTY prepares the user's terminal for a container's terminal, following Docker. in and
// out are the command's standard input and output. The size is out's when it is a terminal
// (else 0x0, and there are no resizes). With interactive (-i), in must be a terminal, which
// is put in raw mode, so that every key, ^C included, goes to the container's terminal;
// without it in is left alone, as it is not passed on. Restore must be called when the
// process has ended.
func startTTY(in io.Reader, out io.Writer, interactive bool) (*ttySession, error) {
	inFd, inTTY := terminalFd(in)
	if interactive && !inTTY {
		return nil, errNotATTY
	}
	s := &ttySession{Terminal: &backend.Terminal{}}
	var cleanups []func() error
	s.restore = func() error {
		var errs []error
		for i := len(cleanups) - 1; i >= 0; i-- {
			errs = append(errs, cleanups[i]())
		}
		return errors.Join(errs...)
	}
	if outFd, ok := terminalFd(out); ok {
		s.Terminal.Size = terminalSize(outFd)
		cleanups = append(cleanups, watchResizes(outFd, s.Terminal))
	}
	if interactive {
		old, err := term.MakeRaw(inFd)
		if err != nil {
			s.restore()
			return nil, fmt.Errorf("putting the terminal in raw mode: %w", err)
		}
		cleanups = append(cleanups, func() error {
			if err := term.Restore(inFd, old); err != nil {
				return fmt.Errorf("restoring the terminal: %w", err)
			}
			return nil
		})
	}
	return s, nil
}

// Restore puts the user's terminal back as it was and stops watching its size. It may be
// called more than once.
func (s *ttySession) Restore() error {
	var err error
	s.restoreOnce.Do(func() { err = s.restore() })
	return err
}

// terminalFd returns the descriptor of f when it is a file open on a terminal.
func terminalFd(f any) (int, bool) {
	file, ok := f.(*os.File)
	if !ok || file == nil {
		return -1, false
	}
	fd := int(file.Fd())
	return fd, term.IsTerminal(fd)
}

func terminalSize(fd int) backend.WinSize {
	cols, rows, err := term.GetSize(fd)
	if err != nil || rows < 0 || cols < 0 || rows > 0xffff || cols > 0xffff {
		return backend.WinSize{}
	}
	return backend.WinSize{Rows: uint16(rows), Cols: uint16(cols)}
}

// watchResizes sends fd's size on a new t.Resize on every SIGWINCH, keeping only the latest
// size when the reader is behind. The returned func stops it and closes the channel.
func watchResizes(fd int, t *backend.Terminal) func() error {
	sizes := make(chan backend.WinSize, 1)
	t.Resize = sizes
	winch := make(chan os.Signal, 1)
	signal.Notify(winch, syscall.SIGWINCH)
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			select {
			case <-winch:
				ws := terminalSize(fd)
				select {
				case <-sizes: // a size not read yet is stale
				default:
				}
				sizes <- ws
			case <-stop:
				return
			}
		}
	}()
	return func() error {
		signal.Stop(winch)
		close(stop)
		<-stopped
		close(sizes)
		return nil
	}
}
