package cosign

import (
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/moatsec/moat/internal/sign/dsse"
	"github.com/moatsec/moat/internal/sign/intoto"
	"github.com/moatsec/moat/internal/sign/strictjson"
)

// Sigstore bundles, as `cosign sign --new-bundle-format` stores them (cosign v2.6: see
// cmd/cosign/cli/sign/sign.go signDigestBundle and pkg/cosign/bundle/protobundle.go
// MakeNewBundle). For an image signed with a key, the bundle is the protobuf-JSON form of
// sigstore's Bundle message:
//
//	{"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
//	 "verificationMaterial": {"publicKey": {"hint": base64(SHA-256(PKIX DER key))},
//	                          "tlogEntries": [...], "timestampVerificationData": {...}},
//	 "dsseEnvelope": {"payload": base64(statement), "payloadType": "application/vnd.in-toto+json",
//	                  "signatures": [{"sig": base64(ASN.1 ECDSA over SHA-256(PAE))}]}}
//
// and the statement is an in-toto v1 Statement whose one subject is the manifest digest:
//
//	{"_type": "https://in-toto.io/Statement/v1",
//	 "subject": [{"digest": {"sha256": "<hex>"}, "annotations": {...}}],
//	 "predicateType": "https://sigstore.dev/cosign/sign/v1", "predicate": {}}
//
// The DSSE signature covers the pre-authentication encoding of the payload type and the
// payload (dsse.PAE). An attestation (`cosign attest --new-bundle-format`) is the same bundle
// around a statement of its own predicate type. A keyless bundle carries
// "x509CertificateChain" or "certificate" instead of "publicKey"; a blob signature (`cosign
// sign-blob`) carries "messageSignature": {"messageDigest": {"algorithm": "SHA2_256",
// "digest": base64}, "signature": base64} instead of "dsseEnvelope". moat parses both and
// refuses them (see verifyBundle).

const (
	// BundleMediaType is the media type of a sigstore bundle v0.3: the layer media type and
	// the artifactType of the referrer manifest cosign stores it in.
	BundleMediaType = "application/vnd.dev.sigstore.bundle.v0.3+json"
	// SignPredicateType is the predicate type of the in-toto statement cosign signs for an
	// image with the new bundle format. Any other predicate is an attestation, not a signature.
	SignPredicateType = "https://sigstore.dev/cosign/sign/v1"
	// MaxBundleSize bounds a signature bundle blob. A key-based bundle is a few kilobytes. An
	// attestation bundle, which carries the predicate, is bounded by MaxAttestationSize.
	MaxBundleSize = 512 << 10
)

const (
	// bundleMediaTypeParam is the other spelling of v0.3 that sigstore accepts.
	bundleMediaTypeParam = "application/vnd.dev.sigstore.bundle+json;version=0.3"
	// bundleMaxSubjects bounds the subjects of a statement; cosign writes one.
	bundleMaxSubjects = 64
)

// errMalformedBundle is wrapped by every parseBundle error.
var errMalformedBundle = errors.New("malformed sigstore bundle")

// sigstoreBundle is what moat reads of a bundle before any key is involved.
type sigstoreBundle struct {
	// keyHint is the publicKey hint (may be empty); keyless is set when the verification
	// material is a certificate or a chain instead of a key.
	keyHint string
	keyless bool
	// tlogEntries and timestamps count the transparency-log entries and RFC 3161 timestamps,
	// which moat does not check for a key-based bundle (as cosign --insecure-ignore-tlog).
	tlogEntries int
	timestamps  bool
	// Exactly one of message and envelope is set. The envelope has one signature.
	message  *bundleMessage
	envelope *dsse.Envelope
}

type bundleMessage struct {
	algorithm string
	digest    []byte
	signature []byte
}

