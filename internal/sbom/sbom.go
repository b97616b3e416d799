// Package sbom inventories the software in a container image: the Cataloger interface that every
// ecosystem implements, the package model, and the engine that walks an image's layers once,
// hands each cataloger the files it asked for and attributes every package to the layer that
// introduced it.
package sbom

import (
	"context"
	"io"
	"io/fs"
	"strings"
)

// Type is a package ecosystem, spelled as the package-url type.
type Type string

// Package types moat knows.
const (
	TypeDeb      Type = "deb"
	TypeAPK      Type = "apk"
	TypeRPM      Type = "rpm"
	TypeGolang   Type = "golang"
	TypeNPM      Type = "npm"
	TypePyPI     Type = "pypi"
	TypeMaven    Type = "maven"
	TypeCargo    Type = "cargo"
	TypeGem      Type = "gem"
	TypeComposer Type = "composer"
	TypeNuGet    Type = "nuget"
)

// IsOS reports whether packages of this type are installed by an operating-system package manager.
func (t Type) IsOS() bool { return t == TypeDeb || t == TypeAPK || t == TypeRPM }

// Package is one piece of installed software.
//
// Names follow the ecosystem's own spelling: npm scopes stay in the name ("@scope/pkg"), Maven
// names are "groupId:artifactId", Go names are module paths (and "stdlib" for the toolchain),
// Composer names are "vendor/package". Versions are the ecosystem's own strings; RPM versions are
// "[epoch:]version-release".
type Package struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Type    Type   `json:"type"`
	// PURL is the package URL; the engine fills it in once the distribution is known.
	PURL string `json:"purl,omitempty"`
	// Arch is the CPU architecture for OS packages ("amd64", "x86_64", "aarch64").
	Arch string `json:"arch,omitempty"`
	// Source is the source package an OS binary package was built from; vulnerability matching
	// for distributions is keyed by it.
	Source   *Source  `json:"source,omitempty"`
	Licenses []string `json:"licenses,omitempty"`
	// Locations are the files that declare the package, each with the layer that last wrote it.
	Locations []Location `json:"locations"`
	// Layer is the layer that introduced the package.
	Layer *LayerRef `json:"layer,omitempty"`
	// OwnedBy names the OS package ("deb:python3-yaml") whose files include this language
	// package's files; such packages are matched through the distribution's advisories.
	OwnedBy string `json:"ownedBy,omitempty"`
	// FoundBy is the name of the cataloger that found the package.
	FoundBy string `json:"foundBy"`
	// Metadata holds ecosystem details that have no field of their own (for example the Go
	// toolchain a binary was built with, or a Java archive's manifest title).
	Metadata map[string]string `json:"metadata,omitempty"`
}

// Source is the source package of an OS binary package.
type Source struct {
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
}

// Location is a file in the image.
type Location struct {
	// Path is slash-separated and absolute inside the image ("/var/lib/dpkg/status").
	Path string `json:"path"`
	// LayerDigest is the diffID of the layer whose copy of the file was read.
	LayerDigest string `json:"layerDigest,omitempty"`
}

// LayerRef identifies a layer of an image.
type LayerRef struct {
	Index     int    `json:"index"`
	Digest    string `json:"digest"`
	DiffID    string `json:"diffID"`
	CreatedBy string `json:"createdBy,omitempty"`
}

// Release identifies the operating system of an image.
type Release struct {
	ID              string   `json:"id"`
	IDLike          []string `json:"idLike,omitempty"`
	VersionID       string   `json:"versionID,omitempty"`
	VersionCodename string   `json:"versionCodename,omitempty"`
	PrettyName      string   `json:"prettyName,omitempty"`
	// Source is the file the release was read from.
	Source string `json:"source,omitempty"`
}

// FileOwner lists the files that one OS package installed.
type FileOwner struct {
	Type    Type   `json:"type"`
	Package string `json:"package"`
	// Paths are slash-separated, without a leading slash, like FileInfo.Path.
	Paths []string `json:"paths"`
}

// Result is what a cataloger found in one file.
type Result struct {
	Packages []Package
	// Owners records the files OS packages installed, so that language packages inside them
	// can be marked as owned.
	Owners []FileOwner
	// Release is set by catalogers that identify the operating system.
	Release *Release
	// Warnings are non-fatal problems with the file, such as entries that had to be skipped.
	Warnings []string
}

// FileInfo describes a regular file in a layer.
type FileInfo struct {
	// Path is slash-separated and cleaned, relative to the image root, with no leading slash
	// ("var/lib/dpkg/status").
	Path string
	Mode fs.FileMode
	Size int64
}

// Content is the body of one file, read once from the layer.
type Content interface {
	io.Reader
	io.ReaderAt
	io.Seeker
	Size() int64
}

// Cataloger finds the packages of one ecosystem.
//
// The engine calls Match for every regular file of every layer and Parse for each file Match
// accepted. Parse sees one file at a time, so that its result can be cached with the layer;
// whatever needs several files is joined by the engine afterwards (ownership, layer attribution,
// package URLs). Parse must not panic on any input: bad content is an error, or warnings in the
// Result when some of it could be read.
type Cataloger interface {
	// Name identifies the cataloger ("dpkg"); it appears in Package.FoundBy.
	Name() string
	// Version is raised whenever Parse may return something different for the same file; it
	// is part of the layer cache key.
	Version() int
	// Match reports whether Parse wants the file. It is called for every file and must be cheap.
	Match(fi FileInfo) bool
	// Parse reads one file.
	Parse(ctx context.Context, fi FileInfo, r Content) (*Result, error)
}

// ParseSourceRPM splits a source RPM file name, "openssl-3.0.7-27.el9.src.rpm", into the
// source package's name and "version-release".
func ParseSourceRPM(s string) (name, version string, ok bool) {
	s = strings.TrimSuffix(s, ".rpm")
	dot := strings.LastIndexByte(s, '.') // the architecture: src or nosrc
	if dot < 0 {
		return "", "", false
	}
	s = s[:dot]
	r := strings.LastIndexByte(s, '-')
	if r <= 0 || r == len(s)-1 {
		return "", "", false
	}
	v := strings.LastIndexByte(s[:r], '-')
	if v <= 0 || v == r-1 {
		return "", "", false
	}
	return s[:v], s[v+1:], true
}
