package version

import "testing"

// benchPairs are typical comparisons, one per scheme: a package's version against an advisory
// bound that differs late in the string.
var benchPairs = []struct{ ecosystem, a, b string }{
	{"Debian", "2.36-9+deb12u4", "2.36-9+deb12u10"},
	{"Alpine", "1.2.3_rc1-r10", "1.2.3-r9"},
	{"Red Hat", "1:2.28-225.el8_5", "1:2.28-225.el8_6"},
	{"PyPI", "1.2.3rc1", "1.2.3.post1"},
	{"Maven", "1.2.3-beta", "1.2.3-rc1"},
	{"npm", "1.2.3-beta.1", "1.2.3-beta.2"},
	{"Go", "v1.2.4-0.20200101000000-abcdef123456", "1.2.3"},
	{"RubyGems", "1.2.3.a", "1.2.3"},
	{"crates.io", "1.2.3-alpha.1", "1.2.3"},
	{"NuGet", "4.3.0.1", "4.3.1-beta.2"},
	{"Packagist", "v2.1.0-RC1", "2.1.0-beta3"},
}

var sink int

// BenchmarkCompare measures one comparison of two parsed versions per scheme, which is what
// matching repeats for every advisory bound. Run it as
//
//	go test -run '^$' -bench Compare -benchtime 1000000x ./internal/vuln/version
//
// for exactly a million comparisons per scheme.
func BenchmarkCompare(b *testing.B) {
	for _, p := range benchPairs {
		s, err := For(p.ecosystem)
		if err != nil {
			b.Fatal(err)
		}
		x, errX := s.Parse(p.a)
		y, errY := s.Parse(p.b)
		if errX != nil || errY != nil {
			b.Fatal(errX, errY)
		}
		b.Run(s.Name(), func(b *testing.B) {
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				n += x.Compare(y)
			}
			sink = n
		})
	}
}

// BenchmarkParse measures parsing one version per scheme, which matching pays once per
// package version and once per advisory bound unless the bounds are kept parsed: the second
// version of benchPairs, and a plain "1.2.3", the commonest form of a bound.
func BenchmarkParse(b *testing.B) {
	for _, p := range benchPairs {
		s, err := For(p.ecosystem)
		if err != nil {
			b.Fatal(err)
		}
		for name, v := range map[string]string{s.Name(): p.b, s.Name() + "-plain": "1.2.3"} {
			b.Run(name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, err := s.Parse(v); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
