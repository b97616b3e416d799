package report

import (
	"strings"
	"testing"
)

func TestSPDXLicenseList(t *testing.T) {
	l := loadSPDXList()
	if len(l.ids) < 400 || l.version == "" {
		t.Fatalf("license list has %d ids, version %q", len(l.ids), l.version)
	}
	for _, id := range []string{"MIT", "Apache-2.0", "GPL-2.0-or-later", "Classpath-exception-2.0"} {
		if got, ok := spdxLicenseID(strings.ToUpper(id)); !ok || got != id {
			t.Errorf("spdxLicenseID(%q) = %q, %v", strings.ToUpper(id), got, ok)
		}
	}
}

func TestParseLicenseExpression(t *testing.T) {
	tests := []struct {
		in       string
		want     string // "" when invalid
		compound bool
	}{
		{"MIT", "MIT", false},
		{"mit", "MIT", false},
		{"  MIT  ", "MIT", false},
		{"MIT OR Apache-2.0", "MIT OR Apache-2.0", true},
		{"(MIT OR Apache-2.0) AND BSD-3-Clause", "(MIT OR Apache-2.0) AND BSD-3-Clause", true},
		{"(mit   OR\tapache-2.0)", "(MIT OR Apache-2.0)", true},
		{"GPL-2.0-only WITH Classpath-exception-2.0", "GPL-2.0-only WITH Classpath-exception-2.0", true},
		{"MPL-2.0+", "MPL-2.0+", true},
		{"LicenseRef-Acme.1 OR MIT", "LicenseRef-Acme.1 OR MIT", true},
		{"LicenseRef-Acme", "LicenseRef-Acme", false},
		{"", "", false},
		{"MIT or Apache-2.0", "", false},
		{"MIT AND", "", false},
		{"AND MIT", "", false},
		{"(MIT", "", false},
		{"MIT)", "", false},
		{"()", "", false},
		{"MIT WITH", "", false},
		{"MIT WITH NotAnException", "", false},
		{"GPL", "", false},
		{"Foo+", "", false},
		{"LicenseRef-", "", false},
		{"LicenseRef-a:b", "", false},
		{"DocumentRef-doc:LicenseRef-x", "", false},
		{"MIT/X11", "", false},
		{strings.Repeat("(", maxExpressionDepth) + "MIT" + strings.Repeat(")", maxExpressionDepth), strings.Repeat("(", maxExpressionDepth) + "MIT" + strings.Repeat(")", maxExpressionDepth), false},
		{strings.Repeat("(", maxExpressionDepth+1) + "MIT" + strings.Repeat(")", maxExpressionDepth+1), "", false},
		{strings.Repeat("MIT OR ", 200) + "MIT", "", false},
	}
	for _, tt := range tests {
		e, ok := parseLicenseExpression(tt.in)
		if ok != (tt.want != "") || e.text != tt.want || (ok && e.compound != tt.compound) {
			t.Errorf("parseLicenseExpression(%q) = %q, compound %v, ok %v; want %q, compound %v", tt.in, e.text, e.compound, ok, tt.want, tt.compound)
		}
	}
}

// FuzzLicenses checks that any license strings give valid licenses in both formats: the SPDX
// expression parses and declares its references, and no CycloneDX license is empty.
func FuzzLicenses(f *testing.F) {
	for _, s := range []string{"MIT", "MIT OR Apache-2.0", "(MIT AND (ISC OR 0BSD))", "GPL-2.0 WITH Classpath-exception-2.0",
		"LicenseRef-x", "Apache License 2.0", "((((", "NONE", "GPL-2+", "\xff\x00"} {
		f.Add(s, "BSD-3-Clause")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		for _, ls := range [][]string{{a}, {a, b}} {
			sb := newSPDXBuilder()
			expr := sb.license(ls)
			if expr != noAssertion && expr != none {
				e, ok := parseLicenseExpression(expr)
				if !ok || e.text != expr {
					t.Fatalf("license(%q) = %q, not a canonical SPDX expression", ls, expr)
				}
				declared := map[string]bool{}
				for _, o := range sb.others {
					if !isLicenseRef(o.LicenseIdentifier) {
						t.Fatalf("license(%q) declared %q", ls, o.LicenseIdentifier)
					}
					declared[o.LicenseIdentifier] = true
				}
				for _, r := range e.refs {
					if !declared[r] {
						t.Fatalf("license(%q) = %q uses undeclared %s", ls, expr, r)
					}
				}
			}
			if l := cdxLicenses(ls); l != nil {
				for _, c := range *l {
					if c.Expression == "" && (c.License == nil || c.License.ID == "" && c.License.Name == "") {
						t.Fatalf("cdxLicenses(%q) has an empty entry", ls)
					}
				}
			}
		}
	})
}
