// Package db is moat's advisory database: the OSV records of each ecosystem, imported from the
// public OSV bucket's per-ecosystem all.zip archives (Fetch, Refresh) or from local files
// (Update), kept in one embedded bbolt file that any number of scans read at once.
//
// # Updates
//
// An update never writes the live file. It builds a new file beside it, copying the sources it
// does not replace, closes and syncs it, and renames it over the live one: a crash, a corrupt
// archive or a cancelled context at any point leaves the previous database intact, and a scan
// that opened the database before the swap keeps reading the file it opened. Writers are
// serialised by a lock file (update.lock); readers take no part in it.
//
// # The file
//
// advisories.db is a bbolt file with these top-level buckets:
//
//	meta                 "schema": the schema version in decimal (SchemaVersion)
//	                     "info":   JSON: {"built": time, "sources": [SourceStatus...]}
//	source:<name>/adv    advisory ID → vuln.Advisory in a compact binary form (codec.go)
//	source:<name>/idx    vuln.IndexKey(ecosystem, name) → the advisory IDs, sorted,
//	                     separated by '\n'
//
// A source is one imported archive: the OSV bucket's ecosystem ("Go", "PyPI", "Debian"), or a
// name given to a local import. Every affected package of every record is indexed in the source
// it was imported with, so a record can be found through several sources; Lookup returns it once.
// Withdrawn records are not stored.
//
// The file may come from elsewhere (`moat db pull`, a restored cache): bbolt trusts the pages it
// maps, and a damaged page tree can send it past the end of the file or round a cycle for
// ever. So before bbolt reads a file, its page tree is walked with bounds-checked reads
// (pages.go); Open skips that walk only for the very file it checked last (stamp.go). Reads
// are defensive as well, and Verify reads every byte that a lookup could reach, so that a
// damaged or hostile file gives ErrCorrupt rather than a crash or a hang.
package db

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/moatsec/moat/internal/vuln"
)

// FileName is the name of the database file in its directory.
const FileName = "advisories.db"

// SchemaVersion is the version of the file layout this moat writes and reads. A file of any
// other version is refused with ErrSchema.
const SchemaVersion = 1

var (
	// ErrNoDatabase is returned by Open when there is no database yet.
	ErrNoDatabase = errors.New("no advisory database: run `moat db update` (or `moat db import` where there is no network) to create it")
	// ErrSchema is returned by Open for a database of a schema version this moat cannot read.
	ErrSchema = errors.New("unsupported advisory database schema")
	// ErrCorrupt is returned for a file that is not a moat advisory database or is damaged.
	ErrCorrupt = errors.New("advisory database is damaged or not a moat advisory database")
	// ErrNotFound is returned by Get for an advisory the database does not hold.
	ErrNotFound = errors.New("advisory not found")
)

// Bucket names.
var (
	bucketMeta = []byte("meta")
	keySchema  = []byte("schema")
	keyInfo    = []byte("info")
	bucketAdv  = []byte("adv")
	bucketIdx  = []byte("idx")
)

const sourcePrefix = "source:"

func sourceBucket(name string) []byte { return []byte(sourcePrefix + name) }

// DB is an open advisory database, read-only. It implements vuln.Source and is safe for
// concurrent use.
type DB struct {
	bolt   *bolt.DB
	path   string
	status Status
	// bySource maps an ecosystem to the sources whose index holds it, so that a lookup visits
	// only those.
	bySource map[string][]string

	ecoOnce sync.Once
	ecos    map[string]int
	ecoErr  error
}

// Open opens the database in dir, read-only. Any number of processes may have it open, also
// while an update replaces it. It returns ErrNoDatabase when dir holds none.
func Open(dir string) (*DB, error) {
	p := filepath.Join(dir, FileName)
	return openFile(p, p+stampSuffix)
}

// OpenFile opens the database file at path, read-only (see Open). The file may come from
// anywhere: its page structure is checked in full before bbolt reads it.
func OpenFile(path string) (*DB, error) {
	return openFile(path, "")
}

