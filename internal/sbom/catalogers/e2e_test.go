package catalogers

import (
	"archive/tar"
	"bufio"
	"context"
	"encoding/json"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/moatsec/moat/internal/env"
	"github.com/moatsec/moat/internal/image"
	"github.com/moatsec/moat/internal/sbom"
	"github.com/moatsec/moat/internal/sbom/engine"
	"github.com/moatsec/moat/internal/store"
	"github.com/moatsec/moat/internal/testutil"
)

// sampleDir is the sample image `make sample-image` builds: a debootstrap'd Debian 12 plus an
// application layer of real Go binaries, npm packages, Python distributions and jars.
func sampleDir(t *testing.T) string {
	t.Helper()
	dir := env.SampleImage.Get()
	if dir == "" {
		if testing.Short() {
			t.Skip("end-to-end test: needs the sample image")
		}
		t.Skip("MOAT_SAMPLE_IMAGE is not set; `make test` builds the sample image and sets it")
	}
	return dir
}

func inventoryOf(t *testing.T, target image.Target, st *store.Store) *sbom.Inventory {
	t.Helper()
	tmp := t.TempDir()
	img, err := image.Open(context.Background(), target, image.Options{TempDir: tmp, Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	opts := []engine.Option{engine.WithTempDir(tmp)}
	if st != nil {
		opts = append(opts, engine.WithCache(st))
	}
	e, err := engine.New(Default(tmp), opts...)
	if err != nil {
		t.Fatal(err)
	}
	inv, err := e.Inventory(context.Background(), img)
	if err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(tmp); len(ents) != 0 {
		t.Errorf("temporary files left behind: %v", ents)
	}
	return inv
}

// TestSampleImage checks that the inventory of the sample image is complete: every package
// in the dpkg status, every Go module in the binaries, every installed npm package, every
// Python distribution and every jar, each from the layer that put it there.
func TestSampleImage(t *testing.T) {
	dir := sampleDir(t)
	inv := inventoryOf(t, image.Target{Source: image.SourceOCIDir, Ref: filepath.Join(dir, "image.oci")}, nil)

	got := map[sbom.Type]map[string]sbom.Package{}
	for _, p := range inv.Packages {
		if got[p.Type] == nil {
			got[p.Type] = map[string]sbom.Package{}
		}
		got[p.Type][p.Name+"@"+p.Version] = p
		if p.PURL == "" || p.Layer == nil || len(p.Locations) == 0 {
			t.Errorf("%s %s@%s lacks a purl, layer or location", p.Type, p.Name, p.Version)
		}
	}
	if inv.Distro == nil || inv.Distro.ID != "debian" || inv.Distro.VersionID != "12" {
		t.Errorf("distro = %+v, want debian 12", inv.Distro)
	}

	// dpkg: the status file inside the debootstrap tarball is the truth.
	want := dpkgStatus(t, filepath.Join(dir, "rootfs.tar"))
	if len(want) < 80 {
		t.Fatalf("only %d packages in the sample's dpkg status", len(want))
	}
	for k := range want {
		p, ok := got[sbom.TypeDeb][k]
		if !ok {
			t.Errorf("dpkg package %s missing", k)
			continue
		}
		if p.Layer.Index != 0 || p.Source == nil || !strings.Contains(p.PURL, "distro=debian-12") {
			t.Errorf("dpkg package %s: layer %d, source %+v, purl %s", k, p.Layer.Index, p.Source, p.PURL)
		}
	}
	if len(got[sbom.TypeDeb]) != len(want) {
		t.Errorf("%d deb packages found, the status lists %d", len(got[sbom.TypeDeb]), len(want))
	}

	// Go: what `go version -m` says about each binary.
	bins, _ := filepath.Glob(filepath.Join(dir, "app/usr/local/bin/*"))
	if len(bins) < 2 {
		t.Fatalf("sample has %d Go binaries", len(bins))
	}
	for _, b := range bins {
		for _, k := range goModules(t, b) {
			if p, ok := got[sbom.TypeGolang][k]; !ok {
				t.Errorf("Go module %s of %s missing", k, filepath.Base(b))
			} else if p.Layer.Index != 1 {
				t.Errorf("Go module %s attributed to layer %d", k, p.Layer.Index)
			}
		}
	}
	for _, k := range []string{"golang.org/x/text@v0.3.7", "gopkg.in/yaml.v3@v3.0.0-20210107192922-496545a6307b"} {
		if _, ok := got[sbom.TypeGolang][k]; !ok {
			t.Errorf("sample-app dependency %s missing", k)
		}
	}

	// npm: every installed package.json under node_modules.
	nm := filepath.Join(dir, "app/srv/web/node_modules")
	n := 0
	filepath.WalkDir(nm, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Name() != "package.json" || filepath.Base(filepath.Dir(filepath.Dir(p))) != "node_modules" {
			return nil
		}
		var pj struct{ Name, Version string }
		b, _ := os.ReadFile(p)
		if json.Unmarshal(b, &pj) != nil || pj.Name == "" || pj.Version == "" {
			return nil
		}
		n++
		if _, ok := got[sbom.TypeNPM][pj.Name+"@"+pj.Version]; !ok {
			t.Errorf("npm package %s@%s (%s) missing", pj.Name, pj.Version, p)
		}
		return nil
	})
	if n < 50 {
		t.Errorf("only %d npm packages installed in the sample", n)
	}
	for _, k := range []string{"express@4.17.1", "lodash@4.17.20", "minimist@1.2.5"} {
		if _, ok := got[sbom.TypeNPM][k]; !ok {
			t.Errorf("npm package %s missing", k)
		}
	}

	// Python: the application's distributions are not owned; Debian's python3-yaml's is.
	byPath := map[string]sbom.Package{}
	for _, p := range inv.Packages {
		byPath[filepath.Dir(p.Locations[0].Path)] = p
	}
	site, _ := filepath.Glob(filepath.Join(dir, "app/opt/venv/lib/python3.11/site-packages/*-info"))
	for _, s := range site {
		name, ver, _ := strings.Cut(strings.TrimSuffix(strings.TrimSuffix(filepath.Base(s), ".egg-info"), ".dist-info"), "-")
		p, ok := byPath["/opt/venv/lib/python3.11/site-packages/"+filepath.Base(s)]
		if !ok || p.Name != name || p.Version != ver {
			t.Errorf("python distribution %s %s missing (found %+v)", name, ver, p)
		} else if p.OwnedBy != "" {
			t.Errorf("application distribution %s marked owned by %s", name, p.OwnedBy)
		}
	}
	owned := 0
	for _, p := range inv.Packages {
		if p.Type != sbom.TypePyPI {
			continue
		}
		if strings.HasPrefix(p.OwnedBy, "deb:") {
			owned++
			if p.Name == "PyYAML" && p.OwnedBy != "deb:python3-yaml" {
				t.Errorf("PyYAML owned by %q, want deb:python3-yaml", p.OwnedBy)
			}
		}
	}
	if owned == 0 {
		t.Error("no Python distribution marked as owned by a Debian package")
	}

	// Java: every jar.
	jars, _ := filepath.Glob(filepath.Join(dir, "app/opt/app/lib/*.jar"))
	for _, j := range jars {
		found := false
		for _, p := range got[sbom.TypeMaven] {
			if p.Locations[0].Path == "/opt/app/lib/"+filepath.Base(j) {
				found = true
			}
		}
		if !found {
			t.Errorf("jar %s has no package", filepath.Base(j))
		}
	}
	if len(jars) < 3 {
		t.Errorf("sample has %d jars", len(jars))
	}
}

// TestSampleImageSources inventories the same image from every source it can be read from, and
// twice with a cache: all give the same packages.
func TestSampleImageSources(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	dir := sampleDir(t)
	base := inventoryOf(t, image.Target{Source: image.SourceOCIDir, Ref: filepath.Join(dir, "image.oci")}, nil)

	p, err := layout.FromPath(filepath.Join(dir, "image.oci"))
	if err != nil {
		t.Fatal(err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	img, err := idx.Image(m.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	host := testutil.Registry(t)
	testutil.Push(t, host+"/sample:1", img)

	st, err := store.Open(filepath.Join(t.TempDir(), "moat.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, tc := range []struct {
		name   string
		target image.Target
		st     *store.Store
	}{
		{"docker-archive", image.Target{Source: image.SourceDockerArchive, Ref: filepath.Join(dir, "image.tar")}, nil},
		{"registry", image.Target{Source: image.SourceRegistry, Ref: host + "/sample:1"}, nil},
		{"registry, cold cache", image.Target{Source: image.SourceRegistry, Ref: host + "/sample:1"}, st},
		{"oci-dir, warm cache", image.Target{Source: image.SourceOCIDir, Ref: filepath.Join(dir, "image.oci")}, st},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inv := inventoryOf(t, tc.target, tc.st)
			if len(inv.Packages) != len(base.Packages) {
				t.Fatalf("%d packages, oci-dir gave %d", len(inv.Packages), len(base.Packages))
			}
			for i := range inv.Packages {
				a, b := inv.Packages[i], base.Packages[i]
				if a.PURL != b.PURL || a.Layer.DiffID != b.Layer.DiffID || a.OwnedBy != b.OwnedBy {
					t.Errorf("package %d: %s (layer %s) vs %s (layer %s)", i, a.PURL, a.Layer.DiffID, b.PURL, b.Layer.DiffID)
				}
			}
		})
	}
}

func dpkgStatus(t *testing.T, rootfs string) map[string]bool {
	t.Helper()
	f, err := os.Open(rootfs)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("no dpkg status in %s: %v", rootfs, err)
		}
		if strings.TrimPrefix(h.Name, "./") != "var/lib/dpkg/status" {
			continue
		}
		out := map[string]bool{}
		var name, ver string
		installed := false
		sc := bufio.NewScanner(io.LimitReader(tr, h.Size))
		sc.Buffer(nil, 1<<20)
		flush := func() {
			if name != "" && installed {
				out[name+"@"+ver] = true
			}
			name, ver, installed = "", "", false
		}
		for sc.Scan() {
			l := sc.Text()
			switch {
			case l == "":
				flush()
			case strings.HasPrefix(l, "Package: "):
				name = strings.TrimPrefix(l, "Package: ")
			case strings.HasPrefix(l, "Version: "):
				ver = strings.TrimPrefix(l, "Version: ")
			case strings.HasPrefix(l, "Status: "):
				installed = strings.HasSuffix(l, " installed")
			}
		}
		flush()
		return out
	}
}

// goModules lists "module@version" for every module `go version -m` reports, and stdlib.
func goModules(t *testing.T, bin string) []string {
	t.Helper()
	out, err := exec.Command("go", "version", "-m", bin).Output()
	if err != nil {
		t.Fatalf("go version -m %s: %v", bin, err)
	}
	var mods []string
	for i, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if i == 0 && len(f) == 2 {
			mods = append(mods, "stdlib@"+strings.TrimPrefix(f[1], "go"))
			continue
		}
		if len(f) >= 3 && f[0] == "dep" && f[2] != "(devel)" {
			mods = append(mods, f[1]+"@"+f[2])
		}
		if len(f) >= 3 && f[0] == "=>" {
			mods[len(mods)-1] = f[1] + "@" + f[2]
		}
	}
	return mods
}
