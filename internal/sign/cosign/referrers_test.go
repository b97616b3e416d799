package cosign

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// refRegistry starts the in-process registry, with or without the referrers API, behind a
// wrapper that can misbehave (nil for none), and returns its host.
func refRegistry(t *testing.T, api bool, wrap func(next http.Handler) http.Handler) string {
	t.Helper()
	var h http.Handler = registry.New(registry.Logger(log.New(io.Discard, "", 0)), registry.WithReferrersSupport(api))
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	return u.Host
}

// pushReferrer puts a manifest that refers to subject, with the given artifactType (omitted
// when empty), config media type, layers and manifest annotations, as cosign's WriteReferrer
// does: the blobs first, then the manifest by digest. go-containerregistry updates the tag
// schema index when the registry has no referrers API.
func pushReferrer(t *testing.T, repo name.Repository, subject v1.Hash, artifactType, configType string, layers []v1.Layer, layerAnn []map[string]string, ann map[string]string) v1.Hash {
	t.Helper()
	cfg := static.NewLayer([]byte("{}"), types.MediaType(configType))
	m := map[string]any{
		"schemaVersion": 2,
		"mediaType":     types.OCIManifestSchema1,
		"config":        descriptorOf(t, cfg, nil),
	}
	if artifactType != "" {
		m["artifactType"] = artifactType
	}
	if ann != nil {
		m["annotations"] = ann
	}
	var ls []map[string]any
	for i, l := range append([]v1.Layer{cfg}, layers...) {
		if err := remote.WriteLayer(repo, l); err != nil {
			t.Fatal(err)
		}
		if i > 0 {
			var ann map[string]string
			if i-1 < len(layerAnn) {
				ann = layerAnn[i-1]
			}
			ls = append(ls, descriptorOf(t, l, ann))
		}
	}
	m["layers"] = ls
	subj, err := remote.Head(repo.Digest(subject.String()))
	if err != nil {
		t.Fatal(err)
	}
	m["subject"] = map[string]any{"mediaType": subj.MediaType, "digest": subj.Digest, "size": subj.Size}
	raw, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	h := v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", sha256.Sum256(raw))}
	if err := remote.Put(repo.Digest(h.String()), referrerPut(raw)); err != nil {
		t.Fatal(err)
	}
	return h
}

func descriptorOf(t *testing.T, l v1.Layer, ann map[string]string) map[string]any {
	t.Helper()
	d, _ := l.Digest()
	sz, _ := l.Size()
	mt, _ := l.MediaType()
	out := map[string]any{"mediaType": mt, "digest": d, "size": sz}
	if ann != nil {
		out["annotations"] = ann
	}
	return out
}

// referrersOf lists the referrers index entries of d.
func referrersOf(t *testing.T, repo name.Repository, d v1.Hash) []v1.Descriptor {
	t.Helper()
	idx, err := remote.Referrers(repo.Digest(d.String()))
	if err != nil {
		t.Fatal(err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	return m.Manifests
}

func sources(vs []Verified) string {
	var s []string
	for _, v := range vs {
		s = append(s, string(v.Source))
	}
	return strings.Join(s, ",")
}

func TestSignReferrers(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name       string
		api        bool
		mode       ReferrersMode
		wantErr    error
		tag, refer bool   // where the signature must be
		sources    string // what Verify reports, in order
	}{
		{name: "off", api: true, mode: ReferrersOff, tag: true, sources: "tag"},
		{name: "also", api: true, mode: ReferrersAlso, tag: true, refer: true, sources: "referrer,tag"},
		{name: "only", api: true, mode: ReferrersOnly, refer: true, sources: "referrer"},
		{name: "also without API", mode: ReferrersAlso, tag: true, sources: "tag"},
		{name: "only without API", mode: ReferrersOnly, wantErr: ErrReferrersUnsupported},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := setup(t, refRegistry(t, tc.api, nil))
			k := newKey(t)
			s, err := Sign(ctx, f.repo, f.a, map[string]string{"env": "prod"}, k, WithReferrers(tc.mode))
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("got %v, want %v", err, tc.wantErr)
				}
				if _, err := remote.Head(sigTag(t, f, f.a)); !isNotFound(err) {
					t.Fatalf("a failed Sign wrote the tag: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			_, err = remote.Head(sigTag(t, f, f.a))
			if tc.tag != (err == nil) || (s.Tag != name.Tag{}) != tc.tag {
				t.Fatalf("tag written: %v, Signed.Tag %q; want %v", err, s.Tag, tc.tag)
			}
			if (s.Referrer != v1.Hash{}) != tc.refer {
				t.Fatalf("Signed.Referrer %v, want written: %v", s.Referrer, tc.refer)
			}
			if tc.refer {
				checkReferrerShape(t, f, s)
			}
			vs, err := Verify(ctx, f.repo, f.a, pubs(k), 1)
			if err != nil {
				t.Fatal(err)
			}
			if got := sources(vs); got != tc.sources {
				t.Fatalf("verified from %s, want %s", got, tc.sources)
			}
			for _, v := range vs {
				if v.Payload.Digest != f.a || v.Payload.Annotations["env"] != "prod" || v.Layer != s.Layer {
					t.Fatalf("verified %+v", v)
				}
				if v.Source == SourceReferrer && v.Manifest != s.Referrer {
					t.Fatalf("verified from manifest %s, want %s", v.Manifest, s.Referrer)
				}
			}
			// The other image has no signatures of either kind.
			if ve := verdict(t, f, f.b, pubs(k), 1); ve.Reason != ReasonNoSignatures {
				t.Fatal(ve)
			}
		})
	}
}

