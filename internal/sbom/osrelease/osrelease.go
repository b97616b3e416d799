// Package osrelease identifies the operating system of an image from the files distributions
// leave in /etc and /usr/lib. It reports a sbom.Release and no packages.
//
// etc/os-release and usr/lib/os-release are read as the os-release(5) format: ID, ID_LIKE,
// VERSION_ID, VERSION_CODENAME (UBUNTU_CODENAME when that is missing) and PRETTY_NAME, with
// shell quoting and escapes undone. The other files are older, distribution-specific hints, and
// are mapped to what that distribution's os-release says, so that every source agrees:
//
//   - etc/lsb-release: DISTRIB_ID, DISTRIB_RELEASE, DISTRIB_CODENAME, DISTRIB_DESCRIPTION.
//   - etc/debian_version: "12.5" gives ID debian, VersionID "12" (Debian's os-release has only
//     the major version), VersionCodename "bookworm" from the known releases, and PrettyName
//     "Debian GNU/Linux 12.5", which keeps the point release. "trixie/sid" (testing, and every
//     Ubuntu) gives VersionCodename "trixie" and no VersionID.
//   - etc/alpine-release: "3.20.3" gives ID alpine, VersionID "3.20.3", as Alpine's os-release.
//   - etc/redhat-release, centos-release, rocky-release, almalinux-release, system-release: a
//     line "<name> release <version> (<codename>)". The ID comes from the name (rhel, centos,
//     rocky, almalinux, fedora, amzn, ol); the version is cut to the major number for the
//     distributions whose os-release does so (CentOS, Fedora, Amazon Linux) and kept whole for
//     the others (RHEL "9.4"). PrettyName is the whole line; the codename is not kept.
//
// When an image has several of these files, Best chooses among the releases.
package osrelease

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/moatsec/moat/internal/lazyregexp"
	"github.com/moatsec/moat/internal/sbom"
)

// Cataloger identifies the operating system.
type Cataloger struct{}

// New returns the os-release cataloger.
func New() *Cataloger { return &Cataloger{} }

// Name implements sbom.Cataloger.
func (*Cataloger) Name() string { return "osrelease" }

// Version implements sbom.Cataloger.
func (*Cataloger) Version() int { return 1 }

// The files this cataloger reads, by kind.
const (
	etcOSRelease = "etc/os-release"
	usrOSRelease = "usr/lib/os-release"
	lsbRelease   = "etc/lsb-release"
	debVersion   = "etc/debian_version"
	alpRelease   = "etc/alpine-release"
)

// rpmReleaseFiles are the "<name> release <version>" files of the Red Hat family, with the ID
// to assume when the line names no distribution we know.
var rpmReleaseFiles = map[string]string{
	"etc/redhat-release":    "",
	"etc/centos-release":    "centos",
	"etc/rocky-release":     "rocky",
	"etc/almalinux-release": "almalinux",
	"etc/system-release":    "",
}

// Match implements sbom.Cataloger.
func (*Cataloger) Match(fi sbom.FileInfo) bool {
	switch fi.Path {
	case etcOSRelease, usrOSRelease, lsbRelease, debVersion, alpRelease:
		return true
	}
	_, ok := rpmReleaseFiles[fi.Path]
	return ok
}

// maxSize bounds what is read of a release file; real ones are well under 1 KiB.
const maxSize = 64 << 10

// maxValue bounds one value; longer ones are not release information.
const maxValue = 256

// Parse implements sbom.Cataloger.
func (c *Cataloger) Parse(_ context.Context, fi sbom.FileInfo, r sbom.Content) (*sbom.Result, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", fi.Path, err)
	}
	res := &sbom.Result{}
	if len(data) > maxSize {
		data = data[:maxSize]
		res.Warnings = append(res.Warnings, fmt.Sprintf("%s is larger than %d bytes: read only the start", fi.Path, maxSize))
	}
	var rel *sbom.Release
	switch fi.Path {
	case etcOSRelease, usrOSRelease:
		rel, err = parseOSRelease(data)
	case lsbRelease:
		rel, err = parseLSBRelease(data)
	case debVersion:
		rel, err = parseDebianVersion(data)
	case alpRelease:
		rel, err = parseAlpineRelease(data)
	default:
		fallback, ok := rpmReleaseFiles[fi.Path]
		if !ok {
			return nil, fmt.Errorf("reading %s: not a release file", fi.Path)
		}
		rel, err = parseRPMRelease(data, fallback)
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", fi.Path, err)
	}
	rel.Source = fi.Path
	res.Release = rel
	return res, nil
}

// parseKeyValues reads shell-style KEY=value assignments (os-release(5), lsb-release). Later
// assignments win, as they would in a shell.
func parseKeyValues(data []byte) map[string]string {
	vals := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), maxSize)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		k, v, ok := strings.Cut(line, "=")
		if !ok || !validKey(k) {
			continue
		}
		vals[k] = unquote(v)
	}
	return vals
}

