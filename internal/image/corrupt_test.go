package image

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	tu "github.com/moatsec/moat/internal/testutil"
)

// memLayout is an OCI layout in memory, for readLayout.
type memLayout struct {
	fs       fstest.MapFS
	manifest v1.Manifest
	config   v1.ConfigFile
}

func putBlob(fsys fstest.MapFS, b []byte) v1.Hash {
	h, _, _ := v1.SHA256(bytes.NewReader(b))
	fsys["blobs/sha256/"+h.Hex] = &fstest.MapFile{Data: b}
	return h
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// setIndex writes index.json listing descs.
func setIndex(t testing.TB, fsys fstest.MapFS, descs ...v1.Descriptor) {
	t.Helper()
	fsys["index.json"] = &fstest.MapFile{Data: mustJSON(t, v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: descs})}
}

// putManifest stores raw as a manifest blob and returns its descriptor.
func putManifest(fsys fstest.MapFS, raw []byte) v1.Descriptor {
	return v1.Descriptor{MediaType: types.OCIManifestSchema1, Digest: putBlob(fsys, raw), Size: int64(len(raw))}
}

// newMemLayout stores img as an in-memory layout.
func newMemLayout(t testing.TB, img v1.Image) *memLayout {
	t.Helper()
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	l := &memLayout{fs: fstest.MapFS{"oci-layout": {Data: []byte(`{"imageLayoutVersion":"1.0.0"}`)}}, manifest: *m.DeepCopy(), config: *cfg.DeepCopy()}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, layer := range layers {
		rc, err := layer.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		putBlob(l.fs, b)
	}
	l.write(t)
	return l
}

// write stores the config and manifest (after edits) and points index.json at them.
func (l *memLayout) write(t testing.TB) v1.Descriptor {
	t.Helper()
	cb := mustJSON(t, l.config)
	l.manifest.Config.Digest, l.manifest.Config.Size = putBlob(l.fs, cb), int64(len(cb))
	d := putManifest(l.fs, mustJSON(t, l.manifest))
	setIndex(t, l.fs, d)
	return d
}

func amd64() *v1.Platform { return &v1.Platform{OS: "linux", Architecture: "amd64"} }

