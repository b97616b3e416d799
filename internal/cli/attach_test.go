package cli

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestDetachReader(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
		detached       bool
	}{
		{"plain", "ls -l\n", "ls -l\n", false},
		{"detach", "abc\x10\x11def", "abc", true},
		{"ctrl-p alone", "a\x10b", "a\x10b", false},
		{"ctrl-p twice then q", "\x10\x10\x11x", "\x10", true},
		{"ctrl-p at the end", "a\x10", "a", false},
		{"ctrl-q alone", "\x11", "\x11", false},
	} {
		for _, oneByte := range []bool{false, true} {
			var r io.Reader = strings.NewReader(tc.in)
			if oneByte {
				r = iotest.OneByteReader(r)
			}
			called := false
			d := &detachReader{r: r, detach: func() { called = true }}
			var got bytes.Buffer
			buf := make([]byte, 3)
			for {
				n, err := d.Read(buf)
				got.Write(buf[:n])
				if err != nil {
					break
				}
			}
			if got.String() != tc.want || called != tc.detached || d.detached() != tc.detached {
				t.Errorf("%s (one byte at a time: %t): passed %q, detached %t; want %q, %t", tc.name, oneByte, got.String(), called, tc.want, tc.detached)
			}
		}
	}
}
