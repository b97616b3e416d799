package rpm

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// This file reads the header blobs out of rpmdb.sqlite, the SQLite database of rpm 4.16 and
// later: the rows of the table "Packages" (hnum INTEGER PRIMARY KEY, blob BLOB). It walks the
// table's b-tree as https://www.sqlite.org/fileformat2.html describes it, reading the file
// only through ReaderAt and visiting every page at most once. Indexes, free pages and the
// write-ahead log (a separate file) are of no interest; rpm checkpoints the log when it closes
// the database.

var sqliteMagic = []byte("SQLite format 3\x00")

// Page types of the b-tree pages we read.
const (
	sqliteInteriorTable = 0x05
	sqliteLeafTable     = 0x0d
)

type sqliteFile struct {
	r        io.ReaderAt
	pageSize int64
	usable   int64 // page size less the reserved bytes at the end of every page
	pages    uint32
	visited  []bool
	budget   *budget
	stats    *readStats
}

// readSQLite calls emit with the blob of every row of the Packages table, in rowid order.
func readSQLite(ctx context.Context, r io.ReaderAt, size int64, stats *readStats, emit func([]byte) error) error {
	hdr := make([]byte, 100)
	if _, err := r.ReadAt(hdr, 0); err != nil {
		return fmt.Errorf("reading SQLite header: %w", err)
	}
	pageSize := int64(binary.BigEndian.Uint16(hdr[16:]))
	if pageSize == 1 {
		pageSize = 65536
	}
	if pageSize < 512 || pageSize > 65536 || pageSize&(pageSize-1) != 0 {
		return fmt.Errorf("invalid SQLite page size %d", pageSize)
	}
	usable := pageSize - int64(hdr[20])
	if usable < 480 {
		return fmt.Errorf("invalid SQLite reserved space %d", hdr[20])
	}
	pages := size / pageSize
	if pages > 1<<31 {
		pages = 1 << 31
	}
	db := &sqliteFile{r: r, pageSize: pageSize, usable: usable, pages: uint32(pages),
		visited: make([]bool, pages+1), budget: newBudget(size)}

	// Problems in the schema are only worth reporting when they hide the Packages table.
	db.stats = &readStats{}
	root := uint32(0)
	err := db.walk(ctx, 1, func(payload []byte) error {
		cols, err := sqliteRecord(payload)
		if err != nil || len(cols) < 4 {
			return nil
		}
		if string(cols[0].text()) == "table" && string(cols[1].text()) == "Packages" {
			if n, ok := cols[3].int(); ok && n > 1 && n <= int64(db.pages) {
				root = uint32(n)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if root == 0 {
		if db.stats.first != nil {
			return fmt.Errorf("reading SQLite schema: %w", db.stats.first)
		}
		return errors.New("no Packages table in SQLite database")
	}
	db.stats = stats
	return db.walk(ctx, root, func(payload []byte) error {
		cols, err := sqliteRecord(payload)
		if err != nil {
			stats.problem(err)
			return nil
		}
		// hnum is the rowid and stored as NULL; the header is the first blob column.
		for _, c := range cols {
			if c.kind == sqliteBlob {
				return emit(c.data)
			}
		}
		stats.problem(errors.New("row without a blob"))
		return nil
	})
}

// page reads page n (numbered from 1).
func (db *sqliteFile) page(n uint32) ([]byte, error) {
	if n < 1 || n > db.pages {
		return nil, fmt.Errorf("page %d out of range", n)
	}
	buf := make([]byte, db.pageSize)
	if _, err := db.r.ReadAt(buf, int64(n-1)*db.pageSize); err != nil {
		return nil, fmt.Errorf("reading page %d: %w", n, err)
	}
	return buf[:db.usable], nil
}

// walk visits the table b-tree rooted at page root and calls fn with every row's payload.
// Corrupt pages and cells are recorded in db.stats and skipped; walk fails only when fn does,
// the context ends, or the file claims more payload than it can hold.
func (db *sqliteFile) walk(ctx context.Context, root uint32, fn func([]byte) error) error {
	stack := []uint32{root}
	for len(stack) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		children, err := db.visit(n, fn)
		if errors.Is(err, errBudget) || errors.Is(err, errStop) {
			return err
		}
		if err != nil {
			db.stats.problem(fmt.Errorf("SQLite page %d: %w", n, err))
		}
		// Push in reverse so that children are visited left to right.
		for i := len(children) - 1; i >= 0; i-- {
			stack = append(stack, children[i])
		}
	}
	return nil
}

// visit reads b-tree page n: an interior page returns its children, a leaf page hands its
// rows to fn.
func (db *sqliteFile) visit(n uint32, fn func([]byte) error) ([]uint32, error) {
	if n < 1 || n > db.pages {
		return nil, errors.New("out of range")
	}
	if db.visited[n] {
		return nil, errors.New("visited twice")
	}
	db.visited[n] = true
	pg, err := db.page(n)
	if err != nil {
		return nil, err
	}
	hdr := 0
	if n == 1 {
		hdr = 100
	}
	if len(pg) < hdr+12 {
		return nil, errors.New("too small")
	}
	cells := int(binary.BigEndian.Uint16(pg[hdr+3:]))
	switch pg[hdr] {
	case sqliteInteriorTable:
		ptrs := hdr + 12
		if ptrs+2*cells > len(pg) {
			return nil, fmt.Errorf("%d cells do not fit", cells)
		}
		children := make([]uint32, 0, cells+1)
		for i := 0; i < cells; i++ {
			off := int(binary.BigEndian.Uint16(pg[ptrs+2*i:]))
			if off+4 > len(pg) {
				return children, fmt.Errorf("cell %d out of range", i)
			}
			children = append(children, binary.BigEndian.Uint32(pg[off:]))
		}
		return append(children, binary.BigEndian.Uint32(pg[hdr+8:])), nil
	case sqliteLeafTable:
		ptrs := hdr + 8
		if ptrs+2*cells > len(pg) {
			return nil, fmt.Errorf("%d cells do not fit", cells)
		}
		for i := 0; i < cells; i++ {
			off := int(binary.BigEndian.Uint16(pg[ptrs+2*i:]))
			payload, err := db.leafPayload(pg, off)
			if errors.Is(err, errBudget) {
				return nil, err
			}
			if err != nil {
				db.stats.problem(fmt.Errorf("SQLite page %d cell %d: %w", n, i, err))
				continue
			}
			if err := fn(payload); err != nil {
				return nil, fmt.Errorf("%w: %w", errStop, err)
			}
		}
		return nil, nil
	}
	return nil, fmt.Errorf("type %#x is not a table b-tree page", pg[hdr])
}

// leafPayload assembles the payload of the table leaf cell at off, following its overflow
// pages.
func (db *sqliteFile) leafPayload(pg []byte, off int) ([]byte, error) {
	if off >= len(pg) {
		return nil, errors.New("cell out of range")
	}
	total, n := sqliteVarint(pg[off:])
	if n == 0 {
		return nil, errors.New("bad payload length")
	}
	off += n
	if _, n = sqliteVarint(pg[off:]); n == 0 { // rowid
		return nil, errors.New("bad rowid")
	}
	off += n
	if total > maxBlob {
		return nil, fmt.Errorf("payload of %d bytes is too large", total)
	}
	if err := db.budget.take(int64(total)); err != nil {
		return nil, err
	}
	p := int64(total)
	u := db.usable
	local := p
	if x := u - 35; p > x {
		m := (u-12)*32/255 - 23
		k := m + (p-m)%(u-4)
		if k <= x {
			local = k
		} else {
			local = m
		}
	}
	if int64(off)+local > int64(len(pg)) {
		return nil, errors.New("payload out of range")
	}
	out := make([]byte, 0, p)
	out = append(out, pg[off:int64(off)+local]...)
	if local == p {
		return out, nil
	}
	if int64(off)+local+4 > int64(len(pg)) {
		return nil, errors.New("overflow pointer out of range")
	}
	next := binary.BigEndian.Uint32(pg[int64(off)+local:])
	// Every overflow page carries u-4 bytes, so the chain length is bounded by the payload.
	for int64(len(out)) < p {
		if next == 0 {
			return nil, errors.New("overflow chain ends early")
		}
		ov, err := db.page(next)
		if err != nil {
			return nil, err
		}
		chunk := ov[4:]
		if rest := p - int64(len(out)); int64(len(chunk)) > rest {
			chunk = chunk[:rest]
		}
		out = append(out, chunk...)
		next = binary.BigEndian.Uint32(ov)
	}
	return out, nil
}

// sqliteVarint decodes a SQLite variable-length integer; n is 0 when b is too short.
func sqliteVarint(b []byte) (v uint64, n int) {
	for i := 0; i < 9; i++ {
		if i >= len(b) {
			return 0, 0
		}
		if i == 8 {
			return v<<8 | uint64(b[i]), 9
		}
		v = v<<7 | uint64(b[i]&0x7f)
		if b[i] < 0x80 {
			return v, i + 1
		}
	}
	return 0, 0
}

type sqliteKind int

const (
	sqliteNull sqliteKind = iota
	sqliteInt
	sqliteFloat
	sqliteBlob
	sqliteText
)

type sqliteValue struct {
	kind sqliteKind
	data []byte
}

func (v sqliteValue) text() []byte {
	if v.kind != sqliteText {
		return nil
	}
	return v.data
}

func (v sqliteValue) int() (int64, bool) {
	if v.kind != sqliteInt {
		return 0, false
	}
	if len(v.data) == 0 {
		return 0, true // serial types 8 and 9 carry no bytes; only used for 0 and 1.
	}
	n := int64(int8(v.data[0]))
	for _, b := range v.data[1:] {
		n = n<<8 | int64(b)
	}
	return n, true
}

// maxColumns bounds the columns of a record; the tables we read have five.
const maxColumns = 64

// sqliteRecord splits a record into its columns.
func sqliteRecord(p []byte) ([]sqliteValue, error) {
	hlen, n := sqliteVarint(p)
	if n == 0 || hlen > uint64(len(p)) || hlen < uint64(n) {
		return nil, errors.New("bad record header")
	}
	types := p[n:hlen]
	body := p[hlen:]
	var cols []sqliteValue
	for len(types) > 0 {
		if len(cols) == maxColumns {
			return nil, errors.New("too many columns")
		}
		t, n := sqliteVarint(types)
		if n == 0 {
			return nil, errors.New("bad serial type")
		}
		types = types[n:]
		var size uint64
		kind := sqliteInt
		switch {
		case t == 0:
			kind = sqliteNull
		case t <= 4:
			size = t
		case t == 5:
			size = 6
		case t == 6:
			size = 8
		case t == 7:
			kind, size = sqliteFloat, 8
		case t == 8 || t == 9:
			// The constants 0 and 1.
		case t == 10 || t == 11:
			return nil, errors.New("reserved serial type")
		case t%2 == 0:
			kind, size = sqliteBlob, (t-12)/2
		default:
			kind, size = sqliteText, (t-13)/2
		}
		if size > uint64(len(body)) {
			return nil, errors.New("column out of range")
		}
		v := sqliteValue{kind: kind, data: body[:size]}
		if t == 9 {
			v.data = []byte{1}
		}
		cols = append(cols, v)
		body = body[size:]
	}
	return cols, nil
}
