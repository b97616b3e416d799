// Package cosign signs and verifies container images the way cosign stores key-based
// signatures, so that signatures made by either tool verify in the other.
//
// A signature of manifest digest sha256:<hex> in repository R lives in the image tagged
// R:sha256-<hex>.sig. Each of its layers is one signature: the layer blob is the
// simple-signing payload (media type SimpleSigningMediaType, see Payload) and the layer's
// annotation SignatureAnnotation holds the base64 ASN.1 ECDSA signature over the SHA-256 of
// that blob. Signing appends a layer; it never removes other signatures.
//
// This package supports ECDSA P-256 keys with SHA-256, which is what `cosign generate-key-pair`
// makes; other keys are refused with key.ErrUnsupportedKey. It reads only the tag scheme:
// the OCI 1.1 referrers API and sigstore bundles are not implemented yet. No transparency log is
// consulted, as with `cosign verify --insecure-ignore-tlog`.
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

// Option changes how Sign and Verify talk to the registry.
type Option func(*config)

type config struct {
	remote []remote.Option
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
