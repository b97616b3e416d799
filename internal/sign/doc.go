// Package sign groups moat's signing code: key handles keys in cosign's formats, and cosign
// signs and verifies images the way cosign stores key-based signatures in a registry.
package sign
