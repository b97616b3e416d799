// Package rpm catalogs the packages of Red Hat, Fedora, CentOS, Rocky, Alma, Amazon Linux,
// Oracle Linux, SUSE and Mariner images from the rpm database, in any of its three formats:
// rpmdb.sqlite (SQLite, rpm 4.16 and later), Packages.db (ndb, SUSE) and Packages (Berkeley
// DB hash, older releases), under var/lib/rpm or usr/lib/sysimage/rpm.
//
// The database files are read by this package, bounded and without trusting any length or
// pointer in them; each package header is then decoded with github.com/knqyf263/go-rpmdb (see
// decoder for why it only sees one header at a time). That needs a file on disk, so Parse
// writes one temporary file under the cataloger's temporary directory and removes it before
// returning.
//
// A package is reported with its name, its version as "[epoch:]version-release" (the epoch
// only when present and not zero, since rpm treats a missing epoch as zero), its architecture,
// the source package from the source RPM's file name (at the same epoch), its license, and
// Metadata "vendor" and "modularitylabel" (RHEL 8+ modules) where present. gpg-pubkey entries,
// which record imported signing keys rather than software, are skipped. The files each package
// installed are reported as a sbom.FileOwner.
package rpm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strconv"
	"strings"

	rpmdb "github.com/knqyf263/go-rpmdb/pkg"

	"github.com/moatsec/moat/internal/sbom"
)

// Cataloger reads rpm databases.
type Cataloger struct {
	tempDir string
}

// Option configures a Cataloger.
type Option func(*Cataloger)

// WithTempDir sets the directory under which Parse creates its temporary directory; the
// default is os.TempDir().
func WithTempDir(dir string) Option { return func(c *Cataloger) { c.tempDir = dir } }

// New returns the rpm cataloger.
func New(opts ...Option) *Cataloger {
	c := &Cataloger{}
	for _, o := range opts {
		o(c)
	}
	if c.tempDir == "" {
		c.tempDir = os.TempDir()
	}
	return c
}

// Name implements sbom.Cataloger.
func (*Cataloger) Name() string { return "rpm" }

// Version implements sbom.Cataloger.
func (*Cataloger) Version() int { return 1 }

var dbPaths = map[string]bool{
	"var/lib/rpm/rpmdb.sqlite":          true,
	"var/lib/rpm/Packages.db":           true,
	"var/lib/rpm/Packages":              true,
	"usr/lib/sysimage/rpm/rpmdb.sqlite": true,
	"usr/lib/sysimage/rpm/Packages.db":  true,
	"usr/lib/sysimage/rpm/Packages":     true,
}

// Match implements sbom.Cataloger.
func (*Cataloger) Match(fi sbom.FileInfo) bool { return dbPaths[fi.Path] }

// Bounds on what one database may make us read and hold. The largest real databases are a
// few hundred MiB with a few thousand packages; rpm itself refuses headers over 256 MiB, and
// real ones stay under a few MiB.
const (
	maxDBSize   = 512 << 20
	maxBlob     = 64 << 20
	maxPackages = 100_000
	maxPaths    = 2_000_000
)

var (
	// errBudget stops reading a database whose entries add up to more bytes than the file
	// has, which only pages shared between entries can do.
	errBudget = errors.New("database entries claim more data than the file holds")
	// errStop marks an error returned by the consumer of blobs, which ends reading.
	errStop = errors.New("reading stopped")
	// errTemp marks a failure of the temporary file, which is no fault of the database.
	errTemp = errors.New("temporary file")
)

// budget bounds the bytes of all entries read from one file.
type budget struct{ left int64 }

func newBudget(size int64) *budget { return &budget{left: size} }

func (b *budget) take(n int64) error {
	if n < 0 || n > b.left {
		return errBudget
	}
	b.left -= n
	return nil
}

// readStats counts the entries a reader had to skip and remembers the first reason.
type readStats struct {
	skipped int
	first   error
}

func (s *readStats) problem(err error) {
	s.skipped++
	if s.first == nil {
		s.first = err
	}
}

// reader reads the header blobs of one database format and hands each to emit. Entries it
// cannot read are counted in stats; it fails when it cannot read the file at all, when emit
// fails, or when the file claims more data than it holds.
type reader func(ctx context.Context, r io.ReaderAt, size int64, stats *readStats, emit func([]byte) error) error

