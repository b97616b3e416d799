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
	"io"
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
		if err := field(m, "name", &sub.Name); err != nil {
			return nil, fmt.Errorf("subject %d: %w", i, err)
		}
		if err := field(m, "digest", &sub.Digest); err != nil {
			return nil, fmt.Errorf("subject %d: %w", i, err)
		}
		s.Subject = append(s.Subject, sub)
	}
	if p, ok := top["predicate"]; ok && !bytes.Equal(p, []byte("null")) {
		s.Predicate = p
	}
	if err := s.validate(); err != nil {
		return nil, err
	}
	return &s, nil
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
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	type frame struct {
		object bool
		keys   map[string]struct{}
		key    bool // in an object: the next token is a key or the closing brace
	}
	var stack []*frame
	values := 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if len(stack) == 0 {
			if values++; values > 1 {
				return errors.New("more than one JSON value")
			}
		}
		if n := len(stack); n > 0 && stack[n-1].object && stack[n-1].key {
			top := stack[n-1]
			if k, ok := tok.(string); ok {
				if _, dup := top.keys[k]; dup {
					return fmt.Errorf("duplicate key %q", k)
				}
				top.keys[k] = struct{}{}
				top.key = false
				continue
			}
			// Only the closing brace can stand where a key is expected; the decoder
			// rejects anything else.
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			if len(stack) >= MaxDepth {
				return errors.New("JSON nested too deeply")
			}
			f := &frame{object: tok == json.Delim('{'), key: true}
			if f.object {
				f.keys = map[string]struct{}{}
			}
			stack = append(stack, f)
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
			if n := len(stack); n > 0 && stack[n-1].object {
				stack[n-1].key = true
			}
		default:
			if n := len(stack); n > 0 && stack[n-1].object {
				stack[n-1].key = true
			}
		}
	}
	if len(stack) != 0 {
		return io.ErrUnexpectedEOF
	}
	if values != 1 {
		return errors.New("no JSON value")
	}
	return nil
}
