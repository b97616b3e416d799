package db

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ossf/osv-schema/bindings/go/osvschema"

	"github.com/moatsec/moat/internal/vuln"
	"github.com/moatsec/moat/internal/vuln/osv"
)

// Limits on directory inputs.
const (
	// maxDirDepth is how deep a directory input is read.
	maxDirDepth = 8
	// maxKeyLen bounds an index key (ecosystem and package name); real ones are far shorter.
	maxKeyLen = 1024
)

// record is what an update keeps in memory about one stored advisory, to index it once the
// advisories of every input of its source are known.
type record struct {
	stage    int
	modified time.Time
	keys     []string // index keys, distinct
	ecos     []string // ecosystems, distinct
}

// stage is one input read into its own bucket of the new file, "stage:<i>/adv".
type stage struct {
	i        int
	in       Input
	adv      *bucketRef
	recs     map[string]*record
	source   string
	progress func(string, int)
	read     int

	withdrawn, skipped, warnings int
	examples                     []string
	newest                       time.Time

	// prefixes counts, per ecosystem name before any ':', the records affecting it;
	// affecting counts the records that affect any package.
	prefixes  map[string]int
	affecting int

	info  InputInfo
	asOf  time.Time
	mtime time.Time
}

func (st *stage) warn(where string, err error) {
	st.warnings++
	if len(st.examples) < maxExamples {
		st.examples = append(st.examples, where+": "+err.Error())
	}
}

func stageBucket(i int) []byte { return []byte("stage:" + strconv.Itoa(i)) }

// read reads one input into a staging bucket and finds its source.
func (b *builder) read(ctx context.Context, i int, in Input, progress func(string, int)) (*stage, error) {
	abs, err := filepath.Abs(in.Path)
	if err != nil {
		return nil, err
	}
	st := &stage{i: i, in: in, recs: map[string]*record{}, prefixes: map[string]int{}, progress: progress,
		adv: &bucketRef{path: [][]byte{stageBucket(i), bucketAdv}}}
	st.info.Origin = in.Origin
	if st.info.Origin == "" {
		st.info.Origin = abs
	}
	if _, err := b.bucket(st.adv); err != nil {
		return nil, err
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, err
	}
	st.mtime = fi.ModTime()
	var hint string
	switch {
	case fi.IsDir():
		hint = filepath.Base(abs)
		err = b.readDir(ctx, st, abs)
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("not a regular file or directory")
	case isZip(abs) || strings.EqualFold(filepath.Ext(abs), ".zip"):
		if filepath.Base(abs) == "all.zip" {
			hint = filepath.Base(filepath.Dir(abs))
		}
		err = b.readZip(ctx, st, abs, fi.Size())
	default:
		err = b.readFile(st, abs, fi.Size())
	}
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if st.source, err = st.findSource(hint); err != nil {
		return nil, err
	}
	st.asOf = in.AsOf
	if st.asOf.IsZero() {
		st.asOf = st.newest
	}
	if st.asOf.IsZero() {
		st.asOf = st.mtime
	}
	return st, nil
}

// isZip tells a zip archive from a JSON record by its first bytes.
func isZip(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	var magic [4]byte
	if _, err := io.ReadFull(f, magic[:]); err != nil {
		return false
	}
	return string(magic[:]) == "PK\x03\x04" || string(magic[:]) == "PK\x05\x06"
}

// findSource names the source of an input given no name: hint (the directory name of the
// OSV bucket's layout) when every record affects that ecosystem, otherwise the one ecosystem
// every record affects.
func (st *stage) findSource(hint string) (string, error) {
	if st.in.Source != "" {
		return st.in.Source, nil
	}
	if st.affecting == 0 {
		if hint != "" && checkSourceName(hint) == nil {
			return hint, nil
		}
		return "", errors.New("no record names an ecosystem to import it as: name the source")
	}
	var common []string
	for p, n := range st.prefixes {
		if n == st.affecting {
			common = append(common, p)
		}
	}
	slices.Sort(common)
	switch {
	case slices.Contains(common, hint):
		return hint, nil
	case len(common) == 1 && checkSourceName(common[0]) == nil:
		return common[0], nil
	}
	all := make([]string, 0, len(st.prefixes))
	for p := range st.prefixes {
		all = append(all, p)
	}
	slices.Sort(all)
	return "", fmt.Errorf("the records affect several ecosystems (%s): name the source to import them as", strings.Join(all, ", "))
}

