package spec

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path"
	"reflect"
	"slices"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// RelaxationKind names one way a container's confinement was loosened.
type RelaxationKind string

// The relaxations Generate reports. The names are stable: policies and decision logs use them.
const (
	// RelaxCapAdd grants a capability; Value is its name (CAP_NET_ADMIN).
	RelaxCapAdd RelaxationKind = "cap-add"
	// RelaxWritableRootfs mounts the root filesystem read-write.
	RelaxWritableRootfs RelaxationKind = "writable-rootfs"
	// RelaxNetwork joins a network namespace; Value is "host", "container:NAME" or the
	// namespace's path.
	RelaxNetwork RelaxationKind = "network"
	// RelaxSeccompUnconfined runs without a seccomp filter.
	RelaxSeccompUnconfined RelaxationKind = "seccomp-unconfined"
	// RelaxSeccompProfile replaces the hardened profile; Value is "NAME@sha256:...".
	RelaxSeccompProfile RelaxationKind = "seccomp-profile"
	// RelaxNewPrivileges leaves no_new_privs unset.
	RelaxNewPrivileges RelaxationKind = "new-privileges"
	// RelaxUnlimited removes a cgroup limit; Value is memory, cpus or pids.
	RelaxUnlimited RelaxationKind = "unlimited"
	// RelaxBindMount mounts a host path; Value is SOURCE:DESTINATION:ro|rw.
	RelaxBindMount RelaxationKind = "bind-mount"
	// RelaxPublish publishes a port of a container on the bridge network on the host's
	// addresses; Value is [HOSTIP:]HOSTPORT:PORT/PROTO. The engine reports it.
	RelaxPublish RelaxationKind = "publish"
)

// Relaxation is one loosening of the hardened defaults that Options asked for.
type Relaxation struct {
	Kind  RelaxationKind `json:"kind"`
	Value string         `json:"value,omitempty"`
}

// String is the relaxation as a person reads it: "cap-add CAP_NET_ADMIN".
func (r Relaxation) String() string {
	if r.Value == "" {
		return string(r.Kind)
	}
	return string(r.Kind) + " " + r.Value
}

// Result is a generated container configuration.
type Result struct {
	// Spec is the OCI runtime spec, to be written as config.json beside the root filesystem.
	Spec *specs.Spec
	// Level is the isolation level the spec was made for.
	Level Level
	// IDMap is the user-namespace mapping in the spec: the root filesystem must be owned (or
	// idmapped) accordingly.
	IDMap IDMap
	// Seccomp is the profile in the spec; nil when unconfined.
	Seccomp *SeccompProfile
	// Relaxations lists, in a stable order, everything that loosens the hardened defaults.
	Relaxations []Relaxation
}

// ConfigJSON returns Spec as config.json: compact, as json.Marshal writes it, stable for equal
// input.
func (r *Result) ConfigJSON() ([]byte, error) {
	// The generated encoder writes what json.Marshal writes, without building encoding/json's
	// encoders for the runtime-spec types in every moat process (1.5 ms). Compact: runtimes
	// read it, people read it with jq.
	if r.Spec == nil {
		return nil, errors.New("encoding the runtime spec: no spec")
	}
	b, err := appendSpecJSON(make([]byte, 0, 32<<10), r.Spec)
	if err != nil {
		return nil, fmt.Errorf("encoding the runtime spec: %w", err)
	}
	return append(b, '\n'), nil
}

// SpecVersion is the ociVersion of the specs Generate makes: the oldest version that has
// everything they use (linux.seccomp.defaultErrnoRet is 1.1.0), not the newest the Go types
// know, because runtimes refuse versions newer than theirs (crun 1.8 stops at 1.1).
const SpecVersion = "1.1.0"

// Defaults applied to every container, documented in docs/isolation.md.
const (
	DefaultHostname = "moat"
	// DefaultOOMScoreAdj makes container processes the kernel's preferred victims when the
	// whole host (not just the container's cgroup) runs out of memory.
	DefaultOOMScoreAdj = 500
	defaultPath        = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	// Soft and hard limits on open files: systemd's defaults, 1024 so that select() stays
	// safe, 524288 for programs that raise it.
	nofileSoft, nofileHard = 1024, 524288
	// memlockLimit is the kernel's default RLIMIT_MEMLOCK (since 5.16), set explicitly so that
	// it does not depend on the limits of the process that started moat.
	memlockLimit     = 8 << 20
	tmpSize          = 128 << 20
	runSize          = 16 << 20
	shmSize          = 64 << 20
	annotationPrefix = "org.moatsec.moat."
)

