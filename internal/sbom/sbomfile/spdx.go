package sbomfile

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	spdxjson "github.com/spdx/tools-golang/json"
	"github.com/spdx/tools-golang/spdx"
	"github.com/spdx/tools-golang/spdx/v2/common"
	"github.com/spdx/tools-golang/tagvalue"

	"github.com/moatsec/moat/internal/sbom"
)

// Phrases moat writes into SPDX packages (internal/report/spdx.go), and Trivy's.
const (
	spdxFoundPrefix   = "acquired package info from " // moat and Syft: "...from FOUNDBY: PATH, PATH"
	spdxLayerPrefix   = "introduced by layer #"       // moat: "introduced by layer #N (DIFFID)"
	spdxSourcePrefix  = "built from source package "  // moat: "built from source package NAME VERSION"
	spdxOwnerPrefix   = "installed by OS package "    // moat: "installed by OS package TYPE:NAME"
	trivySourcePrefix = "built package from: "        // Trivy: "built package from: NAME VERSION"
	trivyFilePrefix   = "package found in: "          // Trivy: "package found in: PATH"
	syftOwnership     = "ownership-by-file-overlap"   // Syft's OTHER relationship comment
)

// maxNullRelationships bounds the null entries tolerated in an SPDX JSON relationship list:
// spdx/tools-golang removes them one by one, in time quadratic in their number.
const maxNullRelationships = 64

func decodeSPDX(data []byte, f Format, b *builder) error {
	var doc *spdx.Document
	var err error
	if f == FormatSPDXJSON {
		var rels struct {
			Relationships []*struct{} `json:"relationships"`
		}
		if err := json.Unmarshal(data, &rels); err != nil {
			return fmt.Errorf("decoding: %w", err)
		}
		nulls := 0
		for _, r := range rels.Relationships {
			if r == nil {
				nulls++
			}
		}
		if nulls > maxNullRelationships {
			return fmt.Errorf("relationships has %d null entries", nulls)
		}
		err = safely(func() (err error) {
			doc, err = spdxjson.Read(bytes.NewReader(data))
			return err
		})
	} else {
		err = safely(func() (err error) {
			doc, err = tagvalue.Read(bytes.NewReader(data))
			return err
		})
	}
	if err != nil {
		return fmt.Errorf("decoding: %w", err)
	}
	if doc == nil {
		return fmt.Errorf("decoding: no document")
	}
	b.spdxDocument(doc)
	return nil
}

