//go:build linux

package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// checks are every attempt the probe makes, in the order it makes them. The resource checks
// come last, so that they cannot disturb the others.
var checks = []check{
	{name: "mount", mode: inDefault, attempt: "mount a tmpfs (mount(2)) and open a file system context (fsopen); blocked when both fail", run: checkMount},
	{name: "unshare-userns", mode: inDefault, attempt: "unshare(CLONE_NEWUSER) in a child; blocked when it fails", run: checkUnshare},
	{name: "clone-userns", mode: inDefault, attempt: "clone(CLONE_NEWUSER); blocked when it fails", run: checkClone},
	{name: "clone3-userns", mode: inDefault, attempt: "clone3(CLONE_NEWUSER); blocked when it fails", run: checkClone3},
	{name: "setns", mode: inDefault, attempt: "setns into every namespace it can name (/proc/self/ns/*, /proc/1/ns/*); blocked when every call fails", run: checkSetns},
	{name: "ptrace", mode: inDefault, attempt: "PTRACE_ATTACH, then PTRACE_SEIZE, to a child process; blocked when both fail", run: checkPtrace},
	{name: "process_vm_readv", mode: inDefault, attempt: "read a child process's memory; blocked when it fails", run: checkProcessVMReadv},
	{name: "pidfd_getfd", mode: inDefault, attempt: "take a descriptor of a child process (pidfd_getfd); blocked when it fails", run: checkPidfdGetfd},
	{name: "keyctl", mode: inDefault, attempt: "add a key to the process keyring (add_key) and look up the session keyring (keyctl); blocked when both fail", run: checkKeyctl},
	{name: "bpf", mode: inDefault, attempt: "create an array map and load a two-instruction socket filter (bpf); blocked when both fail", run: checkBPF},
	{name: "perf_event_open", mode: inDefault, attempt: "open a user-space-only software counter on itself; blocked when it fails", run: checkPerf},
	{name: "io_uring", mode: inDefault, attempt: "io_uring_setup with one entry; blocked when it fails", run: checkIOUring},
	{name: "userfaultfd", mode: inDefault, attempt: "userfaultfd(UFFD_USER_MODE_ONLY) and open /dev/userfaultfd; blocked when both fail", run: checkUserfaultfd},
	{name: "open_by_handle_at", mode: inDefault, attempt: "name_to_handle_at on /etc, then open_by_handle_at (\"shocker\"); blocked when open_by_handle_at is refused (EPERM, ENOSYS)", run: checkOpenByHandle},
	{name: "kernel-module", mode: inDefault, attempt: "init_module and finit_module with a file that is not a module; blocked when both are refused (EPERM, ENOSYS), not rejected by the loader (ENOEXEC)", run: checkModule},
	{name: "kexec_load", mode: inDefault, attempt: "kexec_load with 17 segments, one over the kernel's maximum; blocked when refused (EPERM, ENOSYS), not EINVAL", run: checkKexec},
	{name: "raw-socket", mode: inDefault, attempt: "socket(AF_INET, SOCK_RAW, IPPROTO_ICMP); blocked when it fails", run: checkRawSocket},
	{name: "packet-socket", mode: inDefault, attempt: "socket(AF_PACKET, SOCK_RAW, ETH_P_ALL); blocked when it fails", run: checkPacketSocket},
	{name: "mknod", mode: inDefault, attempt: "mknod a character device (1:3, null) in a scratch directory; blocked when it fails", run: checkMknod},
	{name: "host-devices", mode: inDefault, attempt: "open the host's disks, /dev/mem, /dev/port and /dev/kmsg, those in /dev and made with mknod from /proc/partitions; blocked when none opens", run: checkHostDevices},
	{name: "sysrq-trigger", mode: inDefault, attempt: "open /proc/sysrq-trigger for writing (nothing is written); blocked when it fails, or when /proc is gVisor's, whose sysrq-trigger is a stub that never reaches the host kernel", run: checkSysrq},
	{name: "proc-sys-write", mode: inDefault, attempt: "open /proc/sys/kernel/core_pattern and modprobe for writing (nothing is written); blocked when none opens", run: checkProcSys},
	{name: "sys-write", mode: inDefault, attempt: "open /sys/kernel/uevent_helper, /sys/power/state and other /sys files for writing (nothing is written); blocked when none opens", run: checkSysWrite},
	{name: "cgroup-release-agent", mode: inDefault, attempt: "mount cgroup v1 and open any release_agent for writing (nothing is written); blocked when none succeeds", run: checkReleaseAgent},
	{name: "proc-host-processes", mode: inDefault, attempt: "reach another root through /proc/PID/root of every visible process; blocked when every visible process has the container's root or its root cannot be reached", run: checkProcProcesses},
	{name: "proc-kcore", mode: inDefault, attempt: "read /proc/kcore; blocked when it cannot be opened or reads nothing", run: checkKcore},
	{name: "proc-kallsyms", mode: inDefault, attempt: "read kernel addresses from /proc/kallsyms; blocked when it is empty or every address is zero", run: checkKallsyms},
	{name: "proc-mountinfo-host-paths", mode: inDefault, attempt: "find the host's paths in /proc/self/mountinfo: absolute overlay lowerdir, upperdir or workdir options, a root bind-mounted from a host directory; blocked when there are none", run: checkMountinfo},
	{name: "syslog", mode: inDefault, attempt: "read the kernel log (syslog(SYSLOG_ACTION_READ_ALL)); blocked when it fails", run: checkSyslog},
	{name: "ioperm", mode: inDefault, attempt: "ioperm on port 0x80; blocked when it fails", run: checkIoperm},
	{name: "chroot-escape", mode: inDefault, attempt: "chroot into a subdirectory, climb out with chdir(\"..\") and chroot(\".\"); blocked when chroot fails or the climb ends at the container's root", run: checkChroot},
	{name: "capabilities", mode: inDefault, attempt: "read its capability sets; blocked when the effective, permitted and bounding sets are empty", run: checkCapabilities},
	{name: "inherited-fds", mode: inDefault, attempt: "list the descriptors the container started with; blocked when none is a directory and none past stdio is a file", run: checkInheritedFDs},
	{name: "setuid", mode: nonRoot, attempt: "as uid 65534, run a setuid-root copy of the probe; blocked when it runs without euid 0 and without capabilities", run: checkSetuid},
	{name: "fork-bomb", mode: inDefault, attempt: "start up to 2000 single-thread processes that sleep, then kill them; blocked when fewer than 2000 start", run: checkForkBomb},
	{name: "memory-hog", mode: alone, attempt: "in a child with oom_score_adj 1000, allocate and touch up to 1536 MiB; blocked when the child (or the whole container) is killed or its allocation fails first", run: checkMemoryHog},
}