// MaskedPaths returns the paths hidden from every container (an empty file or an empty
// read-only directory is mounted over each): Docker's list, plus /proc/kallsyms (kernel
// addresses, a KASLR bypass where kptr_restrict is 0), /sys/dev/block (the host's block
// devices) and /sys/fs/selinux.
func MaskedPaths() []string { return slices.Clone(maskedPaths) }

// ReadonlyPaths returns the paths mounted read-only in every container: Docker's list.
func ReadonlyPaths() []string { return slices.Clone(readonlyPaths) }

var maskedPaths = []string{
	"/proc/acpi",
	"/proc/asound",
	"/proc/interrupts",
	"/proc/kallsyms",
	"/proc/kcore",
	"/proc/keys",
	"/proc/latency_stats",
	"/proc/sched_debug",
	"/proc/scsi",
	"/proc/timer_list",
	"/proc/timer_stats",
	"/sys/dev/block",
	"/sys/devices/virtual/powercap",
	"/sys/firmware",
	"/sys/fs/selinux",
}

var readonlyPaths = []string{
	"/proc/bus",
	"/proc/fs",
	"/proc/irq",
	"/proc/sys",
	"/proc/sysrq-trigger",
}

// Generate makes the runtime spec of a container running image (its config) from the root
// filesystem at rootfs (an absolute host path) with o. The zero Options give the hardened
// default. It fails with ErrUnsupportedLevel for vm, ErrNoCommand when there is nothing to run,
// ErrUnknownUser for a user the image lacks, and ErrInvalid for any other bad option; nothing
// is created either way.
func Generate(image v1.Config, rootfs string, o Options) (*Result, error) {
	level := o.Level
	if level == "" {
		level = Hardened
	}
	if err := level.check(); err != nil {
		return nil, err
	}
	if !path.IsAbs(rootfs) || strings.ContainsRune(rootfs, 0) {
		return nil, fmt.Errorf("%w: root filesystem %q is not an absolute path", ErrInvalid, rootfs)
	}
	rootfs = path.Clean(rootfs)

	idmap := o.IDMap
	if idmap == (IDMap{}) {
		idmap = DefaultIDMap()
	}
	if err := idmap.validate(); err != nil {
		return nil, err
	}

	res := &Result{Level: level, IDMap: idmap}
	relax := func(k RelaxationKind, v string) { res.Relaxations = append(res.Relaxations, Relaxation{k, v}) }

	caps, err := normalizeCaps(o.CapAdd)
	if err != nil {
		return nil, err
	}
	for _, c := range caps {
		relax(RelaxCapAdd, c)
	}
	if o.WritableRootfs {
		relax(RelaxWritableRootfs, "")
	}
	switch {
	case o.HostNetwork && o.NetNSPath != "":
		return nil, fmt.Errorf("%w: the host's network and the network namespace %s conflict", ErrInvalid, o.NetNSPath)
	case o.HostNetwork:
		relax(RelaxNetwork, "host")
	case o.NetNSPath != "":
		if !path.IsAbs(o.NetNSPath) || strings.ContainsRune(o.NetNSPath, 0) {
			return nil, fmt.Errorf("%w: network namespace %q is not an absolute path", ErrInvalid, o.NetNSPath)
		}
		if o.NetNSOf != "" {
			relax(RelaxNetwork, o.NetNSOf)
		} else {
			relax(RelaxNetwork, o.NetNSPath)
		}
	}

	seccomp, rel, err := chooseSeccomp(o, level)
	if err != nil {
		return nil, err
	}
	res.Seccomp = seccomp
	res.Relaxations = append(res.Relaxations, rel...)
	if o.AllowNewPrivileges {
		relax(RelaxNewPrivileges, "")
	}

	resources, unlimited, err := o.Resources.resolve()
	if err != nil {
		return nil, err
	}
	for _, u := range unlimited {
		relax(RelaxUnlimited, u)
	}

	mounts, err := buildMounts(o.Mounts)
	if err != nil {
		return nil, err
	}
	if o.Files == nil {
		// The image's files, confined to the root filesystem (symbolic links cannot lead out):
		// what /tmp and /run hold here, the accounts in buildProcess.
		if root, err := os.OpenRoot(rootfs); err == nil {
			defer root.Close()
			o.Files = root.FS()
		}
	}
	copyUpOnlyContent(mounts, o.Files)
	if level != Sandbox && (o.HostNetwork || o.NetNSPath != "") {
		sysfsOfNetwork(mounts)
	}
	for _, f := range []struct{ src, dst string }{{o.ResolvConf, "/etc/resolv.conf"}, {o.Hosts, "/etc/hosts"}} {
		if f.src == "" || slices.ContainsFunc(o.Mounts, func(m Mount) bool { return path.Clean(m.Destination) == f.dst }) {
			continue // a mount of the user's own there wins
		}
		if !path.IsAbs(f.src) || strings.ContainsRune(f.src, 0) {
			return nil, fmt.Errorf("%w: %s's source %q is not an absolute path", ErrInvalid, f.dst, f.src)
		}
		mounts = append(mounts, specs.Mount{Destination: f.dst, Type: "bind", Source: f.src, Options: []string{"bind", "rprivate", "ro", "nosuid", "nodev", "noexec"}})
	}
	for _, m := range o.Mounts {
		if m.Type == Bind {
			mode := "rw"
			if m.ReadOnly {
				mode = "ro"
			}
			relax(RelaxBindMount, path.Clean(m.Source)+":"+path.Clean(m.Destination)+":"+mode)
		}
	}

	hostname := o.Hostname
	if hostname == "" {
		hostname = DefaultHostname
	}
	if err := checkHostname(hostname); err != nil {
		return nil, err
	}
	annotations, err := buildAnnotations(o.Annotations, level, res.Seccomp)
	if err != nil {
		return nil, err
	}

	proc, err := buildProcess(image, hostname, idmap, o)
	if err != nil {
		return nil, err
	}
	if proc.Rlimits, err = rlimits(o); err != nil {
		return nil, err
	}
	proc.Capabilities = &specs.LinuxCapabilities{Bounding: caps, Effective: caps, Permitted: caps}
	proc.NoNewPrivileges = !o.AllowNewPrivileges

	namespaces := []specs.LinuxNamespace{
		{Type: specs.UserNamespace},
		{Type: specs.PIDNamespace},
		{Type: specs.IPCNamespace},
		{Type: specs.UTSNamespace},
		{Type: specs.MountNamespace},
		{Type: specs.NetworkNamespace, Path: o.NetNSPath},
		{Type: specs.CgroupNamespace},
	}
	if o.HostNetwork {
		namespaces = slices.DeleteFunc(namespaces, func(n specs.LinuxNamespace) bool { return n.Type == specs.NetworkNamespace })
	}
	linux := &specs.Linux{
		UIDMappings: []specs.LinuxIDMapping{{ContainerID: 0, HostID: idmap.HostUID, Size: idmap.Size}},
		GIDMappings: []specs.LinuxIDMapping{{ContainerID: 0, HostID: idmap.HostGID, Size: idmap.Size}},
		Namespaces:  namespaces,
		Resources:   resources,
		CgroupsPath: o.CgroupsPath,
		// RootfsPropagation stays unset: the runtimes' default (rslave) lets nothing propagate
		// from the container to the host, and the spec's enum has no recursive "rprivate".
		MaskedPaths:   MaskedPaths(),
		ReadonlyPaths: ReadonlyPaths(),
	}
	if res.Seccomp != nil {
		linux.Seccomp = copySeccomp(res.Seccomp.Seccomp)
		if level == Sandbox {
			forRunsc(linux.Seccomp)
		}
	}

	res.Spec = &specs.Spec{
		Version:     SpecVersion,
		Process:     proc,
		Root:        &specs.Root{Path: rootfs, Readonly: !o.WritableRootfs},
		Hostname:    hostname,
		Mounts:      mounts,
		Annotations: annotations,
		Linux:       linux,
	}
	return res, nil
}

