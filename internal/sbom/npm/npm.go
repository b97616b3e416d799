// Package npm catalogs Node.js packages: the package.json of every package installed under a
// node_modules directory, and the package-lock.json (or npm-shrinkwrap.json) files, of
// lockfileVersion 1, 2 and 3, that applications ship beside their code.
package npm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/moatsec/moat/internal/sbom"
)

// Cataloger reads installed npm packages and npm lock files.
type Cataloger struct{}

// New returns the npm cataloger.
func New() *Cataloger { return &Cataloger{} }

// Name implements sbom.Cataloger.
func (*Cataloger) Name() string { return "npm" }

// Version implements sbom.Cataloger.
func (*Cataloger) Version() int { return 1 }

const (
	manifestName   = "package.json"
	lockName       = "package-lock.json"
	shrinkwrapName = "npm-shrinkwrap.json"
)

// Limits on what an image can make Parse do.
const (
	// maxManifest bounds a package.json; old npm versions stored the whole README in it, so
	// a few hundred KiB is normal, several MiB is not.
	maxManifest = 8 << 20
	// maxLock bounds a package-lock.json; the lock files of large monorepos reach tens of MiB.
	maxLock = 64 << 20
	// maxEntries bounds the packages taken from one lock file.
	maxEntries = 250_000
	// maxDepth bounds the nesting of a lockfileVersion 1 dependency tree; real trees are
	// rarely more than a few dozen levels deep.
	maxDepth = 256
	// maxToken bounds names, versions and license strings.
	maxToken = 512
	// maxLicenses bounds the licenses kept for one package.
	maxLicenses = 16
	// checkEvery is how many entries are read between checks of the context.
	checkEvery = 1024
)

// Match implements sbom.Cataloger.
func (*Cataloger) Match(fi sbom.FileInfo) bool {
	dir, base := path.Split(fi.Path)
	switch base {
	case manifestName:
		return installedDir(strings.TrimSuffix(dir, "/"))
	case lockName, shrinkwrapName:
		// A lock file inside node_modules belongs to a dependency's own development and says
		// nothing about what is installed.
		return !strings.Contains("/"+dir, "/node_modules/")
	}
	return false
}

// installedDir reports whether dir is where npm installs a package: node_modules/<name> or
// node_modules/@scope/<name>, either at the top of a project or nested under another installed
// package (node_modules/a/node_modules/b), or in pnpm's store
// (node_modules/.pnpm/<id>/node_modules/<name>). Other package.json files under node_modules
// belong to a package's sources, test fixtures or build output.
func installedDir(dir string) bool {
	segs := strings.Split(dir, "/")
	k := packageStart(segs, len(segs))
	for k >= 0 {
		if !slices.Contains(segs[:k], "node_modules") {
			return true
		}
		if k >= 3 && segs[k-2] == ".pnpm" && segs[k-3] == "node_modules" {
			k -= 3
			continue
		}
		k = packageStart(segs, k)
	}
	return false
}

// packageStart returns the index of the node_modules segment that segs[:end] installs a
// package under, or -1 if segs[:end] does not end in node_modules/<name> or
// node_modules/@scope/<name>.
func packageStart(segs []string, end int) int {
	if end < 2 {
		return -1
	}
	name := segs[end-1]
	if !validDirName(name) || name[0] == '@' {
		return -1
	}
	if segs[end-2] == "node_modules" {
		return end - 2
	}
	if scope := segs[end-2]; end >= 3 && len(scope) > 1 && scope[0] == '@' && segs[end-3] == "node_modules" {
		return end - 3
	}
	return -1
}

func validDirName(s string) bool {
	return s != "" && s[0] != '.' && s != "node_modules"
}

// Parse implements sbom.Cataloger.
func (c *Cataloger) Parse(ctx context.Context, fi sbom.FileInfo, r sbom.Content) (*sbom.Result, error) {
	if base := path.Base(fi.Path); base == lockName || base == shrinkwrapName {
		data, err := sbom.ReadAll(r, maxLock)
		if err != nil {
			return nil, fmt.Errorf("reading npm lock file: %w", err)
		}
		return parseLock(ctx, data)
	}
	data, err := sbom.ReadAll(r, maxManifest)
	if err != nil {
		return nil, fmt.Errorf("reading package.json: %w", err)
	}
	return parseManifest(data)
}

// manifest is the part of a package.json that identifies the package.
type manifest struct {
	Name     json.RawMessage `json:"name"`
	Version  json.RawMessage `json:"version"`
	License  json.RawMessage `json:"license"`
	Licenses json.RawMessage `json:"licenses"`
}

