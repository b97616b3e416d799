package backend

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestFrames(t *testing.T) {
	var b bytes.Buffer
	for _, f := range []struct {
		typ     byte
		payload string
	}{{frameInput, "ls\n"}, {frameResize, "\x00\x1e\x00\x64"}, {frameInput, ""}} {
		if err := writeFrame(&b, f.typ, []byte(f.payload)); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	err := readFrames(&b, func(typ byte, payload []byte) error {
		got = append(got, string(typ)+string(payload))
		return nil
	})
	if !errors.Is(err, io.EOF) || len(got) != 3 || got[0] != "ils\n" || got[1] != "r\x00\x1e\x00\x64" || got[2] != "i" {
		t.Errorf("frames %q, %v", got, err)
	}
	huge := []byte{frameInput, 0xff, 0xff, 0xff, 0xff}
	if err := readFrames(bytes.NewReader(huge), func(byte, []byte) error { return nil }); err == nil || errors.Is(err, io.EOF) {
		t.Errorf("a 4 GiB frame: %v", err)
	}
	if err := readFrames(bytes.NewReader([]byte{frameInput, 0, 0, 0, 9, 'x'}), func(byte, []byte) error { return nil }); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("a truncated frame: %v", err)
	}
}

// FuzzReadFrames: whatever an attached client sends, the shim's reader neither panics nor
// hands on a payload larger than maxFrame.
func FuzzReadFrames(f *testing.F) {
	var b bytes.Buffer
	writeFrame(&b, frameInput, []byte("hello\n"))
	writeFrame(&b, frameResize, []byte{0, 30, 0, 100})
	f.Add(b.Bytes())
	f.Add([]byte{frameInput, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		readFrames(bytes.NewReader(data), func(typ byte, payload []byte) error {
			if len(payload) > maxFrame {
				t.Fatalf("payload of %d bytes", len(payload))
			}
			return nil
		})
	})
}
