package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moatsec/moat/internal/env"
	"github.com/moatsec/moat/internal/image"
	"github.com/moatsec/moat/internal/report"
	"github.com/moatsec/moat/internal/sbom"
	"github.com/moatsec/moat/internal/sbom/catalogers"
	"github.com/moatsec/moat/internal/sbom/engine"
	"github.com/moatsec/moat/internal/store"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// imageOptions select and reach an image; every command that takes an image target has them.
type imageOptions struct {
	Platform string
	Insecure bool
}

func (o *imageOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.Platform, "platform", "", "platform of a multi-platform image, os/arch[/variant] (default: this host's)")
	fs.BoolVar(&o.Insecure, "insecure", false, "allow plain HTTP to a registry on a loopback address")
}

// options checks the flags and returns the image options they select, without TempDir.
func (o *imageOptions) options() (image.Options, error) {
	opts := image.Options{Insecure: o.Insecure, DockerHost: env.DockerHost.Get()}
	if o.Platform != "" {
		p, err := v1.ParsePlatform(o.Platform)
		if err != nil || p.OS == "" || p.Architecture == "" {
			return opts, usageErrorf("--platform %q: want os/arch[/variant], e.g. linux/arm64", o.Platform)
		}
		opts.Platform = p
	}
	return opts, nil
}

// outputOptions choose the report format and destination.
type outputOptions struct {
	Format string
	File   string
}

func (o *outputOptions) AddFlags(fs *pflag.FlagSet, formats string) {
	fs.StringVarP(&o.Format, "output", "o", "", "output format: "+formats+" (default: table on a terminal, json otherwise)")
	fs.StringVar(&o.File, "output-file", "", "write the report to this file instead of standard output")
}

// format resolves the default: a table for a person at a terminal, JSON for a pipe or file.
// parse reads an explicit --output for the command (report.ParseFormat, report.ParseScanFormat).
func (o *outputOptions) format(a *app, parse func(string) (report.Format, error)) (report.Format, error) {
	if o.Format == "" {
		if o.File == "" && a.stdoutTerminal() {
			return report.FormatTable, nil
		}
		return report.FormatJSON, nil
	}
	f, err := parse(o.Format)
	if err != nil {
		return "", &UsageError{Err: fmt.Errorf("--output: %w", err)}
	}
	return f, nil
}

// write sends a report to the output file (atomically, through a temporary file beside it) or stdout.
func (o *outputOptions) write(a *app, fn func(w io.Writer) error) error {
	if o.File == "" {
		return fn(a.out)
	}
	dir := filepath.Dir(o.File)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(o.File)+".*")
	if err != nil {
		return fmt.Errorf("creating output file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := fn(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", o.File, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", o.File, err)
	}
	if err := os.Rename(tmp.Name(), o.File); err != nil {
		return fmt.Errorf("writing %s: %w", o.File, err)
	}
	return nil
}

func formatList() string {
	var names []string
	for _, f := range report.Formats() {
		names = append(names, string(f))
	}
	return strings.Join(names, ", ")
}

type sbomOptions struct {
	image   imageOptions
	output  outputOptions
	NoCache bool
}

func newSBOMCmd(a *app) *cobra.Command {
	o := &sbomOptions{}
	cmd := &cobra.Command{
		Use:   "sbom TARGET",
		Short: "List every package in an image",
		Long: `List every OS and language package in an image, each with the layer that added it.

TARGET is one of:
  NAME[:TAG|@DIGEST]      an image in a registry, pulled directly (no daemon)
  registry:NAME           the same, even when a file or directory NAME exists
  docker-archive:PATH     a 'docker save' tarball
  oci-archive:PATH        a tar of an OCI image layout
  oci-dir:PATH            an OCI image layout directory
  docker:NAME             an image in the local Docker daemon
  dir:PATH                an unpacked root filesystem (the host's / included)
An unprefixed TARGET that names an existing file or directory is read as such.`,
		Example: `  moat sbom debian:12
  moat sbom docker-archive:app.tar -o cyclonedx-json --output-file app.cdx.json
  moat sbom --platform linux/arm64 registry.example.com/app@sha256:...
  moat sbom dir:/ -o json | jq '.packages | length'`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.run(cmd.Context(), a, args[0])
		},
	}
	o.image.AddFlags(cmd.Flags())
	o.output.AddFlags(cmd.Flags(), formatList())
	cmd.Flags().BoolVar(&o.NoCache, "no-cache", false, "read every layer even when the layer cache has it")
	return cmd
}

// session is what an image command needs from moat's directories: the store and a temp dir.
type session struct {
	store   *store.Store
	tempDir string
}

