package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var testNow = time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)

const header = `apiVersion: moat.dev/v1
kind: Policy
keys:
  release: {publicKey: release.pub}
  ci: {publicKey: ci.pub}
rules:
`

func mustParse(t testing.TB, rules string) *Policy {
	t.Helper()
	p, err := Parse("policy.yaml", []byte(header+rules))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func goodEvidence() *Evidence {
	return &Evidence{
		Image:  Image{Reference: "registry.example.com/team/app:1", Registry: "registry.example.com", Repository: "team/app", Tag: "1"},
		Digest: "sha256:1111",
		Config: Config{User: "1000", Env: []string{"PATH=/bin"}, Labels: map[string]string{"team": "a"}},
		Signatures: []Signature{
			{Key: "release", KeyID: "sha256:aa"},
		},
		Attestations: []Attestation{
			{PredicateType: "https://cosign.sigstore.dev/attestation/vuln/v1", Key: "ci", Timestamp: testNow.Add(-time.Hour), Verified: true},
			{PredicateType: "https://cyclonedx.org/bom/v1.5", Key: "ci", Timestamp: testNow.Add(-time.Hour), Verified: true},
		},
		SBOM:     SBOM{Packages: map[string]int{"deb": 3}, Total: 3},
		Findings: []Finding{{ID: "CVE-1", Severity: "low", FixStatus: "fixed"}},
		Database: &Database{Built: testNow.Add(-time.Hour)},
	}
}

func TestEvaluateRequirements(t *testing.T) {
	tests := []struct {
		name   string
		rules  string
		mutate func(*Evidence)
		allow  bool
		rule   string
		reason string // a substring of some reason
	}{
		{"first match wins", `
  - {name: a, action: allow, isolation: sandbox}
  - {name: b, action: allow, isolation: hardened}
`, nil, true, "a", `allow: rule "a" decides`},
		{"deny rule", `
  - {name: no-ghcr, match: {images: ["ghcr.io/**"]}, action: deny}
  - {name: rest, action: allow, isolation: sandbox}
`, func(e *Evidence) { e.Image.Registry = "ghcr.io" }, false, "no-ghcr", `deny: rule "no-ghcr" decides`},
		{"default deny", `
  - {name: other, match: {images: ["other.example.com/*"]}, action: allow, isolation: sandbox}
`, nil, false, "", "deny: no rule matched"},
		{"glob does not cross slash", `
  - {name: a, match: {images: ["registry.example.com/*"]}, action: allow, isolation: sandbox}
`, func(e *Evidence) { e.Image.Repository = "team/sub/app" }, false, "", "deny: no rule matched"},
		{"registry pass", `
  - {name: a, require: {registries: ["*.example.com"]}, action: allow, isolation: sandbox}
`, nil, true, "a", `pass: registry "registry.example.com"`},
		{"registry fail", `
  - {name: a, require: {registries: ["quay.io"]}, action: allow, isolation: sandbox}
`, nil, false, "", `fail: registry "registry.example.com"`},
		{"signature pass", `
  - {name: a, require: {signatures: {keys: [release]}}, action: allow, isolation: hardened}
`, nil, true, "a", "pass: signed by 1 of 1"},
		{"signature threshold fail", `
  - {name: a, require: {signatures: {keys: [release, ci], threshold: 2}}, action: allow, isolation: hardened}
`, nil, false, "", "fail: signed by 1 of 2"},
		{"signature wrong key", `
  - {name: a, require: {signatures: {keys: [ci]}}, action: allow, isolation: hardened}
`, nil, false, "", "fail: signed by 0 of 1"},
		{"attestation pass", `
  - {name: a, require: {attestations: [{type: vuln, keys: [ci], maxAge: 24h}, {type: sbom, keys: [ci]}]}, action: allow, isolation: hardened}
`, nil, true, "a", "pass: vuln attestation signed by ci"},
		{"attestation too old", `
  - {name: a, require: {attestations: [{type: vuln, keys: [ci], maxAge: 30m}]}, action: allow, isolation: hardened}
`, nil, false, "", "attestation is 1h0m0s old"},
		{"attestation unverified", `
  - {name: a, require: {attestations: [{type: vuln, keys: [ci]}]}, action: allow, isolation: hardened}
`, func(e *Evidence) { e.Attestations[0].Verified = false }, false, "", "did not verify"},
		{"attestation wrong key", `
  - {name: a, require: {attestations: [{type: vuln, keys: [release]}]}, action: allow, isolation: hardened}
`, nil, false, "", "not by one of the required keys"},
		{"attestation by URI", `
  - {name: a, require: {attestations: [{type: "https://example.com/custom", keys: [ci]}]}, action: allow, isolation: hardened}
`, nil, false, "", "none found"},
		{"vulns pass", `
  - {name: a, require: {vulnerabilities: {denyAtOrAbove: medium, maxDatabaseAge: 72h}}, action: allow, isolation: hardened}
`, nil, true, "a", "pass: no findings at or above medium"},
		{"vulns fail", `
  - {name: a, require: {vulnerabilities: {denyAtOrAbove: low}}, action: allow, isolation: hardened}
`, nil, false, "", "fail: 1 findings at or above low: CVE-1 (low)"},
		{"vulns unfixed ignored", `
  - {name: a, require: {vulnerabilities: {denyAtOrAbove: high, ignoreUnfixed: true}}, action: allow, isolation: hardened}
`, func(e *Evidence) {
			e.Findings = append(e.Findings, Finding{ID: "CVE-2", Severity: "critical", FixStatus: "not-fixed"})
		}, true, "a", "unfixed ignored"},
		{"vulns suppressed", `
  - {name: a, require: {vulnerabilities: {denyAtOrAbove: high}}, action: allow, isolation: hardened}
`, func(e *Evidence) {
			e.Findings = append(e.Findings, Finding{ID: "CVE-2", Severity: "critical", Suppressed: true})
		}, true, "a", "pass"},
		{"vulns unfixed counted", `
  - {name: a, require: {vulnerabilities: {denyAtOrAbove: high}}, action: allow, isolation: hardened}
`, func(e *Evidence) {
			e.Findings = append(e.Findings, Finding{ID: "CVE-2", Severity: "critical", FixStatus: "not-fixed"})
		}, false, "", "CVE-2 (critical)"},
		{"vulns bad severity", `
  - {name: a, require: {vulnerabilities: {denyAtOrAbove: critical}}, action: allow, isolation: hardened}
`, func(e *Evidence) { e.Findings[0].Severity = "extreme" }, false, "", "unrecognised severity"},
		{"database too old", `
  - {name: a, require: {vulnerabilities: {maxDatabaseAge: 30m}}, action: allow, isolation: hardened}
`, nil, false, "", "advisory database is 1h0m0s old"},
		{"no scan", `
  - {name: a, require: {vulnerabilities: {denyAtOrAbove: critical}}, action: allow, isolation: hardened}
`, func(e *Evidence) { e.Database = nil }, false, "", "no scan in evidence"},
		{"non-root pass", `
  - {name: a, require: {config: {nonRoot: true}}, action: allow, isolation: hardened}
`, nil, true, "a", "pass: runs as non-root"},
		{"root fails", `
  - {name: a, require: {config: {nonRoot: true}}, action: allow, isolation: hardened}
`, func(e *Evidence) { e.Config.User = "0:0" }, false, "", "fail: runs as non-root"},
		{"empty user is root", `
  - {name: a, require: {config: {nonRoot: true}}, action: allow, isolation: hardened}
`, func(e *Evidence) { e.Config.User = "" }, false, "", "fail: runs as non-root"},
		{"secret in env", `
  - {name: a, require: {config: {noSecretsInEnv: true}}, action: allow, isolation: hardened}
`, func(e *Evidence) { e.Config.Env = append(e.Config.Env, "AWS_SECRET_ACCESS_KEY=x") }, false, "", "secrets in environment: AWS_SECRET_ACCESS_KEY"},
		{"cel true", `
  - {name: a, require: {cel: ['image.registry.endsWith(".example.com") && sbom.total > 0']}, action: allow, isolation: hardened}
`, nil, true, "a", "is true"},
		{"cel false falls through", `
  - {name: a, require: {cel: ['findings.size() == 0']}, action: allow, isolation: hardened}
  - {name: b, action: allow, isolation: sandbox}
`, nil, true, "b", "is false"},
		{"cel now and evidence", `
  - {name: a, require: {cel: ['now - evidence.database.built < duration("2h") && "team" in config.labels']}, action: allow, isolation: hardened}
`, nil, true, "a", "is true"},
		{"cel runtime error denies", `
  - {name: a, require: {cel: ['config.labels["missing"] == "x"']}, action: allow, isolation: hardened}
  - {name: b, action: allow, isolation: sandbox}
`, nil, false, "a", "evaluation failed"},
		{"cel non-bool denies", `
  - {name: a, require: {cel: ['dyn(sbom.total)']}, action: allow, isolation: hardened}
  - {name: b, action: allow, isolation: sandbox}
`, nil, false, "a", "not bool"},
		{"evidence errors deny", `
  - {name: a, action: allow, isolation: sandbox}
`, func(e *Evidence) { e.Errors = []string{"advisory database missing"} }, false, "", "evidence error: advisory database missing"},
		{"docker hub spelling", `
  - {name: a, match: {images: ["docker.io/library/*"]}, action: allow, isolation: sandbox}
`, func(e *Evidence) { e.Image.Registry, e.Image.Repository = "index.docker.io", "library/alpine" }, true, "a", "docker.io/library/alpine"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustParse(t, tt.rules)
			ev := goodEvidence()
			if tt.mutate != nil {
				tt.mutate(ev)
			}
			d := Evaluate(p, ev, testNow)
			if d.Allow != tt.allow || d.Rule != tt.rule {
				t.Errorf("got allow=%t rule=%q, want allow=%t rule=%q\n%s", d.Allow, d.Rule, tt.allow, tt.rule, strings.Join(d.Reasons, "\n"))
			}
			if !d.Allow && d.Isolation != "" {
				t.Errorf("deny with isolation %q", d.Isolation)
			}
			if d.PolicyHash != p.Hash || !strings.HasPrefix(p.Hash, "sha256:") {
				t.Errorf("policy hash %q, policy %q", d.PolicyHash, p.Hash)
			}
			found := false
			for _, r := range d.Reasons {
				found = found || strings.Contains(r, tt.reason)
			}
			if !found {
				t.Errorf("no reason contains %q:\n%s", tt.reason, strings.Join(d.Reasons, "\n"))
			}
		})
	}
}

