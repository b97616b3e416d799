package rootfs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// ErrNoOverlay means the kernel cannot mount overlayfs.
var ErrNoOverlay = errors.New("the kernel does not support overlayfs (is the overlay module available? modprobe overlay)")

// ErrNoIDMappedMounts means the kernel or the cache's filesystem cannot make idmapped mounts;
// unpack the layers with the ID map instead (Cache.UnpackAll with m, Mount WithIDMap(m)).
var ErrNoIDMappedMounts = errors.New("idmapped mounts are not available")

// ErrUserNamespaceHelper means the stopped child that lends idmapped mounts its user
// namespace could not be made (ptrace refused, because moat itself is traced, say). It comes
// wrapped together with ErrNoIDMappedMounts and says nothing about the kernel: callers should
// not remember it as the kernel's answer.
var ErrUserNamespaceHelper = errors.New("the user namespace helper could not be started")

// The names Mount uses inside a container directory.
const (
	// RootfsDir is where the root filesystem is mounted, as an OCI bundle expects it.
	RootfsDir = "rootfs"
	upperDir  = "upper"
	workDir   = "work"
	emptyDir  = "empty" // the lower layer of an image without layers
)

// maxLayers is overlayfs's limit on lower layers (OVL_MAX_STACK).
const maxLayers = 500

// CheckOverlay reports whether the kernel can mount overlayfs: nil, ErrNoOverlay, or why it
// could not tell.
func CheckOverlay() error {
	if b, err := os.ReadFile("/proc/filesystems"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if f := strings.Fields(line); len(f) > 0 && f[len(f)-1] == "overlay" {
				return nil
			}
		}
	}
	// Not listed yet: a modular overlayfs loads on first use.
	fd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	switch {
	case err == nil:
		unix.Close(fd)
		return nil
	case errors.Is(err, unix.ENODEV), errors.Is(err, unix.ENOSYS):
		return ErrNoOverlay
	case errors.Is(err, unix.EPERM):
		return fmt.Errorf("checking for overlayfs: mounting needs CAP_SYS_ADMIN (run moat as root): %w", err)
	}
	return fmt.Errorf("checking for overlayfs: %w", err)
}

type mountConfig struct {
	owner    IDMap
	idmapped bool
	userns   *UserNamespace // made beforehand, for idmapped
	ownerSet bool
	writable string // where upper and work go; "" is the container directory
	legacy   bool   // tests: use mount(2) as kernels without lowerdir+ must
}

// MountOption configures Mount.
type MountOption func(*mountConfig)

// WithIDMap says the container runs in a user namespace with the ID map m and the layers were
// unpacked with m: the root of the writable layer belongs to the container's root.
func WithIDMap(m IDMap) MountOption {
	return func(c *mountConfig) { c.owner, c.ownerSet = m, true }
}

// WithIDMappedLayers says the container runs in a user namespace with the ID map m and the
// layers were unpacked with the identity map: each is mounted idmapped through m, so one
// cached copy serves every mapping. Mount fails with ErrNoIDMappedMounts where the kernel
// (before 6.13, which takes overlayfs layers as descriptors) or filesystem cannot.
func WithIDMappedLayers(m IDMap) MountOption {
	return func(c *mountConfig) { c.owner, c.idmapped = m, true }
}

// WithUserNamespace gives Mount the user namespace that WithIDMappedLayers mounts the layers
// through (PinUserNamespace), instead of making one with a helper process (a millisecond or
// two). Its ID map must be WithIDMappedLayers's. The caller closes u.
func WithUserNamespace(u *UserNamespace) MountOption {
	return func(c *mountConfig) { c.userns = u }
}

// WithWritableLayer puts the container's writable layer (overlayfs's upper and work
// directories) in dir, created if missing, instead of in the container directory: on the
// disk, say, when the container directory is a tmpfs (MountScratch) and the root filesystem
// is writable. Remove does not remove dir; its caller does.
func WithWritableLayer(dir string) MountOption {
	return func(c *mountConfig) { c.writable = dir }
}

