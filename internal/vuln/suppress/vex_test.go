package suppress

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moatsec/moat/internal/sbom"
	"github.com/moatsec/moat/internal/vuln"
)

func dg(b string) string { return "sha256:" + strings.Repeat(b, 32) }

// testImage is the image testFindings are in.
func testImage() sbom.ImageInfo {
	return sbom.ImageInfo{
		Name:        "registry.example.com/team/app:1.4",
		Source:      "registry",
		Reference:   "registry.example.com/team/app@" + dg("ab"),
		Digest:      dg("ab"),
		ID:          dg("cd"),
		RepoDigests: []string{"mirror.example.com/app@" + dg("ef")},
	}
}

func TestLoadVEX(t *testing.T) {
	path := filepath.Join("testdata", "image.openvex.json")
	doc, err := LoadVEX(path)
	if err != nil {
		t.Fatal(err)
	}
	if doc.Len() != 3 || doc.Path != path {
		t.Fatalf("%s: %d statements", doc.Path, doc.Len())
	}
	fs := testFindings()
	if n := ApplyVEX(fs, testImage(), doc); n != 2 {
		t.Errorf("ApplyVEX suppressed %d findings, want 2", n)
	}
	want := []string{
		"vex: not_affected (vulnerable_code_not_in_execute_path): minizip is not linked into any binary",
		"", // CVE-2024-0727: no statement
		"", // CVE-2024-2511: affected
		"vex: fixed",
	}
	for i, w := range want {
		got := ""
		if s := fs[i].Suppressed; s != nil {
			got = s.Reason
			if s.Kind != KindVEX || s.Source != path || s.Expires != nil {
				t.Errorf("finding %d: suppression %+v", i, s)
			}
		}
		if got != w {
			t.Errorf("finding %d (%s): reason %q, want %q", i, fs[i].ID, got, w)
		}
	}

	big := filepath.Join(t.TempDir(), "big.json")
	if err := os.WriteFile(big, make([]byte, MaxVEXSize+1), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadVEX(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("oversized document: %v", err)
	}
}

// vexDoc is an OpenVEX document with the given statements (JSON objects, comma-separated).
func vexDoc(statements string) string {
	return `{"@context": "https://openvex.dev/ns/v0.2.0", "@id": "https://example.com/vex/1",
"author": "t", "timestamp": "2024-06-01T00:00:00Z", "version": 1, "statements": [` + statements + `]}`
}

// stmt is one statement: a vulnerability name, a status and products (JSON).
func stmt(vulnName, status, products string, extra ...string) string {
	s := fmt.Sprintf(`{"vulnerability": {"name": %q}, "status": %q, "products": %s`, vulnName, status, products)
	if status == "not_affected" && len(extra) == 0 {
		s += `, "justification": "component_not_present"`
	}
	for _, e := range extra {
		s += ", " + e
	}
	return s + "}"
}

func TestParseVEXErrors(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"not JSON", "{\n  \"@context\": \"https://openvex.dev/ns/v0.2.0\",\n  oops\n}", "v.json:3:3: invalid character 'o'"},
		{"empty", "", "v.json:1:1: unexpected end of JSON input"},
		{"no context", `{"statements": []}`, "v.json: @context: not an OpenVEX document"},
		{"other context", `{"@context": "https://cyclonedx.org/"}`, "not an OpenVEX document"},
		{"CycloneDX", `{"bomFormat": "CycloneDX", "specVersion": "1.6"}`, "not an OpenVEX document"},
		{"v0.0.1", `{"@context": "https://openvex.dev/ns", "statements": [{"vulnerability": "CVE-1", "products": ["pkg:deb/debian/a"], "status": "fixed"}]}`,
			"v0.0.1 documents are not supported"},
		{"wrong type", vexDoc(`{"vulnerability": {"name": 5}}`), "v.json:2:"},
		{"bad timestamp", `{"@context": "https://openvex.dev/ns/v0.2.0", "timestamp": "yesterday"}`, "v.json: "},
		{"no vulnerability", vexDoc(`{"status": "fixed", "products": [{"@id": "pkg:deb/debian/a"}]}`), "statements[0].vulnerability.name: required"},
		{"unknown status", vexDoc(stmt("CVE-1", "ok", `[{"@id": "pkg:deb/debian/a"}]`)), `statements[0].status: unknown status "ok"`},
		{"no status", vexDoc(`{"vulnerability": {"name": "CVE-1"}, "products": [{"@id": "pkg:deb/debian/a"}]}`), `statements[0].status: unknown status ""`},
		{"not_affected without justification", vexDoc(stmt("CVE-1", "not_affected", `[{"@id": "pkg:deb/debian/a"}]`, `"status_notes": "n"`)),
			"statements[0].justification: a not_affected statement needs a justification or an impact_statement"},
		{"unknown justification", vexDoc(stmt("CVE-1", "not_affected", `[{"@id": "pkg:deb/debian/a"}]`, `"justification": "trust_me"`)),
			`statements[0].justification: unknown justification "trust_me"`},
		{"no products", vexDoc(stmt("CVE-1", "fixed", `[]`)), "statements[0].products: required"},
		{"empty product", vexDoc(stmt("CVE-1", "fixed", `[{"subcomponents": [{"@id": "pkg:deb/debian/a"}]}]`)), "statements[0].products[0]: the product has no"},
		{"empty subcomponent", vexDoc(`{"vulnerability": {"name": "CVE-0"}, "status": "fixed", "products": [{"@id": "pkg:deb/debian/a"}]}, ` +
			stmt("CVE-1", "fixed", `[{"@id": "x", "subcomponents": [{}]}]`)), "statements[1].products[0].subcomponents[0]: the subcomponent has no"},
		{"invalid UTF-8", "{\"@context\": \"https://openvex.dev/ns/v0.2.0\", \"author\": \"\xff\"}", "not valid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseVEX([]byte(tt.in), "v.json")
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			var fe *FileError
			if !errors.As(err, &fe) {
				t.Errorf("error %T is not a *FileError", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestApplyVEX(t *testing.T) {
	img := testImage()
	// The findings are testFindings: 0 zlib1g CVE-2023-45853, 1 libssl3 CVE-2024-0727,
	// 2 libssl3 CVE-2024-2511, 3 golang.org/x/net GO-2024-2687 (aliases CVE-2023-45288,
	// GHSA-4v7x-pqxf-cx7m).
	tests := []struct {
		name string
		docs []string // statements of each document
		want []int    // the findings suppressed
	}{
		{"package purl", []string{stmt("CVE-2024-0727", "not_affected", `[{"@id": "pkg:deb/debian/libssl3@3.0.11-1~deb12u2"}]`)}, []int{1}},
		{"package purl without version", []string{stmt("CVE-2024-0727", "fixed", `[{"@id": "pkg:deb/debian/libssl3"}]`)}, []int{1}},
		{"package purl, other version", []string{stmt("CVE-2024-0727", "fixed", `[{"@id": "pkg:deb/debian/libssl3@3.0.13-1~deb12u1"}]`)}, nil},
		{"package purl, qualifiers in other order", []string{stmt("CVE-2024-0727", "fixed", `[{"@id": "pkg:deb/debian/libssl3?distro=debian-12&arch=amd64"}]`)}, []int{1}},
		{"package purl, other qualifier", []string{stmt("CVE-2024-0727", "fixed", `[{"@id": "pkg:deb/debian/libssl3?arch=arm64"}]`)}, nil},
		{"package purl identifier", []string{stmt("CVE-2024-0727", "fixed", `[{"@id": "https://example.com/p", "identifiers": {"purl": "pkg:deb/debian/libssl3"}}]`)}, []int{1}},
		{"other vulnerability", []string{stmt("CVE-2024-9999", "fixed", `[{"@id": "pkg:deb/debian/libssl3"}]`)}, nil},
		{"vulnerability any case", []string{stmt("cve-2024-0727", "fixed", `[{"@id": "pkg:deb/debian/libssl3"}]`)}, []int{1}},
		{"statement names a finding's alias", []string{stmt("CVE-2023-45288", "fixed", `[{"@id": "pkg:golang/golang.org/x/net"}]`)}, []int{3}},
		{"statement alias is the finding's ID", []string{`{"vulnerability": {"name": "CVE-2023-45288", "aliases": ["GO-2024-2687"]}, "status": "fixed", "products": [{"@id": "pkg:golang/golang.org/x/net"}]}`}, []int{3}},
		{"statement @id", []string{`{"vulnerability": {"@id": "GHSA-4v7x-pqxf-cx7m"}, "status": "fixed", "products": [{"@id": "pkg:golang/golang.org/x/net"}]}`}, []int{3}},
		{"several products", []string{stmt("CVE-2024-0727", "fixed", `[{"@id": "pkg:deb/debian/libssl-dev"}, {"@id": "pkg:deb/debian/libssl3"}]`)}, []int{1}},
		{"image by oci purl", []string{stmt("CVE-2024-0727", "not_affected", `[{"@id": "pkg:oci/app@sha256%3A`+strings.Repeat("ab", 32)+`"}]`)}, []int{1}},
		{"image by oci purl, other digest", []string{stmt("CVE-2024-0727", "not_affected", `[{"@id": "pkg:oci/app@sha256%3A`+strings.Repeat("00", 32)+`"}]`)}, nil},
		{"image by oci purl, repository digest", []string{stmt("CVE-2024-0727", "not_affected", `[{"identifiers": {"purl": "pkg:oci/app@sha256%3A`+strings.Repeat("ef", 32)+`"}}]`)}, []int{1}},
		{"image by versionless oci purl", []string{stmt("CVE-2024-0727", "not_affected", `[{"@id": "pkg:oci/app"}]`)}, []int{1}},
		{"image by versionless oci purl, repository_url", []string{stmt("CVE-2024-0727", "not_affected", `[{"@id": "pkg:oci/app?repository_url=registry.example.com/team/app"}]`)}, []int{1}},
		{"image by versionless oci purl, other repository", []string{stmt("CVE-2024-0727", "not_affected", `[{"@id": "pkg:oci/app?repository_url=docker.io/library/app"}]`)}, nil},
		{"image by versionless oci purl, other name", []string{stmt("CVE-2024-0727", "not_affected", `[{"@id": "pkg:oci/web"}]`)}, nil},
		{"image by digest", []string{stmt("CVE-2024-0727", "not_affected", `[{"@id": "`+dg("ab")+`"}]`)}, []int{1}},
		{"image by config digest", []string{stmt("CVE-2024-0727", "not_affected", `[{"@id": "`+dg("cd")+`"}]`)}, []int{1}},
		{"image by pinned reference", []string{stmt("CVE-2024-0727", "not_affected", `[{"@id": "registry.example.com/team/app@`+dg("ab")+`"}]`)}, []int{1}},
		{"image by hash", []string{stmt("CVE-2024-0727", "not_affected", `[{"hashes": {"sha-256": "`+strings.Repeat("ab", 32)+`"}}]`)}, []int{1}},
		{"image by tag is not enough", []string{stmt("CVE-2024-0727", "not_affected", `[{"@id": "registry.example.com/team/app:1.4"}]`)}, nil},
		{"image, matching subcomponent", []string{stmt("CVE-2024-0727", "not_affected", `[{"@id": "`+dg("ab")+`", "subcomponents": [{"@id": "pkg:deb/debian/zlib1g"}, {"@id": "pkg:deb/debian/libssl3"}]}]`)}, []int{1}},
		{"image, subcomponent identifier", []string{stmt("CVE-2024-0727", "not_affected", `[{"@id": "`+dg("ab")+`", "subcomponents": [{"identifiers": {"purl": "pkg:deb/debian/libssl3@3.0.11-1~deb12u2"}}]}]`)}, []int{1}},
		{"image, other subcomponent", []string{stmt("CVE-2024-0727", "not_affected", `[{"@id": "`+dg("ab")+`", "subcomponents": [{"@id": "pkg:deb/debian/zlib1g"}]}]`)}, nil},
		{"other image, matching subcomponent", []string{stmt("CVE-2024-0727", "not_affected", `[{"@id": "`+dg("00")+`", "subcomponents": [{"@id": "pkg:deb/debian/libssl3"}]}]`)}, nil},
		{"other product, matching subcomponent", []string{stmt("CVE-2023-45288", "not_affected", `[{"@id": "pkg:golang/example.com/app", "subcomponents": [{"@id": "pkg:golang/golang.org/x/net"}]}]`)}, nil},
		{"affected", []string{stmt("CVE-2024-0727", "affected", `[{"@id": "pkg:deb/debian/libssl3"}]`, `"action_statement": "upgrade"`)}, nil},
		{"under investigation", []string{stmt("CVE-2024-0727", "under_investigation", `[{"@id": "pkg:deb/debian/libssl3"}]`)}, nil},
		{"later affected wins", []string{
			stmt("CVE-2024-0727", "not_affected", `[{"@id": "pkg:deb/debian/libssl3"}]`, `"justification": "component_not_present"`, `"timestamp": "2024-06-01T00:00:00Z"`),
			stmt("CVE-2024-0727", "affected", `[{"@id": "pkg:deb/debian/libssl3"}]`, `"timestamp": "2024-06-02T00:00:00Z"`),
		}, nil},
		{"later not_affected wins", []string{
			stmt("CVE-2024-0727", "not_affected", `[{"@id": "pkg:deb/debian/libssl3"}]`, `"justification": "component_not_present"`, `"timestamp": "2024-06-03T00:00:00Z"`),
			stmt("CVE-2024-0727", "affected", `[{"@id": "pkg:deb/debian/libssl3"}]`, `"timestamp": "2024-06-02T00:00:00Z"`),
		}, []int{1}},
		{"latest wins within a document, in any order", []string{
			stmt("CVE-2024-0727", "under_investigation", `[{"@id": "pkg:deb/debian/libssl3"}]`, `"timestamp": "2024-05-01T00:00:00Z"`) + "," +
				stmt("CVE-2024-0727", "fixed", `[{"@id": "pkg:deb/debian/libssl3"}]`, `"timestamp": "2024-07-01T00:00:00Z"`) + "," +
				stmt("CVE-2024-0727", "affected", `[{"@id": "pkg:deb/debian/libssl3"}]`, `"timestamp": "2024-06-01T00:00:00Z"`),
		}, []int{1}},
		{"statement without timestamp takes the document's", []string{
			stmt("CVE-2024-0727", "fixed", `[{"@id": "pkg:deb/debian/libssl3"}]`),
			stmt("CVE-2024-0727", "affected", `[{"@id": "pkg:deb/debian/libssl3"}]`, `"timestamp": "2024-05-31T00:00:00Z"`),
		}, []int{1}},
		{"same time: the statement read last wins", []string{
			stmt("CVE-2024-0727", "fixed", `[{"@id": "pkg:deb/debian/libssl3"}]`),
			stmt("CVE-2024-0727", "affected", `[{"@id": "pkg:deb/debian/libssl3"}]`),
		}, nil},
		{"a later statement for another product does not override", []string{
			stmt("CVE-2024-0727", "fixed", `[{"@id": "pkg:deb/debian/libssl3"}]`),
			stmt("CVE-2024-0727", "affected", `[{"@id": "pkg:deb/debian/libssl-dev"}]`, `"timestamp": "2024-07-01T00:00:00Z"`),
		}, []int{1}},
		{"a later statement under an alias overrides", []string{
			stmt("GO-2024-2687", "fixed", `[{"@id": "pkg:golang/golang.org/x/net"}]`),
			stmt("GHSA-4v7x-pqxf-cx7m", "affected", `[{"@id": "pkg:golang/golang.org/x/net"}]`, `"timestamp": "2024-07-01T00:00:00Z"`),
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var docs []*VEXDocument
			for i, s := range tt.docs {
				d, err := ParseVEX([]byte(vexDoc(s)), fmt.Sprintf("doc%d.json", i))
				if err != nil {
					t.Fatal(err)
				}
				docs = append(docs, d)
			}
			fs := testFindings()
			n := ApplyVEX(fs, img, docs...)
			var got []int
			for i := range fs {
				if fs[i].Suppressed != nil {
					got = append(got, i)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) || n != len(tt.want) {
				t.Errorf("suppressed %v (count %d), want %v", got, n, tt.want)
			}
		})
	}
}

func TestApplyVEXLeavesSuppressedFindings(t *testing.T) {
	d, err := ParseVEX([]byte(vexDoc(stmt("CVE-2024-0727", "fixed", `[{"@id": "pkg:deb/debian/libssl3"}]`))), "v.json")
	if err != nil {
		t.Fatal(err)
	}
	fs := testFindings()
	prior := &vuln.Suppression{Kind: KindIgnore, Reason: "accepted", Source: IgnoreFileName}
	fs[1].Suppressed = prior
	if n := ApplyVEX(fs, testImage(), d, nil); n != 0 || fs[1].Suppressed != prior {
		t.Errorf("ApplyVEX = %d, suppression %+v", n, fs[1].Suppressed)
	}
	if n := ApplyVEX(fs, testImage()); n != 0 {
		t.Errorf("ApplyVEX without documents = %d", n)
	}
}

func TestVEXReason(t *testing.T) {
	long := strings.Repeat("word ", 100)
	tests := []struct {
		extra                 []string
		status                string
		reason                string
		justification, impact string
	}{
		{nil, "fixed", "vex: fixed", "", ""},
		{[]string{`"justification": "vulnerable_code_not_present"`}, "not_affected", "vex: not_affected (vulnerable_code_not_present)", "vulnerable_code_not_present", ""},
		{[]string{`"impact_statement": "never\ncalled:\tat all"`}, "not_affected", "vex: not_affected: never called: at all", "", "never called: at all"},
		{[]string{`"justification": "inline_mitigations_already_exist"`, `"impact_statement": "sandboxed (seccomp)"`}, "not_affected",
			"vex: not_affected (inline_mitigations_already_exist): sandboxed (seccomp)", "inline_mitigations_already_exist", "sandboxed (seccomp)"},
		{[]string{`"impact_statement": "` + long + `"`}, "not_affected", "vex: not_affected: " + strings.TrimSpace(long)[:maxImpact-1] + "…", "", strings.TrimSpace(long)[:maxImpact-1] + "…"},
	}
	for _, tt := range tests {
		d, err := ParseVEX([]byte(vexDoc(stmt("CVE-2024-0727", tt.status, `[{"@id": "pkg:deb/debian/libssl3"}]`, tt.extra...))), "v.json")
		if err != nil {
			t.Fatal(err)
		}
		fs := testFindings()
		ApplyVEX(fs, testImage(), d)
		if got := fs[1].Suppressed.Reason; got != tt.reason {
			t.Errorf("reason %q, want %q", got, tt.reason)
			continue
		}
		status, j, impact, ok := ParseVEXReason(tt.reason)
		if !ok || status != tt.status || j != tt.justification || impact != tt.impact {
			t.Errorf("ParseVEXReason(%q) = %q, %q, %q, %v", tt.reason, status, j, impact, ok)
		}
	}
	for _, bad := range []string{"", "accepted", "vex:", "vex: ok", "vex: fixed (", "vex: not_affected (made_up)", "vex: fixed extra", "vex: fixed:"} {
		if _, _, _, ok := ParseVEXReason(bad); ok {
			t.Errorf("ParseVEXReason(%q) accepted it", bad)
		}
	}
}

func TestNormalizeRepo(t *testing.T) {
	tests := map[string]string{
		"alpine":                         "docker.io/library/alpine",
		"library/alpine":                 "docker.io/library/alpine",
		"index.docker.io/library/alpine": "docker.io/library/alpine",
		"docker.io/bitnami/redis":        "docker.io/bitnami/redis",
		"Registry.Example.com:5000/App/": "registry.example.com:5000/app",
		"localhost/app":                  "localhost/app",
		"https://ghcr.io/owner/image":    "ghcr.io/owner/image",
		"":                               "",
	}
	for in, want := range tests {
		if got := normalizeRepo(in); got != want {
			t.Errorf("normalizeRepo(%q) = %q, want %q", in, got, want)
		}
	}
}
