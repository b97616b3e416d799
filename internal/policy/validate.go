package policy

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/moatsec/moat/internal/lazyregexp"
)

// This file enforces policy.schema.json over the YAML node tree, so that every problem is
// reported at its line and no JSON Schema library is linked into the binary. The schema is
// written out below as Go data (policyShape); TestValidationAgreesWithSchema and
// FuzzValidationAgreesWithSchema check that it accepts exactly the documents the published
// schema accepts.

// jsonType is a JSON Schema type name.
type jsonType string

// The JSON types a YAML node can stand for.
const (
	tNull    jsonType = "null"
	tBoolean jsonType = "boolean"
	tInteger jsonType = "integer"
	tNumber  jsonType = "number"
	tString  jsonType = "string"
	tArray   jsonType = "array"
	tObject  jsonType = "object"
)

// shape is the form one value of a policy file must have: the keywords of
// policy.schema.json that apply at that place. Only the keywords the schema uses are here.
type shape struct {
	// typ is the JSON type the value must have; empty when enum alone decides.
	typ jsonType
	// enum lists the strings the value may be (the schema's enum or, with one, its const).
	enum []string
	// nonEmpty is the schema's minLength 1 on a string and minItems 1 on an array.
	nonEmpty bool

	// fields are an object's allowed fields; any other is unknown (additionalProperties
	// false).
	fields map[string]*shape
	// required are the fields an object must have.
	required []string
	// then returns what else an object lacks, given its fields, or "" (the schema's if/then).
	then func(fields map[string]*yaml.Node) string
	// keyName, when set, makes the object a map with free keys: each key must match it
	// (propertyNames) and each value have the shape values (additionalProperties).
	keyName func() *regexp.Regexp
	values  *shape

	// items is the shape of every item of an array.
	items *shape
	// unique forbids equal items (uniqueItems); the items it applies to are strings.
	unique bool

	// check returns what is wrong with a string, or "" (the schema's pattern and anyOf).
	check func(string) string

	// positive is the schema's minimum 1 on an integer.
	positive bool
}

// The shapes policyShape is built from, most of them the schema's $defs.
var (
	nonEmptyString = &shape{typ: tString, nonEmpty: true}
	globsShape     = &shape{typ: tArray, nonEmpty: true, items: nonEmptyString}
	keyNamesShape  = &shape{typ: tArray, nonEmpty: true, unique: true, items: nonEmptyString}
	durationShape  = &shape{typ: tString, check: checkDuration}
	booleanShape   = &shape{typ: tBoolean}

	ruleShape = &shape{
		typ:      tObject,
		required: []string{"name", "action"},
		then:     allowNeedsIsolation,
		fields: map[string]*shape{
			"name":        nonEmptyString,
			"description": {typ: tString},
			"match": {typ: tObject, fields: map[string]*shape{
				"images": globsShape,
			}},
			"require":   requireShape,
			"isolation": {enum: []string{Hardened, Sandbox, VM}},
			"relaxations": {typ: tArray, nonEmpty: true, unique: true, items: &shape{
				typ: tString, check: checkRelaxation,
			}},
			"action": {enum: []string{Allow, Deny}},
		},
	}

	requireShape = &shape{typ: tObject, fields: map[string]*shape{
		"registries": globsShape,
		"signatures": {typ: tObject, required: []string{"keys"}, fields: map[string]*shape{
			"keys":      keyNamesShape,
			"threshold": {typ: tInteger, positive: true},
		}},
		"attestations": {typ: tArray, nonEmpty: true, items: &shape{
			typ:      tObject,
			required: []string{"type", "keys"},
			fields: map[string]*shape{
				"type":   {typ: tString, check: checkAttestationType},
				"keys":   keyNamesShape,
				"maxAge": durationShape,
			},
		}},
		"vulnerabilities": {typ: tObject, fields: map[string]*shape{
			"denyAtOrAbove":  {enum: levelNames},
			"ignoreUnfixed":  booleanShape,
			"maxDatabaseAge": durationShape,
		}},
		"config": {typ: tObject, fields: map[string]*shape{
			"nonRoot":        booleanShape,
			"noSecretsInEnv": booleanShape,
		}},
		"cel": {typ: tArray, nonEmpty: true, items: nonEmptyString},
	}}

	// policyShape is the whole document: policy.schema.json written as Go data.
	policyShape = &shape{
		typ:      tObject,
		required: []string{"apiVersion", "kind", "rules"},
		fields: map[string]*shape{
			"apiVersion": {enum: []string{APIVersion}},
			"kind":       {enum: []string{Kind}},
			"keys": {typ: tObject, keyName: keyNamePattern, values: &shape{
				typ:      tObject,
				required: []string{"publicKey"},
				fields:   map[string]*shape{"publicKey": nonEmptyString},
			}},
			"rules": {typ: tArray, nonEmpty: true, items: ruleShape},
		},
	}
)

