package match

import (
	"errors"
	"fmt"
	"strings"

	gocvss20 "github.com/pandatix/go-cvss/20"
	gocvss30 "github.com/pandatix/go-cvss/30"
	gocvss31 "github.com/pandatix/go-cvss/31"
	gocvss40 "github.com/pandatix/go-cvss/40"

	"github.com/moatsec/moat/internal/vuln"
)

// CVSS versions, in order of preference.
const (
	cvssNone = iota
	cvssV2
	cvssV30
	cvssV31
	cvssV40
)

type cvssResult struct {
	version int
	score   float64
	level   vuln.Level
	err     error
}

// statement is one severity statement and the advisory it comes from.
type statement struct {
	s    vuln.Severity
	from string
}

func isCVSS(typ string) bool { return strings.HasPrefix(typ, "CVSS_") }

// severity applies the precedence rule of the package documentation to a group of advisories.
func (m *matcher) severity(distro bool, group []*hit) (vuln.Level, float64, string, []vuln.Severity) {
	var stmts []statement
	var all []vuln.Severity
	add := func(s vuln.Severity, from string) {
		stmts = append(stmts, statement{s, from})
		for _, have := range all {
			if have == s {
				return
			}
		}
		all = append(all, s)
	}
	for _, h := range group {
		for _, s := range h.adv.Severity {
			add(s, h.adv.ID)
		}
		for _, af := range h.entries {
			for _, s := range af.Severity {
				add(s, h.adv.ID)
			}
		}
	}

	// CVSS: the newest version, then the highest score.
	var best cvssResult
	var bestFrom statement
	for _, st := range stmts {
		if !isCVSS(st.s.Type) {
			continue
		}
		r := m.cvss(st.s.Score)
		if r.err != nil {
			m.warn(Warning{Kind: KindSeverity, Advisories: []string{st.from},
				Message: fmt.Sprintf("%s: %s %q ignored: %v", st.from, st.s.Type, st.s.Score, r.err)},
				"cvss\x00"+st.from+"\x00"+st.s.Score)
			continue
		}
		if r.version > best.version || (r.version == best.version && r.score > best.score) {
			best, bestFrom = r, st
		}
	}

	// Qualitative labels: the highest.
	label, labelFrom := vuln.Unknown, statement{}
	for _, st := range stmts {
		if isCVSS(st.s.Type) {
			continue
		}
		l, err := vuln.ParseLevel(strings.TrimRight(strings.TrimSpace(st.s.Score), "*"))
		if err != nil || l == vuln.Unknown {
			continue // "not yet assigned", "untriaged": no rating
		}
		if l > label {
			label, labelFrom = l, st
		}
	}

	score := 0.0
	if best.version != cvssNone {
		score = best.score
	}
	switch {
	case distro && label != vuln.Unknown:
		return label, score, labelSource(labelFrom), all
	case best.version != cvssNone:
		return best.level, score, fmt.Sprintf("%s vector from %s", bestFrom.s.Type, bestFrom.from), all
	case label != vuln.Unknown:
		return label, score, labelSource(labelFrom), all
	}
	return vuln.Unknown, 0, "", all
}

func labelSource(st statement) string {
	switch st.s.Type {
	case "Debian":
		return "Debian urgency from " + st.from
	case "UNSPECIFIED", "":
		return "severity label from " + st.from
	}
	return st.s.Type + " severity from " + st.from
}

// cvss scores a vector once per match.
func (m *matcher) cvss(vector string) cvssResult {
	if r, ok := m.scores[vector]; ok {
		return r
	}
	r := scoreVector(vector)
	m.scores[vector] = r
	return r
}

// scoreVector computes the base score of a CVSS vector; the version is read from the vector
// itself, whatever the statement's type says. It never panics.
func scoreVector(vector string) (r cvssResult) {
	defer func() {
		if p := recover(); p != nil {
			r = cvssResult{err: fmt.Errorf("the CVSS library failed on it: %v", p)}
		}
	}()
	v := strings.TrimSpace(vector)
	switch {
	case strings.HasPrefix(v, "CVSS:4.0/"):
		c, err := gocvss40.ParseVector(v)
		if err != nil {
			return cvssResult{err: err}
		}
		r = cvssResult{version: cvssV40, score: c.Score()}
	case strings.HasPrefix(v, "CVSS:3.1/"):
		c, err := gocvss31.ParseVector(v)
		if err != nil {
			return cvssResult{err: err}
		}
		r = cvssResult{version: cvssV31, score: c.BaseScore()}
	case strings.HasPrefix(v, "CVSS:3.0/"):
		c, err := gocvss30.ParseVector(v)
		if err != nil {
			return cvssResult{err: err}
		}
		r = cvssResult{version: cvssV30, score: c.BaseScore()}
	case strings.HasPrefix(strings.TrimPrefix(v, "("), "AV:"):
		c, err := gocvss20.ParseVector(strings.TrimSuffix(strings.TrimPrefix(v, "("), ")"))
		if err != nil {
			return cvssResult{err: err}
		}
		r = cvssResult{version: cvssV2, score: c.BaseScore()}
	default:
		return cvssResult{err: errors.New("not a CVSS v2, v3.0, v3.1 or v4.0 vector")}
	}
	if r.score < 0 || r.score > 10 {
		return cvssResult{err: fmt.Errorf("score %.1f is out of range", r.score)}
	}
	r.level = cvssLevel(r.version, r.score)
	return r
}

// cvssLevel maps a base score to a level: CVSS v3 and v4 qualitative bands, NVD's for v2.
func cvssLevel(ver int, score float64) vuln.Level {
	if ver == cvssV2 {
		switch {
		case score < 4:
			return vuln.Low
		case score < 7:
			return vuln.Medium
		}
		return vuln.High
	}
	switch {
	case score == 0:
		return vuln.None
	case score < 4:
		return vuln.Low
	case score < 7:
		return vuln.Medium
	case score < 9:
		return vuln.High
	}
	return vuln.Critical
}