func checkMount(p *probe) outcome {
	var a attempts
	dir := filepath.Join(p.scratch, "mnt")
	if err := os.Mkdir(dir, 0o755); err != nil {
		return inconclusive("no directory to mount on: %s", errName(err))
	}
	err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m")
	a.add("mount", err)
	mounted := err == nil
	if mounted {
		unix.Unmount(dir, unix.MNT_DETACH)
	}
	fd, err := unix.Fsopen("tmpfs", unix.FSOPEN_CLOEXEC)
	a.add("fsopen", err)
	if err == nil {
		unix.Close(fd)
	}
	if mounted || err == nil {
		return allowed("%s (undone)", a)
	}
	return blocked("%s", a)
}

// runSelf runs the probe in mode "true" with attr, to see whether the kernel lets it start.
func runSelf(p *probe, attr *syscall.SysProcAttr) error {
	cmd := exec.Command(p.self, "true")
	cmd.SysProcAttr = attr
	return cmd.Run()
}

func checkUnshare(p *probe) outcome {
	if err := runSelf(p, &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWUSER}); err != nil {
		return blocked("%s", errName(err))
	}
	return allowed("a child made a user namespace of its own")
}

func checkClone(p *probe) outcome {
	if err := runSelf(p, &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER}); err != nil {
		return blocked("%s", errName(err))
	}
	return allowed("a child started in a user namespace of its own")
}

// cloneArgs is struct clone_args, version 0.
type cloneArgs struct {
	flags, pidfd, childTID, parentTID, exitSignal, stack, stackSize, tls uint64
}

func checkClone3(*probe) outcome {
	pid, errno := clone3NewUser()
	if errno != 0 {
		return blocked("%s", errName(errno))
	}
	var ws unix.WaitStatus
	unix.Wait4(pid, &ws, 0, nil)
	return allowed("a child started in a user namespace of its own")
}

// clone3NewUser forks with clone3(CLONE_NEWUSER). The child, a copy of this process with one
// thread, exits at once: it runs no Go code between the two system calls (both nosplit), so
// the runtime's state, copied mid-flight, is never used.
//
//go:norace
func clone3NewUser() (int, syscall.Errno) {
	args := cloneArgs{flags: unix.CLONE_NEWUSER, exitSignal: uint64(unix.SIGCHLD)}
	pid, _, errno := syscall.RawSyscall(unix.SYS_CLONE3, uintptr(unsafe.Pointer(&args)), unsafe.Sizeof(args), 0)
	if errno == 0 && pid == 0 {
		syscall.RawSyscall(unix.SYS_EXIT_GROUP, 0, 0, 0)
	}
	return int(pid), errno
}

