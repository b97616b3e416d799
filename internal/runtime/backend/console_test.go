package backend

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The console socket takes a terminal's master end from whoever connects to the address the
// runtime is given, also when the container's directory is too deep for a socket address,
// and refuses what is not a terminal.
func TestConsoleSocket(t *testing.T) {
	ptmx := func(t *testing.T) *os.File {
		f, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
		if err != nil {
			t.Skipf("no pseudo-terminals here: %v", err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	notTTY := func(t *testing.T) *os.File {
		f, err := os.Open(os.DevNull)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	for _, tc := range []struct {
		name    string
		deep    bool
		send    func(t *testing.T) *os.File // nil: connect and send nothing
		wantErr string
	}{
		{"short path", false, ptmx, ""},
		{"path too long for sun_path", true, ptmx, ""},
		{"not a terminal", false, notTTY, "not a terminal's master"},
		{"nothing sent", false, nil, "timed out"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.deep {
				dir = filepath.Join(dir, strings.Repeat("d", 60), strings.Repeat("e", 60))
				if err := os.MkdirAll(dir, 0o700); err != nil {
					t.Fatal(err)
				}
			}
			s, err := listenConsole(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if len(s.addr) > maxSunPath {
				t.Fatalf("address %q is longer than %d", s.addr, maxSunPath)
			}
			if tc.deep != strings.HasPrefix(s.addr, "/proc/") {
				t.Errorf("address %q for %s", s.addr, s.path)
			}
			if _, err := os.Stat(s.path); err != nil {
				t.Errorf("the socket is not in the directory: %v", err)
			}
			conn, err := net.Dial("unix", s.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			var sent *os.File
			if tc.send != nil {
				sent = tc.send(t)
				if _, _, err := conn.(*net.UnixConn).WriteMsgUnix([]byte("/dev/pts/x"), unix.UnixRights(int(sent.Fd())), nil); err != nil {
					t.Fatal(err)
				}
			}
			r, err := receiveConsole(s.ln, WinSize{Rows: 12, Cols: 34})
			if err != nil {
				t.Fatal(err)
			}
			master, err := r.wait(200 * time.Millisecond)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want an error saying %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer master.Close()
			want, _ := unix.IoctlGetInt(int(sent.Fd()), unix.TIOCGPTN)
			if got, err := unix.IoctlGetInt(int(master.Fd()), unix.TIOCGPTN); err != nil || got != want {
				t.Errorf("received terminal %d (%v), sent %d", got, err, want)
			}
			if ws, err := unix.IoctlGetWinsize(int(sent.Fd()), unix.TIOCGWINSZ); err != nil || ws.Row != 12 || ws.Col != 34 {
				t.Errorf("terminal size %+v (%v), want 12x34", ws, err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(s.path); !os.IsNotExist(err) {
				t.Errorf("the socket is still there after Close: %v", err)
			}
		})
	}
}
