// Package policy holds moat's trust policy: its types, loading and validation, and the
// evaluation of a policy over the evidence gathered for one image. The validation enforces
// the published schema (docs/formats/policy.schema.json), written out in Go so that each
// problem is placed at its line; a conformance test checks it against the schema itself.
// Evaluation is pure and fails closed: it does no I/O, and anything it cannot establish is a
// deny.
package policy

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/google/cel-go/cel"
	"gopkg.in/yaml.v3"
)

// Schema is the JSON Schema every policy file is validated against. It is the same document
// as docs/formats/policy.schema.json.
//
//go:embed policy.schema.json
var Schema []byte

// APIVersion and Kind are the values a policy file must declare.
const (
	APIVersion = "moat.dev/v1"
	Kind       = "Policy"
)

// Policy is a loaded, validated trust policy with its CEL expressions compiled.
type Policy struct {
	APIVersion string         `yaml:"apiVersion"`
	Kind       string         `yaml:"kind"`
	Keys       map[string]Key `yaml:"keys"`
	Rules      []Rule         `yaml:"rules"`

	// Source is the file name the policy was loaded from, as given to Parse.
	Source string `yaml:"-"`
	// Hash is "sha256:" and the hex SHA-256 of the file's bytes; decisions record it.
	Hash string `yaml:"-"`
}

// Key is a named public key. The policy only names keys; the caller resolves PublicKey
// (PEM text, or a file path relative to the policy file) and reports in the evidence which
// named key verified each signature and attestation.
type Key struct {
	PublicKey string `yaml:"publicKey"`
}

// IsPEM reports whether the key is given inline rather than as a path.
func (k Key) IsPEM() bool { return strings.Contains(k.PublicKey, "-----BEGIN ") }

// Isolation levels a rule can ask `moat run` to apply.
const (
	Hardened = "hardened"
	Sandbox  = "sandbox"
	VM       = "vm"
)

// Rule actions.
const (
	Allow = "allow"
	Deny  = "deny"
)

// Rule is one rule of a policy. A rule matches an image when one of Match.Images matches
// "registry/repository" (or Match is empty); it decides when it matches and every
// requirement holds.
type Rule struct {
	Name        string  `yaml:"name"`
	Description string  `yaml:"description"`
	Match       Match   `yaml:"match"`
	Require     Require `yaml:"require"`
	Isolation   string  `yaml:"isolation"`
	// Relaxations are the loosenings of the hardened confinement an allow rule permits the
	// container: "KIND" (any value) or "KIND:VALUE"; see docs/formats/policy.md. Any other
	// relaxation is refused (Decision.CheckRelaxations).
	Relaxations []string `yaml:"relaxations"`
	Action      string   `yaml:"action"`
	// Line is the line of the rule in the policy file.
	Line int `yaml:"-"`

	programs []cel.Program
}

// Match selects the images a rule is about.
type Match struct {
	// Images are globs over "registry/repository"; see docs/formats/policy.md.
	Images []string `yaml:"images"`
}

// Require lists what must hold for a rule to decide. Every field is optional.
type Require struct {
	Registries      []string                 `yaml:"registries"`
	Signatures      *SignatureRequirement    `yaml:"signatures"`
	Attestations    []AttestationRequirement `yaml:"attestations"`
	Vulnerabilities *VulnRequirement         `yaml:"vulnerabilities"`
	Config          *ConfigRequirement       `yaml:"config"`
	CEL             []string                 `yaml:"cel"`
}

// SignatureRequirement asks for signatures by Threshold distinct keys out of Keys
// (default 1).
type SignatureRequirement struct {
	Keys      []string `yaml:"keys"`
	Threshold int      `yaml:"threshold"`
}

// AttestationRequirement asks for a verified attestation of a predicate type, signed by one
// of Keys and, when MaxAge is set, produced no longer than MaxAge ago.
type AttestationRequirement struct {
	// Type is an alias (sbom, vuln, spdx, cyclonedx, openvex, slsaprovenance) or a URI.
	Type   string   `yaml:"type"`
	Keys   []string `yaml:"keys"`
	MaxAge Duration `yaml:"maxAge"`
}

// VulnRequirement limits the vulnerabilities an image may have.
type VulnRequirement struct {
	// DenyAtOrAbove fails the requirement on any unsuppressed finding at or above this
	// severity; empty means no severity limit.
	DenyAtOrAbove string `yaml:"denyAtOrAbove"`
	// IgnoreUnfixed leaves findings without a fixed version out of DenyAtOrAbove.
	IgnoreUnfixed bool `yaml:"ignoreUnfixed"`
	// MaxDatabaseAge fails the requirement when the advisory database is older.
	MaxDatabaseAge Duration `yaml:"maxDatabaseAge"`
}

// ConfigRequirement asks for image-configuration properties.
type ConfigRequirement struct {
	NonRoot        bool `yaml:"nonRoot"`
	NoSecretsInEnv bool `yaml:"noSecretsInEnv"`
}

// Duration is a time.Duration written as a Go duration ("72h") or whole days ("7d").
type Duration time.Duration

