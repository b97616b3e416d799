package rust

import (
	"bytes"
	"compress/zlib"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/moatsec/moat/internal/sbom"
)

const (
	// depSection is the ELF section cargo-auditable writes; the suffix is the format version.
	depSection = ".dep-v0"
	// maxCompressed bounds the section as stored; real ones are a few kilobytes.
	maxCompressed = 8 << 20
	// maxDecompressed bounds the JSON the section inflates to, which refuses zip bombs.
	maxDecompressed = 8 << 20
)

// auditInfo is the JSON document cargo-auditable embeds. Dependencies (indexes into Packages)
// are not needed for an inventory and are not decoded.
type auditInfo struct {
	Packages []auditPackage `json:"packages"`
}

type auditPackage struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	// Source is "crates.io", "git", "local", "registry" or another origin.
	Source auditSource `json:"source"`
	// Kind is "runtime" (the default, often omitted) or "build" for crates used only by build
	// scripts and procedural macros.
	Kind string `json:"kind"`
	// Root marks the crate the binary was built from.
	Root bool `json:"root"`
}

// parseAuditable reads the dependency list of an ELF binary built with cargo-auditable. Files
// that are not ELF, or ELF files without the section, give an empty result: most executables
// in an image are of this kind.
func parseAuditable(r sbom.Content) (*sbom.Result, error) {
	var magic [4]byte
	if n, _ := r.ReadAt(magic[:], 0); n < len(magic) || string(magic[:]) != elf.ELFMAG {
		return &sbom.Result{}, nil
	}
	compressed, err := readDepSection(r)
	if err != nil {
		return nil, err
	}
	if compressed == nil {
		return &sbom.Result{}, nil
	}
	zr, err := zlib.NewReader(bytes.NewReader(compressed))
	if err != nil {
		return nil, fmt.Errorf("decompressing ELF section %s: %w", depSection, err)
	}
	doc, err := io.ReadAll(io.LimitReader(zr, maxDecompressed+1))
	if err != nil {
		return nil, fmt.Errorf("decompressing ELF section %s: %w", depSection, err)
	}
	if len(doc) > maxDecompressed {
		return nil, fmt.Errorf("decompressing ELF section %s: more than %d bytes of dependency data", depSection, maxDecompressed)
	}

	res := &sbom.Result{}
	var info auditInfo
	if err := json.Unmarshal(doc, &info); err != nil {
		// A value of the wrong type leaves the rest decoded; a syntax error leaves nothing.
		var typeErr *json.UnmarshalTypeError
		if !errors.As(err, &typeErr) {
			return nil, fmt.Errorf("decoding cargo-auditable dependency data: %w", err)
		}
		res.Warnings = append(res.Warnings, fmt.Sprintf("decoding cargo-auditable dependency data: %v", err))
	}
	skipped := 0
	for _, ap := range info.Packages {
		if !validToken(ap.Name) || !validToken(ap.Version) {
			skipped++
			continue
		}
		kind := ap.Kind
		if kind == "" {
			kind = "runtime"
		}
		p := sbom.Package{Name: ap.Name, Version: ap.Version, Type: sbom.TypeCargo, Metadata: map[string]string{}}
		if validText(kind) {
			p.Metadata["kind"] = kind
		}
		if src := string(ap.Source); validText(src) {
			p.Metadata["source"] = src
		}
		if ap.Root {
			p.Metadata["root"] = "true"
		}
		res.Packages = append(res.Packages, p)
	}
	if skipped > 0 {
		res.Warnings = append(res.Warnings, fmt.Sprintf("skipped %d cargo-auditable packages without a valid name and version", skipped))
	}
	if len(res.Packages) == 0 && len(info.Packages) > 0 {
		return res, fmt.Errorf("decoding cargo-auditable dependency data: no valid package among %d", len(info.Packages))
	}
	return res, nil
}

// readDepSection returns the compressed contents of the .dep-v0 section, or nil when r is not a
// readable ELF file or has no such section. It guards against panics in the standard library's
// ELF parser, which sees attacker-controlled headers here.
func readDepSection(r sbom.Content) (data []byte, err error) {
	defer func() {
		if p := recover(); p != nil {
			data, err = nil, fmt.Errorf("reading ELF headers: parser failed: %v", p)
		}
	}()
	f, err := elf.NewFile(r)
	if err != nil {
		return nil, nil // not an ELF file we can read, so not one cargo-auditable wrote
	}
	sec := f.Section(depSection)
	if sec == nil || sec.Type == elf.SHT_NOBITS {
		return nil, nil
	}
	if sec.Size > maxCompressed {
		return nil, fmt.Errorf("reading ELF section %s: %d bytes, more than the %d allowed", depSection, sec.Size, maxCompressed)
	}
	data, err = io.ReadAll(io.LimitReader(sec.Open(), maxCompressed+1))
	if err != nil {
		return nil, fmt.Errorf("reading ELF section %s: %w", depSection, err)
	}
	if len(data) > maxCompressed {
		return nil, fmt.Errorf("reading ELF section %s: more than %d bytes", depSection, maxCompressed)
	}
	return data, nil
}

// auditSource is a package's origin. Formats to come may spell unusual origins as objects; those
// are left out rather than failing the whole document.
type auditSource string

// UnmarshalJSON implements json.Unmarshaler.
func (s *auditSource) UnmarshalJSON(b []byte) error {
	var v string
	if json.Unmarshal(b, &v) == nil {
		*s = auditSource(v)
	}
	return nil
}
