package engine

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/moatsec/moat/internal/image"
	"github.com/moatsec/moat/internal/sbom"
	"github.com/moatsec/moat/internal/sbom/dpkg"
	"github.com/moatsec/moat/internal/store"
	tu "github.com/moatsec/moat/internal/testutil"
)

// harness is an engine whose temporary directory must be empty after every inventory.
type harness struct {
	e   *Engine
	tmp string
}

func newHarness(t testing.TB, cats []sbom.Cataloger, opts ...Option) harness {
	t.Helper()
	tmp := t.TempDir()
	if cats == nil {
		cats = []sbom.Cataloger{dpkg.New(), pkgCataloger{}}
	}
	opts = append([]Option{WithTempDir(tmp), WithClock(func() time.Time { return time.Unix(1700000000, 0) })}, opts...)
	e, err := New(cats, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return harness{e: e, tmp: tmp}
}

func (h harness) checkEmpty(t testing.TB) {
	t.Helper()
	ents, err := os.ReadDir(h.tmp)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		t.Errorf("%s left behind in the engine's temporary directory", e.Name())
	}
}

func (h harness) inventory(t testing.TB, ctx context.Context, img *image.Image) (*sbom.Inventory, error) {
	t.Helper()
	inv, err := h.e.Inventory(ctx, img)
	h.checkEmpty(t)
	return inv, err
}

// scan runs scanTar on one layer stream.
func (h harness) scan(t testing.TB, ctx context.Context, r io.Reader) (*layerScan, error) {
	t.Helper()
	pool := newParsePool(ctx, h.e)
	s, err := h.e.scanTar(ctx, r, "sha256:layer", pool)
	pool.close()
	h.checkEmpty(t)
	return s, err
}

// rawImage opens an OCI layout whose layers are the given blobs as they are, however broken.
func rawImage(t *testing.T, mt types.MediaType, blobs ...[]byte) *image.Image {
	t.Helper()
	var ls []v1.Layer
	for _, b := range blobs {
		ls = append(ls, static.NewLayer(b, mt))
	}
	return openDir(t, tu.OCIDir(t, tu.Image(t, ls...)), image.SourceOCIDir)
}

