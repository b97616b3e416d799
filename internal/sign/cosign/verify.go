package cosign

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/moatsec/moat/internal/sign/key"
)

// Reason says why one signature, or the whole verification, failed.
type Reason string

// The reasons Verify gives. Each attack in the tests maps to one of them.
const (
	// ReasonNoSignatures: no signature image, or one without layers.
	ReasonNoSignatures Reason = "no signatures found"
	// ReasonTooManySignatures: the signature image has more than MaxSignatures layers.
	ReasonTooManySignatures Reason = "too many signatures"
	// ReasonMediaType: a layer that is not a simple-signing payload.
	ReasonMediaType Reason = "layer is not a simple-signing payload"
	// ReasonMissingSignature: the layer has no signature annotation.
	ReasonMissingSignature Reason = "signature annotation missing"
	// ReasonMalformedSignature: the annotation is not base64 of a DER ECDSA signature
	// (a truncated signature lands here).
	ReasonMalformedSignature Reason = "signature annotation is malformed"
	// ReasonPayloadTooLarge: the layer is larger than MaxPayloadSize.
	ReasonPayloadTooLarge Reason = "payload too large"
	// ReasonPayloadDigest: the blob the registry served does not match the layer digest.
	ReasonPayloadDigest Reason = "payload does not match its layer digest"
	// ReasonBadSignature: no given key verifies the signature over the payload (a wrong or
	// unknown key, or a payload edited after signing).
	ReasonBadSignature Reason = "signature does not verify with any given key"
	// ReasonMalformedPayload: a validly signed payload that is not a cosign payload.
	ReasonMalformedPayload Reason = "signed payload is malformed"
	// ReasonDigestMismatch: a valid signature, but over another manifest digest (a signature
	// copied from another image).
	ReasonDigestMismatch Reason = "signature is for another image digest"
	// ReasonThreshold: fewer distinct keys signed than required.
	ReasonThreshold Reason = "not enough keys signed"
)

// Verified is one signature that passed every check.
type Verified struct {
	// Key is the fingerprint (key.Fingerprint) of the public key that verified it.
	Key string
	// Layer is the digest of the payload layer.
	Layer v1.Hash
	// Payload is the parsed, signed payload; its Digest equals the digest verified.
	Payload Payload
}

// Failure is one signature that did not pass, and why.
type Failure struct {
	// Index is the layer's position in the signature image.
	Index  int
	Layer  v1.Hash
	Reason Reason
	// Detail adds specifics (the other digest, the decoding error).
	Detail string
}

func (f Failure) String() string {
	s := fmt.Sprintf("signature %d (%s): %s", f.Index, shortDigest(f.Layer), f.Reason)
	if f.Detail != "" {
		s += ": " + f.Detail
	}
	return s
}

// VerificationError is Verify's verdict that the image is not signed as required. It is
// distinct from registry and configuration errors, which Verify returns wrapped as they are.
type VerificationError struct {
	Digest    v1.Hash
	Threshold int
	// Reason is the overall reason: ReasonNoSignatures, ReasonTooManySignatures or
	// ReasonThreshold.
	Reason Reason
	// Verified lists the signatures that did verify, fewer than needed.
	Verified []Verified
	// Failures lists every signature that did not verify.
	Failures []Failure
}

func (e *VerificationError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "verifying %s: %s", e.Digest, e.Reason)
	if e.Reason == ReasonThreshold {
		fmt.Fprintf(&b, " (%d of %d required)", distinctKeys(e.Verified), e.Threshold)
	}
	for _, f := range e.Failures {
		b.WriteString("; ")
		b.WriteString(f.String())
	}
	return b.String()
}

