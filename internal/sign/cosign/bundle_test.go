package cosign

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/static"

	"github.com/moatsec/moat/internal/sign/dsse"
	"github.com/moatsec/moat/internal/sign/intoto"
	"github.com/moatsec/moat/internal/sign/key"
)

// bundleSpec describes a hand-built sigstore bundle, by default one in the shape `cosign sign
// --key --new-bundle-format --tlog-upload=false` writes.
type bundleSpec struct {
	digest      v1.Hash
	predicate   string // default SignPredicateType
	payloadType string // default in-toto
	annotations map[string]string
	statement   []byte // signed instead of the statement built from the fields above
	message     bool   // a messageSignature over the digest instead of a DSSE statement
	keyless     bool   // a certificate instead of the key hint
	tlog        bool   // with a transparency log entry
	// edit changes the statement after it is signed.
	edit func(statement []byte) []byte
}

var b64 = base64.StdEncoding.EncodeToString

// bundleMap builds the bundle as a JSON tree, for tests to change.
func bundleMap(t testing.TB, k *ecdsa.PrivateKey, s bundleSpec) map[string]any {
	t.Helper()
	vm := map[string]any{}
	if s.keyless {
		vm["x509CertificateChain"] = map[string]any{"certificates": []any{map[string]any{"rawBytes": b64([]byte("not a certificate"))}}}
	} else {
		hint, err := bundleKeyHint(&k.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		vm["publicKey"] = map[string]any{"hint": hint}
	}
	if s.tlog {
		vm["tlogEntries"] = []any{map[string]any{
			"logIndex": "12", "logId": map[string]any{"keyId": b64([]byte("log"))},
			"kindVersion": map[string]any{"kind": "dsse", "version": "0.0.1"}, "integratedTime": "1700000000",
			"inclusionPromise":  map[string]any{"signedEntryTimestamp": b64([]byte("set"))},
			"canonicalizedBody": b64([]byte("{}")),
		}}
	}
	b := map[string]any{"mediaType": BundleMediaType, "verificationMaterial": vm}
	sign := func(sum []byte) []byte {
		sig, err := ecdsa.SignASN1(rand.Reader, k, sum)
		if err != nil {
			t.Fatal(err)
		}
		return sig
	}
	if s.message {
		d, err := hex.DecodeString(s.digest.Hex)
		if err != nil {
			t.Fatal(err)
		}
		b["messageSignature"] = map[string]any{
			"messageDigest": map[string]any{"algorithm": "SHA2_256", "digest": b64(d)},
			"signature":     b64(sign(d)),
		}
		return b
	}
	st := s.statement
	if st == nil {
		pred := s.predicate
		if pred == "" {
			pred = SignPredicateType
		}
		subj := map[string]any{"digest": map[string]string{"sha256": s.digest.Hex}}
		if s.annotations != nil {
			subj["annotations"] = s.annotations
		}
		var err error
		st, err = json.Marshal(map[string]any{"_type": intoto.StatementV1, "subject": []any{subj}, "predicateType": pred, "predicate": map[string]any{}})
		if err != nil {
			t.Fatal(err)
		}
	}
	pt := s.payloadType
	if pt == "" {
		pt = intoto.PayloadType
	}
	sum := sha256.Sum256(dsse.PAE(pt, st))
	sig := sign(sum[:])
	if s.edit != nil {
		st = s.edit(st)
	}
	b["dsseEnvelope"] = map[string]any{"payload": b64(st), "payloadType": pt, "signatures": []any{map[string]any{"sig": b64(sig), "keyid": ""}}}
	return b
}

func makeBundle(t testing.TB, k *ecdsa.PrivateKey, s bundleSpec) []byte {
	t.Helper()
	b, err := json.Marshal(bundleMap(t, k, s))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// pushBundle stores a signature bundle as cosign sign --new-bundle-format does: a referrer
// of subject with artifactType BundleMediaType, the empty config and the bundle as its one
// layer.
func pushBundle(t *testing.T, repo name.Repository, subject v1.Hash, bundle []byte) v1.Hash {
	t.Helper()
	return pushBundleAs(t, repo, subject, bundle, bundleAnnotations(SignPredicateType))
}

// pushBundleAs is pushBundle with the given manifest annotations.
func pushBundleAs(t *testing.T, repo name.Repository, subject v1.Hash, bundle []byte, ann map[string]string) v1.Hash {
	t.Helper()
	l := static.NewLayer(bundle, BundleMediaType)
	d, _ := l.Digest()
	return pushReferrer(t, repo, subject, BundleMediaType, ociEmptyMediaType, []v1.Layer{l},
		[]map[string]string{{"org.opencontainers.image.title": d.Algorithm + "-" + d.Hex + ".sigstore.json"}}, ann)
}

// bundleAnnotations are the manifest annotations cosign writes on a bundle referrer whose
// statement has the given predicate type.
func bundleAnnotations(predicateType string) map[string]string {
	return map[string]string{
		"dev.sigstore.bundle.content":      "dsse-envelope",
		bundlePredicateAnnotation:          predicateType,
		"org.opencontainers.image.created": "2025-03-01T12:00:00Z",
	}
}

// signB64 is a cosign signature annotation: base64 of the ECDSA signature over SHA-256(b).
func signB64(t *testing.T, k *ecdsa.PrivateKey, b []byte) string {
	t.Helper()
	sum := sha256.Sum256(b)
	sig, err := ecdsa.SignASN1(rand.Reader, k, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return b64(sig)
}

func TestBundleVerify(t *testing.T) {
	ctx := context.Background()
	k, other := newKey(t), newKey(t)
	fp, _ := key.Fingerprint(k.Public())
	for _, api := range []bool{true, false} {
		t.Run(fmt.Sprintf("referrers API %v", api), func(t *testing.T) {
			host := refRegistry(t, api, nil)
			for _, tc := range []struct {
				name string
				spec func(f fixture) bundleSpec
				key  *ecdsa.PrivateKey
				raw  []byte // pushed instead of a built bundle
				want Reason // "" for verified
			}{
				{name: "dsse statement", spec: func(f fixture) bundleSpec {
					return bundleSpec{digest: f.a, annotations: map[string]string{"env": "prod"}}
				}},
				{name: "with a transparency log entry", spec: func(f fixture) bundleSpec { return bundleSpec{digest: f.a, tlog: true} }},
				{name: "message signature", spec: func(f fixture) bundleSpec { return bundleSpec{digest: f.a, message: true} }, want: ReasonNotSignature},
				{name: "statement for another digest", spec: func(f fixture) bundleSpec { return bundleSpec{digest: f.b} }, want: ReasonDigestMismatch},
				{name: "keyless", spec: func(f fixture) bundleSpec { return bundleSpec{digest: f.a, keyless: true, tlog: true} }, want: ReasonKeyless},
				{name: "attestation", spec: func(f fixture) bundleSpec {
					return bundleSpec{digest: f.a, predicate: "https://slsa.dev/provenance/v1"}
				}, want: ReasonNotSignature},
				{name: "another payload type", spec: func(f fixture) bundleSpec {
					return bundleSpec{digest: f.a, payloadType: "application/vnd.example+json"}
				}, want: ReasonNotSignature},
				{name: "another key", spec: func(f fixture) bundleSpec { return bundleSpec{digest: f.a} }, key: other, want: ReasonBadSignature},
				{name: "statement edited after signing", spec: func(f fixture) bundleSpec {
					return bundleSpec{digest: f.b, edit: func(st []byte) []byte {
						return []byte(strings.Replace(string(st), f.b.Hex, f.a.Hex, 1))
					}}
				}, want: ReasonBadSignature},
				{name: "signed statement that is not one", spec: func(f fixture) bundleSpec {
					return bundleSpec{digest: f.a, statement: []byte(`{"_type":"https://in-toto.io/Statement/v1","subject":[]}`)}
				}, want: ReasonMalformedPayload},
				{name: "not a bundle", raw: []byte(`{"mediaType":"` + BundleMediaType + `"}`), want: ReasonMalformedBundle},
			} {
				t.Run(tc.name, func(t *testing.T) {
					// Each case has a repository of its own, so that only its bundle refers to a.
					f := setupIn(t, host, strings.ReplaceAll(tc.name, " ", "-"))
					b := caseBundle(t, f, tc.raw, tc.spec, k, tc.key)
					m := pushBundle(t, f.repo, f.a, b)
					vs, err := Verify(ctx, f.repo, f.a, pubs(k), 1)
					if tc.want != "" {
						var ve *VerificationError
						if !errors.As(err, &ve) {
							t.Fatalf("got %v, %v; want a verdict", vs, err)
						}
						t.Log(ve)
						onlyFailure(t, ve, tc.want)
						if fl := ve.Failures[0]; fl.Source != SourceBundle || fl.Manifest != m || fl.Index != 0 {
							t.Fatalf("failure %+v", fl)
						}
						return
					}
					if err != nil {
						t.Fatal(err)
					}
					if len(vs) != 1 || vs[0].Source != SourceBundle || vs[0].Manifest != m || vs[0].Key != fp || vs[0].Payload.Digest != f.a {
						t.Fatalf("verified %+v", vs)
					}
					if tc.name == "dsse statement" && vs[0].Payload.Annotations["env"] != "prod" {
						t.Fatalf("annotations %v", vs[0].Payload.Annotations)
					}
				})
			}
		})
	}
}

// caseBundle is the bundle a table case pushes: raw as it is, or the one spec describes,
// signed by signer when there is one and by k otherwise.
func caseBundle(t *testing.T, f fixture, raw []byte, spec func(f fixture) bundleSpec, k, signer *ecdsa.PrivateKey) []byte {
	t.Helper()
	if raw != nil {
		return raw
	}
	if signer == nil {
		signer = k
	}
	return makeBundle(t, signer, spec(f))
}

func TestParseBundle(t *testing.T) {
	k := newKey(t)
	d, _ := v1.NewHash(testDigest)
	valid := func() map[string]any { return bundleMap(t, k, bundleSpec{digest: d}) }
	vm := func(b map[string]any) map[string]any { return b["verificationMaterial"].(map[string]any) }
	env := func(b map[string]any) map[string]any { return b["dsseEnvelope"].(map[string]any) }
	for _, tc := range []struct {
		name string
		edit func(b map[string]any)
		text func(s string) string // applied to the JSON text
		ok   bool
	}{
		{name: "as cosign writes it", ok: true},
		{name: "the other media type spelling", edit: func(b map[string]any) { b["mediaType"] = bundleMediaTypeParam }, ok: true},
		{name: "without hint", edit: func(b map[string]any) { vm(b)["publicKey"] = map[string]any{} }, ok: true},
		{name: "with timestamps", edit: func(b map[string]any) {
			vm(b)["timestampVerificationData"] = map[string]any{"rfc3161Timestamps": []any{map[string]any{"signedTimestamp": "MA=="}}}
		}, ok: true},
		{name: "v0.2", edit: func(b map[string]any) { b["mediaType"] = "application/vnd.dev.sigstore.bundle+json;version=0.2" }},
		{name: "media type null", edit: func(b map[string]any) { b["mediaType"] = nil }},
		{name: "no verification material", edit: func(b map[string]any) { delete(b, "verificationMaterial") }},
		{name: "key and certificate", edit: func(b map[string]any) { vm(b)["certificate"] = map[string]any{"rawBytes": "MA=="} }},
		{name: "no key", edit: func(b map[string]any) { delete(vm(b), "publicKey") }},
		{name: "hint not a string", edit: func(b map[string]any) { vm(b)["publicKey"] = map[string]any{"hint": 1} }},
		{name: "tlog entries not a list", edit: func(b map[string]any) { vm(b)["tlogEntries"] = map[string]any{} }},
		{name: "both contents", edit: func(b map[string]any) {
			b["messageSignature"] = map[string]any{"messageDigest": map[string]any{"algorithm": "SHA2_256", "digest": "MA=="}, "signature": "MA=="}
		}},
		{name: "no content", edit: func(b map[string]any) { delete(b, "dsseEnvelope") }},
		{name: "two signatures", edit: func(b map[string]any) {
			env(b)["signatures"] = append(env(b)["signatures"].([]any), env(b)["signatures"].([]any)[0])
		}},
		{name: "no signatures", edit: func(b map[string]any) { env(b)["signatures"] = []any{} }},
		{name: "payload not base64", edit: func(b map[string]any) { env(b)["payload"] = "%%%" }},
		{name: "payload in URL-safe base64", edit: func(b map[string]any) {
			env(b)["payload"] = base64.RawURLEncoding.EncodeToString([]byte("{}>>>??"))
		}},
		{name: "signature as a number", edit: func(b map[string]any) { env(b)["signatures"] = []any{map[string]any{"sig": 5}} }},
		{name: "unknown key", edit: func(b map[string]any) { b["extra"] = true }},
		{name: "unknown key in the envelope", edit: func(b map[string]any) { env(b)["payload_type"] = intoto.PayloadType }},
		{name: "a key in another case", text: func(s string) string { return strings.Replace(s, `"dsseEnvelope"`, `"DsseEnvelope"`, 1) }},
		{name: "a snake_case key", text: func(s string) string {
			return strings.Replace(s, `"verificationMaterial"`, `"verification_material"`, 1)
		}},
		{name: "a duplicate key", text: func(s string) string {
			return strings.Replace(s, `{`, `{"mediaType":"`+BundleMediaType+`",`, 1)
		}},
		{name: "two values", text: func(s string) string { return s + "{}" }},
		{name: "too large", text: func(s string) string { return s + strings.Repeat(" ", MaxBundleSize) }},
		{name: "not an object", text: func(string) string { return `[]` }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := valid()
			if tc.edit != nil {
				tc.edit(b)
			}
			raw, err := json.Marshal(b)
			if err != nil {
				t.Fatal(err)
			}
			if tc.text != nil {
				raw = []byte(tc.text(string(raw)))
			}
			_, err = parseBundle(raw, MaxBundleSize)
			if (err == nil) != tc.ok {
				t.Fatalf("got %v, want ok %v", err, tc.ok)
			}
			if err != nil && !errors.Is(err, errMalformedBundle) {
				t.Fatalf("undocumented error %v", err)
			}
		})
	}
}

func TestParseBundleStatement(t *testing.T) {
	st := func(subject string) string {
		return `{"_type":"https://in-toto.io/Statement/v1","subject":[` + subject + `],"predicateType":"` + SignPredicateType + `","predicate":{}}`
	}
	sub := `{"digest":{"sha256":"` + strings.TrimPrefix(testDigest, "sha256:") + `"}}`
	for _, tc := range []struct {
		name, doc string
		ok        bool
	}{
		{"as cosign writes it", st(`{"digest":{"sha256":"` + strings.TrimPrefix(testDigest, "sha256:") + `"},"annotations":{"a":"b"}}`), true},
		{"several subjects", st(sub + "," + `{"name":"x","digest":{"sha512":"00"}}`), true},
		{"no predicate", `{"_type":"https://in-toto.io/Statement/v1","subject":[` + sub + `],"predicateType":"x"}`, true},
		{"in-toto v0.1", strings.Replace(st(sub), "Statement/v1", "Statement/v0.1", 1), false},
		{"no subject", st(""), false},
		{"too many subjects", st(strings.TrimSuffix(strings.Repeat(sub+",", bundleMaxSubjects+1), ",")), false},
		{"subject without digest", st(`{"name":"x"}`), false},
		{"annotations not strings", st(`{"digest":{"sha256":"00"},"annotations":{"a":1}}`), false},
		{"predicate not an object", strings.Replace(st(sub), `"predicate":{}`, `"predicate":[]`, 1), false},
		{"unknown key", strings.Replace(st(sub), `"predicate":{}`, `"predicate":{},"x":1`, 1), false},
		{"key in another case", strings.Replace(st(sub), `"subject"`, `"Subject"`, 1), false},
		{"duplicate key", strings.Replace(st(sub), `"predicate":{}`, `"predicate":{},"predicate":{}`, 1), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseBundleStatement([]byte(tc.doc))
			if (err == nil) != tc.ok {
				t.Fatalf("got %v, want ok %v", err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrMalformedPayload) {
				t.Fatalf("undocumented error %v", err)
			}
			if tc.name == "as cosign writes it" && (len(c.digests) != 1 || c.digests[0] != testDigest || c.annotations["a"] != "b") {
				t.Fatalf("claim %+v", c)
			}
		})
	}
}

// bundleKeyHint is what cosign writes: base64 of the SHA-256 of the PKIX key.
func TestBundleKeyHint(t *testing.T) {
	k := newKey(t)
	hint, err := bundleKeyHint(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := base64.StdEncoding.DecodeString(hint)
	if err != nil || len(raw) != sha256.Size {
		t.Fatalf("hint %q", hint)
	}
}

func FuzzParseBundle(f *testing.F) {
	k, err := key.Generate()
	if err != nil {
		f.Fatal(err)
	}
	d, _ := v1.NewHash(testDigest)
	// cosign attest --new-bundle-format: an in-toto v0.1 statement of another predicate type.
	attestation := []byte(`{"_type":"https://in-toto.io/Statement/v0.1","predicateType":"https://slsa.dev/provenance/v1",` +
		`"subject":[{"name":"r","digest":{"sha256":"` + d.Hex + `"}}],"predicate":{"buildDefinition":{}}}`)
	for _, s := range []bundleSpec{
		{digest: d},
		{digest: d, message: true},
		{digest: d, keyless: true, tlog: true},
		{digest: d, annotations: map[string]string{"a": "b"}, tlog: true},
		{digest: d, predicate: PredicateTypeSLSA1},
		{statement: attestation},
	} {
		f.Add(makeBundle(f, k, s))
	}
	keys := []trustedKey{{pub: &k.PublicKey, fingerprint: "k"}}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := parseBundle(b, MaxAttestationSize)
		if err != nil {
			if !errors.Is(err, errMalformedBundle) {
				t.Fatalf("undocumented error: %v", err)
			}
			return
		}
		if (s.message == nil) == (s.envelope == nil) || (s.envelope != nil && len(s.envelope.Signatures) != 1) {
			t.Fatal("a bundle parsed with not exactly one content and one signature")
		}
		v, reason, _ := verifyBundle(s, keys, d)
		if reason == "" && (v.Key != "k" || v.Payload.Digest != d) {
			t.Fatalf("verified %+v", v)
		}
		a, reason, why := verifyBundleAttestation(s, keys, d)
		if (a == nil) == (reason == "") {
			t.Fatalf("attestation %+v with reason %q", a, reason)
		}
		if a != nil && (a.Key != "k" || !a.Statement.HasDigest("sha256", d.Hex) || why != "") {
			t.Fatalf("accepted %+v", a)
		}
	})
}

func FuzzParseBundleStatement(f *testing.F) {
	f.Add([]byte(`{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"sha256":"00"},"annotations":{"a":"b"}}],"predicateType":"` + SignPredicateType + `","predicate":{}}`))
	f.Add([]byte(`{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"n","digest":{}}],"predicateType":""}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := parseBundleStatement(b)
		if err != nil {
			if !errors.Is(err, ErrMalformedPayload) {
				t.Fatalf("undocumented error: %v", err)
			}
			return
		}
		for _, d := range c.digests {
			if !strings.HasPrefix(d, "sha256:") {
				t.Fatalf("digest %q", d)
			}
		}
	})
}
