package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"time"

	"github.com/moatsec/moat/internal/report"
	"github.com/moatsec/moat/internal/sbom"
	"github.com/moatsec/moat/internal/sbom/sbomfile"
	"github.com/moatsec/moat/internal/vuln"
	"github.com/moatsec/moat/internal/vuln/db"
	"github.com/moatsec/moat/internal/vuln/match"
	"github.com/moatsec/moat/internal/vuln/suppress"
	"github.com/spf13/cobra"
)

// FindingsError is returned by scan when findings reach the --fail-on threshold.
type FindingsError struct {
	Count     int
	Threshold vuln.Level
	// Unknown is how many of Count have an unknown severity (counted by --fail-on-unknown).
	Unknown int
}

func (e *FindingsError) Error() string {
	msg := fmt.Sprintf("%d findings at or above severity %s (--fail-on %s)", e.Count, e.Threshold, e.Threshold)
	if e.Unknown > 0 {
		msg += fmt.Sprintf(", %d of them of unknown severity (--fail-on-unknown)", e.Unknown)
	}
	return msg
}

type scanOptions struct {
	image         imageOptions
	output        outputOptions
	db            dbOptions
	NoCache       bool
	FailOn        string
	FailOnUnknown bool
	IgnoreUnfixed bool
	IgnoreFile    string
	VEX           []string
	AllowMissing  bool
	Attest        bool
	Key           string
}

func scanFormatList() string {
	var names []string
	for _, f := range report.ScanFormats() {
		names = append(names, string(f))
	}
	return strings.Join(names, ", ")
}

func newScanCmd(a *app) *cobra.Command {
	o := &scanOptions{}
	cmd := &cobra.Command{
		Use:   "scan TARGET",
		Short: "Report the known vulnerabilities of every package in an image",
		Long: `Inventory an image and match every package against the advisory database
('moat db update' builds it). OS packages are matched against their distribution's own
advisories, by source package and release, so that backported fixes are not reported;
language packages against their ecosystem's.

TARGET is anything 'moat sbom' takes, or:
  sbom:PATH               an SBOM made earlier: CycloneDX (JSON or XML), SPDX (JSON or
                          tag-value) or moat JSON

Exit codes: 0 no finding at or above --fail-on (or no --fail-on), 3 findings at or above
--fail-on, 1 error (including a database with no data for an ecosystem the image needs),
2 usage error.`,
		Example: `  moat scan debian:12
  moat scan docker-archive:app.tar --fail-on high -o sarif --output-file moat.sarif
  moat scan sbom:app.cdx.json --vex app.openvex.json
  moat scan oci-dir:./layout --ignore-unfixed -o json | jq '.findings | length'`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.run(cmd.Context(), a, args[0])
		},
	}
	fs := cmd.Flags()
	o.image.AddFlags(fs)
	o.output.AddFlags(fs, scanFormatList())
	o.db.AddFlags(fs)
	fs.BoolVar(&o.NoCache, "no-cache", false, "read every layer even when the layer cache has it")
	fs.StringVar(&o.FailOn, "fail-on", "", "exit with code 3 when a finding has this severity or higher: low, medium, high or critical")
	fs.BoolVar(&o.FailOnUnknown, "fail-on-unknown", true, "with --fail-on, count findings of unknown severity as reaching the threshold")
	fs.BoolVar(&o.IgnoreUnfixed, "ignore-unfixed", false, "leave out findings the data says have no fix (not fixed, will not fix)")
	fs.StringVar(&o.IgnoreFile, "ignorefile", suppress.IgnoreFileName, "ignore file: entries with id, optional package, reason and expiry (a missing default file is fine)")
	fs.StringArrayVar(&o.VEX, "vex", nil, "OpenVEX document whose not_affected and fixed statements suppress findings; repeatable")
	fs.BoolVar(&o.AllowMissing, "allow-missing-data", false, "report packages whose ecosystem has no advisories in the database as warnings instead of failing")
	fs.BoolVar(&o.Attest, "attest", false, "attach the SBOM (CycloneDX) and the vulnerability report to the image in its registry as signed attestations (needs --key)")
	fs.StringVar(&o.Key, "key", "", "with --attest: private key file (cosign format, encrypted)")
	return cmd
}

