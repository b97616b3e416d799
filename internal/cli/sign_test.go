package cli

import (
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/moatsec/moat/internal/testutil"
)

// signedRegistry pushes the test image to an in-process registry and generates a key pair
// in the working directory; it returns the image reference and its digest.
func signedRegistry(t *testing.T, prefixes ...string) (ref, digest string) {
	t.Helper()
	t.Setenv("MOAT_PASSWORD", "correct horse")
	t.Setenv("COSIGN_PASSWORD", "")
	reg := testutil.Registry(t)
	img := testImage(t)
	ref = reg + "/team/app:1.0"
	testutil.Push(t, ref, img)
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range prefixes {
		mustRun(t, "key", "generate", "--output-prefix", p)
	}
	return ref, d.String()
}

func TestKeyGenerate(t *testing.T) {
	e := setup(t)
	t.Setenv("MOAT_PASSWORD", "pw")
	out, _ := mustRun(t, "key", "generate", "--output-prefix", "release")
	if !strings.Contains(out, "release.key") || !strings.Contains(out, "Key ID sha256:") {
		t.Errorf("output %q", out)
	}
	fi, err := os.Stat(filepath.Join(e.work, "release.key"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("private key mode %v, want 0600", fi.Mode().Perm())
	}
	b := readFile(t, filepath.Join(e.work, "release.key"))
	if !strings.Contains(string(b), "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----") {
		t.Errorf("private key is not in cosign's format:\n%s", b)
	}
	// An existing key is never overwritten without --force.
	if _, _, code, _ := run(t, "key", "generate", "--output-prefix", "release"); code != ExitUsage {
		t.Errorf("overwriting: exit %d, want %d", code, ExitUsage)
	}
	if !strings.Contains(string(readFile(t, filepath.Join(e.work, "release.key"))), string(b[:40])) {
		t.Error("the key was changed")
	}
	mustRun(t, "key", "generate", "--output-prefix", "release", "--force")
	// Without a password and without a terminal there is no way to ask: a usage error.
	os.Unsetenv("MOAT_PASSWORD")
	if _, stderr, code, err := run(t, "key", "generate", "--output-prefix", "other"); code != ExitUsage || !strings.Contains(err.Error(), "MOAT_PASSWORD") {
		t.Errorf("no password: exit %d, %v, %s", code, err, stderr)
	}
}

func TestSignVerify(t *testing.T) {
	setup(t)
	ref, digest := signedRegistry(t, "a", "b", "c")

	// Not signed yet: a verdict, not an error.
	out, _, code, err := run(t, "verify", ref, "--key", "a.pub", "--insecure")
	if code != ExitDenied || !strings.Contains(out, "no signatures found") {
		t.Fatalf("unsigned: exit %d, %v, %s", code, err, out)
	}

	out, _ = mustRun(t, "sign", ref, "--key", "a.key", "--insecure", "-a", "env=prod", "-a", "build=7")
	if !strings.Contains(out, "@"+digest) || !strings.Contains(out, strings.Replace(digest, ":", "-", 1)+".sig") {
		t.Errorf("sign output %q", out)
	}
	out, _ = mustRun(t, "verify", ref, "--key", "a.pub", "--insecure", "-o", "json")
	var res verifyResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	if !res.Verified || res.Digest != digest || len(res.Signatures) != 1 || res.Signatures[0].Annotations["env"] != "prod" || res.Signatures[0].Key != "a.pub" {
		t.Errorf("verify: %+v", res)
	}

	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"wrong key", []string{"--key", "b.pub"}, ExitDenied, "does not verify with any given key"},
		{"threshold not met", []string{"--key", "a.pub", "--key", "b.pub", "--threshold", "2"}, ExitDenied, "not enough keys signed"},
		{"one of several keys", []string{"--key", "b.pub", "--key", "a.pub"}, ExitOK, "Verified"},
		{"threshold above the keys", []string{"--key", "a.pub", "--threshold", "2"}, ExitUsage, ""},
		{"the same key twice", []string{"--key", "a.pub", "--key", "a.pub"}, ExitUsage, ""},
		{"no key", nil, ExitUsage, ""},
		{"a private key", []string{"--key", "a.key"}, ExitError, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, stderr, code, err := run(t, append([]string{"verify", ref, "--insecure"}, tc.args...)...)
			if code != tc.code || !strings.Contains(out, tc.want) {
				t.Errorf("exit %d (%v), want %d; output %q %s", code, err, tc.code, out, stderr)
			}
		})
	}

	// Two more signers: 2 of 3 verifies.
	mustRun(t, "sign", ref, "--key", "b.key", "--insecure")
	mustRun(t, "verify", ref, "--insecure", "--key", "a.pub", "--key", "b.pub", "--key", "c.pub", "--threshold", "2")

	// The tag moved to another image after signing: its digest has no signatures.
	other := mutateImage(t, testImage(t))
	testutil.Push(t, ref, other)
	out, _, code, _ = run(t, "verify", ref, "--key", "a.pub", "--insecure")
	if code != ExitDenied || strings.Contains(out, digest) {
		t.Errorf("moved tag: exit %d, output %q", code, out)
	}
	// The signed digest still verifies by digest.
	mustRun(t, "verify", strings.Split(ref, ":1.0")[0]+"@"+digest, "--key", "a.pub", "--insecure")
}

