package report

import (
	"time"

	"github.com/moatsec/moat/internal/sbom"
	"github.com/moatsec/moat/internal/vuln"
	"github.com/moatsec/moat/internal/vuln/suppress"
)

// testScan is a hand-built scan report of testInventory's image that uses every field: a
// Debian finding the distribution will not fix, a fixed Debian finding, a Go finding with
// aliases, a finding of unknown severity without a fix, a finding suppressed by a VEX
// statement and one by an ignore entry, an expired ignore entry, warnings and database
// information. The findings are deliberately out of order.
func testScan() *ScanReport {
	inv := testInventory()
	layers := inv.Image.Layers
	status := []sbom.Location{{Path: "/var/lib/dpkg/status", LayerDigest: layers[1].DiffID}}
	deb := func(name, version, source, sourceVersion string) vuln.PackageRef {
		return vuln.PackageRef{
			Name: name, Version: version, Type: sbom.TypeDeb,
			PURL:   "pkg:deb/debian/" + name + "@" + version + "?arch=amd64&distro=debian-12",
			Source: &sbom.Source{Name: source, Version: sourceVersion},
			Layer:  &layers[1], Locations: status,
		}
	}
	libssl := deb("libssl3", "3.0.11-1~deb12u2", "openssl", "3.0.11-1~deb12u2")
	zlib := deb("zlib1g", "1:1.2.13.dfsg-1", "zlib", "1:1.2.13.dfsg-1")
	xnet := vuln.PackageRef{
		Name: "golang.org/x/net", Version: "v0.17.0", Type: sbom.TypeGolang,
		PURL:      "pkg:golang/golang.org/x/net@v0.17.0",
		Layer:     &layers[2],
		Locations: []sbom.Location{{Path: "/app/bin/server", LayerDigest: layers[2].DiffID}},
	}
	lodash := vuln.PackageRef{
		Name: "lodash", Version: "4.17.20", Type: sbom.TypeNPM, PURL: "pkg:npm/lodash@4.17.20",
		Layer:     &layers[2],
		Locations: []sbom.Location{{Path: "/app/node_modules/lodash/package.json", LayerDigest: layers[2].DiffID}},
	}
	published := time.Date(2024, 1, 26, 9, 15, 0, 0, time.UTC)
	modified := time.Date(2024, 5, 2, 18, 0, 0, 0, time.UTC)
	expires := time.Date(2024, 9, 1, 0, 0, 0, 0, time.UTC)
	expired := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	failOn := vuln.High
	return &ScanReport{
		Tool:     inv.Tool,
		Created:  time.Date(2024, 6, 1, 12, 30, 0, 0, time.UTC),
		Image:    inv.Image,
		Distro:   inv.Distro,
		Warnings: []string{"app/bin/tool: Go binary without module information; its modules were not matched"},
		Database: DatabaseInfo{
			Built:   time.Date(2024, 6, 1, 6, 0, 0, 0, time.UTC),
			Sources: map[string]int{"osv:Debian": 41231, "osv:Go": 3120, "osv:npm": 15990},
		},
		Settings: ScanSettings{FailOn: &failOn},
		ExpiredIgnores: []suppress.IgnoreEntry{{
			ID: "CVE-2023-5678", Package: "libssl3", Reason: "DH parameters come from a trusted file",
			Expires: &expired, Source: ".moatignore.yaml", Line: 7,
		}},
		Findings: []vuln.Finding{
			{
				ID: "GO-2024-2687", Aliases: []string{"CVE-2023-45288", "GHSA-4v7x-pqxf-cx7m"},
				Advisories: []string{"GHSA-4v7x-pqxf-cx7m", "GO-2024-2687"},
				Package:    xnet, Ecosystem: "Go", Name: "golang.org/x/net",
				Summary:        "HTTP/2 CONTINUATION flood in net/http",
				Level:          vuln.High,
				Score:          7.5,
				SeveritySource: "CVSS_V3 from GHSA-4v7x-pqxf-cx7m",
				Severities:     []vuln.Severity{{Type: "CVSS_V3", Score: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"}, {Type: "GHSA", Score: "MODERATE"}},
				FixStatus:      vuln.Fixed,
				FixedVersions:  []string{"v0.23.0"},
				References: []vuln.Reference{
					{Type: "ADVISORY", URL: "https://pkg.go.dev/vuln/GO-2024-2687"},
					{Type: "FIX", URL: "https://go.dev/cl/576155"},
				},
				Published: time.Date(2024, 4, 3, 21, 0, 0, 0, time.UTC),
				Modified:  modified,
			},
			{
				ID: "TEMP-0841856-B18BAF", Advisories: []string{"DEBIAN-TEMP-0841856-B18BAF"},
				Package: deb("bash", "5.2.15-2+b2", "bash", "5.2.15-2"), Ecosystem: "Debian:12", Name: "bash",
				Summary:   "[Privilege escalation possible to other user than root]",
				Level:     vuln.Unknown,
				FixStatus: vuln.NotFixed,
			},
			{
				ID: "CVE-2024-0727", Advisories: []string{"DEBIAN-CVE-2024-0727"},
				Package: libssl, Ecosystem: "Debian:12", Name: "openssl",
				Summary:        "Processing a maliciously formatted PKCS12 file may lead OpenSSL to crash",
				Level:          vuln.Medium,
				Score:          5.5,
				SeveritySource: "CVSS_V3 from NVD",
				Severities:     []vuln.Severity{{Type: "CVSS_V3", Score: "CVSS:3.1/AV:L/AC:L/PR:N/UI:R/S:U/C:N/I:N/A:H"}, {Type: "Debian", Score: "low"}},
				FixStatus:      vuln.Fixed,
				FixedVersions:  []string{"3.0.13-1~deb12u1"},
				References:     []vuln.Reference{{Type: "ADVISORY", URL: "https://security-tracker.debian.org/tracker/CVE-2024-0727"}},
				Published:      published,
				Modified:       modified,
			},
			{
				ID: "CVE-2023-45853", Advisories: []string{"DEBIAN-CVE-2023-45853"},
				Package: zlib, Ecosystem: "Debian:12", Name: "zlib",
				Summary:        "integer overflow and heap-based buffer overflow in minizip's zipOpenNewFileInZip4_64",
				Level:          vuln.Critical,
				Score:          9.8,
				SeveritySource: "CVSS_V3 from NVD",
				Severities:     []vuln.Severity{{Type: "CVSS_V3", Score: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}},
				FixStatus:      vuln.WillNotFix,
				References:     []vuln.Reference{{Type: "WEB", URL: "https://security-tracker.debian.org/tracker/CVE-2023-45853"}},
			},
			{
				ID: "CVE-2024-2511", Advisories: []string{"DEBIAN-CVE-2024-2511"},
				Package: libssl, Ecosystem: "Debian:12", Name: "openssl",
				Summary:        "Unbounded memory growth with session handling in TLSv1.3",
				Level:          vuln.Low,
				Score:          3.7,
				SeveritySource: "CVSS_V3 from NVD",
				Severities:     []vuln.Severity{{Type: "CVSS_V3", Score: "CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:N/I:N/A:L"}},
				FixStatus:      vuln.Fixed,
				FixedVersions:  []string{"3.0.13-1~deb12u2"},
				Suppressed: &vuln.Suppression{
					Kind: suppress.KindVEX, Source: "vex/app.openvex.json",
					Reason: "vex: not_affected (vulnerable_code_not_in_execute_path): the image never resumes TLS 1.3 sessions",
				},
			},
			{
				ID: "CVE-2021-23337", Aliases: []string{"GHSA-35jh-r3h4-6jhm"}, Advisories: []string{"GHSA-35jh-r3h4-6jhm"},
				Package: lodash, Ecosystem: "npm", Name: "lodash",
				Summary:        "Command Injection in lodash",
				Level:          vuln.High,
				Score:          7.2,
				SeveritySource: "CVSS_V3 from GHSA-35jh-r3h4-6jhm",
				Severities:     []vuln.Severity{{Type: "CVSS_V3", Score: "CVSS:3.1/AV:N/AC:L/PR:H/UI:N/S:U/C:H/I:H/A:H"}},
				FixStatus:      vuln.Fixed,
				FixedVersions:  []string{"4.17.21"},
				Suppressed: &vuln.Suppression{
					Kind: suppress.KindIgnore, Source: ".moatignore.yaml", Expires: &expires,
					Reason: "template() is never called with user input",
				},
			},
		},
	}
}

// emptyScan is a scan of an image without a distribution that found nothing.
func emptyScan() *ScanReport {
	inv := emptyInventory()
	return &ScanReport{Tool: inv.Tool, Created: inv.Created, Image: inv.Image}
}

// hostileScan has findings whose text tries to break terminals, Markdown and JSON.
func hostileScan() *ScanReport {
	r := testScan()
	f := &r.Findings[0]
	f.ID = "GO-2024-\x1b[2J"
	f.Summary = "line one\nline two | <script>alert(1)</script> \u202eevil"
	f.Package.Name = "example.com/\x1b]8;;http://evil/\x07x"
	f.Package.Locations = []sbom.Location{{Path: "/app/bin/a b:c%d"}}
	f.References = append(f.References, vuln.Reference{Type: "WEB", URL: "javascript:alert(1)"})
	r.Findings[1].Package.Locations = nil
	r.Warnings = append(r.Warnings, "\x1b[31mred\x1b[0m")
	return r
}
