// Package java catalogs Java archives: jar, war and ear files and their relatives (Jenkins
// plugins .hpi and .jpi, JBoss .sar and .par, NiFi and Maven native .nar, Karaf .kar).
//
// An archive is identified, most trusted first, by:
//
//   - every META-INF/maven/<groupId>/<artifactId>/pom.properties it holds; shaded and fat jars
//     hold several and each one is reported;
//   - when it holds none, its META-INF/MANIFEST.MF main section (Implementation-*, Bundle-*
//     and Jenkins plugin attributes);
//   - when the manifest names no version, its file name ("commons-lang3-3.12.0.jar" is
//     commons-lang3 at 3.12.0).
//
// Metadata "evidence" records which of "pom.properties", "manifest" or "filename" was used, and
// Metadata "artifactId" and "groupId" hold the coordinates.
//
// Maven names are "groupId:artifactId", but a manifest or a file name often does not say the
// groupId, and this cataloger does not invent one: it is taken only from pom.properties,
// Implementation-Vendor-Id, a Jenkins plugin's Group-Id, or a Bundle-SymbolicName that is
// exactly "<groupId>.<artifactId>". A package whose group is unknown is named by its artifactId
// alone, without a colon, and its Metadata has no "groupId"; a consumer building a package URL
// leaves the namespace empty.
//
// Archives inside the archive (WEB-INF/lib/*.jar of a war, BOOT-INF/lib/*.jar of a Spring Boot
// jar, the modules of an ear, any entry with one of the matched extensions) are opened from
// memory, and what they hold carries Metadata "nestedPath", such as
// "shop.war!WEB-INF/lib/commons-lang3-3.12.0.jar" (the engine records the file itself as the
// location). Stored entries, as Spring Boot writes them, are read in place; compressed ones are
// inflated under limits on size, compression ratio and total bytes, so that a zip bomb is
// refused with a warning naming the entry. Packages found more than once with the same name and
// version are reported once, where they were first seen: the outer archive before the ones it
// contains.
//
// Licenses come from the manifest's Bundle-License, given to the manifest's own package or, when
// the archive has pom.properties, to the one describing the archive itself.
package java

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"unicode/utf8"

	"github.com/moatsec/moat/internal/sbom"
)

// Cataloger reads Java archives.
type Cataloger struct {
	lim limits
}

// New returns the Java archive cataloger.
func New() *Cataloger { return &Cataloger{lim: defaultLimits} }

// Name implements sbom.Cataloger.
func (*Cataloger) Name() string { return "java" }

// Version implements sbom.Cataloger.
func (*Cataloger) Version() int { return 1 }

// maxFileSize bounds the archives Match accepts.
const maxFileSize = 1 << 30

// minZipSize is the size of an empty zip file: an end-of-central-directory record alone.
const minZipSize = 22

// archiveExts are the extensions of Java archives, in lower case.
var archiveExts = map[string]bool{
	".jar": true, ".war": true, ".ear": true, ".jpi": true, ".hpi": true,
	".par": true, ".sar": true, ".nar": true, ".kar": true,
}

func isArchiveName(name string) bool {
	ext := path.Ext(name)
	return len(ext) == 4 && archiveExts[strings.ToLower(ext)]
}

// Match implements sbom.Cataloger.
func (*Cataloger) Match(fi sbom.FileInfo) bool {
	return fi.Size >= minZipSize && fi.Size <= maxFileSize && isArchiveName(fi.Path)
}

// limits bound the work one file may cause. Everything is counted per file handed to Parse, so
// that nested archives cannot multiply the budget.
type limits struct {
	entries      int   // entries looked at in one archive
	totalEntries int   // entries looked at across the file and all nested archives
	archives     int   // nested archives opened
	depth        int   // levels of archives inside the file
	dir          int64 // bytes of one archive's central directory (plus its end record)
	totalDir     int64 // central directory bytes across all archives
	nested       int64 // inflated size of one compressed nested archive
	inflated     int64 // bytes inflated for compressed nested archives, in total
	ratio        int64 // largest inflated/compressed ratio of a nested archive...
	ratioFloor   int64 // ...once it inflates to more than this many bytes
	manifest     int64 // size of one MANIFEST.MF
	pom          int64 // size of one pom.properties
	meta         int64 // bytes of manifests and pom.properties read, in total
	warnings     int   // warnings kept; the rest are counted
}