func checkSetns(*probe) outcome {
	done := make(chan outcome, 1)
	go func() {
		// Never unlocked: the thread ends with the goroutine, with whatever namespace it joined.
		runtime.LockOSThread()
		var a attempts
		var joined []string
		for _, pid := range []string{"self", "1"} {
			for _, ns := range []string{"user", "mnt", "pid", "net", "ipc", "uts", "cgroup", "time"} {
				name := "/proc/" + pid + "/ns/" + ns
				fd, err := unix.Open(name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
				if err != nil {
					continue
				}
				err = unix.Setns(fd, 0)
				unix.Close(fd)
				a.add(pid+"/"+ns, err)
				if err == nil {
					joined = append(joined, name)
				}
			}
		}
		switch {
		case len(a) == 0:
			done <- inconclusive("no namespace file could be opened")
		case len(joined) > 0:
			done <- allowed("joined %s", strings.Join(joined, ", "))
		default:
			done <- blocked("%s", a.summary())
		}
	}()
	return <-done
}

// summary is a's results, as one errno when they all agree.
func (a attempts) summary() string {
	for _, x := range a[1:] {
		if x.res != a[0].res {
			return a.String()
		}
	}
	return fmt.Sprintf("%s (all %d)", a[0].res, len(a))
}

// startPause starts the image's /pause as a child, with /dev/null as its stdin.
func startPause() (*os.Process, error) {
	null, err := os.Open(os.DevNull)
	if err != nil {
		return nil, err
	}
	defer null.Close()
	return os.StartProcess(pausePath, []string{"pause"}, &os.ProcAttr{Files: []*os.File{null}})
}

func stopProcess(pr *os.Process) {
	pr.Kill()
	pr.Wait()
}

func checkPtrace(*probe) outcome {
	child, err := startPause()
	if err != nil {
		return inconclusive("starting %s: %s", pausePath, errName(err))
	}
	defer stopProcess(child)
	done := make(chan outcome, 1)
	go func() {
		// Never unlocked: the tracer is this thread, and its end detaches any tracee.
		runtime.LockOSThread()
		var a attempts
		err := unix.PtraceAttach(child.Pid)
		a.add("PTRACE_ATTACH", err)
		if err == nil {
			var ws unix.WaitStatus
			unix.Wait4(child.Pid, &ws, unix.WALL, nil)
			unix.PtraceDetach(child.Pid)
			done <- allowed("PTRACE_ATTACH to a child succeeded (detached)")
			return
		}
		err = unix.PtraceSeize(child.Pid)
		a.add("PTRACE_SEIZE", err)
		if err == nil {
			done <- allowed("%s (detached)", a)
			return
		}
		done <- blocked("%s", a)
	}()
	return <-done
}

// pauseBase is where /pause is loaded: its first bytes are its ELF header.
const pauseBase = 0x400000

func checkProcessVMReadv(*probe) outcome {
	child, err := startPause()
	if err != nil {
		return inconclusive("starting %s: %s", pausePath, errName(err))
	}
	defer stopProcess(child)
	buf := make([]byte, 4)
	local := []unix.Iovec{{Base: &buf[0]}}
	local[0].SetLen(len(buf))
	n, err := unix.ProcessVMReadv(child.Pid, local, []unix.RemoteIovec{{Base: pauseBase, Len: len(buf)}}, 0)
	if err != nil {
		return blocked("%s", errName(err))
	}
	return allowed("read %d bytes of a child's memory (%q)", n, buf[:n])
}

func checkPidfdGetfd(*probe) outcome {
	child, err := startPause()
	if err != nil {
		return inconclusive("starting %s: %s", pausePath, errName(err))
	}
	defer stopProcess(child)
	pidfd, err := unix.PidfdOpen(child.Pid, 0)
	if err != nil {
		return blocked("pidfd_open: %s", errName(err))
	}
	defer unix.Close(pidfd)
	fd, err := unix.PidfdGetfd(pidfd, 0, 0)
	if err != nil {
		return blocked("%s", errName(err))
	}
	unix.Close(fd)
	return allowed("took a child's stdin (closed)")
}

func checkKeyctl(*probe) outcome {
	var a attempts
	id, err := unix.AddKey("user", "moat-escape-probe", []byte("probe"), unix.KEY_SPEC_PROCESS_KEYRING)
	a.add("add_key", err)
	added := err == nil
	if added {
		unix.KeyctlInt(unix.KEYCTL_INVALIDATE, id, 0, 0, 0)
	}
	_, err = unix.KeyctlGetKeyringID(unix.KEY_SPEC_SESSION_KEYRING, false)
	a.add("keyctl", err)
	if added || err == nil {
		return allowed("%s", a)
	}
	return blocked("%s", a)
}

// The socket filter the bpf check loads: r0 = 0; exit. Package variables, so that the
// addresses passed to the kernel inside bpf_attr stay valid.
var (
	bpfInsns   = [16]byte{0xb7, 0, 0, 0, 0, 0, 0, 0, 0x95}
	bpfLicense = [4]byte{'G', 'P', 'L'}
)

func checkBPF(*probe) outcome {
	var a attempts
	mapAttr := struct{ mapType, keySize, valueSize, maxEntries, mapFlags uint32 }{2 /* BPF_MAP_TYPE_ARRAY */, 4, 4, 1, 0}
	fd, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_MAP_CREATE, uintptr(unsafe.Pointer(&mapAttr)), unsafe.Sizeof(mapAttr))
	a.add("BPF_MAP_CREATE", errnoErr(errno))
	ok := errno == 0
	if ok {
		unix.Close(int(fd))
	}
	progAttr := struct {
		progType, insnCnt uint32
		insns, license    uint64
		logLevel, logSize uint32
		logBuf            uint64
		kernVersion       uint32
		progFlags         uint32
	}{progType: 1 /* BPF_PROG_TYPE_SOCKET_FILTER */, insnCnt: 2,
		insns: uint64(uintptr(unsafe.Pointer(&bpfInsns))), license: uint64(uintptr(unsafe.Pointer(&bpfLicense)))}
	fd, _, errno = unix.Syscall(unix.SYS_BPF, unix.BPF_PROG_LOAD, uintptr(unsafe.Pointer(&progAttr)), unsafe.Sizeof(progAttr))
	a.add("BPF_PROG_LOAD", errnoErr(errno))
	if errno == 0 {
		ok = true
		unix.Close(int(fd))
	}
	if ok {
		return allowed("%s (closed)", a)
	}
	return blocked("%s", a)
}

