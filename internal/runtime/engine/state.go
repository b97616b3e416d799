package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/moatsec/moat/internal/runtime/backend"
	"github.com/moatsec/moat/internal/runtime/network"
	"github.com/moatsec/moat/internal/runtime/spec"
	"github.com/moatsec/moat/internal/store"
)

// Status is a container's status as moat reports it.
type Status string

// A container is created (its root filesystem and spec are ready, its process has not
// started), running, or exited (its process has ended; its writable layer and log stay until
// Remove).
const (
	StatusCreated Status = "created"
	StatusRunning Status = "running"
	StatusExited  Status = "exited"
)

// Container is what moat's store keeps of one container. It survives moat's own exit: the
// next moat process asks the runtime for the container's status and records what it finds.
type Container struct {
	ID      string     `json:"id"`
	Name    string     `json:"name"`
	Image   string     `json:"image"`
	Digest  string     `json:"digest,omitempty"`
	Level   spec.Level `json:"level"`
	Runtime string     `json:"runtime"`
	// Command is the container's process: entrypoint and command as run.
	Command  []string `json:"command"`
	Detached bool     `json:"detached"`
	Terminal bool     `json:"terminal,omitempty"`
	// Stdin is an open standard input without a terminal (-d -i), which Attach writes to.
	Stdin bool `json:"stdin,omitempty"`
	// AutoRemove removes the container when it exits (--rm). A detached one is removed by
	// the program its shim starts again as it ends (HandleAutoRemove), or else by the first
	// List that finds it exited.
	AutoRemove bool   `json:"autoRemove,omitempty"`
	Status     Status `json:"status"`
	// Pid is the container's init process on the host while it runs.
	Pid int `json:"pid,omitempty"`
	// ExitCode is the exit code of an exited container (128+N when ended by signal N), -1
	// while it runs or when it is not known; Error then says why.
	ExitCode int       `json:"exitCode"`
	Error    string    `json:"error,omitempty"`
	Created  time.Time `json:"created"`
	Started  time.Time `json:"started,omitzero"`
	Finished time.Time `json:"finished,omitzero"`
	// Relaxations are the loosenings of the hardened confinement its options asked for.
	Relaxations []spec.Relaxation `json:"relaxations,omitempty"`
	IDMap       spec.IDMap        `json:"idMap"`
	StopSignal  string            `json:"stopSignal,omitempty"`
	// Dir is the container's bundle, a tmpfs of its own while it exists: the runtime spec,
	// the root filesystem's mount point and, for a read-only root filesystem, the writable
	// layer (where only the runtime writes: the mount points it needs).
	Dir string `json:"dir"`
	// Data holds what outlives the container's run: its log and, for a writable root
	// filesystem, its writable layer. It is created only when something goes there.
	Data string `json:"data,omitempty"`
	// Network is the container's place on moat's bridge network (--network bridge).
	Network *Endpoint `json:"network,omitempty"`
	// Owner is the moat process running a foreground container, or creating a detached one;
	// while it lives, a container the runtime does not know yet is not lost.
	Owner *Owner `json:"owner,omitempty"`
}

// Endpoint is a container's attachment to the bridge network: its own network namespace,
// pinned on NetNS, with Address on the bridge's subnet and the bridge's address, Gateway, as
// its default route.
type Endpoint struct {
	Bridge  string     `json:"bridge"`
	Address netip.Addr `json:"address"`
	Gateway netip.Addr `json:"gateway"`
	NetNS   string     `json:"netns"`
	// Ports are the container's published ports.
	Ports []network.Port `json:"ports,omitempty"`
}

// Owner identifies a process across PID reuse: its PID and its start time.
type Owner struct {
	Pid   int    `json:"pid"`
	Start uint64 `json:"start"`
}

// LogPath is the file the container's standard output and error go to.
func (c *Container) LogPath() string {
	if c.Data == "" {
		return filepath.Join(c.Dir, logFile) // recorded before Data existed
	}
	return filepath.Join(c.Data, logFile)
}

// removable reports whether c is a detached --rm container that has exited, which moat
// removes rather than keeps.
func (c *Container) removable() bool {
	return c.Status == StatusExited && c.AutoRemove && c.Detached
}

// ShortID is the first 12 characters of the ID, as `moat ps` shows it.
func (c *Container) ShortID() string { return c.ID[:min(12, len(c.ID))] }

const (
	bucketContainers = "containers"
	bucketNames      = "container-names"
	// bucketNetworks holds, per bridge, the last address handed out.
	bucketNetworks = "networks"
	logFile        = "container.log"
)

