package db

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Input is one archive, directory or file to import.
type Input struct {
	// Path is an OSV export archive (a .zip, such as the OSV bucket's all.zip), a directory of
	// OSV JSON records (read to a bounded depth; files not ending in ".json" are ignored), one
	// OSV JSON record, or a copy of the OSV bucket: a directory of <ecosystem>/all.zip, each
	// imported as the source its directory names (when Source is empty).
	Path string
	// Source is the source the records replace. When empty it is found from the records: the
	// name of the directory an all.zip is in, or of the directory given (the OSV bucket's
	// layout, ".../Go/all.zip"), when every record affects that ecosystem; otherwise the one
	// ecosystem, before any ':', that every record affects.
	Source string
	// Origin is recorded as where the data came from (Fetch sets the URL); by default the
	// absolute Path.
	Origin string
	// AsOf is how recent the data is, when the caller knows (Fetch sets the archive's
	// Last-Modified time); by default the newest modified time of the records.
	AsOf time.Time
	// SHA256 is the hex SHA-256 of the file at Path, when the caller has computed it (Fetch
	// does); by default Update computes it.
	SHA256 string
}

// UpdateOptions tune Update.
type UpdateOptions struct {
	// Logger receives progress and warnings; by default nothing is logged.
	Logger *slog.Logger
	// LockWait is how long to wait for another update of the same directory to finish; by
	// default Update fails at once with ErrBusy.
	LockWait time.Duration
	// Remove names sources to drop from the database.
	Remove []string
	// Progress, when set, is called as records are read, with the input's path and the number
	// of its records read so far. It is called from one goroutine at a time.
	Progress func(input string, records int)

	// batchBytes overrides defaultBatch, for tests.
	batchBytes int
}

// Result describes what an update did.
type Result struct {
	// Status is the new database's.
	Status Status
	// Updated are the sources imported, Kept those copied unchanged from the previous
	// database, Removed those dropped; each sorted.
	Updated, Kept, Removed []string
	// Discarded, when not empty, says why the previous database could not be read: it was
	// replaced by one holding only the updated sources.
	Discarded string
}

// defaultBatch is how much data an update writes between commits, to bound the memory bbolt
// holds for one transaction.
const defaultBatch = 32 << 20

// Update imports inputs into the database in dir, creating dir and the database as needed.
// Each source named by the inputs is replaced by what the inputs hold for it; the other
// sources are kept, except those in opts.Remove.
//
// The update is all or nothing: if any input cannot be read (a corrupt archive, a record file
// that does not parse, a cancelled context), it returns an error and the database is as it
// was. A record that fails to parse inside an archive or directory is not such a failure: it
// is skipped and counted in SourceStatus.Skipped and Warnings.
//
// Only one update of a directory runs at a time (see UpdateOptions.LockWait); scans that have
// the database open keep reading the data they opened.
func Update(ctx context.Context, dir string, inputs []Input, opts UpdateOptions) (*Result, error) {
	if err := checkUpdate(inputs, opts); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("updating the advisory database: %w", err)
	}
	l, err := lockDir(ctx, dir, opts.LockWait)
	if err != nil {
		return nil, err
	}
	defer l.unlock()
	removeLeftovers(dir, logger(opts.Logger))
	return update(ctx, dir, inputs, opts)
}

func checkUpdate(inputs []Input, opts UpdateOptions) error {
	if len(inputs) == 0 && len(opts.Remove) == 0 {
		return errors.New("updating the advisory database: nothing to import or remove")
	}
	for _, in := range inputs {
		if in.Path == "" {
			return errors.New("updating the advisory database: an input has no path")
		}
		if in.Source != "" {
			if err := checkSourceName(in.Source); err != nil {
				return fmt.Errorf("importing %s: %w", in.Path, err)
			}
		}
	}
	for _, r := range opts.Remove {
		if err := checkSourceName(r); err != nil {
			return fmt.Errorf("removing a source: %w", err)
		}
	}
	return nil
}

