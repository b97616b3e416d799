package rootfs

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moatsec/moat/internal/testutil"
	"golang.org/x/sys/unix"
)

// requireRoot skips a test that needs root (chown, mknod, trusted.* xattrs, mounts). CI runs
// as root, so these tests run there.
func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
}

// ent is a tar entry with everything Unpack reads.
type ent struct {
	name     string
	typ      byte
	mode     int64
	uid, gid int
	link     string
	body     string
	size     int64 // overrides len(body) in the header
	major    int64
	minor    int64
	xattrs   map[string]string
	mtime    time.Time
}

func file(name, body string) ent { return ent{name: name, typ: tar.TypeReg, mode: 0o644, body: body} }
func dir(name string) ent        { return ent{name: name, typ: tar.TypeDir, mode: 0o755} }
func symlink(name, target string) ent {
	return ent{name: name, typ: tar.TypeSymlink, mode: 0o777, link: target}
}
func hardlink(name, target string) ent { return ent{name: name, typ: tar.TypeLink, link: target} }

var epoch = time.Unix(1700000000, 0)

func makeTar(t testing.TB, ents ...ent) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Uid: e.uid, Gid: e.gid, Linkname: e.link,
			Devmajor: e.major, Devminor: e.minor, ModTime: e.mtime, Format: tar.FormatPAX}
		if h.ModTime.IsZero() {
			h.ModTime = epoch
		}
		if e.typ == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if e.size != 0 {
			h.Size = e.size
		}
		for k, v := range e.xattrs {
			if h.PAXRecords == nil {
				h.PAXRecords = map[string]string{}
			}
			h.PAXRecords["SCHILY.xattr."+k] = v
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatalf("writing %s: %v", e.name, err)
		}
		if e.typ == tar.TypeReg && e.size == 0 {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	// A short body (an entry with size set) makes Close fail: that broken archive is the point.
	tw.Close()
	return buf.Bytes()
}

// sandbox is a directory with the layer directory and, beside it, a directory standing for
// the rest of the host, which no unpack may touch.
type sandbox struct {
	base, layer, outside string
}

func newSandbox(t testing.TB) sandbox {
	t.Helper()
	return newSandboxIn(t, "")
}

// newSandboxIn makes the sandbox under parent, or in the test's temporary directory when
// parent is "".
func newSandboxIn(t testing.TB, parent string) sandbox {
	t.Helper()
	var base string
	if parent == "" {
		base = t.TempDir()
	} else {
		var err error
		if base, err = os.MkdirTemp(parent, "sandbox-"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(base) })
	}
	s := sandbox{base: base, layer: filepath.Join(base, "layer"), outside: filepath.Join(base, "outside")}
	for _, d := range []string{s.layer, s.outside} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(s.outside, "passwd"), []byte("root:x:0:0"), 0o644); err != nil {
		t.Fatal(err)
	}
	return s
}

