package image

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// maxIndexDepth bounds nested image indexes in a layout.
const maxIndexDepth = 4

type ociLayoutFile struct {
	Version string `json:"imageLayoutVersion"`
}

// readLayout reads an OCI image layout (https://github.com/opencontainers/image-spec/blob/main/image-layout.md)
// from fsys and picks the image for platform.
func readLayout(img *Image, fsys fs.FS, platform *v1.Platform) error {
	lb, err := readSmall(fsys, "oci-layout")
	if err != nil {
		return fmt.Errorf("not an OCI layout: %w", err)
	}
	var lf ociLayoutFile
	if err := json.Unmarshal(lb, &lf); err != nil || lf.Version == "" {
		return fmt.Errorf("oci-layout: no imageLayoutVersion (%v)", err)
	}
	ib, err := readSmall(fsys, "index.json")
	if err != nil {
		return err
	}
	idx, err := v1.ParseIndexManifest(bytes.NewReader(ib))
	if err != nil {
		return fmt.Errorf("parsing index.json: %w", err)
	}
	desc, err := pickManifest(fsys, idx, platform, 0, map[v1.Hash]bool{})
	if err != nil {
		return err
	}
	mb, err := readBlob(fsys, desc.Digest)
	if err != nil {
		return fmt.Errorf("reading manifest: %w", err)
	}
	m, err := v1.ParseManifest(bytes.NewReader(mb))
	if err != nil {
		return fmt.Errorf("parsing manifest %s: %w", desc.Digest, err)
	}
	cb, err := readBlob(fsys, m.Config.Digest)
	if err != nil {
		return fmt.Errorf("reading config: %w", err)
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(cb))
	if err != nil {
		return fmt.Errorf("parsing config %s: %w", m.Config.Digest, err)
	}
	img.Digest, img.ID, img.Config = desc.Digest.String(), m.Config.Digest.String(), cfg
	img.Platform = &v1.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant}
	if n := desc.Annotations["org.opencontainers.image.ref.name"]; n != "" {
		img.RepoTags = append(img.RepoTags, n)
	}
	if n := desc.Annotations["io.containerd.image.name"]; n != "" {
		img.RepoTags = append(img.RepoTags, n)
	}
	return fillLayers(img, m.Layers, func(d v1.Descriptor) func(context.Context) (io.ReadCloser, error) {
		return func(context.Context) (io.ReadCloser, error) {
			p, err := blobPath(d.Digest)
			if err != nil {
				return nil, err
			}
			f, err := fsys.Open(p)
			if err != nil {
				return nil, err
			}
			return f, nil
		}
	})
}

// pickManifest walks an index down to the image manifest for platform. seen holds the nested
// indexes already walked: each is read once, however many descriptors name it, so that a
// layout whose indexes list one another many times over cannot make the walk explode.
func pickManifest(fsys fs.FS, idx *v1.IndexManifest, platform *v1.Platform, depth int, seen map[v1.Hash]bool) (v1.Descriptor, error) {
	if depth > maxIndexDepth {
		return v1.Descriptor{}, fmt.Errorf("image indexes nested deeper than %d", maxIndexDepth)
	}
	var images, indexes []v1.Descriptor
	for _, d := range idx.Manifests {
		switch {
		case d.MediaType.IsImage():
			if d.Platform == nil || platform == nil || d.Platform.Satisfies(*platform) {
				images = append(images, d)
			}
		case d.MediaType.IsIndex():
			indexes = append(indexes, d)
		}
	}
	if len(images) == 1 {
		return images[0], nil
	}
	if len(images) > 1 {
		var names []string
		for _, d := range images {
			names = append(names, d.Digest.String())
		}
		return v1.Descriptor{}, fmt.Errorf("layout holds %d images for platform %s (%s); keep one image per layout", len(images), platform, strings.Join(names, ", "))
	}
	for _, d := range indexes {
		if seen[d.Digest] {
			continue
		}
		seen[d.Digest] = true
		b, err := readBlob(fsys, d.Digest)
		if err != nil {
			return v1.Descriptor{}, fmt.Errorf("reading index %s: %w", d.Digest, err)
		}
		sub, err := v1.ParseIndexManifest(bytes.NewReader(b))
		if err != nil {
			return v1.Descriptor{}, fmt.Errorf("parsing index %s: %w", d.Digest, err)
		}
		if desc, err := pickManifest(fsys, sub, platform, depth+1, seen); err == nil {
			return desc, nil
		} else if len(indexes) == 1 {
			return v1.Descriptor{}, err
		}
	}
	return v1.Descriptor{}, fmt.Errorf("no image for platform %s in the layout", platform)
}

// blobPath maps a digest to its file, refusing digests that are not plain hex.
func blobPath(h v1.Hash) (string, error) {
	if h.Algorithm != "sha256" && h.Algorithm != "sha512" {
		return "", fmt.Errorf("unsupported digest algorithm %q", h.Algorithm)
	}
	for _, c := range h.Hex {
		if !strings.ContainsRune("0123456789abcdef", c) {
			return "", fmt.Errorf("malformed digest %q", h)
		}
	}
	return "blobs/" + h.Algorithm + "/" + h.Hex, nil
}

// readBlob reads a small blob and checks its digest.
func readBlob(fsys fs.FS, h v1.Hash) ([]byte, error) {
	p, err := blobPath(h)
	if err != nil {
		return nil, err
	}
	b, err := readSmall(fsys, p)
	if err != nil {
		return nil, err
	}
	if h.Algorithm == "sha256" {
		got, _, _ := v1.SHA256(bytes.NewReader(b))
		if got != h {
			return nil, fmt.Errorf("%w: blob %s hashes to %s", ErrDigestMismatch, h, got)
		}
	}
	return b, nil
}