func TestReadLayoutCorrupt(t *testing.T) {
	img, _ := testImage(t)
	tests := []struct {
		name    string
		edit    func(t *testing.T, l *memLayout)
		wantErr string
		wantIs  error
	}{
		{name: "valid", edit: func(*testing.T, *memLayout) {}},
		{name: "oci-layout missing", edit: func(_ *testing.T, l *memLayout) { delete(l.fs, "oci-layout") }, wantErr: "not an OCI layout"},
		{name: "oci-layout garbage", edit: func(_ *testing.T, l *memLayout) { l.fs["oci-layout"].Data = []byte("{{") }, wantErr: "imageLayoutVersion"},
		{name: "oci-layout without version", edit: func(_ *testing.T, l *memLayout) { l.fs["oci-layout"].Data = []byte("{}") }, wantErr: "imageLayoutVersion"},
		{name: "index.json missing", edit: func(_ *testing.T, l *memLayout) { delete(l.fs, "index.json") }, wantErr: "index.json"},
		{name: "index.json garbage", edit: func(_ *testing.T, l *memLayout) { l.fs["index.json"].Data = []byte("\x00garbage{") }, wantErr: "parsing index.json"},
		{name: "index.json too large", edit: func(_ *testing.T, l *memLayout) {
			l.fs["index.json"].Data = bytes.Repeat([]byte(" "), maxMetadataFile+1)
		}, wantErr: "larger than"},
		{name: "index.json empty", edit: func(t *testing.T, l *memLayout) { setIndex(t, l.fs) }, wantErr: "no image for platform"},
		{name: "manifest digest climbs out", edit: func(_ *testing.T, l *memLayout) {
			l.fs["index.json"].Data = []byte(`{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:../../../../etc/passwd","size":10}]}`)
		}, wantErr: "index.json"},
		{name: "layer digest climbs out", edit: func(t *testing.T, l *memLayout) {
			raw := strings.Replace(string(mustJSON(t, l.manifest)), l.manifest.Layers[0].Digest.String(), "sha256:../../../../etc/passwd", 1)
			setIndex(t, l.fs, putManifest(l.fs, []byte(raw)))
		}, wantErr: "parsing manifest"},
		{name: "manifest missing", edit: func(t *testing.T, l *memLayout) {
			d := l.write(t)
			delete(l.fs, "blobs/sha256/"+d.Digest.Hex)
		}, wantErr: "reading manifest"},
		{name: "manifest tampered", edit: func(t *testing.T, l *memLayout) {
			d := l.write(t)
			f := l.fs["blobs/sha256/"+d.Digest.Hex]
			f.Data = append(bytes.Clone(f.Data), ' ')
		}, wantIs: ErrDigestMismatch},
		{name: "config tampered", edit: func(t *testing.T, l *memLayout) {
			f := l.fs["blobs/sha256/"+l.manifest.Config.Digest.Hex]
			f.Data = bytes.Replace(f.Data, []byte("amd64"), []byte("arm64"), 1)
		}, wantIs: ErrDigestMismatch},
		{name: "config garbage", edit: func(t *testing.T, l *memLayout) {
			l.manifest.Config.Digest = putBlob(l.fs, []byte("not json"))
			setIndex(t, l.fs, putManifest(l.fs, mustJSON(t, l.manifest)))
		}, wantErr: "parsing config"},
		{name: "fewer diffIDs than layers", edit: func(t *testing.T, l *memLayout) {
			l.config.RootFS.DiffIDs = l.config.RootFS.DiffIDs[:1]
			l.write(t)
		}, wantErr: "manifest lists 2 layers but the config lists 1 diffIDs"},
		{name: "more diffIDs than layers", edit: func(t *testing.T, l *memLayout) {
			l.manifest.Layers = l.manifest.Layers[:1]
			l.write(t)
		}, wantErr: "manifest lists 1 layers but the config lists 2 diffIDs"},
		{name: "config as a layer", edit: func(t *testing.T, l *memLayout) {
			l.manifest.Layers[1].MediaType = types.OCIConfigJSON
			l.write(t)
		}, wantErr: "unsupported media type"},
		{name: "two images", edit: func(t *testing.T, l *memLayout) {
			d := l.write(t)
			l.config.Author = "other"
			setIndex(t, l.fs, d, l.write(t))
		}, wantErr: "keep one image per layout"},
		{name: "other platform only", edit: func(t *testing.T, l *memLayout) {
			d := l.write(t)
			d.Platform = &v1.Platform{OS: "linux", Architecture: "riscv64"}
			setIndex(t, l.fs, d)
		}, wantErr: "no image for platform"},
		{name: "nested too deep", edit: func(t *testing.T, l *memLayout) {
			d := l.write(t)
			for range maxIndexDepth + 2 {
				raw := mustJSON(t, v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{d}})
				d = v1.Descriptor{MediaType: types.OCIImageIndex, Digest: putBlob(l.fs, raw), Size: int64(len(raw))}
			}
			setIndex(t, l.fs, d)
		}, wantErr: "nested deeper"},
		{name: "nested index garbage", edit: func(t *testing.T, l *memLayout) {
			setIndex(t, l.fs, v1.Descriptor{MediaType: types.OCIImageIndex, Digest: putBlob(l.fs, []byte("[")), Size: 1})
		}, wantErr: "parsing index"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newMemLayout(t, img)
			tt.edit(t, l)
			got := &Image{}
			err := readLayout(got, l.fs, amd64())
			switch {
			case tt.wantErr == "" && tt.wantIs == nil:
				if err != nil {
					t.Fatal(err)
				}
				if len(got.Layers) != 2 {
					t.Fatalf("%d layers", len(got.Layers))
				}
			case tt.wantIs != nil:
				if !errors.Is(err, tt.wantIs) {
					t.Fatalf("err = %v, want %v", err, tt.wantIs)
				}
			default:
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
			}
		})
	}
}

