package report

import (
	"cmp"
	"fmt"
	"io"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	cdx "github.com/CycloneDX/cyclonedx-go"
	"github.com/package-url/packageurl-go"

	"github.com/moatsec/moat/internal/sbom"
)

// maxCycloneDXVersion is the longest component version CycloneDX 1.6 allows, in characters.
const maxCycloneDXVersion = 1024

// newCDXBOM starts a CycloneDX document about an image: serial number, timestamp, the tool,
// and the image as the metadata component (registered in refs).
func newCDXBOM(uuid string, tool sbom.Tool, created time.Time, img sbom.ImageInfo, refs *bomRefs) *cdx.BOM {
	bom := cdx.NewBOM()
	bom.SerialNumber = "urn:uuid:" + uuid
	image := cdxImage(img, refs)
	bom.Metadata = &cdx.Metadata{
		Timestamp: created.UTC().Format(time.RFC3339),
		Tools: &cdx.ToolsChoice{Components: &[]cdx.Component{{
			Type:    cdx.ComponentTypeApplication,
			Name:    cmp.Or(tool.Name, "moat"),
			Version: tool.Version,
		}}},
		Component: &image,
	}
	return bom
}

// writeCycloneDX writes the inventory as a CycloneDX 1.6 JSON BOM: the image is the BOM's
// subject (metadata.component), the distribution and every package are components, and the
// image depends on all of them.
func writeCycloneDX(w io.Writer, inv *sbom.Inventory) error {
	refs := bomRefs{}
	bom := newCDXBOM(documentUUID(FormatCycloneDXJSON, inv), inv.Tool, inv.Created, inv.Image, &refs)
	var docProps properties
	for _, wn := range inv.Warnings {
		docProps.add(sbom.PropWarning, warningText(wn))
	}
	bom.Metadata.Properties = docProps.list()

	var components []cdx.Component
	if inv.Distro != nil {
		components = append(components, cdxDistro(inv.Distro, &refs))
	}
	for _, p := range sortedPackages(inv.Packages) {
		components = append(components, cdxPackage(p, &refs))
	}
	if len(components) > 0 {
		bom.Components = &components
		dependsOn := make([]string, len(components))
		for i, c := range components {
			dependsOn[i] = c.BOMRef
		}
		bom.Dependencies = &[]cdx.Dependency{{Ref: bom.Metadata.Component.BOMRef, Dependencies: &dependsOn}}
	}

	enc := cdx.NewBOMEncoder(w, cdx.BOMFileFormatJSON)
	enc.SetPretty(true)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(bom); err != nil {
		return fmt.Errorf("encoding CycloneDX: %w", err)
	}
	return nil
}

// cdxImage is the component for the image itself.
func cdxImage(img sbom.ImageInfo, refs *bomRefs) cdx.Component {
	purl := imagePURL(img)
	c := cdx.Component{
		BOMRef:     refs.take(cmp.Or(purl, "image:"+cmp.Or(imageVersion(img), img.Name))),
		Type:       cdx.ComponentTypeContainer,
		Name:       cmp.Or(img.Name, "unnamed"),
		Version:    imageVersion(img),
		PackageURL: purl,
	}
	if h, ok := sha256Hex(img.Digest); ok {
		c.Hashes = &[]cdx.Hash{{Algorithm: cdx.HashAlgoSHA256, Value: h}}
	}
	var props properties
	props.add(sbom.PropImagePrefix+"source", img.Source)
	props.add(sbom.PropImagePrefix+"reference", img.Reference)
	props.add(sbom.PropImagePrefix+"id", img.ID)
	props.add(sbom.PropImagePrefix+"platform", img.Platform)
	if img.Created != nil {
		props.add(sbom.PropImagePrefix+"created", img.Created.UTC().Format(time.RFC3339))
	}
	for _, t := range img.RepoTags {
		props.add(sbom.PropImagePrefix+"repoTag", t)
	}
	for _, d := range img.RepoDigests {
		props.add(sbom.PropImagePrefix+"repoDigest", d)
	}
	for _, l := range img.Layers {
		prefix := sbom.PropImagePrefix + "layer:" + strconv.Itoa(l.Index) + ":"
		props.add(prefix+"digest", l.Digest)
		props.add(prefix+"diffID", l.DiffID)
		props.add(prefix+"createdBy", l.CreatedBy)
	}
	c.Properties = props.list()
	return c
}

