package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"text/tabwriter"

	"github.com/nodus-os/nodus/internal/jobs"
	"github.com/nodus-os/nodus/internal/store"
)

// migrate runs `nodus migrate up | down [N] | status | version`.
func migrate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("migrate", "migrate up | down [N] [--set NAME] | status | version [flags]", stderr)
	setName := fs.String("set", store.SetMain, "migration set to roll back with down: "+
		fmt.Sprint(append(store.MigrationSets(), jobs.SetName)))
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return errUsage{"migrate needs a subcommand: up, down [N], status or version"}
	}
	sub, rest := pos[0], pos[1:]
	steps := 1
	switch {
	case sub == "down" && len(rest) == 1:
		if steps, err = strconv.Atoi(rest[0]); err != nil || steps < 1 {
			return errUsage{fmt.Sprintf("migrate down: N must be a positive number, got %q", rest[0])}
		}
	case sub != "up" && sub != "down" && sub != "status" && sub != "version":
		return errUsage{fmt.Sprintf("unknown migrate subcommand %q", sub)}
	case len(rest) > 0:
		return errUsage{fmt.Sprintf("migrate %s: unexpected arguments %q", sub, rest)}
	}
	cfg, err := parseConfig(fs, getenv)
	if err != nil {
		return err
	}

	dbs, err := store.OpenDatabases(ctx, cfg.DatabaseURLs(), cfg.StoreConfig)
	if err != nil {
		return err
	}
	defer dbs.Close()
	sets, _, err := migrationSets(dbs)
	if err != nil {
		return err
	}

	switch sub {
	case "up":
		for _, s := range sets {
			applied, err := s.Up(ctx)
			if err != nil {
				return migrateError(err)
			}
			fmt.Fprintf(stdout, "%-8s %s\n", s.Name(), describeApplied("applied", applied))
		}
	case "down":
		i := slices.IndexFunc(sets, func(s store.MigrationSet) bool { return s.Name() == *setName })
		if i < 0 {
			return errUsage{fmt.Sprintf("unknown migration set %q", *setName)}
		}
		reverted, err := sets[i].Down(ctx, steps)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%-8s %s\n", *setName, describeApplied("rolled back", reverted))
	case "status":
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SET\tDATABASE\tVERSION\tNAME\tSTATE\tAPPLIED AT")
		for _, s := range sets {
			st, err := s.Status(ctx)
			if err != nil {
				return err
			}
			if len(st.Versions) == 0 {
				fmt.Fprintf(tw, "%s\t%s\t-\t(no migrations yet)\t-\t-\n", st.Set, st.Database)
			}
			for _, v := range st.Versions {
				at := "-"
				if !v.AppliedAt.IsZero() {
					at = v.AppliedAt.Format("2006-01-02 15:04:05Z")
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", st.Set, st.Database, v.Version, v.Name, v.State, at)
			}
		}
		return tw.Flush()
	case "version":
		for _, s := range sets {
			st, err := s.Status(ctx)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%-8s %d", st.Set, st.Current())
			if n := st.Pending(); n > 0 {
				fmt.Fprintf(stdout, " (%d pending)", n)
			}
			fmt.Fprintln(stdout)
		}
	}
	return nil
}

func describeApplied(verb string, versions []int) string {
	if len(versions) == 0 {
		return "nothing to do"
	}
	return fmt.Sprintf("%s %v", verb, versions)
}