// Mount assembles a container's root filesystem in containerDir: an overlayfs of layers (the
// cache's layer directories, bottom layer first) with a writable layer of its own in
// containerDir (or where WithWritableLayer says), mounted on containerDir/rootfs (nodev),
// which it returns. Mount leaves nothing behind when it fails; Remove undoes it.
//
// The rootfs must be reachable by the container's root: with a user namespace, every
// directory above it must let the mapped root search it.
func Mount(ctx context.Context, containerDir string, layers []string, opts ...MountOption) (string, error) {
	var cfg mountConfig
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.idmapped && cfg.ownerSet {
		return "", errors.New("rootfs: WithIDMap and WithIDMappedLayers conflict: layers are unpacked shifted or mounted idmapped, not both")
	}
	if err := cfg.owner.validate(); err != nil {
		return "", err
	}
	if cfg.idmapped && cfg.owner.Identity() {
		return "", errors.New("rootfs: WithIDMappedLayers needs a non-identity ID map")
	}
	if u := cfg.userns; u != nil && (!cfg.idmapped || u.m != cfg.owner || u.fd < 0) {
		return "", errors.New("rootfs: WithUserNamespace needs WithIDMappedLayers with the namespace's ID map, and an open namespace")
	}
	if err := CheckOverlay(); err != nil {
		return "", err
	}
	if len(layers) > maxLayers {
		return "", fmt.Errorf("the image has %d layers; overlayfs stacks at most %d", len(layers), maxLayers)
	}
	for _, l := range layers {
		if !filepath.IsAbs(l) {
			return "", fmt.Errorf("layer directory %s is not an absolute path", l)
		}
		if fi, err := os.Stat(l); err != nil || !fi.IsDir() {
			return "", fmt.Errorf("layer directory %s is missing", l)
		}
	}
	dir, err := filepath.Abs(containerDir)
	if err != nil {
		return "", err
	}
	target := filepath.Join(dir, RootfsDir)
	if mounted, _ := isMountPoint(target); mounted {
		return "", fmt.Errorf("%s is mounted already", target)
	}
	// A container mounted again (after a reboot) keeps its writable layer; a failed Mount
	// removes only what it created.
	created, err := mkdirAllTracked(dir)
	if err != nil {
		return "", fmt.Errorf("creating container directory: %w", err)
	}
	layerDir := dir
	if cfg.writable != "" {
		if layerDir, err = filepath.Abs(cfg.writable); err != nil {
			return "", err
		}
		more, err := mkdirAllTracked(layerDir)
		created = append(created, more...)
		if err != nil {
			return "", fmt.Errorf("creating the writable layer's directory: %w", err)
		}
	}
	ok := false
	defer func() {
		if !ok {
			for i := len(created) - 1; i >= 0; i-- {
				os.RemoveAll(created[i])
			}
		}
	}()
	uid, _ := cfg.owner.uid(0)
	gid, _ := cfg.owner.gid(0)
	for _, d := range []struct {
		dir, name string
		uid, gid  int
		mode      os.FileMode
	}{{layerDir, upperDir, uid, gid, 0o755}, {layerDir, workDir, 0, 0, 0o700}, {dir, RootfsDir, uid, gid, 0o755}} {
		p := filepath.Join(d.dir, d.name)
		if err := os.Mkdir(p, d.mode); errors.Is(err, os.ErrExist) {
			continue
		} else if err != nil {
			return "", fmt.Errorf("creating %s: %w", p, err)
		}
		created = append(created, p)
		if err := os.Lchown(p, d.uid, d.gid); err != nil {
			return "", err
		}
		if err := os.Chmod(p, d.mode); err != nil {
			return "", err
		}
	}
	lowers := dedupLowers(layers)
	if len(lowers) == 0 {
		e := filepath.Join(dir, emptyDir)
		if err := os.Mkdir(e, 0o755); err == nil {
			created = append(created, e)
		} else if !errors.Is(err, os.ErrExist) {
			return "", err
		}
		lowers = []string{e}
	}
	if cfg.legacy {
		err = mountLegacy(layerDir, target, lowers)
	} else {
		err = mountOverlay(layerDir, target, lowers, cfg)
	}
	if err != nil {
		return "", err
	}
	ok = true
	return target, nil
}

