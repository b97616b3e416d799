package sbomfile

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/moatsec/moat/internal/sbom"
)

// Bounds on what is kept from a document. Values over a bound are dropped, except prose (build
// steps, warnings), which is cut.
const (
	maxToken = sbom.DefaultMaxToken // names, versions, digests
	maxShort = 256                  // architectures, cataloger names, metadata keys
	maxPURL  = 4 * sbom.DefaultMaxToken
	maxText  = sbom.DefaultMaxToken // licenses, paths, image names, descriptions
	maxProse = 64 << 10             // layer build steps, warnings
	maxIndex = 1 << 16              // layer and location numbers in properties
)

// knownTypes are the package types moat matches.
var knownTypes = []sbom.Type{sbom.TypeDeb, sbom.TypeAPK, sbom.TypeRPM, sbom.TypeGolang, sbom.TypeNPM,
	sbom.TypePyPI, sbom.TypeMaven, sbom.TypeCargo, sbom.TypeGem, sbom.TypeComposer, sbom.TypeNuGet}

func knownType(t sbom.Type) bool { return slices.Contains(knownTypes, t) }

// builder collects the inventory while a document is read, checking every value it is given,
// and counts what had to be left out.
type builder struct {
	inv sbom.Inventory
	// layers are the image's layers by diffID, to attribute packages that name only a diffID.
	layers map[string]sbom.LayerRef
	// osRelease is the distribution an operating-system component or package names.
	osRelease *sbom.Release
	// distros are the distributions package URLs name, in the order first seen.
	distros []distroCount

	noPURL     skipped
	badPURL    skipped
	badPackage skipped
	types      map[string]int // unknown package types, by name
}

type distroCount struct {
	rel sbom.Release
	n   int
}

// skipped counts entries left out for one reason and remembers the first, for the warning.
type skipped struct {
	n     int
	first string
}

func (s *skipped) add(example string) {
	if s.n == 0 {
		s.first = example
	}
	s.n++
}

func newBuilder() *builder {
	return &builder{layers: map[string]sbom.LayerRef{}, types: map[string]int{}}
}

// setLayers records the image's layers.
func (b *builder) setLayers(layers []sbom.LayerRef) {
	b.inv.Image.Layers = nil
	for _, l := range layers {
		if l.Index < 0 || l.Index > maxIndex {
			continue
		}
		l.Digest = token(l.Digest, maxToken)
		l.DiffID = token(l.DiffID, maxToken)
		l.CreatedBy = prose(l.CreatedBy, maxProse)
		b.inv.Image.Layers = append(b.inv.Image.Layers, l)
		if l.DiffID != "" {
			if _, dup := b.layers[l.DiffID]; !dup {
				b.layers[l.DiffID] = l
			}
		}
	}
}

// layerByDiffID returns the image layer with the given diffID, or nil when the document does
// not list the image's layers.
func (b *builder) layerByDiffID(diffID string) *sbom.LayerRef {
	if l, ok := b.layers[diffID]; ok && diffID != "" {
		return &l
	}
	return nil
}

// add checks a package and appends it to the inventory, returning its index, or -1 when it
// was left out.
func (b *builder) add(p sbom.Package, label string) int {
	if !knownType(p.Type) {
		b.types[string(p.Type)]++
		return -1
	}
	if !sbom.ValidToken(p.Name, maxToken) || !sbom.ValidToken(p.Version, maxToken) {
		b.badPackage.add(cmp.Or(label, p.Name))
		return -1
	}
	p.PURL = token(p.PURL, maxPURL)
	p.Arch = token(p.Arch, maxShort)
	if p.Source != nil {
		src := sbom.Source{Name: token(p.Source.Name, maxToken), Version: token(p.Source.Version, maxToken)}
		p.Source = nil
		if src.Name != "" {
			p.Source = &src
		}
	}
	if p.Source == nil && p.Type.IsOS() {
		// What moat's own catalogers record when a package names no source package.
		p.Source = &sbom.Source{Name: p.Name, Version: p.Version}
	}
	p.Licenses = texts(p.Licenses)
	p.Locations = cleanLocations(p.Locations)
	p.Layer = b.cleanLayer(p.Layer)
	p.OwnedBy = cleanOwner(p.OwnedBy)
	p.FoundBy = cmp.Or(token(p.FoundBy, maxShort), ImageSource)
	p.Metadata = cleanMetadata(p.Metadata)
	b.inv.Packages = append(b.inv.Packages, p)
	return len(b.inv.Packages) - 1
}

