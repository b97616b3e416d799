package image

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	tu "github.com/moatsec/moat/internal/testutil"
)

// layerEntries are the two layers of the test image, kept so that tests can compare what
// Layer.Open yields with the tar that was written.
var layerEntries = [][]tu.Entry{
	{tu.Dir("etc"), tu.File("etc/os-release", "ID=debian\nVERSION_ID=12\n"), tu.File("var/lib/dpkg/status", "Package: a\n")},
	{tu.File("usr/bin/tool", "#!/bin/sh\necho hi\n"), tu.Symlink("usr/bin/t", "tool")},
}

// testImage is a two-layer image and the uncompressed tar of each layer.
func testImage(t testing.TB) (v1.Image, [][]byte) {
	t.Helper()
	var ls []v1.Layer
	var tars [][]byte
	for _, es := range layerEntries {
		ls = append(ls, tu.Layer(t, es...))
		tars = append(tars, tu.Tar(t, es...))
	}
	return tu.Image(t, ls...), tars
}

func writeFile(t *testing.T, p string, b []byte) string {
	t.Helper()
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// tarFile writes files, in order, as an uncompressed tar file.
func tarFile(t *testing.T, files ...tarFileEntry) string {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(f.body))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(f.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return writeFile(t, filepath.Join(t.TempDir(), "archive.tar"), buf.Bytes())
}

type tarFileEntry struct {
	name string
	body []byte
}

// readTar returns the regular files of a tar file, in order.
func readTar(t *testing.T, p string) []tarFileEntry {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []tarFileEntry
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			out = append(out, tarFileEntry{h.Name, b})
		}
	}
}

func TestParseTarget(t *testing.T) {
	img, _ := testImage(t)
	plainDir := t.TempDir()
	ociDir := tu.OCIDir(t, img)
	dockerTar := tu.DockerArchive(t, img, "example.com/test/img:1")
	dockerTarGz := tu.GzipFile(t, dockerTar)
	ociTar := tu.OCIArchive(t, img)
	ociTarGz := tu.GzipFile(t, ociTar)
	random := writeFile(t, filepath.Join(t.TempDir(), "random.bin"), []byte(strings.Repeat("not a tar archive at all ", 100)))
	empty := writeFile(t, filepath.Join(t.TempDir(), "empty.tar"), nil)
	otherTar := tarFile(t, tarFileEntry{"hello.txt", []byte("hi")})
	badGzip := writeFile(t, filepath.Join(t.TempDir(), "bad.tar.gz"), []byte{0x1f, 0x8b, 0, 0, 0})
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "missing.tar")

	tests := []struct {
		arg     string
		want    Target
		wantErr string
	}{
		{arg: "registry:alpine:3.19", want: Target{SourceRegistry, "alpine:3.19"}},
		{arg: "registry:localhost:5000/x@sha256:abc", want: Target{SourceRegistry, "localhost:5000/x@sha256:abc"}},
		{arg: "docker-archive:img.tar", want: Target{SourceDockerArchive, "img.tar"}},
		{arg: "oci-archive:img.tar", want: Target{SourceOCIArchive, "img.tar"}},
		{arg: "oci-dir:./layout", want: Target{SourceOCIDir, "./layout"}},
		{arg: "docker:alpine:3.19", want: Target{SourceDocker, "alpine:3.19"}},
		{arg: "dir:/", want: Target{SourceDir, "/"}},
		{arg: "registry:", wantErr: "no image after the registry prefix"},
		{arg: "docker-archive:", wantErr: "no image after the docker-archive prefix"},
		{arg: "oci-archive:", wantErr: "no image after the oci-archive prefix"},
		{arg: "oci-dir:", wantErr: "no image after the oci-dir prefix"},
		{arg: "docker:", wantErr: "no image after the docker prefix"},
		{arg: "dir:", wantErr: "no image after the dir prefix"},
		{arg: "", wantErr: "empty image target"},
		{arg: plainDir, want: Target{SourceDir, plainDir}},
		{arg: ociDir, want: Target{SourceOCIDir, ociDir}},
		{arg: dockerTar, want: Target{SourceDockerArchive, dockerTar}},
		{arg: dockerTarGz, want: Target{SourceDockerArchive, dockerTarGz}},
		{arg: ociTar, want: Target{SourceOCIArchive, ociTar}},
		{arg: ociTarGz, want: Target{SourceOCIArchive, ociTarGz}},
		{arg: random, wantErr: "neither a directory nor a readable tar archive"},
		{arg: empty, wantErr: "neither manifest.json"},
		{arg: otherTar, wantErr: "neither manifest.json"},
		{arg: badGzip, wantErr: "gzip header"},
		{arg: fifo, wantErr: "nor a regular file"},
		{arg: missing, want: Target{SourceRegistry, missing}},
		{arg: "alpine:3.19", want: Target{SourceRegistry, "alpine:3.19"}},
		{arg: "localhost:5000/team/app", want: Target{SourceRegistry, "localhost:5000/team/app"}},
		{arg: "unknown:thing", want: Target{SourceRegistry, "unknown:thing"}},
	}
	for _, tt := range tests {
		t.Run(tt.arg, func(t *testing.T) {
			got, err := ParseTarget(tt.arg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseTarget(%q) = %v, %v; want error containing %q", tt.arg, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseTarget(%q) = %v, %v; want %v", tt.arg, got, err, tt.want)
			}
		})
	}
}

