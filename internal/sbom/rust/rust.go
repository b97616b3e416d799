// Package rust catalogs Rust crates: the packages a Cargo.lock pins, and the dependency list
// that cargo-auditable embeds in the binaries it builds (the zlib-compressed JSON of the ELF
// section ".dep-v0").
package rust

import (
	"context"
	"path"

	"github.com/moatsec/moat/internal/sbom"
)

// Cataloger reads Cargo.lock files and cargo-auditable binaries.
type Cataloger struct{}

// New returns the Rust cataloger.
func New() *Cataloger { return &Cataloger{} }

// Name implements sbom.Cataloger.
func (*Cataloger) Name() string { return "rust" }

// Version implements sbom.Cataloger.
func (*Cataloger) Version() int { return 1 }

const (
	lockFile = "Cargo.lock"
	// minBinary is below the smallest executable worth opening.
	minBinary = 4 << 10
	// maxBinary bounds the executables handed to Parse.
	maxBinary = 1 << 30
	// maxToken bounds a crate name or version; crates.io allows 64-character names.
	maxToken = 1024
	// maxText bounds metadata values such as a source URL.
	maxText = 4096
)

// Match implements sbom.Cataloger: Cargo.lock anywhere, and files that may be executables.
func (*Cataloger) Match(fi sbom.FileInfo) bool {
	if !fi.Mode.IsRegular() {
		return false
	}
	if path.Base(fi.Path) == lockFile {
		return true
	}
	return fi.Mode&0o111 != 0 && fi.Size >= minBinary && fi.Size <= maxBinary
}

// Parse implements sbom.Cataloger.
func (*Cataloger) Parse(ctx context.Context, fi sbom.FileInfo, r sbom.Content) (*sbom.Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if path.Base(fi.Path) == lockFile {
		return parseLock(ctx, r)
	}
	return parseAuditable(r)
}

// validToken reports whether s can be a name or version here (see sbom.ValidToken).
func validToken(s string) bool { return sbom.ValidToken(s, maxToken) }

// validText reports whether s can be kept as metadata (see sbom.ValidText).
func validText(s string) bool { return sbom.ValidText(s, maxText) }
