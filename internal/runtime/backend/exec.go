package backend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Exec runs p in the running container id in the foreground: `RUNTIME exec --detach
// --process FILE --pid-file FILE [--console-socket SOCKET] ID` through a foreground shim,
// which becomes the parent of the process and reports its exit code. The exec's files
// (process.json, pid file, runtime log, console socket) are in a directory of their own in
// the container's, removed when Exec returns.
func (c *ociCLI) Exec(ctx context.Context, id string, p *specs.Process, stdio IO) (int, error) {
	if err := c.checkID(id); err != nil {
		return -1, err
	}
	if p == nil || len(p.Args) == 0 {
		return -1, fmt.Errorf("%s exec %s: no process to run", c.name, id)
	}
	if err := c.checkTerminal("exec", id, p.Terminal, stdio); err != nil {
		return -1, err
	}
	st, _, err := c.state(ctx, id)
	if err != nil {
		return -1, err
	}
	if st.Status != Running {
		return -1, fmt.Errorf("%s exec %s: %w (it is %s)", c.name, id, ErrNotRunning, st.Status)
	}
	if err := checkConfinement(st.Bundle, p); err != nil {
		return -1, fmt.Errorf("%s exec %s: %w", c.name, id, err)
	}
	// A detached container's directory holds the exec's files; a foreground container has
	// none (foregroundDir), and its bundle holds them.
	parent := c.dirOf(id)
	if _, err := os.Stat(parent); errors.Is(err, os.ErrNotExist) && st.Bundle != "" {
		parent = st.Bundle
	}
	dir, err := os.MkdirTemp(parent, ".exec-")
	if err != nil {
		return -1, fmt.Errorf("%s exec %s: %w", c.name, id, err)
	}
	defer os.RemoveAll(dir)
	proc := *p
	if t := stdio.Terminal; t != nil && t.Size != (WinSize{}) {
		// The runtimes that honour it size the terminal before the process starts; the
		// size is set on the master as soon as it arrives too, for those that do not.
		proc.ConsoleSize = &specs.Box{Height: uint(t.Size.Rows), Width: uint(t.Size.Cols)}
	}
	b, err := json.Marshal(&proc)
	if err != nil {
		return -1, fmt.Errorf("%s exec %s: %w", c.name, id, err)
	}
	procFile, pidFile, logFile := filepath.Join(dir, "process.json"), filepath.Join(dir, "pid"), filepath.Join(dir, "runtime.log")
	if err := os.WriteFile(procFile, b, 0o600); err != nil {
		return -1, fmt.Errorf("%s exec %s: %w", c.name, id, err)
	}
	sub := []string{"exec", "--detach", "--process", procFile, "--pid-file", pidFile}
	cfg := shimConfig{PidFile: pidFile, HideCgroup2: c.hideCgroup2, Foreground: true}
	if c.execInSandbox {
		// runsc's pid file names a runsc process that waits for the exec'd one in the
		// sandbox and forwards signals to it only with a terminal: signals go through
		// `runsc kill --pid` with the process's pid in the sandbox.
		internal := filepath.Join(dir, "internal-pid")
		sub = append(sub, "--internal-pid-file", internal)
		kill, err := c.args("", "", "kill", "--pid={pid}", id, "{signal}")
		if err != nil {
			return -1, err
		}
		cfg.SignalArgv, cfg.InternalPidFile = append([]string{c.binary}, kill...), internal
	}
	var con *consoleSocket
	if stdio.Terminal != nil {
		con, err = listenConsole(dir)
		if err != nil {
			return -1, fmt.Errorf("%s exec %s: %w", c.name, id, err)
		}
		defer con.Close()
		sub = append(sub, "--console-socket", con.addr)
	}
	args, err := c.args("", logFile, append(sub, id)...)
	if err != nil {
		return -1, err
	}
	cfg.Argv = append([]string{c.binary}, args...)
	c.log.Debug("runtime command", "runtime", c.name, "args", args, "shim", "foreground")
	stop := func(s *shimProc, sig syscall.Signal) {
		if sig == syscall.SIGKILL {
			s.hangUp() // the shim kills the process
		} else {
			s.signal(sig) // the shim forwards it
		}
	}
	code, err := c.foreground(ctx, "exec", id, cfg, stdio, con, logFile, nil, stop)
	if err != nil && ctx.Err() == nil {
		// The container may have stopped since it was found running.
		if st, _, serr := c.state(context.WithoutCancel(ctx), id); serr == nil && st.Status != Running {
			return -1, fmt.Errorf("%w (it is %s): %w", ErrNotRunning, st.Status, err)
		}
	}
	return code, err
}

