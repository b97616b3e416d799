package interop

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moatsec/moat/internal/cli"
	"github.com/moatsec/moat/internal/testutil"
)

// moatCLI runs moat's command line in-process in dir.
func moatCLI(t *testing.T, args ...string) (string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := cli.Execute(context.Background(), args, strings.NewReader(""), &out, &errOut)
	return out.String() + errOut.String(), cli.ExitCode(err)
}

// TestCLIWithDistributionAndCosign drives moat's commands against the CNCF distribution
// registry, with cosign on the other side: moat signs, cosign verifies; cosign signs, moat's
// policy allows; the tag moved to another image is denied.
func TestCLIWithDistributionAndCosign(t *testing.T) {
	slow(t)
	host := testutil.StartRegistry(t)
	tgt := pushImage(t, host, "team/app")
	c := newCosign(t, password)
	t.Chdir(c.Dir)
	for k, v := range map[string]string{"MOAT_HOME": t.TempDir(), "MOAT_PASSWORD": password, "DOCKER_CONFIG": t.TempDir()} {
		t.Setenv(k, v)
	}
	tag := tgt.repo.Tag("v1").String()
	if out, code := moatCLI(t, "key", "generate", "--output-prefix", "moat"); code != 0 {
		t.Fatalf("key generate: %d %s", code, out)
	}
	if out, code := moatCLI(t, "sign", tag, "--key", "moat.key", "--insecure", "-a", "team=security"); code != 0 {
		t.Fatalf("moat sign: %d %s", code, out)
	}
	c.MustRun(args(verifyFlags, "--key", "moat.pub", "-a", "team=security", tgt.ref)...)

	cosignKeyPair(t, c, "cosign")
	c.MustRun(args(signFlags, "--key", "cosign.key", tgt.ref)...)
	if out, code := moatCLI(t, "verify", tag, "--insecure", "--key", "moat.pub", "--key", "cosign.pub", "--threshold", "2"); code != 0 {
		t.Fatalf("moat verify 2 of 2: %d %s", code, out)
	}
	pol := `apiVersion: moat.dev/v1
kind: Policy
keys:
  release: {publicKey: moat.pub}
  ci: {publicKey: cosign.pub}
rules:
  - name: both-signed
    require:
      signatures: {keys: [release, ci], threshold: 2}
    isolation: hardened
    action: allow
`
	if err := os.WriteFile(filepath.Join(c.Dir, "policy.yaml"), []byte(pol), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, code := moatCLI(t, "policy", "eval", tag, "--insecure", "--policy", "policy.yaml", "-o", "table"); code != 0 || !strings.Contains(out, "ALLOW, isolation hardened") {
		t.Fatalf("policy eval: %d %s", code, out)
	}
	// The tag moves to another image after signing: denied.
	pushImage(t, host, "team/app")
	if out, code := moatCLI(t, "policy", "eval", tag, "--insecure", "--policy", "policy.yaml", "-o", "table"); code != cli.ExitDenied || !strings.Contains(out, "no signatures found") {
		t.Fatalf("moved tag: %d %s", code, out)
	}
}
