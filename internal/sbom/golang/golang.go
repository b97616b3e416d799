// Package golang catalogs the Go modules compiled into Go executables, read from the build
// information the Go linker embeds in every binary (debug/buildinfo): the main module, every
// dependency module, and the Go toolchain as the "stdlib" package.
package golang

import (
	"bytes"
	"context"
	"debug/buildinfo"
	"errors"
	"fmt"
	"path"
	"runtime/debug"
	"strings"

	"github.com/moatsec/moat/internal/sbom"
)

// Cataloger reads the build information of Go executables.
type Cataloger struct{}

// New returns the Go binary cataloger.
func New() *Cataloger { return &Cataloger{} }

// Name implements sbom.Cataloger.
func (*Cataloger) Name() string { return "gobinary" }

// Version implements sbom.Cataloger.
func (*Cataloger) Version() int { return 1 }

const (
	// minHeader is below the size of any object file header.
	minHeader = 64
	// minSize is below the smallest executable worth opening; Go binaries are megabytes.
	minSize = 4 << 10
	// maxSize bounds the files handed to Parse: larger "executables" are disk images and the like.
	maxSize = 1 << 30
	// maxModules bounds the dependencies reported for one binary; real ones have a few hundred.
	maxModules = 50_000
	// maxToken bounds a module path or version; longer ones are not real.
	maxToken = 4096
)

// Match implements sbom.Cataloger. It accepts files that may be executables by their mode, or
// by their name when the image lost the mode bits (shared objects, files in a bin directory);
// the content is checked in Parse.
func (*Cataloger) Match(fi sbom.FileInfo) bool {
	if fi.Size < minHeader || fi.Size > maxSize || !fi.Mode.IsRegular() {
		return false
	}
	if fi.Mode&0o111 != 0 && fi.Size >= minSize {
		return true
	}
	if strings.HasSuffix(fi.Path, ".so") {
		return true
	}
	dir := path.Base(path.Dir(fi.Path))
	return dir == "bin" || dir == "sbin"
}

// Parse implements sbom.Cataloger. Files that are not executables, and executables that were
// not built by Go, give an empty result: most executables in an image are of this kind.
func (*Cataloger) Parse(ctx context.Context, _ sbom.FileInfo, r sbom.Content) (*sbom.Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !isExecutable(r) {
		return &sbom.Result{}, nil
	}
	bi, err := readBuildInfo(r)
	switch {
	case err == nil:
		return toResult(bi), nil
	case errors.Is(err, errParser), strings.HasPrefix(err.Error(), "could not parse Go build info"):
		// buildinfo reports "not a Go executable" and "unrecognized file format" for anything
		// that is not a readable Go binary; only a Go binary whose embedded module list is
		// corrupt, or a parser failure, is worth an error.
		return nil, fmt.Errorf("reading Go build information: %w", err)
	}
	return &sbom.Result{}, nil
}

// isExecutable reports whether r starts with the magic number of a format buildinfo reads:
// ELF, PE, or Mach-O (thin or universal).
func isExecutable(r sbom.Content) bool {
	var magic [4]byte
	if n, _ := r.ReadAt(magic[:], 0); n < len(magic) {
		return false
	}
	switch {
	case bytes.Equal(magic[:], []byte("\x7fELF")),
		bytes.HasPrefix(magic[:], []byte("MZ")),
		bytes.HasPrefix(magic[:], []byte("\xfe\xed\xfa")),  // Mach-O big-endian
		bytes.HasPrefix(magic[1:], []byte("\xfa\xed\xfe")), // Mach-O little-endian
		bytes.Equal(magic[:], []byte("\xca\xfe\xba\xbe")),  // universal binary (or a Java class)
		bytes.Equal(magic[:], []byte("\xca\xfe\xba\xbf")):
		return true
	}
	return false
}

// errParser reports a panic in the standard library's executable parsers.
var errParser = errors.New("executable parser failed")

