package report

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/moatsec/moat/internal/vuln"
)

// sarifSchemaURI is the $schema of SARIF logs, the URL GitHub's code-scanning documentation
// uses for SARIF 2.1.0.
const sarifSchemaURI = "https://json.schemastore.org/sarif-2.1.0.json"

// sarifInformationURI is where moat's documentation is, the driver's informationUri.
const sarifInformationURI = "https://github.com/moatsec/moat"

// sarifFingerprint is the key of moat's partial fingerprint, which identifies a result across
// scans: the vulnerability, the package and the file declaring it.
const sarifFingerprint = "moatFinding/v1"

// maxSARIFText bounds the descriptions in rules; GitHub rejects a shortDescription longer
// than 1024 characters.
const maxSARIFText = 1000

// SARIF 2.1.0 objects, with the properties moat writes. Field order is the order in the
// output.
type (
	sarifLog struct {
		Schema  string     `json:"$schema"`
		Version string     `json:"version"`
		Runs    []sarifRun `json:"runs"`
	}
	sarifRun struct {
		Tool        sarifTool         `json:"tool"`
		Invocations []sarifInvocation `json:"invocations"`
		Results     []sarifResult     `json:"results"`
		Properties  sarifRunProps     `json:"properties"`
	}
	sarifTool struct {
		Driver sarifDriver `json:"driver"`
	}
	sarifDriver struct {
		Name           string      `json:"name"`
		Version        string      `json:"version,omitempty"`
		InformationURI string      `json:"informationUri"`
		Rules          []sarifRule `json:"rules"`
	}
	sarifRule struct {
		ID                   string             `json:"id"`
		Name                 string             `json:"name"`
		ShortDescription     sarifText          `json:"shortDescription"`
		FullDescription      sarifText          `json:"fullDescription"`
		DefaultConfiguration sarifConfiguration `json:"defaultConfiguration"`
		HelpURI              string             `json:"helpUri,omitempty"`
		Help                 sarifMessage       `json:"help"`
		Properties           sarifRuleProps     `json:"properties"`
	}
	sarifText struct {
		Text string `json:"text"`
	}
	sarifMessage struct {
		Text     string `json:"text"`
		Markdown string `json:"markdown,omitempty"`
	}
	sarifConfiguration struct {
		Level string `json:"level"`
	}
	sarifRuleProps struct {
		Precision        string   `json:"precision"`
		SecuritySeverity string   `json:"security-severity,omitempty"`
		Tags             []string `json:"tags"`
	}
	sarifInvocation struct {
		ExecutionSuccessful        bool                `json:"executionSuccessful"`
		EndTimeUTC                 string              `json:"endTimeUtc,omitempty"`
		ToolExecutionNotifications []sarifNotification `json:"toolExecutionNotifications,omitempty"`
	}
	sarifNotification struct {
		Level   string    `json:"level"`
		Message sarifText `json:"message"`
	}
	sarifResult struct {
		RuleID              string             `json:"ruleId"`
		RuleIndex           int                `json:"ruleIndex"`
		Level               string             `json:"level"`
		Message             sarifText          `json:"message"`
		Locations           []sarifLocation    `json:"locations"`
		PartialFingerprints map[string]string  `json:"partialFingerprints"`
		Suppressions        []sarifSuppression `json:"suppressions,omitempty"`
		Properties          sarifResultProps   `json:"properties"`
	}
	sarifLocation struct {
		PhysicalLocation sarifPhysicalLocation `json:"physicalLocation"`
	}
	sarifPhysicalLocation struct {
		ArtifactLocation sarifArtifactLocation `json:"artifactLocation"`
		Region           sarifRegion           `json:"region"`
	}
	sarifArtifactLocation struct {
		URI string `json:"uri"`
	}
	sarifRegion struct {
		StartLine int `json:"startLine"`
	}
	// sarifSuppression leaves out the review status: the SARIF 2.1.0 specification calls it
	// status, but the schema published with the standard (before Errata 01) calls it state,
	// and each rejects the other.
	sarifSuppression struct {
		Kind          string `json:"kind"`
		Justification string `json:"justification,omitempty"`
	}
	sarifResultProps struct {
		Package          string   `json:"package"`
		InstalledVersion string   `json:"installedVersion"`
		PackageType      string   `json:"packageType"`
		PURL             string   `json:"purl,omitempty"`
		FixedVersions    []string `json:"fixedVersions,omitempty"`
		FixStatus        string   `json:"fixStatus,omitempty"`
		Severity         string   `json:"severity"`
		Aliases          []string `json:"aliases,omitempty"`
	}
	sarifRunProps struct {
		Image       string `json:"image"`
		ImageDigest string `json:"imageDigest,omitempty"`
		Distro      string `json:"distro,omitempty"`
	}
)

