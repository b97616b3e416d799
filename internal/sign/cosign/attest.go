package cosign

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/moatsec/moat/internal/sign/dsse"
	"github.com/moatsec/moat/internal/sign/intoto"
)

// Attestations are stored as cosign 2.x stores key-based ones (`cosign attest --key`, read by
// `cosign verify-attestation --key`): the attestations of manifest digest sha256:<hex> in
// repository R are the layers of the image tagged R:sha256-<hex>.att. Each layer is one JSON
// DSSE envelope (media type dsse.MediaType) whose payload is an in-toto statement (payload type
// intoto.PayloadType) naming the digest as its subject; the signature is inside the envelope,
// so the layer's SignatureAnnotation is present but empty, and PredicateTypeAnnotation repeats
// the statement's predicate type, unsigned, for tools that list attestations without reading
// them. Verification trusts only the signed statement.
//
// Cosign can also store an attestation as a sigstore bundle that refers to the image (`cosign
// attest --new-bundle-format`, the default in cosign v3; see referrers.go and bundle.go).
// VerifyAttestations reads those first, then the tag.

const (
	// PredicateTypeAnnotation is the layer annotation that names the predicate type.
	PredicateTypeAnnotation = "predicateType"
	// MaxAttestationSize bounds one attestation layer (the JSON envelope). SBOM predicates of
	// large images run to tens of megabytes; larger layers are refused before download.
	MaxAttestationSize = 64 << 20
	// MaxAttestations bounds how many attestation layers VerifyAttestations reads, and how many
	// Attest lets an image accumulate.
	MaxAttestations = 256
	// MaxAttestationBytes bounds what VerifyAttestations downloads for one digest in total;
	// layers past it fail with ReasonPayloadTooLarge.
	MaxAttestationBytes = 256 << 20
)

// Predicate type URIs of cosign's --type shorthand names (cosign 2.6,
// cmd/cosign/cli/options/predicate.go).
const (
	// PredicateTypeCustom is "custom", cosign's default: any text, wrapped as
	// {"Data": text, "Timestamp": RFC 3339 time}.
	PredicateTypeCustom = "https://cosign.sigstore.dev/attestation/v1"
	// PredicateTypeVuln is "vuln", cosign's vulnerability scan predicate.
	PredicateTypeVuln = "https://cosign.sigstore.dev/attestation/vuln/v1"
	// PredicateTypeSLSA02 is "slsaprovenance" and "slsaprovenance02".
	PredicateTypeSLSA02 = "https://slsa.dev/provenance/v0.2"
	// PredicateTypeSLSA1 is "slsaprovenance1".
	PredicateTypeSLSA1 = "https://slsa.dev/provenance/v1"
	// PredicateTypeSPDX is "spdx" (the document as a JSON string) and "spdxjson" (as JSON).
	PredicateTypeSPDX = "https://spdx.dev/Document"
	// PredicateTypeCycloneDX is "cyclonedx" (CycloneDX JSON).
	PredicateTypeCycloneDX = "https://cyclonedx.org/bom"
	// PredicateTypeLink is "link", an in-toto 0.9 link.
	PredicateTypeLink = "https://in-toto.io/Link/v1"
	// PredicateTypeOpenVEX is "openvex".
	PredicateTypeOpenVEX = "https://openvex.dev/ns"
)

// predicateTypes maps cosign's shorthand names to URIs.
var predicateTypes = map[string]string{
	"custom":           PredicateTypeCustom,
	"slsaprovenance":   PredicateTypeSLSA02,
	"slsaprovenance02": PredicateTypeSLSA02,
	"slsaprovenance1":  PredicateTypeSLSA1,
	"spdx":             PredicateTypeSPDX,
	"spdxjson":         PredicateTypeSPDX,
	"cyclonedx":        PredicateTypeCycloneDX,
	"link":             PredicateTypeLink,
	"vuln":             PredicateTypeVuln,
	"openvex":          PredicateTypeOpenVEX,
}

