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
	"slices"
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
	// ReasonMalformedSignature: the signature (in the layer annotation, the DSSE envelope or
	// the bundle) is not a DER ECDSA signature, or the annotation is not base64. A truncated
	// signature lands here.
	ReasonMalformedSignature Reason = "signature is malformed"
	// ReasonPayloadTooLarge: the layer is larger than its bound (MaxPayloadSize for a
	// signature, MaxBundleSize for a signature bundle, MaxAttestationSize for an attestation),
	// or past MaxAttestationBytes.
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

// The reasons for signatures found as OCI 1.1 referrers and in sigstore bundles.
const (
	// ReasonMalformedReferrer: a referrer manifest that cannot be read as one, or names no
	// subject.
	ReasonMalformedReferrer Reason = "referrer manifest is malformed"
	// ReasonMalformedBundle: a sigstore bundle that is not well-formed JSON of the v0.3 shape.
	ReasonMalformedBundle Reason = "sigstore bundle is malformed"
	// ReasonKeyless: a bundle whose verification material is a certificate (keyless, Fulcio
	// or bring-your-own PKI). moat checks no certificate chain, transparency log or timestamp,
	// so it refuses these rather than trust the key in the certificate.
	ReasonKeyless Reason = "keyless signature: not supported without a transparency log"
	// ReasonNotSignature: a bundle that is not an image signature: an attestation (a statement
	// of another predicate type, or another payload type) or a message signature (a signed
	// blob, see verifyBundle).
	ReasonNotSignature Reason = "bundle is not an image signature"
)

// Source says where a signature or an attestation was found.
type Source string

// The places Verify and VerifyAttestations look, in the order they look.
const (
	// SourceReferrer: a cosign signature manifest (artifactType SignatureArtifactType) that
	// refers to the image through the OCI 1.1 referrers API or its tag schema. It holds
	// signatures only.
	SourceReferrer Source = "referrer"
	// SourceBundle: a sigstore bundle (artifactType BundleMediaType) that refers to the image,
	// as cosign --new-bundle-format stores signatures and attestations.
	SourceBundle Source = "bundle"
	// SourceTag: a layer of the image tagged repo:sha256-<hex>.sig (signatures) or
	// repo:sha256-<hex>.att (attestations).
	SourceTag Source = "tag"
)

// Kind says what is being verified, signatures or attestations, and so what a Failure is
// about.
type Kind string

const (
	// KindSignature: an image signature, as Verify checks them.
	KindSignature Kind = "signature"
	// KindAttestation: an attestation, as VerifyAttestations checks them.
	KindAttestation Kind = "attestation"
)

// Verified is one signature that passed every check.
type Verified struct {
	// Key is the fingerprint (key.Fingerprint) of the public key that verified it.
	Key string
	// Source is where the signature was found, and Manifest the digest of the referrer
	// manifest that holds it (zero for SourceTag).
	Source   Source
	Manifest v1.Hash
	// Layer is the digest of the payload layer, or of the bundle.
	Layer v1.Hash
	// Payload is the parsed, signed payload; its Digest equals the digest verified. A bundle
	// names no repository, so its DockerReference is empty; its Annotations are those of the
	// statement's subject.
	Payload Payload
}

// Failure is one signature or attestation that did not pass, and why.
type Failure struct {
	// Kind is what failed: KindSignature (from Verify) or KindAttestation (from
	// VerifyAttestations). The zero value reads as KindSignature.
	Kind Kind
	// Source and Manifest say where it was (see Verified); Index is the layer's position in
	// that manifest or tag, or -1 for the manifest, the tag or the referrers as a whole.
	Source   Source
	Manifest v1.Hash
	Index    int
	Layer    v1.Hash
	Reason   Reason
	// Detail adds specifics (the other digest, the decoding error).
	Detail string
}

