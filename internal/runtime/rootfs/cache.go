package rootfs

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moatsec/moat/internal/image"
	"github.com/moatsec/moat/internal/readahead"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
)

// Cache is the content-addressed cache of unpacked layers, shared by every container and
// every moat process on the host. A layer is unpacked once per ID map into
// DIR/layers/sha256/KEY/fs, where KEY is the hex of its blob digest (the digest image.Layer.Open
// verifies), followed by -UID-GID-SIZE for a shifted ID map. A layer directory exists only
// once it is complete: it is unpacked into a temporary directory beside it and renamed into
// place under a per-layer lock. Cached layers are never written again; containers see them as
// read-only overlayfs lower layers.
type Cache struct {
	dir     string
	layers  string
	locks   string
	lim     Limits
	sync    bool
	workers int
	log     *slog.Logger
}

// Option configures a Cache.
type Option func(*Cache)

// WithLimits replaces DefaultLimits.
func WithLimits(l Limits) Option { return func(c *Cache) { c.lim = l } }

// WithWorkers sets how many layers UnpackAll unpacks at once (default: GOMAXPROCS).
func WithWorkers(n int) Option { return func(c *Cache) { c.workers = n } }

// WithLogger sets the logger; the default discards.
func WithLogger(l *slog.Logger) Option { return func(c *Cache) { c.log = l } }

// WithoutSync publishes layers without flushing them to disk first. Faster, but after a power
// loss or kernel crash a published layer may miss data. For tests and throwaway caches.
func WithoutSync() Option { return func(c *Cache) { c.sync = false } }

// NewCache opens the layer cache in dir, creating it. dir should be on a local filesystem
// that supports trusted.* extended attributes and character devices (ext4, xfs, btrfs,
// tmpfs): overlayfs reads its whiteouts and opaque markers there.
func NewCache(dir string, opts ...Option) (*Cache, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	c := &Cache{
		dir: abs, layers: filepath.Join(abs, "layers", "sha256"), locks: filepath.Join(abs, "locks"),
		lim: DefaultLimits, sync: true, workers: runtime.GOMAXPROCS(0),
		log: slog.New(slog.DiscardHandler),
	}
	for _, o := range opts {
		o(c)
	}
	if err := c.lim.validate(); err != nil {
		return nil, err
	}
	if c.workers < 1 {
		return nil, fmt.Errorf("rootfs: %d workers", c.workers)
	}
	for _, d := range []string{c.layers, c.locks} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("creating layer cache: %w", err)
		}
	}
	// Cached layers hold the image's setuid binaries, owned by host root under the identity
	// map: no other host user may reach them.
	if err := os.Chmod(filepath.Join(abs, "layers"), 0o700); err != nil {
		return nil, fmt.Errorf("creating layer cache: %w", err)
	}
	return c, nil
}

// Dir is the cache's directory.
func (c *Cache) Dir() string { return c.dir }

// layerKey names a layer's directory: the blob digest's hex, then the ID map unless it is the
// identity. Neither contains ':', ',' or '\', which overlayfs options would read specially.
func layerKey(blob v1.Hash, m IDMap) (string, error) {
	if blob.Algorithm != "sha256" || len(blob.Hex) != 64 {
		return "", fmt.Errorf("layer blob digest %q is not a sha256 digest", blob)
	}
	if _, err := hex.DecodeString(blob.Hex); err != nil || strings.ToLower(blob.Hex) != blob.Hex {
		return "", fmt.Errorf("layer blob digest %q is not a sha256 digest", blob)
	}
	if err := m.validate(); err != nil {
		return "", err
	}
	if m.Identity() {
		return blob.Hex, nil
	}
	return fmt.Sprintf("%s-%d-%d-%d", blob.Hex, m.UID, m.GID, m.Size), nil
}

// Path returns the directory the layer stored as blob (its digest) has in the cache for m,
// whether or not it is there yet.
func (c *Cache) Path(blob v1.Hash, m IDMap) (string, error) {
	key, err := layerKey(blob, m)
	if err != nil {
		return "", err
	}
	return filepath.Join(c.layers, key, "fs"), nil
}

