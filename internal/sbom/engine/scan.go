package engine

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/moatsec/moat/internal/image"
	"github.com/moatsec/moat/internal/sbom"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/semaphore"
)

// Entry kinds in a layer index.
const (
	kindFile    byte = 'f'
	kindDir     byte = 'd'
	kindSymlink byte = 'l'
	kindOther   byte = 'o'
)

// layerScan is what one layer holds, as far as inventory needs: an index of its entries (for
// whiteouts and overwrites), its whiteouts, and the cataloger results of the files read. It is
// what the layer cache stores.
type layerScan struct {
	Paths     []string // sorted
	Kinds     []byte   // parallel to Paths
	Links     map[string]string
	Whiteouts []string // sorted
	Opaques   []string // sorted; "" is the root
	Files     []fileResult
	Warnings  []sbom.Warning

	layer *image.Layer
}

type fileResult struct {
	Path      string
	Cataloger string
	Result    sbom.Result

	// seq numbers the tar entry the result was read from, so that the last of several entries
	// for one path wins whatever order their parses finish in. It is not cached.
	seq int
}

func (s *layerScan) kind(p string) (byte, bool) {
	i, ok := slices.BinarySearch(s.Paths, p)
	if !ok {
		return 0, false
	}
	return s.Kinds[i], true
}

func has(sorted []string, p string) bool {
	_, ok := slices.BinarySearch(sorted, p)
	return ok
}

// scanLayers scans every layer, from the cache where possible, up to e.workers at once.
func (e *Engine) scanLayers(ctx context.Context, layers []*image.Layer) ([]*layerScan, error) {
	scans := make([]*layerScan, len(layers))
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(e.workers)
	pool := newParsePool(ctx, e)
	for i, l := range layers {
		if s, ok := e.cached(l); ok {
			s.layer = l
			scans[i] = s
			if e.progress != nil {
				e.progress.LayerStart(l.Index, l.Size, true)
				e.progress.LayerDone(l.Index)
			}
			continue
		}
		g.Go(func() error {
			s, err := e.scanLayer(ctx, l, pool)
			if err != nil {
				return fmt.Errorf("layer %d (%s): %w", l.Index, l.Digest, err)
			}
			s.layer = l
			scans[i] = s
			e.store(l, s)
			return nil
		})
	}
	err := g.Wait()
	pool.close()
	return scans, err
}

func (e *Engine) scanLayer(ctx context.Context, l *image.Layer, pool *parsePool) (*layerScan, error) {
	if e.progress != nil {
		e.progress.LayerStart(l.Index, l.Size, false)
		defer e.progress.LayerDone(l.Index)
	}
	rc, err := l.Open(ctx)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	cr := &countingReader{r: rc, limits: e.limits, compressed: l.Size}
	if e.progress != nil {
		cr.progress = func(n int64) { e.progress.LayerRead(l.Index, n) }
	}
	return e.scanTar(ctx, cr, layerTag(l), pool)
}

// countingReader enforces the decompression limits.
type countingReader struct {
	r          io.Reader
	n          int64
	limits     Limits
	compressed int64
	progress   func(int64)
}

// ErrLayerTooLarge means a layer exceeded the size or expansion limits.
var ErrLayerTooLarge = errors.New("layer exceeds moat's size limits")

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.progress != nil && n > 0 {
		c.progress(int64(n))
	}
	if c.n > c.limits.MaxLayerBytes {
		return n, fmt.Errorf("%w: more than %d bytes uncompressed", ErrLayerTooLarge, c.limits.MaxLayerBytes)
	}
	if c.compressed > 0 && c.n > c.limits.RatioFloor && c.n/c.compressed > c.limits.MaxRatio {
		return n, fmt.Errorf("%w: expands more than %d times (%d compressed bytes, %d read so far): a decompression bomb?",
			ErrLayerTooLarge, c.limits.MaxRatio, c.compressed, c.n)
	}
	return n, err
}

// cleanName turns a tar entry name into an image path without a leading slash. ok is false
// for names that climb out of the root, which are skipped with a warning.
func cleanName(name string) (p string, warn string, ok bool) {
	if strings.HasPrefix(name, "/") {
		warn = "absolute entry name, read relative to the image root"
	}
	if slices.Contains(strings.Split(name, "/"), "..") {
		cleaned := path.Clean(name)
		if cleaned == ".." || strings.HasPrefix(cleaned, "../") || strings.Contains(name, "/../") || strings.HasPrefix(name, "../") {
			return "", "entry name contains '..': skipped", false
		}
	}
	p = strings.TrimPrefix(path.Clean("/"+name), "/")
	return p, warn, true
}

