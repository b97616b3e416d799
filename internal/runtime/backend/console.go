package backend

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// consoleName is the console socket's name in a container's (or an exec's) directory.
const consoleName = "console.sock"

// maxSunPath is the longest path a unix socket address can hold: sun_path is 108 bytes
// including the terminating NUL.
const maxSunPath = 107

// consoleSocket is the unix socket a runtime sends a terminal's master end to: the
// --console-socket of create and exec. It lives in the container's directory; when that
// path is too long for a socket address, it is bound and named through a descriptor of the
// directory held open by this process (/proc/PID/fd/N/console.sock), which stays short.
type consoleSocket struct {
	path string   // the socket's path
	addr string   // what the runtime is told to connect to
	ln   *os.File // the listening socket
	dir  *os.File // the directory, open while addr goes through it; nil when addr is path
}

func listenConsole(dir string) (*consoleSocket, error) { return listenSocket(dir, consoleName) }

// listenSocket listens on a unix socket named name in dir, as listenConsole does.
func listenSocket(dir, name string) (s *consoleSocket, err error) {
	s = &consoleSocket{path: filepath.Join(dir, name)}
	s.addr = s.path
	bindAt := s.path
	if len(s.path) > maxSunPath {
		d, err := os.Open(dir)
		if err != nil {
			return nil, fmt.Errorf("opening %s for the console socket: %w", dir, err)
		}
		s.dir = d
		bindAt = fmt.Sprintf("/proc/self/fd/%d/%s", d.Fd(), name)
		s.addr = fmt.Sprintf("/proc/%d/fd/%d/%s", os.Getpid(), d.Fd(), name)
	}
	defer func() {
		if err != nil && s.dir != nil {
			s.dir.Close()
		}
	}()
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("creating the console socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: bindAt}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("binding the console socket %s: %w", s.path, err)
	}
	if err := unix.Listen(fd, 1); err != nil {
		unix.Close(fd)
		os.Remove(s.path)
		return nil, fmt.Errorf("listening on the console socket %s: %w", s.path, err)
	}
	s.ln = os.NewFile(uintptr(fd), s.path)
	return s, nil
}

// Close closes the listening socket and removes it. A terminal already received stays open.
func (s *consoleSocket) Close() error {
	if s == nil {
		return nil
	}
	err := s.ln.Close()
	if s.dir != nil {
		s.dir.Close()
	}
	if rerr := os.Remove(s.path); rerr != nil && !errors.Is(rerr, os.ErrNotExist) && err == nil {
		err = rerr
	}
	return err
}

// consoleReceiver receives a terminal's master end from the runtime in the background, as
// soon as the runtime sends it, and sets the terminal's size at once. runc and crun send it
// before the process starts (and size it themselves from the process's consoleSize); runsc
// sends it before it starts the process but does not wait, so the size is set as early as
// can be, and if the process has asked for its size before, the resize sends it SIGWINCH.
// The master is non-blocking, so that reads and writes on it go through Go's poller and
// Close interrupts them.
type consoleReceiver struct {
	ln     *net.UnixListener
	done   chan struct{}
	master *os.File
	err    error

	mu      sync.Mutex
	conn    *net.UnixConn // the runtime's connection, once accepted
	aborted bool
}

// receiveConsole starts receiving on the listening socket ln (which stays the caller's).
func receiveConsole(ln *os.File, size WinSize) (*consoleReceiver, error) {
	l, err := net.FileListener(ln)
	if err != nil {
		return nil, fmt.Errorf("receiving the terminal: %w", err)
	}
	ul, ok := l.(*net.UnixListener)
	if !ok {
		l.Close()
		return nil, fmt.Errorf("receiving the terminal: the console socket is a %T", l)
	}
	r := &consoleReceiver{ln: ul, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.master, r.err = r.accept()
		if r.err == nil {
			if r.err = setWinSize(r.master, size); r.err != nil {
				r.master.Close()
				r.master = nil
			}
		}
	}()
	return r, nil
}

func (r *consoleReceiver) accept() (*os.File, error) {
	conn, err := r.ln.AcceptUnix()
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	r.mu.Lock()
	r.conn = conn
	aborted := r.aborted
	r.mu.Unlock()
	if aborted {
		return nil, net.ErrClosed
	}
	// The runtime sends the terminal as soon as it has connected.
	conn.SetReadDeadline(time.Now().Add(grace))
	buf := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(4*4))
	_, oobn, flags, _, err := conn.ReadMsgUnix(buf, oob)
	if err != nil {
		return nil, err
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return nil, err
	}
	var fds []int
	for i := range msgs {
		got, err := unix.ParseUnixRights(&msgs[i])
		if err == nil {
			fds = append(fds, got...)
		}
	}
	for _, fd := range fds[min(1, len(fds)):] {
		unix.Close(fd)
	}
	if len(fds) == 0 {
		if flags&unix.MSG_CTRUNC != 0 {
			return nil, errors.New("the descriptor was truncated")
		}
		return nil, errors.New("no descriptor in the message")
	}
	fd := fds[0]
	unix.CloseOnExec(fd)
	// A terminal's master end answers TIOCGPTN (its number); anything else is not one.
	if _, err := unix.IoctlGetInt(fd, unix.TIOCGPTN); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("what the runtime sent is not a terminal's master: %w", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), "pty master"), nil
}