// parseBundle reads a bundle strictly: one JSON object of at most limit bytes, no duplicate
// keys, no key but the protobuf-JSON (camelCase) names that sigstore writes (exactly, since
// encoding/json would otherwise match keys case-insensitively where protojson does not),
// media type v0.3, exactly one kind of verification material and one kind of content, a DSSE
// envelope as dsse.ParseProtoJSON reads it with one signature, and base64 where protobuf puts
// bytes. The transparency-log entries and timestamps are counted, not parsed. All errors wrap
// errMalformedBundle.
func parseBundle(b []byte, limit int) (*sigstoreBundle, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", errMalformedBundle, fmt.Sprintf(format, a...))
	}
	if len(b) > limit {
		return nil, bad("%d bytes, more than %d", len(b), limit)
	}
	if err := strictjson.Check(b, maxJSONDepth); err != nil {
		return nil, fmt.Errorf("%w: %w", errMalformedBundle, err)
	}
	top, err := jsonObject(b, "mediaType", "verificationMaterial", "messageSignature", "dsseEnvelope")
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errMalformedBundle, err)
	}
	var mt string
	if err := jsonField(top, "mediaType", &mt); err != nil {
		return nil, fmt.Errorf("%w: %w", errMalformedBundle, err)
	}
	if mt != BundleMediaType && mt != bundleMediaTypeParam {
		return nil, bad("media type %q, want %q", mt, BundleMediaType)
	}
	out := &sigstoreBundle{}
	if err := out.parseMaterial(top["verificationMaterial"]); err != nil {
		return nil, fmt.Errorf("%w: verificationMaterial: %w", errMalformedBundle, err)
	}
	msg, env := top["messageSignature"], top["dsseEnvelope"]
	switch {
	case msg != nil && env != nil:
		return nil, bad("both messageSignature and dsseEnvelope")
	case msg != nil:
		if out.message, err = parseBundleMessage(msg); err != nil {
			return nil, fmt.Errorf("%w: messageSignature: %w", errMalformedBundle, err)
		}
	case env != nil:
		if out.envelope, err = dsse.ParseProtoJSON(env); err != nil {
			return nil, fmt.Errorf("%w: dsseEnvelope: %w", errMalformedBundle, err)
		}
		// The verification material names one signer, so a bundle holds one signature.
		if n := len(out.envelope.Signatures); n != 1 {
			return nil, bad("dsseEnvelope: %d signatures, want 1", n)
		}
	default:
		return nil, bad("neither messageSignature nor dsseEnvelope")
	}
	return out, nil
}

func (s *sigstoreBundle) parseMaterial(raw json.RawMessage) error {
	if raw == nil {
		return errors.New("missing")
	}
	vm, err := jsonObject(raw, "publicKey", "x509CertificateChain", "certificate", "tlogEntries", "timestampVerificationData")
	if err != nil {
		return err
	}
	kinds := 0
	for _, k := range []string{"publicKey", "x509CertificateChain", "certificate"} {
		if vm[k] != nil {
			kinds++
		}
	}
	if kinds != 1 {
		return fmt.Errorf("%d of publicKey, x509CertificateChain, certificate; want exactly one", kinds)
	}
	if pk := vm["publicKey"]; pk != nil {
		o, err := jsonObject(pk, "hint")
		if err != nil {
			return fmt.Errorf("publicKey: %w", err)
		}
		if o["hint"] != nil {
			if err := jsonField(o, "hint", &s.keyHint); err != nil {
				return fmt.Errorf("publicKey: %w", err)
			}
		}
	} else {
		// A certificate is checked only for being an object: moat refuses it either way.
		for _, k := range []string{"x509CertificateChain", "certificate"} {
			if vm[k] != nil {
				if _, err := jsonObject(vm[k]); err != nil {
					return fmt.Errorf("%s: %w", k, err)
				}
			}
		}
		s.keyless = true
	}
	if raw := vm["tlogEntries"]; raw != nil {
		var entries []json.RawMessage
		if err := json.Unmarshal(raw, &entries); err != nil || entries == nil {
			return errors.New("tlogEntries is not an array")
		}
		s.tlogEntries = len(entries)
	}
	if raw := vm["timestampVerificationData"]; raw != nil {
		if _, err := jsonObject(raw); err != nil {
			return fmt.Errorf("timestampVerificationData: %w", err)
		}
		s.timestamps = true
	}
	return nil
}

