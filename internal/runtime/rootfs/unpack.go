package rootfs

import (
	"archive/tar"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"path"
	"slices"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ErrUnsafe means a layer tried to write outside its own directory: a name or hard link
// target that climbs with "..", a path through a symbolic link, or an entry that would replace
// the layer's root. The layer is refused as a whole.
var ErrUnsafe = errors.New("unsafe layer entry")

// ErrLimit means a layer exceeded one of the Limits.
var ErrLimit = errors.New("layer exceeds moat's unpack limits")

// Limits bound what one layer may create, so that a hostile layer cannot exhaust the disk,
// the inode table or moat's memory.
type Limits struct {
	// MaxBytes bounds the uncompressed tar stream and, separately, the sum of the sizes of the
	// regular files it holds (a sparse entry can claim more than the stream carries).
	MaxBytes int64
	// MaxEntries bounds the inodes a layer creates: its entries plus the parent directories
	// they imply.
	MaxEntries int64
	// MaxPathLen bounds an entry's name and its link target, in bytes.
	MaxPathLen int
	// MaxRatio bounds how many times a layer may expand over its compressed size, once it has
	// produced RatioFloor bytes; it applies where the compressed size is known (Cache).
	MaxRatio   int64
	RatioFloor int64
}

// DefaultLimits are generous for real images (the largest CUDA and node_modules images hold
// tens of gigabytes and a few hundred thousand files) and stop bombs.
var DefaultLimits = Limits{
	MaxBytes:   32 << 30,
	MaxEntries: 1 << 21,
	MaxPathLen: 4096,
	MaxRatio:   200,
	RatioFloor: 256 << 20,
}

func (l Limits) validate() error {
	if l.MaxBytes <= 0 || l.MaxEntries <= 0 || l.MaxPathLen <= 0 || l.MaxRatio <= 0 || l.RatioFloor < 0 {
		return fmt.Errorf("rootfs: inconsistent limits %+v", l)
	}
	return nil
}

// IDMap shifts the owners of unpacked files into a host range, for containers in a user
// namespace when idmapped mounts are not available: container ID n is written as host ID UID+n
// (GID+n for groups), for n < Size; an owner at or beyond Size fails the unpack, as it could
// not be mapped inside the container. The zero IDMap writes owners as the tar records them.
type IDMap struct {
	UID, GID, Size uint32
}

// Identity reports whether m writes owners unchanged.
func (m IDMap) Identity() bool { return m == IDMap{} }

func (m IDMap) validate() error {
	if m.Identity() {
		return nil
	}
	if m.Size == 0 || uint64(m.UID)+uint64(m.Size) > 1<<32-1 || uint64(m.GID)+uint64(m.Size) > 1<<32-1 {
		return fmt.Errorf("rootfs: invalid ID map %+v", m)
	}
	return nil
}

func (m IDMap) uid(id int) (int, error) { return m.shift(id, m.UID, "uid") }
func (m IDMap) gid(id int) (int, error) { return m.shift(id, m.GID, "gid") }

func (m IDMap) shift(id int, base uint32, what string) (int, error) {
	if id < 0 || int64(id) >= 1<<32-1 {
		return 0, fmt.Errorf("%s %d is out of range", what, id)
	}
	if m.Identity() {
		return id, nil
	}
	if uint64(id) >= uint64(m.Size) {
		return 0, fmt.Errorf("%s %d is outside the container's ID range of %d IDs", what, id, m.Size)
	}
	return int(base) + id, nil
}

// Stats counts what an unpack made and what it left out.
type Stats struct {
	Entries   int64 // tar entries read
	Files     int64
	Dirs      int64 // explicit and implied
	Symlinks  int64
	Hardlinks int64
	Whiteouts int64
	Opaques   int64
	Bytes     int64 // regular file content written
	// Devices and Fifos count character devices, block devices and named pipes, which are
	// never created. Xattrs counts extended attributes not applied (outside user.* and
	// security.capability, on a symlink, or refused by the filesystem). Other counts entries
	// of no use in a root filesystem (aufs metadata .wh..wh.*, tar global headers) and hard
	// links to entries that were not created.
	Devices, Fifos, Xattrs, Other int64
}

// Whiteout names of the OCI image layer format.
const (
	whiteoutPrefix = ".wh."
	whiteoutMeta   = ".wh..wh."
	opaqueMarker   = ".wh..wh..opq"
)

// overlayOpaque marks a directory of an overlayfs layer as hiding the layers below it.
const overlayOpaque = "trusted.overlay.opaque"

// Unpack writes the layer tar stream r into dir, an existing empty directory, as an
// overlayfs lower layer: OCI whiteouts become overlayfs whiteouts, and nothing is created
// outside dir whatever the stream holds. It reads r to its end, so that a digest-verifying
// reader reports a mismatch. Unpack needs CAP_CHOWN, CAP_MKNOD and CAP_SYS_ADMIN (trusted.*
// xattrs), as root has. See the package documentation for what is kept and what is refused.
func Unpack(ctx context.Context, r io.Reader, dir string, m IDMap, lim Limits) (Stats, error) {
	if err := lim.validate(); err != nil {
		return Stats{}, err
	}
	if err := m.validate(); err != nil {
		return Stats{}, err
	}
	root, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return Stats{}, fmt.Errorf("opening layer directory %s: %w", dir, err)
	}
	defer unix.Close(root)
	u := &unpacker{
		root: root, m: m, lim: lim, cachedFd: -1,
		dirTimes: map[string]times{},
		skipped:  map[string]bool{},
		opaques:  map[string]bool{},
	}
	defer u.dropCached()
	cr := &countReader{r: r, max: lim.MaxBytes}
	err = u.run(ctx, cr)
	if err == nil {
		// Read to the end so that the digest is checked, whatever trails the tar archive.
		_, err = io.CopyBuffer(io.Discard, cr, u.buffer())
	}
	return u.stats, err
}

