package interop

import (
	"crypto"
	"encoding/json"
	"errors"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/moatsec/moat/internal/sign/cosign"
	"github.com/moatsec/moat/internal/sign/key"
	"github.com/moatsec/moat/internal/testutil"
)

const password = "correct horse battery staple"

// Flags every cosign command that touches the registry gets. The registry is plain HTTP on
// loopback; no transparency log is written or read. Without --trusted-root, `cosign verify`
// fetches sigstore's public trusted root over TUF even when it will not use it; the empty
// root that newCosign writes keeps it offline.
var (
	signFlags   = []string{"sign", "--tlog-upload=false", "--allow-http-registry"}
	verifyFlags = []string{"verify", "--insecure-ignore-tlog", "--allow-http-registry", "--trusted-root", "trusted-root.json"}
)

// emptyTrustedRoot trusts no certificate authority, log or timestamp authority.
const emptyTrustedRoot = `{"mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1"}`

// newCosign is a cosign runner whose directory holds trusted-root.json.
func newCosign(t *testing.T, pw string) *testutil.Cosign {
	t.Helper()
	c := testutil.NewCosign(t, pw)
	writeFile(t, filepath.Join(c.Dir, "trusted-root.json"), []byte(emptyTrustedRoot))
	return c
}

func slow(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("runs the cosign and registry binaries; skipped with -short")
	}
}

// target is an image pushed to the registry: cosign is given ref, moat repo and digest.
type target struct {
	repo   name.Repository
	digest v1.Hash
	ref    string
}