func logger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}

// update is Update with the lock held and leftovers removed.
func update(ctx context.Context, dir string, inputs []Input, opts UpdateOptions) (*Result, error) {
	log := logger(opts.Logger)
	start := time.Now()
	live := filepath.Join(dir, FileName)
	res := &Result{}

	old, err := OpenFile(live)
	switch {
	case errors.Is(err, ErrNoDatabase):
		old = nil
	case errors.Is(err, ErrCorrupt) || errors.Is(err, ErrSchema):
		res.Discarded = err.Error()
		log.Warn("replacing an advisory database that cannot be read", "path", live, "error", err)
		old = nil
	case err != nil:
		return nil, fmt.Errorf("updating the advisory database: %w", err)
	}
	if old != nil {
		defer old.Close()
	}
	for _, r := range opts.Remove {
		if old == nil || !hasSource(old.status, r) {
			return nil, fmt.Errorf("removing source %q: the database has no such source", r)
		}
	}

	f, err := os.CreateTemp(dir, FileName+".new-*")
	if err != nil {
		return nil, fmt.Errorf("updating the advisory database: %w", err)
	}
	tmp := f.Name()
	f.Close()
	done := false
	defer func() {
		if !done {
			os.Remove(tmp)
		}
	}()
	b, err := newBuilder(tmp, log, opts.batchBytes)
	if err != nil {
		return nil, fmt.Errorf("updating the advisory database: %w", err)
	}
	defer b.abort()

	if inputs, err = expandMirrors(inputs, log); err != nil {
		return nil, err
	}
	// Read every input into its own staging bucket, then group them by source.
	stages := make([]*stage, len(inputs))
	for i, in := range inputs {
		t := time.Now()
		st, err := b.read(ctx, i, in, opts.Progress)
		if err != nil {
			return nil, fmt.Errorf("importing %s: %w", in.Path, err)
		}
		stages[i] = st
		log.Info("read advisories", "input", in.Path, "source", st.source, "records", len(st.recs),
			"withdrawn", st.withdrawn, "skipped", st.skipped, "warnings", st.warnings, "elapsed", time.Since(t).Round(time.Millisecond))
	}
	bySource := map[string][]*stage{}
	for _, st := range stages {
		bySource[st.source] = append(bySource[st.source], st)
	}
	for _, r := range opts.Remove {
		if _, ok := bySource[r]; ok {
			return nil, fmt.Errorf("updating the advisory database: source %q is both imported and removed", r)
		}
	}

	var sources []SourceStatus
	for _, name := range slices.Sorted(maps.Keys(bySource)) {
		s, err := b.finish(ctx, name, bySource[name])
		if err != nil {
			return nil, fmt.Errorf("importing source %q: %w", name, err)
		}
		sources = append(sources, s)
		res.Updated = append(res.Updated, name)
	}
	if old != nil {
		for _, s := range old.status.Sources {
			switch {
			case bySource[s.Name] != nil:
			case slices.Contains(opts.Remove, s.Name):
				res.Removed = append(res.Removed, s.Name)
			default:
				if err := b.copySource(ctx, old, s.Name); err != nil {
					return nil, fmt.Errorf("keeping source %q of %s: %w (import it again, or remove it)", s.Name, live, err)
				}
				sources = append(sources, s)
				res.Kept = append(res.Kept, s.Name)
			}
		}
	}
	slices.SortFunc(sources, func(a, b SourceStatus) int { return strings.Compare(a.Name, b.Name) })
	for _, l := range [][]string{res.Updated, res.Kept, res.Removed} {
		slices.Sort(l)
	}

	built := time.Now().UTC()
	if err := b.writeMeta(&info{Built: built, Sources: sources}); err != nil {
		return nil, fmt.Errorf("updating the advisory database: %w", err)
	}
	if err := b.close(); err != nil {
		return nil, fmt.Errorf("updating the advisory database: writing %s: %w", tmp, err)
	}
	// Read back what was written before it replaces anything.
	check, err := OpenFile(tmp)
	if err != nil {
		return nil, fmt.Errorf("updating the advisory database: checking the new file: %w", err)
	}
	res.Status = check.Status()
	check.Close()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("updating the advisory database: %w", err)
	}
	if err := install(tmp, dir, log); err != nil {
		return nil, err
	}
	done = true
	res.Status.Path = live
	log.Info("advisory database updated", "path", live, "updated", res.Updated, "kept", res.Kept, "removed", res.Removed,
		"records", res.Status.Records(), "elapsed", time.Since(start).Round(time.Millisecond))
	return res, nil
}

