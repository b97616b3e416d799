package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/cobra"

	"github.com/moatsec/moat/internal/env"
	"github.com/moatsec/moat/internal/evidence"
	"github.com/moatsec/moat/internal/image"
	"github.com/moatsec/moat/internal/policy"
	"github.com/moatsec/moat/internal/sbom"
	"github.com/moatsec/moat/internal/store"
	"github.com/moatsec/moat/internal/vuln"
	"github.com/moatsec/moat/internal/vuln/db"
	"github.com/moatsec/moat/internal/vuln/match"
)

// TestFailedError is returned by `policy test` when cases fail.
type TestFailedError struct{ Failed, Total int }

func (e *TestFailedError) Error() string {
	return fmt.Sprintf("%d of %d policy test cases failed", e.Failed, e.Total)
}

func newPolicyCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Decide whether images may run, and test policies",
	}
	cmd.AddCommand(newPolicyEvalCmd(a), newPolicyTestCmd(a))
	return cmd
}

type policyEvalOptions struct {
	image       imageOptions
	db          dbOptions
	Policy      string
	Output      string
	Evidence    string
	DecisionLog string
	NoCache     bool
}

func newPolicyEvalCmd(a *app) *cobra.Command {
	o := &policyEvalOptions{}
	cmd := &cobra.Command{
		Use:   "eval IMAGE",
		Short: "Decide whether an image may run under a policy, and how isolated",
		Long: `Gather the evidence the policy needs about IMAGE (a registry reference): the digest
it resolves to, its configuration, its signatures and attestations verified against the
policy's keys, and, when a rule limits vulnerabilities, a scan against the advisory
database. Then evaluate the policy (docs/formats/policy.md) and print the decision: allow
with an isolation level, or deny, with every reason.

Evaluation fails closed: a policy that does not load, a registry error, a missing database
or a CEL error is a deny with that reason. Every decision is appended to the decision log
(MOAT_DECISION_LOG, default decisions.jsonl in moat's state directory).

With --evidence FILE, the evidence is read from a file (the 'evidence' of a test case, or
the 'evidence' of 'moat policy eval -o json') instead of being gathered.

Exit codes: 0 allowed, 4 denied, 1 error (the decision log cannot be written), 2 usage.`,
		Example: `  moat policy eval registry.example.com/team/app:1.2 --policy policy.yaml
  moat policy eval registry.example.com/team/app:1.2 --policy policy.yaml -o json | jq .decision`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return o.run(cmd.Context(), a, args[0]) },
	}
	fs := cmd.Flags()
	o.image.AddFlags(fs)
	o.db.AddFlags(fs)
	fs.StringVar(&o.Policy, "policy", "", "policy file (YAML)")
	fs.StringVarP(&o.Output, "output", "o", "", "output format: table or json (default: table on a terminal, json otherwise)")
	fs.StringVar(&o.Evidence, "evidence", "", "read the evidence from this JSON or YAML file instead of gathering it")
	fs.StringVar(&o.DecisionLog, "decision-log", env.DecisionLog.Get(), `append the decision to this JSON-lines file; "-" for none (env MOAT_DECISION_LOG)`)
	fs.BoolVar(&o.NoCache, "no-cache", false, "read every layer even when the layer cache has it")
	return cmd
}

// evalOutput is `moat policy eval -o json`.
type evalOutput struct {
	Image    string           `json:"image"`
	Digest   string           `json:"digest"`
	Decision policy.Decision  `json:"decision"`
	Evidence *policy.Evidence `json:"evidence"`
}

