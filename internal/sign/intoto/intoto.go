// Package intoto reads and writes in-toto attestation statements: a claim (the predicate, of
// a type named by a URI) about artifacts named by their digests (the subjects).
//
// Cosign 2.x writes statements of type StatementV01; the in-toto v1 type StatementV1 is read as
// well, since the two differ only in fields moat does not use. A statement travels signed
// inside a DSSE envelope with payload type PayloadType (see package dsse).
package intoto

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/moatsec/moat/internal/sign/strictjson"
)

const (
	// StatementV01 is the statement type cosign 2.x writes.
	StatementV01 = "https://in-toto.io/Statement/v0.1"
	// StatementV1 is the in-toto attestation framework v1 statement type.
	StatementV1 = "https://in-toto.io/Statement/v1"
	// PayloadType is the DSSE payload type of a statement.
	PayloadType = "application/vnd.in-toto+json"
	// MaxDepth bounds JSON nesting in a statement. SBOM predicates nest components inside
	// components, so this is far above what the envelope formats need, and far below what
	// would exhaust a parser.
	MaxDepth = 256
)

// ErrMalformed is wrapped by every Parse and Marshal error about the statement's content.
var ErrMalformed = errors.New("malformed in-toto statement")

// Subject is one artifact a statement is about.
type Subject struct {
	// Name is the producer's name for the artifact; cosign uses the repository
	// ("registry.example.com/team/app"). It is informational: the digest identifies.
	Name string `json:"name"`
	// Digest maps algorithm names ("sha256") to lowercase hex digests.
	Digest map[string]string `json:"digest"`
	// Annotations are the producer's claims about the artifact (in-toto v1), any JSON
	// values by name; cosign signs its -a key=value pairs here when it signs an image with
	// the sigstore bundle format. Nil when there are none.
	Annotations map[string]any `json:"annotations,omitempty"`
}

// Statement is an in-toto statement.
type Statement struct {
	// Type is StatementV01 or StatementV1.
	Type string
	// PredicateType is the URI naming the predicate's schema.
	PredicateType string
	// Subject lists the artifacts the statement is about; there is at least one.
	Subject []Subject
	// Predicate is the claim as raw JSON, any JSON value (cosign wraps some predicates in a
	// string or an object, see cosign.BuildPredicate). Nil when the statement has none.
	Predicate json.RawMessage
}

// wire is the field order cosign 2.x writes (in-toto-golang's StatementHeader, then the
// predicate).
type wire struct {
	Type          string          `json:"_type"`
	PredicateType string          `json:"predicateType"`
	Subject       []Subject       `json:"subject"`
	Predicate     json.RawMessage `json:"predicate,omitempty"`
}

// Marshal encodes s compactly in cosign's field order, after checking that Parse will accept
// the result: a known Type, a PredicateType, subjects with digests, and a predicate that is
// one JSON value without duplicate keys.
func (s *Statement) Marshal() ([]byte, error) {
	if err := s.validate(); err != nil {
		return nil, err
	}
	if s.Predicate != nil {
		if err := CheckJSON(s.Predicate); err != nil {
			return nil, fmt.Errorf("%w: predicate: %w", ErrMalformed, err)
		}
	}
	b, err := json.Marshal(wire{s.Type, s.PredicateType, s.Subject, s.Predicate})
	if err != nil {
		return nil, fmt.Errorf("encoding statement: %w", err)
	}
	return b, nil
}

// HasDigest reports whether a subject of s has digest hex under algorithm alg, compared
// exactly, as cosign's subject check does.
func (s *Statement) HasDigest(alg, hex string) bool {
	for _, sub := range s.Subject {
		if d, ok := sub.Digest[alg]; ok && d == hex {
			return true
		}
	}
	return false
}

func (s *Statement) validate() error {
	switch {
	case s.Type != StatementV01 && s.Type != StatementV1:
		return fmt.Errorf("%w: _type %q is not an in-toto statement type", ErrMalformed, s.Type)
	case s.PredicateType == "":
		return fmt.Errorf("%w: no predicateType", ErrMalformed)
	case len(s.Subject) == 0:
		return fmt.Errorf("%w: no subject", ErrMalformed)
	}
	for i, sub := range s.Subject {
		if len(sub.Digest) == 0 {
			return fmt.Errorf("%w: subject %d has no digest", ErrMalformed, i)
		}
		for alg, d := range sub.Digest {
			if alg == "" || d == "" {
				return fmt.Errorf("%w: subject %d has an empty digest entry", ErrMalformed, i)
			}
		}
	}
	return nil
}

