// Package evidence gathers what a policy decision needs to know about one registry image:
// the digest its reference resolves to, its configuration, the signatures and attestations
// stored for that digest and verified against the policy's keys, and, when the policy limits
// vulnerabilities, an inventory matched against the advisory database.
//
// Gathering never decides. Whatever it cannot establish (a registry that fails, a missing
// database the policy needs) is recorded in Evidence.Errors, which policy.Evaluate turns into
// a deny; signatures and attestations that are present but do not verify are listed in
// Evidence.Rejected and count for nothing. The reference is resolved to a digest once, and
// every later read names that digest, so a tag moved while gathering cannot mix two images.
package evidence

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/moatsec/moat/internal/policy"
	"github.com/moatsec/moat/internal/sbom"
	"github.com/moatsec/moat/internal/sign/cosign"
	"github.com/moatsec/moat/internal/sign/key"
	"github.com/moatsec/moat/internal/vuln"
)

// Options say what to gather and with what.
type Options struct {
	// Needs selects the evidence to gather (policy.Policy.Needs); the reference, digest and
	// configuration are always gathered.
	Needs policy.Needs
	// Keys are the policy's keys by name (LoadKeys). Signatures and attestations are
	// verified against all of them; the evidence names the key that verified each.
	Keys map[string]crypto.PublicKey
	// Remote are the go-containerregistry options for every registry call (credentials,
	// transport, platform). The context is always the one given to Gather.
	Remote []remote.Option
	// Scan inventories and matches the image pinned by digest, for Needs.Scan. It returns the
	// inventory, the findings (with suppressions applied) and when the database was built.
	Scan func(ctx context.Context, ref name.Digest) (*sbom.Inventory, []vuln.Finding, time.Time, error)
}

// Gather collects the evidence about the image ref. Failures are recorded in the evidence,
// never returned: the result is always fit to evaluate. ctx bounds the whole gathering.
func Gather(ctx context.Context, ref name.Reference, opts Options) *policy.Evidence {
	ev := &policy.Evidence{Image: policy.Image{
		Reference:  ref.String(),
		Registry:   ref.Context().RegistryStr(),
		Repository: ref.Context().RepositoryStr(),
	}}
	if t, ok := ref.(name.Tag); ok {
		ev.Image.Tag = t.TagStr()
	}
	ropts := append(slices.Clip(opts.Remote), remote.WithContext(ctx))
	desc, err := remote.Get(ref, ropts...)
	if err != nil {
		ev.Errors = append(ev.Errors, fmt.Sprintf("resolving %s: %v", ref, err))
		return ev
	}
	ev.Digest = desc.Digest.String()
	pinned := ref.Context().Digest(ev.Digest)

	img, err := desc.Image() // an index resolves to the platform's image (remote.WithPlatform)
	if err == nil {
		c, cerr := img.ConfigFile()
		if cerr != nil {
			err = cerr
		} else {
			ev.Config = Config(c.Config)
		}
	}
	if err != nil {
		ev.Errors = append(ev.Errors, fmt.Sprintf("reading the configuration of %s: %v", pinned, err))
	}

	names := keyNames(opts.Keys)
	if opts.Needs.Signatures && len(opts.Keys) > 0 {
		signatures(ctx, ev, pinned, opts.Keys, names, opts.Remote)
	}
	if opts.Needs.Attestations && len(opts.Keys) > 0 {
		attestations(ctx, ev, pinned, opts.Keys, names, opts.Remote)
	}
	if opts.Needs.Scan {
		scan(ctx, ev, pinned, opts.Scan)
	}
	return ev
}

// Config trims an image configuration to the part policies look at.
func Config(c v1.Config) policy.Config {
	return policy.Config{User: c.User, Env: c.Env, Labels: c.Labels}
}

// keyNames maps each key's fingerprint to its policy name.
func keyNames(keys map[string]crypto.PublicKey) map[string]string {
	out := map[string]string{}
	for n, k := range keys {
		if fp, err := key.Fingerprint(k); err == nil {
			out[fp] = n
		}
	}
	return out
}

// sortedKeys returns the keys in name order, so that verification is deterministic.
func sortedKeys(keys map[string]crypto.PublicKey) []crypto.PublicKey {
	ns := make([]string, 0, len(keys))
	for n := range keys {
		ns = append(ns, n)
	}
	sort.Strings(ns)
	out := make([]crypto.PublicKey, 0, len(ns))
	for _, n := range ns {
		out = append(out, keys[n])
	}
	return out
}

func signatures(ctx context.Context, ev *policy.Evidence, pinned name.Digest, keys map[string]crypto.PublicKey, names map[string]string, ropts []remote.Option) {
	h, err := v1.NewHash(pinned.DigestStr())
	if err != nil {
		ev.Errors = append(ev.Errors, fmt.Sprintf("digest %s: %v", pinned.DigestStr(), err))
		return
	}
	ok, err := cosign.Verify(ctx, pinned.Context(), h, sortedKeys(keys), 1, cosign.WithRemoteOptions(ropts...))
	var verr *cosign.VerificationError
	switch {
	case errors.As(err, &verr):
		ok = verr.Verified
		for _, f := range verr.Failures {
			ev.Rejected = append(ev.Rejected, f.String())
		}
		if len(verr.Failures) == 0 && verr.Reason == cosign.ReasonNoSignatures {
			ev.Rejected = append(ev.Rejected, string(cosign.ReasonNoSignatures))
		}
	case err != nil:
		ev.Errors = append(ev.Errors, fmt.Sprintf("verifying signatures: %v", err))
		return
	}
	for _, v := range ok {
		ev.Signatures = append(ev.Signatures, policy.Signature{Key: names[v.Key], KeyID: v.Key, Annotations: v.Payload.Annotations})
	}
}