// wait returns the terminal once the runtime's command has returned, by when it has sent
// it: it waits at most timeout.
func (r *consoleReceiver) wait(timeout time.Duration) (*os.File, error) {
	select {
	case <-r.done:
	case <-time.After(timeout):
		r.abort()
		return nil, fmt.Errorf("receiving the terminal from the runtime: timed out after %s", timeout)
	}
	r.ln.Close()
	if r.err != nil {
		return nil, fmt.Errorf("receiving the terminal from the runtime: %w", r.err)
	}
	return r.master, nil
}

// abort stops receiving, and closes a terminal already received.
func (r *consoleReceiver) abort() {
	if r == nil {
		return
	}
	r.mu.Lock()
	r.aborted = true
	if r.conn != nil {
		r.conn.Close()
	}
	r.mu.Unlock()
	r.ln.Close()
	<-r.done
	if r.master != nil {
		r.master.Close()
	}
}

// setWinSize sets the terminal's size on its master end; a zero size is left alone.
func setWinSize(master *os.File, ws WinSize) error {
	if ws.Rows == 0 && ws.Cols == 0 {
		return nil
	}
	raw, err := master.SyscallConn()
	if err != nil {
		return err
	}
	var ierr error
	err = raw.Control(func(fd uintptr) {
		ierr = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, &unix.Winsize{Row: ws.Rows, Col: ws.Cols})
	})
	if err == nil {
		err = ierr
	}
	if err != nil {
		return fmt.Errorf("setting the terminal's size: %w", err)
	}
	return nil
}

// ptyOutput copies what a terminal's master end reads to a writer.
type ptyOutput struct {
	done chan struct{} // closed once the master has been read to its end, or closed
	last atomic.Int64  // when something was last read, in Unix nanoseconds
}

// copyPTYOutput copies master to dst (nil discards) until the terminal's other end is closed
// by every process that had it, which the master reads as EIO once all that was written to
// it has been read. After a write error it goes on reading, so that the processes writing
// to the terminal never block on a full buffer.
func copyPTYOutput(dst io.Writer, master *os.File) *ptyOutput {
	o := &ptyOutput{done: make(chan struct{})}
	o.last.Store(time.Now().UnixNano())
	if dst == nil {
		dst = io.Discard
	}
	go func() {
		defer close(o.done)
		buf := make([]byte, 32<<10)
		var werr error
		for {
			n, err := master.Read(buf)
			if n > 0 {
				o.last.Store(time.Now().UnixNano())
				if werr == nil {
					_, werr = dst.Write(buf[:n])
				}
			}
			if err != nil {
				return
			}
		}
	}()
	return o
}

// outputIdle is how long the output of a terminal whose process has ended may be silent
// before it is taken to be complete although the terminal is still open: a process the
// exec'd one left behind in the background can hold it open for as long as it lives.
const outputIdle = 200 * time.Millisecond

// wait waits, once the process writing to the terminal has ended, until its output has been
// read to its end, or has been silent for outputIdle since the later of the call and the last
// read, or max has passed.
func (o *ptyOutput) wait(max time.Duration) {
	start := time.Now()
	deadline := start.Add(max)
	tick := time.NewTicker(outputIdle / 4)
	defer tick.Stop()
	for {
		select {
		case <-o.done:
			return
		case now := <-tick.C:
			last := time.Unix(0, o.last.Load())
			if now.After(deadline) || now.Sub(last) > outputIdle && now.Sub(start) > outputIdle {
				return
			}
		}
	}
}

// ptySession is the caller's side of a foreground process's terminal: Stdin copied to the
// master, the master's output to Stdout, resizes applied.
type ptySession struct {
	master *os.File
	out    *ptyOutput
	stop   chan struct{}
}

// startPTY starts copying to and from the terminal (sized already, see consoleReceiver).
func startPTY(master *os.File, stdio IO) *ptySession {
	t := stdio.Terminal
	p := &ptySession{master: master, stop: make(chan struct{})}
	p.out = copyPTYOutput(stdio.Stdout, master)
	if stdio.Stdin != nil {
		go io.Copy(master, stdio.Stdin)
	}
	if t.Resize != nil {
		go func() {
			for {
				select {
				case ws, ok := <-t.Resize:
					if !ok {
						return
					}
					setWinSize(master, ws)
				case <-p.stop:
					return
				}
			}
		}()
	}
	return p
}

// finish waits for the output of the process that has ended (see ptyOutput.wait) and closes
// the terminal.
func (p *ptySession) finish(max time.Duration) {
	if p == nil {
		return
	}
	p.out.wait(max)
	close(p.stop)
	p.master.Close()
	<-p.out.done
}
