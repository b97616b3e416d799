// Package mirror stores moat's advisory database in an OCI registry and fetches it back, so
// that a site can serve the database from its own registry (`moat db push REF`, `moat db pull
// REF`).
//
// The database travels as an OCI artifact (image-spec 1.1): a manifest with artifactType
// ArtifactType, a small JSON config describing the database, and one zstd-compressed layer
// holding the database file. Pull checks every digest (go-containerregistry verifies blobs as
// they stream), the media types, and the size before and after decompression; whether the
// file is a usable database is for the caller to check before installing it.
package mirror

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"
)

// Media types of the artifact.
const (
	ArtifactType    = "application/vnd.moat.vulndb.v1"
	ConfigMediaType = "application/vnd.moat.vulndb.config.v1+json"
	LayerMediaType  = "application/vnd.moat.vulndb.layer.v1.bolt+zstd"
)

// DefaultMaxSize bounds the decompressed database Pull accepts: 4 GiB, far above the whole
// OSV corpus.
const DefaultMaxSize = 4 << 30

// maxConfig bounds the config blob.
const maxConfig = 1 << 20

// ErrNotDatabase is wrapped when the artifact at a reference is not a moat database.
var ErrNotDatabase = errors.New("not a moat advisory database artifact")

// Config is the artifact's config blob.
type Config struct {
	// SchemaVersion is the database file's schema version.
	SchemaVersion int `json:"schemaVersion"`
	// Size is the decompressed size of the database file, in bytes.
	Size int64 `json:"size"`
	// SHA256 is the digest of the decompressed database file, hex.
	SHA256 string `json:"sha256"`
	// Info describes the database (sources, counts, build time), for people browsing a registry.
	Info json.RawMessage `json:"info,omitempty"`
}

// Push compresses the database file at path into a temporary file in tempDir and pushes it to
// ref as an OCI artifact. It returns the manifest digest.
func Push(ctx context.Context, path string, ref name.Reference, cfg Config, tempDir string, opts ...remote.Option) (v1.Hash, error) {
	src, err := os.Open(path)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("pushing database: %w", err)
	}
	defer src.Close()
	tmp, err := os.CreateTemp(tempDir, "db-push-*.zst")
	if err != nil {
		return v1.Hash{}, fmt.Errorf("pushing database: %w", err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()

	// Compress and hash both forms in one pass.
	rawSum, zSum := sha256.New(), sha256.New()
	zw, err := zstd.NewWriter(io.MultiWriter(tmp, zSum), zstd.WithEncoderLevel(zstd.SpeedDefault))
	if err != nil {
		return v1.Hash{}, err
	}
	n, err := io.Copy(zw, io.TeeReader(src, rawSum))
	if err == nil {
		err = zw.Close()
	}
	if err != nil {
		return v1.Hash{}, fmt.Errorf("compressing %s: %w", path, err)
	}
	zsize, err := tmp.Seek(0, io.SeekCurrent)
	if err != nil {
		return v1.Hash{}, err
	}
	cfg.Size = n
	cfg.SHA256 = hex.EncodeToString(rawSum.Sum(nil))
	cfgBytes, err := json.Marshal(cfg)
	if err != nil {
		return v1.Hash{}, err
	}

	layer, err := partial.CompressedToLayer(&fileLayer{
		path: tmp.Name(), size: zsize,
		digest: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(zSum.Sum(nil))},
	})
	if err != nil {
		return v1.Hash{}, err
	}
	cfgLayer := static.NewLayer(cfgBytes, types.MediaType(ConfigMediaType))
	repo := ref.Context()
	ropts := append([]remote.Option{remote.WithContext(ctx)}, opts...)
	for _, l := range []v1.Layer{cfgLayer, layer} {
		if err := remote.WriteLayer(repo, l, ropts...); err != nil {
			return v1.Hash{}, fmt.Errorf("pushing database to %s: %w", repo, err)
		}
	}
	cfgDigest, _ := cfgLayer.Digest()
	m := manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		ArtifactType:  ArtifactType,
		Config:        v1.Descriptor{MediaType: ConfigMediaType, Size: int64(len(cfgBytes)), Digest: cfgDigest},
		Layers: []v1.Descriptor{{
			MediaType: LayerMediaType, Size: zsize, Digest: mustDigest(layer),
			Annotations: map[string]string{"org.opencontainers.image.title": "advisories.db.zst"},
		}},
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return v1.Hash{}, err
	}
	if err := remote.Put(ref, rawManifest(raw), ropts...); err != nil {
		return v1.Hash{}, fmt.Errorf("pushing database manifest to %s: %w", ref, err)
	}
	h, _, err := v1.SHA256(bytes.NewReader(raw))
	return h, err
}

