// Package dsse reads and writes Dead Simple Signing Envelopes (DSSE v1), the signed wrapper
// around in-toto statements that cosign stores as attestations.
//
// An envelope carries a payload, the payload's type, and one or more signatures. A signature
// covers the pre-authentication encoding PAE(type, payload), never the JSON around it, so the
// envelope's JSON form (key order, whitespace, base64 alphabet) is not signed and may vary.
//
// This package encodes and decodes envelopes and computes PAE. Which keys and algorithms are
// trusted is the caller's decision, so verification lives with the caller.
package dsse

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// MediaType is the OCI media type of a layer that holds one JSON envelope.
const MediaType = "application/vnd.dsse.envelope.v1+json"

// MaxSignatures bounds the signatures Parse accepts in one envelope. Cosign writes one.
const MaxSignatures = 16

// ErrMalformed is wrapped by every Parse error.
var ErrMalformed = errors.New("malformed DSSE envelope")

// Signature is one signature in an envelope.
type Signature struct {
	// KeyID is the signer's optional hint about which key made the signature. It is not
	// signed, so it must never decide trust; cosign leaves it empty.
	KeyID string
	// Sig is the raw signature over PAE(PayloadType, Payload).
	Sig []byte
}

// Envelope is a decoded DSSE envelope.
type Envelope struct {
	// PayloadType says how to read Payload ("application/vnd.in-toto+json").
	PayloadType string
	// Payload is the decoded, signed body.
	Payload []byte
	// Signatures are the envelope's signatures, in order.
	Signatures []Signature
}

// PAE is the DSSE v1 pre-authentication encoding, the bytes a signature covers:
// "DSSEv1" SP len(type) SP type SP len(body) SP body, lengths in ASCII decimal bytes.
func PAE(payloadType string, payload []byte) []byte {
	b := make([]byte, 0, len(payloadType)+len(payload)+32)
	b = append(b, "DSSEv1 "...)
	b = strconv.AppendInt(b, int64(len(payloadType)), 10)
	b = append(b, ' ')
	b = append(b, payloadType...)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(len(payload)), 10)
	b = append(b, ' ')
	return append(b, payload...)
}

// Sign makes a one-signature envelope over payload. With a hash in opts (crypto.SHA256 for
// ECDSA P-256, as cosign uses) the signer is given that hash of PAE; with none (Ed25519) it is
// given PAE itself.
func Sign(signer crypto.Signer, opts crypto.SignerOpts, payloadType string, payload []byte) (*Envelope, error) {
	msg := PAE(payloadType, payload)
	if h := opts.HashFunc(); h != 0 {
		if !h.Available() {
			return nil, fmt.Errorf("signing envelope: hash %v is not available", h)
		}
		hh := h.New()
		hh.Write(msg)
		msg = hh.Sum(nil)
	}
	sig, err := signer.Sign(rand.Reader, msg, opts)
	if err != nil {
		return nil, fmt.Errorf("signing envelope: %w", err)
	}
	return &Envelope{PayloadType: payloadType, Payload: payload, Signatures: []Signature{{Sig: sig}}}, nil
}

type wireSignature struct {
	KeyID string `json:"keyid"`
	Sig   string `json:"sig"`
}

type wireEnvelope struct {
	PayloadType string          `json:"payloadType"`
	Payload     string          `json:"payload"`
	Signatures  []wireSignature `json:"signatures"`
}

// Marshal encodes e as cosign (through go-securesystemslib) does: the keys payloadType,
// payload and signatures in that order, standard padded base64, and "keyid" always present.
func (e *Envelope) Marshal() ([]byte, error) {
	if len(e.Signatures) == 0 {
		return nil, errors.New("encoding envelope: no signatures")
	}
	w := wireEnvelope{
		PayloadType: e.PayloadType,
		Payload:     base64.StdEncoding.EncodeToString(e.Payload),
		Signatures:  make([]wireSignature, len(e.Signatures)),
	}
	for i, s := range e.Signatures {
		if len(s.Sig) == 0 {
			return nil, fmt.Errorf("encoding envelope: signature %d is empty", i)
		}
		w.Signatures[i] = wireSignature{KeyID: s.KeyID, Sig: base64.StdEncoding.EncodeToString(s.Sig)}
	}
	b, err := json.Marshal(w)
	if err != nil {
		return nil, fmt.Errorf("encoding envelope: %w", err)
	}
	return b, nil
}

// Parse decodes one JSON envelope strictly, since envelopes come from registries: exactly one
// JSON object; payloadType, payload and signatures present once each (a key given twice is an
// error, because JSON parsers disagree on which copy wins); payload and each sig in base64
// (standard or URL alphabet, padded or not, as the DSSE spec allows); 1 to MaxSignatures
// signatures, each with a non-empty sig. Unknown keys are ignored, as the spec asks, after the
// same duplicate check; they are not signed. The caller bounds len(b). All errors wrap
// ErrMalformed.
func Parse(b []byte) (*Envelope, error) {
	return parse(b, false)
}

