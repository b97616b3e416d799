package engine

import (
	"context"
	"encoding/json"
	"os"
	"sync/atomic"
	"time"

	"github.com/moatsec/moat/internal/runtime/backend"
)

// A detached --rm container is removed when it ends, without a daemon: its shim starts this
// program again as autoRemoveArg0 (backend.IO.ExitCommand, as conmon's --exit-command), and
// that process removes it. Should it fail, the first moat command that lists the container
// exited removes it instead.
const autoRemoveArg0 = "moat-auto-remove"

// autoRemoveConfig is what the remover needs to open the engine as its creator did.
type autoRemoveConfig struct {
	Dir      string            `json:"dir"`
	ID       string            `json:"id"`
	Hardened string            `json:"hardened"`
	Binaries map[string]string `json:"binaries,omitempty"`
	NoIDMap  bool              `json:"noIDMapped,omitempty"`
}

// autoRemoveHandled records that HandleAutoRemove ran in this process: without it, this
// program started again would be the whole program (for a test binary, every test), so
// nothing asks for it.
var autoRemoveHandled atomic.Bool

// HandleAutoRemove turns this process into the remover of a detached --rm container that has
// ended, when it was started as one, and then never returns. Programs that start detached
// containers call it first thing in main (and tests in TestMain), next to
// backend.HandleShim; in any other process it does nothing.
func HandleAutoRemove() {
	if len(os.Args) == 2 && os.Args[0] == autoRemoveArg0 {
		os.Exit(autoRemoveMain(os.Args[1]))
	}
	autoRemoveHandled.Store(true)
}

// autoRemoveCommand is the exit command that removes c, or nil where this program cannot run
// one.
func (e *Engine) autoRemoveCommand(c *Container) *backend.Command {
	if !autoRemoveHandled.Load() {
		return nil
	}
	b, err := json.Marshal(autoRemoveConfig{Dir: e.dir, ID: c.ID, Hardened: e.hardened, Binaries: e.binaries, NoIDMap: e.noIDMapped})
	if err != nil {
		return nil
	}
	return &backend.Command{Path: "/proc/self/exe", Args: []string{autoRemoveArg0, string(b)}}
}

// autoRemoveMain removes the container the configuration names if it has exited: nothing to
// report to and nobody waiting, so failures leave it to the next moat command.
func autoRemoveMain(config string) int {
	var cfg autoRemoveConfig
	if err := json.Unmarshal([]byte(config), &cfg); err != nil || cfg.Dir == "" || cfg.ID == "" {
		return 2
	}
	opts := []Option{WithHardenedRuntime(cfg.Hardened)}
	for name, path := range cfg.Binaries {
		opts = append(opts, WithRuntimeBinary(name, path))
	}
	if cfg.NoIDMap {
		opts = append(opts, WithoutIDMappedLayers())
	}
	e, err := New(cfg.Dir, opts...)
	if err != nil {
		return 1
	}
	defer e.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := e.Inspect(ctx, cfg.ID)
	if err != nil || !c.removable() {
		return 1
	}
	if err := e.remove(ctx, c, false); err != nil {
		return 1
	}
	return 0
}
