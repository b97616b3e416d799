package image

import (
	"context"
	"encoding/base64"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	tu "github.com/moatsec/moat/internal/testutil"
)

// TestRegistryCredentials checks that credentials come from the Docker config file: the
// in-process registry here refuses every request without the right basic auth.
func TestRegistryCredentials(t *testing.T) {
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if !ok || u != "moat" || p != "s3cret" {
			w.Header().Set("WWW-Authenticate", `Basic realm="moat-test"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		reg.ServeHTTP(w, r)
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")

	// Push with the same credentials through a config file.
	cfgDir := t.TempDir()
	auth := base64.StdEncoding.EncodeToString([]byte("moat:s3cret"))
	cfg := `{"auths": {"` + host + `": {"auth": "` + auth + `"}}}`
	if err := os.WriteFile(filepath.Join(cfgDir, "config.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DOCKER_CONFIG", cfgDir)
	img := tu.Image(t, tu.Layer(t, tu.File("etc/os-release", "ID=debian\n")))
	ref, err := name.ParseReference(host+"/private/app:1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
		t.Fatalf("pushing with credentials: %v", err)
	}

	got, err := Open(context.Background(), Target{Source: SourceRegistry, Ref: host + "/private/app:1"}, Options{Insecure: true, TempDir: t.TempDir()})
	if err != nil {
		t.Fatalf("with credentials in DOCKER_CONFIG: %v", err)
	}
	got.Close()

	// Without them, the registry's refusal reaches the user.
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	_, err = Open(context.Background(), Target{Source: SourceRegistry, Ref: host + "/private/app:1"}, Options{Insecure: true, TempDir: t.TempDir()})
	if err == nil || !strings.Contains(strings.ToUpper(err.Error()), "UNAUTHORIZED") {
		t.Fatalf("without credentials: err = %v, want the registry's UNAUTHORIZED", err)
	}
}
