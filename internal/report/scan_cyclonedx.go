package report

import (
	"fmt"
	"io"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	cdx "github.com/CycloneDX/cyclonedx-go"

	"github.com/moatsec/moat/internal/sbom"
	"github.com/moatsec/moat/internal/vuln"
	"github.com/moatsec/moat/internal/vuln/suppress"
)

// Property names of the CycloneDX scan report, in the "moat:" namespace; docs/formats/scan.md
// lists them.
const (
	propDatabaseBuilt    = "moat:database:built"
	propDatabaseSource   = "moat:database:source:" // moat:database:source:NAME = record count
	propExpiredIgnore    = "moat:expiredIgnore"    // one per expired ignore entry, on the document
	propAdvisory         = "moat:advisory"         // one per matched advisory, on a vulnerability
	propSuppressedKind   = "moat:suppressed:kind"
	propSuppressedSource = "moat:suppressed:source"
	propSuppressedExpiry = "moat:suppressed:expires"
)

// vexJustifications maps OpenVEX justifications to CycloneDX's. OpenVEX's
// vulnerable_code_cannot_be_controlled_by_adversary has no CycloneDX counterpart; the
// analysis detail carries it.
var vexJustifications = map[string]cdx.ImpactAnalysisJustification{
	"component_not_present":               cdx.IAJCodeNotPresent,
	"vulnerable_code_not_present":         cdx.IAJCodeNotPresent,
	"vulnerable_code_not_in_execute_path": cdx.IAJCodeNotReachable,
	"inline_mitigations_already_exist":    cdx.IAJProtectedByMitigatingControl,
}

// cdxSeverities maps levels to CycloneDX severities.
var cdxSeverities = map[vuln.Level]cdx.Severity{
	vuln.Critical: cdx.SeverityCritical,
	vuln.High:     cdx.SeverityHigh,
	vuln.Medium:   cdx.SeverityMedium,
	vuln.Low:      cdx.SeverityLow,
	vuln.None:     cdx.SeverityNone,
	vuln.Unknown:  cdx.SeverityUnknown,
}

// writeScanCycloneDX writes the report as a CycloneDX 1.6 BOM with vulnerabilities: the image
// is the subject, the affected packages are components, and each vulnerability lists the
// components it affects. A suppressed finding's vulnerability carries an analysis: a VEX
// not_affected statement becomes state not_affected, fixed becomes resolved, and an ignore
// entry leaves the state out and says why in the detail. Findings of one vulnerability are
// grouped into one entry when they share their suppression (or have none).
func writeScanCycloneDX(w io.Writer, r *ScanReport) error {
	refs := bomRefs{}
	bom := newCDXBOM(scanDocumentUUID(r), r.Tool, r.Created, r.Image, &refs)
	var docProps properties
	if !r.Database.Built.IsZero() {
		docProps.add(propDatabaseBuilt, r.Database.Built.UTC().Format(time.RFC3339))
	}
	for _, name := range sortedKeys(r.Database.Sources) {
		docProps.add(propDatabaseSource+name, strconv.Itoa(r.Database.Sources[name]))
	}
	for _, e := range r.ExpiredIgnores {
		docProps.add(propExpiredIgnore, expiredText(e))
	}
	for _, wn := range r.Warnings {
		docProps.add(sbom.PropWarning, wn)
	}
	bom.Metadata.Properties = docProps.list()

	findings := sortedFindings(r.Findings)
	var components []cdx.Component
	if r.Distro != nil {
		components = append(components, cdxDistro(r.Distro, &refs))
	}
	// One component per affected package, in the order the packages first appear.
	pkgRef := map[string]string{}
	for i := range findings {
		p := findings[i].Package
		key := packageKey(p)
		if _, ok := pkgRef[key]; ok {
			continue
		}
		c := cdxPackage(sbom.Package{
			Name: p.Name, Version: p.Version, Type: p.Type, PURL: p.PURL,
			Source: p.Source, OwnedBy: p.OwnedBy, Layer: p.Layer, Locations: p.Locations,
		}, &refs)
		pkgRef[key] = c.BOMRef
		components = append(components, c)
	}
	if len(components) > 0 {
		bom.Components = &components
		dependsOn := make([]string, len(components))
		for i, c := range components {
			dependsOn[i] = c.BOMRef
		}
		bom.Dependencies = &[]cdx.Dependency{{Ref: bom.Metadata.Component.BOMRef, Dependencies: &dependsOn}}
	}

	var vulns []cdx.Vulnerability
	group := map[string]int{} // ID and suppression -> index in vulns
	for i := range findings {
		f := &findings[i]
		key := f.ID + "\x00" + suppressionKey(f.Suppressed)
		idx, ok := group[key]
		if !ok {
			idx = len(vulns)
			group[key] = idx
			vulns = append(vulns, newCDXVulnerability(f, &refs))
		}
		addAffected(&vulns[idx], f, pkgRef[packageKey(f.Package)])
	}
	if len(vulns) > 0 {
		bom.Vulnerabilities = &vulns
	}

	enc := cdx.NewBOMEncoder(w, cdx.BOMFileFormatJSON)
	enc.SetPretty(true)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(bom); err != nil {
		return fmt.Errorf("encoding CycloneDX: %w", err)
	}
	return nil
}

