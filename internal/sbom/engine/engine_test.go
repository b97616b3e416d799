package engine

import (
	"context"
	"errors"
	"io"
	"path"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moatsec/moat/internal/image"
	"github.com/moatsec/moat/internal/sbom"
	"github.com/moatsec/moat/internal/sbom/dpkg"
	"github.com/moatsec/moat/internal/store"
	tu "github.com/moatsec/moat/internal/testutil"
)

// pkgCataloger reads "*.pkg" files holding "name version"; a file holding "owner NAME" claims
// every path listed after it for the deb package NAME. A file holding "panic" panics.
type pkgCataloger struct{}

func (pkgCataloger) Name() string                { return "pkg" }
func (pkgCataloger) Version() int                { return 1 }
func (pkgCataloger) Match(fi sbom.FileInfo) bool { return strings.HasSuffix(fi.Path, ".pkg") }
func (pkgCataloger) Parse(_ context.Context, fi sbom.FileInfo, r sbom.Content) (*sbom.Result, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	f := strings.Fields(string(b))
	switch {
	case len(f) == 1 && f[0] == "panic":
		panic("boom")
	case len(f) >= 2 && f[0] == "owner":
		return &sbom.Result{Owners: []sbom.FileOwner{{Type: sbom.TypeDeb, Package: f[1], Paths: f[2:]}}}, nil
	case len(f) == 2:
		return &sbom.Result{Packages: []sbom.Package{{Name: f[0], Version: f[1], Type: sbom.TypeNPM}}}, nil
	}
	return nil, errors.New("not a pkg file")
}

type releaseCataloger struct{}

func (releaseCataloger) Name() string                { return "release" }
func (releaseCataloger) Version() int                { return 1 }
func (releaseCataloger) Match(fi sbom.FileInfo) bool { return path.Base(fi.Path) == "os-release" }
func (releaseCataloger) Parse(_ context.Context, fi sbom.FileInfo, r sbom.Content) (*sbom.Result, error) {
	return &sbom.Result{Release: &sbom.Release{ID: "debian", VersionID: "12"}}, nil
}

func status(pkgs ...string) string {
	var b strings.Builder
	for _, p := range pkgs {
		n, v, _ := strings.Cut(p, "@")
		b.WriteString("Package: " + n + "\nStatus: install ok installed\nArchitecture: amd64\nVersion: " + v + "\n\n")
	}
	return b.String()
}