// Pulled is what Pull fetched.
type Pulled struct {
	// Path is the decompressed database file, in the directory given to Pull; the caller
	// installs or removes it.
	Path   string
	Digest v1.Hash
	Config Config
}

// Pull fetches the database artifact at ref into a new file in dir, checking media types,
// digests, the declared sizes (at most maxSize decompressed) and the config's SHA-256 of the
// decompressed file. On error nothing is left in dir.
func Pull(ctx context.Context, ref name.Reference, dir string, maxSize int64, opts ...remote.Option) (*Pulled, error) {
	if maxSize <= 0 {
		maxSize = DefaultMaxSize
	}
	ropts := append([]remote.Option{remote.WithContext(ctx)}, opts...)
	desc, err := remote.Get(ref, ropts...)
	if err != nil {
		return nil, fmt.Errorf("pulling database from %s: %w", ref, err)
	}
	if desc.MediaType != types.OCIManifestSchema1 {
		return nil, fmt.Errorf("pulling database from %s: %w: manifest media type %q", ref, ErrNotDatabase, desc.MediaType)
	}
	m, err := parseManifest(desc.Manifest)
	if err != nil {
		return nil, fmt.Errorf("pulling database from %s: %w", ref, err)
	}
	repo := ref.Context()
	cfgBlob, err := fetchBlob(repo, m.Config, maxConfig, ropts)
	if err != nil {
		return nil, fmt.Errorf("pulling database config from %s: %w", ref, err)
	}
	cfg, err := parseConfig(cfgBlob, maxSize)
	if err != nil {
		return nil, fmt.Errorf("pulling database from %s: %w", ref, err)
	}
	l, err := remote.Layer(repo.Digest(m.Layers[0].Digest.String()), ropts...)
	if err != nil {
		return nil, fmt.Errorf("pulling database from %s: %w", ref, err)
	}
	rc, err := l.Compressed()
	if err != nil {
		return nil, fmt.Errorf("pulling database from %s: %w", ref, err)
	}
	defer rc.Close()
	out, err := os.CreateTemp(dir, "db-pull-*.db")
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			out.Close()
			os.Remove(out.Name())
		}
	}()
	zr, err := zstd.NewReader(io.LimitReader(rc, m.Layers[0].Size+1), zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(64<<20))
	if err != nil {
		return nil, err
	}
	defer zr.Close()
	sum := sha256.New()
	n, err := io.Copy(io.MultiWriter(out, sum), io.LimitReader(zr, cfg.Size+1))
	if err != nil {
		return nil, fmt.Errorf("pulling database from %s: %w", ref, err)
	}
	// Drain to EOF so that go-containerregistry checks the blob digest.
	if _, err := io.Copy(io.Discard, rc); err != nil {
		return nil, fmt.Errorf("pulling database from %s: %w", ref, err)
	}
	if n != cfg.Size {
		return nil, fmt.Errorf("pulling database from %s: %w: decompressed to %d bytes, config says %d", ref, ErrNotDatabase, n, cfg.Size)
	}
	if got := hex.EncodeToString(sum.Sum(nil)); got != cfg.SHA256 {
		return nil, fmt.Errorf("pulling database from %s: %w: decompressed sha256 %s, config says %s", ref, ErrNotDatabase, got, cfg.SHA256)
	}
	if err := out.Sync(); err != nil {
		return nil, err
	}
	if err := out.Close(); err != nil {
		return nil, err
	}
	ok = true
	return &Pulled{Path: out.Name(), Digest: desc.Digest, Config: cfg}, nil
}