// Has reports whether the layer stored as blob is complete in the cache for m.
func (c *Cache) Has(blob v1.Hash, m IDMap) bool {
	p, err := c.Path(blob, m)
	if err != nil {
		return false
	}
	fi, err := os.Lstat(p)
	return err == nil && fi.IsDir()
}

// Unpacked is a layer in the cache.
type Unpacked struct {
	// Digest is the layer's blob digest, its key in the cache.
	Digest v1.Hash
	// DiffID is what the image config names as the digest of its tar (not checked).
	DiffID v1.Hash
	// Dir is the layer's root directory, an overlayfs lower layer.
	Dir string
	// Fresh is true when this call unpacked the layer, false when it was cached already (or
	// another process unpacked it meanwhile).
	Fresh bool
	// Stats are the unpack's counts, when Fresh.
	Stats Stats
}

// Unpack makes sure the layer is in the cache for m, unpacking it when it is not; a layer that
// breaks the unpack rules is refused (ErrUnsafe, ErrLimit) and nothing is cached. Its blob must
// hash to its digest (image.Layer.Open checks as it reads), or nothing is cached either.
// Concurrent calls for one layer, in this process or others, unpack it once.
//
// The cache is keyed by the blob digest, not by the diffID the image config claims for the
// tar: the blob digest is what the image's manifest pins and what reading the layer verifies,
// so a layer in the cache holds exactly what its key names, with no second hash of the
// uncompressed tar. The cost is that one tar stored as two blobs (gzip and zstd, or compressed
// and in a docker save archive) is unpacked twice.
func (c *Cache) Unpack(ctx context.Context, l *image.Layer, m IDMap) (Unpacked, error) {
	out := Unpacked{Digest: l.Digest, DiffID: l.DiffID}
	key, err := layerKey(l.Digest, m)
	if err != nil {
		return out, err
	}
	final := filepath.Join(c.layers, key)
	out.Dir = filepath.Join(final, "fs")
	if c.Has(l.Digest, m) {
		return out, nil
	}
	unlock, err := c.lock(ctx, key)
	if err != nil {
		return out, err
	}
	defer unlock()
	if c.Has(l.Digest, m) {
		return out, nil
	}
	// Holding the lock, any temporary directory of this layer is a crashed unpacker's.
	if err := c.removeTemps(key); err != nil {
		return out, err
	}
	start := time.Now()
	tmp, err := os.MkdirTemp(c.layers, ".tmp-"+key+"-")
	if err != nil {
		return out, fmt.Errorf("unpacking layer %s: %w", l.Digest, err)
	}
	published := false
	defer func() {
		if !published {
			os.RemoveAll(tmp)
		}
	}()
	fsDir := filepath.Join(tmp, "fs")
	if err := mkdirOwned(fsDir, m); err != nil {
		return out, fmt.Errorf("unpacking layer %s: %w", l.Digest, err)
	}
	stats, err := c.unpack(ctx, l, fsDir, m)
	if err != nil {
		return out, fmt.Errorf("unpacking layer %s: %w", l.Digest, err)
	}
	if err := c.publish(tmp, final); err != nil {
		return out, fmt.Errorf("unpacking layer %s: %w", l.Digest, err)
	}
	published = true
	out.Fresh, out.Stats = true, stats
	c.log.Debug("unpacked layer", "digest", l.Digest.String(), "diffID", l.DiffID.String(), "key", key, "files", stats.Files, "bytes", stats.Bytes, "duration", time.Since(start))
	return out, nil
}