func attestations(ctx context.Context, ev *policy.Evidence, pinned name.Digest, keys map[string]crypto.PublicKey, names map[string]string, ropts []remote.Option) {
	h, err := v1.NewHash(pinned.DigestStr())
	if err != nil {
		ev.Errors = append(ev.Errors, fmt.Sprintf("digest %s: %v", pinned.DigestStr(), err))
		return
	}
	ok, fails, err := cosign.VerifyAttestations(ctx, pinned.Context(), h, sortedKeys(keys), cosign.WithRemoteOptions(ropts...))
	if err != nil {
		ev.Errors = append(ev.Errors, fmt.Sprintf("verifying attestations: %v", err))
		return
	}
	for _, v := range ok {
		ev.Attestations = append(ev.Attestations, policy.Attestation{
			PredicateType: v.PredicateType, Key: names[v.Key], KeyID: v.Key,
			Timestamp: PredicateTime(v.PredicateType, v.Predicate), Verified: true,
		})
	}
	for _, f := range fails {
		ev.Rejected = append(ev.Rejected, f.String())
	}
}

// timeFields are where the predicates moat knows record when they were produced, tried in
// order: cosign's vuln and custom predicates, CycloneDX, SPDX, SLSA provenance v1 and v0.2,
// OpenVEX.
var timeFields = [][]string{
	{"metadata", "scanFinishedOn"},
	{"Timestamp"},
	{"metadata", "timestamp"},
	{"creationInfo", "created"},
	{"runDetails", "metadata", "finishedOn"},
	{"metadata", "buildFinishedOn"},
	{"timestamp"},
}

// PredicateTime returns when a predicate was produced (a scan's finish, an SBOM's creation, a
// build's end), or the zero time when it does not say, which fails any age limit. cosign's
// "spdx" predicate is the SPDX document as one JSON string; it is read through.
func PredicateTime(predicateType string, predicate []byte) time.Time {
	var s string
	if json.Unmarshal(predicate, &s) == nil {
		predicate = []byte(s)
	}
	var doc map[string]any
	if json.Unmarshal(predicate, &doc) != nil {
		return time.Time{}
	}
	for _, path := range timeFields {
		var v any = doc
		for _, k := range path {
			m, ok := v.(map[string]any)
			if !ok {
				v = nil
				break
			}
			v = m[k]
		}
		if str, ok := v.(string); ok {
			if t, err := time.Parse(time.RFC3339Nano, str); err == nil {
				return t.UTC()
			}
		}
	}
	return time.Time{}
}

func scan(ctx context.Context, ev *policy.Evidence, pinned name.Digest, fn func(context.Context, name.Digest) (*sbom.Inventory, []vuln.Finding, time.Time, error)) {
	if fn == nil {
		ev.Errors = append(ev.Errors, "the policy limits vulnerabilities but no scan was configured")
		return
	}
	inv, findings, built, err := fn(ctx, pinned)
	if err != nil {
		ev.Errors = append(ev.Errors, fmt.Sprintf("scanning %s: %v", pinned, err))
		return
	}
	ev.SBOM = Summary(inv)
	ev.Findings = Findings(findings)
	ev.Database = &policy.Database{Built: built}
}

// Summary counts an inventory's packages by type.
func Summary(inv *sbom.Inventory) policy.SBOM {
	s := policy.SBOM{Packages: map[string]int{}}
	for _, p := range inv.Packages {
		s.Packages[string(p.Type)]++
		s.Total++
	}
	return s
}

// Findings converts scan findings to their evidence form.
func Findings(fs []vuln.Finding) []policy.Finding {
	out := make([]policy.Finding, 0, len(fs))
	for _, f := range fs {
		out = append(out, policy.Finding{
			ID: f.ID, Package: f.Package.Name, Version: f.Package.Version,
			Severity: f.Level.String(), FixStatus: string(f.FixStatus), Suppressed: f.Suppressed != nil,
		})
	}
	return out
}

// LoadKeys resolves the policy's named keys: inline PEM, or a file path relative to the
// policy file. Any key that cannot be read is an error: a policy must not silently lose a key.
func LoadKeys(p *policy.Policy) (map[string]crypto.PublicKey, error) {
	out := map[string]crypto.PublicKey{}
	for n, k := range p.Keys {
		pemBytes := []byte(k.PublicKey)
		if !k.IsPEM() {
			path := k.PublicKey
			if !filepath.IsAbs(path) && p.Source != "" {
				path = filepath.Join(filepath.Dir(p.Source), path)
			}
			b, err := readBounded(path)
			if err != nil {
				return nil, fmt.Errorf("policy key %q: %w", n, err)
			}
			pemBytes = b
		}
		pub, err := key.LoadPublicKey(pemBytes)
		if err != nil {
			return nil, fmt.Errorf("policy key %q: %w", n, err)
		}
		out[n] = pub
	}
	return out, nil
}

func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, key.MaxPEMSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if len(b) > key.MaxPEMSize {
		return nil, fmt.Errorf("reading %s: larger than %d bytes", path, key.MaxPEMSize)
	}
	return b, nil
}
