// Package sbomfile reads an SBOM made earlier into moat's inventory model, so that an image can
// be scanned from its SBOM alone (`moat scan sbom:PATH`). It reads moat's own JSON inventory,
// CycloneDX 1.2 to 1.6 (JSON and XML) and SPDX 2.1 to 2.3 (JSON and tag-value), whatever tool
// wrote them; the format is recognised from the content, never from the file name.
//
// Packages are identified by their package URLs. What moat writes into CycloneDX properties and
// SPDX comments is read back, so that moat → CycloneDX → moat keeps everything vulnerability
// matching needs; Trivy's and Syft's own properties and purl qualifiers are read too. What
// cannot be used (components without a package URL, ecosystems moat does not match, malformed
// entries) is left out and summarised in Inventory.Warnings, one warning per kind.
//
// Every input is untrusted: sizes are bounded, names and versions are checked with
// sbom.ValidToken, nesting is limited, and no input makes the package panic.
package sbomfile

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/moatsec/moat/internal/sbom"
)

// MaxSize is the largest SBOM read, in bytes. The SBOM of a large image is tens of megabytes.
const MaxSize = 256 << 20

// ImageSource is the ImageInfo.Source of every inventory read from an SBOM.
const ImageSource = "sbom"

// maxNesting bounds how deeply CycloneDX components may nest inside each other. Real SBOMs nest
// a few levels (an application, its archives, their libraries).
const maxNesting = 64

// Errors that classify why a file could not be read.
var (
	// ErrUnknownFormat means the content is not an SBOM format moat reads.
	ErrUnknownFormat = errors.New("not a moat, CycloneDX or SPDX document")
	// ErrTooLarge means the file is larger than MaxSize.
	ErrTooLarge = errors.New("SBOM too large")
	// ErrEmpty means the file has no content.
	ErrEmpty = errors.New("file is empty")
)

// Format is an SBOM format moat reads.
type Format string

// The formats moat reads. The names match the report package's output format names where the
// two overlap.
const (
	FormatMoatJSON      Format = "json"
	FormatCycloneDXJSON Format = "cyclonedx-json"
	FormatCycloneDXXML  Format = "cyclonedx-xml"
	FormatSPDXJSON      Format = "spdx-json"
	FormatSPDXTagValue  Format = "spdx-tag-value"
)

// String names the format for people ("CycloneDX JSON").
func (f Format) String() string {
	switch f {
	case FormatMoatJSON:
		return "moat JSON"
	case FormatCycloneDXJSON:
		return "CycloneDX JSON"
	case FormatCycloneDXXML:
		return "CycloneDX XML"
	case FormatSPDXJSON:
		return "SPDX JSON"
	case FormatSPDXTagValue:
		return "SPDX tag-value"
	}
	return string(f)
}

// Read reads the SBOM at path. Directories, and files larger than MaxSize, are refused before
// anything is read.
func Read(ctx context.Context, path string) (*sbom.Inventory, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("reading SBOM %s: %w", path, err)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading SBOM: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("reading SBOM: %w", err)
	}
	if fi.IsDir() {
		return nil, fmt.Errorf("reading SBOM %s: is a directory, not a file", path)
	}
	if fi.Mode().IsRegular() && fi.Size() > MaxSize {
		return nil, fmt.Errorf("reading SBOM %s: %w: %d bytes, more than the %d read", path, ErrTooLarge, fi.Size(), MaxSize)
	}
	// Pipes and devices have no size: the limit is enforced while reading.
	data, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading SBOM %s: %w", path, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("reading SBOM %s: %w", path, err)
	}
	return Decode(data, path)
}

// Decode reads an SBOM held in memory. name identifies it in errors (a file name), and is the
// image name when the SBOM names none.
func Decode(data []byte, name string) (*sbom.Inventory, error) {
	if len(data) > MaxSize {
		return nil, fmt.Errorf("reading SBOM %s: %w: %d bytes, more than the %d read", name, ErrTooLarge, len(data), MaxSize)
	}
	format, err := DetectFormat(data)
	if err != nil {
		return nil, fmt.Errorf("reading SBOM %s: %w", name, err)
	}
	b := newBuilder()
	data = trimStart(data)
	switch format {
	case FormatMoatJSON:
		err = decodeMoat(data, b)
	case FormatCycloneDXJSON, FormatCycloneDXXML:
		err = decodeCycloneDX(data, format, b)
	default:
		err = decodeSPDX(data, format, b)
	}
	if err != nil {
		return nil, fmt.Errorf("reading SBOM %s: %s: %w", name, format, err)
	}
	return b.finish(name), nil
}

