package spec

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/moatsec/moat/internal/lazyregexp"
)

// ProfileHardened is the name of the built-in seccomp profile every container gets by default.
const ProfileHardened = "hardened"

// SeccompProfile is a seccomp profile in the OCI form (the linux.seccomp object of
// config.json) with where it came from, so that a decision log can name it exactly.
type SeccompProfile struct {
	// Name is the built-in profile's name or the path of the file it was loaded from.
	Name string `json:"name"`
	// Digest is "sha256:" and the hex SHA-256 of the profile's bytes as read.
	Digest string `json:"digest"`
	// Builtin reports whether the profile ships with moat.
	Builtin bool               `json:"builtin"`
	Seccomp specs.LinuxSeccomp `json:"-"`
}

// ProfileNames lists the built-in profiles.
func ProfileNames() []string { return builtinProfileNames() }

// Profile returns a built-in profile by name (see ProfileNames). Each call returns a copy of
// its own. The profiles are compiled in (profiles_gen.go, generated from profiles/*.json,
// which TestBuiltinProfilesGenerated keeps in step): decoding the JSON in every moat process
// would cost most of a millisecond.
func Profile(name string) (*SeccompProfile, error) {
	if p, ok := builtinProfile(name); ok {
		return p, nil
	}
	return nil, fmt.Errorf("%w: no built-in seccomp profile %q (built-in: %s)", ErrInvalidProfile, name, strings.Join(ProfileNames(), ", "))
}

// maxProfileSize bounds a profile file: Docker's default profile is about 20 KiB.
const maxProfileSize = 1 << 20

// LoadProfile reads and validates a seccomp profile file in the OCI form, as
// --security-opt seccomp=PATH names it. Every error names the file.
func LoadProfile(path string) (*SeccompProfile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w %s: %w", ErrInvalidProfile, path, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxProfileSize+1))
	if err != nil {
		return nil, fmt.Errorf("%w %s: reading: %w", ErrInvalidProfile, path, err)
	}
	return ParseProfile(path, data)
}

// ParseProfile decodes and validates data, a seccomp profile in the OCI form: exactly one JSON
// object, no field the OCI format lacks (Docker's archMap, includes, excludes and comment are
// refused, so that a Docker-format profile is not half read), known actions, operators,
// architectures and flags, and nothing runc, crun and runsc would reject or silently drop.
// name is used in error messages.
func ParseProfile(name string, data []byte) (*SeccompProfile, error) {
	fail := func(format string, args ...any) (*SeccompProfile, error) {
		return nil, fmt.Errorf("%w %s: %s", ErrInvalidProfile, name, fmt.Sprintf(format, args...))
	}
	if len(data) > maxProfileSize {
		return fail("larger than %d bytes", maxProfileSize)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return fail("the file is empty")
	}
	p, err := decodeProfile(name, data)
	if err != nil {
		return nil, err
	}
	if err := validateSeccomp(&p.Seccomp); err != nil {
		return nil, fmt.Errorf("%w %s: %w", ErrInvalidProfile, name, err)
	}
	return p, nil
}

