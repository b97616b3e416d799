package npm

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/moatsec/moat/internal/sbom"
	"github.com/moatsec/moat/internal/sbom/sbomtest"
)

const expressManifest = `{
  "name": "express",
  "description": "Fast, unopinionated, minimalist web framework",
  "version": "4.18.2",
  "author": "TJ Holowaychuk <tj@vision-media.ca>",
  "contributors": [
    "Aaron Heckmann <aaron.heckmann+github@gmail.com>",
    "Douglas Christopher Wilson <doug@somethingdoug.com>"
  ],
  "license": "MIT",
  "repository": "expressjs/express",
  "homepage": "http://expressjs.com/",
  "keywords": ["express", "framework", "sinatra", "web", "http", "rest", "restful", "router", "app", "api"],
  "dependencies": {
    "accepts": "~1.3.8",
    "array-flatten": "1.1.1",
    "body-parser": "1.20.1",
    "debug": "2.6.9"
  },
  "devDependencies": {
    "mocha": "10.0.0"
  },
  "engines": {"node": ">= 0.10.0"},
  "files": ["LICENSE", "History.md", "Readme.md", "index.js", "lib/"],
  "scripts": {
    "test": "mocha --require test/support/env --reporter spec --bail --check-leaks test/ test/acceptance/"
  }
}
`

const scopedManifest = `{
  "name": "@types/node",
  "version": "20.11.5",
  "description": "TypeScript definitions for node",
  "homepage": "https://github.com/DefinitelyTyped/DefinitelyTyped/tree/master/types/node",
  "license": "MIT",
  "main": "",
  "types": "index.d.ts",
  "typeScriptVersion": "4.6"
}`

// legacyManifest has the shape npm 2 wrote: a "licenses" array and the README inline.
const legacyManifest = `{
  "name": "json-schema",
  "version": "0.2.3",
  "author": {"name": "Kris Zyp"},
  "licenses": [
    {"type": "AFLv2.1", "url": "http://trac.dojotoolkit.org/browser/dojo/trunk/LICENSE#L43"},
    {"type": "BSD", "url": "http://trac.dojotoolkit.org/browser/dojo/trunk/LICENSE#L13"}
  ],
  "readme": "JSON Schema is a repository for the JSON Schema specification",
  "_id": "json-schema@0.2.3",
  "_from": "json-schema@0.2.3"
}`

const lockV3 = `{
  "name": "web",
  "version": "1.0.0",
  "lockfileVersion": 3,
  "requires": true,
  "packages": {
    "": {
      "name": "web",
      "version": "1.0.0",
      "license": "ISC",
      "workspaces": ["packages/*"],
      "dependencies": {"express": "^4.18.2", "string-width-cjs": "npm:string-width@^4.2.0"},
      "devDependencies": {"@types/node": "^20.11.5"}
    },
    "node_modules/@types/node": {
      "version": "20.11.5",
      "resolved": "https://registry.npmjs.org/@types/node/-/node-20.11.5.tgz",
      "integrity": "sha512-g557vgQjUUfN76MZAN/dt1z3dzcUsimuysco0KeluHgrPdJXkP/XdAURgyO2W9fZWHRtRBiVKzKn8vyOAwlG+w==",
      "dev": true,
      "dependencies": {"undici-types": "~5.26.4"}
    },
    "node_modules/debug": {
      "version": "2.6.9",
      "resolved": "https://registry.npmjs.org/debug/-/debug-2.6.9.tgz",
      "integrity": "sha512-bC7ElrdJaJnPbAP+1EotYvqZsb3ecl5wi6Bfi6BJTUcNowp6cvspg0jXznRTKDjm/E7AdgFBVeAPVMNcKGsHMA==",
      "dependencies": {"ms": "2.0.0"}
    },
    "node_modules/express": {
      "version": "4.18.2",
      "resolved": "https://registry.npmjs.org/express/-/express-4.18.2.tgz",
      "integrity": "sha512-5/PsL6iGPdfQ/lKM1UuielYgv3BUoJfz1aUwU9vHZ+J7gyvwdQXFEBIEIaxeGf0GIcreATNyBExtalisDbuMqQ==",
      "license": "MIT",
      "dependencies": {"debug": "2.6.9"},
      "engines": {"node": ">= 0.10.0"}
    },
    "node_modules/express/node_modules/ms": {
      "version": "2.0.0",
      "resolved": "https://registry.npmjs.org/ms/-/ms-2.0.0.tgz",
      "license": "MIT"
    },
    "node_modules/ms": {
      "version": "2.1.3",
      "resolved": "https://registry.npmjs.org/ms/-/ms-2.1.3.tgz",
      "license": "MIT"
    },
    "node_modules/string-width-cjs": {
      "name": "string-width",
      "version": "4.2.3",
      "resolved": "https://registry.npmjs.org/string-width/-/string-width-4.2.3.tgz",
      "license": "MIT"
    },
    "node_modules/undici-types": {
      "version": "5.26.5",
      "license": "MIT",
      "dev": true
    },
    "node_modules/@web/shared": {
      "resolved": "packages/shared",
      "link": true
    },
    "packages/shared": {
      "name": "@web/shared",
      "version": "0.0.1"
    }
  }
}`

