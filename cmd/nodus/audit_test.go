package main

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nodus-os/nodus/internal/audit"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
)

// TestAuditVerifyCommand records entries, checks that `nodus audit verify`
// passes, edits a row behind Nodus's back (as someone with database access
// would, dropping the append-only trigger first) and checks that it fails.
func TestAuditVerifyCommand(t *testing.T) {
	storetest.RunURL(t, func(t *testing.T, databaseURL string) {
		vars := nodusEnv(t, databaseURL)
		ctx := context.Background()
		if err := run(ctx, []string{"nodus", "migrate", "up"}, env(vars), nil, io.Discard, io.Discard); err != nil {
			t.Fatal(err)
		}
		url := vars["DATABASE_URL"]
		if url == "" {
			url = "sqlite:" + filepath.Join(vars["NODUS_DATA_DIR"], "main.db")
		}
		db, err := store.Open(ctx, storetest.Config(url))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		svc := audit.NewService(db, nodus.SystemClock{})
		for _, action := range []string{"auth.login", "user.create", "user.update"} {
			if err := svc.Record(ctx, audit.Entry{Action: action, ActorKind: "system"}); err != nil {
				t.Fatal(err)
			}
		}

		verify := func() (string, error) {
			var out bytes.Buffer
			err := run(ctx, []string{"nodus", "audit", "verify"}, env(vars), nil, &out, io.Discard)
			return out.String(), err
		}
		if out, err := verify(); err != nil || !strings.Contains(out, "intact: 3 entries") {
			t.Fatalf("verify on an untouched log: %q, %v", out, err)
		}

		on := ""
		if db.Dialect() == store.Postgres {
			on = " ON audit_log"
		}
		err = db.Write(nodus.WithAllTenants(ctx), func(tx *store.Tx) error {
			if _, err := tx.Exec(ctx, "DROP TRIGGER audit_log_no_update"+on); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "UPDATE audit_log SET action = 'user.delete' WHERE seq = 2")
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		out, err := verify()
		if err == nil || exitCode(err) != 1 || !strings.Contains(out, "BROKEN after 1 intact entries") {
			t.Fatalf("verify after an edit: %q, %v; want a failure at the second entry", out, err)
		}
	})
}
