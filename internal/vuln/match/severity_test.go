package match

import (
	"testing"

	"github.com/moatsec/moat/internal/vuln"
)

func TestScoreVector(t *testing.T) {
	tests := []struct {
		vector  string
		version int
		score   float64
		level   vuln.Level
		invalid bool
	}{
		{vector: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", version: cvssV31, score: 9.8, level: vuln.Critical},
		{vector: "CVSS:3.0/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N", version: cvssV30, score: 6.1, level: vuln.Medium},
		{vector: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N", version: cvssV31, score: 0, level: vuln.None},
		{vector: "CVSS:3.1/AV:L/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N", version: cvssV31, score: 1.8, level: vuln.Low},
		{vector: "CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:H/A:H", version: cvssV31, score: 8.1, level: vuln.High},
		{vector: "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N", version: cvssV40, score: 9.3, level: vuln.Critical},
		{vector: "AV:N/AC:L/Au:N/C:P/I:P/A:P", version: cvssV2, score: 7.5, level: vuln.High},
		{vector: "(AV:N/AC:M/Au:N/C:N/I:P/A:N)", version: cvssV2, score: 4.3, level: vuln.Medium},
		{vector: "CVSS:3.1/AV:N", invalid: true},
		{vector: "CVSS:4.0/AV:X/garbage", invalid: true},
		{vector: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/A:H", invalid: true},
		{vector: "HIGH", invalid: true},
		{vector: "", invalid: true},
		{vector: "CVSS:9.9/AV:N", invalid: true},
	}
	for _, tc := range tests {
		r := scoreVector(tc.vector)
		if tc.invalid {
			if r.err == nil {
				t.Errorf("%q: scored %+v, want an error", tc.vector, r)
			}
			continue
		}
		if r.err != nil || r.version != tc.version || r.score != tc.score || r.level != tc.level {
			t.Errorf("%q: %+v, want version %d score %v level %s", tc.vector, r, tc.version, tc.score, tc.level)
		}
	}
}

func TestSeverityPrecedence(t *testing.T) {
	cvss31 := vuln.Severity{Type: "CVSS_V3", Score: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"} // 9.8
	cvss30 := vuln.Severity{Type: "CVSS_V3", Score: "CVSS:3.0/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N"} // 6.1
	cvss2 := vuln.Severity{Type: "CVSS_V2", Score: "AV:N/AC:L/Au:N/C:P/I:P/A:P"}                    // 7.5
	low31 := vuln.Severity{Type: "CVSS_V3", Score: "CVSS:3.1/AV:L/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N"}  // 1.8
	tests := []struct {
		name     string
		distro   bool
		record   map[string][]vuln.Severity // by advisory ID
		affected map[string][]vuln.Severity
		level    vuln.Level
		score    float64
		source   string
	}{
		{name: "unknown stays unknown", level: vuln.Unknown},
		{name: "distro label over CVSS", distro: true,
			record:   map[string][]vuln.Severity{"DEBIAN-CVE-1": {cvss31}},
			affected: map[string][]vuln.Severity{"DEBIAN-CVE-1": {{Type: "Debian", Score: "low"}}},
			level:    vuln.Low, score: 9.8, source: "Debian urgency from DEBIAN-CVE-1"},
		{name: "distro label that rates nothing", distro: true,
			record:   map[string][]vuln.Severity{"DEBIAN-CVE-1": {cvss31}},
			affected: map[string][]vuln.Severity{"DEBIAN-CVE-1": {{Type: "Debian", Score: "not yet assigned"}}},
			level:    vuln.Critical, score: 9.8, source: "CVSS_V3 vector from DEBIAN-CVE-1"},
		{name: "language: CVSS over label",
			record: map[string][]vuln.Severity{"GHSA-1": {cvss30, {Type: "GHSA", Score: "CRITICAL"}}},
			level:  vuln.Medium, score: 6.1, source: "CVSS_V3 vector from GHSA-1"},
		{name: "v3.1 over v3.0 and v2, across advisories",
			record: map[string][]vuln.Severity{"GHSA-1": {cvss30}, "PYSEC-1": {cvss2, low31}},
			level:  vuln.Low, score: 1.8, source: "CVSS_V3 vector from PYSEC-1"},
		{name: "highest of one version",
			record: map[string][]vuln.Severity{"GHSA-1": {low31}, "PYSEC-1": {cvss31}},
			level:  vuln.Critical, score: 9.8, source: "CVSS_V3 vector from PYSEC-1"},
		{name: "v2 alone",
			record: map[string][]vuln.Severity{"PYSEC-1": {cvss2}},
			level:  vuln.High, score: 7.5, source: "CVSS_V2 vector from PYSEC-1"},
		{name: "label alone, GHSA spelling",
			record: map[string][]vuln.Severity{"GHSA-1": {{Type: "GHSA", Score: "MODERATE"}}},
			level:  vuln.Medium, source: "GHSA severity from GHSA-1"},
		{name: "highest distro label", distro: true,
			record: map[string][]vuln.Severity{"UBUNTU-CVE-1": {{Type: "Ubuntu", Score: "negligible"}}, "USN-1": {{Type: "Ubuntu", Score: "high"}}},
			level:  vuln.High, source: "Ubuntu severity from USN-1"},
		{name: "invalid vector ignored",
			record: map[string][]vuln.Severity{"GHSA-1": {{Type: "CVSS_V4", Score: "CVSS:4.0/nonsense"}, {Type: "GHSA", Score: "LOW"}}},
			level:  vuln.Low, source: "GHSA severity from GHSA-1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var group []*hit
			for _, id := range []string{"DEBIAN-CVE-1", "GHSA-1", "PYSEC-1", "UBUNTU-CVE-1", "USN-1"} {
				rec, aff := tc.record[id], tc.affected[id]
				if rec == nil && aff == nil {
					continue
				}
				h := &hit{adv: &vuln.Advisory{ID: id, Severity: rec}, entries: []*vuln.Affected{{Severity: aff}}}
				group = append(group, h)
			}
			m := newMatcher(t.Context(), vuln.NewMemory())
			level, score, source, _ := m.severity(tc.distro, group)
			if level != tc.level || score != tc.score || source != tc.source {
				t.Errorf("got %s %v %q, want %s %v %q", level, score, source, tc.level, tc.score, tc.source)
			}
		})
	}
}

func FuzzScoreVector(f *testing.F) {
	for _, s := range []string{
		"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
		"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N",
		"AV:N/AC:L/Au:N/C:P/I:P/A:P", "CVSS:3.0/", "(AV:", "CVSS:4.0/AV:N/E:X",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r := scoreVector(s)
		if r.err == nil && (r.score < 0 || r.score > 10 || r.level == vuln.Unknown) {
			t.Errorf("%q: %+v", s, r)
		}
	})
}
