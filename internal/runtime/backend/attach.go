package backend

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Attaching to a detached container's terminal, or to its standard input when it was created
// with IO.OpenStdin. The shim that holds the terminal's master end (or the stdin pipe's write
// end) serves a unix socket, attach.sock in the container's directory (root's alone): every
// client connected to it gets what the terminal prints from then on, as the log does, and
// may type into it and resize it. Without a terminal a client gets no output on the socket
// (the container's output goes to its log files, which the caller follows), and its input
// goes to the pipe; resizes are ignored. A client sends frames, a type byte, a big-endian
// uint32 length and that many bytes: frameInput carries keystrokes, frameResize the new rows
// and columns (two big-endian uint16). The shim sends the terminal's output as it comes, and
// closes the connection once the container has ended and its output has been read.

// attachName is the attach socket's name in a container's directory.
const attachName = "attach.sock"

// Frame types a client sends.
const (
	frameInput  = 'i'
	frameResize = 'r'
)

// maxFrame bounds a frame's payload; the shim drops a client that sends more.
const maxFrame = 64 << 10

// maxQueued is how much output may wait for a slow client; one that falls further behind
// is dropped rather than let it stall the container's output or the shim's memory.
const maxQueued = 4 << 20

// attachHub sends the terminal's output to the log and to every attached client.
type attachHub struct {
	log io.Writer

	mu      sync.Mutex
	clients map[*attachClient]struct{}
	closed  bool
	logErr  error
	writers sync.WaitGroup // the clients' writers, which drain waits for
}

// attachClient is one connection to the attach socket. Output queues up in pending and its
// own goroutine writes it, so that a slow client never holds up the others or the log.
type attachClient struct {
	conn   net.Conn
	notify chan struct{} // a token when pending has grown or the client is ended

	mu      sync.Mutex
	pending []byte
	ended   bool // no more output: write what is pending, then close
}

func newAttachClient(conn net.Conn) *attachClient {
	return &attachClient{conn: conn, notify: make(chan struct{}, 1)}
}

func newAttachHub(log io.Writer) *attachHub {
	if log == nil {
		log = io.Discard
	}
	return &attachHub{log: log, clients: map[*attachClient]struct{}{}}
}

// Write copies p to the log (until the log fails) and queues it for every client.
func (h *attachHub) Write(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.logErr == nil {
		_, h.logErr = h.log.Write(p)
	}
	for c := range h.clients {
		if !c.queue(p) {
			delete(h.clients, c)
		}
	}
	return len(p), nil
}

// add registers a client and starts its writer; false once the hub is closed (the container
// has ended).
func (h *attachHub) add(c *attachClient) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false
	}
	h.clients[c] = struct{}{}
	h.writers.Go(c.write)
	return true
}

func (h *attachHub) remove(c *attachClient) {
	h.mu.Lock()
	delete(h.clients, c)
	h.mu.Unlock()
	c.end()
}

// closeAll ends every client once what is queued for it is written, and refuses new ones.
func (h *attachHub) closeAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for c := range h.clients {
		delete(h.clients, c)
		c.end()
	}
}

// drain waits, at most max, for every client's writer to have sent what was queued for it
// and closed its connection; it reports whether they all did. The shim calls it after
// closeAll, before it exits and takes the unsent output with it.
func (h *attachHub) drain(max time.Duration) bool {
	done := make(chan struct{})
	go func() {
		h.writers.Wait()
		close(done)
	}()
	select {
	case <-done:
		return true
	case <-time.After(max):
		return false
	}
}

// queue adds p to what the client is sent; false (and the client ended) when it has fallen
// more than maxQueued behind.
func (c *attachClient) queue(p []byte) bool {
	c.mu.Lock()
	ok := !c.ended && len(c.pending)+len(p) <= maxQueued
	if ok {
		c.pending = append(c.pending, p...)
	} else {
		c.ended = true
	}
	c.mu.Unlock()
	c.wake()
	return ok
}

// end says no more output comes; the writer closes the connection once it has sent the rest.
func (c *attachClient) end() {
	c.mu.Lock()
	c.ended = true
	c.mu.Unlock()
	c.wake()
}