// chooseSeccomp picks the profile Options ask for (nil for unconfined) and the relaxation that
// choice is, if any.
func chooseSeccomp(o Options, level Level) (*SeccompProfile, []Relaxation, error) {
	var p *SeccompProfile
	var rel []Relaxation
	switch {
	case o.SeccompUnconfined && o.Seccomp != nil:
		return nil, nil, fmt.Errorf("%w: seccomp=unconfined conflicts with the seccomp profile %s", ErrInvalid, o.Seccomp.Name)
	case o.SeccompUnconfined:
		return nil, []Relaxation{{RelaxSeccompUnconfined, ""}}, nil
	case o.Seccomp != nil:
		if err := validateSeccomp(&o.Seccomp.Seccomp); err != nil {
			return nil, nil, fmt.Errorf("%w %s: %w", ErrInvalidProfile, o.Seccomp.Name, err)
		}
		p = o.Seccomp
		if !isHardened(p) {
			rel = append(rel, Relaxation{RelaxSeccompProfile, p.Name + "@" + p.Digest})
		}
	default:
		var err error
		if p, err = Profile(ProfileHardened); err != nil {
			return nil, nil, fmt.Errorf("loading the built-in seccomp profile: %w", err)
		}
	}
	if level == Sandbox {
		if err := runscCompatible(&p.Seccomp); err != nil {
			return nil, nil, fmt.Errorf("%w %s: %w", ErrInvalidProfile, p.Name, err)
		}
	}
	return p, rel, nil
}