// UnpackAll unpacks an image's layers (as Unpack does, several at once) and returns them in
// the image's order, bottom layer first.
func (c *Cache) UnpackAll(ctx context.Context, layers []*image.Layer, m IDMap) ([]Unpacked, error) {
	out := make([]Unpacked, len(layers))
	// An image may hold one layer twice (empty layers often are): it is unpacked once.
	id := func(l *image.Layer) string { return l.Digest.String() }
	first := map[string]int{}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(c.workers)
	for i, l := range layers {
		if _, ok := first[id(l)]; ok {
			continue
		}
		first[id(l)] = i
		g.Go(func() error {
			u, err := c.Unpack(gctx, l, m)
			out[i] = u
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	for i, l := range layers {
		if j := first[id(l)]; j != i {
			out[i] = out[j]
			out[i].Fresh, out[i].Stats = false, Stats{}
		}
	}
	return out, nil
}

func (c *Cache) unpack(ctx context.Context, l *image.Layer, dir string, m IDMap) (Stats, error) {
	rc, err := l.Open(ctx)
	if err != nil {
		return Stats{}, err
	}
	defer rc.Close()
	// Read ahead in a goroutine of its own, so that decompressing and unpacking use
	// separate cores.
	pr := readahead.New(rc, nil, 8, 512<<10)
	defer pr.Close()
	var r io.Reader = pr
	if l.Size > 0 {
		r = &ratioReader{r: pr, compressed: l.Size, lim: c.lim}
	}
	return Unpack(ctx, r, dir, m, c.lim)
}

// ratioReader fails a stream that expands too much over its compressed size.
type ratioReader struct {
	r          io.Reader
	n          int64
	compressed int64
	lim        Limits
}

func (c *ratioReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.n > c.lim.RatioFloor && c.n/c.compressed > c.lim.MaxRatio {
		return n, fmt.Errorf("%w: expands more than %d times (%d compressed bytes, %d read so far)", ErrLimit, c.lim.MaxRatio, c.compressed, c.n)
	}
	return n, err
}

// publish makes a complete layer visible: flushed to disk first (the rename must not reach
// the disk before the data it names), then renamed into place, then the rename made durable.
func (c *Cache) publish(tmp, final string) error {
	if c.sync {
		fd, err := unix.Open(tmp, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		err = unix.Syncfs(fd)
		unix.Close(fd)
		if err != nil {
			return fmt.Errorf("flushing layer to disk: %w", err)
		}
	}
	if err := os.Rename(tmp, final); err != nil {
		return fmt.Errorf("publishing layer: %w", err)
	}
	if c.sync {
		return syncDir(c.layers)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// mkdirOwned creates dir with mode 0755, owned by the container's root.
func mkdirOwned(dir string, m IDMap) error {
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	uid, _ := m.uid(0)
	gid, _ := m.gid(0)
	if err := os.Lchown(dir, uid, gid); err != nil {
		return err
	}
	return os.Chmod(dir, 0o755)
}

// lock takes the layer's lock, an flock on DIR/locks/KEY.lock, which serialises its
// unpackers across processes; the kernel drops it when a holder dies. Lock files are never
// removed, so that no two processes can hold locks on different files of one name.
func (c *Cache) lock(ctx context.Context, key string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(c.locks, key+".lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("locking layer %s: %w", key, err)
	}
	wait := time.Millisecond
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil // closing the file releases the lock
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			f.Close()
			return nil, fmt.Errorf("locking layer %s: %w", key, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 50*time.Millisecond)
	}
}

// removeTemps removes the temporary directories of a layer; the caller holds its lock.
func (c *Cache) removeTemps(key string) error {
	tmps, err := filepath.Glob(filepath.Join(c.layers, ".tmp-"+key+"-*"))
	if err != nil {
		return err
	}
	for _, t := range tmps {
		if err := os.RemoveAll(t); err != nil {
			return fmt.Errorf("removing an interrupted unpack: %w", err)
		}
	}
	return nil
}

// Sweep removes what interrupted unpacks left behind (temporary directories of layers no one
// is unpacking now). Unpack removes a layer's own leftovers before unpacking it again; Sweep
// is for layers that will not be.
func (c *Cache) Sweep(ctx context.Context) error {
	ents, err := os.ReadDir(c.layers)
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), ".tmp-")
		if !ok {
			continue
		}
		i := strings.LastIndexByte(rest, '-')
		if i < 0 {
			continue
		}
		key := rest[:i]
		if seen[key] {
			continue
		}
		seen[key] = true
		lctx, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
		unlock, err := c.lock(lctx, key)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			continue // being unpacked now
		}
		err = c.removeTemps(key)
		unlock()
		if err != nil {
			return err
		}
	}
	return nil
}