// Parse implements sbom.Cataloger.
func (c *Cataloger) Parse(ctx context.Context, fi sbom.FileInfo, r sbom.Content) (*sbom.Result, error) {
	size := r.Size()
	if size > maxDBSize {
		return nil, fmt.Errorf("rpm database of %d bytes exceeds the %d-byte limit", size, maxDBSize)
	}
	head := make([]byte, 512)
	n, err := r.ReadAt(head, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("reading rpm database: %w", err)
	}
	head = head[:n]
	var read reader
	switch {
	case len(head) == 0:
		return nil, errors.New("empty rpm database")
	case len(head) >= len(sqliteMagic) && string(head[:len(sqliteMagic)]) == string(sqliteMagic):
		read = readSQLite
	case isNDB(head):
		read = readNDB
	case len(head) == 512 && bdbOrder(head) != nil:
		read = readBDB
	default:
		return nil, errors.New("not an rpm database: neither SQLite, ndb nor Berkeley DB hash")
	}

	dec, err := newDecoder(c.tempDir)
	if err != nil {
		return nil, fmt.Errorf("decoding rpm headers: %w", err)
	}
	defer dec.Close()

	res := &sbom.Result{}
	var (
		storage, headers         readStats
		fileLists                readStats
		keys                     int
		droppedPkgs, droppedPath int
		paths                    int
	)
	emit := func(blob []byte) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		info, files, err := dec.decode(blob)
		if errors.Is(err, errTemp) {
			return err
		}
		if info == nil {
			headers.problem(err)
			return nil
		}
		if err != nil {
			fileLists.problem(fmt.Errorf("%s: %w", info.Name, err))
		}
		if info.Name == "gpg-pubkey" {
			keys++
			return nil
		}
		p, ok := toPackage(info)
		if !ok {
			headers.problem(fmt.Errorf("header with invalid name or version %q %q-%q", info.Name, info.Version, info.Release))
			return nil
		}
		if len(res.Packages) >= maxPackages {
			droppedPkgs++
			return nil
		}
		res.Packages = append(res.Packages, p)
		owner := sbom.FileOwner{Type: sbom.TypeRPM, Package: p.Name}
		for _, f := range files {
			if strings.ContainsFunc(f, isControl) {
				continue
			}
			f = strings.TrimPrefix(path.Clean("/"+f), "/")
			if f == "" {
				continue
			}
			if paths >= maxPaths {
				droppedPath++
				continue
			}
			owner.Paths = append(owner.Paths, f)
			paths++
		}
		if len(owner.Paths) > 0 {
			res.Owners = append(res.Owners, owner)
		}
		return nil
	}
	readErr := read(ctx, r, size, &storage, emit)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if errors.Is(readErr, errTemp) {
		return nil, fmt.Errorf("decoding rpm headers: %w", readErr)
	}

	found := len(res.Packages) + keys
	if readErr != nil {
		if found == 0 {
			return nil, fmt.Errorf("reading rpm database: %w", readErr)
		}
		res.Warnings = append(res.Warnings, fmt.Sprintf("reading rpm database: %v (kept %d packages)", readErr, len(res.Packages)))
	}
	if storage.skipped > 0 {
		res.Warnings = append(res.Warnings, fmt.Sprintf("skipped %d unreadable rpm database entries (first: %v)", storage.skipped, storage.first))
	}
	if headers.skipped > 0 {
		res.Warnings = append(res.Warnings, fmt.Sprintf("skipped %d malformed rpm package headers (first: %v)", headers.skipped, headers.first))
	}
	if fileLists.skipped > 0 {
		res.Warnings = append(res.Warnings, fmt.Sprintf("ignored the file lists of %d rpm packages (first: %v)", fileLists.skipped, fileLists.first))
	}
	if droppedPkgs > 0 {
		res.Warnings = append(res.Warnings, fmt.Sprintf("rpm database has more than %d packages: ignored %d", maxPackages, droppedPkgs))
	}
	if droppedPath > 0 {
		res.Warnings = append(res.Warnings, fmt.Sprintf("rpm database lists more than %d files: ignored ownership of %d", maxPaths, droppedPath))
	}
	if found == 0 && storage.skipped+headers.skipped > 0 {
		return nil, fmt.Errorf("no valid package in rpm database (%d unreadable entries, %d malformed headers; first: %v)",
			storage.skipped, headers.skipped, firstOf(storage.first, headers.first))
	}
	return res, nil
}

func firstOf(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// toPackage builds a Package from a decoded header; ok is false when the name or version
// cannot be used.
func toPackage(info *rpmdb.PackageInfo) (sbom.Package, bool) {
	name, version, release := info.Name, info.Version, info.Release
	if !validToken(name) || !validToken(version) || (release != "" && !validToken(release)) {
		return sbom.Package{}, false
	}
	prefix := ""
	if info.Epoch != nil && *info.Epoch != 0 {
		prefix = strconv.Itoa(*info.Epoch) + ":"
	}
	full := prefix + version
	if release != "" {
		full += "-" + release
	}
	p := sbom.Package{Name: name, Version: full, Type: sbom.TypeRPM}
	if validToken(info.Arch) {
		p.Arch = info.Arch
	}
	if sname, sver, ok := parseSourceRPM(info.SourceRpm); ok {
		p.Source = &sbom.Source{Name: sname, Version: prefix + sver}
	} else {
		p.Source = &sbom.Source{Name: name, Version: full}
	}
	if license := text(info.License); license != "" {
		p.Licenses = []string{license}
	}
	if v := text(info.Vendor); v != "" {
		p.Metadata = map[string]string{"vendor": v}
	}
	if v := text(info.Modularitylabel); v != "" {
		if p.Metadata == nil {
			p.Metadata = map[string]string{}
		}
		p.Metadata["modularitylabel"] = v
	}
	return p, true
}

// text returns s trimmed, or "" when it holds control characters.
func text(s string) string {
	s = strings.TrimSpace(s)
	if strings.ContainsFunc(s, isControl) {
		return ""
	}
	return s
}

// parseSourceRPM is sbom.ParseSourceRPM for a name read from an rpm header, which must be a
// valid token first.
func parseSourceRPM(s string) (name, version string, ok bool) {
	if !validToken(s) {
		return "", "", false
	}
	return sbom.ParseSourceRPM(s)
}

func isControl(r rune) bool { return r < ' ' || r == 0x7f }

// validToken reports whether s can be a name or version here (see sbom.ValidToken).
func validToken(s string) bool { return sbom.ValidToken(s, sbom.DefaultMaxToken) }
