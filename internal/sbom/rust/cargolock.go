package rust

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/moatsec/moat/internal/sbom"
)

const (
	// maxLine bounds one line of a Cargo.lock; real lines are a few hundred bytes.
	maxLine = 1 << 20
	// maxPackages bounds the packages read from one file; large workspaces pin about a thousand.
	maxPackages = 100_000
	// maxDepth bounds array nesting; Cargo.lock arrays are flat.
	maxDepth = 32
)

// lockKeys are the keys of a [[package]] table that are kept.
var lockKeys = map[string]bool{"name": true, "version": true, "source": true, "checksum": true}

// lockEntry is one [[package]] table of a Cargo.lock.
type lockEntry struct {
	fields map[string]string
	bad    bool // a line of the table could not be read
}

// parseLock reads the subset of TOML that Cargo writes: top-level keys, [table] and
// [[array-of-tables]] headers, and key = value lines whose values are strings, numbers, booleans
// or arrays of strings (possibly over several lines). Only [[package]] tables (and the [root]
// table of the oldest format) become packages; every package with a name and a version is
// reported, including the workspace's own crates, which have no source.
func parseLock(ctx context.Context, r sbom.Content) (*sbom.Result, error) {
	res := &sbom.Result{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), maxLine)

	var cur *lockEntry
	skipped, badLines, truncated := 0, 0, false
	arrayDepth := 0 // > 0 while inside an array that spans lines
	flush := func() {
		if cur == nil {
			return
		}
		if p, ok := cur.toPackage(); ok {
			res.Packages = append(res.Packages, p)
		} else {
			skipped++
		}
		cur = nil
	}
	bad := func() {
		badLines++
		if cur != nil {
			cur.bad = true
		}
	}

	for n := 0; sc.Scan(); n++ {
		if n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		line := strings.TrimSpace(sc.Text())
		if arrayDepth > 0 {
			if _, ok := tableHeader(line); !ok || arrayDepth > 1 {
				var err error
				if arrayDepth, err = skipArray(line, arrayDepth); err != nil {
					arrayDepth = 0
					bad()
				}
				continue
			}
			// A table header inside a flat array: the array was never closed. The table it
			// belongs to keeps its name and version.
			arrayDepth = 0
			badLines++
		}
		if line == "" || line[0] == '#' {
			continue
		}
		if line[0] == '[' {
			flush()
			if len(res.Packages)+skipped >= maxPackages {
				truncated = true
				break
			}
			switch header, ok := tableHeader(line); {
			case !ok:
				bad()
			case header == "[[package]]" || header == "[root]":
				cur = &lockEntry{fields: map[string]string{}}
			}
			continue
		}
		key, rest, ok := cutKey(line)
		if !ok {
			bad()
			continue
		}
		switch {
		case strings.HasPrefix(rest, `"`) || strings.HasPrefix(rest, "'"):
			v, err := parseString(rest)
			if err != nil {
				bad()
				continue
			}
			if cur != nil && lockKeys[key] {
				if _, dup := cur.fields[key]; dup {
					cur.bad = true
				}
				cur.fields[key] = v
			}
		case strings.HasPrefix(rest, "["):
			depth, err := skipArray(rest, 0)
			if err != nil {
				bad()
				continue
			}
			arrayDepth = depth
		case rest == "":
			bad()
		default:
			// Numbers, booleans and one-line inline tables carry nothing we report.
		}
	}
	if arrayDepth > 0 {
		bad()
	}
	flush()

	scanErr := sc.Err()
	if scanErr != nil {
		res.Warnings = append(res.Warnings, fmt.Sprintf("reading Cargo.lock: %v (kept %d packages)", scanErr, len(res.Packages)))
	}
	if truncated {
		res.Warnings = append(res.Warnings, fmt.Sprintf("Cargo.lock has more than %d packages; kept the first %d", maxPackages, len(res.Packages)))
	}
	if skipped > 0 {
		res.Warnings = append(res.Warnings, fmt.Sprintf("skipped %d Cargo.lock packages without a valid name and version", skipped))
	}
	if badLines > 0 {
		res.Warnings = append(res.Warnings, fmt.Sprintf("ignored %d unreadable lines in Cargo.lock", badLines))
	}
	if len(res.Packages) == 0 {
		if scanErr != nil {
			return res, fmt.Errorf("reading Cargo.lock: %w", scanErr)
		}
		if skipped > 0 || badLines > 0 {
			return res, fmt.Errorf("reading Cargo.lock: no valid package (%d malformed packages, %d unreadable lines)", skipped, badLines)
		}
	}
	return res, nil
}

func (e *lockEntry) toPackage() (sbom.Package, bool) {
	name, version := e.fields["name"], e.fields["version"]
	if e.bad || !validToken(name) || !validToken(version) {
		return sbom.Package{}, false
	}
	p := sbom.Package{Name: name, Version: version, Type: sbom.TypeCargo}
	for _, key := range []string{"source", "checksum"} {
		if v := e.fields[key]; validText(v) {
			if p.Metadata == nil {
				p.Metadata = map[string]string{}
			}
			p.Metadata[key] = v
		}
	}
	return p, true
}

