package cosign

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/moatsec/moat/internal/sign/strictjson"
)

// OCI 1.1 referrers, as cosign v2.6 uses them (pkg/oci/remote/write.go in sigstore/cosign).
//
// `cosign sign --registry-referrers-mode=oci-1-1` (experimental) pushes, by digest and with no
// tag, the same image manifest it would tag sha256-<hex>.sig, with two changes:
// config.mediaType is SignatureArtifactType (which registries report as the artifactType) and
// "subject" is the signed image's descriptor (mediaType, digest, size). The signatures already
// at the tag come along. `cosign verify --experimental-oci11` lists the referrers with that
// artifactType and reads the last one listed.
//
// `cosign sign --new-bundle-format` pushes a manifest with "artifactType" BundleMediaType,
// config the empty descriptor (application/vnd.oci.empty.v1+json, "{}"), one layer holding
// the bundle (media type BundleMediaType), "subject" the image, and the annotations
// dev.sigstore.bundle.content "dsse-envelope", dev.sigstore.bundle.predicateType
// SignPredicateType and org.opencontainers.image.created. `cosign attest` stores attestations
// the same way (`cosign attest --new-bundle-format`, the default in cosign v3), with the
// attestation's predicate type in the annotation, so a bundle is a signature only if its
// statement's predicate type says so. The annotation is not signed: it only saves reading
// what is listed as the other kind.
//
// On a registry without the referrers API, go-containerregistry (which cosign and moat use)
// keeps the list in an OCI index tagged sha256-<hex> (the referrers tag schema) when it
// pushes a manifest with a subject, and reads that index back when the API is missing.

const (
	// SignatureArtifactType is the artifactType (config media type) of a cosign signature
	// manifest stored as a referrer.
	SignatureArtifactType = "application/vnd.dev.cosign.artifact.sig.v1+json"
	// MaxReferrers bounds how many referrer manifests Verify fetches for one digest; more
	// candidates are a ReasonTooManySignatures verdict.
	MaxReferrers = 128
)

const (
	ociEmptyMediaType = "application/vnd.oci.empty.v1+json"
	// bundlePredicateAnnotation is the manifest annotation, copied into the referrers list by
	// registries with the API, that repeats the predicate type of a bundle's statement.
	bundlePredicateAnnotation = "dev.sigstore.bundle.predicateType"
	// maxReferrerDocument bounds a referrers index and a referrer manifest.
	maxReferrerDocument = 4 << 20
)

// ReferrersMode says where Sign stores a signature.
type ReferrersMode int

const (
	// ReferrersOff stores the signature in the tag sha256-<hex>.sig only: what `cosign
	// verify` reads by default. It is the default.
	ReferrersOff ReferrersMode = iota
	// ReferrersAlso stores it in the tag and, when the registry offers the referrers API, also
	// as a referrer of the image.
	ReferrersAlso
	// ReferrersOnly stores it as a referrer only, and fails with ErrReferrersUnsupported when
	// the registry does not offer the referrers API.
	ReferrersOnly
)

// WithReferrers chooses where Sign stores signatures. Verify ignores it: it always reads
// both places.
func WithReferrers(m ReferrersMode) Option {
	return func(c *config) { c.referrers = m }
}

// ErrReferrersUnsupported is returned by Sign with ReferrersOnly when the registry does not
// answer the OCI 1.1 referrers API.
var ErrReferrersUnsupported = errors.New("registry does not offer the OCI 1.1 referrers API")

// errMalformedReferrer is wrapped by parseReferrerIndex and parseReferrerManifest errors.
var errMalformedReferrer = errors.New("malformed referrer document")

// referrerIndex is the OCI image index the referrers API (or the tag schema) answers with.
type referrerIndex struct {
	SchemaVersion int             `json:"schemaVersion"`
	MediaType     types.MediaType `json:"mediaType"`
	Manifests     []v1.Descriptor `json:"manifests"`
}

// parseReferrerIndex reads a referrers list: one JSON object of at most maxReferrerDocument
// bytes without duplicate keys, schema version 2, an OCI image index if it says what it is.
func parseReferrerIndex(b []byte) ([]v1.Descriptor, error) {
	if len(b) > maxReferrerDocument {
		return nil, fmt.Errorf("%w: index of %d bytes, more than %d", errMalformedReferrer, len(b), maxReferrerDocument)
	}
	if err := strictjson.Check(b, maxJSONDepth); err != nil {
		return nil, fmt.Errorf("%w: %w", errMalformedReferrer, err)
	}
	var idx referrerIndex
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, fmt.Errorf("%w: %w", errMalformedReferrer, err)
	}
	if idx.SchemaVersion != 2 {
		return nil, fmt.Errorf("%w: index schema version %d", errMalformedReferrer, idx.SchemaVersion)
	}
	if idx.MediaType != "" && idx.MediaType != types.OCIImageIndex {
		return nil, fmt.Errorf("%w: index media type %q", errMalformedReferrer, idx.MediaType)
	}
	return idx.Manifests, nil
}

