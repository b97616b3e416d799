package rootfs

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/moatsec/moat/internal/image"
	"github.com/moatsec/moat/internal/testutil"
	"golang.org/x/sys/unix"
)

// withLegacyMount makes Mount use mount(2), as it must on kernels without lowerdir+.
func withLegacyMount() MountOption { return func(c *mountConfig) { c.legacy = true } }

// mountsUnder lists the mount points at or below dir in this mount namespace.
func mountsUnder(t testing.TB, dir string) []string {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fs := strings.Fields(sc.Text()); len(fs) > 4 && (fs[4] == dir || strings.HasPrefix(fs[4], dir+"/")) {
			out = append(out, fs[4])
		}
	}
	return out
}

// containerDir returns a container directory that is removed, mounts included, after the test.
func containerDir(t testing.TB) string {
	t.Helper()
	d := filepath.Join(t.TempDir(), "c1")
	t.Cleanup(func() {
		if err := Remove(d); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return d
}

func layerDirs(us []Unpacked) []string {
	var out []string
	for _, u := range us {
		out = append(out, u.Dir)
	}
	return out
}

func TestCheckOverlay(t *testing.T) {
	requireRoot(t)
	if err := CheckOverlay(); err != nil {
		t.Fatalf("CheckOverlay: %v (CI machines must have overlayfs)", err)
	}
}

func TestMount(t *testing.T) {
	requireRoot(t)
	img := openImage(t, testutil.Image(t,
		testutil.Layer(t, testutil.File("etc/passwd", "v1"), testutil.File("etc/hosts", "h"), testutil.File("var/lib/dpkg/a", "a"),
			testutil.File("var/lib/dpkg/b", "b"), testutil.Exec("bin/sh", "sh"), testutil.File("gone/file", "g")),
		testutil.Layer(t, testutil.Whiteout("etc/hosts"), testutil.Opaque("var/lib/dpkg"), testutil.File("var/lib/dpkg/c", "c"), testutil.Whiteout("gone")),
		testutil.Layer(t, testutil.File("etc/passwd", "v2")),
	))
	c, err := NewCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	us, err := c.UnpackAll(context.Background(), img.Layers, IDMap{})
	if err != nil {
		t.Fatal(err)
	}
	cdir := containerDir(t)
	rootfs, err := Mount(context.Background(), cdir, layerDirs(us))
	if err != nil {
		t.Fatal(err)
	}
	if rootfs != filepath.Join(cdir, "rootfs") {
		t.Errorf("rootfs = %s", rootfs)
	}
	want := []string{
		"bin/ d 0755 0:0", "bin/sh f 0755 0:0 \"sh\"", "etc/ d 0755 0:0", "etc/passwd f 0644 0:0 \"v2\"",
		"var/ d 0755 0:0", "var/lib/ d 0755 0:0", "var/lib/dpkg/ d 0755 0:0", "var/lib/dpkg/c f 0644 0:0 \"c\"",
	}
	if got := listing(t, rootfs, nil); !slices.Equal(got, want) {
		t.Errorf("rootfs:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Writes go to the container's own layer; the cached layers are never touched.
	if err := os.WriteFile(filepath.Join(rootfs, "etc/passwd"), []byte("changed"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(rootfs, "bin/sh")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "new"), []byte("n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(us[2].Dir, "etc/passwd")); string(b) != "v2" {
		t.Errorf("cached layer changed: %q", b)
	}
	if _, err := os.Stat(filepath.Join(us[0].Dir, "bin/sh")); err != nil {
		t.Errorf("cached layer changed: %v", err)
	}
	if _, err := Mount(context.Background(), cdir, layerDirs(us)); err == nil {
		t.Error("mounting twice succeeded")
	}
	// Mount point flags: nodev.
	var st unix.Statfs_t
	if err := unix.Statfs(rootfs, &st); err != nil || st.Flags&unix.ST_NODEV == 0 {
		t.Errorf("rootfs flags %#x, %v: want nodev", st.Flags, err)
	}
	// Unmounted and mounted again (as after a reboot), the container keeps its changes.
	if err := Unmount(cdir); err != nil {
		t.Fatal(err)
	}
	if m := mountsUnder(t, cdir); len(m) != 0 {
		t.Fatalf("still mounted: %v", m)
	}
	if err := Unmount(cdir); err != nil {
		t.Errorf("second Unmount: %v", err)
	}
	if _, err := Mount(context.Background(), cdir, layerDirs(us)); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(rootfs, "new")); string(b) != "n" {
		t.Errorf("after a remount, new = %q", b)
	}
	if err := Remove(cdir); err != nil {
		t.Fatal(err)
	}
	if m := mountsUnder(t, cdir); len(m) != 0 {
		t.Errorf("mounted after Remove: %v", m)
	}
	if _, err := os.Lstat(cdir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("container directory after Remove: %v", err)
	}
	if err := Remove(cdir); err != nil {
		t.Errorf("second Remove: %v", err)
	}
	if !c.Has(img.Layers[0].Digest, IDMap{}) {
		t.Error("Remove touched the cache")
	}
}

// Remove takes only what Mount made, not what the caller keeps in the container directory.
func TestRemoveKeepsCallerFiles(t *testing.T) {
	requireRoot(t)
	layer := t.TempDir()
	cdir := containerDir(t)
	if _, err := Mount(context.Background(), cdir, []string{layer}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cdir, "config.json"), []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Remove(cdir); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(cdir)
	if len(ents) != 1 || ents[0].Name() != "config.json" {
		t.Errorf("container directory holds %v, want only config.json", ents)
	}
}

// A container directory on a tmpfs (MountScratch) with the writable layer elsewhere: writes
// land in that layer, Remove unmounts the tmpfs with all it holds and leaves the writable
// layer to its caller.
func TestScratchAndWritableLayer(t *testing.T) {
	requireRoot(t)
	layer := t.TempDir()
	if err := os.WriteFile(filepath.Join(layer, "base"), []byte("b"), 0o644); err != nil {
		t.Fatal(err)
	}
	cdir := containerDir(t)
	if err := os.Mkdir(cdir, 0o711); err != nil {
		t.Fatal(err)
	}
	if err := MountScratch(cdir); err != nil {
		t.Fatal(err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(cdir, &st); err != nil || st.Type != unix.TMPFS_MAGIC || st.Flags&unix.ST_NOSUID == 0 || st.Flags&unix.ST_NODEV == 0 {
		t.Errorf("scratch: type %#x flags %#x %v: want a nosuid, nodev tmpfs", st.Type, st.Flags, err)
	}
	writable := filepath.Join(t.TempDir(), "data", "layer")
	root, err := Mount(context.Background(), cdir, []string{layer}, WithWritableLayer(writable))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "new"), []byte("n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cdir, "config.json"), []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(writable, "upper", "new")); err != nil || string(b) != "n" {
		t.Errorf("the writable layer holds %q, %v", b, err)
	}
	for _, d := range []string{"upper", "work"} {
		if _, err := os.Stat(filepath.Join(cdir, d)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s in the container directory: %v", d, err)
		}
	}
	if err := Remove(cdir); err != nil {
		t.Fatal(err)
	}
	if m := mountsUnder(t, cdir); len(m) != 0 {
		t.Errorf("mounted after Remove: %v", m)
	}
	if _, err := os.Lstat(cdir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("container directory after Remove: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(writable, "upper", "new")); err != nil || string(b) != "n" {
		t.Errorf("Remove took the writable layer: %q, %v", b, err)
	}
}

func TestSecondContainerStartsWithoutUnpacking(t *testing.T) {
	requireRoot(t)
	layout := testutil.OCIDir(t, testutil.Image(t, testutil.Layer(t, layerEntries("usr", 500)...), testutil.Layer(t, testutil.File("app/main", "1"))))
	cache := t.TempDir()
	var rootfss []string
	for i := range 2 {
		// As two moat processes would: each opens the image and the cache itself.
		img, err := openLayout(layout)
		if err != nil {
			t.Fatal(err)
		}
		defer img.Close()
		c, err := NewCache(cache)
		if err != nil {
			t.Fatal(err)
		}
		us, err := c.UnpackAll(context.Background(), img.Layers, IDMap{})
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range us {
			if u.Fresh != (i == 0) {
				t.Errorf("container %d: layer %s fresh = %v", i, u.DiffID, u.Fresh)
			}
		}
		rootfs, err := Mount(context.Background(), containerDir(t), layerDirs(us))
		if err != nil {
			t.Fatal(err)
		}
		rootfss = append(rootfss, rootfs)
	}
	if err := os.WriteFile(filepath.Join(rootfss[0], "app/main"), []byte("changed in 0"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(rootfss[1], "app/main")); string(b) != "1" {
		t.Errorf("container 1 sees container 0's write: %q", b)
	}
}

func TestMountManyLayers(t *testing.T) {
	requireRoot(t)
	// Long cache paths and many layers: far beyond mount(2)'s one page of options.
	base := filepath.Join(t.TempDir(), strings.Repeat("long-cache-path-", 10))
	var layers []string
	for i := range 300 {
		d := filepath.Join(base, fmt.Sprintf("%064x", i), "fs")
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("f%d", i)), []byte{byte(i)}, 0o644); err != nil {
			t.Fatal(err)
		}
		layers = append(layers, d)
	}
	if len(layers[0]) < 256 {
		t.Fatalf("layer paths of %d bytes: the test wants them beyond fsconfig's 256-byte strings", len(layers[0]))
	}
	cdir := containerDir(t)
	rootfs, err := Mount(context.Background(), cdir, layers)
	if err != nil {
		t.Fatal(err)
	}
	if ents, err := os.ReadDir(rootfs); err != nil || len(ents) != 300 {
		t.Errorf("rootfs holds %d entries (%v), want 300", len(ents), err)
	}
	if err := Remove(cdir); err != nil {
		t.Fatal(err)
	}
	// mount(2) says why it cannot, and leaves nothing.
	_, err = Mount(context.Background(), cdir, layers, withLegacyMount())
	if err == nil || !strings.Contains(err.Error(), "more than mount(2) takes") {
		t.Errorf("legacy mount of 300 layers: %v", err)
	}
	if _, err := os.Lstat(cdir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed Mount left the container directory: %v", err)
	}
	// Beyond overlayfs's own limit, Mount refuses before creating anything.
	many := slices.Repeat(layers, 2)
	if _, err := Mount(context.Background(), cdir, many); err == nil || !strings.Contains(err.Error(), "at most 500") {
		t.Errorf("600 layers: %v", err)
	}
	if _, err := os.Lstat(cdir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused Mount created the container directory: %v", err)
	}
}

func TestMountLegacy(t *testing.T) {
	requireRoot(t)
	lower, upper := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(lower, "a"), []byte("lower"), 0o644)
	os.WriteFile(filepath.Join(upper, "a"), []byte("upper"), 0o644)
	cdir := containerDir(t)
	rootfs, err := Mount(context.Background(), cdir, []string{lower, upper}, withLegacyMount())
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(rootfs, "a")); string(b) != "upper" {
		t.Errorf("a = %q, want the upper layer's", b)
	}
}

func TestMountDuplicateAndEmpty(t *testing.T) {
	requireRoot(t)
	a, b := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(a, "x"), []byte("a"), 0o644)
	os.WriteFile(filepath.Join(b, "x"), []byte("b"), 0o644)
	// One layer twice in an image: its topmost place decides.
	rootfs, err := Mount(context.Background(), containerDir(t), []string{a, b, a})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(rootfs, "x")); string(got) != "a" {
		t.Errorf("x = %q, want a's", got)
	}
	// An image without layers gets an empty root filesystem.
	rootfs, err = Mount(context.Background(), containerDir(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(rootfs); len(ents) != 0 {
		t.Errorf("empty image: %v", ents)
	}
}

func TestMountFailureLeavesNothing(t *testing.T) {
	requireRoot(t)
	cdir := filepath.Join(t.TempDir(), "a", "b", "c")
	if _, err := Mount(context.Background(), cdir, []string{filepath.Join(t.TempDir(), "missing")}); err == nil {
		t.Error("a missing layer was accepted")
	}
	if _, err := Mount(context.Background(), cdir, []string{"relative/layer"}); err == nil {
		t.Error("a relative layer path was accepted")
	}
	if _, err := os.Lstat(filepath.Dir(filepath.Dir(cdir))); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused Mount created directories: %v", err)
	}
	// Mount fails after making its directories (mount(2) cannot take this many layers): what
	// was in the container directory stays, what Mount made goes.
	existing := t.TempDir()
	os.WriteFile(filepath.Join(existing, "mine"), []byte("x"), 0o644)
	var layers []string
	for range 40 {
		layers = append(layers, filepath.Join(t.TempDir(), strings.Repeat("x", 100)))
		os.Mkdir(layers[len(layers)-1], 0o755)
	}
	_, err := Mount(context.Background(), existing, layers, withLegacyMount())
	if err == nil {
		Remove(existing)
		t.Fatal("mount(2) took 40 long layer paths")
	}
	t.Logf("refused: %v", err)
	ents, _ := os.ReadDir(existing)
	if len(ents) != 1 || ents[0].Name() != "mine" {
		t.Errorf("after a failed Mount the directory holds %v, want only what was there", ents)
	}
	if _, err := Mount(context.Background(), existing, nil, WithIDMap(IDMap{UID: 1, GID: 1, Size: 1}), WithIDMappedLayers(IDMap{UID: 1, GID: 1, Size: 1})); err == nil {
		t.Error("conflicting ID options were accepted")
	}
}

func TestMountShiftedIDs(t *testing.T) {
	requireRoot(t)
	m := IDMap{UID: 100000, GID: 100000, Size: 65536}
	img := openImage(t, testutil.Image(t, testutil.Layer(t, testutil.File("etc/passwd", "x"))))
	c, err := NewCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	us, err := c.UnpackAll(context.Background(), img.Layers, m)
	if err != nil {
		t.Fatal(err)
	}
	rootfs, err := Mount(context.Background(), containerDir(t), layerDirs(us), WithIDMap(m))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"etc/ d 0755 100000:100000", "etc/passwd f 0644 100000:100000 \"x\""}
	if got := listing(t, rootfs, nil); !slices.Equal(got, want) {
		t.Errorf("rootfs:\n%s", strings.Join(got, "\n"))
	}
	var st unix.Stat_t
	if err := unix.Stat(rootfs, &st); err != nil || st.Uid != 100000 || st.Gid != 100000 {
		t.Errorf("rootfs root owned by %d:%d (%v), want the container's root", st.Uid, st.Gid, err)
	}
}

// passwdLayer unpacks, with the identity map, an image whose one layer holds etc/passwd.
func passwdLayer(t *testing.T) []Unpacked {
	t.Helper()
	img := openImage(t, testutil.Image(t, testutil.Layer(t, testutil.File("etc/passwd", "x"))))
	c, err := NewCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	us, err := c.UnpackAll(context.Background(), img.Layers, IDMap{})
	if err != nil {
		t.Fatal(err)
	}
	return us
}

func TestMountIDMappedLayers(t *testing.T) {
	requireRoot(t)
	m := IDMap{UID: 100000, GID: 100000, Size: 65536}
	us := passwdLayer(t)
	// A file owned by uid 1000 in the layer, as an image's user would own it.
	if err := os.Lchown(filepath.Join(us[0].Dir, "etc/passwd"), 1000, 1000); err != nil {
		t.Fatal(err)
	}
	cdir := containerDir(t)
	rootfs, err := Mount(context.Background(), cdir, layerDirs(us), WithIDMappedLayers(m))
	if errors.Is(err, ErrNoIDMappedMounts) {
		t.Skipf("kernel: %v", err) // Linux 6.13 or later passes here
	}
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"etc/ d 0755 100000:100000", "etc/passwd f 0644 101000:101000 \"x\""}
	if got := listing(t, rootfs, nil); !slices.Equal(got, want) {
		t.Errorf("rootfs:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// A copy-up keeps the mapped owner; the cached layer keeps its own.
	if err := os.WriteFile(filepath.Join(rootfs, "etc/passwd"), []byte("y"), 0o644); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(cdir, "upper/etc/passwd"), &st); err != nil || st.Uid != 101000 {
		t.Errorf("copied-up file owned by %d (%v), want 101000", st.Uid, err)
	}
	if err := unix.Lstat(filepath.Join(us[0].Dir, "etc/passwd"), &st); err != nil || st.Uid != 1000 {
		t.Errorf("cached file owned by %d (%v), want 1000", st.Uid, err)
	}
	// The identity layers still serve an unmapped container at the same time.
	rootfs2, err := Mount(context.Background(), containerDir(t), layerDirs(us))
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Lstat(filepath.Join(rootfs2, "etc/passwd"), &st); err != nil || st.Uid != 1000 {
		t.Errorf("unmapped container sees owner %d (%v), want 1000", st.Uid, err)
	}
}

// A pinned user namespace serves Mount as the one Mount would make, for as many mounts as use
// it; a namespace of another map, a closed one or one without
// WithIDMappedLayers is refused before anything is created.
func TestMountWithUserNamespace(t *testing.T) {
	requireRoot(t)
	m := IDMap{UID: 100000, GID: 100000, Size: 65536}
	us := passwdLayer(t)
	pin := filepath.Join(t.TempDir(), "userns")
	t.Cleanup(func() { UnpinUserNamespace(pin) })
	ns, err := PinUserNamespace(pin, m)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	for range 2 {
		rootfs, err := Mount(context.Background(), containerDir(t), layerDirs(us), WithIDMappedLayers(m), WithUserNamespace(ns))
		if errors.Is(err, ErrNoIDMappedMounts) {
			t.Skipf("kernel: %v", err)
		}
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"etc/ d 0755 100000:100000", "etc/passwd f 0644 100000:100000 \"x\""}
		if got := listing(t, rootfs, nil); !slices.Equal(got, want) {
			t.Errorf("rootfs:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}

	other := IDMap{UID: 200000, GID: 200000, Size: 65536}
	closed, err := PinUserNamespace(pin, m)
	if err != nil {
		t.Fatal(err)
	}
	closed.Close()
	for name, opts := range map[string][]MountOption{
		"other map":           {WithIDMappedLayers(other), WithUserNamespace(ns)},
		"closed":              {WithIDMappedLayers(m), WithUserNamespace(closed)},
		"not idmapped layers": {WithUserNamespace(ns)},
	} {
		dir := filepath.Join(t.TempDir(), "ctr")
		if _, err := Mount(context.Background(), dir, layerDirs(us), opts...); err == nil {
			t.Errorf("%s: mounted", name)
		}
		if _, err := os.Lstat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: %s left behind (%v)", name, dir, err)
		}
	}
}

func openLayout(dir string) (*image.Image, error) {
	return image.Open(context.Background(), image.Target{Source: image.SourceOCIDir, Ref: dir}, image.Options{})
}
