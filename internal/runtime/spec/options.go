package spec

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
)

// Options are what a container asks for beyond its image. The zero value is the hardened
// default: every field that loosens the confinement is off unless set, and Generate reports each
// one that is set in Result.Relaxations.
type Options struct {
	// Level is the isolation level; "" is Hardened. The spec is the same at Hardened and
	// Sandbox (runsc applies it inside its own kernel) but for clone3, which the seccomp
	// profile traces at Sandbox (with no tracer, runsc answers ENOSYS, as the hardened
	// profile's errno rule does under runc and crun); VM is refused.
	Level Level

	// Args replaces the image's Cmd (docker run IMAGE ARGS...).
	Args []string
	// Entrypoint replaces the image's Entrypoint when not nil; an empty, non-nil slice clears it
	// (--entrypoint ""). Replacing the entrypoint also drops the image's Cmd, as Docker does.
	Entrypoint []string
	// Env entries (KEY=VALUE) are applied after the image's, replacing entries with the same key.
	Env []string
	// WorkingDir replaces the image's working directory; it must be absolute.
	WorkingDir string
	// User replaces the image's user: user, uid, user:group or uid:gid. Names are looked up in
	// the image's /etc/passwd and /etc/group.
	User string
	// Hostname is the container's hostname (own UTS namespace); "" is "moat".
	Hostname string
	// Terminal gives the process a pseudo-terminal (-t).
	Terminal bool
	// Annotations are added to the spec's annotations. Keys that runsc reads as configuration
	// (dev.gvisor.*) or that mean something to container runtimes (io.kubernetes.cri.*) are
	// refused.
	Annotations map[string]string
	// CgroupsPath is passed to the runtime as linux.cgroupsPath; "" leaves the runtime's
	// default.
	CgroupsPath string

	// IDMap maps container IDs to host IDs; the zero value is DefaultIDMap().
	IDMap IDMap
	// Files is the image's files: /etc/passwd and /etc/group are read from it to resolve
	// User, /tmp and /run looked at for tmpcopyup; nil reads the root filesystem, confined
	// to it (symbolic links cannot lead out).
	Files fs.FS

	// Resources are the cgroup limits; zero fields take the defaults.
	Resources Resources
	// OpenFiles is the hard limit on open files (RLIMIT_NOFILE; the soft limit is the lower of
	// it and 1024). 0 is 524288 or, if lower, moat's own hard limit: a container in a user
	// namespace cannot raise a hard limit above the one it is started with, so a larger value
	// is an error.
	OpenFiles uint64

	// nofileCeiling replaces moat's own hard limit on open files in tests; 0 reads it.
	nofileCeiling uint64

	// Mounts are bind and tmpfs mounts added to the defaults. A tmpfs at /tmp, /run or /dev/shm
	// replaces the default one there. Bind mounts are relaxations.
	Mounts []Mount

	// Relaxations. Each is off in the zero value and reported when on.

	// CapAdd lists capabilities to grant (CAP_NET_ADMIN, net_admin and NET_ADMIN are the same;
	// ALL is every capability). They go into the bounding, permitted and effective sets, not
	// the inheritable or ambient sets, as in Docker: a non-root user keeps them only through
	// file capabilities. Adding a capability does not loosen the seccomp profile.
	CapAdd []string
	// WritableRootfs mounts the root filesystem read-write (--read-only=false).
	WritableRootfs bool
	// NetNSPath joins the network namespace at this path (a network --network grants) instead
	// of a new, empty one with only loopback.
	NetNSPath string
	// NetNSOf names what NetNSPath is, for the relaxation: "container:NAME" for another
	// container's namespace (--network container:NAME); "" records the path.
	NetNSOf string
	// ResolvConf and Hosts, when set, are host files (moat's own, made for the container's
	// network) bound read-only at /etc/resolv.conf and /etc/hosts. Not relaxations.
	ResolvConf, Hosts string
	// HostNetwork shares the network namespace moat runs in (--network host): the
	// container sees the host's interfaces and may listen on and connect to its addresses.
	// Its root holds no capability over that namespace. Excludes NetNSPath.
	HostNetwork bool
	// Seccomp replaces the built-in hardened profile (--security-opt seccomp=PATH).
	Seccomp *SeccompProfile
	// SeccompUnconfined runs without a seccomp filter (--security-opt seccomp=unconfined).
	SeccompUnconfined bool
	// AllowNewPrivileges leaves no_new_privs unset (--security-opt no-new-privileges=false), so
	// that setuid and file-capability binaries work.
	AllowNewPrivileges bool
}

// Resources are the cgroup limits of a container. Zero fields take the defaults, which keep
// one container from starving the host; -1 removes a limit, a relaxation.
type Resources struct {
	// Memory is the memory limit in bytes; swap is not allowed on top of it. Default
	// DefaultMemory, at least MinMemory.
	Memory int64
	// CPUs is the CPU time as a number of CPUs (1.5 = 150 ms every 100 ms). Default DefaultCPUs.
	CPUs float64
	// Pids is the most processes and threads the container may have. Default DefaultPids.
	Pids int64
}