// referrerManifest is what moat reads of an OCI 1.1 image manifest that refers to an image.
type referrerManifest struct {
	SchemaVersion int             `json:"schemaVersion"`
	MediaType     types.MediaType `json:"mediaType"`
	ArtifactType  string          `json:"artifactType"`
	Config        v1.Descriptor   `json:"config"`
	Layers        []v1.Descriptor `json:"layers"`
	Subject       *v1.Descriptor  `json:"subject"`
	// Annotations are unsigned; only bundlePredicateAnnotation is read.
	Annotations map[string]string `json:"annotations"`
}

// parseReferrerManifest reads a referrer manifest as parseReferrerIndex reads the index. It
// must be an OCI image manifest with a subject.
func parseReferrerManifest(b []byte) (*referrerManifest, error) {
	if len(b) > maxReferrerDocument {
		return nil, fmt.Errorf("%w: manifest of %d bytes, more than %d", errMalformedReferrer, len(b), maxReferrerDocument)
	}
	if err := strictjson.Check(b, maxJSONDepth); err != nil {
		return nil, fmt.Errorf("%w: %w", errMalformedReferrer, err)
	}
	var m referrerManifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%w: %w", errMalformedReferrer, err)
	}
	switch {
	case m.SchemaVersion != 2:
		return nil, fmt.Errorf("%w: manifest schema version %d", errMalformedReferrer, m.SchemaVersion)
	case m.MediaType != "" && m.MediaType != types.OCIManifestSchema1:
		return nil, fmt.Errorf("%w: manifest media type %q", errMalformedReferrer, m.MediaType)
	case m.Subject == nil:
		return nil, fmt.Errorf("%w: manifest has no subject", errMalformedReferrer)
	}
	return &m, nil
}

// kind says which signatures a referrer holds: SourceReferrer, SourceBundle, or "" for an
// artifact that is not a signature (an SBOM, an attestation in another format).
func (m *referrerManifest) kind() Source {
	t := m.ArtifactType
	if t == "" {
		t = string(m.Config.MediaType)
	}
	switch t {
	case SignatureArtifactType:
		return SourceReferrer
	case BundleMediaType, bundleMediaTypeParam:
		return SourceBundle
	}
	return ""
}

// mayHold says whether a referrers index entry could hold a signature (k KindSignature) or an
// attestation (KindAttestation), so that other artifacts are not fetched. Registries report
// the manifest's artifactType, or its config media type when it has none; the in-process
// registry and go-containerregistry's tag schema report the config media type only, which
// for a bundle is the empty descriptor's. Only bundles hold attestations.
func mayHold(k Kind, d v1.Descriptor) bool {
	if d.MediaType != types.OCIManifestSchema1 || !predicateMayBe(k, d.Annotations) {
		return false
	}
	switch d.ArtifactType {
	case BundleMediaType, bundleMediaTypeParam, ociEmptyMediaType, "":
		return true
	case SignatureArtifactType:
		return k == KindSignature
	}
	return false
}

// predicateMayBe says whether a bundle with these (unsigned) annotations, of a referrers
// index entry or of the manifest, could be of kind k: an entry whose predicate annotation
// names the sign predicate is a signature, any other is an attestation. Skipping one by its
// annotation can only hide it, which anyone who can write the list could do anyway.
func predicateMayBe(k Kind, annotations map[string]string) bool {
	p, ok := annotations[bundlePredicateAnnotation]
	return !ok || (p == SignPredicateType) == (k == KindSignature)
}

// listReferrers returns the referrers index of d. A registry without the referrers API
// answers 404 (or 400, 406) and go-containerregistry reads the tag schema instead; no index
// there means no referrers. Any other registry failure is an error.
func listReferrers(d name.Digest, opts []remote.Option) ([]v1.Descriptor, error) {
	idx, err := remote.Referrers(d, opts...)
	if err != nil {
		return nil, fmt.Errorf("listing referrers of %s: %w", d, err)
	}
	raw, err := idx.RawManifest()
	if err != nil {
		return nil, fmt.Errorf("listing referrers of %s: %w", d, err)
	}
	descs, err := parseReferrerIndex(raw)
	if err != nil {
		// The registry, or whoever wrote the tag sha256-<hex>, answered with something that is
		// not a referrers list. That cannot be classified, so it denies as an error.
		return nil, fmt.Errorf("listing referrers of %s: %w", d, err)
	}
	return descs, nil
}