func (b *builder) readZip(ctx context.Context, st *stage, path string, size int64) error {
	st.info.Size = size
	st.info.SHA256 = st.in.SHA256
	if st.info.SHA256 == "" {
		sum, n, err := hashFile(path)
		if err != nil {
			return err
		}
		if n != size {
			return fmt.Errorf("the file changed while it was read")
		}
		st.info.SHA256 = sum
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	stats, err := osv.ReadZip(ctx, f, size, func(name string, v *osvschema.Vulnerability) error {
		return b.add(st, name, v)
	})
	if err != nil {
		return err
	}
	st.skipped += stats.Skipped
	st.warnings += stats.Warnings
	for _, w := range stats.Examples {
		if len(st.examples) < maxExamples {
			st.examples = append(st.examples, w.String())
		}
	}
	return nil
}

// readDir reads the JSON records under root, to a bounded depth and number.
func (b *builder) readDir(ctx context.Context, st *stage, root string) error {
	if r, err := filepath.EvalSymlinks(root); err == nil {
		root = r
	}
	files, ignored := 0, 0
	var buf bytes.Buffer
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() {
			if rel != "." && strings.Count(rel, string(filepath.Separator)) >= maxDirDepth-1 {
				b.log.Info("not reading a directory deeper than the limit", "path", p, "limit", maxDirDepth)
				return fs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || !strings.EqualFold(filepath.Ext(p), ".json") {
			ignored++
			b.log.Debug("ignoring a file that is not a .json record", "path", p)
			return nil
		}
		if files++; files > osv.MaxEntries {
			return fmt.Errorf("more than %d files", osv.MaxEntries)
		}
		data, err := readLimited(p, &buf)
		if err != nil {
			st.skipped++
			st.warn(filepath.ToSlash(rel), err)
			return nil
		}
		st.info.Size += int64(len(data))
		v, err := osv.Parse(data)
		if err != nil {
			st.skipped++
			st.warn(filepath.ToSlash(rel), err)
			return nil
		}
		return b.add(st, filepath.ToSlash(rel), v)
	})
	if ignored > 0 {
		b.log.Info("ignored files that are not .json records", "dir", root, "files", ignored)
	}
	return err
}

// readLimited reads a record file into buf, refusing one larger than a record may be.
func readLimited(path string, buf *bytes.Buffer) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf.Reset()
	n, err := buf.ReadFrom(io.LimitReader(f, osv.MaxRecordSize+1))
	if err != nil {
		return nil, err
	}
	if n > osv.MaxRecordSize {
		return nil, fmt.Errorf("larger than the limit of %d bytes", osv.MaxRecordSize)
	}
	return buf.Bytes(), nil
}

// readFile reads one JSON record; a record that does not parse fails the input.
func (b *builder) readFile(st *stage, path string, size int64) error {
	var buf bytes.Buffer
	data, err := readLimited(path, &buf)
	if err != nil {
		return err
	}
	st.info.Size = size
	st.info.SHA256 = sha256Hex(data)
	v, err := osv.Parse(data)
	if err != nil {
		return err
	}
	return b.add(st, filepath.Base(path), v)
}

// add stores one record in the input's staging bucket.
func (b *builder) add(st *stage, name string, v *osvschema.Vulnerability) error {
	st.read++
	if st.progress != nil {
		st.progress(st.in.Path, st.read)
	}
	id := v.GetId()
	if err := checkID(id); err != nil {
		st.skipped++
		st.warn(name, err)
		return nil
	}
	// A withdrawn record is not stored, but still tells which ecosystems the input is about.
	prefixes := map[string]bool{}
	for _, eco := range osv.Ecosystems(v) {
		p, _, _ := strings.Cut(eco, ":")
		prefixes[p] = true
	}
	if len(prefixes) > 0 {
		st.affecting++
	}
	for p := range prefixes {
		st.prefixes[p]++
	}
	if osv.Withdrawn(v) {
		st.withdrawn++
		return nil
	}
	a := vuln.FromOSV(v, "")
	if prev := st.recs[id]; prev != nil {
		st.warn(name, fmt.Errorf("advisory %s appears more than once; keeping the one modified last", id))
		if !a.Modified.After(prev.modified) {
			return nil
		}
	}
	r := &record{stage: st.i, modified: a.Modified}
	for _, af := range a.Affected {
		key := vuln.IndexKey(af.Ecosystem, af.Name)
		if af.Ecosystem == "" || af.Name == "" || strings.ContainsRune(af.Ecosystem, 0) || len(key) > maxKeyLen {
			st.warn(name, fmt.Errorf("advisory %s: affected package %.100q in %.100q cannot be indexed; entry ignored", id, af.Name, af.Ecosystem))
			continue
		}
		if !slices.Contains(r.keys, key) {
			r.keys = append(r.keys, key)
		}
		if !slices.Contains(r.ecos, af.Ecosystem) {
			r.ecos = append(r.ecos, af.Ecosystem)
		}
	}
	if osv.KnownModified(v) && a.Modified.After(st.newest) {
		st.newest = a.Modified
	}
	if err := b.put(st.adv, []byte(id), encodeAdvisory(nil, a)); err != nil {
		return err
	}
	st.recs[id] = r
	return nil
}

