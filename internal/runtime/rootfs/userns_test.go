package rootfs

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// nsInode is the inode of the namespace u holds.
func nsInode(t *testing.T, u *UserNamespace) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Fstat(u.fd, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// mountsAt counts the mounts on path in this process's mount table.
func mountsAt(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for line := range strings.SplitSeq(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == path {
			n++
		}
	}
	return n
}

func TestPinUserNamespace(t *testing.T) {
	requireRoot(t)
	m := IDMap{UID: 100000, GID: 100000, Size: 65536}
	path := filepath.Join(t.TempDir(), "100000-100000-65536")
	t.Cleanup(func() {
		if err := UnpinUserNamespace(path); err != nil {
			t.Error(err)
		}
	})

	// Concurrent callers, as several moat processes would be, pin one namespace.
	var wg sync.WaitGroup
	nss := make([]*UserNamespace, 4)
	errs := make([]error, 4)
	for i := range nss {
		wg.Go(func() { nss[i], errs[i] = PinUserNamespace(path, m) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("caller %d: %v", i, err)
		}
		defer nss[i].Close()
		if nsInode(t, nss[i]) != nsInode(t, nss[0]) {
			t.Errorf("caller %d got another namespace", i)
		}
	}
	if n := mountsAt(t, path); n != 1 {
		t.Errorf("%d mounts on %s, want 1", n, path)
	}

	// The pin outlives every process: a later call opens the same namespace without a helper.
	again, err := PinUserNamespace(path, m)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if nsInode(t, again) != nsInode(t, nss[0]) {
		t.Error("a second pin made another namespace")
	}

	if err := UnpinUserNamespace(path); err != nil {
		t.Fatal(err)
	}
	if n := mountsAt(t, path); n != 0 {
		t.Errorf("%d mounts left on %s", n, path)
	}
	for _, p := range []string{path, path + ".lock"} {
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left behind (%v)", p, err)
		}
	}
	if err := UnpinUserNamespace(path); err != nil {
		t.Errorf("unpinning twice: %v", err)
	}
}

// The plain file a reboot leaves where a namespace was pinned is pinned again; what is not
// a user namespace is refused.
func TestPinUserNamespaceStale(t *testing.T) {
	requireRoot(t)
	m := IDMap{UID: 100000, GID: 100000, Size: 65536}
	dir := t.TempDir()
	stale := filepath.Join(dir, "stale")
	if err := os.WriteFile(stale, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { UnpinUserNamespace(stale) })
	u, err := PinUserNamespace(stale, m)
	if err != nil {
		t.Fatal(err)
	}
	u.Close()
	if n := mountsAt(t, stale); n != 1 {
		t.Errorf("%d mounts on the stale file, want 1", n)
	}

	netns := filepath.Join(dir, "netns")
	if err := os.WriteFile(netns, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("/proc/self/ns/net", netns, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(netns, unix.MNT_DETACH) })
	if _, err := PinUserNamespace(netns, m); err == nil || !strings.Contains(err.Error(), "not a user namespace") {
		t.Errorf("a network namespace pinned there: %v", err)
	}

	link := filepath.Join(dir, "link")
	if err := os.Symlink(stale, link); err != nil {
		t.Fatal(err)
	}
	if _, err := PinUserNamespace(link, m); err == nil {
		t.Error("a symbolic link was followed")
	}
	if _, err := PinUserNamespace(filepath.Join(dir, "identity"), IDMap{}); err == nil {
		t.Error("the identity map was pinned")
	}
}
