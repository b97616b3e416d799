package backend

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"
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

// Every client gets the output in order and to its end when the hub closes; a client more
// than maxQueued behind is dropped without holding up the log or the others.
func TestAttachHub(t *testing.T) {
	var log bytes.Buffer
	hub := newAttachHub(&log)
	fastConn, fastPeer := net.Pipe()
	slowConn, slowPeer := net.Pipe()
	defer slowPeer.Close()
	fast, slow := newAttachClient(fastConn), newAttachClient(slowConn)
	for _, c := range []*attachClient{fast, slow} {
		if !hub.add(c) {
			t.Fatal("add refused")
		}
	}
	got := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(fastPeer)
		got <- b
	}()
	var want bytes.Buffer
	chunk := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB
	for i := 0; i < 2*maxQueued/len(chunk); i++ {
		chunk[0] = byte(i)
		want.Write(chunk)
		hub.Write(chunk)
	}
	hub.mu.Lock()
	_, slowKept := hub.clients[slow]
	hub.mu.Unlock()
	if slowKept {
		t.Error("a client that reads nothing was kept past maxQueued")
	}
	hub.closeAll()
	if b := <-got; !bytes.Equal(b, want.Bytes()) {
		t.Errorf("the reading client got %d bytes, want %d in order", len(b), want.Len())
	}
	if !bytes.Equal(log.Bytes(), want.Bytes()) {
		t.Errorf("the log got %d bytes, want %d", log.Len(), want.Len())
	}
	if hub.add(newAttachClient(fastConn)) {
		t.Error("a client was added after the hub closed")
	}
}

// TestAttachHubDrain: once the hub is closed, drain waits for every client to be sent all that
// was queued for it, however slowly it reads: the shim exits right after, and what its writers
// had not sent would be lost (the end of a container's output was, once).
func TestAttachHubDrain(t *testing.T) {
	hub := newAttachHub(nil)
	conn, peer := net.Pipe() // a write returns once the peer has read it all
	if !hub.add(newAttachClient(conn)) {
		t.Fatal("add refused")
	}
	want := bytes.Repeat([]byte("output "), 64<<10)
	hub.Write(want)
	hub.closeAll()
	if hub.drain(100 * time.Millisecond) {
		t.Fatal("drain returned while the client had read nothing")
	}
	got := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(peer)
		got <- b
	}()
	if !hub.drain(time.Minute) {
		t.Fatal("drain timed out while the client read")
	}
	if b := <-got; !bytes.Equal(b, want) {
		t.Errorf("the client got %d bytes, want all %d", len(b), len(want))
	}
}
