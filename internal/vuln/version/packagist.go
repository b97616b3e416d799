package version

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// packagistKey is a Composer version as Composer normalises and orders it: up to four numbers
// (missing ones are 0, "1.2" == "1.2.0.0"), then a stability, dev < alpha < beta < RC <
// stable < patch, with its numbers ("beta2" < "beta10", "beta" < "beta1"), then a "-dev"
// suffix, which sorts before the same version without it. A leading "v", letter case, the
// separators '.', '-' and '_' before the stability and "+build" metadata do not matter:
// "v1.0.0-RC1" == "1.0.0.0rc1"; the short forms a, b, pl and p stand for alpha, beta, patch.
//
// Branch names ("dev-main", "1.x-dev") are not versions and are ErrInvalid, as are Composer's
// date versions with more than four numbers. Masterminds/semver fits neither the fourth number
// nor "patch" sorting after the release, so this one is written here.
type packagistKey struct {
	nums      [4]uint64
	stability int8
	stabNums  []uint64
	dev       bool
}

// Composer stabilities, in order.
const (
	composerDev int8 = iota
	composerAlpha
	composerBeta
	composerRC
	composerStable
	composerPatch
)

// composerModifiers are the stability words Composer recognises, longest first where one is a
// prefix of another.
var composerModifiers = []struct {
	word      string
	stability int8
}{
	{"stable", composerStable},
	{"beta", composerBeta},
	{"b", composerBeta},
	{"rc", composerRC},
	{"alpha", composerAlpha},
	{"a", composerAlpha},
	{"patch", composerPatch},
	{"pl", composerPatch},
	{"p", composerPatch},
}

func parsePackagist(s string) (key, error) {
	s, _, _ = strings.Cut(s, "+")
	s = strings.TrimPrefix(strings.ToLower(s), "v")
	if strings.HasPrefix(s, "dev-") {
		return nil, errors.New("a branch, not a version")
	}
	k := &packagistKey{stability: composerStable}
	// The numbers: dot-separated runs of digits.
	i := 0
	for n := 0; ; n++ {
		j := i
		for j < len(s) && isDigit(s[j]) {
			j++
		}
		if j == i {
			return nil, fmt.Errorf("expected a number at offset %d", i)
		}
		if n == len(k.nums) {
			return nil, errors.New("more than four numbers")
		}
		v, err := readNumber(s[i:j])
		if err != nil {
			return nil, err
		}
		k.nums[n], i = v, j
		if i+1 < len(s) && s[i] == '.' && isDigit(s[i+1]) {
			i++
			continue
		}
		break
	}
	rest := s[i:]
	if rest == "" {
		return k, nil
	}
	// The modifier: [._-]? stability ([.-]? digits)* ([.-]? dev)?
	if r, ok := cutSeparator(rest, "._-"); ok && startsWithModifier(r) {
		rest = r
	}
	for _, m := range composerModifiers {
		if !strings.HasPrefix(rest, m.word) {
			continue
		}
		nums, dev, ok := readComposerTail(rest[len(m.word):])
		if !ok {
			continue
		}
		if m.stability == composerStable {
			// Composer drops "stable" and whatever follows it.
			return k, nil
		}
		k.stability, k.stabNums, k.dev = m.stability, nums, dev
		return k, nil
	}
	if nums, dev, ok := readComposerTail(rest); ok && nums == nil && dev {
		k.stability = composerDev
		return k, nil
	}
	return nil, fmt.Errorf("unknown suffix %q", rest)
}

// startsWithModifier reports whether s starts with a stability word or "dev".
func startsWithModifier(s string) bool {
	if strings.HasPrefix(s, "dev") {
		return true
	}
	for _, m := range composerModifiers {
		if strings.HasPrefix(s, m.word) {
			return true
		}
	}
	return false
}

// cutSeparator removes one leading byte of seps from s.
func cutSeparator(s, seps string) (string, bool) {
	if s != "" && strings.IndexByte(seps, s[0]) >= 0 {
		return s[1:], true
	}
	return s, false
}

// readComposerTail reads what may follow a stability word: numbers each after an optional '.'
// or '-', then an optional "dev" after an optional '.' or '-', and nothing else.
func readComposerTail(s string) (nums []uint64, dev bool, ok bool) {
	for s != "" {
		r, _ := cutSeparator(s, ".-")
		if r == "dev" {
			return nums, true, true
		}
		j := 0
		for j < len(r) && isDigit(r[j]) {
			j++
		}
		if j == 0 {
			return nil, false, false
		}
		n, err := readNumber(r[:j])
		if err != nil {
			return nil, false, false
		}
		nums = append(nums, n)
		s = r[j:]
	}
	return nums, false, true
}

func (k *packagistKey) compare(o key) int {
	p := o.(*packagistKey)
	if c := slices.Compare(k.nums[:], p.nums[:]); c != 0 {
		return c
	}
	if k.stability != p.stability {
		return sign(int(k.stability) - int(p.stability))
	}
	if c := slices.Compare(k.stabNums, p.stabNums); c != 0 {
		return c
	}
	return boolOrder(!k.dev, !p.dev)
}
