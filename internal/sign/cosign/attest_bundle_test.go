package cosign

import (
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/moatsec/moat/internal/sign/intoto"
	"github.com/moatsec/moat/internal/sign/key"
)

// attestationStatement is the statement `cosign attest --type <typ>` signs: in-toto v0.1,
// the repository as the subject's name.
func attestationStatement(t testing.TB, f fixture, d v1.Hash, typ, predicate string) []byte {
	t.Helper()
	st := intoto.Statement{Type: intoto.StatementV01, PredicateType: typ,
		Subject:   []intoto.Subject{{Name: f.repo.Name(), Digest: map[string]string{"sha256": d.Hex}}},
		Predicate: json.RawMessage(predicate)}
	b, err := st.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// pushAttestationBundle stores an attestation as `cosign attest --key --new-bundle-format`
// does: a bundle referrer annotated with the predicate type.
func pushAttestationBundle(t *testing.T, f fixture, subject v1.Hash, k *ecdsa.PrivateKey, typ, predicate string) v1.Hash {
	t.Helper()
	b := makeBundle(t, k, bundleSpec{statement: attestationStatement(t, f, subject, typ, predicate)})
	return pushBundleAs(t, f.repo, subject, b, bundleAnnotations(typ))
}

func TestAttestationBundles(t *testing.T) {
	k, other := newKey(t), newKey(t)
	fp, _ := key.Fingerprint(k.Public())
	const typ = PredicateTypeSLSA1
	const predicate = `{"buildDefinition":{"buildType":"https://example.com/ci/v1"}}`
	for _, api := range []bool{true, false} {
		t.Run(fmt.Sprintf("referrers API %v", api), func(t *testing.T) {
			host := refRegistry(t, api, nil)
			for _, tc := range []struct {
				name string
				spec func(f fixture) bundleSpec
				key  *ecdsa.PrivateKey
				raw  []byte            // pushed instead of a built bundle
				ann  map[string]string // manifest annotations; by default those of typ
				want Reason            // "" for verified
				none bool              // neither verified nor failed
			}{
				{name: "as cosign attest writes it", spec: func(f fixture) bundleSpec {
					return bundleSpec{statement: attestationStatement(t, f, f.a, typ, predicate)}
				}},
				{name: "in-toto v1 statement", spec: func(f fixture) bundleSpec {
					return bundleSpec{digest: f.a, predicate: typ}
				}},
				{name: "with a transparency log entry", spec: func(f fixture) bundleSpec {
					return bundleSpec{digest: f.a, predicate: typ, tlog: true}
				}},
				// The annotation is not signed: lying in it changes nothing.
				{name: "predicate type annotation edited", spec: func(f fixture) bundleSpec {
					return bundleSpec{digest: f.a, predicate: typ}
				}, ann: bundleAnnotations(PredicateTypeVuln)},
				{name: "no annotations", spec: func(f fixture) bundleSpec { return bundleSpec{digest: f.a, predicate: typ} }, ann: map[string]string{}},
				{name: "statement for another digest", spec: func(f fixture) bundleSpec {
					return bundleSpec{statement: attestationStatement(t, f, f.b, typ, predicate)}
				}, want: ReasonSubjectMismatch},
				{name: "keyless", spec: func(f fixture) bundleSpec {
					return bundleSpec{digest: f.a, predicate: typ, keyless: true, tlog: true}
				}, want: ReasonKeyless},
				{name: "another key", spec: func(f fixture) bundleSpec { return bundleSpec{digest: f.a, predicate: typ} }, key: other, want: ReasonBadSignature},
				{name: "statement edited after signing", spec: func(f fixture) bundleSpec {
					return bundleSpec{statement: attestationStatement(t, f, f.b, typ, predicate), edit: func(st []byte) []byte {
						return []byte(strings.Replace(string(st), f.b.Hex, f.a.Hex, 1))
					}}
				}, want: ReasonBadSignature},
				{name: "message signature", spec: func(f fixture) bundleSpec { return bundleSpec{digest: f.a, message: true} }, want: ReasonNotEnvelope},
				{name: "another payload type", spec: func(f fixture) bundleSpec {
					return bundleSpec{digest: f.a, predicate: typ, payloadType: "application/vnd.example+json"}
				}, want: ReasonPayloadType},
				{name: "signed statement that is not one", spec: func(f fixture) bundleSpec {
					return bundleSpec{statement: []byte(`{"_type":"https://in-toto.io/Statement/v0.1","predicateType":"` + typ + `","subject":[]}`)}
				}, want: ReasonMalformedStatement},
				{name: "signed statement with an unknown key", spec: func(f fixture) bundleSpec {
					st := strings.Replace(string(attestationStatement(t, f, f.a, typ, predicate)), `{`, `{"x":1,`, 1)
					return bundleSpec{statement: []byte(st)}
				}, want: ReasonMalformedStatement},
				{name: "not a bundle", raw: []byte(`{"mediaType":"` + BundleMediaType + `"}`), want: ReasonMalformedBundle},
				// Signatures are Verify's: left alone whether their annotation says so or not.
				{name: "signature bundle", spec: func(f fixture) bundleSpec { return bundleSpec{digest: f.a} },
					ann: bundleAnnotations(SignPredicateType), none: true},
				{name: "signature bundle annotated as an attestation", spec: func(f fixture) bundleSpec { return bundleSpec{digest: f.a} },
					none: true},
			} {
				t.Run(tc.name, func(t *testing.T) {
					f := setupIn(t, host, strings.ReplaceAll(tc.name, " ", "-"))
					b := caseBundle(t, f, tc.raw, tc.spec, k, tc.key)
					ann := tc.ann
					if ann == nil {
						ann = bundleAnnotations(typ)
					}
					m := pushBundleAs(t, f.repo, f.a, b, ann)
					bundleLayer := static.NewLayer(b, BundleMediaType)
					layer, _ := bundleLayer.Digest()
					vs, fs := attestations(t, f, f.a, pubs(k))
					switch {
					case tc.none:
						if len(vs) != 0 || len(fs) != 0 {
							t.Fatalf("verified %+v, failures %v; want neither", vs, fs)
						}
					case tc.want != "":
						if len(vs) != 0 || len(fs) != 1 || fs[0].Reason != tc.want {
							t.Fatalf("verified %+v, failures %v; want one %q", vs, fs, tc.want)
						}
						if fl := fs[0]; fl.Kind != KindAttestation || fl.Source != SourceBundle || fl.Manifest != m || fl.Index != 0 || fl.Layer != layer {
							t.Fatalf("failure %+v", fl)
						}
					default:
						if len(fs) != 0 || len(vs) != 1 {
							t.Fatalf("verified %+v, failures %v; want one verified", vs, fs)
						}
						v := vs[0]
						if v.Source != SourceBundle || v.Manifest != m || v.Index != 0 || v.Layer != layer || v.Key != fp ||
							v.PredicateType != typ || v.Statement.PredicateType != typ || !v.Statement.HasDigest("sha256", f.a.Hex) {
							t.Fatalf("verified %+v", v)
						}
						if tc.name == "as cosign attest writes it" && (string(v.Predicate) != predicate || v.Statement.Subject[0].Name != f.repo.Name()) {
							t.Fatalf("statement %+v", v.Statement)
						}
					}
					// Verify never counts an attestation as a signature.
					if _, err := Verify(context.Background(), f.repo, f.a, pubs(k), 1); !tc.none && err == nil {
						t.Fatal("Verify counted an attestation")
					}
				})
			}
		})
	}
}

// Both places are read, referrers first, and each keeps to its own kind.
func TestAttestationsInBothPlaces(t *testing.T) {
	ctx := context.Background()
	f := setup(t, refRegistry(t, true, nil))
	k := newKey(t)
	m := pushAttestationBundle(t, f, f.a, k, PredicateTypeSLSA1, `{}`)
	mustAttest(t, f, f.a, PredicateTypeVuln, `{"scanner":{}}`, k)
	// Signatures in every place cosign puts them.
	if _, err := Sign(ctx, f.repo, f.a, nil, k, WithReferrers(ReferrersAlso)); err != nil {
		t.Fatal(err)
	}
	pushBundle(t, f.repo, f.a, makeBundle(t, k, bundleSpec{digest: f.a}))

	vs, fs := attestations(t, f, f.a, pubs(k))
	if len(fs) != 0 || len(vs) != 2 {
		t.Fatalf("verified %+v, failures %v", vs, fs)
	}
	if v := vs[0]; v.Source != SourceBundle || v.Manifest != m || v.PredicateType != PredicateTypeSLSA1 {
		t.Fatalf("first %+v", v)
	}
	if v := vs[1]; v.Source != SourceTag || v.Manifest != (v1.Hash{}) || v.Index != 0 || v.PredicateType != PredicateTypeVuln {
		t.Fatalf("second %+v", v)
	}
	// And Verify finds the three signatures and no failure.
	ok, err := Verify(ctx, f.repo, f.a, pubs(k), 1)
	if err != nil || len(ok) != 3 || !strings.Contains(sources(ok), "referrer") || !strings.Contains(sources(ok), "bundle") || ok[2].Source != SourceTag {
		t.Fatalf("Verify: %v, %v", sources(ok), err)
	}
	// The other image has nothing.
	if vs, fs := attestations(t, f, f.b, pubs(k)); len(vs) != 0 || len(fs) != 0 {
		t.Fatalf("b: %v, %v", vs, fs)
	}
	// A failure in one place does not hide what verified in the other.
	other := newKey(t)
	pushAttestationBundle(t, f, f.a, other, PredicateTypeOpenVEX, `{}`)
	vs, fs = attestations(t, f, f.a, pubs(k))
	if len(vs) != 2 || len(fs) != 1 || fs[0].Reason != ReasonBadSignature || fs[0].Kind != KindAttestation {
		t.Fatalf("verified %+v, failures %v", vs, fs)
	}
}

// An entry of the referrers tag schema can name an attestation that refers to another image.
func TestAttestationReferrerForAnotherImage(t *testing.T) {
	f := setup(t, refRegistry(t, false, nil))
	k := newKey(t)
	pushAttestationBundle(t, f, f.a, k, PredicateTypeSLSA1, `{}`)
	// A valid attestation of b, listed among a's referrers.
	otherM := pushAttestationBundle(t, f, f.b, k, PredicateTypeSLSA1, `{}`)
	idxTag := f.repo.Tag("sha256-" + f.a.Hex)
	desc, err := remote.Get(idxTag)
	if err != nil {
		t.Fatal(err)
	}
	var idx map[string]any
	if err := json.Unmarshal(desc.Manifest, &idx); err != nil {
		t.Fatal(err)
	}
	idx["manifests"] = append(idx["manifests"].([]any), map[string]any{"mediaType": types.OCIManifestSchema1, "digest": otherM, "size": 900, "artifactType": ociEmptyMediaType})
	raw, _ := json.Marshal(idx)
	if err := remote.Put(idxTag, indexPut(raw)); err != nil {
		t.Fatal(err)
	}
	vs, fs := attestations(t, f, f.a, pubs(k))
	if len(vs) != 1 || len(fs) != 1 {
		t.Fatalf("verified %+v, failures %v", vs, fs)
	}
	if fl := fs[0]; fl.Reason != ReasonSubjectMismatch || fl.Manifest != otherM || fl.Index != -1 || !strings.Contains(fl.Detail, f.b.String()) {
		t.Fatalf("failure %+v", fl)
	}
}

func TestAttestationReferrersRegistryFailures(t *testing.T) {
	noRetry := WithRemoteOptions(remote.WithRetryBackoff(remote.Backoff{Steps: 1}))
	k := newKey(t)
	isBlob := func(r *http.Request) bool {
		return r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/")
	}
	for _, tc := range append(referrerFailures, registryFailure{"bundle blob answers 500", true, isBlob}) {
		t.Run(tc.name, func(t *testing.T) {
			var broken atomic.Bool
			f := setup(t, refRegistry(t, tc.api, failWhen(&broken, tc.match)))
			pushAttestationBundle(t, f, f.a, k, PredicateTypeSLSA1, `{}`)
			broken.Store(true)
			vs, fs, err := VerifyAttestations(context.Background(), f.repo, f.a, pubs(k), noRetry)
			if err == nil || !strings.Contains(err.Error(), "500") || vs != nil || fs != nil {
				t.Fatalf("got %v, %v, %v; want a registry error", vs, fs, err)
			}
		})
	}

	t.Run("referrers API hangs", func(t *testing.T) {
		var hang atomic.Bool
		f := setup(t, refRegistry(t, true, hangWhen(t, &hang, isReferrersCall)))
		pushAttestationBundle(t, f, f.a, k, PredicateTypeSLSA1, `{}`)
		hang.Store(true)
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		if _, _, err := VerifyAttestations(ctx, f.repo, f.a, pubs(k), noRetry); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got %v; want the deadline", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("VerifyAttestations took %s after a 300ms deadline", d)
		}
	})

	t.Run("bundle blob does not match its digest", func(t *testing.T) {
		var corrupt atomic.Bool
		f := setup(t, refRegistry(t, true, corruptBlobs(&corrupt, "dsseEnvelope", "dsseEnvelope", "dsseenvelope")))
		m := pushAttestationBundle(t, f, f.a, k, PredicateTypeSLSA1, `{}`)
		corrupt.Store(true)
		vs, fs := attestations(t, f, f.a, pubs(k))
		if len(vs) != 0 || len(fs) != 1 || fs[0].Reason != ReasonPayloadDigest || fs[0].Manifest != m {
			t.Fatalf("verified %+v, failures %v", vs, fs)
		}
	})

	// A referrers answer that is not an index cannot be classified: an error, as for Verify.
	t.Run("tag schema holds garbage", func(t *testing.T) {
		f := setup(t, refRegistry(t, false, nil))
		raw := []byte(`{"schemaVersion":3,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}`)
		if err := remote.Put(f.repo.Tag("sha256-"+f.a.Hex), indexPut(raw)); err != nil {
			t.Fatal(err)
		}
		if _, _, err := VerifyAttestations(context.Background(), f.repo, f.a, pubs(k)); !errors.Is(err, errMalformedReferrer) {
			t.Fatalf("got %v", err)
		}
	})
}

