package image

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/klauspost/compress/gzip"
)

// Limits on the metadata files of archives and layouts; layers themselves are streamed.
const (
	maxMetadataFile = 16 << 20
	maxArchiveFiles = 1 << 20
)

// A gzip-compressed archive is decompressed to a temporary file; it may expand at most
// maxArchiveRatio times its compressed size (and always to archiveRatioFloor), so that a
// decompression bomb cannot fill the disk.
const maxArchiveRatio = 200

// archiveRatioFloor is a variable so that tests can lower it.
var archiveRatioFloor int64 = 1 << 30

// tarIndex gives random access to the regular files of an uncompressed tar file.
type tarIndex struct {
	f     *os.File
	files map[string]tarEntry
}

type tarEntry struct{ off, size int64 }

func indexTar(f *os.File) (*tarIndex, error) {
	idx := &tarIndex{f: f, files: map[string]tarEntry{}}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading archive index: %w", err)
		}
		if len(idx.files) >= maxArchiveFiles {
			return nil, fmt.Errorf("archive has more than %d entries", maxArchiveFiles)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		off, err := f.Seek(0, io.SeekCurrent)
		if err != nil {
			return nil, err
		}
		idx.files[path.Clean(strings.TrimPrefix(h.Name, "/"))] = tarEntry{off: off, size: h.Size}
	}
	return idx, nil
}

// Open implements fs.FS.
func (t *tarIndex) Open(name string) (fs.File, error) {
	e, ok := t.files[path.Clean(name)]
	if !ok {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return &sectionFile{SectionReader: io.NewSectionReader(t.f, e.off, e.size), name: name}, nil
}

type sectionFile struct {
	*io.SectionReader
	name string
}

func (s *sectionFile) Stat() (fs.FileInfo, error) { return nil, errors.ErrUnsupported }
func (s *sectionFile) Close() error               { return nil }

func readSmall(fsys fs.FS, name string) ([]byte, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxMetadataFile+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	if len(b) > maxMetadataFile {
		return nil, fmt.Errorf("%s is larger than %d bytes", name, maxMetadataFile)
	}
	return b, nil
}

// openArchiveFile opens a tar file for random access. A gzip-compressed archive is decompressed
// into a temporary file under opts.TempDir first.
func openArchiveFile(img *Image, p string, opts Options) (*tarIndex, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	img.onClose(f.Close)
	var magic [2]byte
	if _, err := io.ReadFull(f, magic[:]); err == nil && magic == [2]byte{0x1f, 0x8b} {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return nil, err
		}
		gz, err := gzip.NewReader(f)
		if err != nil {
			return nil, fmt.Errorf("reading gzip header of %s: %w", p, err)
		}
		tmp, err := os.CreateTemp(opts.TempDir, "archive-*.tar")
		if err != nil {
			return nil, fmt.Errorf("creating temporary file: %w", err)
		}
		img.onClose(func() error { tmp.Close(); return os.Remove(tmp.Name()) })
		limit := archiveRatioFloor
		if fi, err := f.Stat(); err == nil && fi.Size() > limit/maxArchiveRatio {
			limit = fi.Size() * maxArchiveRatio
		}
		n, err := io.Copy(tmp, io.LimitReader(gz, limit+1))
		if err != nil {
			return nil, fmt.Errorf("decompressing %s: %w", p, err)
		}
		if n > limit {
			return nil, fmt.Errorf("decompressing %s: expands to more than %d bytes", p, limit)
		}
		f = tmp
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	return indexTar(f)
}

// sniffArchive tells a docker save archive from an OCI archive by the names in it. It streams
// the archive (decompressing it when gzip-compressed) and writes nothing.
func sniffArchive(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	var r io.Reader = f
	var magic [2]byte
	if _, err := f.ReadAt(magic[:], 0); err == nil && magic == [2]byte{0x1f, 0x8b} {
		gz, err := gzip.NewReader(bufio.NewReader(f))
		if err != nil {
			return "", fmt.Errorf("%s: reading gzip header: %w", p, err)
		}
		defer gz.Close()
		r = gz
	}
	tr := tar.NewReader(r)
	hasIndex := false
	for n := 0; ; n++ {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", fmt.Errorf("%s is neither a directory nor a readable tar archive: %w", p, err)
		}
		if n >= maxArchiveFiles {
			return "", fmt.Errorf("%s: archive has more than %d entries", p, maxArchiveFiles)
		}
		switch cleanArchivePath(h.Name) {
		case "manifest.json":
			return SourceDockerArchive, nil
		case "index.json":
			hasIndex = true
		}
	}
	if hasIndex {
		return SourceOCIArchive, nil
	}
	return "", fmt.Errorf("%s is a tar archive with neither manifest.json (docker save) nor index.json (OCI layout)", p)
}

