// Package runtime is moat's container engine: it turns an image and an isolation level into
// a running container. Its sub-packages generate the hardened OCI runtime spec (spec), keep
// unpacked layers in a content-addressed cache and assemble root filesystems from them
// (rootfs), and drive the OCI runtimes behind one interface (backend: runc and crun for the
// hardened level, gVisor's runsc for the sandbox).
package runtime

import _ "github.com/opencontainers/runtime-spec/specs-go" // the OCI runtime spec types every sub-package shares
