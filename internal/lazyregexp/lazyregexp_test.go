package lazyregexp

import "testing"

func TestNew(t *testing.T) {
	re := New(`^sha256:[0-9a-f]{64}$`)
	first, second := re(), re()
	if first != second {
		t.Error("compiled twice")
	}
	if !first.MatchString("sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef") {
		t.Error("no match")
	}
	bad := New(`(`)
	defer func() {
		if recover() == nil {
			t.Error("a bad expression did not panic on first use")
		}
	}()
	bad()
}
