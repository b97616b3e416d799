package backend_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/moatsec/moat/internal/runtime/backend"
)

// Constructors refuse what cannot work before anything is created, saying what is missing
// and how to install it.
func TestUnavailable(t *testing.T) {
	for _, tc := range []struct {
		name string
		new  func(dir string) error
		want []string
	}{
		{"runc", func(dir string) error {
			_, err := backend.NewRunc(dir, backend.WithBinary("/nonexistent/runc"))
			return err
		}, []string{"runc", "/nonexistent/runc", "apt-get install runc"}},
		{"crun", func(dir string) error {
			_, err := backend.NewCrun(dir, backend.WithBinary("/nonexistent/crun"))
			return err
		}, []string{"crun", "apt-get install crun"}},
		{"runsc", func(dir string) error {
			_, err := backend.NewRunsc(dir, backend.WithBinary("/nonexistent/runsc"))
			return err
		}, []string{"runsc", "CGO_ENABLED=0 go install gvisor.dev/gvisor/runsc@" + backend.RunscVersion}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.new(t.TempDir())
			var ue *backend.UnavailableError
			if !errors.Is(err, backend.ErrUnavailable) || !errors.As(err, &ue) {
				t.Fatalf("got %v, want an *UnavailableError", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestOptions(t *testing.T) {
	if _, err := backend.NewRunc(t.TempDir(), backend.WithPlatform("systrap")); err == nil {
		t.Error("runc accepted a gVisor platform")
	}
	if _, err := backend.NewRunsc(t.TempDir(), backend.WithBinary("/bin/true"), backend.WithPlatform("xen")); err == nil {
		t.Error("runsc accepted an unknown platform")
	}
	if _, err := backend.NewRunc(""); err == nil {
		t.Error("runc accepted an empty state directory")
	}
}

// A detached container's stdio must outlive the caller, so Create takes files only, and ids
// that could escape the state directory are refused before anything runs.
func TestCreateRefusals(t *testing.T) {
	rt, err := backend.NewRunc(t.TempDir(), backend.WithBinary("/bin/false"))
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.Create(context.Background(), "c1", t.TempDir(), backend.IO{Stdout: &bytes.Buffer{}}); err == nil || !strings.Contains(err.Error(), "must be files") {
		t.Errorf("Create with a bytes.Buffer stdout: %v", err)
	}
	for _, id := range []string{"", "..", "a/b", "-x", strings.Repeat("x", 129)} {
		if err := rt.Create(context.Background(), id, t.TempDir(), backend.IO{}); err == nil || !strings.Contains(err.Error(), "invalid container id") {
			t.Errorf("Create %q: %v", id, err)
		}
	}
}

func TestValidID(t *testing.T) {
	for _, tt := range []struct {
		id   string
		want bool
	}{
		{"a", true},
		{"0", true},
		{"web-1.prod_2", true},
		{strings.Repeat("x", 128), true},
		{"", false},
		{strings.Repeat("x", 129), false},
		{"-x", false},
		{".x", false},
		{"_x", false},
		{"..", false},
		{"a/b", false},
		{"a b", false},
		{"é", false},
		{"a\x00", false},
	} {
		if got := backend.ValidID(tt.id); got != tt.want {
			t.Errorf("ValidID(%q) = %t, want %t", tt.id, got, tt.want)
		}
	}
}
