package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/moatsec/moat/internal/runtime/backend"
	"github.com/moatsec/moat/internal/runtime/engine"
	"github.com/moatsec/moat/internal/runtime/spec"
	"github.com/moatsec/moat/internal/store"
)

// The container lifecycle commands: ps, logs, stop, kill, rm, exec and inspect. Each opens the
// engine, which keeps the containers' state in its store, and asks the runtimes how they are.

// openEngine opens the engine holding moat's containers, logging to moat's log.
func openEngine(a *app, opts ...engine.Option) (*engine.Engine, error) {
	dirs, err := store.DefaultDirs()
	if err != nil {
		return nil, err
	}
	return engine.New(engineDir(dirs), append([]engine.Option{engine.WithLogger(a.log)}, opts...)...)
}

// withEngine runs fn with the engine and closes it.
func withEngine(a *app, fn func(e *engine.Engine) error) error {
	e, err := openEngine(a)
	if err != nil {
		return err
	}
	defer e.Close()
	return fn(e)
}

// eachContainer runs fn for every name, going on after a failure, and returns every failure.
func eachContainer(a *app, names []string, fn func(e *engine.Engine, name string) error) error {
	return withEngine(a, func(e *engine.Engine) error {
		var errs []error
		for _, n := range names {
			if err := fn(e, n); err != nil {
				errs = append(errs, err)
				continue
			}
			fmt.Fprintln(a.out, n)
		}
		return errors.Join(errs...)
	})
}

func newPsCmd(a *app) *cobra.Command {
	var all bool
	var output string
	cmd := &cobra.Command{
		Use:   "ps [flags]",
		Short: "List containers",
		Long: `List the running containers, or with -a every container moat keeps. Each container's
status is checked with its runtime: one whose runtime lost it (a restart of the machine, a
killed shim) shows as exited.`,
		Example: `  moat ps
  moat ps -a -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "table" && output != "json" && output != "id" {
				return usageErrorf("-o %q: want table, json or id", output)
			}
			return withEngine(a, func(e *engine.Engine) error {
				cs, err := e.List(cmd.Context(), all)
				if err != nil {
					return err
				}
				switch output {
				case "json":
					if cs == nil {
						cs = []*engine.Container{}
					}
					return writeJSON(a.out, cs)
				case "id":
					for _, c := range cs {
						fmt.Fprintln(a.out, c.ID)
					}
					return nil
				}
				tw := tabwriter.NewWriter(a.out, 0, 4, 3, ' ', 0)
				fmt.Fprintln(tw, "CONTAINER ID\tIMAGE\tCOMMAND\tCREATED\tSTATUS\tLEVEL\tNETWORK\tNAME")
				now := time.Now()
				for _, c := range cs {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s ago\t%s\t%s\t%s\t%s\n", c.ShortID(), shorten(c.Image, 40), shorten(strings.Join(c.Command, " "), 30),
						ago(now.Sub(c.Created)), describeStatus(c, now), c.Level, describeNetwork(c), c.Name)
				}
				return tw.Flush()
			})
		},
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "show every container, exited ones too")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table, json or id (one ID per line)")
	return cmd
}

// describeStatus is a container's status as `docker ps` words it.
func describeStatus(c *engine.Container, now time.Time) string {
	switch c.Status {
	case engine.StatusRunning:
		since := c.Started
		if since.IsZero() {
			since = c.Created
		}
		return "Up " + ago(now.Sub(since))
	case engine.StatusExited:
		code := fmt.Sprint(c.ExitCode)
		if c.ExitCode < 0 {
			code = "unknown"
		}
		return fmt.Sprintf("Exited (%s) %s ago", code, ago(now.Sub(c.Finished)))
	default:
		return "Created"
	}
}

func ago(d time.Duration) string {
	switch {
	case d < 2*time.Second:
		return "1 second"
	case d < 2*time.Minute:
		return fmt.Sprintf("%d seconds", int(d.Seconds()))
	case d < 2*time.Hour:
		return fmt.Sprintf("%d minutes", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d hours", int(d.Hours()))
	default:
		return fmt.Sprintf("%d days", int(d.Hours()/24))
	}
}

func shorten(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

func newLogsCmd(a *app) *cobra.Command {
	var o engine.LogOptions
	cmd := &cobra.Command{
		Use:   "logs [flags] CONTAINER",
		Short: "Print a container's output",
		Long: `Print what a container wrote to its standard output and error, interleaved in the order
written. A detached container's output goes only to its log; a foreground container's goes to
the terminal and, unless it was started with --rm, to its log too.`,
		Example: `  moat logs web
  moat logs -f --tail 20 web`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.Tail < 0 {
				return usageErrorf("--tail %d: must not be negative", o.Tail)
			}
			return withEngine(a, func(e *engine.Engine) error { return e.Logs(cmd.Context(), args[0], a.out, o) })
		},
	}
	cmd.Flags().BoolVarP(&o.Follow, "follow", "f", false, "keep printing what the container writes until it exits")
	cmd.Flags().IntVarP(&o.Tail, "tail", "n", 0, "start with the last N lines (0: the whole log)")
	return cmd
}

func newStopCmd(a *app) *cobra.Command {
	var seconds int
	cmd := &cobra.Command{
		Use:   "stop [flags] CONTAINER...",
		Short: "Stop running containers",
		Long: `Send each container its stop signal (the image's STOPSIGNAL, else SIGTERM), wait for it to
exit, and kill it after --time seconds. A container that is not running is left as it is.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if seconds < 0 {
				return usageErrorf("--time %d: must not be negative", seconds)
			}
			return eachContainer(a, args, func(e *engine.Engine, n string) error {
				return e.Stop(cmd.Context(), n, time.Duration(seconds)*time.Second)
			})
		},
	}
	cmd.Flags().IntVarP(&seconds, "time", "t", 10, "seconds to wait before killing")
	return cmd
}