// scanTar reads one layer's tar stream.
func (e *Engine) scanTar(ctx context.Context, r io.Reader, tag string, pool *parsePool) (*layerScan, error) {
	s := &layerScan{Links: map[string]string{}}
	entries := map[string]byte{}
	whiteouts, opaques := map[string]bool{}, map[string]bool{}
	var hardlinks []hardlink
	// lastSeq maps each path to the number of the last entry that wrote it.
	lastSeq := map[string]int{}
	seq := 0
	var mu sync.Mutex // guards s.Files and s.Warnings against the parse pool
	warn := func(p, msg string) {
		mu.Lock()
		s.Warnings = append(s.Warnings, sbom.Warning{Layer: tag, Path: p, Message: msg})
		mu.Unlock()
	}
	var jobs sync.WaitGroup
	tr := tar.NewReader(r)
	last := ""
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			jobs.Wait()
			if last == "" {
				return nil, fmt.Errorf("reading tar: %w", err)
			}
			return nil, fmt.Errorf("reading tar entry after %q: %w", last, err)
		}
		p, w, ok := cleanName(hdr.Name)
		if w != "" {
			warn(hdr.Name, w)
		}
		if !ok || p == "" {
			continue
		}
		last = p
		seq++
		lastSeq[p] = seq
		entrySeq := seq
		dir, base := path.Split(p)
		dir = strings.TrimSuffix(dir, "/")
		if strings.HasPrefix(base, ".wh.") {
			if base == ".wh..wh..opq" {
				opaques[dir] = true
			} else if target := strings.TrimPrefix(base, ".wh."); target != "" && target != "." && target != ".." {
				whiteouts[path.Join(dir, target)] = true
			}
			continue
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			entries[p] = kindDir
		case tar.TypeSymlink:
			entries[p] = kindSymlink
			s.Links[p] = hdr.Linkname
		case tar.TypeLink:
			entries[p] = kindFile
			if t, _, ok := cleanName(hdr.Linkname); ok && t != "" {
				hardlinks = append(hardlinks, hardlink{path: p, target: t, seq: entrySeq})
			} else if !ok {
				warn(p, fmt.Sprintf("hard link target %q contains '..': not linked", hdr.Linkname))
			}
		case tar.TypeReg: // archive/tar reports old TypeRegA entries as TypeReg
			entries[p] = kindFile
			fi := sbom.FileInfo{Path: p, Mode: fs.FileMode(hdr.Mode).Perm(), Size: hdr.Size}
			if hdr.Mode&0o4000 != 0 {
				fi.Mode |= fs.ModeSetuid
			}
			which := e.match(fi)
			if len(which) == 0 {
				continue
			}
			if hdr.Size > e.limits.MaxFileBytes {
				warn(p, fmt.Sprintf("file is %d bytes, larger than the %d-byte limit: not read", hdr.Size, e.limits.MaxFileBytes))
				continue
			}
			c, err := pool.capture(ctx, tr, hdr.Size)
			if err != nil {
				jobs.Wait()
				return nil, fmt.Errorf("reading %s: %w", p, err)
			}
			e.submitParse(ctx, pool, &jobs, &mu, s, tag, fi, which, c, entrySeq)
		default:
			entries[p] = kindOther
		}
	}
	jobs.Wait()
	// A path written twice in one layer keeps what its last entry held.
	s.Files = slices.DeleteFunc(s.Files, func(f fileResult) bool { return f.seq != lastSeq[f.Path] })
	hardlinks = slices.DeleteFunc(hardlinks, func(h hardlink) bool { return h.seq != lastSeq[h.path] })
	// Read to the end so that the digest is checked, whatever trails the tar archive.
	if _, err := io.Copy(io.Discard, r); err != nil {
		return nil, err
	}
	s.linkHardlinks(hardlinks)
	s.finish(entries, whiteouts, opaques)
	return s, nil
}

// add records a parse result of the entry numbered seq.
func (s *layerScan) add(tag, p, cataloger string, res parsed, seq int) {
	for _, w := range res.warnings {
		s.Warnings = append(s.Warnings, sbom.Warning{Layer: tag, Path: p, Message: cataloger + ": " + w})
	}
	if res.result == nil {
		return
	}
	r := *res.result
	r.Warnings = nil
	s.Files = append(s.Files, fileResult{Path: p, Cataloger: cataloger, Result: r, seq: seq})
}

