package interop

import (
	"crypto"
	"encoding/json"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moatsec/moat/internal/sign/cosign"
	"github.com/moatsec/moat/internal/testutil"
)

var (
	attestFlags       = []string{"attest", "--tlog-upload=false", "--allow-http-registry"}
	verifyAttestFlags = []string{"verify-attestation", "--insecure-ignore-tlog", "--allow-http-registry", "--trusted-root", "trusted-root.json"}
)

const cdxPredicate = `{"bomFormat":"CycloneDX","specVersion":"1.6","metadata":{"timestamp":"2026-11-20T10:00:00Z"},"components":[{"type":"library","name":"left-pad","version":"1.3.0"}]}`

// TestCosignAttestsMoatVerifies: attestations `cosign attest` stores verify in moat, with
// their predicate types, and a wrong key is refused.
func TestCosignAttestsMoatVerifies(t *testing.T) {
	slow(t)
	host := testutil.StartRegistry(t)
	tgt := pushImage(t, host, "cosign-attested")
	c := newCosign(t, password)
	pub := cosignKeyPair(t, c, "cosign")
	other := moatKeyPair(t, c.Dir, "other")
	writeFile(t, filepath.Join(c.Dir, "bom.json"), []byte(cdxPredicate))
	writeFile(t, filepath.Join(c.Dir, "note.txt"), []byte("built by the release pipeline"))
	c.MustRun(args(attestFlags, "--key", "cosign.key", "--type", "cyclonedx", "--predicate", "bom.json", tgt.ref)...)
	c.MustRun(args(attestFlags, "--key", "cosign.key", "--type", "custom", "--predicate", "note.txt", tgt.ref)...)

	ok, fails, err := cosign.VerifyAttestations(t.Context(), tgt.repo, tgt.digest, []crypto.PublicKey{pub})
	if err != nil || len(fails) != 0 {
		t.Fatalf("moat verifying cosign's attestations: %v, failures %v", err, fails)
	}
	types := map[string]bool{}
	for _, a := range ok {
		types[a.PredicateType] = true
	}
	if len(ok) != 2 || !types[cosign.PredicateTypeCycloneDX] || !types["https://cosign.sigstore.dev/attestation/v1"] {
		t.Errorf("verified %+v", ok)
	}
	ok, fails, err = cosign.VerifyAttestations(t.Context(), tgt.repo, tgt.digest, []crypto.PublicKey{other.Public()})
	if err != nil || len(ok) != 0 || len(fails) != 2 || fails[0].Reason != cosign.ReasonBadSignature {
		t.Errorf("wrong key: verified %v, failures %v, %v", ok, fails, err)
	}
}

// TestMoatAttestsCosignVerifies: an attestation moat stores verifies with
// `cosign verify-attestation --type`, and cosign refuses it for another key.
func TestMoatAttestsCosignVerifies(t *testing.T) {
	slow(t)
	host := testutil.StartRegistry(t)
	tgt := pushImage(t, host, "moat-attested")
	c := newCosign(t, password)
	k := moatKeyPair(t, c.Dir, "moat")
	cosignKeyPair(t, c, "other")
	typ, pred, err := cosign.BuildPredicate("cyclonedx", []byte(cdxPredicate), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cosign.Attest(t.Context(), tgt.repo, tgt.digest, typ, pred, k); err != nil {
		t.Fatalf("moat attesting: %v", err)
	}
	out := c.MustRun(args(verifyAttestFlags, "--key", "moat.pub", "--type", "cyclonedx", tgt.ref)...)
	var env struct {
		PayloadType string `json:"payloadType"`
		Payload     []byte `json:"payload"`
	}
	if err := json.Unmarshal([]byte(strings.SplitN(strings.TrimSpace(out), "\n", 2)[0]), &env); err != nil {
		t.Fatalf("cosign verify-attestation output: %v\n%s", err, out)
	}
	var st struct {
		PredicateType string `json:"predicateType"`
		Subject       []struct {
			Digest map[string]string `json:"digest"`
		} `json:"subject"`
	}
	if err := json.Unmarshal(env.Payload, &st); err != nil {
		t.Fatal(err)
	}
	if st.PredicateType != cosign.PredicateTypeCycloneDX || len(st.Subject) != 1 || st.Subject[0].Digest["sha256"] != tgt.digest.Hex {
		t.Errorf("cosign shows statement %+v", st)
	}
	_, stderr, err := c.Run(t.Context(), args(verifyAttestFlags, "--key", "other.pub", "--type", "cyclonedx", tgt.ref)...)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || !strings.Contains(stderr, "no matching attestations") {
		t.Errorf("wrong key: %v\n%s", err, stderr)
	}
}

// TestCosignBundleAttestationMoatVerifies: `cosign attest --new-bundle-format` stores the
// attestation as a sigstore bundle (a referrer, or the referrers tag schema where the registry
// has no referrers API); moat finds and verifies it.
func TestCosignBundleAttestationMoatVerifies(t *testing.T) {
	slow(t)
	host := testutil.StartRegistry(t)
	tgt := pushImage(t, host, "cosign-bundle-attested")
	c := newCosign(t, password)
	pub := cosignKeyPair(t, c, "cosign")
	writeFile(t, filepath.Join(c.Dir, "bom.json"), []byte(cdxPredicate))
	c.MustRun(args(attestFlags, "--new-bundle-format", "--key", "cosign.key", "--type", "cyclonedx", "--predicate", "bom.json", tgt.ref)...)
	ok, fails, err := cosign.VerifyAttestations(t.Context(), tgt.repo, tgt.digest, []crypto.PublicKey{pub})
	if err != nil || len(fails) != 0 || len(ok) != 1 || ok[0].PredicateType != cosign.PredicateTypeCycloneDX || ok[0].Source != cosign.SourceBundle {
		t.Fatalf("moat verifying cosign's bundle attestation: %+v, failures %v, %v", ok, fails, err)
	}
}
