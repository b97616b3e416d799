package version

import (
	"strings"

	gem "github.com/aquasecurity/go-gem-version"
)

// gemKey is a RubyGems version as Gem::Version orders it: the string is scanned into runs of
// digits and runs of letters ("-" standing for ".pre."), trailing zeros are dropped from the
// numeric part and from the part from the first letter run on ("1.0.0" == "1", "1.0.a0" ==
// "1.0.a"), and the segments compare in turn, missing ones as 0, a letter run before any
// number ("1.0.a" < "1.0") and letter runs by bytes.
//
// go-gem-version checks the string against RubyGems' version pattern. Its comparison is not
// used: it splits letter runs into single letters, which orders "1.0.beta" before "1.0.b" and
// "1.0.preview" before "1.0.pre", the reverse of RubyGems, and it allocates on every call.
type gemKey struct{ segs []segment }

func parseGem(s string) (key, error) {
	if !isPlainRelease(s) {
		if err := safely(func() error { _, err := gem.NewVersion(s); return err }); err != nil {
			return nil, err
		}
	}
	s = strings.ReplaceAll(s, "-", ".pre.")
	var segs []segment
	firstString := -1
	for i := 0; i < len(s); {
		j := i
		switch {
		case isDigit(s[i]):
			for j < len(s) && isDigit(s[j]) {
				j++
			}
			segs = append(segs, segment{num: true, value: strings.TrimLeft(s[i:j], "0")})
		case isAlpha(s[i]):
			for j < len(s) && isAlpha(s[j]) {
				j++
			}
			if firstString < 0 {
				firstString = len(segs)
			}
			segs = append(segs, segment{value: s[i:j]})
		default:
			j++
		}
		i = j
	}
	if firstString < 0 {
		return &gemKey{trimGemZeros(segs)}, nil
	}
	numeric := trimGemZeros(segs[:firstString])
	return &gemKey{append(numeric[:len(numeric):len(numeric)], trimGemZeros(segs[firstString:])...)}, nil
}

// trimGemZeros drops trailing zero segments.
func trimGemZeros(segs []segment) []segment {
	for len(segs) > 0 && segs[len(segs)-1].num && segs[len(segs)-1].value == "" {
		segs = segs[:len(segs)-1]
	}
	return segs
}

func (k *gemKey) compare(o key) int {
	x, y := k.segs, o.(*gemKey).segs
	zero := segment{num: true}
	for i := 0; i < len(x) || i < len(y); i++ {
		a, b := zero, zero
		if i < len(x) {
			a = x[i]
		}
		if i < len(y) {
			b = y[i]
		}
		if c := a.compare(b); c != 0 {
			return c
		}
	}
	return 0
}

// isPlainRelease reports whether s is only numbers separated by single dots ("1.2.3"), the
// form of most advisory bounds, which every scheme but the SemVer ones reads the same way and
// which needs no regular expression to check.
func isPlainRelease(s string) bool {
	run := 0
	for i := 0; i < len(s); i++ {
		switch {
		case isDigit(s[i]):
			if run++; run > maxDigits {
				return false
			}
		case s[i] == '.' && run > 0 && i < len(s)-1:
			run = 0
		default:
			return false
		}
	}
	return run > 0
}
