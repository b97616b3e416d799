package image

import (
	"context"
	"io"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func FuzzParseTarget(f *testing.F) {
	for _, s := range []string{
		"", "registry:", "registry:alpine:3.19", "docker:alpine", "dir:.", "oci-dir:", "oci-archive:x.tar",
		"docker-archive:/x", "alpine:3.19", "localhost:5000/a/b@sha256:" + strings.Repeat("0", 64), ":", "::", "dir::",
		"testdata", "image.go", "\x00", "registry:\x00",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, arg string) {
		// Unprefixed arguments that exist are read; keep the fuzzer inside this package's
		// directory, away from devices and pseudo-files.
		if filepath.IsAbs(arg) || strings.Contains(arg, "..") || strings.HasPrefix(arg, "~") {
			t.Skip()
		}
		got, err := ParseTarget(arg)
		if err != nil {
			return
		}
		if !slices.Contains(Sources, got.Source) || got.Ref == "" {
			t.Fatalf("ParseTarget(%q) = %+v", arg, got)
		}
		if got.Source == SourceRegistry {
			// Whatever ParseTarget accepts as a registry reference, ParseReference must judge
			// without panicking, and insecure must never pass for a non-loopback host.
			if r, err := ParseReference(got.Ref, true); err == nil && !IsLoopbackHost(r.Context().RegistryStr()) {
				t.Fatalf("insecure allowed for %q", got.Ref)
			}
		}
	})
}

// fuzzLayout is a valid layout of a one-layer image with, besides, a nested index blob that
// lists the image with its platform, so that fuzzed index.json files can name either.
func fuzzLayout(f *testing.F) (fstest.MapFS, [][]byte) {
	img, _ := testImage(f)
	l := newMemLayout(f, img)
	d := l.write(f)
	fsys := l.fs
	withPlatform := d
	withPlatform.Platform = amd64()
	nested := mustJSON(f, v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{withPlatform}})
	nd := v1.Descriptor{MediaType: types.OCIImageIndex, Digest: putBlob(fsys, nested), Size: int64(len(nested))}
	seeds := [][]byte{
		fsys["index.json"].Data,
		mustJSON(f, v1.IndexManifest{SchemaVersion: 2, Manifests: []v1.Descriptor{nd}}),
		mustJSON(f, v1.IndexManifest{SchemaVersion: 2, Manifests: []v1.Descriptor{nd, d, withPlatform}}),
		mustJSON(f, v1.IndexManifest{SchemaVersion: 2, Manifests: []v1.Descriptor{{MediaType: types.OCIManifestSchema1, Digest: l.manifest.Config.Digest}}}),
		[]byte(`{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"sha256:../../etc/passwd"}]}`),
		[]byte(`{}`), []byte(`[]`), []byte(`null`), nil,
	}
	return fsys, seeds
}

func FuzzReadLayout(f *testing.F) {
	base, seeds := fuzzLayout(f)
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, index []byte) {
		fsys := maps.Clone(base)
		fsys["index.json"] = &fstest.MapFile{Data: index}
		img := &Image{}
		if err := readLayout(img, fsys, amd64()); err != nil {
			return
		}
		if img.Config == nil || len(img.Layers) != len(img.Config.RootFS.DiffIDs) {
			t.Fatalf("accepted an inconsistent image: %+v", img)
		}
		for _, l := range img.Layers {
			rc, err := l.Open(context.Background())
			if err != nil {
				continue
			}
			if _, err := io.Copy(io.Discard, rc); err != nil {
				t.Fatalf("layer %d of a valid layout: %v", l.Index, err)
			}
			rc.Close()
		}
	})
}

// FuzzReadDockerArchive feeds arbitrary manifest.json and config bytes to the docker save
// reader; it must refuse or read them, never panic or reach outside the archive.
func FuzzReadDockerArchive(f *testing.F) {
	cfg := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:` + strings.Repeat("a", 64) + `"]},"history":[{"created_by":"x"}]}`)
	f.Add([]byte(`[{"Config":"config.json","RepoTags":["a:1"],"Layers":["layer.tar"]}]`), cfg)
	f.Add([]byte(`[{"Config":"../config.json","Layers":["/etc/passwd"]}]`), cfg)
	f.Add([]byte(`[]`), []byte(`{}`))
	f.Add([]byte(`[{"Config":"config.json","Layers":["blobs/sha256/`+strings.Repeat("b", 64)+`"]}]`), cfg)
	f.Fuzz(func(t *testing.T, manifest, config []byte) {
		fsys := fstest.MapFS{
			"manifest.json": &fstest.MapFile{Data: manifest},
			"config.json":   &fstest.MapFile{Data: config},
			"layer.tar":     &fstest.MapFile{Data: []byte("not really a tar")},
		}
		img := &Image{}
		if err := readDockerArchive(img, fsys); err != nil {
			return
		}
		if img.Config == nil || len(img.Layers) != len(img.Config.RootFS.DiffIDs) {
			t.Fatalf("accepted archive with %d layers for config %+v", len(img.Layers), img.Config)
		}
	})
}
