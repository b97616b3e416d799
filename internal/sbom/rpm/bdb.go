package rpm

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// This file reads Packages, the Berkeley DB hash database of rpm before 4.16 (RHEL and
// CentOS up to 8, Amazon Linux 2, SLES 12 and 15 SP2). Page 0 is the hash metadata; hash
// pages hold an index of key/data items, and every package header is a data item stored off
// the page, in a chain of overflow pages. Integers are in the byte order of the machine that
// wrote the file, which the metadata's magic number tells.

const (
	bdbHashMagic   = 0x061561
	bdbPageHeader  = 26 // lsn(8) pgno(4) prev(4) next(4) entries(2) hf_offset(2) level(1) type(1)
	bdbMetaPage    = 8  // P_HASHMETA
	bdbHashPage    = 13 // P_HASH
	bdbHashOld     = 2  // P_HASH_UNSORTED, written by the Berkeley DB of RHEL 5
	bdbOverflow    = 7  // P_OVERFLOW
	bdbKeyData     = 1  // H_KEYDATA: an item stored on the page
	bdbOffPage     = 3  // H_OFFPAGE: an item stored in overflow pages
	bdbOffPageSize = 12 // type(1) unused(3) pgno(4) tlen(4)
)

// bdbOrder returns the byte order of a Berkeley DB hash database from its metadata page, or
// nil when the bytes are not one.
func bdbOrder(meta []byte) binary.ByteOrder {
	if len(meta) < 26 || meta[25] != bdbMetaPage {
		return nil
	}
	switch {
	case binary.LittleEndian.Uint32(meta[12:]) == bdbHashMagic:
		return binary.LittleEndian
	case binary.BigEndian.Uint32(meta[12:]) == bdbHashMagic:
		return binary.BigEndian
	}
	return nil
}

type bdbFile struct {
	r        io.ReaderAt
	order    binary.ByteOrder
	pageSize int64
	pages    uint32
	budget   *budget
}

// readBDB calls emit with every header blob, in page order.
func readBDB(ctx context.Context, r io.ReaderAt, size int64, stats *readStats, emit func([]byte) error) error {
	meta := make([]byte, 512)
	if _, err := r.ReadAt(meta, 0); err != nil {
		return fmt.Errorf("reading Berkeley DB metadata: %w", err)
	}
	order := bdbOrder(meta)
	if order == nil {
		return errors.New("not a Berkeley DB hash database")
	}
	if meta[24] != 0 {
		return errors.New("encrypted Berkeley DB databases are not supported")
	}
	pageSize := int64(order.Uint32(meta[20:]))
	if pageSize < 512 || pageSize > 65536 || pageSize&(pageSize-1) != 0 {
		return fmt.Errorf("invalid Berkeley DB page size %d", pageSize)
	}
	pages := int64(order.Uint32(meta[32:])) + 1 // last page number
	if avail := size / pageSize; pages > avail {
		// A truncated file: read what is there.
		stats.problem(fmt.Errorf("berkeley DB has %d of its %d pages", avail, pages))
		pages = avail
	}
	db := &bdbFile{r: r, order: order, pageSize: pageSize, pages: uint32(pages), budget: newBudget(size)}
	buf := make([]byte, pageSize)
	for n := uint32(1); n < db.pages; n++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		if _, err := r.ReadAt(buf, int64(n)*pageSize); err != nil {
			return fmt.Errorf("reading Berkeley DB page %d: %w", n, err)
		}
		if t := buf[25]; t != bdbHashPage && t != bdbHashOld {
			continue
		}
		if err := db.hashPage(n, buf, stats, emit); err != nil {
			return err
		}
	}
	return nil
}

// hashPage emits the data items of one hash page. Items come in key/data pairs; keys are
// package numbers and are not needed.
func (db *bdbFile) hashPage(n uint32, pg []byte, stats *readStats, emit func([]byte) error) error {
	entries := int(db.order.Uint16(pg[20:]))
	if bdbPageHeader+2*entries > len(pg) {
		stats.problem(fmt.Errorf("berkeley DB page %d: %d entries do not fit", n, entries))
		return nil
	}
	for i := 1; i < entries; i += 2 {
		off := int(db.order.Uint16(pg[bdbPageHeader+2*i:]))
		// Items are packed from the end of the page down: item i ends where item i-1 starts.
		end := int(db.order.Uint16(pg[bdbPageHeader+2*(i-1):]))
		if off < bdbPageHeader+2*entries || off >= len(pg) || end > len(pg) {
			stats.problem(fmt.Errorf("berkeley DB page %d item %d out of range", n, i))
			continue
		}
		var blob []byte
		var err error
		switch pg[off] {
		case bdbOffPage:
			blob, err = db.offPage(pg, off)
		case bdbKeyData:
			// A small item on the page. The record under key 0 holds rpm's next package
			// number in four bytes; no header is that small.
			if end <= off+1 || end-off-1 < 16 {
				continue
			}
			blob = append([]byte(nil), pg[off+1:end]...)
			err = db.budget.take(int64(len(blob)))
		default:
			continue // duplicates are not used by rpm
		}
		if errors.Is(err, errBudget) {
			return err
		}
		if err != nil {
			stats.problem(fmt.Errorf("berkeley DB page %d item %d: %w", n, i, err))
			continue
		}
		if err := emit(blob); err != nil {
			return err
		}
	}
	return nil
}

// offPage reads the item whose overflow chain the H_OFFPAGE entry at off points to.
func (db *bdbFile) offPage(pg []byte, off int) ([]byte, error) {
	if off+bdbOffPageSize > len(pg) {
		return nil, errors.New("off-page entry out of range")
	}
	next := db.order.Uint32(pg[off+4:])
	total := int64(db.order.Uint32(pg[off+8:]))
	if total > maxBlob {
		return nil, fmt.Errorf("item of %d bytes is too large", total)
	}
	if err := db.budget.take(total); err != nil {
		return nil, err
	}
	out := make([]byte, 0, total)
	buf := make([]byte, db.pageSize)
	// Every page adds at least one byte, so the chain is at most total pages long.
	for int64(len(out)) < total {
		if next == 0 || next >= db.pages {
			return nil, fmt.Errorf("overflow page %d out of range", next)
		}
		if _, err := db.r.ReadAt(buf, int64(next)*db.pageSize); err != nil {
			return nil, fmt.Errorf("reading overflow page %d: %w", next, err)
		}
		if buf[25] != bdbOverflow {
			return nil, fmt.Errorf("page %d is not an overflow page", next)
		}
		// On overflow pages hf_offset is the number of bytes the page holds.
		n := int64(db.order.Uint16(buf[22:]))
		if n == 0 || bdbPageHeader+n > db.pageSize {
			return nil, fmt.Errorf("overflow page %d holds an invalid %d bytes", next, n)
		}
		if rest := total - int64(len(out)); n > rest {
			n = rest
		}
		out = append(out, buf[bdbPageHeader:bdbPageHeader+n]...)
		next = db.order.Uint32(buf[16:])
	}
	return out, nil
}