// mutateImage returns img with a changed configuration: another digest.
func mutateImage(t *testing.T, img v1.Image) v1.Image {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg := cf.Config.DeepCopy()
	cfg.Labels = map[string]string{"moved": "yes"}
	out, err := mutate.Config(img, *cfg)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestVerifyRegistryFailure: a registry that fails is an error (exit 1), never a verdict and
// never a pass.
func TestVerifyRegistryFailure(t *testing.T) {
	setup(t)
	t.Setenv("MOAT_PASSWORD", "pw")
	mustRun(t, "key", "generate", "--output-prefix", "a")
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	fail := false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fail && strings.Contains(r.URL.Path, ".sig") {
			http.Error(w, "boom", http.StatusInternalServerError)
			return
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	ref := u.Host + "/team/app:1.0"
	testutil.Push(t, ref, testImage(t))
	mustRun(t, "sign", ref, "--key", "a.key", "--insecure")
	fail = true
	_, _, code, err := run(t, "verify", ref, "--key", "a.pub", "--insecure")
	if code != ExitError || !strings.Contains(err.Error(), "500") {
		t.Errorf("registry 500: exit %d, %v", code, err)
	}
}

// TestSignReferrers: on a registry with the OCI 1.1 referrers API, `moat sign` also stores the
// signature as a referrer (--referrers auto), or only there (only); verify finds either.
func TestSignReferrers(t *testing.T) {
	setup(t)
	t.Setenv("MOAT_PASSWORD", "pw")
	mustRun(t, "key", "generate", "--output-prefix", "a")
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0)), registry.WithReferrersSupport(true)))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	for _, tc := range []struct{ mode, want, notWant string }{
		{"auto", "stored as referrer", ""},
		{"only", "stored as referrer", ".sig"},
		{"off", ".sig", "referrer"},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			ref := u.Host + "/team/" + tc.mode + ":1.0"
			testutil.Push(t, ref, testImage(t))
			out, _ := mustRun(t, "sign", ref, "--key", "a.key", "--insecure", "--referrers", tc.mode)
			if !strings.Contains(out, tc.want) || (tc.notWant != "" && strings.Contains(out, tc.notWant)) {
				t.Errorf("sign --referrers %s: %q", tc.mode, out)
			}
			mustRun(t, "verify", ref, "--key", "a.pub", "--insecure")
		})
	}
	if _, _, code, _ := run(t, "sign", u.Host+"/team/x:1", "--key", "a.key", "--insecure", "--referrers", "sometimes"); code != ExitUsage {
		t.Errorf("bad --referrers: exit %d", code)
	}
}