// countReader fails a stream that grows beyond max bytes.
type countReader struct {
	r   io.Reader
	n   int64
	max int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.n > c.max {
		return n, fmt.Errorf("%w: the tar stream is more than %d bytes", ErrLimit, c.max)
	}
	return n, err
}

type times struct{ atime, mtime time.Time }

type unpacker struct {
	root  int
	m     IDMap
	lim   Limits
	stats Stats
	buf   []byte
	files int64 // sum of regular file sizes
	// cachedDir is the layer-relative path of the directory cachedFd is open on (an O_PATH
	// descriptor), so that a run of entries in one directory resolves it once. Anything that
	// removes a directory drops it.
	cachedDir string
	cachedFd  int
	// dirTimes holds directory times, set at the end because creating children changes them.
	dirTimes map[string]times
	// skipped holds entries that were not created (devices, fifos), so that a hard link to
	// one is skipped too rather than failing.
	skipped map[string]bool
	opaques map[string]bool
}

func (u *unpacker) buffer() []byte {
	if u.buf == nil {
		u.buf = make([]byte, 1<<20)
	}
	return u.buf
}

func (u *unpacker) run(ctx context.Context, r io.Reader) error {
	tr := tar.NewReader(r)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil && !errors.Is(err, tar.ErrInsecurePath) { // names are checked below, by moat's rules
			return fmt.Errorf("reading tar entry %d: %w", u.stats.Entries+1, err)
		}
		u.stats.Entries++
		if u.stats.Entries > u.lim.MaxEntries {
			return fmt.Errorf("%w: more than %d tar entries", ErrLimit, u.lim.MaxEntries)
		}
		if err := u.entry(ctx, tr, hdr); err != nil {
			return fmt.Errorf("unpacking %q: %w", hdr.Name, err)
		}
	}
	return u.finish()
}

