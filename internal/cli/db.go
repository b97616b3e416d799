package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/moatsec/moat/internal/env"
	"github.com/moatsec/moat/internal/image"
	"github.com/moatsec/moat/internal/store"
	"github.com/moatsec/moat/internal/vuln/db"
	"github.com/moatsec/moat/internal/vuln/match"
	"github.com/moatsec/moat/internal/vuln/mirror"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// dbOptions locate the advisory database; scan and every db command have them.
type dbOptions struct {
	Dir    string
	MaxAge time.Duration
}

func (o *dbOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.Dir, "db-dir", env.DBDir.Get(), "directory of the advisory database (env MOAT_DB_DIR; default: db/ in moat's cache directory)")
	def := 7 * 24 * time.Hour
	if v := env.DBMaxAge.Get(); v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			def = d
		}
	}
	fs.DurationVar(&o.MaxAge, "db-max-age", def, "warn when the advisory data is older than this (env MOAT_DB_MAX_AGE; 0 never warns)")
}

// dir returns the database directory, after checking MOAT_DB_MAX_AGE.
func (o *dbOptions) dir() (string, error) {
	if v := env.DBMaxAge.Get(); v != "" {
		if _, err := time.ParseDuration(v); err != nil {
			return "", usageErrorf("MOAT_DB_MAX_AGE %q: want a duration such as 168h", v)
		}
	}
	if o.Dir != "" {
		return o.Dir, nil
	}
	dirs, err := store.DefaultDirs()
	if err != nil {
		return "", err
	}
	return filepath.Join(dirs.Cache, "db"), nil
}

// warnStale logs one warning per source whose data is older than MaxAge.
func (o *dbOptions) warnStale(a *app, st db.Status) []string {
	var out []string
	now := time.Now()
	for _, name := range st.Stale(now, o.MaxAge) {
		s, _ := st.Source(name)
		msg := fmt.Sprintf("advisory data for %s is %s old (older than --db-max-age %s): run `moat db update`",
			name, humanAge(s.Age(now)), o.MaxAge)
		a.log.Warn(msg)
		out = append(out, msg)
	}
	return out
}

func humanAge(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%d days", int(d.Hours()/24))
	case d >= 2*time.Hour:
		return fmt.Sprintf("%d hours", int(d.Hours()))
	}
	return d.Round(time.Minute).String()
}

func newDBCmd(a *app) *cobra.Command {
	o := &dbOptions{}
	cmd := &cobra.Command{
		Use:   "db",
		Short: "Build, inspect and mirror the vulnerability database",
		Long: `moat matches images against an embedded database of OSV advisories
(https://ossf.github.io/osv-schema/), built from the OSV bucket's per-ecosystem
archives or from local files. Updates build a new database beside the old one and
swap it in atomically: a failed update leaves the previous database in use.`,
	}
	o.AddFlags(cmd.PersistentFlags())
	cmd.AddCommand(newDBUpdateCmd(a, o), newDBImportCmd(a, o), newDBStatusCmd(a, o),
		newDBPushCmd(a, o), newDBPullCmd(a, o))
	return cmd
}

type dbUpdateOptions struct {
	Ecosystems  []string
	BaseURL     string
	IdleTimeout time.Duration
	Wait        time.Duration
}

func newDBUpdateCmd(a *app, dbo *dbOptions) *cobra.Command {
	o := &dbUpdateOptions{}
	cmd := &cobra.Command{
		Use:   "update",
		Short: "Download the OSV archives and rebuild the database",
		Long: `Download each ecosystem's all.zip from the OSV bucket (or a mirror), check it
(size, checksums the server sends, zip integrity) and rebuild the database with it.
Without --ecosystem, the ecosystems already in the database are updated; into an empty
database, every ecosystem moat matches: ` + strings.Join(match.Sources(), ", ") + `.`,
		Example: `  moat db update
  moat db update --ecosystem Debian --ecosystem Go
  moat db update --base-url https://mirror.example.com/osv`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.run(cmd.Context(), a, dbo)
		},
	}
	base := env.DBURL.Get()
	if base == "" {
		base = db.DefaultBaseURL
	}
	fs := cmd.Flags()
	fs.StringSliceVar(&o.Ecosystems, "ecosystem", nil, "OSV ecosystem to update, as the bucket names it (Debian, Alpine, Go, npm, PyPI, ...); repeatable")
	fs.StringVar(&o.BaseURL, "base-url", base, "where the archives are: BASE/ECOSYSTEM/all.zip (env MOAT_DB_URL); https, or http to loopback")
	fs.DurationVar(&o.IdleTimeout, "timeout", time.Minute, "give up on a server that sends nothing for this long")
	fs.DurationVar(&o.Wait, "wait", 0, "wait this long for another running update to finish instead of failing")
	return cmd
}