// forRunsc adapts a profile to runsc, which answers every SCMP_ACT_ERRNO rule with EPERM
// whatever its errnoRet (runsc/specutils/seccomp, at the pinned version). A profile that answers
// clone3 with ENOSYS means "use clone instead", and glibc falls back only on ENOSYS: under runsc
// every new thread would fail. A TRACE rule with no tracer attached (ptrace is denied) is
// answered with ENOSYS by gVisor, so at the sandbox level clone3 is traced: glibc falls back to
// clone, whose namespace-flag filter applies, and no user namespace is made even inside gVisor.
func forRunsc(sc *specs.LinuxSeccomp) {
	found := false
	kept := sc.Syscalls[:0]
	for _, s := range sc.Syscalls {
		if s.Action == specs.ActErrno && len(s.Args) == 0 && s.ErrnoRet != nil && *s.ErrnoRet == eNOSYS && slices.Contains(s.Names, "clone3") {
			found = true
			s.Names = slices.DeleteFunc(s.Names, func(n string) bool { return n == "clone3" })
			if len(s.Names) == 0 {
				continue
			}
		}
		kept = append(kept, s)
	}
	sc.Syscalls = kept
	if found {
		sc.Syscalls = append(sc.Syscalls, specs.LinuxSyscall{Names: []string{"clone3"}, Action: specs.ActTrace})
	}
}

// eNOSYS is the errno of a call the kernel does not have.
const eNOSYS = 38

// isHardened reports whether p is the built-in hardened profile, unchanged: anything else given
// as Options.Seccomp is a relaxation, whatever it calls itself.
func isHardened(p *SeccompProfile) bool {
	h, err := Profile(ProfileHardened)
	if err != nil || !p.Builtin || p.Name != ProfileHardened || p.Digest != h.Digest {
		return false
	}
	return reflect.DeepEqual(p.Seccomp, h.Seccomp)
}

// resolve applies the defaults and returns the cgroup resources and the limits removed.
func (r Resources) resolve() (*specs.LinuxResources, []string, error) {
	var unlimited []string
	out := &specs.LinuxResources{Devices: deviceRules()}

	switch {
	case r.Memory == Unlimited:
		unlimited = append(unlimited, "memory")
	case r.Memory == 0 || r.Memory >= MinMemory:
		limit := r.Memory
		if limit == 0 {
			limit = DefaultMemory
		}
		// Swap is memory+swap in the OCI spec: equal to the limit means no swap, so that the
		// limit cannot be escaped by swapping the host's disk.
		swap := limit
		out.Memory = &specs.LinuxMemory{Limit: &limit, Swap: &swap}
	default:
		return nil, nil, fmt.Errorf("%w: memory limit %d bytes is below the minimum of %d (6 MiB)", ErrInvalid, r.Memory, MinMemory)
	}

	switch {
	case r.CPUs == Unlimited:
		unlimited = append(unlimited, "cpus")
	case r.CPUs == 0 || (r.CPUs >= 0.01 && r.CPUs <= 4096 && !math.IsNaN(r.CPUs)):
		cpus := r.CPUs
		if cpus == 0 {
			cpus = DefaultCPUs
		}
		quota := int64(math.Round(cpus * float64(cpuPeriod)))
		period := cpuPeriod
		out.CPU = &specs.LinuxCPU{Quota: &quota, Period: &period}
	default:
		return nil, nil, fmt.Errorf("%w: CPU limit %v is not between 0.01 and 4096", ErrInvalid, r.CPUs)
	}

	switch {
	case r.Pids == Unlimited:
		unlimited = append(unlimited, "pids")
	case r.Pids >= 0:
		limit := r.Pids
		if limit == 0 {
			limit = DefaultPids
		}
		out.Pids = &specs.LinuxPids{Limit: &limit}
	default:
		return nil, nil, fmt.Errorf("%w: pids limit %d is negative (use %d for no limit)", ErrInvalid, r.Pids, Unlimited)
	}
	return out, unlimited, nil
}