// String says what failed, where, and why, for people: "signature 0 (sha256:ab12…): …",
// "attestation 2 (…): …", "referrer sha256:cd34…, attestation bundle 0 (…): …",
// "referrer sha256:cd34…: …" for a referrer manifest, "attestation tag: …" and "referrers: …"
// for a place as a whole.
func (f Failure) String() string {
	kind := f.Kind
	if kind == "" {
		kind = KindSignature
	}
	var what string
	switch {
	case f.Index >= 0 && f.Source == SourceBundle:
		what = fmt.Sprintf("%s bundle %d (%s)", kind, f.Index, shortDigest(f.Layer))
	case f.Index >= 0:
		what = fmt.Sprintf("%s %d (%s)", kind, f.Index, shortDigest(f.Layer))
	case f.Source == SourceTag:
		what = string(kind) + " tag"
	}
	var s string
	switch {
	case f.Manifest != (v1.Hash{}) && what != "":
		s = fmt.Sprintf("referrer %s, %s", shortDigest(f.Manifest), what)
	case f.Manifest != (v1.Hash{}):
		s = "referrer " + shortDigest(f.Manifest)
	case what != "":
		s = what
	case f.Source == SourceReferrer || f.Source == SourceBundle:
		s = "referrers"
	default:
		s = "manifest"
	}
	s += ": " + string(f.Reason)
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

// trustedKey is one key given to Verify.
type trustedKey struct {
	pub         *ecdsa.PublicKey
	fingerprint string
}

// Verify checks the signatures stored for manifest digest in repo against keys, and succeeds
// when at least threshold distinct keys each verified at least one signature that names
// digest. It reads every place cosign stores a signature: first the referrers of digest (the
// OCI 1.1 referrers API, or the referrers tag schema sha256-<hex> on a registry without it),
// where it checks cosign signature manifests and sigstore bundles, then the tag
// sha256-<hex>.sig; a key counts once however many places it signed in. It returns every
// verified signature. A verdict against the image is a *VerificationError listing each
// signature and why it failed; any other error (registry unreachable or failing, context
// expired, bad arguments) is returned wrapped and must also deny.
func Verify(ctx context.Context, repo name.Repository, digest v1.Hash, keys []crypto.PublicKey, threshold int, opts ...Option) ([]Verified, error) {
	if len(keys) == 0 {
		return nil, errors.New("verifying signatures: no keys given")
	}
	if threshold < 1 || threshold > len(keys) {
		return nil, fmt.Errorf("verifying signatures: threshold %d out of range 1..%d", threshold, len(keys))
	}
	// The same key twice would count twice towards the threshold.
	ks, err := trustedKeys("verifying signatures", keys, false)
	if err != nil {
		return nil, err
	}
	tag, err := SignatureTag(repo, digest)
	if err != nil {
		return nil, err
	}
	v := newVerifier(ctx, KindSignature, repo, digest, ks, opts)
	if err := v.referrers(); err != nil {
		return nil, err
	}
	if !v.tooMany {
		if err := v.tag(tag); err != nil {
			return nil, err
		}
	}
	verr := &VerificationError{Digest: digest, Threshold: threshold, Failures: v.failures}
	switch {
	case v.tooMany:
		// Too many signatures in one place: nothing is verified.
		verr.Reason = ReasonTooManySignatures
	case v.found == 0:
		verr.Reason = ReasonNoSignatures
	case distinctKeys(v.signatures) < threshold:
		verr.Reason = ReasonThreshold
		verr.Verified = v.signatures
	default:
		return v.signatures, nil
	}
	return nil, verr
}

// trustedKeys applies the key policy to keys and fingerprints them, for the operation named
// in errors. A key given twice is an error unless repeats are allowed, when it counts once.
func trustedKeys(what string, keys []crypto.PublicKey, repeats bool) ([]trustedKey, error) {
	if len(keys) == 0 {
		return nil, fmt.Errorf("%s: no keys given", what)
	}
	var ks []trustedKey
	for _, k := range keys {
		pub, err := checkKey(k)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		fp, err := key.Fingerprint(pub)
		if err != nil {
			return nil, err
		}
		if slices.ContainsFunc(ks, func(k trustedKey) bool { return k.fingerprint == fp }) {
			if !repeats {
				return nil, fmt.Errorf("%s: key %s given more than once", what, fp)
			}
			continue
		}
		ks = append(ks, trustedKey{pub, fp})
	}
	return ks, nil
}

// verifier collects the verdicts on what is stored for one digest: its signatures (Verify)
// or its attestations (VerifyAttestations).
type verifier struct {
	repo   name.Repository
	digest v1.Hash
	keys   []trustedKey
	remote []remote.Option
	// kind is what is verified; the failures are about it.
	kind     Kind
	failures []Failure
	// tooMany is set when one place holds more than is read; failures then holds only the
	// failure that says so.
	tooMany      bool
	signatures   []Verified
	attestations []VerifiedAttestation
	// found counts the signatures examined, valid or not.
	found int
	// budget is how many bytes of attestations are still read.
	budget int64
}

func newVerifier(ctx context.Context, kind Kind, repo name.Repository, digest v1.Hash, keys []trustedKey, opts []Option) *verifier {
	return &verifier{
		repo:   repo,
		digest: digest,
		keys:   keys,
		remote: newConfig(ctx, opts).remote,
		kind:   kind,
		budget: MaxAttestationBytes,
	}
}

func (v *verifier) fail(f Failure) {
	f.Kind = v.kind
	v.failures = append(v.failures, f)
}

// overflow records the verdict that one place holds more than is read.
func (v *verifier) overflow(src Source, detail string) {
	r := ReasonTooManySignatures
	if v.kind == KindAttestation {
		r = ReasonTooManyAttestations
	}
	v.tooMany = true
	v.failures = []Failure{{Kind: v.kind, Source: src, Index: -1, Reason: r, Detail: detail}}
}

// signedBy returns the fingerprint of the first of keys whose ECDSA signature over the
// SHA-256 hash sum is sig, or "".
func signedBy(keys []trustedKey, sum, sig []byte) string {
	for _, k := range keys {
		if ecdsa.VerifyASN1(k.pub, sum, sig) {
			return k.fingerprint
		}
	}
	return ""
}

// tag checks the layers of the signature image repo:sha256-<hex>.sig.
func (v *verifier) tag(tag name.Tag) error {
	img, err := remote.Image(tag, v.remote...)
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading signatures at %s: %w", tag, err)
	}
	m, err := img.Manifest()
	if err != nil {
		return fmt.Errorf("reading signatures at %s: %w", tag, err)
	}
	if len(m.Layers) > MaxSignatures {
		v.overflow(SourceTag, fmt.Sprintf("%d layers, at most %d are read", len(m.Layers), MaxSignatures))
		return nil
	}
	for i, desc := range m.Layers {
		read := func() ([]byte, error) { return imageBlob(img, desc.Digest, MaxPayloadSize) }
		if err := v.simpleSigning(SourceTag, v1.Hash{}, i, desc, read); err != nil {
			return fmt.Errorf("reading signature payload %s at %s: %w", desc.Digest, tag, err)
		}
	}
	return nil
}