func (b *builder) spdxDocument(doc *spdx.Document) {
	byMoat := false
	if ci := doc.CreationInfo; ci != nil {
		b.inv.Created = parseTime(ci.Created)
		for _, c := range ci.Creators {
			if c.CreatorType == "Tool" {
				b.inv.Tool = splitTool(c.Creator)
				byMoat = b.inv.Tool.Name == "moat"
				break
			}
		}
	}
	b.inv.Image.Name = text(doc.DocumentName, maxText)

	described := map[common.ElementID]bool{}
	files := map[common.ElementID]string{}
	for _, f := range doc.Files {
		if f != nil {
			files[f.FileSPDXIdentifier] = f.FileName
		}
	}
	pkgFiles := map[common.ElementID][]string{}
	for _, r := range doc.Relationships {
		if r == nil || r.RefA.DocumentRefID != "" || r.RefB.DocumentRefID != "" {
			continue
		}
		switch strings.ToUpper(r.Relationship) {
		case common.TypeRelationshipDescribe, "DESCRIBE":
			if r.RefA.ElementRefID == doc.SPDXIdentifier {
				described[r.RefB.ElementRefID] = true
			}
		case common.TypeRelationshipDescribeBy:
			if r.RefB.ElementRefID == doc.SPDXIdentifier {
				described[r.RefA.ElementRefID] = true
			}
		case common.TypeRelationshipContains:
			if name, ok := files[r.RefB.ElementRefID]; ok {
				pkgFiles[r.RefA.ElementRefID] = append(pkgFiles[r.RefA.ElementRefID], name)
			}
		}
	}
	others := map[string]*spdx.OtherLicense{}
	for _, l := range doc.OtherLicenses {
		if l != nil {
			others[l.LicenseIdentifier] = l
		}
	}

	// The image: the described container, else the first container.
	var image *spdx.Package
	for _, p := range doc.Packages {
		if p != nil && isSPDXContainer(p) && (image == nil || described[p.PackageSPDXIdentifier] && !described[image.PackageSPDXIdentifier]) {
			image = p
		}
	}
	if image != nil {
		b.spdxImage(image)
	}

	index := map[common.ElementID]int{}
	for _, sp := range doc.Packages {
		if sp == nil || isSPDXContainer(sp) {
			continue
		}
		id := string(sp.PackageSPDXIdentifier)
		purl := spdxPURL(sp)
		if sp.PrimaryPackagePurpose == "OPERATING-SYSTEM" || strings.HasPrefix(id, "OperatingSystem-") {
			b.setOS(sbom.Release{
				ID:         distroID(sp.PackageName),
				VersionID:  firstField(sp.PackageVersion),
				PrettyName: sp.PackageDescription,
			})
			continue
		}
		if purl == "" && (described[sp.PackageSPDXIdentifier] || strings.HasPrefix(id, "Application-")) {
			// The document's subject (a directory), or Trivy's grouping of an application's
			// packages.
			continue
		}
		cand := candidate{label: cmp.Or(sp.PackageName, id), name: sp.PackageName, version: sp.PackageVersion, purl: purl}
		p, ok := b.resolve(cand)
		if !ok {
			continue
		}
		b.spdxDetails(&p, sp, byMoat, pkgFiles[sp.PackageSPDXIdentifier])
		p.Licenses = spdxLicenses(sp, others)
		if i := b.add(p, cand.label); i >= 0 {
			index[sp.PackageSPDXIdentifier] = i
		}
	}

	// A language package CONTAINED by an OS package (moat), or that an OS package owns by file
	// overlap (Syft), is owned by it.
	pkgs := b.inv.Packages
	for _, r := range doc.Relationships {
		if r == nil || r.RefA.DocumentRefID != "" || r.RefB.DocumentRefID != "" {
			continue
		}
		owns := r.Relationship == common.TypeRelationshipContains ||
			r.Relationship == common.TypeRelationshipOther && strings.HasPrefix(r.RelationshipComment, syftOwnership)
		a, okA := index[r.RefA.ElementRefID]
		c, okC := index[r.RefB.ElementRefID]
		if owns && okA && okC && pkgs[a].Type.IsOS() && !pkgs[c].Type.IsOS() && pkgs[c].OwnedBy == "" {
			pkgs[c].OwnedBy = cleanOwner(string(pkgs[a].Type) + ":" + pkgs[a].Name)
		}
	}
}

func isSPDXContainer(p *spdx.Package) bool {
	return p.PrimaryPackagePurpose == "CONTAINER" ||
		strings.HasPrefix(string(p.PackageSPDXIdentifier), "ContainerImage-") ||
		strings.HasPrefix(spdxPURL(p), "pkg:oci/")
}

// spdxDetails reads what moat, Syft and Trivy say about a package beyond its package URL.
func (b *builder) spdxDetails(p *sbom.Package, sp *spdx.Package, byMoat bool, files []string) {
	// moat: "introduced by layer #N (DIFFID); built from source package NAME VERSION;
	// installed by OS package TYPE:NAME".
	for part := range strings.SplitSeq(sp.PackageComment, "; ") {
		if rest, ok := strings.CutPrefix(part, spdxLayerPrefix); ok {
			num, diffID, _ := strings.Cut(rest, " (")
			if n, err := strconv.Atoi(num); err == nil {
				p.Layer = &sbom.LayerRef{Index: n, DiffID: strings.TrimSuffix(diffID, ")")}
			}
		} else if rest, ok := strings.CutPrefix(part, spdxSourcePrefix); ok {
			name, version, _ := strings.Cut(rest, " ")
			p.Source = &sbom.Source{Name: name, Version: version}
		} else if rest, ok := strings.CutPrefix(part, spdxOwnerPrefix); ok {
			p.OwnedBy = rest
		}
	}

	info := sp.PackageSourceInfo
	if rest, ok := strings.CutPrefix(info, spdxFoundPrefix); ok {
		foundBy, paths, _ := strings.Cut(rest, ": ")
		if byMoat {
			p.FoundBy = foundBy
		}
		for path := range strings.SplitSeq(paths, ", ") {
			if strings.HasPrefix(path, "/") {
				p.Locations = append(p.Locations, sbom.Location{Path: path})
			}
		}
	} else if rest, ok := strings.CutPrefix(info, trivySourcePrefix); ok && p.Source == nil {
		name, version, _ := strings.Cut(rest, " ")
		p.Source = &sbom.Source{Name: name, Version: cmp.Or(version, p.Version)}
	} else if rest, ok := strings.CutPrefix(info, trivyFilePrefix); ok {
		p.Locations = append(p.Locations, sbom.Location{Path: rest})
	}
	if len(p.Locations) == 0 {
		for _, f := range files {
			p.Locations = append(p.Locations, sbom.Location{Path: f})
		}
	}

	tp := trivyProps(sp)
	if name := tp.get(trivySrcName); name != "" && p.Source == nil {
		p.Source = &sbom.Source{Name: name, Version: cmp.Or(trivySourceVersion(func(k string) string {
			return tp.get(strings.TrimPrefix(k, trivyPrefix))
		}), p.Version)}
	}
	if len(p.Locations) == 0 {
		if fp := tp.get(trivyFilePath); fp != "" {
			p.Locations = []sbom.Location{{Path: fp}}
		}
	}
	if diffID := tp.get(trivyLayerDiffID); diffID != "" {
		// Trivy's package layer is the one its files were read from.
		for i := range p.Locations {
			p.Locations[i].LayerDigest = cmp.Or(p.Locations[i].LayerDigest, diffID)
		}
		if p.Layer == nil {
			p.Layer = b.layerByDiffID(diffID)
		}
	}
}

