package suppress

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/openvex/go-vex/pkg/vex"
	"github.com/package-url/packageurl-go"

	"github.com/moatsec/moat/internal/sbom"
	"github.com/moatsec/moat/internal/vuln"
)

// MaxVEXSize is the largest OpenVEX document moat reads, in bytes.
const MaxVEXSize = 16 << 20

// maxImpact bounds the impact statement quoted in a suppression reason, in characters.
const maxImpact = 200

// VEXDocument is a parsed OpenVEX document.
//
// A statement applies to a finding when its vulnerability (name, @id or an alias) is the
// finding's ID or one of its aliases, and one of its products is either
//
//   - the finding's package, by package URL (the product's @id or its "purl" identifier,
//     compared as in the ignore file: a URL without a version matches every version, and the
//     product's qualifiers must be present in the package's, in any order); or
//   - the scanned image, with no subcomponents (the whole image is meant) or with a
//     subcomponent that is the finding's package. The image is named by a pkg:oci package URL
//     (matched by digest, or without a version by name and repository_url), by its digest or
//     config digest ("sha256:…", or a reference pinned to it, "repo@sha256:…"), or by a
//     sha-256 hash of the manifest.
//
// Of the statements that apply to a finding, across all documents, the latest wins: each
// statement's timestamp, else its document's, with ties going to the statement read last.
// Only not_affected and fixed suppress; a later affected or under_investigation statement
// brings the finding back.
type VEXDocument struct {
	// Path is the file as it was named.
	Path       string
	statements []vexStatement
}

// Len returns the number of statements in the document.
func (d *VEXDocument) Len() int { return len(d.statements) }

type vexStatement struct {
	ids           []string // lower-cased vulnerability name, @id and aliases
	status        vex.Status
	justification vex.Justification
	impact        string
	at            time.Time
	products      []vexProduct
	source        string
}

type vexProduct struct {
	comp          vex.Component
	purls         []purlPattern // package URLs naming the product
	subcomponents [][]purlPattern
}

// LoadVEX reads and parses the OpenVEX document at path.
func LoadVEX(path string) (*VEXDocument, error) {
	data, err := readBounded(path, MaxVEXSize)
	if err != nil {
		return nil, fmt.Errorf("reading VEX document: %w", err)
	}
	return ParseVEX(data, path)
}