// checkOutside fails unless the directory beside the layer holds only its one untouched file
// with a single link, and the base holds nothing else.
func (s sandbox) checkOutside(t testing.TB) {
	t.Helper()
	got := listing(t, s.base, func(p string) bool { return p == "layer" || strings.HasPrefix(p, "layer/") })
	want := []string{"outside/ d 0755 0:0", "outside/passwd f 0644 0:0 \"root:x:0:0\""}
	if !slices.Equal(got, want) {
		t.Fatalf("outside the layer:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// listing describes every file under root, sorted, one line each: path, type, mode, owner,
// then what matters for the type (content, link target, device numbers, opaque marker, link
// count above one).
func listing(t testing.TB, root string, skip func(string) bool) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." || skip != nil && skip(rel) {
			return nil
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		var line string
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			line = fmt.Sprintf("%s/ d %04o %d:%d", rel, st.Mode&0o7777, st.Uid, st.Gid)
			if v, err := getxattr(p, overlayOpaque); err == nil {
				line += " opaque=" + v
			}
		case unix.S_IFREG:
			b, _ := os.ReadFile(p)
			line = fmt.Sprintf("%s f %04o %d:%d %q", rel, st.Mode&0o7777, st.Uid, st.Gid, b)
			if st.Nlink > 1 {
				line += fmt.Sprintf(" links=%d", st.Nlink)
			}
		case unix.S_IFLNK:
			target, _ := os.Readlink(p)
			line = fmt.Sprintf("%s l %d:%d -> %s", rel, st.Uid, st.Gid, target)
		case unix.S_IFCHR:
			line = fmt.Sprintf("%s c %d:%d %d/%d", rel, st.Uid, st.Gid, unix.Major(st.Rdev), unix.Minor(st.Rdev))
		default:
			line = fmt.Sprintf("%s other %o", rel, st.Mode)
		}
		out = append(out, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

func getxattr(p, name string) (string, error) {
	buf := make([]byte, 256)
	n, err := unix.Lgetxattr(p, name, buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

func TestUnpack(t *testing.T) {
	requireRoot(t)
	tests := []struct {
		name    string
		ents    []ent
		idmap   IDMap
		lim     *Limits
		want    []string // the whole layer; nil when wantErr is set
		wantErr error    // errors.Is target; errAny for any error
		stats   func(Stats) error
	}{
		{
			name: "plain layer",
			ents: []ent{
				dir("etc/"), file("etc/hostname", "moat"), {name: "usr/bin/su", typ: tar.TypeReg, mode: 0o4755, body: "su"},
				{name: "home/app/", typ: tar.TypeDir, mode: 0o750, uid: 1000, gid: 1000},
				{name: "home/app/.profile", typ: tar.TypeReg, mode: 0o600, uid: 1000, gid: 1000, body: "x"},
				{name: "tmp/", typ: tar.TypeDir, mode: 0o1777},
				symlink("bin", "usr/bin"), symlink("etc/mtab", "/proc/self/mounts"),
				hardlink("usr/bin/su2", "usr/bin/su"),
			},
			want: []string{
				"bin l 0:0 -> usr/bin",
				"etc/ d 0755 0:0",
				"etc/hostname f 0644 0:0 \"moat\"",
				"etc/mtab l 0:0 -> /proc/self/mounts",
				"home/ d 0755 0:0",
				"home/app/ d 0750 1000:1000",
				"home/app/.profile f 0600 1000:1000 \"x\"",
				"tmp/ d 1777 0:0",
				"usr/ d 0755 0:0",
				"usr/bin/ d 0755 0:0",
				"usr/bin/su f 4755 0:0 \"su\" links=2",
				"usr/bin/su2 f 4755 0:0 \"su\" links=2",
			},
		},
		{
			name: "names with ./ and absolute names stay inside",
			ents: []ent{file("./a", "1"), file("/etc/passwd", "mine"), file("//b//c", "2"), dir("./")},
			want: []string{"a f 0644 0:0 \"1\"", "b/ d 0755 0:0", "b/c f 0644 0:0 \"2\"", "etc/ d 0755 0:0", "etc/passwd f 0644 0:0 \"mine\""},
		},
		{name: "dot-dot climbs out", ents: []ent{file("../outside/passwd", "pwned")}, wantErr: ErrUnsafe},
		{name: "dot-dot inside a name", ents: []ent{file("a/../../outside/passwd", "pwned")}, wantErr: ErrUnsafe},
		{name: "dot-dot that would stay inside", ents: []ent{file("a/../b", "x")}, wantErr: ErrUnsafe},
		{
			name:    "absolute symlink as parent",
			ents:    []ent{symlink("etc", "OUTSIDE"), file("etc/passwd", "pwned")},
			wantErr: ErrUnsafe,
		},
		{
			name:    "relative symlink as parent",
			ents:    []ent{symlink("etc", "../outside"), file("etc/passwd", "pwned")},
			wantErr: ErrUnsafe,
		},
		{
			name:    "symlink deeper in the parent path",
			ents:    []ent{dir("a/"), symlink("a/b", "../../outside"), file("a/b/c/passwd", "pwned")},
			wantErr: ErrUnsafe,
		},
		{
			name:    "directory replaced by a symlink, then written through",
			ents:    []ent{dir("etc/"), file("etc/x", "1"), symlink("etc", "OUTSIDE"), file("etc/passwd", "pwned")},
			wantErr: ErrUnsafe,
		},
		{
			name:    "symlink loop as parent",
			ents:    []ent{symlink("a", "b"), symlink("b", "a"), file("a/x", "1")},
			wantErr: ErrUnsafe,
		},
		{
			name: "symlink loop on its own is just two links",
			ents: []ent{symlink("a", "b"), symlink("b", "a")},
			want: []string{"a l 0:0 -> b", "b l 0:0 -> a"},
		},
		{
			name: "a file over a symlink replaces the link, not its target",
			ents: []ent{symlink("passwd", "OUTSIDE/passwd"), file("passwd", "mine")},
			want: []string{"passwd f 0644 0:0 \"mine\""},
		},
		{
			name: "a directory over a symlink replaces the link",
			ents: []ent{symlink("d", "OUTSIDE"), dir("d/"), file("d/f", "1")},
			want: []string{"d/ d 0755 0:0", "d/f f 0644 0:0 \"1\""},
		},
		{name: "hard link to an absolute host path", ents: []ent{hardlink("p", "/etc/passwd")}, wantErr: errAny},
		{name: "hard link climbing out", ents: []ent{hardlink("p", "../outside/passwd")}, wantErr: ErrUnsafe},
		{name: "hard link through a symlink", ents: []ent{symlink("e", "OUTSIDE"), hardlink("p", "e/passwd")}, wantErr: ErrUnsafe},
		{name: "hard link deep climb", ents: []ent{hardlink("p", "../../../../../../../../etc/passwd")}, wantErr: ErrUnsafe},
		{name: "hard link to a directory", ents: []ent{dir("d/"), hardlink("p", "d")}, wantErr: errAny},
		{name: "hard link to the root", ents: []ent{hardlink("p", "./")}, wantErr: ErrUnsafe},
		{name: "hard link to itself", ents: []ent{file("p", "1"), hardlink("p", "p")}, wantErr: errAny},
		{
			name: "hard link to a symlink links the symlink",
			ents: []ent{symlink("s", "OUTSIDE/passwd"), hardlink("h", "s")},
			want: []string{"h l 0:0 -> " + "OUTSIDE/passwd", "s l 0:0 -> OUTSIDE/passwd"},
		},
		{
			name: "hard link survives its target being replaced",
			ents: []ent{file("a", "old"), hardlink("b", "a"), file("a", "new")},
			want: []string{"a f 0644 0:0 \"new\"", "b f 0644 0:0 \"old\""},
		},
		{
			name: "devices and fifos are not created",
			ents: []ent{
				{name: "dev/null", typ: tar.TypeChar, mode: 0o666, major: 1, minor: 3},
				{name: "dev/sda", typ: tar.TypeBlock, mode: 0o660, major: 8},
				{name: "dev/zero0", typ: tar.TypeChar, mode: 0o666},
				{name: "run/fifo", typ: tar.TypeFifo, mode: 0o600},
				hardlink("dev/null2", "dev/null"),
			},
			want: []string{"dev/ d 0755 0:0", "run/ d 0755 0:0"},
			stats: func(s Stats) error {
				return expect(s.Devices == 3 && s.Fifos == 1 && s.Other == 1, "devices/fifos/other counted", s)
			},
		},
		{
			name: "a device replaces the earlier entry of its name",
			ents: []ent{file("d", "1"), {name: "d", typ: tar.TypeBlock, major: 8}},
			want: nil, // the layer is empty
		},
		{
			name: "whiteouts and opaque directories",
			ents: []ent{
				file(".wh.gone", ""), file("etc/.wh.passwd", ""),
				file("var/lib/.wh..wh..opq", ""), file("var/lib/kept", "1"),
				file(".wh..wh.plnk", ""), dir("opt/"), file("opt/.wh..wh..opq", ""),
			},
			want: []string{
				"etc/ d 0755 0:0", "etc/passwd c 0:0 0/0", "gone c 0:0 0/0",
				"opt/ d 0755 0:0 opaque=y",
				"var/ d 0755 0:0", "var/lib/ d 0755 0:0 opaque=y", "var/lib/kept f 0644 0:0 \"1\"",
			},
			stats: func(s Stats) error {
				return expect(s.Whiteouts == 2 && s.Opaques == 2 && s.Other == 1, "whiteouts counted", s)
			},
		},
		{
			name: "opaque marker before its directory's entry",
			ents: []ent{file("d/.wh..wh..opq", ""), {name: "d/", typ: tar.TypeDir, mode: 0o700}},
			want: []string{"d/ d 0700 0:0 opaque=y"},
		},
		{
			name: "whiteout replaces an earlier entry, a later entry replaces a whiteout",
			ents: []ent{dir("a/"), file("a/x", "1"), file(".wh.a", ""), file(".wh.b", ""), file("b", "2")},
			want: []string{"a c 0:0 0/0", "b f 0644 0:0 \"2\""},
		},
		{name: "whiteout of dot-dot", ents: []ent{file("a/.wh...", "")}, wantErr: ErrUnsafe},
		{name: "whiteout with no name", ents: []ent{file(".wh.", "")}, wantErr: ErrUnsafe},
		{
			name: "duplicate entries: the last wins",
			ents: []ent{
				file("f", "one"), {name: "f", typ: tar.TypeReg, mode: 0o600, body: "two"},
				{name: "d/", typ: tar.TypeDir, mode: 0o700}, file("d/x", "1"), {name: "d/", typ: tar.TypeDir, mode: 0o755, uid: 7, gid: 8},
			},
			want: []string{"d/ d 0755 7:8", "d/x f 0644 0:0 \"1\"", "f f 0600 0:0 \"two\""},
		},
		{
			name: "a file replaces a directory tree",
			ents: []ent{dir("d/"), dir("d/e/"), file("d/e/x", "1"), symlink("d/l", "/"), file("d", "now a file")},
			want: []string{"d f 0644 0:0 \"now a file\""},
		},
		{
			name: "a directory replaces a file",
			ents: []ent{file("d", "a file"), dir("d/"), file("d/x", "1")},
			want: []string{"d/ d 0755 0:0", "d/x f 0644 0:0 \"1\""},
		},
		{name: "a file as a parent", ents: []ent{file("f", "1"), file("f/x", "2")}, wantErr: errAny},
		{
			name: "implied parents belong to the container's root",
			ents: []ent{{name: "a/b/c", typ: tar.TypeReg, mode: 0o640, uid: 5, gid: 6, body: "1"}},
			want: []string{"a/ d 0755 0:0", "a/b/ d 0755 0:0", "a/b/c f 0640 5:6 \"1\""},
		},
		{
			name: "the root entry sets the layer root",
			ents: []ent{{name: "./", typ: tar.TypeDir, mode: 0o700, uid: 3, gid: 3}, file("x", "1")},
			want: []string{"x f 0644 0:0 \"1\""},
		},
		{name: "the root as a symlink", ents: []ent{symlink("./", "/")}, wantErr: ErrUnsafe},
		{name: "the root as a file", ents: []ent{file(".", "x")}, wantErr: ErrUnsafe},
		{
			name:  "shifted IDs",
			idmap: IDMap{UID: 100000, GID: 200000, Size: 65536},
			ents: []ent{
				{name: "home/u/", typ: tar.TypeDir, mode: 0o755, uid: 1000, gid: 1001}, symlink("l", "x"), file(".wh.w", ""),
				{name: "f", typ: tar.TypeReg, mode: 0o2755, uid: 0, gid: 50, body: "1"},
			},
			want: []string{
				"f f 2755 100000:200050 \"1\"", "home/ d 0755 100000:200000", "home/u/ d 0755 101000:201001",
				"l l 100000:200000 -> x", "w c 100000:200000 0/0",
			},
		},
		{
			name:    "an owner outside the shifted range",
			idmap:   IDMap{UID: 100000, GID: 100000, Size: 65536},
			ents:    []ent{{name: "f", typ: tar.TypeReg, mode: 0o644, uid: 70000}},
			wantErr: errAny,
		},
		{
			name: "extended attributes: user and capabilities kept, trusted and overlay dropped",
			ents: []ent{{name: "f", typ: tar.TypeReg, mode: 0o755, body: "x", xattrs: map[string]string{
				"user.mime": "text/plain", "trusted.overlay.opaque": "y", "trusted.overlay.redirect": "/etc",
				"user.overlay.opaque": "y", "security.selinux": "system_u:object_r:bin_t", "system.posix_acl_access": "\x02",
				"security.capability": string(capV2(1 << 13)),
			}}},
			want:  []string{"f f 0755 0:0 \"x\""},
			stats: func(s Stats) error { return expect(s.Xattrs == 5, "5 attributes dropped", s) },
		},
		{
			name:    "entry limit",
			lim:     &Limits{MaxBytes: 1 << 20, MaxEntries: 3, MaxPathLen: 100, MaxRatio: 10, RatioFloor: 0},
			ents:    []ent{file("a", ""), file("b", ""), file("c", ""), file("d", "")},
			wantErr: ErrLimit,
		},
		{
			name:    "implied directories count against the entry limit",
			lim:     &Limits{MaxBytes: 1 << 20, MaxEntries: 3, MaxPathLen: 100, MaxRatio: 10, RatioFloor: 0},
			ents:    []ent{file("a/b/c/d/e", "")},
			wantErr: ErrLimit,
		},
		{
			name:    "byte limit",
			lim:     &Limits{MaxBytes: 10, MaxEntries: 100, MaxPathLen: 100, MaxRatio: 10, RatioFloor: 0},
			ents:    []ent{file("a", "0123456789ab")},
			wantErr: ErrLimit,
		},
		{
			name:    "a size claim beyond the byte limit",
			lim:     &Limits{MaxBytes: 1 << 20, MaxEntries: 100, MaxPathLen: 100, MaxRatio: 10, RatioFloor: 0},
			ents:    []ent{{name: "a", typ: tar.TypeReg, mode: 0o644, size: 1 << 40}},
			wantErr: ErrLimit,
		},
		{
			name:    "path length limit",
			lim:     &Limits{MaxBytes: 1 << 20, MaxEntries: 100, MaxPathLen: 10, MaxRatio: 10, RatioFloor: 0},
			ents:    []ent{file("abcdef/ghijkl", "")},
			wantErr: ErrLimit,
		},
		{
			name:    "link target length limit",
			lim:     &Limits{MaxBytes: 1 << 20, MaxEntries: 100, MaxPathLen: 10, MaxRatio: 10, RatioFloor: 0},
			ents:    []ent{symlink("a", strings.Repeat("x", 11))},
			wantErr: ErrLimit,
		},
		{name: "truncated file body", ents: []ent{{name: "a", typ: tar.TypeReg, mode: 0o644, size: 100, body: "short"}}, wantErr: errAny},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSandbox(t)
			for i := range tt.ents {
				tt.ents[i].link = strings.ReplaceAll(tt.ents[i].link, "OUTSIDE", s.outside)
			}
			lim := DefaultLimits
			if tt.lim != nil {
				lim = *tt.lim
			}
			stats, err := Unpack(context.Background(), bytes.NewReader(makeTar(t, tt.ents...)), s.layer, tt.idmap, lim)
			s.checkOutside(t)
			if tt.wantErr != nil {
				if err == nil || tt.wantErr != errAny && !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				t.Logf("refused: %v", err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for i := range tt.want {
				tt.want[i] = strings.ReplaceAll(tt.want[i], "OUTSIDE", s.outside)
			}
			if got := listing(t, s.layer, nil); !slices.Equal(got, tt.want) {
				t.Errorf("layer:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			if tt.stats != nil {
				if err := tt.stats(stats); err != nil {
					t.Error(err)
				}
			}
		})
	}
}

// errAny stands for any error in test tables.
var errAny = errors.New("any error")

func expect(ok bool, what string, s Stats) error {
	if ok {
		return nil
	}
	return fmt.Errorf("%s: stats %+v", what, s)
}

// capV2 is a revision 2 security.capability value with the effective flag and permitted set p.
func capV2(p uint32) []byte {
	b := make([]byte, capSize2)
	binary.LittleEndian.PutUint32(b, capRevision2|capEffective)
	binary.LittleEndian.PutUint32(b[4:], p)
	return b
}

func TestUnpackMetadata(t *testing.T) {
	requireRoot(t)
	s := newSandbox(t)
	mtime := time.Date(2001, 2, 3, 4, 5, 6, 700, time.UTC)
	caps := capV2(1 << 13) // cap_net_raw
	ents := []ent{
		{name: "d/", typ: tar.TypeDir, mode: 0o755, mtime: mtime, xattrs: map[string]string{"user.dir": "1"}},
		{name: "d/f", typ: tar.TypeReg, mode: 0o4755, body: "x", mtime: mtime, xattrs: map[string]string{"user.a": "b", "security.capability": string(caps)}},
		{name: "d/l", typ: tar.TypeSymlink, link: "f", mtime: mtime},
		file("d/.wh.gone", ""),
	}
	m := IDMap{UID: 100000, GID: 100000, Size: 65536}
	if _, err := Unpack(context.Background(), bytes.NewReader(makeTar(t, ents...)), s.layer, m, DefaultLimits); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"d", "d/f", "d/l"} {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(s.layer, p), &st); err != nil {
			t.Fatal(err)
		}
		if got := time.Unix(st.Mtim.Unix()); !got.Equal(mtime) {
			t.Errorf("%s: mtime %v, want %v (a directory's is set after its children)", p, got, mtime)
		}
	}
	if v, err := getxattr(filepath.Join(s.layer, "d/f"), "user.a"); err != nil || v != "b" {
		t.Errorf("user.a = %q, %v", v, err)
	}
	if v, err := getxattr(filepath.Join(s.layer, "d"), "user.dir"); err != nil || v != "1" {
		t.Errorf("user.dir = %q, %v", v, err)
	}
	// The capability is rewritten as revision 3, owned by the container root's host ID.
	v, err := getxattr(filepath.Join(s.layer, "d/f"), "security.capability")
	if err != nil {
		t.Fatal(err)
	}
	b := []byte(v)
	if len(b) != capSize3 || binary.LittleEndian.Uint32(b)&capRevisionMask != capRevision3 || binary.LittleEndian.Uint32(b[capSize2:]) != 100000 ||
		!bytes.Equal(b[4:capSize2], caps[4:]) || binary.LittleEndian.Uint32(b)&capEffective == 0 {
		t.Errorf("security.capability = %x, want revision 3 with root ID 100000 and the same sets", b)
	}
	// The setuid bit survives the chown that precedes it.
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(s.layer, "d/f"), &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode&0o7777 != 0o4755 || st.Uid != 100000 {
		t.Errorf("d/f mode %o uid %d", st.Mode&0o7777, st.Uid)
	}
}

func TestUnpackReadsToEnd(t *testing.T) {
	requireRoot(t)
	s := newSandbox(t)
	data := append(makeTar(t, file("a", "1")), make([]byte, 10000)...)
	r := &trackReader{r: bytes.NewReader(data)}
	if _, err := Unpack(context.Background(), r, s.layer, IDMap{}, DefaultLimits); err != nil {
		t.Fatal(err)
	}
	if r.n != int64(len(data)) {
		t.Errorf("read %d of %d bytes: a verifying reader would not have checked its digest", r.n, len(data))
	}
	// An error at the end of the stream (a digest mismatch) fails the unpack.
	s = newSandbox(t)
	bad := &trackReader{r: bytes.NewReader(data), endErr: errors.New("digest mismatch")}
	if _, err := Unpack(context.Background(), bad, s.layer, IDMap{}, DefaultLimits); err == nil || !strings.Contains(err.Error(), "digest mismatch") {
		t.Errorf("err = %v, want the reader's error at its end", err)
	}
}

type trackReader struct {
	r      *bytes.Reader
	n      int64
	endErr error
}

func (t *trackReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	t.n += int64(n)
	if err != nil && t.endErr != nil {
		return n, t.endErr
	}
	return n, err
}

func TestUnpackCancel(t *testing.T) {
	requireRoot(t)
	s := newSandbox(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Unpack(ctx, bytes.NewReader(makeTar(t, file("a", "1"))), s.layer, IDMap{}, DefaultLimits); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

func TestUnpackBadInput(t *testing.T) {
	requireRoot(t)
	for _, tt := range []struct {
		name string
		data []byte
	}{
		{"not a tar", []byte(strings.Repeat("garbage", 100))},
		{"truncated", testutil.Tar(t, testutil.File("a", strings.Repeat("x", 5000)))[:2048]},
		{"gzip, not tar", testutil.Gzip(testutil.Tar(t, testutil.File("a", "x")))},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := newSandbox(t)
			if _, err := Unpack(context.Background(), bytes.NewReader(tt.data), s.layer, IDMap{}, DefaultLimits); err == nil {
				t.Error("no error")
			}
			s.checkOutside(t)
		})
	}
	s := newSandbox(t)
	if _, err := Unpack(context.Background(), bytes.NewReader(nil), s.layer, IDMap{UID: 1}, DefaultLimits); err == nil {
		t.Error("an ID map without a size was accepted")
	}
	if _, err := Unpack(context.Background(), bytes.NewReader(nil), s.layer, IDMap{}, Limits{}); err == nil {
		t.Error("zero limits were accepted")
	}
}

// The errno of a refused parent must never be confused with a missing one: a file where a
// directory is expected is a plain error, not a reason to create anything.
func TestResolveErr(t *testing.T) {
	if err := resolveErr("a", syscall.ELOOP); !errors.Is(err, ErrUnsafe) {
		t.Errorf("ELOOP: %v", err)
	}
	if err := resolveErr("a", syscall.EXDEV); !errors.Is(err, ErrUnsafe) {
		t.Errorf("EXDEV: %v", err)
	}
	if err := resolveErr("a", syscall.ENOTDIR); errors.Is(err, ErrUnsafe) || !errors.Is(err, syscall.ENOTDIR) {
		t.Errorf("ENOTDIR: %v", err)
	}
}