// scanDocumentUUID identifies a scan BOM: like an inventory BOM's, derived from the tool and
// the image, but also from the time of the scan, since the same image scanned again against a
// newer database is a different document.
func scanDocumentUUID(r *ScanReport) string {
	inv := sbom.Inventory{Tool: r.Tool, Image: r.Image}
	for i := range r.Findings {
		p := r.Findings[i].Package
		inv.Packages = append(inv.Packages, sbom.Package{Type: p.Type, Name: p.Name, Version: p.Version, PURL: p.PURL})
	}
	return documentUUID(Format("scan/"+string(FormatCycloneDXJSON)+"/"+r.Created.UTC().Format(time.RFC3339Nano)), &inv)
}

// packageKey identifies a finding's package: two copies of one npm package in different
// directories are different packages.
func packageKey(p vuln.PackageRef) string {
	return strings.Join([]string{string(p.Type), p.Name, p.Version, p.PURL, refPath(p)}, "\x00")
}

// suppressionKey is "" for a finding that is not suppressed, else what tells its suppression
// from another.
func suppressionKey(s *vuln.Suppression) string {
	if s == nil {
		return ""
	}
	key := s.Kind + "\x00" + s.Reason + "\x00" + s.Source
	if s.Expires != nil {
		key += "\x00" + s.Expires.UTC().Format(time.RFC3339Nano)
	}
	return key
}

// newCDXVulnerability describes the vulnerability of f, without the affected packages.
func newCDXVulnerability(f *vuln.Finding, refs *bomRefs) cdx.Vulnerability {
	v := cdx.Vulnerability{
		BOMRef:      refs.take("vuln:" + f.ID),
		ID:          f.ID,
		Source:      vulnSource(f.ID),
		Description: f.Summary,
	}
	var vrefs []cdx.VulnerabilityReference
	for _, a := range f.Aliases {
		vrefs = append(vrefs, cdx.VulnerabilityReference{ID: a, Source: vulnSource(a)})
	}
	if len(vrefs) > 0 {
		v.References = &vrefs
	}
	var advisories []cdx.Advisory
	for _, ref := range f.References {
		if validURL(ref.URL) && !slices.ContainsFunc(advisories, func(a cdx.Advisory) bool { return a.URL == ref.URL }) {
			advisories = append(advisories, cdx.Advisory{URL: ref.URL})
		}
	}
	if len(advisories) > 0 {
		v.Advisories = &advisories
	}
	if !f.Published.IsZero() {
		v.Published = f.Published.UTC().Format(time.RFC3339)
	}
	if !f.Modified.IsZero() {
		v.Updated = f.Modified.UTC().Format(time.RFC3339)
	}
	var props properties
	for _, a := range f.Advisories {
		props.add(propAdvisory, a)
	}
	if s := f.Suppressed; s != nil {
		v.Analysis = cdxAnalysis(s)
		props.add(propSuppressedKind, s.Kind)
		props.add(propSuppressedSource, s.Source)
		if s.Expires != nil {
			props.add(propSuppressedExpiry, s.Expires.UTC().Format(time.RFC3339))
		}
	}
	v.Properties = props.list()
	return v
}

// addAffected adds f's package, by its component's bom-ref, to the vulnerability, its
// severities to the ratings, and what fixes it to the recommendation.
func addAffected(v *cdx.Vulnerability, f *vuln.Finding, ref string) {
	status := cdx.VulnerabilityStatusAffected
	if v.Analysis != nil && (v.Analysis.State == cdx.IASNotAffected || v.Analysis.State == cdx.IASResolved) {
		status = cdx.VulnerabilityStatusNotAffected
	}
	affects := []cdx.Affects{}
	if v.Affects != nil {
		affects = *v.Affects
	}
	affects = append(affects, cdx.Affects{
		Ref:   ref,
		Range: &[]cdx.AffectedVersions{{Version: cutRunes(f.Package.Version, maxCycloneDXVersion), Status: status}},
	})
	v.Affects = &affects

	var ratings []cdx.VulnerabilityRating
	if v.Ratings != nil {
		ratings = *v.Ratings
	}
	for _, r := range cdxRatings(f) {
		ratings = addRating(ratings, r)
	}
	v.Ratings = &ratings

	var rec string
	switch {
	case len(f.FixedVersions) > 0:
		rec = fmt.Sprintf("Upgrade %s to %s.", f.Package.Name, strings.Join(f.FixedVersions, " or "))
	case f.FixStatus == vuln.WillNotFix:
		rec = fmt.Sprintf("No fix for %s: the maintainers will not fix it.", f.Package.Name)
	}
	if rec != "" {
		v.Recommendation = strings.TrimSpace(v.Recommendation + " " + rec)
	}
}