// The schema's patterns, copied as they are. JSON Schema means ECMA-262 regular
// expressions, which differ from Go's only beyond ASCII here (ECMA's \s also matches Unicode
// spaces, its . does not match \r); Go's reading is kept, as the JSON Schema library of the
// conformance test also uses it, and those characters have no place in these values anyway.
var (
	keyNamePattern      = lazyregexp.New(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	durationPattern     = lazyregexp.New(`^([0-9]+d|([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$`)
	relaxationPattern   = lazyregexp.New(`^(cap-add|writable-rootfs|network|seccomp-unconfined|seccomp-profile|new-privileges|unlimited|bind-mount|publish)(:.*)?$`)
	predicateURIPattern = lazyregexp.New(`^[A-Za-z][A-Za-z0-9+.-]*:[^\s]+$`)
)

// checkDuration is the schema's duration pattern.
func checkDuration(s string) string {
	if durationPattern().MatchString(s) {
		return ""
	}
	return fmt.Sprintf("invalid duration %q (want a Go duration such as 72h or whole days such as 7d)", s)
}

// checkRelaxation is the schema's relaxation pattern; parsePermit checks the value later.
func checkRelaxation(s string) string {
	if relaxationPattern().MatchString(s) {
		return ""
	}
	kind, _, _ := strings.Cut(s, ":")
	return fmt.Sprintf("unknown relaxation kind %q (want KIND or KIND:VALUE, KIND one of %s)", kind, strings.Join(relaxationKinds, ", "))
}

// checkAttestationType is the schema's anyOf for an attestation type: an alias or a
// predicate type URI.
func checkAttestationType(s string) string {
	if _, ok := predicateAliases[s]; ok || predicateURIPattern().MatchString(s) {
		return ""
	}
	return fmt.Sprintf("unknown attestation type %q (want one of %s, or a predicate type URI)",
		s, strings.Join(slices.Sorted(maps.Keys(predicateAliases)), ", "))
}

// allowNeedsIsolation is the rule's if/then: an allow rule names its isolation.
func allowNeedsIsolation(fields map[string]*yaml.Node) string {
	action, isolation := fields["action"], fields["isolation"]
	if action == nil || isolation != nil {
		return ""
	}
	if t, _, err := typeOf(action); err != nil || t != tString || action.Value != Allow {
		return ""
	}
	return `missing required field "isolation" (an allow rule needs one)`
}

// validateStructure checks the document root against the published schema. It returns
// every problem as an *Error, in document order and without repeats; none when the schema
// accepts the document.
func validateStructure(name string, root *yaml.Node) []error {
	v := &validator{file: name}
	v.value(policyShape, root, nil, "")
	slices.SortStableFunc(v.errs, func(a, b *Error) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column))
	})
	var errs []error
	seen := map[string]bool{}
	for _, e := range v.errs {
		if s := e.Error(); !seen[s] {
			seen[s] = true
			errs = append(errs, e)
		}
	}
	return errs
}

// validator collects the problems of one document.
type validator struct {
	file string
	errs []*Error
}

// add records a problem about the value at path, placed at node at.
func (v *validator) add(at *yaml.Node, path, msg string) {
	if path == "" {
		path = "/"
	}
	v.errs = append(v.errs, &Error{File: v.file, Line: at.Line, Column: at.Column, Path: path, Msg: msg})
}

// value checks the node n, found at path, against s. key is the mapping key n is the value
// of (nil for an array item or the root): problems with n are placed at the key, the line
// a reader looks for.
func (v *validator) value(s *shape, n, key *yaml.Node, path string) {
	at := n
	if key != nil {
		at = key
	}
	t, num, err := typeOf(n)
	switch {
	case err != nil:
		v.add(at, path, err.Error())
		return
	case s.enum != nil && (t != tString || !slices.Contains(s.enum, n.Value)):
		if len(s.enum) == 1 {
			v.add(at, path, fmt.Sprintf("must be %q", s.enum[0]))
		} else {
			v.add(at, path, "must be one of "+quoteAll(s.enum))
		}
		return
	case s.typ != "" && t != s.typ:
		v.add(at, path, fmt.Sprintf("got %s, want %s", t, s.typ))
		return
	}
	switch t {
	case tObject:
		v.object(s, n, at, path)
	case tArray:
		v.array(s, n, at, path)
	case tString:
		if s.nonEmpty && n.Value == "" {
			v.add(at, path, "must not be empty")
		} else if s.check != nil {
			if msg := s.check(n.Value); msg != "" {
				v.add(at, path, msg)
			}
		}
	case tInteger:
		if s.positive && num < 1 {
			v.add(at, path, fmt.Sprintf("must be at least 1, got %s", n.Value))
		}
	}
}