// cleanName turns a tar name into a path relative to the layer root ("" for the root). Names
// are read relative to the root even when absolute; any ".." component is refused rather than
// resolved, as no tool that writes layers produces one.
func cleanName(name string, max int) (string, error) {
	if len(name) > max {
		return "", fmt.Errorf("%w: name is %d bytes, longer than %d", ErrLimit, len(name), max)
	}
	if strings.IndexByte(name, 0) >= 0 {
		return "", fmt.Errorf("%w: name contains a NUL byte", ErrUnsafe)
	}
	for c := range strings.SplitSeq(name, "/") {
		if c == ".." {
			return "", fmt.Errorf("%w: name contains '..'", ErrUnsafe)
		}
	}
	p := path.Clean("/" + name)
	return strings.TrimPrefix(p, "/"), nil
}

func (u *unpacker) count() error {
	if u.stats.Files+u.stats.Dirs+u.stats.Symlinks+u.stats.Hardlinks+u.stats.Whiteouts >= u.lim.MaxEntries {
		return fmt.Errorf("%w: more than %d files", ErrLimit, u.lim.MaxEntries)
	}
	return nil
}

func (u *unpacker) entry(ctx context.Context, tr *tar.Reader, hdr *tar.Header) error {
	p, err := cleanName(hdr.Name, u.lim.MaxPathLen)
	if err != nil {
		return err
	}
	dir, base := path.Split(p)
	dir = strings.TrimSuffix(dir, "/")
	if strings.HasPrefix(base, whiteoutPrefix) {
		return u.whiteout(dir, base)
	}
	switch hdr.Typeflag {
	case tar.TypeXGlobalHeader:
		u.stats.Other++
		return nil
	case tar.TypeChar, tar.TypeBlock:
		u.stats.Devices++
		return u.skip(p)
	case tar.TypeFifo:
		u.stats.Fifos++
		return u.skip(p)
	}
	if p == "" {
		if hdr.Typeflag != tar.TypeDir {
			return fmt.Errorf("%w: the layer root is not a directory", ErrUnsafe)
		}
		return u.rootDir(hdr)
	}
	if err := u.count(); err != nil {
		return err
	}
	delete(u.skipped, p)
	parent, err := u.parent(dir)
	if err != nil {
		return err
	}
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeCont, tar.TypeGNUSparse: // archive/tar reports the old TypeRegA as TypeReg
		return u.file(ctx, tr, hdr, parent, p, base)
	case tar.TypeDir:
		return u.mkdir(hdr, parent, p, base)
	case tar.TypeSymlink:
		return u.symlink(hdr, parent, p, base)
	case tar.TypeLink:
		return u.hardlink(hdr, parent, p, base)
	default:
		return fmt.Errorf("unsupported tar entry type %q", hdr.Typeflag)
	}
}

// skip removes what an earlier entry of the layer put at p, as the skipped entry replaces it.
func (u *unpacker) skip(p string) error {
	if p == "" {
		return fmt.Errorf("%w: the layer root is not a directory", ErrUnsafe)
	}
	u.skipped[p] = true
	dir, base := path.Split(p)
	parent, err := u.parent(strings.TrimSuffix(dir, "/"))
	if err != nil {
		return err
	}
	return u.remove(parent, p, base)
}

// resolveHow resolves a path inside the layer without following any symbolic link, leaving
// the layer or crossing a mount.
var resolveHow = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV

// parent returns a descriptor of the directory dir (relative to the root), creating missing
// directories. The descriptor belongs to the unpacker: callers do not close it.
func (u *unpacker) parent(dir string) (int, error) {
	if dir == "" {
		return u.root, nil
	}
	if u.cachedFd >= 0 && dir == u.cachedDir {
		return u.cachedFd, nil
	}
	fd, err := u.openDir(dir, unix.O_PATH)
	if errors.Is(err, unix.ENOENT) {
		fd, err = u.mkdirAll(dir)
	}
	if err != nil {
		return -1, err
	}
	u.dropCached()
	u.cachedDir, u.cachedFd = dir, fd
	return fd, nil
}