func (o *policyEvalOptions) run(ctx context.Context, a *app, ref string) error {
	if o.Policy == "" {
		return usageErrorf("--policy is required")
	}
	format := o.Output
	if format == "" {
		format = "json"
		if a.stdoutTerminal() {
			format = "table"
		}
	}
	if format != "table" && format != "json" {
		return usageErrorf("--output %q: want table or json", o.Output)
	}
	logPath, err := decisionLogPath(o.DecisionLog)
	if err != nil {
		return err
	}
	r, err := image.ParseReference(ref, o.image.Insecure)
	if err != nil {
		return usageErrorf("%q: %v", ref, err)
	}
	imgOpts, err := o.image.options()
	if err != nil {
		return err
	}

	// A policy or key that does not load is a deny, not a crash or an allow.
	var ev *policy.Evidence
	var d policy.Decision
	p, err := policy.Load(o.Policy)
	if err == nil {
		ev, err = o.evidence(ctx, a, p, r, imgOpts)
	}
	now := time.Now()
	if err != nil {
		if ev == nil {
			ev = &policy.Evidence{Image: policy.Image{Reference: ref}}
		}
		d = policy.Decision{Reasons: []string{"policy: " + err.Error()}}
		if p != nil {
			d.PolicyHash = p.Hash
		}
	} else {
		d = policy.Evaluate(p, ev, now)
	}

	if logPath != "" {
		if err := appendDecision(logPath, policy.NewRecord(now, ev, d)); err != nil {
			return err
		}
	}
	if format == "json" {
		if err := writeJSON(a.out, evalOutput{Image: ev.Image.Reference, Digest: ev.Digest, Decision: d, Evidence: ev}); err != nil {
			return err
		}
	} else {
		writeDecisionTable(a.out, ev, d)
	}
	if !d.Allow {
		return &DeniedError{Err: fmt.Errorf("%s denied: %s", ev.Image.Reference, lastReason(d))}
	}
	return nil
}

func lastReason(d policy.Decision) string {
	if len(d.Reasons) == 0 {
		return "no reason"
	}
	return d.Reasons[len(d.Reasons)-1]
}

// evidence gathers (or, with --evidence, reads) the evidence. The error return is for what
// makes evaluation impossible (a key that does not load, an unreadable evidence file);
// registry and database trouble are recorded in the evidence and deny there.
func (o *policyEvalOptions) evidence(ctx context.Context, a *app, p *policy.Policy, r name.Reference, imgOpts image.Options) (*policy.Evidence, error) {
	if o.Evidence != "" {
		c, err := policy.LoadEvidence(o.Evidence)
		if err != nil {
			return nil, err
		}
		return c, nil
	}
	return gatherEvidence(ctx, a, p, r, imgOpts.Platform, o.image, o.db, !o.NoCache)
}

// gatherEvidence gathers what p needs about the registry image r, verifying against p's keys
// and scanning the pinned digest when a rule limits vulnerabilities: the one way `policy eval`
// and `run` build a decision's evidence. The error is for a key that does not load or a bad
// MOAT_DB_MAX_AGE; registry and database trouble land in the evidence.
func gatherEvidence(ctx context.Context, a *app, p *policy.Policy, r name.Reference, platform *v1.Platform, imgFlags imageOptions, dbo dbOptions, useCache bool) (*policy.Evidence, error) {
	keys, err := evidence.LoadKeys(p)
	if err != nil {
		return nil, err
	}
	dir, err := dbo.dir()
	if err != nil {
		return nil, err
	}
	return evidence.Gather(ctx, r, evidence.Options{
		Needs:  p.Needs(),
		Keys:   keys,
		Remote: image.RemoteOptions(ctx, platform),
		Scan: func(ctx context.Context, pinned name.Digest) (*sbom.Inventory, []vuln.Finding, time.Time, error) {
			return scanForPolicy(ctx, a, dir, pinned, imgFlags, useCache)
		},
	}), nil
}

// scanForPolicy inventories the pinned image and matches it. No ignore file or VEX applies:
// whoever controls the working directory must not be able to hide findings from a policy.
func scanForPolicy(ctx context.Context, a *app, dir string, pinned name.Digest, imgOpts imageOptions, useCache bool) (*sbom.Inventory, []vuln.Finding, time.Time, error) {
	adb, err := db.Open(dir)
	if err != nil {
		return nil, nil, time.Time{}, err
	}
	defer adb.Close()
	inv, err := inventory(ctx, a, pinned.String(), imgOpts, useCache)
	if err != nil {
		return nil, nil, time.Time{}, err
	}
	res, err := match.Match(ctx, inv, adb, match.Options{})
	if err != nil {
		return nil, nil, time.Time{}, err
	}
	return inv, res.Findings, adb.Status().Built, nil
}

// decisionLogPath resolves --decision-log: "-" is none, "" the default in the state
// directory.
func decisionLogPath(flag string) (string, error) {
	switch flag {
	case "-":
		return "", nil
	case "":
		dirs, err := store.DefaultDirs()
		if err != nil {
			return "", err
		}
		return filepath.Join(dirs.State, "decisions.jsonl"), nil
	}
	return flag, nil
}