// openFile opens path, skipping the page check when the stamp file says this very file passed
// it (stamp.go). An update may swap the file between the check and bbolt's open; then the file
// bbolt opened is not the one checked, and the open is retried.
func openFile(path, stamp string) (*DB, error) {
	for range 3 {
		d, err := openOnce(path, stamp)
		if !errors.Is(err, errReplaced) {
			return d, err
		}
	}
	return nil, fmt.Errorf("opening advisory database %s: it kept being replaced while it was opened", path)
}

// testHookBeforeBolt, when set by a test, runs between openOnce's check and bbolt's open.
var testHookBeforeBolt func()

// errReplaced says the file at the path changed between openOnce's check and bbolt's open.
var errReplaced = errors.New("replaced while it was opened")

func openOnce(path, stamp string) (*DB, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("opening %s: %w", path, ErrNoDatabase)
	}
	if err != nil {
		return nil, fmt.Errorf("opening advisory database: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("opening advisory database: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("opening advisory database %s: %w: not a regular file", path, ErrCorrupt)
	}
	// bbolt would try to initialise an empty file, and maps a file it reads: both need a
	// file that has at least its two meta pages.
	if fi.Size() < minFileSize {
		return nil, fmt.Errorf("opening advisory database %s: %w: %d bytes, too small to be a database", path, ErrCorrupt, fi.Size())
	}
	checked := false
	if stamp == "" || !stamped(stamp, fi) {
		if err := checkPages(f, fi.Size()); err != nil {
			return nil, fmt.Errorf("opening advisory database %s: %w", path, err)
		}
		checked = true
	}
	if testHookBeforeBolt != nil {
		testHookBeforeBolt()
	}
	b, err := openBolt(path)
	if err != nil {
		switch {
		case errors.Is(err, berrors.ErrTimeout):
			return nil, fmt.Errorf("opening advisory database %s: another process holds it open for writing: %w", path, err)
		case errors.Is(err, fs.ErrPermission), errors.Is(err, fs.ErrNotExist):
			return nil, fmt.Errorf("opening advisory database %s: %w", path, err)
		}
		// The file exists and could be read: what bbolt refuses in it is damage.
		return nil, fmt.Errorf("opening advisory database %s: %w: %w", path, ErrCorrupt, err)
	}
	// bbolt opened the path again. While f is open its file's inode cannot be reused, so if
	// the path still names f's file now, bbolt's file is f's: the one checked and measured.
	if now, err := os.Stat(path); err != nil || !os.SameFile(fi, now) {
		b.Close()
		return nil, errReplaced
	}
	d := &DB{bolt: b, path: path}
	if err := d.load(fi.Size()); err != nil {
		b.Close()
		return nil, fmt.Errorf("opening advisory database %s: %w", path, err)
	}
	if checked && stamp != "" {
		writeStamp(stamp, fi)
	}
	return d, nil
}

// openBolt opens path read-only. bbolt maps the file and reads its meta pages where the first
// one says they are; in a damaged file that can be past its end, so a fault is an error here
// (leaving bbolt's descriptor and mapping of that file open: a rare loss, and no crash).
func openBolt(path string) (b *bolt.DB, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			b, err = nil, fmt.Errorf("%w: %v", berrors.ErrInvalid, r)
		}
	}()
	// Readers share the file; only a process that opened it for writing, which moat never
	// does, would make this wait.
	return bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: openTimeout})
}

const openTimeout = 5 * time.Second

// minFileSize is the size of a file that holds bbolt's two meta pages at the smallest page
// size bbolt writes.
const minFileSize = 2 * 1024

// load checks the file's size against its meta page and reads the meta bucket.
func (d *DB) load(size int64) error {
	return d.view(func(tx *bolt.Tx) error {
		// A truncated file's meta page points past its end; reading there would fault.
		if tx.Size() > size {
			return fmt.Errorf("%w: the file is truncated (%d bytes, its header says %d)", ErrCorrupt, size, tx.Size())
		}
		m := tx.Bucket(bucketMeta)
		if m == nil {
			return fmt.Errorf("%w: no meta bucket", ErrCorrupt)
		}
		if err := checkSchema(m.Get(keySchema)); err != nil {
			return err
		}
		in, err := decodeInfo(m.Get(keyInfo))
		if err != nil {
			return err
		}
		d.status = Status{Path: d.path, Schema: SchemaVersion, Built: in.Built, Sources: in.Sources}
		d.bySource = map[string][]string{}
		for _, s := range in.Sources {
			if tx.Bucket(sourceBucket(s.Name)) == nil {
				return fmt.Errorf("%w: source %q is listed but has no bucket", ErrCorrupt, s.Name)
			}
			for eco := range s.Ecosystems {
				d.bySource[eco] = append(d.bySource[eco], s.Name)
			}
		}
		return nil
	})
}

