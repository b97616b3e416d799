package composer

import (
	"testing"

	"github.com/moatsec/moat/internal/sbom"
	"github.com/moatsec/moat/internal/sbom/sbomtest"
)

const installed2 = `{
    "packages": [
        {
            "name": "monolog/monolog",
            "version": "3.4.0",
            "version_normalized": "3.4.0.0",
            "source": {
                "type": "git",
                "url": "https://github.com/Seldaek/monolog.git",
                "reference": "e2392369686d420ca32df3803de28b5d6f76867d"
            },
            "dist": {
                "type": "zip",
                "url": "https://api.github.com/repos/Seldaek/monolog/zipball/e2392369686d420ca32df3803de28b5d6f76867d",
                "reference": "e2392369686d420ca32df3803de28b5d6f76867d",
                "shasum": ""
            },
            "require": {"php": ">=8.1", "psr/log": "^2.0 || ^3.0"},
            "provide": {"psr/log-implementation": "3.0.0"},
            "time": "2023-06-21T08:46:11+00:00",
            "type": "library",
            "installation-source": "dist",
            "autoload": {"psr-4": {"Monolog\\": "src/Monolog"}},
            "notification-url": "https://packagist.org/downloads/",
            "license": ["MIT"],
            "authors": [{"name": "Jordi Boggiano", "email": "j.boggiano@seld.be", "homepage": "https://seld.be"}],
            "description": "Sends your logs to files, sockets, inboxes, databases and various web services",
            "homepage": "https://github.com/Seldaek/monolog",
            "keywords": ["log", "logging", "psr-3"],
            "install-path": "../monolog/monolog"
        },
        {
            "name": "psr/log",
            "version": "3.0.0",
            "version_normalized": "3.0.0.0",
            "type": "library",
            "license": ["MIT"],
            "install-path": "../psr/log"
        },
        {
            "name": "symfony/console",
            "version": "v6.3.0",
            "version_normalized": "6.3.0.0",
            "type": "library",
            "license": ["MIT"],
            "install-path": "../symfony/console"
        },
        {
            "name": "phpunit/phpunit",
            "version": "10.2.6",
            "version_normalized": "10.2.6.0",
            "type": "library",
            "license": ["BSD-3-Clause"],
            "install-path": "../phpunit/phpunit"
        },
        {
            "name": "acme/internal-tools",
            "version": "dev-main",
            "version_normalized": "dev-main",
            "type": "library",
            "license": ["proprietary"],
            "install-path": "../acme/internal-tools"
        }
    ],
    "dev": true,
    "dev-package-names": [
        "phpunit/phpunit"
    ]
}
`

const installed1 = `[
    {
        "name": "guzzlehttp/guzzle",
        "version": "6.5.5",
        "version_normalized": "6.5.5.0",
        "type": "library",
        "license": ["MIT"]
    },
    {
        "name": "doctrine/lexer",
        "version": "1.2.1",
        "version_normalized": "1.2.1.0",
        "license": "MIT"
    },
    {
        "name": "laminas/laminas-diactoros",
        "version": "2.4.1",
        "license": ["BSD-3-Clause", "BSD-3-Clause"]
    }
]`

const lock = `{
    "_readme": [
        "This file locks the dependencies of your project to a known state",
        "Read more about it at https://getcomposer.org/doc/01-basic-usage.md#installing-dependencies",
        "This file is @generated automatically"
    ],
    "content-hash": "0c6a8dc1f1b5a1e2b8f0c0f7cf3c5a9c",
    "packages": [
        {
            "name": "laravel/framework",
            "version": "v10.15.0",
            "source": {"type": "git", "url": "https://github.com/laravel/framework.git", "reference": "c7599dc92e04532824bafbd226c2936ce6a905b8"},
            "type": "library",
            "license": ["MIT"],
            "time": "2023-07-11T13:43:52+00:00"
        },
        {
            "name": "nesbot/carbon",
            "version": "2.68.1",
            "type": "library",
            "license": ["MIT"]
        }
    ],
    "packages-dev": [
        {
            "name": "mockery/mockery",
            "version": "1.6.2",
            "type": "library",
            "license": ["BSD-3-Clause"]
        }
    ],
    "aliases": [],
    "minimum-stability": "stable",
    "stability-flags": [],
    "prefer-stable": true,
    "prefer-lowest": false,
    "platform": {"php": "^8.1"},
    "platform-dev": [],
    "plugin-api-version": "2.3.0"
}`