// TestReadLayoutNested picks the image for a platform out of an index nested in index.json,
// as `docker save` and `oras` write multi-platform layouts.
func TestReadLayoutNested(t *testing.T) {
	amdImg := tu.WithPlatform(t, tu.Image(t, tu.Layer(t, tu.File("arch", "amd64"))), "amd64")
	armImg := tu.WithPlatform(t, tu.Image(t, tu.Layer(t, tu.File("arch", "arm64"))), "arm64")
	fsys := fstest.MapFS{}
	var descs []v1.Descriptor
	for _, img := range []v1.Image{amdImg, armImg} {
		l := newMemLayout(t, img)
		maps.Copy(fsys, l.fs)
		d := l.write(t)
		maps.Copy(fsys, l.fs)
		d.Platform = &v1.Platform{OS: "linux", Architecture: l.config.Architecture}
		if d.Platform.Architecture == "arm64" {
			d.Platform.Variant = "v8"
		}
		descs = append(descs, d)
	}
	raw := mustJSON(t, v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: descs})
	setIndex(t, fsys, v1.Descriptor{MediaType: types.OCIImageIndex, Digest: putBlob(fsys, raw), Size: int64(len(raw))})
	for _, arch := range []string{"amd64", "arm64"} {
		got := &Image{}
		// No variant asked for: an arm64/v8 descriptor matches, as it does for HostPlatform.
		if err := readLayout(got, fsys, &v1.Platform{OS: "linux", Architecture: arch}); err != nil {
			t.Fatalf("%s: %v", arch, err)
		}
		if got.Platform.Architecture != arch {
			t.Errorf("asked for %s, got %s", arch, got.Platform)
		}
	}
	if err := readLayout(&Image{}, fsys, &v1.Platform{OS: "linux", Architecture: "s390x"}); err == nil || !strings.Contains(err.Error(), "no image for platform") {
		t.Errorf("s390x: %v", err)
	}
	if p := HostPlatform(); p.Variant != "" {
		t.Errorf("HostPlatform names variant %q, which descriptors without one never match", p.Variant)
	}
}

// TestReadLayoutFanOut: indexes that list the same nested index thousands of times must not
// make the walk read it thousands of times over.
func TestReadLayoutFanOut(t *testing.T) {
	fsys := fstest.MapFS{"oci-layout": {Data: []byte(`{"imageLayoutVersion":"1.0.0"}`)}}
	leaf := mustJSON(t, v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{}})
	d := v1.Descriptor{MediaType: types.OCIImageIndex, Digest: putBlob(fsys, leaf), Size: int64(len(leaf))}
	for range 3 {
		many := make([]v1.Descriptor, 3000)
		for i := range many {
			many[i] = d
		}
		raw := mustJSON(t, v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: many})
		d = v1.Descriptor{MediaType: types.OCIImageIndex, Digest: putBlob(fsys, raw), Size: int64(len(raw))}
	}
	setIndex(t, fsys, d, d)
	err := readLayout(&Image{}, fsys, amd64())
	if err == nil || !strings.Contains(err.Error(), "no image for platform") {
		t.Fatalf("err = %v", err)
	}
}

func TestBlobPath(t *testing.T) {
	hex := strings.Repeat("ab", 32)
	for _, tt := range []struct {
		h    v1.Hash
		want string
	}{
		{v1.Hash{Algorithm: "sha256", Hex: hex}, "blobs/sha256/" + hex},
		{v1.Hash{Algorithm: "sha256", Hex: "../../etc/passwd"}, ""},
		{v1.Hash{Algorithm: "sha256", Hex: "ab/../../cd"}, ""},
		{v1.Hash{Algorithm: "sha256", Hex: strings.ToUpper(hex)}, ""},
		{v1.Hash{Algorithm: "../sha256", Hex: hex}, ""},
		{v1.Hash{Algorithm: "md5", Hex: hex}, ""},
		{v1.Hash{}, ""},
	} {
		got, err := blobPath(tt.h)
		if got != tt.want || (err == nil) != (tt.want != "") {
			t.Errorf("blobPath(%#v) = %q, %v; want %q", tt.h, got, err, tt.want)
		}
	}
}

// blobFile is the path of the blob with digest h in an OCI layout directory.
func blobFile(dir string, h v1.Hash) string { return filepath.Join(dir, "blobs", h.Algorithm, h.Hex) }

