package sbomfile

import (
	"cmp"
	"strings"

	"github.com/package-url/packageurl-go"

	"github.com/moatsec/moat/internal/lazyregexp"
	"github.com/moatsec/moat/internal/sbom"
)

// candidate is one package as a document lists it, before it is checked.
type candidate struct {
	// label names the entry in warnings: its name, else its document identifier.
	label string
	// name, version and group are spelled as the document spells them.
	name, version, group string
	purl                 string
	// moatType is the type moat recorded for the package (moat:package:type). When it is
	// set the document is moat's, and its name and version are moat's own spelling.
	moatType sbom.Type
}

// resolve identifies a package from its package URL, counting what cannot be identified. The
// name is moat's spelling: the document's own when it is the same name as the URL's (purl
// normalisation lowercases Go and npm names and rewrites PyPI names), else built from the URL.
func (b *builder) resolve(c candidate) (sbom.Package, bool) {
	if c.purl == "" {
		if knownType(c.moatType) {
			return sbom.Package{Name: c.name, Version: c.version, Type: c.moatType}, true
		}
		b.noPURL.add(cmp.Or(c.label, c.name))
		return sbom.Package{}, false
	}
	if len(c.purl) > maxPURL {
		b.badPURL.add(c.purl)
		return sbom.Package{}, false
	}
	u, err := parsePURL(c.purl)
	if err != nil {
		b.badPURL.add(c.purl)
		return sbom.Package{}, false
	}
	typ := sbom.Type(u.Type)
	if knownType(c.moatType) {
		typ = c.moatType
	}
	if !knownType(typ) {
		b.types[u.Type]++
		return sbom.Package{}, false
	}
	q := u.Qualifiers.Map()
	p := sbom.Package{Type: typ, PURL: c.purl, Arch: q["arch"]}
	if c.moatType != "" {
		p.Name = cmp.Or(c.name, purlName(typ, u))
		p.Version = cmp.Or(c.version, purlVersion(typ, u, q))
	} else {
		p.Name = spelling(typ, purlName(typ, u), c.name, c.group)
		p.Version = cmp.Or(purlVersion(typ, u, q), c.version)
		if typ == sbom.TypeGolang && p.Name == "stdlib" {
			p.Version = toolchainVersion(p.Version)
		}
	}
	if typ.IsOS() {
		if up := q["upstream"]; up != "" {
			p.Source = upstreamSource(typ, up, p.Version)
		}
		if r, ok := distroFromQualifier(q["distro"], u.Namespace); ok {
			b.seeDistro(r)
		}
	}
	return p, true
}

// parsePURL parses a package URL.
func parsePURL(s string) (u packageurl.PackageURL, err error) {
	err = safely(func() (err error) {
		u, err = packageurl.FromString(s)
		return err
	})
	return u, err
}

// purlName is the package name in moat's spelling built from a package URL.
func purlName(t sbom.Type, u packageurl.PackageURL) string {
	ns, name := u.Namespace, u.Name
	if ns == "" {
		return name
	}
	switch t {
	case sbom.TypeNPM:
		if !strings.HasPrefix(ns, "@") {
			ns = "@" + ns
		}
		return ns + "/" + name
	case sbom.TypeMaven:
		return ns + ":" + name
	case sbom.TypeGolang, sbom.TypeComposer:
		return ns + "/" + name
	}
	// OS package namespaces name the distribution; other types have no namespace.
	return name
}

// purlVersion is the version in moat's spelling: Debian and RPM versions carry their epoch
// ("1:2.36-9"), which package URLs may hold in a qualifier.
func purlVersion(t sbom.Type, u packageurl.PackageURL, q map[string]string) string {
	v := u.Version
	if (t == sbom.TypeDeb || t == sbom.TypeRPM) && v != "" && !strings.Contains(v, ":") {
		if e := q["epoch"]; e != "" && e != "0" && allDigits(e) {
			v = e + ":" + v
		}
	}
	return v
}