// checkConfinement refuses an exec'd process less confined than the container's init, the
// process of the bundle's config.json: no_new_privs dropped, a capability the init lacks, a
// resource limit missing or higher, another AppArmor profile or SELinux label, a lower OOM
// score. The user and everything else may differ. It fails closed: a spec it cannot read
// refuses the process.
func checkConfinement(bundle string, p *specs.Process) error {
	if bundle == "" {
		return errors.New("the runtime does not say where the container's bundle is, so the process's confinement cannot be checked")
	}
	b, err := ReadSpec(bundle)
	if err != nil {
		return fmt.Errorf("checking the process's confinement: %w", err)
	}
	var spec specs.Spec
	if err := json.Unmarshal(b, &spec); err != nil {
		return fmt.Errorf("decoding the container's spec: %w", err)
	}
	if spec.Process == nil {
		return errors.New("the container's spec has no process")
	}
	if why := looser(spec.Process, p); len(why) > 0 {
		return fmt.Errorf("the process is less confined than the container's: %s", strings.Join(why, "; "))
	}
	return nil
}

// looser lists how p is less confined than init.
func looser(init, p *specs.Process) []string {
	var why []string
	if init.NoNewPrivileges && !p.NoNewPrivileges {
		why = append(why, "no_new_privs is off")
	}
	if ic := init.Capabilities; ic != nil {
		pc := p.Capabilities
		if pc == nil {
			why = append(why, "no capability sets (the runtime's defaults)")
		} else {
			for _, set := range []struct {
				name      string
				init, got []string
			}{
				{"bounding", ic.Bounding, pc.Bounding},
				{"effective", ic.Effective, pc.Effective},
				{"permitted", ic.Permitted, pc.Permitted},
				{"inheritable", ic.Inheritable, pc.Inheritable},
				{"ambient", ic.Ambient, pc.Ambient},
			} {
				for _, cp := range set.got {
					if !slices.Contains(set.init, cp) {
						why = append(why, fmt.Sprintf("%s in the %s set", cp, set.name))
					}
				}
			}
		}
	}
	for _, il := range init.Rlimits {
		i := slices.IndexFunc(p.Rlimits, func(l specs.POSIXRlimit) bool { return l.Type == il.Type })
		switch {
		case i < 0:
			why = append(why, il.Type+" not limited")
		case p.Rlimits[i].Hard > il.Hard || p.Rlimits[i].Soft > il.Hard:
			why = append(why, fmt.Sprintf("%s %d/%d above the hard limit %d", il.Type, p.Rlimits[i].Soft, p.Rlimits[i].Hard, il.Hard))
		}
	}
	if init.ApparmorProfile != "" && p.ApparmorProfile != init.ApparmorProfile {
		why = append(why, fmt.Sprintf("AppArmor profile %q, not %q", p.ApparmorProfile, init.ApparmorProfile))
	}
	if init.SelinuxLabel != "" && p.SelinuxLabel != init.SelinuxLabel {
		why = append(why, fmt.Sprintf("SELinux label %q, not %q", p.SelinuxLabel, init.SelinuxLabel))
	}
	if init.OOMScoreAdj != nil && (p.OOMScoreAdj == nil || *p.OOMScoreAdj < *init.OOMScoreAdj) {
		why = append(why, "a lower OOM score adjustment")
	}
	return why
}
