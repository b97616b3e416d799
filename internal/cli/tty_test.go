package cli

import (
	"bytes"
	"errors"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/moatsec/moat/internal/runtime/backend"
)

// openPTY opens a pseudo-terminal pair: the master, and the terminal a program would have.
func openPTY(t *testing.T) (master, tty *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { master.Close() })
	fd := int(master.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("ptsname: %v", err)
	}
	tty, err = os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tty.Close() })
	return master, tty
}

func setSize(t *testing.T, master *os.File, rows, cols uint16) {
	t.Helper()
	if err := unix.IoctlSetWinsize(int(master.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: cols}); err != nil {
		t.Fatal(err)
	}
}

func lflag(t *testing.T, f *os.File) uint32 {
	t.Helper()
	tio, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	return tio.Lflag
}

// -t -i on a terminal: raw mode until Restore, the terminal's size, and its new sizes on
// SIGWINCH.
func TestTTYInteractive(t *testing.T) {
	master, tty := openPTY(t)
	setSize(t, master, 33, 97)
	s, err := startTTY(tty, tty, true)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Restore()
	if got := s.Terminal.Size; got != (backend.WinSize{Rows: 33, Cols: 97}) {
		t.Errorf("size %+v, want 33x97", got)
	}
	if l := lflag(t, tty); l&(unix.ICANON|unix.ECHO|unix.ISIG) != 0 {
		t.Errorf("not in raw mode: lflag %#x", l)
	}
	// The kernel signals a terminal's foreground process group on a resize; this test's
	// process has no controlling terminal, so it signals itself.
	setSize(t, master, 40, 120)
	if err := syscall.Kill(os.Getpid(), syscall.SIGWINCH); err != nil {
		t.Fatal(err)
	}
	select {
	case ws := <-s.Terminal.Resize:
		if ws != (backend.WinSize{Rows: 40, Cols: 120}) {
			t.Errorf("resized to %+v, want 40x120", ws)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no resize after SIGWINCH")
	}
	if err := s.Restore(); err != nil {
		t.Fatal(err)
	}
	if l := lflag(t, tty); l&(unix.ICANON|unix.ECHO|unix.ISIG) != unix.ICANON|unix.ECHO|unix.ISIG {
		t.Errorf("not restored: lflag %#x", l)
	}
	if _, ok := <-s.Terminal.Resize; ok {
		t.Error("Resize still open after Restore")
	}
	if err := s.Restore(); err != nil {
		t.Errorf("second Restore: %v", err)
	}
}

// Docker's rules for what is not a terminal: -t alone is fine whatever stdin and stdout are
// (no raw mode; no size without a terminal on stdout), -t -i needs a terminal on stdin.
func TestTTYNotATerminal(t *testing.T) {
	master, tty := openPTY(t)
	setSize(t, master, 24, 80)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	for _, tc := range []struct {
		name        string
		in          any
		out         any
		interactive bool
		wantErr     error
		wantSize    backend.WinSize
	}{
		{"-t, pipes", r, w, false, nil, backend.WinSize{}},
		{"-t, buffers", strings.NewReader(""), &bytes.Buffer{}, false, nil, backend.WinSize{}},
		{"-t, stdin a pipe, stdout a terminal", r, tty, false, nil, backend.WinSize{Rows: 24, Cols: 80}},
		{"-t, stdin a terminal, stdout a pipe", tty, w, false, nil, backend.WinSize{}},
		{"-t -i, stdin a pipe", r, tty, true, errNotATTY, backend.WinSize{}},
		{"-t -i, stdin a buffer", strings.NewReader(""), tty, true, errNotATTY, backend.WinSize{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := lflag(t, tty)
			s, err := startTTY(tc.in.(io.Reader), tc.out.(io.Writer), tc.interactive)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("got %v, want %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			defer s.Restore()
			if s.Terminal.Size != tc.wantSize {
				t.Errorf("size %+v, want %+v", s.Terminal.Size, tc.wantSize)
			}
			if l := lflag(t, tty); l != before {
				t.Errorf("the terminal's mode changed: lflag %#x, was %#x", l, before)
			}
			if err := s.Restore(); err != nil {
				t.Error(err)
			}
		})
	}
}