// ParseProtoJSON reads an envelope in the form a sigstore bundle holds it (its "dsseEnvelope",
// the protobuf-JSON encoding of the same message), as Parse does but stricter in two ways.
// A key that Parse would ignore is an error, as protobuf-JSON readers (sigstore's) make it;
// only the JSON (camelCase) names are accepted, not protobuf's field names. And payload and
// sig must be base64 in the standard alphabet with padding, which is what sigstore writes.
// All errors wrap ErrMalformed.
func ParseProtoJSON(b []byte) (*Envelope, error) {
	return parse(b, true)
}

func parse(b []byte, proto bool) (*Envelope, error) {
	e, err := decode(b, proto)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return e, nil
}

func decode(b []byte, proto bool) (*Envelope, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	d := decoder{dec, proto}
	var e Envelope
	var havePayload, haveType, haveSigs bool
	err := object(dec, func(key string) error {
		var err error
		switch key {
		case "payloadType":
			haveType = true
			e.PayloadType, err = str(dec, key)
		case "payload":
			havePayload = true
			e.Payload, err = d.bytes(key)
		case "signatures":
			haveSigs = true
			e.Signatures, err = d.signatures()
		default:
			err = d.unknown(key, 1)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the envelope")
	}
	switch {
	case !haveType:
		return nil, errors.New("no payloadType")
	case !havePayload:
		return nil, errors.New("no payload")
	case !haveSigs || len(e.Signatures) == 0:
		return nil, errors.New("no signatures")
	}
	return &e, nil
}

// decoder reads the parts of an envelope, strictly for the protobuf-JSON form.
type decoder struct {
	dec   *json.Decoder
	proto bool
}

// unknown consumes the value of an unknown key, which is an error in the protobuf-JSON form.
func (d decoder) unknown(key string, depth int) error {
	if d.proto {
		return fmt.Errorf("unknown key %q", key)
	}
	return skip(d.dec, depth)
}

// bytes reads a base64 string.
func (d decoder) bytes(key string) ([]byte, error) {
	s, err := str(d.dec, key)
	if err != nil {
		return nil, err
	}
	if d.proto {
		b, err := base64.StdEncoding.Strict().DecodeString(s)
		if err != nil {
			return nil, errors.New("not standard padded base64")
		}
		return b, nil
	}
	return decodeBase64(s)
}

func (d decoder) signatures() ([]Signature, error) {
	dec := d.dec
	if err := delim(dec, '['); err != nil {
		return nil, err
	}
	var out []Signature
	for dec.More() {
		if len(out) == MaxSignatures {
			return nil, fmt.Errorf("more than %d signatures", MaxSignatures)
		}
		var s Signature
		var haveSig bool
		err := object(dec, func(key string) error {
			var err error
			switch key {
			case "keyid":
				s.KeyID, err = str(dec, key)
			case "sig":
				haveSig = true
				s.Sig, err = d.bytes(key)
			default:
				err = d.unknown(key, 3)
			}
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("signature %d: %w", len(out), err)
		}
		if !haveSig || len(s.Sig) == 0 {
			return nil, fmt.Errorf("signature %d: no sig", len(out))
		}
		out = append(out, s)
	}
	if err := delim(dec, ']'); err != nil {
		return nil, err
	}
	return out, nil
}

// object reads one JSON object, calling field for each key with the decoder positioned at
// the key's value; field must consume the value. Keys must be unique.
func object(dec *json.Decoder, field func(key string) error) error {
	if err := delim(dec, '{'); err != nil {
		return err
	}
	return members(dec, field)
}

// members reads the rest of an object whose opening brace was read, as object does.
func members(dec *json.Decoder, field func(key string) error) error {
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		key, ok := tok.(string)
		if !ok {
			return errors.New("object key is not a string")
		}
		if seen[key] {
			return fmt.Errorf("duplicate key %q", key)
		}
		seen[key] = true
		if err := field(key); err != nil {
			return err
		}
	}
	return delim(dec, '}')
}

func delim(dec *json.Decoder, want json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return fmt.Errorf("got %v, want %q", tok, want)
	}
	return nil
}

func str(dec *json.Decoder, key string) (string, error) {
	tok, err := dec.Token()
	if err != nil {
		return "", err
	}
	s, ok := tok.(string)
	if !ok {
		return "", fmt.Errorf("%s is not a string", key)
	}
	return s, nil
}

// maxSkipDepth bounds nesting inside unknown keys.
const maxSkipDepth = 32

// skip consumes one value of an unknown key, checking its objects for duplicate keys too so
// that nothing in an envelope is ambiguous.
func skip(dec *json.Decoder, depth int) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return nil
	}
	if depth >= maxSkipDepth {
		return errors.New("JSON nested too deeply")
	}
	switch d {
	case '{':
		return members(dec, func(string) error { return skip(dec, depth+1) })
	case '[':
		for dec.More() {
			if err := skip(dec, depth+1); err != nil {
				return err
			}
		}
		return delim(dec, ']')
	}
	return fmt.Errorf("unexpected %q", d)
}

// decodeBase64 accepts the four encodings the DSSE spec allows a producer to use, each in
// strict mode (no stray trailing bits). Which one applies never changes the decoded bytes, and
// only the decoded bytes are signed.
func decodeBase64(s string) ([]byte, error) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		if b, err := enc.Strict().DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, errors.New("not base64")
}