// sarifLevel maps a severity to a SARIF level: critical and high are errors, medium is a
// warning, and low, none and unknown are notes.
func sarifLevel(l vuln.Level) string {
	switch l {
	case vuln.Critical, vuln.High:
		return "error"
	case vuln.Medium:
		return "warning"
	}
	return "note"
}

// levelScore is the score written as security-severity for a level when the finding has no
// CVSS score in the level's band: the middle of GitHub's bands (critical from 9.0, high from
// 7.0, medium from 4.0, low from 0.1).
var levelScore = map[vuln.Level]float64{vuln.Critical: 9.5, vuln.High: 8.0, vuln.Medium: 5.5, vuln.Low: 2.0, vuln.None: 0}

// scoreLevel is the level of a CVSS score, by the CVSS v3 qualitative scale.
func scoreLevel(s float64) vuln.Level {
	switch {
	case s >= 9.0:
		return vuln.Critical
	case s >= 7.0:
		return vuln.High
	case s >= 4.0:
		return vuln.Medium
	case s > 0:
		return vuln.Low
	}
	return vuln.None
}

// securitySeverity is GitHub's security-severity for a finding: its CVSS score when that
// agrees with its level, else the level's score, so that GitHub shows moat's severity. Unknown
// severity has none.
func securitySeverity(f *vuln.Finding) (float64, bool) {
	if f.Level == vuln.Unknown {
		return 0, false
	}
	if f.Score > 0 && scoreLevel(f.Score) == f.Level {
		return f.Score, true
	}
	return levelScore[f.Level], true
}

