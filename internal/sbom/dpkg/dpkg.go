// Package dpkg catalogs Debian and Ubuntu packages from the dpkg database: var/lib/dpkg/status,
// the one-file-per-package var/lib/dpkg/status.d/ that distroless images use, and the
// var/lib/dpkg/info/*.list files that say which files each package installed.
package dpkg

import (
	"bufio"
	"context"
	"fmt"
	"path"
	"strings"

	"github.com/moatsec/moat/internal/sbom"
)

// Cataloger reads the dpkg database.
type Cataloger struct{}

// New returns the dpkg cataloger.
func New() *Cataloger { return &Cataloger{} }

// Name implements sbom.Cataloger.
func (*Cataloger) Name() string { return "dpkg" }

// Version implements sbom.Cataloger.
func (*Cataloger) Version() int { return 1 }

const (
	statusFile = "var/lib/dpkg/status"
	statusDir  = "var/lib/dpkg/status.d"
	infoDir    = "var/lib/dpkg/info"
)

// Match implements sbom.Cataloger.
func (*Cataloger) Match(fi sbom.FileInfo) bool {
	if fi.Path == statusFile {
		return true
	}
	dir, base := path.Split(fi.Path)
	switch strings.TrimSuffix(dir, "/") {
	case statusDir:
		// distroless also writes <pkg>.md5sums beside each status file.
		return !strings.HasSuffix(base, ".md5sums")
	case infoDir:
		return strings.HasSuffix(base, ".list")
	}
	return false
}

// maxLine bounds one line of a control file; Description fields are the longest in practice.
const maxLine = 1 << 20

// Parse implements sbom.Cataloger.
func (c *Cataloger) Parse(ctx context.Context, fi sbom.FileInfo, r sbom.Content) (*sbom.Result, error) {
	if strings.HasPrefix(fi.Path, infoDir+"/") {
		return parseList(fi, r)
	}
	return parseStatus(ctx, r)
}

func parseList(fi sbom.FileInfo, r sbom.Content) (*sbom.Result, error) {
	name := strings.TrimSuffix(path.Base(fi.Path), ".list")
	name, _, _ = strings.Cut(name, ":") // multi-arch: libc6:amd64.list
	if name == "" {
		return &sbom.Result{}, nil
	}
	owner := sbom.FileOwner{Type: sbom.TypeDeb, Package: name}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxLine)
	for sc.Scan() {
		p := strings.TrimPrefix(path.Clean("/"+sc.Text()), "/")
		if p == "" {
			continue
		}
		owner.Paths = append(owner.Paths, p)
	}
	res := &sbom.Result{Owners: []sbom.FileOwner{owner}}
	if err := sc.Err(); err != nil {
		res.Warnings = append(res.Warnings, fmt.Sprintf("reading file list of %s: %v", name, err))
	}
	return res, nil
}

// parseStatus reads RFC 822-style paragraphs; each installed package becomes one Package.
func parseStatus(ctx context.Context, r sbom.Content) (*sbom.Result, error) {
	res := &sbom.Result{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), maxLine)
	fields := map[string]string{}
	skipped, paragraphs := 0, 0
	lines := 0 // non-blank lines in the current paragraph
	flush := func() {
		if lines == 0 {
			return
		}
		paragraphs++
		if p, ok := toPackage(fields); ok {
			res.Packages = append(res.Packages, p)
		} else if !notInstalled(fields) {
			skipped++
		}
		clear(fields)
		lines = 0
	}
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.TrimSpace(line) == "":
			flush()
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		case line[0] == ' ' || line[0] == '\t':
			// Continuation of a multi-line field; only Description uses them and we keep none.
			lines++
		default:
			lines++
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			fields[k] = strings.TrimSpace(v)
		}
	}
	flush()
	if err := sc.Err(); err != nil {
		res.Warnings = append(res.Warnings, fmt.Sprintf("reading dpkg status: %v (kept %d packages)", err, len(res.Packages)))
	}
	if skipped > 0 {
		res.Warnings = append(res.Warnings, fmt.Sprintf("skipped %d malformed dpkg status entries", skipped))
	}
	if paragraphs > 0 && len(res.Packages) == 0 && skipped == paragraphs {
		return res, fmt.Errorf("no valid package in dpkg status (%d malformed entries)", skipped)
	}
	return res, nil
}

// notInstalled reports a well-formed entry for a package that is removed or only half there.
func notInstalled(f map[string]string) bool {
	st, ok := f["Status"]
	return ok && f["Package"] != "" && !installed(st)
}

func installed(status string) bool {
	// "want flag status": "install ok installed", "hold ok installed"; removed packages keep
	// "deinstall ok config-files".
	parts := strings.Fields(status)
	return len(parts) == 3 && (parts[2] == "installed" || parts[2] == "half-configured" || parts[2] == "triggers-awaited" || parts[2] == "triggers-pending")
}

func toPackage(f map[string]string) (sbom.Package, bool) {
	name, version := f["Package"], f["Version"]
	if name == "" || version == "" || !validToken(name) || !validToken(version) {
		return sbom.Package{}, false
	}
	// status.d entries of distroless images carry no Status field: they are installed.
	if st, ok := f["Status"]; ok && !installed(st) {
		return sbom.Package{}, false
	}
	p := sbom.Package{Name: name, Version: version, Type: sbom.TypeDeb, Arch: f["Architecture"]}
	if src := f["Source"]; src != "" {
		// "Source: glibc" or "Source: glibc (2.36-9)" when the versions differ.
		sname, sver, _ := strings.Cut(src, " ")
		sver = strings.Trim(strings.TrimSpace(sver), "()")
		if sver == "" {
			sver = version
		}
		if validToken(sname) && validToken(sver) {
			p.Source = &sbom.Source{Name: sname, Version: sver}
		}
	}
	if p.Source == nil {
		p.Source = &sbom.Source{Name: name, Version: version}
	}
	return p, true
}

// validToken reports whether s can be a name or version here (see sbom.ValidToken).
func validToken(s string) bool { return sbom.ValidToken(s, sbom.DefaultMaxToken) }