// The default limits.
const (
	DefaultMemory int64   = 512 << 20
	DefaultCPUs   float64 = 1
	DefaultPids   int64   = 512
	// MinMemory is the smallest memory limit moat accepts: below it the runtime itself cannot
	// start the container.
	MinMemory int64 = 6 << 20
	// Unlimited, as a Resources field, removes that limit.
	Unlimited = -1
	// cpuPeriod is the CFS period the CPU quota is expressed in (100 ms, the kernel default).
	cpuPeriod uint64 = 100000
)

// MountType is the kind of a Mount.
type MountType string

// The mount types Options.Mounts accepts.
const (
	Bind  MountType = "bind"
	Tmpfs MountType = "tmpfs"
)

// Mount is a bind mount of a host path or a tmpfs. Both are nosuid and nodev.
type Mount struct {
	Type MountType
	// Source is the absolute host path of a bind mount; it must exist.
	Source string
	// Destination is the absolute path inside the container.
	Destination string
	ReadOnly    bool
	// Exec allows executing files from a tmpfs (noexec otherwise). Bind mounts keep exec,
	// as in Docker, so that a mounted source tree can be built and run.
	Exec bool
	// Size bounds a tmpfs in bytes; 0 is DefaultTmpfsSize. Its pages count against the
	// container's memory limit either way.
	Size int64
	// Mode is the permission bits of a tmpfs's root; 0 is 01777 (like /tmp).
	Mode os.FileMode
}

// DefaultTmpfsSize is the size of a tmpfs mount that does not give one.
const DefaultTmpfsSize int64 = 64 << 20

// ParseVolume reads docker run's -v SOURCE:DESTINATION[:OPTIONS] for a host path (options
// ro, rw; anonymous and named volumes are not supported).
func ParseVolume(s string) (Mount, error) {
	parts := strings.Split(s, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return Mount{}, fmt.Errorf("%w: volume %q: want SOURCE:DESTINATION[:ro|rw] (named and anonymous volumes are not supported)", ErrInvalid, s)
	}
	m := Mount{Type: Bind, Source: parts[0], Destination: parts[1]}
	if !path.IsAbs(m.Source) {
		return Mount{}, fmt.Errorf("%w: volume %q: the source must be an absolute host path (named volumes are not supported)", ErrInvalid, s)
	}
	if len(parts) == 3 {
		for _, o := range strings.Split(parts[2], ",") {
			switch o {
			case "ro":
				m.ReadOnly = true
			case "rw":
				m.ReadOnly = false
			default:
				return Mount{}, fmt.Errorf("%w: volume %q: unknown option %q (want ro or rw)", ErrInvalid, s, o)
			}
		}
	}
	return m, m.check()
}

// ParseMount reads docker run's --mount type=bind|tmpfs,source=...,destination=...[,readonly]
// (also src, target, dst, ro, readonly=true|false, tmpfs-size=BYTES, tmpfs-mode=OCTAL and, for
// tmpfs, exec).
func ParseMount(s string) (Mount, error) {
	var m Mount
	bad := func(format string, args ...any) (Mount, error) {
		return Mount{}, fmt.Errorf("%w: mount %q: %s", ErrInvalid, s, fmt.Sprintf(format, args...))
	}
	for _, field := range strings.Split(s, ",") {
		k, v, hasValue := strings.Cut(field, "=")
		switch strings.ToLower(k) {
		case "type":
			switch MountType(v) {
			case Bind, Tmpfs:
				m.Type = MountType(v)
			default:
				return bad("type %q is not supported (want bind or tmpfs)", v)
			}
		case "source", "src":
			m.Source = v
		case "destination", "target", "dst":
			m.Destination = v
		case "readonly", "ro":
			if !hasValue {
				m.ReadOnly = true
				break
			}
			b, err := strconv.ParseBool(v)
			if err != nil {
				return bad("%s=%q is not true or false", k, v)
			}
			m.ReadOnly = b
		case "exec":
			m.Exec = true
		case "tmpfs-size":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n <= 0 {
				return bad("tmpfs-size=%q is not a positive number of bytes", v)
			}
			m.Size = n
		case "tmpfs-mode":
			n, err := strconv.ParseUint(v, 8, 32)
			if err != nil || n > 0o7777 {
				return bad("tmpfs-mode=%q is not an octal mode", v)
			}
			m.Mode = fileMode(uint32(n))
		default:
			return bad("unknown field %q", k)
		}
	}
	if m.Type == "" {
		return bad("type is missing")
	}
	return m, m.check()
}

