package cosign

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/moatsec/moat/internal/sign/strictjson"
)

// PayloadType is the value of critical.type in a cosign image signature payload.
const PayloadType = "cosign container image signature"

// MaxPayloadSize bounds a signature payload. Cosign's payloads are a few hundred bytes plus the
// annotations; anything larger is refused before it is downloaded.
const MaxPayloadSize = 128 << 10

// maxJSONDepth bounds nesting in signature payloads, bundles and referrer documents, which
// strictjson.Check checks before they are decoded.
const maxJSONDepth = 16

// ErrMalformedPayload is wrapped by every ParsePayload error.
var ErrMalformedPayload = errors.New("malformed signature payload")

// Payload is the "simple signing" document that a cosign signature covers
// (containers-signature(5), as cosign writes it): which manifest digest is signed, the
// repository it was signed in, and the signer's annotations.
type Payload struct {
	// DockerReference is the repository the image was signed in (critical.identity). Cosign
	// does not require it to match where the image is found, since images are copied between
	// registries; moat reports it and does not enforce it either.
	DockerReference string
	// Digest is the signed manifest digest (critical.image.docker-manifest-digest).
	Digest v1.Hash
	// Annotations are the signer's key/value claims (optional); they are signed too.
	Annotations map[string]string
}

type simpleSigning struct {
	Critical *critical         `json:"critical"`
	Optional map[string]string `json:"optional"`
}

type critical struct {
	Identity *struct {
		DockerReference *string `json:"docker-reference"`
	} `json:"identity"`
	Image *struct {
		DockerManifestDigest *string `json:"docker-manifest-digest"`
	} `json:"image"`
	Type *string `json:"type"`
}

// Marshal encodes p byte for byte as cosign does (encoding/json field order, "optional" null
// when there are no annotations), so that the same claim signed by either tool is the same
// payload.
func (p Payload) Marshal() ([]byte, error) {
	if err := checkDigest(p.Digest.String()); err != nil {
		return nil, err
	}
	if p.DockerReference == "" {
		return nil, fmt.Errorf("%w: empty docker-reference", ErrMalformedPayload)
	}
	ref, dig, typ := p.DockerReference, p.Digest.String(), PayloadType
	var s simpleSigning
	s.Critical = &critical{Type: &typ}
	s.Critical.Identity = &struct {
		DockerReference *string `json:"docker-reference"`
	}{&ref}
	s.Critical.Image = &struct {
		DockerManifestDigest *string `json:"docker-manifest-digest"`
	}{&dig}
	if len(p.Annotations) > 0 {
		s.Optional = p.Annotations
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(true) // what json.Marshal, and so cosign, does
	if err := enc.Encode(s); err != nil {
		return nil, fmt.Errorf("encoding payload: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// ParsePayload reads a payload strictly, since it comes from the registry: one JSON object of
// at most MaxPayloadSize bytes, no duplicate or unknown keys (unknown keys in "critical" must
// be rejected by the simple-signing rules, and moat rejects them everywhere), every critical
// field present, type exactly PayloadType, a sha256 digest, and annotations that are strings.
// All errors wrap ErrMalformedPayload.
func ParsePayload(b []byte) (*Payload, error) {
	if len(b) > MaxPayloadSize {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrMalformedPayload, len(b), MaxPayloadSize)
	}
	if err := strictjson.Check(b, maxJSONDepth); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformedPayload, err)
	}
	var s simpleSigning
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformedPayload, err)
	}
	c := s.Critical
	switch {
	case c == nil:
		return nil, fmt.Errorf("%w: no critical section", ErrMalformedPayload)
	case c.Type == nil:
		return nil, fmt.Errorf("%w: no critical.type", ErrMalformedPayload)
	case *c.Type != PayloadType:
		return nil, fmt.Errorf("%w: critical.type %q, want %q", ErrMalformedPayload, *c.Type, PayloadType)
	case c.Identity == nil || c.Identity.DockerReference == nil || *c.Identity.DockerReference == "":
		return nil, fmt.Errorf("%w: no critical.identity.docker-reference", ErrMalformedPayload)
	case c.Image == nil || c.Image.DockerManifestDigest == nil:
		return nil, fmt.Errorf("%w: no critical.image.docker-manifest-digest", ErrMalformedPayload)
	}
	if err := checkDigest(*c.Image.DockerManifestDigest); err != nil {
		return nil, err
	}
	h, err := v1.NewHash(*c.Image.DockerManifestDigest)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformedPayload, err)
	}
	return &Payload{DockerReference: *c.Identity.DockerReference, Digest: h, Annotations: s.Optional}, nil
}

// checkDigest accepts only "sha256:" and 64 lowercase hex digits, the one form cosign writes,
// so that two spellings of one digest cannot both be signed.
func checkDigest(s string) error {
	hex, ok := strings.CutPrefix(s, "sha256:")
	if !ok || len(hex) != 64 || strings.Trim(hex, "0123456789abcdef") != "" {
		return fmt.Errorf("%w: digest %q is not sha256:<64 lowercase hex>", ErrMalformedPayload, s)
	}
	return nil
}