func openDir(t *testing.T, ref, source string) *image.Image {
	t.Helper()
	img, err := image.Open(context.Background(), image.Target{Source: source, Ref: ref}, image.Options{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { img.Close() })
	return img
}

// names lists packages (in the engine's order: by type, then name) as "name@version paths".
func names(inv *sbom.Inventory) []string {
	var out []string
	for _, p := range inv.Packages {
		var paths []string
		for _, l := range p.Locations {
			paths = append(paths, l.Path)
		}
		out = append(out, p.Name+"@"+p.Version+" "+strings.Join(paths, ","))
	}
	return out
}

func wantPackages(t *testing.T, inv *sbom.Inventory, want ...string) {
	t.Helper()
	got := names(inv)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("packages:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func warningFor(inv *sbom.Inventory, layer, p, substr string) bool {
	for _, w := range inv.Warnings {
		if w.Layer == layer && w.Path == p && strings.Contains(w.Message, substr) {
			return true
		}
	}
	return false
}

func TestDotDotNames(t *testing.T) {
	h := newHarness(t, nil)
	evil := []string{"../evil/var/lib/dpkg/status", "a/../../var/lib/dpkg/status", "var/lib/../../../../etc/x.pkg", "..", "app/../b.pkg"}
	entries := []tu.Entry{tu.File("var/lib/dpkg/status", status("libc6@2.36-9"))}
	for _, n := range evil {
		entries = append(entries, tu.File(n, status("evil@6.6.6")))
	}
	entries = append(entries, tu.Hardlink("app/link.pkg", "../../../etc/passwd"), tu.Symlink("../evil-link", "/etc/passwd"))
	img := openOCI(t, entries)
	inv, err := h.inventory(t, context.Background(), img)
	if err != nil {
		t.Fatal(err)
	}
	wantPackages(t, inv, "libc6@2.36-9 /var/lib/dpkg/status")
	layer := img.Layers[0].DiffID.String()
	for _, n := range append(evil, "../evil-link") {
		if !warningFor(inv, layer, n, "'..'") {
			t.Errorf("no warning naming layer %s and path %q; warnings: %+v", layer, n, inv.Warnings)
		}
	}
	if !warningFor(inv, layer, "app/link.pkg", "hard link target") {
		t.Errorf("no warning for the hard link that climbs out; warnings: %+v", inv.Warnings)
	}
	if _, err := os.Lstat(filepath.Join("..", "evil")); err == nil {
		t.Error("something was written outside the image")
	}
}

func TestAbsoluteNames(t *testing.T) {
	h := newHarness(t, nil)
	img := openOCI(t, []tu.Entry{tu.File("/var/lib/dpkg/status", status("libc6@2.36-9")), tu.File("//app//a.pkg", "alpha 1")})
	inv, err := h.inventory(t, context.Background(), img)
	if err != nil {
		t.Fatal(err)
	}
	wantPackages(t, inv, "libc6@2.36-9 /var/lib/dpkg/status", "alpha@1 /app/a.pkg")
	if !warningFor(inv, img.Layers[0].DiffID.String(), "/var/lib/dpkg/status", "absolute") {
		t.Errorf("no warning for the absolute name: %+v", inv.Warnings)
	}
}

// slowCataloger reads "*.slow" files holding "name version [delay-ms]", sleeping the delay
// first, so that the parses of two copies of a file finish in the wrong order.
type slowCataloger struct{}

func (slowCataloger) Name() string                { return "slow" }
func (slowCataloger) Version() int                { return 1 }
func (slowCataloger) Match(fi sbom.FileInfo) bool { return strings.HasSuffix(fi.Path, ".slow") }
func (slowCataloger) Parse(ctx context.Context, fi sbom.FileInfo, r sbom.Content) (*sbom.Result, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return nil, errors.New("not a slow file")
	}
	if len(f) == 3 {
		ms, _ := strconv.Atoi(f[2])
		select {
		case <-time.After(time.Duration(ms) * time.Millisecond):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return &sbom.Result{Packages: []sbom.Package{{Name: f[0], Version: f[1], Type: sbom.TypeNPM}}}, nil
}

func TestDuplicateEntries(t *testing.T) {
	tests := []struct {
		name    string
		entries []tu.Entry
		want    []string
	}{
		{"second copy wins over a slower first parse", []tu.Entry{tu.File("a.slow", "old 1 150"), tu.File("a.slow", "new 2")}, []string{"new@2 /a.slow"}},
		{"third copy wins", []tu.Entry{tu.File("a.pkg", "one 1"), tu.File("a.pkg", "two 2"), tu.File("a.pkg", "three 3")}, []string{"three@3 /a.pkg"}},
		{"unparseable second copy", []tu.Entry{tu.File("a.pkg", "alpha 1"), tu.File("a.pkg", "no such format here")}, nil},
		{"empty second copy", []tu.Entry{tu.File("var/lib/dpkg/status", status("libc6@2.36-9")), tu.File("var/lib/dpkg/status", "")}, nil},
		{"replaced by a directory", []tu.Entry{tu.File("a.pkg", "alpha 1"), tu.Dir("a.pkg")}, nil},
		{"replaced by a symlink", []tu.Entry{tu.File("a.pkg", "alpha 1"), tu.Symlink("a.pkg", "b.pkg"), tu.File("b.pkg", "beta 1")}, []string{"beta@1 /b.pkg"}},
		{"hard link replaced by a file", []tu.Entry{tu.File("a.pkg", "alpha 1"), tu.Hardlink("b.pkg", "a.pkg"), tu.File("b.pkg", "beta 1")}, []string{"alpha@1 /a.pkg", "beta@1 /b.pkg"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, []sbom.Cataloger{dpkg.New(), pkgCataloger{}, slowCataloger{}}, WithWorkers(4))
			inv, err := h.inventory(t, context.Background(), openOCI(t, tt.entries))
			if err != nil {
				t.Fatal(err)
			}
			wantPackages(t, inv, tt.want...)
		})
	}
}

func TestSymlinksNeverFollowed(t *testing.T) {
	h := newHarness(t, nil)
	img := openOCI(t,
		[]tu.Entry{
			tu.Symlink("a", "b"), tu.Symlink("b", "a"), tu.Symlink("self", "self"),
			tu.Symlink("etc", "../../../../etc"), // a later file "through" it stays inside the image
			tu.File("etc/passwd.pkg", "inside 1"),
			tu.Symlink("lib", "lib"),
			tu.File("owner.pkg", "owner loop lib/x.pkg a/y.pkg"),
			tu.File("var/lib/dpkg/status", status("libc6@2.36-9")),
		},
		[]tu.Entry{tu.Symlink("var/lib/dpkg/status", "/etc/passwd"), tu.Symlink("x.pkg", "../../../../etc/passwd")},
	)
	done := make(chan struct{})
	var inv *sbom.Inventory
	var err error
	go func() {
		defer close(done)
		inv, err = h.inventory(t, context.Background(), img)
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("inventory hangs on symbolic link loops")
	}
	if err != nil {
		t.Fatal(err)
	}
	// The status file was replaced by a link in layer 1: no dpkg packages remain.
	wantPackages(t, inv, "inside@1 /etc/passwd.pkg")
}

// TestSymlinksInDirNeverFollowed walks a root filesystem (the dir: source) whose links loop,
// climb out of the root, and stand in for the files catalogers read.
func TestSymlinksInDirNeverFollowed(t *testing.T) {
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "status"), []byte(status("outside@1")), 0o644); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	for _, d := range []string{"var/lib/dpkg", "app", "etc"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	links := map[string]string{
		"a": "b", "b": "a", "app/self": "self", "app/up": "../../../../../..",
		"etc/escape":          "../../../../etc",
		"var/lib/dpkg/status": filepath.Join(outside, "status"),
		"app/out.pkg":         filepath.Join(outside, "status"),
		"app/loopdir":         "../app",
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "app", "in.pkg"), []byte("inside 1"), 0o644); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, nil)
	inv, err := h.inventory(t, context.Background(), openDir(t, root, image.SourceDir))
	if err != nil {
		t.Fatal(err)
	}
	wantPackages(t, inv, "inside@1 /app/in.pkg")
}

