package report

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	spdxjson "github.com/spdx/tools-golang/json"
	"github.com/spdx/tools-golang/spdx/v2/common"
	"github.com/spdx/tools-golang/spdx/v2/v2_3"

	"github.com/moatsec/moat/internal/sbom"
)

// SPDX special values.
const (
	noAssertion = "NOASSERTION"
	none        = "NONE"
)

// Bounds on generated identifiers, so that a hostile package name cannot make them huge.
const (
	maxSPDXIDLen     = 160
	maxLicenseRefLen = 64
	maxNamespaceName = 100
)

// writeSPDX writes the inventory as an SPDX 2.3 JSON document that DESCRIBES a package for the
// image, which CONTAINS a package for the distribution and one for every package found. A
// language package installed by an OS package is also CONTAINED by that package.
func writeSPDX(w io.Writer, inv *sbom.Inventory, opts Options) error {
	b := newSPDXBuilder()
	name := cmp.Or(inv.Image.Name, "unnamed")
	doc := &v2_3.Document{
		SPDXVersion:       v2_3.Version,
		DataLicense:       v2_3.DataLicense,
		SPDXIdentifier:    "DOCUMENT",
		DocumentName:      name,
		DocumentNamespace: spdxNamespace(inv, opts),
		CreationInfo: &v2_3.CreationInfo{
			LicenseListVersion: loadSPDXList().version,
			Creators: []common.Creator{{
				CreatorType: "Tool",
				Creator:     cmp.Or(inv.Tool.Name, "moat") + "-" + cmp.Or(inv.Tool.Version, "unknown"),
			}},
			Created: inv.Created.UTC().Format(time.RFC3339),
		},
	}

	imageID := b.id("Image-" + name)
	image := &v2_3.Package{
		PackageName:             name,
		PackageSPDXIdentifier:   common.ElementID(imageID),
		PackageVersion:          imageVersion(inv.Image),
		PackageDownloadLocation: noAssertion,
		PackageLicenseConcluded: noAssertion,
		PackageLicenseDeclared:  noAssertion,
		PackageCopyrightText:    noAssertion,
		PrimaryPackagePurpose:   "CONTAINER",
	}
	if h, ok := sha256Hex(inv.Image.Digest); ok {
		image.PackageChecksums = []common.Checksum{{Algorithm: common.SHA256, Value: h}}
	}
	if purl := imagePURL(inv.Image); purl != "" {
		image.PackageExternalReferences = purlRef(purl)
	}
	doc.Packages = append(doc.Packages, image)
	doc.Relationships = append(doc.Relationships, relationship("DOCUMENT", common.TypeRelationshipDescribe, imageID))

	if d := inv.Distro; d != nil {
		id := b.id("OperatingSystem-" + d.ID + "-" + d.VersionID)
		doc.Packages = append(doc.Packages, &v2_3.Package{
			PackageName:             cmp.Or(d.ID, "unknown"),
			PackageSPDXIdentifier:   common.ElementID(id),
			PackageVersion:          d.VersionID,
			PackageDownloadLocation: noAssertion,
			PackageLicenseConcluded: noAssertion,
			PackageLicenseDeclared:  noAssertion,
			PackageCopyrightText:    noAssertion,
			PackageDescription:      d.PrettyName,
			// The spelling of the specification (clause 7.24); the released 2.3 JSON schema has
			// OPERATING_SYSTEM, a known erratum (see testdata/schema/README.md).
			PrimaryPackagePurpose: "OPERATING-SYSTEM",
		})
		doc.Relationships = append(doc.Relationships, relationship(imageID, common.TypeRelationshipContains, id))
	}

	pkgs := sortedPackages(inv.Packages)
	ids := make([]string, len(pkgs))
	owners := map[string]string{} // "type:name" of an OS package -> its SPDX id
	for i, p := range pkgs {
		id := b.id("Package-" + string(p.Type) + "-" + p.Name + "-" + p.Version)
		ids[i] = id
		if p.Type.IsOS() {
			key := string(p.Type) + ":" + p.Name
			if _, ok := owners[key]; !ok {
				owners[key] = id
			}
		}
		doc.Packages = append(doc.Packages, b.pkg(p, id))
		doc.Relationships = append(doc.Relationships, relationship(imageID, common.TypeRelationshipContains, id))
	}
	for i, p := range pkgs {
		if owner, ok := owners[p.OwnedBy]; ok && p.OwnedBy != "" {
			doc.Relationships = append(doc.Relationships, relationship(owner, common.TypeRelationshipContains, ids[i]))
		}
	}
	doc.OtherLicenses = b.others

	if err := spdxjson.Write(doc, w, spdxjson.Indent("  "), spdxjson.EscapeHTML(false)); err != nil {
		return fmt.Errorf("encoding SPDX: %w", err)
	}
	return nil
}

// spdxNamespace is the document namespace: a URI unique to this image and tool version.
func spdxNamespace(inv *sbom.Inventory, opts Options) string {
	base := strings.TrimRight(cmp.Or(opts.Namespace, DefaultNamespace), "/")
	name := cmp.Or(sanitizeID(inv.Image.Name, maxNamespaceName), "image")
	return base + "/" + name + "-" + documentUUID(FormatSPDXJSON, inv)
}

// spdxBuilder hands out unique SPDX identifiers and collects the licenses that are not on the
// SPDX license list.
type spdxBuilder struct {
	ids map[string]bool
	// refs maps a license string that is not a valid expression to its LicenseRef.
	refs map[string]string
	// declared holds the LicenseRefs already in others.
	declared map[string]bool
	others   []*v2_3.OtherLicense
}