// writeScanSARIF writes the report as a SARIF 2.1.0 log for code scanning: one rule per
// vulnerability, one result per finding, located at the file that declares the package.
// Suppressed findings are results with an accepted external suppression.
func writeScanSARIF(w io.Writer, r *ScanReport) error {
	findings := sortedFindings(r.Findings)
	var rules []sarifRule
	ruleIndex := map[string]int{}
	byRule := map[string][]*vuln.Finding{}
	for i := range findings {
		f := &findings[i]
		if _, ok := ruleIndex[f.ID]; !ok {
			ruleIndex[f.ID] = len(rules)
			rules = append(rules, sarifRule{ID: f.ID})
		}
		byRule[f.ID] = append(byRule[f.ID], f)
	}
	for i := range rules {
		rules[i] = newSARIFRule(byRule[rules[i].ID])
	}

	results := make([]sarifResult, 0, len(findings))
	for i := range findings {
		f := &findings[i]
		res := sarifResult{
			RuleID:    f.ID,
			RuleIndex: ruleIndex[f.ID],
			Level:     sarifLevel(f.Level),
			Message:   sarifText{Text: findingMessage(f)},
			Locations: []sarifLocation{{PhysicalLocation: sarifPhysicalLocation{
				ArtifactLocation: sarifArtifactLocation{URI: artifactURI(f.Package, r.Image.Name)},
				Region:           sarifRegion{StartLine: 1},
			}}},
			PartialFingerprints: map[string]string{sarifFingerprint: findingFingerprint(f)},
			Properties: sarifResultProps{
				Package:          f.Package.Name,
				InstalledVersion: f.Package.Version,
				PackageType:      string(f.Package.Type),
				PURL:             f.Package.PURL,
				FixedVersions:    f.FixedVersions,
				FixStatus:        string(f.FixStatus),
				Severity:         f.Level.String(),
				Aliases:          f.Aliases,
			},
		}
		if s := f.Suppressed; s != nil {
			res.Suppressions = []sarifSuppression{{Kind: "external", Justification: suppressionText(s)}}
		}
		results = append(results, res)
	}

	inv := sarifInvocation{ExecutionSuccessful: true}
	if !r.Created.IsZero() {
		inv.EndTimeUTC = r.Created.UTC().Format(time.RFC3339)
	}
	for _, wn := range r.Warnings {
		inv.ToolExecutionNotifications = append(inv.ToolExecutionNotifications,
			sarifNotification{Level: "warning", Message: sarifText{Text: wn}})
	}
	for _, e := range r.ExpiredIgnores {
		inv.ToolExecutionNotifications = append(inv.ToolExecutionNotifications,
			sarifNotification{Level: "warning", Message: sarifText{Text: "ignore entry expired and no longer applied: " + expiredText(e)}})
	}

	props := sarifRunProps{Image: cmp.Or(r.Image.Name, "unnamed"), ImageDigest: imageVersion(r.Image)}
	if r.Distro != nil {
		props.Distro = distroName(r.Distro)
	}
	log := sarifLog{
		Schema:  sarifSchemaURI,
		Version: "2.1.0",
		Runs: []sarifRun{{
			Tool: sarifTool{Driver: sarifDriver{
				Name:           cmp.Or(r.Tool.Name, "moat"),
				Version:        r.Tool.Version,
				InformationURI: sarifInformationURI,
				Rules:          rules,
			}},
			Invocations: []sarifInvocation{inv},
			Results:     results,
			Properties:  props,
		}},
	}
	if log.Runs[0].Tool.Driver.Rules == nil {
		log.Runs[0].Tool.Driver.Rules = []sarifRule{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(&log)
}

// newSARIFRule describes one vulnerability from its findings (all with the same ID, most
// severe first).
func newSARIFRule(fs []*vuln.Finding) sarifRule {
	first := fs[0]
	summary := ""
	for _, f := range fs {
		if summary = strings.TrimSpace(f.Summary); summary != "" {
			break
		}
	}
	var names []string
	for _, f := range fs {
		if !slices.Contains(names, f.Package.Name) {
			names = append(names, f.Package.Name)
		}
	}
	short := cmp.Or(summary, first.ID+" in "+strings.Join(names, ", "))
	full := short
	if len(first.Aliases) > 0 {
		full += " (also known as " + strings.Join(first.Aliases, ", ") + ")"
	}
	rule := sarifRule{
		ID:                   first.ID,
		Name:                 ruleName(first),
		ShortDescription:     sarifText{Text: cutRunes(short, maxSARIFText)},
		FullDescription:      sarifText{Text: cutRunes(full, maxSARIFText)},
		DefaultConfiguration: sarifConfiguration{Level: sarifLevel(first.Level)},
		HelpURI:              helpURI(first),
		Help:                 ruleHelp(fs, summary),
		Properties: sarifRuleProps{
			Precision: "very-high",
			Tags:      []string{"security", "vulnerability", first.Level.String()},
		},
	}
	if score, ok := securitySeverity(first); ok {
		rule.Properties.SecuritySeverity = strconv.FormatFloat(score, 'f', 1, 64)
	}
	for _, f := range fs {
		if t := string(f.Package.Type); t != "" && !slices.Contains(rule.Properties.Tags, t) {
			rule.Properties.Tags = append(rule.Properties.Tags, t)
		}
	}
	return rule
}

// ruleName is the rule's name, which says what kind of package is vulnerable.
func ruleName(f *vuln.Finding) string {
	if f.Package.Type.IsOS() {
		return "OSPackageVulnerability"
	}
	return "LanguagePackageVulnerability"
}

// ruleHelp is the help of a rule, as text and Markdown: the vulnerability, the affected
// packages with their fixes, and the references.
func ruleHelp(fs []*vuln.Finding, summary string) sarifMessage {
	first := fs[0]
	var text, md strings.Builder
	fmt.Fprintf(&text, "Vulnerability %s\nSeverity: %s\n", first.ID, first.Level)
	fmt.Fprintf(&md, "**Vulnerability %s**\n\n", mdEscape(first.ID))
	if summary != "" {
		fmt.Fprintf(&text, "%s\n", summary)
		fmt.Fprintf(&md, "%s\n\n", mdEscape(summary))
	}
	fmt.Fprintf(&md, "| Severity | Package | Installed | Fixed |\n| --- | --- | --- | --- |\n")
	for _, f := range fs {
		fix := cmp.Or(fixText(f), "unknown")
		fmt.Fprintf(&text, "Package: %s %s, fixed: %s\n", f.Package.Name, f.Package.Version, fix)
		fmt.Fprintf(&md, "| %s | %s | %s | %s |\n", f.Level, mdEscape(f.Package.Name), mdEscape(f.Package.Version), mdEscape(fix))
	}
	if len(first.Aliases) > 0 {
		fmt.Fprintf(&text, "Aliases: %s\n", strings.Join(first.Aliases, ", "))
		fmt.Fprintf(&md, "\nAliases: %s\n", mdEscape(strings.Join(first.Aliases, ", ")))
	}
	var urls []string
	for _, ref := range first.References {
		if validURL(ref.URL) && !strings.ContainsAny(ref.URL, "<> ") {
			urls = append(urls, ref.URL)
		}
	}
	if len(urls) > 0 {
		text.WriteString("References:\n")
		md.WriteString("\nReferences:\n")
		for _, u := range urls {
			fmt.Fprintf(&text, "- %s\n", u)
			fmt.Fprintf(&md, "- <%s>\n", u)
		}
	}
	return sarifMessage{Text: text.String(), Markdown: md.String()}
}

// mdEscape escapes the characters with which text could format itself, make links or HTML,
// or break a table row in Markdown.
func mdEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune("\\`*_[]<>|~", r) {
			b.WriteByte('\\')
		}
		if r == '\n' || r == '\r' {
			r = ' '
		}
		b.WriteRune(r)
	}
	return b.String()
}

