// Package dotnet catalogs the NuGet packages of .NET applications from their *.deps.json files,
// which the SDK writes beside every published application and which the runtime reads to
// resolve assemblies.
package dotnet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"

	"github.com/moatsec/moat/internal/sbom"
)

// Cataloger reads .NET dependency manifests.
type Cataloger struct{}

// New returns the .NET cataloger.
func New() *Cataloger { return &Cataloger{} }

// Name implements sbom.Cataloger.
func (*Cataloger) Name() string { return "dotnet" }

// Version implements sbom.Cataloger.
func (*Cataloger) Version() int { return 1 }

const suffix = ".deps.json"

// Limits on what an image can make Parse do.
const (
	// maxFile bounds a deps.json; those of large applications are a few MiB.
	maxFile = 32 << 20
	// maxEntries bounds the libraries taken from one file.
	maxEntries = 100_000
	// maxToken bounds names, versions and hashes.
	maxToken = 512
	// checkEvery is how many entries are read between checks of the context.
	checkEvery = 1024
)

// Match implements sbom.Cataloger.
func (*Cataloger) Match(fi sbom.FileInfo) bool {
	base := path.Base(fi.Path)
	return len(base) > len(suffix) && strings.HasSuffix(base, suffix)
}

// library is one value of the "libraries" map.
type library struct {
	Type   string `json:"type"`
	SHA512 string `json:"sha512"`
}

// reported are the library types that are NuGet packages. "project" is the application or one
// of its projects and "reference" a bare assembly reference; neither has a NuGet identity.
// "runtimepack" is the runtime itself (Microsoft.NETCore.App.Runtime.linux-x64) in
// self-contained applications, which advisories name as a package.
var reported = []string{"package", "runtimepack"}

var utf8BOM = []byte{0xef, 0xbb, 0xbf}

// Parse implements sbom.Cataloger.
func (c *Cataloger) Parse(ctx context.Context, fi sbom.FileInfo, r sbom.Content) (*sbom.Result, error) {
	if n := r.Size(); n > maxFile {
		return nil, fmt.Errorf("reading deps.json: file is %d bytes, more than the %d read", n, maxFile)
	}
	data, err := io.ReadAll(io.NewSectionReader(r, 0, maxFile+1))
	if err != nil {
		return nil, fmt.Errorf("reading deps.json: %w", err)
	}
	if len(data) > maxFile {
		return nil, fmt.Errorf("reading deps.json: file is more than the %d bytes read", maxFile)
	}
	var doc struct {
		Libraries map[string]json.RawMessage `json:"libraries"`
	}
	if err := json.Unmarshal(bytes.TrimPrefix(data, utf8BOM), &doc); err != nil {
		return nil, fmt.Errorf("parsing deps.json: %w", err)
	}
	if doc.Libraries == nil {
		return nil, errors.New("parsing deps.json: no libraries")
	}
	res := &sbom.Result{}
	keys := make([]string, 0, len(doc.Libraries))
	for k := range doc.Libraries {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	skipped := 0
	for n, key := range keys {
		if n%checkEvery == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		if len(res.Packages) >= maxEntries {
			res.Warnings = append(res.Warnings, fmt.Sprintf("deps.json lists more than %d libraries; kept the first %d", maxEntries, maxEntries))
			break
		}
		var lib library
		if err := json.Unmarshal(doc.Libraries[key], &lib); err != nil {
			skipped++
			continue
		}
		if !slices.Contains(reported, lib.Type) {
			continue
		}
		// Keys are "Name/Version"; NuGet ids and versions contain no slash.
		name, version, ok := strings.Cut(key, "/")
		if !ok || !validToken(name) || !validToken(version) || strings.Contains(version, "/") {
			skipped++
			continue
		}
		p := sbom.Package{Name: name, Version: version, Type: sbom.TypeNuGet}
		if validToken(lib.SHA512) {
			p.Metadata = map[string]string{"sha512": lib.SHA512}
		}
		if lib.Type != "package" {
			if p.Metadata == nil {
				p.Metadata = map[string]string{}
			}
			p.Metadata["type"] = lib.Type
		}
		res.Packages = append(res.Packages, p)
	}
	if skipped > 0 {
		if len(res.Packages) == 0 {
			return nil, fmt.Errorf("parsing deps.json: no valid library (%d malformed entries)", skipped)
		}
		res.Warnings = append(res.Warnings, fmt.Sprintf("skipped %d malformed deps.json libraries", skipped))
	}
	return res, nil
}

// validToken reports whether s can be a name or version here (see sbom.ValidToken).
func validToken(s string) bool { return sbom.ValidToken(s, maxToken) }
