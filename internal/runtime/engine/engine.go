// Package engine runs containers: it takes an opened image and the isolation level a
// decision chose, assembles the root filesystem from the layer cache, generates the hardened
// runtime spec and runs it with the OCI runtime for that level (runc or crun for hardened,
// gVisor's runsc for sandbox). It is what `moat run` calls, and what the Docker, containerd
// and Kubernetes integrations will call.
package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/moatsec/moat/internal/image"
	"github.com/moatsec/moat/internal/runtime/backend"
	"github.com/moatsec/moat/internal/runtime/network"
	"github.com/moatsec/moat/internal/runtime/rootfs"
	"github.com/moatsec/moat/internal/runtime/spec"
)

// Engine runs containers. Its directory holds the layer cache, one directory per container
// for its bundle (containers/ID, a tmpfs while the container exists), one for what outlives
// its run (data/ID: its log, the writable layer of a writable root filesystem), the
// containers' records (containers.db) and the runtimes' own state.
type Engine struct {
	dir   string
	cache *rootfs.Cache
	log   *slog.Logger
	// hardened names the runtime of the hardened level: "runc" (default) or "crun".
	hardened string

	binaries map[string]string

	mu       sync.Mutex
	runtimes map[string]backend.Runtime

	// runDir holds what outlives moat's processes but not a reboot: the pinned user
	// namespaces idmapped layers are mounted through.
	runDir string

	// bridge is the network --network bridge attaches containers to.
	bridge *network.Bridge

	noIDMapped bool
	noEarlyRun bool
	probeOnce  sync.Once
	// idmapped is the probe's answer; a mount that contradicts it clears it, while other
	// containers of this engine may be reading it.
	idmapped atomic.Bool
}

// DefaultRunDir is where engines pin the user namespaces their idmapped layers are mounted
// through, shared by every engine of the host (one per ID map).
const DefaultRunDir = "/run/moat"

// Option configures New.
type Option func(*Engine)

// WithLogger sets where the engine logs; by default it is silent.
func WithLogger(l *slog.Logger) Option { return func(e *Engine) { e.log = l } }

// WithHardenedRuntime chooses the OCI runtime of the hardened level: "runc" or "crun".
func WithHardenedRuntime(name string) Option { return func(e *Engine) { e.hardened = name } }

// WithRuntimeBinary runs the runtime name ("runc", "crun" or "runsc") from path instead of
// the one found in PATH.
func WithRuntimeBinary(name, path string) Option {
	return func(e *Engine) { e.binaries[name] = path }
}

// WithoutIDMappedLayers caches layers shifted into the containers' ID range even where the
// kernel could mount them idmapped (tests of the fallback, kernels whose idmapped overlayfs
// layers misbehave).
func WithoutIDMappedLayers() Option { return func(e *Engine) { e.noIDMapped = true } }

// WithoutEarlyRun writes the spec before the runtime starts even when the runtime could
// begin its run early (backend.EarlyRunner): tests of the plain path.
func WithoutEarlyRun() Option { return func(e *Engine) { e.noEarlyRun = true } }

// WithRunDir pins user namespaces in dir instead of DefaultRunDir.
func WithRunDir(dir string) Option { return func(e *Engine) { e.runDir = dir } }

// WithBridge attaches containers run with RunOptions.Bridge to b instead of the default
// bridge (network.DefaultName, network.DefaultSubnet, namespaces pinned in RUNDIR/netns).
func WithBridge(b *network.Bridge) Option { return func(e *Engine) { e.bridge = b } }