// errnoErr is errno as an error, nil for 0.
func errnoErr(errno syscall.Errno) error {
	if errno == 0 {
		return nil
	}
	return errno
}

func checkPerf(*probe) outcome {
	attr := unix.PerfEventAttr{
		Type:   unix.PERF_TYPE_SOFTWARE,
		Config: unix.PERF_COUNT_SW_TASK_CLOCK,
		Bits:   unix.PerfBitDisabled | unix.PerfBitExcludeKernel | unix.PerfBitExcludeHv,
	}
	attr.Size = uint32(unsafe.Sizeof(attr))
	fd, err := unix.PerfEventOpen(&attr, 0, -1, -1, unix.PERF_FLAG_FD_CLOEXEC)
	if err != nil {
		return blocked("%s", errName(err))
	}
	unix.Close(fd)
	return allowed("opened a counter (closed)")
}

func checkIOUring(*probe) outcome {
	var params [120]byte // struct io_uring_params
	fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, 1, uintptr(unsafe.Pointer(&params)), 0)
	if errno != 0 {
		return blocked("%s", errName(errno))
	}
	unix.Close(int(fd))
	return allowed("made a ring (closed)")
}

func checkUserfaultfd(*probe) outcome {
	var a attempts
	const userModeOnly = 1 // UFFD_USER_MODE_ONLY
	fd, _, errno := unix.Syscall(unix.SYS_USERFAULTFD, unix.O_CLOEXEC|unix.O_NONBLOCK|userModeOnly, 0, 0)
	a.add("userfaultfd", errnoErr(errno))
	ok := errno == 0
	if ok {
		unix.Close(int(fd))
	}
	dfd, err := unix.Open("/dev/userfaultfd", unix.O_RDWR|unix.O_CLOEXEC, 0)
	a.add("/dev/userfaultfd", err)
	if err == nil {
		ok = true
		unix.Close(dfd)
	}
	if ok {
		return allowed("%s (closed)", a)
	}
	return blocked("%s", a)
}

func checkOpenByHandle(*probe) outcome {
	var a attempts
	h, _, err := unix.NameToHandleAt(unix.AT_FDCWD, "/etc", 0)
	a.add("name_to_handle_at", err)
	if err != nil {
		// The handle "shocker" forged: ext4's root directory, inode 2.
		h = unix.NewFileHandle(1, []byte{2, 0, 0, 0, 0, 0, 0, 0})
	}
	mfd, err := unix.Open("/", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return inconclusive("opening /: %s", errName(err))
	}
	defer unix.Close(mfd)
	fd, err := unix.OpenByHandleAt(mfd, h, unix.O_RDONLY|unix.O_CLOEXEC)
	a.add("open_by_handle_at", err)
	if err == nil {
		unix.Close(fd)
		return allowed("%s (closed)", a)
	}
	if denied(err) {
		return blocked("%s", a)
	}
	return allowed("%s: the call got past the capability check", a)
}

