package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/spf13/cobra"

	"github.com/moatsec/moat/internal/env"
	"github.com/moatsec/moat/internal/evidence"
	"github.com/moatsec/moat/internal/image"
	"github.com/moatsec/moat/internal/policy"
	"github.com/moatsec/moat/internal/runtime/backend"
	"github.com/moatsec/moat/internal/runtime/engine"
	"github.com/moatsec/moat/internal/runtime/network"
	"github.com/moatsec/moat/internal/runtime/spec"
	"github.com/moatsec/moat/internal/store"
)

// ContainerExitError carries a container's non-zero exit code out of `moat run`, which exits
// with it, as `docker run` does.
type ContainerExitError struct{ Code int }

func (e *ContainerExitError) Error() string {
	return fmt.Sprintf("the container exited with code %d", e.Code)
}

type runOptions struct {
	image       imageOptions
	db          dbOptions
	Policy      string
	DecisionLog string
	Isolation   string
	Runtime     string
	Remove      bool
	Detach      bool
	Interactive bool
	TTY         bool
	Name        string
	Env         []string
	EnvFiles    []string
	Volumes     []string
	Mounts      []string
	Workdir     string
	User        string
	Entrypoint  string
	Hostname    string
	Memory      string
	CPUs        float64
	PidsLimit   int64
	ReadOnly    bool
	CapAdd      []string
	SecurityOpt []string
	Network     string
	Publish     []string
	ports       []network.Port
}

func newRunCmd(a *app) *cobra.Command {
	o := &runOptions{}
	cmd := &cobra.Command{
		Use:   "run [flags] IMAGE [COMMAND [ARG...]]",
		Short: "Run an image in a container, hardened by default",
		Long: `Run IMAGE (anything 'moat sbom' takes except dir:) in a container. The image is resolved
to a digest once; with a policy (--policy or MOAT_POLICY) the decision for that digest is made
first and a deny stops here with its reasons, and the container runs at the isolation level
the decision chose (--isolation may raise it, never lower it). Without a policy every image
runs at hardened, and moat says so.

hardened (runc, or crun with --runtime crun) confines the container with no flags at all: a
user namespace (root inside is an unprivileged host user), no capabilities, no_new_privs, a
seccomp profile stricter than Docker's, a read-only root with a tmpfs /tmp, masked /proc and
/sys paths, no host devices, memory, CPU and process limits, and no network. sandbox adds
gVisor (runsc): the container's system calls go to a kernel in user space. Every relaxation
(--cap-add, --security-opt, --read-only=false, bind mounts, --network) is explicit and is
listed in the decision log. docs/isolation.md has the details.

The root filesystem is assembled from a cache of unpacked layers (overlayfs), so a second
container of the same image starts without unpacking. In the foreground moat exits with the
container's exit code; with -d it prints the container's ID and leaves it running. Either way
the container stays, with its log, until 'moat rm' (or --rm): see moat ps, logs, stop, kill,
exec, inspect and rm.`,
		Example: `  moat run --rm oci-dir:./app-layout
  moat run --rm --policy policy.yaml registry.example.com/team/app:1.2
  moat run --rm -e MODE=test -v $PWD/data:/data:ro --memory 256m app.tar /app/migrate --dry-run
  moat run -d --name web oci-dir:./app-layout && moat logs -f web`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.run(cmd.Context(), a, args[0], args[1:])
		},
	}
	fs := cmd.Flags()
	fs.SetInterspersed(false) // flags after IMAGE belong to the command
	o.image.AddFlags(fs)
	o.db.AddFlags(fs)
	fs.StringVar(&o.Policy, "policy", env.Policy.Get(), "trust policy deciding whether the image may run and how isolated (env MOAT_POLICY)")
	fs.StringVar(&o.DecisionLog, "decision-log", env.DecisionLog.Get(), `append the decision to this JSON-lines file; "-" for none (env MOAT_DECISION_LOG)`)
	fs.StringVar(&o.Isolation, "isolation", "", "raise the isolation level: hardened or sandbox (vm is not available yet)")
	fs.StringVar(&o.Runtime, "runtime", "runc", "OCI runtime of the hardened level: runc or crun")
	fs.BoolVar(&o.Remove, "rm", false, "remove the container when it exits")
	fs.BoolVarP(&o.Detach, "detach", "d", false, "run in the background and print the container's ID; its output goes to its log (moat logs)")
	fs.BoolVarP(&o.Interactive, "interactive", "i", false, "keep standard input open and pass it to the container")
	fs.BoolVarP(&o.TTY, "tty", "t", false, "allocate a pseudo-terminal (with -i, standard input must be a terminal)")
	fs.StringVar(&o.Name, "name", "", "container name (default: a random moat-<hex>)")
	fs.StringArrayVarP(&o.Env, "env", "e", nil, "set an environment variable: NAME=value, or NAME to pass moat's own value; repeatable")
	fs.StringArrayVar(&o.EnvFiles, "env-file", nil, "read NAME=value lines from a file; repeatable")
	fs.StringArrayVarP(&o.Volumes, "volume", "v", nil, "bind mount: /host/path:/container/path[:ro]; repeatable")
	fs.StringArrayVar(&o.Mounts, "mount", nil, "mount: type=bind,source=...,target=...[,readonly] or type=tmpfs,target=...[,tmpfs-size=...]; repeatable")
	fs.StringVarP(&o.Workdir, "workdir", "w", "", "working directory inside the container")
	fs.StringVarP(&o.User, "user", "u", "", "user: name, uid, name:group or uid:gid (names from the image's /etc/passwd)")
	fs.StringVar(&o.Entrypoint, "entrypoint", "", "replace the image's entrypoint (and drop its command)")
	fs.StringVar(&o.Hostname, "hostname", "", "container hostname (default moat)")
	fs.StringVarP(&o.Memory, "memory", "m", "", "memory limit, e.g. 256m or 1g (default 512m)")
	fs.Float64Var(&o.CPUs, "cpus", 0, "CPU limit as a number of CPUs (default 1)")
	fs.Int64Var(&o.PidsLimit, "pids-limit", 0, "most processes and threads (default 512)")
	fs.BoolVar(&o.ReadOnly, "read-only", true, "read-only root filesystem; --read-only=false is a relaxation")
	fs.StringArrayVar(&o.CapAdd, "cap-add", nil, "grant a capability (a relaxation); repeatable")
	fs.StringArrayVar(&o.SecurityOpt, "security-opt", nil, "seccomp=PATH|unconfined or no-new-privileges=false (relaxations); repeatable")
	fs.StringArrayVarP(&o.Publish, "publish", "p", nil, "publish a port of a container on the bridge network on the host's addresses: [HOSTIP:]HOSTPORT:PORT[/tcp|/udp] (a relaxation; needs --network bridge)")
	fs.StringVar(&o.Network, "network", "none", "none (default: loopback only); bridge (a namespace of its own on moat's bridge, NAT to the outside), host, container:NAME or ns:PATH (relaxations: the host's network, another hardened container's, or the namespace at PATH)")
	return cmd
}