func (b *builder) cleanLayer(l *sbom.LayerRef) *sbom.LayerRef {
	if l == nil || l.Index < 0 || l.Index > maxIndex {
		return nil
	}
	out := sbom.LayerRef{
		Index:     l.Index,
		Digest:    token(l.Digest, maxToken),
		DiffID:    token(l.DiffID, maxToken),
		CreatedBy: prose(l.CreatedBy, maxProse),
	}
	if img, ok := b.layers[out.DiffID]; ok && out.DiffID != "" && img.Index == out.Index {
		out.Digest = cmp.Or(out.Digest, img.Digest)
		out.CreatedBy = cmp.Or(out.CreatedBy, img.CreatedBy)
	}
	return &out
}

func cleanLocations(ls []sbom.Location) []sbom.Location {
	out := make([]sbom.Location, 0, len(ls))
	for _, l := range ls {
		p := text(l.Path, maxText)
		if p == "" {
			continue
		}
		if !strings.HasPrefix(p, "/") {
			p = "/" + p
		}
		out = append(out, sbom.Location{Path: p, LayerDigest: token(l.LayerDigest, maxToken)})
	}
	return out
}

// cleanOwner keeps an ownedBy value that names an OS package ("deb:python3-yaml").
func cleanOwner(s string) string {
	t, name, ok := strings.Cut(s, ":")
	if !ok || !sbom.Type(t).IsOS() || !sbom.ValidToken(name, maxToken) {
		return ""
	}
	return s
}

func cleanMetadata(md map[string]string) map[string]string {
	var out map[string]string
	for k, v := range md {
		if sbom.ValidToken(k, maxShort) && sbom.ValidText(v, maxText) {
			if out == nil {
				out = map[string]string{}
			}
			out[k] = v
		}
	}
	return out
}

// cleanRelease keeps the parts of a release that are usable, or returns nil when it has no ID.
func cleanRelease(r *sbom.Release) *sbom.Release {
	if r == nil {
		return nil
	}
	out := sbom.Release{
		ID:              token(r.ID, maxShort),
		VersionID:       token(r.VersionID, maxShort),
		VersionCodename: token(r.VersionCodename, maxShort),
		PrettyName:      text(r.PrettyName, maxText),
		Source:          text(r.Source, maxText),
	}
	for _, l := range r.IDLike {
		if l = token(l, maxShort); l != "" {
			out.IDLike = append(out.IDLike, l)
		}
	}
	if out.ID == "" {
		return nil
	}
	return &out
}

// setOS records the distribution an operating-system component names; the first one wins.
func (b *builder) setOS(r sbom.Release) {
	if b.osRelease == nil {
		b.osRelease = cleanRelease(&r)
	}
}

// seeDistro counts a distribution a package URL names.
func (b *builder) seeDistro(r sbom.Release) {
	c := cleanRelease(&r)
	if c == nil {
		return
	}
	for i := range b.distros {
		d := &b.distros[i].rel
		if d.ID == c.ID && d.VersionID == c.VersionID && d.VersionCodename == c.VersionCodename {
			b.distros[i].n++
			return
		}
	}
	b.distros = append(b.distros, distroCount{rel: *c, n: 1})
}