// readBuildInfo guards against panics in the standard library's object file parsers, which
// see attacker-controlled headers here.
func readBuildInfo(r sbom.Content) (bi *debug.BuildInfo, err error) {
	defer func() {
		if p := recover(); p != nil {
			bi, err = nil, fmt.Errorf("%w: %v", errParser, p)
		}
	}()
	return buildinfo.Read(r)
}

func toResult(bi *debug.BuildInfo) *sbom.Result {
	res := &sbom.Result{}
	goVersion := bi.GoVersion
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	skipped := 0
	add := func(p sbom.Package) {
		if !validToken(p.Name) || !validToken(p.Version) {
			skipped++
			return
		}
		p.Type = sbom.TypeGolang
		if validText(goVersion) {
			p.Metadata["goVersion"] = goVersion
		}
		res.Packages = append(res.Packages, p)
	}

	if bi.Main.Path != "" {
		version := bi.Main.Version
		if version == "" {
			version = "(devel)"
		}
		md := map[string]string{"mainModule": "true"}
		if validText(bi.Path) {
			md["mainPackage"] = bi.Path
		}
		for key, setting := range map[string]string{
			"vcsRevision": "vcs.revision", "vcsTime": "vcs.time", "vcsModified": "vcs.modified",
		} {
			if v := settings[setting]; validText(v) {
				md[key] = v
			}
		}
		add(sbom.Package{Name: bi.Main.Path, Version: version, Metadata: md})
	}

	for i, dep := range bi.Deps {
		if i == maxModules {
			res.Warnings = append(res.Warnings, fmt.Sprintf("Go binary lists %d modules; kept the first %d", len(bi.Deps), maxModules))
			break
		}
		if dep == nil {
			continue
		}
		add(depPackage(dep))
	}

	if goVersion != "" {
		md := map[string]string{}
		if validText(goVersion) {
			md["goToolchain"] = goVersion
		}
		for key, setting := range map[string]string{"goos": "GOOS", "goarch": "GOARCH"} {
			if v := settings[setting]; validText(v) {
				md[key] = v
			}
		}
		add(sbom.Package{Name: "stdlib", Version: toolchainVersion(goVersion), Metadata: md})
	}

	if skipped > 0 {
		res.Warnings = append(res.Warnings, fmt.Sprintf("skipped %d Go modules with malformed paths or versions", skipped))
	}
	return res
}

// depPackage reports what was compiled in for one dependency: the replacement module when the
// main module's go.mod replaced it. A replacement by a local directory has no module identity of
// its own, so it keeps the original path with the version "(devel)", as Go names local code.
func depPackage(dep *debug.Module) sbom.Package {
	p := sbom.Package{Name: dep.Path, Version: dep.Version, Metadata: map[string]string{}}
	sum := dep.Sum
	if r := dep.Replace; r != nil {
		if r.Version == "" || r.Version == "(devel)" {
			p.Version = "(devel)"
			if validText(r.Path) {
				p.Metadata["localReplace"] = r.Path
			}
		} else {
			p.Name, p.Version = r.Path, r.Version
			p.Metadata["replaces"] = dep.Path
		}
		sum = r.Sum
	}
	if validText(sum) {
		p.Metadata["sum"] = sum
	}
	return p
}

// toolchainVersion turns the toolchain string of a binary into the release it names:
// "go1.22.3 X:boringcrypto" is "1.22.3", a vendor build "go1.21.0-bigcorp" is "1.21.0", and a
// development toolchain ("devel go1.23-abc123 ...") is "(devel)".
func toolchainVersion(raw string) string {
	v, _, _ := strings.Cut(raw, " ")
	if !strings.HasPrefix(v, "go") || len(v) == 2 {
		return "(devel)"
	}
	v = strings.TrimPrefix(v, "go")
	v, _, _ = strings.Cut(v, "-")
	return v
}

// validToken reports whether s can be a name or version here (see sbom.ValidToken).
func validToken(s string) bool { return sbom.ValidToken(s, maxToken) }

// validText reports whether s can be kept as metadata (see sbom.ValidText).
func validText(s string) bool { return sbom.ValidText(s, maxToken) }