// referrers checks what the referrers of the digest hold of v.kind: cosign signature
// manifests and signature bundles, or attestation bundles. It returns an error only when the
// registry fails; every verdict is recorded.
func (v *verifier) referrers() error {
	descs, err := listReferrers(v.repo.Digest(v.digest.String()), v.remote)
	if err != nil {
		return err
	}
	var candidates []v1.Descriptor
	for _, desc := range descs {
		if mayHold(v.kind, desc) {
			candidates = append(candidates, desc)
		}
	}
	if len(candidates) > MaxReferrers {
		v.overflow(SourceReferrer, fmt.Sprintf("%d referrers, at most %d are read", len(candidates), MaxReferrers))
		return nil
	}
	type layers struct {
		kind     Source
		manifest v1.Hash
		layers   []v1.Descriptor
	}
	var found []layers
	total := 0
	for _, desc := range candidates {
		ref := v.repo.Digest(desc.Digest.String())
		fail := func(src Source, r Reason, detail string) {
			v.fail(Failure{Source: src, Manifest: desc.Digest, Index: -1, Reason: r, Detail: detail})
		}
		if desc.Size < 0 || desc.Size > maxReferrerDocument {
			fail(SourceReferrer, ReasonMalformedReferrer, fmt.Sprintf("%d bytes", desc.Size))
			continue
		}
		got, err := remote.Get(ref, v.remote...)
		if isNotFound(err) {
			// Listed, then deleted (or never there): nothing to verify.
			fail(SourceReferrer, ReasonMalformedReferrer, "listed but not found")
			continue
		}
		if err != nil {
			return fmt.Errorf("reading referrer %s: %w", ref, err)
		}
		if sum := sha256.Sum256(got.Manifest); fmt.Sprintf("sha256:%x", sum) != desc.Digest.String() {
			return fmt.Errorf("reading referrer %s: manifest does not match its digest", ref)
		}
		m, err := parseReferrerManifest(got.Manifest)
		if err != nil {
			fail(SourceReferrer, ReasonMalformedReferrer, errDetail(err, errMalformedReferrer))
			continue
		}
		kind := m.kind()
		switch {
		case kind == "",
			kind == SourceReferrer && v.kind != KindSignature,
			kind == SourceBundle && !predicateMayBe(v.kind, m.Annotations):
			continue
		}
		if m.Subject.Digest != v.digest {
			// go-containerregistry's tag schema is written by clients: an entry can name a
			// manifest that refers to another image.
			v.found++
			r := ReasonDigestMismatch
			if v.kind == KindAttestation {
				r = ReasonSubjectMismatch
			}
			fail(kind, r, "refers to "+m.Subject.Digest.String())
			continue
		}
		total += len(m.Layers)
		found = append(found, layers{kind, desc.Digest, m.Layers})
	}
	limit := MaxSignatures
	if v.kind == KindAttestation {
		limit = MaxAttestations
	}
	if total > limit {
		v.overflow(SourceReferrer, fmt.Sprintf("%d %ss in referrers, at most %d are read", total, v.kind, limit))
		return nil
	}
	for _, s := range found {
		for i, desc := range s.layers {
			var err error
			if s.kind == SourceReferrer {
				read := func() ([]byte, error) { return v.readLayer(desc, MaxPayloadSize) }
				err = v.simpleSigning(SourceReferrer, s.manifest, i, desc, read)
			} else {
				err = v.bundle(s.manifest, i, desc)
			}
			if err != nil {
				return fmt.Errorf("reading %s %s of referrer %s: %w", v.kind, desc.Digest, s.manifest, err)
			}
		}
	}
	return nil
}

// readLayer fetches one blob of the repository by digest, bounded and checked.
func (v *verifier) readLayer(desc v1.Descriptor, limit int64) ([]byte, error) {
	l, err := remote.Layer(v.repo.Digest(desc.Digest.String()), v.remote...)
	if err != nil {
		return nil, err
	}
	return readBlob(l, desc.Digest, limit)
}

