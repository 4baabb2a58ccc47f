package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/nodus-os/nodus/internal/audit"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
)

// auditCmd runs `nodus audit verify`: it walks the audit log's hash chain
// and fails, naming the first broken row, if any row was edited, deleted or
// reordered.
func auditCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("audit", "audit verify [flags]", stderr)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || pos[0] != "verify" {
		return errUsage{"audit needs a subcommand: verify"}
	}
	cfg, err := parseConfig(fs, getenv)
	if err != nil {
		return err
	}
	db, err := store.Open(ctx, cfg.StoreConfig(cfg.DatabaseURL))
	if err != nil {
		return err
	}
	defer db.Close()

	n, err := audit.NewService(db, nodus.SystemClock{}).Verify(nodus.WithAllTenants(ctx))
	var broken *audit.ChainError
	if errors.As(err, &broken) {
		fmt.Fprintf(stdout, "audit log BROKEN after %d intact entries: %v\n", n, broken)
		return fmt.Errorf("audit log verification failed")
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "audit log intact: %d entries verified\n", n)
	return nil
}