func parseBundleMessage(raw json.RawMessage) (*bundleMessage, error) {
	o, err := jsonObject(raw, "messageDigest", "signature")
	if err != nil {
		return nil, err
	}
	m := &bundleMessage{}
	if err := jsonBytes(o, "signature", &m.signature); err != nil {
		return nil, err
	}
	if o["messageDigest"] == nil {
		return nil, errors.New("messageDigest missing")
	}
	d, err := jsonObject(o["messageDigest"], "algorithm", "digest")
	if err != nil {
		return nil, fmt.Errorf("messageDigest: %w", err)
	}
	if err := jsonField(d, "algorithm", &m.algorithm); err != nil {
		return nil, fmt.Errorf("messageDigest: %w", err)
	}
	if err := jsonBytes(d, "digest", &m.digest); err != nil {
		return nil, fmt.Errorf("messageDigest: %w", err)
	}
	return m, nil
}

// bundleClaim is what a statement says once its signature checked: the digests it binds,
// its predicate type and the signer's annotations.
type bundleClaim struct {
	digests     []string // "sha256:<hex>" of each subject that has a sha256 digest
	predicate   string
	annotations map[string]string
}

// parseBundleStatement reads the in-toto statement of an authenticated signature envelope,
// as sigstore reads it (intoto.ParseProtoJSON), and as cosign signs an image: an in-toto v1
// statement with at most bundleMaxSubjects subjects, the first one's annotations strings.
// Subjects are kept only when they carry a sha256 digest; the annotations of the first subject
// become the signature's annotations. All errors wrap ErrMalformedPayload.
func parseBundleStatement(b []byte) (*bundleClaim, error) {
	if len(b) > MaxPayloadSize {
		return nil, fmt.Errorf("%w: statement of %d bytes, more than %d", ErrMalformedPayload, len(b), MaxPayloadSize)
	}
	st, err := intoto.ParseProtoJSON(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformedPayload, err)
	}
	wrap := func(format string, a ...any) error {
		return fmt.Errorf("%w: statement: %s", ErrMalformedPayload, fmt.Sprintf(format, a...))
	}
	if st.Type != intoto.StatementV1 {
		return nil, wrap("_type %q, want %q", st.Type, intoto.StatementV1)
	}
	if len(st.Subject) > bundleMaxSubjects {
		return nil, wrap("%d subjects, want 1 to %d", len(st.Subject), bundleMaxSubjects)
	}
	c := &bundleClaim{predicate: st.PredicateType}
	for i, sub := range st.Subject {
		if h, ok := sub.Digest["sha256"]; ok {
			c.digests = append(c.digests, "sha256:"+h)
		}
		if i > 0 || sub.Annotations == nil {
			continue
		}
		c.annotations = make(map[string]string, len(sub.Annotations))
		for k, v := range sub.Annotations {
			s, ok := v.(string)
			if !ok {
				return nil, wrap("subject annotation %q is not a string", k)
			}
			c.annotations[k] = s
		}
	}
	return c, nil
}

// bundleKeyHint is the publicKey hint cosign writes for pub: base64 of the SHA-256 of its
// PKIX DER encoding.
func bundleKeyHint(pub *ecdsa.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(der)
	return base64.StdEncoding.EncodeToString(sum[:]), nil
}