// New opens the engine whose data lives in dir (created, mode 0711 so that a container's
// mapped root can reach its root filesystem below it).
func New(dir string, opts ...Option) (*Engine, error) {
	e := &Engine{dir: dir, runDir: DefaultRunDir, log: slog.New(slog.DiscardHandler), hardened: "runc", runtimes: map[string]backend.Runtime{}, binaries: map[string]string{}}
	for _, o := range opts {
		o(e)
	}
	if e.hardened != "runc" && e.hardened != "crun" {
		return nil, fmt.Errorf("runtime %q: the hardened level runs with runc or crun", e.hardened)
	}
	for _, d := range []string{dir, filepath.Join(dir, "containers"), filepath.Join(dir, "data")} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return nil, fmt.Errorf("creating the engine's directory: %w", err)
		}
		if err := os.Chmod(d, 0o711); err != nil {
			return nil, err
		}
	}
	if err := checkSearchable(dir); err != nil {
		return nil, err
	}
	if e.bridge == nil {
		b, err := network.New(filepath.Join(e.runDir, "netns"))
		if err != nil {
			return nil, err
		}
		e.bridge = b
	}
	c, err := rootfs.NewCache(filepath.Join(dir, "cache"), rootfs.WithLogger(e.log))
	if err != nil {
		return nil, err
	}
	e.cache = c
	return e, nil
}

// Close releases the runtimes' resources.
func (e *Engine) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	var errs []error
	for _, r := range e.runtimes {
		if c, ok := r.(interface{ Close() error }); ok {
			errs = append(errs, c.Close())
		}
	}
	return errors.Join(errs...)
}

// runtimeName is the backend that runs level.
func (e *Engine) runtimeName(level spec.Level) (string, error) {
	switch level {
	case spec.Hardened, "":
		return e.hardened, nil
	case spec.Sandbox:
		return "runsc", nil
	default:
		return "", fmt.Errorf("%w: isolation level %q has no backend yet (a micro-VM backend is planned)", spec.ErrUnsupportedLevel, level)
	}
}

// runtimeNamed returns the backend called name, constructing it once.
func (e *Engine) runtimeNamed(name string) (backend.Runtime, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if r, ok := e.runtimes[name]; ok {
		return r, nil
	}
	dir := filepath.Join(e.dir, "runtimes", name)
	var r backend.Runtime
	var err error
	opts := []backend.Option{backend.WithLogger(e.log)}
	if p, ok := e.binaries[name]; ok {
		opts = append(opts, backend.WithBinary(p))
	}
	switch name {
	case "runc":
		r, err = backend.NewRunc(dir, opts...)
	case "crun":
		r, err = backend.NewCrun(dir, opts...)
	case "runsc":
		r, err = backend.NewRunsc(dir, opts...)
	default:
		return nil, fmt.Errorf("unknown runtime %q", name)
	}
	if err != nil {
		return nil, err
	}
	e.runtimes[name] = r
	return r, nil
}

// RunOptions describe one container.
type RunOptions struct {
	// Name is the container's name; "" picks moat-<the first 12 characters of its ID>.
	Name string
	// Level is the isolation level to apply (the decision's, possibly raised).
	Level spec.Level
	// Spec are the container options (command, env, mounts, limits, relaxations). Its Level,
	// IDMap and CgroupsPath are set by the engine.
	Spec spec.Options
	// IO is the container's standard streams. Run takes any; Start ignores it (a detached
	// container's output goes to its log).
	IO backend.IO
	// NetworkContainer, when set, names a running container of this engine whose network
	// namespace the new one joins (--network container:NAME). Both must run at the hardened
	// level: a sandbox's network lives inside gVisor. Spec.NetNSPath must then be empty.
	NetworkContainer string
	// Bridge gives the container a network namespace of its own on the engine's bridge
	// network (--network bridge): an address, a default route through the host, which
	// masquerades it, and the host's nameservers. A relaxation; excludes the other networks.
	Bridge bool
	// Publish are ports of the container (on the bridge) published on the host's addresses
	// (-p); each is a relaxation. Needs Bridge.
	Publish []network.Port
	// OpenStdin, for Start without a terminal, keeps the container's standard input open for
	// Attach (-d -i).
	OpenStdin bool
	// Remove removes the container when it exits (--rm). Without it an exited container and
	// its log stay until Remove.
	Remove bool
	// Prepared, when set, is called with the container once everything is ready and before
	// it starts; an error stops the run (nothing has started, and the container is removed).
	Prepared func(c *Container) error
}

