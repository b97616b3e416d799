//go:build unix

package spec

import "syscall"

// ownNofileHard is the hard limit on open files of this process, which the runtime passes on
// to the container: a process in a user namespace cannot raise a hard limit (runc sets rlimits
// from inside the container's user namespace), so a container's limit must not exceed it.
func ownNofileHard() uint64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return nofileHard
	}
	return uint64(rl.Max)
}
