// Package catalogers assembles the catalogers moat runs by default, one per ecosystem.
package catalogers

import (
	"github.com/moatsec/moat/internal/sbom"
	"github.com/moatsec/moat/internal/sbom/dpkg"
)

// Default returns every cataloger. tempDir receives the temporary copies that some package
// databases need (rpm's libraries open files by path); it must be inside moat's cache.
func Default(tempDir string) []sbom.Cataloger {
	return []sbom.Cataloger{
		dpkg.New(),
	}
}