func (c *attachClient) wake() {
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

// write sends the queued output to the client and closes the connection at the end.
func (c *attachClient) write() {
	defer c.conn.Close()
	for range c.notify {
		c.mu.Lock()
		out, ended := c.pending, c.ended
		c.pending = nil
		c.mu.Unlock()
		if len(out) > 0 {
			c.conn.SetWriteDeadline(time.Now().Add(grace))
			if _, err := c.conn.Write(out); err != nil {
				c.end()
				return
			}
		}
		if ended {
			c.mu.Lock()
			rest := len(c.pending)
			c.mu.Unlock()
			if rest == 0 {
				return
			}
			c.wake()
		}
	}
}

// serveAttach accepts clients on ln until it is closed, relaying their input to in (the
// terminal's master, or the write end of the container's stdin pipe) and their sizes to
// resize (nil: no terminal, sizes are ignored).
func serveAttach(ln *net.UnixListener, in io.Writer, resize func(WinSize) error, hub *attachHub) {
	for {
		conn, err := ln.AcceptUnix()
		if err != nil {
			return
		}
		c := newAttachClient(conn)
		if !hub.add(c) {
			conn.Close()
			continue
		}
		go func() {
			defer hub.remove(c)
			readFrames(conn, func(typ byte, payload []byte) error {
				switch typ {
				case frameInput:
					_, err := in.Write(payload)
					return err
				case frameResize:
					if len(payload) != 4 {
						return fmt.Errorf("resize frame of %d bytes", len(payload))
					}
					if resize == nil {
						return nil
					}
					rows, cols := binary.BigEndian.Uint16(payload), binary.BigEndian.Uint16(payload[2:])
					return resize(WinSize{Rows: rows, Cols: cols})
				}
				return fmt.Errorf("unknown frame type %q", typ)
			})
		}()
	}
}

// readFrames reads frames from r until it ends or handle fails.
func readFrames(r io.Reader, handle func(typ byte, payload []byte) error) error {
	br := bufio.NewReader(r)
	var head [5]byte
	for {
		if _, err := io.ReadFull(br, head[:]); err != nil {
			return err
		}
		n := binary.BigEndian.Uint32(head[1:])
		if n > maxFrame {
			return fmt.Errorf("frame of %d bytes, more than %d", n, maxFrame)
		}
		payload := make([]byte, n)
		if _, err := io.ReadFull(br, payload); err != nil {
			return err
		}
		if err := handle(head[0], payload); err != nil {
			return err
		}
	}
}

// writeFrame writes one frame to w.
func writeFrame(w io.Writer, typ byte, payload []byte) error {
	var head [5]byte
	head[0] = typ
	binary.BigEndian.PutUint32(head[1:], uint32(len(payload)))
	if _, err := w.Write(head[:]); err != nil {
		return err
	}
	_, err := w.Write(payload)
	return err
}

// setSize sets the terminal's size on its master end.
func setSize(master *os.File, s WinSize) error {
	raw, err := master.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = raw.Control(func(fd uintptr) {
		serr = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, &unix.Winsize{Row: s.Rows, Col: s.Cols})
	})
	return errors.Join(err, serr)
}

// Attach connects stdio to the terminal of a detached container created with one: what
// the terminal prints from now on is copied to stdio.Stdout, stdio.Stdin is typed into it
// and stdio.Terminal's sizes resize it. For a container created with IO.OpenStdin,
// stdio.Stdin goes to the container's standard input and nothing is copied to Stdout. It
// returns nil once the container has ended and its output is copied, or ctx's error when ctx
// ends first (the container goes on running: that is how a caller detaches). The end of
// Stdin does not end the attachment.
func (c *ociCLI) Attach(ctx context.Context, id string, stdio IO) error {
	if err := c.checkID(id); err != nil {
		return err
	}
	st, known, err := c.state(ctx, id)
	if err != nil {
		return err
	}
	if !known || st.Status != Running {
		return fmt.Errorf("%s attach %s: %w (it is %s)", c.name, id, ErrNotRunning, st.Status)
	}
	conn, err := dialAttach(c.dirOf(id))
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ECONNREFUSED) {
		return fmt.Errorf("%s attach %s: the container has no terminal or open standard input to attach to (it was not created with one, or its shim has ended)", c.name, id)
	}
	if err != nil {
		return fmt.Errorf("%s attach %s: %w", c.name, id, err)
	}
	defer conn.Close()
	var wmu sync.Mutex
	send := func(typ byte, payload []byte) error {
		wmu.Lock()
		defer wmu.Unlock()
		return writeFrame(conn, typ, payload)
	}
	if t := stdio.Terminal; t != nil {
		if t.Size != (WinSize{}) {
			send(frameResize, sizePayload(t.Size))
		}
		if t.Resize != nil {
			go func() {
				for s := range t.Resize {
					if send(frameResize, sizePayload(s)) != nil {
						return
					}
				}
			}()
		}
	}
	if stdio.Stdin != nil {
		go func() {
			buf := make([]byte, 32<<10)
			for {
				n, err := stdio.Stdin.Read(buf)
				if n > 0 && send(frameInput, buf[:n]) != nil {
					return
				}
				if err != nil {
					return
				}
			}
		}()
	}
	out := stdio.Stdout
	if out == nil {
		out = io.Discard
	}
	done := make(chan error, 1)
	go func() {
		_, err := io.Copy(out, conn)
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("%s attach %s: %w", c.name, id, err)
		}
		// The shim ends an attachment when the container has ended, or when the client
		// fell too far behind its output.
		if st, known, err := c.state(ctx, id); err == nil && known && st.Status == Running {
			return fmt.Errorf("%s attach %s: the container's shim dropped the attachment: its output came faster than it was read", c.name, id)
		}
		return nil
	case <-ctx.Done():
		conn.Close()
		<-done
		return ctx.Err()
	}
}

func sizePayload(s WinSize) []byte {
	var b [4]byte
	binary.BigEndian.PutUint16(b[:], s.Rows)
	binary.BigEndian.PutUint16(b[2:], s.Cols)
	return b[:]
}

// dialAttach connects to the attach socket in dir, through a descriptor of dir when its
// path is too long for a socket address.
func dialAttach(dir string) (*net.UnixConn, error) {
	path := filepath.Join(dir, attachName)
	if _, err := os.Lstat(path); err != nil {
		return nil, err
	}
	addr := path
	if len(path) > maxSunPath {
		d, err := os.Open(dir)
		if err != nil {
			return nil, err
		}
		defer d.Close()
		addr = fmt.Sprintf("/proc/self/fd/%d/%s", d.Fd(), attachName)
	}
	return net.DialUnix("unix", nil, &net.UnixAddr{Name: addr, Net: "unix"})
}