// deviceRules deny every device in the devices cgroup, then allow the ones the runtime creates
// in the container's /dev (null, zero, full, random, urandom, tty, the console and the
// pseudo-terminals). No host device is added to the spec.
func deviceRules() []specs.LinuxDeviceCgroup {
	rule := func(major, minor int64) specs.LinuxDeviceCgroup {
		r := specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: &major, Access: "rwm"}
		if minor >= 0 {
			r.Minor = &minor
		}
		return r
	}
	return []specs.LinuxDeviceCgroup{
		{Allow: false, Access: "rwm"},
		rule(1, 3),    // null
		rule(1, 5),    // zero
		rule(1, 7),    // full
		rule(1, 8),    // random
		rule(1, 9),    // urandom
		rule(5, 0),    // tty
		rule(5, 1),    // console
		rule(5, 2),    // ptmx
		rule(136, -1), // pts/*
	}
}

// defaultMounts are the kernel filesystems and scratch space of every container.
func defaultMounts() []specs.Mount {
	return []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: tmpfsOptions(false, false, os.ModePerm|os.ModeSticky, shmSize, false)},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"}},
		{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: tmpfsOptions(false, false, os.ModePerm|os.ModeSticky, tmpSize, true)},
		{Destination: "/run", Type: "tmpfs", Source: "tmpfs", Options: tmpfsOptions(false, false, 0o755, runSize, true)},
	}
}

// copyUpOnlyContent drops tmpcopyup from the tmpfs mounts over directories that the image
// leaves empty or does not have: there is nothing to copy, and runc's copy (the tmpfs mounted
// aside, the directory walked, the tmpfs moved into place) costs 5 ms a mount, 10 on an
// overlay root, which is most of what a short container's start costs beyond a bare runc's.
// When the image's directory cannot be read (files is nil, the path leads out of the root or
// is not a directory), tmpcopyup stays.
func copyUpOnlyContent(mounts []specs.Mount, files fs.FS) {
	for i, m := range mounts {
		if m.Type != "tmpfs" || !slices.Contains(m.Options, "tmpcopyup") || hasContent(files, m.Destination) {
			continue
		}
		mounts[i].Options = slices.DeleteFunc(slices.Clone(m.Options), func(o string) bool { return o == "tmpcopyup" })
	}
}

// hasContent reports whether dir (absolute, clean) may hold something in files: false only
// when it certainly does not exist or is an empty directory.
func hasContent(files fs.FS, dir string) bool {
	if files == nil {
		return true
	}
	f, err := files.Open(strings.TrimPrefix(dir, "/"))
	if err != nil {
		return !errors.Is(err, fs.ErrNotExist)
	}
	defer f.Close()
	d, ok := f.(fs.ReadDirFile)
	if !ok {
		return true
	}
	entries, err := d.ReadDir(1)
	return len(entries) > 0 || (err != nil && !errors.Is(err, io.EOF))
}

// tmpfsOptions are the options of a tmpfs: always nosuid and nodev; copyUp asks runc and crun to
// copy what the image has at the mount point into the new tmpfs (runsc ignores it).
func tmpfsOptions(readOnly, exec bool, mode os.FileMode, size int64, copyUp bool) []string {
	opts := []string{"nosuid", "nodev"}
	if !exec {
		opts = append(opts, "noexec")
	}
	if readOnly {
		opts = append(opts, "ro")
	}
	opts = append(opts, "mode="+octal(mode), "size="+strconv.FormatInt(size, 10))
	if copyUp {
		opts = append(opts, "tmpcopyup")
	}
	return opts
}