// cdxDistro is the operating-system component for the image's distribution.
func cdxDistro(d *sbom.Release, refs *bomRefs) cdx.Component {
	c := cdx.Component{
		BOMRef:      refs.take("os:" + d.ID + "@" + d.VersionID),
		Type:        cdx.ComponentTypeOS,
		Name:        cmp.Or(d.ID, "unknown"),
		Version:     cutRunes(d.VersionID, maxCycloneDXVersion),
		Description: d.PrettyName,
	}
	var props properties
	for _, l := range d.IDLike {
		props.add(sbom.PropDistroPrefix+"idLike", l)
	}
	props.add(sbom.PropDistroPrefix+"versionCodename", d.VersionCodename)
	props.add(sbom.PropDistroPrefix+"source", d.Source)
	c.Properties = props.list()
	return c
}

// cdxPackage is the library component for one package.
func cdxPackage(p sbom.Package, refs *bomRefs) cdx.Component {
	c := cdx.Component{
		BOMRef:     refs.take(cmp.Or(p.PURL, string(p.Type)+":"+p.Name+"@"+p.Version)),
		Type:       cdx.ComponentTypeLibrary,
		Name:       p.Name,
		Version:    cutRunes(p.Version, maxCycloneDXVersion),
		PackageURL: p.PURL,
		Licenses:   cdxLicenses(p.Licenses),
	}
	var props properties
	props.add(sbom.PropPackageType, string(p.Type))
	props.add(sbom.PropPackageArch, p.Arch)
	if p.Source != nil {
		props.add(sbom.PropSourceName, p.Source.Name)
		props.add(sbom.PropSourceVersion, p.Source.Version)
	}
	props.add(sbom.PropFoundBy, p.FoundBy)
	props.add(sbom.PropOwnedBy, p.OwnedBy)
	if p.Layer != nil {
		props.add(sbom.PropLayerIndex, strconv.Itoa(p.Layer.Index))
		props.add(sbom.PropLayerDigest, p.Layer.Digest)
		props.add(sbom.PropLayerDiffID, p.Layer.DiffID)
	}
	var occurrences []cdx.EvidenceOccurrence
	for i, l := range p.Locations {
		prefix := sbom.PropLocationPrefix + strconv.Itoa(i) + ":"
		props.add(prefix+"path", l.Path)
		props.add(prefix+"layerDiffID", l.LayerDigest)
		if l.Path != "" {
			o := cdx.EvidenceOccurrence{Location: l.Path}
			if l.LayerDigest != "" {
				o.AdditionalContext = "layer " + l.LayerDigest
			}
			occurrences = append(occurrences, o)
		}
	}
	keys := make([]string, 0, len(p.Metadata))
	for k := range p.Metadata {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		props.add(sbom.PropMetadataPrefix+k, p.Metadata[k])
	}
	c.Properties = props.list()
	if len(occurrences) > 0 {
		c.Evidence = &cdx.Evidence{Occurrences: &occurrences}
	}
	return c
}