func pushImage(t *testing.T, host, repoName string) target {
	t.Helper()
	img, err := random.Image(512, 2)
	if err != nil {
		t.Fatal(err)
	}
	repo, err := name.NewRepository(host+"/"+repoName, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(repo.Tag("v1"), img, remote.WithContext(t.Context())); err != nil {
		t.Fatalf("pushing to %s: %v", repo, err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return target{repo: repo, digest: d, ref: repo.Name() + "@" + d.String()}
}

// moatKeyPair makes a key with moat and writes it, encrypted with password, as
// dir/name.key and dir/name.pub.
func moatKeyPair(t *testing.T, dir, name string) crypto.Signer {
	t.Helper()
	k, err := key.Generate()
	if err != nil {
		t.Fatal(err)
	}
	priv, err := key.EncryptPrivateKey(k, []byte(password))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := key.MarshalPublicKey(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, name+".key"), priv)
	writeFile(t, filepath.Join(dir, name+".pub"), pub)
	return k
}

// cosignKeyPair runs `cosign generate-key-pair` and loads the public key with moat.
func cosignKeyPair(t *testing.T, c *testutil.Cosign, prefix string) crypto.PublicKey {
	t.Helper()
	c.MustRun("generate-key-pair", "--output-key-prefix", prefix)
	pub, err := key.LoadPublicKey(readFile(t, filepath.Join(c.Dir, prefix+".pub")))
	if err != nil {
		t.Fatalf("loading %s.pub: %v", prefix, err)
	}
	return pub
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t *testing.T, p string, b []byte) {
	t.Helper()
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func args(base []string, more ...string) []string {
	return append(append([]string(nil), base...), more...)
}

// TestCosignKeysLoadInMoat: a key pair from `cosign generate-key-pair` loads with moat's
// loaders, with the password it was made with (empty too) and not with another.
func TestCosignKeysLoadInMoat(t *testing.T) {
	slow(t)
	for _, pw := range []string{password, ""} {
		t.Run("password="+pw, func(t *testing.T) {
			c := newCosign(t, pw)
			c.MustRun("generate-key-pair")
			priv, err := key.LoadPrivateKey(readFile(t, filepath.Join(c.Dir, "cosign.key")), []byte(pw))
			if err != nil {
				t.Fatalf("loading cosign.key: %v", err)
			}
			pub, err := key.LoadPublicKey(readFile(t, filepath.Join(c.Dir, "cosign.pub")))
			if err != nil {
				t.Fatalf("loading cosign.pub: %v", err)
			}
			if !priv.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(pub) {
				t.Error("cosign.pub is not the public half of cosign.key")
			}
			if _, err := key.LoadPrivateKey(readFile(t, filepath.Join(c.Dir, "cosign.key")), []byte(pw+"x")); !errors.Is(err, key.ErrWrongPassword) {
				t.Errorf("wrong password: got %v, want ErrWrongPassword", err)
			}
		})
	}
}

// TestMoatKeySignsWithCosign: a key written by moat is one cosign reads, derives the same
// public key from, and signs with; moat and cosign both verify that signature.
func TestMoatKeySignsWithCosign(t *testing.T) {
	slow(t)
	host := testutil.StartRegistry(t)
	tgt := pushImage(t, host, "moat-key")
	c := newCosign(t, password)
	k := moatKeyPair(t, c.Dir, "moat")

	if got, want := c.MustRun("public-key", "--key", "moat.key"), string(readFile(t, filepath.Join(c.Dir, "moat.pub"))); got != want {
		t.Errorf("cosign public-key --key moat.key:\n%s\nmoat wrote:\n%s", got, want)
	}
	c.MustRun(args(signFlags, "--key", "moat.key", tgt.ref)...)
	vs, err := cosign.Verify(t.Context(), tgt.repo, tgt.digest, []crypto.PublicKey{k.Public()}, 1)
	if err != nil {
		t.Fatalf("moat verifying cosign's signature: %v", err)
	}
	if len(vs) != 1 {
		t.Errorf("verified %d signatures, want 1: %+v", len(vs), vs)
	}
	c.MustRun(args(verifyFlags, "--key", "moat.pub", tgt.ref)...)
}

// TestCosignSignsMoatVerifies: `cosign sign --key` over a digest verifies with moat, the
// annotations given with -a come through signed, and another key does not verify it.
func TestCosignSignsMoatVerifies(t *testing.T) {
	slow(t)
	host := testutil.StartRegistry(t)
	tgt := pushImage(t, host, "cosign-signed")
	unsigned := pushImage(t, host, "cosign-signed")
	c := newCosign(t, password)
	pub := cosignKeyPair(t, c, "cosign")

	c.MustRun(args(signFlags, "--key", "cosign.key", "-a", "team=security", "-a", "build=1234", tgt.ref)...)

	vs, err := cosign.Verify(t.Context(), tgt.repo, tgt.digest, []crypto.PublicKey{pub}, 1)
	if err != nil {
		t.Fatalf("moat verifying cosign's signature: %v", err)
	}
	if len(vs) != 1 {
		t.Fatalf("verified %d signatures, want 1: %+v", len(vs), vs)
	}
	p := vs[0].Payload
	if p.Digest != tgt.digest || p.DockerReference != tgt.repo.Name() {
		t.Errorf("payload names %s in %q, want %s in %q", p.Digest, p.DockerReference, tgt.digest, tgt.repo.Name())
	}
	if want := map[string]string{"team": "security", "build": "1234"}; !maps.Equal(p.Annotations, want) {
		t.Errorf("annotations %v, want %v", p.Annotations, want)
	}
	fp, _ := key.Fingerprint(pub)
	if vs[0].Key != fp {
		t.Errorf("verified by %s, want %s", vs[0].Key, fp)
	}

	other := moatKeyPair(t, t.TempDir(), "other")
	_, err = cosign.Verify(t.Context(), tgt.repo, tgt.digest, []crypto.PublicKey{other.Public()}, 1)
	var verr *cosign.VerificationError
	if !errors.As(err, &verr) {
		t.Fatalf("another key: got %v, want a *VerificationError", err)
	}
	if !hasReason(verr, cosign.ReasonBadSignature) {
		t.Errorf("another key: %v, want a failure %q", verr, cosign.ReasonBadSignature)
	}
	_, err = cosign.Verify(t.Context(), unsigned.repo, unsigned.digest, []crypto.PublicKey{pub}, 1)
	if !errors.As(err, &verr) || verr.Reason != cosign.ReasonNoSignatures {
		t.Errorf("unsigned image: got %v, want %q", err, cosign.ReasonNoSignatures)
	}
}

func hasReason(e *cosign.VerificationError, r cosign.Reason) bool {
	for _, f := range e.Failures {
		if f.Reason == r {
			return true
		}
	}
	return false
}

// TestMoatSignsCosignVerifies: a signature stored by moat's Sign verifies with `cosign verify
// --key`, which shows moat's payload and annotations, checks -a against them, and rejects the
// signature for another key.
func TestMoatSignsCosignVerifies(t *testing.T) {
	slow(t)
	host := testutil.StartRegistry(t)
	tgt := pushImage(t, host, "moat-signed")
	c := newCosign(t, password)
	k := moatKeyPair(t, c.Dir, "moat")
	cosignKeyPair(t, c, "other")

	annotations := map[string]string{"team": "security", "build": "1234"}
	if _, err := cosign.Sign(t.Context(), tgt.repo, tgt.digest, annotations, k); err != nil {
		t.Fatalf("moat signing: %v", err)
	}

	out := c.MustRun(args(verifyFlags, "--key", "moat.pub", "-a", "team=security", tgt.ref)...)
	var payloads []struct {
		Critical struct {
			Identity struct {
				DockerReference string `json:"docker-reference"`
			} `json:"identity"`
			Image struct {
				DockerManifestDigest string `json:"docker-manifest-digest"`
			} `json:"image"`
			Type string `json:"type"`
		} `json:"critical"`
		Optional map[string]string `json:"optional"`
	}
	if err := json.Unmarshal([]byte(out), &payloads); err != nil {
		t.Fatalf("cosign verify output is not a JSON array of payloads: %v\n%s", err, out)
	}
	if len(payloads) != 1 {
		t.Fatalf("cosign verified %d signatures, want 1:\n%s", len(payloads), out)
	}
	p := payloads[0]
	if p.Critical.Image.DockerManifestDigest != tgt.digest.String() || p.Critical.Identity.DockerReference != tgt.repo.Name() || p.Critical.Type != cosign.PayloadType {
		t.Errorf("cosign shows critical %+v, want %s in %s", p.Critical, tgt.digest, tgt.repo.Name())
	}
	if !maps.Equal(p.Optional, annotations) {
		t.Errorf("cosign shows annotations %v, want %v", p.Optional, annotations)
	}

	for _, tc := range []struct {
		name string
		args []string
		want string // in cosign's error
	}{
		{"wrong annotation", []string{"--key", "moat.pub", "-a", "team=other"}, "missing or incorrect annotation"},
		{"wrong key", []string{"--key", "other.pub"}, "invalid signature when validating ASN.1 encoded signature"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := args(verifyFlags, append(tc.args, tgt.ref)...)
			_, stderr, err := c.Run(t.Context(), a...)
			var exit *exec.ExitError
			if !errors.As(err, &exit) {
				t.Fatalf("cosign %s: got %v, want a failing exit", strings.Join(a, " "), err)
			}
			if !strings.Contains(stderr, "no matching signatures: "+tc.want) {
				t.Errorf("cosign %s: stderr does not say %q:\n%s", strings.Join(a, " "), tc.want, stderr)
			}
		})
	}
}

// TestMixedSignatures: cosign and moat add signatures to the same signature image, in either
// order, without losing the other's: both tools verify both keys afterwards.
func TestMixedSignatures(t *testing.T) {
	slow(t)
	host := testutil.StartRegistry(t)
	c := newCosign(t, password)
	cosignPub := cosignKeyPair(t, c, "cosign")
	moatKey := moatKeyPair(t, c.Dir, "moat")

	for _, order := range []string{"cosign-first", "moat-first"} {
		t.Run(order, func(t *testing.T) {
			tgt := pushImage(t, host, order)
			signCosign := func() { c.MustRun(args(signFlags, "--key", "cosign.key", tgt.ref)...) }
			signMoat := func() {
				if _, err := cosign.Sign(t.Context(), tgt.repo, tgt.digest, nil, moatKey); err != nil {
					t.Fatalf("moat signing: %v", err)
				}
			}
			if order == "cosign-first" {
				signCosign()
				signMoat()
			} else {
				signMoat()
				signCosign()
			}
			vs, err := cosign.Verify(t.Context(), tgt.repo, tgt.digest, []crypto.PublicKey{cosignPub, moatKey.Public()}, 2)
			if err != nil {
				t.Fatalf("moat verifying both keys: %v", err)
			}
			if len(vs) != 2 {
				t.Errorf("moat verified %d signatures, want 2", len(vs))
			}
			for _, pub := range []string{"cosign.pub", "moat.pub"} {
				c.MustRun(args(verifyFlags, "--key", pub, tgt.ref)...)
			}
		})
	}
}