// replaceable are default mounts a user mount at the same destination replaces.
var replaceable = []string{"/tmp", "/run", "/dev/shm"}

// buildMounts checks the user's mounts and merges them with the defaults.
func buildMounts(user []Mount) ([]specs.Mount, error) {
	seen := map[string]bool{}
	var extra []specs.Mount
	replaced := map[string]specs.Mount{}
	for _, m := range user {
		if err := m.check(); err != nil {
			return nil, err
		}
		dst := path.Clean(m.Destination)
		if seen[dst] {
			return nil, fmt.Errorf("%w: two mounts at %s", ErrInvalid, dst)
		}
		seen[dst] = true
		var sm specs.Mount
		switch m.Type {
		case Bind:
			src := path.Clean(m.Source)
			if _, err := os.Stat(src); err != nil {
				return nil, fmt.Errorf("%w: bind mount source %s: %w", ErrInvalid, src, err)
			}
			mode := "rw"
			if m.ReadOnly {
				mode = "ro"
			}
			sm = specs.Mount{Destination: dst, Type: "bind", Source: src, Options: []string{"rbind", "rprivate", "nosuid", "nodev", mode}}
		case Tmpfs:
			mode, size := m.Mode, m.Size
			if mode == 0 {
				mode = os.ModePerm | os.ModeSticky
			}
			if size == 0 {
				size = DefaultTmpfsSize
			}
			sm = specs.Mount{Destination: dst, Type: "tmpfs", Source: "tmpfs", Options: tmpfsOptions(m.ReadOnly, m.Exec, mode, size, false)}
		}
		if slices.Contains(replaceable, dst) {
			replaced[dst] = sm
			continue
		}
		extra = append(extra, sm)
	}
	var out []specs.Mount
	for _, d := range defaultMounts() {
		if r, ok := replaced[d.Destination]; ok {
			d = r
		}
		out = append(out, d)
	}
	// Parents before children, so that a mount inside another is not hidden by it.
	slices.SortStableFunc(extra, func(a, b specs.Mount) int {
		return strings.Count(a.Destination, "/") - strings.Count(b.Destination, "/")
	})
	return append(out, extra...), nil
}

// sysfsOfNetwork replaces the sysfs mount of a container that joins a network namespace its
// user namespace does not own (the host's, another container's, one at a path), where the
// kernel refuses a new sysfs: /sys is then the host's sysfs, bound read-only without what is
// mounted below it (debugfs, bpffs, securityfs...), as rootless Podman does. The cgroup mount
// and the masked and read-only paths still apply on top. gVisor has a sysfs of its own.
func sysfsOfNetwork(mounts []specs.Mount) {
	for i, m := range mounts {
		if m.Destination == "/sys" && m.Type == "sysfs" {
			mounts[i] = specs.Mount{Destination: "/sys", Type: "bind", Source: "/sys", Options: []string{"rbind", "rprivate", "nosuid", "noexec", "nodev", "rro"}}
		}
	}
}

// checkHostname accepts what sethostname(2) and DNS both accept.
func checkHostname(h string) error {
	if len(h) > 64 {
		return fmt.Errorf("%w: hostname %q is longer than 64 characters", ErrInvalid, h)
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("%w: hostname %q is not a valid host name", ErrInvalid, h)
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Errorf("%w: hostname %q is not a valid host name", ErrInvalid, h)
			}
		}
	}
	return nil
}

// reservedAnnotations are prefixes runtimes read as configuration: runsc takes flags and
// container types from them.
var reservedAnnotations = []string{"dev.gvisor.", "io.kubernetes.cri", annotationPrefix}

func buildAnnotations(user map[string]string, level Level, p *SeccompProfile) (map[string]string, error) {
	out := map[string]string{annotationPrefix + "isolation": string(level)}
	if p != nil {
		out[annotationPrefix+"seccomp"] = p.Name + "@" + p.Digest
	} else {
		out[annotationPrefix+"seccomp"] = "unconfined"
	}
	for k, v := range user {
		if k == "" {
			return nil, fmt.Errorf("%w: empty annotation key", ErrInvalid)
		}
		for _, r := range reservedAnnotations {
			if strings.HasPrefix(k, r) {
				return nil, fmt.Errorf("%w: annotation %q uses the reserved prefix %q", ErrInvalid, k, r)
			}
		}
		out[k] = v
	}
	return out, nil
}