// verifyBundle checks one parsed bundle as an image signature against the trusted keys and
// the digest. It returns the verified signature, or the reason it fails. Nothing a bundle says
// about the image is read before its signature is verified.
//
// Cosign signs an image with a DSSE envelope around an in-toto statement whose predicate type
// says it is an image signature. A message signature is refused even over the manifest digest:
// it is a blob signature, which says nothing of why the bytes were signed, so a key that signs
// blobs (a release service) could otherwise be made to sign an image by being handed its
// manifest. Cosign refuses it too.
func verifyBundle(s *sigstoreBundle, keys []trustedKey, digest v1.Hash) (Verified, Reason, string) {
	if s.keyless {
		return Verified{}, ReasonKeyless, "the bundle's verification material is a certificate"
	}
	if s.envelope == nil {
		return Verified{}, ReasonNotSignature, "a message signature (a signed blob), not a signed statement"
	}
	e := s.envelope
	by, reason, detail := s.signedBy(keys)
	if reason != "" {
		return Verified{}, reason, detail
	}
	// Only an authenticated envelope is read further.
	if e.PayloadType != intoto.PayloadType {
		return Verified{}, ReasonNotSignature, fmt.Sprintf("payload type %q", e.PayloadType)
	}
	claim, err := parseBundleStatement(e.Payload)
	if err != nil {
		return Verified{}, ReasonMalformedPayload, errDetail(err, ErrMalformedPayload, intoto.ErrMalformed)
	}
	if claim.predicate != SignPredicateType {
		return Verified{}, ReasonNotSignature, "an attestation, predicate type " + claim.predicate
	}
	want := digest.String()
	for _, d := range claim.digests {
		if d == want {
			return Verified{Key: by, Payload: Payload{Digest: digest, Annotations: claim.annotations}}, "", ""
		}
	}
	return Verified{}, ReasonDigestMismatch, fmt.Sprintf("signs %v", claim.digests)
}

// verifyBundleAttestation checks one parsed bundle as an attestation, as checkAttestation
// checks an attestation layer and with the reasons it gives; the statement is read as
// sigstore reads it (intoto.ParseProtoJSON). A keyless bundle is refused as by verifyBundle,
// and a message signature is not an envelope. A statement of the sign predicate type is
// returned like any other; it is the caller's to set apart.
func verifyBundleAttestation(s *sigstoreBundle, keys []trustedKey, digest v1.Hash) (*VerifiedAttestation, Reason, string) {
	if s.keyless {
		return nil, ReasonKeyless, "the bundle's verification material is a certificate"
	}
	if s.envelope == nil {
		return nil, ReasonNotEnvelope, "a message signature (a signed blob), not a signed statement"
	}
	if s.envelope.PayloadType != intoto.PayloadType {
		return nil, ReasonPayloadType, fmt.Sprintf("%.64q", s.envelope.PayloadType)
	}
	by, reason, detail := s.signedBy(keys)
	if reason != "" {
		return nil, reason, detail
	}
	return attestationOf(s.envelope.Payload, by, digest, intoto.ParseProtoJSON)
}

// signedBy authenticates the bundle's envelope (see envelopeSignedBy), naming the bundle's key
// hint when no key verifies it.
func (s *sigstoreBundle) signedBy(keys []trustedKey) (string, Reason, string) {
	by, reason, detail := envelopeSignedBy(s.envelope, keys)
	if reason == ReasonBadSignature && s.keyHint != "" {
		detail = "key hint " + s.keyHint
	}
	return by, reason, detail
}

// jsonObject decodes raw as one JSON object. When allowed names are given, any other key is
// an error: keys are compared exactly, unlike encoding/json's struct matching.
func jsonObject(raw []byte, allowed ...string) (map[string]json.RawMessage, error) {
	var o map[string]json.RawMessage
	if err := json.Unmarshal(raw, &o); err != nil || o == nil {
		return nil, errors.New("not a JSON object")
	}
	if len(allowed) > 0 {
	keys:
		for k := range o {
			for _, a := range allowed {
				if k == a {
					continue keys
				}
			}
			return nil, fmt.Errorf("unknown key %q", k)
		}
	}
	return o, nil
}

// jsonField decodes the required, non-null member key of o into v.
func jsonField(o map[string]json.RawMessage, key string, v any) error {
	raw, ok := o[key]
	if !ok {
		return fmt.Errorf("%s missing", key)
	}
	if string(raw) == "null" {
		return fmt.Errorf("%s is null", key)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	return nil
}

// jsonBytes decodes a protobuf bytes member: standard, padded base64, as sigstore writes it.
func jsonBytes(o map[string]json.RawMessage, key string, b *[]byte) error {
	var s string
	if err := jsonField(o, key, &s); err != nil {
		return err
	}
	d, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil {
		return fmt.Errorf("%s is not base64", key)
	}
	*b = d
	return nil
}