func checkSchema(v []byte) error {
	if v == nil {
		return fmt.Errorf("%w: no schema version", ErrCorrupt)
	}
	n, err := strconv.Atoi(string(v))
	if err != nil {
		return fmt.Errorf("%w: schema version %q", ErrCorrupt, v)
	}
	switch {
	case n > SchemaVersion:
		return fmt.Errorf("%w: version %d was written by a newer moat (this one reads %d): upgrade moat, or rebuild the database with `moat db update`", ErrSchema, n, SchemaVersion)
	case n != SchemaVersion:
		return fmt.Errorf("%w: version %d is not one this moat reads (%d): rebuild the database with `moat db update`", ErrSchema, n, SchemaVersion)
	}
	return nil
}

// view runs fn in a read transaction. The file may be damaged or hostile: a fault or a panic
// inside bbolt while reading it becomes ErrCorrupt instead of a crash.
func (d *DB) view(fn func(tx *bolt.Tx) error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: reading %s: %v", ErrCorrupt, d.path, r)
		}
	}()
	return d.bolt.View(fn)
}

// Path returns the file the database was opened from.
func (d *DB) Path() string { return d.path }

// Close closes the database.
func (d *DB) Close() error { return d.bolt.Close() }

// Status describes the database as it was when it was opened.
func (d *DB) Status() Status {
	s := d.status
	s.Sources = slices.Clone(s.Sources)
	for i := range s.Sources {
		src := &s.Sources[i]
		src.Inputs = slices.Clone(src.Inputs)
		src.Examples = slices.Clone(src.Examples)
		src.Ecosystems = maps.Clone(src.Ecosystems)
	}
	return s
}

