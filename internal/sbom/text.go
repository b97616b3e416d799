package sbom

import (
	"bytes"
	"fmt"
	"io"
	"unicode/utf8"
)

// DefaultMaxToken bounds names and versions for catalogers without a tighter ecosystem limit.
const DefaultMaxToken = 4096

// ValidToken reports whether s can be a package name or version read from an image: not
// empty, at most max bytes, valid UTF-8, and free of spaces and control characters, so that
// nothing an image declares can break a report line or a terminal.
func ValidToken(s string, max int) bool {
	if s == "" || len(s) > max || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r <= ' ' || r == 0x7f {
			return false
		}
	}
	return true
}

// ValidText is ValidToken for free text (licenses, metadata values): spaces are allowed.
func ValidText(s string, max int) bool {
	if s == "" || len(s) > max || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < ' ' || r == 0x7f {
			return false
		}
	}
	return true
}

var utf8BOM = []byte{0xef, 0xbb, 0xbf}

// ReadAll reads a whole file from its start, refusing one larger than limit, and drops a UTF-8
// byte-order mark.
func ReadAll(r Content, limit int64) ([]byte, error) {
	if n := r.Size(); n > limit {
		return nil, fmt.Errorf("file is %d bytes, more than the %d read", n, limit)
	}
	data, err := io.ReadAll(io.NewSectionReader(r, 0, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("file is more than the %d bytes read", limit)
	}
	return bytes.TrimPrefix(data, utf8BOM), nil
}
