// Command nodus is the whole Nodus platform in one binary: `nodus serve`
// runs it, `nodus migrate` manages its database schemas.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args, os.Getenv, os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "nodus: %v\n", err)
		os.Exit(exitCode(err))
	}
}