var defaultLimits = limits{
	entries:      100_000,
	totalEntries: 1_000_000,
	archives:     4096,
	depth:        4,
	dir:          16 << 20,
	totalDir:     128 << 20,
	nested:       64 << 20,
	inflated:     512 << 20,
	ratio:        100,
	ratioFloor:   1 << 20,
	manifest:     1 << 20,
	pom:          64 << 10,
	meta:         64 << 20,
	warnings:     32,
}

// Parse implements sbom.Cataloger.
func (c *Cataloger) Parse(ctx context.Context, fi sbom.FileInfo, r sbom.Content) (*sbom.Result, error) {
	size := r.Size()
	if size > maxFileSize {
		return nil, fmt.Errorf("reading java archive: %d bytes is more than the %d-byte limit", size, maxFileSize)
	}
	w := &walker{
		ctx:          ctx,
		lim:          c.lim,
		res:          &sbom.Result{},
		seen:         map[string]bool{},
		entriesLeft:  c.lim.totalEntries,
		archivesLeft: c.lim.archives,
		dirLeft:      c.lim.totalDir,
		inflateLeft:  c.lim.inflated,
		metaLeft:     c.lim.meta,
	}
	if err := w.walk(r, size, path.Base(fi.Path), "", 0); err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, ctxErr
		}
		return nil, fmt.Errorf("opening java archive: %w", err)
	}
	if w.dropped > 0 {
		w.res.Warnings = append(w.res.Warnings, fmt.Sprintf("%d more warnings not shown", w.dropped))
	}
	return w.res, nil
}

// walker visits one file and the archives nested in it, sharing one budget.
type walker struct {
	ctx  context.Context
	lim  limits
	res  *sbom.Result
	seen map[string]bool // name + "\x00" + version of packages reported

	entriesLeft  int
	archivesLeft int
	dirLeft      int64
	inflateLeft  int64
	metaLeft     int64
	dropped      int // warnings beyond lim.warnings
}

func (w *walker) warnf(format string, args ...any) {
	if len(w.res.Warnings) >= w.lim.warnings {
		w.dropped++
		return
	}
	w.res.Warnings = append(w.res.Warnings, fmt.Sprintf(format, args...))
}

var (
	errDirTooLarge = errors.New("central directory is larger than the limit")
	errDirBudget   = errors.New("central directories of this file are larger than the limit in total")
)

// dirReader bounds the bytes zip.NewReader reads: the central directory is parsed entirely into
// memory, entry by entry, whatever the count its end record claims.
type dirReader struct {
	r       io.ReaderAt
	opening bool
	left    int64
	err     error // returned once left is spent
}

func (d *dirReader) ReadAt(p []byte, off int64) (int, error) {
	if !d.opening {
		return d.r.ReadAt(p, off)
	}
	if d.left <= 0 {
		return 0, d.err
	}
	short := int64(len(p)) > d.left
	if short {
		p = p[:d.left]
	}
	n, err := d.r.ReadAt(p, off)
	d.left -= int64(n)
	if err == nil && short {
		err = d.err
	}
	return n, err
}

// open reads the central directory of one archive.
func (w *walker) open(ra io.ReaderAt, size int64) (*zip.Reader, error) {
	left, limitErr := w.lim.dir, errDirTooLarge
	if w.dirLeft < left {
		left, limitErr = w.dirLeft, errDirBudget
	}
	dr := &dirReader{r: ra, opening: true, left: left, err: limitErr}
	zr, err := zip.NewReader(dr, size)
	dr.opening = false
	w.dirLeft -= left - dr.left
	if errors.Is(err, zip.ErrInsecurePath) && zr != nil {
		// Only set with GODEBUG=zipinsecurepath=0; names are never used as file paths here.
		err = nil
	}
	if err != nil {
		return nil, err
	}
	return zr, nil
}