// readAllLayers opens an image and reads every layer to EOF, returning the first error.
func readAllLayers(t *testing.T, target Target) error {
	t.Helper()
	img, err := Open(context.Background(), target, Options{TempDir: t.TempDir()})
	if err != nil {
		return err
	}
	defer img.Close()
	for _, l := range img.Layers {
		rc, err := l.Open(context.Background())
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

func TestLayerDigestMismatch(t *testing.T) {
	img, tars := testImage(t)
	mf, _ := img.Manifest()
	other := tu.Gzip(tu.Tar(t, tu.File("etc/os-release", "ID=evil\n")))
	tests := []struct {
		name    string
		target  func(t *testing.T) Target
		wantIs  error
		wantErr bool // any error will do
	}{
		{name: "oci-dir layer replaced by another gzip tar", wantIs: ErrDigestMismatch, target: func(t *testing.T) Target {
			dir := tu.OCIDir(t, img)
			writeFile(t, blobFile(dir, mf.Layers[1].Digest), other)
			return Target{SourceOCIDir, dir}
		}},
		{name: "oci-dir layer with trailing bytes", wantErr: true, target: func(t *testing.T) Target {
			dir := tu.OCIDir(t, img)
			b, _ := os.ReadFile(blobFile(dir, mf.Layers[0].Digest))
			writeFile(t, blobFile(dir, mf.Layers[0].Digest), append(b, "trailing"...))
			return Target{SourceOCIDir, dir}
		}},
		{name: "oci-dir uncompressed layer with a flipped byte", wantIs: ErrDigestMismatch, target: func(t *testing.T) Target {
			plain := tu.Image(t, static.NewLayer(tars[0], types.OCIUncompressedLayer))
			pm, _ := plain.Manifest()
			dir := tu.OCIDir(t, plain)
			b := bytes.Replace(bytes.Clone(tars[0]), []byte("ID=debian"), []byte("ID=devian"), 1)
			writeFile(t, blobFile(dir, pm.Layers[0].Digest), b)
			return Target{SourceOCIDir, dir}
		}},
		{name: "oci-archive layer replaced", wantIs: ErrDigestMismatch, target: func(t *testing.T) Target {
			dir := tu.OCIDir(t, img)
			writeFile(t, blobFile(dir, mf.Layers[0].Digest), other)
			return Target{SourceOCIArchive, tu.TarDir(t, dir)}
		}},
		{name: "docker-archive layer replaced", wantIs: ErrDigestMismatch, target: func(t *testing.T) Target {
			files := readTar(t, tu.DockerArchive(t, img, "example.com/test/img:1"))
			for i, f := range files {
				if strings.HasSuffix(f.name, ".tar.gz") {
					files[i].body = other
				}
			}
			return Target{SourceDockerArchive, tarFile(t, files...)}
		}},
		{name: "legacy docker-archive layer with a flipped byte", wantIs: ErrDigestMismatch, target: func(t *testing.T) Target {
			files := readTar(t, legacyDockerArchive(t, img, tars))
			for i, f := range files {
				if strings.HasSuffix(f.name, "/layer.tar") {
					files[i].body = bytes.Replace(f.body, []byte("echo hi"), []byte("echo ha"), 1)
				}
			}
			return Target{SourceDockerArchive, tarFile(t, files...)}
		}},
		{name: "oci-dir manifest tampered", wantIs: ErrDigestMismatch, target: func(t *testing.T) Target {
			dir := tu.OCIDir(t, img)
			d, _ := img.Digest()
			b, _ := os.ReadFile(blobFile(dir, d))
			writeFile(t, blobFile(dir, d), append(b, '\n'))
			return Target{SourceOCIDir, dir}
		}},
		{name: "oci-dir config tampered", wantIs: ErrDigestMismatch, target: func(t *testing.T) Target {
			dir := tu.OCIDir(t, img)
			b, _ := os.ReadFile(blobFile(dir, mf.Config.Digest))
			writeFile(t, blobFile(dir, mf.Config.Digest), bytes.Replace(b, []byte("layer 1"), []byte("layer X"), 1))
			return Target{SourceOCIDir, dir}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := readAllLayers(t, tt.target(t))
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Fatalf("err = %v, want %v", err, tt.wantIs)
			}
			if err == nil {
				t.Fatal("tampered image read without error")
			}
		})
	}
}

func TestArchiveCorrupt(t *testing.T) {
	img, _ := testImage(t)
	dockerTar := tu.DockerArchive(t, img, "example.com/test/img:1")
	manifestWith := func(t *testing.T, edit func(m map[string]any)) Target {
		files := readTar(t, dockerTar)
		for i, f := range files {
			if f.name == "manifest.json" {
				var ms []map[string]any
				if err := json.Unmarshal(f.body, &ms); err != nil {
					t.Fatal(err)
				}
				edit(ms[0])
				files[i].body = mustJSON(t, ms)
			}
		}
		return Target{SourceDockerArchive, tarFile(t, files...)}
	}
	tests := []struct {
		name    string
		target  func(t *testing.T) Target
		wantErr string // from Open, or from reading the layers
	}{
		{name: "truncated docker archive", wantErr: "unexpected EOF", target: func(t *testing.T) Target {
			b, _ := os.ReadFile(dockerTar)
			return Target{SourceDockerArchive, writeFile(t, filepath.Join(t.TempDir(), "t.tar"), b[:len(b)/2+100])}
		}},
		{name: "truncated gzip docker archive", wantErr: "unexpected EOF", target: func(t *testing.T) Target {
			b, _ := os.ReadFile(tu.GzipFile(t, dockerTar))
			return Target{SourceDockerArchive, writeFile(t, filepath.Join(t.TempDir(), "t.tar.gz"), b[:len(b)/2])}
		}},
		{name: "truncated oci archive", wantErr: "unexpected EOF", target: func(t *testing.T) Target {
			b, _ := os.ReadFile(tu.OCIArchive(t, img))
			return Target{SourceOCIArchive, writeFile(t, filepath.Join(t.TempDir(), "t.tar"), b[:len(b)-1500])}
		}},
		{name: "not a tar", wantErr: "archive index", target: func(t *testing.T) Target {
			return Target{SourceDockerArchive, writeFile(t, filepath.Join(t.TempDir(), "x"), bytes.Repeat([]byte("junk"), 300))}
		}},
		{name: "no manifest.json", wantErr: "manifest.json", target: func(t *testing.T) Target {
			return Target{SourceDockerArchive, tarFile(t, tarFileEntry{"hello", []byte("x")})}
		}},
		{name: "manifest.json garbage", wantErr: "parsing manifest.json", target: func(t *testing.T) Target {
			return Target{SourceDockerArchive, tarFile(t, tarFileEntry{"manifest.json", []byte("{not json")})}
		}},
		{name: "empty manifest.json", wantErr: "holds 0 images", target: func(t *testing.T) Target {
			return Target{SourceDockerArchive, tarFile(t, tarFileEntry{"manifest.json", []byte("[]")})}
		}},
		{name: "config path climbs out", wantErr: "reading config", target: func(t *testing.T) Target {
			return manifestWith(t, func(m map[string]any) { m["Config"] = "../../../../etc/passwd" })
		}},
		{name: "layer path climbs out", wantErr: "does not exist", target: func(t *testing.T) Target {
			return manifestWith(t, func(m map[string]any) { m["Layers"].([]any)[0] = "../../../../etc/passwd" })
		}},
		{name: "layer missing", wantErr: "does not exist", target: func(t *testing.T) Target {
			return manifestWith(t, func(m map[string]any) { m["Layers"].([]any)[1] = "nope.tar.gz" })
		}},
		{name: "layer count differs from diffIDs", wantErr: "manifest lists 1 layers but the config lists 2 diffIDs", target: func(t *testing.T) Target {
			return manifestWith(t, func(m map[string]any) { m["Layers"] = m["Layers"].([]any)[:1] })
		}},
		{name: "oci archive without oci-layout", wantErr: "not an OCI layout", target: func(t *testing.T) Target {
			dir := tu.OCIDir(t, img)
			os.Remove(filepath.Join(dir, "oci-layout"))
			return Target{SourceOCIArchive, tu.TarDir(t, dir)}
		}},
		{name: "oci-dir without oci-layout", wantErr: "not an OCI layout", target: func(t *testing.T) Target {
			dir := tu.OCIDir(t, img)
			os.Remove(filepath.Join(dir, "oci-layout"))
			return Target{SourceOCIDir, dir}
		}},
		{name: "oci-dir index.json garbage", wantErr: "parsing index.json", target: func(t *testing.T) Target {
			dir := tu.OCIDir(t, img)
			writeFile(t, filepath.Join(dir, "index.json"), []byte("]]"))
			return Target{SourceOCIDir, dir}
		}},
		{name: "oci-dir missing", wantErr: "not an OCI layout", target: func(t *testing.T) Target {
			return Target{SourceOCIDir, filepath.Join(t.TempDir(), "nope")}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := readAllLayers(t, tt.target(t))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

// TestArchiveBomb: a gzip-compressed archive that expands past the ratio limit is refused
// instead of filling the disk.
func TestArchiveBomb(t *testing.T) {
	defer func(floor int64) { archiveRatioFloor = floor }(archiveRatioFloor)
	archiveRatioFloor = 1 << 20
	p := writeFile(t, filepath.Join(t.TempDir(), "bomb.tar.gz"), tu.Gzip(make([]byte, 4<<20)))
	tmp := t.TempDir()
	_, err := Open(context.Background(), Target{SourceDockerArchive, p}, Options{TempDir: tmp})
	if err == nil || !strings.Contains(err.Error(), "expands to more than") {
		t.Fatalf("err = %v", err)
	}
	emptyDir(t, tmp)
}

func ExampleParseTarget() {
	t, err := ParseTarget("oci-dir:./layout")
	fmt.Println(t.Source, t.Ref, err)
	// Output: oci-dir ./layout <nil>
}