// cdxRatings lists a finding's severities: one rating per CVSS vector, with moat's score and
// severity on the vector that gave them, and one per qualitative label (Debian urgency, GHSA
// severity). A finding without any gets one rating with moat's severity.
func cdxRatings(f *vuln.Finding) []cdx.VulnerabilityRating {
	var out []cdx.VulnerabilityRating
	scored := false
	for _, s := range f.Severities {
		var r cdx.VulnerabilityRating
		switch s.Type {
		case "CVSS_V2":
			r.Method, r.Vector = cdx.ScoringMethodCVSSv2, s.Score
		case "CVSS_V3":
			r.Method, r.Vector = cdx.ScoringMethodCVSSv3, s.Score
			if strings.HasPrefix(s.Score, "CVSS:3.1/") {
				r.Method = cdx.ScoringMethodCVSSv31
			}
		case "CVSS_V4":
			r.Method, r.Vector = cdx.ScoringMethodCVSSv4, s.Score
		default:
			r.Method = cdx.ScoringMethodOther
			r.Source = &cdx.Source{Name: s.Type}
			r.Severity = cdx.SeverityUnknown
			if l, err := vuln.ParseLevel(s.Score); err == nil {
				r.Severity = cdxSeverities[l]
			}
		}
		if r.Vector != "" && !scored && f.Score > 0 && strings.HasPrefix(f.SeveritySource, s.Type) {
			score := f.Score
			r.Score, r.Severity = &score, cdxSeverities[f.Level]
			scored = true
		}
		out = addRating(out, r)
	}
	if len(out) == 0 {
		out = append(out, cdx.VulnerabilityRating{Severity: cdxSeverities[f.Level], Method: cdx.ScoringMethodOther})
	}
	return out
}

// addRating appends r to rs unless an equal rating is already there.
func addRating(rs []cdx.VulnerabilityRating, r cdx.VulnerabilityRating) []cdx.VulnerabilityRating {
	key := func(r cdx.VulnerabilityRating) string {
		k := fmt.Sprintf("%s\x00%s\x00%s", r.Method, r.Vector, r.Severity)
		if r.Score != nil {
			k += "\x00" + strconv.FormatFloat(*r.Score, 'f', -1, 64)
		}
		if r.Source != nil {
			k += "\x00" + r.Source.Name
		}
		return k
	}
	for _, x := range rs {
		if key(x) == key(r) {
			return rs
		}
	}
	return append(rs, r)
}

// cdxAnalysis is the CycloneDX analysis of a suppression.
func cdxAnalysis(s *vuln.Suppression) *cdx.VulnerabilityAnalysis {
	if s.Kind == suppress.KindVEX {
		if status, justification, impact, ok := suppress.ParseVEXReason(s.Reason); ok {
			a := &cdx.VulnerabilityAnalysis{Detail: s.Reason + " (" + s.Source + ")"}
			switch status {
			case "not_affected":
				a.State = cdx.IASNotAffected
				a.Justification = vexJustifications[justification]
				if impact != "" && a.Justification != "" {
					a.Detail = impact + " (" + s.Source + ")"
				}
			case "fixed":
				a.State = cdx.IASResolved
			}
			return a
		}
	}
	detail := "Ignored"
	if s.Reason != "" {
		detail += ": " + s.Reason
	}
	detail += " (" + s.Source
	if s.Expires != nil {
		detail += ", until " + s.Expires.UTC().Format(time.RFC3339)
	}
	return &cdx.VulnerabilityAnalysis{Detail: detail + ")"}
}

// vulnSource names the database an identifier belongs to, with the identifier's page there.
func vulnSource(id string) *cdx.Source {
	prefix, _, _ := strings.Cut(id, "-")
	esc := url.PathEscape(id)
	switch prefix {
	case "CVE":
		return &cdx.Source{Name: "NVD", URL: "https://nvd.nist.gov/vuln/detail/" + esc}
	case "GHSA":
		return &cdx.Source{Name: "GitHub", URL: "https://github.com/advisories/" + esc}
	case "GO":
		return &cdx.Source{Name: "Go", URL: "https://pkg.go.dev/vuln/" + esc}
	}
	return &cdx.Source{Name: "OSV", URL: "https://osv.dev/vulnerability/" + esc}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