// checkReferrerShape checks the referrer against cosign v2.6's oci-1-1 shape.
func checkReferrerShape(t *testing.T, f fixture, s *Signed) {
	t.Helper()
	got, err := remote.Get(f.repo.Digest(s.Referrer.String()))
	if err != nil {
		t.Fatal(err)
	}
	m, err := parseReferrerManifest(got.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	subj, _ := remote.Head(f.repo.Digest(f.a.String()))
	if m.MediaType != types.OCIManifestSchema1 || m.Config.MediaType != SignatureArtifactType || m.kind() != SourceReferrer ||
		m.Subject.Digest != f.a || m.Subject.Size != subj.Size || m.Subject.MediaType != subj.MediaType ||
		len(m.Layers) != 1 || m.Layers[0].MediaType != SimpleSigningMediaType || m.Layers[0].Digest != s.Layer {
		t.Fatalf("referrer manifest %s", got.Manifest)
	}
	// The config blob is there, so that the manifest is a complete image.
	if _, err := remote.Layer(f.repo.Digest(m.Config.Digest.String())); err != nil {
		t.Fatal(err)
	}
	refs := referrersOf(t, f.repo, f.a)
	if len(refs) != 1 || refs[0].Digest != s.Referrer || refs[0].ArtifactType != SignatureArtifactType {
		t.Fatalf("referrers %+v", refs)
	}
}

// A referrer in cosign's shape is found through the tag schema on a registry without the
// referrers API, as go-containerregistry (and so cosign) writes it there.
func TestReferrersTagSchema(t *testing.T) {
	ctx := context.Background()
	f := setup(t, refRegistry(t, false, nil))
	k := newKey(t)
	payload, err := Payload{DockerReference: f.repo.Name(), Digest: f.a}.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	l := static.NewLayer(payload, SimpleSigningMediaType)
	h := pushReferrer(t, f.repo, f.a, "", SignatureArtifactType, []v1.Layer{l}, []map[string]string{{SignatureAnnotation: signB64(t, k, payload)}}, nil)
	if _, err := remote.Head(f.repo.Tag("sha256-" + f.a.Hex)); err != nil {
		t.Fatalf("no tag schema index: %v", err)
	}
	vs, err := Verify(ctx, f.repo, f.a, pubs(k), 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 1 || vs[0].Source != SourceReferrer || vs[0].Manifest != h {
		t.Fatalf("verified %+v", vs)
	}

	// An entry of that index can name a manifest that refers to another image.
	other := pushReferrer(t, f.repo, f.b, "", SignatureArtifactType, []v1.Layer{l}, []map[string]string{{SignatureAnnotation: signB64(t, k, payload)}}, nil)
	idxTag := f.repo.Tag("sha256-" + f.a.Hex)
	desc, err := remote.Get(idxTag)
	if err != nil {
		t.Fatal(err)
	}
	var idx map[string]any
	json.Unmarshal(desc.Manifest, &idx)
	idx["manifests"] = append(idx["manifests"].([]any), map[string]any{"mediaType": types.OCIManifestSchema1, "digest": other, "size": 600, "artifactType": SignatureArtifactType})
	raw, _ := json.Marshal(idx)
	if err := remote.Put(idxTag, indexPut(raw)); err != nil {
		t.Fatal(err)
	}
	vs, err = Verify(ctx, f.repo, f.a, pubs(k), 1)
	if err != nil || len(vs) != 1 {
		t.Fatalf("got %v, %v", vs, err)
	}
	if _, err := Verify(ctx, f.repo, f.a, pubs(k, newKey(t)), 2); err == nil {
		t.Fatal("verified")
	} else if ve := (*VerificationError)(nil); !errors.As(err, &ve) || len(ve.Failures) != 1 || ve.Failures[0].Reason != ReasonDigestMismatch || ve.Failures[0].Manifest != other {
		t.Fatalf("got %v", err)
	}
}

type indexPut []byte

func (r indexPut) RawManifest() ([]byte, error)        { return r, nil }
func (r indexPut) MediaType() (types.MediaType, error) { return types.OCIImageIndex, nil }

// The threshold counts distinct keys across the referrers and the tag.
func TestThresholdAcrossPlaces(t *testing.T) {
	ctx := context.Background()
	f := setup(t, refRegistry(t, true, nil))
	kTag, kRef, kBundle, kNone := newKey(t), newKey(t), newKey(t), newKey(t)
	all := pubs(kTag, kRef, kBundle, kNone)
	if _, err := Sign(ctx, f.repo, f.a, nil, kTag); err != nil {
		t.Fatal(err)
	}
	// kTag again, in both places: still one key.
	if _, err := Sign(ctx, f.repo, f.a, map[string]string{"n": "2"}, kTag, WithReferrers(ReferrersAlso)); err != nil {
		t.Fatal(err)
	}
	ve := verdict(t, f, f.a, all, 2)
	if ve.Reason != ReasonThreshold || distinctKeys(ve.Verified) != 1 {
		t.Fatal(ve)
	}
	if _, err := Sign(ctx, f.repo, f.a, nil, kRef, WithReferrers(ReferrersOnly)); err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(ctx, f.repo, f.a, all, 2); err != nil {
		t.Fatal(err)
	}
	verdict(t, f, f.a, all, 3)
	pushBundle(t, f.repo, f.a, makeBundle(t, kBundle, bundleSpec{digest: f.a}))
	vs, err := Verify(ctx, f.repo, f.a, all, 3)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[Source]bool{}
	for _, v := range vs {
		seen[v.Source] = true
	}
	if !seen[SourceTag] || !seen[SourceReferrer] || !seen[SourceBundle] {
		t.Fatalf("verified %+v", vs)
	}
	verdict(t, f, f.a, all, 4)
}

func isReferrersCall(r *http.Request) bool { return strings.Contains(r.URL.Path, "/referrers/") }

// isTagSchemaCall matches the requests for the referrers tag schema (an index tagged
// sha256-<hex>) but not for the .sig and .att tags.
func isTagSchemaCall(r *http.Request) bool {
	return strings.Contains(r.URL.Path, "/manifests/sha256-") && !strings.HasSuffix(r.URL.Path, ".sig") && !strings.HasSuffix(r.URL.Path, ".att")
}

func isReferrerManifest(r *http.Request) bool {
	return strings.Contains(r.URL.Path, "/manifests/sha256:")
}

// registryFailure is a registry, with or without the referrers API, whose answers to the
// requests that match fail.
type registryFailure struct {
	name  string
	api   bool
	match func(r *http.Request) bool
}

// referrerFailures break, in turn, each request that reading referrers makes.
var referrerFailures = []registryFailure{
	{"referrers API answers 500", true, isReferrersCall},
	{"tag schema answers 500", false, isTagSchemaCall},
	{"referrer manifest answers 500", true, isReferrerManifest},
}

func TestReferrersRegistryFailures(t *testing.T) {
	noRetry := WithRemoteOptions(remote.WithRetryBackoff(remote.Backoff{Steps: 1}))
	k := newKey(t)
	for _, tc := range referrerFailures {
		t.Run(tc.name, func(t *testing.T) {
			var broken atomic.Bool
			f := setup(t, refRegistry(t, tc.api, failWhen(&broken, tc.match)))
			if _, err := Sign(context.Background(), f.repo, f.a, nil, k); err != nil {
				t.Fatal(err)
			}
			if tc.api {
				if _, err := Sign(context.Background(), f.repo, f.a, nil, k, WithReferrers(ReferrersOnly)); err != nil {
					t.Fatal(err)
				}
			} else {
				pushBundle(t, f.repo, f.a, makeBundle(t, k, bundleSpec{digest: f.a}))
			}
			broken.Store(true)
			_, err := Verify(context.Background(), f.repo, f.a, pubs(k), 1, noRetry)
			var ve *VerificationError
			if err == nil || errors.As(err, &ve) || !strings.Contains(err.Error(), "500") {
				t.Fatalf("got %v; want a registry error", err)
			}
			if tc.api {
				if _, err := Sign(context.Background(), f.repo, f.a, nil, k, WithReferrers(ReferrersAlso), noRetry); err == nil {
					t.Fatal("Sign over a broken registry succeeded")
				}
			}
		})
	}

	t.Run("referrers API hangs", func(t *testing.T) {
		var hang atomic.Bool
		hang.Store(true)
		f := setup(t, refRegistry(t, true, hangWhen(t, &hang, isReferrersCall)))
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		if _, err := Verify(ctx, f.repo, f.a, pubs(k), 1, noRetry); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got %v; want the deadline", err)
		}
	})

	// A referrers answer that is not an index is an error too: it cannot be classified.
	t.Run("tag schema holds garbage", func(t *testing.T) {
		f := setup(t, refRegistry(t, false, nil))
		raw := []byte(`{"schemaVersion":3,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}`)
		if err := remote.Put(f.repo.Tag("sha256-"+f.a.Hex), indexPut(raw)); err != nil {
			t.Fatal(err)
		}
		_, err := Verify(context.Background(), f.repo, f.a, pubs(k), 1)
		var ve *VerificationError
		if !errors.Is(err, errMalformedReferrer) || errors.As(err, &ve) {
			t.Fatalf("got %v", err)
		}
	})
}

func TestTooManyReferrers(t *testing.T) {
	if testing.Short() {
		t.Skip("pushes more than MaxReferrers manifests")
	}
	f := setup(t, refRegistry(t, true, nil))
	k := newKey(t)
	bogus := func(i int) {
		l := static.NewLayer([]byte(fmt.Sprintf("{%q:%d}", "n", i)), BundleMediaType)
		pushReferrer(t, f.repo, f.a, BundleMediaType, ociEmptyMediaType, []v1.Layer{l}, nil, bundleAnnotations(SignPredicateType))
	}
	for i := 0; i < MaxReferrers; i++ {
		bogus(i)
	}
	// Artifacts that are not signatures are neither fetched nor counted.
	for i := 0; i < 3; i++ {
		l := static.NewLayer([]byte(fmt.Sprintf("{%q:%d}", "sbom", i)), "application/spdx+json")
		pushReferrer(t, f.repo, f.a, "", "application/vnd.example.sbom", []v1.Layer{l}, nil, nil)
	}
	ve := verdict(t, f, f.a, pubs(k), 1)
	if ve.Reason != ReasonThreshold || len(ve.Failures) != MaxReferrers || ve.Failures[0].Reason != ReasonMalformedBundle {
		t.Fatal(ve)
	}
	bogus(MaxReferrers)
	ve = verdict(t, f, f.a, pubs(k), 1)
	if ve.Reason != ReasonTooManySignatures || len(ve.Failures) != 1 || ve.Failures[0].Source != SourceReferrer {
		t.Fatal(ve)
	}
}

func TestParseReferrerDocuments(t *testing.T) {
	for _, tc := range []struct {
		name  string
		index bool
		doc   string
		ok    bool
	}{
		{"empty index", true, `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}`, true},
		{"index without media type", true, `{"schemaVersion":2,"manifests":[]}`, true},
		{"index schema 1", true, `{"schemaVersion":1,"manifests":[]}`, false},
		{"index of another type", true, `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}`, false},
		{"index with a duplicate key", true, `{"schemaVersion":2,"manifests":[],"manifests":[]}`, false},
		{"index with a bad digest", true, `{"schemaVersion":2,"manifests":[{"digest":"sha256:xyz"}]}`, false},
		{"two values", true, `{"schemaVersion":2} {}`, false},
		{"manifest", false, `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{},"layers":[],"subject":{"digest":"` + testDigest + `"}}`, true},
		{"manifest without subject", false, `{"schemaVersion":2,"config":{},"layers":[]}`, false},
		{"docker manifest", false, `{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","subject":{"digest":"` + testDigest + `"}}`, false},
		{"manifest too deep", false, strings.Repeat("[", 100) + strings.Repeat("]", 100), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if tc.index {
				_, err = parseReferrerIndex([]byte(tc.doc))
			} else {
				_, err = parseReferrerManifest([]byte(tc.doc))
			}
			if (err == nil) != tc.ok || (err != nil && !errors.Is(err, errMalformedReferrer)) {
				t.Fatalf("got %v, want ok %v", err, tc.ok)
			}
		})
	}
}