func (u *unpacker) dropCached() {
	if u.cachedFd >= 0 {
		unix.Close(u.cachedFd)
	}
	u.cachedDir, u.cachedFd = "", -1
}

// openDir opens the directory at the layer-relative path p, refusing symbolic links anywhere
// in it.
func (u *unpacker) openDir(p string, flags int) (int, error) {
	if p == "" {
		p = "."
	}
	fd, err := openat2(u.root, p, &unix.OpenHow{Flags: uint64(flags | unix.O_DIRECTORY | unix.O_CLOEXEC), Resolve: uint64(resolveHow)})
	return fd, resolveErr(p, err)
}

func openat2(dirfd int, p string, how *unix.OpenHow) (int, error) {
	for {
		fd, err := unix.Openat2(dirfd, p, how)
		if err != unix.EINTR && err != unix.EAGAIN { // EAGAIN: a concurrent rename elsewhere on the system
			return fd, err
		}
	}
}

func resolveErr(p string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.ELOOP):
		return fmt.Errorf("%w: %s: a symbolic link in the path", ErrUnsafe, p)
	case errors.Is(err, unix.EXDEV):
		return fmt.Errorf("%w: %s: resolves outside the layer", ErrUnsafe, p)
	case errors.Is(err, unix.ENOTDIR):
		return fmt.Errorf("%s: a component of the path is not a directory: %w", p, err)
	case errors.Is(err, unix.ENOSYS):
		return fmt.Errorf("the kernel lacks openat2 (Linux 5.6 or later is needed to unpack layers safely): %w", err)
	}
	return fmt.Errorf("opening %s: %w", p, err)
}

// mkdirAll creates the missing directories of dir, one component at a time, each owned by the
// container's root with mode 0755, and returns an O_PATH descriptor of dir.
func (u *unpacker) mkdirAll(dir string) (int, error) {
	fd, err := unix.Dup(u.root)
	if err != nil {
		return -1, err
	}
	done := ""
	for c := range strings.SplitSeq(dir, "/") {
		done = path.Join(done, c)
		err := unix.Mkdirat(fd, c, 0o755)
		if err == nil {
			if err = u.count(); err == nil {
				u.stats.Dirs++
				err = u.ownRoot(fd, c, true)
			}
		} else if errors.Is(err, unix.EEXIST) {
			err = nil
		}
		var next int
		if err == nil {
			next, err = openat2(fd, c, &unix.OpenHow{Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC, Resolve: uint64(resolveHow)})
			err = resolveErr(done, err)
		}
		unix.Close(fd)
		if err != nil {
			return -1, err
		}
		fd = next
	}
	return fd, nil
}

// ownRoot gives name, just created in parent, to the container's root, with mode 0755 for a
// directory.
func (u *unpacker) ownRoot(parent int, name string, dir bool) error {
	uid, _ := u.m.uid(0)
	gid, _ := u.m.gid(0)
	if err := unix.Fchownat(parent, name, uid, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("chown %s: %w", name, err)
	}
	if dir {
		// Mkdirat's mode is filtered by the process umask.
		if err := unix.Fchmodat(parent, name, 0o755, 0); err != nil {
			return fmt.Errorf("chmod %s: %w", name, err)
		}
	}
	return nil
}

// remove deletes whatever is at base in parent (p relative to the root), recursively for a
// directory. A missing entry is not an error.
func (u *unpacker) remove(parent int, p, base string) error {
	err := unix.Unlinkat(parent, base, 0)
	if errors.Is(err, unix.EISDIR) {
		u.forget(p)
		err = removeAllAt(parent, base)
	}
	if err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("removing %s: %w", p, err)
	}
	delete(u.dirTimes, p)
	return nil
}