// helpURI is the page that best describes a finding's vulnerability: its first advisory
// reference, else its first reference, else OSV's page for it.
func helpURI(f *vuln.Finding) string {
	for _, ref := range f.References {
		if ref.Type == "ADVISORY" && validURL(ref.URL) {
			return ref.URL
		}
	}
	for _, ref := range f.References {
		if validURL(ref.URL) {
			return ref.URL
		}
	}
	return "https://osv.dev/vulnerability/" + url.PathEscape(f.ID)
}

// validURL reports whether s is an absolute http(s) URL, which is what SARIF's uri format
// and code-scanning services accept.
func validURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != ""
}

// findingMessage says what was found, in one sentence.
func findingMessage(f *vuln.Finding) string {
	msg := fmt.Sprintf("Package %s %s is affected by %s (severity %s)", f.Package.Name, f.Package.Version, f.ID, f.Level)
	switch {
	case len(f.FixedVersions) > 0:
		msg += "; fixed in " + strings.Join(f.FixedVersions, ", ")
	case f.FixStatus == vuln.WillNotFix:
		msg += "; the maintainers will not fix it"
	case f.FixStatus == vuln.NotFixed:
		msg += "; no fix is available"
	default:
		msg += "; no fixed version is known"
	}
	if s := strings.TrimSpace(f.Summary); s != "" {
		msg += ". " + strings.Join(strings.Fields(s), " ")
	}
	if !strings.HasSuffix(msg, ".") {
		msg += "."
	}
	return msg
}

// artifactURI is the relative URI of the file that declares a package: its path in the image
// without the leading slash, percent-encoded where needed. Code scanning needs a location for
// every result, so a package without a file is placed at the image's name.
func artifactURI(p vuln.PackageRef, image string) string {
	path := strings.TrimLeft(refPath(p), "/")
	if path == "" {
		path = cmp.Or(image, "image")
	}
	if !utf8.ValidString(path) {
		path = strings.ToValidUTF8(path, "\uFFFD")
	}
	// url.URL writes "./" before a first segment with a colon, so that it is not read as a
	// scheme.
	return (&url.URL{Path: path}).String()
}

// findingFingerprint identifies a finding across scans, independently of its severity or
// fix, which change as advisories are updated.
func findingFingerprint(f *vuln.Finding) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\x00%s", f.ID, f.Package.Type, f.Package.Name, f.Package.Version, refPath(f.Package))
	return hex.EncodeToString(h.Sum(nil))[:32]
}
