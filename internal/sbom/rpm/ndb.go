package rpm

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// This file reads Packages.db, the "ndb" format rpm 4.16 and later use on SUSE. The file
// starts with a 32-byte header, followed by slot pages of 4096 bytes; the header takes the
// place of the first two slots. Each 16-byte slot names a package index and the offset and
// length, in 16-byte blocks, of that package's blob: a 16-byte blob header, the header blob,
// and a tail. All integers are little-endian.

const (
	ndbHeaderMagic = 'R' | 'p'<<8 | 'm'<<16 | 'P'<<24
	ndbSlotMagic   = 'S' | 'l'<<8 | 'o'<<16 | 't'<<24
	ndbBlobMagic   = 'B' | 'l'<<8 | 'b'<<16 | 'S'<<24
	ndbVersion     = 0
	ndbPageSize    = 4096
	ndbSlotSize    = 16
	ndbBlockSize   = 16
	ndbBlobHeader  = 16
	// ndbMaxSlotPages is rpm's own limit, 2048 pages of 256 slots.
	ndbMaxSlotPages = 2048
)

func isNDB(magic []byte) bool {
	return len(magic) >= 4 && binary.LittleEndian.Uint32(magic) == ndbHeaderMagic
}

// readNDB calls emit with every package blob, in slot order.
func readNDB(ctx context.Context, r io.ReaderAt, size int64, stats *readStats, emit func([]byte) error) error {
	hdr := make([]byte, 32)
	if _, err := r.ReadAt(hdr, 0); err != nil {
		return fmt.Errorf("reading ndb header: %w", err)
	}
	if binary.LittleEndian.Uint32(hdr) != ndbHeaderMagic || binary.LittleEndian.Uint32(hdr[4:]) != ndbVersion {
		return errors.New("not an ndb database of a known version")
	}
	npages := int64(binary.LittleEndian.Uint32(hdr[12:]))
	if npages < 1 || npages > ndbMaxSlotPages || npages*ndbPageSize > size {
		return fmt.Errorf("invalid ndb slot page count %d", npages)
	}
	slots := make([]byte, npages*ndbPageSize)
	if _, err := r.ReadAt(slots, 0); err != nil {
		return fmt.Errorf("reading ndb slots: %w", err)
	}
	budget := newBudget(size)
	for off := 32; off+ndbSlotSize <= len(slots); off += ndbSlotSize {
		if err := ctx.Err(); err != nil {
			return err
		}
		slot := slots[off : off+ndbSlotSize]
		if binary.LittleEndian.Uint32(slot) != ndbSlotMagic {
			stats.problem(fmt.Errorf("ndb slot at %d has a bad magic number", off))
			continue
		}
		pkg := binary.LittleEndian.Uint32(slot[4:])
		if pkg == 0 {
			continue // a free slot
		}
		blkOff := int64(binary.LittleEndian.Uint32(slot[8:])) * ndbBlockSize
		blkLen := int64(binary.LittleEndian.Uint32(slot[12:])) * ndbBlockSize
		blob, err := readNDBBlob(r, size, pkg, blkOff, blkLen, budget)
		if errors.Is(err, errBudget) {
			return err
		}
		if err != nil {
			stats.problem(fmt.Errorf("ndb package %d: %w", pkg, err))
			continue
		}
		if err := emit(blob); err != nil {
			return err
		}
	}
	return nil
}

func readNDBBlob(r io.ReaderAt, size int64, pkg uint32, off, length int64, budget *budget) ([]byte, error) {
	if off < ndbPageSize || length < ndbBlobHeader || off+length > size {
		return nil, fmt.Errorf("blob at %d of %d bytes out of range", off, length)
	}
	hdr := make([]byte, ndbBlobHeader)
	if _, err := r.ReadAt(hdr, off); err != nil {
		return nil, fmt.Errorf("reading blob header: %w", err)
	}
	if binary.LittleEndian.Uint32(hdr) != ndbBlobMagic {
		return nil, errors.New("bad blob magic number")
	}
	if binary.LittleEndian.Uint32(hdr[4:]) != pkg {
		return nil, errors.New("blob belongs to another package")
	}
	n := int64(binary.LittleEndian.Uint32(hdr[12:]))
	if n > length-ndbBlobHeader || n > maxBlob {
		return nil, fmt.Errorf("blob length %d exceeds its %d-byte block", n, length)
	}
	if err := budget.take(n); err != nil {
		return nil, err
	}
	blob := make([]byte, n)
	if _, err := r.ReadAt(blob, off+ndbBlobHeader); err != nil {
		return nil, fmt.Errorf("reading blob: %w", err)
	}
	return blob, nil
}