func TestTruncatedTar(t *testing.T) {
	full := tu.Tar(t,
		tu.File("first.txt", strings.Repeat("1", 100)),
		tu.File("second.txt", strings.Repeat("2", 5000)),
		tu.File("var/lib/dpkg/status", status("libc6@2.36-9")+strings.Repeat("#", 3000)),
		tu.File("last.txt", "x"),
	)
	// Offsets: PAX tar headers take 1024 bytes (PAX header + ustar header) when records are
	// needed and 512 otherwise; find the entries instead of computing them.
	at := func(s string) int {
		i := bytes.Index(full, []byte(s))
		if i < 0 {
			t.Fatalf("%q not in the archive", s)
		}
		return i
	}
	tests := []struct {
		name    string
		cut     int
		wantErr string
	}{
		{"inside the first header", 100, "reading tar: "},
		{"inside the second header", at("second.txt") + 20, `after "first.txt"`},
		{"inside an unread body", at("22222") + 2000, `after "second.txt"`},
		{"inside a read body", at("Package: libc6") + 100, "reading var/lib/dpkg/status"},
		{"inside the end marker", len(full) - 700, `after "last.txt"`},
		{"without the end marker", len(full) - 1024, ""}, // archive/tar accepts it
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, nil)
			_, err := h.scan(t, context.Background(), bytes.NewReader(full[:tt.cut]))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("err = %v, want one containing %q and wrapping io.ErrUnexpectedEOF", err, tt.wantErr)
			}
		})
	}

	// Through an image, the error names the layer.
	img := rawImage(t, types.OCIUncompressedLayer, tu.Tar(t, tu.File("a.pkg", "alpha 1")), full[:at("22222")+2000])
	_, err := newHarness(t, nil).inventory(t, context.Background(), img)
	if err == nil || !strings.Contains(err.Error(), "layer 1 ("+img.Layers[1].Digest.String()+")") {
		t.Fatalf("err = %v, want one naming layer 1", err)
	}
}

