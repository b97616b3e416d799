package image

import (
	"bytes"
	"compress/gzip"
	"io"
	"math/rand"
	"testing"
)

func gz(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

// The gzip decoder (ISA-L with -tags isal, Go's otherwise) must agree with compress/gzip.
func TestGzipReader(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	big := make([]byte, 3<<20)
	for i := range big {
		big[i] = byte(rng.Intn(16)) // compressible but not trivial
	}
	good := gz(big)
	corrupt := bytes.Clone(good)
	corrupt[len(corrupt)/2] ^= 0xff
	badCRC := bytes.Clone(good)
	badCRC[len(badCRC)-6] ^= 0xff
	cases := []struct {
		name    string
		in      []byte
		want    []byte
		wantErr bool
	}{
		{"one member", good, big, false},
		{"empty payload", gz(nil), nil, false},
		{"two members", append(gz([]byte("hello ")), gz([]byte("world"))...), []byte("hello world"), false},
		{"truncated", good[:len(good)/3], nil, true},
		{"truncated trailer", good[:len(good)-4], nil, true},
		{"corrupt", corrupt, nil, true},
		{"bad checksum", badCRC, nil, true},
		{"not gzip", []byte("plain text, not gzip at all"), nil, true},
	}
	t.Logf("gzip implementation: %s", GzipImplementation)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := newGzipReader(bytes.NewReader(tc.in))
			var got []byte
			if err == nil {
				got, err = io.ReadAll(r)
				r.Close()
			}
			if tc.wantErr {
				if err == nil {
					t.Fatalf("no error; read %d bytes", len(got))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tc.want) {
				t.Fatalf("read %d bytes, want %d", len(got), len(tc.want))
			}
		})
	}
}

func FuzzGzipReader(f *testing.F) {
	f.Add(gz([]byte("hello world")))
	f.Add(append(gz([]byte("a")), gz([]byte("b"))...))
	f.Add([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff})
	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := newGzipReader(bytes.NewReader(in))
		if err != nil {
			return
		}
		defer r.Close()
		got, err := io.ReadAll(io.LimitReader(r, 64<<20))
		// Whatever the decoder accepts, compress/gzip must accept with the same bytes.
		if err == nil {
			zr, zerr := gzip.NewReader(bytes.NewReader(in))
			if zerr != nil {
				t.Fatalf("decoder accepted input compress/gzip rejects: %v", zerr)
			}
			want, zerr := io.ReadAll(io.LimitReader(zr, 64<<20))
			if zerr == nil && !bytes.Equal(got, want) {
				t.Fatalf("decoded %d bytes, compress/gzip %d", len(got), len(want))
			}
		}
	})
}
