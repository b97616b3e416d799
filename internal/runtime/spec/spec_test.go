package spec

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden and the built-in profiles in canonical form")

func testImage() v1.Config {
	return v1.Config{
		Entrypoint: []string{"/docker-entrypoint.sh"},
		Cmd:        []string{"nginx", "-g", "daemon off;"},
		Env:        []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "NGINX_VERSION=1.27.0"},
		WorkingDir: "/srv",
		User:       "",
	}
}

func testFiles() fstest.MapFS {
	return fstest.MapFS{
		"etc/passwd": {Data: []byte("root:x:0:0:root:/root:/bin/bash\n" +
			"# a comment\n" +
			"daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n" +
			"broken line\n" +
			"nginx:x:101:101:nginx user:/nonexistent:/bin/false\n" +
			"app:x:1000:1000::/home/app:/bin/sh\n" +
			"big:x:70000:70000::/:/bin/sh\n")},
		"etc/group": {Data: []byte("root:x:0:\n" +
			"tty:x:5:\n" +
			"nginx:x:101:\n" +
			"www:x:33:nginx,app\n" +
			"video:x:44: app \n" +
			"app:x:1000:\n")},
		"run/nginx/nginx.conf": {Data: []byte("# kept by tmpcopyup\n")},
	}
}

// generate is Generate with the test image, a fixed rootfs and the test account files.
func generate(t testing.TB, o Options) *Result {
	t.Helper()
	if o.Files == nil {
		o.Files = testFiles()
	}
	if o.nofileCeiling == 0 {
		o.nofileCeiling = 1 << 20 // the golden files must not depend on the test's own limits
	}
	r, err := Generate(testImage(), "/var/lib/moat/containers/c1/rootfs", o)
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	return r
}

// TestGolden pins the whole default spec. go test ./internal/runtime/spec -update rewrites it;
// review the diff: every change there is a change to what every container gets.
func TestGolden(t *testing.T) {
	tests := []struct {
		file string
		o    Options
	}{
		{"hardened.json", Options{}},
		{"relaxed.json", Options{
			Level: Sandbox, CapAdd: []string{"net_bind_service"}, WritableRootfs: true,
			NetNSPath: "/var/run/netns/moat-c1", SeccompUnconfined: true, AllowNewPrivileges: true,
			User: "app", Terminal: true, Hostname: "web", Env: []string{"DEBUG=1"},
			Args: []string{"nginx", "-t"}, Resources: Resources{Memory: 1 << 30, CPUs: 2.5, Pids: Unlimited},
			Mounts: []Mount{
				{Type: Bind, Source: "/etc", Destination: "/config", ReadOnly: true},
				{Type: Tmpfs, Destination: "/tmp", Size: 1 << 30, Exec: true},
				{Type: Tmpfs, Destination: "/var/cache/nginx", Mode: 0o700},
			},
			IDMap:       IDMap{HostUID: 200000, HostGID: 300000, Size: 65536},
			CgroupsPath: "/moat/c1",
			Annotations: map[string]string{"org.example.team": "web"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			compact, err := generate(t, tt.o).ConfigJSON()
			if err != nil {
				t.Fatal(err)
			}
			// Indented in the golden file, for review.
			var indented bytes.Buffer
			if err := json.Indent(&indented, compact, "", "  "); err != nil {
				t.Fatal(err)
			}
			got := indented.Bytes()
			path := filepath.Join("testdata", "golden", tt.file)
			if *update {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("reading golden file (run go test ./internal/runtime/spec -update to create it): %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from the golden file; run go test ./internal/runtime/spec -update and review the diff", tt.file)
			}
		})
	}
}

// TestHardenedDefaults asserts each property of the zero-Options spec on its own, so that a
// failure says which one broke.
func TestHardenedDefaults(t *testing.T) {
	r := generate(t, Options{})
	s := r.Spec
	if len(r.Relaxations) != 0 {
		t.Errorf("relaxations %v with no options", r.Relaxations)
	}
	if r.Level != Hardened {
		t.Errorf("level %s", r.Level)
	}
	checks := []struct {
		name string
		ok   bool
	}{
		{"oci version", s.Version == SpecVersion},
		{"root read-only", s.Root != nil && s.Root.Readonly},
		{"root path", s.Root.Path == "/var/lib/moat/containers/c1/rootfs"},
		{"no new privileges", s.Process.NoNewPrivileges},
		{"capabilities object present (nil would keep runc's)", s.Process.Capabilities != nil},
		{"no bounding caps", len(s.Process.Capabilities.Bounding) == 0},
		{"no effective caps", len(s.Process.Capabilities.Effective) == 0},
		{"no permitted caps", len(s.Process.Capabilities.Permitted) == 0},
		{"no inheritable caps", len(s.Process.Capabilities.Inheritable) == 0},
		{"no ambient caps", len(s.Process.Capabilities.Ambient) == 0},
		{"oom score adj", s.Process.OOMScoreAdj != nil && *s.Process.OOMScoreAdj == DefaultOOMScoreAdj},
		{"umask 022", s.Process.User.Umask != nil && *s.Process.User.Umask == 0o022},
		{"root in container", s.Process.User.UID == 0 && s.Process.User.GID == 0},
		{"no terminal", !s.Process.Terminal},
		{"hostname", s.Hostname == DefaultHostname},
		{"uid map", slices.Equal(s.Linux.UIDMappings, []specs.LinuxIDMapping{{ContainerID: 0, HostID: DefaultIDBase, Size: IDRangeSize}})},
		{"gid map", slices.Equal(s.Linux.GIDMappings, []specs.LinuxIDMapping{{ContainerID: 0, HostID: DefaultIDBase, Size: IDRangeSize}})},
		{"no host devices", len(s.Linux.Devices) == 0},
		{"rootfs propagation left to the runtime (rslave)", s.Linux.RootfsPropagation == ""},
		{"no sysctls", len(s.Linux.Sysctl) == 0},
		{"no hooks", s.Hooks == nil},
		{"seccomp", s.Linux.Seccomp != nil && s.Linux.Seccomp.DefaultAction == specs.ActErrno},
		{"masked paths", slices.Equal(s.Linux.MaskedPaths, MaskedPaths())},
		{"read-only paths", slices.Equal(s.Linux.ReadonlyPaths, ReadonlyPaths())},
		{"annotation isolation", s.Annotations["org.moatsec.moat.isolation"] == "hardened"},
		{"annotation seccomp", strings.HasPrefix(s.Annotations["org.moatsec.moat.seccomp"], "hardened@sha256:")},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("%s does not hold", c.name)
		}
	}

	// Docker's masked and read-only paths, at least.
	for _, p := range []string{"/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
		"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap"} {
		if !slices.Contains(s.Linux.MaskedPaths, p) {
			t.Errorf("%s is not masked", p)
		}
	}
	for _, p := range []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"} {
		if !slices.Contains(s.Linux.ReadonlyPaths, p) {
			t.Errorf("%s is not read-only", p)
		}
	}

	// Every namespace is new; there is no network but loopback.
	want := []specs.LinuxNamespaceType{specs.UserNamespace, specs.PIDNamespace, specs.IPCNamespace, specs.UTSNamespace,
		specs.MountNamespace, specs.NetworkNamespace, specs.CgroupNamespace}
	var got []specs.LinuxNamespaceType
	for _, ns := range s.Linux.Namespaces {
		if ns.Path != "" {
			t.Errorf("namespace %s joins %s", ns.Type, ns.Path)
		}
		got = append(got, ns.Type)
	}
	if !slices.Equal(got, want) {
		t.Errorf("namespaces %v, want %v", got, want)
	}

	// Limits.
	res := s.Linux.Resources
	if res.Memory == nil || *res.Memory.Limit != DefaultMemory || *res.Memory.Swap != DefaultMemory {
		t.Errorf("memory %+v, want limit = swap = %d", res.Memory, DefaultMemory)
	}
	if res.CPU == nil || *res.CPU.Quota != 100000 || *res.CPU.Period != 100000 {
		t.Errorf("cpu %+v, want one CPU", res.CPU)
	}
	if res.Pids == nil || *res.Pids.Limit != DefaultPids {
		t.Errorf("pids %+v", res.Pids)
	}
	if len(res.Devices) == 0 || res.Devices[0].Allow || res.Devices[0].Access != "rwm" || res.Devices[0].Type != "" {
		t.Errorf("device rules do not start by denying everything: %+v", res.Devices)
	}
	for _, d := range res.Devices[1:] {
		if !d.Allow || d.Type != "c" || d.Major == nil || !slices.Contains([]int64{1, 5, 136}, *d.Major) {
			t.Errorf("unexpected device rule %+v", d)
		}
	}

	// rlimits.
	rl := map[string]specs.POSIXRlimit{}
	for _, l := range s.Process.Rlimits {
		rl[l.Type] = l
	}
	if l := rl["RLIMIT_NOFILE"]; l.Soft != 1024 || l.Hard != 524288 {
		t.Errorf("RLIMIT_NOFILE %+v", l)
	}
	if l, ok := rl["RLIMIT_CORE"]; !ok || l.Soft != 0 || l.Hard != 0 {
		t.Errorf("RLIMIT_CORE %+v (present %v)", l, ok)
	}

	// Mounts.
	mounts := map[string]specs.Mount{}
	for _, m := range s.Mounts {
		if _, dup := mounts[m.Destination]; dup {
			t.Errorf("two mounts at %s", m.Destination)
		}
		mounts[m.Destination] = m
		if m.Type == "bind" {
			t.Errorf("bind mount %+v in the default spec", m)
		}
	}
	for dst, opts := range map[string][]string{
		"/proc":          {"nosuid", "noexec", "nodev"},
		"/dev":           {"nosuid", "mode=755"},
		"/dev/pts":       {"nosuid", "noexec", "newinstance", "ptmxmode=0666"},
		"/dev/shm":       {"nosuid", "noexec", "nodev", "mode=1777"},
		"/dev/mqueue":    {"nosuid", "noexec", "nodev"},
		"/sys":           {"nosuid", "noexec", "nodev", "ro"},
		"/sys/fs/cgroup": {"nosuid", "noexec", "nodev", "ro"},
		"/tmp":           {"nosuid", "nodev", "noexec", "mode=1777"},
		"/run":           {"nosuid", "nodev", "noexec", "mode=755", "tmpcopyup"}, // the test image has files in /run
	} {
		m, ok := mounts[dst]
		if !ok {
			t.Errorf("no mount at %s", dst)
			continue
		}
		for _, o := range opts {
			if !slices.Contains(m.Options, o) {
				t.Errorf("%s lacks %s: %v", dst, o, m.Options)
			}
		}
	}
	if len(mounts) != 9 {
		t.Errorf("%d mounts, want 9", len(mounts))
	}

	// Process.
	if !slices.Equal(s.Process.Args, []string{"/docker-entrypoint.sh", "nginx", "-g", "daemon off;"}) {
		t.Errorf("args %q", s.Process.Args)
	}
	if s.Process.Cwd != "/srv" {
		t.Errorf("cwd %q", s.Process.Cwd)
	}
	wantEnv := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "NGINX_VERSION=1.27.0", "HOSTNAME=moat", "HOME=/root"}
	if !slices.Equal(s.Process.Env, wantEnv) {
		t.Errorf("env %q, want %q", s.Process.Env, wantEnv)
	}
}

