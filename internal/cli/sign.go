package cli

import (
	"bytes"
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/moatsec/moat/internal/env"
	"github.com/moatsec/moat/internal/image"
	"github.com/moatsec/moat/internal/sign/cosign"
	"github.com/moatsec/moat/internal/sign/key"
)

// DeniedError is a verdict against an image: its signatures do not verify, or the policy
// denies it. It is distinct from an error that kept moat from deciding.
type DeniedError struct{ Err error }

func (e *DeniedError) Error() string { return e.Err.Error() }
func (e *DeniedError) Unwrap() error { return e.Err }

// registryOptions are the flags of commands that talk to a registry about one image.
type registryOptions struct {
	Insecure bool
}

func (o *registryOptions) AddFlags(fs *pflag.FlagSet) {
	fs.BoolVar(&o.Insecure, "insecure", false, "allow plain HTTP to a registry on a loopback address")
}

// resolve parses ref and resolves it to a manifest digest, once: every later read and write
// names the digest, never the tag. A reference by digest is used as it is, unresolved.
func (o *registryOptions) resolve(ctx context.Context, ref string) (name.Digest, []remote.Option, error) {
	r, err := image.ParseReference(ref, o.Insecure)
	if err != nil {
		return name.Digest{}, nil, usageErrorf("%q: %v", ref, err)
	}
	ropts := image.RemoteOptions(ctx, nil)
	if d, ok := r.(name.Digest); ok {
		return d, ropts, nil
	}
	desc, err := remote.Head(r, ropts...)
	if err != nil {
		return name.Digest{}, nil, fmt.Errorf("resolving %s: %w", r, err)
	}
	return r.Context().Digest(desc.Digest.String()), ropts, nil
}

func digestHash(d name.Digest) v1.Hash {
	h, _ := v1.NewHash(d.DigestStr()) // name.Digest has validated it
	return h
}

func newKeyCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "key",
		Short: "Manage signing keys (cosign-compatible)",
	}
	cmd.AddCommand(newKeyGenerateCmd(a))
	return cmd
}

type keyGenerateOptions struct {
	Prefix string
	Force  bool
}

func newKeyGenerateCmd(a *app) *cobra.Command {
	o := &keyGenerateOptions{}
	cmd := &cobra.Command{
		Use:   "generate",
		Short: "Write an ECDSA P-256 key pair: PREFIX.key (encrypted) and PREFIX.pub",
		Long: `Generate an ECDSA P-256 key pair. The private key is written encrypted, in the format
cosign uses (PEM "ENCRYPTED SIGSTORE PRIVATE KEY": scrypt and NaCl secretbox), with mode
0600; the public key as a PKIX PEM. Keys move freely between moat and cosign.

The password comes from MOAT_PASSWORD (or COSIGN_PASSWORD), else it is asked for twice on
the terminal.`,
		Example: `  moat key generate
  MOAT_PASSWORD=... moat key generate --output-prefix release`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run(a) },
	}
	cmd.Flags().StringVar(&o.Prefix, "output-prefix", "moat", "write PREFIX.key and PREFIX.pub")
	cmd.Flags().BoolVarP(&o.Force, "force", "f", false, "overwrite existing key files")
	return cmd
}

func (o *keyGenerateOptions) run(a *app) error {
	if o.Prefix == "" {
		return usageErrorf("--output-prefix must not be empty")
	}
	privPath, pubPath := o.Prefix+".key", o.Prefix+".pub"
	if !o.Force {
		for _, p := range []string{privPath, pubPath} {
			if _, err := os.Lstat(p); err == nil {
				return usageErrorf("%s exists: remove it or pass --force", p)
			}
		}
	}
	pw, err := password(a, true)
	if err != nil {
		return err
	}
	k, err := key.Generate()
	if err != nil {
		return err
	}
	enc, err := key.EncryptPrivateKey(k, pw)
	if err != nil {
		return err
	}
	pub, err := key.MarshalPublicKey(k.Public())
	if err != nil {
		return err
	}
	if err := writeKeyFile(privPath, enc, 0o600, o.Force); err != nil {
		return err
	}
	if err := writeKeyFile(pubPath, pub, 0o644, o.Force); err != nil {
		os.Remove(privPath)
		return err
	}
	fp, _ := key.Fingerprint(k.Public())
	fmt.Fprintf(a.out, "Private key written to %s\nPublic key written to %s\nKey ID %s\n", privPath, pubPath, fp)
	return nil
}

