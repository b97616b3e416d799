// Package vuln holds the model shared by moat's vulnerability database, matcher and reports:
// an Advisory is an OSV record reduced to what moat matches and reports, and a Finding is one
// vulnerability in one installed package.
//
// The database (internal/vuln/db) stores Advisories, the matcher (internal/vuln/match) turns
// an inventory and the database into Findings, and the reports (internal/report) print them.
package vuln

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ossf/osv-schema/bindings/go/osvschema"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/moatsec/moat/internal/sbom"
)

// Advisory is one OSV record as moat keeps it. Field meanings follow the OSV schema
// (https://ossf.github.io/osv-schema/); Source is the archive it was imported from.
type Advisory struct {
	ID        string     `json:"id"`
	Source    string     `json:"source,omitempty"`
	Aliases   []string   `json:"aliases,omitempty"`
	Upstream  []string   `json:"upstream,omitempty"`
	Related   []string   `json:"related,omitempty"`
	Summary   string     `json:"summary,omitempty"`
	Details   string     `json:"details,omitempty"`
	Published time.Time  `json:"published,omitzero"`
	Modified  time.Time  `json:"modified,omitzero"`
	Withdrawn *time.Time `json:"withdrawn,omitempty"`
	// Severity is the record-level severity: CVSS vectors, and the database's own label
	// (GHSA's database_specific.severity) with Type "GHSA" or the database name.
	Severity   []Severity  `json:"severity,omitempty"`
	References []Reference `json:"references,omitempty"`
	Affected   []Affected  `json:"affected"`
}

// Affected is one package an advisory affects, in one ecosystem.
type Affected struct {
	// Ecosystem is OSV's ecosystem string, distro release included ("Debian:12", "Go").
	Ecosystem string `json:"ecosystem"`
	// Name is the package name as the ecosystem spells it; for distributions it is the source
	// package (Debian, Ubuntu, Alpine) or the binary package (RPM distributions).
	Name     string   `json:"name"`
	PURL     string   `json:"purl,omitempty"`
	Ranges   []Range  `json:"ranges,omitempty"`
	Versions []string `json:"versions,omitempty"`
	// Severity is the per-package severity: affected[].severity, and the ecosystem's own label
	// (ecosystem_specific.severity or urgency).
	Severity []Severity `json:"severity,omitempty"`
	// Status is the fix status the data states for this package, when it states one beyond
	// the ranges ("will-not-fix" from ecosystem_specific or database_specific).
	Status FixStatus `json:"status,omitempty"`
	// Imports are the affected Go packages and symbols (ecosystem_specific.imports), kept for
	// reports.
	Imports []string `json:"imports,omitempty"`
}

// Range is an OSV range. GIT ranges are not kept: they name commits, not versions.
type Range struct {
	Type   string  `json:"type"` // "ECOSYSTEM" or "SEMVER"
	Events []Event `json:"events"`
}

// Event is one OSV range event; exactly one field is set.
type Event struct {
	Introduced   string `json:"introduced,omitempty"`
	Fixed        string `json:"fixed,omitempty"`
	LastAffected string `json:"last_affected,omitempty"`
	Limit        string `json:"limit,omitempty"`
}

// Severity is one severity statement and where it comes from.
type Severity struct {
	// Type is "CVSS_V2", "CVSS_V3", "CVSS_V4", or the name of a qualitative scale: "GHSA",
	// "Ubuntu", "Debian", or the database's own name.
	Type string `json:"type"`
	// Score is the CVSS vector, or the label of a qualitative scale ("HIGH", "medium").
	Score string `json:"score"`
}

// Reference is a link from an advisory.
type Reference struct {
	Type string `json:"type"`
	URL  string `json:"url"`
}

// FixStatus says whether a fix is available for a finding.
type FixStatus string

// Fix statuses.
const (
	FixUnknown FixStatus = ""
	Fixed      FixStatus = "fixed"
	NotFixed   FixStatus = "not-fixed"
	WillNotFix FixStatus = "will-not-fix"
)

// Level is a qualitative severity, ordered from Unknown (0) to Critical.
type Level int

// Severity levels. Unknown sorts lowest, but --fail-on decides separately whether it counts.
const (
	Unknown Level = iota
	None
	Low
	Medium
	High
	Critical
)

var levelNames = [...]string{"unknown", "none", "low", "medium", "high", "critical"}