// safely runs a third-party parser, turning a panic into an error: malformed input must be
// refused, never crash the program. moat's own code runs outside it, so that its bugs stay
// visible.
func safely(parse func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("malformed document: the parser failed: %s", prose(fmt.Sprint(r), 200))
		}
	}()
	return parse()
}

// probe holds the top-level fields that tell the JSON formats apart.
type probe struct {
	BOMFormat     string          `json:"bomFormat"`
	SPDXVersion   string          `json:"spdxVersion"`
	SchemaVersion string          `json:"schemaVersion"`
	Tool          json.RawMessage `json:"tool"`
	Context       json.RawMessage `json:"@context"`
}

// DetectFormat recognises the format of an SBOM from its content: JSON documents by their
// top-level fields (bomFormat, spdxVersion, schemaVersion and tool), XML documents by the
// CycloneDX namespace of their root element, and SPDX tag-value by its SPDXVersion tag.
func DetectFormat(data []byte) (Format, error) {
	data = trimStart(data)
	if len(data) == 0 {
		return "", ErrEmpty
	}
	switch data[0] {
	case '{':
		return detectJSON(data)
	case '[':
		return "", fmt.Errorf("%w: a JSON array", ErrUnknownFormat)
	case '<':
		return detectXML(data)
	}
	if isTagValue(data) {
		return FormatSPDXTagValue, nil
	}
	return "", fmt.Errorf("%w: starts with %s", ErrUnknownFormat, quoteStart(data))
}

func detectJSON(data []byte) (Format, error) {
	var p probe
	if err := json.Unmarshal(data, &p); err != nil {
		// A field of an unexpected type is for the format's own decoder to report; anything
		// else is not JSON.
		var typeErr *json.UnmarshalTypeError
		if !errors.As(err, &typeErr) {
			return "", fmt.Errorf("not valid JSON: %w", err)
		}
	}
	switch {
	case p.BOMFormat == "CycloneDX":
		return FormatCycloneDXJSON, nil
	case p.SPDXVersion != "":
		return FormatSPDXJSON, nil
	case bytes.Contains(p.Context, []byte("spdx.org")):
		return "", fmt.Errorf("%w: SPDX 3 (JSON-LD) is not supported; moat reads SPDX 2.1 to 2.3", ErrUnknownFormat)
	case p.SchemaVersion != "" && len(p.Tool) > 0:
		return FormatMoatJSON, nil
	case p.BOMFormat != "":
		return "", fmt.Errorf("%w: bomFormat is %s, not CycloneDX", ErrUnknownFormat, quote(p.BOMFormat, 40))
	}
	return "", fmt.Errorf("%w: a JSON object without bomFormat, spdxVersion or schemaVersion", ErrUnknownFormat)
}

// cdxNamespace is the prefix of every CycloneDX XML namespace ("http://cyclonedx.org/schema/bom/1.6").
const cdxNamespace = "http://cyclonedx.org/schema/bom/"

func detectXML(data []byte) (Format, error) {
	d := xml.NewDecoder(bytes.NewReader(data))
	for {
		tok, err := d.Token()
		if err != nil {
			return "", fmt.Errorf("not valid XML: %w", err)
		}
		start, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		if start.Name.Local == "bom" && strings.HasPrefix(start.Name.Space, cdxNamespace) {
			return FormatCycloneDXXML, nil
		}
		if strings.Contains(start.Name.Space, "spdx.org") || start.Name.Local == "RDF" {
			return "", fmt.Errorf("%w: SPDX RDF/XML is not supported; moat reads SPDX JSON and tag-value", ErrUnknownFormat)
		}
		return "", fmt.Errorf("%w: XML root element %s in namespace %s", ErrUnknownFormat,
			quote(start.Name.Local, 40), quote(start.Name.Space, 80))
	}
}

// isTagValue reports whether data looks like an SPDX tag-value document: an SPDXVersion tag at
// the start of a line near the beginning.
func isTagValue(data []byte) bool {
	head := data[:min(len(data), 64<<10)]
	for line := range bytes.Lines(head) {
		if bytes.HasPrefix(bytes.TrimLeft(line, " \t"), []byte("SPDXVersion:")) {
			return true
		}
	}
	return false
}

// trimStart drops a UTF-8 byte-order mark and leading white space.
func trimStart(data []byte) []byte {
	data = bytes.TrimPrefix(data, []byte{0xef, 0xbb, 0xbf})
	return bytes.TrimLeft(data, " \t\r\n")
}

// quoteStart quotes the first few bytes of data for an error message.
func quoteStart(data []byte) string {
	return quote(string(data[:min(len(data), 32)]), 32)
}