// hardlink is a hard-link entry of a layer: path links to target.
type hardlink struct {
	path, target string
	seq          int
}

// linkHardlinks gives a hard link the results of the file it links to, for the same catalogers.
func (s *layerScan) linkHardlinks(links []hardlink) {
	for _, l := range links {
		for _, f := range s.Files {
			if f.Path == l.target {
				s.Files = append(s.Files, fileResult{Path: l.path, Cataloger: f.Cataloger, Result: f.Result, seq: l.seq})
			}
		}
	}
}

func (s *layerScan) finish(entries map[string]byte, whiteouts, opaques map[string]bool) {
	s.Paths = make([]string, 0, len(entries))
	for p := range entries {
		s.Paths = append(s.Paths, p)
	}
	slices.Sort(s.Paths)
	s.Kinds = make([]byte, len(s.Paths))
	for i, p := range s.Paths {
		s.Kinds[i] = entries[p]
	}
	for p := range whiteouts {
		s.Whiteouts = append(s.Whiteouts, p)
	}
	slices.Sort(s.Whiteouts)
	for p := range opaques {
		s.Opaques = append(s.Opaques, p)
	}
	slices.Sort(s.Opaques)
	slices.SortFunc(s.Files, func(a, b fileResult) int {
		if c := strings.Compare(a.Path, b.Path); c != 0 {
			return c
		}
		return strings.Compare(a.Cataloger, b.Cataloger)
	})
	slices.SortStableFunc(s.Warnings, func(a, b sbom.Warning) int { return strings.Compare(a.Path, b.Path) })
}

func (e *Engine) match(fi sbom.FileInfo) []int {
	var which []int
	for i, c := range e.catalogers {
		if c.Match(fi) {
			which = append(which, i)
		}
	}
	return which
}

// submitParse hands one file to the catalogers in which on the parse pool, recording their
// results in s under mu and releasing c when they are done.
func (e *Engine) submitParse(ctx context.Context, pool *parsePool, jobs *sync.WaitGroup, mu *sync.Mutex,
	s *layerScan, tag string, fi sbom.FileInfo, which []int, c *content, seq int) {
	jobs.Add(1)
	pool.submit(func() {
		defer jobs.Done()
		defer c.release()
		for _, ci := range which {
			res := e.parse(ctx, ci, fi, c)
			mu.Lock()
			s.add(tag, fi.Path, e.catalogers[ci].Name(), res, seq)
			mu.Unlock()
		}
	})
}

type parsed struct {
	result   *sbom.Result
	warnings []string
}

// parse runs one cataloger on one file; an error or a panic becomes a warning.
func (e *Engine) parse(ctx context.Context, ci int, fi sbom.FileInfo, c *content) (out parsed) {
	cat := e.catalogers[ci]
	defer func() {
		if r := recover(); r != nil {
			out = parsed{warnings: []string{fmt.Sprintf("cataloger failed on this file (internal error: %v)", r)}}
		}
	}()
	res, err := cat.Parse(ctx, fi, c.reader())
	if err != nil {
		out.warnings = append(out.warnings, err.Error())
	}
	if res != nil {
		out.warnings = append(out.warnings, res.Warnings...)
		if len(res.Packages) > 0 || len(res.Owners) > 0 || res.Release != nil {
			out.result = res
		}
	}
	return out
}

// content is one file's body, in memory or spilled to a temporary file.
type content struct {
	buf     []byte
	f       *os.File
	size    int64
	release func()
}

func (c *content) reader() sbom.Content {
	if c.f != nil {
		return io.NewSectionReader(c.f, 0, c.size)
	}
	return bytes.NewReader(c.buf)
}

// parsePool runs cataloger work beside the layer readers, bounding the memory held by contents
// waiting to be parsed.
type parsePool struct {
	e      *Engine
	jobs   chan func()
	wg     sync.WaitGroup
	budget *semaphore.Weighted
}

func newParsePool(ctx context.Context, e *Engine) *parsePool {
	p := &parsePool{e: e, jobs: make(chan func()), budget: semaphore.NewWeighted(e.limits.InFlightBytes)}
	for range e.workers {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			for j := range p.jobs {
				j()
			}
		}()
	}
	return p
}

func (p *parsePool) submit(job func()) { p.jobs <- job }

func (p *parsePool) close() {
	close(p.jobs)
	p.wg.Wait()
}

