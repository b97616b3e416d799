package match

import (
	"cmp"
	"slices"
	"strconv"
	"strings"

	"github.com/moatsec/moat/internal/vuln"
	"github.com/moatsec/moat/internal/vuln/version"
)

// identifiers returns the IDs under which an advisory is merged with others: its ID, its
// aliases, and its upstream ID when it names exactly one.
func identifiers(a *vuln.Advisory) []string {
	ids := make([]string, 0, 1+len(a.Aliases)+1)
	ids = append(ids, a.ID)
	ids = append(ids, a.Aliases...)
	if len(a.Upstream) == 1 {
		ids = append(ids, a.Upstream[0])
	}
	return ids
}

// merge turns the advisories that matched one target into findings, one per group of
// advisories linked by shared identifiers.
func (m *matcher) merge(t *target, hits []*hit) []vuln.Finding {
	switch len(hits) {
	case 0:
		return nil
	case 1:
		return []vuln.Finding{m.finding(t, hits)}
	}
	parent := make([]int, len(hits))
	for i := range parent {
		parent[i] = i
	}
	find := func(i int) int {
		for parent[i] != i {
			parent[i] = parent[parent[i]]
			i = parent[i]
		}
		return i
	}
	owner := make(map[string]int, 3*len(hits))
	for i, h := range hits {
		for _, id := range identifiers(h.adv) {
			if id == "" {
				continue
			}
			if j, ok := owner[id]; ok {
				a, b := find(i), find(j)
				if a != b {
					parent[max(a, b)] = min(a, b)
				}
			} else {
				owner[id] = i
			}
		}
	}
	// A root is the smallest index of its group, so groups come out in the order of their
	// first advisory.
	groups := make([][]*hit, len(hits))
	for i, h := range hits {
		r := find(i)
		groups[r] = append(groups[r], h)
	}
	out := make([]vuln.Finding, 0, len(hits))
	for _, g := range groups {
		if len(g) > 0 {
			out = append(out, m.finding(t, g))
		}
	}
	return out
}

// finding builds the finding of one group of advisories.
func (m *matcher) finding(t *target, group []*hit) vuln.Finding {
	first := group[0]
	slices.SortFunc(group, func(a, b *hit) int { return cmp.Compare(a.adv.ID, b.adv.ID) })

	var ids []string
	for _, h := range group {
		for _, id := range identifiers(h.adv) {
			if id != "" && !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
		}
	}
	primary := PrimaryID(ids)
	f := vuln.Finding{ID: primary, Ecosystem: first.eco, Name: first.name}
	f.Aliases = make([]string, 0, len(ids)-1)
	for _, id := range ids {
		if id != primary {
			f.Aliases = append(f.Aliases, id)
		}
	}
	slices.Sort(f.Aliases)
	if len(f.Aliases) == 0 {
		f.Aliases = nil
	}
	f.Advisories = make([]string, 0, len(group))
	for _, h := range group {
		f.Advisories = append(f.Advisories, h.adv.ID)
	}

	f.Summary = summary(primary, group)
	f.Level, f.Score, f.SeveritySource, f.Severities = m.severity(t.distro, group)

	var fixed []version.Version
	willNotFix, notFixed := false, false
	for _, h := range group {
		fixed = append(fixed, h.fixed...)
		notFixed = notFixed || h.ranged
		for _, af := range h.entries {
			switch af.Status {
			case vuln.WillNotFix:
				willNotFix = true
			case vuln.NotFixed:
				notFixed = true
			}
		}
	}
	slices.SortFunc(fixed, func(a, b version.Version) int {
		return cmp.Or(a.Compare(b), cmp.Compare(a.String(), b.String()))
	})
	for _, v := range fixed {
		if !slices.Contains(f.FixedVersions, v.String()) {
			f.FixedVersions = append(f.FixedVersions, v.String())
		}
	}
	switch {
	case len(f.FixedVersions) > 0:
		f.FixStatus = vuln.Fixed
	case willNotFix:
		f.FixStatus = vuln.WillNotFix
	case notFixed:
		f.FixStatus = vuln.NotFixed
	default:
		f.FixStatus = vuln.FixUnknown
	}

	if len(group) == 1 {
		f.References = group[0].adv.References // withPackage copies it
	}
	for _, h := range group {
		a := h.adv
		for _, r := range a.References {
			if len(group) > 1 && !slices.ContainsFunc(f.References, func(have vuln.Reference) bool { return have.URL == r.URL }) {
				f.References = append(f.References, r)
			}
		}
		if !a.Published.IsZero() && (f.Published.IsZero() || a.Published.Before(f.Published)) {
			f.Published = a.Published
		}
		if a.Modified.After(f.Modified) {
			f.Modified = a.Modified
		}
	}
	return f
}

// maxSummary bounds a summary taken from an advisory's details, in runes.
const maxSummary = 200

// summary is the summary of the advisory whose ID is the primary one, else the first (by ID)
// that has one, else the first line of the first details.
func summary(primary string, group []*hit) string {
	for _, h := range group {
		if h.adv.ID == primary && h.adv.Summary != "" {
			return h.adv.Summary
		}
	}
	for _, h := range group {
		if h.adv.Summary != "" {
			return h.adv.Summary
		}
	}
	for _, h := range group {
		if d := strings.TrimSpace(h.adv.Details); d != "" {
			line, _, _ := strings.Cut(d, "\n")
			line = strings.TrimSpace(line)
			n := 0
			for i := range line {
				if n == maxSummary-1 {
					return line[:i] + "…"
				}
				n++
			}
			return line
		}
	}
	return ""
}

// PrimaryID chooses the identifier a finding is reported under, from all the identifiers of
// one vulnerability: the CVE ID if there is one (the oldest by year, then number, if several),
// else the GHSA ID (the lexicographically smallest if several), else the lexicographically
// smallest ID. It returns "" for no IDs.
func PrimaryID(ids []string) string {
	best, bestRank := "", 3
	var bestYear, bestNum int
	for _, id := range ids {
		if id == "" {
			continue
		}
		rank := 2
		year, num, isCVE := parseCVE(id)
		switch {
		case isCVE:
			rank = 0
		case strings.HasPrefix(id, "GHSA-"):
			rank = 1
		}
		better := false
		switch {
		case best == "" || rank < bestRank:
			better = true
		case rank > bestRank:
		case rank == 0:
			better = cmp.Or(cmp.Compare(year, bestYear), cmp.Compare(num, bestNum), cmp.Compare(id, best)) < 0
		default:
			better = id < best
		}
		if better {
			best, bestRank, bestYear, bestNum = id, rank, year, num
		}
	}
	return best
}

// parseCVE reads "CVE-YYYY-NNNN".
func parseCVE(id string) (year, num int, ok bool) {
	rest, ok := strings.CutPrefix(id, "CVE-")
	if !ok {
		return 0, 0, false
	}
	y, n, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, 0, false
	}
	year, err1 := strconv.Atoi(y)
	num, err2 := strconv.Atoi(n)
	if err1 != nil || err2 != nil || year < 0 || num < 0 {
		return 0, 0, false
	}
	return year, num, true
}
