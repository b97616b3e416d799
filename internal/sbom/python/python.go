// Package python catalogs installed Python distributions from their core metadata: the
// METADATA file of a wheel install (*.dist-info), the PKG-INFO of a setuptools install
// (*.egg-info/ or *.egg/EGG-INFO/), and the single-file *.egg-info that distutils wrote.
package python

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/moatsec/moat/internal/sbom"
)

// Cataloger reads Python package metadata.
type Cataloger struct{}

// New returns the Python cataloger.
func New() *Cataloger { return &Cataloger{} }

// Name implements sbom.Cataloger.
func (*Cataloger) Name() string { return "python" }

// Version implements sbom.Cataloger.
func (*Cataloger) Version() int { return 1 }

// Limits on what an image can make Parse do. Only the header block is read: the body after
// the first empty line is the long description.
const (
	// maxLine bounds one physical line; descriptions written as continuation lines can be long.
	maxLine = 1 << 20
	// maxHeader bounds the bytes of the header block.
	maxHeader = 8 << 20
	// maxToken bounds names and versions.
	maxToken = 512
	// maxLicense bounds a license kept from the License field; longer values are the whole
	// license text, which says nothing a name would.
	maxLicense = 128
	// maxLicenses bounds the licenses kept for one package.
	maxLicenses = 16
)

// Match implements sbom.Cataloger.
func (*Cataloger) Match(fi sbom.FileInfo) bool {
	dir, base := path.Split(fi.Path)
	dir = strings.TrimSuffix(dir, "/")
	switch base {
	case "METADATA":
		return metadataDir(dir, ".dist-info")
	case "PKG-INFO":
		return metadataDir(dir, ".egg-info") || strings.HasSuffix(dir, ".egg/EGG-INFO") && len(path.Base(path.Dir(dir))) > len(".egg")
	}
	// distutils wrote PKG-INFO as a file named after the distribution: foo-1.0-py3.11.egg-info.
	return metadataDir(fi.Path, ".egg-info")
}

// metadataDir reports whether the last element of p is a name with the given suffix.
func metadataDir(p, suffix string) bool {
	base := path.Base(p)
	return len(base) > len(suffix) && strings.HasSuffix(base, suffix)
}

// Parse implements sbom.Cataloger.
func (c *Cataloger) Parse(ctx context.Context, fi sbom.FileInfo, r sbom.Content) (*sbom.Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	h, err := readHeaders(io.NewSectionReader(r, 0, r.Size()))
	res := &sbom.Result{}
	name, version := h.get("Name"), h.get("Version")
	switch {
	case name == "" || version == "":
		if err != nil {
			return nil, fmt.Errorf("reading Python metadata: %w", err)
		}
		return nil, errors.New("reading Python metadata: no Name or Version field")
	case !validToken(name) || !validToken(version):
		return nil, fmt.Errorf("reading Python metadata: invalid name or version %.64q %.64q", name, version)
	}
	if err != nil {
		res.Warnings = append(res.Warnings, fmt.Sprintf("reading Python metadata of %s: %v", name, err))
	}
	p := sbom.Package{Name: name, Version: version, Type: sbom.TypePyPI, Licenses: licenses(h)}
	if mv := h.get("Metadata-Version"); validToken(mv) {
		p.Metadata = map[string]string{"metadataVersion": mv}
	}
	res.Packages = []sbom.Package{p}
	return res, nil
}

// headers are the fields of the header block, in order, with canonical names.
type headers []field

type field struct{ key, value string }

// get returns the first value of the field named key.
func (h headers) get(key string) string {
	for _, f := range h {
		if f.key == key {
			return f.value
		}
	}
	return ""
}

// all returns every value of the field named key.
func (h headers) all(key string) []string {
	var out []string
	for _, f := range h {
		if f.key == key {
			out = append(out, f.value)
		}
	}
	return out
}

