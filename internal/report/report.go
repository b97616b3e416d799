// Package report writes what moat found in a format for people or for other tools: a table
// for the terminal, moat's own JSON inventory (docs/formats/sbom.md), CycloneDX 1.6 JSON and
// SPDX 2.3 JSON.
//
// Every writer is deterministic: the same inventory gives the same bytes. Timestamps come from
// the inventory, and document identifiers (the CycloneDX serial number, the SPDX document
// namespace) are name-based UUIDs derived from the image and the tool version.
package report

import (
	"bytes"
	"cmp"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/moatsec/moat/internal/sbom"
)

// Format is an output format.
type Format string

// The formats moat writes.
const (
	// FormatTable is an aligned table for people.
	FormatTable Format = "table"
	// FormatJSON is moat's own inventory format (docs/formats/sbom.md).
	FormatJSON Format = "json"
	// FormatCycloneDXJSON is CycloneDX 1.6 in JSON.
	FormatCycloneDXJSON Format = "cyclonedx-json"
	// FormatSPDXJSON is SPDX 2.3 in JSON.
	FormatSPDXJSON Format = "spdx-json"
)

// ErrUnknownFormat is returned for a format name moat does not know.
var ErrUnknownFormat = errors.New("unknown format")

// Formats lists the formats in the order they are documented.
func Formats() []Format {
	return []Format{FormatTable, FormatJSON, FormatCycloneDXJSON, FormatSPDXJSON}
}

// formatAliases are other names accepted by ParseFormat.
var formatAliases = map[string]Format{
	"moat-json": FormatJSON,
	"cyclonedx": FormatCycloneDXJSON,
	"cdx":       FormatCycloneDXJSON,
	"spdx":      FormatSPDXJSON,
}

// ParseFormat returns the format a user named, accepting the canonical names and the aliases
// "moat-json", "cyclonedx", "cdx" and "spdx", in any case.
func ParseFormat(s string) (Format, error) {
	name := strings.ToLower(strings.TrimSpace(s))
	for _, f := range Formats() {
		if name == string(f) {
			return f, nil
		}
	}
	if f, ok := formatAliases[name]; ok {
		return f, nil
	}
	names := make([]string, 0, len(Formats()))
	for _, f := range Formats() {
		names = append(names, string(f))
	}
	return "", fmt.Errorf("%w %q: valid formats are %s (aliases: cdx, cyclonedx, moat-json, spdx)",
		ErrUnknownFormat, s, strings.Join(names, ", "))
}

// DefaultNamespace is the prefix of SPDX document namespaces when Options.Namespace is empty.
const DefaultNamespace = "https://github.com/moatsec/moat/sbom"

// Options changes how an inventory is written.
type Options struct {
	// Color styles the table with ANSI escape sequences. Other formats ignore it.
	Color bool
	// Namespace is the URI prefix of the SPDX document namespace, for organisations that
	// publish SPDX documents under their own domain; DefaultNamespace when empty.
	Namespace string
}

// WriteInventory writes inv to w in format f. Nothing is written if the inventory cannot be
// encoded.
func WriteInventory(w io.Writer, f Format, inv *sbom.Inventory, opts Options) error {
	if inv == nil {
		return errors.New("writing inventory: no inventory")
	}
	var buf bytes.Buffer
	var err error
	switch f {
	case FormatTable:
		err = writeTable(&buf, inv, opts)
	case FormatJSON:
		err = writeJSON(&buf, inv)
	case FormatCycloneDXJSON:
		err = writeCycloneDX(&buf, inv)
	case FormatSPDXJSON:
		err = writeSPDX(&buf, inv, opts)
	default:
		return fmt.Errorf("writing inventory: %w %q", ErrUnknownFormat, string(f))
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", f, err)
	}
	if _, err := w.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("writing %s: %w", f, err)
	}
	return nil
}

// sortedPackages returns a copy of pkgs in a stable order: by type, name, version, package
// URL, then the first location.
func sortedPackages(pkgs []sbom.Package) []sbom.Package {
	out := slices.Clone(pkgs)
	slices.SortStableFunc(out, func(a, b sbom.Package) int {
		return cmp.Or(
			cmp.Compare(a.Type, b.Type),
			cmp.Compare(a.Name, b.Name),
			cmp.Compare(a.Version, b.Version),
			cmp.Compare(a.PURL, b.PURL),
			cmp.Compare(firstPath(a), firstPath(b)),
		)
	})
	return out
}

func firstPath(p sbom.Package) string {
	if len(p.Locations) == 0 {
		return ""
	}
	return p.Locations[0].Path
}

// urlNamespace is the RFC 4122 name space for URLs, used to derive name-based UUIDs.
var urlNamespace = [16]byte{0x6b, 0xa7, 0xb8, 0x11, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8}

// documentUUID is a version 5 (SHA-1, name-based) UUID that identifies the document format
// writes for inv. It depends only on the image (its manifest digest, else its config digest,
// else its name and packages) and on the tool that made the inventory, so that rewriting the
// same inventory gives the same document. Version 5 rather than a SHA-256 based version 8
// because CycloneDX's schema only accepts versions 1 to 5.
func documentUUID(format Format, inv *sbom.Inventory) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s/%s?tool=%s&version=%s&image=", DefaultNamespace, format, inv.Tool.Name, inv.Tool.Version)
	switch {
	case inv.Image.Digest != "":
		b.WriteString(inv.Image.Digest)
	case inv.Image.ID != "":
		b.WriteString(inv.Image.ID)
	default:
		// Without a digest the image is only identified by what it contains.
		h := sha256.New()
		fmt.Fprintf(h, "%s\x00%s\x00", inv.Image.Source, inv.Image.Name)
		for _, p := range sortedPackages(inv.Packages) {
			fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\n", p.Type, p.Name, p.Version, p.PURL)
		}
		b.WriteString("content:" + hex.EncodeToString(h.Sum(nil)))
	}
	h := sha1.New()
	h.Write(urlNamespace[:])
	h.Write([]byte(b.String()))
	u := h.Sum(nil)[:16]
	u[6] = u[6]&0x0f | 0x50
	u[8] = u[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// imageVersion is what identifies the image's content: its manifest digest, else its config
// digest.
func imageVersion(img sbom.ImageInfo) string {
	if img.Digest != "" {
		return img.Digest
	}
	return img.ID
}

// sha256Hex returns the hex part of a "sha256:<64 hex>" digest.
func sha256Hex(digest string) (string, bool) {
	h, ok := strings.CutPrefix(digest, "sha256:")
	if !ok || len(h) != 64 {
		return "", false
	}
	if _, err := hex.DecodeString(h); err != nil {
		return "", false
	}
	return strings.ToLower(h), true
}