// Lookup implements vuln.Source: the advisories with an affected entry for name in ecosystem,
// sorted by ID.
func (d *DB) Lookup(ctx context.Context, ecosystem, name string) ([]*vuln.Advisory, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	sources := d.bySource[ecosystem]
	if len(sources) == 0 {
		return nil, nil
	}
	key := []byte(vuln.IndexKey(ecosystem, name))
	var out []*vuln.Advisory
	err := d.view(func(tx *bolt.Tx) error {
		for _, s := range sources {
			idx, adv, err := sourceBuckets(tx, s)
			if err != nil {
				return err
			}
			v := idx.Get(key)
			if v == nil {
				continue
			}
			ids, err := decodeIDs(v)
			if err != nil {
				return fmt.Errorf("source %q: index entry %q: %w", s, key, err)
			}
			for _, id := range ids {
				a, err := decodeAdvisory(adv, id, s)
				if err != nil {
					return err
				}
				out = append(out, a)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("looking up %s %q: %w", ecosystem, name, err)
	}
	if len(sources) > 1 {
		out = dedupe(out, ecosystem)
	}
	return out, nil
}

// dedupe keeps one advisory per ID, the most recently modified one and, between equals, the
// one from the source named after the ecosystem; it sorts by ID.
func dedupe(as []*vuln.Advisory, ecosystem string) []*vuln.Advisory {
	home, _, _ := strings.Cut(ecosystem, ":")
	better := func(a, b *vuln.Advisory) bool {
		if c := a.Modified.Compare(b.Modified); c != 0 {
			return c > 0
		}
		return a.Source == home && b.Source != home
	}
	slices.SortStableFunc(as, func(a, b *vuln.Advisory) int { return strings.Compare(a.ID, b.ID) })
	out := as[:0]
	for _, a := range as {
		if n := len(out); n > 0 && out[n-1].ID == a.ID {
			if better(a, out[n-1]) {
				out[n-1] = a
			}
			continue
		}
		out = append(out, a)
	}
	clear(as[len(out):])
	return out
}

func sourceBuckets(tx *bolt.Tx, source string) (idx, adv *bolt.Bucket, err error) {
	b := tx.Bucket(sourceBucket(source))
	if b == nil {
		return nil, nil, fmt.Errorf("%w: source %q has no bucket", ErrCorrupt, source)
	}
	idx, adv = b.Bucket(bucketIdx), b.Bucket(bucketAdv)
	if idx == nil || adv == nil {
		return nil, nil, fmt.Errorf("%w: source %q lacks its adv or idx bucket", ErrCorrupt, source)
	}
	return idx, adv, nil
}

// decodeAdvisory reads advisory id from a source's adv bucket.
func decodeAdvisory(adv *bolt.Bucket, id, source string) (*vuln.Advisory, error) {
	data := adv.Get([]byte(id))
	if data == nil {
		return nil, fmt.Errorf("%w: source %q indexes advisory %q but does not hold it", ErrCorrupt, source, id)
	}
	a, err := decodeAdvisoryValue(data)
	if err != nil {
		return nil, fmt.Errorf("%w: source %q: advisory %q: %w", ErrCorrupt, source, id, err)
	}
	if a.ID != id {
		return nil, fmt.Errorf("%w: source %q: advisory stored as %q has id %q", ErrCorrupt, source, id, a.ID)
	}
	a.Source = source
	return a, nil
}

// Get returns the advisory with the given ID; when several sources hold it, the most recently
// modified copy. It returns ErrNotFound when no source holds it.
func (d *DB) Get(ctx context.Context, id string) (*vuln.Advisory, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var found []*vuln.Advisory
	err := d.view(func(tx *bolt.Tx) error {
		for _, s := range d.status.Sources {
			_, adv, err := sourceBuckets(tx, s.Name)
			if err != nil {
				return err
			}
			if adv.Get([]byte(id)) == nil {
				continue
			}
			a, err := decodeAdvisory(adv, id, s.Name)
			if err != nil {
				return err
			}
			found = append(found, a)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading advisory %q: %w", id, err)
	}
	if len(found) == 0 {
		return nil, fmt.Errorf("reading advisory %q: %w", id, ErrNotFound)
	}
	best := found[0]
	for _, a := range found[1:] {
		if a.Modified.After(best.Modified) {
			best = a
		}
	}
	return best, nil
}

// Ecosystems implements vuln.Source. An advisory that several sources hold is counted once.
func (d *DB) Ecosystems(ctx context.Context) (map[string]int, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d.ecoOnce.Do(func() { d.ecos, d.ecoErr = d.countEcosystems() })
	if d.ecoErr != nil {
		return nil, d.ecoErr
	}
	return maps.Clone(d.ecos), nil
}

// countEcosystems sums the sources' per-ecosystem counts. An ecosystem that several sources
// index is counted from their indexes, so that a record held by two sources counts once.
func (d *DB) countEcosystems() (map[string]int, error) {
	out := map[string]int{}
	var shared []string
	for eco, sources := range d.bySource {
		if len(sources) == 1 {
			for _, s := range d.status.Sources {
				if s.Name == sources[0] {
					out[eco] = s.Ecosystems[eco]
				}
			}
			continue
		}
		shared = append(shared, eco)
	}
	if len(shared) == 0 {
		return out, nil
	}
	err := d.view(func(tx *bolt.Tx) error {
		for _, eco := range shared {
			ids := map[string]struct{}{}
			prefix := []byte(eco + "\x00")
			for _, s := range d.bySource[eco] {
				idx, _, err := sourceBuckets(tx, s)
				if err != nil {
					return err
				}
				c := idx.Cursor()
				for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
					list, err := decodeIDs(v)
					if err != nil {
						return fmt.Errorf("source %q: index entry %q: %w", s, k, err)
					}
					for _, id := range list {
						ids[id] = struct{}{}
					}
				}
			}
			out[eco] = len(ids)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("counting advisories per ecosystem: %w", err)
	}
	return out, nil
}

var _ vuln.Source = (*DB)(nil)
