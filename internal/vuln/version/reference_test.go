package version

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/Masterminds/semver/v3"
	gem "github.com/aquasecurity/go-gem-version"
	pep440 "github.com/aquasecurity/go-pep440-version"
	apk "github.com/knqyf263/go-apk-version"
	deb "github.com/knqyf263/go-deb-version"
	rpm "github.com/knqyf263/go-rpm-version"
)

// reference orders a and b with the library that the scheme's own comparison replaces, for
// the schemes that compare without their library (dpkg, apk, rpm, PEP 440, RubyGems) or with
// another one (SemVer and npm: golang.org/x/mod/semver, checked against Masterminds/semver).
// It reports false when there is no such library or it is known to be wrong for these inputs.
func reference(s *Scheme, a, b string) (int, bool) {
	switch s {
	case semverScheme, npmScheme:
		x, errA := mastermindsSemVer(s, a)
		y, errB := mastermindsSemVer(s, b)
		if errA != nil || errB != nil {
			return 0, false
		}
		return x.Compare(y), true
	case dpkgScheme:
		// go-deb-version saturates numbers of more than 18 digits.
		if checkDigitRuns(a) != nil || checkDigitRuns(b) != nil {
			return 0, false
		}
		x, errA := deb.NewVersion(a)
		y, errB := deb.NewVersion(b)
		if errA != nil || errB != nil {
			return 0, false
		}
		return sign(x.Compare(y)), true
	case apkScheme:
		x, errA := apk.NewVersion(a)
		y, errB := apk.NewVersion(b)
		if errA != nil || errB != nil {
			return 0, false
		}
		return sign(x.Compare(y)), true
	case rpmScheme:
		return sign(rpm.NewVersion(a).Compare(rpm.NewVersion(b))), true
	case gemScheme:
		// go-gem-version splits runs of letters (and the ".pre." that '-' stands for) into
		// single letters, and reads numbers too long for a uint64 as strings: it agrees with
		// RubyGems only without either.
		for _, v := range []string{a, b} {
			if checkDigitRuns(v) != nil || strings.Contains(v, "-") {
				return 0, false
			}
			for i := 1; i < len(v); i++ {
				if isAlpha(v[i-1]) && isAlpha(v[i]) {
					return 0, false
				}
			}
		}
		x, errA := gem.NewVersion(a)
		y, errB := gem.NewVersion(b)
		if errA != nil || errB != nil {
			return 0, false
		}
		return sign(x.Compare(y)), true
	case pep440Scheme:
		// go-pep440-version splits local versions only at '.', and reads a number too long
		// for a uint64 in one as a string.
		for _, v := range []string{a, b} {
			if _, local, ok := strings.Cut(v, "+"); ok && (strings.ContainsAny(local, "-_") || checkDigitRuns(local) != nil) {
				return 0, false
			}
		}
		x, errA := pep440.Parse(a)
		y, errB := pep440.Parse(b)
		if errA != nil || errB != nil {
			return 0, false
		}
		return sign(x.Compare(y)), true
	}
	return 0, false
}

// mastermindsSemVer reads v as the semver or npm scheme does, with Masterminds/semver. It
// refuses numbers too large for a uint64, which SemVer allows and x/mod/semver reads.
func mastermindsSemVer(s *Scheme, v string) (*semver.Version, error) {
	if s == npmScheme {
		v = strings.TrimPrefix(v, "v")
	}
	return semver.StrictNewVersion(v)
}

// TestReferenceSemVerValidity checks that the semver and npm schemes accept exactly what
// Masterminds/semver's strict parser accepts, apart from numbers too large for it.
func TestReferenceSemVerValidity(t *testing.T) {
	var inputs []string
	for _, o := range orderings {
		if o.ecosystem == "npm" || o.ecosystem == "crates.io" {
			for _, g := range o.groups {
				inputs = append(inputs, g...)
			}
		}
	}
	inputs = append(inputs, invalid["npm"]...)
	inputs = append(inputs, "1", "1.2", "v1", "1.2.3.4", "1.2.3-", "1.2.3+", "1.2.3-a..b", "1.2.3-01", "1.2.3-0a", "1.2.3-a.01",
		"01.2.3", "1.02.3", "1.2.03", "0.0.0", "1.2.3-0", "1.2.3+01", "1.2.3+a.b-c", "1.2.3-a+b+c", " 1.2.3", "1.2.3 ", "V1.2.3", "vv1.2.3")
	for _, s := range []*Scheme{semverScheme, npmScheme} {
		for _, v := range inputs {
			_, err := s.Parse(v)
			_, refErr := mastermindsSemVer(s, v)
			if (err == nil) != (refErr == nil) {
				t.Errorf("%s: %q: Parse says %v, Masterminds/semver says %v", s.Name(), v, err, refErr)
			}
		}
	}
	if _, err := semverScheme.Parse("99999999999999999999.0.0"); err != nil {
		t.Errorf("a number too large for a uint64 is still SemVer: %v", err)
	}
}