func TestMayHold(t *testing.T) {
	d, _ := v1.NewHash(testDigest)
	attestationAnn := map[string]string{bundlePredicateAnnotation: "https://slsa.dev/provenance/v1"}
	for _, tc := range []struct {
		name             string
		desc             v1.Descriptor
		sig, attestation bool
	}{
		{"cosign signature", v1.Descriptor{MediaType: types.OCIManifestSchema1, ArtifactType: SignatureArtifactType}, true, false},
		{"bundle", v1.Descriptor{MediaType: types.OCIManifestSchema1, ArtifactType: BundleMediaType}, true, true},
		{"bundle listed by its config", v1.Descriptor{MediaType: types.OCIManifestSchema1, ArtifactType: ociEmptyMediaType}, true, true},
		{"no artifact type", v1.Descriptor{MediaType: types.OCIManifestSchema1}, true, true},
		{"signature bundle by its annotation", v1.Descriptor{MediaType: types.OCIManifestSchema1, ArtifactType: BundleMediaType,
			Annotations: map[string]string{bundlePredicateAnnotation: SignPredicateType}}, true, false},
		{"attestation bundle", v1.Descriptor{MediaType: types.OCIManifestSchema1, ArtifactType: BundleMediaType, Annotations: attestationAnn}, false, true},
		{"attestation bundle listed by its config", v1.Descriptor{MediaType: types.OCIManifestSchema1, ArtifactType: ociEmptyMediaType, Annotations: attestationAnn}, false, true},
		{"cosign attestation", v1.Descriptor{MediaType: types.OCIManifestSchema1, ArtifactType: "application/vnd.in-toto+json"}, false, false},
		{"SBOM", v1.Descriptor{MediaType: types.OCIManifestSchema1, ArtifactType: "application/spdx+json"}, false, false},
		{"an index", v1.Descriptor{MediaType: types.OCIImageIndex, ArtifactType: SignatureArtifactType}, false, false},
		{"an index of bundles", v1.Descriptor{MediaType: types.OCIImageIndex, ArtifactType: BundleMediaType}, false, false},
	} {
		tc.desc.Digest = d
		if got := mayHold(KindSignature, tc.desc); got != tc.sig {
			t.Errorf("%s: may hold a signature: %v", tc.name, got)
		}
		if got := mayHold(KindAttestation, tc.desc); got != tc.attestation {
			t.Errorf("%s: may hold an attestation: %v", tc.name, got)
		}
	}
}

