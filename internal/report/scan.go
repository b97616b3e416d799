package report

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/moatsec/moat/internal/sbom"
	"github.com/moatsec/moat/internal/vuln"
	"github.com/moatsec/moat/internal/vuln/suppress"
)

// FormatSARIF is SARIF 2.1.0, for code-scanning services such as GitHub's. Only scan reports
// are written in it.
const FormatSARIF Format = "sarif"

// ScanFormats lists the formats a scan report can be written in, in the order they are
// documented (docs/formats/scan.md).
func ScanFormats() []Format {
	return []Format{FormatTable, FormatJSON, FormatSARIF, FormatCycloneDXJSON}
}

// ParseScanFormat returns the scan report format a user named, accepting the canonical names
// and the aliases "moat-json", "cyclonedx" and "cdx", in any case.
func ParseScanFormat(s string) (Format, error) {
	name := strings.ToLower(strings.TrimSpace(s))
	for _, f := range ScanFormats() {
		if name == string(f) {
			return f, nil
		}
	}
	if f, ok := formatAliases[name]; ok && slices.Contains(ScanFormats(), f) {
		return f, nil
	}
	names := make([]string, 0, len(ScanFormats()))
	for _, f := range ScanFormats() {
		names = append(names, string(f))
	}
	return "", fmt.Errorf("%w %q for a scan report: valid formats are %s (aliases: cdx, cyclonedx, moat-json)",
		ErrUnknownFormat, s, strings.Join(names, ", "))
}

// ScanReport is what a vulnerability scan of one image found, with what a reader needs to
// judge it: the database it was matched against and the settings that decided which
// findings count.
type ScanReport struct {
	Tool sbom.Tool
	// Created is when the scan ran; every format takes its timestamps from here.
	Created time.Time
	Image   sbom.ImageInfo
	// Distro is the image's operating system, when one was identified.
	Distro *sbom.Release
	// Findings are every finding, suppressed ones included (with Suppressed set), in any
	// order: the writers sort them.
	Findings []vuln.Finding
	// ExpiredIgnores are the ignore-file entries whose expiry has passed, which no longer
	// suppress anything and should be reviewed.
	ExpiredIgnores []suppress.IgnoreEntry
	// Warnings are problems that did not stop the scan (packages that could not be matched,
	// an old database).
	Warnings []string
	Database DatabaseInfo
	Settings ScanSettings
}

// DatabaseInfo describes the advisory database a scan used.
type DatabaseInfo struct {
	// Built is when the database was built; zero when unknown.
	Built time.Time
	// Sources maps each advisory source the database holds ("osv:Debian") to its number of
	// records.
	Sources map[string]int
}

// ScanSettings are the user's choices that decided which findings count.
type ScanSettings struct {
	// FailOn is the lowest severity that fails the scan (--fail-on); nil when the scan does
	// not fail on findings.
	FailOn *vuln.Level
	// IgnoreUnfixed is set when findings without a fixed version were left out.
	IgnoreUnfixed bool
}

// ScanSummary counts a report's findings.
type ScanSummary struct {
	// Total is the number of findings that are not suppressed.
	Total int
	// Suppressed is the number of suppressed findings.
	Suppressed int
	// ByLevel counts the findings that are not suppressed per severity level.
	ByLevel map[vuln.Level]int
}

// Summary counts the report's findings.
func (r *ScanReport) Summary() ScanSummary {
	s := ScanSummary{ByLevel: map[vuln.Level]int{}}
	for i := range r.Findings {
		if r.Findings[i].Suppressed != nil {
			s.Suppressed++
			continue
		}
		s.Total++
		s.ByLevel[r.Findings[i].Level]++
	}
	return s
}

// scanLevels are the severity levels from the most to the least severe, the order reports
// list them in.
var scanLevels = []vuln.Level{vuln.Critical, vuln.High, vuln.Medium, vuln.Low, vuln.None, vuln.Unknown}

// WriteScan writes the scan report r to w in format f (one of ScanFormats). Nothing is
// written if the report cannot be encoded.
func WriteScan(w io.Writer, f Format, r *ScanReport, opts Options) error {
	if r == nil {
		return errors.New("writing scan report: no report")
	}
	var buf bytes.Buffer
	var err error
	switch f {
	case FormatTable:
		err = writeScanTable(&buf, r, opts)
	case FormatJSON:
		err = writeScanJSON(&buf, r)
	case FormatSARIF:
		err = writeScanSARIF(&buf, r)
	case FormatCycloneDXJSON:
		err = writeScanCycloneDX(&buf, r)
	default:
		return fmt.Errorf("writing scan report: %w %q for a scan report", ErrUnknownFormat, string(f))
	}
	if err != nil {
		return fmt.Errorf("writing %s scan report: %w", f, err)
	}
	if _, err := w.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("writing %s scan report: %w", f, err)
	}
	return nil
}

// sortedFindings returns a copy of fs in the order reports list them: most severe first, then
// by ID, package name, version, type, package URL and first location.
func sortedFindings(fs []vuln.Finding) []vuln.Finding {
	out := slices.Clone(fs)
	slices.SortStableFunc(out, func(a, b vuln.Finding) int {
		return cmp.Or(
			cmp.Compare(b.Level, a.Level),
			cmp.Compare(a.ID, b.ID),
			cmp.Compare(a.Package.Name, b.Package.Name),
			cmp.Compare(a.Package.Version, b.Package.Version),
			cmp.Compare(a.Package.Type, b.Package.Type),
			cmp.Compare(a.Package.PURL, b.Package.PURL),
			cmp.Compare(refPath(a.Package), refPath(b.Package)),
		)
	})
	return out
}

// refPath is the first file that declares a finding's package, or "".
func refPath(p vuln.PackageRef) string {
	if len(p.Locations) == 0 {
		return ""
	}
	return p.Locations[0].Path
}

// fixText says how a finding can be fixed: the fixed versions, else its fix status.
func fixText(f *vuln.Finding) string {
	if len(f.FixedVersions) > 0 {
		return strings.Join(f.FixedVersions, ", ")
	}
	switch f.FixStatus {
	case vuln.WillNotFix:
		return "will not fix"
	case vuln.NotFixed:
		return "not fixed"
	case vuln.Fixed:
		return "fixed"
	}
	return ""
}

// expiredText describes an expired ignore entry on one line.
func expiredText(e suppress.IgnoreEntry) string {
	s := e.ID
	if e.Package != "" {
		s += " (package " + e.Package + ")"
	}
	if e.Expires != nil {
		s += " expired " + e.Expires.UTC().Format(time.RFC3339)
	}
	if e.Source != "" {
		s += ", " + e.Source
		if e.Line > 0 {
			s += fmt.Sprintf(":%d", e.Line)
		}
	}
	return s
}

// suppressionText describes a suppression on one line: its reason and where it comes from.
func suppressionText(s *vuln.Suppression) string {
	text := cmp.Or(s.Reason, s.Kind)
	if s.Source != "" {
		text += " (" + s.Source + ")"
	}
	return text
}