func validKey(k string) bool {
	if k == "" {
		return false
	}
	for i, r := range k {
		switch {
		case r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z', r == '_':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// unquote undoes shell quoting as os-release(5) allows it: single quotes are literal, double
// quotes honour \" \\ \$ \` escapes, and an unquoted backslash escapes the next character.
// Unquoted whitespace ends the value (what follows would be a comment or a command).
func unquote(v string) string {
	var b strings.Builder
	const (
		bare = iota
		single
		double
	)
	state := bare
	for i := 0; i < len(v); i++ {
		ch := v[i]
		switch state {
		case bare:
			switch ch {
			case '\'':
				state = single
			case '"':
				state = double
			case '\\':
				if i+1 < len(v) {
					i++
					b.WriteByte(v[i])
				}
			case ' ', '\t':
				return b.String()
			default:
				b.WriteByte(ch)
			}
		case single:
			if ch == '\'' {
				state = bare
			} else {
				b.WriteByte(ch)
			}
		case double:
			switch {
			case ch == '"':
				state = bare
			case ch == '\\' && i+1 < len(v) && strings.IndexByte("\"\\$`", v[i+1]) >= 0:
				i++
				b.WriteByte(v[i])
			default:
				b.WriteByte(ch)
			}
		}
	}
	return b.String()
}

// clean drops values that cannot be release information: too long, or holding control
// characters.
func clean(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > maxValue || strings.ContainsFunc(s, func(r rune) bool { return r < ' ' || r == 0x7f || r == 0xfffd }) {
		return ""
	}
	return s
}

// token is clean for values that must be one word (IDs, versions, codenames).
func token(s string) string {
	s = clean(s)
	if strings.ContainsAny(s, " \t") {
		return ""
	}
	return s
}

var idPattern = lazyregexp.New(`^[a-z0-9._-]+$`)

// normID lowercases an ID and rejects what os-release(5) does not allow in one.
func normID(s string) string {
	s = strings.ToLower(token(s))
	if !idPattern().MatchString(s) {
		return ""
	}
	return s
}

func parseOSRelease(data []byte) (*sbom.Release, error) {
	vals := parseKeyValues(data)
	if len(vals) == 0 {
		return nil, fmt.Errorf("no os-release fields")
	}
	rel := &sbom.Release{
		ID:              normID(vals["ID"]),
		VersionID:       token(vals["VERSION_ID"]),
		VersionCodename: token(vals["VERSION_CODENAME"]),
		PrettyName:      clean(vals["PRETTY_NAME"]),
	}
	if rel.VersionCodename == "" {
		rel.VersionCodename = token(vals["UBUNTU_CODENAME"])
	}
	for _, like := range strings.Fields(vals["ID_LIKE"]) {
		if id := normID(like); id != "" && len(rel.IDLike) < 16 {
			rel.IDLike = append(rel.IDLike, id)
		}
	}
	if rel.ID == "" {
		if vals["ID"] != "" {
			return nil, fmt.Errorf("invalid os-release ID %q", clean(vals["ID"]))
		}
		if vals["NAME"] == "" && vals["PRETTY_NAME"] == "" && vals["VERSION_ID"] == "" {
			return nil, fmt.Errorf("no os-release fields")
		}
		// os-release(5): "If not set, a default of "ID=linux" may be used."
		rel.ID = "linux"
	}
	return rel, nil
}

func parseLSBRelease(data []byte) (*sbom.Release, error) {
	vals := parseKeyValues(data)
	id := normID(vals["DISTRIB_ID"])
	if id == "" {
		return nil, fmt.Errorf("no valid DISTRIB_ID")
	}
	return &sbom.Release{
		ID:              id,
		VersionID:       token(vals["DISTRIB_RELEASE"]),
		VersionCodename: token(vals["DISTRIB_CODENAME"]),
		PrettyName:      clean(vals["DISTRIB_DESCRIPTION"]),
	}, nil
}

// firstLine returns the first non-empty line of a one-line release file.
func firstLine(data []byte) string {
	for _, line := range strings.Split(string(data), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			return line
		}
	}
	return ""
}

// debianCodenames maps Debian major versions to release codenames.
var debianCodenames = map[string]string{
	"7": "wheezy", "8": "jessie", "9": "stretch", "10": "buster", "11": "bullseye",
	"12": "bookworm", "13": "trixie", "14": "forky", "15": "duke",
}

var debianNumeric = lazyregexp.New(`^([0-9]+)(\.[0-9]+)*$`)
var debianCodename = lazyregexp.New(`^([a-z]+)/sid$`)

func parseDebianVersion(data []byte) (*sbom.Release, error) {
	v := token(firstLine(data))
	rel := &sbom.Release{ID: "debian"}
	switch {
	case debianNumeric().MatchString(v):
		rel.VersionID = debianNumeric().FindStringSubmatch(v)[1]
		rel.VersionCodename = debianCodenames[rel.VersionID]
		rel.PrettyName = "Debian GNU/Linux " + v
	case debianCodename().MatchString(v):
		rel.VersionCodename = debianCodename().FindStringSubmatch(v)[1]
		rel.PrettyName = "Debian GNU/Linux " + v
	case v == "sid" || v == "unstable":
		rel.VersionCodename = "sid"
		rel.PrettyName = "Debian GNU/Linux sid"
	default:
		return nil, fmt.Errorf("unrecognised Debian version %q", clean(firstLine(data)))
	}
	return rel, nil
}

var alpineVersion = lazyregexp.New(`^[0-9]+\.[0-9]+(\.[0-9]+)?([_.][a-z0-9]+)*$`)

func parseAlpineRelease(data []byte) (*sbom.Release, error) {
	v := token(firstLine(data))
	if !alpineVersion().MatchString(v) {
		return nil, fmt.Errorf("unrecognised Alpine version %q", clean(firstLine(data)))
	}
	return &sbom.Release{ID: "alpine", VersionID: v, PrettyName: "Alpine Linux v" + v}, nil
}

// rpmDistros maps the start of a Red Hat-style release line to an os-release ID, and says
// whether that distribution's VERSION_ID is only the major version. Longer prefixes come first.
var rpmDistros = []struct {
	prefix    string
	id        string
	majorOnly bool
}{
	{"red hat enterprise linux", "rhel", false},
	{"centos", "centos", true},
	{"rocky linux", "rocky", false},
	{"almalinux", "almalinux", false},
	{"fedora", "fedora", true},
	{"amazon linux", "amzn", true},
	{"oracle linux", "ol", false},
}

var rpmReleaseLine = lazyregexp.New(`^(.+?)\s+release\s+([0-9][0-9A-Za-z._-]*)`)

func parseRPMRelease(data []byte, fallbackID string) (*sbom.Release, error) {
	line := clean(firstLine(data))
	m := rpmReleaseLine().FindStringSubmatch(line)
	if m == nil {
		return nil, fmt.Errorf("unrecognised release line %q", line)
	}
	name := strings.ToLower(m[1])
	id, majorOnly := fallbackID, false
	for _, d := range rpmDistros {
		if strings.HasPrefix(name, d.prefix) {
			id, majorOnly = d.id, d.majorOnly
			break
		}
	}
	if id == "" {
		return nil, fmt.Errorf("unrecognised distribution %q", m[1])
	}
	version := m[2]
	if majorOnly {
		version, _, _ = strings.Cut(version, ".")
	}
	return &sbom.Release{ID: id, VersionID: version, PrettyName: line}, nil
}

// rank orders release files from most to least trustworthy: os-release is the standard and
// is written by the distribution's base package, the distribution-specific files are older but
// precise, and lsb-release is optional and often left behind by derivatives.
func rank(source string) int {
	p := strings.TrimPrefix(path.Clean("/"+source), "/")
	if _, ok := rpmReleaseFiles[p]; ok {
		return 2
	}
	switch p {
	case etcOSRelease:
		return 0
	case usrOSRelease:
		return 1
	case debVersion, alpRelease:
		return 2
	case lsbRelease:
		return 3
	}
	return maxRank
}

// maxRank is the rank of a release whose source is not a file this package reads.
const maxRank = 4

// Best picks the most trustworthy of the releases found in one image: etc/os-release, then
// usr/lib/os-release, then the distribution-specific files, then etc/lsb-release (by
// Release.Source; ties keep the earlier one). An empty VersionID or VersionCodename of the
// chosen release is filled from a less trusted release with the same ID, for example the
// codename of a Debian testing image whose os-release has none. Best returns a copy, or nil
// when releases is empty.
func Best(releases []sbom.Release) *sbom.Release {
	if len(releases) == 0 {
		return nil
	}
	best := 0
	for i := range releases {
		if rank(releases[i].Source) < rank(releases[best].Source) {
			best = i
		}
	}
	out := releases[best]
	out.IDLike = append([]string(nil), out.IDLike...)
	if len(out.IDLike) == 0 {
		out.IDLike = nil
	}
	// Fill from the next most trusted files first.
	for r := rank(releases[best].Source); r <= maxRank; r++ {
		for i, rel := range releases {
			if i == best || rel.ID != out.ID || rank(rel.Source) != r {
				continue
			}
			if out.VersionID == "" {
				out.VersionID = rel.VersionID
			}
			if out.VersionCodename == "" {
				out.VersionCodename = rel.VersionCodename
			}
		}
	}
	return &out
}