// Result describes a finished foreground container.
type Result struct {
	ID       string
	Name     string
	ExitCode int
	// Relaxations are the loosenings of the hardened confinement the options asked for.
	Relaxations []spec.Relaxation
}

// create makes everything a container needs before its process starts: its record in the
// store (claiming its name), its directory, the unpacked layers, the root filesystem mount
// and the runtime spec. Everything is checked before anything is created: the runtime binary,
// the level, overlayfs, the name, then the options (user, mounts, command) against the image.
// On error nothing of the container is left.
//
// A foreground run passes runIO, which gives the container's stdio once it has an ID. When
// the runtime can (backend.EarlyRunner), its run then begins as soon as the bundle's
// directory exists, so that the runtime process starts while the root filesystem is
// mounted and the spec generated; the spec is not written, and the returned created holds
// the pending run and the spec it waits for.
func (e *Engine) create(ctx context.Context, img *image.Image, o RunOptions, detached bool, runIO func(*Container) (backend.IO, error)) (*created, error) {
	if img.Config == nil {
		return nil, fmt.Errorf("%s: the image has no configuration", img.Name)
	}
	if img.Root != "" {
		return nil, fmt.Errorf("%s: a root filesystem directory cannot be run: give an image", img.Name)
	}
	b := make([]byte, 32)
	rand.Read(b)
	id := hex.EncodeToString(b)
	name := o.Name
	if name == "" {
		name = "moat-" + id[:12]
	}
	if !backend.ValidID(name) {
		return nil, fmt.Errorf("container name %q: use letters, digits, '_', '.' and '-', starting with a letter or digit, at most 128", name)
	}
	rtName, err := e.runtimeName(o.Level)
	if err != nil {
		return nil, err
	}
	rt, err := e.runtimeNamed(rtName)
	if err != nil {
		return nil, err
	}
	if err := rootfs.CheckOverlay(); err != nil {
		return nil, err
	}
	level := o.Level
	if level == "" {
		level = spec.Hardened
	}
	if o.Bridge && (o.Spec.HostNetwork || o.Spec.NetNSPath != "" || o.NetworkContainer != "") {
		return nil, errors.New("--network bridge: conflicts with another network")
	}
	if len(o.Publish) > 0 && !o.Bridge {
		return nil, errors.New("publishing ports needs the bridge network (--network bridge)")
	}
	for i, p := range o.Publish {
		for _, q := range o.Publish[:i] {
			if p.Overlaps(q) {
				return nil, fmt.Errorf("published ports %s and %s take the same host port", q, p)
			}
		}
	}
	m := spec.DefaultIDMap()
	// Where the kernel can mount layers idmapped, they are cached as the tar records them
	// (owned by host IDs no container maps to, so that not even a container root that broke
	// out can write to what every container shares) and mounted through the container's
	// mapping. Elsewhere they are cached shifted into the mapping.
	layerMap := rootfs.IDMap{UID: m.HostUID, GID: m.HostGID, Size: m.Size}
	unpackMap, mountOpt := layerMap, rootfs.WithIDMap(layerMap)
	var userns *rootfs.UserNamespace
	if e.idmappedLayers(ctx, layerMap) {
		unpackMap, mountOpt = rootfs.IDMap{}, rootfs.WithIDMappedLayers(layerMap)
		userns = e.userNamespace(layerMap)
		defer userns.Close()
	}
	c := &Container{
		ID: id, Name: name, Image: img.Name, Digest: img.Digest, Level: level, Runtime: rtName,
		Detached: detached, Terminal: o.Spec.Terminal, Stdin: detached && o.OpenStdin && !o.Spec.Terminal,
		AutoRemove: o.Remove, Status: StatusCreated,
		ExitCode: -1, Created: time.Now().UTC(), IDMap: m, StopSignal: img.Config.Config.StopSignal,
		Dir: filepath.Join(e.dir, "containers", id), Data: filepath.Join(e.dir, "data", id), Owner: self(),
	}
	if o.Bridge {
		c.Network = &Endpoint{Bridge: e.bridge.Name(), Gateway: e.bridge.Gateway(), NetNS: e.bridge.PinPath(id), Ports: o.Publish}
	}
	if err := e.claim(c); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			e.discard(c, -1)
		}
	}()
	if err := os.Mkdir(c.Dir, 0o711); err != nil {
		return nil, fmt.Errorf("creating the container's directory: %w", err)
	}
	if err := rootfs.MountScratch(c.Dir); err != nil {
		return nil, err
	}
	out := &created{c: c, rt: rt}
	if runIO != nil {
		if out.io, err = runIO(c); err != nil {
			return nil, err
		}
		if er, isEarly := rt.(backend.EarlyRunner); isEarly && !o.Spec.Terminal && !e.noEarlyRun {
			if out.run, err = er.BeginRun(ctx, c.ID, c.Dir, out.io); err != nil {
				return nil, err
			}
			// Deferred after discard's, so run first: the runtime holds the bundle open.
			defer func() {
				if !ok {
					out.run.Abort()
				}
			}()
		}
	}

	so := o.Spec
	if c.Network != nil {
		if err := e.attach(ctx, c, &so); err != nil {
			return nil, err
		}
	}

	// A read-only root filesystem's writable layer holds only the runtime's mount points and
	// stays in the bundle's tmpfs; a writable one's holds what the container writes, on disk.
	var writable []rootfs.MountOption
	if o.Spec.WritableRootfs {
		writable = append(writable, rootfs.WithWritableLayer(c.Data))
	}
	opts := append(slices.Clone(writable), mountOpt)
	if userns != nil {
		opts = append(opts, rootfs.WithUserNamespace(userns))
	}
	root, err := e.mountLayers(ctx, img, c.Dir, unpackMap, opts...)
	if errors.Is(err, rootfs.ErrNoIDMappedMounts) && unpackMap.Identity() {
		// The recorded answer no longer holds (the cache moved to another filesystem, say),
		// unless what failed was this process's helper, not the kernel.
		e.log.Warn("idmapped layer mounts failed; caching layers shifted into the containers' ID range instead", "error", err)
		if !errors.Is(err, rootfs.ErrUserNamespaceHelper) {
			e.forgetIDMapped()
		}
		root, err = e.mountLayers(ctx, img, c.Dir, layerMap, append(writable, rootfs.WithIDMap(layerMap))...)
	}
	if err != nil {
		return nil, fmt.Errorf("assembling the root filesystem: %w", err)
	}

	so.Level = level
	so.IDMap = m
	so.CgroupsPath = "/moat/" + id
	gen, err := spec.Generate(img.Config.Config, root, so)
	if err != nil {
		return nil, err
	}
	c.Relaxations = append(gen.Relaxations, publishRelaxations(o.Publish)...)
	c.Command = gen.Spec.Process.Args
	cfg, err := gen.ConfigJSON()
	if err != nil {
		return nil, err
	}
	if out.run != nil {
		out.config = cfg
	} else if err := os.WriteFile(filepath.Join(c.Dir, "config.json"), cfg, 0o600); err != nil {
		return nil, fmt.Errorf("writing the runtime spec: %w", err)
	}
	if o.Prepared != nil {
		if err := o.Prepared(c); err != nil {
			return nil, err
		}
	}
	ok = true
	return out, nil
}