func TestCorruptGzip(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	noise := make([]byte, 64<<10)
	for i := range noise {
		noise[i] = byte(rnd.Uint32())
	}
	valid := tu.Gzip(tu.Tar(t, tu.File("noise.bin", string(noise)), tu.File("a.pkg", "alpha 1")))
	flipped := bytes.Clone(valid)
	for i := len(flipped) / 2; i < len(flipped)/2+16; i++ {
		flipped[i] ^= 0xff
	}
	tests := []struct {
		name string
		blob []byte
	}{
		{"garbage after the magic", append([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff}, bytes.Repeat([]byte{0xde, 0xad}, 500)...)},
		{"bad header", []byte{0x1f, 0x8b, 0xff, 0xff}},
		{"flipped bytes in the deflate stream", flipped},
		{"truncated", valid[:len(valid)/2]},
		{"checksum trailer wrong", append(bytes.Clone(valid[:len(valid)-8]), 1, 2, 3, 4, 5, 6, 7, 8)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img := rawImage(t, types.OCILayer, tt.blob)
			_, err := newHarness(t, nil).inventory(t, context.Background(), img)
			if err == nil || !strings.Contains(err.Error(), img.Layers[0].Digest.String()) {
				t.Fatalf("err = %v, want one naming layer %s", err, img.Layers[0].Digest)
			}
		})
	}
}

// bombLimits trip on a few MiB of zeros.
var bombLimits = Limits{
	MaxLayerBytes: 1 << 30,
	MaxRatio:      50,
	RatioFloor:    1 << 20,
	MaxFileBytes:  1 << 20,
	SpillBytes:    64 << 10,
	InFlightBytes: 1 << 20,
}

func TestDecompressionBomb(t *testing.T) {
	zeros := tu.Image(t, tu.ZerosLayer(t, "var/lib/dpkg/status", 8<<20))
	rnd := rand.New(rand.NewPCG(3, 4))
	noise := make([]byte, 2<<20)
	for i := range noise {
		noise[i] = byte(rnd.Uint32())
	}
	big := tu.Image(t, tu.Layer(t, tu.File("noise.bin", string(noise))))
	tests := []struct {
		name   string
		img    func(t *testing.T) *image.Image
		limits Limits
	}{
		{"oci-dir, ratio", func(t *testing.T) *image.Image { return openDir(t, tu.OCIDir(t, zeros), image.SourceOCIDir) }, bombLimits},
		{"docker-archive, ratio", func(t *testing.T) *image.Image {
			return openDir(t, tu.DockerArchive(t, zeros, "example.com/test/bomb:1"), image.SourceDockerArchive)
		}, bombLimits},
		{"oci-dir, size", func(t *testing.T) *image.Image { return openDir(t, tu.OCIDir(t, big), image.SourceOCIDir) },
			Limits{MaxLayerBytes: 1 << 20, MaxRatio: 1000, RatioFloor: 1 << 30, MaxFileBytes: 4 << 20, SpillBytes: 1 << 20, InFlightBytes: 1 << 20}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := newHarness(t, nil, WithLimits(tt.limits)).inventory(t, context.Background(), tt.img(t))
			if !errors.Is(err, ErrLayerTooLarge) {
				t.Fatalf("err = %v, want ErrLayerTooLarge", err)
			}
		})
	}
}