func checkModule(p *probe) outcome {
	var a attempts
	err1 := unix.InitModule(make([]byte, 64), "")
	a.add("init_module", err1)
	var err2 error = syscall.ENOENT
	if f, err := os.Open(p.self); err == nil {
		err2 = unix.FinitModule(int(f.Fd()), "", 0)
		f.Close()
	}
	a.add("finit_module", err2)
	if denied(err1) && denied(err2) {
		return blocked("%s", a.summary())
	}
	return allowed("%s: the call reached the module loader", a)
}

func checkKexec(*probe) outcome {
	// 17 segments is one over KEXEC_SEGMENT_MAX: a caller the kernel lets through gets EINVAL
	// before anything is loaded or unloaded.
	_, _, errno := unix.Syscall6(unix.SYS_KEXEC_LOAD, 0, 17, 0, 0, 0, 0)
	if denied(errno) {
		return blocked("%s", errName(errno))
	}
	return allowed("%s: the call got past the permission check", errName(errno))
}

func checkRawSocket(*probe) outcome {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMP)
	if err != nil {
		return blocked("%s", errName(err))
	}
	unix.Close(fd)
	return allowed("opened (closed)")
}

func checkPacketSocket(*probe) outcome {
	const ethPAll = 0x0003
	proto := int(ethPAll>>8 | (ethPAll&0xff)<<8) // htons
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
	if err != nil {
		return blocked("%s", errName(err))
	}
	unix.Close(fd)
	return allowed("opened (closed)")
}

func checkMknod(p *probe) outcome {
	path := filepath.Join(p.scratch, "null")
	if err := unix.Mknod(path, unix.S_IFCHR|0o600, int(unix.Mkdev(1, 3))); err != nil {
		return blocked("%s", errName(err))
	}
	os.Remove(path)
	return allowed("made the node (removed)")
}

func checkHostDevices(p *probe) outcome {
	var opened, notes []string
	try := func(path string) error {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
		if err == nil {
			unix.Close(fd)
			opened = append(opened, path)
		}
		return err
	}
	var present attempts
	for _, d := range []string{"/dev/vda", "/dev/sda", "/dev/nvme0n1", "/dev/xvda", "/dev/hda", "/dev/dm-0", "/dev/md0",
		"/dev/loop0", "/dev/zram0", "/dev/mem", "/dev/kmem", "/dev/port", "/dev/kmsg"} {
		if err := try(d); !os.IsNotExist(err) {
			present.add(d, err)
		}
	}
	if len(present) == 0 {
		notes = append(notes, "none in /dev")
	} else {
		notes = append(notes, "/dev: "+present.summary())
	}

	type node struct {
		name        string
		mode        uint32
		major, minr uint32
	}
	nodes := []node{{"mem", unix.S_IFCHR, 1, 1}, {"port", unix.S_IFCHR, 1, 4}, {"kmsg", unix.S_IFCHR, 1, 11}}
	for _, part := range partitions(4) {
		nodes = append(nodes, node{part.name, unix.S_IFBLK, part.major, part.minor})
	}
	var made attempts
	for _, n := range nodes {
		path := filepath.Join(p.scratch, "dev-"+n.name)
		if err := unix.Mknod(path, n.mode|0o600, int(unix.Mkdev(n.major, n.minr))); err != nil {
			made.add("mknod "+n.name, err)
			continue
		}
		made.add("open "+n.name, try(path))
		os.Remove(path)
	}
	notes = append(notes, "mknod: "+made.summary())
	if len(opened) > 0 {
		return allowed("opened %s", strings.Join(opened, ", "))
	}
	return blocked("%s", strings.Join(notes, "; "))
}

type partition struct {
	name         string
	major, minor uint32
}

// partitions reads up to max block devices from /proc/partitions, which shows the host's.
func partitions(max int) []partition {
	b, err := os.ReadFile("/proc/partitions")
	if err != nil {
		return nil
	}
	var out []partition
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) != 4 || len(out) == max {
			continue
		}
		maj, err1 := strconv.ParseUint(f[0], 10, 32)
		mnr, err2 := strconv.ParseUint(f[1], 10, 32)
		if err1 != nil || err2 != nil {
			continue
		}
		out = append(out, partition{f[3], uint32(maj), uint32(mnr)})
	}
	return out
}

// openForWriting opens each path for writing and closes it at once: nothing is ever written.
// It returns the paths that opened and what happened to each that exists.
func openForWriting(paths ...string) (opened []string, a attempts) {
	for _, path := range paths {
		fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
		if err == nil {
			unix.Close(fd)
			opened = append(opened, path)
		}
		if !os.IsNotExist(err) {
			a.add(path, err)
		}
	}
	return opened, a
}