func TestEvaluateNil(t *testing.T) {
	if d := Evaluate(nil, goodEvidence(), testNow); d.Allow {
		t.Error("nil policy allowed")
	}
	p := mustParse(t, "  - {name: a, action: allow, isolation: sandbox}\n")
	if d := Evaluate(p, nil, testNow); d.Allow {
		t.Error("nil evidence allowed")
	}
}

// parseErrorTests are documents Parse refuses, with the line and a text of the error. The
// schema conformance test reads them too.
var parseErrorTests = []struct {
	name string
	doc  string
	line int
	want string
}{
	{"typo in field", header + `  - name: a
    action: allow
    isolation: sandbox
    requier: {}
`, 10, `unknown field "requier"`},
	{"typo nested", header + `  - name: a
    action: allow
    isolation: sandbox
    require:
      signatures: {keys: [release], treshold: 1}
`, 11, `unknown field "treshold"`},
	{"wrong type", header + `  - name: a
    action: allow
    isolation: sandbox
    require:
      config: {nonRoot: "yes"}
`, 11, "got string, want boolean"},
	{"bad enum", header + `  - name: a
    action: maybe
`, 8, "action"},
	{"allow without isolation", header + `  - name: a
    action: allow
`, 7, "isolation"},
	{"bad glob", header + `  - name: a
    action: deny
    match:
      images: ["registry.example.com/[abc"]
`, 10, "malformed glob"},
	{"bad duration", header + `  - name: a
    action: deny
    require:
      vulnerabilities:
        maxDatabaseAge: 3 days
`, 11, `invalid duration "3 days"`},
	{"bad cel syntax", header + `  - name: a
    action: deny
    require:
      cel:
        - 'image.registry =='
`, 11, "CEL"},
	{"bad cel field", header + `  - name: a
    action: deny
    require:
      cel:
        - 'image.registri == "x"'
`, 11, "registri"},
	{"cel not bool", header + `  - name: a
    action: deny
    require:
      cel: ['sbom.total']
`, 10, "not bool"},
	{"unknown key", header + `  - name: a
    action: deny
    require:
      signatures: {keys: [nobody]}
`, 10, `unknown key "nobody"`},
	{"threshold too high", header + `  - name: a
    action: deny
    require:
      signatures:
        keys: [release]
        threshold: 2
`, 12, "threshold 2"},
	{"duplicate rule", header + `  - {name: a, action: deny}
  - {name: a, action: deny}
`, 8, "already used"},
	{"wrong apiVersion", strings.Replace(header, "moat.dev/v1", "moat.dev/v2", 1) + "  - {name: a, action: deny}\n", 1, "apiVersion"},
	{"no rules", "apiVersion: moat.dev/v1\nkind: Policy\n", 1, "rules"},
	{"yaml syntax", header + "  - {name: a, action: deny\n", 6, "yaml"},
	{"two documents", header + "  - {name: a, action: deny}\n---\nfoo: 1\n", 8, "one YAML document"},
}