// Verify checks the signatures stored for manifest digest in repo against keys, and succeeds
// when at least threshold distinct keys each verified at least one signature whose payload
// names digest. It returns every verified signature. A verdict against the image is a
// *VerificationError listing each signature and why it failed; any other error (registry
// unreachable, context expired, bad arguments) is returned wrapped and must also deny.
func Verify(ctx context.Context, repo name.Repository, digest v1.Hash, keys []crypto.PublicKey, threshold int, opts ...Option) ([]Verified, error) {
	type trusted struct {
		pub         *ecdsa.PublicKey
		fingerprint string
	}
	if len(keys) == 0 {
		return nil, errors.New("verifying signatures: no keys given")
	}
	if threshold < 1 || threshold > len(keys) {
		return nil, fmt.Errorf("verifying signatures: threshold %d out of range 1..%d", threshold, len(keys))
	}
	var ks []trusted
	seen := map[string]bool{}
	for _, k := range keys {
		pub, err := checkKey(k)
		if err != nil {
			return nil, fmt.Errorf("verifying signatures: %w", err)
		}
		fp, err := key.Fingerprint(pub)
		if err != nil {
			return nil, err
		}
		if seen[fp] {
			// The same key twice would count twice towards the threshold.
			return nil, fmt.Errorf("verifying signatures: key %s given more than once", fp)
		}
		seen[fp] = true
		ks = append(ks, trusted{pub, fp})
	}
	tag, err := SignatureTag(repo, digest)
	if err != nil {
		return nil, err
	}
	c := newConfig(ctx, opts)
	verr := &VerificationError{Digest: digest, Threshold: threshold}

	img, err := remote.Image(tag, c.remote...)
	if isNotFound(err) {
		verr.Reason = ReasonNoSignatures
		return nil, verr
	}
	if err != nil {
		return nil, fmt.Errorf("reading signatures at %s: %w", tag, err)
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, fmt.Errorf("reading signatures at %s: %w", tag, err)
	}
	if len(m.Layers) == 0 {
		verr.Reason = ReasonNoSignatures
		return nil, verr
	}
	if len(m.Layers) > MaxSignatures {
		verr.Reason = ReasonTooManySignatures
		verr.Failures = []Failure{{Index: -1, Reason: ReasonTooManySignatures, Detail: fmt.Sprintf("%d layers, at most %d are read", len(m.Layers), MaxSignatures)}}
		return nil, verr
	}
	var ok []Verified
	for i, desc := range m.Layers {
		fail := func(r Reason, detail string) {
			verr.Failures = append(verr.Failures, Failure{i, desc.Digest, r, detail})
		}
		if string(desc.MediaType) != SimpleSigningMediaType {
			fail(ReasonMediaType, string(desc.MediaType))
			continue
		}
		b64, present := desc.Annotations[SignatureAnnotation]
		if !present {
			fail(ReasonMissingSignature, "")
			continue
		}
		sig, err := base64.StdEncoding.Strict().DecodeString(b64)
		if err != nil {
			fail(ReasonMalformedSignature, "not base64")
			continue
		}
		if err := checkECDSASignature(sig); err != nil {
			fail(ReasonMalformedSignature, err.Error())
			continue
		}
		if desc.Size < 0 || desc.Size > MaxPayloadSize {
			fail(ReasonPayloadTooLarge, fmt.Sprintf("%d bytes", desc.Size))
			continue
		}
		payload, err := readPayload(img, desc.Digest)
		if err != nil {
			if errors.Is(err, errDigest) {
				fail(ReasonPayloadDigest, err.Error())
				continue
			}
			// A registry that fails mid-way is not a verdict on the image.
			return nil, fmt.Errorf("reading signature payload %s at %s: %w", desc.Digest, tag, err)
		}
		sum := sha256.Sum256(payload)
		signedBy := ""
		for _, k := range ks {
			if ecdsa.VerifyASN1(k.pub, sum[:], sig) {
				signedBy = k.fingerprint
				break
			}
		}
		if signedBy == "" {
			fail(ReasonBadSignature, "")
			continue
		}
		// Only an authenticated payload is parsed further.
		p, err := ParsePayload(payload)
		if err != nil {
			fail(ReasonMalformedPayload, err.Error())
			continue
		}
		if p.Digest != digest {
			fail(ReasonDigestMismatch, "signs "+p.Digest.String())
			continue
		}
		ok = append(ok, Verified{Key: signedBy, Layer: desc.Digest, Payload: *p})
	}
	if distinctKeys(ok) < threshold {
		verr.Reason = ReasonThreshold
		verr.Verified = ok
		return nil, verr
	}
	return ok, nil
}

var errDigest = errors.New("content does not match digest")

// readPayload fetches one layer blob, bounded, and checks it against its digest here rather
// than trusting the transport to.
func readPayload(img v1.Image, h v1.Hash) ([]byte, error) {
	l, err := img.LayerByDigest(h)
	if err != nil {
		return nil, err
	}
	rc, err := l.Compressed()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, MaxPayloadSize+1))
	if err != nil {
		// go-containerregistry's verifying reader reports a mismatch at EOF with this prefix.
		if strings.HasPrefix(err.Error(), "error verifying") {
			return nil, fmt.Errorf("%w: %w", errDigest, err)
		}
		return nil, err
	}
	if len(b) > MaxPayloadSize {
		return nil, fmt.Errorf("%w: more than %d bytes", errDigest, MaxPayloadSize)
	}
	sum := sha256.Sum256(b)
	if got := fmt.Sprintf("sha256:%x", sum); got != h.String() {
		return nil, fmt.Errorf("%w: got %s, want %s", errDigest, got, h)
	}
	return b, nil
}

// checkECDSASignature accepts exactly one DER SEQUENCE of two positive INTEGERs, so that a
// truncated or padded signature is reported as malformed rather than as a wrong key.
func checkECDSASignature(sig []byte) error {
	var rs struct{ R, S *big.Int }
	rest, err := asn1.Unmarshal(sig, &rs)
	if err != nil {
		return fmt.Errorf("not a DER ECDSA signature (%d bytes): %w", len(sig), err)
	}
	if len(rest) != 0 {
		return fmt.Errorf("%d bytes after the DER signature", len(rest))
	}
	if rs.R.Sign() <= 0 || rs.S.Sign() <= 0 {
		return errors.New("signature values are not positive")
	}
	return nil
}

func distinctKeys(vs []Verified) int {
	m := map[string]bool{}
	for _, v := range vs {
		m[v.Key] = true
	}
	return len(m)
}
