package interop

import (
	"crypto"
	"errors"
	"io"
	"log"
	"maps"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"

	"github.com/moatsec/moat/internal/sign/cosign"
	"github.com/moatsec/moat/internal/testutil"
)

// TestCosignReferrerSignaturesMoatVerifies: the two ways cosign stores a signature as an OCI
// 1.1 referrer verify with moat: a signature manifest (--registry-referrers-mode=oci-1-1,
// experimental in cosign v2) and a sigstore bundle (--new-bundle-format). The CNCF registry
// v3.1.2 has no referrers API, so there cosign maintains the referrers tag schema (an index
// tagged sha256-<hex>); go-containerregistry's registry answers the API.
func TestCosignReferrerSignaturesMoatVerifies(t *testing.T) {
	slow(t)
	hosts := map[string]string{
		"distribution": testutil.StartRegistry(t),
		"ggcr":         referrersRegistry(t),
	}
	c := newCosign(t, password)
	c.Setenv("COSIGN_EXPERIMENTAL", "1")
	pub := cosignKeyPair(t, c, "cosign")
	for _, reg := range []string{"distribution", "ggcr"} {
		for _, tc := range []struct {
			name   string
			flag   string
			source cosign.Source
			// What moat reports for -a team=security. Cosign v2.6.5 does not sign -a
			// annotations into a bundle (signDigestBundle never reads them).
			annotations map[string]string
		}{
			{"oci-1-1", "--registry-referrers-mode=oci-1-1", cosign.SourceReferrer, map[string]string{"team": "security"}},
			{"bundle", "--new-bundle-format", cosign.SourceBundle, nil},
		} {
			t.Run(reg+"/"+tc.name, func(t *testing.T) {
				tgt := pushImage(t, hosts[reg], tc.name)
				c.MustRun(args(signFlags, tc.flag, "--key", "cosign.key", "-a", "team=security", tgt.ref)...)
				vs, err := cosign.Verify(t.Context(), tgt.repo, tgt.digest, []crypto.PublicKey{pub}, 1)
				if err != nil {
					t.Fatalf("moat verifying: %v", err)
				}
				if len(vs) != 1 || vs[0].Source != tc.source || vs[0].Payload.Digest != tgt.digest {
					t.Fatalf("moat verified %+v, want one signature of %s from %s", vs, tgt.digest, tc.source)
				}
				if !maps.Equal(vs[0].Payload.Annotations, tc.annotations) {
					t.Errorf("annotations %v, want %v", vs[0].Payload.Annotations, tc.annotations)
				}
			})
		}
	}
}

// referrersRegistry starts go-containerregistry's in-process registry with the OCI 1.1
// referrers API on loopback and returns its host.
func referrersRegistry(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.WithReferrersSupport(true), registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// TestMoatReferrerSignatureCosignVerifies: a signature moat stores only as a referrer
// verifies with `cosign verify --experimental-oci11`, and is not in the tag plain `cosign
// verify` reads. The CNCF registry v3.1.2 has no referrers API, so this runs on
// go-containerregistry's registry, which has one.
func TestMoatReferrerSignatureCosignVerifies(t *testing.T) {
	slow(t)
	tgt := pushImage(t, referrersRegistry(t), "moat-referrer")
	c := newCosign(t, password)
	k := moatKeyPair(t, c.Dir, "moat")
	if _, err := cosign.Sign(t.Context(), tgt.repo, tgt.digest, nil, k, cosign.WithReferrers(cosign.ReferrersOnly)); err != nil {
		t.Fatalf("moat signing: %v", err)
	}
	c.MustRun(args(verifyFlags, "--experimental-oci11", "--key", "moat.pub", tgt.ref)...)
	_, stderr, err := c.Run(t.Context(), args(verifyFlags, "--key", "moat.pub", tgt.ref)...)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || !strings.Contains(stderr, "no signatures found") {
		t.Errorf("cosign verify without --experimental-oci11: %v, want no signatures found:\n%s", err, stderr)
	}
}

// TestMoatReferrersWithoutAPI: on the CNCF registry, which has no referrers API, moat refuses
// to sign as a referrer only, and with ReferrersAlso writes the tag that cosign verifies.
func TestMoatReferrersWithoutAPI(t *testing.T) {
	slow(t)
	host := testutil.StartRegistry(t)
	tgt := pushImage(t, host, "no-referrers-api")
	c := newCosign(t, password)
	k := moatKeyPair(t, c.Dir, "moat")
	_, err := cosign.Sign(t.Context(), tgt.repo, tgt.digest, nil, k, cosign.WithReferrers(cosign.ReferrersOnly))
	if !errors.Is(err, cosign.ErrReferrersUnsupported) {
		t.Fatalf("ReferrersOnly: got %v, want ErrReferrersUnsupported", err)
	}
	if _, err := cosign.Sign(t.Context(), tgt.repo, tgt.digest, nil, k, cosign.WithReferrers(cosign.ReferrersAlso)); err != nil {
		t.Fatalf("ReferrersAlso: %v", err)
	}
	c.MustRun(args(verifyFlags, "--key", "moat.pub", tgt.ref)...)
}
