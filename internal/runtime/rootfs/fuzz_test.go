package rootfs

import (
	"archive/tar"
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// FuzzUnpack feeds arbitrary tar streams to Unpack and checks that nothing outside the layer
// directory changed, whatever the stream holds or however the unpack ends, and that the layer
// holds nothing Unpack promises not to create.
func FuzzUnpack(f *testing.F) {
	seeds := [][]ent{
		{file("a", "1"), dir("d/"), symlink("l", "../outside"), hardlink("h", "a")},
		{file("../outside/passwd", "x")},
		{symlink("e", "../outside"), file("e/passwd", "x")},
		{symlink("e", "/"), dir("e/"), file("e/x", "1")},
		{hardlink("p", "../outside/passwd")},
		{symlink("s", "../outside/passwd"), hardlink("h", "s"), file("s", "x")},
		{file("d/.wh..wh..opq", ""), file(".wh.x", ""), file("x", "y")},
		{{name: "dev/sda", typ: tar.TypeBlock, major: 8}, {name: "p", typ: tar.TypeFifo}, hardlink("q", "dev/sda")},
		{dir("d/"), file("d", "f"), dir("d/"), file("d/x", "1")},
		{{name: "f", typ: tar.TypeReg, mode: 0o6755, uid: 5, body: "x", xattrs: map[string]string{"trusted.overlay.redirect": "/x", "user.a": "b"}}},
	}
	for _, s := range seeds {
		f.Add(makeTar(f, s...))
	}
	mem := memDir(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		requireRoot(t)
		s := newSandboxIn(t, mem)
		lim := Limits{MaxBytes: 1 << 20, MaxEntries: 256, MaxPathLen: 512, MaxRatio: 10, RatioFloor: 0}
		Unpack(context.Background(), bytes.NewReader(data), s.layer, IDMap{}, lim)
		s.checkOutside(t)
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(s.outside, "passwd"), &st); err != nil || st.Nlink != 1 {
			t.Fatalf("the file outside has %d links (%v)", st.Nlink, err)
		}
		err := filepath.WalkDir(s.layer, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			var st unix.Stat_t
			if err := unix.Lstat(p, &st); err != nil {
				return err
			}
			switch st.Mode & unix.S_IFMT {
			case unix.S_IFDIR, unix.S_IFREG, unix.S_IFLNK:
			case unix.S_IFCHR:
				if st.Rdev != 0 {
					t.Errorf("%s: a device %d/%d", p, unix.Major(st.Rdev), unix.Minor(st.Rdev))
				}
			default:
				t.Errorf("%s: mode %o", p, st.Mode)
			}
			for _, x := range xattrList(p) {
				if strings.HasPrefix(x, "trusted.") && x != overlayOpaque || strings.HasPrefix(x, "user.overlay.") {
					t.Errorf("%s: xattr %s", p, x)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}

// memDir returns a directory on tmpfs for the fuzz target's sandboxes, or "" for the test's
// temporary directory: deleting files on a disk mounted with discard waits for the device on
// every file, which slows fuzzing to a few executions a second.
func memDir(f *testing.F) string {
	var st unix.Statfs_t
	if unix.Statfs("/dev/shm", &st) != nil || st.Type != unix.TMPFS_MAGIC {
		return ""
	}
	d, err := os.MkdirTemp("/dev/shm", "moat-fuzz-unpack-")
	if err != nil {
		return ""
	}
	f.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func xattrList(p string) []string {
	buf := make([]byte, 4096)
	n, err := unix.Llistxattr(p, buf)
	if err != nil || n <= 0 {
		return nil
	}
	return strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00")
}
