package spec

import (
	"fmt"
	"os"
	"path"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// ExecOptions describe a process to start in a running container (moat exec).
type ExecOptions struct {
	// Args is the command; it must not be empty.
	Args []string
	// Env entries (KEY=VALUE) are applied after the container's own environment.
	Env []string
	// WorkingDir replaces the container's working directory; it must be absolute.
	WorkingDir string
	// User replaces the container's user (user, uid, user:group or uid:gid), looked up in the
	// container's /etc/passwd and /etc/group.
	User string
	// Terminal gives the process a pseudo-terminal.
	Terminal bool
}

// ExecProcess is the process for o in a container whose init process is base (the process of
// its config.json) and whose root filesystem is rootfs. It keeps everything of base that
// confines it — capabilities, no_new_privs, rlimits, the OOM score, AppArmor and SELinux
// labels — and replaces only the command, environment, working directory, user and terminal:
// an exec'd process is confined exactly as the container is.
func ExecProcess(base specs.Process, rootfs string, idmap IDMap, o ExecOptions) (*specs.Process, error) {
	if len(o.Args) == 0 || o.Args[0] == "" {
		return nil, ErrNoCommand
	}
	for _, a := range o.Args {
		if strings.ContainsRune(a, 0) {
			return nil, fmt.Errorf("%w: NUL in the command", ErrInvalid)
		}
	}
	if idmap.Size == 0 {
		idmap = DefaultIDMap()
	}
	p := base
	p.Args = slices.Clone(o.Args)
	p.ConsoleSize = nil
	env, err := mergeEnv(base.Env, o.Env)
	if err != nil {
		return nil, err
	}
	p.Terminal = o.Terminal
	if o.Terminal {
		env = setDefault(env, "TERM", "xterm")
	}
	if o.WorkingDir != "" {
		if !path.IsAbs(o.WorkingDir) || strings.ContainsRune(o.WorkingDir, 0) {
			return nil, fmt.Errorf("%w: working directory %q is not an absolute path", ErrInvalid, o.WorkingDir)
		}
		p.Cwd = path.Clean(o.WorkingDir)
	}
	if o.User != "" {
		root, err := os.OpenRoot(rootfs)
		if err != nil {
			return nil, fmt.Errorf("reading the container's accounts: %w", err)
		}
		defer root.Close()
		u, err := resolveUser(o.User, root.FS(), idmap.Size)
		if err != nil {
			return nil, err
		}
		p.User = specs.User{UID: u.uid, GID: u.gid, AdditionalGids: u.groups, Umask: base.User.Umask}
		if u.home != "" {
			env = replaceEnv(env, "HOME", u.home)
		}
	}
	p.Env = env
	if p.Capabilities != nil {
		c := *p.Capabilities
		c.Bounding, c.Effective, c.Permitted = slices.Clone(c.Bounding), slices.Clone(c.Effective), slices.Clone(c.Permitted)
		c.Inheritable, c.Ambient = slices.Clone(c.Inheritable), slices.Clone(c.Ambient)
		p.Capabilities = &c
	}
	p.Rlimits = slices.Clone(p.Rlimits)
	return &p, nil
}

// replaceEnv sets key to value, replacing an existing entry.
func replaceEnv(env []string, key, value string) []string {
	for i, e := range env {
		if strings.HasPrefix(e, key+"=") {
			env[i] = key + "=" + value
			return env
		}
	}
	return append(env, key+"="+value)
}