// TestDecompressionBombDefaultLimits: 300 MiB of zeros compress to about 300 KiB, more than
// DefaultLimits' ratio once past their floor.
func TestDecompressionBombDefaultLimits(t *testing.T) {
	if testing.Short() {
		t.Skip("compresses and inflates 300 MiB")
	}
	img := openDir(t, tu.OCIDir(t, tu.Image(t, tu.ZerosLayer(t, "zeros", 300<<20))), image.SourceOCIDir)
	_, err := newHarness(t, nil).inventory(t, context.Background(), img)
	if !errors.Is(err, ErrLayerTooLarge) {
		t.Fatalf("err = %v, want ErrLayerTooLarge", err)
	}
}

// ustarHeader makes a 512-byte USTAR header by hand, for entries archive/tar will not write.
func ustarHeader(name string, typeflag byte, size int64) []byte {
	b := make([]byte, 512)
	copy(b[0:100], name)
	copy(b[100:108], "0000644\x00")
	copy(b[108:116], "0000000\x00")
	copy(b[116:124], "0000000\x00")
	copy(b[124:136], fmt.Sprintf("%011o\x00", size))
	copy(b[136:148], fmt.Sprintf("%011o\x00", 1700000000))
	b[156] = typeflag
	copy(b[257:265], "ustar\x0000")
	copy(b[148:156], "        ")
	sum := 0
	for _, c := range b {
		sum += int(c)
	}
	copy(b[148:156], fmt.Sprintf("%06o\x00 ", sum))
	return b
}

// pad rounds a tar body up to whole blocks.
func pad(b []byte) []byte { return append(b, make([]byte, (512-len(b)%512)%512)...) }

// paxRecord formats one PAX record; its length prefix counts itself.
func paxRecord(k, v string) string {
	body := " " + k + "=" + v + "\n"
	n := len(body)
	for {
		r := strconv.Itoa(n) + body
		if len(r) == n {
			return r
		}
		n = len(r)
	}
}

func TestHugePAXHeader(t *testing.T) {
	for _, size := range []int{10, 2 << 20} {
		t.Run(strconv.Itoa(size), func(t *testing.T) {
			rec := paxRecord("moat.padding", strings.Repeat("x", size))
			var buf bytes.Buffer
			buf.Write(ustarHeader("PaxHeaders/a.pkg", tar.TypeXHeader, int64(len(rec))))
			buf.Write(pad([]byte(rec)))
			buf.Write(ustarHeader("a.pkg", tar.TypeReg, 7))
			buf.Write(pad([]byte("alpha 1")))
			buf.Write(make([]byte, 1024))
			h := newHarness(t, nil)
			s, err := h.scan(t, context.Background(), &buf)
			if size < 1<<20 {
				// The hand-made archive is valid when the header is small.
				if err != nil || len(s.Files) != 1 {
					t.Fatalf("small PAX header: %v %+v", err, s)
				}
				return
			}
			if !errors.Is(err, tar.ErrFieldTooLong) || !strings.Contains(err.Error(), "reading tar") {
				t.Fatalf("err = %v, want tar.ErrFieldTooLong", err)
			}
		})
	}
}

func TestFileTooLarge(t *testing.T) {
	l := DefaultLimits
	l.MaxFileBytes = 64
	h := newHarness(t, nil, WithLimits(l))
	img := openOCI(t, []tu.Entry{tu.File("var/lib/dpkg/status", status("libc6@2.36-9", "bash@5.2")), tu.File("a.pkg", "alpha 1")})
	inv, err := h.inventory(t, context.Background(), img)
	if err != nil {
		t.Fatal(err)
	}
	wantPackages(t, inv, "alpha@1 /a.pkg")
	if !warningFor(inv, img.Layers[0].DiffID.String(), "var/lib/dpkg/status", "larger than the 64-byte limit") {
		t.Errorf("no warning for the large file: %+v", inv.Warnings)
	}
}

// spyCataloger is dpkg's cataloger that notes how many files the engine's temporary
// directory holds while it parses.
type spyCataloger struct {
	*dpkg.Cataloger
	dir     string
	mu      sync.Mutex
	spilled int
}

