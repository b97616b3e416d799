// Package suppress hides findings that someone has already decided about, from two kinds of
// file: moat's ignore file (.moatignore.yaml), where a team records the findings it accepts,
// and OpenVEX documents (https://github.com/openvex/spec), where a supplier states that a
// product is not affected by a vulnerability or has been fixed.
//
// A suppressed finding stays in the findings with Finding.Suppressed set, so that reports can
// show it and say why; it no longer counts towards the summary or --fail-on. Both files are
// untrusted input: they are read with a size limit, decoded strictly, and every problem is
// reported with the file, and where the format allows it the line, and the field.
//
// # The ignore file
//
//	# .moatignore.yaml
//	ignore:
//	  - id: CVE-2023-45853           # required: the finding's ID or any of its aliases
//	    package: zlib1g              # optional: a package name, or a package URL
//	    reason: minizip is not used  # required: why the finding is accepted
//	    expires: 2025-01-31          # optional: YYYY-MM-DD (midnight UTC) or an RFC 3339 time
//
// The top level is a mapping with one key, ignore, a list of entries; an empty file ignores
// nothing. Unknown keys, duplicate keys, anchors and aliases, and more than one YAML document
// are errors. IDs are compared case-insensitively with the finding's ID and aliases. A package
// name matches the installed package's name, the name it was matched under (for distributions,
// the source package: "openssl" matches libssl3) or its source package's name. A package URL
// is compared with the finding's package URL: type, namespace and name must be equal, the
// version too when the entry has one (a URL without a version matches every version), and the
// entry's qualifiers must all be present with the same value (in any order). An entry stops
// applying at its expiry time; Apply then reports it as expired so that it gets reviewed.
package suppress

import (
	"fmt"
	"strings"

	"github.com/package-url/packageurl-go"
)

// Kinds of suppression, the values of vuln.Suppression.Kind.
const (
	// KindIgnore is an entry of an ignore file.
	KindIgnore = "ignore"
	// KindVEX is an OpenVEX statement.
	KindVEX = "vex"
)

// FileError is a problem at a place in an ignore file or a VEX document.
type FileError struct {
	// Path is the file as it was named.
	Path string
	// Line and Column are 1-based; 0 when unknown.
	Line, Column int
	// Field is where in the document the problem is ("ignore[2].expires",
	// "statements[0].status"), or "".
	Field string
	Msg   string
}

func (e *FileError) Error() string {
	var b strings.Builder
	b.WriteString(e.Path)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
		if e.Column > 0 {
			fmt.Fprintf(&b, ":%d", e.Column)
		}
	}
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// purlPattern is a package URL to compare findings' package URLs with.
type purlPattern struct {
	typ, namespace, name, version, subpath string
	qualifiers                             map[string]string
}

// parsePURL parses s as a pattern. packageurl-go applies the type-specific normalisations of
// the purl specification (lower-case names for some types), so two spellings of one package
// compare equal once both are parsed.
func parsePURL(s string) (purlPattern, error) {
	p, err := packageurl.FromString(s)
	if err != nil {
		return purlPattern{}, err
	}
	if p.Type == "" || p.Name == "" {
		return purlPattern{}, fmt.Errorf("package URL %q has no type or name", s)
	}
	return purlPattern{
		typ:        strings.ToLower(p.Type),
		namespace:  p.Namespace,
		name:       p.Name,
		version:    p.Version,
		subpath:    p.Subpath,
		qualifiers: p.Qualifiers.Map(),
	}, nil
}

// matches reports whether the package URL purl is the package the pattern names (see
// matchesParsed). An unparsable purl matches nothing.
func (p purlPattern) matches(purl string) bool {
	if purl == "" {
		return false
	}
	q, err := parsePURL(purl)
	if err != nil {
		return false
	}
	return p.matchesParsed(q)
}

// matchesParsed reports whether q is the package the pattern names: the same type, namespace
// and name; the same version when the pattern has one; the same subpath when the pattern has
// one; and every qualifier of the pattern present in q with the same value.
func (p purlPattern) matchesParsed(q purlPattern) bool {
	if p.typ != q.typ || p.namespace != q.namespace || p.name != q.name {
		return false
	}
	if p.version != "" && p.version != q.version {
		return false
	}
	if p.subpath != "" && p.subpath != q.subpath {
		return false
	}
	for k, v := range p.qualifiers {
		if qv, ok := q.qualifiers[k]; !ok || qv != v {
			return false
		}
	}
	return true
}

// matchesID reports whether id names the vulnerability of a finding with the given primary ID
// and aliases, case-insensitively.
func matchesID(id, primary string, aliases []string) bool {
	if id == "" {
		return false
	}
	if strings.EqualFold(id, primary) {
		return true
	}
	for _, a := range aliases {
		if strings.EqualFold(id, a) {
			return true
		}
	}
	return false
}