// toolchainVersion is a Go toolchain version as moat spells it: "1.22.3", not "go1.22.3"
// (Syft) or "v1.22.3" (Trivy).
func toolchainVersion(v string) string {
	for _, prefix := range []string{"go", "v"} {
		if rest, ok := strings.CutPrefix(v, prefix); ok && rest != "" && isDigit(rest[0]) {
			return rest
		}
	}
	return v
}

// spelling returns the document's own spelling of a name when it is the name the package URL
// gives, else the package URL's.
func spelling(t sbom.Type, fromPURL, name, group string) string {
	sep := "/"
	if t == sbom.TypeMaven {
		sep = ":"
	}
	if name != "" && sameName(t, name, fromPURL) {
		return name
	}
	if group != "" && name != "" && sameName(t, group+sep+name, fromPURL) {
		return group + sep + name
	}
	return fromPURL
}

var pypiSeparators = lazyregexp.New(`[-_.]+`)

func sameName(t sbom.Type, a, b string) bool {
	if t == sbom.TypePyPI {
		return strings.EqualFold(pypiSeparators().ReplaceAllString(a, "-"), pypiSeparators().ReplaceAllString(b, "-"))
	}
	return strings.EqualFold(a, b)
}

// upstreamSource reads the "upstream" qualifier Syft (and moat) put on OS package URLs: the
// source package name for deb and apk, "name@version" when the versions differ, and the
// source RPM file name for rpm ("openssl-3.0.7-25.el9_3.src.rpm").
func upstreamSource(t sbom.Type, up, version string) *sbom.Source {
	if t == sbom.TypeRPM && strings.HasSuffix(up, ".rpm") {
		name, ver, ok := sbom.ParseSourceRPM(up)
		if !ok {
			return nil
		}
		// The source RPM's file name has no epoch; it is the binary package's.
		if e, _, ok := strings.Cut(version, ":"); ok && allDigits(e) {
			ver = e + ":" + ver
		}
		return &sbom.Source{Name: name, Version: ver}
	}
	name, ver, _ := strings.Cut(up, "@")
	return &sbom.Source{Name: name, Version: cmp.Or(ver, version)}
}

// distroFromQualifier reads the distro qualifier of an OS package URL: "debian-12" (moat,
// Syft, Trivy for deb and rpm), "3.20.0" (Trivy for apk, with the distribution in the
// namespace), or a bare ID or codename.
func distroFromQualifier(v, namespace string) (sbom.Release, bool) {
	if v == "" {
		return sbom.Release{}, false
	}
	if isDigit(v[0]) {
		if namespace == "" {
			return sbom.Release{}, false
		}
		return sbom.Release{ID: distroID(namespace), VersionID: v}, true
	}
	for i := len(v) - 2; i > 0; i-- {
		if v[i] == '-' && isDigit(v[i+1]) {
			return sbom.Release{ID: distroID(v[:i]), VersionID: v[i+1:]}, true
		}
	}
	id := distroID(v)
	if namespace != "" {
		if nsID := distroID(namespace); nsID != id {
			// Syft can be told to write the codename alone ("bookworm").
			codename := strings.TrimPrefix(v, namespace+"-")
			return sbom.Release{ID: nsID, VersionCodename: codename}, true
		}
	}
	return sbom.Release{ID: id}, true
}

// distroIDs maps the distribution names Trivy uses (in package URL namespaces, distro
// qualifiers and operating-system components) to the os-release IDs moat uses.
var distroIDs = map[string]string{
	"redhat":                       "rhel",
	"amazon":                       "amzn",
	"oracle":                       "ol",
	"alma":                         "almalinux",
	"cbl-mariner":                  "mariner",
	"opensuse.leap":                "opensuse-leap",
	"opensuse.tumbleweed":          "opensuse-tumbleweed",
	"suse linux enterprise server": "sles",
	"suse linux enterprise micro":  "sle-micro",
}

// distroID is a distribution name as an os-release ID.
func distroID(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	if id, ok := distroIDs[s]; ok {
		return id
	}
	return s
}

// firstField is s up to its first space: Trivy's Amazon Linux version is "2 (Karoo)".
func firstField(s string) string {
	f, _, _ := strings.Cut(strings.TrimSpace(s), " ")
	return f
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func allDigits(s string) bool {
	if s == "" || len(s) > 9 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}