func appendDecision(path string, r policy.Record) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("decision log: %w", err)
	}
	l, err := policy.OpenLog(path, true)
	if err != nil {
		return fmt.Errorf("decision log: %w", err)
	}
	if err := l.Append(r); err != nil {
		l.Close()
		return fmt.Errorf("decision log %s: %w", path, err)
	}
	return l.Close()
}

func writeDecisionTable(w io.Writer, ev *policy.Evidence, d policy.Decision) {
	verdict := "DENY"
	if d.Allow {
		verdict = "ALLOW, isolation " + d.Isolation
	}
	rule := d.Rule
	if rule == "" {
		rule = "(none)"
	}
	fmt.Fprintf(w, "Decision: %s\nRule:     %s\nImage:    %s\n", verdict, rule, ev.Image.Reference)
	if ev.Digest != "" {
		fmt.Fprintf(w, "Digest:   %s\n", ev.Digest)
	}
	fmt.Fprintln(w, "Reasons:")
	for _, r := range d.Reasons {
		fmt.Fprintf(w, "  %s\n", r)
	}
}

type policyTestOptions struct {
	Policy string
	Output string
}

func newPolicyTestCmd(a *app) *cobra.Command {
	o := &policyTestOptions{}
	cmd := &cobra.Command{
		Use:   "test DIR",
		Short: "Run a policy against a directory of test cases (evidence and expected decision)",
		Long: `Evaluate the policy for every case file in DIR (.yaml, .yml, .json; see
docs/formats/policy.md) and compare each decision with the case's expectation. Nothing is
fetched: the cases carry their evidence. Use it in CI to test policy changes.

Exit codes: 0 every case passed, 5 some case failed or could not be read, 1 the policy does
not load, 2 usage error.`,
		Example: `  moat policy test policy/cases --policy policy/policy.yaml`,
		Args:    cobra.ExactArgs(1),
		RunE:    func(cmd *cobra.Command, args []string) error { return o.run(a, args[0]) },
	}
	cmd.Flags().StringVar(&o.Policy, "policy", "", "policy file (YAML)")
	cmd.Flags().StringVarP(&o.Output, "output", "o", "text", "output format: text or json")
	return cmd
}

type caseOutput struct {
	Name       string          `json:"name"`
	File       string          `json:"file"`
	Pass       bool            `json:"pass"`
	Mismatches []string        `json:"mismatches,omitempty"`
	Error      string          `json:"error,omitempty"`
	Decision   policy.Decision `json:"decision"`
}

func (o *policyTestOptions) run(a *app, dir string) error {
	if o.Policy == "" {
		return usageErrorf("--policy is required")
	}
	if o.Output != "text" && o.Output != "json" {
		return usageErrorf("--output %q: want text or json", o.Output)
	}
	p, err := policy.Load(o.Policy)
	if err != nil {
		return err
	}
	results, err := policy.RunCases(p, dir)
	if err != nil {
		return err
	}
	if len(results) == 0 {
		return fmt.Errorf("%s: no case files (.yaml, .yml, .json)", dir)
	}
	failed := 0
	out := make([]caseOutput, 0, len(results))
	for _, r := range results {
		c := caseOutput{Name: r.Case.Name, File: r.Case.File, Pass: r.Pass && r.Err == nil, Mismatches: r.Mismatches, Decision: r.Decision}
		if r.Err != nil {
			c.Error = r.Err.Error()
		}
		if !c.Pass {
			failed++
		}
		out = append(out, c)
	}
	if o.Output == "json" {
		if err := writeJSON(a.out, out); err != nil {
			return err
		}
	} else {
		for _, c := range out {
			switch {
			case c.Error != "":
				fmt.Fprintf(a.out, "FAIL  %s: %s\n", c.Name, c.Error)
			case !c.Pass:
				fmt.Fprintf(a.out, "FAIL  %s: %s\n", c.Name, strings.Join(c.Mismatches, "; "))
				for _, r := range c.Decision.Reasons {
					fmt.Fprintf(a.out, "        %s\n", r)
				}
			default:
				fmt.Fprintf(a.out, "ok    %s\n", c.Name)
			}
		}
		fmt.Fprintf(a.out, "%d cases, %d failed\n", len(out), failed)
	}
	if failed > 0 {
		return &TestFailedError{Failed: failed, Total: len(out)}
	}
	return nil
}
