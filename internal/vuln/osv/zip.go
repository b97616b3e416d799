package osv

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"runtime"
	"strings"
	"sync"

	"github.com/ossf/osv-schema/bindings/go/osvschema"
)

// Limits on the archives ReadZip accepts. The OSV exports are far inside them: the largest,
// Debian's, holds tens of thousands of records, each compressed a few times to one.
const (
	// MaxEntries is the most entries (files and directories) an archive may hold.
	MaxEntries = 1 << 20
	// MaxRatio is the most an entry larger than ratioFloor may grow when decompressed.
	MaxRatio = 100
	// ratioFloor is the size below which MaxRatio is not applied: small entries are harmless
	// whatever their ratio.
	ratioFloor = 64 << 10
	// MaxWarningExamples is how many warnings Stats keeps in full.
	MaxWarningExamples = 10
)

// ErrInvalidArchive is wrapped by ReadZip errors about the archive itself: not a zip, corrupt,
// truncated, beyond the limits, or holding something other than JSON records.
var ErrInvalidArchive = errors.New("invalid OSV archive")

// Stats counts what ReadZip read.
type Stats struct {
	// Records is the number of JSON entries in the archive.
	Records int
	// Skipped is the number of records that failed Parse and were not given to fn.
	Skipped int
	// Withdrawn is the number of records given to fn that are withdrawn.
	Withdrawn int
	// GitRanges is the number of records given to fn with a GIT range (see HasGitRanges).
	GitRanges int
	// UnknownModified is the number of records given to fn whose modified time is the zero
	// time (see KnownModified).
	UnknownModified int
	// Warnings is the number of problems found in records: one per skipped record and one
	// per affected entry that Parse dropped.
	Warnings int
	// Examples holds the first MaxWarningExamples warnings, in archive order.
	Examples []Warning
}

// Warning is a problem with one record of an archive.
type Warning struct {
	// Name is the entry's name in the archive.
	Name string
	// Err says what was wrong; for a skipped record it wraps ErrInvalidRecord.
	Err error
}

func (w Warning) String() string { return w.Name + ": " + w.Err.Error() }

func (s *Stats) warn(name string, err error) {
	s.Warnings++
	if len(s.Examples) < MaxWarningExamples {
		s.Examples = append(s.Examples, Warning{Name: name, Err: err})
	}
}

