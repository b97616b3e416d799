package version

import (
	"cmp"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// rpmKey is an RPM [epoch:]version[-release], ordered as rpm does: epochs by value (absent is
// 0), then version and release with rpmvercmp.
//
// rpmvercmp is written here from rpm's rpmio/rpmvercmp.c, without allocating; the
// go-rpm-version library (a regular-expression port, about 7 µs and 12 allocations per
// comparison) is the reference in the tests and FuzzParse checks that both agree. A missing
// release sorts before any release ("1.0" < "1.0-1"), as in rpmvercmp; OSV records name full
// EVRs.
type rpmKey struct {
	epoch   uint64
	version string
	release string
}

func parseRPM(s string) (key, error) {
	var k rpmKey
	rest := s
	if e, r, ok := strings.Cut(s, ":"); ok {
		if !allDigits(e) {
			return nil, fmt.Errorf("epoch %q is not a number", e)
		}
		n, err := strconv.ParseUint(e, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("reading epoch: %w", err)
		}
		k.epoch, rest = n, r
	}
	if strings.ContainsRune(rest, ':') {
		return nil, errors.New("more than one ':'")
	}
	// rpm allows '-' in neither the version nor the release, so the string has at most one.
	v, r, hasRelease := strings.Cut(rest, "-")
	if strings.ContainsRune(r, '-') {
		return nil, errors.New("more than one '-'")
	}
	if !hasAlnum(v) {
		return nil, errors.New("version has no letters or digits")
	}
	if hasRelease && !hasAlnum(r) {
		return nil, errors.New("release has no letters or digits")
	}
	k.version, k.release = v, r
	return &k, nil
}

// hasAlnum reports whether s holds an ASCII letter or digit; rpmvercmp ignores everything else
// but '~' and '^'.
func hasAlnum(s string) bool {
	for i := 0; i < len(s); i++ {
		if isDigit(s[i]) || isAlpha(s[i]) {
			return true
		}
	}
	return false
}

func (k *rpmKey) compare(o key) int {
	p := o.(*rpmKey)
	if k.epoch != p.epoch {
		return cmp.Compare(k.epoch, p.epoch)
	}
	if c := rpmvercmp(k.version, p.version); c != 0 {
		return c
	}
	return rpmvercmp(k.release, p.release)
}

// rpmvercmp compares two version (or release) strings segment by segment: runs of digits by
// value and runs of letters by bytes, a digit run beating a letter run; other characters only
// separate, except '~', which sorts before anything (even the end: 1.0~rc1 < 1.0), and '^',
// which sorts after the end but before anything else (1.0 < 1.0^git1 < 1.0.1).
func rpmvercmp(a, b string) int {
	if a == b {
		return 0
	}
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		for i < len(a) && !rpmSignificant(a[i]) {
			i++
		}
		for j < len(b) && !rpmSignificant(b[j]) {
			j++
		}
		ac, bc := at(a, i), at(b, j)
		if ac == '~' || bc == '~' {
			if ac != '~' {
				return 1
			}
			if bc != '~' {
				return -1
			}
			i++
			j++
			continue
		}
		if ac == '^' || bc == '^' {
			if i >= len(a) {
				return -1
			}
			if j >= len(b) {
				return 1
			}
			if ac != '^' {
				return 1
			}
			if bc != '^' {
				return -1
			}
			i++
			j++
			continue
		}
		if i >= len(a) || j >= len(b) {
			break
		}
		si, sj := i, j
		numeric := isDigit(a[i])
		if numeric {
			for i < len(a) && isDigit(a[i]) {
				i++
			}
			for j < len(b) && isDigit(b[j]) {
				j++
			}
		} else {
			for i < len(a) && isAlpha(a[i]) {
				i++
			}
			for j < len(b) && isAlpha(b[j]) {
				j++
			}
		}
		if j == sj {
			// b's segment is of the other kind: a digit run is newer than a letter run.
			if numeric {
				return 1
			}
			return -1
		}
		var c int
		if numeric {
			c = compareDigits(a[si:i], b[sj:j])
		} else {
			c = strings.Compare(a[si:i], b[sj:j])
		}
		if c != 0 {
			return c
		}
	}
	switch {
	case i >= len(a) && j >= len(b):
		return 0
	case i >= len(a):
		return -1
	}
	return 1
}

// rpmSignificant reports whether rpmvercmp looks at c rather than skipping it as a separator.
func rpmSignificant(c byte) bool { return isDigit(c) || isAlpha(c) || c == '~' || c == '^' }

// at returns s[i], or 0 past the end.
func at(s string, i int) byte {
	if i < len(s) {
		return s[i]
	}
	return 0
}