// mkdirAllTracked creates dir and its missing parents and returns the ones it created.
func mkdirAllTracked(dir string) ([]string, error) {
	var missing []string
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Lstat(d); err == nil {
			break
		}
		missing = append(missing, d)
		if d == filepath.Dir(d) {
			break
		}
	}
	var created []string
	for i := len(missing) - 1; i >= 0; i-- {
		if err := os.Mkdir(missing[i], 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return created, err
		}
		created = append(created, missing[i])
	}
	return created, nil
}

// dedupLowers turns layers (bottom first) into overlayfs lower layers (top first), keeping
// only the topmost copy of a directory listed twice: it holds everything the lower copy does,
// and overlayfs refuses a layer stacked twice.
func dedupLowers(layers []string) []string {
	seen := map[string]bool{}
	var out []string
	for i := len(layers) - 1; i >= 0; i-- {
		if !seen[layers[i]] {
			seen[layers[i]] = true
			out = append(out, layers[i])
		}
	}
	return out
}

// overlayOptions are set on every mount: overlayfs must never follow redirects or metacopy
// xattrs, which only it writes (Unpack never copies trusted.* from a layer).
var overlayOptions = [][2]string{{"redirect_dir", "nofollow"}, {"metacopy", "off"}, {"index", "off"}}

// mountOverlay mounts with the mount API, one lowerdir+ per layer, so that the number of
// layers is not bounded by the page-sized option string of mount(2). Layers are passed as
// descriptors where the kernel takes them (6.13), as paths otherwise (6.8), and by mount(2)
// on older kernels. dir holds the upper and work directories.
func mountOverlay(dir, target string, lowers []string, cfg mountConfig) error {
	fsfd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if errors.Is(err, unix.ENOSYS) && !cfg.idmapped {
		return mountLegacy(dir, target, lowers)
	}
	if err != nil {
		if cfg.idmapped && errors.Is(err, unix.ENOSYS) {
			return fmt.Errorf("%w: the kernel has no mount API: %w", ErrNoIDMappedMounts, err)
		}
		return fmt.Errorf("mounting overlayfs: %w", err)
	}
	defer unix.Close(fsfd)
	userns := -1
	switch {
	case cfg.userns != nil:
		userns = cfg.userns.fd
	case cfg.idmapped:
		if userns, err = usernsFD(cfg.owner); err != nil {
			return err
		}
		defer unix.Close(userns)
	}
	for i, l := range lowers {
		fd, err := addLower(fsfd, l, userns)
		if fd >= 0 {
			// An idmapped layer is a detached mount that dissolves when its last descriptor
			// closes; overlayfs clones it only when the filesystem is created.
			defer unix.Close(fd)
		}
		if err != nil && i == 0 && !cfg.idmapped && errors.Is(err, unix.EINVAL) {
			// No lowerdir+ (before Linux 6.8).
			return mountLegacy(dir, target, lowers)
		}
		if err != nil {
			return fmt.Errorf("mounting overlayfs: layer %s: %w%s", l, err, fsLog(fsfd))
		}
	}
	if err := setLayerDirs(fsfd, dir); err != nil {
		return err
	}
	for _, kv := range append([][2]string{{"source", "moat"}}, overlayOptions...) {
		if err := unix.FsconfigSetString(fsfd, kv[0], kv[1]); err != nil {
			return fmt.Errorf("mounting overlayfs: %s=%s: %w%s", kv[0], kv[1], err, fsLog(fsfd))
		}
	}
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return fmt.Errorf("mounting overlayfs: creating the filesystem: %w%s", err, fsLog(fsfd))
	}
	mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, unix.MOUNT_ATTR_NODEV)
	if err != nil {
		return fmt.Errorf("mounting overlayfs: fsmount: %w%s", err, fsLog(fsfd))
	}
	defer unix.Close(mfd)
	if err := unix.MoveMount(mfd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("mounting overlayfs on %s: %w", target, err)
	}
	return nil
}