func openDockerArchive(_ context.Context, p string, opts Options) (*Image, error) {
	img := &Image{}
	idx, err := openArchiveFile(img, p, opts)
	if err != nil {
		img.Close()
		return nil, err
	}
	if err := readDockerArchive(img, idx); err != nil {
		img.Close()
		return nil, err
	}
	return img, nil
}

// readDockerArchive reads a `docker save` archive: manifest.json names the config and the layer
// tars; newer Docker versions store them as OCI blobs, older ones as <id>/layer.tar.
func readDockerArchive(img *Image, fsys fs.FS) error {
	b, err := readSmall(fsys, "manifest.json")
	if err != nil {
		return err
	}
	var m tarball.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("parsing manifest.json: %w", err)
	}
	if len(m) != 1 {
		var tags []string
		for _, d := range m {
			tags = append(tags, d.RepoTags...)
		}
		return fmt.Errorf("archive holds %d images (%s); save one image per archive", len(m), strings.Join(tags, ", "))
	}
	d := m[0]
	cb, err := readSmall(fsys, cleanArchivePath(d.Config))
	if err != nil {
		return fmt.Errorf("reading config %s: %w", d.Config, err)
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(cb))
	if err != nil {
		return fmt.Errorf("parsing config %s: %w", d.Config, err)
	}
	id, _, _ := v1.SHA256(bytes.NewReader(cb))
	img.Config, img.ID, img.RepoTags = cfg, id.String(), d.RepoTags
	img.Platform = &v1.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant}
	descs := make([]v1.Descriptor, len(d.Layers))
	byDiffID := make([]bool, len(d.Layers))
	for i, lp := range d.Layers {
		lp = cleanArchivePath(lp)
		descs[i] = v1.Descriptor{URLs: []string{lp}}
		descs[i].Digest, byDiffID[i] = blobDigest(lp, cfg, i)
		if ti, ok := fsys.(*tarIndex); ok {
			descs[i].Size = ti.files[lp].size // the decompression ratio check needs it
		}
	}
	err = fillLayers(img, descs, func(desc v1.Descriptor) func(context.Context) (io.ReadCloser, error) {
		return func(context.Context) (io.ReadCloser, error) {
			f, err := fsys.Open(desc.URLs[0])
			if err != nil {
				return nil, err
			}
			return f.(io.ReadCloser), nil
		}
	})
	for i, l := range img.Layers {
		l.digestIsDiffID = byDiffID[i]
	}
	return err
}

// blobDigest is the digest of a docker save layer file: its name when it is an OCI blob path
// (blobs/sha256/<hex>), otherwise the config's diffID, with diffID true (legacy <id>/layer.tar
// files are uncompressed; other tools write <digest>.tar.gz files, whose uncompressed content
// is what the diffID names).
func blobDigest(p string, cfg *v1.ConfigFile, i int) (h v1.Hash, diffID bool) {
	if dir, hex := path.Split(p); dir == "blobs/sha256/" {
		if h, err := v1.NewHash("sha256:" + hex); err == nil {
			return h, false
		}
	}
	if i < len(cfg.RootFS.DiffIDs) {
		return cfg.RootFS.DiffIDs[i], true
	}
	return v1.Hash{}, true
}

func cleanArchivePath(p string) string { return path.Clean(strings.TrimPrefix(p, "/")) }

func openOCIArchive(_ context.Context, p string, opts Options) (*Image, error) {
	img := &Image{}
	idx, err := openArchiveFile(img, p, opts)
	if err != nil {
		img.Close()
		return nil, err
	}
	if err := readLayout(img, idx, opts.Platform); err != nil {
		img.Close()
		return nil, err
	}
	return img, nil
}

func openOCIDir(_ context.Context, p string, opts Options) (*Image, error) {
	img := &Image{}
	if err := readLayout(img, os.DirFS(p), opts.Platform); err != nil {
		return nil, err
	}
	return img, nil
}