// PredicateTypeNames lists cosign's shorthand --type names, sorted, for help texts.
func PredicateTypeNames() []string {
	names := make([]string, 0, len(predicateTypes))
	for n := range predicateTypes {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// PredicateTypeURI resolves a --type value as cosign does: a shorthand name (see
// PredicateTypeNames) becomes its URI; anything else must itself be an absolute URI and is
// returned unchanged.
func PredicateTypeURI(typ string) (string, error) {
	if uri, ok := predicateTypes[typ]; ok {
		return uri, nil
	}
	if err := checkPredicateType(typ); err != nil {
		return "", err
	}
	return typ, nil
}

func checkPredicateType(uri string) error {
	u, err := url.ParseRequestURI(uri)
	if err != nil || u.Scheme == "" {
		return fmt.Errorf("predicate type %q is neither one of %s nor an absolute URI", uri, strings.Join(PredicateTypeNames(), ", "))
	}
	return nil
}

// BuildPredicate turns the contents of a predicate file into a statement predicate as
// `cosign attest --type typ` does, returning the predicate type URI and the predicate JSON:
// "custom" wraps any UTF-8 text as {"Data": text, "Timestamp": now in RFC 3339 UTC}; "spdx"
// embeds the document as one JSON string; every other name, and a URI, takes raw as JSON
// (an object, except for cyclonedx, spdxjson and openvex, as cosign requires). Cosign
// re-encodes JSON predicates (sorting keys, turning numbers into floats); moat keeps them as
// given, compacted, so large integers survive. Cosign's field checks for SLSA and link
// predicates are not repeated.
func BuildPredicate(typ string, raw []byte, now time.Time) (predicateType string, predicate []byte, err error) {
	uri, err := PredicateTypeURI(typ)
	if err != nil {
		return "", nil, err
	}
	switch typ {
	case "custom":
		if !utf8.Valid(raw) {
			return "", nil, errors.New("custom predicate: not UTF-8 text")
		}
		b, err := json.Marshal(struct {
			Data      string
			Timestamp string
		}{string(raw), now.UTC().Format(time.RFC3339)})
		return uri, b, err
	case "spdx":
		if !utf8.Valid(raw) {
			return "", nil, errors.New("spdx predicate: not UTF-8 text")
		}
		b, err := json.Marshal(string(raw))
		return uri, b, err
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return "", nil, fmt.Errorf("%s predicate: %w", typ, err)
	}
	switch typ {
	case "cyclonedx", "spdxjson", "openvex":
		// Cosign takes any JSON value for these.
	default:
		// Cosign decodes the others into a struct or a map.
		if buf.Len() == 0 || buf.Bytes()[0] != '{' {
			return "", nil, fmt.Errorf("%s predicate: not a JSON object", typ)
		}
	}
	return uri, buf.Bytes(), nil
}

// AttestationTag is where cosign keeps the attestations of digest in repo:
// repo:sha256-<hex>.att.
func AttestationTag(repo name.Repository, digest v1.Hash) (name.Tag, error) {
	if err := checkDigest(digest.String()); err != nil {
		return name.Tag{}, err
	}
	return repo.Tag(digest.Algorithm + "-" + digest.Hex + ".att"), nil
}

// WithReplace makes Attest behave as `cosign attest --replace`: attestations whose statement
// has the same predicate type are removed (whoever signed them) and the new one is stored
// first, followed by the others in their order. Replacing reads every stored attestation and
// fails if one cannot be read, as cosign does.
func WithReplace() Option {
	return func(c *config) { c.replace = true }
}

// Attested describes an attestation that Attest stored.
type Attested struct {
	// Tag is the attestation image's tag, repo:sha256-<hex>.att.
	Tag name.Tag
	// Layer is the digest of the envelope layer.
	Layer v1.Hash
	// PredicateType is the statement's predicate type.
	PredicateType string
	// Statement is the signed in-toto statement, and Envelope the stored DSSE envelope.
	Statement []byte
	Envelope  []byte
	// Existing is true when the identical envelope was already stored, so nothing was written.
	Existing bool
	// Replaced counts the attestations WithReplace removed.
	Replaced int
}

// Attest signs an in-toto statement that predicate, of type predicateType (a URI; see
// PredicateTypeURI and BuildPredicate), holds for manifest digest in repo, and stores it as
// cosign does, after the attestations already stored for that digest (or, WithReplace, in
// place of those of the same type). The statement's subject is named repo.Name() with
// digest's sha256. The caller resolves any tag to digest first, exactly once.
//
// As with Sign, two writers attesting the same digest at once can lose one attestation.
func Attest(ctx context.Context, repo name.Repository, digest v1.Hash, predicateType string, predicate []byte, signer crypto.Signer, opts ...Option) (*Attested, error) {
	if _, err := checkKey(signer.Public()); err != nil {
		return nil, err
	}
	tag, err := AttestationTag(repo, digest)
	if err != nil {
		return nil, err
	}
	if err := checkPredicateType(predicateType); err != nil {
		return nil, err
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, predicate); err != nil {
		return nil, fmt.Errorf("reading predicate: %w", err)
	}
	st := intoto.Statement{
		Type:          intoto.StatementV01,
		PredicateType: predicateType,
		Subject:       []intoto.Subject{{Name: repo.Name(), Digest: map[string]string{digest.Algorithm: digest.Hex}}},
		Predicate:     compact.Bytes(),
	}
	payload, err := st.Marshal()
	if err != nil {
		return nil, fmt.Errorf("encoding statement: %w", err)
	}
	env, err := dsse.Sign(signer, crypto.SHA256, intoto.PayloadType, payload)
	if err != nil {
		return nil, err
	}
	blob, err := env.Marshal()
	if err != nil {
		return nil, err
	}
	if len(blob) > MaxAttestationSize {
		return nil, fmt.Errorf("attestation is %d bytes, more than the %d a verifier reads", len(blob), MaxAttestationSize)
	}
	layer := static.NewLayer(blob, dsse.MediaType)
	layerDigest, err := layer.Digest()
	if err != nil {
		return nil, err
	}
	ann := map[string]string{SignatureAnnotation: "", PredicateTypeAnnotation: predicateType}
	out := &Attested{Tag: tag, Layer: layerDigest, PredicateType: predicateType, Statement: payload, Envelope: blob}

	c := newConfig(ctx, opts)
	base, err := remote.Image(tag, c.remote...)
	var existing []v1.Descriptor
	switch {
	case isNotFound(err):
		base = emptyAttestations()
	case err != nil:
		return nil, fmt.Errorf("reading attestations at %s: %w", tag, err)
	default:
		m, err := base.Manifest()
		if err != nil {
			return nil, fmt.Errorf("reading attestations at %s: %w", tag, err)
		}
		existing = m.Layers
	}
	// The same envelope again (a deterministic signer, a retried run) adds nothing. Replacing
	// goes on regardless, so that other attestations of the type still go.
	for _, l := range existing {
		if !c.replace && l.Digest == layerDigest && l.MediaType == dsse.MediaType && l.Annotations[PredicateTypeAnnotation] == predicateType {
			out.Existing = true
			return out, nil
		}
	}

	add := mutate.Addendum{Layer: layer, Annotations: ann}
	var img v1.Image
	if c.replace {
		adds := []mutate.Addendum{add}
		for i, l := range existing {
			typ, err := storedPredicateType(base, l)
			if err != nil {
				return nil, fmt.Errorf("replacing attestations at %s: layer %d (%s): %w", tag, i, shortDigest(l.Digest), err)
			}
			if typ == predicateType {
				out.Replaced++
				continue
			}
			kept, err := base.LayerByDigest(l.Digest)
			if err != nil {
				return nil, fmt.Errorf("replacing attestations at %s: %w", tag, err)
			}
			adds = append(adds, mutate.Addendum{Layer: kept, Annotations: l.Annotations, MediaType: l.MediaType})
		}
		if len(adds) > MaxAttestations {
			return nil, fmt.Errorf("%s would hold %d attestations, more than the %d a verifier reads", tag, len(adds), MaxAttestations)
		}
		img, err = mutate.Append(emptyAttestations(), adds...)
	} else {
		if len(existing)+1 > MaxAttestations {
			return nil, fmt.Errorf("%s already holds %d attestations; a verifier reads at most %d", tag, len(existing), MaxAttestations)
		}
		img, err = mutate.Append(base, add)
	}
	if err != nil {
		return nil, fmt.Errorf("adding attestation layer: %w", err)
	}
	// Cosign 2.6 leaves the config's creation time unset unless asked
	// (--record-creation-timestamp), which keeps the image reproducible; so does moat.
	if err := remote.Write(tag, img, c.remote...); err != nil {
		return nil, fmt.Errorf("writing attestation to %s: %w", tag, err)
	}
	return out, nil
}

// emptyAttestations is the image cosign starts from: an OCI manifest with an empty OCI config.
func emptyAttestations() v1.Image {
	return mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
}

// storedPredicateType reads the predicate type of a stored attestation without verifying it,
// which is all replacing needs (cosign reads it the same way).
func storedPredicateType(img v1.Image, d v1.Descriptor) (string, error) {
	if d.Size < 0 || d.Size > MaxAttestationSize {
		return "", fmt.Errorf("%d bytes, more than %d", d.Size, MaxAttestationSize)
	}
	blob, err := imageBlob(img, d.Digest, MaxAttestationSize)
	if err != nil {
		return "", err
	}
	env, err := dsse.Parse(blob)
	if err != nil {
		return "", err
	}
	var st struct {
		PredicateType *string `json:"predicateType"`
	}
	if err := json.Unmarshal(env.Payload, &st); err != nil {
		return "", fmt.Errorf("reading statement: %w", err)
	}
	if st.PredicateType == nil {
		return "", errors.New("statement has no predicateType")
	}
	return *st.PredicateType, nil
}

// The reasons VerifyAttestations gives, besides ReasonPayloadTooLarge, ReasonPayloadDigest,
// ReasonMalformedSignature and ReasonBadSignature, which mean what they mean for signatures,
// and for attestations in sigstore bundles ReasonMalformedReferrer, ReasonMalformedBundle and
// ReasonKeyless.
const (
	// ReasonTooManyAttestations: the attestation image has more than MaxAttestations layers.
	ReasonTooManyAttestations Reason = "too many attestations"
	// ReasonNotEnvelope: a layer whose media type is not dsse.MediaType, or a bundle that
	// holds a message signature (a signed blob) instead of an envelope.
	ReasonNotEnvelope Reason = "layer is not a DSSE envelope"
	// ReasonMalformedEnvelope: the layer is not a well-formed DSSE envelope.
	ReasonMalformedEnvelope Reason = "DSSE envelope is malformed"
	// ReasonPayloadType: the envelope does not carry an in-toto statement.
	ReasonPayloadType Reason = "envelope payload is not an in-toto statement"
	// ReasonMalformedStatement: a validly signed payload that is not an in-toto statement.
	ReasonMalformedStatement Reason = "signed statement is malformed"
	// ReasonSubjectMismatch: a valid attestation, but about other artifacts (an attestation
	// copied from another image), or a referrer that refers to another image.
	ReasonSubjectMismatch Reason = "attestation is for another image digest"
)

// VerifiedAttestation is one attestation that passed every check.
type VerifiedAttestation struct {
	// Source is where the attestation was found: SourceBundle, a bundle in the referrer
	// manifest Manifest, or SourceTag, the attestation image (Manifest zero).
	Source   Source
	Manifest v1.Hash
	// Index is the layer's position in the attestation image or the referrer manifest.
	Index int
	// Layer is the digest of the envelope layer, or of the bundle.
	Layer v1.Hash
	// Key is the fingerprint (key.Fingerprint) of the public key that verified it.
	Key string
	// PredicateType is the signed statement's predicate type (the layer annotation is not
	// consulted).
	PredicateType string
	// Statement is the signed statement; one of its subjects is the digest verified.
	Statement intoto.Statement
	// Predicate is Statement.Predicate: the claim as raw JSON, nil when there is none.
	Predicate json.RawMessage
}

// VerifyAttestations reads the attestations stored for manifest digest in repo and checks each
// against keys, as `cosign verify-attestation --key --insecure-ignore-tlog` does. It reads the
// sigstore bundles that refer to digest (through the OCI 1.1 referrers API or its tag schema),
// then the layers of the tag sha256-<hex>.att. It returns the attestations that verified and,
// for every other bundle or layer, a Failure (of KindAttestation) saying why; a digest with no
// attestations yields neither. When one place holds more than is read (MaxReferrers,
// MaxAttestations), the one Failure that says so is all it returns. An error means no verdict
// could be reached (registry unreachable or failing, context expired, bad arguments) and must
// deny as well. Filtering by predicate type and weighing keys is the caller's business.
func VerifyAttestations(ctx context.Context, repo name.Repository, digest v1.Hash, keys []crypto.PublicKey, opts ...Option) ([]VerifiedAttestation, []Failure, error) {
	ks, err := trustedKeys("verifying attestations", keys, true)
	if err != nil {
		return nil, nil, err
	}
	tag, err := AttestationTag(repo, digest)
	if err != nil {
		return nil, nil, err
	}
	v := newVerifier(ctx, KindAttestation, repo, digest, ks, opts)
	if err := v.referrers(); err != nil {
		return nil, nil, err
	}
	if !v.tooMany {
		if err := v.attestationTag(tag); err != nil {
			return nil, nil, err
		}
	}
	if v.tooMany {
		// Nothing counts, not even what verified in the other place.
		return nil, v.failures, nil
	}
	return v.attestations, v.failures, nil
}

// attestationTag checks the layers of the attestation image repo:sha256-<hex>.att.
func (v *verifier) attestationTag(tag name.Tag) error {
	img, err := remote.Image(tag, v.remote...)
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading attestations at %s: %w", tag, err)
	}
	m, err := img.Manifest()
	if err != nil {
		return fmt.Errorf("reading attestations at %s: %w", tag, err)
	}
	if len(m.Layers) > MaxAttestations {
		v.overflow(SourceTag, fmt.Sprintf("%d layers, at most %d are read", len(m.Layers), MaxAttestations))
		return nil
	}
	for i, desc := range m.Layers {
		fail := func(r Reason, detail string) {
			v.fail(Failure{Source: SourceTag, Index: i, Layer: desc.Digest, Reason: r, Detail: detail})
		}
		if desc.MediaType != dsse.MediaType {
			fail(ReasonNotEnvelope, string(desc.MediaType))
			continue
		}
		if desc.Size < 0 || desc.Size > MaxAttestationSize {
			fail(ReasonPayloadTooLarge, fmt.Sprintf("%d bytes, more than %d", desc.Size, MaxAttestationSize))
			continue
		}
		if desc.Size > v.budget {
			fail(ReasonPayloadTooLarge, fmt.Sprintf("past the %d bytes read for one digest", int64(MaxAttestationBytes)))
			continue
		}
		v.budget -= desc.Size
		blob, err := imageBlob(img, desc.Digest, desc.Size)
		if err != nil {
			if errors.Is(err, errDigest) {
				fail(ReasonPayloadDigest, err.Error())
				continue
			}
			return fmt.Errorf("reading attestation %s at %s: %w", desc.Digest, tag, err)
		}
		a, reason, detail := checkAttestation(blob, v.digest, v.keys)
		if reason != "" {
			fail(reason, detail)
			continue
		}
		a.Source, a.Index, a.Layer = SourceTag, i, desc.Digest
		v.attestations = append(v.attestations, *a)
	}
	return nil
}

// checkAttestation authenticates one envelope layer and reads its statement. It returns the
// attestation, or the reason (and details) it failed. Nothing unauthenticated is parsed
// beyond the envelope.
func checkAttestation(blob []byte, digest v1.Hash, ks []trustedKey) (*VerifiedAttestation, Reason, string) {
	env, err := dsse.Parse(blob)
	if err != nil {
		return nil, ReasonMalformedEnvelope, errDetail(err, dsse.ErrMalformed)
	}
	if env.PayloadType != intoto.PayloadType {
		return nil, ReasonPayloadType, fmt.Sprintf("%.64q", env.PayloadType)
	}
	by, reason, detail := envelopeSignedBy(env, ks)
	if reason != "" {
		return nil, reason, detail
	}
	return attestationOf(env.Payload, by, digest, intoto.Parse)
}

// envelopeSignedBy authenticates a DSSE envelope: it returns the fingerprint of the first of
// keys that verifies one of its signatures over PAE, or the reason none does:
// ReasonMalformedSignature when no signature is a well-formed ECDSA signature,
// ReasonBadSignature otherwise.
func envelopeSignedBy(env *dsse.Envelope, keys []trustedKey) (string, Reason, string) {
	sum := sha256.Sum256(dsse.PAE(env.PayloadType, env.Payload))
	wellFormed, malformed := 0, ""
	for i, s := range env.Signatures {
		if err := checkECDSASignature(s.Sig); err != nil {
			if malformed == "" {
				malformed = err.Error()
				if len(env.Signatures) > 1 {
					malformed = fmt.Sprintf("signature %d: %v", i, err)
				}
			}
			continue
		}
		wellFormed++
		if by := signedBy(keys, sum[:], s.Sig); by != "" {
			return by, "", ""
		}
	}
	if wellFormed == 0 {
		return "", ReasonMalformedSignature, malformed
	}
	return "", ReasonBadSignature, ""
}

// attestationOf reads the statement of an envelope that key verified, with parse, and checks
// that it names digest.
func attestationOf(payload []byte, key string, digest v1.Hash, parse func([]byte) (*intoto.Statement, error)) (*VerifiedAttestation, Reason, string) {
	st, err := parse(payload)
	if err != nil {
		return nil, ReasonMalformedStatement, errDetail(err, intoto.ErrMalformed)
	}
	if !st.HasDigest(digest.Algorithm, digest.Hex) {
		return nil, ReasonSubjectMismatch, subjectList(st)
	}
	return &VerifiedAttestation{Key: key, PredicateType: st.PredicateType, Statement: *st, Predicate: st.Predicate}, "", ""
}

// subjectList names a statement's subject digests for a failure message.
func subjectList(st *intoto.Statement) string {
	var parts []string
	for i, s := range st.Subject {
		if i == 4 {
			parts = append(parts, fmt.Sprintf("and %d more", len(st.Subject)-i))
			break
		}
		algs := make([]string, 0, len(s.Digest))
		for a := range s.Digest {
			algs = append(algs, a)
		}
		slices.Sort(algs)
		for _, a := range algs {
			parts = append(parts, fmt.Sprintf("%.16s:%.64s", a, s.Digest[a]))
		}
	}
	return "names " + strings.Join(parts, ", ")
}
