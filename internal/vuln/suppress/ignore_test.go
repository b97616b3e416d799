package suppress

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moatsec/moat/internal/sbom"
	"github.com/moatsec/moat/internal/vuln"
)

// testFindings are findings in a Debian image with a Go binary: zlib1g (source zlib), libssl3
// (source openssl) and golang.org/x/net.
func testFindings() []vuln.Finding {
	deb := func(name, version, source, id string, aliases ...string) vuln.Finding {
		return vuln.Finding{
			ID: id, Aliases: aliases, Ecosystem: "Debian:12", Name: source,
			Package: vuln.PackageRef{
				Name: name, Version: version, Type: sbom.TypeDeb,
				PURL:   "pkg:deb/debian/" + name + "@" + version + "?arch=amd64&distro=debian-12",
				Source: &sbom.Source{Name: source},
			},
		}
	}
	return []vuln.Finding{
		deb("zlib1g", "1:1.2.13.dfsg-1", "zlib", "CVE-2023-45853"),
		deb("libssl3", "3.0.11-1~deb12u2", "openssl", "CVE-2024-0727"),
		deb("libssl3", "3.0.11-1~deb12u2", "openssl", "CVE-2024-2511"),
		{
			ID: "GO-2024-2687", Aliases: []string{"CVE-2023-45288", "GHSA-4v7x-pqxf-cx7m"},
			Ecosystem: "Go", Name: "golang.org/x/net",
			Package: vuln.PackageRef{
				Name: "golang.org/x/net", Version: "v0.17.0", Type: sbom.TypeGolang,
				PURL: "pkg:golang/golang.org/x/net@v0.17.0",
			},
		},
	}
}