// forget drops what the unpacker remembers about the directory p and its descendants.
func (u *unpacker) forget(p string) {
	if u.cachedFd >= 0 && (u.cachedDir == p || strings.HasPrefix(u.cachedDir, p+"/")) {
		u.dropCached()
	}
	for d := range u.dirTimes {
		if d == p || strings.HasPrefix(d, p+"/") {
			delete(u.dirTimes, d)
		}
	}
	for d := range u.opaques {
		if d == p || strings.HasPrefix(d, p+"/") {
			delete(u.opaques, d)
		}
	}
}

// removeAllAt removes the directory name in parent and everything below it, never following a
// symbolic link. Depth is bounded by the path length limit.
func removeAllAt(parent int, name string) error {
	fd, err := unix.Openat(parent, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) {
			return unix.Unlinkat(parent, name, 0)
		}
		return err
	}
	buf := make([]byte, 8192)
	for {
		n, err := unix.Getdents(fd, buf)
		if err != nil {
			unix.Close(fd)
			return err
		}
		var names []string
		if n > 0 {
			_, _, names = unix.ParseDirent(buf[:n], -1, names) // skips "." and ".."
		}
		if len(names) == 0 {
			break
		}
		for _, c := range names {
			err := unix.Unlinkat(fd, c, 0)
			if errors.Is(err, unix.EISDIR) {
				err = removeAllAt(fd, c)
			}
			if err != nil && !errors.Is(err, unix.ENOENT) {
				unix.Close(fd)
				return err
			}
		}
		// Entries were removed while reading: start over until the directory reads empty.
		if _, err := unix.Seek(fd, 0, io.SeekStart); err != nil {
			unix.Close(fd)
			return err
		}
	}
	unix.Close(fd)
	return unix.Unlinkat(parent, name, unix.AT_REMOVEDIR)
}

// owner returns the host owner of an entry.
func (u *unpacker) owner(hdr *tar.Header) (int, int, error) {
	uid, err := u.m.uid(hdr.Uid)
	if err != nil {
		return 0, 0, err
	}
	gid, err := u.m.gid(hdr.Gid)
	if err != nil {
		return 0, 0, err
	}
	return uid, gid, nil
}

func entryTimes(hdr *tar.Header) times {
	t := times{atime: hdr.AccessTime, mtime: hdr.ModTime}
	if t.atime.IsZero() {
		t.atime = t.mtime
	}
	return t
}

func timespecs(t times) []unix.Timespec {
	return []unix.Timespec{
		{Sec: t.atime.Unix(), Nsec: int64(t.atime.Nanosecond())},
		{Sec: t.mtime.Unix(), Nsec: int64(t.mtime.Nanosecond())},
	}
}

