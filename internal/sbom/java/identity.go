package java

import (
	"path"
	"strconv"
	"strings"
)

// How a package's identity was found, in Metadata "evidence".
const (
	evidencePom      = "pom.properties"
	evidenceManifest = "manifest"
	evidenceFilename = "filename"
)

// identity is what one archive, or one pom.properties in it, says it is.
type identity struct {
	group, artifact, version string
	evidence                 string
	licenses                 []string
}

// pomCoordinates splits META-INF/maven/<groupId>/<artifactId>/pom.properties.
func pomCoordinates(name string) (group, artifact string, ok bool) {
	rest, ok := strings.CutPrefix(name, "META-INF/maven/")
	if !ok {
		return "", "", false
	}
	group, rest, ok1 := strings.Cut(rest, "/")
	artifact, file, ok2 := strings.Cut(rest, "/")
	if !ok1 || !ok2 || file != "pom.properties" || group == "" || artifact == "" {
		return "", "", false
	}
	return group, artifact, true
}

func isPomProperties(name string) bool {
	_, _, ok := pomCoordinates(name)
	return ok
}

// primary picks the pom.properties describing the archive itself, to which the manifest's
// licenses belong: the one whose artifactId and version the file name carries, or the only one.
func primary(ids []identity, fileName string) int {
	stem := fileStem(fileName)
	for i, id := range ids {
		if artifactBefore(stem, id.version) == id.artifact {
			return i
		}
	}
	if len(ids) == 1 {
		return 0
	}
	return -1
}

// fromManifest identifies an archive that has no pom.properties, from its manifest's main
// section (nil when it has none) and its file name.
//
// The version is Implementation-Version, Bundle-Version or a Jenkins plugin's Plugin-Version;
// Specification-Version, which often names an API level rather than the build, only when the
// file name carries no version. Without any of them the file name must hold both the artifactId
// and the version. The artifactId is, in order: the file name's, when the file name carries the
// version; the rest of a Bundle-SymbolicName "<groupId>.<artifactId>" whose groupId is known; a
// Jenkins plugin's Short-Name; an Implementation-Title or Bundle-Name that is a single word (the
// file name's spelling when they differ only in case); the file name without its version.
func fromManifest(attrs map[string]string, fileName string) (identity, bool) {
	stem := fileStem(fileName)
	fileArtifact, fileVersion := splitFileName(stem)
	group := firstValid(validCoordinate, attrs["implementation-vendor-id"], attrs["group-id"])
	bsn, _, _ := strings.Cut(attrs["bundle-symbolicname"], ";")
	bsn = strings.TrimSpace(bsn)

	id := identity{evidence: evidenceManifest}
	id.version = firstValid(validVersion, attrs["implementation-version"], attrs["bundle-version"], attrs["plugin-version"])
	if id.version == "" && (fileVersion == "" || !validVersion(fileVersion)) {
		id.version = firstValid(validVersion, attrs["specification-version"])
	}
	switch {
	case id.version == "":
		id.evidence, id.version, id.artifact = evidenceFilename, fileVersion, fileArtifact
	case artifactBefore(stem, id.version) != "":
		id.artifact = artifactBefore(stem, id.version)
	case group != "" && strings.HasPrefix(bsn, group+".") && validCoordinate(bsn[len(group)+1:]):
		id.artifact = bsn[len(group)+1:]
	case firstValid(validCoordinate, attrs["short-name"]) != "":
		id.artifact = firstValid(validCoordinate, attrs["short-name"])
	default:
		id.artifact = fileArtifact
		if title := firstValid(validCoordinate, attrs["implementation-title"], attrs["bundle-name"]); title != "" && !strings.EqualFold(title, fileArtifact) {
			id.artifact = title
		}
	}
	if !validCoordinate(id.artifact) || !validVersion(id.version) {
		return identity{}, false
	}
	if group == "" && strings.HasSuffix(bsn, "."+id.artifact) {
		group = strings.TrimSuffix(bsn, "."+id.artifact)
	}
	if validCoordinate(group) {
		id.group = group
	}
	return id, true
}

func firstValid(valid func(string) bool, values ...string) string {
	for _, v := range values {
		if v = strings.TrimSpace(v); valid(v) {
			return v
		}
	}
	return ""
}

// fileStem is the file name without its archive extension.
func fileStem(fileName string) string {
	return strings.TrimSuffix(fileName, path.Ext(fileName))
}

// splitFileName splits Maven's "<artifactId>-<version>" at the first hyphen followed by a digit:
// "log4j-core-2.14.1" and "guava-31.1-jre". A classifier stays in the version.
func splitFileName(stem string) (artifact, version string) {
	for i := 1; i+1 < len(stem); i++ {
		if stem[i] == '-' && stem[i+1] >= '0' && stem[i+1] <= '9' {
			return stem[:i], stem[i+1:]
		}
	}
	return stem, ""
}

// artifactBefore returns X when stem is "X-<version>", possibly followed by a classifier, and
// "" otherwise.
func artifactBefore(stem, version string) string {
	if version == "" {
		return ""
	}
	for i := 1; i+len(version) < len(stem); i++ {
		if stem[i] != '-' || !strings.HasPrefix(stem[i+1:], version) {
			continue
		}
		if end := i + 1 + len(version); end == len(stem) || stem[end] == '-' || stem[end] == '.' {
			return stem[:i]
		}
	}
	return ""
}