// TestCapabilitiesJSON guards the one property that the Go value hides: with no capability the
// capabilities object must still be written, because a runtime that finds none keeps every
// capability its init process has.
func TestCapabilitiesJSON(t *testing.T) {
	b, err := generate(t, Options{}).ConfigJSON()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(`"capabilities":{}`)) {
		t.Errorf("config.json has no empty capabilities object:\n%s", b)
	}
	if !bytes.Contains(b, []byte(`"noNewPrivileges":true`)) {
		t.Error("config.json does not set noNewPrivileges")
	}
}

// TestRoundTrip reads config.json back with the OCI types: nothing may be lost or changed.
func TestRoundTrip(t *testing.T) {
	for _, o := range []Options{{}, {CapAdd: []string{"ALL"}, SeccompUnconfined: true, Terminal: true}} {
		r := generate(t, o)
		b, err := r.ConfigJSON()
		if err != nil {
			t.Fatal(err)
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		var back specs.Spec
		if err := dec.Decode(&back); err != nil {
			t.Fatalf("decoding config.json: %v", err)
		}
		again, err := json.Marshal(&back)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(append(again, '\n'), b) {
			t.Error("config.json changes through a decode and encode with the OCI types")
		}
		if back.Process.Capabilities == nil {
			t.Error("capabilities lost in the round trip")
		}
	}
}

// TestConfigSchema validates generated specs against the OCI runtime spec's own JSON Schema
// (testdata/oci-schema, v1.3.0), which is what `runc`-independent validators check.
func TestConfigSchema(t *testing.T) {
	sch := ociSchema(t)
	for name, o := range map[string]Options{
		"hardened": {},
		"sandbox":  {Level: Sandbox},
		"relaxed": {CapAdd: []string{"ALL"}, WritableRootfs: true, NetNSPath: "/run/netns/x", AllowNewPrivileges: true,
			Resources: Resources{Memory: Unlimited, CPUs: Unlimited, Pids: Unlimited}, Terminal: true, User: "nginx",
			Mounts: []Mount{{Type: Bind, Source: "/etc", Destination: "/mnt/etc"}, {Type: Tmpfs, Destination: "/scratch", Exec: true}}},
		"unconfined": {SeccompUnconfined: true},
	} {
		t.Run(name, func(t *testing.T) {
			b, err := generate(t, o).ConfigJSON()
			if err != nil {
				t.Fatal(err)
			}
			doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			if err := sch.Validate(doc); err != nil {
				t.Errorf("config.json does not validate against the OCI schema: %v", err)
			}
		})
	}
}

func ociSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	dir := filepath.Join("testdata", "oci-schema")
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no schema files in %s: %v", dir, err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft4) // the OCI schema files are draft-04; not all of them say so
	const base = "https://moat.test/oci-schema/"
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if err := c.AddResource(base+filepath.Base(f), doc); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
	}
	sch, err := c.Compile(base + "config-schema.json")
	if err != nil {
		t.Fatalf("compiling the OCI schema: %v", err)
	}
	return sch
}

