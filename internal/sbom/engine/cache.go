package engine

import (
	"bytes"
	"encoding/gob"
	"errors"

	"github.com/moatsec/moat/internal/image"
	"github.com/moatsec/moat/internal/store"
)

// cacheFormat is raised whenever layerScan's encoding or meaning changes.
const cacheFormat = 1

// cacheBucket holds layer scans, keyed by cataloger set and layer blob digest.
const cacheBucket = "sbom-layers"

func (e *Engine) layerKey(l *image.Layer) string { return e.cacheKey + "/" + l.Digest.String() }

// cached returns the stored scan of l. Only layers whose digest Open verifies are ever stored,
// so a hit is the scan of exactly these bytes.
func (e *Engine) cached(l *image.Layer) (*layerScan, bool) {
	if e.cache == nil || l.Digest.Hex == "" {
		return nil, false
	}
	b, err := e.cache.Get(cacheBucket, e.layerKey(l))
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			e.log.Warn("layer cache unreadable", "layer", l.Digest.String(), "err", err)
		}
		return nil, false
	}
	var s layerScan
	if err := gob.NewDecoder(bytes.NewReader(b)).Decode(&s); err != nil {
		e.log.Warn("layer cache entry corrupt; reading the layer", "layer", l.Digest.String(), "err", err)
		return nil, false
	}
	e.log.Debug("layer cache hit", "layer", l.Digest.String())
	return &s, true
}

func (e *Engine) store(l *image.Layer, s *layerScan) {
	if e.cache == nil || l.Digest.Hex == "" {
		return
	}
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(s); err != nil {
		e.log.Warn("encoding layer cache entry", "layer", l.Digest.String(), "err", err)
		return
	}
	if err := e.cache.Put(cacheBucket, e.layerKey(l), buf.Bytes()); err != nil {
		e.log.Warn("writing layer cache", "layer", l.Digest.String(), "err", err)
	}
}

// ClearCache drops every cached layer scan.
func ClearCache(s *store.Store) error { return s.DropBucket(cacheBucket) }

// CachedLayers counts the layer scans in the cache.
func CachedLayers(s *store.Store) (int, error) { return s.Count(cacheBucket) }
