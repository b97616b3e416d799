package readahead_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
	"testing/iotest"

	"github.com/moatsec/moat/internal/readahead"
)

func TestReadsInOrderAndHashes(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tt := range []struct {
		name          string
		size          int
		chunks, chunk int
		hash          bool
	}{
		{"empty", 0, 4, 64, true},
		{"one byte", 1, 4, 64, true},
		{"exact chunks", 4 * 64, 4, 64, true},
		{"many chunks", 100_003, 3, 1000, true},
		{"one chunk of one byte", 5000, 1, 1, true},
		{"no hash", 100_003, 3, 1000, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			data := make([]byte, tt.size)
			for i := range data {
				data[i] = byte(rng.Uint32())
			}
			// One-byte reads from the source and odd-sized reads by the consumer.
			var h = sha256.New()
			if !tt.hash {
				h = nil
			}
			r := readahead.New(iotest.OneByteReader(bytes.NewReader(data)), h, tt.chunks, tt.chunk)
			defer r.Close()
			var got []byte
			buf := make([]byte, 777)
			for {
				n, err := r.Read(buf[:1+rng.IntN(len(buf))])
				got = append(got, buf[:n]...)
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("read %d bytes, not the %d written", len(got), len(data))
			}
			want := sha256.Sum256(data)
			if sum := r.Sum(); tt.hash && !bytes.Equal(sum, want[:]) || !tt.hash && sum != nil {
				t.Errorf("Sum = %x, want %x (hashing: %v)", sum, want, tt.hash)
			}
			if n, err := r.Read(buf); n != 0 || err != io.EOF {
				t.Errorf("Read after EOF = %d, %v", n, err)
			}
		})
	}
}

func TestSourceError(t *testing.T) {
	boom := errors.New("boom")
	src := io.MultiReader(bytes.NewReader([]byte("abcdef")), iotest.ErrReader(boom))
	r := readahead.New(src, sha256.New(), 2, 4)
	defer r.Close()
	got, err := io.ReadAll(r)
	if string(got) != "abcdef" || !errors.Is(err, boom) {
		t.Errorf("ReadAll = %q, %v; want the bytes before the error, then the error", got, err)
	}
	if r.Sum() != nil {
		t.Error("Sum of a stream that failed is not nil")
	}
}

// TestCloseEarly: a consumer that stops reading and closes lets the goroutines end, although
// the source has more and every chunk is full.
func TestCloseEarly(t *testing.T) {
	r := readahead.New(endless{}, sha256.New(), 2, 16)
	if _, err := io.ReadFull(r, make([]byte, 40)); err != nil {
		t.Fatal(err)
	}
	r.Close() // would hang if a goroutine were stuck
	if _, err := r.Read(make([]byte, 1)); !errors.Is(err, readahead.ErrClosed) {
		t.Errorf("Read after Close: %v, want ErrClosed", err)
	}
	if r.Sum() != nil {
		t.Error("Sum of a stream closed early is not nil")
	}
}

type endless struct{}

func (endless) Read(p []byte) (int, error) { return len(p), nil }