func checkSysrq(*probe) outcome {
	opened, a := openForWriting("/proc/sysrq-trigger")
	switch {
	case len(opened) > 0 && gvisorProc():
		return blocked("opened gVisor's stub for writing (nothing written): not the host kernel's")
	case len(opened) > 0:
		return allowed("opened for writing (nothing written, closed)")
	case len(a) == 0:
		return blocked("absent")
	}
	return blocked("%s", a[0].res)
}

// gvisorProc reports whether /proc is gVisor's: the Sentry's procfs has sentry-meminfo, which
// Linux's has not.
func gvisorProc() bool {
	_, err := os.Stat("/proc/sentry-meminfo")
	return err == nil
}

func checkProcSys(*probe) outcome {
	opened, a := openForWriting("/proc/sys/kernel/core_pattern", "/proc/sys/kernel/modprobe", "/proc/sys/vm/panic_on_oom")
	switch {
	case len(opened) > 0:
		return allowed("opened %s for writing (nothing written)", strings.Join(opened, ", "))
	case len(a) == 0:
		return blocked("absent")
	}
	return blocked("%s", a.summary())
}

func checkSysWrite(*probe) outcome {
	opened, a := openForWriting("/sys/kernel/uevent_helper", "/sys/power/state", "/sys/kernel/mm/transparent_hugepage/enabled",
		"/sys/kernel/rcu_expedited", "/sys/kernel/profiling")
	switch {
	case len(opened) > 0:
		return allowed("opened %s for writing (nothing written)", strings.Join(opened, ", "))
	case len(a) == 0:
		return blocked("none of the files exists")
	}
	return blocked("%s", a.summary())
}

func checkReleaseAgent(p *probe) outcome {
	var a attempts
	var opened []string
	dir := filepath.Join(p.scratch, "cgroup")
	if err := os.Mkdir(dir, 0o755); err != nil {
		return inconclusive("no directory to mount on: %s", errName(err))
	}
	err := unix.Mount("cgroup", dir, "cgroup", 0, "memory")
	a.add("mount cgroup", err)
	if err == nil {
		o, _ := openForWriting(filepath.Join(dir, "release_agent"))
		opened = append(opened, o...)
		unix.Unmount(dir, unix.MNT_DETACH)
		opened = append(opened, "a cgroup v1 hierarchy (mounted, unmounted)")
	}
	agents, _ := filepath.Glob("/sys/fs/cgroup/*/release_agent")
	agents = append(agents, "/sys/fs/cgroup/release_agent")
	o, oa := openForWriting(agents...)
	opened = append(opened, o...)
	if len(oa) == 0 {
		a = append(a, struct{ what, res string }{"release_agent", "none"})
	} else {
		a = append(a, struct{ what, res string }{"release_agent", oa.summary()})
	}
	if len(opened) > 0 {
		return allowed("%s", strings.Join(opened, ", "))
	}
	return blocked("%s", a)
}

func checkProcProcesses(*probe) outcome {
	var root unix.Stat_t
	if err := unix.Stat("/", &root); err != nil {
		return inconclusive("stat /: %s", errName(err))
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return inconclusive("reading /proc: %s", errName(err))
	}
	var visible, unreachable int
	var reached []string
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		visible++
		var st unix.Stat_t
		if err := unix.Stat("/proc/"+e.Name()+"/root/", &st); err != nil {
			unreachable++
			continue
		}
		if st.Dev == root.Dev && st.Ino == root.Ino {
			continue
		}
		what := e.Name()
		if b, err := os.ReadFile("/proc/" + e.Name() + "/root/etc/hostname"); err == nil {
			what += fmt.Sprintf(" (its /etc/hostname: %q)", strings.TrimSpace(string(b)))
		}
		if _, err := os.ReadFile("/proc/" + e.Name() + "/environ"); err == nil {
			what += " (environ readable)"
		}
		reached = append(reached, what)
	}
	if len(reached) > 0 {
		return allowed("reached the root of PID %s", strings.Join(reached, ", "))
	}
	detail := fmt.Sprintf("%s visible, none with another root", plural(visible, "process", "processes"))
	if unreachable > 0 {
		detail = fmt.Sprintf("%s visible: %d with the container's root, %d unreachable", plural(visible, "process", "processes"), visible-unreachable, unreachable)
	}
	return blocked("%s", detail)
}

func checkKcore(*probe) outcome {
	f, err := os.Open("/proc/kcore")
	if err != nil {
		return blocked("%s", errName(err))
	}
	defer f.Close()
	buf := make([]byte, 64)
	n, _ := f.Read(buf)
	switch {
	case n == 0:
		return blocked("masked: reads nothing")
	case bytes.HasPrefix(buf, []byte("\x7fELF")):
		return allowed("read the ELF header of kernel memory")
	}
	return allowed("read %d bytes", n)
}