// Parse reads a statement strictly, since it arrives from outside: one JSON object, nesting
// at most MaxDepth, no key twice in any object (JSON parsers disagree on which copy wins, and
// a signed statement must read the same everywhere), keys matched exactly (encoding/json alone
// would let "PredicateType" stand for "predicateType"), a known _type, a predicateType, and at
// least one subject with a non-empty digest. Unknown fields are ignored, as the in-toto spec
// requires; null counts as absent. All errors wrap ErrMalformed.
func Parse(b []byte) (*Statement, error) {
	return parse(b, false)
}

// The fields of the in-toto v1 protobuf messages Statement and ResourceDescriptor, by their
// JSON names.
var (
	protoStatementFields = []string{"_type", "subject", "predicateType", "predicate"}
	protoSubjectFields   = []string{"name", "uri", "digest", "content", "downloadLocation", "mediaType", "annotations"}
)

// ParseProtoJSON reads a statement as Parse does, and also as sigstore reads the statement in
// a sigstore bundle: as the protobuf-JSON form of the in-toto v1 Statement message, where a
// key the message does not define is an error rather than ignored, and the predicate, when
// present, is an object (a protobuf Struct). Only the JSON (camelCase) names are accepted,
// not protobuf's field names. All errors wrap ErrMalformed.
func ParseProtoJSON(b []byte) (*Statement, error) {
	return parse(b, true)
}

func parse(b []byte, proto bool) (*Statement, error) {
	if err := CheckJSON(b); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if top == nil {
		return nil, fmt.Errorf("%w: not an object", ErrMalformed)
	}
	if proto {
		if err := knownFields(top, protoStatementFields); err != nil {
			return nil, err
		}
	}
	var s Statement
	if err := field(top, "_type", &s.Type); err != nil {
		return nil, err
	}
	if err := field(top, "predicateType", &s.PredicateType); err != nil {
		return nil, err
	}
	var subjects []map[string]json.RawMessage
	if err := field(top, "subject", &subjects); err != nil {
		return nil, err
	}
	for i, m := range subjects {
		var sub Subject
		if m == nil {
			return nil, fmt.Errorf("%w: subject %d is not an object", ErrMalformed, i)
		}
		if proto {
			if err := knownFields(m, protoSubjectFields); err != nil {
				return nil, fmt.Errorf("subject %d: %w", i, err)
			}
		}
		if err := field(m, "name", &sub.Name); err != nil {
			return nil, fmt.Errorf("subject %d: %w", i, err)
		}
		if err := field(m, "digest", &sub.Digest); err != nil {
			return nil, fmt.Errorf("subject %d: %w", i, err)
		}
		if err := field(m, "annotations", &sub.Annotations); err != nil {
			return nil, fmt.Errorf("subject %d: %w", i, err)
		}
		if len(sub.Annotations) == 0 {
			sub.Annotations = nil
		}
		s.Subject = append(s.Subject, sub)
	}
	if p, ok := top["predicate"]; ok && !bytes.Equal(p, []byte("null")) {
		if proto && p[0] != '{' {
			return nil, fmt.Errorf("%w: predicate is not an object", ErrMalformed)
		}
		s.Predicate = p
	}
	if err := s.validate(); err != nil {
		return nil, err
	}
	return &s, nil
}

// knownFields refuses a key of o that is not one of names.
func knownFields(o map[string]json.RawMessage, names []string) error {
	for k := range o {
		if !slices.Contains(names, k) {
			return fmt.Errorf("%w: unknown key %q", ErrMalformed, k)
		}
	}
	return nil
}

// field decodes top[key] into v when present and not null.
func field(top map[string]json.RawMessage, key string, v any) error {
	raw, ok := top[key]
	if !ok || bytes.Equal(raw, []byte("null")) {
		return nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrMalformed, key, err)
	}
	return nil
}

// CheckJSON reports whether b is exactly one JSON value with nesting at most MaxDepth and no
// object that has a key twice. Producers of signed JSON (statements, predicates) call it so
// that they never sign what a strict reader refuses.
func CheckJSON(b []byte) error {
	return strictjson.Check(b, MaxDepth)
}