func TestRelaxations(t *testing.T) {
	profile, err := ParseProfile("/etc/moat/custom.json", []byte(`{"defaultAction":"SCMP_ACT_ALLOW"}`))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tests := []struct {
		name string
		o    Options
		want []Relaxation
	}{
		{"none", Options{}, nil},
		{"explicit hardened profile", Options{Seccomp: hardened(t)}, nil},
		{"edited hardened profile", Options{Seccomp: func() *SeccompProfile {
			p := hardened(t)
			p.Seccomp.DefaultAction = specs.ActAllow
			p.Seccomp.DefaultErrnoRet = nil
			return p
		}()}, []Relaxation{{RelaxSeccompProfile, "hardened@" + hardened(t).Digest}}},
		{"sandbox level", Options{Level: Sandbox}, nil},
		{"tmpfs is not a relaxation", Options{Mounts: []Mount{{Type: Tmpfs, Destination: "/cache"}}}, nil},
		{"cap-add", Options{CapAdd: []string{"net_admin", "CAP_CHOWN", "NET_ADMIN"}},
			[]Relaxation{{RelaxCapAdd, "CAP_CHOWN"}, {RelaxCapAdd, "CAP_NET_ADMIN"}}},
		{"writable", Options{WritableRootfs: true}, []Relaxation{{RelaxWritableRootfs, ""}}},
		{"network", Options{NetNSPath: "/run/netns/a"}, []Relaxation{{RelaxNetwork, "/run/netns/a"}}},
		{"host network", Options{HostNetwork: true}, []Relaxation{{RelaxNetwork, "host"}}},
		{"container's network", Options{NetNSPath: "/proc/1/fd/3", NetNSOf: "container:web"}, []Relaxation{{RelaxNetwork, "container:web"}}},
		{"unconfined", Options{SeccompUnconfined: true}, []Relaxation{{RelaxSeccompUnconfined, ""}}},
		{"profile", Options{Seccomp: profile}, []Relaxation{{RelaxSeccompProfile, "/etc/moat/custom.json@" + profile.Digest}}},
		{"new privileges", Options{AllowNewPrivileges: true}, []Relaxation{{RelaxNewPrivileges, ""}}},
		{"unlimited", Options{Resources: Resources{Memory: Unlimited, CPUs: Unlimited, Pids: Unlimited}},
			[]Relaxation{{RelaxUnlimited, "memory"}, {RelaxUnlimited, "cpus"}, {RelaxUnlimited, "pids"}}},
		{"bind", Options{Mounts: []Mount{{Type: Bind, Source: dir + "/", Destination: "/data/"}, {Type: Bind, Source: dir, Destination: "/ro", ReadOnly: true}}},
			[]Relaxation{{RelaxBindMount, dir + ":/data:rw"}, {RelaxBindMount, dir + ":/ro:ro"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := generate(t, tt.o)
			if !slices.Equal(r.Relaxations, tt.want) {
				t.Errorf("relaxations %v, want %v", r.Relaxations, tt.want)
			}
		})
	}
}

// TestRelaxationEffects checks that each relaxation changes exactly the part of the spec it is
// about.
func TestRelaxationEffects(t *testing.T) {
	s := generate(t, Options{CapAdd: []string{"NET_BIND_SERVICE"}}).Spec
	c := s.Process.Capabilities
	want := []string{"CAP_NET_BIND_SERVICE"}
	if !slices.Equal(c.Bounding, want) || !slices.Equal(c.Effective, want) || !slices.Equal(c.Permitted, want) ||
		len(c.Inheritable) != 0 || len(c.Ambient) != 0 {
		t.Errorf("capabilities %+v", c)
	}
	if all := generate(t, Options{CapAdd: []string{"all"}}).Spec.Process.Capabilities; len(all.Bounding) != len(Capabilities()) {
		t.Errorf("ALL gave %d capabilities", len(all.Bounding))
	}
	if s := generate(t, Options{WritableRootfs: true}).Spec; s.Root.Readonly {
		t.Error("root still read-only")
	}
	s = generate(t, Options{NetNSPath: "/run/netns/a"}).Spec
	for _, ns := range s.Linux.Namespaces {
		if ns.Type == specs.NetworkNamespace && ns.Path != "/run/netns/a" {
			t.Errorf("network namespace %+v", ns)
		}
	}
	// A network namespace the container's user namespace does not own gets the host's sysfs,
	// bound read-only, recursively (the kernel refuses a new sysfs there); the sandbox keeps
	// gVisor's own.
	sysfs := func(s *specs.Spec) specs.Mount {
		for _, m := range s.Mounts {
			if m.Destination == "/sys" {
				return m
			}
		}
		t.Fatal("no /sys mount")
		return specs.Mount{}
	}
	if m := sysfs(s); m.Type != "bind" || m.Source != "/sys" || !slices.Contains(m.Options, "rro") || !slices.Contains(m.Options, "rbind") {
		t.Errorf("/sys in a joined network namespace: %+v", m)
	}
	s = generate(t, Options{HostNetwork: true}).Spec
	for _, ns := range s.Linux.Namespaces {
		if ns.Type == specs.NetworkNamespace {
			t.Errorf("host network: network namespace %+v", ns)
		}
	}
	if m := sysfs(s); m.Type != "bind" {
		t.Errorf("/sys with the host's network: %+v", m)
	}
	if m := sysfs(generate(t, Options{}).Spec); m.Type != "sysfs" {
		t.Errorf("/sys of a network namespace of its own: %+v", m)
	}
	if m := sysfs(generate(t, Options{HostNetwork: true, Level: Sandbox}).Spec); m.Type != "sysfs" {
		t.Errorf("/sys in the sandbox: %+v", m)
	}
	if _, err := Generate(testImage(), "/rootfs", Options{HostNetwork: true, NetNSPath: "/run/netns/a", Files: testFiles()}); err == nil {
		t.Error("host network and a namespace path were both accepted")
	}
	if s := generate(t, Options{SeccompUnconfined: true}).Spec; s.Linux.Seccomp != nil || s.Annotations["org.moatsec.moat.seccomp"] != "unconfined" {
		t.Errorf("seccomp %+v", s.Linux.Seccomp)
	}
	if s := generate(t, Options{AllowNewPrivileges: true}).Spec; s.Process.NoNewPrivileges {
		t.Error("no_new_privs still set")
	}
	s = generate(t, Options{Resources: Resources{Memory: Unlimited, CPUs: Unlimited, Pids: Unlimited}}).Spec
	if r := s.Linux.Resources; r.Memory != nil || r.CPU != nil || r.Pids != nil || len(r.Devices) == 0 {
		t.Errorf("resources %+v", r)
	}
	s = generate(t, Options{Resources: Resources{Memory: 64 << 20, CPUs: 0.5, Pids: 20}}).Spec
	if r := s.Linux.Resources; *r.Memory.Limit != 64<<20 || *r.Memory.Swap != 64<<20 || *r.CPU.Quota != 50000 || *r.Pids.Limit != 20 {
		t.Errorf("resources %+v %+v %+v", r.Memory, r.CPU, r.Pids)
	}
}

func TestProcess(t *testing.T) {
	tests := []struct {
		name    string
		image   func(*v1.Config)
		o       Options
		args    []string
		cwd     string
		uid     uint32
		gid     uint32
		groups  []uint32
		envHas  []string
		envLack []string
	}{
		{name: "image defaults", args: []string{"/docker-entrypoint.sh", "nginx", "-g", "daemon off;"}, cwd: "/srv", envHas: []string{"HOME=/root"}},
		{name: "args replace cmd", o: Options{Args: []string{"nginx", "-t"}}, args: []string{"/docker-entrypoint.sh", "nginx", "-t"}},
		{name: "entrypoint drops cmd", o: Options{Entrypoint: []string{"/bin/sh"}}, args: []string{"/bin/sh"}},
		{name: "entrypoint and args", o: Options{Entrypoint: []string{"/bin/sh"}, Args: []string{"-c", "id"}}, args: []string{"/bin/sh", "-c", "id"}},
		{name: "cleared entrypoint", o: Options{Entrypoint: []string{}, Args: []string{"id"}}, args: []string{"id"}},
		{name: "workdir", o: Options{WorkingDir: "/data/../work/"}, cwd: "/work"},
		{name: "relative image workdir", image: func(c *v1.Config) { c.WorkingDir = "app" }, cwd: "/app"},
		{name: "no workdir", image: func(c *v1.Config) { c.WorkingDir = "" }, cwd: "/"},
		{name: "user by name", o: Options{User: "nginx"}, uid: 101, gid: 101, groups: []uint32{33}, envHas: []string{"HOME=/nonexistent"}},
		{name: "image user", image: func(c *v1.Config) { c.User = "app" }, uid: 1000, gid: 1000, groups: []uint32{33, 44}, envHas: []string{"HOME=/home/app"}},
		{name: "uid with entry", o: Options{User: "1000"}, uid: 1000, gid: 1000, groups: []uint32{33, 44}},
		{name: "uid without entry", o: Options{User: "4242"}, uid: 4242, gid: 0, envHas: []string{"HOME=/"}},
		{name: "uid:gid", o: Options{User: "1000:5"}, uid: 1000, gid: 5},
		{name: "name:group", o: Options{User: "app:tty"}, uid: 1000, gid: 5},
		{name: "env override", o: Options{Env: []string{"NGINX_VERSION=2", "NEW=x=y", "HOME=/h"}},
			envHas: []string{"NGINX_VERSION=2", "NEW=x=y", "HOME=/h"}, envLack: []string{"NGINX_VERSION=1.27.0", "HOME=/root"}},
		{name: "terminal", o: Options{Terminal: true}, envHas: []string{"TERM=xterm"}},
		{name: "path default", image: func(c *v1.Config) { c.Env = nil }, envHas: []string{"PATH=" + defaultPath}},
		{name: "hostname env", o: Options{Hostname: "web-1"}, envHas: []string{"HOSTNAME=web-1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img := testImage()
			if tt.image != nil {
				tt.image(&img)
			}
			tt.o.Files = testFiles()
			r, err := Generate(img, "/rootfs", tt.o)
			if err != nil {
				t.Fatal(err)
			}
			p := r.Spec.Process
			if tt.args != nil && !slices.Equal(p.Args, tt.args) {
				t.Errorf("args %q, want %q", p.Args, tt.args)
			}
			if tt.cwd != "" && p.Cwd != tt.cwd {
				t.Errorf("cwd %q, want %q", p.Cwd, tt.cwd)
			}
			if p.User.UID != tt.uid || p.User.GID != tt.gid || !slices.Equal(p.User.AdditionalGids, tt.groups) {
				t.Errorf("user %+v, want %d:%d %v", p.User, tt.uid, tt.gid, tt.groups)
			}
			for _, e := range tt.envHas {
				if !slices.Contains(p.Env, e) {
					t.Errorf("env %q lacks %q", p.Env, e)
				}
			}
			for _, e := range tt.envLack {
				if slices.Contains(p.Env, e) {
					t.Errorf("env %q has %q", p.Env, e)
				}
			}
			if !slices.Contains(p.Env, "PATH="+defaultPath) {
				t.Errorf("env %q has no PATH", p.Env)
			}
		})
	}
}

// TestUserFromRootfs resolves the user from a real directory, and does not follow a symbolic
// link out of it.
func TestUserFromRootfs(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "passwd"), []byte("evil:x:1:1::/:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "etc", "group"), []byte("staff:x:50:svc\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "etc", "passwd"), []byte("svc:x:900:900::/srv:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := Generate(testImage(), root, Options{User: "svc"})
	if err != nil {
		t.Fatal(err)
	}
	if u := r.Spec.Process.User; u.UID != 900 || u.GID != 900 || !slices.Equal(u.AdditionalGids, []uint32{50}) {
		t.Errorf("user %+v", u)
	}

	if err := os.Remove(filepath.Join(root, "etc", "passwd")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "passwd"), filepath.Join(root, "etc", "passwd")); err != nil {
		t.Fatal(err)
	}
	if _, err := Generate(testImage(), root, Options{User: "evil"}); !errors.Is(err, ErrUnknownUser) {
		t.Errorf("user looked up through a symlink out of the root filesystem: %v", err)
	}
	// A missing root filesystem still works for numeric users.
	if _, err := Generate(testImage(), filepath.Join(root, "missing"), Options{User: "1:1"}); err != nil {
		t.Errorf("numeric user without a root filesystem: %v", err)
	}
}