// writeKeyFile writes a key file, never following a symlink into place and never leaving a
// partial file.
func writeKeyFile(path string, b []byte, mode os.FileMode, force bool) error {
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if force {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("replacing %s: %w", path, err)
		}
	}
	f, err := os.OpenFile(path, flags, mode)
	if err != nil {
		return fmt.Errorf("writing key: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// password returns the key password: MOAT_PASSWORD, else COSIGN_PASSWORD (either may be set
// to the empty string), else a prompt on the terminal (twice when confirm is set).
func password(a *app, confirm bool) ([]byte, error) {
	for _, v := range []env.Variable{env.Password, env.CosignPassword} {
		if pw, ok := v.Lookup(); ok {
			return []byte(pw), nil
		}
	}
	f, ok := a.in.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil, usageErrorf("no password: set MOAT_PASSWORD, or run on a terminal to be asked for it")
	}
	fmt.Fprint(a.err, "Enter password for private key: ")
	pw, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(a.err)
	if err != nil {
		return nil, fmt.Errorf("reading password: %w", err)
	}
	if confirm {
		fmt.Fprint(a.err, "Enter password for private key again: ")
		again, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(a.err)
		if err != nil {
			return nil, fmt.Errorf("reading password: %w", err)
		}
		if !bytes.Equal(pw, again) {
			return nil, errors.New("the passwords do not match")
		}
	}
	return pw, nil
}

// loadSigner reads and decrypts the private key at path.
func loadSigner(a *app, path string) (crypto.Signer, error) {
	b, err := readKeyFile(path)
	if err != nil {
		return nil, err
	}
	pw, err := password(a, false)
	if err != nil {
		return nil, err
	}
	s, err := key.LoadPrivateKey(b, pw)
	if err != nil {
		return nil, fmt.Errorf("--key %s: %w", path, err)
	}
	return s, nil
}

// loadPublicKeys reads public keys, refusing the same key twice (it would count twice towards
// a threshold).
func loadPublicKeys(paths []string) ([]crypto.PublicKey, []string, error) {
	var keys []crypto.PublicKey
	var fps []string
	for _, p := range paths {
		b, err := readKeyFile(p)
		if err != nil {
			return nil, nil, err
		}
		k, err := key.LoadPublicKey(b)
		if err != nil {
			return nil, nil, fmt.Errorf("--key %s: %w", p, err)
		}
		fp, err := key.Fingerprint(k)
		if err != nil {
			return nil, nil, fmt.Errorf("--key %s: %w", p, err)
		}
		if slices.Contains(fps, fp) {
			return nil, nil, usageErrorf("--key %s: the same key is given twice", p)
		}
		keys, fps = append(keys, k), append(fps, fp)
	}
	return keys, fps, nil
}

func readKeyFile(path string) ([]byte, error) {
	if path == "" {
		return nil, usageErrorf("--key is required")
	}
	b, err := readBoundedFile(path, key.MaxPEMSize)
	if err != nil {
		return nil, fmt.Errorf("--key: %w", err)
	}
	return b, nil
}

// parseAnnotations reads -a key=value flags.
func parseAnnotations(kvs []string) (map[string]string, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	out := map[string]string{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usageErrorf("-a %q: want key=value", kv)
		}
		if _, dup := out[k]; dup {
			return nil, usageErrorf("-a %q: annotation %q given twice", kv, k)
		}
		out[k] = v
	}
	return out, nil
}

type signOptions struct {
	registry    registryOptions
	Key         string
	Annotations []string
	Referrers   string
}