func newEngine(t *testing.T, opts ...Option) *Engine {
	t.Helper()
	opts = append([]Option{WithTempDir(t.TempDir()), WithClock(func() time.Time { return time.Unix(1700000000, 0) })}, opts...)
	e, err := New([]sbom.Cataloger{dpkg.New(), pkgCataloger{}, releaseCataloger{}}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func openOCI(t *testing.T, layers ...[]tu.Entry) *image.Image {
	t.Helper()
	var ls []v1.Layer
	for _, l := range layers {
		ls = append(ls, tu.Layer(t, l...))
	}
	dir := tu.OCIDir(t, tu.Image(t, ls...))
	img, err := image.Open(context.Background(), image.Target{Source: image.SourceOCIDir, Ref: dir}, image.Options{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { img.Close() })
	return img
}

func find(inv *sbom.Inventory, name string) *sbom.Package {
	for i := range inv.Packages {
		if inv.Packages[i].Name == name {
			return &inv.Packages[i]
		}
	}
	return nil
}

func TestLayeredFilesystem(t *testing.T) {
	img := openOCI(t,
		[]tu.Entry{
			tu.Dir("etc"), tu.File("usr/lib/os-release", "ID=debian"), tu.Symlink("etc/os-release", "../usr/lib/os-release"),
			tu.Symlink("lib", "usr/lib"),
			tu.File("var/lib/dpkg/status", status("libc6@2.36-9", "bash@5.2")),
			tu.File("app/a.pkg", "alpha 1.0"),
			tu.File("app/gone.pkg", "gone 1.0"),
			tu.File("app/dir/inner.pkg", "inner 1.0"),
			tu.File("opaque/old.pkg", "old 1.0"),
			tu.File("usr/lib/python3/x.pkg", "owned 1.0"),
			tu.File("dpkg-owner.pkg", "owner python3-x lib/python3/x.pkg"),
		},
		[]tu.Entry{
			// dpkg installs curl: the status file is rewritten with all three.
			tu.File("var/lib/dpkg/status", status("libc6@2.36-9", "bash@5.2", "curl@7.88")),
			tu.Whiteout("app/gone.pkg"),
			tu.Opaque("opaque"), tu.File("opaque/new.pkg", "new 2.0"),
			tu.File("app/a.pkg", "alpha 1.0"), // touched again, same package
		},
		[]tu.Entry{
			tu.Whiteout("app/dir"),
			tu.File("app/b.pkg", "beta 3.0"),
			tu.File("app/bad.pkg", "panic"),
		},
	)
	inv, err := newEngine(t).Inventory(context.Background(), img)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"libc6": 0, "bash": 0, "curl": 1, "alpha": 0, "new": 1, "beta": 2, "owned": 0}
	got := map[string]int{}
	for _, p := range inv.Packages {
		if p.Layer == nil {
			t.Errorf("%s has no layer", p.Name)
			continue
		}
		got[p.Name] = p.Layer.Index
	}
	for n, l := range want {
		if gl, ok := got[n]; !ok || gl != l {
			t.Errorf("package %s: layer %d (found %v), want layer %d", n, gl, ok, l)
		}
	}
	for _, n := range []string{"gone", "inner", "old"} {
		if _, ok := got[n]; ok {
			t.Errorf("package %s was deleted by a later layer but is listed", n)
		}
	}
	if inv.Distro == nil || inv.Distro.ID != "debian" {
		t.Errorf("distro = %+v", inv.Distro)
	}
	if p := find(inv, "curl"); p == nil || p.PURL != "pkg:deb/debian/curl@7.88?arch=amd64&distro=debian-12" {
		t.Errorf("curl purl = %+v", p)
	} else if p.Layer.CreatedBy != "layer 1" || p.Locations[0].Path != "/var/lib/dpkg/status" || p.Locations[0].LayerDigest != img.Layers[1].DiffID.String() {
		t.Errorf("curl layer/location = %+v %+v", p.Layer, p.Locations)
	}
	if p := find(inv, "owned"); p == nil || p.OwnedBy != "deb:python3-x" {
		t.Errorf("owned package not marked as owned through the /lib symlink: %+v", p)
	}
	if p := find(inv, "alpha"); p == nil || p.OwnedBy != "" {
		t.Errorf("alpha wrongly owned: %+v", p)
	}
	if !hasWarning(inv, "app/bad.pkg", "internal error") {
		t.Errorf("a panicking cataloger must become a warning naming the file; warnings: %+v", inv.Warnings)
	}
}

func hasWarning(inv *sbom.Inventory, p, substr string) bool {
	for _, w := range inv.Warnings {
		if w.Path == p && strings.Contains(w.Message, substr) {
			return true
		}
	}
	return false
}

func TestCache(t *testing.T) {
	img := openOCI(t, []tu.Entry{tu.File("var/lib/dpkg/status", status("libc6@2.36-9")), tu.File("a.pkg", "alpha 1")})
	st, err := store.Open(t.TempDir()+"/moat.db", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cold, err := newEngine(t, WithCache(st)).Inventory(context.Background(), img)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	warm, err := newEngine(t, WithCache(st), WithProgress(rec)).Inventory(context.Background(), img)
	if err != nil {
		t.Fatal(err)
	}
	if rec.reads != 0 || rec.cached != int64(len(img.Layers)) {
		t.Errorf("warm run read %d bytes and had %d cache hits of %d layers", rec.reads, rec.cached, len(img.Layers))
	}
	if len(cold.Packages) != 2 || len(warm.Packages) != len(cold.Packages) {
		t.Fatalf("cold %d packages, warm %d", len(cold.Packages), len(warm.Packages))
	}
	for i := range cold.Packages {
		if cold.Packages[i].PURL != warm.Packages[i].PURL || cold.Packages[i].Layer.Digest != warm.Packages[i].Layer.Digest {
			t.Errorf("warm package %d differs: %+v vs %+v", i, warm.Packages[i], cold.Packages[i])
		}
	}
}

type recorder struct{ reads, cached int64 }

func (r *recorder) LayerStart(_ int, _ int64, cached bool) {
	if cached {
		r.cached++
	}
}
func (r *recorder) LayerRead(_ int, n int64) { r.reads += n }
func (r *recorder) LayerDone(int)            {}
