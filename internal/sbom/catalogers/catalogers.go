// Package catalogers assembles the catalogers moat runs by default, one per ecosystem.
package catalogers

import (
	"github.com/moatsec/moat/internal/sbom"
	"github.com/moatsec/moat/internal/sbom/apk"
	"github.com/moatsec/moat/internal/sbom/composer"
	"github.com/moatsec/moat/internal/sbom/dotnet"
	"github.com/moatsec/moat/internal/sbom/dpkg"
	"github.com/moatsec/moat/internal/sbom/golang"
	"github.com/moatsec/moat/internal/sbom/java"
	"github.com/moatsec/moat/internal/sbom/npm"
	"github.com/moatsec/moat/internal/sbom/osrelease"
	"github.com/moatsec/moat/internal/sbom/python"
	"github.com/moatsec/moat/internal/sbom/rpm"
	"github.com/moatsec/moat/internal/sbom/ruby"
	"github.com/moatsec/moat/internal/sbom/rust"
)

// Default returns every cataloger. tempDir receives the temporary copies that some package
// databases need (rpm's libraries open files by path); it must be inside moat's cache.
func Default(tempDir string) []sbom.Cataloger {
	return []sbom.Cataloger{
		osrelease.New(),
		dpkg.New(),
		apk.New(),
		rpm.New(rpm.WithTempDir(tempDir)),
		golang.New(),
		rust.New(),
		npm.New(),
		python.New(),
		java.New(),
		ruby.New(),
		composer.New(),
		dotnet.New(),
	}
}