func openSession(a *app, useCache bool) (*session, error) {
	dirs, err := store.DefaultDirs()
	if err != nil {
		return nil, err
	}
	s := &session{tempDir: filepath.Join(dirs.Cache, "tmp")}
	if err := os.MkdirAll(s.tempDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating %s: %w", s.tempDir, err)
	}
	cleanStaleTemp(a, s.tempDir)
	if useCache {
		s.store, err = store.Open(filepath.Join(dirs.Cache, "moat.db"), 30*time.Second)
		if err != nil {
			return nil, err
		}
	}
	return s, nil
}

func (s *session) Close() error {
	if s.store != nil {
		return s.store.Close()
	}
	return nil
}

// cleanStaleTemp removes temporary files an interrupted run left behind a day ago or more.
func cleanStaleTemp(a *app, dir string) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > 24*time.Hour {
			if err := os.RemoveAll(filepath.Join(dir, e.Name())); err == nil {
				a.log.Debug("removed stale temporary file", "path", e.Name())
			}
		}
	}
}

func (o *sbomOptions) run(ctx context.Context, a *app, arg string) error {
	format, err := o.output.format(a, report.ParseFormat)
	if err != nil {
		return err
	}
	inv, err := inventory(ctx, a, arg, o.image, !o.NoCache)
	if err != nil {
		return err
	}
	return o.output.write(a, func(w io.Writer) error {
		return report.WriteInventory(w, format, inv, report.Options{Color: a.color() && o.output.File == ""})
	})
}

// inventory opens an image target and inventories it. The flags are checked before moat's
// directories are touched.
func inventory(ctx context.Context, a *app, arg string, imgOpts imageOptions, useCache bool) (*sbom.Inventory, error) {
	opts, err := imgOpts.options()
	if err != nil {
		return nil, err
	}
	target, err := image.ParseTarget(arg)
	if err != nil {
		return nil, err
	}
	sess, err := openSession(a, useCache)
	if err != nil {
		return nil, err
	}
	defer sess.Close()
	opts.TempDir = sess.tempDir
	start := time.Now()
	img, err := image.Open(ctx, target, opts)
	if err != nil {
		return nil, err
	}
	defer img.Close()
	a.log.Info("image opened", "image", img.Name, "digest", img.Digest, "layers", len(img.Layers), "elapsed", time.Since(start))
	eopts := []engine.Option{
		engine.WithTempDir(sess.tempDir), engine.WithLogger(a.log),
		engine.WithTool(sbom.Tool{Name: "moat", Version: Version()}),
	}
	if sess.store != nil {
		eopts = append(eopts, engine.WithCache(sess.store))
	}
	var bar *progressBar
	if a.stderrTerminal() {
		bar = newProgressBar(a.err, img.Layers)
		eopts = append(eopts, engine.WithProgress(bar))
	}
	eng, err := engine.New(catalogers.Default(sess.tempDir), eopts...)
	if err != nil {
		return nil, err
	}
	inv, err := eng.Inventory(ctx, img)
	if bar != nil {
		bar.finish()
	}
	if err != nil {
		return nil, fmt.Errorf("inventorying %s: %w", img.Name, err)
	}
	for _, w := range inv.Warnings {
		a.log.Info("inventory warning", "layer", w.Layer, "path", w.Path, "msg", w.Message)
	}
	if n := len(inv.Warnings); n > 0 {
		a.log.Warn(fmt.Sprintf("%d files could not be fully read; the report lists them under warnings", n))
	}
	a.log.Info("inventory done", "packages", len(inv.Packages), "elapsed", time.Since(start))
	return inv, nil
}

func newCacheCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "cache", Short: "Inspect or clear moat's cache"}
	cmd.AddCommand(&cobra.Command{
		Use:   "info",
		Short: "Show where the cache is and what it holds",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			sess, err := openSession(a, true)
			if err != nil {
				return err
			}
			defer sess.Close()
			n, err := engine.CachedLayers(sess.store)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.out, "store:         %s\ncached layers: %d\n", sess.store.Path(), n)
			return nil
		},
	}, &cobra.Command{
		Use:   "clean",
		Short: "Remove every cached layer inventory and temporary file",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			sess, err := openSession(a, true)
			if err != nil {
				return err
			}
			defer sess.Close()
			if err := engine.ClearCache(sess.store); err != nil {
				return err
			}
			ents, _ := os.ReadDir(sess.tempDir)
			for _, e := range ents {
				os.RemoveAll(filepath.Join(sess.tempDir, e.Name()))
			}
			fmt.Fprintln(a.out, "cache cleared")
			return nil
		},
	})
	return cmd
}
