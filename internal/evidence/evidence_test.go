package evidence

import (
	"context"
	"crypto"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"

	"github.com/moatsec/moat/internal/policy"
	"github.com/moatsec/moat/internal/sbom"
	"github.com/moatsec/moat/internal/sign/cosign"
	"github.com/moatsec/moat/internal/sign/key"
	"github.com/moatsec/moat/internal/testutil"
	"github.com/moatsec/moat/internal/vuln"
)

func TestGather(t *testing.T) {
	ctx := context.Background()
	host := testutil.Registry(t)
	img, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	img, err = mutate.Config(img, v1.Config{User: "1000", Env: []string{"API_TOKEN=x"}, Labels: map[string]string{"team": "a"}})
	if err != nil {
		t.Fatal(err)
	}
	testutil.Push(t, host+"/team/app:1", img)
	ref, err := name.ParseReference(host+"/team/app:1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	h, _ := img.Digest()
	release, _ := key.Generate()
	other, _ := key.Generate()
	if _, err := cosign.Sign(ctx, ref.Context(), h, map[string]string{"env": "prod"}, release); err != nil {
		t.Fatal(err)
	}
	if _, err := cosign.Sign(ctx, ref.Context(), h, nil, other); err != nil {
		t.Fatal(err)
	}
	if _, err := cosign.Attest(ctx, ref.Context(), h, cosign.PredicateTypeCycloneDX, []byte(`{"bomFormat":"CycloneDX","metadata":{"timestamp":"2026-11-20T10:00:00Z"}}`), release); err != nil {
		t.Fatal(err)
	}
	keys := map[string]crypto.PublicKey{"release": release.Public()}

	ev := Gather(ctx, ref, Options{Needs: policy.Needs{Signatures: true, Attestations: true}, Keys: keys})
	if len(ev.Errors) > 0 {
		t.Fatalf("errors: %v", ev.Errors)
	}
	if ev.Digest != h.String() || ev.Image.Tag != "1" || ev.Image.Repository != "team/app" || ev.Config.User != "1000" || ev.Config.Labels["team"] != "a" {
		t.Errorf("evidence: %+v", ev)
	}
	if len(ev.Signatures) != 1 || ev.Signatures[0].Key != "release" || ev.Signatures[0].Annotations["env"] != "prod" {
		t.Errorf("signatures: %+v", ev.Signatures)
	}
	// With keys that signed nothing, both signatures are found, rejected, and listed.
	stranger, _ := key.Generate()
	rej := Gather(ctx, ref, Options{Needs: policy.Needs{Signatures: true}, Keys: map[string]crypto.PublicKey{"stranger": stranger.Public()}})
	if len(rej.Signatures) != 0 || len(rej.Rejected) != 2 || !strings.Contains(rej.Rejected[0], "does not verify") || len(rej.Errors) != 0 {
		t.Errorf("unknown key: signatures %v, rejected %q, errors %v", rej.Signatures, rej.Rejected, rej.Errors)
	}
	if len(ev.Attestations) != 1 || ev.Attestations[0].Key != "release" || !ev.Attestations[0].Verified ||
		!ev.Attestations[0].Timestamp.Equal(time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)) {
		t.Errorf("attestations: %+v", ev.Attestations)
	}

	// Only what the policy needs is gathered.
	ev = Gather(ctx, ref, Options{Keys: keys})
	if len(ev.Signatures)+len(ev.Attestations)+len(ev.Rejected)+len(ev.Errors) != 0 || ev.Database != nil {
		t.Errorf("nothing needed, got %+v", ev)
	}

	// A scan that fails, or none configured, is an error: it denies.
	ev = Gather(ctx, ref, Options{Needs: policy.Needs{Scan: true}})
	if len(ev.Errors) != 1 {
		t.Errorf("no scanner: %v", ev.Errors)
	}
	ev = Gather(ctx, ref, Options{Needs: policy.Needs{Scan: true}, Scan: func(context.Context, name.Digest) (*sbom.Inventory, []vuln.Finding, time.Time, error) {
		return nil, nil, time.Time{}, errors.New("no advisory database")
	}})
	if len(ev.Errors) != 1 || !strings.Contains(ev.Errors[0], "no advisory database") {
		t.Errorf("failing scan: %v", ev.Errors)
	}
	// The scan is of the digest, never the tag.
	var scanned name.Digest
	Gather(ctx, ref, Options{Needs: policy.Needs{Scan: true}, Scan: func(_ context.Context, d name.Digest) (*sbom.Inventory, []vuln.Finding, time.Time, error) {
		scanned = d
		return &sbom.Inventory{}, nil, time.Now(), nil
	}})
	if scanned.DigestStr() != h.String() {
		t.Errorf("scanned %v, want the digest %s", scanned, h)
	}

	// An image that is not there is an error.
	missing, _ := name.ParseReference(host+"/team/nothing:1", name.Insecure)
	if ev := Gather(ctx, missing, Options{}); len(ev.Errors) != 1 || ev.Digest != "" {
		t.Errorf("missing image: %+v", ev)
	}
}

func TestPredicateTime(t *testing.T) {
	want := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name, pred string
		want       time.Time
	}{
		{"vuln", `{"metadata": {"scanStartedOn": "2026-11-20T09:00:00Z", "scanFinishedOn": "2026-11-20T10:00:00Z"}}`, want},
		{"custom", `{"Data": "x", "Timestamp": "2026-11-20T10:00:00Z"}`, want},
		{"cyclonedx", `{"metadata": {"timestamp": "2026-11-20T11:00:00+01:00"}}`, want},
		{"spdx json", `{"creationInfo": {"created": "2026-11-20T10:00:00Z"}}`, want},
		{"spdx as a string", `"{\"creationInfo\": {\"created\": \"2026-11-20T10:00:00Z\"}}"`, want},
		{"slsa v1", `{"runDetails": {"metadata": {"finishedOn": "2026-11-20T10:00:00Z"}}}`, want},
		{"slsa v0.2", `{"metadata": {"buildFinishedOn": "2026-11-20T10:00:00Z"}}`, want},
		{"no time", `{"a": 1}`, time.Time{}},
		{"not a time", `{"timestamp": "yesterday"}`, time.Time{}},
		{"not json", `{`, time.Time{}},
	} {
		if got := PredicateTime("", []byte(tc.pred)); !got.Equal(tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestLoadKeys(t *testing.T) {
	dir := t.TempDir()
	k, _ := key.Generate()
	pub, _ := key.MarshalPublicKey(k.Public())
	os.WriteFile(filepath.Join(dir, "k.pub"), pub, 0o644)
	p := &policy.Policy{Source: filepath.Join(dir, "policy.yaml"), Keys: map[string]policy.Key{
		"file": {PublicKey: "k.pub"}, "inline": {PublicKey: string(pub)},
	}}
	keys, err := LoadKeys(p)
	if err != nil || len(keys) != 2 {
		t.Fatalf("LoadKeys: %v, %v", keys, err)
	}
	p.Keys["bad"] = policy.Key{PublicKey: "missing.pub"}
	if _, err := LoadKeys(p); err == nil || !strings.Contains(err.Error(), `"bad"`) {
		t.Errorf("missing key file: %v", err)
	}
}