// futimens sets the times of an open file.
func futimens(fd int, t times) error {
	ts := timespecs(t)
	_, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// mode is the permission part of a tar mode, setuid, setgid and sticky bits included.
func mode(hdr *tar.Header) uint32 { return uint32(hdr.Mode) & 0o7777 }

func (u *unpacker) file(ctx context.Context, tr *tar.Reader, hdr *tar.Header, parent int, p, base string) error {
	if hdr.Size < 0 {
		return fmt.Errorf("negative size %d", hdr.Size)
	}
	if hdr.Size > u.lim.MaxBytes-u.files {
		return fmt.Errorf("%w: files of more than %d bytes in total", ErrLimit, u.lim.MaxBytes)
	}
	uid, gid, err := u.owner(hdr)
	if err != nil {
		return err
	}
	// Always a new inode: writing into an existing file would also change its hard links.
	flags := unix.O_WRONLY | unix.O_CREAT | unix.O_EXCL | unix.O_NOFOLLOW | unix.O_CLOEXEC
	fd, err := unix.Openat(parent, base, flags, 0o600)
	if errors.Is(err, unix.EEXIST) {
		if err = u.remove(parent, p, base); err == nil {
			fd, err = unix.Openat(parent, base, flags, 0o600)
		}
	}
	if err != nil {
		return fmt.Errorf("creating file: %w", err)
	}
	defer unix.Close(fd)
	u.stats.Files++
	u.files += hdr.Size
	buf := u.buffer()
	for left := hdr.Size; left > 0; {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, rerr := tr.Read(buf[:min(int64(len(buf)), left)])
		if n > 0 {
			if err := writeAll(fd, buf[:n]); err != nil {
				return fmt.Errorf("writing file: %w", err)
			}
			left -= int64(n)
			u.stats.Bytes += int64(n)
		}
		if rerr == io.EOF && left > 0 {
			return fmt.Errorf("reading file body: %w", io.ErrUnexpectedEOF)
		}
		if rerr != nil && rerr != io.EOF {
			return fmt.Errorf("reading file body: %w", rerr)
		}
	}
	// chown clears setuid, setgid and file capabilities, so it comes first.
	if err := unix.Fchown(fd, uid, gid); err != nil {
		return fmt.Errorf("chown: %w", err)
	}
	if err := unix.Fchmod(fd, mode(hdr)); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	if err := u.xattrs(fd, hdr); err != nil {
		return err
	}
	if err := futimens(fd, entryTimes(hdr)); err != nil {
		return fmt.Errorf("setting times: %w", err)
	}
	return nil
}

func writeAll(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

func (u *unpacker) mkdir(hdr *tar.Header, parent int, p, base string) error {
	uid, gid, err := u.owner(hdr)
	if err != nil {
		return err
	}
	err = unix.Mkdirat(parent, base, 0o700)
	if errors.Is(err, unix.EEXIST) {
		var st unix.Stat_t
		if err = unix.Fstatat(parent, base, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil {
			if st.Mode&unix.S_IFMT == unix.S_IFDIR {
				err = unix.EEXIST // an existing directory is kept, with this entry's metadata
			} else if err = u.remove(parent, p, base); err == nil {
				err = unix.Mkdirat(parent, base, 0o700)
			}
		}
	}
	if err == nil {
		u.stats.Dirs++
	} else if !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("creating directory: %w", err)
	}
	fd, err := unix.Openat(parent, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening directory: %w", err)
	}
	defer unix.Close(fd)
	if err := u.dirMeta(fd, hdr, uid, gid); err != nil {
		return err
	}
	u.dirTimes[p] = entryTimes(hdr)
	return nil
}

func (u *unpacker) dirMeta(fd int, hdr *tar.Header, uid, gid int) error {
	if err := unix.Fchown(fd, uid, gid); err != nil {
		return fmt.Errorf("chown: %w", err)
	}
	if err := unix.Fchmod(fd, mode(hdr)); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	return u.xattrs(fd, hdr)
}

// rootDir applies a "./" entry to the layer root.
func (u *unpacker) rootDir(hdr *tar.Header) error {
	uid, gid, err := u.owner(hdr)
	if err != nil {
		return err
	}
	if err := u.dirMeta(u.root, hdr, uid, gid); err != nil {
		return err
	}
	u.dirTimes[""] = entryTimes(hdr)
	return nil
}

func (u *unpacker) symlink(hdr *tar.Header, parent int, p, base string) error {
	if len(hdr.Linkname) > u.lim.MaxPathLen {
		return fmt.Errorf("%w: link target is %d bytes, longer than %d", ErrLimit, len(hdr.Linkname), u.lim.MaxPathLen)
	}
	uid, gid, err := u.owner(hdr)
	if err != nil {
		return err
	}
	// The target is stored as written: it is resolved inside the container, never here.
	err = unix.Symlinkat(hdr.Linkname, parent, base)
	if errors.Is(err, unix.EEXIST) {
		if err = u.remove(parent, p, base); err == nil {
			err = unix.Symlinkat(hdr.Linkname, parent, base)
		}
	}
	if err != nil {
		return fmt.Errorf("creating symbolic link: %w", err)
	}
	u.stats.Symlinks++
	if err := unix.Fchownat(parent, base, uid, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("chown: %w", err)
	}
	u.stats.Xattrs += int64(len(xattrNames(hdr))) // user.* is not allowed on symbolic links
	if err := unix.UtimesNanoAt(parent, base, timespecs(entryTimes(hdr)), unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("setting times: %w", err)
	}
	return nil
}

func (u *unpacker) hardlink(hdr *tar.Header, parent int, p, base string) error {
	target, err := cleanName(hdr.Linkname, u.lim.MaxPathLen)
	if err != nil {
		return fmt.Errorf("hard link target %q: %w", hdr.Linkname, err)
	}
	if target == "" {
		return fmt.Errorf("%w: hard link to the layer root", ErrUnsafe)
	}
	if u.skipped[target] {
		u.skipped[p] = true
		u.stats.Other++ // a hard link to a device or fifo that was not created
		return u.remove(parent, p, base)
	}
	if target == p {
		return fmt.Errorf("hard link %q to itself", p)
	}
	tdir, tbase := path.Split(target)
	// A separate descriptor: resolving p's parent may have dropped the cached one.
	tparent, err := u.openDir(strings.TrimSuffix(tdir, "/"), unix.O_PATH)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("hard link target %q is not in the layer", hdr.Linkname)
		}
		return fmt.Errorf("hard link target %q: %w", hdr.Linkname, err)
	}
	defer unix.Close(tparent)
	var st unix.Stat_t
	if err := unix.Fstatat(tparent, tbase, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("hard link target %q is not in the layer", hdr.Linkname)
		}
		return fmt.Errorf("hard link target %q: %w", hdr.Linkname, err)
	}
	if t := st.Mode & unix.S_IFMT; t != unix.S_IFREG && t != unix.S_IFLNK {
		return fmt.Errorf("hard link target %q is not a regular file", hdr.Linkname)
	}
	// Linkat without AT_SYMLINK_FOLLOW links a symbolic link itself, never what it points at.
	err = unix.Linkat(tparent, tbase, parent, base, 0)
	if errors.Is(err, unix.EEXIST) {
		if err = u.remove(parent, p, base); err == nil {
			err = unix.Linkat(tparent, tbase, parent, base, 0)
		}
	}
	if err != nil {
		return fmt.Errorf("creating hard link to %q: %w", hdr.Linkname, err)
	}
	u.stats.Hardlinks++
	return nil
}

