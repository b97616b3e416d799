// Package image opens container images from every source moat reads (registries, docker save
// archives, OCI layouts as directories or archives, the local Docker daemon, and unpacked root
// filesystems) and presents them the same way: identity, config and layers that stream their
// uncompressed tar while verifying the stored digest.
package image

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"
	"github.com/moatsec/moat/internal/readahead"
)

// Source kinds, as written before the colon of a target ("oci-dir:./layout").
const (
	SourceRegistry      = "registry"
	SourceDockerArchive = "docker-archive"
	SourceOCIArchive    = "oci-archive"
	SourceOCIDir        = "oci-dir"
	SourceDocker        = "docker"
	SourceDir           = "dir"
)

// Sources lists every source kind.
var Sources = []string{SourceRegistry, SourceDockerArchive, SourceOCIArchive, SourceOCIDir, SourceDocker, SourceDir}

// ErrDigestMismatch means a layer's bytes do not hash to the digest its manifest names.
var ErrDigestMismatch = errors.New("layer digest mismatch")

// Image is an opened image.
type Image struct {
	// Name is the target as given.
	Name string
	// Source is one of the Source* kinds.
	Source string
	// Reference is the registry reference pinned to the manifest digest (registry sources).
	Reference string
	// Digest is the manifest digest, when the source has a manifest.
	Digest string
	// ID is the config digest.
	ID          string
	Platform    *v1.Platform
	Config      *v1.ConfigFile
	Layers      []*Layer
	RepoTags    []string
	RepoDigests []string
	// Root is the directory of a dir: source, which has no layers.
	Root string

	closers []func() error
}

// Close releases files the image holds open and removes its temporary files.
func (img *Image) Close() error {
	var errs []error
	for i := len(img.closers) - 1; i >= 0; i-- {
		errs = append(errs, img.closers[i]())
	}
	img.closers = nil
	return errors.Join(errs...)
}

func (img *Image) onClose(f func() error) { img.closers = append(img.closers, f) }

// Layer is one layer of an image.
type Layer struct {
	Index int
	// Digest is the digest of the layer blob as stored (compressed, for compressed layers).
	// It keys moat's layer cache, so Open verifies it.
	Digest v1.Hash
	// DiffID is the digest of the uncompressed tar, from the image config.
	DiffID    v1.Hash
	Size      int64
	MediaType types.MediaType
	// CreatedBy is the command of the history entry that made the layer.
	CreatedBy string

	open func(ctx context.Context) (io.ReadCloser, error)
	// verified is true when open already verifies Digest (go-containerregistry's remote layers).
	verified bool
	// digestIsDiffID is true when Digest is the diffID, the digest of the uncompressed tar, so
	// that Open hashes what it decompresses rather than the stored bytes (docker save layers
	// that are not stored as content-addressed blobs, which may or may not be compressed).
	digestIsDiffID bool
}

// Open returns the layer's uncompressed tar stream (gzip, zstd or plain, told apart by their
// magic bytes). Reading to EOF checks the stored bytes (or, when Digest is the diffID, the
// uncompressed tar) against Digest: a mismatch is returned by Read instead of io.EOF, wrapping
// ErrDigestMismatch.
func (l *Layer) Open(ctx context.Context) (io.ReadCloser, error) {
	raw, err := l.open(ctx)
	if err != nil {
		return nil, fmt.Errorf("opening layer %s: %w", l.Digest, err)
	}
	lr := &layerReader{raw: raw, want: l.Digest}
	var src io.Reader = raw
	if !l.verified {
		if l.Digest.Algorithm != "sha256" {
			raw.Close()
			return nil, fmt.Errorf("layer %s: unsupported digest algorithm %q", l.Digest, l.Digest.Algorithm)
		}
		if !l.digestIsDiffID {
			// The blob is hashed beside the decompressor, not by it: on a machine without SHA
			// instructions hashing is as slow as inflating.
			lr.ahead = readahead.New(raw, sha256.New(), 4, 256<<10)
			src = lr.ahead
		}
	}
	lr.comp = bufio.NewReaderSize(src, 256<<10)
	magic, _ := lr.comp.Peek(4)
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		gz, err := newGzipReader(lr.comp)
		if err != nil {
			raw.Close()
			return nil, fmt.Errorf("layer %s: reading gzip header: %w", l.Digest, err)
		}
		lr.dec, lr.closeDec = gz, gz.Close
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(lr.comp, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(128<<20))
		if err != nil {
			raw.Close()
			return nil, fmt.Errorf("layer %s: reading zstd header: %w", l.Digest, err)
		}
		lr.dec, lr.closeDec = zr, func() error { zr.Close(); return nil }
	default:
		lr.dec = lr.comp
	}
	if !l.verified && l.digestIsDiffID {
		lr.ahead = readahead.New(lr.dec, sha256.New(), 4, 256<<10)
		lr.dec = lr.ahead
	}
	return lr, nil
}

type layerReader struct {
	raw      io.ReadCloser
	comp     *bufio.Reader
	dec      io.Reader
	closeDec func() error
	ahead    *readahead.Reader // reads ahead and hashes what Digest names; nil when verified already
	want     v1.Hash
	done     bool
	err      error
}

func (r *layerReader) Read(p []byte) (int, error) {
	if r.done {
		return 0, r.err
	}
	n, err := r.dec.Read(p)
	if err == io.EOF {
		r.done, r.err = true, r.finish()
		return n, r.err
	}
	if err != nil {
		r.done, r.err = true, err
	}
	return n, err
}