// parseManifest reads a manifest from a registry and checks it describes a database.
func parseManifest(raw []byte) (*manifest, error) {
	var m manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("%w: reading manifest: %w", ErrNotDatabase, err)
	}
	if m.ArtifactType != ArtifactType && m.Config.MediaType != ConfigMediaType {
		return nil, fmt.Errorf("%w: artifactType %q, config media type %q", ErrNotDatabase, m.ArtifactType, m.Config.MediaType)
	}
	if m.Config.MediaType != ConfigMediaType || m.Config.Size <= 0 || m.Config.Size > maxConfig {
		return nil, fmt.Errorf("%w: config %s of %d bytes", ErrNotDatabase, m.Config.MediaType, m.Config.Size)
	}
	if len(m.Layers) != 1 || m.Layers[0].MediaType != LayerMediaType || m.Layers[0].Size <= 0 {
		return nil, fmt.Errorf("%w: want one non-empty layer of type %s", ErrNotDatabase, LayerMediaType)
	}
	return &m, nil
}

// parseConfig reads the artifact's config blob.
func parseConfig(b []byte, maxSize int64) (Config, error) {
	var cfg Config
	if err := json.Unmarshal(b, &cfg); err != nil {
		return cfg, fmt.Errorf("%w: config: %w", ErrNotDatabase, err)
	}
	if cfg.Size <= 0 || cfg.Size > maxSize || len(cfg.SHA256) != 64 {
		return cfg, fmt.Errorf("%w: config declares %d bytes (limit %d) and sha256 %q", ErrNotDatabase, cfg.Size, maxSize, cfg.SHA256)
	}
	return cfg, nil
}

func fetchBlob(repo name.Repository, d v1.Descriptor, limit int64, opts []remote.Option) ([]byte, error) {
	l, err := remote.Layer(repo.Digest(d.Digest.String()), opts...)
	if err != nil {
		return nil, err
	}
	rc, err := l.Compressed()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("blob %s larger than %d bytes", d.Digest, limit)
	}
	if h, _, _ := v1.SHA256(bytes.NewReader(b)); h != d.Digest {
		return nil, fmt.Errorf("blob digest %s, manifest says %s", h, d.Digest)
	}
	return b, nil
}

// manifest is an OCI image manifest with artifactType (image-spec 1.1).
type manifest struct {
	SchemaVersion int64             `json:"schemaVersion"`
	MediaType     types.MediaType   `json:"mediaType"`
	ArtifactType  string            `json:"artifactType,omitempty"`
	Config        v1.Descriptor     `json:"config"`
	Layers        []v1.Descriptor   `json:"layers"`
	Annotations   map[string]string `json:"annotations,omitempty"`
}

// rawManifest is a manifest go-containerregistry pushes as is.
type rawManifest []byte

func (r rawManifest) RawManifest() ([]byte, error)        { return r, nil }
func (r rawManifest) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }

// fileLayer is a compressed layer read from a file.
type fileLayer struct {
	path   string
	size   int64
	digest v1.Hash
}

func (l *fileLayer) Digest() (v1.Hash, error)            { return l.digest, nil }
func (l *fileLayer) Size() (int64, error)                { return l.size, nil }
func (l *fileLayer) MediaType() (types.MediaType, error) { return LayerMediaType, nil }
func (l *fileLayer) Compressed() (io.ReadCloser, error)  { return os.Open(l.path) }

func mustDigest(l v1.Layer) v1.Hash {
	h, _ := l.Digest()
	return h
}