// walk catalogs one archive and, recursively, the archives inside it. fileName is the
// archive's base name; nestedPath is its place inside the file ("" for the file itself).
func (w *walker) walk(ra io.ReaderAt, size int64, fileName, nestedPath string, depth int) error {
	if err := w.ctx.Err(); err != nil {
		return err
	}
	zr, err := w.open(ra, size)
	if err != nil {
		return err
	}
	where := nestedPath
	if where == "" {
		where = fileName
	}
	files := zr.File
	if len(files) > w.lim.entries {
		w.warnf("%s: looked at the first %d of %d entries only", clean(where), w.lim.entries, len(files))
		files = files[:w.lim.entries]
	}
	if len(files) > w.entriesLeft {
		w.warnf("%s: skipped %d entries: the file holds more than %d entries in all its archives",
			clean(where), len(files)-w.entriesLeft, w.lim.totalEntries)
		files = files[:w.entriesLeft]
	}
	w.entriesLeft -= len(files)

	var manifest *zip.File
	var poms, nested []*zip.File
	for i, f := range files {
		if i%4096 == 4095 {
			if err := w.ctx.Err(); err != nil {
				return err
			}
		}
		name := f.Name
		if name == "" || strings.HasSuffix(name, "/") {
			continue
		}
		switch {
		case strings.EqualFold(name, "META-INF/MANIFEST.MF"):
			if manifest == nil {
				manifest = f
			}
		case isPomProperties(name):
			poms = append(poms, f)
		case isArchiveName(name):
			nested = append(nested, f)
		}
	}

	var attrs map[string]string
	if manifest != nil {
		data, err := w.readSmall(manifest, w.lim.manifest)
		if err != nil {
			w.warnf("%s: reading %s: %v", clean(where), clean(manifest.Name), err)
		} else {
			attrs = parseManifest(data)
		}
	}
	licenses := bundleLicenses(attrs["bundle-license"])

	var ids []identity
	skipped := 0
	var firstErr error
	for _, f := range poms {
		id, err := w.pomIdentity(f)
		if err != nil {
			if err := w.ctx.Err(); err != nil {
				return err
			}
			skipped++
			if firstErr == nil {
				firstErr = fmt.Errorf("%s: %w", clean(f.Name), err)
			}
			continue
		}
		ids = append(ids, id)
	}
	if skipped > 0 {
		w.warnf("%s: skipped %d of %d pom.properties files (first: %v)", clean(where), skipped, len(poms), firstErr)
	}
	if len(ids) > 0 {
		if i := primary(ids, fileName); i >= 0 {
			ids[i].licenses = licenses
		}
	} else if id, ok := fromManifest(attrs, fileName); ok {
		id.licenses = licenses
		ids = append(ids, id)
	}
	for _, id := range ids {
		w.add(id, nestedPath)
	}

	for _, f := range nested {
		child := where + "!" + f.Name
		if depth >= w.lim.depth {
			w.warnf("skipped nested archive %s: archives nest more than %d levels deep", clean(child), w.lim.depth)
			continue
		}
		if w.archivesLeft <= 0 {
			w.warnf("skipped nested archive %s: the file holds more than %d nested archives", clean(child), w.lim.archives)
			continue
		}
		w.archivesLeft--
		cra, csize, err := w.nestedData(f, ra, size)
		if err == nil {
			err = w.walk(cra, csize, path.Base(f.Name), child, depth+1)
		}
		if err != nil {
			if err := w.ctx.Err(); err != nil {
				return err
			}
			w.warnf("skipped nested archive %s: %v", clean(child), err)
		}
	}
	return nil
}

// nestedData gives access to the body of a nested archive: in place when it is stored, as
// Spring Boot requires, and inflated into memory otherwise.
func (w *walker) nestedData(f *zip.File, parent io.ReaderAt, parentSize int64) (io.ReaderAt, int64, error) {
	if f.Flags&0x1 != 0 {
		return nil, 0, errors.New("entry is encrypted")
	}
	if f.Method == zip.Store {
		if f.CompressedSize64 != f.UncompressedSize64 {
			return nil, 0, fmt.Errorf("stored entry declares %d bytes compressed and %d uncompressed", f.CompressedSize64, f.UncompressedSize64)
		}
		off, err := f.DataOffset()
		if err != nil {
			return nil, 0, fmt.Errorf("locating entry data: %w", err)
		}
		if off < 0 || off > parentSize || f.UncompressedSize64 > uint64(parentSize-off) {
			return nil, 0, errors.New("entry extends past the end of its archive")
		}
		n := int64(f.UncompressedSize64)
		return io.NewSectionReader(parent, off, n), n, nil
	}
	if err := w.lim.checkInflate(f.CompressedSize64, f.UncompressedSize64); err != nil {
		return nil, 0, err
	}
	want := int64(f.UncompressedSize64)
	if want > w.inflateLeft {
		return nil, 0, fmt.Errorf("inflating %d bytes would pass the limit of %d bytes inflated per file", want, w.lim.inflated)
	}
	rc, err := f.Open()
	if err != nil {
		return nil, 0, fmt.Errorf("opening entry: %w", err)
	}
	defer rc.Close()
	// The zip reader fails an entry that inflates past its declared size; the limit is a
	// second guard that does not depend on that.
	data, err := io.ReadAll(io.LimitReader(rc, want+1))
	w.inflateLeft -= int64(len(data))
	if err != nil {
		return nil, 0, fmt.Errorf("inflating entry: %w", err)
	}
	if int64(len(data)) != want {
		return nil, 0, fmt.Errorf("entry inflates to a size other than the %d bytes it declares", want)
	}
	return bytes.NewReader(data), want, nil
}

