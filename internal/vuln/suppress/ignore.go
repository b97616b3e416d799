package suppress

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/moatsec/moat/internal/vuln"
)

// IgnoreFileName is the name of the ignore file moat looks for in the working directory.
const IgnoreFileName = ".moatignore.yaml"

// MaxIgnoreSize is the largest ignore file moat reads, in bytes.
const MaxIgnoreSize = 1 << 20

// maxIDLen bounds a vulnerability ID; real ones are a few dozen bytes.
const maxIDLen = 256

// IgnoreEntry is one entry of an ignore file.
type IgnoreEntry struct {
	// ID is the vulnerability ID or alias the entry ignores.
	ID string `json:"id"`
	// Package limits the entry to one package: a name, or a package URL; empty for every
	// package.
	Package string `json:"package,omitempty"`
	// Reason says why the finding is accepted.
	Reason string `json:"reason"`
	// Expires is when the entry stops applying; nil for never.
	Expires *time.Time `json:"expires,omitempty"`
	// Source is the ignore file, and Line the entry's line in it.
	Source string `json:"source"`
	Line   int    `json:"line"`

	purl *purlPattern
}

// IgnoreFile is a parsed ignore file.
type IgnoreFile struct {
	// Path is the file as it was named.
	Path    string
	Entries []IgnoreEntry
}

// LoadIgnore reads and parses the ignore file at path. A missing file is an error that wraps
// fs.ErrNotExist, so that a caller looking for the default file can tell it apart.
func LoadIgnore(path string) (*IgnoreFile, error) {
	data, err := readBounded(path, MaxIgnoreSize)
	if err != nil {
		return nil, fmt.Errorf("reading ignore file: %w", err)
	}
	return ParseIgnore(data, path)
}

// readBounded reads the file at path, refusing one larger than limit bytes.
func readBounded(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return data, nil
}

// ParseIgnore parses the content of an ignore file; path names it in errors and in the
// entries' Source. Errors are *FileError.
func ParseIgnore(data []byte, path string) (f *IgnoreFile, err error) {
	if len(data) > MaxIgnoreSize {
		return nil, &FileError{Path: path, Msg: fmt.Sprintf("larger than %d bytes", MaxIgnoreSize)}
	}
	if !utf8.Valid(data) {
		return nil, &FileError{Path: path, Msg: "not valid UTF-8"}
	}
	// yaml.v3 is a large parser fed with untrusted input; a panic in it must not take the
	// scan down.
	defer func() {
		if r := recover(); r != nil {
			f, err = nil, &FileError{Path: path, Msg: fmt.Sprintf("YAML parser failed: %v", r)}
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return &IgnoreFile{Path: path}, nil
		}
		return nil, yamlError(path, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, yamlError(path, err)
		}
		return nil, &FileError{Path: path, Line: extra.Line, Msg: "more than one YAML document"}
	}
	p := ignoreParser{path: path}
	entries, err := p.file(&doc)
	if err != nil {
		return nil, err
	}
	return &IgnoreFile{Path: path, Entries: entries}, nil
}

// yamlError turns a yaml.v3 error ("yaml: line 3: did not find expected key") into a
// FileError.
func yamlError(path string, err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if n, after, ok := strings.Cut(rest, ": "); ok {
			if _, scanErr := fmt.Sscanf(n, "%d", &line); scanErr == nil {
				msg = after
			}
		}
	}
	return &FileError{Path: path, Line: line, Msg: msg}
}

type ignoreParser struct {
	path string
}

func (p *ignoreParser) errorf(n *yaml.Node, field, format string, args ...any) error {
	return &FileError{Path: p.path, Line: n.Line, Column: n.Column, Field: field, Msg: fmt.Sprintf(format, args...)}
}

// mapping checks that n is a mapping with only the allowed keys, each once, and returns the
// values by key.
func (p *ignoreParser) mapping(n *yaml.Node, field string, allowed ...string) (map[string]*yaml.Node, error) {
	if n.Kind == yaml.AliasNode {
		return nil, p.errorf(n, field, "YAML aliases are not supported")
	}
	if n.Kind != yaml.MappingNode {
		return nil, p.errorf(n, field, "want a mapping, got %s", kindName(n))
	}
	out := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			return nil, p.errorf(k, field, "keys must be strings")
		}
		name := k.Value
		where := joinField(field, name)
		if !contains(allowed, name) {
			return nil, p.errorf(k, where, "unknown field (allowed: %s)", strings.Join(allowed, ", "))
		}
		if _, dup := out[name]; dup {
			return nil, p.errorf(k, where, "given twice")
		}
		if v.Kind == yaml.AliasNode {
			return nil, p.errorf(v, where, "YAML aliases are not supported")
		}
		out[name] = v
	}
	return out, nil
}

func (p *ignoreParser) file(doc *yaml.Node) ([]IgnoreEntry, error) {
	root := doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return nil, nil
		}
		root = root.Content[0]
	}
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return nil, nil
	}
	top, err := p.mapping(root, "", "ignore")
	if err != nil {
		return nil, err
	}
	list, ok := top["ignore"]
	if !ok || (list.Kind == yaml.ScalarNode && list.Tag == "!!null") {
		return nil, nil
	}
	if list.Kind != yaml.SequenceNode {
		return nil, p.errorf(list, "ignore", "want a list of entries, got %s", kindName(list))
	}
	entries := make([]IgnoreEntry, 0, len(list.Content))
	for i, n := range list.Content {
		e, err := p.entry(n, fmt.Sprintf("ignore[%d]", i))
		if err != nil {
			return nil, err
		}
		entries = append(entries, e)
	}
	return entries, nil
}