// expandMirrors replaces a directory laid out as the OSV bucket, <ecosystem>/all.zip, by one
// input per archive, each imported as the source its directory names: `moat db import` of a
// mirror copied to removable media.
func expandMirrors(inputs []Input, log *slog.Logger) ([]Input, error) {
	var out []Input
	for _, in := range inputs {
		var zips []string
		if fi, err := os.Stat(in.Path); err == nil && fi.IsDir() && in.Source == "" {
			zips, _ = filepath.Glob(filepath.Join(in.Path, "*", "all.zip"))
		}
		if len(zips) == 0 {
			out = append(out, in)
			continue
		}
		log.Info("reading a directory of OSV archives", "dir", in.Path, "archives", len(zips))
		for _, z := range zips {
			name := filepath.Base(filepath.Dir(z))
			if err := checkSourceName(name); err != nil {
				return nil, fmt.Errorf("importing %s: %w", z, err)
			}
			out = append(out, Input{Path: z, Source: name})
		}
	}
	return out, nil
}

func hasSource(s Status, name string) bool {
	_, ok := s.Source(name)
	return ok
}

// install renames the finished file tmp, in dir, over the live database and makes the
// rename durable.
func install(tmp, dir string, log *slog.Logger) error {
	live := filepath.Join(dir, FileName)
	if err := os.Rename(tmp, live); err != nil {
		return fmt.Errorf("updating the advisory database: replacing %s: %w", live, err)
	}
	if d, err := os.Open(dir); err == nil {
		// The rename is done and the new file is complete either way; a failed directory
		// sync only means the old name may come back after a power loss.
		if err := d.Sync(); err != nil {
			log.Warn("syncing the database directory", "dir", dir, "error", err)
		}
		d.Close()
	}
	return nil
}

// Leftovers of an interrupted update, removed by the next one.
var leftoverPatterns = []string{FileName + ".new-*", FileName + stampSuffix + ".new-*", "download-*"}

func removeLeftovers(dir string, log *slog.Logger) {
	for _, p := range leftoverPatterns {
		matches, _ := filepath.Glob(filepath.Join(dir, p))
		for _, m := range matches {
			if err := os.Remove(m); err != nil {
				log.Warn("removing a file an interrupted update left", "path", m, "error", err)
				continue
			}
			log.Info("removed a file an interrupted update left", "path", m)
		}
	}
}

// builder writes the new database file, committing every batch bytes.
type builder struct {
	log     *slog.Logger
	db      *bolt.DB
	tx      *bolt.Tx
	gen     int // incremented at each commit, which invalidates bucket handles
	pending int
	batch   int
}

func newBuilder(path string, log *slog.Logger, batch int) (*builder, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{NoSync: true, NoGrowSync: true, NoFreelistSync: true,
		FreelistType: bolt.FreelistMapType, Timeout: time.Second})
	if err != nil {
		return nil, fmt.Errorf("creating %s: %w", path, err)
	}
	if batch <= 0 {
		batch = defaultBatch
	}
	b := &builder{db: db, log: log, batch: batch}
	if b.tx, err = db.Begin(true); err != nil {
		db.Close()
		return nil, err
	}
	return b, nil
}