var cases = []sbomtest.Case{
	{
		Name: "composer 2 installed", Path: "var/www/html/vendor/composer/installed.json",
		Content: []byte(installed2), WantCount: 5,
		Want: []sbom.Package{
			{Name: "monolog/monolog", Version: "3.4.0", Type: sbom.TypeComposer, Licenses: []string{"MIT"}},
			{Name: "psr/log", Version: "3.0.0", Type: sbom.TypeComposer},
			{Name: "symfony/console", Version: "v6.3.0", Type: sbom.TypeComposer, Metadata: map[string]string{"versionNormalized": "6.3.0.0"}},
			{Name: "phpunit/phpunit", Version: "10.2.6", Type: sbom.TypeComposer, Licenses: []string{"BSD-3-Clause"}, Metadata: map[string]string{"dev": "true"}},
			{Name: "acme/internal-tools", Version: "dev-main", Type: sbom.TypeComposer},
		},
	},
	{
		Name: "composer 1 installed", Path: "app/vendor/composer/installed.json",
		Content: []byte(installed1), WantCount: 3,
		Want: []sbom.Package{
			{Name: "guzzlehttp/guzzle", Version: "6.5.5", Type: sbom.TypeComposer, Licenses: []string{"MIT"}},
			{Name: "doctrine/lexer", Version: "1.2.1", Type: sbom.TypeComposer, Licenses: []string{"MIT"}},
			{Name: "laminas/laminas-diactoros", Version: "2.4.1", Type: sbom.TypeComposer, Licenses: []string{"BSD-3-Clause"}},
		},
	},
	{
		Name: "lock", Path: "var/www/html/composer.lock", Content: []byte(lock), WantCount: 3,
		Want: []sbom.Package{
			{Name: "laravel/framework", Version: "v10.15.0", Type: sbom.TypeComposer, Licenses: []string{"MIT"}},
			{Name: "nesbot/carbon", Version: "2.68.1", Type: sbom.TypeComposer},
			{Name: "mockery/mockery", Version: "1.6.2", Type: sbom.TypeComposer, Metadata: map[string]string{"dev": "true"}},
		},
	},
	{Name: "empty composer 2", Path: "vendor/composer/installed.json", Content: []byte(`{"packages":[],"dev":false,"dev-package-names":[]}`)},
	{Name: "empty composer 1", Path: "vendor/composer/installed.json", Content: []byte(`[]`)},
	{
		Name: "partly broken", Path: "vendor/composer/installed.json",
		Content:   []byte(`{"packages":[{"name":"a/b","version":"1.0.0"},{"name":"nameless","version":"1.0"},{"name":"c/d"},"junk",{"name":"e/f","version":2}]}`),
		WantCount: 1, WantWarning: true, Want: []sbom.Package{{Name: "a/b", Version: "1.0.0", Type: sbom.TypeComposer}},
	},
	{Name: "all broken", Path: "vendor/composer/installed.json", Content: []byte(`[{"name":"x"}]`), WantErr: true},
	{Name: "no packages", Path: "composer.lock", Content: []byte(`{"content-hash":"x"}`), WantErr: true},
	{Name: "not json", Path: "vendor/composer/installed.json", Content: []byte("<?php return array();"), WantErr: true},
	{Name: "installed.php", Path: "vendor/composer/installed.php", NoMatch: true},
	{Name: "composer.json", Path: "var/www/html/composer.json", NoMatch: true},
	{Name: "lock in vendor", Path: "var/www/html/vendor/monolog/monolog/composer.lock", NoMatch: true},
	{Name: "installed.json elsewhere", Path: "var/www/html/composer/installed.json", NoMatch: true},
}

func TestConformance(t *testing.T) { sbomtest.Run(t, New(), cases) }

func FuzzParse(f *testing.F) { sbomtest.Fuzz(f, New(), cases) }
