package mirror

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/moatsec/moat/internal/testutil"
)

func ref(t *testing.T, host, repo string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(host+"/"+repo, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func writeFile(t *testing.T, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "advisories.db")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPushPullRoundTrip(t *testing.T) {
	host := testutil.Registry(t)
	data := make([]byte, 3<<20)
	rand.Read(data[:1<<20]) // part incompressible, part zeros
	src := writeFile(t, data)
	r := ref(t, host, "moat/db:1")
	info := json.RawMessage(`{"sources":{"Go":4274}}`)
	dg, err := Push(context.Background(), src, r, Config{SchemaVersion: 1, Info: info}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p, err := Pull(context.Background(), r, dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	if p.Digest != dg {
		t.Errorf("pulled digest %s, pushed %s", p.Digest, dg)
	}
	got, err := os.ReadFile(p.Path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("pulled file differs from pushed file")
	}
	if p.Config.SchemaVersion != 1 || p.Config.Size != int64(len(data)) || string(p.Config.Info) != string(info) {
		t.Errorf("config = %+v", p.Config)
	}
	// The manifest is an OCI artifact other tools can recognise.
	desc, err := remote.Get(r)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(desc.Manifest), `"artifactType":"`+ArtifactType+`"`) {
		t.Errorf("manifest has no artifactType: %s", desc.Manifest)
	}
	// Pulling by digest works too.
	if _, err := Pull(context.Background(), r.Context().Digest(dg.String()), dir, 0); err != nil {
		t.Fatal(err)
	}
}

func TestPullRejects(t *testing.T) {
	host := testutil.Registry(t)
	ctx := context.Background()

	// An ordinary container image is not a database.
	img, err := random.Image(1024, 1)
	if err != nil {
		t.Fatal(err)
	}
	imgRef := ref(t, host, "app:1")
	if err := remote.Write(imgRef, img); err != nil {
		t.Fatal(err)
	}

	// A database whose config lies about the decompressed size.
	data := []byte(strings.Repeat("moat", 4096))
	src := writeFile(t, data)
	lieRef := ref(t, host, "moat/db:lie")
	if _, err := Push(ctx, src, lieRef, Config{SchemaVersion: 1}, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	tamper(t, lieRef, func(c *Config) { c.Size = 10 })
	hashRef := ref(t, host, "moat/db:hash")
	if _, err := Push(ctx, src, hashRef, Config{SchemaVersion: 1}, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	tamper(t, hashRef, func(c *Config) { c.SHA256 = strings.Repeat("0", 64) })

	tests := []struct {
		name     string
		ref      name.Reference
		max      int64
		want     string
		notFound bool
	}{
		{"container image", imgRef, 0, "not a moat advisory database", false},
		{"missing tag", ref(t, host, "moat/db:none"), 0, "MANIFEST_UNKNOWN", true},
		{"over the size limit", ref(t, host, "moat/db:hash"), 100, "limit 100", false},
		{"size mismatch", lieRef, 0, "config says 10", false},
		{"digest of the decompressed file", hashRef, 0, "decompressed sha256", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			_, err := Pull(ctx, tt.ref, dir, tt.max)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Pull = %v, want an error containing %q", err, tt.want)
			}
			if !tt.notFound && !errors.Is(err, ErrNotDatabase) && !strings.Contains(tt.want, "limit") {
				t.Errorf("error %v does not wrap ErrNotDatabase", err)
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 0 {
				t.Errorf("Pull left %d files behind", len(ents))
			}
		})
	}
}

// tamper rewrites the config of the artifact at r and pushes a new manifest in its place.
func tamper(t *testing.T, r name.Reference, edit func(*Config)) {
	t.Helper()
	desc, err := remote.Get(r)
	if err != nil {
		t.Fatal(err)
	}
	var m manifest
	if err := json.Unmarshal(desc.Manifest, &m); err != nil {
		t.Fatal(err)
	}
	b, err := fetchBlob(r.Context(), m.Config, maxConfig, nil)
	if err != nil {
		t.Fatal(err)
	}
	var c Config
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	edit(&c)
	nb, _ := json.Marshal(c)
	l := static.NewLayer(nb, types.MediaType(ConfigMediaType))
	if err := remote.WriteLayer(r.Context(), l); err != nil {
		t.Fatal(err)
	}
	m.Config.Digest, _ = l.Digest()
	m.Config.Size = int64(len(nb))
	raw, _ := json.Marshal(m)
	if err := remote.Put(r, rawManifest(raw)); err != nil {
		t.Fatal(err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/vnd.moat.vulndb.v1","config":{"mediaType":"application/vnd.moat.vulndb.config.v1+json","size":10,"digest":"sha256:aa"},"layers":[{"mediaType":"application/vnd.moat.vulndb.layer.v1.bolt+zstd","size":5,"digest":"sha256:bb"}]}`))
	f.Add([]byte(`{"schemaVersion":1,"size":100,"sha256":"0000000000000000000000000000000000000000000000000000000000000000"}`))
	f.Add([]byte(`{"layers":null}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if m, err := parseManifest(b); err == nil && (len(m.Layers) != 1 || m.Config.Size <= 0) {
			t.Fatalf("accepted manifest %+v", m)
		}
		if c, err := parseConfig(b, 1<<20); err == nil && (c.Size <= 0 || c.Size > 1<<20) {
			t.Fatalf("accepted config %+v", c)
		}
	})
}
