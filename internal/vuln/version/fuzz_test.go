package version

import (
	"errors"
	"testing"
)

// allSchemes is every scheme For and ForRange can return.
var allSchemes = []*Scheme{dpkgScheme, apkScheme, rpmScheme, pep440Scheme, mavenScheme, npmScheme,
	goScheme, gemScheme, semverScheme, nugetScheme, packagistScheme}

// FuzzParse parses three arbitrary strings with every scheme. Parse must not panic and must
// wrap ErrInvalid when it fails; Compare on what it accepts must be reflexive, antisymmetric,
// transitive (except Maven's, see below), return only -1, 0 or +1, and agree with the
// reference library where the scheme has one (see reference).
func FuzzParse(f *testing.F) {
	for _, o := range orderings {
		var vs []string
		for _, g := range o.groups {
			vs = append(vs, g...)
		}
		for i := range vs {
			f.Add(vs[i], vs[(i+1)%len(vs)], vs[(i+3)%len(vs)])
		}
	}
	for _, vs := range invalid {
		for _, v := range vs {
			f.Add(v, "1.0", "1.0-1")
		}
	}
	f.Fuzz(func(t *testing.T, a, b, c string) {
		for _, s := range allSchemes {
			var ps []Version
			for _, in := range []string{a, b, c} {
				p, err := s.Parse(in)
				if err != nil {
					if !errors.Is(err, ErrInvalid) {
						t.Fatalf("%s: Parse(%q): %v does not wrap ErrInvalid", s, in, err)
					}
					continue
				}
				if p.String() != in || p.Scheme() != s {
					t.Fatalf("%s: Parse(%q) gave %q of %v", s, in, p, p.Scheme())
				}
				ps = append(ps, p)
			}
			for i, x := range ps {
				if got := x.Compare(x); got != 0 {
					t.Fatalf("%s: %q vs itself: %d", s, x, got)
				}
				for _, y := range ps[i+1:] {
					xy, yx := x.Compare(y), y.Compare(x)
					if xy != -yx || xy < -1 || xy > 1 {
						t.Fatalf("%s: %q vs %q: %d, reversed %d", s, x, y, xy, yx)
					}
					if want, ok := reference(s, x.String(), y.String()); ok && xy != want {
						t.Fatalf("%s: %q vs %q: %d, reference library says %d", s, x, y, xy, want)
					}
				}
			}
			if s == mavenScheme {
				// Maven's ComparableVersion is not transitive where forms mix: "1a0" (1-alpha-0)
				// < "1" < "1.a", yet a sub-list beats a string, so "1a0" > "1.a". The library
				// reproduces Maven, and a match compares pairs, so only transitivity is waived.
				continue
			}
			for _, x := range ps {
				for _, y := range ps {
					for _, z := range ps {
						xy, yz, xz := x.Compare(y), y.Compare(z), x.Compare(z)
						if xy <= 0 && yz <= 0 && (xz > 0 || (xy == 0 && yz == 0 && xz != 0)) {
							t.Fatalf("%s: not transitive: %q vs %q %d, %q vs %q %d, %q vs %q %d",
								s, x, y, xy, y, z, yz, x, z, xz)
						}
					}
				}
			}
		}
	})
}