// ParseVEX parses an OpenVEX (v0.2.0) JSON document; path names it in errors and in the
// suppressions it makes. Statements that the specification calls invalid (an unknown status,
// not_affected without a justification or impact statement, no product) are errors rather
// than being skipped: a document that does not say what its author meant should not silently
// hide findings, nor silently fail to. Errors are *FileError.
func ParseVEX(data []byte, path string) (*VEXDocument, error) {
	if len(data) > MaxVEXSize {
		return nil, &FileError{Path: path, Msg: fmt.Sprintf("larger than %d bytes", MaxVEXSize)}
	}
	if !utf8.Valid(data) {
		return nil, &FileError{Path: path, Msg: "not valid UTF-8"}
	}
	var head struct {
		Context json.RawMessage `json:"@context"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		var typ *json.UnmarshalTypeError
		if errors.As(err, &typ) && typ.Field == "" {
			return nil, &FileError{Path: path, Msg: "not an OpenVEX document: want a JSON object, got a JSON " + typ.Value}
		}
		return nil, jsonError(path, data, err)
	}
	var context string
	if err := json.Unmarshal(head.Context, &context); err != nil || !strings.HasPrefix(context, vex.Context) {
		return nil, &FileError{Path: path, Field: "@context", Msg: fmt.Sprintf("not an OpenVEX document: want an @context starting with %s", vex.Context)}
	}
	doc, err := vex.Parse(data)
	if err != nil {
		ferr := jsonError(path, data, err)
		if v := strings.TrimPrefix(strings.TrimPrefix(context, vex.Context), "/"); v == "" || v == "v0.0.1" {
			ferr.(*FileError).Msg += " (OpenVEX v0.0.1 documents are not supported; moat reads v0.2.0)"
		}
		return nil, ferr
	}
	var docTime time.Time
	if doc.Timestamp != nil {
		docTime = *doc.Timestamp
	}
	out := &VEXDocument{Path: path, statements: make([]vexStatement, 0, len(doc.Statements))}
	for i := range doc.Statements {
		s, err := newStatement(&doc.Statements[i], docTime, path)
		if err != nil {
			return nil, &FileError{Path: path, Field: fmt.Sprintf("statements[%d].%s", i, err.field), Msg: err.msg}
		}
		out.statements = append(out.statements, s)
	}
	return out, nil
}

type statementError struct{ field, msg string }

func newStatement(st *vex.Statement, docTime time.Time, path string) (vexStatement, *statementError) {
	s := vexStatement{
		status:        st.Status,
		justification: st.Justification,
		impact:        oneLine(st.ImpactStatement, maxImpact),
		at:            docTime,
		source:        path,
	}
	if st.Timestamp != nil && !st.Timestamp.IsZero() {
		s.at = *st.Timestamp
	}
	v := st.Vulnerability
	for _, id := range append([]vex.VulnerabilityID{vex.VulnerabilityID(v.ID), v.Name}, v.Aliases...) {
		if id := strings.ToLower(strings.TrimSpace(string(id))); id != "" && !contains(s.ids, id) {
			s.ids = append(s.ids, id)
		}
	}
	if strings.TrimSpace(string(v.Name)) == "" && strings.TrimSpace(v.ID) == "" {
		return s, &statementError{"vulnerability.name", "required: the vulnerability the statement is about"}
	}
	if !st.Status.Valid() {
		return s, &statementError{"status", fmt.Sprintf("unknown status %q (want %s)", st.Status, strings.Join(vex.Statuses(), ", "))}
	}
	if st.Justification != "" && !st.Justification.Valid() {
		return s, &statementError{"justification", fmt.Sprintf("unknown justification %q (want %s)", st.Justification, strings.Join(vex.Justifications(), ", "))}
	}
	if st.Status == vex.StatusNotAffected && st.Justification == "" && s.impact == "" {
		return s, &statementError{"justification", "a not_affected statement needs a justification or an impact_statement"}
	}
	if len(st.Products) == 0 {
		return s, &statementError{"products", "required: the statement names no product, so it applies to nothing"}
	}
	for j := range st.Products {
		p := &st.Products[j]
		if !identified(&p.Component) {
			return s, &statementError{fmt.Sprintf("products[%d]", j), "the product has no @id, identifiers or hashes"}
		}
		vp := vexProduct{comp: p.Component, purls: componentPURLs(&p.Component)}
		for k := range p.Subcomponents {
			sc := &p.Subcomponents[k].Component
			if !identified(sc) {
				return s, &statementError{fmt.Sprintf("products[%d].subcomponents[%d]", j, k), "the subcomponent has no @id, identifiers or hashes"}
			}
			vp.subcomponents = append(vp.subcomponents, componentPURLs(sc))
		}
		s.products = append(s.products, vp)
	}
	return s, nil
}

func identified(c *vex.Component) bool {
	if strings.TrimSpace(c.ID) != "" {
		return true
	}
	for _, v := range c.Identifiers {
		if strings.TrimSpace(v) != "" {
			return true
		}
	}
	for _, v := range c.Hashes {
		if strings.TrimSpace(string(v)) != "" {
			return true
		}
	}
	return false
}

// componentPURLs returns the package URLs that name c: its @id when that is a package URL,
// and its purl identifier. Unparsable ones are left out: they name nothing moat can match.
func componentPURLs(c *vex.Component) []purlPattern {
	var out []purlPattern
	for _, s := range []string{c.ID, c.Identifiers[vex.PURL]} {
		if !strings.HasPrefix(s, "pkg:") {
			continue
		}
		if p, err := parsePURL(s); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// oneLine collapses whitespace and control characters in free text to single spaces and cuts
// it to max characters, so that it fits in a one-line reason.
func oneLine(s string, max int) string {
	s = strings.Join(strings.FieldsFunc(s, func(r rune) bool {
		return unicode.IsSpace(r) || unicode.IsControl(r) || r == utf8.RuneError
	}), " ")
	if utf8.RuneCountInString(s) > max {
		s = string([]rune(s)[:max-1]) + "…"
	}
	return s
}

// jsonError turns a JSON decoding error into a FileError with the line and column of the
// offending byte when the error has an offset.
func jsonError(path string, data []byte, err error) error {
	var offset int64 = -1
	msg := strings.TrimPrefix(err.Error(), "error: ") // go-vex's prefix for what it could not parse
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		// Offset counts the offending byte; point at it.
		offset, msg = max(syn.Offset-1, 0), syn.Error()
	case errors.As(err, &typ):
		offset = typ.Offset // just after the value
		msg = fmt.Sprintf("want %s, got a JSON %s", jsonKind(typ.Type), typ.Value)
		if typ.Field != "" {
			msg = typ.Field + ": " + msg
		}
	}
	fe := &FileError{Path: path, Msg: msg}
	if offset >= 0 && offset <= int64(len(data)) {
		before := data[:offset]
		fe.Line = bytes.Count(before, []byte("\n")) + 1
		fe.Column = utf8.RuneCount(before[bytes.LastIndexByte(before, '\n')+1:]) + 1
	}
	return fe
}

// jsonKind names what JSON value a Go type is decoded from.
func jsonKind(t reflect.Type) string {
	if t == nil {
		return "another value"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Struct, reflect.Map:
		return "an object"
	}
	return "another value"
}

// ApplyVEX suppresses the findings that the documents' latest applicable statements say are
// not_affected or fixed (see VEXDocument for when a statement applies), in an image described
// by image. Findings already suppressed are left as they are. It returns the number of
// findings it suppressed.
func ApplyVEX(findings []vuln.Finding, image sbom.ImageInfo, docs ...*VEXDocument) int {
	img := newImageTarget(image)
	type candidate struct {
		s     *vexStatement
		order int
		// isImage[i] records whether product i names the scanned image.
		isImage []bool
	}
	var all []candidate
	index := map[string][]int{}
	for _, d := range docs {
		if d == nil {
			continue
		}
		for i := range d.statements {
			s := &d.statements[i]
			c := candidate{s: s, order: len(all), isImage: make([]bool, len(s.products))}
			for j := range s.products {
				c.isImage[j] = img.matchesComponent(&s.products[j].comp)
			}
			for _, id := range s.ids {
				index[id] = append(index[id], len(all))
			}
			all = append(all, c)
		}
	}
	if len(all) == 0 {
		return 0
	}
	suppressed := 0
	for i := range findings {
		f := &findings[i]
		if f.Suppressed != nil {
			continue
		}
		pkg, err := parsePURL(f.Package.PURL)
		hasPURL := f.Package.PURL != "" && err == nil
		var best *candidate
		seen := map[int]bool{}
		for _, id := range append([]string{f.ID}, f.Aliases...) {
			for _, k := range index[strings.ToLower(id)] {
				if seen[k] {
					continue
				}
				seen[k] = true
				c := &all[k]
				applies := false
				for j := range c.s.products {
					if c.s.products[j].applies(c.isImage[j], pkg, hasPURL) {
						applies = true
						break
					}
				}
				if !applies {
					continue
				}
				if best == nil || c.s.at.After(best.s.at) || (c.s.at.Equal(best.s.at) && c.order > best.order) {
					best = c
				}
			}
		}
		if best == nil || (best.s.status != vex.StatusNotAffected && best.s.status != vex.StatusFixed) {
			continue
		}
		f.Suppressed = &vuln.Suppression{Kind: KindVEX, Reason: vexReason(best.s), Source: best.s.source}
		suppressed++
	}
	return suppressed
}

// applies reports whether the product covers a package: it is the package, or it is the
// image (isImage) and either has no subcomponents or has the package as one.
func (p *vexProduct) applies(isImage bool, pkg purlPattern, hasPURL bool) bool {
	if hasPURL && anyMatch(p.purls, pkg) {
		return true
	}
	if !isImage {
		return false
	}
	if len(p.subcomponents) == 0 {
		return true
	}
	if !hasPURL {
		return false
	}
	for _, sc := range p.subcomponents {
		if anyMatch(sc, pkg) {
			return true
		}
	}
	return false
}

func anyMatch(patterns []purlPattern, pkg purlPattern) bool {
	for _, p := range patterns {
		if p.matchesParsed(pkg) {
			return true
		}
	}
	return false
}

// vexReason is the suppression reason for a statement: "vex: STATUS", then " (JUSTIFICATION)"
// and ": IMPACT STATEMENT" when the statement has them. ParseVEXReason reads it back.
func vexReason(s *vexStatement) string {
	r := "vex: " + string(s.status)
	if s.justification != "" {
		r += " (" + string(s.justification) + ")"
	}
	if s.impact != "" {
		r += ": " + s.impact
	}
	return r
}

// ParseVEXReason reads the reason of a VEX suppression ("vex: not_affected
// (vulnerable_code_not_in_execute_path): the parser is not used") back into the statement's
// status, justification and impact statement, for reports that map them onto their own
// vocabulary. ok is false when reason was not written by ApplyVEX.
func ParseVEXReason(reason string) (status, justification, impact string, ok bool) {
	rest, ok := strings.CutPrefix(reason, "vex: ")
	if !ok {
		return "", "", "", false
	}
	end := strings.IndexAny(rest, " :")
	if end < 0 {
		end = len(rest)
	}
	status, rest = rest[:end], rest[end:]
	if !vex.Status(status).Valid() {
		return "", "", "", false
	}
	if r, ok := strings.CutPrefix(rest, " ("); ok {
		j, after, found := strings.Cut(r, ")")
		if !found || !vex.Justification(j).Valid() {
			return "", "", "", false
		}
		justification, rest = j, after
	}
	if r, ok := strings.CutPrefix(rest, ": "); ok {
		impact, rest = r, ""
	}
	if rest != "" {
		return "", "", "", false
	}
	return status, justification, impact, true
}

// imageTarget is what identifies the scanned image in a VEX product.
type imageTarget struct {
	// digests are the manifest digest, config digest and repository digests, lower case.
	digests map[string]bool
	// repos are the image's repositories, normalised (docker.io/library/alpine).
	repos []string
}

func newImageTarget(img sbom.ImageInfo) *imageTarget {
	t := &imageTarget{digests: map[string]bool{}}
	addDigest := func(d string) {
		if algo, hex, ok := strings.Cut(d, ":"); ok && algo != "" && hex != "" {
			t.digests[strings.ToLower(d)] = true
		}
	}
	addRepo := func(ref string) {
		repo, digest, pinned := strings.Cut(ref, "@")
		if pinned {
			addDigest(digest)
		}
		if slash := strings.LastIndexByte(repo, '/'); strings.LastIndexByte(repo, ':') > slash {
			repo = repo[:strings.LastIndexByte(repo, ':')]
		}
		if repo = normalizeRepo(repo); repo != "" && !contains(t.repos, repo) {
			t.repos = append(t.repos, repo)
		}
	}
	addDigest(img.Digest)
	addDigest(img.ID)
	if img.Reference != "" {
		addRepo(img.Reference)
	}
	for _, r := range img.RepoDigests {
		addRepo(r)
	}
	for _, r := range img.RepoTags {
		addRepo(r)
	}
	if img.Source == "registry" || img.Source == "docker" {
		addRepo(img.Name)
	}
	return t
}

// normalizeRepo writes a repository the way Docker resolves it: lower case, with the
// registry (docker.io for Docker Hub, whatever spelling was used) and "library/" for Docker
// Hub's official images.
func normalizeRepo(repo string) string {
	repo = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(repo), "/"))
	for _, scheme := range []string{"https://", "http://"} {
		repo = strings.TrimPrefix(repo, scheme)
	}
	if repo == "" {
		return ""
	}
	first, rest, hasSlash := strings.Cut(repo, "/")
	if !hasSlash || (!strings.ContainsAny(first, ".:") && first != "localhost") {
		first, rest = "docker.io", repo
	}
	switch first {
	case "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com":
		first = "docker.io"
	}
	if first == "docker.io" && !strings.Contains(rest, "/") {
		rest = "library/" + rest
	}
	return first + "/" + rest
}

// matchesComponent reports whether c names the image.
func (t *imageTarget) matchesComponent(c *vex.Component) bool {
	names := []string{c.ID}
	for _, v := range c.Identifiers {
		names = append(names, v)
	}
	for _, n := range names {
		n = strings.TrimSpace(n)
		switch {
		case n == "":
		case strings.HasPrefix(n, "pkg:"):
			if t.matchesPURL(n) {
				return true
			}
		default:
			d := n
			if at := strings.LastIndexByte(n, '@'); at >= 0 {
				d = n[at+1:]
			}
			if t.digests[strings.ToLower(d)] {
				return true
			}
		}
	}
	for algo, h := range c.Hashes {
		name := strings.ReplaceAll(string(algo), "-", "") // sha-256 -> sha256, as in OCI digests
		if t.digests[strings.ToLower(name+":"+string(h))] {
			return true
		}
	}
	return false
}

// matchesPURL reports whether a pkg:oci package URL names the image: by digest when it has a
// version, else by name, and by repository_url when it has one.
func (t *imageTarget) matchesPURL(s string) bool {
	p, err := packageurl.FromString(s)
	if err != nil || !strings.EqualFold(p.Type, "oci") {
		return false
	}
	if p.Version != "" {
		return t.digests[strings.ToLower(p.Version)]
	}
	name := strings.ToLower(p.Name)
	repoURL := normalizeRepo(p.Qualifiers.Map()["repository_url"])
	for _, r := range t.repos {
		if repoURL != "" {
			if r == repoURL {
				return true
			}
			continue
		}
		if r[strings.LastIndexByte(r, '/')+1:] == name {
			return true
		}
	}
	return false
}