func TestParseErrors(t *testing.T) {
	for _, tt := range parseErrorTests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("p.yaml", []byte(tt.doc))
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v is not ErrInvalid", err)
			}
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("error %T %v is not *Error", err, err)
			}
			if pe.Line != tt.line {
				t.Errorf("line %d, want %d: %v", pe.Line, tt.line, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "p.yaml:") {
				t.Errorf("error %q does not start with the file name", err)
			}
		})
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{"72h": 72 * time.Hour, "7d": 7 * 24 * time.Hour, "1h30m": 90 * time.Minute} {
		got, err := ParseDuration(in)
		if err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1h", "d", "1.5d", "3 days"} {
		if _, err := ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) succeeded", in)
		}
	}
}

func TestMatchGlob(t *testing.T) {
	tests := []struct {
		pat, name string
		want      bool
	}{
		{"registry.example.com/team/*", "registry.example.com/team/app", true},
		{"registry.example.com/team/*", "registry.example.com/team/a/b", false},
		{"registry.example.com/**", "registry.example.com/team/a/b", true},
		{"registry.example.com/**/app", "registry.example.com/app", true},
		{"*.example.com/**", "registry.example.com/x", true},
		{"*.example.com/**", "example.org/x", false},
	}
	for _, tt := range tests {
		if got := matchGlob(tt.pat, tt.name); got != tt.want {
			t.Errorf("matchGlob(%q, %q) = %t", tt.pat, tt.name, got)
		}
	}
}

