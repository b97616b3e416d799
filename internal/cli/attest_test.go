package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestAttestVerifyAttestation(t *testing.T) {
	e := setup(t)
	ref, digest := signedRegistry(t, "a", "b")
	os.WriteFile(filepath.Join(e.work, "prov.json"), []byte(`{"buildDefinition": {"buildType": "https://example.com/build"}, "runDetails": {"metadata": {"finishedOn": "2026-11-01T10:00:00Z"}}}`), 0o644)

	// Nothing attached yet.
	if _, _, code, _ := run(t, "verify-attestation", ref, "--key", "a.pub", "--insecure"); code != ExitDenied {
		t.Errorf("no attestations: exit %d, want %d", code, ExitDenied)
	}
	out, _ := mustRun(t, "attest", ref, "--insecure", "--key", "a.key", "--type", "slsaprovenance1", "--predicate", "prov.json")
	if !strings.Contains(out, strings.Replace(digest, ":", "-", 1)+".att") {
		t.Errorf("attest output %q", out)
	}
	out, _ = mustRun(t, "verify-attestation", ref, "--key", "a.pub", "--insecure", "--type", "slsaprovenance1", "-o", "json")
	var res verifyAttestationResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	if !res.Verified || res.Digest != digest || len(res.Attestations) != 1 ||
		res.Attestations[0].PredicateType != "https://slsa.dev/provenance/v1" || res.Attestations[0].Key != "a.pub" ||
		!res.Attestations[0].Timestamp.Equal(time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)) {
		t.Errorf("verify-attestation: %+v", res)
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
	}{
		{"another type", []string{"--key", "a.pub", "--type", "cyclonedx"}, ExitDenied},
		{"wrong key", []string{"--key", "b.pub"}, ExitDenied},
		{"bad type", []string{"--key", "a.pub", "--type", "not a uri"}, ExitUsage},
		{"no key", nil, ExitUsage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, stderr, code, err := run(t, append([]string{"verify-attestation", ref, "--insecure"}, tc.args...)...); code != tc.code {
				t.Errorf("exit %d (%v), want %d: %s", code, err, tc.code, stderr)
			}
		})
	}
	// A predicate that is not JSON, for a type that needs JSON, is refused before signing.
	os.WriteFile(filepath.Join(e.work, "bad.json"), []byte(`{"unterminated`), 0o644)
	if _, _, code, err := run(t, "attest", ref, "--insecure", "--key", "a.key", "--type", "cyclonedx", "--predicate", "bad.json"); code != ExitError || !strings.Contains(err.Error(), "bad.json") {
		t.Errorf("bad predicate: exit %d, %v", code, err)
	}
}

// TestScanAttest: `scan --attest` attaches the SBOM and the report, and a policy can require
// them.
func TestScanAttest(t *testing.T) {
	e := setup(t)
	ref, _ := signedRegistry(t, "a")
	importAdvisories(t, testAdvisories)
	out, stderr := mustRun(t, "scan", ref, "--insecure", "--attest", "--key", "a.key", "-o", "json")
	if !strings.Contains(stderr, "Attached the SBOM and the vulnerability report") || !strings.Contains(out, `"findings"`) {
		t.Errorf("scan --attest: stderr %q", stderr)
	}
	for _, typ := range []string{"cyclonedx", "vuln"} {
		out, _ := mustRun(t, "verify-attestation", ref, "--key", "a.pub", "--insecure", "--type", typ, "-o", "json")
		var res verifyAttestationResult
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatal(err)
		}
		if len(res.Attestations) != 1 || time.Since(res.Attestations[0].Timestamp) > time.Hour {
			t.Errorf("%s attestation: %+v", typ, res.Attestations)
		}
	}
	// Scanning again replaces them rather than piling them up.
	mustRun(t, "scan", ref, "--insecure", "--attest", "--key", "a.key", "-o", "json")
	out, _ = mustRun(t, "verify-attestation", ref, "--key", "a.pub", "--insecure", "-o", "json")
	var all verifyAttestationResult
	json.Unmarshal([]byte(out), &all)
	if len(all.Attestations) != 2 {
		t.Errorf("after two scans: %d attestations, want 2", len(all.Attestations))
	}

	pol := `apiVersion: moat.dev/v1
kind: Policy
keys:
  ci: {publicKey: a.pub}
rules:
  - name: scanned-by-ci
    require:
      attestations:
        - {type: sbom, keys: [ci], maxAge: 1h}
        - {type: vuln, keys: [ci], maxAge: 1h}
    isolation: hardened
    action: allow
`
	os.WriteFile(filepath.Join(e.work, "policy.yaml"), []byte(pol), 0o644)
	res, code, _ := evalJSON(t, ref, "--policy", "policy.yaml")
	if code != ExitOK || res.Decision.Rule != "scanned-by-ci" || len(res.Evidence.Attestations) != 2 {
		t.Errorf("policy: exit %d, %+v, %+v", code, res.Decision, res.Evidence.Attestations)
	}

	// Only registry images can carry attestations; --key alone is a mistake.
	for _, args := range [][]string{
		{"scan", "oci-dir:" + e.work, "--attest", "--key", "a.key"},
		{"scan", ref, "--insecure", "--attest"},
		{"scan", ref, "--insecure", "--key", "a.key"},
	} {
		if _, _, code, _ := run(t, args...); code != ExitUsage {
			t.Errorf("%v: exit %d, want %d", args, code, ExitUsage)
		}
	}
}