// BridgeRelaxations are the relaxations o.Bridge and o.Publish ask for, as the container will
// report them (the spec lists the network, the engine the ports). Attaching to the bridge
// changes the host before the container's relaxations are known: callers that check them
// against a policy check these first.
func BridgeRelaxations(o RunOptions) []spec.Relaxation {
	if !o.Bridge {
		return nil
	}
	return append([]spec.Relaxation{{Kind: spec.RelaxNetwork, Value: bridgeNetwork}}, publishRelaxations(o.Publish)...)
}

func publishRelaxations(ports []network.Port) []spec.Relaxation {
	var rs []spec.Relaxation
	for _, p := range ports {
		rs = append(rs, spec.Relaxation{Kind: spec.RelaxPublish, Value: p.String()})
	}
	return rs
}

// created is a container create has made, ready to run.
type created struct {
	c  *Container
	rt backend.Runtime
	io backend.IO // the stdio runIO gave, for a foreground run
	// run is the foreground run begun early, waiting for config, the spec; nil when the
	// spec is in the bundle.
	run    *backend.PendingRun
	config []byte
}

// userNamespace opens the user namespace with the ID map m pinned in the run directory,
// pinning it there first when needed (rootfs.PinUserNamespace). It is nil when it cannot:
// rootfs.Mount then makes one of its own for the container, as it did before pinning.
func (e *Engine) userNamespace(m rootfs.IDMap) *rootfs.UserNamespace {
	dir := filepath.Join(e.runDir, "userns")
	for _, d := range []struct {
		path string
		mode os.FileMode
	}{{e.runDir, 0o711}, {dir, 0o700}} {
		if err := os.Mkdir(d.path, d.mode); err != nil && !errors.Is(err, os.ErrExist) {
			e.log.Debug("not pinning user namespaces", "error", err)
			return nil
		}
		// Only root may pin namespaces there, or replace what is pinned.
		var st unix.Stat_t
		if err := unix.Lstat(d.path, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR || st.Uid != 0 || st.Mode&0o022 != 0 {
			e.log.Warn("not pinning user namespaces: the directory must be root's and writable by root alone", "dir", d.path, "error", err)
			return nil
		}
	}
	ns, err := rootfs.PinUserNamespace(filepath.Join(dir, fmt.Sprintf("%d-%d-%d", m.UID, m.GID, m.Size)), m)
	if err != nil {
		e.log.Warn("pinning a user namespace", "error", err)
		return nil
	}
	return ns
}

// mountLayers unpacks img's layers with m (through the cache) and mounts them on dir.
func (e *Engine) mountLayers(ctx context.Context, img *image.Image, dir string, m rootfs.IDMap, opts ...rootfs.MountOption) (string, error) {
	layers, err := e.cache.UnpackAll(ctx, img.Layers, m)
	if err != nil {
		return "", fmt.Errorf("unpacking %s: %w", img.Name, err)
	}
	dirs := make([]string, len(layers))
	for i, l := range layers {
		dirs[i] = l.Dir
	}
	return rootfs.Mount(ctx, dir, dirs, opts...)
}

// discard removes a container the runtime no longer holds (one that never ran, or a
// foreground --rm one that has exited with exitCode): its files, then its record. A root
// filesystem that will not unmount keeps both, recorded as exited with the reason, so that
// `moat rm` can try again.
func (e *Engine) discard(c *Container, exitCode int) {
	if err := e.removeFiles(c); err != nil {
		e.log.Warn("removing the container's files; it stays in `moat ps -a`", "container", c.Name, "dir", c.Dir, "error", err)
		c.Status, c.Owner, c.Pid, c.ExitCode, c.Finished = StatusExited, nil, 0, exitCode, time.Now().UTC()
		c.Error = "its files could not be removed: " + err.Error()
		e.save(c)
		return
	}
	if err := e.forget(c); err != nil {
		e.log.Warn("removing the container's record", "container", c.Name, "error", err)
	}
}

// removeFiles removes c's bundle (removeBundle), its data directory and its network
// namespace.
func (e *Engine) removeFiles(c *Container) error {
	if err := removeBundle(c.Dir); err != nil {
		return err
	}
	if c.Network != nil {
		if err := e.bridge.Detach(c.ID); err != nil {
			return err
		}
	}
	if c.Data != "" {
		if err := os.RemoveAll(c.Data); err != nil {
			return fmt.Errorf("removing %s: %w", c.Data, err)
		}
	}
	return nil
}

// removeBundle unmounts the root filesystem below dir and the tmpfs on it, and removes dir. A
// root filesystem still mounted keeps everything: removing the directory would walk into it.
func removeBundle(dir string) error {
	if err := rootfs.Remove(dir); err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("removing %s: %w", dir, err)
	}
	return nil
}