func (s *spyCataloger) Parse(ctx context.Context, fi sbom.FileInfo, r sbom.Content) (*sbom.Result, error) {
	ents, _ := os.ReadDir(s.dir)
	s.mu.Lock()
	s.spilled = max(s.spilled, len(ents))
	s.mu.Unlock()
	return s.Cataloger.Parse(ctx, fi, r)
}

func TestSpill(t *testing.T) {
	l := DefaultLimits
	l.SpillBytes = 16
	spy := &spyCataloger{Cataloger: dpkg.New()}
	h := newHarness(t, []sbom.Cataloger{spy}, WithLimits(l))
	spy.dir = h.tmp
	img := openOCI(t, []tu.Entry{tu.File("var/lib/dpkg/status", status("libc6@2.36-9", "bash@5.2"))})
	inv, err := h.inventory(t, context.Background(), img)
	if err != nil {
		t.Fatal(err)
	}
	wantPackages(t, inv, "bash@5.2 /var/lib/dpkg/status", "libc6@2.36-9 /var/lib/dpkg/status")
	if spy.spilled != 1 {
		t.Errorf("%d files in the temporary directory while parsing, want the one spilled status file", spy.spilled)
	}
}

func TestHardlinks(t *testing.T) {
	h := newHarness(t, nil)
	img := openOCI(t,
		[]tu.Entry{
			tu.File("app/a.pkg", "alpha 1"),
			tu.Hardlink("app/b.pkg", "app/a.pkg"),
			tu.Hardlink("app/c.pkg", "../../app/a.pkg"), // climbs out: skipped
			tu.Hardlink("app/d.pkg", "app/missing.pkg"),
			tu.Hardlink("app/e.pkg", "/app/a.pkg"),
		},
		[]tu.Entry{tu.Whiteout("app/a.pkg")},
	)
	inv, err := h.inventory(t, context.Background(), img)
	if err != nil {
		t.Fatal(err)
	}
	// a.pkg is deleted by layer 1; its links keep the package, attributed to layer 0.
	wantPackages(t, inv, "alpha@1 /app/b.pkg,/app/e.pkg")
	for _, p := range inv.Packages {
		if p.Layer == nil || p.Layer.Index != 0 {
			t.Errorf("%s at %s: layer %+v", p.Name, p.Locations[0].Path, p.Layer)
		}
	}
}

func TestCancelled(t *testing.T) {
	img := openOCI(t, []tu.Entry{tu.File("var/lib/dpkg/status", status("libc6@2.36-9"))})
	t.Run("before", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := newHarness(t, nil).inventory(t, ctx, img)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("endless layer", func(t *testing.T) {
		pr, pw := io.Pipe()
		go func() {
			tw := tar.NewWriter(pw)
			for i := 0; ; i++ {
				body := "pkg" + strconv.Itoa(i) + " 1"
				if err := tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("app/%d.pkg", i), Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body))}); err != nil {
					return
				}
				if _, err := tw.Write([]byte(body)); err != nil {
					return
				}
			}
		}()
		defer pr.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		h := newHarness(t, nil)
		start := time.Now()
		_, err := h.scan(t, ctx, pr)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("took %s to notice the cancellation", d)
		}
	})
	t.Run("while parsing", func(t *testing.T) {
		entries := []tu.Entry{tu.File("first.slow", "slow 1 60000")}
		for i := range 50 {
			entries = append(entries, tu.File(fmt.Sprintf("app/%d.slow", i), "slow 1 60000"))
		}
		img := openOCI(t, entries)
		h := newHarness(t, []sbom.Cataloger{slowCataloger{}}, WithWorkers(2))
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := h.inventory(t, ctx, img)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("took %s to notice the cancellation", d)
		}
	})
}

