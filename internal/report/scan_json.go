package report

import (
	_ "embed"
	"encoding/json"
	"io"
	"time"

	"github.com/moatsec/moat/internal/sbom"
	"github.com/moatsec/moat/internal/vuln"
	"github.com/moatsec/moat/internal/vuln/suppress"
)

// ScanSchemaVersion is the version of moat's JSON scan report format (docs/formats/scan.md).
const ScanSchemaVersion = "1.0"

// ScanSchema is the JSON Schema (draft 2020-12) of moat's JSON scan report, the output of the
// json format for a scan. It refers to SBOMSchema for the image and its packages.
// docs/formats/scan.schema.json is a copy of it.
//
//go:embed schema/scan.schema.json
var ScanSchema []byte

// scanDocument is the JSON scan report. Its $defs name in scan.schema.json is ScanReport.
type scanDocument struct {
	SchemaVersion  string                 `json:"schemaVersion"`
	Tool           sbom.Tool              `json:"tool"`
	Created        time.Time              `json:"created"`
	Image          sbom.ImageInfo         `json:"image"`
	Distro         *sbom.Release          `json:"distro,omitempty"`
	Database       scanDatabase           `json:"database"`
	Settings       scanSettings           `json:"settings"`
	Summary        scanSummary            `json:"summary"`
	Findings       []vuln.Finding         `json:"findings"`
	ExpiredIgnores []suppress.IgnoreEntry `json:"expiredIgnores,omitempty"`
	Warnings       []string               `json:"warnings,omitempty"`
}

// scanDatabase is DatabaseInfo in JSON ($defs/Database).
type scanDatabase struct {
	Built   *time.Time     `json:"built,omitempty"`
	Sources map[string]int `json:"sources"`
}

// scanSettings is ScanSettings in JSON ($defs/Settings).
type scanSettings struct {
	FailOn        *vuln.Level `json:"failOn,omitempty"`
	IgnoreUnfixed bool        `json:"ignoreUnfixed"`
}

// scanSummary is ScanSummary in JSON ($defs/Summary), with a count for every level.
type scanSummary struct {
	Total      int `json:"total"`
	Suppressed int `json:"suppressed"`
	Critical   int `json:"critical"`
	High       int `json:"high"`
	Medium     int `json:"medium"`
	Low        int `json:"low"`
	None       int `json:"none"`
	Unknown    int `json:"unknown"`
}

// writeScanJSON writes the report in moat's own format, indented by two spaces, findings in
// report order. Lists that the schema requires are written as empty arrays rather than null.
func writeScanJSON(w io.Writer, r *ScanReport) error {
	sum := r.Summary()
	doc := scanDocument{
		SchemaVersion: ScanSchemaVersion,
		Tool:          r.Tool,
		Created:       r.Created.UTC(),
		Image:         r.Image,
		Distro:        r.Distro,
		Database:      scanDatabase{Sources: r.Database.Sources},
		Settings:      scanSettings{FailOn: r.Settings.FailOn, IgnoreUnfixed: r.Settings.IgnoreUnfixed},
		Summary: scanSummary{
			Total:      sum.Total,
			Suppressed: sum.Suppressed,
			Critical:   sum.ByLevel[vuln.Critical],
			High:       sum.ByLevel[vuln.High],
			Medium:     sum.ByLevel[vuln.Medium],
			Low:        sum.ByLevel[vuln.Low],
			None:       sum.ByLevel[vuln.None],
			Unknown:    sum.ByLevel[vuln.Unknown],
		},
		Findings:       sortedFindings(r.Findings),
		ExpiredIgnores: r.ExpiredIgnores,
		Warnings:       r.Warnings,
	}
	if doc.Tool.Name == "" {
		doc.Tool.Name = "moat"
	}
	if !r.Database.Built.IsZero() {
		built := r.Database.Built.UTC()
		doc.Database.Built = &built
	}
	if doc.Database.Sources == nil {
		doc.Database.Sources = map[string]int{}
	}
	if doc.Findings == nil {
		doc.Findings = []vuln.Finding{}
	}
	if doc.Image.Layers == nil {
		doc.Image.Layers = []sbom.LayerRef{}
	}
	for i := range doc.Findings {
		if doc.Findings[i].Advisories == nil {
			doc.Findings[i].Advisories = []string{}
		}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(&doc)
}
