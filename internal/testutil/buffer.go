package testutil

import (
	"bytes"
	"sync"
	"testing"
	"time"
)

// LockedBuffer is a bytes.Buffer that one goroutine may write while others read it, as a
// test reads a container's output while the container still writes it.
type LockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *LockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns what has been written so far.
func (l *LockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Await fails the test unless done delivers, within timeout, an error that ok accepts; what
// names the call waited for in the failure.
func Await(t testing.TB, done <-chan error, timeout time.Duration, what string, ok func(error) bool) {
	t.Helper()
	select {
	case err := <-done:
		if !ok(err) {
			t.Errorf("%s: %v", what, err)
		}
	case <-time.After(timeout):
		t.Fatalf("%s did not return within %s", what, timeout)
	}
}