func TestBadOptions(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name   string
		image  func(*v1.Config)
		rootfs string
		o      Options
		is     error
		msg    string
	}{
		{name: "vm", o: Options{Level: VM}, is: ErrUnsupportedLevel, msg: "micro-VM"},
		{name: "unknown level", o: Options{Level: "paranoid"}, is: ErrInvalid, msg: "paranoid"},
		{name: "relative rootfs", rootfs: "rootfs", is: ErrInvalid, msg: "not an absolute path"},
		{name: "no command", image: func(c *v1.Config) { c.Entrypoint, c.Cmd = nil, nil }, is: ErrNoCommand},
		{name: "empty command", o: Options{Entrypoint: []string{}, Args: []string{""}}, is: ErrNoCommand},
		{name: "unknown user", o: Options{User: "nobody-here"}, is: ErrUnknownUser, msg: "nobody-here"},
		{name: "unknown group", o: Options{User: "app:wheel"}, is: ErrUnknownUser, msg: "wheel"},
		{name: "uid outside range", o: Options{User: "70000"}, is: ErrInvalid, msg: "outside the container's ID range"},
		{name: "named uid outside range", o: Options{User: "big"}, is: ErrInvalid, msg: "outside"},
		{name: "group only", o: Options{User: ":5"}, is: ErrInvalid, msg: "no user"},
		{name: "empty group", o: Options{User: "app:"}, is: ErrInvalid, msg: "empty group"},
		{name: "relative workdir", o: Options{WorkingDir: "work"}, is: ErrInvalid, msg: "working directory"},
		{name: "bad env", o: Options{Env: []string{"NOEQUALS"}}, is: ErrInvalid, msg: "KEY=VALUE"},
		{name: "bad image env", image: func(c *v1.Config) { c.Env = []string{"=x"} }, is: ErrInvalid, msg: "image environment"},
		{name: "unknown cap", o: Options{CapAdd: []string{"CAP_FLY"}}, is: ErrInvalid, msg: "CAP_FLY"},
		{name: "seccomp conflict", o: Options{SeccompUnconfined: true, Seccomp: &SeccompProfile{Name: "x"}}, is: ErrInvalid, msg: "conflicts"},
		{name: "bad profile", o: Options{Seccomp: &SeccompProfile{Name: "x.json"}}, is: ErrInvalidProfile, msg: "x.json"},
		{name: "runsc action", o: Options{Level: Sandbox, Seccomp: &SeccompProfile{Name: "log.json", Seccomp: specs.LinuxSeccomp{DefaultAction: specs.ActLog}}},
			is: ErrInvalidProfile, msg: "runsc does not implement"},
		{name: "small memory", o: Options{Resources: Resources{Memory: 1 << 20}}, is: ErrInvalid, msg: "below the minimum"},
		{name: "negative memory", o: Options{Resources: Resources{Memory: -2}}, is: ErrInvalid, msg: "below the minimum"},
		{name: "tiny cpu", o: Options{Resources: Resources{CPUs: 0.001}}, is: ErrInvalid, msg: "CPU limit"},
		{name: "negative pids", o: Options{Resources: Resources{Pids: -5}}, is: ErrInvalid, msg: "pids"},
		{name: "root idmap", o: Options{IDMap: IDMap{HostUID: 0, HostGID: 0, Size: 65536}}, is: ErrInvalid, msg: "below 65536"},
		{name: "small idmap", o: Options{IDMap: IDMap{HostUID: 100000, HostGID: 100000, Size: 1000}}, is: ErrInvalid, msg: "smaller than 65536"},
		{name: "idmap overflow", o: Options{IDMap: IDMap{HostUID: 0xFFFF0000, HostGID: 100000, Size: 65536}}, is: ErrInvalid, msg: "past the largest"},
		{name: "bad hostname", o: Options{Hostname: "-x"}, is: ErrInvalid, msg: "hostname"},
		{name: "long hostname", o: Options{Hostname: strings.Repeat("a", 65)}, is: ErrInvalid, msg: "longer than 64"},
		{name: "relative netns", o: Options{NetNSPath: "netns"}, is: ErrInvalid, msg: "network namespace"},
		{name: "gvisor annotation", o: Options{Annotations: map[string]string{"dev.gvisor.flag.debug": "true"}}, is: ErrInvalid, msg: "reserved prefix"},
		{name: "cri annotation", o: Options{Annotations: map[string]string{"io.kubernetes.cri.container-type": "container"}}, is: ErrInvalid, msg: "reserved prefix"},
		{name: "moat annotation", o: Options{Annotations: map[string]string{"org.moatsec.moat.isolation": "none"}}, is: ErrInvalid, msg: "reserved prefix"},
		{name: "missing bind source", o: Options{Mounts: []Mount{{Type: Bind, Source: filepath.Join(dir, "nope"), Destination: "/x"}}}, is: os.ErrNotExist, msg: "bind mount source"},
		{name: "relative bind source", o: Options{Mounts: []Mount{{Type: Bind, Source: "data", Destination: "/x"}}}, is: ErrInvalid, msg: "absolute host path"},
		{name: "bind host proc", o: Options{Mounts: []Mount{{Type: Bind, Source: "/proc/1/root", Destination: "/host"}}}, is: ErrInvalid, msg: "host's /proc"},
		{name: "bind host dev", o: Options{Mounts: []Mount{{Type: Bind, Source: "/dev", Destination: "/hostdev"}}}, is: ErrInvalid, msg: "host's /dev"},
		{name: "bind over sys", o: Options{Mounts: []Mount{{Type: Bind, Source: dir, Destination: "/sys/kernel"}}}, is: ErrInvalid, msg: "container's /sys"},
		{name: "mount over root", o: Options{Mounts: []Mount{{Type: Tmpfs, Destination: "/"}}}, is: ErrInvalid, msg: "root filesystem"},
		{name: "relative destination", o: Options{Mounts: []Mount{{Type: Tmpfs, Destination: "tmp"}}}, is: ErrInvalid, msg: "absolute"},
		{name: "tmpfs over proc", o: Options{Mounts: []Mount{{Type: Tmpfs, Destination: "/proc/sys"}}}, is: ErrInvalid, msg: "cover /proc"},
		{name: "tmpfs with source", o: Options{Mounts: []Mount{{Type: Tmpfs, Source: "/x", Destination: "/x"}}}, is: ErrInvalid, msg: "no source"},
		{name: "bind with size", o: Options{Mounts: []Mount{{Type: Bind, Source: dir, Destination: "/x", Size: 1}}}, is: ErrInvalid, msg: "tmpfs options"},
		{name: "duplicate mount", o: Options{Mounts: []Mount{{Type: Tmpfs, Destination: "/x"}, {Type: Tmpfs, Destination: "/x/"}}}, is: ErrInvalid, msg: "two mounts"},
		{name: "unknown mount type", o: Options{Mounts: []Mount{{Type: "volume", Destination: "/x"}}}, is: ErrInvalid, msg: "not supported"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img := testImage()
			if tt.image != nil {
				tt.image(&img)
			}
			rootfs := tt.rootfs
			if rootfs == "" {
				rootfs = "/rootfs"
			}
			tt.o.Files = testFiles()
			r, err := Generate(img, rootfs, tt.o)
			if err == nil {
				t.Fatalf("Generate succeeded: %+v", r.Relaxations)
			}
			if !errors.Is(err, tt.is) || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q, want %v containing %q", err, tt.is, tt.msg)
			}
		})
	}
}