// ErrNotFound is returned for a name or ID that names no container.
var ErrNotFound = errors.New("no such container")

// withStore opens the engine's store for one operation: no moat process holds it longer, so
// a foreground container or `moat logs -f` never keeps another moat waiting.
func (e *Engine) withStore(fn func(s *store.Store) error) error {
	s, err := store.Open(filepath.Join(e.dir, "containers.db"), 30*time.Second)
	if err != nil {
		return err
	}
	err = fn(s)
	if cerr := s.Close(); err == nil {
		err = cerr
	}
	return err
}

// claim records a new container, refusing a name in use.
func (e *Engine) claim(c *Container) error {
	return e.withStore(func(s *store.Store) error {
		err := s.Update(func(tx *store.Tx) error {
			if err := tx.Insert(bucketNames, c.Name, []byte(c.ID)); err != nil {
				return err
			}
			if c.Network != nil {
				// The address is chosen, and the published ports checked, in the transaction
				// that records them, so that two moat processes never pick the same.
				addr, err := e.allocate(tx, c.Network)
				if err != nil {
					return err
				}
				c.Network.Address = addr
			}
			b, err := json.Marshal(c)
			if err != nil {
				return err
			}
			return tx.Insert(bucketContainers, c.ID, b)
		})
		if errors.Is(err, store.ErrExists) {
			return fmt.Errorf("container name %q is in use: remove that container (moat rm %s) or choose another --name", c.Name, c.Name)
		}
		return err
	})
}

// allocate picks the next free address of the engine's bridge after the last one handed out
// (network.Bridge.Allocate): one no container record on that bridge holds (a container keeps
// its address until it is removed), and records it as the last.
func (e *Engine) allocate(tx *store.Tx, ep *Endpoint) (netip.Addr, error) {
	bridge := ep.Bridge
	var used []netip.Addr
	err := tx.ForEach(bucketContainers, func(_ string, v []byte) error {
		var other struct {
			Name    string    `json:"name"`
			Network *Endpoint `json:"network"`
		}
		if json.Unmarshal(v, &other) != nil || other.Network == nil {
			return nil
		}
		for _, p := range ep.Ports {
			for _, q := range other.Network.Ports {
				if p.Overlaps(q) {
					return fmt.Errorf("published port %s: container %s publishes %s (moat rm it, or publish another host port)", p, other.Name, q)
				}
			}
		}
		if other.Network.Bridge == bridge {
			used = append(used, other.Network.Address)
		}
		return nil
	})
	if err != nil {
		return netip.Addr{}, err
	}
	var last netip.Addr
	if b, err := tx.Get(bucketNetworks, bridge); err == nil {
		last, _ = netip.ParseAddr(string(b)) // unreadable: start from the beginning
	}
	addr, err := e.bridge.Allocate(used, last)
	if err != nil {
		return netip.Addr{}, err
	}
	return addr, tx.Put(bucketNetworks, bridge, []byte(addr.String()))
}

// save writes c back, unless it has been removed meanwhile (a forced `moat rm` of a
// foreground container, say): a removed container is not brought back.
func (e *Engine) save(c *Container) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	return e.withStore(func(s *store.Store) error {
		return s.Update(func(tx *store.Tx) error {
			if _, err := tx.Get(bucketContainers, c.ID); errors.Is(err, store.ErrNotFound) {
				return nil
			}
			return tx.Put(bucketContainers, c.ID, b)
		})
	})
}

// forget deletes c's record and frees its name.
func (e *Engine) forget(c *Container) error {
	return e.withStore(func(s *store.Store) error {
		return s.Update(func(tx *store.Tx) error {
			if id, err := tx.Get(bucketNames, c.Name); err == nil && string(id) == c.ID {
				if err := tx.Delete(bucketNames, c.Name); err != nil {
					return err
				}
			}
			return tx.Delete(bucketContainers, c.ID)
		})
	})
}

// all reads every container record.
func (e *Engine) all() ([]*Container, error) {
	var out []*Container
	err := e.withStore(func(s *store.Store) error {
		return s.ForEach(bucketContainers, func(k string, v []byte) error {
			c := new(Container)
			if err := json.Unmarshal(v, c); err != nil {
				return fmt.Errorf("container record %s in %s: %w", k, s.Path(), err)
			}
			out = append(out, c)
			return nil
		})
	})
	return out, err
}