// fileMode turns permission bits as chmod reads them (with setuid, setgid and sticky at 04000,
// 02000, 01000) into an os.FileMode.
func fileMode(n uint32) os.FileMode {
	m := os.FileMode(n & 0o777)
	if n&0o4000 != 0 {
		m |= os.ModeSetuid
	}
	if n&0o2000 != 0 {
		m |= os.ModeSetgid
	}
	if n&0o1000 != 0 {
		m |= os.ModeSticky
	}
	return m
}

// octal writes an os.FileMode's permission bits as tmpfs's mode= option reads them.
func octal(m os.FileMode) string {
	n := uint32(m.Perm())
	if m&os.ModeSetuid != 0 {
		n |= 0o4000
	}
	if m&os.ModeSetgid != 0 {
		n |= 0o2000
	}
	if m&os.ModeSticky != 0 {
		n |= 0o1000
	}
	return fmt.Sprintf("%o", n)
}

// kernelTrees are host and container paths a bind mount may not use: binding the host's /proc,
// /sys or /dev would bypass the masked paths and the device rules, and mounting over the
// container's would hide the kernel interfaces moat set up.
var kernelTrees = []string{"/proc", "/sys", "/dev"}

func under(p, dir string) bool { return p == dir || strings.HasPrefix(p, dir+"/") }

// check validates a mount on its own; Generate checks the set (duplicates, existence).
func (m Mount) check() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s mount at %q: %s", ErrInvalid, m.Type, m.Destination, fmt.Sprintf(format, args...))
	}
	if m.Destination == "" || !path.IsAbs(m.Destination) {
		return bad("the destination must be an absolute path")
	}
	if strings.ContainsRune(m.Destination, 0) || strings.ContainsRune(m.Source, 0) {
		return bad("NUL in a path")
	}
	dst := path.Clean(m.Destination)
	if dst == "/" {
		return bad("cannot mount over the root filesystem")
	}
	switch m.Type {
	case Bind:
		if m.Source == "" || !path.IsAbs(m.Source) {
			return bad("the source must be an absolute host path")
		}
		for _, t := range kernelTrees {
			if under(path.Clean(m.Source), t) {
				return bad("binding the host's %s is not allowed: it would expose kernel interfaces or devices the container must not have", t)
			}
			if under(dst, t) {
				return bad("binding over the container's %s is not allowed", t)
			}
		}
		if m.Size != 0 || m.Mode != 0 || m.Exec {
			return bad("size, mode and exec are tmpfs options")
		}
	case Tmpfs:
		if m.Source != "" {
			return bad("a tmpfs has no source")
		}
		if dst != "/dev/shm" && (under(dst, "/proc") || under(dst, "/sys") || under(dst, "/dev")) {
			return bad("a tmpfs may replace /dev/shm but not cover /proc, /sys or /dev")
		}
		if m.Size < 0 {
			return bad("negative size")
		}
		if m.Mode&^(os.ModePerm|os.ModeSetuid|os.ModeSetgid|os.ModeSticky) != 0 {
			return bad("mode %v has bits other than permissions", m.Mode)
		}
	default:
		return fmt.Errorf("%w: mount at %q: type %q is not supported (want bind or tmpfs)", ErrInvalid, m.Destination, m.Type)
	}
	return nil
}

// AddSecurityOpt applies one docker run --security-opt value to o: seccomp=unconfined,
// seccomp=PATH (a profile file in the OCI form, loaded and validated now), seccomp=NAME for a
// built-in profile, and no-new-privileges[=true|false] (":" works in place of "=", as in
// Docker). Other options (apparmor, label, systempaths) are refused, never ignored.
func (o *Options) AddSecurityOpt(opt string) error {
	k, v, hasValue := strings.Cut(opt, "=")
	if !hasValue {
		k, v, hasValue = strings.Cut(opt, ":")
	}
	switch k {
	case "seccomp":
		switch {
		case !hasValue || v == "":
			return fmt.Errorf("%w: --security-opt seccomp needs a value: unconfined, a profile file, or %s", ErrInvalid, strings.Join(ProfileNames(), ", "))
		case v == "unconfined":
			o.SeccompUnconfined, o.Seccomp = true, nil
		case slices.Contains(ProfileNames(), v) && !strings.ContainsRune(v, '/'):
			p, err := Profile(v)
			if err != nil {
				return err
			}
			o.Seccomp, o.SeccompUnconfined = p, false
		default:
			p, err := LoadProfile(v)
			if err != nil {
				return err
			}
			o.Seccomp, o.SeccompUnconfined = p, false
		}
		return nil
	case "no-new-privileges":
		if !hasValue {
			o.AllowNewPrivileges = false
			return nil
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("%w: --security-opt no-new-privileges=%q is not true or false", ErrInvalid, v)
		}
		o.AllowNewPrivileges = !b
		return nil
	}
	return fmt.Errorf("%w: --security-opt %q is not supported (supported: seccomp=unconfined|PATH|NAME, no-new-privileges[=true|false])", ErrInvalid, opt)
}