// specOptions converts the flags into the container options, checking each.
func (o *runOptions) specOptions(a *app, args []string) (spec.Options, error) {
	so := spec.Options{Args: args, WorkingDir: o.Workdir, User: o.User, Hostname: o.Hostname, WritableRootfs: !o.ReadOnly, CapAdd: o.CapAdd, Terminal: o.TTY}
	if o.Entrypoint != "" {
		so.Entrypoint = []string{o.Entrypoint}
	}
	env, err := environment(o.Env, o.EnvFiles)
	if err != nil {
		return so, err
	}
	so.Env = env
	for _, v := range o.Volumes {
		m, err := spec.ParseVolume(v)
		if err == nil {
			m, err = resolveBindSource(m)
		}
		if err != nil {
			return so, usageErrorf("-v %q: %v", v, err)
		}
		so.Mounts = append(so.Mounts, m)
	}
	for _, v := range o.Mounts {
		m, err := spec.ParseMount(v)
		if err == nil {
			m, err = resolveBindSource(m)
		}
		if err != nil {
			return so, usageErrorf("--mount %q: %v", v, err)
		}
		so.Mounts = append(so.Mounts, m)
	}
	if o.Memory != "" {
		n, err := parseBytes(o.Memory)
		if err != nil {
			return so, usageErrorf("--memory %q: %v", o.Memory, err)
		}
		so.Resources.Memory = n
	}
	if o.CPUs < 0 {
		return so, usageErrorf("--cpus %v: must be positive", o.CPUs)
	}
	so.Resources.CPUs = o.CPUs
	if o.PidsLimit < 0 {
		return so, usageErrorf("--pids-limit %d: must be positive", o.PidsLimit)
	}
	so.Resources.Pids = o.PidsLimit
	for _, s := range o.SecurityOpt {
		k, v, _ := strings.Cut(s, "=")
		switch {
		case k == "seccomp" && v == "unconfined":
			so.SeccompUnconfined = true
		case k == "seccomp" && v != "":
			b, err := readBoundedFile(v, 1<<20)
			if err != nil {
				return so, usageErrorf("--security-opt %s: %v", s, err)
			}
			p, err := spec.ParseProfile(v, b)
			if err != nil {
				return so, usageErrorf("--security-opt %s: %v", s, err)
			}
			so.Seccomp = p
		case k == "no-new-privileges" && v == "false":
			so.AllowNewPrivileges = true
		case k == "no-new-privileges" && (v == "true" || v == ""):
		default:
			return so, usageErrorf("--security-opt %q: want seccomp=PATH, seccomp=unconfined or no-new-privileges=false", s)
		}
	}
	switch {
	case o.Network == "none" || o.Network == "":
	case o.Network == "host":
		so.HostNetwork = true
	case strings.HasPrefix(o.Network, "container:"):
		if strings.TrimPrefix(o.Network, "container:") == "" {
			return so, usageErrorf("--network %q: container: needs a container's name or ID", o.Network)
		}
	case strings.HasPrefix(o.Network, "ns:"):
		so.NetNSPath = strings.TrimPrefix(o.Network, "ns:")
		if !filepath.IsAbs(so.NetNSPath) {
			return so, usageErrorf("--network %q: ns: needs an absolute path", o.Network)
		}
		if _, err := os.Stat(so.NetNSPath); err != nil {
			return so, usageErrorf("--network %q: %v", o.Network, err)
		}
	case o.Network == "bridge":
	default:
		return so, usageErrorf("--network %q: want none, bridge, host, container:NAME or ns:PATH", o.Network)
	}
	if len(o.Publish) > 0 && o.Network != "bridge" {
		return so, usageErrorf("-p %s: publishing ports needs the bridge network: add --network bridge", o.Publish[0])
	}
	o.ports = o.ports[:0]
	for _, s := range o.Publish {
		p, err := network.ParsePort(s)
		if err != nil {
			return so, usageErrorf("-p: %v", err)
		}
		o.ports = append(o.ports, p)
	}
	return so, nil
}