func TestSecretsInEnv(t *testing.T) {
	env := []string{
		"PATH=/usr/bin", "DB_PASSWORD=hunter2", "DB_PASSWORD_FILE=/run/secrets/db", "EMPTY_TOKEN=",
		"GITHUB_TOKEN=x", "KEY=-----BEGIN RSA PRIVATE KEY-----\nabc", "ID=AKIAABCDEFGHIJKLMNOP", "HOME=/root",
		"password=x", "CACHE_BYPASS=1",
	}
	got := strings.Join(SecretsInEnv(env), ",")
	if want := "DB_PASSWORD,GITHUB_TOKEN,KEY,ID,password"; got != want {
		t.Errorf("SecretsInEnv = %s, want %s", got, want)
	}
}

func TestSchemaPublished(t *testing.T) {
	doc, err := os.ReadFile("../../docs/formats/policy.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(doc, Schema) {
		t.Error("docs/formats/policy.schema.json differs from internal/policy/policy.schema.json")
	}
}

func TestLog(t *testing.T) {
	name := filepath.Join(t.TempDir(), "decisions.jsonl")
	p := mustParse(t, "  - {name: a, action: allow, isolation: sandbox}\n")
	ev := goodEvidence()
	for range 2 {
		l, err := OpenLog(name, true)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Append(NewRecord(testNow, ev, Evaluate(p, ev, testNow))); err != nil {
			t.Fatal(err)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2", len(lines))
	}
	var r Record
	if err := json.Unmarshal([]byte(lines[1]), &r); err != nil {
		t.Fatal(err)
	}
	if r.Decision != "allow" || r.Isolation != "sandbox" || r.Rule != "a" || r.Digest != ev.Digest ||
		r.Image != ev.Image.Reference || r.PolicyHash != p.Hash || len(r.Reasons) == 0 || !r.Time.Equal(testNow) {
		t.Errorf("record %+v", r)
	}
}

func TestRunCasesBadFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a.yaml"), []byte("evidence: {imagee: {}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := mustParse(t, "  - {name: a, action: allow, isolation: sandbox}\n")
	res, err := RunCases(p, dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || res[0].Pass || res[0].Err == nil {
		t.Errorf("results %+v", res)
	}
}

func FuzzParse(f *testing.F) {
	if b, err := os.ReadFile("testdata/example/policy.yaml"); err == nil {
		f.Add(b)
	}
	f.Add([]byte(header + "  - {name: a, action: allow, isolation: sandbox}\n"))
	f.Add([]byte(header + "  - {name: a, action: deny, require: {cel: ['x']}}\n"))
	f.Add([]byte(header + "  - {name: a, action: allow, isolation: hardened, relaxations: [cap-add, 'bind-mount:/srv/**:/data:ro']}\n"))
	f.Add([]byte("a: &a [*a]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse("f.yaml", data)
		if err != nil {
			return
		}
		// A policy that loads must evaluate without panicking, and deny on evidence errors.
		ev := goodEvidence()
		Evaluate(p, ev, testNow)
		ev.Errors = []string{"x"}
		if d := Evaluate(p, ev, testNow); d.Allow {
			t.Fatal("allowed despite evidence errors")
		}
	})
}

func BenchmarkEvaluate(b *testing.B) {
	p, err := Load("testdata/example/policy.yaml")
	if err != nil {
		b.Fatal(err)
	}
	c, err := LoadCase("testdata/example/cases/signed-clean.yaml")
	if err != nil {
		b.Fatal(err)
	}
	if d := Evaluate(p, &c.Evidence, c.Now); !d.Allow {
		b.Fatalf("not allowed: %v", d.Reasons)
	}
	b.ReportAllocs()
	for b.Loop() {
		Evaluate(p, &c.Evidence, c.Now)
	}
}

func TestNeeds(t *testing.T) {
	for _, tc := range []struct {
		name, rules string
		want        Needs
	}{
		{"registry only", `[{name: r, require: {registries: [a]}, isolation: sandbox, action: allow}]`, Needs{}},
		{"signatures", `[{name: r, require: {signatures: {keys: [k]}}, isolation: hardened, action: allow}]`, Needs{Signatures: true}},
		{"attestations", `[{name: r, require: {attestations: [{type: sbom, keys: [k]}]}, isolation: hardened, action: allow}]`, Needs{Attestations: true}},
		{"vulnerabilities", `[{name: r, require: {vulnerabilities: {denyAtOrAbove: high}}, isolation: hardened, action: allow}]`, Needs{Scan: true}},
		{"cel findings", `[{name: r, require: {cel: ["size(findings) == 0"]}, isolation: hardened, action: allow}]`, Needs{Scan: true}},
		{"cel config only", `[{name: r, require: {cel: ["config.user != 'root'"]}, isolation: hardened, action: allow}]`, Needs{}},
		{"cel evidence", `[{name: r, require: {cel: ["size(evidence.errors) == 0"]}, isolation: hardened, action: allow}]`, Needs{true, true, true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := "apiVersion: moat.dev/v1\nkind: Policy\nkeys: {k: {publicKey: k.pub}}\nrules: " + tc.rules + "\n"
			p, err := Parse("p.yaml", []byte(src))
			if err != nil {
				t.Fatal(err)
			}
			if got := p.Needs(); got != tc.want {
				t.Errorf("Needs() = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// FuzzDecodeEvidence feeds case and evidence files: any input is a decoded value or an error
// naming the file, never a crash.
func FuzzDecodeEvidence(f *testing.F) {
	for _, name := range []string{"signed-clean.yaml", "signed-with-secret.json", "registry-error.yaml"} {
		b, err := os.ReadFile(filepath.Join("testdata", "example", "cases", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"image": {"reference": "a"}, "digest": "sha256:00", "rejected": ["x"], "errors": []}`))
	f.Add([]byte("evidence: &a {x: *a}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var c Case
		if err := decodeStrict("case.yaml", "case", data, &c); err != nil && !strings.Contains(err.Error(), "case.yaml") {
			t.Fatalf("error does not name the file: %v", err)
		}
		var ev Evidence
		if err := decodeStrict("ev.json", "evidence", data, &ev); err == nil {
			Evaluate(&Policy{}, &ev, time.Time{})
		}
	})
}
