package policy

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Decision is the outcome of evaluating a policy for one image.
type Decision struct {
	// Allow is true only when a rule with action allow decided.
	Allow bool `json:"allow"`
	// Isolation is the level `moat run` must apply when Allow is set; empty on deny.
	Isolation string `json:"isolation,omitempty"`
	// Rule is the name of the deciding rule; empty when no rule decided.
	Rule string `json:"rule,omitempty"`
	// Reasons lists every check made, passed or failed, in order, each prefixed with the
	// rule it belongs to.
	Reasons []string `json:"reasons"`
	// PolicyHash is the policy's Hash.
	PolicyHash string `json:"policyHash,omitempty"`
	// AllowedRelaxations are the deciding allow rule's relaxations, as written in the policy:
	// the only loosenings of the confinement the container may have (CheckRelaxations).
	AllowedRelaxations []string `json:"allowedRelaxations,omitempty"`
}

// Evaluate decides whether the image described by ev may run under p, at time now.
//
// Rules are tried in order. A rule decides when it matches the image and all its
// requirements hold; its action is the decision. When no rule decides the image is denied.
// Evaluation fails closed: evidence errors, a missing policy or evidence, and a CEL
// expression that fails or yields a non-bool are each a deny with that reason, whatever
// later rules say.
func Evaluate(p *Policy, ev *Evidence, now time.Time) Decision {
	if p == nil {
		return Decision{Reasons: []string{"no policy"}}
	}
	d := Decision{PolicyHash: p.Hash}
	if ev == nil {
		d.Reasons = []string{"no evidence"}
		return d
	}
	if len(ev.Errors) > 0 {
		for _, e := range ev.Errors {
			d.Reasons = append(d.Reasons, "evidence error: "+e)
		}
		return d
	}
	name := imageName(ev.Image)
	var ctx context.Context
	for i := range p.Rules {
		r := &p.Rules[i]
		if !r.matches(name) {
			continue
		}
		c := checker{d: &d, rule: r.Name, ev: ev, now: now}
		c.add(true, "matches image %s", name)
		c.requirements(p, r)
		if len(r.programs) > 0 {
			if ctx == nil {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(context.Background(), celTimeout)
				defer cancel()
			}
			act := &activation{ev: ev, now: now}
			for j, prg := range r.programs {
				ok, err := evalCEL(ctx, prg, act)
				if err != nil {
					c.add(false, "cel %q: evaluation failed: %v", r.Require.CEL[j], err)
					d.Rule = r.Name
					d.Reasons = append(d.Reasons, fmt.Sprintf("deny: rule %q: CEL evaluation failed", r.Name))
					return d
				}
				c.add(ok, "cel %q is %t", r.Require.CEL[j], ok)
			}
		}
		if c.failed {
			continue
		}
		d.Rule = r.Name
		if r.Action == Allow {
			d.Allow = true
			d.Isolation = r.Isolation
			d.AllowedRelaxations = slices.Clone(r.Relaxations)
			d.Reasons = append(d.Reasons, fmt.Sprintf("allow: rule %q decides, isolation %s", r.Name, r.Isolation))
		} else {
			d.Reasons = append(d.Reasons, fmt.Sprintf("deny: rule %q decides", r.Name))
		}
		return d
	}
	d.Reasons = append(d.Reasons, fmt.Sprintf("deny: no rule matched %s with all its requirements", name))
	return d
}

// imageName is "registry/repository", the name rules match.
func imageName(im Image) string {
	reg := registryName(im.Registry)
	if reg == "" {
		return im.Repository
	}
	return reg + "/" + im.Repository
}

// registryName spells Docker Hub as users write it.
func registryName(reg string) string {
	if reg == "index.docker.io" || reg == "registry-1.docker.io" {
		return "docker.io"
	}
	return reg
}

func (r *Rule) matches(name string) bool {
	if len(r.Match.Images) == 0 {
		return true
	}
	for _, g := range r.Match.Images {
		if matchGlob(g, name) {
			return true
		}
	}
	return false
}

