package backend

import (
	"os/exec"
	"path/filepath"
)

// BareRun runs `RUNTIME [global flags] run --bundle BUNDLE ID` as a person would, with no
// pid file, log or shim, for BenchmarkRun's baseline.
func BareRun(rt Runtime, bundle, id string) error {
	var c *ociCLI
	switch r := rt.(type) {
	case *Runc:
		c = r.ociCLI
	case *Crun:
		c = r.ociCLI
	case *Runsc:
		c = r.ociCLI
	}
	args, err := c.args(bundle, "", "run", "--bundle", bundle, id)
	if err != nil {
		return err
	}
	cmd := exec.Command(c.binary, args...)
	cmd.Dir = filepath.Dir(bundle)
	if err := startCommand(cmd, c.hideCgroup2); err != nil {
		return err
	}
	return cmd.Wait()
}

// ProcessTerminal is processTerminal, for tests.
var ProcessTerminal = processTerminal