func TestLoadIgnore(t *testing.T) {
	path := filepath.Join("testdata", "moatignore.yaml")
	f, err := LoadIgnore(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Entries) != 3 {
		t.Fatalf("%d entries, want 3", len(f.Entries))
	}
	e := f.Entries[1]
	if e.ID != "GHSA-qppj-fm5r-hxr3" || e.Package != "pkg:golang/golang.org/x/net" || e.Reason != "the HTTP/2 server is not used" ||
		e.Source != path || e.Line != 6 || e.Expires == nil || !e.Expires.Equal(time.Date(2024, 7, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("entry 1 = %+v", e)
	}
	if got := f.Entries[2].Expires; got == nil || !got.Equal(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("RFC 3339 expiry = %v", got)
	}

	_, err = LoadIgnore(filepath.Join(t.TempDir(), IgnoreFileName))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v, want fs.ErrNotExist", err)
	}

	big := filepath.Join(t.TempDir(), "big.yaml")
	if err := os.WriteFile(big, []byte("# "+strings.Repeat("x", MaxIgnoreSize)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadIgnore(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("oversized file: %v", err)
	}
}

func TestParseIgnore(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		entries int
		wantErr string // substring of the error; "" for success
	}{
		{"empty", "", 0, ""},
		{"comments only", "# nothing yet\n", 0, ""},
		{"null list", "ignore:\n", 0, ""},
		{"empty list", "ignore: []\n", 0, ""},
		{"minimal", "ignore:\n  - id: CVE-1\n    reason: r\n", 1, ""},
		{"number-like id and date expiry are text", "ignore:\n  - id: 2024\n    reason: r\n    expires: 2024-01-02\n", 1, ""},
		{"unknown top-level", "ignores:\n  - id: CVE-1\n", 0, "f.yaml:1:1: ignores: unknown field (allowed: ignore)"},
		{"unknown entry field", "ignore:\n  - id: CVE-1\n    reason: r\n    expiry: 2024-01-01\n", 0, "f.yaml:4:5: ignore[0].expiry: unknown field"},
		{"missing id", "ignore:\n  - reason: r\n", 0, "f.yaml:2:5: ignore[0].id: required"},
		{"missing reason", "ignore:\n  - id: CVE-1\n  - id: CVE-2\n", 0, "f.yaml:2:5: ignore[0].reason: required: why the finding is accepted"},
		{"empty reason", "ignore:\n  - id: CVE-1\n    reason: \"  \"\n", 0, "ignore[0].reason: must not be empty"},
		{"null reason", "ignore:\n  - id: CVE-1\n    reason:\n", 0, "ignore[0].reason: must not be empty"},
		{"id with space", "ignore:\n  - id: CVE 1\n    reason: r\n", 0, "ignore[0].id: \"CVE 1\" is not a vulnerability ID"},
		{"list reason", "ignore:\n  - id: CVE-1\n    reason: [a, b]\n", 0, "f.yaml:3:13: ignore[0].reason: want a string, got a list"},
		{"bad expiry", "ignore:\n  - id: CVE-1\n    reason: r\n    expires: next week\n", 0, "f.yaml:4:14: ignore[0].expires: \"next week\": want a date (YYYY-MM-DD) or an RFC 3339 time"},
		{"impossible date", "ignore:\n  - id: CVE-1\n    reason: r\n    expires: 2024-02-30\n", 0, "ignore[0].expires"},
		{"bad purl", "ignore:\n  - id: CVE-1\n    reason: r\n    package: \"pkg:\"\n", 0, "ignore[0].package: invalid package URL"},
		{"duplicate key", "ignore:\n  - id: CVE-1\n    id: CVE-2\n    reason: r\n", 0, "f.yaml:3:5: ignore[0].id: given twice"},
		{"alias", "ignore:\n  - &e\n    id: CVE-1\n    reason: r\n  - *e\n", 0, "YAML aliases are not supported"},
		{"alias value", "ignore:\n  - id: &i CVE-1\n    reason: *i\n", 0, "f.yaml:3:13: ignore[0].reason: YAML aliases are not supported"},
		{"top level list", "- id: CVE-1\n  reason: r\n", 0, "f.yaml:1:1: want a mapping, got a list"},
		{"ignore not a list", "ignore: CVE-1\n", 0, "f.yaml:1:9: ignore: want a list of entries, got \"CVE-1\""},
		{"entry not a mapping", "ignore:\n  - CVE-1\n", 0, "f.yaml:2:5: ignore[0]: want a mapping"},
		{"two documents", "ignore: []\n---\nignore: []\n", 0, "more than one YAML document"},
		{"syntax error", "ignore:\n  - id: [CVE-1\n", 0, "f.yaml:"},
		{"tab indentation", "ignore:\n\t- id: CVE-1\n", 0, "f.yaml:2"},
		{"invalid UTF-8", "ignore:\n  - id: CVE-\xff\n    reason: r\n", 0, "not valid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := ParseIgnore([]byte(tt.in), "f.yaml")
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if len(f.Entries) != tt.entries {
					t.Errorf("%d entries, want %d", len(f.Entries), tt.entries)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %q", tt.wantErr)
			}
			var fe *FileError
			if !errors.As(err, &fe) {
				t.Errorf("error %T is not a *FileError", err)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestIgnoreMatches(t *testing.T) {
	fs := testFindings()
	zlib, ssl, goNet := &fs[0], &fs[1], &fs[3]
	tests := []struct {
		name  string
		entry string // id and package, "ID" or "ID PACKAGE"
		f     *vuln.Finding
		want  bool
	}{
		{"id", "CVE-2023-45853", zlib, true},
		{"id any case", "cve-2023-45853", zlib, true},
		{"other id", "CVE-2023-45854", zlib, false},
		{"alias", "CVE-2023-45288", goNet, true},
		{"alias any case", "ghsa-4v7x-pqxf-cx7m", goNet, true},
		{"package name", "CVE-2024-0727 libssl3", ssl, true},
		{"matched (source) name", "CVE-2024-0727 openssl", ssl, true},
		{"other package", "CVE-2024-0727 libssl-dev", ssl, false},
		{"purl without version", "CVE-2024-0727 pkg:deb/debian/libssl3", ssl, true},
		{"purl with version", "CVE-2024-0727 pkg:deb/debian/libssl3@3.0.11-1~deb12u2", ssl, true},
		{"purl with other version", "CVE-2024-0727 pkg:deb/debian/libssl3@3.0.13-1~deb12u1", ssl, false},
		{"purl qualifiers in other order", "CVE-2024-0727 pkg:deb/debian/libssl3?distro=debian-12&arch=amd64", ssl, true},
		{"purl qualifier not on the package", "CVE-2024-0727 pkg:deb/debian/libssl3?arch=arm64", ssl, false},
		{"purl other namespace", "CVE-2024-0727 pkg:deb/ubuntu/libssl3", ssl, false},
		{"purl other type", "CVE-2024-0727 pkg:rpm/debian/libssl3", ssl, false},
		{"purl type any case", "CVE-2024-0727 pkg:DEB/debian/libssl3", ssl, true},
		{"go purl", "GO-2024-2687 pkg:golang/golang.org/x/net", goNet, true},
		{"go purl, alias id", "CVE-2023-45288 pkg:golang/golang.org/x/net@v0.17.0", goNet, true},
	}
	for _, tt := range tests {
		id, pkg, _ := strings.Cut(tt.entry, " ")
		yaml := "ignore:\n  - id: " + id + "\n    reason: r\n"
		if pkg != "" {
			yaml += "    package: \"" + pkg + "\"\n"
		}
		f, err := ParseIgnore([]byte(yaml), "f.yaml")
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if got := f.Entries[0].Matches(tt.f); got != tt.want {
			t.Errorf("%s: Matches = %v, want %v", tt.name, got, tt.want)
		}
		// An entry built by hand, not parsed, matches the same way.
		hand := IgnoreEntry{ID: id, Package: pkg, Reason: "r"}
		if got := hand.Matches(tt.f); got != tt.want {
			t.Errorf("%s: hand-built entry Matches = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestIgnoreApply(t *testing.T) {
	f, err := LoadIgnore(filepath.Join("testdata", "moatignore.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	t.Run("before expiry", func(t *testing.T) {
		fs := testFindings()
		fs[3].Aliases = append(fs[3].Aliases, "GHSA-qppj-fm5r-hxr3")
		expired := f.Apply(fs, time.Date(2024, 6, 30, 23, 59, 59, 0, time.UTC))
		if len(expired) != 0 {
			t.Errorf("expired = %+v", expired)
		}
		want := []string{"minizip is not built into the image", "PKCS12 files are never parsed", "", "the HTTP/2 server is not used"}
		for i, w := range want {
			got := ""
			if s := fs[i].Suppressed; s != nil {
				got = s.Reason
				if s.Kind != KindIgnore || s.Source != f.Path {
					t.Errorf("finding %d: suppression %+v", i, s)
				}
			}
			if got != w {
				t.Errorf("finding %d (%s): reason %q, want %q", i, fs[i].ID, got, w)
			}
		}
		if e := fs[3].Suppressed.Expires; e == nil || !e.Equal(time.Date(2024, 7, 1, 0, 0, 0, 0, time.UTC)) {
			t.Errorf("suppression expiry = %v", e)
		}
		// The suppression has its own copy of the expiry.
		*fs[3].Suppressed.Expires = time.Time{}
		if f.Entries[1].Expires.IsZero() {
			t.Error("changing a suppression's expiry changed the entry")
		}
	})
	t.Run("at expiry", func(t *testing.T) {
		fs := testFindings()
		fs[3].Aliases = append(fs[3].Aliases, "GHSA-qppj-fm5r-hxr3")
		expired := f.Apply(fs, time.Date(2024, 7, 1, 0, 0, 0, 0, time.UTC))
		if len(expired) != 1 || expired[0].ID != "GHSA-qppj-fm5r-hxr3" || expired[0].Line != 6 {
			t.Errorf("expired = %+v", expired)
		}
		if fs[3].Suppressed != nil {
			t.Errorf("an expired entry suppressed %s: %+v", fs[3].ID, fs[3].Suppressed)
		}
		if fs[0].Suppressed == nil {
			t.Error("an entry without expiry stopped applying")
		}
	})
	t.Run("expired entries are reported even when they match nothing", func(t *testing.T) {
		expired := f.Apply(nil, time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC))
		if len(expired) != 2 || expired[0].ID != "GHSA-qppj-fm5r-hxr3" || expired[1].ID != "cve-2024-0727" {
			t.Errorf("expired = %+v", expired)
		}
	})
	t.Run("first entry wins, earlier suppressions stay", func(t *testing.T) {
		g, err := ParseIgnore([]byte("ignore:\n  - id: CVE-2024-0727\n    reason: first\n  - id: CVE-2024-0727\n    reason: second\n"), "g.yaml")
		if err != nil {
			t.Fatal(err)
		}
		fs := testFindings()
		prior := &vuln.Suppression{Kind: KindVEX, Reason: "vex: fixed", Source: "a.json"}
		fs[0].Suppressed = prior
		g.Apply(fs, time.Now())
		if fs[1].Suppressed == nil || fs[1].Suppressed.Reason != "first" {
			t.Errorf("suppression = %+v, want the first entry's", fs[1].Suppressed)
		}
		if fs[0].Suppressed != prior {
			t.Error("an earlier suppression was replaced")
		}
	})
}

func TestFileError(t *testing.T) {
	tests := []struct {
		err  FileError
		want string
	}{
		{FileError{Path: "a", Msg: "m"}, "a: m"},
		{FileError{Path: "a", Line: 3, Msg: "m"}, "a:3: m"},
		{FileError{Path: "a", Line: 3, Column: 4, Field: "f", Msg: "m"}, "a:3:4: f: m"},
		{FileError{Path: "a", Field: "f", Msg: "m"}, "a: f: m"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("%+v: %q, want %q", tt.err, got, tt.want)
		}
	}
}