// checker records the outcome of each requirement of one rule.
type checker struct {
	d      *Decision
	rule   string
	ev     *Evidence
	now    time.Time
	failed bool
}

func (c *checker) add(ok bool, format string, args ...any) {
	verdict := "pass"
	if !ok {
		verdict = "fail"
		c.failed = true
	}
	c.d.Reasons = append(c.d.Reasons, fmt.Sprintf("rule %q: %s: %s", c.rule, verdict, fmt.Sprintf(format, args...)))
}

func (c *checker) requirements(p *Policy, r *Rule) {
	req := &r.Require
	ev := c.ev
	if len(req.Registries) > 0 {
		reg := registryName(ev.Image.Registry)
		ok := slices.ContainsFunc(req.Registries, func(g string) bool { return matchGlob(g, reg) })
		c.add(ok, "registry %q in allowed registries %s", reg, strings.Join(req.Registries, ", "))
	}
	if s := req.Signatures; s != nil {
		var by []string
		for _, sig := range ev.Signatures {
			if slices.Contains(s.Keys, sig.Key) && !slices.Contains(by, sig.Key) {
				by = append(by, sig.Key)
			}
		}
		threshold := max(s.Threshold, 1)
		signers := "none"
		if len(by) > 0 {
			signers = strings.Join(by, ", ")
		}
		rejected := ""
		if len(by) < threshold && len(ev.Rejected) > 0 {
			rejected = "; rejected: " + strings.Join(ev.Rejected, "; ")
		}
		c.add(len(by) >= threshold, "signed by %d of %d required keys (%s); verified signers: %s%s",
			len(by), threshold, strings.Join(s.Keys, ", "), signers, rejected)
	}
	for _, a := range req.Attestations {
		c.attestation(a)
	}
	if v := req.Vulnerabilities; v != nil {
		c.vulnerabilities(v)
	}
	if cfg := req.Config; cfg != nil {
		if cfg.NonRoot {
			c.add(!isRoot(ev.Config.User), "runs as non-root user (user %q)", ev.Config.User)
		}
		if cfg.NoSecretsInEnv {
			names := SecretsInEnv(ev.Config.Env)
			if len(names) == 0 {
				c.add(true, "no secrets in environment")
			} else {
				c.add(false, "secrets in environment: %s", strings.Join(names, ", "))
			}
		}
	}
}

func (c *checker) attestation(a AttestationRequirement) {
	maxAge := time.Duration(a.MaxAge)
	var reason string
	for _, at := range c.ev.Attestations {
		if !predicateMatches(a.Type, at.PredicateType) {
			continue
		}
		switch {
		case !at.Verified:
			reason = fmt.Sprintf("%s attestation did not verify", at.PredicateType)
		case !slices.Contains(a.Keys, at.Key):
			reason = fmt.Sprintf("%s attestation signed by %q, not by one of the required keys", at.PredicateType, keyLabel(at))
		case maxAge > 0 && at.Timestamp.IsZero():
			reason = fmt.Sprintf("%s attestation has no timestamp", at.PredicateType)
		case maxAge > 0 && c.now.Sub(at.Timestamp) > maxAge:
			reason = fmt.Sprintf("%s attestation is %s old", at.PredicateType, c.now.Sub(at.Timestamp).Round(time.Second))
		default:
			age := ""
			if maxAge > 0 {
				age = fmt.Sprintf(", %s old (limit %s)", c.now.Sub(at.Timestamp).Round(time.Second), maxAge)
			}
			c.add(true, "%s attestation signed by %s%s", a.Type, at.Key, age)
			return
		}
	}
	if reason == "" {
		reason = "none found"
	}
	limit := ""
	if maxAge > 0 {
		limit = fmt.Sprintf(" at most %s old", maxAge)
	}
	c.add(false, "%s attestation signed by one of %s%s: %s", a.Type, strings.Join(a.Keys, ", "), limit, reason)
}