// buildProcess resolves the command, environment, working directory and user.
func buildProcess(image v1.Config, hostname string, idmap IDMap, o Options) (*specs.Process, error) {
	entrypoint := image.Entrypoint
	cmd := image.Cmd
	if o.Entrypoint != nil {
		entrypoint, cmd = o.Entrypoint, nil
	}
	if len(o.Args) > 0 {
		cmd = o.Args
	}
	args := append(slices.Clone(entrypoint), cmd...)
	if len(args) == 0 || args[0] == "" {
		return nil, ErrNoCommand
	}
	for _, a := range args {
		if strings.ContainsRune(a, 0) {
			return nil, fmt.Errorf("%w: NUL in the command", ErrInvalid)
		}
	}

	cwd := "/"
	switch {
	case o.WorkingDir != "":
		if !path.IsAbs(o.WorkingDir) {
			return nil, fmt.Errorf("%w: working directory %q is not an absolute path", ErrInvalid, o.WorkingDir)
		}
		cwd = o.WorkingDir
	case image.WorkingDir != "":
		cwd = path.Join("/", image.WorkingDir)
	}
	cwd = path.Clean(cwd)
	if strings.ContainsRune(cwd, 0) {
		return nil, fmt.Errorf("%w: NUL in the working directory", ErrInvalid)
	}

	userSpec := image.User
	if o.User != "" {
		userSpec = o.User
	}
	u, err := resolveUser(userSpec, o.Files, idmap.Size)
	if err != nil {
		return nil, err
	}

	env, err := mergeEnv(image.Env, o.Env)
	if err != nil {
		return nil, err
	}
	home := u.home
	if home == "" {
		home = "/"
	}
	env = setDefault(env, "PATH", defaultPath)
	env = setDefault(env, "HOSTNAME", hostname)
	env = setDefault(env, "HOME", home)
	if o.Terminal {
		env = setDefault(env, "TERM", "xterm")
	}

	umask := uint32(0o022)
	return &specs.Process{
		Terminal:    o.Terminal,
		User:        specs.User{UID: u.uid, GID: u.gid, AdditionalGids: u.groups, Umask: &umask},
		Args:        args,
		Env:         env,
		Cwd:         cwd,
		OOMScoreAdj: ptr(DefaultOOMScoreAdj),
	}, nil
}

// rlimits are the process limits of the container.
func rlimits(o Options) ([]specs.POSIXRlimit, error) {
	ceiling := o.nofileCeiling
	if ceiling == 0 {
		ceiling = ownNofileHard()
	}
	hard := o.OpenFiles
	switch {
	case hard == 0:
		hard = min(nofileHard, ceiling)
	case hard > ceiling:
		return nil, fmt.Errorf("%w: open-files limit %d is above moat's own hard limit %d, which a container in a user namespace cannot exceed", ErrInvalid, hard, ceiling)
	}
	return []specs.POSIXRlimit{
		// No core dumps: they would land in the container's writable scratch space or,
		// through a piped core_pattern, reach a helper on the host.
		{Type: "RLIMIT_CORE", Hard: 0, Soft: 0},
		{Type: "RLIMIT_NOFILE", Hard: hard, Soft: min(nofileSoft, hard)},
	}, nil
}

func ptr[T any](v T) *T { return &v }

// mergeEnv applies override to base: an entry replaces the one with the same key in place,
// new keys are appended.
func mergeEnv(base, override []string) ([]string, error) {
	var out []string
	index := map[string]int{}
	add := func(e, from string) error {
		k, _, ok := strings.Cut(e, "=")
		if !ok || k == "" || strings.ContainsRune(e, 0) {
			return fmt.Errorf("%w: %s environment entry %q is not KEY=VALUE", ErrInvalid, from, e)
		}
		if i, ok := index[k]; ok {
			out[i] = e
			return nil
		}
		index[k] = len(out)
		out = append(out, e)
		return nil
	}
	for _, e := range base {
		if err := add(e, "image"); err != nil {
			return nil, err
		}
	}
	for _, e := range override {
		if err := add(e, "the"); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func setDefault(env []string, key, value string) []string {
	for _, e := range env {
		if strings.HasPrefix(e, key+"=") {
			return env
		}
	}
	return append(env, key+"="+value)
}
