package report

import (
	"bytes"
	"cmp"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"unicode"
	"unicode/utf8"

	"github.com/moatsec/moat/internal/sbom"
)

// maxCell is the longest text, in runes, that one table cell shows; a name that long is more
// likely an attack on the terminal than a package.
const maxCell = 96

// ownedMarker follows the type of a language package whose files an OS package installed.
const ownedMarker = "*"

// ANSI escape sequences for the table.
const (
	ansiBold  = "\x1b[1m"
	ansiReset = "\x1b[0m"
)

// writeTable writes the packages as an aligned table, preceded by a line that identifies the
// image and followed by notes on markers and warnings.
func writeTable(w io.Writer, inv *sbom.Inventory, opts Options) error {
	fmt.Fprintln(w, tableHeading(inv))
	pkgs := sortedPackages(inv.Packages)
	if len(pkgs) > 0 {
		fmt.Fprintln(w)
		var tbuf bytes.Buffer
		tw := tabwriter.NewWriter(&tbuf, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tVERSION\tTYPE\tLAYER")
		owned := false
		for _, p := range pkgs {
			typ := cell(string(p.Type))
			if p.OwnedBy != "" {
				typ += ownedMarker
				owned = true
			}
			layer := "-"
			if p.Layer != nil {
				layer = "#" + strconv.Itoa(p.Layer.Index)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", cell(p.Name), cell(p.Version), typ, layer)
		}
		if err := tw.Flush(); err != nil {
			return fmt.Errorf("aligning the table: %w", err)
		}
		header, rows, _ := bytes.Cut(tbuf.Bytes(), []byte("\n"))
		if opts.Color {
			fmt.Fprintf(w, "%s%s%s\n", ansiBold, header, ansiReset)
		} else {
			fmt.Fprintf(w, "%s\n", header)
		}
		w.Write(rows)
		if owned {
			fmt.Fprintf(w, "\n%s installed by an OS package: matched through the distribution's advisories\n", ownedMarker)
		}
	}
	if n := len(inv.Warnings); n > 0 {
		fmt.Fprintf(w, "\n%s (the json format lists them)\n", plural(n, "warning"))
	}
	return nil
}

// tableHeading is one line naming the image, its digest, its distribution and how many
// packages it holds.
func tableHeading(inv *sbom.Inventory) string {
	parts := []string{"Image " + cell(cmp.Or(inv.Image.Name, "(unnamed)"))}
	if v := imageVersion(inv.Image); v != "" {
		parts = append(parts, cell(shortDigest(v)))
	}
	if d := inv.Distro; d != nil {
		parts = append(parts, cell(distroName(d)))
	}
	parts = append(parts, plural(len(inv.Packages), "package"))
	return strings.Join(parts, "  ")
}

// distroName is how a person knows the distribution: its pretty name, else "id version".
func distroName(d *sbom.Release) string {
	if d.PrettyName != "" {
		return d.PrettyName
	}
	return strings.TrimSpace(d.ID + " " + d.VersionID)
}

// shortDigest shortens "sha256:<64 hex>" to its first 12 hex digits, as docker does.
func shortDigest(d string) string {
	if h, ok := sha256Hex(d); ok {
		return "sha256:" + h[:12]
	}
	return d
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}

// cell makes untrusted text safe to print in a terminal table: control and other
// non-printing characters (escape sequences, tabs, newlines, bidirectional overrides) are
// shown escaped, and long text is cut.
func cell(s string) string {
	if s == "" {
		return "-"
	}
	clean := true
	for _, r := range s {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			clean = false
			break
		}
	}
	if !clean {
		q := strconv.QuoteToGraphic(s)
		s = q[1 : len(q)-1]
	}
	if utf8.RuneCountInString(s) > maxCell {
		r := []rune(s)
		s = string(r[:maxCell-1]) + "…"
	}
	return s
}