func (o *dbUpdateOptions) run(ctx context.Context, a *app, dbo *dbOptions) error {
	dir, err := dbo.dir()
	if err != nil {
		return err
	}
	for _, e := range o.Ecosystems {
		if e == "" || strings.ContainsAny(e, "/\\") || e == "." || e == ".." {
			return usageErrorf("--ecosystem %q: want an OSV ecosystem name such as Debian or PyPI", e)
		}
	}
	ecosystems := o.Ecosystems
	if len(ecosystems) == 0 {
		if cur, err := db.Open(dir); err == nil {
			for _, s := range cur.Status().Sources {
				ecosystems = append(ecosystems, s.Name)
			}
			cur.Close()
		} else if !errors.Is(err, db.ErrNoDatabase) {
			a.log.Warn("the current database cannot be read; updating every ecosystem", "err", err)
		}
		if len(ecosystems) == 0 {
			ecosystems = match.Sources()
		}
	}
	fopts := db.FetchOptions{BaseURL: o.BaseURL, IdleTimeout: o.IdleTimeout}
	var bar *downloadBar
	if a.stderrTerminal() {
		bar = &downloadBar{w: a.err}
		fopts.Progress = bar.update
	}
	res, err := db.Refresh(ctx, dir, ecosystems, fopts, db.UpdateOptions{Logger: a.log, LockWait: o.Wait})
	if bar != nil {
		bar.finish()
	}
	if err != nil {
		return fmt.Errorf("updating the advisory database in %s: %w", dir, err)
	}
	return reportUpdate(a, res)
}

func reportUpdate(a *app, res *db.Result) error {
	if res.Discarded != "" {
		a.log.Warn("the previous database could not be read and was replaced", "reason", res.Discarded)
	}
	for _, name := range res.Updated {
		s, _ := res.Status.Source(name)
		fmt.Fprintf(a.out, "%-12s %6d advisories (%d withdrawn not stored, %d skipped)\n", name, s.Records, s.Withdrawn, s.Skipped)
		for _, ex := range s.Examples {
			a.log.Info("skipped while importing", "source", name, "problem", ex)
		}
		if s.Warnings > 0 {
			a.log.Warn(fmt.Sprintf("%s: %d problems while importing; `moat db status -o json` lists examples", name, s.Warnings))
		}
	}
	if len(res.Kept) > 0 {
		fmt.Fprintf(a.out, "kept unchanged: %s\n", strings.Join(res.Kept, ", "))
	}
	fmt.Fprintf(a.out, "database: %s (%d advisories)\n", res.Status.Path, res.Status.Records())
	return nil
}

// downloadBar draws one line of download progress on a terminal.
type downloadBar struct {
	mu    sync.Mutex
	w     io.Writer
	last  time.Time
	drawn bool
}

func (b *downloadBar) update(eco string, done, total int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if time.Since(b.last) < 100*time.Millisecond && done != total {
		return
	}
	b.last, b.drawn = time.Now(), true
	if total > 0 {
		fmt.Fprintf(b.w, "\r\033[Kdownloading %s: %s of %s (%d%%)", eco, human(done), human(total), done*100/total)
	} else {
		fmt.Fprintf(b.w, "\r\033[Kdownloading %s: %s", eco, human(done))
	}
}

func (b *downloadBar) finish() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.drawn {
		fmt.Fprint(b.w, "\r\033[K")
	}
}

type dbImportOptions struct {
	Source string
	Wait   time.Duration
}

func newDBImportCmd(a *app, dbo *dbOptions) *cobra.Command {
	o := &dbImportOptions{}
	cmd := &cobra.Command{
		Use:   "import PATH...",
		Short: "Import OSV archives, directories or JSON records from local files",
		Long: `Import OSV advisories from local files, for sites without access to the OSV bucket.
Each PATH is an all.zip archive, a directory of OSV JSON records, or one record. The
records replace the source they belong to: the directory an all.zip is in (the
bucket's layout, .../Debian/all.zip), or the ecosystem every record affects, or
--source. Nothing changes unless every PATH can be read.`,
		Example: `  moat db import osv/Debian/all.zip osv/Go/all.zip
  moat db import --source Internal ./advisories/`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, err := dbo.dir()
			if err != nil {
				return err
			}
			inputs := make([]db.Input, 0, len(args))
			for _, p := range args {
				if _, err := os.Stat(p); err != nil {
					return fmt.Errorf("importing advisories: %w", err)
				}
				inputs = append(inputs, db.Input{Path: p, Source: o.Source})
			}
			res, err := db.Update(cmd.Context(), dir, inputs, db.UpdateOptions{Logger: a.log, LockWait: o.Wait})
			if err != nil {
				return fmt.Errorf("importing advisories into %s: %w", dir, err)
			}
			return reportUpdate(a, res)
		},
	}
	cmd.Flags().StringVar(&o.Source, "source", "", "name of the source the records replace (default: from the archive's directory or the records' ecosystem)")
	cmd.Flags().DurationVar(&o.Wait, "wait", 0, "wait this long for another running update to finish instead of failing")
	return cmd
}