// wrote counts n bytes written and commits when a batch is full.
func (b *builder) wrote(n int) error {
	b.pending += n
	if b.pending < b.batch {
		return nil
	}
	return b.commit()
}

func (b *builder) commit() error {
	if err := b.tx.Commit(); err != nil {
		return err
	}
	b.gen++
	b.pending = 0
	var err error
	b.tx, err = b.db.Begin(true)
	return err
}

// close commits, syncs and closes the file.
func (b *builder) close() error {
	if err := b.tx.Commit(); err != nil {
		b.tx = nil
		return err
	}
	b.tx = nil
	if err := b.db.Sync(); err != nil {
		return err
	}
	err := b.db.Close()
	b.db = nil
	return err
}

// abort drops the file's last transaction and closes it, after an error.
func (b *builder) abort() {
	if b.tx != nil {
		b.tx.Rollback()
		b.tx = nil
	}
	if b.db != nil {
		b.db.Close()
		b.db = nil
	}
}

// bucketRef finds a nested bucket in the builder's current transaction, creating it, and
// keeps the handle until the next commit.
type bucketRef struct {
	path [][]byte
	gen  int
	b    *bolt.Bucket
}

func (b *builder) bucket(r *bucketRef) (*bolt.Bucket, error) {
	if r.b != nil && r.gen == b.gen {
		return r.b, nil
	}
	bk, err := b.tx.CreateBucketIfNotExists(r.path[0])
	for _, p := range r.path[1:] {
		if err != nil {
			break
		}
		bk, err = bk.CreateBucketIfNotExists(p)
	}
	if err != nil {
		return nil, err
	}
	// The file is read, never updated in place: pages may be full.
	bk.FillPercent = 1.0
	r.b, r.gen = bk, b.gen
	return bk, nil
}

func (b *builder) put(r *bucketRef, k, v []byte) error {
	bk, err := b.bucket(r)
	if err != nil {
		return err
	}
	if err := bk.Put(k, v); err != nil {
		return fmt.Errorf("storing %q: %w", k, err)
	}
	return b.wrote(len(k) + len(v))
}

// copySource copies a source's buckets unchanged from the previous database.
func (b *builder) copySource(ctx context.Context, old *DB, name string) error {
	return old.view(func(otx *bolt.Tx) error {
		src := otx.Bucket(sourceBucket(name))
		if src == nil {
			return fmt.Errorf("%w: no bucket for source %q", ErrCorrupt, name)
		}
		for _, sub := range [][]byte{bucketAdv, bucketIdx} {
			from := src.Bucket(sub)
			if from == nil {
				return fmt.Errorf("%w: source %q has no %s bucket", ErrCorrupt, name, sub)
			}
			to := &bucketRef{path: [][]byte{sourceBucket(name), sub}}
			c := from.Cursor()
			n := 0
			for k, v := c.First(); k != nil; k, v = c.Next() {
				if v == nil {
					return fmt.Errorf("%w: source %q: %s holds a bucket", ErrCorrupt, name, sub)
				}
				if n++; n%4096 == 0 {
					if err := ctx.Err(); err != nil {
						return err
					}
				}
				// bbolt's slices are valid only during otx, and Put keeps them until the
				// next commit: commit before otx ends.
				if err := b.put(to, k, v); err != nil {
					return err
				}
			}
		}
		return b.commit()
	})
}

func (b *builder) writeMeta(in *info) error {
	data, err := encodeInfo(in)
	if err != nil {
		return err
	}
	r := &bucketRef{path: [][]byte{bucketMeta}}
	if err := b.put(r, keySchema, fmt.Appendf(nil, "%d", SchemaVersion)); err != nil {
		return err
	}
	return b.put(r, keyInfo, data)
}

// hashFile returns the hex SHA-256 and size of a file.
func hashFile(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
