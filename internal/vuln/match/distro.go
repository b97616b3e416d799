package match

import (
	"fmt"
	"slices"
	"strings"

	"github.com/moatsec/moat/internal/sbom"
)

// distroPlan is how the OS packages of one image are matched.
type distroPlan struct {
	// label names the release in Stats and errors ("Debian:12"); bucket is the OSV export.
	label, bucket string
	pkgType       sbom.Type
	// unsupported says why the distribution cannot be matched at all.
	unsupported string
	// ecosystems are those of the release that the database has advisories for; pro are
	// Ubuntu Pro's.
	ecosystems, pro []string
	// byBinary: RPM distributions record binary packages.
	byBinary bool
}

// distroSources are the OSV exports planDistro maps releases to (TestPlanDistro checks that
// every bucket it returns is listed).
var distroSources = []string{
	"AlmaLinux", "Alpine", "Chainguard", "Debian", "Red Hat", "Rocky Linux", "SUSE", "Ubuntu", "Wolfi", "openSUSE",
}

// Sources returns the OSV exports (the bucket's per-ecosystem archives, "Debian", "Go", ...)
// that the matcher reads, sorted: what `moat db update` fetches into an empty database.
func Sources() []string {
	out := slices.Clone(distroSources)
	for _, eco := range languageEcosystems {
		out = append(out, eco)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// debianCodenames maps Debian codenames to release numbers, for testing images whose
// os-release has no VERSION_ID.
var debianCodenames = map[string]string{
	"buster": "10", "bullseye": "11", "bookworm": "12", "trixie": "13", "forky": "14",
}

// planDistro maps the image's release to OSV ecosystems (see the package documentation).
func planDistro(rel *sbom.Release, have map[string]int) *distroPlan {
	if rel == nil || rel.ID == "" {
		return &distroPlan{label: "unknown distribution",
			unsupported: "the image's distribution was not identified (no os-release), so its OS packages cannot be matched against the distribution's advisories"}
	}
	d := &distroPlan{label: rel.ID + " " + rel.VersionID}
	unsupported := func(why string) *distroPlan {
		like := ""
		if len(rel.IDLike) > 0 {
			like = fmt.Sprintf(" (ID_LIKE %s)", strings.Join(rel.IDLike, " "))
		}
		d.label = strings.TrimSpace(d.label)
		d.unsupported = fmt.Sprintf("distribution %q%s %s", d.label, like, why)
		return d
	}
	with := func(ecos ...string) []string {
		var out []string
		for _, e := range ecos {
			if have[e] > 0 {
				out = append(out, e)
			}
		}
		return out
	}
	major, minor := splitVersion(rel.VersionID)
	switch rel.ID {
	case "debian":
		if major == "" {
			major = debianCodenames[rel.VersionCodename]
		}
		if major == "" {
			return unsupported("has no release number moat can map to Debian's advisories (Debian unstable has none)")
		}
		d.label, d.bucket, d.pkgType = "Debian:"+major, "Debian", sbom.TypeDeb
		d.ecosystems = with(d.label)
	case "ubuntu":
		if major == "" || minor == "" {
			return unsupported("has no VERSION_ID")
		}
		v := major + "." + minor
		d.label, d.bucket, d.pkgType = "Ubuntu:"+v, "Ubuntu", sbom.TypeDeb
		d.ecosystems = with("Ubuntu:"+v, "Ubuntu:"+v+":LTS")
		d.pro = with("Ubuntu:Pro:" + v + ":LTS")
	case "alpine":
		if major == "" || minor == "" {
			return unsupported("has no VERSION_ID")
		}
		d.label, d.bucket, d.pkgType = "Alpine:v"+major+"."+minor, "Alpine", sbom.TypeAPK
		d.ecosystems = with(d.label)
	case "wolfi":
		d.label, d.bucket, d.pkgType = "Wolfi", "Wolfi", sbom.TypeAPK
		d.ecosystems = with(d.label)
	case "chainguard":
		d.label, d.bucket, d.pkgType = "Chainguard", "Chainguard", sbom.TypeAPK
		d.ecosystems = with(d.label)
	case "rhel":
		if major == "" {
			return unsupported("has no VERSION_ID")
		}
		d.label, d.bucket, d.pkgType, d.byBinary = "Red Hat:enterprise_linux:"+major, "Red Hat", sbom.TypeRPM, true
		for e, n := range have {
			if n > 0 && redHatRelease(e) == major {
				d.ecosystems = append(d.ecosystems, e)
			}
		}
		slices.Sort(d.ecosystems)
	case "rocky":
		if major == "" {
			return unsupported("has no VERSION_ID")
		}
		d.label, d.bucket, d.pkgType, d.byBinary = "Rocky Linux:"+major, "Rocky Linux", sbom.TypeRPM, true
		d.ecosystems = with(d.label)
	case "almalinux":
		if major == "" {
			return unsupported("has no VERSION_ID")
		}
		d.label, d.bucket, d.pkgType, d.byBinary = "AlmaLinux:"+major, "AlmaLinux", sbom.TypeRPM, true
		d.ecosystems = with(d.label)
	case "sles":
		if major == "" {
			return unsupported("has no VERSION_ID")
		}
		d.label = "SUSE:Linux Enterprise Server " + major
		if minor != "" && minor != "0" {
			d.label += " SP" + minor
		}
		d.bucket, d.pkgType, d.byBinary = "SUSE", sbom.TypeRPM, true
		d.ecosystems = with(d.label)
	case "opensuse-leap":
		if major == "" || minor == "" {
			return unsupported("has no VERSION_ID")
		}
		d.label, d.bucket, d.pkgType, d.byBinary = "openSUSE:Leap "+major+"."+minor, "openSUSE", sbom.TypeRPM, true
		d.ecosystems = with(d.label)
	case "opensuse-tumbleweed":
		d.label, d.bucket, d.pkgType, d.byBinary = "openSUSE:Tumbleweed", "openSUSE", sbom.TypeRPM, true
		d.ecosystems = with(d.label)
	default:
		return unsupported("has no advisory source moat can match its OS packages against")
	}
	return d
}

// splitVersion returns the first two numeric components of a VERSION_ID ("3.20.3" → 3, 20;
// Alpine edge's "3.21.0_alpha20240807" → 3, 21).
func splitVersion(v string) (major, minor string) {
	digits := func(s string) string {
		end := 0
		for end < len(s) && s[end] >= '0' && s[end] <= '9' {
			end++
		}
		return s[:end]
	}
	major = digits(v)
	if major == "" {
		return "", ""
	}
	if rest, ok := strings.CutPrefix(v[len(major):], "."); ok {
		minor = digits(rest)
	}
	return major, minor
}

// redHatRelease returns the major release of a "Red Hat:enterprise_linux:<release>[::repo]"
// ecosystem, and "" for every other Red Hat product.
func redHatRelease(eco string) string {
	parts := strings.Split(eco, ":")
	if len(parts) < 3 || parts[0] != "Red Hat" || parts[1] != "enterprise_linux" {
		return ""
	}
	major, _ := splitVersion(parts[2])
	return major
}

// ecosystemsFor returns the ecosystems to look p up in.
func (d *distroPlan) ecosystemsFor(p *sbom.Package) []string {
	if d.pro == nil {
		return d.ecosystems
	}
	esm := strings.Contains(p.Version, "+esm") || (p.Source != nil && strings.Contains(p.Source.Version, "+esm"))
	if (esm && len(d.pro) > 0) || len(d.ecosystems) == 0 {
		return d.pro
	}
	return d.ecosystems
}

// names returns the names to look p up by.
func (d *distroPlan) names(p *sbom.Package) []string {
	src := ""
	if p.Source != nil {
		src = p.Source.Name
	}
	switch {
	case d.byBinary && src != "" && src != p.Name:
		return []string{p.Name, src}
	case d.byBinary || src == "":
		return []string{p.Name}
	}
	return []string{src}
}

// version returns the version to compare.
func (d *distroPlan) version(p *sbom.Package) string {
	if d.pkgType == sbom.TypeDeb && p.Source != nil && p.Source.Version != "" {
		return p.Source.Version
	}
	return p.Version
}