func newKillCmd(a *app) *cobra.Command {
	var signal string
	cmd := &cobra.Command{
		Use:   "kill [flags] CONTAINER...",
		Short: "Send a signal to running containers",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			sig, err := engine.ParseSignal(signal)
			if err != nil {
				return usageErrorf("--signal: %v", err)
			}
			return eachContainer(a, args, func(e *engine.Engine, n string) error { return e.Kill(cmd.Context(), n, sig) })
		},
	}
	cmd.Flags().StringVarP(&signal, "signal", "s", "KILL", "signal: a name (TERM, SIGHUP) or a number")
	return cmd
}

func newRmCmd(a *app) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "rm [flags] CONTAINER...",
		Short: "Remove containers",
		Long: `Remove each container: its runtime state and cgroups, its root filesystem mount, writable
layer, bundle and log, and moat's record of it. The cached image layers stay. A running
container is refused unless --force is given, which kills it first.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return eachContainer(a, args, func(e *engine.Engine, n string) error { return e.Remove(cmd.Context(), n, force) })
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "kill a running container and remove it")
	return cmd
}

func newInspectCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "inspect CONTAINER...",
		Short: "Show what moat keeps of containers, as JSON",
		Long: `Print a JSON array with moat's record of each container: its image and digest, isolation
level and runtime, command, status, exit code, times, relaxations of the hardened
confinement, user-namespace mapping and directory. docs/cli.md describes the fields.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withEngine(a, func(e *engine.Engine) error {
				out := []*engine.Container{}
				var errs []error
				for _, n := range args {
					c, err := e.Inspect(cmd.Context(), n)
					if err != nil {
						errs = append(errs, err)
						continue
					}
					out = append(out, c)
				}
				if err := writeJSON(a.out, out); err != nil {
					return err
				}
				return errors.Join(errs...)
			})
		},
	}
}

type execOptions struct {
	Interactive bool
	TTY         bool
	Env         []string
	EnvFiles    []string
	Workdir     string
	User        string
}

func newExecCmd(a *app) *cobra.Command {
	o := &execOptions{}
	cmd := &cobra.Command{
		Use:   "exec [flags] CONTAINER COMMAND [ARG...]",
		Short: "Run a command in a running container",
		Long: `Run COMMAND in a running container, confined exactly as the container's own process: the
same user namespace, capabilities, seccomp profile, no_new_privs, limits and namespaces. moat
exits with the command's exit code.`,
		Example: `  moat exec web cat /etc/os-release
  moat exec -i -u app -e DEBUG=1 web /bin/sh`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.run(cmd.Context(), a, args[0], args[1:])
		},
	}
	fs := cmd.Flags()
	fs.SetInterspersed(false)
	fs.BoolVarP(&o.Interactive, "interactive", "i", false, "pass standard input to the command")
	fs.BoolVarP(&o.TTY, "tty", "t", false, "allocate a pseudo-terminal")
	fs.StringArrayVarP(&o.Env, "env", "e", nil, "set an environment variable: NAME=value, or NAME to pass moat's own value; repeatable")
	fs.StringArrayVar(&o.EnvFiles, "env-file", nil, "read NAME=value lines from a file; repeatable")
	fs.StringVarP(&o.Workdir, "workdir", "w", "", "working directory inside the container")
	fs.StringVarP(&o.User, "user", "u", "", "user: name, uid, name:group or uid:gid (names from the container's /etc/passwd)")
	return cmd
}

func (o *execOptions) run(ctx context.Context, a *app, name string, args []string) error {
	env, err := environment(o.Env, o.EnvFiles)
	if err != nil {
		return err
	}
	var stdin io.Reader
	if o.Interactive {
		stdin = a.in
	}
	eo := engine.ExecOptions{
		ExecOptions: spec.ExecOptions{Args: args, Env: env, WorkingDir: o.Workdir, User: o.User, Terminal: o.TTY},
		IO:          backend.IO{Stdin: stdin, Stdout: a.out, Stderr: a.err},
	}
	if o.TTY {
		tty, err := startTTY(a.in, a.out, o.Interactive)
		if err != nil {
			return err
		}
		defer tty.Restore()
		eo.IO.Terminal = tty.Terminal
	}
	return withEngine(a, func(e *engine.Engine) error {
		code, err := e.Exec(ctx, name, eo)
		if err != nil {
			return err
		}
		if code != 0 {
			return &ContainerExitError{Code: code}
		}
		return nil
	})
}

// describeNetwork is the NETWORK column: the bridge address and published ports of a container
// on the bridge ("10.89.0.2, 8080->80/tcp"), the relaxation's value for a network granted
// otherwise (host, container:NAME, a namespace path), "none" for its own loopback only.
func describeNetwork(c *engine.Container) string {
	if n := c.Network; n != nil {
		parts := []string{n.Address.String()}
		for _, p := range n.Ports {
			host := strconv.Itoa(int(p.HostPort))
			if p.HostIP.IsValid() {
				host = p.HostIP.String() + ":" + host
			}
			parts = append(parts, fmt.Sprintf("%s->%d/%s", host, p.ContainerPort, p.Proto))
		}
		return strings.Join(parts, ", ")
	}
	for _, r := range c.Relaxations {
		if r.Kind == spec.RelaxNetwork {
			return shorten(r.Value, 30)
		}
	}
	return "none"
}
