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
	"regexp"
	"sync"

	"github.com/moatsec/moat/internal/image"
	"github.com/moatsec/moat/internal/runtime/backend"
	"github.com/moatsec/moat/internal/runtime/rootfs"
	"github.com/moatsec/moat/internal/runtime/spec"
)

// Engine runs containers. Its directory holds the layer cache, one directory per container
// (bundle, writable layer, root filesystem mount) and the runtimes' own state.
type Engine struct {
	dir   string
	cache *rootfs.Cache
	log   *slog.Logger
	// hardened names the runtime of the hardened level: "runc" (default) or "crun".
	hardened string

	binaries map[string]string

	mu       sync.Mutex
	runtimes map[string]backend.Runtime
}

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

// New opens the engine whose data lives in dir (created, mode 0711 so that a container's
// mapped root can reach its root filesystem below it).
func New(dir string, opts ...Option) (*Engine, error) {
	e := &Engine{dir: dir, log: slog.New(slog.DiscardHandler), hardened: "runc", runtimes: map[string]backend.Runtime{}, binaries: map[string]string{}}
	for _, o := range opts {
		o(e)
	}
	if e.hardened != "runc" && e.hardened != "crun" {
		return nil, fmt.Errorf("runtime %q: the hardened level runs with runc or crun", e.hardened)
	}
	for _, d := range []string{dir, filepath.Join(dir, "containers")} {
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

// runtime returns the backend for level, constructing it once.
func (e *Engine) runtime(level spec.Level) (backend.Runtime, error) {
	name := e.hardened
	switch level {
	case spec.Hardened, "":
	case spec.Sandbox:
		name = "runsc"
	default:
		return nil, fmt.Errorf("%w: isolation level %q has no backend yet (a micro-VM backend is planned)", spec.ErrUnsupportedLevel, level)
	}
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
	}
	if err != nil {
		return nil, err
	}
	e.runtimes[name] = r
	return r, nil
}

// RunOptions describe one foreground container.
type RunOptions struct {
	// Name is the container's name; "" picks a random one.
	Name string
	// Level is the isolation level to apply (the decision's, possibly raised).
	Level spec.Level
	// Spec are the container options (command, env, mounts, limits, relaxations). Its Level,
	// IDMap and CgroupsPath are set by the engine.
	Spec spec.Options
	// IO is the container's standard streams.
	IO backend.IO
	// Prepared, when set, is called with the container's name and relaxations once everything
	// is ready and before the container starts; an error stops the run (nothing has started).
	Prepared func(id string, relaxations []spec.Relaxation) error
}

// Result describes a finished container.
type Result struct {
	ID       string
	ExitCode int
	// Relaxations are the loosenings of the hardened confinement the options asked for.
	Relaxations []spec.Relaxation
}

var validName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$`)

// Run runs img in the foreground at o.Level and removes the container when it ends: its
// root filesystem mount, writable layer, bundle and runtime state. The cached layers stay.
// Everything is checked before anything is created: the runtime binary, the level, the
// options (user, mounts, command) against the image.
func (e *Engine) Run(ctx context.Context, img *image.Image, o RunOptions) (*Result, error) {
	if img.Config == nil {
		return nil, fmt.Errorf("%s: the image has no configuration", img.Name)
	}
	if img.Root != "" {
		return nil, fmt.Errorf("%s: a root filesystem directory cannot be run: give an image", img.Name)
	}
	id := o.Name
	if id == "" {
		b := make([]byte, 6)
		rand.Read(b)
		id = "moat-" + hex.EncodeToString(b)
	}
	if !validName.MatchString(id) {
		return nil, fmt.Errorf("container name %q: use letters, digits, '_', '.' and '-', starting with a letter or digit", id)
	}
	rt, err := e.runtime(o.Level)
	if err != nil {
		return nil, err
	}
	if err := rootfs.CheckOverlay(); err != nil {
		return nil, err
	}
	dir := filepath.Join(e.dir, "containers", id)
	if err := os.Mkdir(dir, 0o711); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("container name %q is in use", id)
		}
		return nil, err
	}
	res := &Result{ID: id, ExitCode: -1}
	defer func() {
		if err := rootfs.Remove(dir); err != nil {
			// The root filesystem may still be mounted: removing the directory would walk into it.
			e.log.Warn("removing the container's root filesystem; its directory is left", "container", id, "dir", dir, "error", err)
			return
		}
		if err := os.RemoveAll(dir); err != nil {
			e.log.Warn("removing the container's directory", "container", id, "error", err)
		}
	}()

	m := spec.DefaultIDMap()
	layerMap := rootfs.IDMap{UID: m.HostUID, GID: m.HostGID, Size: m.Size}
	layers, err := e.cache.UnpackAll(ctx, img.Layers, layerMap)
	if err != nil {
		return nil, fmt.Errorf("unpacking %s: %w", img.Name, err)
	}
	dirs := make([]string, len(layers))
	for i, l := range layers {
		dirs[i] = l.Dir
	}
	root, err := rootfs.Mount(ctx, dir, dirs, rootfs.WithIDMap(layerMap))
	if err != nil {
		return nil, fmt.Errorf("assembling the root filesystem: %w", err)
	}

	so := o.Spec
	so.Level = o.Level
	so.IDMap = m
	so.CgroupsPath = "/moat/" + id
	gen, err := spec.Generate(img.Config.Config, root, so)
	if err != nil {
		return nil, err
	}
	res.Relaxations = gen.Relaxations
	cfg, err := gen.ConfigJSON()
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), cfg, 0o600); err != nil {
		return nil, fmt.Errorf("writing the runtime spec: %w", err)
	}
	if o.Prepared != nil {
		if err := o.Prepared(id, gen.Relaxations); err != nil {
			return res, err
		}
	}
	e.log.Info("starting container", "container", id, "image", img.Name, "digest", img.Digest, "level", o.Level, "runtime", rt.Name())
	code, err := rt.Run(ctx, id, dir, o.IO)
	if err != nil {
		return res, fmt.Errorf("running %s with %s: %w", id, rt.Name(), err)
	}
	res.ExitCode = code
	return res, nil
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
