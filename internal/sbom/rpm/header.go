package rpm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	rpmdb "github.com/knqyf263/go-rpmdb/pkg"
)

// decoder turns one header blob into a go-rpmdb PackageInfo.
//
// go-rpmdb decodes headers only through RpmDB.ListPackages on a database file. Its own
// storage readers are not safe on untrusted files: they run in a goroutine of their own, where
// a panic on a malformed page cannot be recovered and takes the whole process down, some
// malformed pages make them loop forever, and they allocate whatever length a blob claims. So
// the blobs are read by this package (sqlite.go, ndb.go, bdb.go), and each is written into a
// minimal, well-formed ndb file holding that one blob, which go-rpmdb opens and decodes.
// One blob per file means a header go-rpmdb rejects is always the last entry it reads, so its
// reader goroutine always finishes; decoding runs on our goroutine, where a panic is
// recovered.
type decoder struct {
	dir  string
	path string
	f    *os.File
	buf  []byte
}

func newDecoder(tempDir string) (*decoder, error) {
	dir, err := os.MkdirTemp(tempDir, "moat-rpmdb-")
	if err != nil {
		return nil, fmt.Errorf("%w: creating directory: %w", errTemp, err)
	}
	p := filepath.Join(dir, "Packages.db")
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("%w: creating database: %w", errTemp, err)
	}
	return &decoder{dir: dir, path: p, f: f}, nil
}

// Close removes the temporary file.
func (d *decoder) Close() error {
	err := d.f.Close()
	if rerr := os.RemoveAll(d.dir); err == nil {
		err = rerr
	}
	return err
}

// decode returns the package in blob, and the files it installed as go-rpmdb joins them.
func (d *decoder) decode(blob []byte) (pkg *rpmdb.PackageInfo, files []string, err error) {
	defer func() {
		if r := recover(); r != nil {
			pkg, files, err = nil, nil, fmt.Errorf("malformed header: %v", r)
		}
	}()
	if err := checkHeader(blob); err != nil {
		return nil, nil, err
	}
	if err := d.write(blob); err != nil {
		return nil, nil, err
	}
	db, err := rpmdb.Open(d.path)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: opening %s: %w", errTemp, d.path, err)
	}
	defer db.Close()
	pkgs, err := db.ListPackages()
	if err != nil {
		return nil, nil, fmt.Errorf("decoding header: %w", err)
	}
	if len(pkgs) != 1 {
		return nil, nil, fmt.Errorf("decoding header: got %d packages from one blob", len(pkgs))
	}
	files, err = pkgs[0].InstalledFileNames()
	if err != nil {
		// The package is still worth reporting; only its file list is unusable.
		return pkgs[0], nil, fmt.Errorf("reading file list: %w", err)
	}
	return pkgs[0], files, nil
}

// write lays out an ndb file with one slot page, whose first slot points to blob at the start
// of the second page.
func (d *decoder) write(blob []byte) error {
	const blobOff = ndbPageSize
	n := blobOff + ndbBlobHeader + len(blob)
	if cap(d.buf) < n {
		d.buf = make([]byte, n)
	}
	b := d.buf[:n]
	clear(b[:blobOff+ndbBlobHeader])
	le := binary.LittleEndian
	le.PutUint32(b[0:], ndbHeaderMagic)
	le.PutUint32(b[4:], ndbVersion)
	le.PutUint32(b[12:], 1) // slot pages
	for off := 32; off < ndbPageSize; off += ndbSlotSize {
		le.PutUint32(b[off:], ndbSlotMagic)
	}
	blocks := (ndbBlobHeader + len(blob) + ndbBlockSize - 1) / ndbBlockSize
	le.PutUint32(b[32+4:], 1) // package index
	le.PutUint32(b[32+8:], blobOff/ndbBlockSize)
	le.PutUint32(b[32+12:], uint32(blocks))
	le.PutUint32(b[blobOff:], ndbBlobMagic)
	le.PutUint32(b[blobOff+4:], 1)
	le.PutUint32(b[blobOff+12:], uint32(len(blob)))
	copy(b[blobOff+ndbBlobHeader:], blob)
	if _, err := d.f.WriteAt(b, 0); err != nil {
		return fmt.Errorf("%w: writing %s: %w", errTemp, d.path, err)
	}
	if err := d.f.Truncate(int64(n)); err != nil {
		return fmt.Errorf("%w: writing %s: %w", errTemp, d.path, err)
	}
	return nil
}

