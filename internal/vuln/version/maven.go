package version

import (
	"errors"

	mvn "github.com/masahiro331/go-mvn-version"
)

// mavenKey is a Maven version, ordered as Maven's ComparableVersion by go-mvn-version:
// "1.0-alpha" < "1.0-beta" < "1.0-milestone" < "1.0-rc" < "1.0-snapshot" < "1.0" < "1.0-sp",
// unknown qualifiers after all of them, and trailing zeros ignored ("1.0.0" == "1").
//
// The library accepts any string and slices it by character index, so Parse lets through only
// printable ASCII (see checkText) starting with a digit, and numbers short enough that the
// library does not saturate them. Versions that start with a letter are refused: the library
// orders them inconsistently (FuzzParse found "A" < "0A0" < "0" < "A"), and Maven artifacts
// are numbered.
type mavenKey struct {
	raw string
	v   mvn.Version
}

func parseMaven(s string) (key, error) {
	if !isDigit(s[0]) {
		return nil, errors.New("does not start with a digit")
	}
	if err := checkDigitRuns(s); err != nil {
		return nil, err
	}
	k := &mavenKey{raw: s}
	if err := safely(func() (err error) { k.v, err = mvn.NewVersion(s); return err }); err != nil {
		return nil, err
	}
	return k, nil
}

func (k *mavenKey) compare(o key) int {
	p := o.(*mavenKey)
	return guarded(k.raw, p.raw, func() int { return k.v.Compare(p.v) })
}