// checkImage compares an opened image with the image it was made from.
func checkImage(t *testing.T, got *Image, want v1.Image, tars [][]byte) {
	t.Helper()
	cfgName, err := want.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	wantCfg, err := want.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != cfgName.String() {
		t.Errorf("ID = %s, want the config digest %s", got.ID, cfgName)
	}
	if got.Config == nil || got.Config.OS != "linux" || got.Config.Architecture != wantCfg.Architecture {
		t.Errorf("config = %+v", got.Config)
	}
	if got.Platform == nil || got.Platform.Architecture != wantCfg.Architecture {
		t.Errorf("platform = %v", got.Platform)
	}
	if len(got.Layers) != len(tars) {
		t.Fatalf("%d layers, want %d", len(got.Layers), len(tars))
	}
	for i, l := range got.Layers {
		if l.Index != i {
			t.Errorf("layer %d has index %d", i, l.Index)
		}
		if l.DiffID != wantCfg.RootFS.DiffIDs[i] {
			t.Errorf("layer %d diffID %s, want %s", i, l.DiffID, wantCfg.RootFS.DiffIDs[i])
		}
		if want := "layer " + string(rune('0'+i)); l.CreatedBy != want {
			t.Errorf("layer %d created by %q, want %q", i, l.CreatedBy, want)
		}
		rc, err := l.Open(context.Background())
		if err != nil {
			t.Fatalf("opening layer %d: %v", i, err)
		}
		b, err := io.ReadAll(rc)
		if err != nil {
			t.Errorf("reading layer %d: %v", i, err)
		}
		if err := rc.Close(); err != nil {
			t.Errorf("closing layer %d: %v", i, err)
		}
		if !bytes.Equal(b, tars[i]) {
			t.Errorf("layer %d: read %d bytes that differ from the %d bytes written", i, len(b), len(tars[i]))
		}
	}
}

func emptyDir(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		t.Errorf("%s left behind in the temporary directory", e.Name())
	}
}