// TestReference checks the schemes written here against their reference libraries on every
// pair of the ordering tables.
func TestReference(t *testing.T) {
	checked := 0
	for _, o := range orderings {
		s, err := For(o.ecosystem)
		if err != nil {
			t.Fatal(err)
		}
		var vs []Version
		for _, g := range o.groups {
			for _, v := range g {
				p, err := s.Parse(v)
				if err != nil {
					t.Fatal(err)
				}
				vs = append(vs, p)
			}
		}
		for _, a := range vs {
			for _, b := range vs {
				want, ok := reference(s, a.String(), b.String())
				if !ok {
					continue
				}
				checked++
				if got := a.Compare(b); got != want {
					t.Errorf("%s: %q vs %q: got %d, reference library says %d", s.Name(), a, b, got, want)
				}
			}
		}
	}
	if checked < 1000 {
		t.Errorf("only %d pairs checked against the reference libraries", checked)
	}
}

// TestReferenceValidity checks that what apk and dpkg versions Parse refuses the libraries
// refuse too, apart from the documented stricter rules.
func TestReferenceValidity(t *testing.T) {
	for _, v := range invalid["Alpine"] {
		if v == "" || checkText(v) != nil || checkDigitRuns(v) != nil || strings.Contains(v, "-") {
			continue // stricter here on purpose: see parseAPK
		}
		if apk.Valid(v) {
			t.Errorf("go-apk-version accepts %q, which parseAPK refuses", v)
		}
	}
}

// TestReferenceRandom checks the schemes written here against their reference libraries on
// random versions built from the characters and pieces that matter to each ordering: the
// ordering tables hold the known tricky cases, this finds the unknown ones.
func TestReferenceRandom(t *testing.T) {
	n := 5000
	if testing.Short() {
		n = 1000
	}
	rng := rand.New(rand.NewPCG(1, 2))
	pick := func(xs ...string) string { return xs[rng.IntN(len(xs))] }
	chars := func(alphabet string, max int) string {
		b := make([]byte, 1+rng.IntN(max))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		return string(b)
	}
	semverGen := func() string {
		v := pick("0", "1", "2", "10") + "." + pick("0", "1", "10") + "." + pick("0", "1", "2", "10")
		for i := range rng.IntN(4) {
			sep := "."
			if i == 0 {
				sep = "-"
			}
			v += sep + pick("0", "1", "2", "10", "a", "alpha", "beta", "rc", "a1", "1a", "-", "x-y")
		}
		if rng.IntN(3) == 0 {
			v += "+" + pick("build", "1", "01", "a.b")
		}
		return v
	}
	gens := map[*Scheme]func() string{
		semverScheme: semverGen,
		npmScheme:    func() string { return pick("", "", "v") + semverGen() },
		dpkgScheme: func() string {
			v := pick("", "", "1:", "0:", "2:") + pick("0", "1", "9", "10", "01") + chars("0123456789.+~aZz", 6)
			if rng.IntN(2) == 0 {
				v += "-" + chars("0123456789.+~az", 6)
			}
			return v
		},
		rpmScheme: func() string {
			v := pick("", "", "1:", "0:") + chars("0123456789.~^_+azZ", 7)
			if rng.IntN(2) == 0 {
				v += "-" + chars("0123456789.~^_azZ", 7)
			}
			return v
		},
		apkScheme: func() string {
			v := pick("0", "1", "2", "10")
			for range rng.IntN(3) {
				v += "." + pick("0", "00", "01", "1", "2", "10")
			}
			if rng.IntN(3) == 0 {
				v += pick("a", "b", "z")
			}
			for range rng.IntN(3) {
				v += "_" + pick("alpha", "beta", "pre", "rc", "cvs", "svn", "git", "hg", "p") + pick("", "0", "1", "2", "10", "20250101")
			}
			if rng.IntN(2) == 0 {
				v += "-r" + pick("0", "1", "2", "10")
			}
			return v
		},
		gemScheme: func() string {
			v := pick("0", "1", "2", "10", "01")
			for range rng.IntN(4) {
				v += "." + pick("0", "1", "2", "10", "a", "b", "z", "A", "a1", "1a")
			}
			return v
		},
		pep440Scheme: func() string {
			v := pick("", "", "", "1!", "0!") + pick("0", "1", "2", "1.0", "1.0.0", "1.1", "1.01", "2.0.1")
			if rng.IntN(2) == 0 {
				v += pick("a", "b", "rc", "c", "alpha", "-beta", ".pre", "preview") + pick("", "0", "1", "2", "10")
			}
			if rng.IntN(2) == 0 {
				v += pick(".post", "-", "post", ".r", "-rev") + pick("0", "1", "2")
			}
			if rng.IntN(2) == 0 {
				v += pick(".dev", "dev", "-dev") + pick("", "0", "1", "2")
			}
			if rng.IntN(3) == 0 {
				v += "+" + pick("abc", "1", "2", "abc.1", "1.abc", "1.2", "1.10", "01", "ubuntu1")
			}
			return v
		},
	}
	for s, gen := range gens {
		var vs []Version
		for len(vs) < 200 {
			if p, err := s.Parse(gen()); err == nil {
				vs = append(vs, p)
			}
		}
		checked := 0
		for range n {
			a, b := vs[rng.IntN(len(vs))], vs[rng.IntN(len(vs))]
			want, ok := reference(s, a.String(), b.String())
			if !ok {
				continue
			}
			checked++
			if got := a.Compare(b); got != want {
				t.Errorf("%s: %q vs %q: got %d, reference library says %d", s, a, b, got, want)
			}
		}
		if checked < n/2 {
			t.Errorf("%s: only %d of %d pairs checked against the reference library", s, checked, n)
		}
	}
}
