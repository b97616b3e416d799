package backend_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moatsec/moat/internal/runtime/backend"
	"golang.org/x/sys/unix"
)

// standIn is the runc backend with a shell script for its binary, called as runc is:
// [--root R] [--log L --log-format json] run --bundle B --pid-file P ID. The script gets
// $bundle and $pid from its arguments and then runs body.
func standIn(t *testing.T, body string) *backend.Runc {
	t.Helper()
	dir := t.TempDir()
	script := filepath.Join(dir, "runtime")
	err := os.WriteFile(script, []byte(`#!/bin/sh
while [ $# -gt 0 ]; do
	case "$1" in
	--bundle) bundle=$2; shift ;;
	--pid-file) pid=$2; shift ;;
	esac
	shift
done
`+body), 0o755)
	if err != nil {
		t.Fatal(err)
	}
	rt, err := backend.NewRunc(filepath.Join(dir, "state"), backend.WithBinary(script))
	if err != nil {
		t.Fatal(err)
	}
	return rt
}

// TestEarlyRunReaderToEOF begins runs with a stand-in runtime that reads config.json to its
// end, as a runtime that does not stop at the end of the JSON value would: it must get the
// whole spec and then EOF, whether it opens the FIFO before or after the spec is written,
// and whatever the spec's size (past the FIFO's 64 KiB too).
func TestEarlyRunReaderToEOF(t *testing.T) {
	got := filepath.Join(t.TempDir(), "got")
	rt := standIn(t, `sleep "$DELAY"
cat "$bundle/config.json" > `+got+` || exit 9
echo $$ > "$pid"
`)
	for _, tt := range []struct {
		delay string
		size  int
	}{{"0", 100}, {"0.3", 100}, {"0", 300 << 10}, {"0.3", 300 << 10}} {
		t.Setenv("DELAY", tt.delay)
		bundle := t.TempDir()
		spec := []byte(`{"ociVersion":"1.0.2","annotations":{"x":"` + strings.Repeat("a", tt.size) + `"}}`)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		p, err := rt.BeginRun(ctx, "eof", bundle, backend.IO{})
		if err != nil {
			t.Fatal(err)
		}
		code, err := p.Run(ctx, spec)
		cancel()
		if err != nil || code != 0 {
			t.Fatalf("delay %s, %d bytes: Run: %d, %v", tt.delay, len(spec), code, err)
		}
		if b, err := os.ReadFile(got); err != nil || !bytes.Equal(b, spec) {
			t.Errorf("delay %s: the runtime read %d bytes (%v), want the spec's %d", tt.delay, len(b), err, len(spec))
		}
		if b, err := os.ReadFile(filepath.Join(bundle, "config.json")); err != nil || !bytes.Equal(b, spec) {
			t.Errorf("delay %s: config.json after the run holds %d bytes (%v), want the spec", tt.delay, len(b), err)
		}
	}
}

// TestEarlyRunSpecEndsInNewline: a runtime that reads one JSON value, as runc does, leaves
// what follows it; the newline that ends moat's specs must not be left in the FIFO, or the FIFO
// would never be empty, never closed, and the bundle's config.json would stay a FIFO (which
// Exec refuses) for as long as the container runs.
func TestEarlyRunSpecEndsInNewline(t *testing.T) {
	rt := standIn(t, `head -c "$READ_BYTES" "$bundle/config.json" > /dev/null || exit 9
echo $$ > "$pid"
sleep 5
`)
	value := `{"ociVersion":"1.0.2"}`
	t.Setenv("READ_BYTES", fmt.Sprint(len(value)))
	bundle := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := rt.BeginRun(ctx, "newline", bundle, backend.IO{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := p.Run(ctx, []byte(value+"\n"))
		done <- err
	}()
	path := filepath.Join(bundle, "config.json")
	for deadline := time.Now().Add(4 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if fi, err := os.Lstat(path); err == nil && fi.Mode().IsRegular() {
			break
		}
		if time.Now().After(deadline) {
			t.Error("config.json is still not a regular file while the runtime runs")
			break
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestReadSpecRefusesFIFO: a bundle whose spec is still a FIFO, being handed to a runtime, is
// refused without blocking and without taking the spec.
func TestReadSpecRefusesFIFO(t *testing.T) {
	bundle := t.TempDir()
	if err := unix.Mkfifo(filepath.Join(bundle, "config.json"), 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := backend.ReadSpec(bundle)
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("ReadSpec of a FIFO: %v, want an error saying it is not a regular file", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ReadSpec blocked on a FIFO")
	}
}

func TestProcessTerminal(t *testing.T) {
	for _, tt := range []struct {
		spec string
		want bool
		err  bool
	}{
		{`{"ociVersion":"1.1.0","process":{"terminal":true,"args":["sh"]},"linux":{}}`, true, false},
		{`{"ociVersion":"1.1.0","process":{"args":["sh"]}}`, false, false},
		{`{"linux":{"seccomp":{"syscalls":[{"names":["a"]}]}},"process":{"terminal":true}}`, true, false},
		{`{"ociVersion":"1.1.0"}`, false, false},
		{`{"Process":{"Terminal":true}}`, true, false},
		{`{}`, false, false},
		{`{`, false, true},
		{`[]`, false, true},
		{`{"process":{"terminal":"yes"}}`, false, true},
		{`{"ociVersion":1,`, false, true},
		{``, false, true},
	} {
		got, err := backend.ProcessTerminal([]byte(tt.spec))
		if got != tt.want || (err != nil) != tt.err {
			t.Errorf("%s: %v, %v; want %v (error: %v)", tt.spec, got, err, tt.want, tt.err)
		}
	}
}

// FuzzProcessTerminal: reading only the process member agrees with decoding the whole spec,
// whenever the spec decodes and names one process member.
func FuzzProcessTerminal(f *testing.F) {
	f.Add([]byte(`{"ociVersion":"1.1.0","process":{"terminal":true}}`))
	f.Add([]byte(`{"linux":{},"process":{"terminal":false,"args":["a"]}}`))
	f.Fuzz(func(t *testing.T, spec []byte) {
		got, err := backend.ProcessTerminal(spec)
		var full struct {
			Process *struct {
				Terminal bool `json:"terminal"`
			} `json:"process"`
		}
		if json.Unmarshal(spec, &full) != nil || bytes.Count(bytes.ToLower(spec), []byte(`process`)) > 1 {
			return
		}
		want := full.Process != nil && full.Process.Terminal
		if err != nil || got != want {
			t.Fatalf("%q: %v, %v; the whole spec says %v", spec, got, err, want)
		}
	})
}