func TestOpenFiles(t *testing.T) {
	img, tars := testImage(t)
	cfgName, _ := img.ConfigName()
	digest, _ := img.Digest()
	ociDir := tu.OCIDir(t, img)
	dockerTar := tu.DockerArchive(t, img, "example.com/test/img:1")
	ociTar := tu.TarDir(t, ociDir)

	tests := []struct {
		name       string
		target     Target
		wantDigest string // the manifest digest, for sources that have one
		wantTags   []string
		// layerDigest is the digest Layer.Digest should hold: the stored blob's or the diffID.
		layerDigest func(i int) v1.Hash
	}{
		{"docker-archive", Target{SourceDockerArchive, dockerTar}, "", []string{"example.com/test/img:1"}, diffID(t, img)},
		{"docker-archive gzip", Target{SourceDockerArchive, tu.GzipFile(t, dockerTar)}, "", []string{"example.com/test/img:1"}, diffID(t, img)},
		{"docker-archive legacy", Target{SourceDockerArchive, legacyDockerArchive(t, img, tars)}, "", []string{"example.com/test/img:1"}, diffID(t, img)},
		{"docker-archive oci blobs", Target{SourceDockerArchive, blobsDockerArchive(t, img, ociDir)}, "", []string{"example.com/test/img:1"}, blobDigestOf(t, img)},
		{"oci-dir", Target{SourceOCIDir, ociDir}, digest.String(), nil, blobDigestOf(t, img)},
		{"oci-archive", Target{SourceOCIArchive, ociTar}, digest.String(), nil, blobDigestOf(t, img)},
		{"oci-archive gzip", Target{SourceOCIArchive, tu.GzipFile(t, ociTar)}, digest.String(), nil, blobDigestOf(t, img)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmp := t.TempDir()
			got, err := Open(context.Background(), tt.target, Options{TempDir: tmp})
			if err != nil {
				t.Fatal(err)
			}
			if got.Name != tt.target.String() || got.Source != tt.target.Source {
				t.Errorf("name %q source %q", got.Name, got.Source)
			}
			if got.Digest != tt.wantDigest {
				t.Errorf("digest %q, want %q", got.Digest, tt.wantDigest)
			}
			if strings.Join(got.RepoTags, ",") != strings.Join(tt.wantTags, ",") {
				t.Errorf("repo tags %v, want %v", got.RepoTags, tt.wantTags)
			}
			if got.ID != cfgName.String() {
				t.Errorf("ID %s, want %s", got.ID, cfgName)
			}
			for i, l := range got.Layers {
				if l.Digest != tt.layerDigest(i) {
					t.Errorf("layer %d digest %s, want %s", i, l.Digest, tt.layerDigest(i))
				}
				if l.Size <= 0 {
					t.Errorf("layer %d size %d: the decompression ratio check needs it", i, l.Size)
				}
			}
			checkImage(t, got, img, tars)
			if err := got.Close(); err != nil {
				t.Errorf("close: %v", err)
			}
			emptyDir(t, tmp)
		})
	}
}

func diffID(t *testing.T, img v1.Image) func(int) v1.Hash {
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	return func(i int) v1.Hash { return cfg.RootFS.DiffIDs[i] }
}

func blobDigestOf(t *testing.T, img v1.Image) func(int) v1.Hash {
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	return func(i int) v1.Hash { return m.Layers[i].Digest }
}

// legacyDockerArchive writes img the way docker save did before Docker 25: the config as
// <hex>.json and each layer uncompressed as <id>/layer.tar.
func legacyDockerArchive(t *testing.T, img v1.Image, tars [][]byte) string {
	t.Helper()
	cfgName, _ := img.ConfigName()
	raw, err := img.RawConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	files := []tarFileEntry{{cfgName.Hex + ".json", raw}}
	m := tarball.Manifest{{Config: cfgName.Hex + ".json", RepoTags: []string{"example.com/test/img:1"}}}
	for i, b := range tars {
		p := strings.Repeat(string(rune('a'+i)), 64) + "/layer.tar"
		files = append(files, tarFileEntry{p, b})
		m[0].Layers = append(m[0].Layers, p)
	}
	mb, _ := json.Marshal(m)
	return tarFile(t, append(files, tarFileEntry{"manifest.json", mb})...)
}

// blobsDockerArchive writes img the way Docker 25 and later save it: an OCI layout plus a
// manifest.json naming blobs/sha256/<hex> files.
func blobsDockerArchive(t *testing.T, img v1.Image, ociDir string) string {
	t.Helper()
	cfgName, _ := img.ConfigName()
	mf, _ := img.Manifest()
	m := tarball.Manifest{{Config: "blobs/sha256/" + cfgName.Hex, RepoTags: []string{"example.com/test/img:1"}}}
	for _, l := range mf.Layers {
		m[0].Layers = append(m[0].Layers, "blobs/sha256/"+l.Digest.Hex)
	}
	files := readTar(t, tu.TarDir(t, ociDir))
	mb, _ := json.Marshal(m)
	return tarFile(t, append(files, tarFileEntry{"manifest.json", mb})...)
}