// Header entry types (rpm's rpmTagType).
const (
	rpmBin         = 7
	rpmString      = 6
	rpmStringArray = 8
	rpmI18NString  = 9
	rpmMaxType     = 9
)

var (
	rpmTypeSize  = [rpmMaxType + 1]int64{0, 1, 1, 2, 4, 8, -1, 1, -1, -1}
	rpmTypeAlign = [rpmMaxType + 1]int64{1, 1, 1, 2, 4, 8, 1, 1, 1, 1}
)

// Region tags open the immutable part of a header; their data is a 16-byte trailer.
const (
	tagHeaderImage      = 61
	tagHeaderSignatures = 62
	tagHeaderImmutable  = 63
	tagFirst            = 100 // HEADER_I18NTABLE, the first tag of a package header
	maxIndexEntries     = 0xffff
)

// checkHeader does rpm's own sanity checks of a header blob (hdrblobInit, hdrblobVerifyInfo)
// before go-rpmdb sees it, because go-rpmdb sizes allocations from the index length before it
// checks it, and skips the check that entries do not overlap, which keeps its work linear in
// the size of the blob.
//
// A header is an index length il and data length dl (big-endian), il 16-byte entries (tag,
// type, offset into the data, count), and the data. Entries after the region tag must come in
// order of offset, aligned for their type, and hold data that ends before the next begins.
func checkHeader(b []byte) error {
	if len(b) < 8 {
		return errors.New("header too short")
	}
	be := binary.BigEndian
	il, dl := int64(int32(be.Uint32(b))), int64(int32(be.Uint32(b[4:])))
	if il < 1 || il > maxIndexEntries || dl < 0 {
		return fmt.Errorf("header with %d entries and %d bytes of data", il, dl)
	}
	dataStart := 8 + 16*il
	dataEnd := dataStart + dl
	if dataEnd > int64(len(b)) {
		return fmt.Errorf("header of %d entries and %d bytes of data does not fit in %d bytes", il, dl, len(b))
	}
	entry := func(i int64) (tag int64, typ uint32, off int64, count int64) {
		e := b[8+16*i:]
		return int64(int32(be.Uint32(e))), be.Uint32(e[4:]), int64(int32(be.Uint32(e[8:]))), int64(be.Uint32(e[12:]))
	}
	first := int64(0)
	if tag, typ, off, count := entry(0); tag == tagHeaderImage || tag == tagHeaderSignatures || tag == tagHeaderImmutable {
		if typ != rpmBin || count != 16 || off < 0 || off+16 > dl {
			return errors.New("invalid region tag")
		}
		first = 1
	}
	var end int64
	for i := first; i < il; i++ {
		tag, typ, off, count := entry(i)
		switch {
		case tag < tagFirst:
			return fmt.Errorf("entry %d has invalid tag %d", i, tag)
		case typ < 1 || typ > rpmMaxType:
			return fmt.Errorf("entry %d has invalid type %d", i, typ)
		case off < end:
			return fmt.Errorf("entry %d overlaps the one before", i)
		case off > dl || off&(rpmTypeAlign[typ]-1) != 0:
			return fmt.Errorf("entry %d has invalid offset %d", i, off)
		}
		n, err := dataLength(b[dataStart+off:dataEnd], typ, count)
		if err != nil {
			return fmt.Errorf("entry %d: %w", i, err)
		}
		end = off + n
	}
	return nil
}

// dataLength returns the bytes an entry's count values of type typ take at the start of data.
func dataLength(data []byte, typ uint32, count int64) (int64, error) {
	switch typ {
	case rpmString, rpmStringArray, rpmI18NString:
		if typ == rpmString && count != 1 {
			return 0, errors.New("string with a count other than one")
		}
		if count < 1 || count > int64(len(data)) {
			return 0, fmt.Errorf("%d strings cannot fit", count)
		}
		var n int64
		for ; count > 0; count-- {
			i := bytes.IndexByte(data[n:], 0)
			if i < 0 {
				return 0, errors.New("unterminated string")
			}
			n += int64(i) + 1
		}
		return n, nil
	}
	n := rpmTypeSize[typ] * count
	if n <= 0 || n > int64(len(data)) {
		return 0, fmt.Errorf("%d values of type %d do not fit", count, typ)
	}
	return n, nil
}
