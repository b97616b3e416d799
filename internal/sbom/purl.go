package sbom

import (
	"strings"

	"github.com/package-url/packageurl-go"

	"github.com/moatsec/moat/internal/lazyregexp"
)

var pypiNormalize = lazyregexp.New(`[-_.]+`)

// PURL returns the package URL (https://github.com/package-url/purl-spec) of p. OS packages are
// qualified with the distribution in rel, the way Trivy and Syft write them, so that tools that
// read either find what they expect.
func PURL(p Package, rel *Release) string {
	var ns, name, version = "", p.Name, p.Version
	var q packageurl.Qualifiers
	distro := ""
	if rel != nil && rel.ID != "" {
		distro = rel.ID
		if rel.VersionID != "" {
			distro += "-" + rel.VersionID
		}
	}
	switch p.Type {
	case TypeDeb, TypeAPK, TypeRPM:
		ns = osNamespace(p.Type, rel)
		if p.Arch != "" {
			q = append(q, packageurl.Qualifier{Key: "arch", Value: p.Arch})
		}
		if p.Type == TypeRPM {
			if e, v, ok := strings.Cut(version, ":"); ok {
				version = v
				q = append(q, packageurl.Qualifier{Key: "epoch", Value: e})
			}
		}
		if distro != "" {
			q = append(q, packageurl.Qualifier{Key: "distro", Value: distro})
		}
		if p.Source != nil && p.Source.Name != "" && p.Source.Name != p.Name {
			q = append(q, packageurl.Qualifier{Key: "upstream", Value: p.Source.Name})
		}
	case TypeGolang:
		if i := strings.LastIndex(name, "/"); i > 0 {
			ns, name = name[:i], name[i+1:]
		}
	case TypeNPM, TypeComposer:
		if i := strings.LastIndex(name, "/"); i > 0 {
			ns, name = name[:i], name[i+1:]
		}
	case TypePyPI:
		name = strings.ToLower(pypiNormalize().ReplaceAllString(name, "-"))
	case TypeMaven:
		if g, a, ok := strings.Cut(name, ":"); ok {
			ns, name = g, a
		}
	}
	if name == "" {
		return ""
	}
	_ = q.Normalize() // sorts; keys here are fixed and valid
	return packageurl.NewPackageURL(string(p.Type), ns, name, version, q, "").ToString()
}

func osNamespace(t Type, rel *Release) string {
	id := ""
	if rel != nil {
		id = rel.ID
	}
	switch t {
	case TypeDeb:
		if id == "" {
			return "debian"
		}
	case TypeAPK:
		if id == "" {
			return "alpine"
		}
	case TypeRPM:
		switch id {
		case "", "rhel":
			return "redhat"
		case "amzn":
			return "amazon"
		}
	}
	return id
}
