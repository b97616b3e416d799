// Package escape is the escape test suite of `moat run`. It has no code of its own: its test
// builds a probe (probe/, a static Go program) into an image, runs it with the real engine at
// the hardened level (runc and crun) and at the sandbox level (runsc), and under a private
// dockerd with Docker's defaults, and fails unless every attempt the probe makes is blocked
// at every moat level. The probe attempts, harmlessly and within bounds, each known escape or
// abuse primitive: mount, user namespaces, setns, ptrace, keyctl, bpf, perf_event_open,
// io_uring, userfaultfd, open_by_handle_at, module and kexec loading, raw and packet sockets,
// mknod and host devices, writes to /proc/sysrq-trigger, /proc/sys, /sys and a cgroup
// release_agent, the host's files through /proc, setuid escalation, a fork bomb and a memory
// hog.
//
// The test writes the results side by side into docs/isolation.md when run with -update:
//
//	go test ./internal/runtime/escape -run TestEscape -update
//
// Without -update it fails when the moat columns of that table differ from what it measured.
// Docker's column is informative: it depends on the Docker version and the kernel, and is
// neither asserted nor compared.
package escape
