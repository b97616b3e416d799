package spec

import (
	"fmt"
	"slices"
	"strings"
)

// capabilities are the Linux capabilities by name, in kernel order (capability.h, up to
// CAP_CHECKPOINT_RESTORE, Linux 5.9).
var capabilities = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
	"CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
	"CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
	"CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
	"CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
	"CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
	"CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
	"CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
	"CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
}

// Capabilities lists every capability name NormalizeCapability accepts, in kernel order.
func Capabilities() []string { return slices.Clone(capabilities) }

// NormalizeCapability turns net_admin, NET_ADMIN or CAP_NET_ADMIN into CAP_NET_ADMIN, and ALL
// into "ALL".
func NormalizeCapability(s string) (string, error) {
	u := strings.ToUpper(strings.TrimSpace(s))
	if u == "ALL" {
		return u, nil
	}
	if !strings.HasPrefix(u, "CAP_") {
		u = "CAP_" + u
	}
	if !slices.Contains(capabilities, u) {
		return "", fmt.Errorf("%w: unknown capability %q", ErrInvalid, s)
	}
	return u, nil
}

// normalizeCaps expands and deduplicates a --cap-add list, in kernel order.
func normalizeCaps(in []string) ([]string, error) {
	want := map[string]bool{}
	for _, c := range in {
		n, err := NormalizeCapability(c)
		if err != nil {
			return nil, err
		}
		if n == "ALL" {
			for _, c := range capabilities {
				want[c] = true
			}
			continue
		}
		want[n] = true
	}
	var out []string
	for _, c := range capabilities {
		if want[c] {
			out = append(out, c)
		}
	}
	return out, nil
}