func FuzzParseReferrerIndex(f *testing.F) {
	f.Add([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + testDigest + `","size":700,"artifactType":"` + SignatureArtifactType + `"}]}`))
	f.Add([]byte(`{"schemaVersion":2,"manifests":null}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		descs, err := parseReferrerIndex(b)
		if err != nil {
			if !errors.Is(err, errMalformedReferrer) {
				t.Fatalf("undocumented error: %v", err)
			}
			return
		}
		for _, d := range descs {
			mayHold(KindSignature, d)
			mayHold(KindAttestation, d)
		}
	})
}

func FuzzParseReferrerManifest(f *testing.F) {
	f.Add([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"` + BundleMediaType + `","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[{"mediaType":"` + BundleMediaType + `","digest":"` + testDigest + `","size":1000}],"subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + testDigest + `","size":500}}`))
	f.Add([]byte(`{"schemaVersion":2,"config":{"mediaType":"` + SignatureArtifactType + `"},"subject":{}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseReferrerManifest(b)
		if err != nil {
			if !errors.Is(err, errMalformedReferrer) {
				t.Fatalf("undocumented error: %v", err)
			}
			return
		}
		if m.Subject == nil {
			t.Fatal("a manifest without subject parsed")
		}
		m.kind()
	})
}