// checkInflate refuses a compressed nested archive before any of it is inflated, from the sizes
// its header declares; the declared size is then enforced while inflating.
func (l limits) checkInflate(compressed, uncompressed uint64) error {
	if uncompressed > uint64(l.nested) {
		return fmt.Errorf("possible zip bomb: entry inflates to %d bytes, more than the %d-byte limit", uncompressed, l.nested)
	}
	if uncompressed > uint64(l.ratioFloor) && (compressed == 0 || uncompressed/compressed > uint64(l.ratio)) {
		return fmt.Errorf("possible zip bomb: entry inflates %d bytes to %d, a ratio above %d", compressed, uncompressed, l.ratio)
	}
	return nil
}

// readSmall reads a metadata file of the archive, up to limit bytes.
func (w *walker) readSmall(f *zip.File, limit int64) ([]byte, error) {
	if f.Flags&0x1 != 0 {
		return nil, errors.New("entry is encrypted")
	}
	if f.UncompressedSize64 > uint64(limit) {
		return nil, fmt.Errorf("%d bytes is more than the %d-byte limit", f.UncompressedSize64, limit)
	}
	if w.metaLeft <= 0 {
		return nil, fmt.Errorf("the file's metadata is larger than %d bytes in total", w.lim.meta)
	}
	rc, err := f.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, limit+1))
	w.metaLeft -= int64(len(data))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("more than the %d-byte limit", limit)
	}
	return data, nil
}

// pomIdentity reads one META-INF/maven/<groupId>/<artifactId>/pom.properties.
func (w *walker) pomIdentity(f *zip.File) (identity, error) {
	data, err := w.readSmall(f, w.lim.pom)
	if err != nil {
		return identity{}, err
	}
	props := parseProperties(data)
	group, artifact, _ := pomCoordinates(f.Name)
	if g := strings.TrimSpace(props["groupId"]); g != "" {
		group = g
	}
	if a := strings.TrimSpace(props["artifactId"]); a != "" {
		artifact = a
	}
	version := strings.TrimSpace(props["version"])
	if !validCoordinate(group) || !validCoordinate(artifact) || !validVersion(version) {
		return identity{}, errors.New("no valid groupId, artifactId and version")
	}
	return identity{group: group, artifact: artifact, version: version, evidence: evidencePom}, nil
}

// add reports a package once per name and version.
func (w *walker) add(id identity, nestedPath string) {
	name := id.artifact
	if id.group != "" {
		name = id.group + ":" + id.artifact
	}
	key := name + "\x00" + id.version
	if w.seen[key] {
		return
	}
	w.seen[key] = true
	md := map[string]string{"evidence": id.evidence, "artifactId": id.artifact}
	if id.group != "" {
		md["groupId"] = id.group
	}
	if nestedPath != "" {
		md["nestedPath"] = clean(nestedPath)
	}
	w.res.Packages = append(w.res.Packages, sbom.Package{
		Name:     name,
		Version:  id.version,
		Type:     sbom.TypeMaven,
		Licenses: id.licenses,
		Metadata: md,
	})
}

// clean makes an entry name from the archive safe to show: control characters and invalid
// UTF-8 become '?', and very long names are shortened.
func clean(s string) string {
	const maxShown = 1024
	if len(s) > maxShown {
		s = s[:maxShown] + "..."
	}
	ok := utf8.ValidString(s)
	for _, r := range s {
		if r < ' ' || r == 0x7f {
			ok = false
			break
		}
	}
	if ok {
		return s
	}
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f || r == utf8.RuneError {
			return '?'
		}
		return r
	}, strings.ToValidUTF8(s, "?"))
}
