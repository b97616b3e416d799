// Command moat secures containers across their life. This is its entry point: it sets up a
// context that ends on SIGINT or SIGTERM, runs the command line and turns the outcome into
// an exit code (docs/cli.md lists them).
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/moatsec/moat/internal/cli"
	"github.com/moatsec/moat/internal/runtime/backend"
	"github.com/moatsec/moat/internal/runtime/engine"
)

func main() {
	// A detached container is held by this binary started again as a shim, and a detached
	// --rm container is removed by it started again once more when it ends; those processes
	// become the shim or the remover here and never reach the command line.
	backend.HandleShim()
	engine.HandleAutoRemove()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := cli.Execute(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	var ce *cli.ContainerExitError
	if err != nil && !errors.As(err, &ce) { // a container's own exit code needs no message
		fmt.Fprintln(os.Stderr, "moat:", err)
	}
	os.Exit(cli.ExitCode(err))
}
