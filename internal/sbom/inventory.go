package sbom

import "time"

// SchemaVersion is the version of the moat JSON inventory format (docs/formats/sbom.md).
const SchemaVersion = "1.0"

// Inventory is everything moat found in one image: the output of `moat sbom`.
type Inventory struct {
	SchemaVersion string    `json:"schemaVersion"`
	Tool          Tool      `json:"tool"`
	Created       time.Time `json:"created"`
	Image         ImageInfo `json:"image"`
	// Distro is the operating system of the image, when one was identified.
	Distro   *Release  `json:"distro,omitempty"`
	Packages []Package `json:"packages"`
	Warnings []Warning `json:"warnings,omitempty"`
}

// Tool names the program that made an inventory.
type Tool struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// ImageInfo identifies the image an inventory describes.
type ImageInfo struct {
	// Name is the target as the user gave it ("alpine:3.20", "docker-archive:app.tar").
	Name string `json:"name"`
	// Source is the kind of source: registry, docker-archive, oci-archive, oci-dir, docker, dir.
	Source string `json:"source"`
	// Reference is the fully qualified reference for registry images, pinned to Digest.
	Reference string `json:"reference,omitempty"`
	// Digest is the manifest digest, where the source has a manifest.
	Digest string `json:"digest,omitempty"`
	// ID is the config digest (Docker's image ID).
	ID          string     `json:"id,omitempty"`
	Platform    string     `json:"platform,omitempty"`
	Created     *time.Time `json:"created,omitempty"`
	Layers      []LayerRef `json:"layers"`
	RepoTags    []string   `json:"repoTags,omitempty"`
	RepoDigests []string   `json:"repoDigests,omitempty"`
}

// Warning is a problem that did not stop the inventory: a file that could not be read, a
// database with malformed entries, an entry that tried to leave the image root.
type Warning struct {
	// Layer is the diffID of the layer, when the problem is in one.
	Layer string `json:"layer,omitempty"`
	// Path is the file, without a leading slash.
	Path    string `json:"path,omitempty"`
	Message string `json:"message"`
}