const lockV1 = `{
  "name": "legacy-app",
  "version": "0.1.0",
  "lockfileVersion": 1,
  "requires": true,
  "dependencies": {
    "accepts": {
      "version": "1.3.8",
      "resolved": "https://registry.npmjs.org/accepts/-/accepts-1.3.8.tgz",
      "integrity": "sha512-PYAthTa2m2VKxuvSD3DPC/Gy+U+sOA1LAuT8mkmRuvw+NACSaeXEQ+NHcVF7rONl6qcaxV3Uuemwawk+7+SJLw==",
      "requires": {"mime-types": "~2.1.34", "negotiator": "0.6.3"}
    },
    "mocha": {
      "version": "5.2.0",
      "dev": true,
      "requires": {"debug": "3.1.0"},
      "dependencies": {
        "debug": {
          "version": "3.1.0",
          "dev": true,
          "requires": {"ms": "2.0.0"}
        }
      }
    },
    "left-pad-alias": {
      "version": "npm:left-pad@1.3.0"
    },
    "local-lib": {
      "version": "file:../local-lib"
    },
    "forked": {
      "version": "git+https://github.com/example/forked.git#4b8d5e8a8b1e5c0f8d3f6e1e2f5f0c2c7e0d9a1b",
      "from": "git+https://github.com/example/forked.git"
    }
  }
}`

