// Package readahead reads a stream ahead of its consumer in a goroutine of its own, and can
// hash it in another, so that reading (or decompressing), hashing and consuming a layer use
// separate cores instead of taking turns on one.
package readahead

import (
	"errors"
	"hash"
	"io"
	"sync"
	"sync/atomic"
)

// ErrClosed is returned by Read after Close.
var ErrClosed = errors.New("readahead: reader closed")

// Reader reads its source ahead in chunks. Read, Sum and Close must not be called
// concurrently with each other.
type Reader struct {
	src   io.Reader
	h     hash.Hash
	toC   chan *chunk // to the consumer, Read
	toH   chan *chunk // to the hasher
	free  chan *chunk
	done  chan struct{}
	wg    sync.WaitGroup
	hwg   sync.WaitGroup
	cur   *chunk
	off   int
	once  sync.Once
	ended bool
}

type chunk struct {
	buf  []byte
	n    int
	err  error
	refs atomic.Int32
}

// New starts reading src ahead, holding at most chunks chunks of size bytes. If h is not nil,
// every byte read is written to h, by a goroutine of its own; Sum returns the result.
func New(src io.Reader, h hash.Hash, chunks, size int) *Reader {
	chunks, size = max(chunks, 1), max(size, 1)
	r := &Reader{
		src: src, h: h,
		toC: make(chan *chunk, chunks), free: make(chan *chunk, chunks), done: make(chan struct{}),
	}
	for range chunks {
		r.free <- &chunk{buf: make([]byte, size)}
	}
	if h != nil {
		r.toH = make(chan *chunk, chunks)
		r.hwg.Go(func() {
			for c := range r.toH {
				h.Write(c.buf[:c.n])
				r.release(c)
			}
		})
	}
	r.wg.Go(r.produce)
	return r
}

func (r *Reader) produce() {
	defer close(r.toC)
	if r.toH != nil {
		defer close(r.toH)
	}
	for {
		var c *chunk
		select {
		case c = <-r.free:
		case <-r.done:
			return
		}
		n, err := io.ReadFull(r.src, c.buf)
		if err == io.ErrUnexpectedEOF {
			err = io.EOF
		}
		c.n, c.err = n, err
		c.refs.Store(1)
		if r.toH != nil {
			c.refs.Store(2)
			r.toH <- c // buffered for every chunk there is: never blocks
		}
		r.toC <- c // likewise
		if err != nil {
			return
		}
	}
}

func (r *Reader) release(c *chunk) {
	if c.refs.Add(-1) == 0 {
		r.free <- c
	}
}

// Read reads what the source gave, in order; the source's error (io.EOF at its end) comes
// after its last byte.
func (r *Reader) Read(p []byte) (int, error) {
	select {
	case <-r.done:
		return 0, ErrClosed
	default:
	}
	for r.cur == nil || r.off == r.cur.n {
		if r.cur != nil {
			if r.cur.err != nil {
				if r.cur.err == io.EOF {
					r.ended = true
				}
				return 0, r.cur.err
			}
			r.release(r.cur)
			r.cur = nil
		}
		c, ok := <-r.toC
		if !ok {
			return 0, ErrClosed
		}
		r.cur, r.off = c, 0
	}
	if len(p) == 0 {
		return 0, nil
	}
	n := copy(p, r.cur.buf[r.off:r.cur.n])
	r.off += n
	return n, nil
}

// Sum returns the hash of the whole stream, once Read has returned io.EOF; before that, or
// without a hash, it returns nil.
func (r *Reader) Sum() []byte {
	if r.h == nil || !r.ended {
		return nil
	}
	r.hwg.Wait()
	return r.h.Sum(nil)
}

// Close stops reading ahead and waits for the goroutines, so that the source may be closed
// once it returns (a Read of the source in progress is waited for). It does not close the
// source.
func (r *Reader) Close() error {
	r.once.Do(func() { close(r.done) })
	r.wg.Wait()
	r.hwg.Wait()
	return nil
}
