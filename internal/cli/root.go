// Package cli is moat's command line: cobra commands whose option structs parse flags and call
// the library packages. It is the only package that imports cobra.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/moatsec/moat/internal/env"
	"github.com/moatsec/moat/internal/image"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"
)

// version is set at build time with -ldflags "-X github.com/moatsec/moat/internal/cli.version=v1.2.3".
var version = "dev"

// Exit codes (docs/cli.md).
const (
	ExitOK    = 0
	ExitError = 1
	ExitUsage = 2
	// ExitFindings is scan's code for findings at or above --fail-on.
	ExitFindings = 3
	// ExitDenied is the verdict against an image: verify found too few valid signatures, or
	// the policy denies it.
	ExitDenied = 4
	// ExitTestFailed is `policy test`'s code for cases whose decision differs from the
	// expected one.
	ExitTestFailed = 5
)

// UsageError is a mistake in the command line: a bad flag, argument or flag combination.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

func usageErrorf(format string, args ...any) error {
	return &UsageError{Err: fmt.Errorf(format, args...)}
}

// ExitCode maps an error returned by Execute to the process exit code.
func ExitCode(err error) int {
	var ue *UsageError
	var fe *FindingsError
	var de *DeniedError
	var te *TestFailedError
	var ce *ContainerExitError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &ue):
		return ExitUsage
	case errors.As(err, &fe):
		return ExitFindings
	case errors.As(err, &de):
		return ExitDenied
	case errors.As(err, &te):
		return ExitTestFailed
	case errors.As(err, &ce):
		return ce.Code
	}
	return ExitError
}

// Version returns moat's version, with the VCS revision when the binary carries one.
func Version() string {
	v := version
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += "+" + s.Value[:12]
			}
		}
	}
	return v
}

// globalOptions are the flags every command has.
type globalOptions struct {
	LogLevel string
	Quiet    bool
	NoColor  bool
}

func (o *globalOptions) AddFlags(fs *pflag.FlagSet) {
	def := env.LogLevel.Get()
	if def == "" {
		def = "warn"
	}
	fs.StringVar(&o.LogLevel, "log-level", def, "log verbosity: debug, info, warn or error (env MOAT_LOG_LEVEL)")
	fs.BoolVarP(&o.Quiet, "quiet", "q", false, "print only results and errors: no progress, no logs below error")
	fs.BoolVar(&o.NoColor, "no-color", false, "never use colour (also NO_COLOR or MOAT_NO_COLOR)")
}

// app is what commands share: streams, logger and global options.
type app struct {
	in       io.Reader
	out, err io.Writer
	global   globalOptions
	log      *slog.Logger
	// started is set once a command's own code runs: errors before it are command-line errors.
	started bool
}

// stderrTerminal reports whether progress may be drawn.
func (a *app) stderrTerminal() bool {
	f, ok := a.err.(*os.File)
	return ok && term.IsTerminal(int(f.Fd())) && !a.global.Quiet
}