// Run runs img in the foreground at o.Level with o.IO as its standard streams and returns when
// it exits. With o.Remove the container is then removed (its root filesystem mount, writable
// layer, bundle, runtime state and record; the cached layers stay); without it the container
// stays, exited, with its output in its log.
func (e *Engine) Run(ctx context.Context, img *image.Image, o RunOptions) (*Result, error) {
	release, err := e.joinNetwork(ctx, &o)
	if err != nil {
		return nil, err
	}
	defer release()
	var log *os.File
	defer func() {
		if log != nil {
			log.Close()
		}
	}()
	runIO := func(c *Container) (backend.IO, error) {
		io := o.IO
		if !o.Remove {
			f, err := openLog(c)
			if err != nil {
				return io, err
			}
			log = f
			io.Stdout, io.Stderr = tee(io.Stdout, log), tee(io.Stderr, log)
		}
		return io, nil
	}
	cr, err := e.create(ctx, img, o, false, runIO)
	if err != nil {
		return nil, err
	}
	c, rt := cr.c, cr.rt
	res := &Result{ID: c.ID, Name: c.Name, ExitCode: -1, Relaxations: c.Relaxations}
	e.log.Info("starting container", "container", c.Name, "id", c.ID, "image", img.Name, "digest", img.Digest, "level", c.Level, "runtime", rt.Name())
	c.Started = time.Now().UTC()
	var code int
	var runErr error
	if cr.run != nil {
		code, runErr = cr.run.Run(ctx, cr.config)
	} else {
		code, runErr = rt.Run(ctx, c.ID, c.Dir, cr.io)
	}
	if o.Remove {
		// The runtime's run has deleted its own state already; what is left is moat's.
		e.discard(c, code)
	} else {
		c.Status, c.Owner, c.Pid, c.ExitCode, c.Finished = StatusExited, nil, 0, code, time.Now().UTC()
		if runErr != nil {
			c.ExitCode, c.Error = -1, runErr.Error()
		}
		// Nothing in the bundle is of use once the container has exited: its log and any
		// writable layer of a writable root filesystem are in its data directory.
		if err := removeBundle(c.Dir); err != nil {
			e.log.Warn("removing the container's bundle", "container", c.Name, "error", err)
		}
		if err := e.save(c); err != nil {
			e.log.Warn("recording the container's exit", "container", c.Name, "error", err)
		}
	}
	if runErr != nil {
		return res, fmt.Errorf("running %s with %s: %w", c.Name, rt.Name(), runErr)
	}
	res.ExitCode = code
	return res, nil
}

