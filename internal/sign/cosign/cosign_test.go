package cosign

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"io"
	"log"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/moatsec/moat/internal/sign/key"
	"github.com/moatsec/moat/internal/testutil"
)

type fixture struct {
	host string
	repo name.Repository
	a, b v1.Hash // digests of two different images in repo
}

// setup pushes two images to the repository app on host, or on a new in-process registry
// when host is empty.
func setup(t *testing.T, host string) fixture {
	t.Helper()
	if host == "" {
		host = testutil.Registry(t)
	}
	return setupIn(t, host, "app")
}

// setupIn is setup in the repository repo on host.
func setupIn(t *testing.T, host, repo string) fixture {
	t.Helper()
	r, err := name.NewRepository(host + "/" + repo)
	if err != nil {
		t.Fatal(err)
	}
	push := func(tag, body string) v1.Hash {
		img := testutil.Image(t, testutil.Layer(t, testutil.File("f", body)))
		testutil.Push(t, r.Tag(tag).String(), img)
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	return fixture{host: host, repo: r, a: push("a", "a"), b: push("b", "b")}
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := key.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func pubs(ks ...*ecdsa.PrivateKey) []crypto.PublicKey {
	var out []crypto.PublicKey
	for _, k := range ks {
		out = append(out, k.Public())
	}
	return out
}

// verdict runs Verify and returns its VerificationError, failing on any other outcome.
func verdict(t *testing.T, f fixture, d v1.Hash, keys []crypto.PublicKey, threshold int) *VerificationError {
	t.Helper()
	vs, err := Verify(context.Background(), f.repo, d, keys, threshold)
	var ve *VerificationError
	if !errors.As(err, &ve) {
		t.Fatalf("got %v, %v; want a *VerificationError", vs, err)
	}
	t.Log(ve)
	return ve
}

func onlyFailure(t *testing.T, ve *VerificationError, want Reason) {
	t.Helper()
	if len(ve.Failures) != 1 || ve.Failures[0].Reason != want {
		t.Fatalf("failures %v, want one %q", ve.Failures, want)
	}
}

// rewrite replaces the signature image at tag with one layer made by edit from the first
// layer of the image at from.
func rewrite(t *testing.T, from, to name.Tag, edit func(payload []byte, ann map[string]string) []byte) {
	t.Helper()
	img, err := remote.Image(from)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := img.Manifest()
	l, _ := img.LayerByDigest(m.Layers[0].Digest)
	rc, _ := l.Compressed()
	payload, _ := io.ReadAll(rc)
	ann := map[string]string{}
	for k, v := range m.Layers[0].Annotations {
		ann[k] = v
	}
	payload = edit(payload, ann)
	base := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	out, err := mutate.Append(base, mutate.Addendum{Layer: static.NewLayer(payload, SimpleSigningMediaType), Annotations: ann})
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(to, out); err != nil {
		t.Fatal(err)
	}
}

func sigTag(t *testing.T, f fixture, d v1.Hash) name.Tag {
	tag, err := SignatureTag(f.repo, d)
	if err != nil {
		t.Fatal(err)
	}
	return tag
}

func TestSignVerify(t *testing.T) {
	f := setup(t, "")
	ctx := context.Background()
	k := newKey(t)
	ann := map[string]string{"env": "prod", "by": "ci"}
	s, err := Sign(ctx, f.repo, f.a, ann, k)
	if err != nil {
		t.Fatal(err)
	}
	if want := f.repo.Name() + ":sha256-" + f.a.Hex + ".sig"; s.Tag.String() != want {
		t.Fatalf("tag %s, want %s", s.Tag, want)
	}
	vs, err := Verify(ctx, f.repo, f.a, pubs(k), 1)
	if err != nil {
		t.Fatal(err)
	}
	fp, _ := key.Fingerprint(k.Public())
	if len(vs) != 1 || vs[0].Key != fp || vs[0].Payload.Digest != f.a || vs[0].Payload.Annotations["env"] != "prod" ||
		vs[0].Payload.DockerReference != f.repo.Name() {
		t.Fatalf("verified %+v", vs)
	}

	// The stored image has cosign's shape.
	img, err := remote.Image(s.Tag)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := img.Manifest()
	if m.MediaType != types.OCIManifestSchema1 || m.Config.MediaType != types.OCIConfigJSON || len(m.Layers) != 1 ||
		m.Layers[0].MediaType != SimpleSigningMediaType || m.Layers[0].Annotations[SignatureAnnotation] != base64.StdEncoding.EncodeToString(s.Signature) {
		t.Fatalf("signature manifest %+v", m)
	}

	// Another key appends, keeping the first signature.
	k2 := newKey(t)
	if _, err := Sign(ctx, f.repo, f.a, nil, k2); err != nil {
		t.Fatal(err)
	}
	vs, err = Verify(ctx, f.repo, f.a, pubs(k, k2), 2)
	if err != nil {
		t.Fatal(err)
	}
	if distinctKeys(vs) != 2 {
		t.Fatalf("verified %+v", vs)
	}
}

// replaySigner returns the same signature for the same digest, as a deterministic signer
// (RFC 6979, a KMS, a retry of the same operation) would.
type replaySigner struct {
	crypto.Signer
	seen map[string][]byte
}

func (r *replaySigner) Sign(rnd io.Reader, digest []byte, o crypto.SignerOpts) ([]byte, error) {
	if s, ok := r.seen[string(digest)]; ok {
		return s, nil
	}
	s, err := r.Signer.Sign(rnd, digest, o)
	r.seen[string(digest)] = s
	return s, err
}

func TestSignIdempotent(t *testing.T) {
	f := setup(t, "")
	ctx := context.Background()
	k := &replaySigner{newKey(t), map[string][]byte{}}
	first, err := Sign(ctx, f.repo, f.a, nil, k)
	if err != nil || first.Existing {
		t.Fatal(first, err)
	}
	again, err := Sign(ctx, f.repo, f.a, nil, k)
	if err != nil || !again.Existing {
		t.Fatal(again, err)
	}
	img, _ := remote.Image(sigTag(t, f, f.a))
	m, _ := img.Manifest()
	if len(m.Layers) != 1 {
		t.Fatalf("%d layers, want 1", len(m.Layers))
	}
}

func TestThreshold(t *testing.T) {
	f := setup(t, "")
	ctx := context.Background()
	k1, k2, k3 := newKey(t), newKey(t), newKey(t)
	keys := pubs(k1, k2, k3)
	if _, err := Sign(ctx, f.repo, f.a, nil, k1); err != nil {
		t.Fatal(err)
	}
	// One key signing twice still counts once.
	if _, err := Sign(ctx, f.repo, f.a, map[string]string{"n": "2"}, k1); err != nil {
		t.Fatal(err)
	}
	ve := verdict(t, f, f.a, keys, 2)
	if ve.Reason != ReasonThreshold || len(ve.Verified) != 2 || !strings.Contains(ve.Error(), "1 of 2 required") {
		t.Fatalf("verdict %v", ve)
	}
	if _, err := Sign(ctx, f.repo, f.a, nil, k3); err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(ctx, f.repo, f.a, keys, 2); err != nil {
		t.Fatal(err)
	}
	verdict(t, f, f.a, keys, 3)

	// Bad arguments are errors, not verdicts.
	for name, tc := range map[string]struct {
		keys []crypto.PublicKey
		k    int
	}{
		"no keys":       {nil, 1},
		"zero":          {keys, 0},
		"more than n":   {keys, 4},
		"duplicate key": {pubs(k1, k1), 2},
	} {
		_, err := Verify(ctx, f.repo, f.a, tc.keys, tc.k)
		var ve *VerificationError
		if err == nil || errors.As(err, &ve) {
			t.Errorf("%s: got %v", name, err)
		}
	}
}

func TestAttacks(t *testing.T) {
	ctx := context.Background()
	k, other := newKey(t), newKey(t)

	t.Run("unsigned", func(t *testing.T) {
		f := setup(t, "")
		if ve := verdict(t, f, f.a, pubs(k), 1); ve.Reason != ReasonNoSignatures {
			t.Fatal(ve)
		}
	})
	t.Run("wrong key", func(t *testing.T) {
		f := setup(t, "")
		if _, err := Sign(ctx, f.repo, f.a, nil, other); err != nil {
			t.Fatal(err)
		}
		onlyFailure(t, verdict(t, f, f.a, pubs(k), 1), ReasonBadSignature)
	})
	t.Run("payload edited after signing", func(t *testing.T) {
		f := setup(t, "")
		if _, err := Sign(ctx, f.repo, f.a, map[string]string{"env": "dev"}, k); err != nil {
			t.Fatal(err)
		}
		tag := sigTag(t, f, f.a)
		rewrite(t, tag, tag, func(p []byte, _ map[string]string) []byte {
			return []byte(strings.Replace(string(p), `"dev"`, `"prod"`, 1))
		})
		onlyFailure(t, verdict(t, f, f.a, pubs(k), 1), ReasonBadSignature)
	})
	t.Run("signature for another digest copied here", func(t *testing.T) {
		f := setup(t, "")
		if _, err := Sign(ctx, f.repo, f.b, nil, k); err != nil {
			t.Fatal(err)
		}
		rewrite(t, sigTag(t, f, f.b), sigTag(t, f, f.a), func(p []byte, _ map[string]string) []byte { return p })
		ve := verdict(t, f, f.a, pubs(k), 1)
		onlyFailure(t, ve, ReasonDigestMismatch)
		if !strings.Contains(ve.Failures[0].Detail, f.b.String()) {
			t.Fatal(ve.Failures[0])
		}
	})
	t.Run("tag moved after signing", func(t *testing.T) {
		f := setup(t, "")
		v1Tag := f.repo.Tag("v1")
		img, _ := remote.Image(f.repo.Tag("a"))
		if err := remote.Write(v1Tag, img); err != nil {
			t.Fatal(err)
		}
		if _, err := Sign(ctx, f.repo, f.a, nil, k); err != nil {
			t.Fatal(err)
		}
		imgB, _ := remote.Image(f.repo.Tag("b"))
		if err := remote.Write(v1Tag, imgB); err != nil {
			t.Fatal(err)
		}
		desc, err := remote.Head(v1Tag)
		if err != nil {
			t.Fatal(err)
		}
		// The tag now names b, which nobody signed; a stays verified by its digest.
		if ve := verdict(t, f, desc.Digest, pubs(k), 1); ve.Reason != ReasonNoSignatures {
			t.Fatal(ve)
		}
		if _, err := Verify(ctx, f.repo, f.a, pubs(k), 1); err != nil {
			t.Fatal(err)
		}
	})
	for name, tc := range map[string]struct {
		edit func(ann map[string]string)
		want Reason
	}{
		"truncated signature": {func(ann map[string]string) {
			sig, _ := base64.StdEncoding.DecodeString(ann[SignatureAnnotation])
			ann[SignatureAnnotation] = base64.StdEncoding.EncodeToString(sig[:len(sig)-4])
		}, ReasonMalformedSignature},
		"padded signature": {func(ann map[string]string) {
			sig, _ := base64.StdEncoding.DecodeString(ann[SignatureAnnotation])
			ann[SignatureAnnotation] = base64.StdEncoding.EncodeToString(append(sig, 0))
		}, ReasonMalformedSignature},
		"annotation not base64": {func(ann map[string]string) { ann[SignatureAnnotation] = "%%%" }, ReasonMalformedSignature},
		"annotation missing":    {func(ann map[string]string) { delete(ann, SignatureAnnotation) }, ReasonMissingSignature},
	} {
		t.Run(name, func(t *testing.T) {
			f := setup(t, "")
			if _, err := Sign(ctx, f.repo, f.a, nil, k); err != nil {
				t.Fatal(err)
			}
			tag := sigTag(t, f, f.a)
			rewrite(t, tag, tag, func(p []byte, ann map[string]string) []byte { tc.edit(ann); return p })
			onlyFailure(t, verdict(t, f, f.a, pubs(k), 1), tc.want)
		})
	}
}

// serve starts the in-process registry behind a wrapper that can misbehave.
func serve(t *testing.T, wrap func(next http.Handler) http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(wrap(registry.New(registry.Logger(log.New(io.Discard, "", 0)))))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	return u.Host
}

// failWhen is a registry wrapper that answers 500 to the requests that match while on is set.
func failWhen(on *atomic.Bool, match func(r *http.Request) bool) func(next http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if on.Load() && match(r) {
				http.Error(w, "boom", http.StatusInternalServerError)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// hangWhen is a registry wrapper that, while on is set, holds the requests that match until
// the client gives up or the test ends.
func hangWhen(t *testing.T, on *atomic.Bool, match func(r *http.Request) bool) func(next http.Handler) http.Handler {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if on.Load() && match(r) {
				select {
				case <-r.Context().Done():
				case <-release:
				}
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// corruptBlobs is a registry wrapper that, while on is set, serves every blob that contains
// marker with its first old replaced by repl, so that it no longer matches its digest.
func corruptBlobs(on *atomic.Bool, marker, old, repl string) func(next http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !on.Load() || r.Method != http.MethodGet || !strings.Contains(r.URL.Path, "/blobs/") {
				next.ServeHTTP(w, r)
				return
			}
			rec := httptest.NewRecorder()
			next.ServeHTTP(rec, r)
			body := rec.Body.String()
			if strings.Contains(body, marker) {
				body = strings.Replace(body, old, repl, 1)
			}
			maps.Copy(w.Header(), rec.Header())
			w.WriteHeader(rec.Code)
			io.WriteString(w, body)
		})
	}
}

func isSigManifest(r *http.Request) bool {
	return strings.Contains(r.URL.Path, "/manifests/sha256-") && strings.HasSuffix(r.URL.Path, ".sig")
}

func TestRegistryFailures(t *testing.T) {
	noRetry := WithRemoteOptions(remote.WithRetryBackoff(remote.Backoff{Steps: 1}))
	k := newKey(t)

	t.Run("500", func(t *testing.T) {
		var broken atomic.Bool
		f := setup(t, serve(t, failWhen(&broken, isSigManifest)))
		if _, err := Sign(context.Background(), f.repo, f.a, nil, k); err != nil {
			t.Fatal(err)
		}
		broken.Store(true)
		_, err := Verify(context.Background(), f.repo, f.a, pubs(k), 1, noRetry)
		var ve *VerificationError
		if err == nil || errors.As(err, &ve) || !strings.Contains(err.Error(), "500") {
			t.Fatalf("got %v; want a registry error", err)
		}
		if _, err := Sign(context.Background(), f.repo, f.a, nil, k, noRetry); err == nil {
			t.Fatal("Sign over a broken registry succeeded")
		}
	})

	t.Run("hangs", func(t *testing.T) {
		var hang atomic.Bool
		f := setup(t, serve(t, hangWhen(t, &hang, isSigManifest)))
		if _, err := Sign(context.Background(), f.repo, f.a, nil, k); err != nil {
			t.Fatal(err)
		}
		hang.Store(true)
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := Verify(ctx, f.repo, f.a, pubs(k), 1, noRetry)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got %v; want the deadline", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("Verify took %s after a 300ms deadline", d)
		}
	})

	t.Run("blob does not match its digest", func(t *testing.T) {
		var corrupt atomic.Bool
		f := setup(t, serve(t, corruptBlobs(&corrupt, PayloadType, "sha256:", "sha256;")))
		if _, err := Sign(context.Background(), f.repo, f.a, nil, k); err != nil {
			t.Fatal(err)
		}
		corrupt.Store(true)
		ve := verdict(t, f, f.a, pubs(k), 1)
		onlyFailure(t, ve, ReasonPayloadDigest)
	})
}

func TestUnsupportedKeys(t *testing.T) {
	f := setup(t, "")
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Sign(context.Background(), f.repo, f.a, nil, p384); !errors.Is(err, key.ErrUnsupportedKey) {
		t.Fatalf("Sign with P-384: %v", err)
	}
	if _, err := Verify(context.Background(), f.repo, f.a, pubs(p384), 1); !errors.Is(err, key.ErrUnsupportedKey) {
		t.Fatalf("Verify with P-384: %v", err)
	}
}

// TestCosignGeneratedKey signs and verifies with a key pair that cosign generated.
func TestCosignGeneratedKey(t *testing.T) {
	b, err := os.ReadFile("../key/testdata/cosign-sigstore.key")
	if err != nil {
		t.Fatal(err)
	}
	k, err := key.LoadPrivateKey(b, []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	f := setup(t, "")
	if _, err := Sign(context.Background(), f.repo, f.a, nil, k); err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(context.Background(), f.repo, f.a, []crypto.PublicKey{k.Public()}, 1); err != nil {
		t.Fatal(err)
	}
}
