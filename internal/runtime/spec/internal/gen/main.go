// Command gen writes package spec's generated files (see package specgen): run by
// `go generate ./internal/runtime/spec` from the package's directory.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/moatsec/moat/internal/runtime/spec/internal/specgen"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func run() error {
	enc, err := specgen.Encoder()
	if err != nil {
		return err
	}
	if err := os.WriteFile("specjson_gen.go", enc, 0o644); err != nil {
		return err
	}
	files, err := filepath.Glob(filepath.Join("profiles", "*.json"))
	if err != nil {
		return err
	}
	profiles := map[string][]byte{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		profiles[strings.TrimSuffix(filepath.Base(f), ".json")] = data
	}
	src, err := specgen.Profiles(profiles)
	if err != nil {
		return err
	}
	return os.WriteFile("profiles_gen.go", src, 0o644)
}