// tableHeader returns a "[name]" or "[[name]]" header with the spaces TOML allows removed, and
// whether the line is a well-formed header (optionally followed by a comment).
func tableHeader(line string) (string, bool) {
	if !strings.HasPrefix(line, "[") {
		return "", false
	}
	open, close := "[", "]"
	if strings.HasPrefix(line, "[[") {
		open, close = "[[", "]]"
	}
	inner, rest, ok := strings.Cut(line[len(open):], close)
	rest = strings.TrimSpace(rest)
	if !ok || (rest != "" && rest[0] != '#') {
		return "", false
	}
	inner = strings.TrimSpace(inner)
	if inner == "" || strings.IndexFunc(inner, notKeyRune) >= 0 {
		return "", false
	}
	return open + inner + close, true
}

// cutKey splits "key = value" into the key and the value with surrounding spaces removed. Keys
// are bare (letters, digits, "-", "_", ".") or quoted; Cargo quotes keys only in the [metadata]
// table of the oldest format.
func cutKey(line string) (key, rest string, ok bool) {
	if line[0] == '"' || line[0] == '\'' {
		k, after, err := stringPrefix(line)
		if err != nil {
			return "", "", false
		}
		key, rest = k, after
	} else {
		i := strings.IndexFunc(line, notKeyRune)
		if i <= 0 {
			return "", "", false
		}
		key, rest = line[:i], line[i:]
	}
	rest = strings.TrimSpace(rest)
	if !strings.HasPrefix(rest, "=") {
		return "", "", false
	}
	return key, strings.TrimSpace(rest[1:]), true
}

// notKeyRune reports a rune that cannot appear in a bare or dotted TOML key.
func notKeyRune(r rune) bool {
	return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.')
}

var errBadString = errors.New("malformed string")

// parseString reads a whole value that is one string, allowing only a comment after it.
func parseString(s string) (string, error) {
	v, rest, err := stringPrefix(s)
	if err != nil {
		return "", err
	}
	if rest = strings.TrimSpace(rest); rest != "" && rest[0] != '#' {
		return "", fmt.Errorf("%w: text after the closing quote", errBadString)
	}
	return v, nil
}

// stringPrefix reads the TOML basic ("...") or literal ('...') string that s starts with and
// returns it with the text after it. Multi-line strings are not part of Cargo's subset.
func stringPrefix(s string) (val, rest string, err error) {
	if strings.HasPrefix(s, `"""`) || strings.HasPrefix(s, "'''") {
		return "", "", fmt.Errorf("%w: multi-line strings are not supported", errBadString)
	}
	if s[0] == '\'' {
		v, after, ok := strings.Cut(s[1:], "'")
		if !ok || !utf8.ValidString(v) {
			return "", "", fmt.Errorf("%w: unterminated literal string", errBadString)
		}
		return v, after, nil
	}
	var b strings.Builder
	for i := 1; i < len(s); {
		c := s[i]
		switch {
		case c == '"':
			return b.String(), s[i+1:], nil
		case c == '\\':
			if i+1 >= len(s) {
				return "", "", fmt.Errorf("%w: unterminated escape", errBadString)
			}
			n, r, err := unescape(s[i+1:])
			if err != nil {
				return "", "", err
			}
			b.WriteRune(r)
			i += 1 + n
		case c < ' ' && c != '\t' || c == 0x7f:
			return "", "", fmt.Errorf("%w: control character", errBadString)
		default:
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size <= 1 {
				return "", "", fmt.Errorf("%w: invalid UTF-8", errBadString)
			}
			b.WriteString(s[i : i+size])
			i += size
		}
	}
	return "", "", fmt.Errorf("%w: unterminated string", errBadString)
}

// unescape decodes the escape sequence that s starts with (after the backslash) and returns how
// many bytes it used.
func unescape(s string) (int, rune, error) {
	switch s[0] {
	case 'b':
		return 1, '\b', nil
	case 't':
		return 1, '\t', nil
	case 'n':
		return 1, '\n', nil
	case 'f':
		return 1, '\f', nil
	case 'r':
		return 1, '\r', nil
	case 'e':
		return 1, 0x1b, nil
	case '"':
		return 1, '"', nil
	case '\\':
		return 1, '\\', nil
	case 'u', 'U':
		n := 4
		if s[0] == 'U' {
			n = 8
		}
		if len(s) < 1+n {
			return 0, 0, fmt.Errorf("%w: short unicode escape", errBadString)
		}
		v, err := strconv.ParseUint(s[1:1+n], 16, 32)
		if err != nil || !utf8.ValidRune(rune(v)) {
			return 0, 0, fmt.Errorf("%w: bad unicode escape", errBadString)
		}
		return 1 + n, rune(v), nil
	}
	return 0, 0, fmt.Errorf("%w: unknown escape \\%c", errBadString, s[0])
}

// skipArray scans one line of an array value, starting at the given nesting depth, and returns
// the depth at its end: 0 when the array closed on this line.
func skipArray(line string, depth int) (int, error) {
	for i := 0; i < len(line); {
		c := line[i]
		switch {
		case c == '"' || c == '\'':
			_, rest, err := stringPrefix(line[i:])
			if err != nil {
				return 0, err
			}
			i = len(line) - len(rest)
			continue
		case c == '#':
			return depth, nil
		case c == '[':
			depth++
			if depth > maxDepth {
				return 0, errors.New("arrays nested too deep")
			}
		case c == ']':
			depth--
			if depth < 0 {
				return 0, errors.New("unbalanced ]")
			}
			if depth == 0 {
				if rest := strings.TrimSpace(line[i+1:]); rest != "" && rest[0] != '#' {
					return 0, errors.New("text after the end of an array")
				}
				return 0, nil
			}
		}
		i++
	}
	return depth, nil
}