// setLayerDirs sets the writable layer's upperdir and workdir as paths relative to the
// container's directory. overlayfs shows them in the container's /proc/self/mountinfo as they
// were given: absolute paths would tell the container where moat keeps its data on the host,
// and its ID. The lookup happens at fsconfig time, relative to the calling thread's working
// directory, so it runs on a thread of its own (unshare(CLONE_FS), chdir) that is never
// returned to the Go scheduler: no other goroutine ever runs with that directory.
func setLayerDirs(fsfd int, dir string) error {
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: the thread ends with this goroutine.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			errc <- fmt.Errorf("mounting overlayfs: a working directory of its own: %w", err)
			return
		}
		if err := unix.Chdir(dir); err != nil {
			errc <- fmt.Errorf("mounting overlayfs: %w", err)
			return
		}
		for _, kv := range [][2]string{{"upperdir", upperDir}, {"workdir", workDir}} {
			if err := unix.FsconfigSetString(fsfd, kv[0], kv[1]); err != nil {
				errc <- fmt.Errorf("mounting overlayfs: %s=%s: %w%s", kv[0], filepath.Join(dir, kv[1]), err, fsLog(fsfd))
				return
			}
		}
		errc <- nil
	}()
	return <-errc
}

// addLower adds one lower layer: a descriptor of the directory (or of an idmapped copy of its
// mount when userns is set), or its path where the kernel takes no descriptor. It returns the
// descriptor of an idmapped copy, which must stay open until the filesystem is created, or -1.
func addLower(fsfd int, dir string, userns int) (int, error) {
	if userns < 0 {
		fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return -1, err
		}
		defer unix.Close(fd)
		err = unix.FsconfigSetFd(fsfd, "lowerdir+", fd)
		if errors.Is(err, unix.EINVAL) {
			// Descriptors arrived in 6.13; paths in 6.8. A path is at most 255 bytes here.
			err = unix.FsconfigSetString(fsfd, "lowerdir+", dir)
		}
		return -1, err
	}
	fd, err := unix.OpenTree(unix.AT_FDCWD, dir, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return -1, fmt.Errorf("%w: cloning the layer's mount: %w", ErrNoIDMappedMounts, err)
	}
	attr := &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP | unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NODEV, Userns_fd: uint64(userns)}
	if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, attr); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("%w: %w", ErrNoIDMappedMounts, err)
	}
	if err := unix.FsconfigSetFd(fsfd, "lowerdir+", fd); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("%w: overlayfs takes no layer descriptors: %w", ErrNoIDMappedMounts, err)
	}
	return fd, nil
}

// fsLog returns the messages the kernel left in a filesystem context, which say why a
// parameter or the mount was refused.
func fsLog(fsfd int) string {
	var msgs []string
	buf := make([]byte, 1024)
	for range 16 {
		n, err := unix.Read(fsfd, buf)
		if err != nil || n <= 0 {
			break
		}
		msgs = append(msgs, string(bytes.TrimSpace(buf[:n])))
	}
	if len(msgs) == 0 {
		return ""
	}
	return " (" + strings.Join(msgs, "; ") + ")"
}

// mountLegacy mounts with mount(2), whose options must fit in a page: with many layers or a
// long cache path they do not, and the error says so. dir holds the upper and work
// directories.
func mountLegacy(dir, target string, lowers []string) error {
	for _, p := range append([]string{dir}, lowers...) {
		if strings.ContainsAny(p, ",:\\") {
			return fmt.Errorf("mounting overlayfs with mount(2): path %s contains ',', ':' or '\\'", p)
		}
	}
	opts := []string{"lowerdir=" + strings.Join(lowers, ":"), "upperdir=" + filepath.Join(dir, upperDir), "workdir=" + filepath.Join(dir, workDir)}
	for _, kv := range overlayOptions {
		opts = append(opts, kv[0]+"="+kv[1])
	}
	data := strings.Join(opts, ",")
	if len(data) >= os.Getpagesize() {
		return fmt.Errorf("mounting overlayfs: %d layers make %d bytes of mount options, more than mount(2) takes (%d); a kernel with the mount API's lowerdir+ (Linux 6.8) has no such limit", len(lowers), len(data), os.Getpagesize()-1)
	}
	if err := unix.Mount("moat", target, "overlay", unix.MS_NODEV, data); err != nil {
		return fmt.Errorf("mounting overlayfs on %s: %w", target, err)
	}
	return nil
}