// finish drains what follows the compressed stream so that the whole blob is hashed.
func (r *layerReader) finish() error {
	if _, err := io.Copy(io.Discard, r.comp); err != nil {
		return fmt.Errorf("reading layer %s: %w", r.want, err)
	}
	if r.ahead != nil {
		got := fmt.Sprintf("%x", r.ahead.Sum())
		if got != r.want.Hex {
			return fmt.Errorf("%w: layer %s hashes to sha256:%s", ErrDigestMismatch, r.want, got)
		}
	}
	return io.EOF
}

func (r *layerReader) Close() error {
	var err error
	if r.ahead != nil {
		r.ahead.Close() // first: it may be reading the decompressor or the blob
	}
	if r.closeDec != nil {
		err = r.closeDec()
	}
	return errors.Join(err, r.raw.Close())
}

// Options configure Open.
type Options struct {
	// Platform selects the image of a multi-platform index; nil means the host's.
	Platform *v1.Platform
	// Insecure allows plain HTTP to registries on loopback addresses.
	Insecure bool
	// TempDir receives temporary files (a spooled docker save stream, a decompressed archive).
	// It must be inside moat's own cache directory.
	TempDir string
	// DockerHost is the daemon address for docker: sources ("unix:///var/run/docker.sock").
	DockerHost string
}

// HostPlatform is the platform moat runs on. It names no variant: indexes describe arm64
// images both with and without "v8", and a variant in the wanted platform would only match
// descriptors that spell it.
func HostPlatform() *v1.Platform {
	return &v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
}

// Target is a parsed image argument.
type Target struct {
	Source string
	// Ref is the reference or path after the source prefix.
	Ref string
}

func (t Target) String() string { return t.Source + ":" + t.Ref }

// ParseTarget splits "source:ref". An argument without a known prefix that names an existing
// file or directory is that file or directory (an OCI layout, docker save archive, OCI archive
// or root filesystem, told apart by content); anything else is a registry reference.
func ParseTarget(arg string) (Target, error) {
	if arg == "" {
		return Target{}, errors.New("empty image target")
	}
	if src, rest, ok := strings.Cut(arg, ":"); ok {
		for _, s := range Sources {
			if src == s {
				if rest == "" {
					return Target{}, fmt.Errorf("target %q names no image after the %s prefix", arg, src)
				}
				return Target{Source: s, Ref: rest}, nil
			}
		}
	}
	fi, err := os.Stat(arg)
	if err != nil {
		return Target{Source: SourceRegistry, Ref: arg}, nil
	}
	if fi.IsDir() {
		if _, err := os.Stat(filepath.Join(arg, "oci-layout")); err == nil {
			return Target{Source: SourceOCIDir, Ref: arg}, nil
		}
		return Target{Source: SourceDir, Ref: arg}, nil
	}
	if !fi.Mode().IsRegular() {
		// A pipe or device would be consumed (or block) while sniffing it.
		return Target{}, fmt.Errorf("%s is neither a directory nor a regular file (save the image to a file first)", arg)
	}
	kind, err := sniffArchive(arg)
	if err != nil {
		return Target{}, err
	}
	return Target{Source: kind, Ref: arg}, nil
}

// Open opens the image a target names.
func Open(ctx context.Context, t Target, opts Options) (*Image, error) {
	if opts.Platform == nil {
		opts.Platform = HostPlatform()
	}
	var img *Image
	var err error
	switch t.Source {
	case SourceRegistry:
		img, err = openRegistry(ctx, t.Ref, opts)
	case SourceDockerArchive:
		img, err = openDockerArchive(ctx, t.Ref, opts)
	case SourceOCIArchive:
		img, err = openOCIArchive(ctx, t.Ref, opts)
	case SourceOCIDir:
		img, err = openOCIDir(ctx, t.Ref, opts)
	case SourceDocker:
		img, err = openDaemon(ctx, t.Ref, opts)
	case SourceDir:
		img, err = openDir(t.Ref)
	default:
		return nil, fmt.Errorf("unknown image source %q (known: %s)", t.Source, strings.Join(Sources, ", "))
	}
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", t, err)
	}
	img.Name, img.Source = t.String(), t.Source
	if t.Source == SourceRegistry {
		img.Name = t.Ref
	}
	return img, nil
}

func openDir(path string) (*Image, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%s is not a directory", abs)
	}
	return &Image{Root: abs}, nil
}

// fillLayers builds Layers from a manifest's layer descriptors and the config's diffIDs and history.
func fillLayers(img *Image, descs []v1.Descriptor, open func(d v1.Descriptor) func(context.Context) (io.ReadCloser, error)) error {
	cfg := img.Config
	if len(cfg.RootFS.DiffIDs) != len(descs) {
		return fmt.Errorf("manifest lists %d layers but the config lists %d diffIDs", len(descs), len(cfg.RootFS.DiffIDs))
	}
	created := layerHistory(cfg)
	for i, d := range descs {
		if d.MediaType != "" && !isLayerMediaType(d.MediaType) {
			return fmt.Errorf("layer %d (%s): unsupported media type %q", i, d.Digest, d.MediaType)
		}
		l := &Layer{Index: i, Digest: d.Digest, DiffID: cfg.RootFS.DiffIDs[i], Size: d.Size, MediaType: d.MediaType, open: open(d)}
		if i < len(created) {
			l.CreatedBy = created[i]
		}
		img.Layers = append(img.Layers, l)
	}
	return nil
}

func isLayerMediaType(mt types.MediaType) bool {
	s := string(mt)
	return strings.Contains(s, "layer") || strings.Contains(s, "tar")
}

// layerHistory returns the created_by of the history entries that made a layer, in layer order.
func layerHistory(cfg *v1.ConfigFile) []string {
	var out []string
	for _, h := range cfg.History {
		if !h.EmptyLayer {
			out = append(out, h.CreatedBy)
		}
	}
	return out
}
