package vuln

import (
	"context"
	"slices"
	"strings"

	"github.com/moatsec/moat/internal/lazyregexp"
)

// Source is a read view of an advisory database. Implementations must be safe for concurrent
// use.
type Source interface {
	// Lookup returns the advisories with an affected entry for the package called name in
	// ecosystem, an exact OSV ecosystem string ("Debian:12", "PyPI"). Names are compared after
	// NormalizeName.
	Lookup(ctx context.Context, ecosystem, name string) ([]*Advisory, error)
	// Ecosystems returns every ecosystem string in the database with the number of advisories
	// that affect a package in it.
	Ecosystems(ctx context.Context) (map[string]int, error)
}

var pep503 = lazyregexp.New(`[-_.]+`)

// NormalizeName returns the form of a package name under which the database indexes it:
// PEP 503 normalisation for PyPI, lower case where the ecosystem's registry is
// case-insensitive (NuGet, Packagist, crates.io is not: it keeps case), the name unchanged
// elsewhere.
func NormalizeName(ecosystem, name string) string {
	eco, _, _ := strings.Cut(ecosystem, ":")
	switch eco {
	case "PyPI":
		return strings.ToLower(pep503().ReplaceAllString(name, "-"))
	case "NuGet", "Packagist":
		return strings.ToLower(name)
	}
	return name
}

// Memory is a Source held in memory, for tests and for small imports.
type Memory struct {
	index map[string][]*Advisory
	ecos  map[string]int
}

// NewMemory indexes advisories.
func NewMemory(advisories ...*Advisory) *Memory {
	m := &Memory{index: map[string][]*Advisory{}, ecos: map[string]int{}}
	for _, a := range advisories {
		m.Add(a)
	}
	return m
}

// Add indexes one more advisory.
func (m *Memory) Add(a *Advisory) {
	seenEco := map[string]bool{}
	seenKey := map[string]bool{}
	for _, af := range a.Affected {
		k := IndexKey(af.Ecosystem, af.Name)
		if !seenKey[k] {
			seenKey[k] = true
			m.index[k] = append(m.index[k], a)
		}
		if !seenEco[af.Ecosystem] {
			seenEco[af.Ecosystem] = true
			m.ecos[af.Ecosystem]++
		}
	}
}

// Lookup implements Source.
func (m *Memory) Lookup(_ context.Context, ecosystem, name string) ([]*Advisory, error) {
	return slices.Clone(m.index[IndexKey(ecosystem, name)]), nil
}

// Ecosystems implements Source.
func (m *Memory) Ecosystems(context.Context) (map[string]int, error) {
	out := make(map[string]int, len(m.ecos))
	for k, v := range m.ecos {
		out[k] = v
	}
	return out, nil
}

// IndexKey is the key under which an affected package is indexed: the ecosystem and the
// normalised name, separated by a NUL byte (which neither contains).
func IndexKey(ecosystem, name string) string {
	return ecosystem + "\x00" + NormalizeName(ecosystem, name)
}