// UnmarshalYAML reads a duration.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseDuration(n.Value)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// ParseDuration reads a Go duration or a whole number of days ("7d"). Negative durations
// are refused.
func ParseDuration(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseUint(days, 10, 16)
		if err != nil {
			return 0, fmt.Errorf("invalid duration %q", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 || strings.HasPrefix(s, "-") {
		return 0, fmt.Errorf("invalid duration %q", s)
	}
	return v, nil
}

// Error is one problem in a policy file, with its position.
type Error struct {
	File   string
	Line   int
	Column int
	// Path is the location in the document ("/rules/0/require/signatures").
	Path string
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
		if e.Column > 0 {
			fmt.Fprintf(&b, ":%d", e.Column)
		}
	}
	b.WriteString(": ")
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// ErrInvalid is matched (errors.Is) by every error Parse returns for a bad policy file.
var ErrInvalid = errors.New("invalid policy")

// Is makes every *Error match ErrInvalid.
func (e *Error) Is(target error) bool { return target == ErrInvalid }

// Load reads and parses the policy file at name.
func Load(name string) (*Policy, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("reading policy: %w", err)
	}
	return Parse(name, data)
}

// maxPolicySize bounds what Parse accepts; policies are small and the input may not be.
const maxPolicySize = 4 << 20

// Parse validates data (one YAML document) against the published schema, decodes it,
// checks what the schema cannot (key references, globs, durations, unique rule names) and
// compiles every CEL expression. Problems are *Error values (several joined), each with the line.
func Parse(name string, data []byte) (*Policy, error) {
	if len(data) > maxPolicySize {
		return nil, &Error{File: name, Msg: fmt.Sprintf("policy file is larger than %d bytes", maxPolicySize)}
	}
	root, err := parseDocument(data)
	if err != nil {
		return nil, &Error{File: name, Line: yamlErrorLine(err), Msg: err.Error()}
	}
	switch errs := validateStructure(name, root); len(errs) {
	case 0:
	case 1:
		return nil, errs[0]
	default:
		return nil, errors.Join(errs...)
	}
	p := &Policy{Source: name}
	if err := root.Decode(p); err != nil {
		return nil, &Error{File: name, Line: yamlErrorLine(err), Msg: err.Error()}
	}
	sum := sha256.Sum256(data)
	p.Hash = "sha256:" + hex.EncodeToString(sum[:])
	rules := lookup(root, "rules")
	for i := range p.Rules {
		if rules != nil && i < len(rules.Content) {
			p.Rules[i].Line = rules.Content[i].Line
		}
	}
	if errs := p.check(name, root); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return p, nil
}

// parseDocument reads exactly one YAML document and returns its root node.
func parseDocument(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("empty policy file")
		}
		return nil, err
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("line %d: a policy file holds one YAML document", extra.Line)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, errors.New("empty policy file")
	}
	return doc.Content[0], nil
}

// yamlErrorLine finds the line in a yaml.v3 error ("yaml: line N: ...").
func yamlErrorLine(err error) int {
	msg := err.Error()
	i := strings.Index(msg, "line ")
	if i < 0 {
		return 0
	}
	rest := msg[i+len("line "):]
	j := 0
	for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
		j++
	}
	n, _ := strconv.Atoi(rest[:j])
	return n
}

// toJSONValue converts a YAML node tree to the values encoding/json would produce, for
// decodeStrict; policy files are checked over the node tree by validateStructure. Aliases
// are refused: a policy has no use for them and they allow exponential expansion.
func toJSONValue(n *yaml.Node) (any, error) {
	switch n.Kind {
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Kind != yaml.ScalarNode || k.Tag == "!!merge" {
				return nil, fmt.Errorf("line %d: mapping keys must be plain strings", k.Line)
			}
			if _, dup := m[k.Value]; dup {
				return nil, fmt.Errorf("line %d: duplicate key %q", k.Line, k.Value)
			}
			v, err := toJSONValue(n.Content[i+1])
			if err != nil {
				return nil, err
			}
			m[k.Value] = v
		}
		return m, nil
	case yaml.SequenceNode:
		s := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			v, err := toJSONValue(c)
			if err != nil {
				return nil, err
			}
			s = append(s, v)
		}
		return s, nil
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return nil, nil
		case "!!bool":
			var b bool
			if err := n.Decode(&b); err != nil {
				return nil, err
			}
			return b, nil
		case "!!int", "!!float":
			var f float64
			if err := n.Decode(&f); err != nil {
				return nil, err
			}
			return json.Number(strconv.FormatFloat(f, 'g', -1, 64)), nil
		default:
			return n.Value, nil
		}
	case yaml.AliasNode:
		return nil, fmt.Errorf("line %d: YAML aliases are not allowed in a policy", n.Line)
	}
	return nil, fmt.Errorf("line %d: unexpected YAML node", n.Line)
}