func TestOpenLayerCompressions(t *testing.T) {
	tarBytes := tu.Tar(t, layerEntries[0]...)
	zl, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(tarBytes)), nil }, tarball.WithCompression("zstd"), tarball.WithMediaType(types.OCILayerZStd))
	if err != nil {
		t.Fatal(err)
	}
	if rc, err := zl.Compressed(); err != nil {
		t.Fatal(err)
	} else {
		magic := make([]byte, 4)
		io.ReadFull(rc, magic)
		rc.Close()
		if !bytes.Equal(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}) {
			t.Fatalf("zstd layer starts with %x", magic)
		}
	}
	for name, l := range map[string]v1.Layer{
		"gzip":         tu.Layer(t, layerEntries[0]...),
		"zstd":         zl,
		"uncompressed": static.NewLayer(tarBytes, types.OCIUncompressedLayer),
	} {
		t.Run(name, func(t *testing.T) {
			img := tu.Image(t, l)
			got, err := Open(context.Background(), Target{SourceOCIDir, tu.OCIDir(t, img)}, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer got.Close()
			if mt := string(got.Layers[0].MediaType); !strings.Contains(mt, name) && name != "uncompressed" {
				t.Errorf("media type %s: the layer is not %s-compressed", mt, name)
			}
			checkImage(t, got, img, [][]byte{tarBytes})
		})
	}
}