// ReadZip reads an OSV export, the zip archive of r (of size bytes), and calls fn with each
// record that parses, in the order of the archive's entries. Withdrawn records are given to fn
// too, so that an importer can remove them.
//
// The archive must be a sound zip within the limits above and hold only ".json" files, at the
// top or in directories; otherwise ReadZip fails with ErrInvalidArchive, having perhaps called
// fn for the records before the fault. A record that fails Parse is skipped and counted in
// Stats. An error from fn stops the reading and is returned, wrapped with the entry's name.
//
// Records are decompressed and parsed on all cores; fn is called from one goroutine at a time.
// r must allow parallel ReadAt calls, as io.ReaderAt asks and *os.File does.
func ReadZip(ctx context.Context, r io.ReaderAt, size int64, fn func(name string, v *osvschema.Vulnerability) error) (Stats, error) {
	var st Stats
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return st, fmt.Errorf("reading OSV archive: %w: %w", ErrInvalidArchive, err)
	}
	if len(zr.File) > MaxEntries {
		return st, fmt.Errorf("reading OSV archive: %w: %d entries, more than the limit of %d", ErrInvalidArchive, len(zr.File), MaxEntries)
	}
	// Check every entry's header before reading any, so that an archive that is not an OSV
	// export is refused before fn sees a record of it.
	files := make([]*zip.File, 0, len(zr.File))
	for _, f := range zr.File {
		if strings.HasSuffix(f.Name, "/") && f.UncompressedSize64 == 0 {
			continue // a directory
		}
		if err := checkEntry(f); err != nil {
			return st, fmt.Errorf("reading OSV archive: %w: %w", ErrInvalidArchive, err)
		}
		files = append(files, f)
	}

	// On return, cancel stops the producer and so the workers; then wait for them all.
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	type result struct {
		v        *osvschema.Vulnerability
		warnings []error
		parseErr error // the record is skipped
		zipErr   error // the archive is corrupt
	}
	// Workers take entries in archive order; pending holds one channel per entry in that same
	// order, so the loop below hands records to fn in order while at most cap(pending) entries
	// are held in memory.
	workers := runtime.GOMAXPROCS(0)
	type job struct {
		f   *zip.File
		out chan<- result
	}
	jobs := make(chan job)
	pending := make(chan chan result, 4*workers)
	for range workers {
		wg.Go(func() {
			var buf bytes.Buffer
			for j := range jobs {
				var res result
				data, err := readEntry(j.f, &buf)
				if err != nil {
					res.zipErr = err
				} else {
					res.v, res.warnings, res.parseErr = parse(data)
				}
				j.out <- res
			}
		})
	}
	wg.Go(func() {
		defer close(pending)
		defer close(jobs)
		for _, f := range files {
			out := make(chan result, 1)
			select {
			case jobs <- job{f: f, out: out}:
			case <-ctx.Done():
				return
			}
			select {
			case pending <- out:
			case <-ctx.Done():
				return
			}
		}
	})

	i := 0
	for out := range pending {
		if err := ctx.Err(); err != nil {
			return st, fmt.Errorf("reading OSV archive: %w", err)
		}
		f := files[i]
		i++
		var res result
		select {
		case res = <-out:
		case <-ctx.Done():
			return st, fmt.Errorf("reading OSV archive: %w", ctx.Err())
		}
		if res.zipErr != nil {
			return st, fmt.Errorf("reading OSV archive: %w: entry %s: %w", ErrInvalidArchive, quote(f.Name), res.zipErr)
		}
		st.Records++
		for _, w := range res.warnings {
			st.warn(f.Name, w)
		}
		if res.parseErr != nil {
			st.Skipped++
			st.warn(f.Name, res.parseErr)
			continue
		}
		if Withdrawn(res.v) {
			st.Withdrawn++
		}
		if HasGitRanges(res.v) {
			st.GitRanges++
		}
		if !KnownModified(res.v) {
			st.UnknownModified++
		}
		if err := fn(f.Name, res.v); err != nil {
			return st, fmt.Errorf("handling OSV record %s: %w", quote(f.Name), err)
		}
	}
	if err := ctx.Err(); err != nil {
		return st, fmt.Errorf("reading OSV archive: %w", err)
	}
	return st, nil
}

// checkEntry checks what an entry's header claims; readEntry checks that the data keeps to it.
func checkEntry(f *zip.File) error {
	if f.Mode().Type() != 0 || path.Ext(f.Name) != ".json" {
		return fmt.Errorf("entry %s is not a .json file", quote(f.Name))
	}
	if f.UncompressedSize64 > MaxRecordSize {
		return fmt.Errorf("entry %s: %d bytes uncompressed, more than the limit of %d", quote(f.Name), f.UncompressedSize64, MaxRecordSize)
	}
	if f.UncompressedSize64 > ratioFloor && f.UncompressedSize64/MaxRatio > f.CompressedSize64 {
		return fmt.Errorf("entry %s: %d bytes compressed to %d, a ratio beyond the limit of %d", quote(f.Name), f.UncompressedSize64, f.CompressedSize64, MaxRatio)
	}
	return nil
}

// readEntry returns the entry's data, reading into buf, which it reuses. archive/zip fails the
// read if the data runs past the size in the header or its checksum is wrong; the limit guards
// against a decompressor that would not stop.
func readEntry(f *zip.File, buf *bytes.Buffer) ([]byte, error) {
	rc, err := f.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	buf.Reset()
	n, err := buf.ReadFrom(io.LimitReader(rc, MaxRecordSize+1))
	if err != nil {
		return nil, err
	}
	if n > MaxRecordSize {
		return nil, fmt.Errorf("more than %d bytes uncompressed", MaxRecordSize)
	}
	return buf.Bytes(), nil
}
