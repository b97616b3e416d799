package db

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"io"
)

// checkPages walks the bbolt page tree of the file r (size bytes long) from the meta page bbolt
// would use, with bounds-checked reads of its own, and returns an error wrapping ErrCorrupt for
// anything bbolt could not read safely: a page or element outside the file, a page reached
// twice (bbolt descends without a visited set, so a cycle would never end), an unknown page
// type, an empty branch, unsorted keys, or a malformed bucket header. bbolt trusts the file it
// maps; this is what lets moat open one that came from elsewhere.
//
// The layout it reads is bbolt's on-disk format, version 2 (go.etcd.io/bbolt/internal/common):
// a 16-byte page header (id, flags, count, overflow), then 16-byte element headers whose key
// and value offsets are relative to the element header itself.
func checkPages(r io.ReaderAt, size int64) error {
	if size < minFileSize {
		return corruptf("%d bytes, too small to be a database", size)
	}
	var first [pageHeaderSize + metaSize]byte
	if _, err := r.ReadAt(first[:], 0); err != nil {
		return corruptf("reading the first meta page: %v", err)
	}
	m0, err := parseMeta(first[pageHeaderSize:])
	if err != nil {
		return corruptf("meta page 0: %v", err)
	}
	ps := int64(m0.pageSize)
	if ps < 1024 || ps > 1<<16 || ps&(ps-1) != 0 {
		return corruptf("meta page 0: page size %d", ps)
	}
	if size < 2*ps {
		return corruptf("%d bytes, shorter than its two meta pages", size)
	}
	var second [pageHeaderSize + metaSize]byte
	if _, err := r.ReadAt(second[:], ps); err != nil {
		return corruptf("reading the second meta page: %v", err)
	}
	m1, err := parseMeta(second[pageHeaderSize:])
	if err != nil {
		return corruptf("meta page 1: %v", err)
	}
	if m1.pageSize != m0.pageSize {
		return corruptf("the meta pages disagree on the page size (%d, %d)", m0.pageSize, m1.pageSize)
	}
	// bbolt reads the tree of the meta page with the higher transaction ID; both are valid here.
	m := m0
	if m1.txid > m0.txid {
		m = m1
	}
	pages := uint64(size / ps)
	if m.pgid > pages || m.pgid < 3 {
		return corruptf("the file is truncated: its meta page counts %d pages, it holds %d", m.pgid, pages)
	}
	c := pageChecker{r: r, pageSize: ps, pages: m.pgid, seen: make([]uint64, (m.pgid+63)/64)}
	_ = c.mark(0, 2) // the meta pages
	if m.freelist != noFreelist {
		if err := c.checkFreelist(m.freelist); err != nil {
			return err
		}
	}
	return c.walk(m.root)
}

const (
	pageHeaderSize = 16
	elementSize    = 16
	metaSize       = 64
	bucketHeader   = 16
	metaMagic      = 0xED0CDAED
	metaVersion    = 2
	noFreelist     = ^uint64(0)
	// maxDepth bounds how deep the tree of one bucket and the nesting of buckets may go: a
	// real database is a few levels deep; bbolt recurses on both.
	maxDepth = 64

	flagBranch   = 0x01
	flagLeaf     = 0x02
	flagFreelist = 0x10
	leafBucket   = 0x01
)

type meta struct {
	pageSize uint32
	root     uint64
	freelist uint64
	pgid     uint64
	txid     uint64
}

func parseMeta(b []byte) (meta, error) {
	le := binary.LittleEndian
	if le.Uint32(b[0:]) != metaMagic {
		return meta{}, fmt.Errorf("not a bbolt file (magic %#x)", le.Uint32(b[0:]))
	}
	if v := le.Uint32(b[4:]); v != metaVersion {
		return meta{}, fmt.Errorf("bbolt format version %d, not %d", v, metaVersion)
	}
	h := fnv.New64a()
	h.Write(b[:56])
	if h.Sum64() != le.Uint64(b[56:]) {
		return meta{}, fmt.Errorf("checksum mismatch")
	}
	return meta{pageSize: le.Uint32(b[8:]), root: le.Uint64(b[16:]), freelist: le.Uint64(b[32:]),
		pgid: le.Uint64(b[40:]), txid: le.Uint64(b[48:])}, nil
}

type pageChecker struct {
	r        io.ReaderAt
	pageSize int64
	pages    uint64   // the high-water mark: pages at or past it are not in use
	seen     []uint64 // a bit per page already reached
}

// mark records pages [id, id+n) as reached, failing for one reached before.
func (c *pageChecker) mark(id, n uint64) error {
	for p := id; p < id+n; p++ {
		w, bit := p/64, uint64(1)<<(p%64)
		if c.seen[w]&bit != 0 {
			return corruptf("page %d is reached twice", p)
		}
		c.seen[w] |= bit
	}
	return nil
}