// spdxImage reads the image's package: its digest, and the properties Trivy adds.
func (b *builder) spdxImage(sp *spdx.Package) {
	img := &b.inv.Image
	if img.Name == "" {
		img.Name = text(sp.PackageName, maxText)
	}
	tp := trivyProps(sp)
	img.ID = token(tp.get(trivyImageID), maxToken)
	img.RepoTags = tokens(tp.all(trivyRepoTag))
	img.RepoDigests = tokens(tp.all(trivyRepoDigest))
	var sha string
	for _, c := range sp.PackageChecksums {
		if c.Algorithm == common.SHA256 {
			sha = c.Value
			break
		}
	}
	img.Digest = imageDigest(sha, spdxPURL(sp), sp.PackageVersion, img.ID, img.RepoDigests)
	var layers []sbom.LayerRef
	for i, d := range tp.all(trivyDiffID) {
		layers = append(layers, sbom.LayerRef{Index: i, DiffID: d})
	}
	b.setLayers(layers)
}

// trivyProps are the "NAME: value" properties Trivy writes as annotations, or in older
// versions as attribution texts.
func trivyProps(sp *spdx.Package) props {
	var texts []string
	for _, a := range sp.Annotations {
		texts = append(texts, a.AnnotationComment)
	}
	if len(texts) == 0 {
		texts = sp.PackageAttributionTexts
	}
	var out props
	for _, t := range texts {
		if k, v, ok := strings.Cut(t, ": "); ok {
			if out == nil {
				out = props{}
			}
			out[k] = append(out[k], v)
		}
	}
	return out
}

// spdxPURL is a package's package URL, from its external references.
func spdxPURL(sp *spdx.Package) string {
	for _, r := range sp.PackageExternalReferences {
		if r != nil && r.RefType == common.TypePackageManagerPURL && r.Locator != "" {
			return r.Locator
		}
	}
	return ""
}

// spdxLicenses is a package's declared license expression (its concluded one when it declares
// none), with a lone LicenseRef replaced by the license text's name.
func spdxLicenses(sp *spdx.Package, others map[string]*spdx.OtherLicense) []string {
	l := sp.PackageLicenseDeclared
	if isNoLicense(l) {
		l = sp.PackageLicenseConcluded
	}
	if isNoLicense(l) {
		return nil
	}
	if o, ok := others[l]; ok && strings.HasPrefix(l, "LicenseRef-") {
		if name := cmp.Or(o.LicenseName, o.ExtractedText); !isNoLicense(name) {
			l = name
		}
	}
	return []string{l}
}

func isNoLicense(l string) bool { return l == "" || l == "NOASSERTION" || l == "NONE" }

// splitTool splits an SPDX tool creator ("moat-0.3.1", "syft-1.4.1", "trivy-0.52.0") into the
// tool's name and version: after the name of a tool moat knows, else at the first "-"
// followed by a digit or by "v" and a digit.
func splitTool(s string) sbom.Tool {
	for _, known := range []string{"moat", "syft", "trivy"} {
		if v, ok := strings.CutPrefix(s, known+"-"); ok {
			return sbom.Tool{Name: known, Version: token(v, maxShort)}
		}
	}
	for i := 1; i < len(s)-1; i++ {
		if s[i] != '-' {
			continue
		}
		rest := s[i+1:]
		if isDigit(rest[0]) || len(rest) > 1 && rest[0] == 'v' && isDigit(rest[1]) {
			return sbom.Tool{Name: text(s[:i], maxShort), Version: token(rest, maxShort)}
		}
	}
	return sbom.Tool{Name: text(s, maxShort)}
}
