// Package engine inventories images: it reads every layer once (in parallel, from the layer
// cache when it can), hands each cataloger the files it asked for, then applies the layers in
// order with their whiteouts to keep only what the final filesystem holds, attributes each
// package to the layer that introduced it, marks language packages that belong to OS packages
// and fills in package URLs.
package engine

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/moatsec/moat/internal/image"
	"github.com/moatsec/moat/internal/sbom"
	"github.com/moatsec/moat/internal/store"
)

// Limits bound what one layer may make moat read.
type Limits struct {
	// MaxLayerBytes is the most uncompressed bytes one layer may hold.
	MaxLayerBytes int64
	// MaxRatio is the most a layer may expand on decompression (uncompressed/compressed), checked
	// once the layer is past RatioFloor bytes.
	MaxRatio   int64
	RatioFloor int64
	// MaxFileBytes is the largest file handed to a cataloger; larger files get a warning.
	MaxFileBytes int64
	// SpillBytes is the size above which a file's content goes to a temporary file instead of memory.
	SpillBytes int64
	// InFlightBytes bounds the file contents held in memory while catalogers work.
	InFlightBytes int64
}

// DefaultLimits are generous for real images and small enough to stop decompression bombs.
var DefaultLimits = Limits{
	MaxLayerBytes: 32 << 30,
	MaxRatio:      200,
	RatioFloor:    256 << 20,
	MaxFileBytes:  1 << 30,
	SpillBytes:    16 << 20,
	InFlightBytes: 64 << 20,
}

// Progress hears about layer reads, for a progress bar. Methods may be called from several goroutines.
type Progress interface {
	LayerStart(index int, size int64, cached bool)
	LayerRead(index int, n int64)
	LayerDone(index int)
}

// Engine inventories images with a fixed set of catalogers.
type Engine struct {
	catalogers []sbom.Cataloger
	cache      *store.Store
	tempDir    string
	limits     Limits
	workers    int
	progress   Progress
	log        *slog.Logger
	now        func() time.Time
	tool       sbom.Tool
	cacheKey   string
}

// Option configures an Engine.
type Option func(*Engine)

// WithCache keeps layer results in s, keyed by layer digest and cataloger versions.
func WithCache(s *store.Store) Option { return func(e *Engine) { e.cache = s } }

// WithTempDir sets where large file contents are spilled; it must be inside moat's cache directory.
func WithTempDir(dir string) Option { return func(e *Engine) { e.tempDir = dir } }

// WithLimits replaces DefaultLimits.
func WithLimits(l Limits) Option { return func(e *Engine) { e.limits = l } }

// WithWorkers sets how many layers and files are processed at once (default: GOMAXPROCS).
func WithWorkers(n int) Option { return func(e *Engine) { e.workers = n } }

// WithProgress reports layer reads to p.
func WithProgress(p Progress) Option { return func(e *Engine) { e.progress = p } }

// WithLogger sets the logger; the default discards.
func WithLogger(l *slog.Logger) Option { return func(e *Engine) { e.log = l } }

// WithClock sets the time source of Inventory.Created.
func WithClock(now func() time.Time) Option { return func(e *Engine) { e.now = now } }

// WithTool names the tool in inventories.
func WithTool(t sbom.Tool) Option { return func(e *Engine) { e.tool = t } }

// New returns an engine running catalogers.
func New(catalogers []sbom.Cataloger, opts ...Option) (*Engine, error) {
	e := &Engine{
		catalogers: catalogers,
		limits:     DefaultLimits,
		workers:    runtime.GOMAXPROCS(0),
		log:        slog.New(slog.DiscardHandler),
		now:        time.Now,
		tool:       sbom.Tool{Name: "moat", Version: "dev"},
		tempDir:    os.TempDir(),
	}
	for _, o := range opts {
		o(e)
	}
	if len(e.catalogers) == 0 {
		return nil, errors.New("engine: no catalogers")
	}
	seen := map[string]bool{}
	h := sha256.New()
	fmt.Fprintf(h, "format=%d;maxfile=%d;", cacheFormat, e.limits.MaxFileBytes)
	for _, c := range e.catalogers {
		if seen[c.Name()] {
			return nil, fmt.Errorf("engine: two catalogers named %q", c.Name())
		}
		seen[c.Name()] = true
		fmt.Fprintf(h, "%s@%d;", c.Name(), c.Version())
	}
	e.cacheKey = fmt.Sprintf("%x", h.Sum(nil))[:16]
	if e.workers < 1 {
		return nil, fmt.Errorf("engine: %d workers", e.workers)
	}
	if e.limits.MaxLayerBytes <= 0 || e.limits.MaxFileBytes <= 0 || e.limits.SpillBytes <= 0 || e.limits.InFlightBytes < e.limits.SpillBytes {
		return nil, fmt.Errorf("engine: inconsistent limits %+v", e.limits)
	}
	return e, nil
}

// Inventory lists the packages of img.
func (e *Engine) Inventory(ctx context.Context, img *image.Image) (*sbom.Inventory, error) {
	inv := &sbom.Inventory{
		SchemaVersion: sbom.SchemaVersion,
		Tool:          e.tool,
		Created:       e.now().UTC().Truncate(time.Second),
		Image: sbom.ImageInfo{
			Name: img.Name, Source: img.Source, Reference: img.Reference, Digest: img.Digest, ID: img.ID,
			RepoTags: img.RepoTags, RepoDigests: img.RepoDigests, Layers: []sbom.LayerRef{},
		},
	}
	if img.Platform != nil {
		inv.Image.Platform = img.Platform.String()
	}
	if img.Config != nil && !img.Config.Created.IsZero() {
		t := img.Config.Created.UTC()
		inv.Image.Created = &t
	}
	var scans []*layerScan
	if img.Root != "" {
		s, err := e.scanDir(ctx, img.Root)
		if err != nil {
			return nil, err
		}
		scans = []*layerScan{s}
	} else {
		for _, l := range img.Layers {
			inv.Image.Layers = append(inv.Image.Layers, sbom.LayerRef{Index: l.Index, Digest: l.Digest.String(), DiffID: l.DiffID.String(), CreatedBy: l.CreatedBy})
		}
		var err error
		if scans, err = e.scanLayers(ctx, img.Layers); err != nil {
			return nil, err
		}
	}
	merge(inv, scans)
	return inv, nil
}

// layerTag is how warnings and locations name a layer: its diffID.
func layerTag(l *image.Layer) string {
	if l == nil {
		return ""
	}
	return l.DiffID.String()
}

func sortPackages(ps []sbom.Package) {
	slices.SortStableFunc(ps, func(a, b sbom.Package) int {
		if c := strings.Compare(string(a.Type), string(b.Type)); c != 0 {
			return c
		}
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		if c := strings.Compare(a.Version, b.Version); c != 0 {
			return c
		}
		return strings.Compare(firstPath(a), firstPath(b))
	})
}

func firstPath(p sbom.Package) string {
	if len(p.Locations) == 0 {
		return ""
	}
	return p.Locations[0].Path
}