// referrerModes are the values of `sign --referrers`.
var referrerModes = map[string]cosign.ReferrersMode{
	"auto": cosign.ReferrersAlso, "off": cosign.ReferrersOff, "only": cosign.ReferrersOnly,
}

func newSignCmd(a *app) *cobra.Command {
	o := &signOptions{}
	cmd := &cobra.Command{
		Use:   "sign IMAGE",
		Short: "Sign an image's digest and store the signature in its registry, as cosign does",
		Long: `Resolve IMAGE to its manifest digest once and sign that digest, never the tag.
The signature is stored the way cosign stores a key-based signature: the simple-signing
payload as a layer of the image tagged sha256-<hex>.sig, the signature in its
dev.cosignproject.cosign/signature annotation. Annotations given with -a are part of the
signed payload. 'cosign verify --key KEY.pub --insecure-ignore-tlog' verifies it.

The private key is a cosign-format encrypted key ('moat key generate' or 'cosign
generate-key-pair'); its password comes from MOAT_PASSWORD or a prompt.`,
		Example: `  moat sign registry.example.com/team/app:1.2 --key moat.key
  moat sign registry.example.com/team/app@sha256:... --key moat.key -a env=prod -a build=1234`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return o.run(cmd.Context(), a, args[0]) },
	}
	o.registry.AddFlags(cmd.Flags())
	cmd.Flags().StringVar(&o.Key, "key", "", "private key file (cosign format, encrypted)")
	cmd.Flags().StringArrayVarP(&o.Annotations, "annotation", "a", nil, "key=value to sign with the digest; repeatable")
	cmd.Flags().StringVar(&o.Referrers, "referrers", "auto", "also store the signature as an OCI 1.1 referrer: auto (when the registry offers the API), off (tag only), only (referrer only)")
	return cmd
}

func (o *signOptions) run(ctx context.Context, a *app, ref string) error {
	ann, err := parseAnnotations(o.Annotations)
	if err != nil {
		return err
	}
	mode, ok := referrerModes[o.Referrers]
	if !ok {
		return usageErrorf("--referrers %q: want auto, off or only", o.Referrers)
	}
	if o.Key == "" {
		return usageErrorf("--key is required")
	}
	signer, err := loadSigner(a, o.Key)
	if err != nil {
		return err
	}
	d, ropts, err := o.registry.resolve(ctx, ref)
	if err != nil {
		return err
	}
	s, err := cosign.Sign(ctx, d.Context(), digestHash(d), ann, signer, cosign.WithRemoteOptions(ropts...), cosign.WithReferrers(mode))
	if err != nil {
		return fmt.Errorf("signing %s: %w", d, err)
	}
	fmt.Fprintf(a.out, "Signed %s\n", d)
	if s.Tag != (name.Tag{}) {
		note := ""
		if s.Existing {
			note = " (this signature was already there)"
		}
		fmt.Fprintf(a.out, "Signature stored at %s%s\n", s.Tag, note)
	}
	if s.Referrer != (v1.Hash{}) {
		fmt.Fprintf(a.out, "Signature stored as referrer %s@%s\n", d.Context(), s.Referrer)
	}
	return nil
}

type verifyOptions struct {
	registry  registryOptions
	Keys      []string
	Threshold int
	Output    string
}