// object checks the fields of the mapping n, placed at at.
func (v *validator) object(s *shape, n, at *yaml.Node, path string) {
	fields := map[string]*yaml.Node{}
	keys := map[string]*yaml.Node{}
	var unknown []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		switch {
		case k.Kind == yaml.AliasNode:
			v.add(k, path, "YAML aliases are not allowed in a policy")
			continue
		case k.Kind != yaml.ScalarNode:
			v.add(k, path, "mapping keys must be plain strings")
			continue
		case k.Tag == "!!merge":
			v.add(k, path, "YAML merge keys (<<) are not allowed in a policy")
			continue
		}
		if first, dup := keys[k.Value]; dup {
			v.add(k, path+"/"+k.Value, fmt.Sprintf("duplicate key %q (first at line %d)", k.Value, first.Line))
			continue
		}
		keys[k.Value], fields[k.Value] = k, val
		if s.keyName == nil && s.fields[k.Value] == nil {
			unknown = append(unknown, k)
		}
	}
	var missing []string
	for _, f := range s.required {
		if _, ok := fields[f]; !ok {
			missing = append(missing, f)
		}
	}
	switch {
	case len(missing) == 1:
		v.add(at, path, fmt.Sprintf("missing required field %q", missing[0]))
	case len(missing) > 1:
		v.add(at, path, "missing required fields "+quoteAll(missing))
	}
	if s.then != nil {
		if msg := s.then(fields); msg != "" {
			v.add(at, path, msg)
		}
	}
	if len(unknown) > 0 {
		names := make([]string, len(unknown))
		for i, k := range unknown {
			names[i] = k.Value
		}
		msg := fmt.Sprintf("unknown field %q", names[0])
		if len(names) > 1 {
			msg = "unknown fields " + quoteAll(names)
		}
		// Placed at the first unknown key itself, the likely typo.
		v.add(unknown[0], path+"/"+names[0], msg)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if keys[k.Value] != k {
			continue // refused above
		}
		p := path + "/" + k.Value
		switch {
		case s.keyName != nil:
			if !s.keyName().MatchString(k.Value) {
				v.add(k, p, fmt.Sprintf("invalid name %q (want a letter or digit, then letters, digits, \".\", \"_\" or \"-\")", k.Value))
			}
			v.value(s.values, n.Content[i+1], k, p)
		case s.fields[k.Value] != nil:
			v.value(s.fields[k.Value], n.Content[i+1], k, p)
		}
	}
}

// array checks the items of the sequence n, placed at at.
func (v *validator) array(s *shape, n, at *yaml.Node, path string) {
	if s.nonEmpty && len(n.Content) == 0 {
		v.add(at, path, "needs at least 1 item")
	}
	first := map[string]int{}
	for i, item := range n.Content {
		v.value(s.items, item, nil, path+"/"+strconv.Itoa(i))
		if !s.unique {
			continue
		}
		// Items of another type than string are refused above, whatever their equality.
		if t, _, err := typeOf(item); err != nil || t != tString {
			continue
		}
		if j, dup := first[item.Value]; dup {
			v.add(at, path, fmt.Sprintf("items %d and %d are equal", j, i))
		} else {
			first[item.Value] = i
		}
	}
}

// typeOf returns the JSON type a YAML node stands for, and for a number its value. Scalars
// are typed by their YAML tag: !!null, !!bool, !!int and !!float are null, boolean, integer
// and number (a float with an integral value counting as an integer, as in JSON Schema),
// anything else is a string. Aliases are refused: a policy has no use for them and they
// allow exponential expansion.
func typeOf(n *yaml.Node) (jsonType, float64, error) {
	switch n.Kind {
	case yaml.MappingNode:
		return tObject, 0, nil
	case yaml.SequenceNode:
		return tArray, 0, nil
	case yaml.AliasNode:
		return "", 0, errors.New("YAML aliases are not allowed in a policy")
	}
	switch n.ShortTag() {
	case "!!null":
		return tNull, 0, nil
	case "!!bool":
		var b bool
		if err := n.Decode(&b); err != nil {
			return "", 0, fmt.Errorf("reading a boolean: %w", err)
		}
		return tBoolean, 0, nil
	case "!!int", "!!float":
		var f float64
		if err := n.Decode(&f); err != nil {
			return "", 0, fmt.Errorf("reading a number: %w", err)
		}
		if math.IsInf(f, 0) || math.Trunc(f) != f {
			return tNumber, f, nil
		}
		return tInteger, f, nil
	}
	return tString, 0, nil
}

// quoteAll quotes each string and joins them with commas.
func quoteAll(s []string) string {
	q := make([]string, len(s))
	for i, v := range s {
		q[i] = strconv.Quote(v)
	}
	return strings.Join(q, ", ")
}