func (p *ignoreParser) entry(n *yaml.Node, field string) (IgnoreEntry, error) {
	m, err := p.mapping(n, field, "id", "package", "reason", "expires")
	if err != nil {
		return IgnoreEntry{}, err
	}
	e := IgnoreEntry{Source: p.path, Line: n.Line}
	for _, name := range []string{"id", "reason"} {
		if _, ok := m[name]; !ok {
			what := "the vulnerability ID or alias to ignore"
			if name == "reason" {
				what = "why the finding is accepted"
			}
			return IgnoreEntry{}, p.errorf(n, joinField(field, name), "required: %s", what)
		}
	}
	if e.ID, err = p.str(m["id"], joinField(field, "id")); err != nil {
		return IgnoreEntry{}, err
	}
	if len(e.ID) > maxIDLen || strings.IndexFunc(e.ID, unicode.IsSpace) >= 0 {
		return IgnoreEntry{}, p.errorf(m["id"], joinField(field, "id"), "%q is not a vulnerability ID", e.ID)
	}
	if e.Reason, err = p.str(m["reason"], joinField(field, "reason")); err != nil {
		return IgnoreEntry{}, err
	}
	if v, ok := m["package"]; ok {
		if e.Package, err = p.str(v, joinField(field, "package")); err != nil {
			return IgnoreEntry{}, err
		}
		if strings.HasPrefix(e.Package, "pkg:") {
			pat, err := parsePURL(e.Package)
			if err != nil {
				return IgnoreEntry{}, p.errorf(v, joinField(field, "package"), "invalid package URL: %v", err)
			}
			e.purl = &pat
		}
	}
	if v, ok := m["expires"]; ok {
		s, err := p.str(v, joinField(field, "expires"))
		if err != nil {
			return IgnoreEntry{}, err
		}
		t, err := parseExpiry(s)
		if err != nil {
			return IgnoreEntry{}, p.errorf(v, joinField(field, "expires"), "%q: want a date (YYYY-MM-DD) or an RFC 3339 time", s)
		}
		e.Expires = &t
	}
	return e, nil
}

// str reads a non-empty scalar. YAML's implicit types are not applied: "expires: 2025-01-31"
// and "id: 2024" are read as the text written.
func (p *ignoreParser) str(n *yaml.Node, field string) (string, error) {
	if n.Kind != yaml.ScalarNode {
		return "", p.errorf(n, field, "want a string, got %s", kindName(n))
	}
	if n.Tag == "!!null" {
		return "", p.errorf(n, field, "must not be empty")
	}
	s := strings.TrimSpace(n.Value)
	if s == "" {
		return "", p.errorf(n, field, "must not be empty")
	}
	return s, nil
}

// parseExpiry reads a date, which means midnight UTC at its start, or an RFC 3339 time.
func parseExpiry(s string) (time.Time, error) {
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, err
	}
	return t.UTC(), nil
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "nothing"
		}
		return fmt.Sprintf("%q", n.Value)
	}
	return "a document"
}

func joinField(parent, name string) string {
	if parent == "" {
		return name
	}
	return parent + "." + name
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Expired reports whether the entry no longer applies at now.
func (e *IgnoreEntry) Expired(now time.Time) bool {
	return e.Expires != nil && !now.Before(*e.Expires)
}

// Matches reports whether the entry names the finding's vulnerability and, when it names a
// package, the finding's package. It does not look at the expiry.
func (e *IgnoreEntry) Matches(f *vuln.Finding) bool {
	if !matchesID(e.ID, f.ID, f.Aliases) {
		return false
	}
	switch {
	case e.Package == "":
		return true
	case strings.HasPrefix(e.Package, "pkg:"):
		pat := e.purl
		if pat == nil { // an entry built by hand rather than parsed
			p, err := parsePURL(e.Package)
			if err != nil {
				return false
			}
			pat = &p
		}
		return pat.matches(f.Package.PURL)
	default:
		return e.Package == f.Package.Name || e.Package == f.Name ||
			(f.Package.Source != nil && e.Package == f.Package.Source.Name)
	}
}

// Apply suppresses every finding that an entry in force at now matches, the first such entry
// in file order giving the reason. Findings already suppressed are left as they are. It
// returns the entries that have expired, in file order, whether or not they would match
// anything, so that the report can ask for them to be reviewed.
func (f *IgnoreFile) Apply(findings []vuln.Finding, now time.Time) (expired []IgnoreEntry) {
	var active []*IgnoreEntry
	for i := range f.Entries {
		e := &f.Entries[i]
		if e.Expired(now) {
			expired = append(expired, *e)
			continue
		}
		active = append(active, e)
	}
	for i := range findings {
		fd := &findings[i]
		if fd.Suppressed != nil {
			continue
		}
		for _, e := range active {
			if e.Matches(fd) {
				fd.Suppressed = &vuln.Suppression{Kind: KindIgnore, Reason: e.Reason, Source: e.Source}
				if e.Expires != nil {
					t := *e.Expires
					fd.Suppressed.Expires = &t
				}
				break
			}
		}
	}
	return expired
}