// finish turns the staging buckets of a source's inputs into the source's buckets: the
// advisories (where inputs overlap, the copy modified last) and their index.
func (b *builder) finish(ctx context.Context, name string, sts []*stage) (SourceStatus, error) {
	s := SourceStatus{Name: name, ImportedAt: time.Now().UTC(), Ecosystems: map[string]int{}}
	win := map[string]*record{}
	for _, st := range sts {
		for id, r := range st.recs {
			if w := win[id]; w == nil || r.modified.After(w.modified) {
				win[id] = r
			}
		}
		s.Inputs = append(s.Inputs, st.info)
		s.Withdrawn += st.withdrawn
		s.Skipped += st.skipped
		s.Warnings += st.warnings
		for _, e := range st.examples {
			if len(s.Examples) < maxExamples {
				s.Examples = append(s.Examples, e)
			}
		}
		if st.newest.After(s.NewestModified) {
			s.NewestModified = st.newest
		}
		if st.asOf.After(s.AsOf) {
			s.AsOf = st.asOf
		}
	}
	s.Records = len(win)

	// The first input's advisories move as they are; the others' are copied where they win.
	// MoveBucket moves a bucket as its parent last stored it: commit the staged writes first.
	if err := b.commit(); err != nil {
		return s, err
	}
	src, err := b.tx.CreateBucket(sourceBucket(name))
	if err != nil {
		return s, err
	}
	if err := b.tx.MoveBucket(bucketAdv, b.tx.Bucket(stageBucket(sts[0].i)), src); err != nil {
		return s, fmt.Errorf("moving the advisories of %s: %w", sts[0].in.Path, err)
	}
	dst := &bucketRef{path: [][]byte{sourceBucket(name), bucketAdv}}
	for _, st := range sts[1:] {
		if err := b.copyWinners(ctx, st, win, dst); err != nil {
			return s, err
		}
	}
	for _, st := range sts {
		if err := b.tx.DeleteBucket(stageBucket(st.i)); err != nil {
			return s, err
		}
	}

	idx := map[string][]string{}
	for id, r := range win {
		for _, k := range r.keys {
			idx[k] = append(idx[k], id)
		}
		for _, e := range r.ecos {
			s.Ecosystems[e]++
		}
	}
	keys := make([]string, 0, len(idx))
	for k := range idx {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	ref := &bucketRef{path: [][]byte{sourceBucket(name), bucketIdx}}
	if _, err := b.bucket(ref); err != nil {
		return s, err
	}
	for _, k := range keys {
		ids := idx[k]
		slices.Sort(ids)
		if err := b.put(ref, []byte(k), encodeIDs(ids)); err != nil {
			return s, err
		}
	}
	return s, ctx.Err()
}

// copyWinners copies the advisories of a staging bucket that win over other inputs' copies.
func (b *builder) copyWinners(ctx context.Context, st *stage, win map[string]*record, dst *bucketRef) error {
	var ids []string
	for id := range st.recs {
		if win[id].stage == st.i {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	for n, id := range ids {
		if n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		from, err := b.bucket(st.adv)
		if err != nil {
			return err
		}
		// Put keeps the slice until the next commit, when the staging page may be reused.
		v := bytes.Clone(from.Get([]byte(id)))
		if err := b.put(dst, []byte(id), v); err != nil {
			return err
		}
	}
	return nil
}