// isMountPoint reports whether p is the root of a mount.
func isMountPoint(p string) (bool, error) {
	var stx unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, p, unix.AT_SYMLINK_NOFOLLOW|unix.AT_NO_AUTOMOUNT, unix.STATX_BASIC_STATS, &stx); err != nil {
		return false, err
	}
	if stx.Attributes_mask&unix.STATX_ATTR_MOUNT_ROOT == 0 {
		return false, errors.New("the kernel does not report mount roots (Linux 5.8)")
	}
	return stx.Attributes&unix.STATX_ATTR_MOUNT_ROOT != 0, nil
}

// Unmount unmounts the root filesystem of containerDir; one that is not mounted is not an
// error. A mount still busy after a few tries is detached: it leaves the mount table at once
// and the kernel frees it when its last user goes.
func Unmount(containerDir string) error {
	return unmount(filepath.Join(containerDir, RootfsDir))
}

// unmount unmounts whatever is mounted on target, as Unmount describes.
func unmount(target string) error {
	for i := 0; ; i++ {
		mounted, err := isMountPoint(target)
		if errors.Is(err, unix.ENOENT) || err == nil && !mounted {
			return nil
		}
		if err != nil {
			return fmt.Errorf("unmounting %s: %w", target, err)
		}
		flags := unix.UMOUNT_NOFOLLOW
		if i >= 5 {
			flags |= unix.MNT_DETACH
		}
		err = unix.Unmount(target, flags)
		switch {
		case err == nil, errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOENT):
			// Unmounted, or not a mount any more: check again, in case of stacked mounts.
		case errors.Is(err, unix.EBUSY) && i < 5:
			time.Sleep(time.Duration(i+1) * 10 * time.Millisecond)
		default:
			return fmt.Errorf("unmounting %s: %w", target, err)
		}
		if i > 20 {
			return fmt.Errorf("unmounting %s: still mounted", target)
		}
	}
}

// Remove unmounts the root filesystem of containerDir and removes everything Mount made
// there (the writable layer included, unless WithWritableLayer put it elsewhere), then
// containerDir itself if that leaves it empty. A container directory that is a tmpfs
// (MountScratch) is unmounted, which frees all it held at once. Removing what is already gone
// is not an error.
func Remove(containerDir string) error {
	if err := Unmount(containerDir); err != nil {
		return err
	}
	// Never remove through a mount: that would delete the files of whatever is mounted.
	if mounted, err := isMountPoint(filepath.Join(containerDir, RootfsDir)); err == nil && mounted {
		return fmt.Errorf("removing %s: the root filesystem is still mounted", containerDir)
	}
	if mounted, err := isMountPoint(containerDir); err == nil && mounted {
		if err := unmount(containerDir); err != nil {
			return err
		}
	}
	if err := removeContainerDirs(containerDir); err != nil {
		return err
	}
	if err := os.Remove(containerDir); err != nil && !errors.Is(err, os.ErrNotExist) && !errors.Is(err, unix.ENOTEMPTY) && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("removing %s: %w", containerDir, err)
	}
	return nil
}

func removeContainerDirs(dir string) error {
	var errs []error
	for _, d := range []string{RootfsDir, upperDir, workDir, emptyDir} {
		if err := os.RemoveAll(filepath.Join(dir, d)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// scratchOptions size a container directory's tmpfs. It holds the runtime spec, the mount
// point of the root filesystem and, when the root filesystem is read-only, the writable layer,
// where only the runtime writes (the mount points of /proc, /dev and the container's mounts).
const scratchOptions = "mode=0711,size=16m,nr_inodes=16384"

// MountScratch mounts a tmpfs of its own (nosuid, nodev) on the empty directory dir, for a
// container directory whose contents need not outlive the container's run: its bundle, and
// the writable layer of a read-only root filesystem. Creating and removing what it holds then
// never waits for the disk (a removal on a busy disk costs a millisecond a directory), and
// Remove frees it all with one unmount.
func MountScratch(dir string) error {
	if err := unix.Mount("moat", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, scratchOptions); err != nil {
		return fmt.Errorf("mounting a tmpfs on %s: %w", dir, err)
	}
	return nil
}
