// Package interop checks that keys and signatures move both ways between moat and the real
// cosign (the pinned binary hack/install-tools.sh builds), over the CNCF distribution registry
// on loopback. It has tests only; they are slow and skipped with -short.
package interop