func checkKallsyms(*probe) outcome {
	f, err := os.Open("/proc/kallsyms")
	if err != nil {
		return blocked("%s", errName(err))
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	lines := 0
	for s.Scan() && lines < 5000 {
		lines++
		addr, _, _ := strings.Cut(s.Text(), " ")
		if strings.Trim(addr, "0") != "" {
			return allowed("kernel addresses visible (%s)", s.Text())
		}
	}
	if lines == 0 {
		return blocked("masked: empty")
	}
	return blocked("symbols listed, every address zero")
}

func checkMountinfo(*probe) outcome {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return blocked("%s", errName(err))
	}
	var found []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		sep := -1
		for i, x := range f {
			if x == "-" {
				sep = i
				break
			}
		}
		if len(f) < 5 || sep < 0 || sep+3 >= len(f) {
			continue
		}
		mountRoot, mountPoint, super := f[3], f[4], f[sep+3]
		for _, opt := range strings.Split(super, ",") {
			k, v, _ := strings.Cut(opt, "=")
			switch strings.TrimSuffix(k, "+") {
			case "lowerdir", "upperdir", "workdir", "datadir":
			default:
				continue
			}
			// Relative names (from the mounter's working directory) and "/" (a detached
			// mount, such as an idmapped layer) say nothing of the host.
			for _, dir := range strings.Split(v, ":") {
				if strings.HasPrefix(dir, "/") && dir != "/" {
					found = append(found, fmt.Sprintf("%s on %s: %s", k, mountPoint, shorten(dir)))
					break
				}
			}
		}
		if mountPoint == "/" && mountRoot != "/" {
			found = append(found, fmt.Sprintf("/ is %s of the host", shorten(mountRoot)))
		}
	}
	if len(found) > 0 {
		return allowed("%s", strings.Join(found, "; "))
	}
	return blocked("no host path found")
}

// plural is "1 process" or "2 processes".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// shorten keeps a long path readable in a table.
func shorten(s string) string {
	if len(s) <= 60 {
		return s
	}
	return s[:57] + "..."
}

func checkSyslog(*probe) outcome {
	const readAll = 3 // SYSLOG_ACTION_READ_ALL
	buf := make([]byte, 1024)
	n, err := unix.Klogctl(readAll, buf)
	if err != nil {
		return blocked("%s", errName(err))
	}
	return allowed("read %d bytes of the kernel log", n)
}

func checkChroot(p *probe) outcome {
	out, err := exec.Command(p.self, "chroot", p.scratch).Output()
	line := strings.TrimSpace(string(out))
	verdict, detail, _ := strings.Cut(line, " ")
	switch verdict {
	case "denied":
		return blocked("chroot: %s", detail)
	case "contained":
		return blocked("chroot works; the climb ends at the container's root")
	case "escaped":
		return allowed("%s", detail)
	}
	return inconclusive("the chroot child said %q (%v)", line, err)
}

// chrootEscape is the chroot check's child: chroot changes the whole process's root.
func chrootEscape(args []string) {
	if len(args) != 1 {
		fmt.Println("usage: probe chroot DIR")
		os.Exit(2)
	}
	dir := filepath.Join(args[0], "chroot")
	if err := os.Mkdir(dir, 0o755); err != nil {
		fmt.Println("error", errName(err))
		return
	}
	var before, after unix.Stat_t
	if err := unix.Stat("/", &before); err != nil {
		fmt.Println("error", errName(err))
		return
	}
	if err := unix.Chroot(dir); err != nil {
		fmt.Println("denied", errName(err))
		return
	}
	// The working directory is still outside the new root: climb from it.
	for range 64 {
		unix.Chdir("..")
	}
	if err := unix.Chroot("."); err != nil {
		fmt.Println("error", errName(err))
		return
	}
	if err := unix.Stat("/", &after); err != nil {
		fmt.Println("error", errName(err))
		return
	}
	if after.Dev == before.Dev && after.Ino == before.Ino {
		fmt.Println("contained")
		return
	}
	host, _ := os.ReadFile("/etc/hostname")
	fmt.Printf("escaped to another root (device %d, inode %d; /etc/hostname %q)\n", after.Dev, after.Ino, strings.TrimSpace(string(host)))
}

func checkCapabilities(*probe) outcome {
	var sets []string
	var any bool
	var eff uint64
	for _, field := range []string{"CapEff", "CapPrm", "CapBnd"} {
		v, err := strconv.ParseUint(statusField(field), 16, 64)
		if err != nil {
			return inconclusive("reading %s from /proc/self/status: %v", field, err)
		}
		if field == "CapEff" {
			eff = v
		}
		any = any || v != 0
		sets = append(sets, fmt.Sprintf("%s %#x", field, v))
	}
	if !any {
		return blocked("all empty")
	}
	return allowed("%s; effective: %s", strings.Join(sets, ", "), capNames(eff))
}

