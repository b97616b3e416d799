package cosign

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/moatsec/moat/internal/sign/dsse"
	"github.com/moatsec/moat/internal/sign/intoto"
	"github.com/moatsec/moat/internal/sign/key"
)

func attTag(t *testing.T, f fixture, d v1.Hash) name.Tag {
	t.Helper()
	tag, err := AttestationTag(f.repo, d)
	if err != nil {
		t.Fatal(err)
	}
	return tag
}

// attLayer is one layer of a hand-made attestation image.
type attLayer struct {
	blob      []byte
	mediaType types.MediaType
	ann       map[string]string
}

// readAtt returns the layers stored at tag.
func readAtt(t *testing.T, tag name.Tag) []attLayer {
	t.Helper()
	img, err := remote.Image(tag)
	if err != nil {
		t.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	var out []attLayer
	for _, d := range m.Layers {
		l, err := img.LayerByDigest(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, attLayer{b, d.MediaType, d.Annotations})
	}
	return out
}

// storeAtt replaces the image at tag with one made of layers.
func storeAtt(t *testing.T, tag name.Tag, layers ...attLayer) {
	t.Helper()
	var adds []mutate.Addendum
	for _, l := range layers {
		adds = append(adds, mutate.Addendum{Layer: static.NewLayer(l.blob, l.mediaType), Annotations: l.ann})
	}
	img, err := mutate.Append(emptyAttestations(), adds...)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(tag, img); err != nil {
		t.Fatal(err)
	}
}

// editEnvelope decodes a stored envelope into generic JSON, lets edit change it, and encodes
// it again.
func editEnvelope(t *testing.T, blob []byte, edit func(env map[string]any)) []byte {
	t.Helper()
	var env map[string]any
	if err := json.Unmarshal(blob, &env); err != nil {
		t.Fatal(err)
	}
	edit(env)
	b, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func firstSig(env map[string]any) map[string]any {
	return env["signatures"].([]any)[0].(map[string]any)
}

// attestations runs VerifyAttestations, failing the test on an error.
func attestations(t *testing.T, f fixture, d v1.Hash, keys []crypto.PublicKey, opts ...Option) ([]VerifiedAttestation, []Failure) {
	t.Helper()
	vs, fs, err := VerifyAttestations(context.Background(), f.repo, d, keys, opts...)
	if err != nil {
		t.Fatal(err)
	}
	for _, fl := range fs {
		t.Log(fl)
	}
	return vs, fs
}

func mustAttest(t *testing.T, f fixture, d v1.Hash, typ string, predicate string, k crypto.Signer, opts ...Option) *Attested {
	t.Helper()
	a, err := Attest(context.Background(), f.repo, d, typ, []byte(predicate), k, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestAttestVerify(t *testing.T) {
	f := setup(t, "")
	k := newKey(t)
	fp, _ := key.Fingerprint(k.Public())

	typ, custom, err := BuildPredicate("custom", []byte("built by ci"), time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	a := mustAttest(t, f, f.a, typ, string(custom), k)
	if want := f.repo.Name() + ":sha256-" + f.a.Hex + ".att"; a.Tag.String() != want {
		t.Fatalf("tag %s, want %s", a.Tag, want)
	}
	bom := `{"bomFormat": "CycloneDX", "specVersion": "1.5", "serialNumber": 12345678901234567890}`
	mustAttest(t, f, f.a, PredicateTypeCycloneDX, bom, k)

	vs, fs := attestations(t, f, f.a, pubs(k))
	if len(fs) != 0 || len(vs) != 2 {
		t.Fatalf("verified %d, failures %v", len(vs), fs)
	}
	for i, want := range []struct{ typ, predicate string }{
		{PredicateTypeCustom, `{"Data":"built by ci","Timestamp":"2025-03-01T12:00:00Z"}`},
		{PredicateTypeCycloneDX, `{"bomFormat":"CycloneDX","specVersion":"1.5","serialNumber":12345678901234567890}`},
	} {
		v := vs[i]
		if v.Index != i || v.Key != fp || v.PredicateType != want.typ || string(v.Predicate) != want.predicate {
			t.Errorf("attestation %d: %+v", i, v)
		}
		if v.Statement.Type != intoto.StatementV01 || len(v.Statement.Subject) != 1 ||
			v.Statement.Subject[0].Name != f.repo.Name() || v.Statement.Subject[0].Digest["sha256"] != f.a.Hex {
			t.Errorf("attestation %d statement %+v", i, v.Statement)
		}
	}

	// The stored image has cosign's shape.
	img, err := remote.Image(a.Tag)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := img.Manifest()
	if m.MediaType != types.OCIManifestSchema1 || m.Config.MediaType != types.OCIConfigJSON || len(m.Layers) != 2 {
		t.Fatalf("attestation manifest %+v", m)
	}
	for i, l := range m.Layers {
		want := map[string]string{SignatureAnnotation: "", PredicateTypeAnnotation: vs[i].PredicateType}
		if l.MediaType != "application/vnd.dsse.envelope.v1+json" || fmt.Sprint(l.Annotations) != fmt.Sprint(want) {
			t.Errorf("layer %d: %+v", i, l)
		}
	}
	if l := m.Layers[0]; l.Digest != a.Layer {
		t.Errorf("layer digest %s, Attest said %s", l.Digest, a.Layer)
	}
	cfg, _ := img.ConfigFile()
	if !cfg.Created.IsZero() {
		t.Errorf("config created %v; cosign 2.6 leaves it unset", cfg.Created)
	}
	// The envelope and statement are what cosign writes.
	var env struct {
		PayloadType string `json:"payloadType"`
		Payload     string `json:"payload"`
		Signatures  []struct {
			KeyID *string `json:"keyid"`
			Sig   string  `json:"sig"`
		} `json:"signatures"`
	}
	if err := json.Unmarshal(a.Envelope, &env); err != nil {
		t.Fatal(err)
	}
	st, _ := base64.StdEncoding.DecodeString(env.Payload)
	if env.PayloadType != "application/vnd.in-toto+json" || string(st) != string(a.Statement) ||
		len(env.Signatures) != 1 || env.Signatures[0].KeyID == nil || *env.Signatures[0].KeyID != "" {
		t.Fatalf("envelope %s", a.Envelope)
	}
	wantSt := `{"_type":"https://in-toto.io/Statement/v0.1","predicateType":"https://cosign.sigstore.dev/attestation/v1",` +
		`"subject":[{"name":"` + f.repo.Name() + `","digest":{"sha256":"` + f.a.Hex + `"}}],` +
		`"predicate":{"Data":"built by ci","Timestamp":"2025-03-01T12:00:00Z"}}`
	if string(st) != wantSt {
		t.Fatalf("statement\n%s\nwant\n%s", st, wantSt)
	}

	// Another image's attestations are its own.
	if vs, fs := attestations(t, f, f.b, pubs(k)); len(vs) != 0 || len(fs) != 0 {
		t.Fatalf("b: %v, %v", vs, fs)
	}
	// A second key sees the attestations, and fails them, without error.
	other := newKey(t)
	vs, fs = attestations(t, f, f.a, pubs(other))
	if len(vs) != 0 || len(fs) != 2 || fs[0].Reason != ReasonBadSignature || fs[1].Reason != ReasonBadSignature {
		t.Fatalf("other key: %v, %v", vs, fs)
	}
	// Either of two keys will do; a key given twice counts once.
	vs, _ = attestations(t, f, f.a, pubs(other, k, k))
	if len(vs) != 2 || vs[0].Key != fp {
		t.Fatalf("two keys: %+v", vs)
	}
}

func TestAttestReplace(t *testing.T) {
	f := setup(t, "")
	k, other := newKey(t), newKey(t)
	const typeX, typeY = "https://example.com/x/v1", "https://example.com/y/v1"
	mustAttest(t, f, f.a, typeX, `{"n":1}`, k)
	mustAttest(t, f, f.a, typeY, `{"n":2}`, k)
	mustAttest(t, f, f.a, typeX, `{"n":3}`, other) // appended by default
	a := mustAttest(t, f, f.a, typeX, `{"n":4}`, k, WithReplace())
	if a.Replaced != 2 || a.Existing {
		t.Fatalf("replace: %+v", a)
	}
	// As cosign: the new attestation first, then the others in order.
	vs, fs := attestations(t, f, f.a, pubs(k, other))
	var got []string
	for _, v := range vs {
		got = append(got, v.PredicateType+" "+string(v.Predicate))
	}
	if want := []string{typeX + ` {"n":4}`, typeY + ` {"n":2}`}; len(fs) != 0 || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after replace %q, failures %v", got, fs)
	}
	// Replacing on an image without attestations just writes one.
	if a := mustAttest(t, f, f.b, typeX, `{}`, k, WithReplace()); a.Replaced != 0 {
		t.Fatalf("replace on b: %+v", a)
	}
	// Replacing must read every stored attestation; an unreadable one stops it.
	tag := attTag(t, f, f.a)
	layers := readAtt(t, tag)
	storeAtt(t, tag, append(layers, attLayer{[]byte("junk"), dsse.MediaType, nil})...)
	if _, err := Attest(context.Background(), f.repo, f.a, typeY, []byte(`{}`), k, WithReplace()); err == nil {
		t.Fatal("replace over an unreadable attestation succeeded")
	}
	if got := len(readAtt(t, tag)); got != 3 {
		t.Fatalf("%d layers after a failed replace, want 3", got)
	}
}

func TestAttestIdempotent(t *testing.T) {
	f := setup(t, "")
	k := &replaySigner{newKey(t), map[string][]byte{}}
	first := mustAttest(t, f, f.a, PredicateTypeVuln, `{"scanner":{}}`, k)
	again := mustAttest(t, f, f.a, PredicateTypeVuln, `{"scanner":{}}`, k)
	if first.Existing || !again.Existing || again.Layer != first.Layer {
		t.Fatalf("first %+v, again %+v", first, again)
	}
	if n := len(readAtt(t, first.Tag)); n != 1 {
		t.Fatalf("%d layers, want 1", n)
	}
	// Replacing with the same envelope still removes the other attestations of the type.
	mustAttest(t, f, f.a, PredicateTypeVuln, `{"scanner":{"n":2}}`, k)
	again = mustAttest(t, f, f.a, PredicateTypeVuln, `{"scanner":{}}`, k, WithReplace())
	if again.Existing || again.Replaced != 2 || len(readAtt(t, first.Tag)) != 1 {
		t.Fatalf("replace with the same envelope: %+v", again)
	}
}

func TestAttestArguments(t *testing.T) {
	f := setup(t, "")
	ctx := context.Background()
	k := newKey(t)
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		typ, predicate string
		signer         crypto.Signer
		digest         v1.Hash
	}{
		"shorthand, not a URI":   {"cyclonedx", `{}`, k, f.a},
		"relative type":          {"example.com/x", `{}`, k, f.a},
		"predicate not JSON":     {PredicateTypeCustom, `built by ci`, k, f.a},
		"two JSON values":        {PredicateTypeCustom, `{} {}`, k, f.a},
		"duplicate keys":         {PredicateTypeCustom, `{"a":1,"a":2}`, k, f.a},
		"unsupported key":        {PredicateTypeCustom, `{}`, p384, f.a},
		"digest not sha256:<64>": {PredicateTypeCustom, `{}`, k, v1.Hash{Algorithm: "sha256", Hex: "abc"}},
	} {
		if _, err := Attest(ctx, f.repo, tc.digest, tc.typ, []byte(tc.predicate), tc.signer); err == nil {
			t.Errorf("%s: Attest succeeded", name)
		}
	}
	if _, err := Attest(ctx, f.repo, f.a, PredicateTypeCustom, []byte(`{}`), p384); !errors.Is(err, key.ErrUnsupportedKey) {
		t.Errorf("P-384 signer: %v", err)
	}
	for name, keys := range map[string][]crypto.PublicKey{
		"no keys": nil,
		"P-384":   {p384.Public()},
	} {
		if _, _, err := VerifyAttestations(ctx, f.repo, f.a, keys); err == nil {
			t.Errorf("%s: VerifyAttestations succeeded", name)
		}
	}
	if _, _, err := VerifyAttestations(ctx, f.repo, f.a, []crypto.PublicKey{p384.Public()}); !errors.Is(err, key.ErrUnsupportedKey) {
		t.Errorf("P-384 key: %v", err)
	}
}

func TestAttestationAttacks(t *testing.T) {
	k, other := newKey(t), newKey(t)
	statement := func(f fixture, d v1.Hash) []byte {
		st := intoto.Statement{Type: intoto.StatementV01, PredicateType: PredicateTypeVuln,
			Subject: []intoto.Subject{{Name: f.repo.Name(), Digest: map[string]string{"sha256": d.Hex}}}, Predicate: json.RawMessage(`{}`)}
		b, err := st.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// signed makes an envelope over payload with k.
	signed := func(payloadType string, payload []byte) []byte {
		env, err := dsse.Sign(k, crypto.SHA256, payloadType, payload)
		if err != nil {
			t.Fatal(err)
		}
		b, err := env.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	sigOf := func(env map[string]any) []byte {
		b, _ := base64.StdEncoding.DecodeString(firstSig(env)["sig"].(string))
		return b
	}

	for _, tc := range []struct {
		name string
		// edit turns the stored layer of a valid attestation of f.a into the attack; it may
		// also act on the registry.
		edit func(t *testing.T, f fixture, l *attLayer)
		want Reason
	}{
		{"payload edited after signing", func(t *testing.T, f fixture, l *attLayer) {
			l.blob = editEnvelope(t, l.blob, func(env map[string]any) {
				st := strings.Replace(string(statement(f, f.a)), `"predicate":{}`, `"predicate":{"clean":true}`, 1)
				env["payload"] = base64.StdEncoding.EncodeToString([]byte(st))
			})
		}, ReasonBadSignature},
		{"payload type edited after signing", func(t *testing.T, f fixture, l *attLayer) {
			l.blob = editEnvelope(t, l.blob, func(env map[string]any) { env["payloadType"] = "application/vnd.in-toto+json " })
		}, ReasonPayloadType},
		{"signed by another key", func(t *testing.T, f fixture, l *attLayer) {
			env, _ := dsse.Sign(other, crypto.SHA256, intoto.PayloadType, statement(f, f.a))
			l.blob, _ = env.Marshal()
		}, ReasonBadSignature},
		{"statement for another digest copied here", func(t *testing.T, f fixture, l *attLayer) {
			l.blob = signed(intoto.PayloadType, statement(f, f.b))
		}, ReasonSubjectMismatch},
		{"subject digest under another algorithm", func(t *testing.T, f fixture, l *attLayer) {
			st := strings.Replace(string(statement(f, f.a)), `"sha256"`, `"sha512"`, 1)
			l.blob = signed(intoto.PayloadType, []byte(st))
		}, ReasonSubjectMismatch},
		{"truncated signature", func(t *testing.T, f fixture, l *attLayer) {
			l.blob = editEnvelope(t, l.blob, func(env map[string]any) {
				firstSig(env)["sig"] = base64.StdEncoding.EncodeToString(sigOf(env)[:20])
			})
		}, ReasonMalformedSignature},
		{"padded signature", func(t *testing.T, f fixture, l *attLayer) {
			l.blob = editEnvelope(t, l.blob, func(env map[string]any) {
				firstSig(env)["sig"] = base64.StdEncoding.EncodeToString(append(sigOf(env), 0))
			})
		}, ReasonMalformedSignature},
		{"signature moved to the annotation", func(t *testing.T, f fixture, l *attLayer) {
			var sig string
			l.blob = editEnvelope(t, l.blob, func(env map[string]any) {
				sig = firstSig(env)["sig"].(string)
				env["signatures"] = []any{}
			})
			l.ann[SignatureAnnotation] = sig
		}, ReasonMalformedEnvelope},
		{"duplicate payload key", func(t *testing.T, f fixture, l *attLayer) {
			evil := base64.StdEncoding.EncodeToString(statement(f, f.a))
			l.blob = []byte(strings.Replace(string(l.blob), `"payload":`, `"payload":"`+evil+`","payload":`, 1))
		}, ReasonMalformedEnvelope},
		{"not JSON", func(t *testing.T, f fixture, l *attLayer) { l.blob = []byte("not an envelope") }, ReasonMalformedEnvelope},
		{"signed payload is not a statement", func(t *testing.T, f fixture, l *attLayer) {
			l.blob = signed(intoto.PayloadType, []byte(`{"critical":{"image":{"docker-manifest-digest":"sha256:`+f.a.Hex+`"}}}`))
		}, ReasonMalformedStatement},
		{"signed statement with a duplicate subject key", func(t *testing.T, f fixture, l *attLayer) {
			st := strings.Replace(string(statement(f, f.a)), `"subject":`, `"subject":[{"digest":{"sha256":"`+f.b.Hex+`"}}],"subject":`, 1)
			l.blob = signed(intoto.PayloadType, []byte(st))
		}, ReasonMalformedStatement},
		{"simple-signing layer in the attestation image", func(t *testing.T, f fixture, l *attLayer) {
			l.mediaType = SimpleSigningMediaType
		}, ReasonNotEnvelope},
		// The annotation is not signed and not trusted: lying in it changes nothing.
		{"predicate type annotation edited", func(t *testing.T, f fixture, l *attLayer) {
			l.ann[PredicateTypeAnnotation] = PredicateTypeSLSA1
		}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := setup(t, "")
			a := mustAttest(t, f, f.a, PredicateTypeVuln, `{}`, k)
			layers := readAtt(t, a.Tag)
			tc.edit(t, f, &layers[0])
			storeAtt(t, a.Tag, layers...)
			vs, fs := attestations(t, f, f.a, pubs(k))
			if tc.want == "" {
				if len(fs) != 0 || len(vs) != 1 || vs[0].PredicateType != PredicateTypeVuln {
					t.Fatalf("verified %+v, failures %v", vs, fs)
				}
				return
			}
			if len(vs) != 0 || len(fs) != 1 || fs[0].Reason != tc.want || fs[0].Index != 0 {
				t.Fatalf("verified %+v, failures %v; want one %q", vs, fs, tc.want)
			}
		})
	}

	t.Run("one bad among good ones", func(t *testing.T) {
		f := setup(t, "")
		mustAttest(t, f, f.a, PredicateTypeVuln, `{}`, k)
		mustAttest(t, f, f.a, PredicateTypeVuln, `{}`, other)
		mustAttest(t, f, f.a, PredicateTypeOpenVEX, `{}`, k)
		vs, fs := attestations(t, f, f.a, pubs(k))
		if len(vs) != 2 || vs[0].Index != 0 || vs[1].Index != 2 || len(fs) != 1 || fs[0].Index != 1 || fs[0].Reason != ReasonBadSignature {
			t.Fatalf("verified %+v, failures %v", vs, fs)
		}
	})
}

// attManifest is a hand-written manifest, for sizes a real image would not have.
type attManifest []byte

func (m attManifest) RawManifest() ([]byte, error)        { return m, nil }
func (m attManifest) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }

func TestAttestationBounds(t *testing.T) {
	k := newKey(t)

	t.Run("layer larger than MaxAttestationSize", func(t *testing.T) {
		f := setup(t, "")
		a := mustAttest(t, f, f.a, PredicateTypeVuln, `{}`, k)
		img, _ := remote.Image(a.Tag)
		m, _ := img.Manifest()
		m.Layers[0].Size = MaxAttestationSize + 1
		raw, _ := json.Marshal(m)
		if err := remote.Put(a.Tag, attManifest(raw)); err != nil {
			t.Fatal(err)
		}
		vs, fs := attestations(t, f, f.a, pubs(k))
		if len(vs) != 0 || len(fs) != 1 || fs[0].Reason != ReasonPayloadTooLarge {
			t.Fatalf("verified %+v, failures %v", vs, fs)
		}
	})

	t.Run("more than MaxAttestationBytes in all", func(t *testing.T) {
		f := setup(t, "")
		a := mustAttest(t, f, f.a, PredicateTypeVuln, `{}`, k)
		img, _ := remote.Image(a.Tag)
		m, _ := img.Manifest()
		// Declared sizes are believed only as limits: five layers claiming 60 MiB each go
		// past the budget with the fifth, and the blobs, far shorter, fail their digests.
		const claimed = 60 << 20
		one := m.Layers[0]
		one.Size = claimed
		m.Layers = nil
		for range 5 {
			m.Layers = append(m.Layers, one)
		}
		raw, _ := json.Marshal(m)
		if err := remote.Put(a.Tag, attManifest(raw)); err != nil {
			t.Fatal(err)
		}
		vs, fs := attestations(t, f, f.a, pubs(k))
		if len(vs) != 0 || len(fs) != 5 {
			t.Fatalf("verified %+v, failures %v", vs, fs)
		}
		for i, fl := range fs {
			want := ReasonPayloadDigest
			if i*claimed+claimed > MaxAttestationBytes {
				want = ReasonPayloadTooLarge
			}
			if fl.Reason != want {
				t.Errorf("layer %d: %v, want %q", i, fl, want)
			}
		}
	})

	t.Run("too many layers", func(t *testing.T) {
		if testing.Short() {
			t.Skip("pushes and verifies 257 layers")
		}
		f := setup(t, "")
		a := mustAttest(t, f, f.a, PredicateTypeVuln, `{}`, k)
		one := readAtt(t, a.Tag)[0]
		var layers []attLayer
		for range MaxAttestations {
			layers = append(layers, one)
		}
		storeAtt(t, a.Tag, layers...)
		// A full image verifies, and takes no more.
		if vs, fs := attestations(t, f, f.a, pubs(k)); len(vs) != MaxAttestations || len(fs) != 0 {
			t.Fatalf("%d verified, failures %v", len(vs), fs)
		}
		if _, err := Attest(context.Background(), f.repo, f.a, PredicateTypeVuln, []byte(`{"n":1}`), k); err == nil {
			t.Fatal("Attest appended past MaxAttestations")
		}
		storeAtt(t, a.Tag, append(layers, one)...)
		vs, fs := attestations(t, f, f.a, pubs(k))
		if len(vs) != 0 || len(fs) != 1 || fs[0].Reason != ReasonTooManyAttestations || fs[0].Index != -1 {
			t.Fatalf("verified %d, failures %v", len(vs), fs)
		}
	})

	t.Run("predicate too large to store", func(t *testing.T) {
		f := setup(t, "")
		big := `"` + strings.Repeat("a", MaxAttestationSize*3/4) + `"`
		if _, err := Attest(context.Background(), f.repo, f.a, PredicateTypeSPDX, []byte(big), k); err == nil {
			t.Fatal("Attest stored an attestation no verifier reads")
		}
	})
}

func isAttManifest(r *http.Request) bool {
	return strings.Contains(r.URL.Path, "/manifests/sha256-") && strings.HasSuffix(r.URL.Path, ".att")
}

func TestAttestationRegistryFailures(t *testing.T) {
	noRetry := WithRemoteOptions(remote.WithRetryBackoff(remote.Backoff{Steps: 1}))
	k := newKey(t)

	// Each case breaks the registry after a valid attestation is stored; every outcome must
	// be an error, never a verdict.
	for _, tc := range []struct {
		name  string
		fails func(r *http.Request) bool
	}{
		{"500 on the attestation manifest", isAttManifest},
		{"500 on the envelope blob", func(r *http.Request) bool {
			return r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var broken atomic.Bool
			f := setup(t, serve(t, failWhen(&broken, tc.fails)))
			mustAttest(t, f, f.a, PredicateTypeVuln, `{}`, k)
			broken.Store(true)
			vs, fs, err := VerifyAttestations(context.Background(), f.repo, f.a, pubs(k), noRetry)
			if err == nil || !strings.Contains(err.Error(), "500") || vs != nil || fs != nil {
				t.Fatalf("got %v, %v, %v; want a registry error", vs, fs, err)
			}
			if _, err := Attest(context.Background(), f.repo, f.a, PredicateTypeVuln, []byte(`{}`), k, noRetry, WithReplace()); err == nil {
				t.Fatal("Attest over a broken registry succeeded")
			}
		})
	}

	t.Run("hangs", func(t *testing.T) {
		var hang atomic.Bool
		f := setup(t, serve(t, hangWhen(t, &hang, isAttManifest)))
		mustAttest(t, f, f.a, PredicateTypeVuln, `{}`, k)
		hang.Store(true)
		for name, call := range map[string]func(ctx context.Context) error{
			"verify": func(ctx context.Context) error {
				_, _, err := VerifyAttestations(ctx, f.repo, f.a, pubs(k), noRetry)
				return err
			},
			"attest": func(ctx context.Context) error {
				_, err := Attest(ctx, f.repo, f.a, PredicateTypeVuln, []byte(`{}`), k, noRetry)
				return err
			},
		} {
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			start := time.Now()
			err := call(ctx)
			cancel()
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("%s: got %v; want the deadline", name, err)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Fatalf("%s took %s after a 300ms deadline", name, d)
			}
		}
	})

	t.Run("blob does not match its digest", func(t *testing.T) {
		var corrupt atomic.Bool
		f := setup(t, serve(t, corruptBlobs(&corrupt, "payloadType", "payloadType", "payloadtype")))
		mustAttest(t, f, f.a, PredicateTypeVuln, `{}`, k)
		corrupt.Store(true)
		vs, fs := attestations(t, f, f.a, pubs(k))
		if len(vs) != 0 || len(fs) != 1 || fs[0].Reason != ReasonPayloadDigest {
			t.Fatalf("verified %+v, failures %v", vs, fs)
		}
	})
}

func TestPredicateTypeURI(t *testing.T) {
	for in, want := range map[string]string{
		"custom":                   "https://cosign.sigstore.dev/attestation/v1",
		"slsaprovenance":           "https://slsa.dev/provenance/v0.2",
		"slsaprovenance02":         "https://slsa.dev/provenance/v0.2",
		"slsaprovenance1":          "https://slsa.dev/provenance/v1",
		"link":                     "https://in-toto.io/Link/v1",
		"spdx":                     "https://spdx.dev/Document",
		"spdxjson":                 "https://spdx.dev/Document",
		"cyclonedx":                "https://cyclonedx.org/bom",
		"vuln":                     "https://cosign.sigstore.dev/attestation/vuln/v1",
		"openvex":                  "https://openvex.dev/ns",
		"https://example.com/t/v1": "https://example.com/t/v1",
		"urn:example:t":            "urn:example:t",
		"cyclonedxxml":             "", // dropped in cosign 2.x
		"example.com/t":            "",
		"":                         "",
		"Custom":                   "",
	} {
		got, err := PredicateTypeURI(in)
		if (err != nil) != (want == "") || got != want {
			t.Errorf("PredicateTypeURI(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if n := len(PredicateTypeNames()); n != 10 {
		t.Errorf("%d shorthand names, want 10", n)
	}
}

func TestBuildPredicate(t *testing.T) {
	now := time.Date(2025, 3, 1, 13, 0, 0, 0, time.FixedZone("CET", 3600))
	for _, tc := range []struct {
		typ, raw, wantType, want string // want "": an error
	}{
		{"custom", "any <text>\n", PredicateTypeCustom, `{"Data":"any \u003ctext\u003e\n","Timestamp":"2025-03-01T12:00:00Z"}`},
		{"custom", "\xff", "", ""},
		{"spdx", "SPDXVersion: SPDX-2.3\n", PredicateTypeSPDX, `"SPDXVersion: SPDX-2.3\n"`},
		{"spdxjson", `{ "spdxVersion": "SPDX-2.3" }`, PredicateTypeSPDX, `{"spdxVersion":"SPDX-2.3"}`},
		{"cyclonedx", "{\n \"bomFormat\": \"CycloneDX\"\n}\n", PredicateTypeCycloneDX, `{"bomFormat":"CycloneDX"}`},
		{"cyclonedx", `<bom/>`, "", ""},
		{"vuln", `{"scanner":{"uri":"moat"}}`, PredicateTypeVuln, `{"scanner":{"uri":"moat"}}`},
		{"vuln", `[]`, "", ""},
		{"cyclonedx", `[]`, PredicateTypeCycloneDX, `[]`},
		{"openvex", `{"@context":"https://openvex.dev/ns/v0.2.0"}`, PredicateTypeOpenVEX, `{"@context":"https://openvex.dev/ns/v0.2.0"}`},
		{"slsaprovenance1", `{"buildDefinition":{}}`, PredicateTypeSLSA1, `{"buildDefinition":{}}`},
		{"https://example.com/t/v1", `{"a": 1}`, "https://example.com/t/v1", `{"a":1}`},
		{"https://example.com/t/v1", `[1]`, "", ""},
		{"nonsense", `{}`, "", ""},
	} {
		typ, got, err := BuildPredicate(tc.typ, []byte(tc.raw), now)
		if tc.want == "" {
			if err == nil {
				t.Errorf("BuildPredicate(%q, %q) = %s, want an error", tc.typ, tc.raw, got)
			}
			continue
		}
		if err != nil || typ != tc.wantType || string(got) != tc.want {
			t.Errorf("BuildPredicate(%q, %q) = %q, %s, %v; want %q, %s", tc.typ, tc.raw, typ, got, err, tc.wantType, tc.want)
		}
	}
}

// cosignEnvelope is an attestation envelope written by cosign 1.x, from cosign's own tests
// (pkg/cosign/verifiers_test.go). Its key is not published, so only its shape is checked.
const cosignEnvelope = `{"payloadType":"application/vnd.in-toto+json","payload":"eyJfdHlwZSI6Imh0dHBzOi8vaW4tdG90by5pby9TdGF0ZW1lbnQvdjAuMSIsInByZWRpY2F0ZVR5cGUiOiJjb3NpZ24uc2lnc3RvcmUuZGV2L2F0dGVzdGF0aW9uL3YxIiwic3ViamVjdCI6W3sibmFtZSI6InJlZ2lzdHJ5LmxvY2FsOjUwMDAva25hdGl2ZS9kZW1vIiwiZGlnZXN0Ijp7InNoYTI1NiI6IjZjNmZkNmE0MTE1YzZlOTk4ZmYzNTdjZDkxNDY4MDkzMWJiOWE2YzFhN2NkNWY1Y2IyZjVlMWMwOTMyYWI2ZWQifX1dLCJwcmVkaWNhdGUiOnsiRGF0YSI6ImZvb2JhciB0ZXN0IGF0dGVzdGF0aW9uIiwiVGltZXN0YW1wIjoiMjAyMi0wNC0wN1QxOToyMjoyNVoifX0=","signatures":[{"keyid":"","sig":"MEUCIQC/slGQVpRKgw4Jo8tcbgo85WNG/FOJfxcvQFvTEnG9swIgP4LeOmID+biUNwLLeylBQpAEgeV6GVcEpyG6r8LVnfY="}]}`

func TestCosignEnvelopeShape(t *testing.T) {
	digest := v1.Hash{Algorithm: "sha256", Hex: "6c6fd6a4115c6e998ff357cd914680931bb9a6c1a7cd5f5cb2f5e1c0932ab6ed"}
	ks, err := trustedKeys("verifying attestations", pubs(newKey(t)), true)
	if err != nil {
		t.Fatal(err)
	}
	// A well-formed signature by a key we do not have.
	if _, reason, detail := checkAttestation([]byte(cosignEnvelope), digest, ks); reason != ReasonBadSignature {
		t.Fatalf("reason %q (%s), want %q", reason, detail, ReasonBadSignature)
	}
	env, err := dsse.Parse([]byte(cosignEnvelope))
	if err != nil {
		t.Fatal(err)
	}
	st, err := intoto.Parse(env.Payload)
	if err != nil {
		t.Fatal(err)
	}
	if !st.HasDigest("sha256", digest.Hex) || st.PredicateType != "cosign.sigstore.dev/attestation/v1" {
		t.Fatalf("statement %+v", st)
	}
}

// FuzzCheckAttestation feeds arbitrary layer blobs to the per-layer verification: it must never
// panic, and must only accept envelopes signed by the key whose statement names the digest.
func FuzzCheckAttestation(f *testing.F) {
	k, err := key.Generate()
	if err != nil {
		f.Fatal(err)
	}
	ks, err := trustedKeys("verifying attestations", []crypto.PublicKey{k.Public()}, true)
	if err != nil {
		f.Fatal(err)
	}
	digest := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("ab", 32)}
	envelope := func(payloadType, payload string) []byte {
		env, err := dsse.Sign(k, crypto.SHA256, payloadType, []byte(payload))
		if err != nil {
			f.Fatal(err)
		}
		b, err := env.Marshal()
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	good := `{"_type":"https://in-toto.io/Statement/v0.1","predicateType":"https://cosign.sigstore.dev/attestation/vuln/v1",` +
		`"subject":[{"name":"r","digest":{"sha256":"` + digest.Hex + `"}}],"predicate":{"scanner":{}}}`
	for _, seed := range [][]byte{
		envelope(intoto.PayloadType, good),
		envelope(intoto.PayloadType, strings.Replace(good, "abab", "cdcd", 1)),
		envelope(intoto.PayloadType, `{"_type":"https://in-toto.io/Statement/v1"}`),
		envelope("text/plain", good),
		[]byte(cosignEnvelope),
		[]byte(`{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[{"sig":"MAYCAQECAQE="}]}`),
		[]byte(`{}`),
		nil,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, blob []byte) {
		v, reason, detail := checkAttestation(blob, digest, ks)
		if (v == nil) == (reason == "") {
			t.Fatalf("attestation %+v with reason %q", v, reason)
		}
		if v == nil {
			return
		}
		if !v.Statement.HasDigest("sha256", digest.Hex) || v.Key != ks[0].fingerprint || detail != "" {
			t.Fatalf("accepted %+v", v)
		}
	})
}
