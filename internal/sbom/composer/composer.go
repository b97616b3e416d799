// Package composer catalogs PHP packages installed by Composer: vendor/composer/installed.json
// (a bare array in Composer 1, an object with "packages" and "dev-package-names" in Composer 2)
// and the composer.lock files that applications ship outside vendor/.
package composer

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/moatsec/moat/internal/sbom"
)

// Cataloger reads Composer's installed.json and composer.lock.
type Cataloger struct{}

// New returns the Composer cataloger.
func New() *Cataloger { return &Cataloger{} }

// Name implements sbom.Cataloger.
func (*Cataloger) Name() string { return "composer" }

// Version implements sbom.Cataloger.
func (*Cataloger) Version() int { return 1 }

const (
	installedPath = "vendor/composer/installed.json"
	lockName      = "composer.lock"
)

// Limits on what an image can make Parse do.
const (
	// maxFile bounds installed.json and composer.lock; they carry every package's description
	// and autoload rules, a few MiB for large applications.
	maxFile = 32 << 20
	// maxEntries bounds the packages taken from one file.
	maxEntries = 100_000
	// maxToken bounds names, versions and licenses.
	maxToken = 512
	// maxLicenses bounds the licenses kept for one package.
	maxLicenses = 16
	// checkEvery is how many entries are read between checks of the context.
	checkEvery = 1024
)

// Match implements sbom.Cataloger.
func (*Cataloger) Match(fi sbom.FileInfo) bool {
	if fi.Path == installedPath || strings.HasSuffix(fi.Path, "/"+installedPath) {
		return true
	}
	// A composer.lock inside vendor/ belongs to a dependency's own development.
	return path.Base(fi.Path) == lockName && !strings.Contains("/"+fi.Path, "/vendor/")
}

// Parse implements sbom.Cataloger.
func (c *Cataloger) Parse(ctx context.Context, fi sbom.FileInfo, r sbom.Content) (*sbom.Result, error) {
	what := path.Base(fi.Path)
	data, err := sbom.ReadAll(r, maxFile)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", what, err)
	}
	var lists []list
	if what == lockName {
		lists, err = lockLists(data)
	} else {
		lists, err = installedLists(data)
	}
	if err != nil {
		return nil, fmt.Errorf("parsing %s: %w", what, err)
	}
	return collect(ctx, what, lists)
}

// list is an array of packages; dev says they are all development dependencies, devNames
// names the ones that are.
type list struct {
	entries  []json.RawMessage
	dev      bool
	devNames []string
}

// installedLists reads installed.json of Composer 1 (an array of packages) or Composer 2.
func installedLists(data []byte) ([]list, error) {
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) > 0 && trimmed[0] == '[' {
		var entries []json.RawMessage
		if err := json.Unmarshal(data, &entries); err != nil {
			return nil, err
		}
		return []list{{entries: entries}}, nil
	}
	var v2 struct {
		Packages        *[]json.RawMessage `json:"packages"`
		DevPackageNames []json.RawMessage  `json:"dev-package-names"`
	}
	if err := json.Unmarshal(data, &v2); err != nil {
		return nil, err
	}
	if v2.Packages == nil {
		return nil, fmt.Errorf("no packages array")
	}
	var devNames []string
	for _, raw := range v2.DevPackageNames {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			devNames = append(devNames, s)
		}
	}
	return []list{{entries: *v2.Packages, devNames: devNames}}, nil
}

// lockLists reads composer.lock: "packages" and the development-only "packages-dev".
func lockLists(data []byte) ([]list, error) {
	var lock struct {
		Packages    *[]json.RawMessage `json:"packages"`
		PackagesDev []json.RawMessage  `json:"packages-dev"`
	}
	if err := json.Unmarshal(data, &lock); err != nil {
		return nil, err
	}
	if lock.Packages == nil {
		return nil, fmt.Errorf("no packages array")
	}
	return []list{{entries: *lock.Packages}, {entries: lock.PackagesDev, dev: true}}, nil
}

// entry is one package of installed.json or composer.lock.
type entry struct {
	Name              string          `json:"name"`
	Version           string          `json:"version"`
	VersionNormalized string          `json:"version_normalized"`
	License           json.RawMessage `json:"license"`
}

func collect(ctx context.Context, what string, lists []list) (*sbom.Result, error) {
	res := &sbom.Result{}
	skipped, n := 0, 0
	for _, l := range lists {
		for _, raw := range l.entries {
			n++
			if n%checkEvery == 0 {
				if err := ctx.Err(); err != nil {
					return nil, err
				}
			}
			if len(res.Packages) >= maxEntries {
				res.Warnings = append(res.Warnings, fmt.Sprintf("%s lists more than %d packages; kept the first %d", what, maxEntries, maxEntries))
				return res, nil
			}
			var e entry
			if err := json.Unmarshal(raw, &e); err != nil || !validName(e.Name) || !validToken(e.Version) {
				skipped++
				continue
			}
			p := sbom.Package{Name: e.Name, Version: e.Version, Type: sbom.TypeComposer, Licenses: licenses(e.License)}
			if validToken(e.VersionNormalized) && e.VersionNormalized != e.Version {
				p.Metadata = map[string]string{"versionNormalized": e.VersionNormalized}
			}
			if l.dev || slices.Contains(l.devNames, e.Name) {
				if p.Metadata == nil {
					p.Metadata = map[string]string{}
				}
				p.Metadata["dev"] = "true"
			}
			res.Packages = append(res.Packages, p)
		}
	}
	if skipped > 0 {
		if len(res.Packages) == 0 {
			return nil, fmt.Errorf("parsing %s: no valid package (%d malformed entries)", what, skipped)
		}
		res.Warnings = append(res.Warnings, fmt.Sprintf("skipped %d malformed %s entries", skipped, what))
	}
	return res, nil
}

// licenses reads "license", an array of SPDX identifiers (or, in old packages, one string).
func licenses(raw json.RawMessage) []string {
	var list []json.RawMessage
	if json.Unmarshal(raw, &list) != nil {
		list = []json.RawMessage{raw}
	}
	var out []string
	for _, item := range list {
		var s string
		if json.Unmarshal(item, &s) != nil {
			continue
		}
		s = strings.TrimSpace(s)
		if len(out) < maxLicenses && validLicense(s) && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// validName accepts Composer names, "vendor/package".
func validName(s string) bool {
	vendor, pkg, ok := strings.Cut(s, "/")
	return ok && vendor != "" && pkg != "" && !strings.Contains(pkg, "/") && validToken(s)
}

// validToken reports whether s can be a name or version here (see sbom.ValidToken).
func validToken(s string) bool { return sbom.ValidToken(s, maxToken) }

// validLicense accepts a bounded single-line license string; SPDX expressions contain spaces.
func validLicense(s string) bool {
	if s == "" || len(s) > maxToken || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < ' ' || r == 0x7f {
			return false
		}
	}
	return true
}
