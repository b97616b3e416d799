package report

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/moatsec/moat/internal/sbom"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

func write(t *testing.T, f Format, inv *sbom.Inventory, opts Options) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := WriteInventory(&buf, f, inv, opts); err != nil {
		t.Fatalf("WriteInventory(%s): %v", f, err)
	}
	return buf.Bytes()
}

func TestGolden(t *testing.T) {
	tests := []struct {
		file   string
		format Format
		opts   Options
	}{
		{"table.txt", FormatTable, Options{}},
		{"table-color.txt", FormatTable, Options{Color: true}},
		{"inventory.json", FormatJSON, Options{}},
		{"cyclonedx.json", FormatCycloneDXJSON, Options{}},
		{"spdx.json", FormatSPDXJSON, Options{}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got := write(t, tt.format, testInventory(), tt.opts)
			path := filepath.Join("testdata", "golden", tt.file)
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("reading golden file (run go test ./internal/report -update to create it): %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from the golden file; run go test ./internal/report -update and review the diff.\ngot:\n%s", tt.file, got)
			}
		})
	}
}

func TestParseFormat(t *testing.T) {
	tests := []struct {
		in      string
		want    Format
		wantErr bool
	}{
		{"table", FormatTable, false},
		{"json", FormatJSON, false},
		{"moat-json", FormatJSON, false},
		{"cyclonedx-json", FormatCycloneDXJSON, false},
		{"cyclonedx", FormatCycloneDXJSON, false},
		{"cdx", FormatCycloneDXJSON, false},
		{"CycloneDX", FormatCycloneDXJSON, false},
		{"spdx-json", FormatSPDXJSON, false},
		{"spdx", FormatSPDXJSON, false},
		{" SPDX ", FormatSPDXJSON, false},
		{"", "", true},
		{"xml", "", true},
		{"spdx-tag-value", "", true},
	}
	for _, tt := range tests {
		got, err := ParseFormat(tt.in)
		if tt.wantErr {
			if !errors.Is(err, ErrUnknownFormat) {
				t.Errorf("ParseFormat(%q) error = %v, want ErrUnknownFormat", tt.in, err)
				continue
			}
			for _, f := range Formats() {
				if !strings.Contains(err.Error(), string(f)) {
					t.Errorf("ParseFormat(%q) error %q does not list %s", tt.in, err, f)
				}
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseFormat(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestWriteInventoryErrors(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteInventory(&buf, "yaml", testInventory(), Options{}); !errors.Is(err, ErrUnknownFormat) {
		t.Errorf("unknown format: error = %v, want ErrUnknownFormat", err)
	}
	if err := WriteInventory(&buf, FormatJSON, nil, Options{}); err == nil {
		t.Error("nil inventory: no error")
	}
	if buf.Len() != 0 {
		t.Errorf("failed writes wrote %q", buf.String())
	}
	if err := WriteInventory(failWriter{}, FormatJSON, testInventory(), Options{}); err == nil {
		t.Error("failing writer: no error")
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

// TestDeterministic checks that output depends only on the inventory, and that the document
// identifiers change with the image and the tool version.
func TestDeterministic(t *testing.T) {
	for _, f := range Formats() {
		a := write(t, f, testInventory(), Options{})
		b := write(t, f, testInventory(), Options{})
		if !bytes.Equal(a, b) {
			t.Errorf("%s: two writes of the same inventory differ", f)
		}
	}

	serial := regexp.MustCompile(`urn:uuid:[0-9a-f-]{36}`)
	ns := regexp.MustCompile(`"documentNamespace": "([^"]+)"`)
	ids := func(inv *sbom.Inventory) (string, string) {
		return string(serial.Find(write(t, FormatCycloneDXJSON, inv, Options{}))),
			string(ns.FindSubmatch(write(t, FormatSPDXJSON, inv, Options{}))[1])
	}
	baseSerial, baseNS := ids(testInventory())
	otherImage := testInventory()
	otherImage.Image.Digest = dg("ef")
	otherTool := testInventory()
	otherTool.Tool.Version = "0.2.0"
	for name, inv := range map[string]*sbom.Inventory{"digest": otherImage, "tool version": otherTool} {
		s, n := ids(inv)
		if s == baseSerial || n == baseNS {
			t.Errorf("changing the %s kept the document identifiers %s, %s", name, s, n)
		}
	}
	// Without any digest, the identifiers come from the content.
	a, b := emptyInventory(), emptyInventory()
	b.Packages = []sbom.Package{{Name: "x", Version: "1", Type: sbom.TypeNPM, FoundBy: "npm"}}
	if sa, _ := ids(a); sa == func() string { s, _ := ids(b); return s }() {
		t.Error("images without digests but with different packages got the same serial number")
	}
	custom := string(ns.FindSubmatch(write(t, FormatSPDXJSON, testInventory(), Options{Namespace: "https://sbom.example.com/spdx/"}))[1])
	if !strings.HasPrefix(custom, "https://sbom.example.com/spdx/registry.example.com-team-app-1.4-") {
		t.Errorf("custom namespace = %s", custom)
	}
}

func TestTable(t *testing.T) {
	out := string(write(t, FormatTable, testInventory(), Options{}))
	lines := strings.Split(out, "\n")
	if want := "Image registry.example.com/team/app:1.4  sha256:abababababab  Debian GNU/Linux 12 (bookworm)  11 packages"; lines[0] != want {
		t.Errorf("heading = %q, want %q", lines[0], want)
	}
	if !strings.HasPrefix(lines[2], "NAME ") || !strings.HasSuffix(lines[2], "LAYER") {
		t.Errorf("column header = %q", lines[2])
	}
	var types []string
	for _, l := range lines[3:] {
		if l == "" {
			break
		}
		types = append(types, strings.Fields(l)[2])
	}
	wantTypes := []string{"composer", "deb", "deb", "deb", "gem", "golang", "maven", "npm", "npm", "npm", "pypi*"}
	if strings.Join(types, " ") != strings.Join(wantTypes, " ") {
		t.Errorf("types in order = %v, want %v", types, wantTypes)
	}
	if !strings.Contains(out, "\n2 warnings") {
		t.Errorf("table does not end with the warning count:\n%s", out)
	}
	if strings.Contains(out, "\x1b") {
		t.Error("table without Color has escape sequences")
	}
	colored := string(write(t, FormatTable, testInventory(), Options{Color: true}))
	if !strings.Contains(colored, ansiBold+"NAME") {
		t.Error("table with Color has no bold header")
	}

	empty := string(write(t, FormatTable, emptyInventory(), Options{}))
	if empty != "Image dir:./rootfs  0 packages\n" {
		t.Errorf("empty table = %q", empty)
	}
}

func TestTableEscapesHostileText(t *testing.T) {
	out := string(write(t, FormatTable, hostileInventory(), Options{Color: true}))
	// The only escape sequences are the two of the bold header.
	if n := strings.Count(out, "\x1b"); n != 2 {
		t.Errorf("table has %d escape characters, want 2:\n%q", n, out)
	}
	for _, bad := range []string{"\u202e", "\x07", "\t", "\xff"} {
		if strings.Contains(out, bad) {
			t.Errorf("table contains %q", bad)
		}
	}
	for _, l := range strings.Split(out, "\n") {
		if n := len([]rune(l)); n > 4*maxCell+20 {
			t.Errorf("line of %d runes: long cells are not cut", n)
		}
	}
	// Every package is on one line: heading, blank, header, packages, blank, marker note,
	// blank, warning count.
	if got := strings.Count(out, "\n"); got != 3+len(hostileInventory().Packages)+4 {
		t.Errorf("table has %d lines:\n%s", got, out)
	}
}

func TestCell(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "-"},
		{"plain-1.0", "plain-1.0"},
		{"with space", "with space"},
		{"tab\there", `tab\there`},
		{"esc\x1b[31m", `esc\x1b[31m`},
		{"rtl\u202eoverride", `rtl\u202eoverride`},
		{"bad\xff", `bad\xff`},
		{"日本語", "日本語"},
		{strings.Repeat("é", maxCell+1), strings.Repeat("é", maxCell-1) + "…"},
	}
	for _, tt := range tests {
		if got := cell(tt.in); got != tt.want {
			t.Errorf("cell(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestDocumentUUID(t *testing.T) {
	u := documentUUID(FormatCycloneDXJSON, testInventory())
	if !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(u) {
		t.Errorf("documentUUID = %s, not a version 5 UUID", u)
	}
	if u == documentUUID(FormatSPDXJSON, testInventory()) {
		t.Error("CycloneDX and SPDX documents share an identifier")
	}
}
