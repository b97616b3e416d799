//go:build !(cgo && isal)

package image

import (
	"io"

	"github.com/klauspost/compress/gzip"
)

// GzipImplementation names the gzip decoder moat was built with.
const GzipImplementation = "go"

func newGzipReader(src io.Reader) (io.ReadCloser, error) { return gzip.NewReader(src) }
