package rootfs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/moatsec/moat/internal/image"
	"github.com/moatsec/moat/internal/testutil"
)

// openImage writes img as an OCI layout and opens it as moat does.
func openImage(t testing.TB, img v1.Image) *image.Image {
	t.Helper()
	opened, err := image.Open(context.Background(), image.Target{Source: image.SourceOCIDir, Ref: testutil.OCIDir(t, img)}, image.Options{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { opened.Close() })
	return opened
}

// layerEntries makes a layer of n files in a few directories.
func layerEntries(prefix string, n int) []testutil.Entry {
	var es []testutil.Entry
	for i := range n {
		es = append(es, testutil.File(fmt.Sprintf("%s/d%d/f%d", prefix, i%10, i), strings.Repeat("x", i%300)))
	}
	return es
}

// cacheEntries lists what a cache directory holds under layers/sha256, temporary
// directories included.
func cacheEntries(t testing.TB, c *Cache) []string {
	t.Helper()
	ents, err := os.ReadDir(c.layers)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func TestCacheSecondImageUnpacksNothing(t *testing.T) {
	requireRoot(t)
	base := testutil.Layer(t, testutil.Dir("etc"), testutil.File("etc/os-release", "ID=debian\n"), testutil.Exec("bin/sh", "#!"))
	app := testutil.Layer(t, layerEntries("app", 50)...)
	empty := testutil.Layer(t)
	img := openImage(t, testutil.Image(t, base, empty, app, empty))
	dir := t.TempDir()
	c, err := NewCache(dir)
	if err != nil {
		t.Fatal(err)
	}
	first, err := c.UnpackAll(context.Background(), img.Layers, IDMap{})
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != 4 || !first[0].Fresh || !first[1].Fresh || !first[2].Fresh || first[3].Fresh || first[3].Dir != first[1].Dir {
		t.Fatalf("first unpack: %+v (the repeated empty layer should be unpacked once)", first)
	}
	if first[2].Stats.Files != 50 {
		t.Errorf("app layer stats %+v", first[2].Stats)
	}
	if got := listing(t, first[0].Dir, nil); !slices.Equal(got, []string{"bin/ d 0755 0:0", "bin/sh f 0755 0:0 \"#!\"", "etc/ d 0755 0:0", "etc/os-release f 0644 0:0 \"ID=debian\\n\""}) {
		t.Errorf("base layer:\n%s", strings.Join(got, "\n"))
	}
	// A second moat process (a new Cache on the same directory) unpacks nothing.
	c2, err := NewCache(dir)
	if err != nil {
		t.Fatal(err)
	}
	second, err := c2.UnpackAll(context.Background(), img.Layers, IDMap{})
	if err != nil {
		t.Fatal(err)
	}
	for i, u := range second {
		if u.Fresh || u.Dir != first[i].Dir {
			t.Errorf("layer %d unpacked again: %+v", i, u)
		}
	}
	if got := cacheEntries(t, c); len(got) != 3 || slices.ContainsFunc(got, func(s string) bool { return strings.HasPrefix(s, ".") }) {
		t.Errorf("cache holds %v, want the 3 distinct layers and nothing else", got)
	}
	if fi, err := os.Stat(filepath.Join(dir, "layers")); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("layers directory: %v %v, want mode 0700", fi.Mode(), err)
	}
	// Each ID map has a copy of its own, owned accordingly.
	m := IDMap{UID: 100000, GID: 100000, Size: 65536}
	shifted, err := c.Unpack(context.Background(), img.Layers[0], m)
	if err != nil {
		t.Fatal(err)
	}
	if !shifted.Fresh || shifted.Dir == first[0].Dir || !strings.Contains(shifted.Dir, "-100000-100000-65536") {
		t.Errorf("shifted unpack: %+v", shifted)
	}
	if got := listing(t, shifted.Dir, nil); !slices.Contains(got, "bin/sh f 0755 100000:100000 \"#!\"") {
		t.Errorf("shifted layer:\n%s", strings.Join(got, "\n"))
	}
	if p, _ := c.Path(img.Layers[0].Digest, m); p != shifted.Dir || !c.Has(img.Layers[0].Digest, m) {
		t.Errorf("Path = %s, Has = %v", p, c.Has(img.Layers[0].Digest, m))
	}
}

func TestCacheConcurrentUnpackers(t *testing.T) {
	requireRoot(t)
	img := openImage(t, testutil.Image(t, testutil.Layer(t, layerEntries("data", 2000)...)))
	dir := t.TempDir()
	var wg sync.WaitGroup
	results := make([]Unpacked, 6)
	errs := make([]error, 6)
	for i := range results {
		wg.Go(func() {
			c, err := NewCache(dir, WithoutSync()) // each as a separate moat process would have
			if err != nil {
				errs[i] = err
				return
			}
			results[i], errs[i] = c.Unpack(context.Background(), img.Layers[0], IDMap{})
		})
	}
	wg.Wait()
	fresh := 0
	for i := range results {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if results[i].Fresh {
			fresh++
		}
		if results[i].Dir != results[0].Dir {
			t.Errorf("unpacker %d: %s, unpacker 0: %s", i, results[i].Dir, results[0].Dir)
		}
	}
	if fresh != 1 {
		t.Errorf("%d unpackers unpacked the layer, want 1", fresh)
	}
	if got := listing(t, results[0].Dir, nil); len(got) != 2011 {
		t.Errorf("layer holds %d entries, want 2011 (2000 files in 11 directories)", len(got))
	}
}

var helperCache = flag.String("rootfs-helper-cache", "", "TestUnpackHelperProcess: unpack into this cache (set by TestCacheConcurrentProcesses)")
var helperLayout = flag.String("rootfs-helper-layout", "", "TestUnpackHelperProcess: the OCI layout whose layers to unpack")
var helperStart = flag.String("rootfs-helper-start", "", "TestUnpackHelperProcess: wait for this file to exist before unpacking")

// TestUnpackHelperProcess is the other moat process of TestCacheConcurrentProcesses.
func TestUnpackHelperProcess(t *testing.T) {
	if *helperCache == "" {
		t.Skip("helper process only")
	}
	img, err := image.Open(context.Background(), image.Target{Source: image.SourceOCIDir, Ref: *helperLayout}, image.Options{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	c, err := NewCache(*helperCache)
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(*helperStart); err == nil {
			break
		}
		time.Sleep(time.Millisecond)
	}
	us, err := c.UnpackAll(context.Background(), img.Layers, IDMap{})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range us {
		fmt.Printf("RESULT %s %v\n", u.DiffID, u.Fresh)
	}
}

func TestCacheConcurrentProcesses(t *testing.T) {
	requireRoot(t)
	if testing.Short() {
		t.Skip("starts processes")
	}
	layout := testutil.OCIDir(t, testutil.Image(t, testutil.Layer(t, layerEntries("a", 3000)...), testutil.Layer(t, layerEntries("b", 3000)...)))
	dir, start := t.TempDir(), filepath.Join(t.TempDir(), "go")
	var outs [3]bytes.Buffer
	var cmds []*exec.Cmd
	for i := range outs {
		cmd := exec.Command(os.Args[0], "-test.run=^TestUnpackHelperProcess$", "-test.count=1",
			"-rootfs-helper-cache="+dir, "-rootfs-helper-layout="+layout, "-rootfs-helper-start="+start)
		cmd.Stdout, cmd.Stderr = &outs[i], &outs[i]
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	if err := os.WriteFile(start, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	fresh := map[string]int{}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("helper %d: %v\n%s", i, err, outs[i].String())
		}
		for line := range strings.SplitSeq(outs[i].String(), "\n") {
			if f := strings.Fields(line); len(f) == 3 && f[0] == "RESULT" {
				fresh[f[1]] += 0
				if f[2] == "true" {
					fresh[f[1]]++
				}
			}
		}
	}
	if len(fresh) != 2 {
		t.Fatalf("results for %d layers, want 2: %v", len(fresh), fresh)
	}
	for d, n := range fresh {
		if n != 1 {
			t.Errorf("layer %s unpacked by %d processes, want 1", d, n)
		}
	}
	c, err := NewCache(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := cacheEntries(t, c); len(got) != 2 {
		t.Errorf("cache holds %v, want 2 layers and no temporary directories", got)
	}
}

// TestCacheKeyedByBlob: an image whose config claims another layer's diffID for its own
// content gets its own content, and never plants it for the image that holds that diffID.
func TestCacheKeyedByBlob(t *testing.T) {
	requireRoot(t)
	real := testutil.Layer(t, testutil.File("etc/passwd", "root:x:0:0:planted"))
	victim := testutil.Layer(t, testutil.File("etc/passwd", "root:x:0:0:genuine"))
	victimDiff, err := victim.DiffID()
	if err != nil {
		t.Fatal(err)
	}
	img := testutil.Image(t, real)
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg = cfg.DeepCopy()
	cfg.RootFS.DiffIDs = []v1.Hash{victimDiff}
	raw, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	opened := openImage(t, lyingImage{Image: img, config: raw})
	c, err := NewCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	planted, err := c.UnpackAll(context.Background(), opened.Layers, IDMap{})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(planted[0].Dir, "etc/passwd")); string(b) != "root:x:0:0:planted" {
		t.Errorf("the lying image's etc/passwd = %q, want its own", b)
	}
	genuine := openImage(t, testutil.Image(t, victim))
	us, err := c.UnpackAll(context.Background(), genuine.Layers, IDMap{})
	if err != nil {
		t.Fatal(err)
	}
	if !us[0].Fresh || us[0].Dir == planted[0].Dir {
		t.Errorf("the genuine layer was served from the lying image's: %+v", us[0])
	}
	if b, _ := os.ReadFile(filepath.Join(us[0].Dir, "etc/passwd")); string(b) != "root:x:0:0:genuine" {
		t.Errorf("etc/passwd = %q", b)
	}
}

// lyingImage is an image whose config is replaced without checking it against its layers
// (go-containerregistry's mutate.ConfigFile would look the layers up by the new diffIDs).
type lyingImage struct {
	v1.Image
	config []byte
}

func (l lyingImage) RawConfigFile() ([]byte, error) { return l.config, nil }

func (l lyingImage) ConfigFile() (*v1.ConfigFile, error) {
	return v1.ParseConfigFile(bytes.NewReader(l.config))
}

func (l lyingImage) ConfigName() (v1.Hash, error) {
	h, _, err := v1.SHA256(bytes.NewReader(l.config))
	return h, err
}

func (l lyingImage) Manifest() (*v1.Manifest, error) {
	m, err := l.Image.Manifest()
	if err != nil {
		return nil, err
	}
	m = m.DeepCopy()
	m.Config.Digest, _ = l.ConfigName()
	m.Config.Size = int64(len(l.config))
	return m, nil
}

func (l lyingImage) RawManifest() ([]byte, error) {
	m, err := l.Manifest()
	if err != nil {
		return nil, err
	}
	return json.Marshal(m)
}

func (l lyingImage) Digest() (v1.Hash, error) {
	raw, err := l.RawManifest()
	if err != nil {
		return v1.Hash{}, err
	}
	h, _, err := v1.SHA256(bytes.NewReader(raw))
	return h, err
}

func (l lyingImage) Size() (int64, error) {
	raw, err := l.RawManifest()
	return int64(len(raw)), err
}

// uncompressed makes a layer of the same tar as testutil.Layer stored uncompressed: the same
// diffID, another blob.
func uncompressed(t testing.TB, entries ...testutil.Entry) v1.Layer {
	t.Helper()
	return static.NewLayer(testutil.Tar(t, entries...), types.OCIUncompressedLayer)
}

// TestCacheHitNeedsBlob: naming a cached layer's diffID does not reach its files (another
// tenant's private layer); only its blob does. The same tar stored as another blob is unpacked
// on its own.
func TestCacheHitNeedsBlob(t *testing.T) {
	requireRoot(t)
	secret := []testutil.Entry{testutil.File("etc/secret", strings.Repeat("tenant A's key ", 100))}
	owner := openImage(t, testutil.Image(t, testutil.Layer(t, secret...)))
	c, err := NewCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.UnpackAll(context.Background(), owner.Layers, IDMap{}); err != nil {
		t.Fatal(err)
	}
	x := owner.Layers[0].DiffID
	thiefImg := testutil.Image(t, testutil.Layer(t, testutil.File("junk", "x")))
	cfg, _ := thiefImg.ConfigFile()
	cfg = cfg.DeepCopy()
	cfg.RootFS.DiffIDs = []v1.Hash{x}
	raw, _ := json.Marshal(cfg)
	thief := openImage(t, lyingImage{Image: thiefImg, config: raw})
	// Alone, and after the genuine blob in one image.
	for _, layers := range [][]*image.Layer{thief.Layers, {owner.Layers[0], thief.Layers[0]}} {
		us, err := c.UnpackAll(context.Background(), layers, IDMap{})
		if err != nil {
			t.Fatal(err)
		}
		got := us[len(us)-1]
		if _, err := os.Stat(filepath.Join(got.Dir, "etc/secret")); err == nil {
			t.Errorf("the thief's layer %s holds the secret", got.Dir)
		}
		if _, err := os.Stat(filepath.Join(got.Dir, "junk")); err != nil {
			t.Errorf("the thief's layer lacks its own file: %v", err)
		}
	}
	other := openImage(t, testutil.Image(t, uncompressed(t, secret...)))
	if other.Layers[0].DiffID != x || other.Layers[0].Digest == owner.Layers[0].Digest {
		t.Fatalf("uncompressed layer: %v %v", other.Layers[0].DiffID, other.Layers[0].Digest)
	}
	us, err := c.UnpackAll(context.Background(), other.Layers, IDMap{})
	if err != nil {
		t.Fatal(err)
	}
	if !us[0].Fresh {
		t.Error("the uncompressed blob was served from the compressed one's layer")
	}
	if b, _ := os.ReadFile(filepath.Join(us[0].Dir, "etc/secret")); !strings.HasPrefix(string(b), "tenant A's key") {
		t.Errorf("etc/secret = %.20q", b)
	}
}

func TestCacheRefusedLayerLeavesNothing(t *testing.T) {
	requireRoot(t)
	evil := openImage(t, testutil.Image(t, testutil.Layer(t, testutil.File("ok", "1"), testutil.Symlink("etc", "/etc"), testutil.File("etc/passwd", "pwned"))))
	c, err := NewCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.UnpackAll(context.Background(), evil.Layers, IDMap{}); !errors.Is(err, ErrUnsafe) {
		t.Fatalf("err = %v, want ErrUnsafe", err)
	}
	if got := cacheEntries(t, c); len(got) != 0 {
		t.Errorf("cache holds %v after a refused layer", got)
	}
	// A decompression bomb: a small blob that expands beyond the ratio limit.
	bomb := openImage(t, testutil.Image(t, testutil.ZerosLayer(t, "zeros", 8<<20)))
	c, err = NewCache(t.TempDir(), WithLimits(Limits{MaxBytes: 1 << 30, MaxEntries: 100, MaxPathLen: 100, MaxRatio: 10, RatioFloor: 1 << 20}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.UnpackAll(context.Background(), bomb.Layers, IDMap{}); !errors.Is(err, ErrLimit) {
		t.Fatalf("err = %v, want ErrLimit", err)
	}
	if got := cacheEntries(t, c); len(got) != 0 {
		t.Errorf("cache holds %v after a refused layer", got)
	}
}

func TestCacheCrashLeftovers(t *testing.T) {
	requireRoot(t)
	img := openImage(t, testutil.Image(t, testutil.Layer(t, testutil.File("a", "1"))))
	c, err := NewCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	key, _ := layerKey(img.Layers[0].Digest, IDMap{})
	other := strings.Repeat("ab", 32)
	busy := strings.Repeat("cd", 32)
	// What crashed unpackers leave: a half-written layer of this image, one of a layer no one
	// will unpack again, and one whose unpacker is still running.
	for _, d := range []string{".tmp-" + key + "-1/fs/half", ".tmp-" + other + "-2/fs", ".tmp-" + busy + "-3/fs"} {
		if err := os.MkdirAll(filepath.Join(c.layers, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if c.Has(img.Layers[0].Digest, IDMap{}) {
		t.Fatal("a temporary directory counts as a cached layer")
	}
	u, err := c.Unpack(context.Background(), img.Layers[0], IDMap{})
	if err != nil {
		t.Fatal(err)
	}
	if !u.Fresh {
		t.Error("the half-written layer was used")
	}
	if got := listing(t, u.Dir, nil); !slices.Equal(got, []string{"a f 0644 0:0 \"1\""}) {
		t.Errorf("layer: %v", got)
	}
	unlock, err := c.lock(context.Background(), busy)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if err := c.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := cacheEntries(t, c); !slices.Equal(got, []string{".tmp-" + busy + "-3", key}) {
		t.Errorf("after Sweep: %v, want the running unpack's directory and the layer", got)
	}
}

func TestCacheLockWaitsForContext(t *testing.T) {
	requireRoot(t)
	img := openImage(t, testutil.Image(t, testutil.Layer(t, testutil.File("a", "1"))))
	c, err := NewCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	key, _ := layerKey(img.Layers[0].Digest, IDMap{})
	unlock, err := c.lock(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := c.Unpack(ctx, img.Layers[0], IDMap{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want the context's deadline", err)
	}
	unlock()
	if u, err := c.Unpack(context.Background(), img.Layers[0], IDMap{}); err != nil || !u.Fresh {
		t.Errorf("after unlock: %+v %v", u, err)
	}
}

func TestLayerKey(t *testing.T) {
	hex := strings.Repeat("0f", 32)
	for _, tt := range []struct {
		h    v1.Hash
		m    IDMap
		want string
	}{
		{v1.Hash{Algorithm: "sha256", Hex: hex}, IDMap{}, hex},
		{v1.Hash{Algorithm: "sha256", Hex: hex}, IDMap{UID: 1, GID: 2, Size: 3}, hex + "-1-2-3"},
		{v1.Hash{Algorithm: "sha256", Hex: "../../etc"}, IDMap{}, ""},
		{v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("0F", 32)}, IDMap{}, ""},
		{v1.Hash{Algorithm: "sha512", Hex: hex + hex}, IDMap{}, ""},
		{v1.Hash{Algorithm: "sha256", Hex: hex}, IDMap{UID: 1 << 31, GID: 0, Size: 1 << 31}, ""},
	} {
		got, err := layerKey(tt.h, tt.m)
		if got != tt.want || (err == nil) != (tt.want != "") {
			t.Errorf("layerKey(%v, %+v) = %q, %v; want %q", tt.h, tt.m, got, err, tt.want)
		}
	}
}