// interesting are the fields kept, spelled as in the core metadata specification; field names
// are matched without regard to case, as in email headers.
var interesting = []string{"Metadata-Version", "Name", "Version", "License", "License-Expression", "Classifier"}

// readHeaders reads the RFC 822 header block up to the first empty line. Lines that start with
// white space continue the previous field, and so do lines holding only white space: distutils
// indented the empty lines of a Description with eight spaces. A read error after some fields
// is returned with what was read.
func readHeaders(r io.Reader) (headers, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), maxLine)
	h := headers{}
	total := 0
	last := -1 // index in h of the field continuation lines extend, or -1 for a field not kept
	for sc.Scan() {
		line := strings.TrimSuffix(sc.Text(), "\r")
		if line == "" {
			break
		}
		total += len(line)
		if total > maxHeader {
			return h, fmt.Errorf("header block is more than %d bytes", maxHeader)
		}
		if line[0] == ' ' || line[0] == '\t' {
			if last >= 0 && len(h[last].value) <= maxLicense {
				h[last].value += "\n" + strings.TrimSpace(line)
			}
			continue
		}
		last = -1
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		k = strings.TrimSpace(k)
		i := slices.IndexFunc(interesting, func(s string) bool { return strings.EqualFold(s, k) })
		if i < 0 {
			continue
		}
		h = append(h, field{key: interesting[i], value: strings.TrimSpace(v)})
		last = len(h) - 1
	}
	if err := sc.Err(); err != nil {
		return h, err
	}
	return h, nil
}

// licenses prefers the SPDX License-Expression (metadata 2.4), then a License field that
// names a license rather than quoting it, then the license classifiers.
func licenses(h headers) []string {
	if e := strings.TrimSpace(h.get("License-Expression")); validLicense(e, maxToken) {
		return []string{e}
	}
	if l := strings.TrimSpace(h.get("License")); validLicense(l, maxLicense) && !strings.EqualFold(l, "UNKNOWN") {
		return []string{l}
	}
	var out []string
	for _, c := range h.all("Classifier") {
		if l := classifierLicense(c); l != "" && len(out) < maxLicenses && !slices.Contains(out, l) {
			out = append(out, l)
		}
	}
	return out
}

// classifierSPDX maps the license classifiers that name exactly one SPDX license; the others
// ("BSD License", "Apache Software License") do not say which version or variant is meant and
// are kept as written.
var classifierSPDX = map[string]string{
	"MIT License":                          "MIT",
	"MIT No Attribution License (MIT-0)":   "MIT-0",
	"ISC License (ISCL)":                   "ISC",
	"Mozilla Public License 2.0 (MPL 2.0)": "MPL-2.0",
	"Python Software Foundation License":   "PSF-2.0",
	"The Unlicense (Unlicense)":            "Unlicense",
	"Zope Public License":                  "ZPL-2.1",
	"Boost Software License 1.0 (BSL-1.0)": "BSL-1.0",
	"Apache Software License 2.0":          "Apache-2.0",
	"zlib/libpng License":                  "Zlib",
}

// classifierLicense turns "License :: OSI Approved :: MIT License" into "MIT" and
// "License :: OSI Approved :: BSD License" into "BSD License"; classifiers that name no
// license ("License :: OSI Approved") give "".
func classifierLicense(c string) string {
	parts := strings.Split(c, "::")
	if len(parts) < 2 || strings.TrimSpace(parts[0]) != "License" {
		return ""
	}
	name := strings.TrimSpace(parts[len(parts)-1])
	if name == "OSI Approved" || !validLicense(name, maxLicense) {
		return ""
	}
	if id, ok := classifierSPDX[name]; ok {
		return id
	}
	return name
}

// validToken reports whether s can be a name or version here (see sbom.ValidToken).
func validToken(s string) bool { return sbom.ValidToken(s, maxToken) }

// validLicense accepts a single-line license name of at most limit bytes.
func validLicense(s string, limit int) bool {
	if s == "" || len(s) > limit || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < ' ' || r == 0x7f {
			return false
		}
	}
	return true
}