var cases = []sbomtest.Case{
	{
		Name: "installed express", Path: "usr/src/app/node_modules/express/package.json",
		Content: []byte(expressManifest), WantCount: 1,
		Want: []sbom.Package{{Name: "express", Version: "4.18.2", Type: sbom.TypeNPM, Licenses: []string{"MIT"}}},
	},
	{
		Name: "scoped package", Path: "app/node_modules/@types/node/package.json",
		Content: []byte(scopedManifest), WantCount: 1,
		Want: []sbom.Package{{Name: "@types/node", Version: "20.11.5", Type: sbom.TypeNPM, Licenses: []string{"MIT"}}},
	},
	{
		Name: "global npm", Path: "usr/local/lib/node_modules/npm/package.json",
		Content:   []byte(`{"version":"10.2.4","name":"npm","license":{"type":"Artistic-2.0","url":"https://github.com/npm/cli/blob/latest/LICENSE"}}`),
		WantCount: 1, Want: []sbom.Package{{Name: "npm", Version: "10.2.4", Type: sbom.TypeNPM, Licenses: []string{"Artistic-2.0"}}},
	},
	{
		Name: "nested and legacy licenses", Path: "srv/node_modules/request/node_modules/json-schema/package.json",
		Content: []byte(legacyManifest), WantCount: 1,
		Want: []sbom.Package{{Name: "json-schema", Version: "0.2.3", Type: sbom.TypeNPM, Licenses: []string{"AFLv2.1", "BSD"}}},
	},
	{
		Name: "pnpm store", Path: "app/node_modules/.pnpm/ms@2.1.3/node_modules/ms/package.json",
		Content:   []byte(`{"name":"ms","version":"2.1.3","license":"MIT"}`),
		WantCount: 1, Want: []sbom.Package{{Name: "ms", Version: "2.1.3", Type: sbom.TypeNPM}},
	},
	{
		Name: "no version", Path: "app/node_modules/stub/package.json",
		Content: []byte(`{"name":"stub","private":true}`),
	},
	{
		Name: "bad version", Path: "app/node_modules/odd/package.json",
		Content: []byte(`{"name":"odd","version":"1.0 beta"}`), WantWarning: true,
	},
	{Name: "not json", Path: "app/node_modules/odd/package.json", Content: []byte("module.exports = {}\n"), WantErr: true},
	{Name: "json array", Path: "app/node_modules/odd/package.json", Content: []byte(`["name","version"]`), WantErr: true},
	{
		Name: "lock v3", Path: "usr/src/app/package-lock.json", Content: []byte(lockV3), WantCount: 7,
		Want: []sbom.Package{
			{Name: "express", Version: "4.18.2", Type: sbom.TypeNPM, Licenses: []string{"MIT"}},
			{Name: "debug", Version: "2.6.9", Type: sbom.TypeNPM},
			{Name: "ms", Version: "2.0.0", Type: sbom.TypeNPM},
			{Name: "ms", Version: "2.1.3", Type: sbom.TypeNPM},
			{Name: "string-width", Version: "4.2.3", Type: sbom.TypeNPM},
			{Name: "@types/node", Version: "20.11.5", Type: sbom.TypeNPM, Metadata: map[string]string{"dev": "true"}},
			{Name: "undici-types", Version: "5.26.5", Type: sbom.TypeNPM, Metadata: map[string]string{"dev": "true"}},
		},
	},
	{
		Name: "lock v1", Path: "app/package-lock.json", Content: []byte(lockV1), WantCount: 4,
		Want: []sbom.Package{
			{Name: "accepts", Version: "1.3.8", Type: sbom.TypeNPM},
			{Name: "mocha", Version: "5.2.0", Type: sbom.TypeNPM, Metadata: map[string]string{"dev": "true"}},
			{Name: "debug", Version: "3.1.0", Type: sbom.TypeNPM, Metadata: map[string]string{"dev": "true"}},
			{Name: "left-pad", Version: "1.3.0", Type: sbom.TypeNPM},
		},
	},
	{
		Name: "lock partly broken", Path: "package-lock.json",
		Content: []byte(`{"lockfileVersion":2,"packages":{"":{"name":"x"},"node_modules/a":{"version":"1.0.0"},` +
			`"node_modules/b":{"version":7},"node_modules/c":"oops","node_modules/d":{"version":"bad version"}},` +
			`"dependencies":{"a":{"version":"1.0.0"}}}`),
		WantCount: 1, WantWarning: true, Want: []sbom.Package{{Name: "a", Version: "1.0.0", Type: sbom.TypeNPM}},
	},
	{
		Name: "lock v1 partly broken", Path: "package-lock.json",
		Content:   []byte(`{"lockfileVersion":1,"dependencies":{"a":{"version":"1.0.0","dependencies":{"b":[1]}},"c":{"version":true}}}`),
		WantCount: 1, WantWarning: true, Want: []sbom.Package{{Name: "a", Version: "1.0.0", Type: sbom.TypeNPM}},
	},
	{Name: "lock only root", Path: "package-lock.json", Content: []byte(`{"lockfileVersion":3,"packages":{"":{"name":"x","version":"1.0.0"}}}`)},
	{Name: "lock all broken", Path: "package-lock.json", Content: []byte(`{"lockfileVersion":3,"packages":{"node_modules/a":{}}}`), WantErr: true},
	{Name: "lock not a lock", Path: "package-lock.json", Content: []byte(`{"hello":"world"}`), WantErr: true},
	{Name: "lock truncated", Path: "package-lock.json", Content: []byte(lockV3[:200]), WantErr: true},
	{Name: "app manifest", Path: "usr/src/app/package.json", NoMatch: true},
	{Name: "fixture manifest", Path: "app/node_modules/resolve/test/resolver/package.json", NoMatch: true},
	{Name: "esm marker", Path: "app/node_modules/@babel/runtime/helpers/esm/package.json", NoMatch: true},
	{Name: "scope dir", Path: "app/node_modules/@types/package.json", NoMatch: true},
	{Name: "hidden lock", Path: "app/node_modules/.package-lock.json", NoMatch: true},
	{Name: "lock in node_modules", Path: "app/node_modules/foo/package-lock.json", NoMatch: true},
	{Name: "dot dir", Path: "app/node_modules/.cache/package.json", NoMatch: true},
}