// decodeProfile reads a profile's JSON, refusing unknown fields and trailing data, without
// judging its rules.
func decodeProfile(name string, data []byte) (*SeccompProfile, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var sc specs.LinuxSeccomp
	if err := dec.Decode(&sc); err != nil {
		return nil, fmt.Errorf("%w %s: %s", ErrInvalidProfile, name, describeJSONError(data, err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w %s: unexpected data after the profile object", ErrInvalidProfile, name)
	}
	sum := sha256.Sum256(data)
	return &SeccompProfile{Name: name, Digest: "sha256:" + hex.EncodeToString(sum[:]), Seccomp: sc}, nil
}

// describeJSONError adds a line and column to encoding/json's errors where it has an offset.
func describeJSONError(data []byte, err error) string {
	var off int64 = -1
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		off = syn.Offset
	case errors.As(err, &typ):
		off = typ.Offset
	}
	msg := strings.TrimPrefix(err.Error(), "json: ")
	if strings.HasPrefix(msg, "unknown field") {
		msg += " (the profile must be in the OCI form: the linux.seccomp object of config.json; Docker's archMap, includes, excludes and comment are not supported)"
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return "the JSON ends early"
	}
	if off < 0 || off > int64(len(data)) {
		return msg
	}
	line := 1 + bytes.Count(data[:off], []byte("\n"))
	col := int(off) - bytes.LastIndexByte(data[:off], '\n')
	return fmt.Sprintf("line %d, column %d: %s", line, col, msg)
}

var (
	knownActions = []specs.LinuxSeccompAction{
		specs.ActKill, specs.ActKillProcess, specs.ActKillThread, specs.ActTrap, specs.ActErrno,
		specs.ActTrace, specs.ActAllow, specs.ActLog,
	}
	// runscActions are the actions gVisor's runsc implements for OCI seccomp
	// (runsc/specutils/seccomp: KILL, TRAP, ERRNO, TRACE, ALLOW).
	runscActions = []specs.LinuxSeccompAction{specs.ActKill, specs.ActTrap, specs.ActErrno, specs.ActTrace, specs.ActAllow}
	knownOps     = []specs.LinuxSeccompOperator{
		specs.OpNotEqual, specs.OpLessThan, specs.OpLessEqual, specs.OpEqualTo,
		specs.OpGreaterEqual, specs.OpGreaterThan, specs.OpMaskedEqual,
	}
	knownArches = []specs.Arch{
		specs.ArchX86, specs.ArchX86_64, specs.ArchX32, specs.ArchARM, specs.ArchAARCH64,
		specs.ArchMIPS, specs.ArchMIPS64, specs.ArchMIPS64N32, specs.ArchMIPSEL, specs.ArchMIPSEL64,
		specs.ArchMIPSEL64N32, specs.ArchPPC, specs.ArchPPC64, specs.ArchPPC64LE, specs.ArchS390,
		specs.ArchS390X, specs.ArchPARISC, specs.ArchPARISC64, specs.ArchRISCV64, specs.ArchLOONGARCH64,
		specs.ArchM68K, specs.ArchSH, specs.ArchSHEB,
	}
	knownFlags = []specs.LinuxSeccompFlag{
		specs.LinuxSeccompFlagLog, specs.LinuxSeccompFlagSpecAllow, specs.LinuxSeccompFlagWaitKillableRecv,
	}
	syscallName = lazyregexp.New(`^[a-z_][a-z0-9_]*$`)
)

// maxErrno is the largest errno seccomp can return (SECCOMP_RET_DATA is 16 bits, the kernel's
// MAX_ERRNO is 4095).
const maxErrno = 4095

func validateSeccomp(sc *specs.LinuxSeccomp) error {
	if sc.DefaultAction == "" {
		return errors.New("defaultAction is missing")
	}
	if err := checkAction("defaultAction", sc.DefaultAction, sc.DefaultErrnoRet); err != nil {
		return err
	}
	for _, a := range sc.Architectures {
		if !slices.Contains(knownArches, a) {
			return fmt.Errorf("unknown architecture %q", a)
		}
	}
	for _, f := range sc.Flags {
		if !slices.Contains(knownFlags, f) {
			return fmt.Errorf("unknown flag %q", f)
		}
	}
	if sc.ListenerPath != "" || sc.ListenerMetadata != "" {
		return errors.New("listenerPath and listenerMetadata (seccomp user notification) are not supported by moat")
	}
	for i, s := range sc.Syscalls {
		where := fmt.Sprintf("syscalls[%d]", i)
		if len(s.Names) == 0 {
			return fmt.Errorf("%s: names is empty", where)
		}
		for _, n := range s.Names {
			if !syscallName().MatchString(n) {
				return fmt.Errorf("%s: %q is not a system call name", where, n)
			}
		}
		if s.Action == "" {
			return fmt.Errorf("%s (%s): action is missing", where, s.Names[0])
		}
		if err := checkAction(fmt.Sprintf("%s (%s)", where, s.Names[0]), s.Action, s.ErrnoRet); err != nil {
			return err
		}
		if len(s.Args) > 6 {
			return fmt.Errorf("%s (%s): %d argument conditions; a system call has at most 6 arguments", where, s.Names[0], len(s.Args))
		}
		for j, a := range s.Args {
			at := fmt.Sprintf("%s (%s) args[%d]", where, s.Names[0], j)
			if a.Index > 5 {
				return fmt.Errorf("%s: index %d; arguments are numbered 0 to 5", at, a.Index)
			}
			if !slices.Contains(knownOps, a.Op) {
				return fmt.Errorf("%s: unknown operator %q", at, a.Op)
			}
			if a.ValueTwo != 0 && a.Op != specs.OpMaskedEqual {
				return fmt.Errorf("%s: valueTwo is only used by %s", at, specs.OpMaskedEqual)
			}
		}
	}
	return checkRuleShapes(sc)
}

// multiplexed are the calls that 32-bit x86 also reaches through socketcall(2) and ipc(2),
// whose arguments sit in memory where seccomp cannot read them.
var multiplexed = func() map[string]bool {
	m := map[string]bool{}
	for _, n := range strings.Fields(`socket socketpair bind connect listen accept accept4 getsockname
		getpeername send recv sendto recvfrom shutdown setsockopt getsockopt sendmsg recvmsg recvmmsg
		sendmmsg semop semget semctl semtimedop msgsnd msgrcv msgget msgctl shmat shmdt shmget shmctl`) {
		m[n] = true
	}
	return m
}()

// checkRuleShapes refuses rule sets that the runtimes would not apply as written. libseccomp
// (under runc and crun) lets an unconditional rule decide a call whatever its position, so a
// conditional rule with another action beside it silently does nothing; and on 32-bit x86 it
// folds the socket and IPC calls into socketcall and ipc, where conditional rules with
// different actions collide and the container fails to start.
func checkRuleShapes(sc *specs.LinuxSeccomp) error {
	type kind struct {
		action specs.LinuxSeccompAction
		errno  string
	}
	type seen struct {
		kinds  []kind        // distinct actions, in the order first met
		known  map[kind]bool // the same, as a set
		uncond map[kind]bool // which of them have an unconditional rule
	}
	byName := map[string]*seen{}
	var names []string
	for _, s := range sc.Syscalls {
		k := kind{s.Action, errnoKey(s.ErrnoRet)}
		for _, n := range s.Names {
			e := byName[n]
			if e == nil {
				e = &seen{known: map[kind]bool{}, uncond: map[kind]bool{}}
				byName[n] = e
				names = append(names, n)
			}
			if !e.known[k] {
				e.known[k] = true
				e.kinds = append(e.kinds, k)
			}
			if len(s.Args) == 0 {
				e.uncond[k] = true
			}
		}
	}
	describe := func(k kind) string {
		if k.errno != "-" {
			return fmt.Sprintf("%s(%s)", k.action, k.errno)
		}
		return string(k.action)
	}
	x86 := slices.Contains(sc.Architectures, specs.ArchX86)
	for _, n := range names {
		e := byName[n]
		if len(e.kinds) < 2 {
			continue
		}
		var uncond []kind
		for _, k := range e.kinds {
			if e.uncond[k] {
				uncond = append(uncond, k)
			}
		}
		switch {
		case len(uncond) >= 2:
			return fmt.Errorf("%s has two unconditional rules with different actions (%s, %s)", n, describe(uncond[0]), describe(uncond[1]))
		case len(uncond) == 1:
			other := e.kinds[0]
			if other == uncond[0] {
				other = e.kinds[1]
			}
			return fmt.Errorf("%s has an unconditional rule and a conditional one with another action (%s, %s): libseccomp applies the unconditional rule to every call, so the conditional one would silently do nothing; use only conditional rules for %s", n, describe(uncond[0]), describe(other), n)
		case x86 && multiplexed[n]:
			return fmt.Errorf("%s has conditional rules with different actions (%s, %s): on SCMP_ARCH_X86 libseccomp folds %s into socketcall or ipc, where such rules collide and the container does not start", n, describe(e.kinds[0]), describe(e.kinds[1]), n)
		}
	}
	return nil
}

func checkAction(where string, act specs.LinuxSeccompAction, errnoRet *uint) error {
	if act == specs.ActNotify {
		return fmt.Errorf("%s: %s (seccomp user notification) is not supported by moat", where, act)
	}
	if !slices.Contains(knownActions, act) {
		return fmt.Errorf("%s: unknown action %q", where, act)
	}
	if errnoRet != nil {
		if act != specs.ActErrno && act != specs.ActTrace {
			return fmt.Errorf("%s: an errno is only returned by %s and %s, not %s", where, specs.ActErrno, specs.ActTrace, act)
		}
		if *errnoRet > maxErrno {
			return fmt.Errorf("%s: errno %d is larger than %d", where, *errnoRet, maxErrno)
		}
	}
	return nil
}

// runscCompatible reports the first part of sc that gVisor's runsc would refuse.
func runscCompatible(sc *specs.LinuxSeccomp) error {
	if !slices.Contains(runscActions, sc.DefaultAction) {
		return fmt.Errorf("runsc does not implement the seccomp action %s (defaultAction)", sc.DefaultAction)
	}
	for _, s := range sc.Syscalls {
		if !slices.Contains(runscActions, s.Action) {
			return fmt.Errorf("runsc does not implement the seccomp action %s (%s)", s.Action, s.Names[0])
		}
	}
	if len(sc.Flags) > 0 {
		return fmt.Errorf("runsc does not implement the seccomp flag %s", sc.Flags[0])
	}
	return nil
}

// copySeccomp returns a deep copy of sc, so that a spec never shares slices with a profile.
func copySeccomp(sc specs.LinuxSeccomp) *specs.LinuxSeccomp {
	out := sc
	out.DefaultErrnoRet = copyUint(sc.DefaultErrnoRet)
	out.Architectures = slices.Clone(sc.Architectures)
	out.Flags = slices.Clone(sc.Flags)
	out.Syscalls = nil
	for _, s := range sc.Syscalls {
		s.Names = slices.Clone(s.Names)
		s.Args = slices.Clone(s.Args)
		s.ErrnoRet = copyUint(s.ErrnoRet)
		out.Syscalls = append(out.Syscalls, s)
	}
	return &out
}

func copyUint(p *uint) *uint {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

// Canonical returns sc in the form moat keeps its built-in profiles in, so that a change to a
// profile is a readable diff: rules with the same action, errno and argument conditions merged
// into one, names sorted and unique, rules ordered by action (the most restrictive first), then
// unconditional before conditional, errno, first name and conditions. The order must carry no
// meaning: checkRuleShapes keeps an unconditional rule from sharing a call with rules of other
// actions, and the conditions of a call's rules with different actions must be disjoint (runsc
// takes the first rule that matches, libseccomp does not promise an order).
func Canonical(sc specs.LinuxSeccomp) specs.LinuxSeccomp {
	out := *copySeccomp(sc)
	slices.Sort(out.Architectures)
	out.Architectures = slices.Compact(out.Architectures)
	slices.Sort(out.Flags)
	out.Flags = slices.Compact(out.Flags)
	type key struct {
		action specs.LinuxSeccompAction
		errno  string
		args   string
	}
	merged := map[key]*specs.LinuxSyscall{}
	var order []key
	for _, s := range out.Syscalls {
		args, _ := json.Marshal(s.Args)
		k := key{s.Action, errnoKey(s.ErrnoRet), string(args)}
		if m, ok := merged[k]; ok {
			m.Names = append(m.Names, s.Names...)
			continue
		}
		c := s
		merged[k] = &c
		order = append(order, k)
	}
	out.Syscalls = out.Syscalls[:0]
	for _, k := range order {
		s := merged[k]
		slices.Sort(s.Names)
		s.Names = slices.Compact(s.Names)
		out.Syscalls = append(out.Syscalls, *s)
	}
	slices.SortStableFunc(out.Syscalls, func(a, b specs.LinuxSyscall) int {
		return cmp.Or(
			cmp.Compare(actionRank(a.Action), actionRank(b.Action)),
			cmp.Compare(len(a.Args), len(b.Args)),
			cmp.Compare(errnoValue(a.ErrnoRet), errnoValue(b.ErrnoRet)),
			cmp.Compare(a.Names[0], b.Names[0]),
			compareArgs(a.Args, b.Args),
		)
	})
	return out
}

// FormatProfile writes sc as moat's built-in profiles are written: Canonical, indented by two
// spaces, with a final newline.
func FormatProfile(sc specs.LinuxSeccomp) ([]byte, error) {
	b, err := json.MarshalIndent(Canonical(sc), "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

func actionRank(a specs.LinuxSeccompAction) int {
	switch a {
	case specs.ActKillProcess:
		return 0
	case specs.ActKill, specs.ActKillThread:
		return 1
	case specs.ActTrap:
		return 2
	case specs.ActErrno:
		return 3
	case specs.ActTrace:
		return 4
	case specs.ActLog:
		return 5
	case specs.ActAllow:
		return 7
	}
	return 6
}

func errnoKey(p *uint) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprint(*p)
}

func errnoValue(p *uint) int {
	if p == nil {
		return -1
	}
	return int(*p)
}

func compareArgs(a, b []specs.LinuxSeccompArg) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		if c := cmp.Or(
			cmp.Compare(a[i].Index, b[i].Index),
			cmp.Compare(a[i].Op, b[i].Op),
			cmp.Compare(a[i].Value, b[i].Value),
			cmp.Compare(a[i].ValueTwo, b[i].ValueTwo),
		); c != 0 {
			return c
		}
	}
	return cmp.Compare(len(a), len(b))
}