// nodeAt follows a JSON-pointer-like location through the YAML tree. For a location ending
// in a mapping key it also returns the key node, whose line is the one a user looks for.
func nodeAt(root *yaml.Node, loc []string) (n, key *yaml.Node) {
	n = root
	for _, tok := range loc {
		key = nil
		switch n.Kind {
		case yaml.MappingNode:
			var next *yaml.Node
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == tok {
					key, next = n.Content[i], n.Content[i+1]
					break
				}
			}
			if next == nil {
				return n, nil
			}
			n = next
		case yaml.SequenceNode:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(n.Content) {
				return n, nil
			}
			n = n.Content[i]
		default:
			return n, nil
		}
	}
	return n, key
}

// lookup returns the value node at a path of mapping keys and sequence indexes.
func lookup(root *yaml.Node, loc ...string) *yaml.Node {
	n, _ := nodeAt(root, loc)
	if n == root && len(loc) > 0 {
		return nil
	}
	return n
}

// check validates what the schema cannot express, collecting every problem.
func (p *Policy) check(name string, root *yaml.Node) []error {
	var errs []error
	at := func(msg string, loc ...string) {
		n, key := nodeAt(root, loc)
		e := &Error{File: name, Path: "/" + strings.Join(loc, "/"), Msg: msg}
		if n != nil {
			e.Line, e.Column = n.Line, n.Column
		}
		if key != nil && n != nil && n.Kind != yaml.ScalarNode {
			e.Line, e.Column = key.Line, key.Column
		}
		errs = append(errs, e)
	}
	env, err := celEnv()
	if err != nil {
		return []error{fmt.Errorf("building CEL environment: %w", err)}
	}
	names := map[string]int{}
	for i := range p.Rules {
		r := &p.Rules[i]
		ri := strconv.Itoa(i)
		if prev, dup := names[r.Name]; dup {
			at(fmt.Sprintf("rule name %q already used by rule %d", r.Name, prev), "rules", ri, "name")
		}
		names[r.Name] = i
		if r.Action == Deny && r.Isolation != "" {
			at("isolation has no meaning on a deny rule", "rules", ri, "isolation")
		}
		if r.Action == Deny && len(r.Relaxations) > 0 {
			at("relaxations have no meaning on a deny rule", "rules", ri, "relaxations")
		}
		for j, s := range r.Relaxations {
			if _, err := parsePermit(s); err != nil {
				at(err.Error(), "rules", ri, "relaxations", strconv.Itoa(j))
			}
		}
		for j, g := range r.Match.Images {
			if err := checkGlob(g); err != nil {
				at(err.Error(), "rules", ri, "match", "images", strconv.Itoa(j))
			}
		}
		for j, g := range r.Require.Registries {
			if strings.Contains(g, "/") {
				at(fmt.Sprintf("registry %q must be a host name glob, without a path", g), "rules", ri, "require", "registries", strconv.Itoa(j))
			} else if err := checkGlob(g); err != nil {
				at(err.Error(), "rules", ri, "require", "registries", strconv.Itoa(j))
			}
		}
		if s := r.Require.Signatures; s != nil {
			for j, k := range s.Keys {
				if _, ok := p.Keys[k]; !ok {
					at(fmt.Sprintf("unknown key %q (not in keys)", k), "rules", ri, "require", "signatures", "keys", strconv.Itoa(j))
				}
			}
			if s.Threshold > len(s.Keys) {
				at(fmt.Sprintf("threshold %d is more than the %d keys listed", s.Threshold, len(s.Keys)), "rules", ri, "require", "signatures", "threshold")
			}
			if s.Threshold == 0 {
				s.Threshold = 1
			}
		}
		for a, att := range r.Require.Attestations {
			for j, k := range att.Keys {
				if _, ok := p.Keys[k]; !ok {
					at(fmt.Sprintf("unknown key %q (not in keys)", k), "rules", ri, "require", "attestations", strconv.Itoa(a), "keys", strconv.Itoa(j))
				}
			}
		}
		for j, src := range r.Require.CEL {
			prg, err := compileCEL(env, src)
			if err != nil {
				at(err.Error(), "rules", ri, "require", "cel", strconv.Itoa(j))
				continue
			}
			r.programs = append(r.programs, prg)
		}
	}
	return errs
}

// checkGlob reports a malformed glob.
func checkGlob(g string) error {
	for _, seg := range strings.Split(g, "/") {
		if seg == "" {
			return fmt.Errorf("glob %q has an empty path segment", g)
		}
		if seg == "**" {
			continue
		}
		if _, err := path.Match(seg, ""); err != nil {
			return fmt.Errorf("malformed glob %q: %v", g, err)
		}
	}
	return nil
}

// matchGlob matches a "/"-separated name against a glob: path.Match per segment, "**" for
// any number of segments (zero included).
func matchGlob(pattern, name string) bool {
	return matchSegments(strings.Split(pattern, "/"), strings.Split(name, "/"))
}

func matchSegments(pat, name []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			for i := 0; i <= len(name); i++ {
				if matchSegments(pat[1:], name[i:]) {
					return true
				}
			}
			return false
		}
		if len(name) == 0 {
			return false
		}
		if ok, err := path.Match(pat[0], name[0]); err != nil || !ok {
			return false
		}
		pat, name = pat[1:], name[1:]
	}
	return len(name) == 0
}