func newVerifyCmd(a *app) *cobra.Command {
	o := &verifyOptions{}
	cmd := &cobra.Command{
		Use:   "verify IMAGE",
		Short: "Verify an image's signatures against public keys, without a transparency log",
		Long: `Resolve IMAGE to its manifest digest and check every signature stored for it, as
cosign stores them. The image verifies when at least --threshold of the given keys (default
1) each verified a signature whose signed payload names that digest. Signatures that do not
verify are listed with why. Nothing is consulted but the registry: no transparency log,
like 'cosign verify --insecure-ignore-tlog'.

Exit codes: 0 verified, 4 not verified (the image is to be denied), 1 error (registry
unreachable, unreadable key), 2 usage error.`,
		Example: `  moat verify registry.example.com/team/app:1.2 --key moat.pub
  moat verify registry.example.com/team/app:1.2 --key a.pub --key b.pub --key c.pub --threshold 2 -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return o.run(cmd.Context(), a, args[0]) },
	}
	o.registry.AddFlags(cmd.Flags())
	cmd.Flags().StringArrayVar(&o.Keys, "key", nil, "public key file (PEM); repeatable")
	cmd.Flags().IntVar(&o.Threshold, "threshold", 1, "how many distinct keys must each have signed")
	cmd.Flags().StringVarP(&o.Output, "output", "o", "text", "output format: text or json")
	return cmd
}

// verifyResult is `moat verify -o json`.
type verifyResult struct {
	Image      string           `json:"image"`
	Digest     string           `json:"digest"`
	Verified   bool             `json:"verified"`
	Threshold  int              `json:"threshold"`
	Signatures []verifiedOutput `json:"signatures"`
	Rejected   []string         `json:"rejected"`
	Reason     string           `json:"reason,omitempty"`
}

type verifiedOutput struct {
	Key         string            `json:"key"`
	KeyID       string            `json:"keyID"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

func (o *verifyOptions) run(ctx context.Context, a *app, ref string) error {
	if len(o.Keys) == 0 {
		return usageErrorf("--key is required")
	}
	if o.Threshold < 1 || o.Threshold > len(o.Keys) {
		return usageErrorf("--threshold %d: want 1 to %d (the number of --key)", o.Threshold, len(o.Keys))
	}
	if o.Output != "text" && o.Output != "json" {
		return usageErrorf("--output %q: want text or json", o.Output)
	}
	keys, fps, err := loadPublicKeys(o.Keys)
	if err != nil {
		return err
	}
	d, ropts, err := o.registry.resolve(ctx, ref)
	if err != nil {
		return err
	}
	res := verifyResult{Image: ref, Digest: d.DigestStr(), Threshold: o.Threshold, Signatures: []verifiedOutput{}, Rejected: []string{}}
	ok, verr := cosign.Verify(ctx, d.Context(), digestHash(d), keys, o.Threshold, cosign.WithRemoteOptions(ropts...))
	var ve *cosign.VerificationError
	switch {
	case errors.As(verr, &ve):
		ok = ve.Verified
		res.Reason = string(ve.Reason)
		for _, f := range ve.Failures {
			res.Rejected = append(res.Rejected, f.String())
		}
	case verr != nil:
		return fmt.Errorf("verifying %s: %w", d, verr)
	default:
		res.Verified = true
	}
	for _, v := range ok {
		file := ""
		if i := slices.Index(fps, v.Key); i >= 0 {
			file = o.Keys[i]
		}
		res.Signatures = append(res.Signatures, verifiedOutput{Key: file, KeyID: v.Key, Annotations: v.Payload.Annotations})
	}
	if o.Output == "json" {
		if err := writeJSON(a.out, res); err != nil {
			return err
		}
	} else {
		writeVerifyText(a.out, d, res)
	}
	if ve != nil {
		return &DeniedError{Err: ve}
	}
	return nil
}

func writeVerifyText(w io.Writer, d name.Digest, res verifyResult) {
	if res.Verified {
		fmt.Fprintf(w, "Verified %s\n", d)
	} else {
		fmt.Fprintf(w, "NOT verified %s: %s\n", d, res.Reason)
	}
	for _, s := range res.Signatures {
		fmt.Fprintf(w, "  signed by %s (%s)", s.Key, s.KeyID)
		if len(s.Annotations) > 0 {
			ks := make([]string, 0, len(s.Annotations))
			for k := range s.Annotations {
				ks = append(ks, k)
			}
			slices.Sort(ks)
			var parts []string
			for _, k := range ks {
				parts = append(parts, k+"="+s.Annotations[k])
			}
			fmt.Fprintf(w, " %s", strings.Join(parts, " "))
		}
		fmt.Fprintln(w)
	}
	for _, r := range res.Rejected {
		fmt.Fprintf(w, "  rejected: %s\n", r)
	}
}
