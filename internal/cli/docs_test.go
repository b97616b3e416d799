package cli

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/moatsec/moat/internal/env"
	"github.com/moatsec/moat/internal/image"
	"github.com/moatsec/moat/internal/report"
)

// cliDoc returns docs/cli.md.
func cliDoc(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "cli.md"))
	if err != nil {
		t.Fatalf("reading the command line documentation: %v", err)
	}
	return string(b)
}

// mentions reports whether doc holds word as a whole token: "--output" is not found in
// "--output-file", nor "-o" in "--no-cache".
func mentions(doc, word string) bool {
	re := regexp.MustCompile(`(^|[^\w-])` + regexp.QuoteMeta(word) + `($|[^\w-])`)
	return re.MatchString(doc)
}

// commandTree returns every command moat has, with the flags cobra adds when it runs
// (help, version, the completion commands) in place.
func commandTree() []*cobra.Command {
	root := newRoot(&app{})
	root.InitDefaultVersionFlag()
	var all []*cobra.Command
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		c.InitDefaultHelpFlag()
		all = append(all, c)
		for _, sub := range c.Commands() {
			if sub.IsAvailableCommand() || sub.Name() == "help" {
				walk(sub)
			}
		}
	}
	walk(root)
	return all
}

func TestDocsListEveryFlag(t *testing.T) {
	doc := cliDoc(t)
	cmds := commandTree()
	if len(cmds) < 10 {
		t.Fatalf("walked only %d commands", len(cmds))
	}
	for _, c := range cmds {
		// Each command is shown as its full path: "moat cache info".
		if !strings.Contains(doc, c.CommandPath()) {
			t.Errorf("docs/cli.md does not mention the command %q", c.CommandPath())
		}
		c.LocalFlags().VisitAll(func(f *pflag.Flag) {
			if f.Hidden {
				return
			}
			if !mentions(doc, "--"+f.Name) {
				t.Errorf("docs/cli.md does not mention the flag --%s of %q", f.Name, c.CommandPath())
			}
			if f.Shorthand != "" && !mentions(doc, "-"+f.Shorthand) {
				t.Errorf("docs/cli.md does not mention -%s, the short form of --%s of %q", f.Shorthand, f.Name, c.CommandPath())
			}
		})
	}
}

func TestDocsListEveryEnvironmentVariable(t *testing.T) {
	doc := cliDoc(t)
	for _, v := range env.All {
		if !mentions(doc, "`"+v.Name+"`") {
			t.Errorf("docs/cli.md does not describe the environment variable %s (%s)", v.Name, v.Description)
		}
	}
}

func TestDocsListEveryFormatAndSource(t *testing.T) {
	doc := cliDoc(t)
	for _, f := range report.Formats() {
		if !strings.Contains(doc, "`"+string(f)+"`") {
			t.Errorf("docs/cli.md does not list the output format %s", f)
		}
	}
	for _, alias := range []string{"moat-json", "cyclonedx", "cdx", "spdx"} {
		f, err := report.ParseFormat(alias)
		if err != nil {
			t.Fatalf("alias %s: %v", alias, err)
		}
		if !strings.Contains(doc, "`"+alias+"`") {
			t.Errorf("docs/cli.md does not list %s, an alias of %s", alias, f)
		}
	}
	for _, s := range image.Sources {
		if !strings.Contains(doc, "`"+s+":") {
			t.Errorf("docs/cli.md does not list the target prefix %s:", s)
		}
	}
	for _, code := range []int{ExitOK, ExitError, ExitUsage} {
		if !strings.Contains(doc, "| `"+string(rune('0'+code))+"` |") {
			t.Errorf("docs/cli.md does not list exit code %d", code)
		}
	}
}

// TestDocsCheckerCatchesOmissions makes sure the documentation tests can fail.
func TestDocsCheckerCatchesOmissions(t *testing.T) {
	doc := "moat sbom --output-file PATH and --no-cache"
	for _, word := range []string{"--output", "-o", "--no", "moat"} {
		want := word == "moat"
		if got := mentions(doc, word); got != want {
			t.Errorf("mentions(%q) = %v, want %v", word, got, want)
		}
	}
}