func (o *runOptions) run(ctx context.Context, a *app, arg string, args []string) error {
	if strings.HasPrefix(arg, "dir:") {
		return usageErrorf("%s: a root filesystem directory cannot be run: give an image", arg)
	}
	var raise spec.Level
	if o.Isolation != "" {
		l, err := spec.ParseLevel(o.Isolation)
		if err != nil {
			return usageErrorf("--isolation %q: %v", o.Isolation, err)
		}
		raise = l
	}
	so, err := o.specOptions(a, args)
	if err != nil {
		return err
	}
	imgOpts, err := o.image.options()
	if err != nil {
		return err
	}
	logPath, err := decisionLogPath(o.DecisionLog)
	if err != nil {
		return err
	}
	target, err := image.ParseTarget(arg)
	if err != nil {
		return err
	}
	// A registry reference is resolved to its digest once; the decision and the image both
	// name that digest.
	if target.Source == image.SourceRegistry {
		d, _, err := (&registryOptions{Insecure: o.image.Insecure}).resolve(ctx, target.Ref)
		if err != nil {
			return err
		}
		target.Ref = d.String()
	}
	sess, err := openSession(a, false)
	if err != nil {
		return err
	}
	defer sess.Close()
	imgOpts.TempDir = sess.tempDir
	img, err := image.Open(ctx, target, imgOpts)
	if err != nil {
		return err
	}
	defer img.Close()

	level, record, decision, err := o.decide(ctx, a, arg, target, img, logPath)
	if err != nil {
		return err
	}
	if raise.Rank() > level.Rank() {
		a.log.Info("isolation raised", "from", level, "to", raise)
		level = raise
	}

	e, err := openEngine(a, engine.WithHardenedRuntime(o.Runtime))
	if err != nil {
		return err
	}
	defer e.Close()
	var stdin io.Reader
	if o.Interactive {
		stdin = a.in
	}
	var terminal *backend.Terminal
	if o.TTY {
		tty, err := startTTY(a.in, a.out, o.Interactive && !o.Detach)
		if err != nil {
			return err
		}
		defer tty.Restore()
		terminal = tty.Terminal
	}
	// The allow decision is logged with the container and its relaxations, before it starts.
	// With a policy in force, a relaxation the deciding rule does not permit stops the
	// container before it starts: a deny, logged with the relaxations it refused.
	check := func(name string, relaxations []spec.Relaxation, logAllowed bool) error {
		record.Container = name
		rs := make([]policy.Relaxation, len(relaxations))
		record.Relaxations = record.Relaxations[:0]
		for i, r := range relaxations {
			rs[i] = policy.Relaxation{Kind: string(r.Kind), Value: r.Value}
			record.Relaxations = append(record.Relaxations, r.String())
		}
		var refused error
		if decision != nil {
			refused = decision.CheckRelaxations(rs)
		}
		var re *policy.RelaxationError
		if errors.As(refused, &re) {
			record.Refuse(re)
		}
		if logPath != "" && (refused != nil || logAllowed) {
			if err := appendDecision(logPath, record); err != nil {
				return err
			}
		}
		if refused != nil {
			return &DeniedError{Err: fmt.Errorf("%s: %w", arg, refused)}
		}
		return nil
	}
	// The bridge changes the host (it creates the bridge, turns on forwarding, installs the NAT
	// rule) before the spec that lists the relaxations exists: a policy that does not permit
	// it stops the run first.
	if early := engine.BridgeRelaxations(engine.RunOptions{Bridge: o.Network == "bridge", Publish: o.ports}); early != nil {
		if err := check(o.Name, early, false); err != nil {
			return err
		}
	}
	prepared := func(c *engine.Container) error {
		if err := check(c.Name, c.Relaxations, true); err != nil {
			return err
		}
		for _, r := range c.Relaxations {
			a.log.Info("relaxation applied", "container", c.Name, "relaxation", r.String())
		}
		return nil
	}
	ro := engine.RunOptions{Name: o.Name, Level: level, Spec: so, Remove: o.Remove, Prepared: prepared,
		IO: backend.IO{Stdin: stdin, Stdout: a.out, Stderr: a.err, Terminal: terminal}}
	if name, ok := strings.CutPrefix(o.Network, "container:"); ok {
		ro.NetworkContainer = name
	}
	ro.Bridge = o.Network == "bridge"
	ro.Publish = o.ports
	ro.OpenStdin = o.Detach && o.Interactive && !o.TTY
	if o.Detach {
		c, err := e.Start(ctx, img, ro)
		if err != nil {
			return err
		}
		fmt.Fprintln(a.out, c.ID)
		return nil
	}
	res, err := e.Run(ctx, img, ro)
	if err != nil {
		return err
	}
	if res.ExitCode != 0 {
		return &ContainerExitError{Code: res.ExitCode}
	}
	return nil
}

