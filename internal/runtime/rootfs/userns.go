package rootfs

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"

	"golang.org/x/sys/unix"
)

// UserNamespace is a user namespace with an ID map, held open for idmapped mounts.
type UserNamespace struct {
	fd int
	m  IDMap
}

// checkNamespaceMap refuses a map a user namespace for idmapped mounts cannot have.
func checkNamespaceMap(m IDMap) error {
	if err := m.validate(); err != nil {
		return err
	}
	if m.Identity() {
		return errors.New("rootfs: a user namespace for idmapped mounts needs a non-identity ID map")
	}
	return nil
}

// Close releases the namespace; mounts made through it keep their mapping.
func (u *UserNamespace) Close() error {
	if u == nil || u.fd < 0 {
		return nil
	}
	err := unix.Close(u.fd)
	u.fd = -1
	return err
}

// PinUserNamespace returns the user namespace with the ID map m pinned at path, the file a
// namespace is bind mounted on to outlive every process in it (as `unshare --user=FILE`
// does), and pins a new one there first when there is none: the first time, and after a
// reboot. Making a user namespace takes a helper process, forked from this one without
// sharing its memory (Go cannot vfork into a new user namespace), which costs about 2 ms
// and stalls this process's other threads while its page tables are copied; opening a pinned
// one takes microseconds. The namespace holds no process and only root can open the file;
// path names the map (its directory must be root's alone), since a pinned namespace's map
// cannot be read back. Concurrent callers (several moat processes) pin one namespace.
func PinUserNamespace(path string, m IDMap) (*UserNamespace, error) {
	if err := checkNamespaceMap(m); err != nil {
		return nil, err
	}
	if u, err := openPinned(path, m); u != nil || err != nil {
		return u, err
	}
	lock, err := os.OpenFile(path+".lock", os.O_CREATE|os.O_RDWR|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("pinning a user namespace: %w", err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return nil, fmt.Errorf("pinning a user namespace: locking %s: %w", lock.Name(), err)
	}
	// Another process may have pinned it while this one waited.
	if u, err := openPinned(path, m); u != nil || err != nil {
		return u, err
	}
	fd, err := usernsFD(m)
	if err != nil {
		return nil, err
	}
	u := &UserNamespace{fd: fd, m: m}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDONLY|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		u.Close()
		return nil, fmt.Errorf("pinning a user namespace: %w", err)
	}
	f.Close()
	if err := unix.Mount(fmt.Sprintf("/proc/self/fd/%d", fd), path, "", unix.MS_BIND, ""); err != nil {
		u.Close()
		return nil, fmt.Errorf("pinning a user namespace on %s: %w", path, err)
	}
	return u, nil
}

// openPinned opens the namespace pinned at path: nil and no error when nothing is pinned
// there (no file, or the plain file a reboot left), an error when what is there is not a
// user namespace this process made.
func openPinned(path string, m IDMap) (*UserNamespace, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if errors.Is(err, unix.ENOENT) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("opening the pinned user namespace %s: %w", path, err)
	}
	var fs unix.Statfs_t
	if err := unix.Fstatfs(fd, &fs); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("opening the pinned user namespace %s: %w", path, err)
	}
	if fs.Type != unix.NSFS_MAGIC {
		unix.Close(fd)
		return nil, nil
	}
	typ, err := unix.IoctlRetInt(fd, nsGetNSType)
	if err == nil && typ != unix.CLONE_NEWUSER {
		err = fmt.Errorf("it is a namespace of type %#x, not a user namespace", typ)
	}
	if err == nil {
		var owner uint32
		if owner, err = unix.IoctlGetUint32(fd, nsGetOwnerUID); err == nil && int(owner) != os.Geteuid() {
			err = fmt.Errorf("it was made by uid %d", owner)
		}
	}
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("the pinned user namespace %s cannot be used: %w", path, err)
	}
	return &UserNamespace{fd: fd, m: m}, nil
}

// The nsfs ioctls (linux/nsfs.h): a namespace's type, and a user namespace's owner.
const (
	nsGetNSType   = 0xb703
	nsGetOwnerUID = 0xb704
)

// UnpinUserNamespace unpins the namespace PinUserNamespace pinned at path and removes the
// file and its lock. Nothing pinned is no error.
func UnpinUserNamespace(path string) error {
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unpinning the user namespace %s: %w", path, err)
	}
	for _, p := range []string{path, path + ".lock"} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("unpinning the user namespace: %w", err)
		}
	}
	return nil
}

// usernsFD returns a descriptor of a new user namespace with the ID map m, for idmapped
// mounts. The namespace needs a process only while it is being made: a child is started in it
// stopped (traced, so it never runs a user instruction), its namespace opened, and killed.
func usernsFD(m IDMap) (int, error) {
	cmd := exec.Command("/proc/self/exe")
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: int(m.UID), Size: int(m.Size)}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: int(m.GID), Size: int(m.Size)}},
		Ptrace:      true,
		Pdeathsig:   syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		return -1, fmt.Errorf("%w: %w: creating a user namespace: %w", ErrNoIDMappedMounts, ErrUserNamespaceHelper, err)
	}
	fd, err := unix.Open(fmt.Sprintf("/proc/%d/ns/user", cmd.Process.Pid), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	cmd.Process.Kill()
	for {
		st, werr := cmd.Process.Wait()
		if werr != nil || st.Exited() || st.Sys().(syscall.WaitStatus).Signaled() {
			break
		}
	}
	if err != nil {
		return -1, fmt.Errorf("%w: opening the user namespace: %w", ErrNoIDMappedMounts, err)
	}
	return fd, nil
}