func newDBStatusCmd(a *app, dbo *dbOptions) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show what the database holds and how old it is",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "table" && format != "json" {
				return usageErrorf("--output %q: want table or json", format)
			}
			dir, err := dbo.dir()
			if err != nil {
				return err
			}
			d, err := db.Open(dir)
			if err != nil {
				return err
			}
			defer d.Close()
			st := d.Status()
			stale := dbo.warnStale(a, st)
			if format == "json" {
				return writeJSON(a.out, struct {
					db.Status
					Stale []string `json:"stale,omitempty"`
				}{st, stale})
			}
			now := time.Now()
			fmt.Fprintf(a.out, "database: %s\nbuilt:    %s\n\n", st.Path, st.Built.Local().Format(time.RFC3339))
			tw := tabwriter.NewWriter(a.out, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "SOURCE\tADVISORIES\tDATA AGE\tIMPORTED\tECOSYSTEMS")
			for _, s := range st.Sources {
				ecos := make([]string, 0, len(s.Ecosystems))
				for e := range s.Ecosystems {
					ecos = append(ecos, e)
				}
				sort.Strings(ecos)
				list := strings.Join(ecos, ", ")
				if len(ecos) > 4 {
					list = strings.Join(ecos[:4], ", ") + fmt.Sprintf(", ... (%d)", len(ecos))
				}
				age := humanAge(s.Age(now))
				if slices.Contains(stale, s.Name) {
					age += " (stale)"
				}
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", s.Name, s.Records, age, s.ImportedAt.Local().Format("2006-01-02 15:04"), list)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVarP(&format, "output", "o", "table", "output format: table or json")
	return cmd
}

func newDBPushCmd(a *app, dbo *dbOptions) *cobra.Command {
	var insecure bool
	cmd := &cobra.Command{
		Use:   "push REF",
		Short: "Store the database in an OCI registry",
		Long: `Push the database as an OCI artifact (artifactType ` + mirror.ArtifactType + `),
so that other machines can 'moat db pull' it from a registry the site runs.`,
		Example: `  moat db push registry.example.com/security/moat-db:latest`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := image.ParseReference(args[0], insecure)
			if err != nil {
				return &UsageError{Err: err}
			}
			dir, err := dbo.dir()
			if err != nil {
				return err
			}
			d, err := db.Open(dir)
			if err != nil {
				return err
			}
			st := d.Status()
			d.Close()
			info, err := json.Marshal(st)
			if err != nil {
				return err
			}
			sess, err := openSession(a, false)
			if err != nil {
				return err
			}
			defer sess.Close()
			ctx := cmd.Context()
			dg, err := mirror.Push(ctx, st.Path, ref, mirror.Config{SchemaVersion: st.Schema, Info: info}, sess.tempDir, image.RemoteOptions(ctx, nil)...)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.out, "pushed %s@%s (%d advisories)\n", ref.Context(), dg, st.Records())
			return nil
		},
	}
	cmd.Flags().BoolVar(&insecure, "insecure", false, "allow plain HTTP to a registry on a loopback address")
	return cmd
}

func newDBPullCmd(a *app, dbo *dbOptions) *cobra.Command {
	var insecure bool
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "pull REF",
		Short: "Fetch the database from an OCI registry and install it",
		Long: `Pull a database pushed with 'moat db push', check its digests and every record in it,
and swap it in for the current database atomically. A download or a file that fails a
check leaves the current database in place.`,
		Example: `  moat db pull registry.example.com/security/moat-db:latest`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := image.ParseReference(args[0], insecure)
			if err != nil {
				return &UsageError{Err: err}
			}
			dir, err := dbo.dir()
			if err != nil {
				return err
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			ctx := cmd.Context()
			p, err := mirror.Pull(ctx, ref, dir, 0, image.RemoteOptions(ctx, nil)...)
			if err != nil {
				return err
			}
			st, err := db.Install(ctx, dir, p.Path, db.UpdateOptions{Logger: a.log, LockWait: wait})
			if err != nil {
				os.Remove(p.Path)
				return fmt.Errorf("installing the database pulled from %s: %w", ref, err)
			}
			fmt.Fprintf(a.out, "installed %s@%s: %d advisories from %d sources\n", ref.Context(), p.Digest, st.Records(), len(st.Sources))
			dbo.warnStale(a, st)
			return nil
		},
	}
	cmd.Flags().BoolVar(&insecure, "insecure", false, "allow plain HTTP to a registry on a loopback address")
	cmd.Flags().DurationVar(&wait, "wait", 0, "wait this long for another running update to finish instead of failing")
	return cmd
}