// whiteout handles the OCI whiteout entries in dir: ".wh..wh..opq" makes dir opaque, and
// ".wh.NAME" hides NAME of the layers below with an overlayfs whiteout (a 0/0 character
// device, the one device node Unpack creates).
func (u *unpacker) whiteout(dir, base string) error {
	if base == opaqueMarker {
		if _, err := u.parent(dir); err != nil {
			return err
		}
		u.opaques[dir] = true
		return nil
	}
	if strings.HasPrefix(base, whiteoutMeta) {
		u.stats.Other++ // aufs metadata such as .wh..wh.plnk
		return nil
	}
	name := strings.TrimPrefix(base, whiteoutPrefix)
	if name == "" || name == "." || name == ".." {
		return fmt.Errorf("%w: whiteout of %q", ErrUnsafe, name)
	}
	if err := u.count(); err != nil {
		return err
	}
	p := path.Join(dir, name)
	delete(u.skipped, p)
	parent, err := u.parent(dir)
	if err != nil {
		return err
	}
	if err := u.remove(parent, p, name); err != nil {
		return err
	}
	if err := unix.Mknodat(parent, name, unix.S_IFCHR, 0); err != nil {
		return fmt.Errorf("creating whiteout: %w", err)
	}
	u.stats.Whiteouts++
	return u.ownRoot(parent, name, false)
}