// validCoordinate accepts the groupIds and artifactIds Maven repositories accept.
func validCoordinate(s string) bool {
	if s == "" || len(s) > 256 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// validVersion rejects empty, overlong and unresolved ("${project.version}") versions and
// versions with spaces or control characters.
func validVersion(s string) bool {
	if s == "" || len(s) > 128 || strings.Contains(s, "${") {
		return false
	}
	for _, r := range s {
		if r <= ' ' || r == 0x7f || r == '\uFFFD' {
			return false
		}
	}
	return true
}

// splitLines splits on "\r\n", "\n" and "\r", the line ends manifests and properties allow.
func splitLines(data []byte) []string {
	s := strings.ReplaceAll(string(data), "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	return strings.Split(s, "\n")
}

// parseManifest returns the attributes of a manifest's main section, keyed in lower case
// because attribute names are case-insensitive. Lines longer than 72 bytes continue on lines
// that start with one space.
func parseManifest(data []byte) map[string]string {
	attrs := map[string]string{}
	var key string
	var value strings.Builder
	flush := func() {
		if key != "" {
			if _, dup := attrs[key]; !dup {
				attrs[key] = value.String()
			}
		}
		key = ""
		value.Reset()
	}
	started := false
	for _, line := range splitLines(data) {
		switch {
		case line == "":
			if started {
				flush()
				return attrs
			}
		case line[0] == ' ':
			if key != "" {
				value.WriteString(line[1:])
			}
		default:
			flush()
			started = true
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			key = strings.ToLower(strings.TrimSpace(k))
			value.WriteString(strings.TrimPrefix(v, " "))
		}
	}
	flush()
	return attrs
}

// bundleLicenses reads an OSGi Bundle-License header: a comma-separated list of license names
// or URLs, each optionally followed by ";description=..." and ";link=..." attributes. A value
// with spaces and neither quotes nor attributes ("Apache License, Version 2.0") is one license.
func bundleLicenses(v string) []string {
	const maxLicenses = 16
	v = strings.TrimSpace(v)
	if v == "" || len(v) > 4096 {
		return nil
	}
	var clauses []string
	inQuote, start := false, 0
	for i := 0; i < len(v); i++ {
		switch v[i] {
		case '"':
			inQuote = !inQuote
		case ',':
			if !inQuote {
				clauses = append(clauses, v[start:i])
				start = i + 1
			}
		}
	}
	clauses = append(clauses, v[start:])
	var out []string
	for _, c := range clauses {
		if i := indexOutsideQuotes(c, ';'); i >= 0 {
			c = c[:i]
		}
		c = strings.Trim(strings.TrimSpace(c), `"`)
		c = strings.TrimSpace(c)
		if c == "" || !validLicense(c) {
			continue
		}
		if strings.ContainsAny(c, " \t") && !strings.ContainsAny(v, `";`) {
			out = []string{v}
			break
		}
		if !containsString(out, c) {
			out = append(out, c)
		}
		if len(out) == maxLicenses {
			break
		}
	}
	if len(out) == 1 && !validLicense(out[0]) {
		return nil
	}
	return out
}

func indexOutsideQuotes(s string, b byte) int {
	inQuote := false
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			inQuote = !inQuote
		case b:
			if !inQuote {
				return i
			}
		}
	}
	return -1
}

func validLicense(s string) bool {
	for _, r := range s {
		if r < ' ' || r == 0x7f || r == '\uFFFD' {
			return false
		}
	}
	return s != ""
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// parseProperties reads a java.util.Properties text file: "key=value", "key: value" or
// "key value" lines, '#' and '!' comments, backslash line continuations and escapes.
func parseProperties(data []byte) map[string]string {
	props := map[string]string{}
	lines := splitLines(data)
	for i := 0; i < len(lines); i++ {
		line := strings.TrimLeft(lines[i], " \t\f")
		if line == "" || line[0] == '#' || line[0] == '!' {
			continue
		}
		var logical strings.Builder
		for {
			if !oddTrailingBackslashes(line) {
				logical.WriteString(line)
				break
			}
			logical.WriteString(line[:len(line)-1])
			if i+1 >= len(lines) {
				break
			}
			i++
			line = strings.TrimLeft(lines[i], " \t\f")
		}
		k, v := splitProperty(logical.String())
		if k = unescapeProperty(k); k != "" {
			props[k] = unescapeProperty(v)
		}
	}
	return props
}

func oddTrailingBackslashes(s string) bool {
	n := 0
	for i := len(s) - 1; i >= 0 && s[i] == '\\'; i-- {
		n++
	}
	return n%2 == 1
}

// splitProperty splits a logical line at the first unescaped '=', ':' or white space.
func splitProperty(s string) (key, value string) {
	i := 0
	for ; i < len(s); i++ {
		c := s[i]
		if c == '\\' {
			i++
			continue
		}
		if c == '=' || c == ':' || c == ' ' || c == '\t' || c == '\f' {
			break
		}
	}
	if i >= len(s) {
		return s, ""
	}
	key, rest := s[:i], strings.TrimLeft(s[i:], " \t\f")
	if rest != "" && (rest[0] == '=' || rest[0] == ':') {
		rest = strings.TrimLeft(rest[1:], " \t\f")
	}
	return key, rest
}

func unescapeProperty(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 >= len(s) {
			b.WriteByte(c)
			continue
		}
		i++
		switch s[i] {
		case 't':
			b.WriteByte('\t')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 'f':
			b.WriteByte('\f')
		case 'u':
			if i+4 < len(s) {
				if r, err := strconv.ParseUint(s[i+1:i+5], 16, 16); err == nil {
					b.WriteRune(rune(r))
					i += 4
					continue
				}
			}
			b.WriteByte('u')
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}
