package python

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/moatsec/moat/internal/sbom"
	"github.com/moatsec/moat/internal/sbom/sbomtest"
)

const pyyamlMetadata = `Metadata-Version: 2.1
Name: PyYAML
Version: 6.0.1
Summary: YAML parser and emitter for Python
Home-page: https://pyyaml.org/
Download-URL: https://pypi.org/project/PyYAML/
Author: Kirill Simonov
Author-email: xi@resolvent.net
License: MIT
Project-URL: Bug Tracker, https://github.com/yaml/pyyaml/issues
Project-URL: CI, https://github.com/yaml/pyyaml/actions
Project-URL: Documentation, https://pyyaml.org/wiki/PyYAMLDocumentation
Project-URL: Mailing lists, http://lists.sourceforge.net/lists/listinfo/yaml-core
Project-URL: Source Code, https://github.com/yaml/pyyaml
Platform: Any
Classifier: Development Status :: 5 - Production/Stable
Classifier: Intended Audience :: Developers
Classifier: License :: OSI Approved :: MIT License
Classifier: Operating System :: OS Independent
Classifier: Programming Language :: Cython
Classifier: Programming Language :: Python
Classifier: Programming Language :: Python :: 3
Classifier: Topic :: Software Development :: Libraries :: Python Modules
Classifier: Topic :: Text Processing :: Markup
Requires-Python: >=3.6
License-File: LICENSE

YAML is a data serialization format designed for human readability
and interaction with scripting languages.  PyYAML is a YAML parser
and emitter for Python.

Name: NotThis
Version: 0.0.0
`

// requestsEggInfo is distutils-era PKG-INFO: the Description is continuation lines, with its
// empty lines indented by eight spaces, and the classifiers come after it.
const requestsEggInfo = "Metadata-Version: 1.1\r\n" + `Name: requests
Version: 2.22.0
Summary: Python HTTP for Humans.
Home-page: http://python-requests.org
Author: Kenneth Reitz
Author-email: me@kennethreitz.org
License: UNKNOWN
Description: Requests: HTTP for Humans™
        ==========================
        ` + `
        Requests is the only *Non-GMO* HTTP library for Python, safe for human
        consumption.
        ` + `
Platform: UNKNOWN
Classifier: Development Status :: 5 - Production/Stable
Classifier: Intended Audience :: Developers
Classifier: Natural Language :: English
Classifier: License :: OSI Approved
Classifier: License :: OSI Approved :: Apache Software License
Classifier: Programming Language :: Python
Requires-Python: >=2.7, !=3.0.*, !=3.1.*, !=3.2.*, !=3.3.*, !=3.4.*
Provides-Extra: security
`

const expressionMetadata = `Metadata-Version: 2.4
Name: attrs
Version: 25.3.0
License-Expression: MIT
License: the MIT license (see LICENSE)
License-File: LICENSE
`

// fullTextLicense quotes the license in the License field, as setuptools did for many packages.
const fullTextLicense = `Metadata-Version: 2.1
Name: python-dateutil
Version: 2.8.2
license: Dual License: Apache 2.0 and BSD 3-Clause. Copyright 2017- Paul Ganssle <paul@ganssle.io>
        Copyright 2017- dateutil contributors (see AUTHORS file)
        ` + `
           Licensed under the Apache License, Version 2.0 (the "License");
Classifier: License :: OSI Approved :: BSD License
Classifier: License :: OSI Approved :: Apache Software License
`