func TestConcurrentInventories(t *testing.T) {
	img := openOCI(t,
		[]tu.Entry{tu.File("var/lib/dpkg/status", status("libc6@2.36-9", "bash@5.2")), tu.File("a.pkg", "alpha 1")},
		[]tu.Entry{tu.File("b.pkg", "beta 2")},
	)
	st, err := store.Open(filepath.Join(t.TempDir(), "moat.db"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	shared := newHarness(t, nil, WithCache(st))
	hs := []harness{shared, shared, newHarness(t, nil, WithCache(st)), newHarness(t, nil, WithCache(st))}
	invs := make([]*sbom.Inventory, len(hs))
	errs := make([]error, len(hs))
	var wg sync.WaitGroup
	for i, h := range hs {
		wg.Go(func() { invs[i], errs[i] = h.e.Inventory(context.Background(), img) })
	}
	wg.Wait()
	for i := range hs {
		if errs[i] != nil {
			t.Fatalf("inventory %d: %v", i, errs[i])
		}
		hs[i].checkEmpty(t)
		if !reflect.DeepEqual(invs[i].Packages, invs[0].Packages) {
			t.Errorf("inventory %d differs:\n%v\n%v", i, names(invs[i]), names(invs[0]))
		}
	}
	wantPackages(t, invs[0], "bash@5.2 /var/lib/dpkg/status", "libc6@2.36-9 /var/lib/dpkg/status", "alpha@1 /a.pkg", "beta@2 /b.pkg")
	// And again from the cache, still concurrently.
	for i, h := range hs {
		wg.Go(func() { invs[i], errs[i] = h.e.Inventory(context.Background(), img) })
	}
	wg.Wait()
	for i := range hs {
		if errs[i] != nil || !reflect.DeepEqual(invs[i].Packages, invs[0].Packages) || len(invs[i].Packages) != 4 {
			t.Errorf("cached inventory %d: %v %v", i, errs[i], names(invs[i]))
		}
	}
}

func FuzzScanTar(f *testing.F) {
	seeds := [][]byte{
		tu.Tar(f, tu.File("var/lib/dpkg/status", status("libc6@2.36-9", "bash@5.2"))),
		tu.Tar(f, tu.Dir("var/lib/dpkg"), tu.File("var/lib/dpkg/status.d/base", status("base-files@12.4")),
			tu.File("var/lib/dpkg/info/bash.list", "/bin/bash\n/usr/share/doc/bash\n"),
			tu.Hardlink("var/lib/dpkg/status", "var/lib/dpkg/status.d/base"), tu.Whiteout("etc/x"), tu.Opaque("usr")),
		tu.Tar(f, tu.File("/var/lib/dpkg/status", status("a@1")), tu.File("../var/lib/dpkg/status", status("b@1")), tu.Symlink("x", "../../x")),
		{}, make([]byte, 1024), []byte("not a tar"),
	}
	full := seeds[0]
	seeds = append(seeds, full[:len(full)/2], full[:600])
	for _, s := range seeds {
		f.Add(s)
	}
	l := Limits{MaxLayerBytes: 4 << 20, MaxRatio: 200, RatioFloor: 1 << 20, MaxFileBytes: 1 << 20, SpillBytes: 4 << 10, InFlightBytes: 1 << 20}
	h := newHarness(f, []sbom.Cataloger{dpkg.New()}, WithLimits(l), WithWorkers(2))
	f.Fuzz(func(t *testing.T, data []byte) {
		var s *layerScan
		var err error
		done := make(chan struct{})
		go func() {
			defer close(done)
			s, err = h.scan(t, context.Background(), bytes.NewReader(data))
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			buf := make([]byte, 1<<20)
			t.Fatalf("scan hangs:\n%s", buf[:runtime.Stack(buf, true)])
		}
		if err != nil {
			return
		}
		if len(s.Paths) != len(s.Kinds) {
			t.Fatalf("%d paths, %d kinds", len(s.Paths), len(s.Kinds))
		}
		for _, p := range s.Paths {
			if p == "" || strings.HasPrefix(p, "/") || p == ".." || strings.HasPrefix(p, "../") {
				t.Fatalf("path %q in the layer index", p)
			}
		}
	})
}