func (l Level) String() string {
	if l < 0 || int(l) >= len(levelNames) {
		return "unknown"
	}
	return levelNames[l]
}

// MarshalText writes the level's name.
func (l Level) MarshalText() ([]byte, error) { return []byte(l.String()), nil }

// UnmarshalText reads a level's name.
func (l *Level) UnmarshalText(b []byte) error {
	v, err := ParseLevel(string(b))
	if err != nil {
		return err
	}
	*l = v
	return nil
}

// ParseLevel reads a level name, case-insensitively. "moderate" (GHSA's spelling) and
// "important" (Red Hat's) are accepted as medium and high.
func ParseLevel(s string) (Level, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "unknown":
		return Unknown, nil
	case "none", "negligible", "unimportant":
		return None, nil
	case "low":
		return Low, nil
	case "medium", "moderate":
		return Medium, nil
	case "high", "important":
		return High, nil
	case "critical":
		return Critical, nil
	}
	return Unknown, fmt.Errorf("unknown severity %q (want one of unknown, none, low, medium, high, critical)", s)
}

// Finding is one vulnerability in one installed package. Advisories that describe the same
// vulnerability (linked by aliases) are merged into one finding.
type Finding struct {
	// ID is the primary identifier (see docs/design.md, "Primary IDs").
	ID string `json:"id"`
	// Aliases are every other identifier of the vulnerability, sorted.
	Aliases []string `json:"aliases,omitempty"`
	// Advisories are the IDs of the records that matched, sorted.
	Advisories []string   `json:"advisories"`
	Package    PackageRef `json:"package"`
	// Ecosystem and Name are what the package was matched as ("Debian:12", source "openssl").
	Ecosystem string `json:"ecosystem"`
	Name      string `json:"matchedName"`

	Summary string  `json:"summary,omitempty"`
	Level   Level   `json:"severity"`
	Score   float64 `json:"score,omitempty"`
	// SeveritySource names where Level came from ("CVSS_V3 from GHSA-xxxx", "Debian urgency").
	SeveritySource string      `json:"severitySource,omitempty"`
	Severities     []Severity  `json:"severities,omitempty"`
	FixStatus      FixStatus   `json:"fixStatus"`
	FixedVersions  []string    `json:"fixedVersions,omitempty"`
	References     []Reference `json:"references,omitempty"`
	Published      time.Time   `json:"published,omitzero"`
	Modified       time.Time   `json:"modified,omitzero"`

	// Suppressed is set when an ignore file entry or a VEX statement hides the finding.
	Suppressed *Suppression `json:"suppressed,omitempty"`
}

// PackageRef identifies the package a finding is in.
type PackageRef struct {
	Name      string          `json:"name"`
	Version   string          `json:"version"`
	Type      sbom.Type       `json:"type"`
	PURL      string          `json:"purl,omitempty"`
	Source    *sbom.Source    `json:"source,omitempty"`
	OwnedBy   string          `json:"ownedBy,omitempty"`
	Layer     *sbom.LayerRef  `json:"layer,omitempty"`
	Locations []sbom.Location `json:"locations,omitempty"`
}

// Ref returns the PackageRef of p.
func Ref(p *sbom.Package) PackageRef {
	return PackageRef{Name: p.Name, Version: p.Version, Type: p.Type, PURL: p.PURL, Source: p.Source,
		OwnedBy: p.OwnedBy, Layer: p.Layer, Locations: p.Locations}
}

// Suppression records why a finding is not counted.
type Suppression struct {
	// Kind is "ignore" (an ignore-file entry) or "vex" (an OpenVEX statement).
	Kind string `json:"kind"`
	// Reason is the entry's reason, or the VEX status and justification.
	Reason string `json:"reason,omitempty"`
	// Source is the file that suppressed the finding.
	Source  string     `json:"source"`
	Expires *time.Time `json:"expires,omitempty"`
}

