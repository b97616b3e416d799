package backend

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Runc runs containers with runc, for the hardened isolation level.
type Runc struct{ *ociCLI }

// Crun runs containers with crun, for the hardened isolation level. On a host with hybrid
// cgroups crun runs in a mount namespace in which the cgroup2 mount is hidden, so that it
// uses the v1 controllers (crun 1.8 refuses hybrid hosts otherwise).
type Crun struct{ *ociCLI }

// Runsc runs containers in gVisor sandboxes, for the sandbox isolation level: each container
// gets its own user-space kernel (the Sentry) between it and the host's kernel.
type Runsc struct {
	*ociCLI
	shared string
}

// NewRunc returns the runc backend, keeping its state under dir (created if missing).
func NewRunc(dir string, opts ...Option) (*Runc, error) {
	o, err := buildOptions("runc", opts)
	if err != nil {
		return nil, err
	}
	bin, err := lookBinary("runc", o.binary, "install it with: apt-get install runc")
	if err != nil {
		return nil, err
	}
	if err := checkKernel("runc"); err != nil {
		return nil, err
	}
	c, err := newCLI("runc", dir, o)
	if err != nil {
		return nil, err
	}
	c.binary = bin
	c.global = []string{"--root", c.root}
	c.logFlags = func(path string) []string { return []string{"--log", path, "--log-format", "json"} }
	return &Runc{c}, nil
}

// NewCrun returns the crun backend, keeping its state under dir (created if missing).
func NewCrun(dir string, opts ...Option) (*Crun, error) {
	o, err := buildOptions("crun", opts)
	if err != nil {
		return nil, err
	}
	bin, err := lookBinary("crun", o.binary, "install it with: apt-get install crun")
	if err != nil {
		return nil, err
	}
	if err := checkKernel("crun"); err != nil {
		return nil, err
	}
	c, err := newCLI("crun", dir, o)
	if err != nil {
		return nil, err
	}
	c.binary = bin
	c.global = []string{"--root=" + c.root}
	c.logFlags = func(path string) []string { return []string{"--log=file:" + path, "--log-format=json"} }
	if hybridCgroups() {
		c.hideCgroup2 = hybridCgroup2
	}
	return &Crun{c}, nil
}

// NewRunsc returns the gVisor backend, keeping its state under dir (created if missing).
// The platform is systrap unless WithPlatform says otherwise. A container whose spec has a
// network namespace of its own (no path: moat's default, no network) runs with
// --network=none, so the sandbox has loopback only; a spec that joins an existing network
// namespace gets gVisor's own network stack in it (--network=sandbox); a spec with no network
// namespace, the host's network (--network=host).
func NewRunsc(dir string, opts ...Option) (*Runsc, error) {
	o, err := buildOptions("runsc", opts)
	if err != nil {
		return nil, err
	}
	bin, err := lookBinary("runsc", o.binary,
		"build it with: CGO_ENABLED=0 go install gvisor.dev/gvisor/runsc@"+RunscVersion+", or hack/install-tools.sh")
	if err != nil {
		return nil, err
	}
	if err := checkKernel("runsc"); err != nil {
		return nil, err
	}
	platform := o.platform
	if platform == "" {
		platform = "systrap"
	}
	switch platform {
	case "systrap", "ptrace":
	case "kvm":
		if _, err := os.Stat("/dev/kvm"); err != nil {
			return nil, &UnavailableError{Runtime: "runsc", Missing: "/dev/kvm for the kvm platform", Hint: "use the systrap platform", Err: err}
		}
	default:
		return nil, fmt.Errorf("runsc: unknown platform %q (systrap, ptrace or kvm)", platform)
	}
	c, err := newCLI("runsc", dir, o)
	if err != nil {
		return nil, err
	}
	shared := filepath.Join(filepath.Dir(c.root), "shared")
	if err := os.MkdirAll(shared, 0o700); err != nil {
		return nil, fmt.Errorf("runsc: creating state directory: %w", err)
	}
	c.binary = bin
	// --oci-seccomp: runsc applies the spec's seccomp profile inside the sandbox too (it does
	// not by default), so the sandbox level keeps the hardened level's system call filter.
	c.global = []string{"--root=" + c.root, "--shared-root=" + shared, "--platform=" + platform, "--oci-seccomp"}
	c.createFlags = runscNetwork
	c.execInSandbox = true
	return &Runsc{ociCLI: c, shared: shared}, nil
}

// RunscVersion is the gVisor module version moat is tested with (hack/install-tools.sh).
const RunscVersion = "v0.0.0-20260905035102-160fafc42237"

// Close releases what runsc shares between sandboxes under the state directory: the pinned
// empty network namespace its gofers join. Running sandboxes are not affected (each holds
// the namespace itself); the next container pins a new one.
func (r *Runsc) Close() error {
	path := filepath.Join(r.shared, "null-netns")
	for unix.Unmount(path, unix.MNT_DETACH) == nil {
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("runsc: removing %s: %w", path, err)
	}
	return nil
}

// runscNetwork chooses gVisor's network mode from the bundle's spec.
func runscNetwork(bundle string) ([]string, error) {
	b, err := ReadSpec(bundle)
	if err != nil {
		return nil, fmt.Errorf("runsc: %w", err)
	}
	var spec specs.Spec
	if err := json.Unmarshal(b, &spec); err != nil {
		return nil, fmt.Errorf("runsc: decoding %s/config.json: %w", bundle, err)
	}
	if spec.Linux != nil {
		for _, ns := range spec.Linux.Namespaces {
			if ns.Type == specs.NetworkNamespace && ns.Path != "" {
				return []string{"--network=sandbox"}, nil
			}
			if ns.Type == specs.NetworkNamespace {
				// A new, empty network namespace: loopback only.
				return []string{"--network=none"}, nil
			}
		}
	}
	// No network namespace: the host's network (--network host), which gVisor reaches
	// through the host's sockets.
	return []string{"--network=host"}, nil
}

// lookBinary finds a runtime's binary: path if given, else name on PATH.
func lookBinary(name, path, hint string) (string, error) {
	target := name
	if path != "" {
		target = path
	}
	bin, err := exec.LookPath(target)
	if err != nil {
		return "", &UnavailableError{Runtime: name, Missing: "the " + name + " binary (" + target + ")", Hint: hint, Err: err}
	}
	return bin, nil
}

// checkKernel checks for what every backend needs from the kernel: user namespaces (root in
// the container is an unprivileged host user) and mount namespaces.
func checkKernel(name string) error {
	for _, ns := range []struct{ file, what, config string }{
		{"user", "user namespaces", "CONFIG_USER_NS"},
		{"mnt", "mount namespaces", "CONFIG_NAMESPACES"},
		{"pid", "pid namespaces", "CONFIG_PID_NS"},
	} {
		if _, err := os.Stat("/proc/self/ns/" + ns.file); err != nil {
			return &UnavailableError{Runtime: name, Missing: "kernel support for " + ns.what, Hint: "needs a kernel built with " + ns.config, Err: err}
		}
	}
	b, err := os.ReadFile("/proc/sys/user/max_user_namespaces")
	if err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && n == 0 {
			return &UnavailableError{Runtime: name, Missing: "user namespaces (user.max_user_namespaces is 0)", Hint: "sysctl -w user.max_user_namespaces=15000"}
		}
	}
	return nil
}