func TestDockerArchiveTwoImages(t *testing.T) {
	a, _ := testImage(t)
	b := tu.Image(t, tu.Layer(t, tu.File("b", "b")))
	p := filepath.Join(t.TempDir(), "two.tar")
	ta, _ := name.NewTag("example.com/test/a:1")
	tb, _ := name.NewTag("example.com/test/b:1")
	if err := tarball.MultiRefWriteToFile(p, map[name.Reference]v1.Image{ta: a, tb: b}); err != nil {
		t.Fatal(err)
	}
	_, err := Open(context.Background(), Target{SourceDockerArchive, p}, Options{TempDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "holds 2 images") || !strings.Contains(err.Error(), "example.com/test/a:1") {
		t.Fatalf("err = %v, want one naming both images", err)
	}
}

func TestOpenRegistry(t *testing.T) {
	host := tu.Registry(t)
	img, tars := testImage(t)
	digest, _ := img.Digest()
	tu.Push(t, host+"/test/img:1", img)
	pinned := host + "/test/img@" + digest.String()

	for _, ref := range []string{host + "/test/img:1", pinned} {
		t.Run(ref, func(t *testing.T) {
			got, err := Open(context.Background(), Target{SourceRegistry, ref}, Options{Insecure: true})
			if err != nil {
				t.Fatal(err)
			}
			defer got.Close()
			if got.Name != ref || got.Source != SourceRegistry {
				t.Errorf("name %q source %q", got.Name, got.Source)
			}
			if got.Reference != pinned || got.Digest != digest.String() {
				t.Errorf("reference %q digest %q, want %q", got.Reference, got.Digest, pinned)
			}
			checkImage(t, got, img, tars)
		})
	}
	t.Run("missing tag", func(t *testing.T) {
		_, err := Open(context.Background(), Target{SourceRegistry, host + "/test/img:nope"}, Options{Insecure: true})
		if err == nil {
			t.Fatal("opened a tag that does not exist")
		}
	})
}

func TestOpenRegistryPlatforms(t *testing.T) {
	host := tu.Registry(t)
	amdEntries := []tu.Entry{tu.File("arch", "amd64")}
	armEntries := []tu.Entry{tu.File("arch", "arm64"), tu.File("extra", "x")}
	amd := tu.WithPlatform(t, tu.Image(t, tu.Layer(t, amdEntries...)), "amd64")
	arm := tu.WithPlatform(t, tu.Image(t, tu.Layer(t, armEntries...)), "arm64")
	idx := tu.Index(t, amd, arm)
	tu.Push(t, host+"/test/multi:1", idx)

	tests := []struct {
		arch    string
		want    v1.Image
		tar     []byte
		wantErr bool
	}{
		{arch: "amd64", want: amd, tar: tu.Tar(t, amdEntries...)},
		{arch: "arm64", want: arm, tar: tu.Tar(t, armEntries...)},
		{arch: "s390x", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.arch, func(t *testing.T) {
			got, err := Open(context.Background(), Target{SourceRegistry, host + "/test/multi:1"},
				Options{Insecure: true, Platform: &v1.Platform{OS: "linux", Architecture: tt.arch}})
			if tt.wantErr {
				if err == nil {
					got.Close()
					t.Fatal("opened a platform the index does not have")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer got.Close()
			d, _ := tt.want.Digest()
			if got.Digest != d.String() {
				t.Errorf("picked %s, want the %s image %s", got.Digest, tt.arch, d)
			}
			checkImage(t, got, tt.want, [][]byte{tt.tar})
		})
	}
}

func TestInsecureOnlyOnLoopback(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // any network traffic would fail with context.Canceled instead of the refusal
	for _, ref := range []string{"example.com/team/app:1", "10.0.0.1:5000/app", "registry.local/app"} {
		if _, err := ParseReference(ref, true); err == nil || !strings.Contains(err.Error(), "loopback") {
			t.Errorf("ParseReference(%q, insecure) = %v, want a refusal", ref, err)
		}
		_, err := Open(ctx, Target{SourceRegistry, ref}, Options{Insecure: true})
		if err == nil || !strings.Contains(err.Error(), "loopback") || errors.Is(err, context.Canceled) {
			t.Errorf("Open(%q, insecure) = %v, want a refusal before any traffic", ref, err)
		}
	}
	for _, ref := range []string{"localhost:5000/app", "127.0.0.1:5000/app", "[::1]:5000/app"} {
		if _, err := ParseReference(ref, true); err != nil {
			t.Errorf("ParseReference(%q, insecure) = %v", ref, err)
		}
	}
	if _, err := ParseReference("UPPER/case", false); err == nil {
		t.Error("parsed an invalid reference")
	}
}

func TestIsLoopbackHost(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost": true, "localhost:5000": true, "127.0.0.1": true, "127.1.2.3:80": true,
		"[::1]:5000": true, "::1": true, "[::1]": true,
		"example.com": false, "localhost.example.com": false, "10.0.0.1:5000": false,
		"192.168.1.1": false, "": false, "127.0.0.1.nip.io": false,
	} {
		if got := IsLoopbackHost(host); got != want {
			t.Errorf("IsLoopbackHost(%q) = %v", host, got)
		}
	}
}

func TestTransportRefusesPlainHTTP(t *testing.T) {
	tr := Transport()
	for _, u := range []string{"http://10.0.0.1:5000/v2/", "http://192.168.1.20/v2/", "http://registry.local/v2/", "http://example.com/token"} {
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		resp, err := tr.RoundTrip(req)
		if err == nil {
			resp.Body.Close()
			t.Errorf("%s: plain HTTP to a non-loopback host was allowed", u)
		} else if !strings.Contains(err.Error(), "refusing plain HTTP") {
			t.Errorf("%s: %v", u, err)
		}
	}
}

func TestDockerClientHosts(t *testing.T) {
	for host, ok := range map[string]bool{
		"":                                  true,
		"unix:///var/run/docker.sock":       true,
		"unix:///run/user/1000/docker.sock": true,
		"tcp://127.0.0.1:2375":              false,
		"tcp://docker.example.com:2376":     false,
		"ssh://user@host":                   false,
		"npipe:////./pipe/docker_engine":    false,
		"http://localhost:2375":             false,
		"/var/run/docker.sock":              false,
	} {
		c, base, err := dockerClient(host)
		if ok != (err == nil) {
			t.Errorf("dockerClient(%q) = %v", host, err)
		}
		if ok && (c == nil || base == "") {
			t.Errorf("dockerClient(%q) returned no client", host)
		}
	}
}

func TestOpenDaemonMissingSocket(t *testing.T) {
	sock := "unix://" + filepath.Join(t.TempDir(), "docker.sock")
	tmp := t.TempDir()
	_, err := Open(context.Background(), Target{SourceDocker, "alpine:3.19"}, Options{DockerHost: sock, TempDir: tmp})
	if err == nil || !strings.Contains(err.Error(), "Docker daemon") {
		t.Fatalf("err = %v", err)
	}
	emptyDir(t, tmp)
}

func TestOpenDir(t *testing.T) {
	dir := t.TempDir()
	got, err := Open(context.Background(), Target{SourceDir, dir}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Root != dir || len(got.Layers) != 0 || got.Name != "dir:"+dir {
		t.Errorf("image = %+v", got)
	}
	file := writeFile(t, filepath.Join(dir, "f"), []byte("x"))
	for _, p := range []string{file, filepath.Join(dir, "missing")} {
		if _, err := Open(context.Background(), Target{SourceDir, p}, Options{}); err == nil {
			t.Errorf("opened %s as a root filesystem", p)
		}
	}
	if _, err := Open(context.Background(), Target{"ftp", "x"}, Options{}); err == nil {
		t.Error("opened an unknown source")
	}
}
