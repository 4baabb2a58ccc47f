package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/nodus-os/nodus/internal/audit"
	"github.com/nodus-os/nodus/internal/egress"
	"github.com/nodus-os/nodus/internal/gateway"
	"github.com/nodus-os/nodus/internal/identity"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
)

// gatewayCmd runs the operator's gateway commands:
//
//	nodus gateway import --tenant TENANT [--dry-run] [--prune] FILE
//
// import makes a tenant's deployments, prices and router settings what a
// LiteLLM-style config file says (gateway.ParseModelList); importing the
// same file again changes nothing. It may run while Nodus serves: a
// running server sees the change within its config TTL (5 s).
func gatewayCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("gateway", "gateway import --tenant TENANT [--dry-run] [--prune] FILE [flags]", stderr)
	tenant := fs.String("tenant", "", "import: the tenant's id, or its exact name or domain")
	dryRun := fs.Bool("dry-run", false, "import: print what would change and change nothing")
	prune := fs.Bool("prune", false, "import: also delete the tenant's deployments the file does not list")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	switch {
	case len(pos) == 0:
		return errUsage{"gateway needs a subcommand: import"}
	case pos[0] != "import":
		return errUsage{fmt.Sprintf("unknown gateway subcommand %q", pos[0])}
	case len(pos) != 2:
		return errUsage{"gateway import needs exactly one file"}
	case *tenant == "":
		return errUsage{"gateway import needs --tenant"}
	}
	cfg, err := parseConfig(fs, getenv)
	if err != nil {
		return err
	}
	// The file first: its mistakes need no database.
	f, err := os.Open(pos[1])
	if err != nil {
		return err
	}
	list, err := gateway.ParseModelList(f)
	f.Close()
	if err != nil {
		return describeError(pos[1], err)
	}

	dbs, err := store.OpenDatabases(ctx, cfg.DatabaseURLs(), cfg.StoreConfig)
	if err != nil {
		return err
	}
	defer dbs.Close()
	t, err := findTenant(ctx, dbs.DB(store.SetAuth), *tenant)
	if err != nil {
		return err
	}
	auditor := audit.NewService(dbs.DB(store.SetMain), nodus.SystemClock{})
	// An import calls no upstream, but the service wants its client factory.
	eg, err := egress.NewService(dbs.DB(store.SetMain), egress.Options{Audit: auditor})
	if err != nil {
		return err
	}
	gw, err := gateway.NewService(gateway.Config{Store: dbs.DB(store.SetGateway), Egress: eg, Audit: auditor})
	if err != nil {
		return err
	}
	m := gateway.Manager{TenantID: t.ID, Admin: true, Entry: audit.Entry{ActorKind: "system"}}
	res, err := gw.ImportModelList(ctx, m, list, gateway.ImportOptions{DryRun: *dryRun, Prune: *prune})
	if err != nil {
		return describeError(pos[1], err)
	}
	printImport(stdout, t, res)
	return nil
}

// findTenant finds a tenant by id, or by its exact name or domain (case
// ignored), which must name one tenant only.
func findTenant(ctx context.Context, db *store.DB, ref string) (*identity.Tenant, error) {
	all := nodus.WithAllTenants(ctx)
	if nodus.ValidID(ref) {
		return db.FindTenant(all, ref)
	}
	var found []identity.Tenant
	for cursor := ""; ; {
		page, next, err := db.ListTenants(all, 500, cursor)
		if err != nil {
			return nil, err
		}
		for _, t := range page {
			if strings.EqualFold(t.Name, ref) || (t.Domain != "" && strings.EqualFold(t.Domain, ref)) {
				found = append(found, t)
			}
		}
		if next == "" {
			break
		}
		cursor = next
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("no tenant with the id, name or domain %q", ref)
	case 1:
		return &found[0], nil
	}
	return nil, fmt.Errorf("%d tenants are called %q: give the tenant's id", len(found), ref)
}

// describeError spells out a validation error's fields, one a line.
func describeError(file string, err error) error {
	fields := nodus.ErrorFields(err)
	if len(fields) == 0 {
		return fmt.Errorf("%s: %w", file, err)
	}
	var b strings.Builder
	for _, where := range slices.Sorted(maps.Keys(fields)) {
		fmt.Fprintf(&b, "\n  %s: %s", where, fields[where])
	}
	return fmt.Errorf("%s: %s%s", file, nodus.ErrorMessage(err), b.String())
}

// printImport prints what an import changed, one change a line.
func printImport(w io.Writer, t *identity.Tenant, res *gateway.ImportResult) {
	verb := map[string]string{gateway.ImportCreate: "created", gateway.ImportUpdate: "updated", gateway.ImportDelete: "deleted"}
	if res.DryRun {
		verb = map[string]string{gateway.ImportCreate: "would create", gateway.ImportUpdate: "would update", gateway.ImportDelete: "would delete"}
	}
	for _, c := range res.Changes {
		line := verb[c.Action] + " " + strings.ReplaceAll(c.Kind, "_", " ")
		if c.Name != "" {
			line += " " + c.Name
		}
		if c.ID != "" {
			line += " (" + c.ID + ")"
		}
		if len(c.Fields) > 0 {
			line += ": " + strings.Join(c.Fields, ", ")
		}
		fmt.Fprintln(w, line)
	}
	fmt.Fprintf(w, "tenant %s (%s): %d created, %d updated, %d deleted, %d unchanged", t.Name, t.ID,
		res.Created, res.Updated, res.Deleted, res.Unchanged)
	if res.DryRun {
		fmt.Fprint(w, " (dry run: nothing was changed)")
	}
	fmt.Fprintln(w)
}
