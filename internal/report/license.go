package report

import (
	_ "embed"
	"encoding/json"
	"strings"
	"sync"
)

// spdxListJSON is the SPDX license and exception identifier list as CycloneDX publishes it
// (schema/spdx.schema.json in cyclonedx-go). CycloneDX validates license.id against exactly
// this list, so using it here keeps every emitted id valid for both formats.
//
//go:embed schema/spdx.schema.json
var spdxListJSON []byte

// spdxList is the parsed identifier list.
type spdxList struct {
	// ids maps a lower-cased identifier to its canonical spelling.
	ids map[string]string
	// version is the SPDX license list version the file was generated from ("3.17").
	version string
}

var loadSPDXList = sync.OnceValue(func() spdxList {
	var doc struct {
		Comment string   `json:"$comment"`
		Enum    []string `json:"enum"`
	}
	l := spdxList{ids: map[string]string{}}
	if err := json.Unmarshal(spdxListJSON, &doc); err != nil {
		// The file is embedded and checked by tests; an empty list only means that every
		// license is written as a name or a LicenseRef, which is still valid output.
		return l
	}
	for _, id := range doc.Enum {
		l.ids[strings.ToLower(id)] = id
	}
	// "$comment": "v1.0-3.17" names the range of list versions the enum covers.
	if i := strings.LastIndexByte(doc.Comment, '-'); i >= 0 {
		l.version = doc.Comment[i+1:]
	}
	return l
})

// spdxLicenseID returns the canonical spelling of s when it is an identifier on the SPDX
// license list (identifiers are case-insensitive).
func spdxLicenseID(s string) (string, bool) {
	id, ok := loadSPDXList().ids[strings.ToLower(s)]
	return id, ok
}

// Limits on license expressions: longer or deeper ones are treated as free text.
const (
	maxExpressionLen    = 1024
	maxExpressionTokens = 128
	maxExpressionDepth  = 16
)

// licenseExpr is a parsed SPDX license expression.
type licenseExpr struct {
	// text is the expression with canonical identifiers and single spaces.
	text string
	// compound reports whether the expression uses AND, OR, WITH or "+", as opposed to being a
	// single identifier.
	compound bool
	// refs are the LicenseRef- identifiers the expression uses.
	refs []string
}

// parseLicenseExpression parses s as an SPDX license expression (SPDX 2.3 Annex D) whose
// identifiers are on the SPDX license list or are LicenseRef-s. Operators must be upper case.
// DocumentRef- references are rejected because moat's documents declare no external documents.
func parseLicenseExpression(s string) (licenseExpr, bool) {
	if len(s) > maxExpressionLen {
		return licenseExpr{}, false
	}
	toks, ok := tokenizeLicense(s)
	if !ok || len(toks) == 0 || len(toks) > maxExpressionTokens {
		return licenseExpr{}, false
	}
	p := &exprParser{toks: toks}
	text, ok := p.or(0)
	if !ok || p.pos != len(p.toks) {
		return licenseExpr{}, false
	}
	return licenseExpr{text: text, compound: p.compound, refs: p.refs}, true
}

// tokenizeLicense splits an expression into parentheses and words.
func tokenizeLicense(s string) ([]string, bool) {
	var toks []string
	start := -1
	flush := func(end int) {
		if start >= 0 {
			toks = append(toks, s[start:end])
			start = -1
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			flush(i)
		case c == '(' || c == ')':
			flush(i)
			toks = append(toks, s[i:i+1])
		case isIDChar(c) || c == '+' || c == ':':
			if start < 0 {
				start = i
			}
		default:
			return nil, false
		}
	}
	flush(len(s))
	return toks, true
}

// isIDChar reports whether c may appear in an SPDX identifier: letters, digits, "." and "-".
func isIDChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-'
}

// exprParser is a recursive-descent parser for license expressions, with OR binding loosest,
// then AND, then WITH.
type exprParser struct {
	toks     []string
	pos      int
	compound bool
	refs     []string
}

func (p *exprParser) peek() string {
	if p.pos < len(p.toks) {
		return p.toks[p.pos]
	}
	return ""
}

func (p *exprParser) or(depth int) (string, bool) {
	left, ok := p.and(depth)
	for ok && p.peek() == "OR" {
		p.pos++
		var right string
		right, ok = p.and(depth)
		left = left + " OR " + right
		p.compound = true
	}
	return left, ok
}

func (p *exprParser) and(depth int) (string, bool) {
	left, ok := p.with(depth)
	for ok && p.peek() == "AND" {
		p.pos++
		var right string
		right, ok = p.with(depth)
		left = left + " AND " + right
		p.compound = true
	}
	return left, ok
}

func (p *exprParser) with(depth int) (string, bool) {
	if p.peek() == "(" {
		if depth >= maxExpressionDepth {
			return "", false
		}
		p.pos++
		inner, ok := p.or(depth + 1)
		if !ok || p.peek() != ")" {
			return "", false
		}
		p.pos++
		return "(" + inner + ")", true
	}
	id, ok := p.simple()
	if !ok {
		return "", false
	}
	if p.peek() == "WITH" {
		p.pos++
		exc, ok := spdxLicenseID(p.peek())
		if !ok {
			return "", false
		}
		p.pos++
		p.compound = true
		return id + " WITH " + exc, true
	}
	return id, true
}

// simple parses one license identifier: a listed id, a listed id followed by "+", or a
// LicenseRef-.
func (p *exprParser) simple() (string, bool) {
	tok := p.peek()
	switch tok {
	case "", "(", ")", "AND", "OR", "WITH":
		return "", false
	}
	p.pos++
	if id, ok := spdxLicenseID(tok); ok {
		return id, true
	}
	if base, plus := strings.CutSuffix(tok, "+"); plus {
		if id, ok := spdxLicenseID(base); ok {
			p.compound = true
			return id + "+", true
		}
		return "", false
	}
	if isLicenseRef(tok) {
		p.refs = append(p.refs, tok)
		return tok, true
	}
	return "", false
}

// isLicenseRef reports whether s is "LicenseRef-" followed by at least one identifier
// character and nothing else.
func isLicenseRef(s string) bool {
	rest, ok := strings.CutPrefix(s, "LicenseRef-")
	if !ok || rest == "" {
		return false
	}
	for i := 0; i < len(rest); i++ {
		if !isIDChar(rest[i]) {
			return false
		}
	}
	return true
}

// cleanLicenses trims the license strings of a package and drops empty and repeated ones,
// keeping the first occurrence's position.
func cleanLicenses(ls []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, l := range ls {
		l = strings.TrimSpace(l)
		if l == "" || seen[l] {
			continue
		}
		seen[l] = true
		out = append(out, l)
	}
	return out
}
