package cli

import (
	"bytes"
	"context"
	"crypto"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/spf13/cobra"

	"github.com/moatsec/moat/internal/evidence"
	"github.com/moatsec/moat/internal/image"
	"github.com/moatsec/moat/internal/report"
	"github.com/moatsec/moat/internal/sbom"
	"github.com/moatsec/moat/internal/sign/cosign"
)

// maxPredicateFile bounds what `moat attest --predicate` reads: an SBOM of a large image
// fits, a mistaken path to a disk image does not.
const maxPredicateFile = 32 << 20

type attestOptions struct {
	registry  registryOptions
	Key       string
	Predicate string
	Type      string
	Replace   bool
}

func newAttestCmd(a *app) *cobra.Command {
	o := &attestOptions{}
	cmd := &cobra.Command{
		Use:   "attest IMAGE",
		Short: "Attach a signed in-toto attestation to an image, as cosign does",
		Long: `Wrap the predicate in FILE in an in-toto statement whose subject is IMAGE's digest
(resolved once), sign it in a DSSE envelope and store it the way 'cosign attest --key'
does: a layer of the image tagged sha256-<hex>.att. 'cosign verify-attestation --key
KEY.pub --insecure-ignore-tlog --type TYPE' and 'moat verify-attestation' verify it, and
policies can require it.

TYPE is a predicate type URI or one of cosign's names: ` + strings.Join(cosign.PredicateTypeNames(), ", ") + `.`,
		Example: `  moat attest registry.example.com/team/app:1.2 --key moat.key --type cyclonedx --predicate app.cdx.json
  moat attest registry.example.com/team/app:1.2 --key moat.key --type slsaprovenance1 --predicate provenance.json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return o.run(cmd.Context(), a, args[0]) },
	}
	o.registry.AddFlags(cmd.Flags())
	cmd.Flags().StringVar(&o.Key, "key", "", "private key file (cosign format, encrypted)")
	cmd.Flags().StringVar(&o.Predicate, "predicate", "", "file holding the predicate (JSON; text for custom and spdx)")
	cmd.Flags().StringVar(&o.Type, "type", "custom", "predicate type: a URI or one of cosign's names")
	cmd.Flags().BoolVar(&o.Replace, "replace", false, "replace the attestations of the same predicate type instead of adding one")
	return cmd
}

func (o *attestOptions) run(ctx context.Context, a *app, ref string) error {
	if o.Key == "" {
		return usageErrorf("--key is required")
	}
	if o.Predicate == "" {
		return usageErrorf("--predicate is required")
	}
	if _, err := cosign.PredicateTypeURI(o.Type); err != nil {
		return usageErrorf("--type %q: %v", o.Type, err)
	}
	raw, err := readBoundedFile(o.Predicate, maxPredicateFile)
	if err != nil {
		return fmt.Errorf("--predicate: %w", err)
	}
	typ, pred, err := cosign.BuildPredicate(o.Type, raw, time.Now())
	if err != nil {
		return fmt.Errorf("--predicate %s: %w", o.Predicate, err)
	}
	signer, err := loadSigner(a, o.Key)
	if err != nil {
		return err
	}
	d, ropts, err := o.registry.resolve(ctx, ref)
	if err != nil {
		return err
	}
	opts := []cosign.Option{cosign.WithRemoteOptions(ropts...)}
	if o.Replace {
		opts = append(opts, cosign.WithReplace())
	}
	at, err := cosign.Attest(ctx, d.Context(), digestHash(d), typ, pred, signer, opts...)
	if err != nil {
		return fmt.Errorf("attesting %s: %w", d, err)
	}
	fmt.Fprintf(a.out, "Attested %s (%s)\nAttestation stored at %s\n", d, typ, at.Tag)
	return nil
}

func readBoundedFile(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, limit)
	}
	return b, nil
}

// writeJSON writes v as indented JSON, the form every -o json of moat takes.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

type verifyAttestationOptions struct {
	registry registryOptions
	Keys     []string
	Type     string
	Output   string
}

func newVerifyAttestationCmd(a *app) *cobra.Command {
	o := &verifyAttestationOptions{}
	cmd := &cobra.Command{
		Use:   "verify-attestation IMAGE",
		Short: "Verify an image's attestations against public keys",
		Long: `Resolve IMAGE to its manifest digest and verify every attestation stored for it: the
DSSE signature against one of the keys, the payload type, and that the statement's subject
is this digest. With --type only attestations of that predicate type count.

Exit codes: 0 at least one attestation (of --type) verified, 4 none did, 1 error, 2 usage.`,
		Example: `  moat verify-attestation registry.example.com/team/app:1.2 --key moat.pub --type cyclonedx`,
		Args:    cobra.ExactArgs(1),
		RunE:    func(cmd *cobra.Command, args []string) error { return o.run(cmd.Context(), a, args[0]) },
	}
	o.registry.AddFlags(cmd.Flags())
	cmd.Flags().StringArrayVar(&o.Keys, "key", nil, "public key file (PEM); repeatable")
	cmd.Flags().StringVar(&o.Type, "type", "", "count only attestations of this predicate type (a URI or one of cosign's names)")
	cmd.Flags().StringVarP(&o.Output, "output", "o", "text", "output format: text or json")
	return cmd
}

type attestationOutput struct {
	PredicateType string    `json:"predicateType"`
	Key           string    `json:"key"`
	KeyID         string    `json:"keyID"`
	Timestamp     time.Time `json:"timestamp,omitzero"`
}

type verifyAttestationResult struct {
	Image        string              `json:"image"`
	Digest       string              `json:"digest"`
	Verified     bool                `json:"verified"`
	Attestations []attestationOutput `json:"attestations"`
	Rejected     []string            `json:"rejected"`
}

func (o *verifyAttestationOptions) run(ctx context.Context, a *app, ref string) error {
	if len(o.Keys) == 0 {
		return usageErrorf("--key is required")
	}
	if o.Output != "text" && o.Output != "json" {
		return usageErrorf("--output %q: want text or json", o.Output)
	}
	want := ""
	if o.Type != "" {
		uri, err := cosign.PredicateTypeURI(o.Type)
		if err != nil {
			return usageErrorf("--type %q: %v", o.Type, err)
		}
		want = uri
	}
	keys, fps, err := loadPublicKeys(o.Keys)
	if err != nil {
		return err
	}
	d, ropts, err := o.registry.resolve(ctx, ref)
	if err != nil {
		return err
	}
	res, err := verifyAttestations(ctx, d, keys, fps, o.Keys, want, ropts)
	if err != nil {
		return err
	}
	res.Image = ref
	if o.Output == "json" {
		if err := writeJSON(a.out, res); err != nil {
			return err
		}
	} else {
		if res.Verified {
			fmt.Fprintf(a.out, "Verified attestations of %s\n", d)
		} else {
			fmt.Fprintf(a.out, "NO verified attestation of %s\n", d)
		}
		for _, at := range res.Attestations {
			when := ""
			if !at.Timestamp.IsZero() {
				when = ", produced " + at.Timestamp.Format(time.RFC3339)
			}
			fmt.Fprintf(a.out, "  %s signed by %s (%s)%s\n", at.PredicateType, at.Key, at.KeyID, when)
		}
		for _, r := range res.Rejected {
			fmt.Fprintf(a.out, "  rejected: %s\n", r)
		}
	}
	if !res.Verified {
		what := "attestation"
		if want != "" {
			what = want + " attestation"
		}
		return &DeniedError{Err: fmt.Errorf("%s: no %s verified", d, what)}
	}
	return nil
}

func verifyAttestations(ctx context.Context, d name.Digest, keys []crypto.PublicKey, fps, files []string, want string, ropts []remote.Option) (verifyAttestationResult, error) {
	res := verifyAttestationResult{Digest: d.DigestStr(), Attestations: []attestationOutput{}, Rejected: []string{}}
	ok, fails, err := cosign.VerifyAttestations(ctx, d.Context(), digestHash(d), keys, cosign.WithRemoteOptions(ropts...))
	if err != nil {
		return res, fmt.Errorf("verifying attestations of %s: %w", d, err)
	}
	for _, v := range ok {
		if want != "" && v.PredicateType != want {
			continue
		}
		file := ""
		if i := slices.Index(fps, v.Key); i >= 0 {
			file = files[i]
		}
		res.Attestations = append(res.Attestations, attestationOutput{
			PredicateType: v.PredicateType, Key: file, KeyID: v.Key,
			Timestamp: evidence.PredicateTime(v.PredicateType, v.Predicate),
		})
	}
	for _, f := range fails {
		res.Rejected = append(res.Rejected, f.String())
	}
	res.Verified = len(res.Attestations) > 0
	return res, nil
}

// scanAttester attaches a scan's results to the scanned image (`moat scan --attest`).
type scanAttester struct {
	digest name.Digest
	signer crypto.Signer
	remote []remote.Option
}

// prepareAttest checks the --attest flags, loads the key (so that a wrong password fails
// before the scan) and resolves the image to its digest. It returns the pinned target to
// scan instead of arg.
func (o *scanOptions) prepareAttest(ctx context.Context, a *app, arg string) (*scanAttester, string, error) {
	if !o.Attest {
		return nil, "", usageErrorf("--key is only for --attest")
	}
	if o.Key == "" {
		return nil, "", usageErrorf("--attest needs --key")
	}
	t, err := image.ParseTarget(arg)
	if err != nil {
		return nil, "", err
	}
	if strings.HasPrefix(arg, "sbom:") || t.Source != image.SourceRegistry {
		return nil, "", usageErrorf("--attest: %s is not a registry image: attestations live in a registry", arg)
	}
	signer, err := loadSigner(a, o.Key)
	if err != nil {
		return nil, "", err
	}
	d, ropts, err := (&registryOptions{Insecure: o.image.Insecure}).resolve(ctx, t.Ref)
	if err != nil {
		return nil, "", err
	}
	return &scanAttester{digest: d, signer: signer, remote: ropts}, d.String(), nil
}

// attach stores the inventory as a CycloneDX attestation and the report as a cosign vuln
// attestation.
func (s *scanAttester) attach(ctx context.Context, a *app, inv *sbom.Inventory, rep *report.ScanReport, started time.Time) error {
	var sbomDoc, scanDoc bytes.Buffer
	if err := report.WriteInventory(&sbomDoc, report.FormatCycloneDXJSON, inv, report.Options{}); err != nil {
		return fmt.Errorf("--attest: %w", err)
	}
	if err := report.WriteScan(&scanDoc, report.FormatJSON, rep, report.Options{}); err != nil {
		return fmt.Errorf("--attest: %w", err)
	}
	vuln, err := json.Marshal(vulnPredicate{
		Invocation: vulnInvocation{},
		Scanner: vulnScanner{
			URI: "https://github.com/moatsec/moat", Version: Version(),
			DB:     vulnDB{URI: "https://osv.dev", Version: rep.Database.Built.UTC().Format(time.RFC3339)},
			Result: json.RawMessage(bytes.TrimSpace(scanDoc.Bytes())),
		},
		Metadata: vulnMetadata{ScanStartedOn: started.UTC(), ScanFinishedOn: rep.Created.UTC()},
	})
	if err != nil {
		return fmt.Errorf("--attest: %w", err)
	}
	for _, p := range []struct {
		typ string
		doc []byte
	}{{"cyclonedx", sbomDoc.Bytes()}, {"vuln", vuln}} {
		typ, pred, err := cosign.BuildPredicate(p.typ, p.doc, time.Now())
		if err != nil {
			return fmt.Errorf("--attest: %w", err)
		}
		at, err := cosign.Attest(ctx, s.digest.Context(), digestHash(s.digest), typ, pred, s.signer, cosign.WithRemoteOptions(s.remote...), cosign.WithReplace())
		if err != nil {
			return fmt.Errorf("attaching the %s attestation to %s: %w", p.typ, s.digest, err)
		}
		a.log.Info("attestation attached", "type", typ, "tag", at.Tag.String())
	}
	fmt.Fprintf(a.err, "Attached the SBOM and the vulnerability report to %s\n", s.digest)
	return nil
}

// vulnPredicate is cosign's vulnerability-scan predicate
// (https://cosign.sigstore.dev/attestation/vuln/v1); the result is moat's JSON scan report.
type vulnPredicate struct {
	Invocation vulnInvocation `json:"invocation"`
	Scanner    vulnScanner    `json:"scanner"`
	Metadata   vulnMetadata   `json:"metadata"`
}

type vulnInvocation struct {
	Parameters any    `json:"parameters"`
	URI        string `json:"uri"`
	EventID    string `json:"event_id"`
	BuilderID  string `json:"builder.id"`
}

type vulnScanner struct {
	URI     string          `json:"uri"`
	Version string          `json:"version"`
	DB      vulnDB          `json:"db"`
	Result  json.RawMessage `json:"result"`
}

type vulnDB struct {
	URI     string `json:"uri"`
	Version string `json:"version"`
}

type vulnMetadata struct {
	ScanStartedOn  time.Time `json:"scanStartedOn"`
	ScanFinishedOn time.Time `json:"scanFinishedOn"`
}