func keyLabel(a Attestation) string {
	if a.Key != "" {
		return a.Key
	}
	return a.KeyID
}

// Predicate types behind the aliases accepted in attestation requirements (cosign's
// --type names, and the in-toto standard SBOM predicates).
var predicateAliases = map[string][]string{
	"sbom":           {"https://spdx.dev/Document", "https://cyclonedx.org/bom"},
	"spdx":           {"https://spdx.dev/Document"},
	"cyclonedx":      {"https://cyclonedx.org/bom"},
	"vuln":           {"https://cosign.sigstore.dev/attestation/vuln/v1"},
	"openvex":        {"https://openvex.dev/ns"},
	"slsaprovenance": {"https://slsa.dev/provenance/"},
}

// predicateMatches reports whether an attestation's predicate type satisfies the type a
// requirement asks for: an alias matches its URIs and their versioned forms
// ("https://spdx.dev/Document/v2.3"); a URI matches exactly.
func predicateMatches(want, got string) bool {
	uris, ok := predicateAliases[want]
	if !ok {
		return want == got
	}
	for _, u := range uris {
		if got == u || strings.HasPrefix(got, strings.TrimSuffix(u, "/")+"/") {
			return true
		}
	}
	return false
}

func (c *checker) vulnerabilities(v *VulnRequirement) {
	db := c.ev.Database
	if db == nil {
		c.add(false, "vulnerability scan present: no scan in evidence")
		return
	}
	if v.MaxDatabaseAge > 0 {
		limit := time.Duration(v.MaxDatabaseAge)
		if db.Built.IsZero() {
			c.add(false, "advisory database at most %s old: build time unknown", limit)
		} else {
			age := c.now.Sub(db.Built)
			c.add(age <= limit, "advisory database is %s old (limit %s)", age.Round(time.Second), limit)
		}
	}
	if v.DenyAtOrAbove == "" {
		return
	}
	limit, _ := parseLevel(v.DenyAtOrAbove)
	var bad []string
	for _, f := range c.ev.Findings {
		if f.Suppressed {
			continue
		}
		lvl, ok := parseLevel(f.Severity)
		if !ok {
			bad = append(bad, fmt.Sprintf("%s (unrecognised severity %q)", f.ID, f.Severity))
			continue
		}
		if lvl < limit {
			continue
		}
		if v.IgnoreUnfixed && f.FixStatus != "fixed" {
			continue
		}
		bad = append(bad, fmt.Sprintf("%s (%s)", f.ID, levelNames[lvl]))
	}
	unfixed := ""
	if v.IgnoreUnfixed {
		unfixed = ", unfixed ignored"
	}
	if len(bad) == 0 {
		c.add(true, "no findings at or above %s%s", v.DenyAtOrAbove, unfixed)
		return
	}
	shown := bad
	if len(shown) > 5 {
		shown = append(shown[:5:5], fmt.Sprintf("and %d more", len(bad)-5))
	}
	c.add(false, "%d findings at or above %s%s: %s", len(bad), v.DenyAtOrAbove, unfixed, strings.Join(shown, ", "))
}

var levelNames = []string{"unknown", "none", "low", "medium", "high", "critical"}

// parseLevel reads a severity name as the vuln package writes it (plus its aliases).
func parseLevel(s string) (int, bool) {
	switch strings.ToLower(s) {
	case "unknown", "":
		return 0, true
	case "none", "negligible", "unimportant":
		return 1, true
	case "low":
		return 2, true
	case "medium", "moderate":
		return 3, true
	case "high", "important":
		return 4, true
	case "critical":
		return 5, true
	}
	return 0, false
}

// isRoot reports whether an image-config user runs as root: an empty user (the runtime's
// default is root), "root" or uid 0, with or without a group.
func isRoot(user string) bool {
	u, _, _ := strings.Cut(strings.TrimSpace(user), ":")
	return u == "" || u == "root" || strings.Trim(u, "0") == ""
}