func parseManifest(data []byte) (*sbom.Result, error) {
	var m manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("parsing package.json: %w", err)
	}
	res := &sbom.Result{}
	name, nameOK := jsonString(m.Name)
	version, versionOK := jsonString(m.Version)
	if name == "" && nameOK || version == "" && versionOK {
		// Applications and private workspace packages often have neither; nothing to report.
		return res, nil
	}
	if !nameOK || !validName(name) {
		res.Warnings = append(res.Warnings, fmt.Sprintf("package.json has an invalid name %.64q", string(m.Name)))
		return res, nil
	}
	if !versionOK || !validToken(version) {
		res.Warnings = append(res.Warnings, fmt.Sprintf("package %s has an invalid version %.64q", name, string(m.Version)))
		return res, nil
	}
	res.Packages = []sbom.Package{{
		Name:     name,
		Version:  version,
		Type:     sbom.TypeNPM,
		Licenses: licenses(m.License, m.Licenses),
	}}
	return res, nil
}

// jsonString decodes a JSON string; a missing value is "" and true, anything but a string is
// false.
func jsonString(raw json.RawMessage) (string, bool) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", true
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false
	}
	return strings.TrimSpace(s), true
}

// licenses reads the "license" field (an SPDX expression, or the deprecated {"type": ...}
// object) and the legacy "licenses" array of strings or objects.
func licenses(license, legacy json.RawMessage) []string {
	var out []string
	add := func(raw json.RawMessage) {
		var s string
		var obj struct {
			Type string `json:"type"`
		}
		switch {
		case json.Unmarshal(raw, &s) == nil:
		case json.Unmarshal(raw, &obj) == nil:
			s = obj.Type
		default:
			return
		}
		s = strings.TrimSpace(s)
		if len(out) < maxLicenses && validLicense(s) && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	for _, raw := range []json.RawMessage{license, legacy} {
		if len(raw) == 0 {
			continue
		}
		var list []json.RawMessage
		if json.Unmarshal(raw, &list) == nil {
			for _, item := range list {
				add(item)
			}
			continue
		}
		add(raw)
	}
	return out
}

// lockFile is the top level of a npm lock file (or npm-shrinkwrap.json).
type lockFile struct {
	LockfileVersion json.RawMessage `json:"lockfileVersion"`
	// Packages (lockfileVersion 2 and 3) maps install paths to packages.
	Packages json.RawMessage `json:"packages"`
	// Dependencies (lockfileVersion 1, and 2 for compatibility) is a tree of packages.
	Dependencies json.RawMessage `json:"dependencies"`
}

// lockEntry is one value of the "packages" map.
type lockEntry struct {
	Name     string          `json:"name"`
	Version  string          `json:"version"`
	Link     bool            `json:"link"`
	Dev      bool            `json:"dev"`
	License  json.RawMessage `json:"license"`
	Licenses json.RawMessage `json:"licenses"`
}

// v1Dep is one node of a lockfileVersion 1 dependency tree. Its fields are raw so that one
// entry of the wrong shape does not spoil its siblings.
type v1Dep struct {
	Version      json.RawMessage   `json:"version"`
	Dev          json.RawMessage   `json:"dev"`
	Dependencies map[string]*v1Dep `json:"dependencies"`
}

// lockResult collects the packages of a lock file, once per name and version.
type lockResult struct {
	res     *sbom.Result
	seen    map[string]int // name@version to index in res.Packages
	skipped int
	full    bool
}

func (l *lockResult) add(name, version string, dev bool, lics []string) {
	key := name + "@" + version
	if i, ok := l.seen[key]; ok {
		// The same package at several install paths: it is a development dependency only if
		// every copy is.
		if !dev {
			delete(l.res.Packages[i].Metadata, "dev")
			if len(l.res.Packages[i].Metadata) == 0 {
				l.res.Packages[i].Metadata = nil
			}
		}
		return
	}
	if len(l.res.Packages) >= maxEntries {
		l.full = true
		return
	}
	p := sbom.Package{Name: name, Version: version, Type: sbom.TypeNPM, Licenses: lics}
	if dev {
		p.Metadata = map[string]string{"dev": "true"}
	}
	l.seen[key] = len(l.res.Packages)
	l.res.Packages = append(l.res.Packages, p)
}

func parseLock(ctx context.Context, data []byte) (*sbom.Result, error) {
	var lf lockFile
	if err := json.Unmarshal(data, &lf); err != nil {
		return nil, fmt.Errorf("parsing npm lock file: %w", err)
	}
	l := &lockResult{res: &sbom.Result{}, seen: map[string]int{}}
	var err error
	switch {
	case isPresent(lf.Packages):
		err = l.readPackages(ctx, lf.Packages)
	case isPresent(lf.Dependencies):
		err = l.readDependencies(ctx, lf.Dependencies)
	case len(lf.LockfileVersion) == 0:
		return nil, errors.New("parsing npm lock file: no lockfileVersion, packages or dependencies")
	}
	if err != nil {
		return nil, err
	}
	if l.full {
		l.res.Warnings = append(l.res.Warnings, fmt.Sprintf("npm lock file lists more than %d packages; kept the first %d", maxEntries, maxEntries))
	}
	if l.skipped > 0 {
		if len(l.res.Packages) == 0 {
			return nil, fmt.Errorf("parsing npm lock file: no valid package (%d malformed entries)", l.skipped)
		}
		l.res.Warnings = append(l.res.Warnings, fmt.Sprintf("skipped %d malformed npm lock file entries", l.skipped))
	}
	return l.res, nil
}

func isPresent(raw json.RawMessage) bool { return len(raw) > 0 && string(raw) != "null" }

// readPackages reads the "packages" map of lockfileVersion 2 and 3, keyed by install path:
// "" is the project itself, "node_modules/a/node_modules/@s/b" is @s/b nested under a.
func (l *lockResult) readPackages(ctx context.Context, raw json.RawMessage) error {
	var pkgs map[string]json.RawMessage
	if err := json.Unmarshal(raw, &pkgs); err != nil {
		return fmt.Errorf("parsing npm lock file packages: %w", err)
	}
	for n, key := range sortedKeys(pkgs) {
		if n%checkEvery == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if l.full {
			break
		}
		i := strings.LastIndex("/"+key, "/node_modules/")
		if i < 0 {
			// The project itself ("") and workspace sources ("packages/a") are not
			// dependencies; workspaces appear again as links under node_modules.
			continue
		}
		var e lockEntry
		if err := json.Unmarshal(pkgs[key], &e); err != nil {
			l.skipped++
			continue
		}
		if e.Link {
			continue
		}
		name := key[i+len("node_modules/"):]
		if e.Name != "" {
			// Aliased installs ("string-width-cjs": "npm:string-width@4") record the real name.
			name = e.Name
		}
		if !validName(name) || !validToken(e.Version) {
			l.skipped++
			continue
		}
		l.add(name, e.Version, e.Dev, licenses(e.License, e.Licenses))
	}
	return nil
}

// readDependencies reads the lockfileVersion 1 "dependencies" tree, where each package may
// nest the dependencies installed under its own node_modules.
func (l *lockResult) readDependencies(ctx context.Context, raw json.RawMessage) error {
	var deps map[string]*v1Dep
	if err := json.Unmarshal(raw, &deps); err != nil {
		var te *json.UnmarshalTypeError
		if !errors.As(err, &te) {
			return fmt.Errorf("parsing npm lock file dependencies: %w", err)
		}
		// Entries of the wrong shape are left empty and counted as skipped below.
	}
	n := 0
	var walk func(deps map[string]*v1Dep, depth int) error
	walk = func(deps map[string]*v1Dep, depth int) error {
		for _, name := range sortedKeys(deps) {
			n++
			if n%checkEvery == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			if l.full {
				return nil
			}
			d := deps[name]
			if d == nil || depth > maxDepth {
				l.skipped++
				continue
			}
			switch pkg, version, kind := v1Version(name, d.Version); kind {
			case fromRegistry:
				var dev bool
				_ = json.Unmarshal(d.Dev, &dev)
				l.add(pkg, version, dev, nil)
			case malformed:
				l.skipped++
			}
			if err := walk(d.Dependencies, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	return walk(deps, 1)
}

// versionKind says what the version of a lockfileVersion 1 entry is.
type versionKind int

const (
	malformed versionKind = iota
	fromRegistry
	// elsewhere is a local or remote source ("file:../lib", "git+https://...",
	// "github:user/repo#sha"): it has no registry version and is left out.
	elsewhere
)

// v1Version returns the package name and registry version of a lockfileVersion 1 entry.
// Aliases ("npm:string-width@4.2.3") rename the package.
func v1Version(name string, raw json.RawMessage) (string, string, versionKind) {
	version, ok := jsonString(raw)
	if !ok || version == "" {
		return "", "", malformed
	}
	if rest, ok := strings.CutPrefix(version, "npm:"); ok {
		i := strings.LastIndexByte(rest, '@')
		if i <= 0 || !validName(rest[:i]) || !validToken(rest[i+1:]) {
			return "", "", malformed
		}
		return rest[:i], rest[i+1:], fromRegistry
	}
	if strings.ContainsAny(version, ":/#") {
		return "", "", elsewhere
	}
	if !validName(name) || !validToken(version) {
		return "", "", malformed
	}
	return name, version, fromRegistry
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// validName accepts npm package names: "express", "@types/node".
func validName(s string) bool {
	if !validToken(s) {
		return false
	}
	if s[0] == '@' {
		scope, pkg, ok := strings.Cut(s[1:], "/")
		return ok && scope != "" && pkg != "" && !strings.Contains(pkg, "/")
	}
	return !strings.Contains(s, "/")
}

// validToken reports whether s can be a name or version here (see sbom.ValidToken).
func validToken(s string) bool { return sbom.ValidToken(s, maxToken) }

// validLicense accepts a bounded single-line license string; SPDX expressions contain spaces.
func validLicense(s string) bool {
	if s == "" || len(s) > maxToken {
		return false
	}
	for _, r := range s {
		if r < ' ' || r == 0x7f {
			return false
		}
	}
	return true
}