// idmappedLayers reports whether layers can be mounted idmapped through m here: the kernel
// (6.13 or later takes overlayfs layers as descriptors) and the cache's filesystem must both
// allow it. The answer is probed once per kernel release and kept in the engine's directory,
// since the probe (an overlay mounted, unmounted and removed) would cost every `moat run`
// process 10 ms and more. WithoutIDMappedLayers turns it off.
func (e *Engine) idmappedLayers(ctx context.Context, m rootfs.IDMap) bool {
	e.probeOnce.Do(func() {
		if e.noIDMapped {
			return
		}
		release := kernelRelease()
		file := filepath.Join(e.dir, idmappedFile)
		if b, err := os.ReadFile(file); err == nil {
			if r, answer, ok := strings.Cut(strings.TrimSpace(string(b)), " "); ok && r == release && release != "" {
				e.idmapped.Store(answer == "yes")
				return
			}
		}
		yes, definite := e.probeIDMapped(ctx, m)
		e.idmapped.Store(yes)
		if !definite {
			return
		}
		answer := "no"
		if yes {
			answer = "yes"
		}
		if release != "" {
			tmp := file + ".tmp"
			if err := os.WriteFile(tmp, []byte(release+" "+answer+"\n"), 0o600); err == nil {
				os.Rename(tmp, file)
			}
		}
	})
	return e.idmapped.Load()
}

