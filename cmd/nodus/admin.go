package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/nodus-os/nodus/internal/audit"
	"github.com/nodus-os/nodus/internal/identity"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
)

// adminCmd runs the operator's identity commands:
//
//	nodus admin create-user --email E --username U --role R [--tenant ID] [--full-name N] [--password-stdin]
//	nodus admin reset-password LOGIN [--password-stdin]
//
// Without --password-stdin a password is generated and printed once.
func adminCmd(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("admin", "admin create-user --email E --username U --role R [--tenant ID] | reset-password LOGIN [flags]", stderr)
	email := fs.String("email", "", "create-user: email address")
	username := fs.String("username", "", "create-user: username")
	fullName := fs.String("full-name", "", "create-user: full name")
	role := fs.String("role", string(identity.RoleUser), "create-user: super_admin, org_admin, user or viewer")
	tenant := fs.String("tenant", "", "create-user: tenant id (none for super_admin)")
	fromStdin := fs.Bool("password-stdin", false, "read the password from the first line of standard input")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return errUsage{"admin needs a subcommand: create-user or reset-password"}
	}
	sub := pos[0]
	switch {
	case sub == "create-user" && len(pos) == 1:
	case sub == "reset-password" && len(pos) == 2:
	case sub == "reset-password":
		return errUsage{"admin reset-password needs exactly one login (email or username)"}
	default:
		return errUsage{fmt.Sprintf("unknown admin subcommand %q or unexpected arguments", strings.Join(pos, " "))}
	}
	cfg, err := parseConfig(fs, getenv)
	if err != nil {
		return err
	}

	password, generated := "", false
	if *fromStdin {
		line, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && err != io.EOF {
			return fmt.Errorf("read password: %w", err)
		}
		password = strings.TrimRight(line, "\r\n")
	} else {
		password, generated = identity.NewPassword(), true
	}

	dbs, err := store.OpenDatabases(ctx, cfg.DatabaseURLs(), cfg.StoreConfig)
	if err != nil {
		return err
	}
	defer dbs.Close()
	ids, _ := newIdentity(dbs)

	var u *identity.User
	switch sub {
	case "create-user":
		u = &identity.User{Email: *email, Username: *username, FullName: *fullName, Role: identity.Role(*role),
			TenantID: *tenant, IsActive: true}
		err = ids.CreateUser(nodus.WithAllTenants(ctx), u, password, audit.Entry{ActorKind: "system"})
	case "reset-password":
		u, err = ids.ResetPassword(ctx, pos[1], password)
	}
	if err != nil {
		if fields := nodus.ErrorFields(err); len(fields) > 0 {
			names := slices.Sorted(maps.Keys(fields))
			parts := make([]string, len(names))
			for i, f := range names {
				parts[i] = f + ": " + fields[f]
			}
			return fmt.Errorf("%s (%w)", strings.Join(parts, "; "), err)
		}
		return err
	}
	fmt.Fprintf(stdout, "%s: %s (%s), role %s, id %s\n", sub, u.Username, u.Email, u.Role, u.ID)
	if generated {
		fmt.Fprintf(stdout, "password: %s\n(shown only this once)\n", password)
	}
	return nil
}