var cases = []sbomtest.Case{
	{
		Name: "wheel METADATA", Path: "usr/local/lib/python3.12/site-packages/PyYAML-6.0.1.dist-info/METADATA",
		Content: []byte(pyyamlMetadata), WantCount: 1,
		Want: []sbom.Package{{Name: "PyYAML", Version: "6.0.1", Type: sbom.TypePyPI, Licenses: []string{"MIT"},
			Metadata: map[string]string{"metadataVersion": "2.1"}}},
	},
	{
		Name: "egg-info dir", Path: "usr/lib/python3/dist-packages/requests-2.22.0.egg-info/PKG-INFO",
		Content: []byte(requestsEggInfo), WantCount: 1,
		Want: []sbom.Package{{Name: "requests", Version: "2.22.0", Type: sbom.TypePyPI, Licenses: []string{"Apache Software License"},
			Metadata: map[string]string{"metadataVersion": "1.1"}}},
	},
	{
		Name: "egg-info file", Path: "usr/lib/python2.7/dist-packages/requests-2.22.0.egg-info",
		Content: []byte(requestsEggInfo), WantCount: 1,
		Want: []sbom.Package{{Name: "requests", Version: "2.22.0", Type: sbom.TypePyPI}},
	},
	{
		Name: "egg", Path: "usr/lib/python2.7/site-packages/setuptools-0.6c11-py2.7.egg/EGG-INFO/PKG-INFO",
		Content:   []byte("Metadata-Version: 1.0\nName: setuptools\nVersion: 0.6c11\nLicense: PSF or ZPL\n"),
		WantCount: 1, Want: []sbom.Package{{Name: "setuptools", Version: "0.6c11", Type: sbom.TypePyPI, Licenses: []string{"PSF or ZPL"}}},
	},
	{
		Name: "license expression", Path: "venv/lib/python3.13/site-packages/attrs-25.3.0.dist-info/METADATA",
		Content: []byte(expressionMetadata), WantCount: 1,
		Want: []sbom.Package{{Name: "attrs", Version: "25.3.0", Type: sbom.TypePyPI, Licenses: []string{"MIT"}}},
	},
	{
		Name: "license text", Path: "usr/lib/python3/dist-packages/python_dateutil-2.8.2.dist-info/METADATA",
		Content: []byte(fullTextLicense), WantCount: 1,
		Want: []sbom.Package{{Name: "python-dateutil", Version: "2.8.2", Type: sbom.TypePyPI, Licenses: []string{"BSD License", "Apache Software License"}}},
	},
	{
		Name: "line too long", Path: "x/foo-1.0.dist-info/METADATA",
		Content:   []byte("Name: foo\nVersion: 1.0\nSummary: " + strings.Repeat("x", maxLine+1) + "\nLicense: MIT\n"),
		WantCount: 1, WantWarning: true, Want: []sbom.Package{{Name: "foo", Version: "1.0", Type: sbom.TypePyPI}},
	},
	{Name: "no version", Path: "x/foo.dist-info/METADATA", Content: []byte("Metadata-Version: 2.1\nName: foo\n"), WantErr: true},
	{Name: "version in body", Path: "x/foo.dist-info/METADATA", Content: []byte("Name: foo\n\nVersion: 1.0\n"), WantErr: true},
	{Name: "spaces in version", Path: "x/foo.dist-info/METADATA", Content: []byte("Name: foo\nVersion: 1.0 final\n"), WantErr: true},
	{Name: "binary", Path: "x/foo.dist-info/METADATA", Content: []byte("\x7fELF\x02\x01\x01\x00\x00\x00"), WantErr: true},
	{Name: "RECORD", Path: "x/foo-1.0.dist-info/RECORD", NoMatch: true},
	{Name: "sdist PKG-INFO", Path: "src/foo-1.0/PKG-INFO", NoMatch: true},
	{Name: "egg-info sources", Path: "x/foo.egg-info/SOURCES.txt", NoMatch: true},
	{Name: "bare suffix", Path: "x/.egg-info", NoMatch: true},
	{Name: "bare dist-info", Path: "x/.dist-info/METADATA", NoMatch: true},
}

func TestConformance(t *testing.T) { sbomtest.Run(t, New(), cases) }

func FuzzParse(f *testing.F) { sbomtest.Fuzz(f, New(), cases) }

func TestClassifierLicense(t *testing.T) {
	tests := []struct{ in, want string }{
		{"License :: OSI Approved :: MIT License", "MIT"},
		{"License :: OSI Approved :: BSD License", "BSD License"},
		{"License :: OSI Approved :: GNU General Public License v2 or later (GPLv2+)", "GNU General Public License v2 or later (GPLv2+)"},
		{"License :: Public Domain", "Public Domain"},
		{"License :: OSI Approved", ""},
		{"Programming Language :: Python", ""},
		{"License", ""},
	}
	for _, tt := range tests {
		if got := classifierLicense(tt.in); got != tt.want {
			t.Errorf("classifierLicense(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestCaseInsensitiveFields(t *testing.T) {
	res, err := New().Parse(context.Background(), sbom.FileInfo{Path: "a.dist-info/METADATA"},
		bytes.NewReader([]byte("metadata-version: 2.1\nNAME: Foo_Bar\nversion: 1.0\n")))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Packages) != 1 || res.Packages[0].Name != "Foo_Bar" || res.Packages[0].Version != "1.0" {
		t.Errorf("got %+v", res.Packages)
	}
}