// read returns page id with its overflow pages, after checking that it lies in the file.
func (c *pageChecker) read(id uint64, what string) ([]byte, error) {
	if id < 2 || id >= c.pages {
		return nil, corruptf("%s: page %d is outside the file's %d pages", what, id, c.pages)
	}
	var h [pageHeaderSize]byte
	if _, err := c.r.ReadAt(h[:], int64(id)*c.pageSize); err != nil {
		return nil, corruptf("%s: reading page %d: %v", what, id, err)
	}
	le := binary.LittleEndian
	if got := le.Uint64(h[0:]); got != id {
		return nil, corruptf("%s: page %d says it is page %d", what, id, got)
	}
	n := uint64(le.Uint32(h[12:])) + 1
	if n > c.pages-id {
		return nil, corruptf("%s: page %d runs past the file's %d pages", what, id, c.pages)
	}
	if err := c.mark(id, n); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	b := make([]byte, int64(n)*c.pageSize)
	if _, err := c.r.ReadAt(b, int64(id)*c.pageSize); err != nil {
		return nil, corruptf("%s: reading page %d: %v", what, id, err)
	}
	return b, nil
}

func (c *pageChecker) checkFreelist(id uint64) error {
	p, err := c.read(id, "freelist")
	if err != nil {
		return err
	}
	le := binary.LittleEndian
	if le.Uint16(p[8:])&flagFreelist == 0 {
		return corruptf("page %d is named as the freelist but is not one", id)
	}
	n, at := uint64(le.Uint16(p[10:])), uint64(pageHeaderSize)
	if n == 0xFFFF {
		if len(p) < pageHeaderSize+8 {
			return corruptf("freelist page %d is truncated", id)
		}
		n, at = le.Uint64(p[pageHeaderSize:]), at+8
	}
	if n > uint64(len(p)-int(at))/8 {
		return corruptf("freelist page %d lists %d pages, more than it holds", id, n)
	}
	for i := range n {
		if f := le.Uint64(p[at+8*i:]); f < 2 || f >= c.pages {
			return corruptf("freelist page %d lists page %d, outside the file", id, f)
		}
	}
	return nil
}

// node is a page to check: a page of the file (id) or an inline bucket's page (inline).
type node struct {
	id     uint64
	inline []byte
	depth  int
	what   string
}

// walk checks the tree rooted at page root and every bucket under it, without recursion.
func (c *pageChecker) walk(root uint64) error {
	stack := []node{{id: root, what: "root bucket"}}
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if n.depth > maxDepth {
			return corruptf("%s: nested more than %d levels deep", n.what, maxDepth)
		}
		p := n.inline
		if p == nil {
			var err error
			if p, err = c.read(n.id, n.what); err != nil {
				return err
			}
		}
		children, err := c.checkPage(p, n)
		if err != nil {
			return err
		}
		stack = append(stack, children...)
	}
	return nil
}

// checkPage checks one branch or leaf page and returns the pages it leads to.
func (c *pageChecker) checkPage(p []byte, n node) ([]node, error) {
	le := binary.LittleEndian
	where := n.what
	if n.inline == nil {
		where = fmt.Sprintf("%s, page %d", n.what, n.id)
	}
	if len(p) < pageHeaderSize {
		return nil, corruptf("%s: %d bytes, shorter than a page header", where, len(p))
	}
	flags, count := le.Uint16(p[8:]), int(le.Uint16(p[10:]))
	if pageHeaderSize+count*elementSize > len(p) {
		return nil, corruptf("%s: %d elements do not fit in %d bytes", where, count, len(p))
	}
	var out []node
	var prev []byte
	for i := range count {
		e := pageHeaderSize + i*elementSize
		var pos, ksize, vsize uint64
		switch flags {
		case flagBranch:
			pos, ksize = uint64(le.Uint32(p[e:])), uint64(le.Uint32(p[e+4:]))
		case flagLeaf:
			pos, ksize, vsize = uint64(le.Uint32(p[e+4:])), uint64(le.Uint32(p[e+8:])), uint64(le.Uint32(p[e+12:]))
		default:
			return nil, corruptf("%s: page flags %#x: neither a branch nor a leaf", where, flags)
		}
		start := uint64(e) + pos
		if start+ksize+vsize > uint64(len(p)) {
			return nil, corruptf("%s: element %d lies outside the page", where, i)
		}
		key := p[start : start+ksize]
		if i > 0 && bytes.Compare(prev, key) >= 0 {
			return nil, corruptf("%s: keys out of order at element %d", where, i)
		}
		prev = key
		if flags == flagBranch {
			out = append(out, node{id: le.Uint64(p[e+8:]), depth: n.depth + 1, what: n.what})
			continue
		}
		switch le.Uint32(p[e:]) {
		case 0:
		case leafBucket:
			v := p[start+ksize : start+ksize+vsize]
			if len(v) < bucketHeader {
				return nil, corruptf("%s: bucket %q: a %d-byte header", where, key, len(v))
			}
			child := node{id: le.Uint64(v), depth: n.depth + 1, what: fmt.Sprintf("bucket %q", key)}
			if child.id == 0 {
				child.inline = v[bucketHeader:]
				if len(child.inline) < pageHeaderSize || le.Uint16(child.inline[8:]) != flagLeaf {
					return nil, corruptf("%s: inline bucket %q is not a leaf page", where, key)
				}
			}
			out = append(out, child)
		default:
			return nil, corruptf("%s: element %d has flags %#x", where, i, le.Uint32(p[e:]))
		}
	}
	if flags == flagBranch && count == 0 {
		return nil, corruptf("%s: an empty branch page", where)
	}
	return out, nil
}

func corruptf(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, a...))
}
