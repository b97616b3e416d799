// Package cosign signs and verifies container images the way cosign stores key-based
// signatures, so that signatures made by either tool verify in the other.
//
// A signature of manifest digest sha256:<hex> in repository R lives in the image tagged
// R:sha256-<hex>.sig. Each of its layers is one signature: the layer blob is the
// simple-signing payload (media type SimpleSigningMediaType, see Payload) and the layer's
// annotation SignatureAnnotation holds the base64 ASN.1 ECDSA signature over the SHA-256 of
// that blob. Signing appends a layer; it never removes other signatures.
//
// Cosign can also keep signatures as OCI 1.1 referrers of the image, which Verify reads before
// the tag: a cosign signature manifest (`cosign sign --registry-referrers-mode=oci-1-1`: the
// same image manifest, config media type SignatureArtifactType, the image as "subject") or a
// sigstore bundle (`cosign sign --new-bundle-format`: artifactType BundleMediaType, one
// bundle layer whose DSSE envelope signs an in-toto statement with predicate type
// SignPredicateType and the digest as subject). The referrers come from the registry's
// referrers API or, on a registry without it, from the referrers tag schema (an index tagged
// sha256-<hex>). A key counts once towards the threshold however many places it signed in.
//
// Attestations (see Attest and VerifyAttestations) live in the same two kinds of place: the
// layers of the image tagged R:sha256-<hex>.att, and sigstore bundles that refer to the image
// (`cosign attest --new-bundle-format`), told apart from signature bundles by their
// statement's predicate type.
//
// Sign writes the tag by default, since that is what `cosign verify` reads. WithReferrers
// also, or instead, stores the signature as a referrer in the oci-1-1 shape, which `cosign
// verify --experimental-oci11` reads; only when the registry answers the referrers API,
// because the tag schema is a client-maintained index that any writer can race. Sign does not
// write bundles, nor does Attest.
//
// This package supports ECDSA P-256 keys with SHA-256, which is what `cosign generate-key-pair`
// makes; other keys are refused with key.ErrUnsupportedKey. No transparency log or timestamp
// is consulted, as with `cosign verify --insecure-ignore-tlog`: log entries and timestamps in
// a key-based bundle are ignored, and a bundle whose verification material is a certificate
// (keyless signing) is refused with ReasonKeyless, since without the log and the CA chain its
// certificate proves nothing.
package cosign

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/moatsec/moat/internal/sign/key"
)

const (
	// SimpleSigningMediaType is the media type of a signature layer.
	SimpleSigningMediaType = "application/vnd.dev.cosign.simplesigning.v1+json"
	// SignatureAnnotation is the layer annotation that holds the base64 signature.
	SignatureAnnotation = "dev.cosignproject.cosign/signature"
	// MaxSignatures bounds how many signature layers Verify reads from one image.
	MaxSignatures = 256
)

// Option changes how Sign and Verify talk to the registry, and where Sign stores signatures.
type Option func(*config)

type config struct {
	remote  []remote.Option
	replace bool // Attest: drop attestations of the same predicate type (WithReplace)
	// referrers is where Sign stores signatures (WithReferrers).
	referrers ReferrersMode
}

// WithRemoteOptions passes options (transport, credentials, user agent) to
// go-containerregistry. The context is always the one given to Sign or Verify.
func WithRemoteOptions(opts ...remote.Option) Option {
	return func(c *config) { c.remote = append(c.remote, opts...) }
}

func newConfig(ctx context.Context, opts []Option) *config {
	c := &config{}
	for _, o := range opts {
		o(c)
	}
	c.remote = append(c.remote, remote.WithContext(ctx))
	return c
}

// SignatureTag is where cosign keeps the signatures of digest in repo:
// repo:sha256-<hex>.sig.
func SignatureTag(repo name.Repository, digest v1.Hash) (name.Tag, error) {
	if err := checkDigest(digest.String()); err != nil {
		return name.Tag{}, err
	}
	return repo.Tag(digest.Algorithm + "-" + digest.Hex + ".sig"), nil
}

// checkKey applies the key policy of this package: ECDSA P-256.
func checkKey(pub crypto.PublicKey) (*ecdsa.PublicKey, error) {
	k, ok := pub.(*ecdsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%w: %T keys cannot sign images yet (ECDSA P-256 only)", key.ErrUnsupportedKey, pub)
	}
	if k.Curve != elliptic.P256() {
		return nil, fmt.Errorf("%w: ECDSA curve %s (P-256 only)", key.ErrUnsupportedKey, k.Curve.Params().Name)
	}
	return k, nil
}

// shortDigest is for messages.
func shortDigest(h v1.Hash) string {
	s := h.String()
	if i := strings.IndexByte(s, ':'); i >= 0 && len(s) > i+13 {
		return s[:i+13]
	}
	return s
}
