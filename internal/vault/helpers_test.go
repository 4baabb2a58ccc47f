package vault_test

import (
	"context"
	"crypto/rand"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/nodus-os/nodus/internal/audit"
	"github.com/nodus-os/nodus/internal/keyring"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/vault"
)

var ctx = context.Background()

// allTenants is for a test's own SQL that inspects or tampers with tenant
// rows directly: with row-level security in force (storetest.RLSEnv) an
// unscoped transaction sees none of them.
var allTenants = nodus.WithAllTenants(ctx)

// canary is a secret value no test expects to find outside the vault's
// memory: not in a row, a file, an audit entry or an error.
const canary = "canary-7Qx9-sk-live-do-not-leak-4711"

var (
	admin  = vault.Principal{UserID: "0190d7a0-0000-7000-8000-0000000000a1", Role: vault.RoleOrgAdmin}
	viewer = vault.Principal{UserID: "0190d7a0-0000-7000-8000-0000000000b2", Role: vault.RoleViewer}
)

func newKey(t testing.TB) []byte {
	t.Helper()
	k := make([]byte, keyring.KeySize)
	_, _ = rand.Read(k)
	return k
}

func ringOf(t testing.TB, keys map[byte][]byte, current byte) *keyring.Keyring {
	t.Helper()
	r, err := keyring.NewKeys(keys, current, "test")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// migrate applies the main set (audit log, secret handles) and the vault
// set to db: the tests keep both in one database, as PostgreSQL does by
// default.
func migrate(t testing.TB, db *store.DB) {
	t.Helper()
	for _, set := range []string{store.SetMain, store.SetVault} {
		m, err := store.NewMigrator(set, db)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.Up(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// switchAuditor records into the real audit log until fail is set, then
// refuses every entry, like an audit database that went away.
type switchAuditor struct {
	inner *audit.Service
	fail  atomic.Bool
	n     atomic.Int64
}

var errAuditDown = errors.New("audit log unavailable")

func (a *switchAuditor) Record(ctx context.Context, e audit.Entry) error {
	if a.fail.Load() {
		return errAuditDown
	}
	a.n.Add(1)
	return a.inner.Record(ctx, e)
}

// env is a vault over one database, with the audit log beside it.
type env struct {
	db    *store.DB
	key   []byte // master key 1, which ring holds
	ring  *keyring.Keyring
	audit *switchAuditor
	svc   *vault.Service
}

func newEnv(t testing.TB, db *store.DB) *env {
	t.Helper()
	migrate(t, db)
	e := &env{db: db, key: newKey(t), audit: &switchAuditor{inner: audit.NewService(db, nil)}}
	e.ring = ringOf(t, map[byte][]byte{1: e.key}, 0)
	e.svc = e.open(t, e.ring)
	if err := e.svc.Unseal(ctx); err != nil {
		t.Fatal(err)
	}
	return e
}

// open returns another service over the same databases with ring (nil:
// no master key), not yet unsealed: another replica, or a restart.
func (e *env) open(t testing.TB, ring *keyring.Keyring) *vault.Service {
	t.Helper()
	svc, err := vault.NewService(vault.Config{Store: e.db, Handles: e.db, Keyring: ring, Audit: e.audit})
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

func tenantCtx() (context.Context, string) {
	id := nodus.NewID()
	return nodus.WithTenant(ctx, id), id
}

func loc(env, path, key string) vault.Location {
	return vault.Location{Environment: env, Path: path, Key: key}
}

func write(t testing.TB, svc *vault.Service, c context.Context, l vault.Location, value string) *vault.Secret {
	t.Helper()
	s, err := svc.WriteSecret(c, admin, vault.WriteInput{Location: l, Value: vault.NewValue(value)})
	if err != nil {
		t.Fatalf("write %s: %v", l, err)
	}
	return s
}

func read(t testing.TB, svc *vault.Service, c context.Context, p vault.Principal, l vault.Location, opts vault.ReadOptions) string {
	t.Helper()
	r, err := svc.ReadSecret(c, p, l, opts)
	if err != nil {
		t.Fatalf("read %s: %v", l, err)
	}
	return r.Value.Reveal()
}

// ciphertext returns the stored bytes of one version.
func ciphertext(t testing.TB, db *store.DB, secretID string, version int) []byte {
	t.Helper()
	var ct []byte
	err := db.Read(allTenants, func(tx *store.Tx) error {
		return tx.QueryRow(ctx, `SELECT ciphertext FROM vault_secret_versions WHERE secret_id = ? AND version = ?`, secretID, version).Scan(&ct)
	})
	if err != nil {
		t.Fatal(err)
	}
	return ct
}

func setCiphertext(t testing.TB, db *store.DB, secretID string, version int, ct []byte) {
	t.Helper()
	err := db.Write(allTenants, func(tx *store.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE vault_secret_versions SET ciphertext = ? WHERE secret_id = ? AND version = ?`, ct, secretID, version)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// code asserts err's nodus code, and that it never carries the canary.
func code(t testing.TB, what string, err error, want string) {
	t.Helper()
	if got := nodus.ErrorCode(err); got != want {
		t.Errorf("%s: %v (code %q), want %q", what, err, got, want)
	}
	if err != nil && strings.Contains(err.Error(), canary) {
		t.Errorf("%s: the error quotes the secret value: %v", what, err)
	}
}

// entries returns the audit log, oldest first.
func entries(t testing.TB, db *store.DB) []audit.Entry {
	t.Helper()
	var out []audit.Entry
	if err := db.WalkAudit(ctx, func(e audit.Entry) error { out = append(out, e); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

func actions(es []audit.Entry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.Action
	}
	return out
}
