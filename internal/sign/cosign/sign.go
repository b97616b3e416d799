package cosign

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Signed describes a signature that Sign stored.
type Signed struct {
	// Tag is the signature image's tag, repo:sha256-<hex>.sig; empty with ReferrersOnly.
	Tag name.Tag
	// Referrer is the digest of the referrer manifest written; zero when none was (the
	// default ReferrersOff, or ReferrersAlso on a registry without the referrers API).
	Referrer v1.Hash
	// Layer is the digest of the payload layer.
	Layer v1.Hash
	// Payload is the signed document, and Signature the raw ASN.1 signature over its SHA-256.
	Payload   []byte
	Signature []byte
	// Existing is true when the same payload and signature were already at the tag, which was
	// left as it was. A referrer, being content-addressed, is written again harmlessly.
	Existing bool
}

// Sign signs manifest digest in repo with signer and stores the signature as cosign does,
// appending it to the signatures already stored for that digest at the tag. The caller
// resolves any tag to digest first, exactly once; Sign never looks at tags of the image.
// Annotations become the payload's "optional" section and are signed with it. WithReferrers
// chooses whether the signature is also, or only, stored as an OCI 1.1 referrer; the referrer
// holds the signatures of the tag as well, as cosign's does.
//
// Two writers signing the same digest at the same moment can lose one signature (the
// registry offers no compare-and-swap on tags); cosign has the same race.
func Sign(ctx context.Context, repo name.Repository, digest v1.Hash, annotations map[string]string, signer crypto.Signer, opts ...Option) (*Signed, error) {
	if _, err := checkKey(signer.Public()); err != nil {
		return nil, err
	}
	c := newConfig(ctx, opts)
	if c.referrers < ReferrersOff || c.referrers > ReferrersOnly {
		return nil, fmt.Errorf("signing: unknown referrers mode %d", c.referrers)
	}
	tag, err := SignatureTag(repo, digest)
	if err != nil {
		return nil, err
	}
	payload, err := Payload{DockerReference: repo.Name(), Digest: digest, Annotations: annotations}.Marshal()
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(payload)
	sig, err := signer.Sign(rand.Reader, sum[:], crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("signing payload: %w", err)
	}
	b64 := base64.StdEncoding.EncodeToString(sig)
	layer := static.NewLayer(payload, types.MediaType(SimpleSigningMediaType))
	layerDigest, err := layer.Digest()
	if err != nil {
		return nil, err
	}
	out := &Signed{Layer: layerDigest, Payload: payload, Signature: sig}

	writeTag, writeReferrers := c.referrers != ReferrersOnly, c.referrers != ReferrersOff
	if writeReferrers {
		offered, err := referrersOffered(repo, c)
		if err != nil {
			return nil, err
		}
		if !offered && c.referrers == ReferrersOnly {
			return nil, fmt.Errorf("storing the signature of %s as a referrer: %w", digest, ErrReferrersUnsupported)
		}
		writeReferrers = offered
	}
	if writeTag {
		out.Tag = tag
	}

	base, err := remote.Image(tag, c.remote...)
	switch {
	case isNotFound(err):
		base = mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	case err != nil:
		return nil, fmt.Errorf("reading signatures at %s: %w", tag, err)
	default:
		m, err := base.Manifest()
		if err != nil {
			return nil, fmt.Errorf("reading signatures at %s: %w", tag, err)
		}
		for _, l := range m.Layers {
			if l.Digest == layerDigest && l.Annotations[SignatureAnnotation] == b64 {
				out.Existing = true
			}
		}
	}
	img := base
	if !out.Existing {
		if img, err = mutate.Append(base, mutate.Addendum{
			Layer:       layer,
			Annotations: map[string]string{SignatureAnnotation: b64},
		}); err != nil {
			return nil, fmt.Errorf("adding signature layer: %w", err)
		}
		cfg, err := img.ConfigFile()
		if err != nil {
			return nil, fmt.Errorf("reading signature image config: %w", err)
		}
		if cfg.Created.IsZero() {
			// cosign stamps a new signature image with the time it was made.
			if img, err = mutate.CreatedAt(img, v1.Time{Time: time.Now().UTC()}); err != nil {
				return nil, err
			}
		}
		if writeTag {
			if err := remote.Write(tag, img, c.remote...); err != nil {
				return nil, fmt.Errorf("writing signature to %s: %w", tag, err)
			}
		}
	}
	if writeReferrers {
		if out.Referrer, err = writeReferrer(repo, digest, img, c); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// isNotFound reports whether a registry said the tag does not exist.
func isNotFound(err error) bool {
	var te *transport.Error
	if errors.As(err, &te) {
		if te.StatusCode == http.StatusNotFound {
			return true
		}
		for _, d := range te.Errors {
			if d.Code == transport.ManifestUnknownErrorCode || d.Code == transport.NameUnknownErrorCode {
				return true
			}
		}
	}
	return false
}
