package sbomfile

import (
	"bytes"
	"cmp"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	cdx "github.com/CycloneDX/cyclonedx-go"

	"github.com/moatsec/moat/internal/sbom"
)

// Properties other tools write. Trivy's are "aquasecurity:trivy:NAME" in CycloneDX and
// "NAME: value" annotations (older versions: attribution texts) in SPDX.
const (
	trivyPrefix        = "aquasecurity:trivy:"
	trivyClass         = "Class"
	trivyImageID       = "ImageID"
	trivyRepoDigest    = "RepoDigest"
	trivyRepoTag       = "RepoTag"
	trivyDiffID        = "DiffID"
	trivySrcName       = "SrcName"
	trivySrcVersion    = "SrcVersion"
	trivySrcRelease    = "SrcRelease"
	trivySrcEpoch      = "SrcEpoch"
	trivyFilePath      = "FilePath"
	trivyLayerDiffID   = "LayerDiffID"
	syftFoundBy        = "syft:package:foundBy"
	syftDistroCodename = "syft:distro:versionCodename"
	syftLocationPrefix = "syft:location:" // syft:location:N:path, syft:location:N:layerID
)

func decodeCycloneDX(data []byte, f Format, b *builder) error {
	ff := cdx.BOMFileFormatJSON
	if f == FormatCycloneDXXML {
		ff = cdx.BOMFileFormatXML
	}
	var bom cdx.BOM
	if err := safely(func() error { return cdx.NewBOMDecoder(bytes.NewReader(data), ff).Decode(&bom) }); err != nil {
		return fmt.Errorf("decoding: %w", err)
	}
	if f == FormatCycloneDXXML && bom.SpecVersion == 0 {
		return fmt.Errorf("unknown CycloneDX version (namespace %s)", quote(bom.XMLNS, 80))
	}
	if m := bom.Metadata; m != nil {
		b.inv.Created = parseTime(m.Timestamp)
		b.inv.Tool = cdxTool(m.Tools)
		for _, w := range propsOf(m.Properties).all(sbom.PropWarning) {
			if w = prose(w, maxProse); w != "" {
				b.inv.Warnings = append(b.inv.Warnings, sbom.Warning{Message: w})
			}
		}
		if m.Component != nil {
			b.cdxImage(m.Component)
		}
	}
	if bom.Components != nil {
		if err := b.cdxComponents(*bom.Components, 1); err != nil {
			return err
		}
	}
	// The subject's own parts (an application's bundled libraries) are software in it too.
	if m := bom.Metadata; m != nil && m.Component != nil && m.Component.Components != nil {
		return b.cdxComponents(*m.Component.Components, 2)
	}
	return nil
}