// decide makes the policy decision for the image, or says that no policy is in force (the
// decision is then nil). A deny is logged here; an allow comes back as the record to log once
// the container is prepared, and the decision that judges the container's relaxations.
func (o *runOptions) decide(ctx context.Context, a *app, arg string, target image.Target, img *image.Image, logPath string) (spec.Level, policy.Record, *policy.Decision, error) {
	if o.Policy == "" {
		fmt.Fprintln(a.err, "moat: no trust policy in force (--policy, MOAT_POLICY): running at hardened")
		ev := &policy.Evidence{Image: policy.Image{Reference: arg}, Digest: img.Digest}
		d := policy.Decision{Allow: true, Isolation: string(spec.Hardened), Reasons: []string{"no trust policy in force: hardened"}}
		return spec.Hardened, policy.NewRecord(time.Now(), ev, d), nil, nil
	}
	now := time.Now()
	var ev *policy.Evidence
	d, err := func() (policy.Decision, error) {
		p, err := policy.Load(o.Policy)
		if err != nil {
			return policy.Decision{}, err
		}
		needs := p.Needs()
		if target.Source == image.SourceRegistry {
			ref, err := name.NewDigest(target.Ref, name.Insecure)
			if err != nil {
				return policy.Decision{PolicyHash: p.Hash}, err
			}
			if ev, err = gatherEvidence(ctx, a, p, ref, img.Platform, o.image, o.db, true); err != nil {
				return policy.Decision{PolicyHash: p.Hash}, err
			}
		} else {
			// A local image carries no signatures or attestations; a policy that requires them
			// denies it. Its keys must still load: a policy that lost a key is no policy.
			if _, err := evidence.LoadKeys(p); err != nil {
				return policy.Decision{PolicyHash: p.Hash}, err
			}
			ev = &policy.Evidence{Image: policy.Image{Reference: arg}, Digest: img.Digest, Config: evidence.Config(img.Config.Config)}
			if needs.Scan {
				ev.Errors = append(ev.Errors, "the policy limits vulnerabilities, which is decided for registry images only for now")
			}
		}
		return policy.Evaluate(p, ev, now), nil
	}()
	if err != nil {
		d.Reasons = append(d.Reasons, "policy: "+err.Error())
	}
	if ev == nil {
		ev = &policy.Evidence{Image: policy.Image{Reference: arg}, Digest: img.Digest}
	}
	record := policy.NewRecord(now, ev, d)
	level, lerr := spec.ParseLevel(d.Isolation)
	if d.Allow && lerr != nil {
		// An allow at a level moat cannot parse is no allow.
		d.Allow = false
		d.Reasons = append(d.Reasons, fmt.Sprintf("deny: the policy chose isolation %q: %v", d.Isolation, lerr))
		record = policy.NewRecord(now, ev, d)
	}
	if !d.Allow {
		if logPath != "" {
			if err := appendDecision(logPath, record); err != nil {
				return "", record, nil, err
			}
		}
		for _, r := range d.Reasons {
			fmt.Fprintln(a.err, "  "+r)
		}
		return "", record, nil, &DeniedError{Err: fmt.Errorf("%s denied by policy: %s", arg, lastReason(d))}
	}
	a.log.Info("policy decision", "rule", d.Rule, "isolation", level)
	return level, record, &d, nil
}