// distro is the image's distribution: the operating-system component's, completed by the
// package URLs when it has no version; else the one most package URLs name.
func (b *builder) distro() *sbom.Release {
	if r := b.osRelease; r != nil {
		if r.VersionID == "" {
			for _, d := range b.distros {
				if d.rel.ID == r.ID && d.rel.VersionID != "" {
					r.VersionID = d.rel.VersionID
					break
				}
			}
		}
		return r
	}
	if len(b.distros) == 0 {
		return nil
	}
	best := 0
	for i, d := range b.distros {
		if d.n > b.distros[best].n {
			best = i
		}
	}
	rel := b.distros[best].rel
	if len(b.distros) > 1 {
		names := make([]string, 0, min(len(b.distros), 5))
		for _, d := range b.distros[:min(len(b.distros), 5)] {
			names = append(names, distroName(d.rel))
		}
		if len(b.distros) > 5 {
			names = append(names, "…")
		}
		b.warn("package URLs name %d distributions (%s); using %s, which most packages name",
			len(b.distros), strings.Join(names, ", "), distroName(rel))
	}
	return &rel
}

func distroName(r sbom.Release) string {
	return strings.TrimSuffix(r.ID+"-"+cmp.Or(r.VersionID, r.VersionCodename), "-")
}

func (b *builder) warn(format string, args ...any) {
	b.inv.Warnings = append(b.inv.Warnings, sbom.Warning{Message: fmt.Sprintf(format, args...)})
}

// finish completes the inventory and adds one warning per kind of entry left out.
func (b *builder) finish(name string) *sbom.Inventory {
	inv := &b.inv
	inv.SchemaVersion = sbom.SchemaVersion
	inv.Image.Source = ImageSource
	if inv.Image.Name == "" {
		inv.Image.Name = cmp.Or(text(name, maxText), "sbom")
	}
	if inv.Distro == nil {
		inv.Distro = b.distro()
	}
	if b.noPURL.n > 0 {
		b.warn("left out %s without a package URL (first: %s)", plural(b.noPURL.n, "component"), quote(b.noPURL.first, 100))
	}
	if b.badPURL.n > 0 {
		b.warn("left out %s with an invalid package URL (first: %s)", plural(b.badPURL.n, "component"), quote(b.badPURL.first, 200))
	}
	if len(b.types) > 0 {
		b.warn("left out packages of types moat does not match: %s", typeCounts(b.types))
	}
	if b.badPackage.n > 0 {
		b.warn("left out %s with a missing or invalid name or version (first: %s)", plural(b.badPackage.n, "package"), quote(b.badPackage.first, 100))
	}
	if inv.Packages == nil {
		inv.Packages = []sbom.Package{}
	}
	return inv
}

// typeCounts lists unknown types by how many packages had them, most first, at most eight.
func typeCounts(types map[string]int) string {
	names := make([]string, 0, len(types))
	for t := range types {
		names = append(names, t)
	}
	slices.SortFunc(names, func(a, b string) int {
		return cmp.Or(cmp.Compare(types[b], types[a]), cmp.Compare(a, b))
	})
	var parts []string
	for i, t := range names {
		if i == 8 {
			parts = append(parts, fmt.Sprintf("and %d more", len(names)-i))
			break
		}
		parts = append(parts, fmt.Sprintf("%s (%d)", quote(t, 40), types[t]))
	}
	return strings.Join(parts, ", ")
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}

// token returns s when it is a valid name or version (sbom.ValidToken), else "".
func token(s string, max int) string {
	if sbom.ValidToken(s, max) {
		return s
	}
	return ""
}

// text returns s when it is valid free text (sbom.ValidText), else "".
func text(s string, max int) string {
	if sbom.ValidText(s, max) {
		return s
	}
	return ""
}

// texts keeps the valid free-text entries of ss.
func texts(ss []string) []string {
	var out []string
	for _, s := range ss {
		if s = text(s, maxText); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// prose makes s safe to keep and show: invalid UTF-8 and control characters become spaces
// and the result is cut to at most max bytes.
func prose(s string, max int) string {
	s = strings.ToValidUTF8(s, " ")
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	return cut(s, max)
}

// cut cuts s to at most max bytes without splitting a character.
func cut(s string, max int) string {
	if len(s) <= max {
		return s
	}
	for max > 0 && !utf8.RuneStart(s[max]) {
		max--
	}
	return s[:max]
}

// quote quotes untrusted text for a message, escaping what is not printable and cutting it to
// about max bytes.
func quote(s string, max int) string {
	if len(s) > max {
		return strconv.Quote(cut(s, max)) + "…"
	}
	return strconv.Quote(s)
}
