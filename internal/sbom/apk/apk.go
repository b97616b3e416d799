// Package apk catalogs the packages of Alpine, Wolfi and Chainguard images from the apk
// database, lib/apk/db/installed (usr/lib/apk/db/installed where /lib is merged into /usr).
//
// The database is a list of records separated by blank lines; each line is a one-letter key, a
// colon and a value ("P:busybox"). A record's P (name), V (version), A (architecture), o (origin,
// the source package, built at the same version) and L (license expression, kept whole) become a
// Package; its F (directory) and R (file in the last F directory) lines become a sbom.FileOwner.
package apk

import (
	"bufio"
	"context"
	"fmt"
	"path"
	"strings"

	"github.com/moatsec/moat/internal/sbom"
)

// Cataloger reads the apk installed database.
type Cataloger struct{}

// New returns the apk cataloger.
func New() *Cataloger { return &Cataloger{} }

// Name implements sbom.Cataloger.
func (*Cataloger) Name() string { return "apk" }

// Version implements sbom.Cataloger.
func (*Cataloger) Version() int { return 1 }

// Match implements sbom.Cataloger.
func (*Cataloger) Match(fi sbom.FileInfo) bool {
	return fi.Path == "lib/apk/db/installed" || fi.Path == "usr/lib/apk/db/installed"
}

// Bounds on what one database may make us hold. Real databases have a few thousand packages
// and a few hundred thousand files at most.
const (
	maxLine     = 1 << 20
	maxPackages = 100_000
	maxPaths    = 2_000_000
)

// record is one package's fields as read so far.
type record struct {
	name, version, arch, origin, license string
	dir                                  string
	paths                                []string
	lines                                int
}

// Parse implements sbom.Cataloger.
func (c *Cataloger) Parse(ctx context.Context, _ sbom.FileInfo, r sbom.Content) (*sbom.Result, error) {
	res := &sbom.Result{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), maxLine)

	var (
		rec                 record
		records, skipped    int
		paths, droppedPaths int
		droppedPackages     int
		escapes             int
	)
	flush := func() {
		if rec.lines == 0 {
			return
		}
		records++
		p, ok := rec.toPackage()
		switch {
		case !ok:
			skipped++
		case len(res.Packages) >= maxPackages:
			droppedPackages++
		default:
			res.Packages = append(res.Packages, p)
			// Meta packages install no files and own nothing.
			if len(rec.paths) > 0 {
				res.Owners = append(res.Owners, sbom.FileOwner{Type: sbom.TypeAPK, Package: p.Name, Paths: rec.paths})
			}
		}
		rec = record{}
	}
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			flush()
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			continue
		}
		rec.lines++
		if len(line) < 2 || line[1] != ':' {
			continue
		}
		v := line[2:]
		switch line[0] {
		case 'P':
			rec.name = strings.TrimSpace(v)
		case 'V':
			rec.version = strings.TrimSpace(v)
		case 'A':
			rec.arch = strings.TrimSpace(v)
		case 'o':
			rec.origin = strings.TrimSpace(v)
		case 'L':
			rec.license = strings.TrimSpace(v)
		case 'F':
			rec.dir = v
		case 'R':
			p, ok := cleanPath(rec.dir, v)
			switch {
			case !ok:
				escapes++
			case paths >= maxPaths:
				droppedPaths++
			default:
				rec.paths = append(rec.paths, p)
				paths++
			}
		}
	}
	flush()

	if err := sc.Err(); err != nil {
		res.Warnings = append(res.Warnings, fmt.Sprintf("reading apk database: %v (kept %d packages)", err, len(res.Packages)))
	}
	if skipped > 0 {
		res.Warnings = append(res.Warnings, fmt.Sprintf("skipped %d malformed apk database entries", skipped))
	}
	if droppedPackages > 0 {
		res.Warnings = append(res.Warnings, fmt.Sprintf("apk database has more than %d packages: ignored %d", maxPackages, droppedPackages))
	}
	if droppedPaths > 0 {
		res.Warnings = append(res.Warnings, fmt.Sprintf("apk database lists more than %d files: ignored ownership of %d", maxPaths, droppedPaths))
	}
	if escapes > 0 {
		res.Warnings = append(res.Warnings, fmt.Sprintf("ignored %d apk file entries with an invalid path", escapes))
	}
	if records > 0 && skipped == records {
		return res, fmt.Errorf("no valid package in apk database (%d malformed entries)", skipped)
	}
	return res, nil
}

func (rec *record) toPackage() (sbom.Package, bool) {
	if !validToken(rec.name) || !validToken(rec.version) {
		return sbom.Package{}, false
	}
	p := sbom.Package{Name: rec.name, Version: rec.version, Type: sbom.TypeAPK}
	if validToken(rec.arch) {
		p.Arch = rec.arch
	}
	src := rec.name
	if validToken(rec.origin) {
		src = rec.origin
	}
	p.Source = &sbom.Source{Name: src, Version: rec.version}
	if rec.license != "" && !strings.ContainsFunc(rec.license, isControl) {
		p.Licenses = []string{rec.license}
	}
	return p, true
}

// cleanPath joins an R entry to its F directory, relative to the image root. Entries that are
// empty, name a directory component, or try to climb out of the root are rejected.
func cleanPath(dir, file string) (string, bool) {
	if file == "" || strings.Contains(file, "/") || file == "." || file == ".." ||
		strings.ContainsFunc(file, isControl) || strings.ContainsFunc(dir, isControl) {
		return "", false
	}
	for _, part := range strings.Split(dir, "/") {
		if part == ".." {
			return "", false
		}
	}
	p := strings.TrimPrefix(path.Clean("/"+dir+"/"+file), "/")
	return p, p != ""
}

func isControl(r rune) bool { return r < ' ' || r == 0x7f }

// validToken reports whether s can be a name or version here (see sbom.ValidToken).
func validToken(s string) bool { return sbom.ValidToken(s, sbom.DefaultMaxToken) }
