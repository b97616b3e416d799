package version

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// nugetKey is a NuGet version, ordered as NuGet's VersionComparer: up to four numbers
// (1.2.3.4; missing ones are 0), then the release label, where a release sorts after its
// pre-releases and labels compare as SemVer 2.0 pre-releases but ignoring case
// ("1.0.0-Beta" == "1.0.0-beta"). Build metadata after '+' is ignored.
//
// Masterminds/semver has no fourth number and compares labels case-sensitively, so this one is
// written here.
type nugetKey struct {
	nums [4]uint64
	pre  []string // lower-cased identifiers; nil for a release
}

func parseNuGet(s string) (key, error) {
	s, meta, hasMeta := strings.Cut(s, "+")
	if hasMeta {
		if err := checkIdentifiers(meta); err != nil {
			return nil, fmt.Errorf("reading build metadata: %w", err)
		}
	}
	core, pre, hasPre := strings.Cut(s, "-")
	var k nugetKey
	parts := strings.Split(core, ".")
	if len(parts) > len(k.nums) {
		return nil, errors.New("more than four numbers")
	}
	for i, p := range parts {
		n, err := readNumber(p)
		if err != nil {
			return nil, err
		}
		k.nums[i] = n
	}
	if hasPre {
		if err := checkIdentifiers(pre); err != nil {
			return nil, fmt.Errorf("reading release label: %w", err)
		}
		k.pre = strings.Split(strings.ToLower(pre), ".")
	}
	return &k, nil
}

// readNumber reads one numeric component: digits only, short enough for a uint64.
func readNumber(s string) (uint64, error) {
	if !allDigits(s) {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	if len(s) > maxDigits {
		return 0, fmt.Errorf("a number has more than %d digits", maxDigits)
	}
	return strconv.ParseUint(s, 10, 64)
}

// checkIdentifiers checks dot-separated SemVer identifiers: non-empty, [0-9A-Za-z-].
func checkIdentifiers(s string) error {
	for _, id := range strings.Split(s, ".") {
		if id == "" {
			return errors.New("empty identifier")
		}
		for i := 0; i < len(id); i++ {
			if c := id[i]; !isDigit(c) && !isAlpha(c) && c != '-' {
				return fmt.Errorf("%q in identifier %q", c, id)
			}
		}
	}
	return nil
}

func (k *nugetKey) compare(o key) int {
	p := o.(*nugetKey)
	if c := slices.Compare(k.nums[:], p.nums[:]); c != 0 {
		return c
	}
	return comparePrerelease(k.pre, p.pre)
}

// comparePrerelease orders SemVer pre-release identifiers: none (a release) after any;
// numeric identifiers by value and before alphanumeric ones, those by bytes; a shorter list
// before a longer one it is a prefix of.
func comparePrerelease(a, b []string) int {
	if (a == nil) != (b == nil) {
		return boolOrder(a == nil, b == nil)
	}
	for i := 0; i < len(a) && i < len(b); i++ {
		an, bn := allDigits(a[i]), allDigits(b[i])
		var c int
		switch {
		case an && bn:
			c = compareDigits(a[i], b[i])
		case an != bn:
			c = boolOrder(!an, !bn)
		default:
			c = strings.Compare(a[i], b[i])
		}
		if c != 0 {
			return c
		}
	}
	return sign(len(a) - len(b))
}
