package version

import "strings"

// guarded compares through a third-party library. A panic in the library is recovered and the
// two strings are ordered byte-wise instead, which keeps Compare total and antisymmetric; Parse
// has already rejected every input known to upset the libraries, and FuzzParse looks for more.
func guarded(a, b string, f func() int) (c int) {
	defer func() {
		if recover() != nil {
			c = strings.Compare(a, b)
		}
	}()
	return sign(f())
}