func TestTooManyAttestationReferrers(t *testing.T) {
	if testing.Short() {
		t.Skip("pushes more than MaxReferrers manifests")
	}
	f := setup(t, refRegistry(t, true, nil))
	k := newKey(t)
	mustAttest(t, f, f.a, PredicateTypeVuln, `{}`, k)
	for i := 0; i <= MaxReferrers; i++ {
		l := static.NewLayer([]byte(fmt.Sprintf("{%q:%d}", "n", i)), BundleMediaType)
		pushReferrer(t, f.repo, f.a, BundleMediaType, ociEmptyMediaType, []v1.Layer{l}, nil, bundleAnnotations(PredicateTypeSLSA1))
	}
	// Nothing is verified, not even the attestation at the tag: one failure says why.
	vs, fs := attestations(t, f, f.a, pubs(k))
	if len(vs) != 0 || len(fs) != 1 || fs[0].Reason != ReasonTooManyAttestations || fs[0].Source != SourceReferrer || fs[0].Index != -1 {
		t.Fatalf("verified %d, failures %v", len(vs), fs)
	}
	if got, want := fs[0].String(), "referrers: too many attestations: 129 referrers, at most 128 are read"; got != want {
		t.Fatalf("failure %q, want %q", got, want)
	}
}

func TestFailureString(t *testing.T) {
	m, _ := v1.NewHash("sha256:cd34" + strings.Repeat("0", 60))
	l, _ := v1.NewHash("sha256:ab12" + strings.Repeat("0", 60))
	for _, tc := range []struct {
		f    Failure
		want string
	}{
		{Failure{Source: SourceTag, Index: 0, Layer: l, Reason: ReasonBadSignature},
			"signature 0 (sha256:ab1200000000): signature does not verify with any given key"},
		{Failure{Kind: KindSignature, Source: SourceTag, Index: 1, Layer: l, Reason: ReasonMalformedSignature, Detail: "annotation is not base64"},
			"signature 1 (sha256:ab1200000000): signature is malformed: annotation is not base64"},
		{Failure{Kind: KindAttestation, Source: SourceTag, Index: 2, Layer: l, Reason: ReasonMalformedSignature, Detail: "not a DER ECDSA signature"},
			"attestation 2 (sha256:ab1200000000): signature is malformed: not a DER ECDSA signature"},
		{Failure{Source: SourceReferrer, Manifest: m, Index: 0, Layer: l, Reason: ReasonDigestMismatch, Detail: "signs sha256:…"},
			"referrer sha256:cd3400000000, signature 0 (sha256:ab1200000000): signature is for another image digest: signs sha256:…"},
		{Failure{Source: SourceBundle, Manifest: m, Index: 0, Layer: l, Reason: ReasonNotSignature},
			"referrer sha256:cd3400000000, signature bundle 0 (sha256:ab1200000000): bundle is not an image signature"},
		{Failure{Kind: KindAttestation, Source: SourceBundle, Manifest: m, Index: 0, Layer: l, Reason: ReasonKeyless},
			"referrer sha256:cd3400000000, attestation bundle 0 (sha256:ab1200000000): keyless signature: not supported without a transparency log"},
		{Failure{Source: SourceReferrer, Manifest: m, Index: -1, Reason: ReasonMalformedReferrer, Detail: "listed but not found"},
			"referrer sha256:cd3400000000: referrer manifest is malformed: listed but not found"},
		{Failure{Kind: KindAttestation, Source: SourceBundle, Manifest: m, Index: -1, Reason: ReasonSubjectMismatch},
			"referrer sha256:cd3400000000: attestation is for another image digest"},
		{Failure{Source: SourceTag, Index: -1, Reason: ReasonTooManySignatures, Detail: "300 layers"},
			"signature tag: too many signatures: 300 layers"},
		{Failure{Kind: KindAttestation, Source: SourceTag, Index: -1, Reason: ReasonTooManyAttestations},
			"attestation tag: too many attestations"},
		{Failure{Source: SourceReferrer, Index: -1, Reason: ReasonTooManySignatures},
			"referrers: too many signatures"},
		{Failure{Index: -1, Reason: ReasonNoSignatures}, "manifest: no signatures found"},
	} {
		if got := tc.f.String(); got != tc.want {
			t.Errorf("%+v:\n got %q\nwant %q", tc.f, got, tc.want)
		}
	}
}