// stdoutTerminal reports whether stdout is a terminal (table output and colour default).
func (a *app) stdoutTerminal() bool {
	f, ok := a.out.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func (a *app) color() bool {
	if a.global.NoColor || env.NoColor.Get() != "" || env.NoColorStd.Get() != "" {
		return false
	}
	return a.stdoutTerminal()
}

func (a *app) setup() error {
	var lvl slog.Level
	switch strings.ToLower(a.global.LogLevel) {
	case "debug":
		lvl = slog.LevelDebug
	case "info":
		lvl = slog.LevelInfo
	case "warn", "warning":
		lvl = slog.LevelWarn
	case "error":
		lvl = slog.LevelError
	default:
		return usageErrorf("--log-level %q: want debug, info, warn or error", a.global.LogLevel)
	}
	if a.global.Quiet && lvl < slog.LevelError {
		lvl = slog.LevelError
	}
	a.log = slog.New(slog.NewTextHandler(a.err, &slog.HandlerOptions{Level: lvl}))
	return nil
}

// commands are moat's top-level commands, each with the function that builds it.
var commands = []struct {
	name  string
	build func(*app) *cobra.Command
}{
	{"version", newVersionCmd}, {"sbom", newSBOMCmd}, {"scan", newScanCmd}, {"db", newDBCmd},
	{"cache", newCacheCmd}, {"key", newKeyCmd}, {"sign", newSignCmd}, {"verify", newVerifyCmd},
	{"attest", newAttestCmd}, {"verify-attestation", newVerifyAttestationCmd}, {"policy", newPolicyCmd},
	{"run", newRunCmd}, {"ps", newPsCmd}, {"logs", newLogsCmd}, {"stop", newStopCmd},
	{"kill", newKillCmd}, {"rm", newRmCmd}, {"exec", newExecCmd}, {"attach", newAttachCmd},
	{"inspect", newInspectCmd},
}

// commandNamed returns the top-level command args run, when they plainly name one after the
// global flags, or "". Building the whole tree of commands and flags costs a cold process
// most of a millisecond, which `moat run` need not pay.
func commandNamed(args []string) string {
	for i := 0; i < len(args); i++ {
		switch arg := args[i]; {
		case arg == "--log-level":
			i++ // its value
		case strings.HasPrefix(arg, "--log-level="), arg == "-q", arg == "--quiet", arg == "--no-color":
		case strings.HasPrefix(arg, "-"):
			return "" // help, version, or an error cobra explains with the whole tree
		default:
			for _, c := range commands {
				if c.name == arg {
					return arg
				}
			}
			return ""
		}
	}
	return ""
}

// newRoot builds the command tree.
func newRoot(a *app) *cobra.Command { return newRootFor(a, "") }

// newRootFor builds the root command with only the top-level command named only, or with
// all of them when only is "".
func newRootFor(a *app, only string) *cobra.Command {
	root := &cobra.Command{
		Use:   "moat",
		Short: "Secure containers across their life",
		Long: `moat secures containers across their life: it knows what is inside an image,
who made it, whether it may run, how tightly it is isolated and what it does.`,
		Example: `  # Inventory an image from a registry, a docker save archive or an OCI layout
  moat sbom alpine:3.20
  moat sbom docker-archive:app.tar -o cyclonedx-json --output-file app.cdx.json
  moat sbom oci-dir:./layout -o spdx-json

  # Inventory the host's own filesystem
  moat sbom dir:/

  # Build the vulnerability database, then scan; exit code 3 on high or critical findings
  moat db update
  moat scan alpine:3.20 --fail-on high`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(*cobra.Command, []string) error {
			a.started = true
			return a.setup()
		},
	}
	root.SetIn(a.in)
	root.SetOut(a.out)
	root.SetErr(a.err)
	a.global.AddFlags(root.PersistentFlags())
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &UsageError{Err: err} })
	for _, c := range commands {
		if only == "" || c.name == only {
			root.AddCommand(c.build(a))
		}
	}
	if only == "" {
		root.Version = Version() // it reads the build information: only --version needs it
		root.InitDefaultHelpCmd()
		root.InitDefaultCompletionCmd()
	}
	requireSubcommands(root)
	return root
}

// requireSubcommands makes every command below root that only groups subcommands ("cache",
// "completion") reject an unknown subcommand as a usage error; cobra would print help and
// succeed. Without arguments they still print their help.
func requireSubcommands(root *cobra.Command) {
	for _, c := range root.Commands() {
		requireSubcommands(c)
		if c.Runnable() || !c.HasSubCommands() {
			continue
		}
		c.Args = func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageErrorf("unknown command %q for %q", args[0], cmd.CommandPath())
			}
			return nil
		}
		c.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
	}
}

// Execute runs the command line args.
func Execute(ctx context.Context, args []string, in io.Reader, out, errOut io.Writer) error {
	a := &app{in: in, out: out, err: errOut}
	root := newRootFor(a, commandNamed(args))
	root.SetArgs(args)
	_, err := root.ExecuteContextC(ctx)
	if err != nil && !a.started && isArgError(err) {
		return &UsageError{Err: err}
	}
	return err
}

// isArgError recognises cobra's own argument and command errors, which it does not type. Only
// errors returned before a command started running are looked at, so that a runtime error
// that happens to contain these words (a path named "unknown command") is not one.
func isArgError(err error) bool {
	var ue *UsageError
	if errors.As(err, &ue) {
		return false
	}
	msg := err.Error()
	for _, s := range []string{"unknown command", "accepts ", "requires at least", "requires at most", "unknown flag", "unknown shorthand flag"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

func newVersionCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print moat's version",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			_, err := fmt.Fprintf(a.out, "moat %s (%s, gzip: %s)\n", Version(), runtime.Version(), image.GzipImplementation)
			return err
		},
	}
}
