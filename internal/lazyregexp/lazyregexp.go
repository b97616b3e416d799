// Package lazyregexp compiles a package's regular expressions when they are first used
// rather than when the program starts. Every moat command pays the package initialisation of
// every package linked into the binary, and an expression compiled there costs from tens of
// microseconds to most of a millisecond (bounded repetitions such as {64} are expanded), so
// `moat run` would pay for the expressions of the SBOM catalogers and the policy's secret
// patterns it never uses.
package lazyregexp

import (
	"regexp"
	"sync"
)

// New returns a function that compiles expr on its first call and returns the same
// expression on every call. It panics, on first use, when expr does not compile, as
// regexp.MustCompile does; the expressions are constants of the program and their tests
// use them.
func New(expr string) func() *regexp.Regexp {
	return sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(expr) })
}