// cdxLicenses maps a package's license strings to CycloneDX: a single compound SPDX expression
// becomes an expression; otherwise each string becomes a license with an id when it is on the
// SPDX license list and with a name when it is not. (CycloneDX does not allow expressions
// beside licenses, and joining several strings into one expression would claim a relation
// between them that the package did not state.)
func cdxLicenses(ls []string) *cdx.Licenses {
	ls = cleanLicenses(ls)
	if len(ls) == 0 {
		return nil
	}
	if len(ls) == 1 {
		if e, ok := parseLicenseExpression(ls[0]); ok && (e.compound || len(e.refs) > 0) {
			return &cdx.Licenses{{Expression: e.text}}
		}
	}
	out := make(cdx.Licenses, 0, len(ls))
	ids := map[string]bool{}
	for _, l := range ls {
		if id, ok := spdxLicenseID(l); ok {
			if !ids[id] {
				ids[id] = true
				out = append(out, cdx.LicenseChoice{License: &cdx.License{ID: id}})
			}
		} else {
			out = append(out, cdx.LicenseChoice{License: &cdx.License{Name: l}})
		}
	}
	return &out
}

// imagePURL is the package URL of a registry image (pkg:oci/NAME@DIGEST?repository_url=...),
// or "" when the image has no registry reference or no digest.
func imagePURL(img sbom.ImageInfo) string {
	if img.Reference == "" || img.Digest == "" {
		return ""
	}
	repo, _, _ := strings.Cut(img.Reference, "@")
	slash := strings.LastIndexByte(repo, '/')
	if colon := strings.LastIndexByte(repo, ':'); colon > slash {
		repo = repo[:colon]
	}
	name := strings.ToLower(path.Base(repo))
	if name == "" || name == "." || name == "/" {
		return ""
	}
	var quals packageurl.Qualifiers
	if _, arch, ok := strings.Cut(img.Platform, "/"); ok {
		arch, _, _ = strings.Cut(arch, "/")
		if arch != "" {
			quals = append(quals, packageurl.Qualifier{Key: "arch", Value: arch})
		}
	}
	quals = append(quals, packageurl.Qualifier{Key: "repository_url", Value: repo})
	if tag := imageTag(img.Name); tag != "" {
		quals = append(quals, packageurl.Qualifier{Key: "tag", Value: tag})
	}
	return packageurl.NewPackageURL("oci", "", name, img.Digest, quals, "").ToString()
}

// imageTag is the tag in a user's image reference ("alpine:3.20" -> "3.20"), or "".
func imageTag(ref string) string {
	if strings.Contains(ref, "@") {
		return ""
	}
	last := ref[strings.LastIndexByte(ref, '/')+1:]
	_, tag, _ := strings.Cut(last, ":")
	return tag
}

// warningText is a warning on one line: "path: message (layer diffID)".
func warningText(wn sbom.Warning) string {
	s := wn.Message
	if wn.Path != "" {
		s = wn.Path + ": " + s
	}
	if wn.Layer != "" {
		s += " (layer " + wn.Layer + ")"
	}
	return s
}

// properties collects CycloneDX properties, skipping empty values.
type properties []cdx.Property

func (ps *properties) add(name, value string) {
	if value != "" {
		*ps = append(*ps, cdx.Property{Name: name, Value: value})
	}
}

func (ps properties) list() *[]cdx.Property {
	if len(ps) == 0 {
		return nil
	}
	l := []cdx.Property(ps)
	return &l
}

// bomRefs hands out bom-refs that are unique within one BOM.
type bomRefs map[string]bool

// take returns base, or when base is taken, base with a package-id qualifier counting up from
// 2 (two copies of the same npm package in different directories share a package URL).
func (r *bomRefs) take(base string) string {
	if *r == nil {
		*r = bomRefs{}
	}
	ref := base
	for n := 2; (*r)[ref]; n++ {
		head, fragment, hasFragment := strings.Cut(base, "#")
		sep := "?"
		if strings.Contains(head, "?") {
			sep = "&"
		}
		ref = head + sep + "package-id=" + strconv.Itoa(n)
		if hasFragment {
			ref += "#" + fragment
		}
	}
	(*r)[ref] = true
	return ref
}

// cutRunes cuts s to at most n characters.
func cutRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n])
}
