package version

import (
	"errors"
	"strings"
)

// apkKey is an Alpine package version (Gentoo-style: 1.2.3a_rc1_p2-r4) as apk-tools orders it.
//
// This is apk-tools' tokenizer (src/version.c) over the string, without copying it. The
// go-apk-version library implements the same algorithm but allocates two 4 KiB buffers per
// comparison; the tests use it as the reference and FuzzParse checks that both agree. Newer
// apk-tools' "~<commit hash>" suffix is not accepted.
type apkKey string

// The token types of an apk version, in the order apk-tools ranks them.
type apkToken int8

const (
	apkInvalid apkToken = iota - 1
	apkDigitOrZero
	apkDigit
	apkLetter
	apkSuffix
	apkSuffixNo
	apkRevisionNo
	apkEnd
)

var (
	// apkPreSuffixes sort before the version they follow, apkPostSuffixes after it; each in
	// rising order.
	apkPreSuffixes  = [...]string{"alpha", "beta", "pre", "rc"}
	apkPostSuffixes = [...]string{"cvs", "svn", "git", "hg", "p"}
)

func parseAPK(s string) (key, error) {
	// Token values are read into int64; no run of digits may overflow one.
	if err := checkDigitRuns(s); err != nil {
		return nil, err
	}
	// apk-tools lets "-r" stand without a number; a revision here always has one.
	for i := 0; i < len(s); i++ {
		if s[i] == '-' && !(i+2 < len(s) && s[i+1] == 'r' && isDigit(s[i+2])) {
			return nil, errors.New(`"-" not followed by "r" and a revision number`)
		}
	}
	c := apkCursor{s: s}
	t := apkDigit
	for t != apkEnd && t != apkInvalid {
		c.token(&t)
	}
	if t != apkEnd {
		return nil, errors.New("not an apk version (digits, letters, _suffixes, -rN)")
	}
	return apkKey(s), nil
}

func (k apkKey) compare(o key) int {
	a, b := apkCursor{s: string(k)}, apkCursor{s: string(o.(apkKey))}
	at, bt := apkDigit, apkDigit
	var av, bv int64
	for at == bt && at != apkEnd && at != apkInvalid && av == bv {
		av = a.token(&at)
		bv = b.token(&bt)
	}
	switch {
	case av < bv:
		return -1
	case av > bv:
		return 1
	case at == bt:
		return 0
	}
	// Equal so far, and one side goes on: the longer one is greater, unless what follows is a
	// pre-release suffix.
	if at == apkSuffix {
		if tt := at; a.token(&tt) < 0 {
			return -1
		}
	}
	if bt == apkSuffix {
		if tt := bt; b.token(&tt) < 0 {
			return 1
		}
	}
	switch {
	case at > bt:
		return -1
	case bt > at:
		return 1
	}
	return 0
}

// apkCursor walks a version string token by token.
type apkCursor struct {
	s string
	i int
}

// token reads the token of type *t at the cursor, returns its value and sets *t to the type
// of the next token (apkEnd, or apkInvalid if the rest is malformed).
func (c *apkCursor) token(t *apkToken) int64 {
	rest := c.s[c.i:]
	if rest == "" {
		*t = apkEnd
		return 0
	}
	var v int64
	n := 0
	next := apkInvalid
	switch *t {
	case apkDigitOrZero:
		// After a dot, leading zeros count against the number: 1.01 < 1.1, 1.0 > 1.
		if rest[0] == '0' {
			for n < len(rest) && rest[n] == '0' {
				n++
			}
			v = -int64(n)
			next = apkDigit
			break
		}
		fallthrough
	case apkDigit, apkSuffixNo, apkRevisionNo:
		for n < len(rest) && isDigit(rest[n]) {
			v = v*10 + int64(rest[n]-'0')
			n++
		}
	case apkLetter:
		v = int64(rest[0])
		n = 1
	case apkSuffix:
		found := false
		for i, suf := range apkPreSuffixes {
			if strings.HasPrefix(rest, suf) {
				v, n, found = int64(i-len(apkPreSuffixes)), len(suf), true
				break
			}
		}
		if !found {
			for i, suf := range apkPostSuffixes {
				if strings.HasPrefix(rest, suf) {
					v, n, found = int64(i), len(suf), true
					break
				}
			}
		}
		if !found {
			*t = apkInvalid
			return -1
		}
	default:
		*t = apkInvalid
		return -1
	}
	c.i += n
	switch {
	case c.i >= len(c.s):
		*t = apkEnd
	case next != apkInvalid:
		*t = next
	default:
		*t = c.next(*t)
	}
	return v
}

// next classifies what follows a token of type t, consuming a separator ('.', '_', "-r").
func (c *apkCursor) next(t apkToken) apkToken {
	n := apkInvalid
	if c.i >= len(c.s) {
		return apkEnd
	}
	switch ch := c.s[c.i]; {
	case (t == apkDigit || t == apkDigitOrZero) && 'a' <= ch && ch <= 'z':
		n = apkLetter
	case t == apkLetter && isDigit(ch):
		n = apkDigit
	case t == apkSuffix && isDigit(ch):
		n = apkSuffixNo
	default:
		switch ch {
		case '.':
			n = apkDigitOrZero
		case '_':
			n = apkSuffix
		case '-':
			if c.i+1 < len(c.s) && c.s[c.i+1] == 'r' {
				n = apkRevisionNo
				c.i++
			}
		}
		c.i++
	}
	// Tokens only come in rising order, with three exceptions: more digits after a digit or
	// a letter, and another suffix after a suffix number.
	if n < t && !((n == apkDigitOrZero && t == apkDigit) ||
		(n == apkSuffix && t == apkSuffixNo) ||
		(n == apkDigit && t == apkLetter)) {
		n = apkInvalid
	}
	return n
}