// idmappedFile records the probe's answer: the kernel release, a space, yes or no.
const idmappedFile = "idmapped-layers"

// forgetIDMapped drops a recorded "yes" that a mount has just contradicted.
func (e *Engine) forgetIDMapped() {
	os.Remove(filepath.Join(e.dir, idmappedFile))
	e.idmapped.Store(false)
}

// probeIDMapped mounts an empty layer idmapped through m. definite is false when the answer
// says nothing about the kernel and filesystem (the probe itself could not be made), so that
// it is not recorded.
func (e *Engine) probeIDMapped(ctx context.Context, m rootfs.IDMap) (yes, definite bool) {
	probe, err := os.MkdirTemp(filepath.Join(e.dir, "cache"), ".probe-")
	if err != nil {
		e.log.Warn("probing for idmapped mounts", "error", err)
		return false, false
	}
	defer os.RemoveAll(probe)
	lower := filepath.Join(probe, "lower")
	ctr := filepath.Join(probe, "ctr")
	if err := os.Mkdir(lower, 0o755); err != nil {
		return false, false
	}
	if err := os.Mkdir(ctr, 0o711); err != nil {
		return false, false
	}
	if _, err := rootfs.Mount(ctx, ctr, []string{lower}, rootfs.WithIDMappedLayers(m)); err != nil {
		e.log.Debug("idmapped layer mounts are not available; layers are cached shifted into the containers' ID range", "error", err)
		return false, !errors.Is(err, rootfs.ErrUserNamespaceHelper)
	}
	if err := rootfs.Remove(ctr); err != nil {
		e.log.Warn("removing the idmapped-mount probe", "error", err)
		return false, false
	}
	return true, true
}

// kernelRelease is uname -r, "" when unknown.
func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}

// checkSearchable makes sure a container's mapped root, an unprivileged host user, can reach
// the root filesystems below dir: every directory above it must let others search it.
func checkSearchable(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	for d := abs; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("%s (mode %#o) is not searchable by others, so containers, whose root is an unprivileged host user, cannot reach their root filesystems below it: run `chmod o+x %s` or keep moat's data elsewhere (MOAT_HOME)", d, fi.Mode().Perm(), d)
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

// joinNetwork points o at the network namespace of the running container o.NetworkContainer
// names, if any, and returns what lets go of it once the runtime has created the container
// (never nil). The namespace is opened, then the container is checked to be running still
// with the same process, so that a PID reused meanwhile cannot hand over another process's
// namespace; the runtime opens it through this process's descriptor.
func (e *Engine) joinNetwork(ctx context.Context, o *RunOptions) (func(), error) {
	ref := o.NetworkContainer
	if ref == "" {
		return func() {}, nil
	}
	if o.Spec.NetNSPath != "" || o.Spec.HostNetwork {
		return nil, errors.New("--network container: conflicts with another network")
	}
	if o.Level != spec.Hardened && o.Level != "" {
		return nil, fmt.Errorf("--network container:%s: a %s container keeps its network inside gVisor; only hardened containers share a network namespace", ref, o.Level)
	}
	c, _, err := e.running(ctx, ref)
	if err != nil {
		return nil, fmt.Errorf("--network container:%s: %w", ref, err)
	}
	if c.Level != spec.Hardened || c.Pid <= 0 {
		return nil, fmt.Errorf("--network container:%s: it runs at the %s level, whose network lives inside gVisor; only hardened containers share a network namespace", c.Name, c.Level)
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", c.Pid))
	if err != nil {
		return nil, fmt.Errorf("--network container:%s: opening its network namespace: %w", c.Name, err)
	}
	again, _, err := e.running(ctx, c.ID)
	if err != nil || again.Pid != c.Pid {
		f.Close()
		return nil, fmt.Errorf("--network container:%s: it stopped while its network namespace was being opened", c.Name)
	}
	o.Spec.NetNSPath = fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), f.Fd())
	o.Spec.NetNSOf = "container:" + c.Name
	return func() { f.Close() }, nil
}