// cdxComponents reads components and, depth first, the components nested in them.
func (b *builder) cdxComponents(cs []cdx.Component, depth int) error {
	if depth > maxNesting {
		return fmt.Errorf("components are nested more than %d levels deep", maxNesting)
	}
	for i := range cs {
		c := &cs[i]
		b.cdxComponent(c)
		if c.Components != nil && len(*c.Components) > 0 {
			if err := b.cdxComponents(*c.Components, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

func (b *builder) cdxComponent(c *cdx.Component) {
	ps := propsOf(c.Properties)
	switch c.Type {
	case cdx.ComponentTypeOS:
		b.setOS(sbom.Release{
			ID:              distroID(c.Name),
			VersionID:       firstField(c.Version),
			PrettyName:      c.Description,
			IDLike:          ps.all(sbom.PropDistroPrefix + "idLike"),
			VersionCodename: cmp.Or(ps.get(sbom.PropDistroPrefix+"versionCodename"), ps.get(syftDistroCodename)),
			Source:          ps.get(sbom.PropDistroPrefix + "source"),
		})
		return
	case cdx.ComponentTypeContainer, cdx.ComponentTypeFile, cdx.ComponentTypeData,
		cdx.ComponentTypeMachineLearningModel, cdx.ComponentTypeCryptographicAsset:
		// Not software packages.
		return
	}
	if c.PackageURL == "" && ps.has(trivyPrefix+trivyClass) {
		// Trivy's grouping of an application's packages (a lock file, a binary).
		return
	}
	cand := candidate{
		label:    cmp.Or(c.Name, c.BOMRef),
		name:     c.Name,
		version:  c.Version,
		group:    c.Group,
		purl:     c.PackageURL,
		moatType: sbom.Type(ps.get(sbom.PropPackageType)),
	}
	p, ok := b.resolve(cand)
	if !ok {
		return
	}
	p.Arch = cmp.Or(ps.get(sbom.PropPackageArch), p.Arch)
	if name := ps.get(sbom.PropSourceName); name != "" {
		p.Source = &sbom.Source{Name: name, Version: ps.get(sbom.PropSourceVersion)}
	} else if name := ps.get(trivyPrefix + trivySrcName); name != "" {
		p.Source = &sbom.Source{Name: name, Version: cmp.Or(trivySourceVersion(ps.get), p.Version)}
	}
	p.FoundBy = cmp.Or(ps.get(sbom.PropFoundBy), ps.get(syftFoundBy))
	p.OwnedBy = ps.get(sbom.PropOwnedBy)
	p.Metadata = ps.withPrefix(sbom.PropMetadataPrefix)
	p.Licenses = cdxLicenses(c.Licenses)

	p.Locations = ps.locations(sbom.PropLocationPrefix, "layerDiffID")
	if len(p.Locations) == 0 {
		p.Locations = ps.locations(syftLocationPrefix, "layerID")
	}
	layerDiffID := ps.get(trivyPrefix + trivyLayerDiffID)
	if len(p.Locations) == 0 {
		if fp := ps.get(trivyPrefix + trivyFilePath); fp != "" {
			p.Locations = []sbom.Location{{Path: fp, LayerDigest: layerDiffID}}
		}
	}
	if len(p.Locations) == 0 && c.Evidence != nil && c.Evidence.Occurrences != nil {
		for _, o := range *c.Evidence.Occurrences {
			layer, _ := strings.CutPrefix(o.AdditionalContext, "layer ")
			p.Locations = append(p.Locations, sbom.Location{Path: o.Location, LayerDigest: token(layer, maxToken)})
		}
	}

	if idx := ps.get(sbom.PropLayerIndex); idx != "" {
		if n, err := strconv.Atoi(idx); err == nil {
			p.Layer = &sbom.LayerRef{Index: n, Digest: ps.get(sbom.PropLayerDigest), DiffID: ps.get(sbom.PropLayerDiffID)}
		}
	} else if layerDiffID != "" {
		p.Layer = b.layerByDiffID(layerDiffID)
	}
	b.add(p, cand.label)
}

// trivySourceVersion joins Trivy's source package properties into one version,
// "[epoch:]version[-release]".
func trivySourceVersion(get func(string) string) string {
	v := get(trivyPrefix + trivySrcVersion)
	if v == "" {
		return ""
	}
	if r := get(trivyPrefix + trivySrcRelease); r != "" {
		v += "-" + r
	}
	if e := get(trivyPrefix + trivySrcEpoch); e != "" && e != "0" {
		v = e + ":" + v
	}
	return v
}

// cdxImage reads the BOM's subject: the image, with the properties moat and Trivy add.
func (b *builder) cdxImage(c *cdx.Component) {
	ps := propsOf(c.Properties)
	img := &b.inv.Image
	img.Name = text(c.Name, maxText)
	img.Reference = token(ps.get(sbom.PropImagePrefix+"reference"), maxToken)
	img.ID = token(cmp.Or(ps.get(sbom.PropImagePrefix+"id"), ps.get(trivyPrefix+trivyImageID)), maxToken)
	img.Platform = token(ps.get(sbom.PropImagePrefix+"platform"), maxShort)
	if t := parseTime(ps.get(sbom.PropImagePrefix + "created")); !t.IsZero() {
		img.Created = &t
	}
	img.RepoTags = tokens(append(ps.all(sbom.PropImagePrefix+"repoTag"), ps.all(trivyPrefix+trivyRepoTag)...))
	img.RepoDigests = tokens(append(ps.all(sbom.PropImagePrefix+"repoDigest"), ps.all(trivyPrefix+trivyRepoDigest)...))
	var sha string
	if c.Hashes != nil {
		for _, h := range *c.Hashes {
			if h.Algorithm == cdx.HashAlgoSHA256 {
				sha = h.Value
				break
			}
		}
	}
	img.Digest = imageDigest(sha, c.PackageURL, c.Version, img.ID, img.RepoDigests)

	layers := ps.indexed(sbom.PropImagePrefix + "layer:")
	if len(layers) == 0 {
		for i, d := range ps.all(trivyPrefix + trivyDiffID) {
			layers = append(layers, indexedProps{n: i, fields: map[string]string{"diffID": d}})
		}
	}
	refs := make([]sbom.LayerRef, 0, len(layers))
	for _, l := range layers {
		refs = append(refs, sbom.LayerRef{Index: l.n, Digest: l.fields["digest"], DiffID: l.fields["diffID"], CreatedBy: l.fields["createdBy"]})
	}
	b.setLayers(refs)
}

// imageDigest is the image's manifest digest: its SHA-256 hash, else the version of its oci
// package URL, else its version when that is a digest other than the config digest (moat
// writes the config digest as the version of images without a manifest), else the digest of
// its first repository digest.
func imageDigest(sha256Hex, purl, version, id string, repoDigests []string) string {
	if h := strings.ToLower(sha256Hex); len(h) == 64 && isHex(h) {
		return "sha256:" + h
	}
	if strings.HasPrefix(purl, "pkg:oci/") {
		if u, err := parsePURL(purl); err == nil && isDigest(u.Version) {
			return u.Version
		}
	}
	if isDigest(version) && version != id {
		return version
	}
	for _, rd := range repoDigests {
		if _, d, ok := strings.Cut(rd, "@"); ok && isDigest(d) {
			return d
		}
	}
	return ""
}

// isDigest reports whether s is a sha256 or sha512 OCI digest.
func isDigest(s string) bool {
	alg, h, ok := strings.Cut(s, ":")
	switch {
	case !ok:
		return false
	case alg == "sha256":
		return len(h) == 64 && isHex(h)
	case alg == "sha512":
		return len(h) == 128 && isHex(h)
	}
	return false
}

func isHex(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil && strings.ToLower(s) == s
}

func cdxTool(tc *cdx.ToolsChoice) sbom.Tool {
	if tc == nil {
		return sbom.Tool{}
	}
	if tc.Components != nil {
		for _, c := range *tc.Components {
			return sbom.Tool{Name: text(c.Name, maxShort), Version: token(c.Version, maxShort)}
		}
	}
	if tc.Tools != nil {
		for _, t := range *tc.Tools {
			return sbom.Tool{Name: text(t.Name, maxShort), Version: token(t.Version, maxShort)}
		}
	}
	return sbom.Tool{}
}

// cdxLicenses lists a component's licenses: expressions as they are, licenses by ID or name.
func cdxLicenses(ls *cdx.Licenses) []string {
	if ls == nil {
		return nil
	}
	var out []string
	for _, l := range *ls {
		switch {
		case l.Expression != "":
			out = append(out, l.Expression)
		case l.License != nil:
			out = append(out, cmp.Or(l.License.ID, l.License.Name))
		}
	}
	return out
}

func parseTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}
	}
	return t.UTC()
}

// tokens keeps the valid, distinct tokens of ss.
func tokens(ss []string) []string {
	var out []string
	for _, s := range ss {
		if s = token(s, maxToken); s != "" && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// props are the properties of one component; names may repeat.
type props map[string][]string

func propsOf(ps *[]cdx.Property) props {
	if ps == nil {
		return nil
	}
	out := props{}
	for _, p := range *ps {
		out[p.Name] = append(out[p.Name], p.Value)
	}
	return out
}

func (ps props) get(name string) string {
	if v := ps[name]; len(v) > 0 {
		return v[0]
	}
	return ""
}

func (ps props) all(name string) []string { return ps[name] }

func (ps props) has(name string) bool { return len(ps[name]) > 0 }

// withPrefix collects the properties PREFIX+KEY into a map of KEY to value.
func (ps props) withPrefix(prefix string) map[string]string {
	var out map[string]string
	for name, vs := range ps {
		if k, ok := strings.CutPrefix(name, prefix); ok && k != "" && len(vs) > 0 {
			if out == nil {
				out = map[string]string{}
			}
			out[k] = vs[0]
		}
	}
	return out
}

// indexedProps are the fields of one numbered property group (PREFIX+N+":"+FIELD).
type indexedProps struct {
	n      int
	fields map[string]string
}

// indexed collects the numbered property groups PREFIX+N+":"+FIELD, in order of N.
func (ps props) indexed(prefix string) []indexedProps {
	byN := map[int]map[string]string{}
	for name, vs := range ps {
		rest, ok := strings.CutPrefix(name, prefix)
		if !ok || len(vs) == 0 {
			continue
		}
		num, field, ok := strings.Cut(rest, ":")
		n, err := strconv.Atoi(num)
		if !ok || err != nil || n < 0 || n > maxIndex {
			continue
		}
		if byN[n] == nil {
			byN[n] = map[string]string{}
		}
		byN[n][field] = vs[0]
	}
	out := make([]indexedProps, 0, len(byN))
	for n, f := range byN {
		out = append(out, indexedProps{n: n, fields: f})
	}
	slices.SortFunc(out, func(a, b indexedProps) int { return cmp.Compare(a.n, b.n) })
	return out
}

// locations reads numbered location properties: PREFIX+N+":path" and PREFIX+N+":"+layerField.
func (ps props) locations(prefix, layerField string) []sbom.Location {
	var out []sbom.Location
	for _, l := range ps.indexed(prefix) {
		if path := l.fields["path"]; path != "" {
			out = append(out, sbom.Location{Path: path, LayerDigest: l.fields[layerField]})
		}
	}
	return out
}