func newSPDXBuilder() *spdxBuilder {
	return &spdxBuilder{
		ids:      map[string]bool{"DOCUMENT": true},
		refs:     map[string]string{},
		declared: map[string]bool{},
	}
}

// id returns a unique element identifier, without the "SPDXRef-" prefix, made of the
// characters SPDX allows.
func (b *spdxBuilder) id(base string) string {
	base = sanitizeID(base, maxSPDXIDLen)
	id := base
	for n := 2; b.ids[id]; n++ {
		id = base + "-" + strconv.Itoa(n)
	}
	b.ids[id] = true
	return id
}

// pkg is the SPDX package for one moat package.
func (b *spdxBuilder) pkg(p sbom.Package, id string) *v2_3.Package {
	sp := &v2_3.Package{
		PackageName:             p.Name,
		PackageSPDXIdentifier:   common.ElementID(id),
		PackageVersion:          p.Version,
		PackageDownloadLocation: noAssertion,
		PackageLicenseConcluded: noAssertion,
		PackageLicenseDeclared:  b.license(p.Licenses),
		PackageCopyrightText:    noAssertion,
	}
	if p.PURL != "" {
		sp.PackageExternalReferences = purlRef(p.PURL)
	}
	if len(p.Locations) > 0 {
		paths := make([]string, len(p.Locations))
		for i, l := range p.Locations {
			paths[i] = l.Path
		}
		sp.PackageSourceInfo = "acquired package info from " + cmp.Or(p.FoundBy, "moat") + ": " + strings.Join(paths, ", ")
	}
	var notes []string
	if p.Layer != nil {
		notes = append(notes, fmt.Sprintf("introduced by layer #%d (%s)", p.Layer.Index, p.Layer.DiffID))
	}
	if p.Source != nil && p.Source.Name != "" {
		notes = append(notes, strings.TrimSpace("built from source package "+p.Source.Name+" "+p.Source.Version))
	}
	if p.OwnedBy != "" {
		notes = append(notes, "installed by OS package "+p.OwnedBy)
	}
	sp.PackageComment = strings.Join(notes, "; ")
	return sp
}

// license is the licenseDeclared expression for a package's license strings: NOASSERTION when
// there are none, the strings joined with AND otherwise. Strings that are valid SPDX
// expressions are kept (with canonical identifiers); any other string becomes a LicenseRef
// declared in hasExtractedLicensingInfos with the original text.
func (b *spdxBuilder) license(ls []string) string {
	ls = cleanLicenses(ls)
	var parts []string
	for _, l := range ls {
		if l == noAssertion || l == none {
			if len(ls) == 1 {
				return l
			}
			continue
		}
		e, ok := parseLicenseExpression(l)
		if !ok {
			if ref := b.licenseRef(l); !slices.Contains(parts, ref) {
				parts = append(parts, ref)
			}
			continue
		}
		for _, r := range e.refs {
			b.declare(r, "", l)
		}
		part := e.text
		if len(ls) > 1 && strings.Contains(part, " ") {
			part = "(" + part + ")"
		}
		if !slices.Contains(parts, part) {
			parts = append(parts, part)
		}
	}
	if len(parts) == 0 {
		return noAssertion
	}
	return strings.Join(parts, " AND ")
}

// licenseRef returns the LicenseRef standing for a license string that is not an SPDX
// expression, declaring it on first use.
func (b *spdxBuilder) licenseRef(l string) string {
	if ref, ok := b.refs[l]; ok {
		return ref
	}
	sum := sha256.Sum256([]byte(l))
	short := hex.EncodeToString(sum[:4])
	name := sanitizeID(l, maxLicenseRefLen)
	ref := "LicenseRef-" + name
	if name == "" || b.declared[ref] {
		ref = "LicenseRef-" + strings.TrimLeft(name+"-"+short, "-")
	}
	for n := 2; b.declared[ref]; n++ {
		ref = "LicenseRef-" + short + "-" + strconv.Itoa(n)
	}
	b.refs[l] = ref
	b.declare(ref, l, l)
	return ref
}

// declare adds a LicenseRef to hasExtractedLicensingInfos once. SPDX requires extracted text;
// moat has only the string the package declared, so that is what is recorded.
func (b *spdxBuilder) declare(ref, name, text string) {
	if b.declared[ref] {
		return
	}
	b.declared[ref] = true
	b.others = append(b.others, &v2_3.OtherLicense{
		LicenseIdentifier: ref,
		LicenseName:       name,
		ExtractedText:     text,
	})
}

func relationship(a, typ, b string) *v2_3.Relationship {
	return &v2_3.Relationship{
		RefA:         common.MakeDocElementID("", a),
		RefB:         common.MakeDocElementID("", b),
		Relationship: typ,
	}
}

func purlRef(purl string) []*v2_3.PackageExternalReference {
	return []*v2_3.PackageExternalReference{{
		Category: common.CategoryPackageManager,
		RefType:  common.TypePackageManagerPURL,
		Locator:  purl,
	}}
}

// sanitizeID keeps the characters SPDX allows in identifiers (letters, digits, "." and "-"),
// turns every run of other characters into one "-", and cuts the result to max bytes.
func sanitizeID(s string, max int) string {
	var b strings.Builder
	dash := false
	for i := 0; i < len(s) && b.Len() < max; i++ {
		c := s[i]
		if isIDChar(c) && c != '-' {
			b.WriteByte(c)
			dash = false
			continue
		}
		if !dash && b.Len() > 0 {
			b.WriteByte('-')
		}
		dash = true
	}
	return strings.TrimRight(b.String(), "-")
}
