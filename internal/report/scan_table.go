package report

import (
	"bytes"
	"cmp"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/moatsec/moat/internal/vuln"
)

// maxTitle is the longest title, in characters, that the scan table shows; the json format
// has the whole summary.
const maxTitle = 72

// Foreground colours of the severity column. Every code, the reset included, is five bytes
// long, so that tabwriter, which counts bytes, still aligns the coloured column.
const (
	ansiBrightRed = "\x1b[91m"
	ansiRed       = "\x1b[31m"
	ansiYellow    = "\x1b[33m"
	ansiBlue      = "\x1b[34m"
	ansiDefaultFg = "\x1b[39m"
)

var levelColors = map[vuln.Level]string{
	vuln.Critical: ansiBrightRed,
	vuln.High:     ansiRed,
	vuln.Medium:   ansiYellow,
	vuln.Low:      ansiBlue,
}

// writeScanTable writes the findings that are not suppressed as an aligned table, most
// severe first, between a line that identifies the image and a summary with the counts per
// severity, the suppressed findings, expired ignore entries and warnings.
func writeScanTable(w io.Writer, r *ScanReport, opts Options) error {
	sum := r.Summary()
	fmt.Fprintln(w, scanHeading(r, sum))
	var shown []vuln.Finding
	for _, f := range sortedFindings(r.Findings) {
		if f.Suppressed == nil {
			shown = append(shown, f)
		}
	}
	if len(shown) > 0 {
		fmt.Fprintln(w)
		var tbuf bytes.Buffer
		tw := tabwriter.NewWriter(&tbuf, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "ID\t%s\tPACKAGE\tINSTALLED\tFIXED IN\tTITLE\n", severityCell("SEVERITY", vuln.Unknown, opts.Color))
		for _, f := range shown {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n",
				cell(f.ID), severityCell(strings.ToUpper(f.Level.String()), f.Level, opts.Color),
				cell(f.Package.Name), cell(f.Package.Version), cell(fixText(&f)), cell(title(f.Summary)))
		}
		if err := tw.Flush(); err != nil {
			return fmt.Errorf("aligning the table: %w", err)
		}
		header, rows, _ := bytes.Cut(tbuf.Bytes(), []byte("\n"))
		header = bytes.TrimRight(header, " ")
		if opts.Color {
			fmt.Fprintf(w, "%s%s%s\n", ansiBold, header, ansiReset)
		} else {
			fmt.Fprintf(w, "%s\n", header)
		}
		w.Write(rows)
	}
	fmt.Fprintf(w, "\n%s\n", summaryLine(sum))
	if len(r.ExpiredIgnores) > 0 {
		fmt.Fprintf(w, "\n%s expired and no longer applied; review:\n", countOf(len(r.ExpiredIgnores), "ignore entry", "ignore entries"))
		for _, e := range r.ExpiredIgnores {
			fmt.Fprintf(w, "  %s\n", cell(expiredText(e)))
		}
	}
	if n := len(r.Warnings); n > 0 {
		fmt.Fprintf(w, "\n%s (the json format lists them)\n", plural(n, "warning"))
	}
	if line := databaseLine(r.Database); line != "" {
		fmt.Fprintf(w, "\n%s\n", line)
	}
	return nil
}

// severityCell pads a severity to the width of the longest one and, with colour, wraps it in
// codes of the same length whatever the level, so that the column stays aligned.
func severityCell(text string, l vuln.Level, color bool) string {
	if !color {
		return text
	}
	return cmp.Or(levelColors[l], ansiDefaultFg) + text + ansiDefaultFg
}

// scanHeading is one line naming the image, its digest and distribution, and the number of
// findings.
func scanHeading(r *ScanReport, sum ScanSummary) string {
	parts := []string{"Image " + cell(cmp.Or(r.Image.Name, "(unnamed)"))}
	if v := imageVersion(r.Image); v != "" {
		parts = append(parts, cell(shortDigest(v)))
	}
	if d := r.Distro; d != nil {
		parts = append(parts, cell(distroName(d)))
	}
	count := countOf(sum.Total, "vulnerability", "vulnerabilities")
	if sum.Suppressed > 0 {
		count += fmt.Sprintf(" (%d suppressed)", sum.Suppressed)
	}
	return strings.Join(append(parts, count), "  ")
}

// summaryLine counts the findings that are not suppressed per severity, most severe first.
func summaryLine(sum ScanSummary) string {
	counts := make([]string, 0, len(scanLevels))
	for _, l := range scanLevels {
		counts = append(counts, fmt.Sprintf("%s %d", l, sum.ByLevel[l]))
	}
	line := fmt.Sprintf("Total: %d (%s)", sum.Total, strings.Join(counts, ", "))
	if sum.Suppressed > 0 {
		line += fmt.Sprintf("; %d suppressed by ignore entries or VEX statements", sum.Suppressed)
	}
	return line
}

// databaseLine says when the database was built and how many records it holds.
func databaseLine(db DatabaseInfo) string {
	records := 0
	for _, n := range db.Sources {
		records += n
	}
	var parts []string
	if !db.Built.IsZero() {
		parts = append(parts, "built "+db.Built.UTC().Format(time.RFC3339))
	}
	if len(db.Sources) > 0 {
		parts = append(parts, fmt.Sprintf("%s from %s", plural(records, "record"), plural(len(db.Sources), "source")))
	}
	if len(parts) == 0 {
		return ""
	}
	return "Database " + strings.Join(parts, ", ")
}

// countOf is n followed by the singular or the plural noun.
func countOf(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// title is a summary cut to maxTitle characters.
func title(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) > maxTitle {
		s = string([]rune(s)[:maxTitle-1]) + "…"
	}
	return s
}
