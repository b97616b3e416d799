package spec

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func hardened(t testing.TB) *SeccompProfile {
	t.Helper()
	p, err := Profile(ProfileHardened)
	if err != nil {
		t.Fatalf("Profile(%q): %v", ProfileHardened, err)
	}
	return p
}

// TestProfileCanonical keeps the built-in profiles diffable: each file must be exactly what
// FormatProfile makes of it. go test ./internal/runtime/spec -run TestProfileCanonical -update
// rewrites them after an edit.
func TestProfileCanonical(t *testing.T) {
	for _, name := range ProfileNames() {
		t.Run(name, func(t *testing.T) {
			file := filepath.Join("profiles", name+".json")
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			p, err := ParseProfile(file, data)
			if err != nil {
				t.Fatal(err)
			}
			want, err := FormatProfile(p.Seccomp)
			if err != nil {
				t.Fatal(err)
			}
			if *update {
				if err := os.WriteFile(file, want, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if !bytes.Equal(data, want) {
				t.Errorf("%s is not in canonical form; run go test ./internal/runtime/spec -run TestProfileCanonical -update and review the diff", file)
			}
		})
	}
}

// rulesFor returns the rules of sc that name syscall.
func rulesFor(sc specs.LinuxSeccomp, syscall string) []specs.LinuxSyscall {
	var out []specs.LinuxSyscall
	for _, s := range sc.Syscalls {
		if slices.Contains(s.Names, syscall) {
			out = append(out, s)
		}
	}
	return out
}

const ePERM = 1

// verdict is what a profile does with one call: "allow", or "errno N".
type verdict string

func errnoVerdict(n uint) verdict { return verdict(fmt.Sprintf("errno %d", n)) }

// decide models how a profile treats a call with args (on a 64-bit architecture): an
// unconditional rule decides alone (libseccomp's behaviour), otherwise the conditional rules
// that match must agree, otherwise the default action applies. It fails the test when
// conditional rules with different actions both match: runsc and libseccomp could then
// disagree.
func decide(t *testing.T, sc specs.LinuxSeccomp, name string, args ...uint64) verdict {
	t.Helper()
	of := func(act specs.LinuxSeccompAction, errno *uint) verdict {
		if act == specs.ActAllow {
			return "allow"
		}
		if act == specs.ActErrno {
			if errno == nil {
				return errnoVerdict(ePERM)
			}
			return errnoVerdict(*errno)
		}
		return verdict(act)
	}
	var matched []verdict
	for _, r := range rulesFor(sc, name) {
		if len(r.Args) == 0 {
			return of(r.Action, r.ErrnoRet)
		}
		all := true
		for _, a := range r.Args {
			var v uint64
			if int(a.Index) < len(args) {
				v = args[a.Index]
			}
			all = all && argMatches(a, v)
		}
		if all {
			matched = append(matched, of(r.Action, r.ErrnoRet))
		}
	}
	if len(matched) == 0 {
		return of(sc.DefaultAction, sc.DefaultErrnoRet)
	}
	for _, m := range matched[1:] {
		if m != matched[0] {
			t.Errorf("%s%v matches rules with different actions: %v", name, args, matched)
		}
	}
	return matched[0]
}

// TestHardenedProfile asserts the properties docs/isolation.md promises.
func TestHardenedProfile(t *testing.T) {
	sc := hardened(t).Seccomp
	if sc.DefaultAction != specs.ActErrno || sc.DefaultErrnoRet == nil || *sc.DefaultErrnoRet != eNOSYS {
		t.Errorf("default action %s errno %v, want ERRNO(ENOSYS)", sc.DefaultAction, sc.DefaultErrnoRet)
	}
	wantArches := []specs.Arch{specs.ArchAARCH64, specs.ArchX32, specs.ArchX86, specs.ArchX86_64}
	if !slices.Equal(sc.Architectures, wantArches) {
		t.Errorf("architectures %v, want %v", sc.Architectures, wantArches)
	}
	if len(sc.Flags) != 0 {
		t.Errorf("flags %v; SPEC_ALLOW would turn off speculation mitigations", sc.Flags)
	}
	allow, eperm, enosys := verdict("allow"), errnoVerdict(ePERM), errnoVerdict(eNOSYS)

	// Denied outright with EPERM, whatever the arguments.
	for _, name := range []string{
		"io_uring_setup", "io_uring_enter", "io_uring_register", "bpf", "userfaultfd",
		"keyctl", "add_key", "request_key", "perf_event_open", "kexec_load", "kexec_file_load",
		"init_module", "finit_module", "delete_module", "mount", "umount", "umount2", "fsopen", "fsmount",
		"move_mount", "open_tree", "fsconfig", "fspick", "mount_setattr", "unshare", "setns",
		"open_by_handle_at", "name_to_handle_at", "pivot_root", "ptrace", "process_vm_readv",
		"process_vm_writev", "pidfd_getfd", "kcmp", "process_madvise", "socketcall", "reboot",
		"settimeofday", "clock_settime", "swapon", "syslog", "acct", "iopl", "ioperm",
	} {
		rules := rulesFor(sc, name)
		if len(rules) != 1 || len(rules[0].Args) != 0 || decide(t, sc, name) != eperm {
			t.Errorf("%s: rules %+v, want one unconditional ERRNO(EPERM)", name, rules)
		}
	}
	cases := []struct {
		name string
		args []uint64
		want verdict
	}{
		// Allowed: what ordinary programs need, including chroot (the kernel requires
		// CAP_SYS_CHROOT, which is dropped) and every ioctl (TIOCSTI needs the caller's own
		// controlling terminal, and the container runs in a session of its own).
		{"read", nil, allow}, {"write", nil, allow}, {"execve", nil, allow}, {"mmap", nil, allow},
		{"futex", nil, allow}, {"chroot", nil, allow}, {"seccomp", nil, allow},
		{"landlock_create_ruleset", nil, allow}, {"memfd_create", nil, allow}, {"ioctl", []uint64{0, 0x5412}, allow},
		{"mknod", nil, allow}, {"setuid", nil, allow}, {"capset", nil, allow}, {"prctl", nil, allow},

		// Unknown to the profile, so ENOSYS: libc falls back (clone3 to clone).
		{"clone3", nil, enosys}, {"modify_ldt", nil, enosys}, {"fanotify_init", nil, enosys},
		{"quotactl", nil, enosys}, {"sethostname", nil, enosys}, {"no_such_call", nil, enosys},

		// clone: threads and processes yes, namespaces no.
		{"clone", []uint64{0x3d0f00}, allow},           // pthread_create's flags
		{"clone", []uint64{0x01200011}, allow},         // fork: CLONE_CHILD_SETTID|CLONE_CHILD_CLEARTID|SIGCHLD
		{"clone", []uint64{0x10000000 | 17}, eperm},    // CLONE_NEWUSER
		{"clone", []uint64{0x00020000}, eperm},         // CLONE_NEWNS
		{"clone", []uint64{0x02000000}, eperm},         // CLONE_NEWCGROUP
		{"clone", []uint64{0x04000000}, eperm},         // CLONE_NEWUTS
		{"clone", []uint64{0x08000000}, eperm},         // CLONE_NEWIPC
		{"clone", []uint64{0x20000000}, eperm},         // CLONE_NEWPID
		{"clone", []uint64{0x40000000}, eperm},         // CLONE_NEWNET
		{"clone", []uint64{0x70000000}, eperm},         // several at once
		{"clone", []uint64{1<<32 | 0x10000000}, eperm}, // high bits do not hide a flag
		{"clone", []uint64{1 << 32}, allow},            // the kernel ignores the high bits

		// socket: AF_UNIX, AF_INET, AF_INET6, AF_NETLINK, AF_PACKET (which needs CAP_NET_RAW).
		{"socket", []uint64{1, 1}, allow}, {"socket", []uint64{2, 1}, allow}, {"socket", []uint64{10, 2}, allow},
		{"socket", []uint64{16, 3}, allow}, {"socket", []uint64{17, 3}, allow}, {"socketpair", []uint64{1, 1}, allow},
		{"socket", []uint64{38, 5}, enosys}, // AF_ALG
		{"socket", []uint64{40, 1}, enosys}, // AF_VSOCK
		{"socket", []uint64{30, 2}, enosys}, // AF_TIPC
		{"socket", []uint64{21, 5}, enosys}, // AF_RDS
		{"socket", []uint64{44, 3}, enosys}, // AF_XDP
		{"socket", []uint64{9, 5}, enosys},  // AF_X25
		{"socket", []uint64{0}, enosys},     // AF_UNSPEC
		{"socketpair", []uint64{30, 2}, enosys},
		{"socket", []uint64{1<<32 | 40, 1}, enosys},
		{"socket", []uint64{1<<32 | 1, 1}, enosys},

		// personality: the values Docker allows (query, PER_LINUX, PER_LINUX32, UNAME26), not
		// ADDR_NO_RANDOMIZE.
		{"personality", []uint64{0}, allow}, {"personality", []uint64{8}, allow}, {"personality", []uint64{0xffffffff}, allow},
		{"personality", []uint64{0x0040000}, enosys},
	}
	for _, c := range cases {
		if got := decide(t, sc, c.name, c.args...); got != c.want {
			t.Errorf("%s%#v: %s, want %s", c.name, c.args, got, c.want)
		}
	}

	// No rule of the profile relies on an order.
	if err := checkRuleShapes(&sc); err != nil {
		t.Error(err)
	}
	if err := runscCompatible(&sc); err != nil {
		t.Errorf("runsc would refuse the hardened profile: %v", err)
	}
	// Every call a program needs to start is allowed: runc installs the filter just before
	// execve, and the Go and C runtimes make these next.
	for _, name := range []string{"execve", "brk", "arch_prctl", "set_tid_address", "set_robust_list", "rseq",
		"mprotect", "rt_sigaction", "rt_sigprocmask", "sigaltstack", "gettid", "getrandom", "exit_group", "newfstatat", "openat", "close"} {
		if decide(t, sc, name) != allow {
			t.Errorf("%s is not allowed", name)
		}
	}
}

// argMatches evaluates one seccomp argument condition against v.
func argMatches(a specs.LinuxSeccompArg, v uint64) bool {
	switch a.Op {
	case specs.OpEqualTo:
		return v == a.Value
	case specs.OpNotEqual:
		return v != a.Value
	case specs.OpLessThan:
		return v < a.Value
	case specs.OpLessEqual:
		return v <= a.Value
	case specs.OpGreaterThan:
		return v > a.Value
	case specs.OpGreaterEqual:
		return v >= a.Value
	case specs.OpMaskedEqual:
		return v&a.Value == a.ValueTwo
	}
	return false
}

// TestProfileDocumented checks that docs/isolation.md names every call the hardened profile
// denies, so that the documentation cannot fall behind the data.
func TestProfileDocumented(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "..", "docs", "isolation.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range hardened(t).Seccomp.Syscalls {
		if s.Action == specs.ActAllow {
			continue
		}
		for _, n := range s.Names {
			if !bytes.Contains(doc, []byte("`"+n+"`")) {
				t.Errorf("docs/isolation.md does not mention `%s`, which the hardened profile denies", n)
			}
		}
	}
}

func TestProfileLookup(t *testing.T) {
	if !slices.Contains(ProfileNames(), ProfileHardened) {
		t.Fatalf("ProfileNames() = %v, want %s among them", ProfileNames(), ProfileHardened)
	}
	p := hardened(t)
	if !p.Builtin || p.Name != ProfileHardened || !strings.HasPrefix(p.Digest, "sha256:") {
		t.Errorf("Profile(hardened) = %+v", p)
	}
	for _, bad := range []string{"", "nope", "../profiles/hardened", "hardened.json", "profiles/hardened"} {
		if _, err := Profile(bad); !errors.Is(err, ErrInvalidProfile) {
			t.Errorf("Profile(%q) = %v, want ErrInvalidProfile", bad, err)
		}
	}
}

func TestParseProfile(t *testing.T) {
	tests := []struct {
		name, data, want string
	}{
		{"minimal", `{"defaultAction":"SCMP_ACT_ALLOW"}`, ""},
		{"docker form", `{"defaultAction":"SCMP_ACT_ERRNO","archMap":[]}`, `unknown field "archMap"`},
		{"docker comment", `{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW","comment":"x"}]}`, `unknown field "comment"`},
		{"empty", "  \n", "the file is empty"},
		{"truncated", `{"defaultAction":"SCMP_ACT_ERRNO",`, "the JSON ends early"},
		{"syntax", "{\n  \"defaultAction\": SCMP_ACT_ERRNO}", "line 2, column"},
		{"type", `{"defaultAction":"SCMP_ACT_ERRNO","syscalls":{}}`, "cannot unmarshal"},
		{"two values", `{"defaultAction":"SCMP_ACT_ALLOW"} {}`, "unexpected data after"},
		{"no default", `{"syscalls":[]}`, "defaultAction is missing"},
		{"bad default", `{"defaultAction":"SCMP_ACT_MAYBE"}`, `unknown action "SCMP_ACT_MAYBE"`},
		{"notify", `{"defaultAction":"SCMP_ACT_NOTIFY"}`, "not supported by moat"},
		{"listener", `{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"/run/x.sock"}`, "listenerPath"},
		{"errno on allow", `{"defaultAction":"SCMP_ACT_ALLOW","defaultErrnoRet":1}`, "an errno is only returned by"},
		{"errno too big", `{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":5000}`, "larger than 4095"},
		{"arch", `{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_Z80"]}`, "unknown architecture"},
		{"flag", `{"defaultAction":"SCMP_ACT_ALLOW","flags":["SECCOMP_FILTER_FLAG_TSYNC"]}`, "unknown flag"},
		{"no names", `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":[],"action":"SCMP_ACT_ERRNO"}]}`, "names is empty"},
		{"bad name", `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["Read"],"action":"SCMP_ACT_ERRNO"}]}`, "not a system call name"},
		{"no action", `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"]}]}`, "action is missing"},
		{"index", `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ERRNO","args":[{"index":6,"value":1,"op":"SCMP_CMP_EQ"}]}]}`, "index 6"},
		{"op", `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ERRNO","args":[{"index":0,"value":1,"op":"SCMP_CMP_LIKE"}]}]}`, "unknown operator"},
		{"valueTwo", `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ERRNO","args":[{"index":0,"value":1,"valueTwo":2,"op":"SCMP_CMP_EQ"}]}]}`, "valueTwo"},
		{"carve-out", `{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["clone"],"action":"SCMP_ACT_ERRNO","errnoRet":1,"args":[{"index":0,"value":268435456,"valueTwo":268435456,"op":"SCMP_CMP_MASKED_EQ"}]},{"names":["read","clone"],"action":"SCMP_ACT_ALLOW"}]}`, "would silently do nothing"},
		{"two unconditional", `{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW"},{"names":["read"],"action":"SCMP_ACT_ERRNO","errnoRet":1}]}`, "two unconditional rules"},
		{"errnos differ", `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ERRNO","errnoRet":1},{"names":["read"],"action":"SCMP_ACT_ERRNO","errnoRet":2}]}`, "SCMP_ACT_ERRNO(1), SCMP_ACT_ERRNO(2)"},
		{"x86 socket", `{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86"],"syscalls":[{"names":["socket"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":1,"op":"SCMP_CMP_EQ"}]},{"names":["socket"],"action":"SCMP_ACT_ERRNO","errnoRet":97,"args":[{"index":0,"value":40,"op":"SCMP_CMP_EQ"}]}]}`, "folds socket into socketcall"},
		{"socket without x86", `{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86_64"],"syscalls":[{"names":["socket"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":1,"op":"SCMP_CMP_EQ"}]},{"names":["socket"],"action":"SCMP_ACT_ERRNO","errnoRet":97,"args":[{"index":0,"value":40,"op":"SCMP_CMP_EQ"}]}]}`, ""},
		{"same action twice", `{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW"},{"names":["read"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":1,"op":"SCMP_CMP_EQ"}]}]}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParseProfile("my-profile.json", []byte(tt.data))
			if tt.want == "" {
				if err != nil {
					t.Fatalf("ParseProfile: %v", err)
				}
				if p.Name != "my-profile.json" || p.Builtin {
					t.Errorf("profile %+v", p)
				}
				return
			}
			if !errors.Is(err, ErrInvalidProfile) || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "my-profile.json") {
				t.Errorf("ParseProfile: %v\nwant ErrInvalidProfile naming the file and containing %q", err, tt.want)
			}
		})
	}
}

func TestLoadProfile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.json")
	if err := os.WriteFile(good, []byte(`{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read","write","exit_group"],"action":"SCMP_ACT_ALLOW"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := LoadProfile(good)
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != good || len(p.Seccomp.Syscalls) != 1 {
		t.Errorf("LoadProfile = %+v", p)
	}
	missing := filepath.Join(dir, "missing.json")
	if _, err := LoadProfile(missing); !errors.Is(err, ErrInvalidProfile) || !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Errorf("LoadProfile(missing) = %v", err)
	}
	big := filepath.Join(dir, "big.json")
	if err := os.WriteFile(big, bytes.Repeat([]byte(" "), maxProfileSize+10), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadProfile(big); !errors.Is(err, ErrInvalidProfile) || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("LoadProfile(big) = %v", err)
	}
}

func TestCanonical(t *testing.T) {
	one := uint(1)
	in := specs.LinuxSeccomp{
		DefaultAction: specs.ActErrno,
		Architectures: []specs.Arch{specs.ArchX86_64, specs.ArchAARCH64, specs.ArchX86_64},
		Syscalls: []specs.LinuxSyscall{
			{Names: []string{"write", "read"}, Action: specs.ActAllow},
			{Names: []string{"mount"}, Action: specs.ActErrno, ErrnoRet: &one},
			{Names: []string{"read", "close"}, Action: specs.ActAllow},
			{Names: []string{"bpf"}, Action: specs.ActErrno, ErrnoRet: &one},
		},
	}
	got := Canonical(in)
	if !slices.Equal(got.Architectures, []specs.Arch{specs.ArchAARCH64, specs.ArchX86_64}) {
		t.Errorf("architectures %v", got.Architectures)
	}
	if len(got.Syscalls) != 2 || !slices.Equal(got.Syscalls[0].Names, []string{"bpf", "mount"}) ||
		!slices.Equal(got.Syscalls[1].Names, []string{"close", "read", "write"}) {
		t.Errorf("syscalls %+v", got.Syscalls)
	}
	if !slices.Equal(in.Syscalls[0].Names, []string{"write", "read"}) {
		t.Error("Canonical modified its input")
	}
}

func FuzzParseProfile(f *testing.F) {
	seed, err := os.ReadFile(filepath.Join("profiles", "hardened.json"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte(`{"defaultAction":"SCMP_ACT_ALLOW"}`))
	f.Add([]byte(`{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":1,"syscalls":[{"names":["read"],"action":"SCMP_ACT_ERRNO","errnoRet":2,"args":[{"index":0,"value":1,"valueTwo":1,"op":"SCMP_CMP_MASKED_EQ"}]}]}`))
	f.Add([]byte(`{"defaultAction":"SCMP_ACT_ERRNO","archMap":[{"architecture":"SCMP_ARCH_X86_64"}]}`))
	f.Add([]byte(`{`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParseProfile("fuzz.json", data)
		if err != nil {
			if !errors.Is(err, ErrInvalidProfile) || !strings.Contains(err.Error(), "fuzz.json") {
				t.Fatalf("error %v is not ErrInvalidProfile naming the file", err)
			}
			return
		}
		// What parses must survive the canonical round trip and still validate.
		out, err := FormatProfile(p.Seccomp)
		if err != nil {
			t.Fatalf("FormatProfile: %v", err)
		}
		if _, err := ParseProfile("canonical.json", out); err != nil {
			t.Fatalf("canonical form does not parse: %v\n%s", err, out)
		}
		if _, err := Generate(testImage(), "/rootfs", Options{Seccomp: p, Files: testFiles()}); err != nil {
			t.Fatalf("Generate with a valid profile: %v", err)
		}
	})
}

// TestProfileCopies: a built-in profile is parsed once, and every caller gets a copy of its
// own that it may change.
func TestProfileCopies(t *testing.T) {
	a, err := Profile(ProfileHardened)
	if err != nil {
		t.Fatal(err)
	}
	want := a.Seccomp.Syscalls[0].Names[0]
	a.Seccomp.Syscalls[0].Names[0] = "changed"
	a.Seccomp.Syscalls = a.Seccomp.Syscalls[:1]
	b, err := Profile(ProfileHardened)
	if err != nil {
		t.Fatal(err)
	}
	if b.Seccomp.Syscalls[0].Names[0] != want || len(b.Seccomp.Syscalls) < 2 || !b.Builtin || b.Digest != a.Digest {
		t.Errorf("a caller's change reached the next caller: %q, %d rules", b.Seccomp.Syscalls[0].Names[0], len(b.Seccomp.Syscalls))
	}
}
