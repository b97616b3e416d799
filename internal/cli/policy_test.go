package cli

import (
	"bufio"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"

	"github.com/moatsec/moat/internal/policy"
	"github.com/moatsec/moat/internal/testutil"
)

// testPolicy: signed by "release" → hardened; otherwise, from a loopback registry, with no
// high findings → sandbox; anything else is denied.
const testPolicy = `apiVersion: moat.dev/v1
kind: Policy
keys:
  release:
    publicKey: a.pub
rules:
  - name: signed
    match:
      images: ["127.0.0.1:*/team/**"]
    require:
      signatures:
        keys: [release]
      config:
        noSecretsInEnv: true
    isolation: hardened
    action: allow
  - name: scanned
    require:
      registries: ["127.0.0.1:*"]
      vulnerabilities:
        denyAtOrAbove: critical
    isolation: sandbox
    action: allow
`

func evalJSON(t *testing.T, args ...string) (evalOutput, int, string) {
	t.Helper()
	out, stderr, code, _ := run(t, append([]string{"policy", "eval", "-o", "json", "--insecure"}, args...)...)
	var res evalOutput
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("policy eval output %q (stderr %s): %v", out, stderr, err)
	}
	return res, code, stderr
}

func TestPolicyEval(t *testing.T) {
	e := setup(t)
	ref, digest := signedRegistry(t, "a")
	os.WriteFile(filepath.Join(e.work, "policy.yaml"), []byte(testPolicy), 0o644)

	// Unsigned, and no advisory database for the scan rule: denied, saying why.
	res, code, _ := evalJSON(t, ref, "--policy", "policy.yaml")
	if code != ExitDenied || res.Decision.Allow || res.Digest != digest || !hasReason(res.Decision, "no advisory database") {
		t.Errorf("unsigned, no database: exit %d, %+v", code, res.Decision)
	}

	// With the database: the test image has no critical finding, so it runs in the sandbox.
	importAdvisories(t, testAdvisories)
	res, code, _ = evalJSON(t, ref, "--policy", "policy.yaml")
	if code != ExitOK || !res.Decision.Allow || res.Decision.Isolation != policy.Sandbox || res.Decision.Rule != "scanned" {
		t.Errorf("unsigned, scanned: exit %d, %+v", code, res.Decision)
	}
	if res.Evidence.Database == nil || res.Evidence.SBOM.Total == 0 {
		t.Errorf("no scan in the evidence: %+v", res.Evidence)
	}

	// Signed: hardened.
	mustRun(t, "sign", ref, "--key", "a.key", "--insecure")
	res, code, _ = evalJSON(t, ref, "--policy", "policy.yaml")
	if code != ExitOK || res.Decision.Isolation != policy.Hardened || len(res.Evidence.Signatures) != 1 || res.Evidence.Signatures[0].Key != "release" {
		t.Errorf("signed: exit %d, %+v, %+v", code, res.Decision, res.Evidence.Signatures)
	}
	signed := res.Evidence
	out, _ := mustRun(t, "policy", "eval", ref, "--policy", "policy.yaml", "--insecure", "-o", "table")
	if !strings.Contains(out, "Decision: ALLOW, isolation hardened") {
		t.Errorf("table:\n%s", out)
	}

	// A policy with a typo is a deny naming the line, never an allow.
	typo := strings.Replace(testPolicy, "isolation: sandbox", "isolaton: sandbox", 1)
	os.WriteFile(filepath.Join(e.work, "typo.yaml"), []byte(typo), 0o644)
	res, code, _ = evalJSON(t, ref, "--policy", "typo.yaml")
	if code != ExitDenied || res.Decision.Allow || !hasReason(res.Decision, "typo.yaml:") {
		t.Errorf("typo: exit %d, %+v", code, res.Decision)
	}
	// A key file that is missing denies too.
	os.WriteFile(filepath.Join(e.work, "nokey.yaml"), []byte(strings.Replace(testPolicy, "a.pub", "missing.pub", 1)), 0o644)
	if res, code, _ = evalJSON(t, ref, "--policy", "nokey.yaml"); code != ExitDenied || !hasReason(res.Decision, "missing.pub") {
		t.Errorf("missing key: exit %d, %+v", code, res.Decision)
	}

	// Every decision is in the log.
	f, err := os.Open(filepath.Join(e.home, "state", "decisions.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	for s := bufio.NewScanner(f); s.Scan(); n++ {
		var r policy.Record
		if err := json.Unmarshal(s.Bytes(), &r); err != nil || r.Image != ref || r.Decision == "" || len(r.Reasons) == 0 {
			t.Errorf("log line %d: %s (%v)", n, s.Text(), err)
		}
	}
	if n != 6 {
		t.Errorf("%d decisions logged, want 6", n)
	}

	// --evidence evaluates a saved evidence object without gathering.
	b, _ := json.Marshal(signed)
	os.WriteFile(filepath.Join(e.work, "ev.json"), b, 0o644)
	res, code, _ = evalJSON(t, ref, "--policy", "policy.yaml", "--evidence", "ev.json", "--decision-log", "-")
	if code != ExitOK || res.Decision.Rule != "signed" {
		t.Errorf("--evidence: exit %d, %+v", code, res.Decision)
	}
}

func hasReason(d policy.Decision, s string) bool {
	for _, r := range d.Reasons {
		if strings.Contains(r, s) {
			return true
		}
	}
	return false
}

// TestPolicyEvalRegistryFailure: a registry that fails denies with that reason.
func TestPolicyEvalRegistryFailure(t *testing.T) {
	e := setup(t)
	t.Setenv("MOAT_PASSWORD", "pw")
	mustRun(t, "key", "generate", "--output-prefix", "a")
	os.WriteFile(filepath.Join(e.work, "policy.yaml"), []byte(testPolicy), 0o644)
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	failing := ""
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if failing != "" && strings.Contains(r.URL.Path, failing) {
			http.Error(w, "boom", http.StatusInternalServerError)
			return
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	ref := u.Host + "/team/app:1.0"
	testutil.Push(t, ref, testImage(t))
	mustRun(t, "sign", ref, "--key", "a.key", "--insecure")
	for _, path := range []string{"/manifests/1.0", ".sig"} {
		failing = path
		res, code, _ := evalJSON(t, ref, "--policy", "policy.yaml", "--decision-log", "-")
		if code != ExitDenied || res.Decision.Allow || !hasReason(res.Decision, "evidence error") || !hasReason(res.Decision, "500") {
			t.Errorf("registry failing on %s: exit %d, %+v", path, code, res.Decision)
		}
	}
}

func TestPolicyTest(t *testing.T) {
	example, err := filepath.Abs(filepath.Join("..", "policy", "testdata", "example"))
	if err != nil {
		t.Fatal(err)
	}
	setup(t)
	out, _ := mustRun(t, "policy", "test", filepath.Join(example, "cases"), "--policy", filepath.Join(example, "policy.yaml"))
	if !strings.Contains(out, "5 cases, 0 failed") {
		t.Errorf("output:\n%s", out)
	}
	// A case whose expectation the policy does not meet fails the run with code 5.
	dir := t.TempDir()
	b := readFile(t, filepath.Join(example, "cases", "signed-clean.yaml"))
	os.WriteFile(filepath.Join(dir, "wrong.yaml"), []byte(strings.Replace(string(b), "isolation: hardened", "isolation: sandbox", 1)), 0o644)
	out, _, code, _ := run(t, "policy", "test", dir, "--policy", filepath.Join(example, "policy.yaml"))
	if code != ExitTestFailed || !strings.Contains(out, `FAIL  wrong: isolation is "hardened", want "sandbox"`) {
		t.Errorf("exit %d, output:\n%s", code, out)
	}
	// A policy that does not load is an error.
	os.WriteFile(filepath.Join(dir, "bad.yaml"), []byte("apiVersion: moat.dev/v1\nkind: Policy\nrules: [{nam: x}]\n"), 0o644)
	if _, _, code, err := run(t, "policy", "test", dir, "--policy", filepath.Join(dir, "bad.yaml")); code != ExitError || !strings.Contains(err.Error(), "bad.yaml:3") {
		t.Errorf("bad policy: exit %d, %v", code, err)
	}
}
