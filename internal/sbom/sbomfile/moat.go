package sbomfile

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/moatsec/moat/internal/sbom"
)

// decodeMoat reads moat's own JSON inventory (docs/formats/sbom.md). Fields added by a later
// minor version are ignored; another major version is refused.
func decodeMoat(data []byte, b *builder) error {
	var in sbom.Inventory
	if err := json.Unmarshal(data, &in); err != nil {
		return fmt.Errorf("decoding: %w", err)
	}
	if major, _, _ := strings.Cut(in.SchemaVersion, "."); major != "1" {
		return fmt.Errorf("schema version %s is not supported; moat reads 1.x", quote(in.SchemaVersion, 20))
	}
	b.inv.Tool = sbom.Tool{Name: text(in.Tool.Name, maxShort), Version: token(in.Tool.Version, maxShort)}
	b.inv.Created = in.Created
	img := in.Image
	b.inv.Image = sbom.ImageInfo{
		Name:        text(img.Name, maxText),
		Reference:   token(img.Reference, maxToken),
		Digest:      token(img.Digest, maxToken),
		ID:          token(img.ID, maxToken),
		Platform:    token(img.Platform, maxShort),
		Created:     img.Created,
		RepoTags:    tokens(img.RepoTags),
		RepoDigests: tokens(img.RepoDigests),
	}
	b.setLayers(img.Layers)
	b.inv.Distro = cleanRelease(in.Distro)
	for _, w := range in.Warnings {
		if msg := prose(w.Message, maxProse); msg != "" {
			b.inv.Warnings = append(b.inv.Warnings, sbom.Warning{
				Layer:   token(w.Layer, maxToken),
				Path:    text(w.Path, maxText),
				Message: msg,
			})
		}
	}
	for _, p := range in.Packages {
		b.add(p, p.Name)
	}
	return nil
}