func (o *scanOptions) run(ctx context.Context, a *app, arg string) error {
	format, err := o.output.format(a, report.ParseScanFormat)
	if err != nil {
		return err
	}
	var failOn *vuln.Level
	if o.FailOn != "" {
		l, err := vuln.ParseLevel(o.FailOn)
		if err != nil || l < vuln.Low {
			return usageErrorf("--fail-on %q: want low, medium, high or critical", o.FailOn)
		}
		failOn = &l
	}
	dir, err := o.db.dir()
	if err != nil {
		return err
	}
	// With --attest the image is resolved to its digest once; the scan reads that digest and
	// the attestations name it, so a tag moved meanwhile cannot get another image's results.
	var att *scanAttester
	if o.Attest || o.Key != "" {
		if att, arg, err = o.prepareAttest(ctx, a, arg); err != nil {
			return err
		}
	}
	// Read the suppression files first: a mistake in them is found before any work is done.
	var ignore *suppress.IgnoreFile
	if o.IgnoreFile != "" {
		ignore, err = suppress.LoadIgnore(o.IgnoreFile)
		if errors.Is(err, fs.ErrNotExist) && o.IgnoreFile == suppress.IgnoreFileName {
			ignore, err = nil, nil
		}
		if err != nil {
			return fmt.Errorf("--ignorefile: %w", err)
		}
	}
	var vexDocs []*suppress.VEXDocument
	for _, p := range o.VEX {
		d, err := suppress.LoadVEX(p)
		if err != nil {
			return fmt.Errorf("--vex: %w", err)
		}
		vexDocs = append(vexDocs, d)
	}

	adb, err := db.Open(dir)
	if err != nil {
		return err
	}
	defer adb.Close()
	st := adb.Status()
	warnings := o.db.warnStale(a, st)

	scanStart := time.Now()
	var inv *sbom.Inventory
	if path, ok := strings.CutPrefix(arg, "sbom:"); ok {
		if path == "" {
			return usageErrorf("sbom: needs a path, e.g. sbom:app.cdx.json")
		}
		inv, err = sbomfile.Read(ctx, path)
	} else {
		inv, err = inventory(ctx, a, arg, o.image, !o.NoCache)
	}
	if err != nil {
		return err
	}

	start := time.Now()
	res, err := match.Match(ctx, inv, adb, match.Options{AllowMissing: o.AllowMissing})
	if err != nil {
		return fmt.Errorf("scanning %s: %w", inv.Image.Name, err)
	}
	a.log.Info("matched", "packages", len(inv.Packages), "findings", len(res.Findings), "elapsed", time.Since(start))
	for _, w := range res.Warnings {
		warnings = append(warnings, w.String())
	}
	if len(res.Warnings) > 0 {
		a.log.Warn(fmt.Sprintf("%d packages or advisories could not be fully checked; the report lists them under warnings", len(res.Warnings)))
	}

	findings := res.Findings
	if o.IgnoreUnfixed {
		kept := findings[:0]
		for _, f := range findings {
			if f.FixStatus == vuln.NotFixed || f.FixStatus == vuln.WillNotFix {
				continue
			}
			kept = append(kept, f)
		}
		findings = kept
	}
	now := time.Now()
	var expired []suppress.IgnoreEntry
	if ignore != nil {
		expired = ignore.Apply(findings, now)
		for _, e := range expired {
			a.log.Warn("ignore entry expired and no longer applies", "file", e.Source, "line", e.Line, "id", e.ID, "expired", e.Expires.Format(time.DateOnly))
		}
	}
	if len(vexDocs) > 0 {
		n := suppress.ApplyVEX(findings, inv.Image, vexDocs...)
		a.log.Info("VEX statements applied", "suppressed", n)
	}

	sources := map[string]int{}
	for _, s := range st.Sources {
		sources[s.Name] = s.Records
	}
	rep := &report.ScanReport{
		Tool:           sbom.Tool{Name: "moat", Version: Version()},
		Created:        now.UTC(),
		Image:          inv.Image,
		Distro:         inv.Distro,
		Findings:       findings,
		ExpiredIgnores: expired,
		Warnings:       warnings,
		Database:       report.DatabaseInfo{Built: st.Built, Sources: sources},
		Settings:       report.ScanSettings{FailOn: failOn, IgnoreUnfixed: o.IgnoreUnfixed},
	}
	if err := o.output.write(a, func(w io.Writer) error {
		return report.WriteScan(w, format, rep, report.Options{Color: a.color() && o.output.File == ""})
	}); err != nil {
		return err
	}
	if att != nil {
		if err := att.attach(ctx, a, inv, rep, scanStart); err != nil {
			return err
		}
	}
	if failOn == nil {
		return nil
	}
	fe := &FindingsError{Threshold: *failOn}
	for _, f := range findings {
		switch {
		case f.Suppressed != nil:
		case f.Level >= *failOn:
			fe.Count++
		case f.Level == vuln.Unknown && o.FailOnUnknown:
			fe.Count++
			fe.Unknown++
		}
	}
	if fe.Count > 0 {
		return fe
	}
	return nil
}