func TestConformance(t *testing.T) { sbomtest.Run(t, New(), cases) }

func FuzzParse(f *testing.F) { sbomtest.Fuzz(f, New(), cases) }

func TestLimits(t *testing.T) {
	c := New()
	big := bytes.Repeat([]byte(" "), maxManifest+1)
	if _, err := c.Parse(context.Background(), sbom.FileInfo{Path: "node_modules/a/package.json"}, bytes.NewReader(big)); err == nil {
		t.Error("a package.json over the size limit was read")
	}
	// A v1 tree nested deeper than maxDepth keeps the shallow part and warns.
	var b strings.Builder
	b.WriteString(`{"lockfileVersion":1,"dependencies":`)
	for i := range maxDepth + 10 {
		fmt.Fprintf(&b, `{"a":{"version":"1.0.%d","dependencies":`, i)
	}
	b.WriteString(`{}`)
	for range maxDepth + 10 {
		b.WriteString(`}}`)
	}
	b.WriteString(`}`)
	res, err := c.Parse(context.Background(), sbom.FileInfo{Path: "package-lock.json"}, strings.NewReader(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Packages) != maxDepth || len(res.Warnings) == 0 {
		t.Errorf("deep tree: got %d packages and warnings %v, want %d packages and a warning", len(res.Packages), res.Warnings, maxDepth)
	}
}

func TestDevOnlyIfEveryCopyIs(t *testing.T) {
	lock := `{"lockfileVersion":3,"packages":{"node_modules/a/node_modules/ms":{"version":"2.0.0","dev":true},` +
		`"node_modules/b/node_modules/ms":{"version":"2.0.0"}}}`
	res, err := New().Parse(context.Background(), sbom.FileInfo{Path: "package-lock.json"}, strings.NewReader(lock))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Packages) != 1 || res.Packages[0].Metadata["dev"] != "" {
		t.Errorf("got %+v, want one ms@2.0.0 that is not dev", res.Packages)
	}
}

func TestInstalledDir(t *testing.T) {
	tests := []struct {
		path string
		want bool
	}{
		{"node_modules/a/package.json", true},
		{"node_modules/@s/a/package.json", true},
		{"usr/lib/node_modules/npm/node_modules/abbrev/package.json", true},
		{"app/node_modules/a/node_modules/@s/b/node_modules/c/package.json", true},
		{"app/node_modules/@s/a/node_modules/b/package.json", true},
		{"app/node_modules/.pnpm/@babel+core@7.23.7/node_modules/@babel/core/package.json", true},
		{"app/test/fixtures/node_modules/a/package.json", true},
		{"app/node_modules/resolve/test/resolver/node_modules/a/package.json", false},
		{"app/node_modules/a/fixtures/node_modules/@s/b/package.json", false},
		{"app/node_modules/.pnpm/node_modules/a/package.json", false},
		{"app/node_modules/a/lib/package.json", false},
		{"app/node_modules/node_modules/package.json", false},
		{"package.json", false},
		{"npm-shrinkwrap.json", true},
		{"app/node_modules/a/npm-shrinkwrap.json", false},
	}
	for _, tt := range tests {
		if got := New().Match(sbom.FileInfo{Path: tt.path}); got != tt.want {
			t.Errorf("Match(%q) = %v, want %v", tt.path, got, tt.want)
		}
	}
}