// statusField is a field of /proc/self/status, "" if absent.
func statusField(name string) string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

var capabilityNames = []string{"chown", "dac_override", "dac_read_search", "fowner", "fsetid", "kill", "setgid",
	"setuid", "setpcap", "linux_immutable", "net_bind_service", "net_broadcast", "net_admin", "net_raw", "ipc_lock",
	"ipc_owner", "sys_module", "sys_rawio", "sys_chroot", "sys_ptrace", "sys_pacct", "sys_admin", "sys_boot",
	"sys_nice", "sys_resource", "sys_time", "sys_tty_config", "mknod", "lease", "audit_write", "audit_control",
	"setfcap", "mac_override", "mac_admin", "syslog", "wake_alarm", "block_suspend", "audit_read", "perfmon", "bpf",
	"checkpoint_restore"}

func capNames(set uint64) string {
	var names []string
	for i := range 64 {
		if set&(1<<i) == 0 {
			continue
		}
		if i < len(capabilityNames) {
			names = append(names, capabilityNames[i])
		} else {
			names = append(names, strconv.Itoa(i))
		}
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// inheritedFD is a descriptor the probe found open when it started.
type inheritedFD struct {
	fd     int
	mode   uint32
	target string
}

// inheritedFDs lists the open descriptors with system calls only: the first os.Open would
// start the Go runtime's poller, whose own descriptors would be listed too.
func inheritedFDs() ([]inheritedFD, error) {
	dirfd, err := unix.Open("/proc/self/fd", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(dirfd)
	buf := make([]byte, 16384)
	var names []string
	for {
		n, err := unix.ReadDirent(dirfd, buf)
		if err != nil {
			return nil, err
		}
		if n <= 0 {
			break
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names)
	}
	var out []inheritedFD
	for _, name := range names {
		fd, err := strconv.Atoi(name)
		if err != nil || fd == dirfd {
			continue
		}
		var st unix.Stat_t
		if unix.Fstat(fd, &st) != nil {
			continue
		}
		target, _ := os.Readlink("/proc/self/fd/" + name)
		out = append(out, inheritedFD{fd: fd, mode: st.Mode & unix.S_IFMT, target: target})
	}
	return out, nil
}

func checkInheritedFDs(p *probe) outcome {
	var leaks, all []string
	for _, f := range p.fds {
		all = append(all, fmt.Sprintf("%d %s", f.fd, f.target))
		if f.mode == unix.S_IFDIR || (f.fd > 2 && f.mode == unix.S_IFREG) {
			leaks = append(leaks, fmt.Sprintf("%d: %s", f.fd, f.target))
		}
	}
	if len(leaks) > 0 {
		return allowed("%s", strings.Join(leaks, ", "))
	}
	if len(all) == 0 {
		return blocked("none")
	}
	return blocked("%s, none a directory, none past stdio a file", plural(len(all), "descriptor", "descriptors"))
}

// whoami is the setuid check's child: what the setuid-root copy runs as.
func whoami() {
	fmt.Printf("euid=%d capeff=%s nonewprivs=%s\n", os.Geteuid(), statusField("CapEff"), statusField("NoNewPrivs"))
}

func checkSetuid(*probe) outcome {
	fi, err := os.Stat(suidPath)
	if err != nil {
		return inconclusive("%s: %s", suidPath, errName(err))
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode()&os.ModeSetuid == 0 || st.Uid != 0 {
		return inconclusive("%s is not setuid root (mode %v, owner %d)", suidPath, fi.Mode(), st.Uid)
	}
	cmd := exec.Command(suidPath, "whoami")
	from := os.Getuid()
	if from == 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		from = 65534
	}
	out, err := cmd.Output()
	if err != nil {
		if os.Getuid() == 0 {
			return inconclusive("container root cannot become uid 65534 to try (%s): run the check as a non-root user", errName(err))
		}
		return blocked("running %s: %s", suidPath, errName(err))
	}
	var euid int
	var capeff, nnp string
	if _, err := fmt.Sscanf(strings.TrimSpace(string(out)), "euid=%d capeff=%s nonewprivs=%s", &euid, &capeff, &nnp); err != nil {
		return inconclusive("the setuid child said %q", out)
	}
	caps, _ := strconv.ParseUint(capeff, 16, 64)
	switch {
	case euid == 0:
		return allowed("uid %d ran it with euid 0 (capabilities: %s)", from, capNames(caps))
	case caps != 0:
		return allowed("uid %d ran it with capabilities %s", from, capNames(caps))
	}
	return blocked("euid stayed %d, no capabilities (NoNewPrivs %s)", euid, nnp)
}