// FromOSV converts a parsed OSV record (internal/vuln/osv.Parse) into an Advisory. GIT ranges
// are dropped; an affected entry left with neither ranges nor versions is dropped too, since it
// can match nothing.
func FromOSV(v *osvschema.Vulnerability, source string) *Advisory {
	a := &Advisory{
		ID:       v.GetId(),
		Source:   source,
		Aliases:  slices.Clone(v.GetAliases()),
		Upstream: slices.Clone(v.GetUpstream()),
		Related:  slices.Clone(v.GetRelated()),
		Summary:  v.GetSummary(),
		Details:  v.GetDetails(),
		Affected: []Affected{},
	}
	if t := v.GetPublished(); t != nil {
		a.Published = t.AsTime()
	}
	if t := v.GetModified(); t != nil {
		a.Modified = t.AsTime()
	}
	if t := v.GetWithdrawn(); t != nil {
		w := t.AsTime()
		a.Withdrawn = &w
	}
	a.Severity = severities(v.GetSeverity())
	if s := stringField(v.GetDatabaseSpecific(), "severity"); s != "" {
		a.Severity = append(a.Severity, Severity{Type: databaseName(a.ID), Score: s})
	}
	for _, r := range v.GetReferences() {
		a.References = append(a.References, Reference{Type: r.GetType().String(), URL: r.GetUrl()})
	}
	for _, af := range v.GetAffected() {
		out := Affected{
			Ecosystem: af.GetPackage().GetEcosystem(),
			Name:      af.GetPackage().GetName(),
			PURL:      af.GetPackage().GetPurl(),
			Versions:  slices.Clone(af.GetVersions()),
			Severity:  severities(af.GetSeverity()),
		}
		for _, r := range af.GetRanges() {
			if r.GetType() == osvschema.Range_GIT {
				continue
			}
			rg := Range{Type: r.GetType().String()}
			for _, e := range r.GetEvents() {
				rg.Events = append(rg.Events, Event{Introduced: e.GetIntroduced(), Fixed: e.GetFixed(),
					LastAffected: e.GetLastAffected(), Limit: e.GetLimit()})
			}
			out.Ranges = append(out.Ranges, rg)
		}
		if len(out.Ranges) == 0 && len(out.Versions) == 0 {
			continue
		}
		eco, db := af.GetEcosystemSpecific(), af.GetDatabaseSpecific()
		for _, key := range []string{"severity", "urgency"} {
			if s := stringField(eco, key); s != "" {
				out.Severity = append(out.Severity, Severity{Type: ecosystemScale(out.Ecosystem), Score: s})
				break
			}
		}
		out.Status = fixStatus(stringField(eco, "status"), stringField(db, "status"))
		out.Imports = imports(eco)
		a.Affected = append(a.Affected, out)
	}
	return a
}

func severities(in []*osvschema.Severity) []Severity {
	var out []Severity
	for _, s := range in {
		if s.GetScore() == "" {
			continue
		}
		t := s.GetType().String()
		if s.GetType() == osvschema.Severity_UNSPECIFIED {
			// A type this binding does not know ("Ubuntu"): keep the label, its scale unnamed.
			t = "UNSPECIFIED"
		}
		out = append(out, Severity{Type: t, Score: s.GetScore()})
	}
	return out
}

// databaseName names the database an advisory ID comes from ("GHSA-..." → "GHSA").
func databaseName(id string) string {
	if prefix, _, ok := strings.Cut(id, "-"); ok && prefix != "" {
		return prefix
	}
	return "database"
}

// ecosystemScale names an ecosystem's own severity scale ("Debian:12" → "Debian").
func ecosystemScale(ecosystem string) string {
	name, _, _ := strings.Cut(ecosystem, ":")
	return name
}

// fixStatus reads a "will not fix" statement. Distributions write it in different words; a
// status moat does not recognise is left to the ranges.
func fixStatus(values ...string) FixStatus {
	for _, v := range values {
		switch strings.ToLower(strings.NewReplacer("_", "-", " ", "-").Replace(v)) {
		case "will-not-fix", "wontfix", "wont-fix", "ignored", "no-fix-planned", "end-of-life", "eol", "out-of-support-scope", "deferred":
			return WillNotFix
		case "fix-not-available", "not-fixed", "affected", "vulnerable":
			return NotFixed
		}
	}
	return FixUnknown
}

func stringField(s *structpb.Struct, key string) string {
	if s == nil {
		return ""
	}
	if v, ok := s.GetFields()[key]; ok {
		return v.GetStringValue()
	}
	return ""
}

// imports reads the Go database's ecosystem_specific.imports: [{path, symbols: [...]}].
func imports(s *structpb.Struct) []string {
	if s == nil {
		return nil
	}
	var out []string
	for _, v := range s.GetFields()["imports"].GetListValue().GetValues() {
		if p := v.GetStructValue().GetFields()["path"].GetStringValue(); p != "" {
			out = append(out, p)
		}
	}
	return out
}
