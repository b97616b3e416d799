package version

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	pep440 "github.com/aquasecurity/go-pep440-version"
)

// pep440Key is a Python version (PEP 440), ordered as the packaging library's Version:
// epoch, release (trailing zeros ignored), pre-release, post-release, dev-release, local.
//
// go-pep440-version validates and normalises the string ("1.0-RC.1" is "1.0rc1"); its
// canonical form is read into these fields once, because the library's own Compare formats
// both versions as strings on every call (about 7 µs). Two things differ from it, both
// following PEP 440 where the library does not: local segments are split on '-' and '_' as
// well as '.', and they compare numbers by value however long.
type pep440Key struct {
	epoch   uint64
	release []uint64 // trailing zeros removed
	// pre is the pre-release phase: pepDevOnly for a bare dev-release ("1.0.dev1" sorts before
	// "1.0a1"), 0 for a, 1 for b, 2 for rc, pepFinal when there is none.
	pre   int8
	preN  uint64
	post  bool
	postN uint64
	dev   bool
	devN  uint64
	local []segment // nil when there is no local version
}

const (
	pepDevOnly int8 = -1
	pepFinal   int8 = 3
)

func parsePEP440(s string) (key, error) {
	if isPlainRelease(s) {
		// Most bounds are plain releases; they need neither the library's regular expression
		// nor its normal form.
		return readCanonicalPEP440(s)
	}
	var canon string
	if err := safely(func() error {
		v, err := pep440.Parse(s)
		if err != nil {
			return err
		}
		canon = v.String()
		return nil
	}); err != nil {
		return nil, err
	}
	k, err := readCanonicalPEP440(canon)
	if err != nil {
		return nil, fmt.Errorf("reading normalised form %q: %w", canon, err)
	}
	return k, nil
}

// readCanonicalPEP440 reads the normal form go-pep440-version prints:
// [N!]N(.N)*[{a|b|rc}N][.postN][.devN][+local].
func readCanonicalPEP440(s string) (*pep440Key, error) {
	k := &pep440Key{pre: pepFinal}
	var err error
	if e, rest, ok := strings.Cut(s, "!"); ok {
		if k.epoch, err = strconv.ParseUint(e, 10, 64); err != nil {
			return nil, fmt.Errorf("reading epoch: %w", err)
		}
		s = rest
	}
	s, local, hasLocal := strings.Cut(s, "+")
	if s, k.devN, k.dev, err = cutNumberedSuffix(s, ".dev"); err != nil {
		return nil, err
	}
	if s, k.postN, k.post, err = cutNumberedSuffix(s, ".post"); err != nil {
		return nil, err
	}
	// The release is digits and dots; a pre-release follows it directly.
	end := 0
	for end < len(s) && (isDigit(s[end]) || s[end] == '.') {
		end++
	}
	if pre := s[end:]; pre != "" {
		var label string
		n := 0
		for n < len(pre) && !isDigit(pre[n]) {
			n++
		}
		label, pre = pre[:n], pre[n:]
		switch label {
		case "a":
			k.pre = 0
		case "b":
			k.pre = 1
		case "rc":
			k.pre = 2
		default:
			return nil, fmt.Errorf("unknown pre-release %q", label)
		}
		if k.preN, err = strconv.ParseUint(pre, 10, 64); err != nil {
			return nil, fmt.Errorf("reading pre-release number: %w", err)
		}
	} else if k.dev && !k.post {
		k.pre = pepDevOnly
	}
	for _, f := range strings.Split(s[:end], ".") {
		n, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("reading release: %w", err)
		}
		k.release = append(k.release, n)
	}
	for len(k.release) > 0 && k.release[len(k.release)-1] == 0 {
		k.release = k.release[:len(k.release)-1]
	}
	if hasLocal {
		if local == "" {
			return nil, errors.New("empty local version")
		}
		for _, f := range strings.FieldsFunc(local, func(r rune) bool { return r == '.' || r == '-' || r == '_' }) {
			if allDigits(f) {
				k.local = append(k.local, segment{num: true, value: strings.TrimLeft(f, "0")})
			} else {
				k.local = append(k.local, segment{value: f})
			}
		}
	}
	return k, nil
}

// cutNumberedSuffix removes a trailing suffix+digits ("1.0.dev3" → "1.0", 3).
func cutNumberedSuffix(s, suffix string) (string, uint64, bool, error) {
	i := strings.LastIndex(s, suffix)
	if i < 0 || !allDigits(s[i+len(suffix):]) {
		return s, 0, false, nil
	}
	n, err := strconv.ParseUint(s[i+len(suffix):], 10, 64)
	if err != nil {
		return "", 0, false, fmt.Errorf("reading %s number: %w", suffix[1:], err)
	}
	return s[:i], n, true, nil
}

func (k *pep440Key) compare(o key) int {
	p := o.(*pep440Key)
	if c := cmp.Compare(k.epoch, p.epoch); c != 0 {
		return c
	}
	if c := slices.Compare(k.release, p.release); c != 0 {
		return c
	}
	if c := cmp.Compare(k.pre, p.pre); c != 0 {
		return c
	}
	if k.pre != pepDevOnly && k.pre != pepFinal {
		if c := cmp.Compare(k.preN, p.preN); c != 0 {
			return c
		}
	}
	// No post-release sorts before any; no dev-release sorts after any.
	if k.post != p.post {
		return boolOrder(k.post, p.post)
	}
	if c := cmp.Compare(k.postN, p.postN); c != 0 {
		return c
	}
	if k.dev != p.dev {
		return -boolOrder(k.dev, p.dev)
	}
	if c := cmp.Compare(k.devN, p.devN); c != 0 {
		return c
	}
	return compareLocal(k.local, p.local)
}

// compareLocal orders local versions: none before any; then segment by segment, strings
// before numbers, strings by bytes, numbers by value; a shorter version before a longer one it
// is a prefix of.
func compareLocal(a, b []segment) int {
	if (a == nil) != (b == nil) {
		return boolOrder(a != nil, b != nil)
	}
	for i := 0; i < len(a) && i < len(b); i++ {
		if c := a[i].compare(b[i]); c != 0 {
			return c
		}
	}
	return cmp.Compare(len(a), len(b))
}

// boolOrder orders false before true.
func boolOrder(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}