// simpleSigning checks one cosign signature layer: a simple-signing payload with its
// signature in an annotation. It returns an error only when the registry fails; every
// verdict is recorded.
func (v *verifier) simpleSigning(src Source, manifest v1.Hash, i int, desc v1.Descriptor, read func() ([]byte, error)) error {
	v.found++
	fail := func(r Reason, detail string) {
		v.fail(Failure{Source: src, Manifest: manifest, Index: i, Layer: desc.Digest, Reason: r, Detail: detail})
	}
	if string(desc.MediaType) != SimpleSigningMediaType {
		fail(ReasonMediaType, string(desc.MediaType))
		return nil
	}
	b64, present := desc.Annotations[SignatureAnnotation]
	if !present {
		fail(ReasonMissingSignature, "")
		return nil
	}
	sig, err := base64.StdEncoding.Strict().DecodeString(b64)
	if err != nil {
		fail(ReasonMalformedSignature, "annotation is not base64")
		return nil
	}
	if err := checkECDSASignature(sig); err != nil {
		fail(ReasonMalformedSignature, err.Error())
		return nil
	}
	if desc.Size < 0 || desc.Size > MaxPayloadSize {
		fail(ReasonPayloadTooLarge, fmt.Sprintf("%d bytes", desc.Size))
		return nil
	}
	payload, err := read()
	if err != nil {
		if errors.Is(err, errDigest) {
			fail(ReasonPayloadDigest, err.Error())
			return nil
		}
		// A registry that fails mid-way is not a verdict on the image.
		return err
	}
	sum := sha256.Sum256(payload)
	by := signedBy(v.keys, sum[:], sig)
	if by == "" {
		fail(ReasonBadSignature, "")
		return nil
	}
	// Only an authenticated payload is parsed further.
	p, err := ParsePayload(payload)
	if err != nil {
		fail(ReasonMalformedPayload, errDetail(err, ErrMalformedPayload))
		return nil
	}
	if p.Digest != v.digest {
		fail(ReasonDigestMismatch, "signs "+p.Digest.String())
		return nil
	}
	v.signatures = append(v.signatures, Verified{Key: by, Source: src, Manifest: manifest, Layer: desc.Digest, Payload: *p})
	return nil
}

var errDigest = errors.New("content does not match digest")

// errDetail is the message of err for a Failure's Detail, without the prefixes of the sentinel
// errors given (in the order they stand), which the Failure's Reason already says.
func errDetail(err error, sentinels ...error) string {
	s := err.Error()
	for _, e := range sentinels {
		s = strings.TrimPrefix(s, e.Error()+": ")
	}
	return s
}

// imageBlob fetches one layer blob of img, at most limit bytes, and checks it against its
// digest here rather than trusting the transport to. A mismatch wraps errDigest.
func imageBlob(img v1.Image, h v1.Hash, limit int64) ([]byte, error) {
	l, err := img.LayerByDigest(h)
	if err != nil {
		return nil, err
	}
	return readBlob(l, h, limit)
}

// readBlob reads a layer's blob, at most limit bytes, and checks it against digest h.
func readBlob(l v1.Layer, h v1.Hash, limit int64) ([]byte, error) {
	rc, err := l.Compressed()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		// go-containerregistry's verifying reader reports a mismatch at EOF with this prefix.
		if strings.HasPrefix(err.Error(), "error verifying") {
			return nil, fmt.Errorf("%w: %w", errDigest, err)
		}
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%w: more than %d bytes", errDigest, limit)
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