// finish marks opaque directories and sets directory times, now that nothing will be created
// in them (changing a child's metadata leaves its parent's times alone, so order is free).
func (u *unpacker) finish() error {
	u.dropCached()
	for _, d := range slices.Sorted(maps.Keys(u.opaques)) {
		fd, err := u.openDir(d, unix.O_RDONLY)
		if err != nil {
			continue // replaced by a later entry
		}
		err = unix.Fsetxattr(fd, overlayOpaque, []byte("y"), 0)
		unix.Close(fd)
		if err != nil {
			return fmt.Errorf("marking %q opaque: %w", d, err)
		}
		u.stats.Opaques++
	}
	for _, d := range slices.Sorted(maps.Keys(u.dirTimes)) {
		t := u.dirTimes[d]
		if d == "" {
			if err := futimens(u.root, t); err != nil {
				return fmt.Errorf("setting times of the layer root: %w", err)
			}
			continue
		}
		dir, base := path.Split(d)
		parent, err := u.openDir(strings.TrimSuffix(dir, "/"), unix.O_PATH)
		if err != nil {
			continue // replaced by a later entry
		}
		err = unix.UtimesNanoAt(parent, base, timespecs(t), unix.AT_SYMLINK_NOFOLLOW)
		unix.Close(parent)
		if err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("setting times of %q: %w", d, err)
		}
	}
	return nil
}

// xattrNames lists the extended attributes of an entry (PAX SCHILY.xattr records).
func xattrNames(hdr *tar.Header) []string {
	var names []string
	for k := range hdr.PAXRecords {
		if name, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// xattrs applies an entry's extended attributes that are safe to keep: user.* except
// user.overlay.* (which overlayfs interprets in userxattr mode), and security.capability with
// its root ID shifted by the ID map. trusted.* (overlayfs metadata among them), security.*
// labels and ACLs are not applied. Attributes the filesystem refuses are counted, not fatal.
func (u *unpacker) xattrs(fd int, hdr *tar.Header) error {
	for _, name := range xattrNames(hdr) {
		value := []byte(hdr.PAXRecords["SCHILY.xattr."+name])
		switch {
		case strings.HasPrefix(name, "user.") && !strings.HasPrefix(name, "user.overlay."):
		case name == "security.capability":
			v, ok := u.fileCaps(value)
			if !ok {
				u.stats.Xattrs++
				continue
			}
			value = v
		default:
			u.stats.Xattrs++
			continue
		}
		if err := unix.Fsetxattr(fd, name, value, 0); err != nil {
			u.stats.Xattrs++
		}
	}
	return nil
}

// File capability xattr revisions (linux/capability.h).
const (
	capRevisionMask = 0xFF000000
	capRevision2    = 0x02000000
	capRevision3    = 0x03000000
	capEffective    = 0x000001
	capSize2        = 20
	capSize3        = 24
)

// fileCaps returns a security.capability value for the ID map: a revision 3 value whose root
// ID is the host ID of the container's root, so that the capabilities apply inside the
// container's user namespace and nowhere else. Unchanged for the identity map. ok is false for
// a malformed or revision 1 value.
func (u *unpacker) fileCaps(v []byte) ([]byte, bool) {
	if len(v) < 4 {
		return nil, false
	}
	magic := binary.LittleEndian.Uint32(v)
	var rootid int
	switch magic & capRevisionMask {
	case capRevision2:
		if len(v) != capSize2 {
			return nil, false
		}
	case capRevision3:
		if len(v) != capSize3 {
			return nil, false
		}
		rootid = int(binary.LittleEndian.Uint32(v[capSize2:]))
	default:
		return nil, false
	}
	if u.m.Identity() {
		return v, true
	}
	host, err := u.m.uid(rootid)
	if err != nil {
		return nil, false
	}
	out := make([]byte, capSize3)
	copy(out, v[:capSize2])
	binary.LittleEndian.PutUint32(out, capRevision3|magic&capEffective)
	binary.LittleEndian.PutUint32(out[capSize2:], uint32(host))
	return out, true
}