func TestOpenFiles(t *testing.T) {
	tests := []struct {
		ceiling, asked, soft, hard uint64
		err                        bool
	}{
		{ceiling: 1 << 20, soft: 1024, hard: 524288},
		{ceiling: 20000, soft: 1024, hard: 20000},
		{ceiling: 512, soft: 512, hard: 512},
		{ceiling: 1 << 20, asked: 65536, soft: 1024, hard: 65536},
		{ceiling: 1 << 20, asked: 100, soft: 100, hard: 100},
		{ceiling: 20000, asked: 65536, err: true},
	}
	for _, tt := range tests {
		r, err := Generate(testImage(), "/rootfs", Options{Files: testFiles(), OpenFiles: tt.asked, nofileCeiling: tt.ceiling})
		if tt.err {
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "cannot exceed") {
				t.Errorf("ceiling %d, asked %d: %v", tt.ceiling, tt.asked, err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range r.Spec.Process.Rlimits {
			if l.Type == "RLIMIT_NOFILE" && (l.Soft != tt.soft || l.Hard != tt.hard) {
				t.Errorf("ceiling %d, asked %d: %+v, want %d/%d", tt.ceiling, tt.asked, l, tt.soft, tt.hard)
			}
		}
	}
	// Without the test hook the limit is this process's own, capped.
	r, err := Generate(testImage(), "/rootfs", Options{Files: testFiles()})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range r.Spec.Process.Rlimits {
		if l.Type == "RLIMIT_NOFILE" && l.Hard != min(524288, ownNofileHard()) {
			t.Errorf("RLIMIT_NOFILE %+v, own hard limit %d", l, ownNofileHard())
		}
	}
}

func TestMounts(t *testing.T) {
	dir := t.TempDir()
	s := generate(t, Options{Mounts: []Mount{
		{Type: Tmpfs, Destination: "/a/b/c"},
		{Type: Bind, Source: dir, Destination: "/a", ReadOnly: true},
		{Type: Tmpfs, Destination: "/dev/shm", Size: 1 << 30},
		{Type: Bind, Source: dir, Destination: "/run"},
	}}).Spec
	var dsts []string
	byDst := map[string]specs.Mount{}
	for _, m := range s.Mounts {
		dsts = append(dsts, m.Destination)
		byDst[m.Destination] = m
	}
	want := []string{"/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/sys/fs/cgroup", "/tmp", "/run", "/a", "/a/b/c"}
	if !slices.Equal(dsts, want) {
		t.Errorf("mount order %v, want %v", dsts, want)
	}
	if m := byDst["/dev/shm"]; !slices.Contains(m.Options, "size=1073741824") {
		t.Errorf("/dev/shm not replaced: %+v", m)
	}
	if m := byDst["/run"]; m.Type != "bind" || !slices.Equal(m.Options, []string{"rbind", "rprivate", "nosuid", "nodev", "rw"}) {
		t.Errorf("/run not replaced by the bind: %+v", m)
	}
	if m := byDst["/a"]; !slices.Contains(m.Options, "ro") {
		t.Errorf("read-only bind %+v", m)
	}
	if m := byDst["/a/b/c"]; !slices.Equal(m.Options, []string{"nosuid", "nodev", "noexec", "mode=1777", "size=67108864"}) {
		t.Errorf("tmpfs %+v", m)
	}
}

func TestParseVolumeAndMount(t *testing.T) {
	good := []struct {
		in   string
		want Mount
		vol  bool
	}{
		{"/src:/dst", Mount{Type: Bind, Source: "/src", Destination: "/dst"}, true},
		{"/src:/dst:ro", Mount{Type: Bind, Source: "/src", Destination: "/dst", ReadOnly: true}, true},
		{"/src:/dst:rw", Mount{Type: Bind, Source: "/src", Destination: "/dst"}, true},
		{"type=bind,source=/s,target=/d,readonly", Mount{Type: Bind, Source: "/s", Destination: "/d", ReadOnly: true}, false},
		{"type=bind,src=/s,dst=/d,ro=false", Mount{Type: Bind, Source: "/s", Destination: "/d"}, false},
		{"type=tmpfs,destination=/t,tmpfs-size=1048576,tmpfs-mode=1770,exec", Mount{Type: Tmpfs, Destination: "/t", Size: 1 << 20, Mode: 0o770 | os.ModeSticky, Exec: true}, false},
	}
	for _, tt := range good {
		parse := ParseMount
		if tt.vol {
			parse = ParseVolume
		}
		got, err := parse(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("parse(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
	bad := []struct {
		in  string
		vol bool
		msg string
	}{
		{"data:/dst", true, "named volumes"},
		{"/dst", true, "SOURCE:DESTINATION"},
		{"/a:/b:ro:z", true, "SOURCE:DESTINATION"},
		{"/a:/b:z", true, "unknown option"},
		{"/a:b", true, "absolute"},
		{"type=volume,source=x,target=/d", false, "not supported"},
		{"source=/s,target=/d", false, "type is missing"},
		{"type=bind,source=/s,target=/d,readonly=maybe", false, "not true or false"},
		{"type=tmpfs,target=/d,tmpfs-size=-1", false, "tmpfs-size"},
		{"type=tmpfs,target=/d,tmpfs-mode=99", false, "tmpfs-mode"},
		{"type=tmpfs,target=/d,consistency=cached", false, "unknown field"},
		{"type=bind,source=/proc,target=/p", false, "host's /proc"},
	}
	for _, tt := range bad {
		parse := ParseMount
		if tt.vol {
			parse = ParseVolume
		}
		if _, err := parse(tt.in); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("parse(%q) = %v, want ErrInvalid containing %q", tt.in, err, tt.msg)
		}
	}
}

func TestAddSecurityOpt(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "p.json")
	if err := os.WriteFile(file, []byte(`{"defaultAction":"SCMP_ACT_ALLOW"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	var o Options
	for _, opt := range []string{"no-new-privileges=false", "seccomp=unconfined"} {
		if err := o.AddSecurityOpt(opt); err != nil {
			t.Fatal(err)
		}
	}
	if !o.AllowNewPrivileges || !o.SeccompUnconfined {
		t.Errorf("options %+v", o)
	}
	for _, opt := range []string{"no-new-privileges", "seccomp=" + file} {
		if err := o.AddSecurityOpt(opt); err != nil {
			t.Fatal(err)
		}
	}
	if o.AllowNewPrivileges || o.SeccompUnconfined || o.Seccomp == nil || o.Seccomp.Name != file {
		t.Errorf("options %+v", o)
	}
	if err := o.AddSecurityOpt("no-new-privileges:false"); err != nil || !o.AllowNewPrivileges {
		t.Errorf("no-new-privileges:false: %v", err)
	}
	if err := o.AddSecurityOpt("seccomp=hardened"); err != nil || o.Seccomp == nil || !o.Seccomp.Builtin {
		t.Errorf("seccomp=hardened: %v", err)
	}
	for opt, want := range map[string]error{
		"apparmor=unconfined":              ErrInvalid,
		"systempaths=unconfined":           ErrInvalid,
		"label=disable":                    ErrInvalid,
		"seccomp":                          ErrInvalid,
		"no-new-privileges=perhaps":        ErrInvalid,
		"seccomp=" + dir + "/missing.json": ErrInvalidProfile,
	} {
		if err := o.AddSecurityOpt(opt); !errors.Is(err, want) {
			t.Errorf("AddSecurityOpt(%q) = %v, want %v", opt, err, want)
		}
	}
}

func TestIDRanges(t *testing.T) {
	if m := DefaultIDMap(); m.validate() != nil || m.HostUID != DefaultIDBase || m.Size != IDRangeSize {
		t.Errorf("DefaultIDMap() = %+v", m)
	}
	m, err := IDRange(100000, 2)
	if err != nil || m != (IDMap{HostUID: 100000 + 2*65536, HostGID: 100000 + 2*65536, Size: 65536}) {
		t.Errorf("IDRange(100000, 2) = %+v, %v", m, err)
	}
	if _, err := IDRange(1000, 0); !errors.Is(err, ErrInvalid) {
		t.Errorf("IDRange below host users: %v", err)
	}
	if n := MaxIDSlots(DefaultIDBase); n != 4094 {
		t.Errorf("MaxIDSlots(default) = %d", n)
	}
	if _, err := IDRange(DefaultIDBase, MaxIDSlots(DefaultIDBase)); !errors.Is(err, ErrInvalid) {
		t.Errorf("IDRange past the last slot: %v", err)
	}
	// Every slot is valid and none overlaps the next.
	last, _ := IDRange(DefaultIDBase, MaxIDSlots(DefaultIDBase)-1)
	if err := last.validate(); err != nil {
		t.Errorf("last slot %+v: %v", last, err)
	}

	first, _ := IDRange(DefaultIDBase, 0)
	second, _ := IDRange(DefaultIDBase, 1)
	got, err := PickIDRange(DefaultIDBase, nil)
	if err != nil || got != first {
		t.Errorf("PickIDRange(none used) = %+v, %v", got, err)
	}
	got, err = PickIDRange(DefaultIDBase, []IDMap{first})
	if err != nil || got != second {
		t.Errorf("PickIDRange(first used) = %+v, %v", got, err)
	}
	// A mapping that straddles slots 0 and 1 takes both.
	straddle := IDMap{HostUID: DefaultIDBase + 1000, HostGID: DefaultIDBase + 1000, Size: 65536}
	third, _ := IDRange(DefaultIDBase, 2)
	if got, _ := PickIDRange(DefaultIDBase, []IDMap{straddle}); got != third {
		t.Errorf("PickIDRange(straddling) = %+v, want %+v", got, third)
	}
	// Only the GIDs collide: still taken.
	gidOnly := IDMap{HostUID: 1 << 20, HostGID: DefaultIDBase, Size: 65536}
	if got, _ := PickIDRange(DefaultIDBase, []IDMap{gidOnly}); got != second {
		t.Errorf("PickIDRange(GID collision) = %+v", got)
	}
	var all []IDMap
	for n := uint32(0); n < MaxIDSlots(idCeiling-3*IDRangeSize); n++ {
		m, _ := IDRange(idCeiling-3*IDRangeSize, n)
		all = append(all, m)
	}
	if _, err := PickIDRange(idCeiling-3*IDRangeSize, all); !errors.Is(err, ErrInvalid) {
		t.Errorf("PickIDRange with every slot used: %v", err)
	}
}

func TestLevels(t *testing.T) {
	for in, want := range map[string]Level{"": Hardened, "hardened": Hardened, "sandbox": Sandbox, "vm": VM} {
		if got, err := ParseLevel(in); err != nil || got != want {
			t.Errorf("ParseLevel(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ParseLevel("HARDENED"); !errors.Is(err, ErrInvalid) {
		t.Errorf("ParseLevel(HARDENED) = %v", err)
	}
	if !(Hardened.Rank() < Sandbox.Rank() && Sandbox.Rank() < VM.Rank()) || Level("x").Rank() != 0 {
		t.Error("ranks out of order")
	}
	// The same confinement at both levels, but for the annotation and clone3, which runsc
	// answers with ENOSYS only through a TRACE rule with no tracer.
	h, s := generate(t, Options{}).Spec, generate(t, Options{Level: Sandbox}).Spec
	if s.Annotations["org.moatsec.moat.isolation"] != "sandbox" {
		t.Errorf("annotations %v", s.Annotations)
	}
	if decide(t, *h.Linux.Seccomp, "clone3") != errnoVerdict(eNOSYS) || decide(t, *s.Linux.Seccomp, "clone3") != verdict(specs.ActTrace) {
		t.Errorf("clone3: hardened %s, sandbox %s", decide(t, *h.Linux.Seccomp, "clone3"), decide(t, *s.Linux.Seccomp, "clone3"))
	}
	if err := checkRuleShapes(s.Linux.Seccomp); err != nil {
		t.Errorf("sandbox profile: %v", err)
	}
	s.Annotations = h.Annotations
	forRunsc(h.Linux.Seccomp)
	hb, _ := json.Marshal(h)
	sb, _ := json.Marshal(s)
	if !bytes.Equal(hb, sb) {
		t.Error("the sandbox spec differs from the hardened one beyond its annotation and clone3")
	}
	// A profile that does not answer clone3 with ENOSYS is left alone.
	p, err := ParseProfile("p.json", []byte(`{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["clone3","bpf"],"action":"SCMP_ACT_ERRNO","errnoRet":1}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := generate(t, Options{Level: Sandbox, Seccomp: p}).Spec.Linux.Seccomp; !reflect.DeepEqual(*got, p.Seccomp) {
		t.Errorf("profile changed at sandbox: %+v", got)
	}
}

func TestNormalizeCapability(t *testing.T) {
	for in, want := range map[string]string{"net_admin": "CAP_NET_ADMIN", "CAP_SYS_ADMIN": "CAP_SYS_ADMIN", " chown ": "CAP_CHOWN", "all": "ALL", "Cap_Bpf": "CAP_BPF"} {
		if got, err := NormalizeCapability(in); err != nil || got != want {
			t.Errorf("NormalizeCapability(%q) = %q, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "CAP_", "CAP_ALL", "sys-admin"} {
		if _, err := NormalizeCapability(in); !errors.Is(err, ErrInvalid) {
			t.Errorf("NormalizeCapability(%q) = %v", in, err)
		}
	}
	if len(Capabilities()) != 41 {
		t.Errorf("%d capabilities", len(Capabilities()))
	}
}

// TestGenerateDoesNotShareProfile makes sure that editing a generated spec cannot change the
// built-in profile other containers get.
func TestGenerateDoesNotShareProfile(t *testing.T) {
	p := hardened(t)
	r := generate(t, Options{Seccomp: p})
	r.Spec.Linux.Seccomp.Syscalls[0].Names[0] = "changed"
	r.Spec.Linux.Seccomp.Architectures[0] = "changed"
	if p.Seccomp.Syscalls[0].Names[0] == "changed" || p.Seccomp.Architectures[0] == "changed" {
		t.Error("the spec shares slices with the profile")
	}
}

func FuzzParseMount(f *testing.F) {
	f.Add("type=bind,source=/s,target=/d,readonly", false)
	f.Add("type=tmpfs,destination=/t,tmpfs-size=1048576,tmpfs-mode=1770,exec", false)
	f.Add("/src:/dst:ro", true)
	f.Fuzz(func(t *testing.T, s string, volume bool) {
		parse := ParseMount
		if volume {
			parse = ParseVolume
		}
		m, err := parse(s)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v is not ErrInvalid", err)
			}
			return
		}
		if err := m.check(); err != nil {
			t.Fatalf("parsed mount %+v does not check: %v", m, err)
		}
		if m.Type == Tmpfs {
			if _, err := buildMounts([]Mount{m}); err != nil {
				t.Fatalf("buildMounts(%+v): %v", m, err)
			}
		}
	})
}

func FuzzParseAccounts(f *testing.F) {
	f.Add([]byte("root:x:0:0:root:/root:/bin/bash\napp:x:1000:1000::/home/app:/bin/sh\n"), []byte("www:x:33:app,root\n"), "app")
	f.Add([]byte("+::::::\n:::\n#c\n"), []byte("::\n"), "1:2")
	f.Add([]byte("a:x:4294967295:0::/:\n"), []byte("g:x:99999999999:a\n"), "a:g")
	f.Fuzz(func(t *testing.T, passwd, group []byte, spec string) {
		files := fstest.MapFS{"etc/passwd": {Data: passwd}, "etc/group": {Data: group}}
		u, err := resolveUser(spec, files, IDRangeSize)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v is not ErrInvalid", err)
			}
			return
		}
		for _, id := range append([]uint32{u.uid, u.gid}, u.groups...) {
			if id >= IDRangeSize {
				t.Fatalf("resolved ID %d outside the range", id)
			}
		}
	})
}

// TestNetworkFiles: moat's resolv.conf and hosts are bound read-only over the image's, are no
// relaxation, and give way to a mount of the user's own at the same place.
func TestNetworkFiles(t *testing.T) {
	find := func(r *Result, dst string) []specs.Mount {
		var out []specs.Mount
		for _, m := range r.Spec.Mounts {
			if m.Destination == dst {
				out = append(out, m)
			}
		}
		return out
	}
	r := generate(t, Options{ResolvConf: "/b/resolv.conf", Hosts: "/b/hosts"})
	for dst, src := range map[string]string{"/etc/resolv.conf": "/b/resolv.conf", "/etc/hosts": "/b/hosts"} {
		ms := find(r, dst)
		if len(ms) != 1 || ms[0].Source != src || !slices.Contains(ms[0].Options, "ro") || ms[0].Type != "bind" {
			t.Errorf("%s: %+v", dst, ms)
		}
	}
	if len(r.Relaxations) != 0 {
		t.Errorf("relaxations %v", r.Relaxations)
	}
	own := filepath.Join(t.TempDir(), "hosts")
	if err := os.WriteFile(own, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	r = generate(t, Options{ResolvConf: "/b/resolv.conf", Hosts: "/b/hosts", Mounts: []Mount{{Type: Bind, Source: own, Destination: "/etc/hosts/", ReadOnly: true}}})
	if ms := find(r, "/etc/hosts"); len(ms) != 1 || ms[0].Source != own {
		t.Errorf("a user's /etc/hosts: %+v", ms)
	}
	if _, err := Generate(testImage(), "/rootfs", Options{Files: testFiles(), Hosts: "b/hosts"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("a relative hosts file: %v", err)
	}
}

// TestTmpCopyUp checks that the tmpfs mounts over /tmp and /run copy up what the image has
// there, and only when it has something: tmpcopyup costs runc 5 to 10 ms per mount.
func TestTmpCopyUp(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"empty/tmp", "full/tmp/x", "escape", "file"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "file", "tmp"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc", filepath.Join(dir, "escape", "tmp")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		rootfs string
		files  fstest.MapFS
		want   bool
	}{
		{"no /tmp", "", fstest.MapFS{}, false},
		{"empty /tmp", "", fstest.MapFS{"tmp": {Mode: fs.ModeDir | 0o755}}, false},
		{"a file in /tmp", "", fstest.MapFS{"tmp/a": {}}, true},
		{"empty directory on disk", filepath.Join(dir, "empty"), nil, false},
		{"a directory in /tmp on disk", filepath.Join(dir, "full"), nil, true},
		{"/tmp a symbolic link out of the root", filepath.Join(dir, "escape"), nil, true},
		{"/tmp a file", filepath.Join(dir, "file"), nil, true},
		{"no root filesystem to look at", filepath.Join(dir, "missing"), nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := Options{nofileCeiling: 1 << 20}
			if tt.files != nil {
				o.Files = tt.files
			}
			rootfs := tt.rootfs
			if rootfs == "" {
				rootfs = "/nonexistent"
			}
			r, err := Generate(v1.Config{Entrypoint: []string{"/bin/true"}}, rootfs, o)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range r.Spec.Mounts {
				if m.Destination == "/tmp" {
					if got := slices.Contains(m.Options, "tmpcopyup"); got != tt.want {
						t.Errorf("tmpcopyup on /tmp: %v, want %v (%v)", got, tt.want, m.Options)
					}
				}
			}
		})
	}
}