// capture reads size bytes of r into memory, or into a temporary file when large.
func (p *parsePool) capture(ctx context.Context, r io.Reader, size int64) (*content, error) {
	if size > p.e.limits.SpillBytes {
		f, err := os.CreateTemp(p.e.tempDir, "file-*")
		if err != nil {
			return nil, fmt.Errorf("creating spill file: %w", err)
		}
		name := f.Name()
		cleanup := func() { f.Close(); os.Remove(name) }
		if n, err := io.CopyN(f, r, size); err != nil {
			cleanup()
			return nil, fmt.Errorf("spilling %d bytes (got %d): %w", size, n, err)
		}
		return &content{f: f, size: size, release: cleanup}, nil
	}
	if err := p.budget.Acquire(ctx, size); err != nil {
		return nil, err
	}
	buf := getBuf(size)
	if _, err := io.ReadFull(r, buf); err != nil {
		putBuf(buf)
		p.budget.Release(size)
		return nil, fmt.Errorf("reading %d bytes: %w", size, err)
	}
	return &content{buf: buf, size: size, release: func() { putBuf(buf); p.budget.Release(size) }}, nil
}

// bufPools recycle file buffers by power-of-two capacity (4 KiB to the spill size), sparing
// the garbage collector the tens of megabytes of executables an image hands the binary
// catalogers. Results never alias these buffers: catalogers return strings, which copy.
var bufPools [13]sync.Pool

func bufClass(size int64) int {
	c := 0
	for n := int64(4 << 10); n < size && c < len(bufPools)-1; n <<= 1 {
		c++
	}
	return c
}

func getBuf(size int64) []byte {
	c := bufClass(size)
	if int64(4<<10)<<c < size {
		return make([]byte, size) // larger than any class
	}
	if b, ok := bufPools[c].Get().(*[]byte); ok {
		return (*b)[:size]
	}
	return make([]byte, size, int64(4<<10)<<c)
}

func putBuf(b []byte) {
	c := bufClass(int64(cap(b)))
	if int64(4<<10)<<c != int64(cap(b)) {
		return
	}
	bufPools[c].Put(&b)
}

// scanDir reads an unpacked root filesystem as if it were one layer. Symbolic links are
// recorded, never followed; /proc, /sys and /dev of the walked root are skipped.
func (e *Engine) scanDir(ctx context.Context, root string) (*layerScan, error) {
	s := &layerScan{Links: map[string]string{}}
	entries := map[string]byte{}
	pool := newParsePool(ctx, e)
	defer pool.close()
	var mu sync.Mutex
	var jobs sync.WaitGroup
	err := filepath.WalkDir(root, func(full string, d fs.DirEntry, err error) error {
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		rel, rerr := filepath.Rel(root, full)
		if rerr != nil {
			return rerr
		}
		p := filepath.ToSlash(rel)
		if err != nil {
			mu.Lock()
			s.Warnings = append(s.Warnings, sbom.Warning{Path: p, Message: err.Error()})
			mu.Unlock()
			if d != nil && d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if p == "." {
			return nil
		}
		switch {
		case d.IsDir():
			if p == "proc" || p == "sys" || p == "dev" {
				return fs.SkipDir
			}
			entries[p] = kindDir
		case d.Type()&fs.ModeSymlink != 0:
			entries[p] = kindSymlink
			if t, err := os.Readlink(full); err == nil {
				s.Links[p] = t
			}
		case d.Type().IsRegular():
			entries[p] = kindFile
			info, err := d.Info()
			if err != nil {
				return nil
			}
			fi := sbom.FileInfo{Path: p, Mode: info.Mode() & (fs.ModePerm | fs.ModeSetuid), Size: info.Size()}
			which := e.match(fi)
			if len(which) == 0 {
				return nil
			}
			if fi.Size > e.limits.MaxFileBytes {
				mu.Lock()
				s.Warnings = append(s.Warnings, sbom.Warning{Path: p, Message: fmt.Sprintf("file is %d bytes, larger than the %d-byte limit: not read", fi.Size, e.limits.MaxFileBytes)})
				mu.Unlock()
				return nil
			}
			f, err := os.Open(full)
			if err != nil {
				mu.Lock()
				s.Warnings = append(s.Warnings, sbom.Warning{Path: p, Message: err.Error()})
				mu.Unlock()
				return nil
			}
			c := &content{f: f, size: fi.Size, release: func() { f.Close() }}
			e.submitParse(ctx, pool, &jobs, &mu, s, "", fi, which, c, 0)
		default:
			entries[p] = kindOther
		}
		return nil
	})
	jobs.Wait()
	if err != nil {
		return nil, fmt.Errorf("walking %s: %w", root, err)
	}
	s.finish(entries, nil, nil)
	return s, nil
}