// resolveBindSource replaces a bind mount's source by the path its symbolic links lead to, so
// that the relaxation the policy judges (and the decision log records) names what is really
// mounted: a link inside a directory the policy permits must not carry /etc in with it.
func resolveBindSource(m spec.Mount) (spec.Mount, error) {
	if m.Type != spec.Bind {
		return m, nil
	}
	real, err := filepath.EvalSymlinks(m.Source)
	if err != nil {
		return m, fmt.Errorf("bind source: %w", err)
	}
	m.Source = real
	return m, nil
}

// environment is the container environment of --env-file files and -e flags, in that order.
func environment(flags, files []string) ([]string, error) {
	var out []string
	for _, p := range files {
		entries, err := readEnvFile(p)
		if err != nil {
			return nil, usageErrorf("--env-file: %v", err)
		}
		out = append(out, entries...)
	}
	for _, e := range flags {
		if k, _, ok := strings.Cut(e, "="); ok {
			if k == "" {
				return nil, usageErrorf("-e %q: no variable name", e)
			}
			out = append(out, e)
			continue
		}
		if v, ok := os.LookupEnv(e); ok { // -e NAME passes moat's own value, as docker does
			out = append(out, e+"="+v)
		}
	}
	return out, nil
}

// readEnvFile reads NAME=value lines; blank lines and # comments are skipped.
func readEnvFile(p string) ([]string, error) {
	b, err := readBoundedFile(p, 1<<20)
	if err != nil {
		return nil, err
	}
	var out []string
	s := bufio.NewScanner(strings.NewReader(string(b)))
	for n := 1; s.Scan(); n++ {
		line := strings.TrimSpace(s.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, _, ok := strings.Cut(line, "=")
		if !ok || k == "" || strings.ContainsAny(k, " \t") {
			return nil, fmt.Errorf("%s:%d: want NAME=value", p, n)
		}
		out = append(out, line)
	}
	return out, nil
}

// parseBytes reads 512, 512k, 256m, 1g (binary units, as docker does).
func parseBytes(s string) (int64, error) {
	mult := int64(1)
	num := strings.ToLower(strings.TrimSpace(s))
	num = strings.TrimSuffix(num, "b")
	switch {
	case strings.HasSuffix(num, "k"):
		mult, num = 1<<10, strings.TrimSuffix(num, "k")
	case strings.HasSuffix(num, "m"):
		mult, num = 1<<20, strings.TrimSuffix(num, "m")
	case strings.HasSuffix(num, "g"):
		mult, num = 1<<30, strings.TrimSuffix(num, "g")
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 {
		return 0, errors.New("want a positive size such as 256m or 1g")
	}
	if n > (1<<62)/mult {
		return 0, errors.New("too large")
	}
	return n * mult, nil
}

// engineDir is where containers live: MOAT_ENGINE_DIR, or a default. Their mapped root, an unprivileged host user, must be
// able to reach the root filesystems there, which rules out the default state directory in a
// private home (/root is 0700): as root without MOAT_HOME, moat keeps them in /var/lib/moat,
// as Docker does in /var/lib/docker.
func engineDir(dirs store.Dirs) string {
	if d := env.EngineDir.Get(); d != "" {
		return d
	}
	if _, ok := env.Home.Lookup(); !ok && os.Geteuid() == 0 {
		return "/var/lib/moat"
	}
	return filepath.Join(dirs.State, "engine")
}