// lookup finds the container ref names: its name, its ID, or a prefix of its ID that only it
// has.
func (e *Engine) lookup(ref string) (*Container, error) {
	if ref == "" {
		return nil, fmt.Errorf("%w: empty name", ErrNotFound)
	}
	all, err := e.all()
	if err != nil {
		return nil, err
	}
	var byPrefix []*Container
	for _, c := range all {
		if c.Name == ref || c.ID == ref {
			return c, nil
		}
		if strings.HasPrefix(c.ID, ref) {
			byPrefix = append(byPrefix, c)
		}
	}
	switch len(byPrefix) {
	case 1:
		return byPrefix[0], nil
	case 0:
		return nil, fmt.Errorf("%w: %s", ErrNotFound, ref)
	default:
		return nil, fmt.Errorf("%q names %d containers: give more of the ID", ref, len(byPrefix))
	}
}

// refresh asks the runtime for the status of a container not known to have exited and
// records what changed. A container the runtime does not know and no live moat process owns
// has exited with an unknown code: its runtime state went with a reboot, or the moat process
// running it in the foreground was killed before it could record the end.
func (e *Engine) refresh(ctx context.Context, c *Container) error {
	if c.Status == StatusExited {
		return nil
	}
	rt, err := e.runtimeNamed(c.Runtime)
	if err != nil {
		return err
	}
	before := *c
	st, err := rt.State(ctx, c.ID)
	switch {
	case errors.Is(err, backend.ErrNotFound):
		if c.Owner.alive() {
			return nil
		}
		c.Status, c.Pid, c.ExitCode, c.Owner = StatusExited, 0, -1, nil
		c.Error = "its runtime state is gone (the machine restarted, or the moat process running it was killed)"
		c.Finished = time.Now().UTC()
	case err != nil:
		return fmt.Errorf("container %s: %w", c.Name, err)
	case st.Status == backend.Created || st.Status == backend.Creating:
		c.Status = StatusCreated
	case st.Status == backend.Running || st.Status == backend.Paused:
		c.Status, c.Pid = StatusRunning, st.Pid
	default: // stopped
		if c.Owner.alive() && !c.Detached {
			// The foreground moat records the end itself, with the exit code it saw.
			return nil
		}
		c.Status, c.Pid, c.ExitCode, c.Owner = StatusExited, 0, st.ExitCode, nil
		if st.ExitCode < 0 {
			c.Error = "its exit code was not recorded (its shim was killed)"
		}
		c.Finished = time.Now().UTC()
	}
	if c.Status == before.Status && c.Pid == before.Pid {
		return nil
	}
	return e.save(c)
}

// List returns the containers, newest first: all of them, or only those not exited. Each
// one's status is checked with its runtime; detached containers started with AutoRemove that
// have exited are removed.
func (e *Engine) List(ctx context.Context, all bool) ([]*Container, error) {
	cs, err := e.all()
	if err != nil {
		return nil, err
	}
	out := cs[:0]
	for _, c := range cs {
		if err := e.refresh(ctx, c); err != nil {
			e.log.Warn("checking a container's status", "container", c.Name, "error", err)
		}
		if c.removable() {
			if err := e.remove(ctx, c, false); err != nil {
				e.log.Warn("removing an exited --rm container", "container", c.Name, "error", err)
			} else {
				continue
			}
		}
		if all || c.Status != StatusExited {
			out = append(out, c)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Created.After(out[j].Created) })
	return out, nil
}

// Inspect returns the container ref names (name, ID or unique ID prefix), its status checked
// with its runtime.
func (e *Engine) Inspect(ctx context.Context, ref string) (*Container, error) {
	c, err := e.lookup(ref)
	if err != nil {
		return nil, err
	}
	if err := e.refresh(ctx, c); err != nil {
		return nil, err
	}
	return c, nil
}

// self identifies this process as a container's owner.
func self() *Owner {
	start, err := procStart(os.Getpid())
	if err != nil {
		return nil
	}
	return &Owner{Pid: os.Getpid(), Start: start}
}

// alive reports whether the owner process still runs (the same process, not a reuse of its
// PID).
func (o *Owner) alive() bool {
	if o == nil {
		return false
	}
	start, err := procStart(o.Pid)
	return err == nil && start == o.Start
}

// procStart is a process's start time in clock ticks since boot (/proc/PID/stat field 22).
func procStart(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces: split after it.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, errors.New("unreadable /proc stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0, errors.New("unreadable /proc stat")
	}
	return strconv.ParseUint(f[19], 10, 64)
}
