package backend

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// cgroupRoot and hybridCgroup2 are where systemd's hybrid layout mounts cgroups: v1
// controllers in a tmpfs at /sys/fs/cgroup, and a cgroup2 hierarchy at unified.
const (
	cgroupRoot    = "/sys/fs/cgroup"
	hybridCgroup2 = "/sys/fs/cgroup/unified"
)

// hybridCgroups reports whether the host has the hybrid layout, which crun 1.8 refuses
// ("cgroups in hybrid mode not supported, drop all controllers from cgroupv2") when the
// cgroup2 hierarchy has any controller enabled.
func hybridCgroups() bool {
	var root, unified unix.Statfs_t
	if unix.Statfs(cgroupRoot, &root) != nil || root.Type != unix.TMPFS_MAGIC {
		return false
	}
	return unix.Statfs(hybridCgroup2, &unified) == nil && unified.Type == unix.CGROUP2_SUPER_MAGIC
}

// startCommand starts cmd. With hide set, cmd starts in a mount namespace of its own in
// which the cgroup2 mount at hide is unmounted, so that the runtime sees a cgroup v1 host
// and manages v1 controllers only. The namespace is made on a locked OS thread that is
// thrown away afterwards (a goroutine that exits locked ends its thread), because a mount
// namespace belongs to the thread that unshared it and to the processes it starts. Mount
// propagation is made a slave first, so the unmount stays in the new namespace while mounts
// made on the host later still show in it.
func startCommand(cmd *exec.Cmd, hide string) error {
	if cmd.Env == nil {
		cmd.Env = runtimeEnv()
	}
	if hide == "" {
		return cmd.Start()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// Deliberately never unlocked: this thread's mount namespace is not the process's.
		if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
			errc <- fmt.Errorf("unsharing the mount namespace: %w", err)
			return
		}
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, ""); err != nil {
			errc <- fmt.Errorf("making mounts slaves: %w", err)
			return
		}
		if err := unix.Unmount(hide, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			errc <- fmt.Errorf("hiding %s: %w", hide, err)
			return
		}
		errc <- cmd.Start()
	}()
	return <-errc
}

// runtimeEnv is moat's environment without TMPDIR. runc makes its temporary directories (the
// copy-up of a tmpfs over an image directory) after entering the container's user namespace,
// as the mapped root, which cannot write to a private TMPDIR; the system /tmp it falls back
// to is writable by everyone.
func runtimeEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TMPDIR=") {
			out = append(out, kv)
		}
	}
	return out
}
