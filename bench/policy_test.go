package bench

import (
	"context"
	"crypto"
	"encoding/json"
	"io"
	"log"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/moatsec/moat/internal/image"
	"github.com/moatsec/moat/internal/policy"
	"github.com/moatsec/moat/internal/sign/cosign"
	"github.com/moatsec/moat/internal/sign/key"
)

// exampleCase loads the example policy and its "signed and clean" case: a decision
// that runs every kind of requirement, CEL included.
func exampleCase(b *testing.B) (*policy.Policy, policy.Case) {
	b.Helper()
	dir := filepath.Join("..", "internal", "policy", "testdata", "example")
	p, err := policy.Load(filepath.Join(dir, "policy.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	c, err := policy.LoadCase(filepath.Join(dir, "cases", "signed-clean.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	return p, c
}

// BenchmarkEvidenceJSON is the policy baseline: encoding the prepared evidence object once,
// the least any consumer of it pays.
func BenchmarkEvidenceJSON(b *testing.B) {
	_, c := exampleCase(b)
	for b.Loop() {
		if _, err := json.Marshal(&c.Evidence); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPolicyEval evaluates the example policy over the prepared evidence (target
// < 100 µs).
func BenchmarkPolicyEval(b *testing.B) {
	p, c := exampleCase(b)
	for b.Loop() {
		d := policy.Evaluate(p, &c.Evidence, c.Now)
		if !d.Allow {
			b.Fatalf("denied: %v", d.Reasons)
		}
	}
}

// signedImage starts an in-process registry on loopback, pushes an image and signs it. It
// returns the repository, the digest, the public key and remote options sharing one
// transport, so that connections stay warm across iterations.
func signedImage(b *testing.B) (name.Repository, v1.Hash, crypto.PublicKey, []remote.Option) {
	b.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	b.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	repo, err := name.NewRepository(u.Host+"/team/app", name.Insecure)
	if err != nil {
		b.Fatal(err)
	}
	img, err := random.Image(1024, 3)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	tr := image.Transport() // one transport: its idle connections are reused
	opts := []remote.Option{remote.WithTransport(tr), remote.WithContext(ctx)}
	if err := remote.Write(repo.Tag("1.0"), img, opts...); err != nil {
		b.Fatal(err)
	}
	h, err := img.Digest()
	if err != nil {
		b.Fatal(err)
	}
	k, err := key.Generate()
	if err != nil {
		b.Fatal(err)
	}
	if _, err := cosign.Sign(ctx, repo, h, map[string]string{"env": "prod"}, k, cosign.WithRemoteOptions(opts...)); err != nil {
		b.Fatal(err)
	}
	return repo, h, k.Public(), opts
}

// BenchmarkResolveBaseline is the verification baseline: resolving the tag to its digest, the
// one round trip any registry check makes.
func BenchmarkResolveBaseline(b *testing.B) {
	repo, _, _, opts := signedImage(b)
	for b.Loop() {
		if _, err := remote.Head(repo.Tag("1.0"), opts...); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerify resolves the tag and verifies the signature against a loopback registry with
// warm connections: `moat verify` without process start (target < 30 ms).
func BenchmarkVerify(b *testing.B) {
	repo, _, pub, opts := signedImage(b)
	ctx := context.Background()
	for b.Loop() {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		desc, err := remote.Head(repo.Tag("1.0"), opts...)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := cosign.Verify(ctx, repo, desc.Digest, []crypto.PublicKey{pub}, 1, cosign.WithRemoteOptions(opts...)); err != nil {
			b.Fatal(err)
		}
		cancel()
	}
}
