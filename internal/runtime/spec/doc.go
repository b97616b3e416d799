// Package spec generates the OCI runtime spec (config.json) of a moat container: the image's
// command and environment, the root filesystem, and a hardened confinement that applies with no
// options at all — a user namespace, no capabilities, no_new_privs, a strict seccomp profile, a
// read-only root, masked kernel interfaces, cgroup limits and no network.
//
// Everything that loosens that confinement is an explicit field of Options and comes back in
// Result.Relaxations, so that the caller can refuse it when the trust policy forbids it and
// record it in the decision log. docs/isolation.md describes the defaults, each relaxation and
// the seccomp profile; the profile itself is data (profiles/hardened.json).
//
// The package is pure apart from two small reads that let it fail early with a clear message:
// /etc/passwd and /etc/group inside the root filesystem (to resolve the user) and the existence
// of bind-mount sources. It starts nothing.
package spec