// bundle checks one layer of a bundle referrer. It returns an error only when the registry
// fails; every verdict is recorded.
func (v *verifier) bundle(manifest v1.Hash, i int, desc v1.Descriptor) error {
	v.found++
	fail := func(r Reason, detail string) {
		v.fail(Failure{Source: SourceBundle, Manifest: manifest, Index: i, Layer: desc.Digest, Reason: r, Detail: detail})
	}
	if mt := string(desc.MediaType); mt != BundleMediaType && mt != bundleMediaTypeParam {
		fail(ReasonMalformedReferrer, "layer media type "+mt)
		return nil
	}
	// An attestation bundle carries the predicate (an SBOM, a scan), so it is bounded as an
	// attestation layer is, and counts towards the bytes read for the digest.
	limit := int64(MaxBundleSize)
	if v.kind == KindAttestation {
		limit = MaxAttestationSize
	}
	if desc.Size < 0 || desc.Size > limit {
		fail(ReasonPayloadTooLarge, fmt.Sprintf("%d bytes, more than %d", desc.Size, limit))
		return nil
	}
	if v.kind == KindAttestation {
		if desc.Size > v.budget {
			fail(ReasonPayloadTooLarge, fmt.Sprintf("past the %d bytes read for one digest", int64(MaxAttestationBytes)))
			return nil
		}
		v.budget -= desc.Size
	}
	b, err := v.readLayer(desc, desc.Size)
	if err != nil {
		if errors.Is(err, errDigest) {
			fail(ReasonPayloadDigest, err.Error())
			return nil
		}
		return err
	}
	s, err := parseBundle(b, int(limit))
	if err != nil {
		fail(ReasonMalformedBundle, errDetail(err, errMalformedBundle))
		return nil
	}
	if v.kind == KindAttestation {
		a, reason, detail := verifyBundleAttestation(s, v.keys, v.digest)
		if reason != "" {
			fail(reason, detail)
			return nil
		}
		if a.PredicateType == SignPredicateType {
			// A signature whose annotation did not say so: Verify's business.
			return nil
		}
		a.Source, a.Manifest, a.Index, a.Layer = SourceBundle, manifest, i, desc.Digest
		v.attestations = append(v.attestations, *a)
		return nil
	}
	ok, reason, detail := verifyBundle(s, v.keys, v.digest)
	if reason != "" {
		fail(reason, detail)
		return nil
	}
	ok.Source, ok.Manifest, ok.Layer = SourceBundle, manifest, desc.Digest
	v.signatures = append(v.signatures, ok)
	return nil
}

// referrersProbe is a digest nobody signs: asking for its referrers tells whether the
// registry offers the API without depending on what refers to the image.
var referrersProbe = func() v1.Hash {
	sum := sha256.Sum256([]byte("moat: does this registry offer the OCI 1.1 referrers API?"))
	return v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", sum)}
}()

// referrersOffered reports whether the registry answers GET /v2/<repo>/referrers/<digest>
// with 200 and an OCI image index. go-containerregistry reads the tag schema otherwise, and
// finds no index for the probe digest, which it reports as empty.Index.
func referrersOffered(repo name.Repository, c *config) (bool, error) {
	idx, err := remote.Referrers(repo.Digest(referrersProbe.String()), c.remote...)
	if err != nil {
		return false, fmt.Errorf("asking %s for referrers: %w", repo, err)
	}
	return idx != empty.Index, nil
}

// writeReferrer stores the signature image img as a referrer of digest, in cosign's shape: the
// manifest cosign would tag sha256-<hex>.sig, with config media type SignatureArtifactType
// and the image as subject, pushed by digest. It returns the manifest's digest.
func writeReferrer(repo name.Repository, digest v1.Hash, img v1.Image, c *config) (v1.Hash, error) {
	subject, err := remote.Head(repo.Digest(digest.String()), c.remote...)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("reading the manifest of %s: %w", digest, err)
	}
	if subject.Digest != digest {
		return v1.Hash{}, fmt.Errorf("reading the manifest of %s: registry answered with %s", digest, subject.Digest)
	}
	layers, err := img.Layers()
	if err != nil {
		return v1.Hash{}, err
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		return v1.Hash{}, err
	}
	blobs := append([]v1.Layer{static.NewLayer(cfg, SignatureArtifactType)}, layers...)
	for _, l := range blobs {
		if err := remote.WriteLayer(repo, l, c.remote...); err != nil {
			return v1.Hash{}, fmt.Errorf("uploading signature blob: %w", err)
		}
	}
	m, err := img.Manifest()
	if err != nil {
		return v1.Hash{}, err
	}
	out := *m
	out.Config.MediaType = SignatureArtifactType
	out.Subject = &v1.Descriptor{MediaType: subject.MediaType, Digest: subject.Digest, Size: subject.Size}
	raw, err := json.Marshal(out)
	if err != nil {
		return v1.Hash{}, err
	}
	h := v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", sha256.Sum256(raw))}
	if err := remote.Put(repo.Digest(h.String()), referrerPut(raw), c.remote...); err != nil {
		return v1.Hash{}, fmt.Errorf("writing signature referrer %s: %w", h, err)
	}
	return h, nil
}

// referrerPut is an OCI image manifest to put as it is.
type referrerPut []byte

func (r referrerPut) RawManifest() ([]byte, error)        { return r, nil }
func (r referrerPut) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }
