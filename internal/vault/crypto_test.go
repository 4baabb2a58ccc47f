package vault_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
	"github.com/nodus-os/nodus/internal/vault"
)

// TestTamperedCiphertextFails is SECURITY.md check 12: a flipped byte, or
// a ciphertext copied to another secret, another version or another
// tenant, fails to decrypt with an error: never plaintext, never empty.
func TestTamperedCiphertextFails(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		inA, _ := tenantCtx()
		inB, _ := tenantCtx()
		key := loc("prod", "/db", "PASSWORD")
		s := write(t, e.svc, inA, key, canary)
		write(t, e.svc, inA, key, canary+"-v2")
		other := write(t, e.svc, inA, loc("prod", "/db", "OTHER"), "other value")
		otherTenant := write(t, e.svc, inB, key, "tenant B's value")
		good := ciphertext(t, db, s.ID, 1)

		fails := func(what string, l vault.Location, in any, version int) {
			t.Helper()
			c := inA
			if in == "B" {
				c = inB
			}
			r, err := e.svc.ReadSecret(c, admin, l, vault.ReadOptions{Version: version})
			if r != nil {
				t.Errorf("%s: read returned a value (%d bytes)", what, r.Value.Len())
			}
			if err == nil {
				t.Errorf("%s: no error", what)
			}
			code(t, what, err, nodus.EINTERNAL)
		}

		// Every single-bit change of every byte fails.
		for i := range good {
			for _, bit := range []byte{0x01, 0x80} {
				bad := bytes.Clone(good)
				bad[i] ^= bit
				setCiphertext(t, db, s.ID, 1, bad)
				fails(fmt.Sprintf("bit %#x of byte %d", bit, i), key, "A", 1)
			}
		}
		// Truncated and extended.
		for _, bad := range [][]byte{good[:len(good)-1], good[:20], {}, append(bytes.Clone(good), 0)} {
			setCiphertext(t, db, s.ID, 1, bad)
			fails(fmt.Sprintf("%d of %d bytes", len(bad), len(good)), key, "A", 1)
		}
		setCiphertext(t, db, s.ID, 1, good)
		if got := read(t, e.svc, inA, admin, key, vault.ReadOptions{Version: 1}); got != canary {
			t.Fatalf("restored ciphertext reads %q", got)
		}

		// Copied to another version of the same secret.
		setCiphertext(t, db, s.ID, 2, good)
		fails("copied to version 2", key, "A", 2)
		// Copied to another secret of the same tenant.
		setCiphertext(t, db, other.ID, 1, good)
		fails("copied to another secret", loc("prod", "/db", "OTHER"), "A", 1)
		// Copied to the same location in another tenant (whose data key
		// differs, and whose id is bound in too).
		setCiphertext(t, db, otherTenant.ID, 1, good)
		fails("copied to another tenant", key, "B", 1)

		// Another tenant's wrapped data key copied over this one's: the
		// wrapping is bound to tenant and version, so it does not open.
		fresh := e.open(t, e.ring)
		if err := fresh.Unseal(ctx); err != nil {
			t.Fatal(err)
		}
		var wrappedB []byte
		if err := db.Read(allTenants, func(tx *store.Tx) error {
			return tx.QueryRow(ctx, `SELECT wrapped FROM vault_data_keys WHERE tenant_id = ?`, otherTenant.TenantID).Scan(&wrappedB)
		}); err != nil {
			t.Fatal(err)
		}
		if err := db.Write(allTenants, func(tx *store.Tx) error {
			_, err := tx.Exec(ctx, `UPDATE vault_data_keys SET wrapped = ? WHERE tenant_id = ?`, wrappedB, s.TenantID)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		r, err := fresh.ReadSecret(inA, admin, key, vault.ReadOptions{Version: 1})
		if r != nil || err == nil {
			t.Errorf("a data key copied from another tenant opened: %v, %v", r, err)
		}
		code(t, "data key copied from another tenant", err, nodus.EUNAVAILABLE)
	})
}

// TestEncryptionIsRandomized is part of check 13: the same plaintext
// encrypts differently every time, and nothing about the value shows.
func TestEncryptionIsRandomized(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		in, _ := tenantCtx()
		key := loc("dev", "/", "TOKEN")
		s := write(t, e.svc, in, key, canary)
		write(t, e.svc, in, key, canary)
		a, b := ciphertext(t, db, s.ID, 1), ciphertext(t, db, s.ID, 2)
		if bytes.Equal(a, b) || bytes.Equal(a[5:17], b[5:17]) {
			t.Fatal("the same plaintext encrypted to the same bytes, or with the same nonce")
		}
		if len(a) != 5+12+len(canary)+16 {
			t.Errorf("ciphertext of %d bytes, want header 5, nonce 12, value %d, tag 16", len(a), len(canary))
		}
		for _, ct := range [][]byte{a, b} {
			if bytes.Contains(ct, []byte(canary)) || bytes.Contains(ct, []byte(canary[:8])) {
				t.Fatal("the ciphertext holds the plaintext")
			}
		}
	})
}

// TestRotationKeepsOldVersions is check 13's "after key rotation old
// versions still read", for both rotations, and shows that each keeps
// the vault open throughout.
func TestRotationKeepsOldVersions(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		inA, a := tenantCtx()
		inB, b := tenantCtx()
		key := loc("prod", "/", "API_KEY")
		s := write(t, e.svc, inA, key, "v1-"+canary)
		write(t, e.svc, inB, key, "B-v1")

		// Data key rotation: new writes use version 2; version 1 reads.
		if v, err := e.svc.RotateDataKey(inA, admin, a); err != nil || v != 2 {
			t.Fatalf("RotateDataKey = %d, %v", v, err)
		}
		if _, err := e.svc.RotateDataKey(inA, admin, b); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("rotating another tenant's key from A's scope: %v", err)
		}
		if _, err := e.svc.RotateDataKey(inA, viewer, a); nodus.ErrorCode(err) != nodus.EFORBIDDEN {
			t.Errorf("a viewer rotated: %v", err)
		}
		write(t, e.svc, inA, key, "v2")
		write(t, e.svc, inA, loc("prod", "/", "SECOND"), "second")
		dkOf := func(version int) int {
			t.Helper()
			ct := ciphertext(t, db, s.ID, version)
			return int(ct[1])<<24 | int(ct[2])<<16 | int(ct[3])<<8 | int(ct[4])
		}
		if dkOf(1) != 1 || dkOf(2) != 2 {
			t.Fatalf("version 1 under data key %d, version 2 under %d; want 1 and 2", dkOf(1), dkOf(2))
		}
		for v, want := range map[int]string{1: "v1-" + canary, 2: "v2"} {
			if got := read(t, e.svc, inA, admin, key, vault.ReadOptions{Version: v}); got != want {
				t.Errorf("version %d after data key rotation: %q", v, got)
			}
		}
		// Re-encryption moves version 1 to data key 2; idempotent.
		st, err := e.svc.ReencryptTenant(inA, admin, a, 1)
		if err != nil || st.Reencrypted != 1 || st.DataKeyVersion != 2 {
			t.Fatalf("ReencryptTenant = %+v, %v", st, err)
		}
		if dkOf(1) != 2 {
			t.Errorf("after re-encryption version 1 is under data key %d", dkOf(1))
		}
		if st, err := e.svc.ReencryptTenant(inA, admin, a, 1); err != nil || st.Reencrypted != 0 {
			t.Errorf("second run: %+v, %v", st, err)
		}
		if got := read(t, e.svc, inA, admin, key, vault.ReadOptions{Version: 1}); got != "v1-"+canary {
			t.Errorf("version 1 after re-encryption: %q", got)
		}

		// Master key rotation: key 2 is added and made current (a restart
		// with both keys), RotateMasterKey rewraps while key 1 still opens.
		k2 := newKey(t)
		both := e.open(t, ringOf(t, map[byte][]byte{1: e.key, 2: k2}, 2))
		if err := both.Unseal(ctx); err != nil {
			t.Fatalf("unseal with keys 1 and 2: %v", err)
		}
		platform := nodus.WithAllTenants(ctx)
		if _, err := both.RotateMasterKey(inA, vault.System(), 0); nodus.ErrorCode(err) != nodus.EFORBIDDEN {
			t.Errorf("master key rotation in a tenant scope: %v", err)
		}
		if _, err := both.RotateMasterKey(platform, admin, 0); nodus.ErrorCode(err) != nodus.EFORBIDDEN {
			t.Errorf("master key rotation by an org_admin: %v", err)
		}
		// Reads keep working on the old service during and after.
		mst, err := both.RotateMasterKey(platform, vault.System(), 1)
		if err != nil || mst.Rewrapped != 3 || !mst.CheckValue || mst.MasterKeyID != 2 {
			t.Fatalf("RotateMasterKey = %+v, %v; want 3 data keys (A's 2, B's 1) and the check value", mst, err)
		}
		if got := read(t, e.svc, inA, admin, key, vault.ReadOptions{Version: 1}); got != "v1-"+canary {
			t.Errorf("the running service after master rotation: %q", got)
		}
		ks, err := both.KeyStatus(platform, vault.System())
		if err != nil || ks.CheckKeyID != 2 || ks.DataKeys[2] != 3 || ks.DataKeys[1] != 0 || ks.CurrentKeyID != 2 || len(ks.LoadedKeyIDs) != 2 {
			t.Errorf("KeyStatus = %+v, %v", ks, err)
		}
		if mst, err := both.RotateMasterKey(platform, vault.System(), 0); err != nil || mst.Rewrapped != 0 || mst.CheckValue {
			t.Errorf("second master rotation: %+v, %v", mst, err)
		}

		// Key 1 removed: a restart with key 2 alone opens everything.
		only2 := e.open(t, ringOf(t, map[byte][]byte{2: k2}, 0))
		if err := only2.Unseal(ctx); err != nil {
			t.Fatalf("unseal with key 2 only: %v", err)
		}
		for v, want := range map[int]string{1: "v1-" + canary, 2: "v2"} {
			if got := read(t, only2, inA, admin, key, vault.ReadOptions{Version: v}); got != want {
				t.Errorf("version %d with key 2 only: %q", v, got)
			}
		}
		if got := read(t, only2, inB, admin, key, vault.ReadOptions{}); got != "B-v1" {
			t.Errorf("tenant B with key 2 only: %q", got)
		}
		// And key 1 alone no longer opens the vault.
		only1 := e.open(t, e.ring)
		code(t, "unseal with the retired key only", only1.Unseal(ctx), nodus.EUNAVAILABLE)
	})
}

// TestNoPlaintextAtRest is the rest of check 13 and part of 33: after
// writes, reads, references, handles, rotations and an audit failure, the
// canary appears in no byte of the SQLite files (database, WAL, shared
// memory; before and after a checkpoint) and in no row of any table on
// PostgreSQL, audit log included, in clear, hex or base64.
func TestNoPlaintextAtRest(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		in, tenant := tenantCtx()
		key := loc("prod", "/llm", "OPENAI_API_KEY")
		write(t, e.svc, in, key, canary)
		write(t, e.svc, in, loc("prod", "/llm", "DERIVED"), "Bearer ${OPENAI_API_KEY}")
		if got := read(t, e.svc, in, admin, loc("prod", "/llm", "DERIVED"), vault.ReadOptions{Expand: true}); got != "Bearer "+canary {
			t.Fatalf("expanded: %q", got)
		}
		h, err := e.svc.CreateHandle(in, admin, vault.HandleInput{Location: key, AllowedHosts: []string{"api.openai.com"}})
		if err != nil {
			t.Fatal(err)
		}
		if r, err := e.svc.ResolveHandle(in, h.ID, admin.UserID); err != nil || r.Value.Reveal() != canary {
			t.Fatalf("resolve: %v", err)
		}
		if _, err := e.svc.RotateDataKey(in, admin, tenant); err != nil {
			t.Fatal(err)
		}
		write(t, e.svc, in, key, canary)
		if _, err := e.svc.ReencryptTenant(in, admin, tenant, 0); err != nil {
			t.Fatal(err)
		}
		e.audit.fail.Store(true)
		_, err = e.svc.ReadSecret(in, admin, key, vault.ReadOptions{})
		code(t, "read with the audit log down", err, nodus.EUNAVAILABLE)
		e.audit.fail.Store(false)

		needles := [][]byte{[]byte(canary), []byte(canary[:12]), []byte(hex.EncodeToString([]byte(canary))),
			[]byte(base64.StdEncoding.EncodeToString([]byte(canary))[:16])}
		check := func(where string, b []byte) {
			t.Helper()
			for _, n := range needles {
				if bytes.Contains(b, n) {
					t.Errorf("%s holds the secret (%q)", where, n[:8])
				}
			}
		}
		if db.Dialect() == store.SQLite {
			path := store.SQLitePath(db.URL())
			files := 0
			grep := func(when string) {
				for _, f := range []string{path, path + "-wal", path + "-shm"} {
					b, err := os.ReadFile(f)
					if err != nil {
						continue
					}
					files++
					check(when+" "+f, b)
				}
			}
			grep("before checkpoint:")
			if err := db.Maintain(ctx); err != nil {
				t.Fatal(err)
			}
			grep("after checkpoint:")
			if files < 3 {
				t.Errorf("read %d database files, want the database and its WAL at least", files)
			}
			return
		}
		// PostgreSQL: every row of every table in the test schema, as text.
		rowsSeen := 0
		err = db.Read(allTenants, func(tx *store.Tx) error {
			rows, err := tx.Query(ctx, `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()`)
			if err != nil {
				return err
			}
			var tables []string
			for rows.Next() {
				var name string
				if err := rows.Scan(&name); err != nil {
					return err
				}
				tables = append(tables, name)
			}
			rows.Close()
			for _, table := range tables {
				rows, err := tx.Query(ctx, `SELECT t::text FROM "`+table+`" t`)
				if err != nil {
					return err
				}
				for rows.Next() {
					var text string
					if err := rows.Scan(&text); err != nil {
						return err
					}
					rowsSeen++
					check("table "+table, []byte(text))
					if strings.HasPrefix(table, "vault_secret_versions") && !strings.Contains(text, `\x`) {
						t.Errorf("a version row without bytea ciphertext: %.80s", text)
					}
				}
				rows.Close()
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if rowsSeen < 10 {
			t.Errorf("only %d rows checked", rowsSeen)
		}
	})
}

// stopAfterBatch is a store that cancels the run after its first batch of
// re-encrypted versions is stored: a job killed half-way.
type stopAfterBatch struct {
	vault.Store
	cancel func()
}

func (s *stopAfterBatch) UpdateSecretCiphertexts(ctx context.Context, rs []vault.Reencrypted) (int, error) {
	n, err := s.Store.UpdateSecretCiphertexts(ctx, rs)
	s.cancel()
	return n, err
}

// TestReencryptResumes: a re-encryption stopped after one batch leaves
// every value readable, and the next run finishes the rest.
func TestReencryptResumes(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		in, tenant := tenantCtx()
		for i := range 5 {
			write(t, e.svc, in, loc("dev", "/", fmt.Sprintf("K%d", i)), fmt.Sprintf("value %d", i))
		}
		if _, err := e.svc.RotateDataKey(in, admin, tenant); err != nil {
			t.Fatal(err)
		}
		run, cancel := context.WithCancel(in)
		defer cancel()
		stopping, err := vault.NewService(vault.Config{Store: &stopAfterBatch{Store: db, cancel: cancel}, Handles: db, Keyring: e.ring, Audit: e.audit})
		if err != nil {
			t.Fatal(err)
		}
		mustOK(t, stopping.Unseal(ctx))
		st, err := stopping.ReencryptTenant(run, admin, tenant, 2)
		if !errors.Is(err, context.Canceled) || st.Reencrypted != 2 || st.Batches != 1 {
			t.Fatalf("stopped run: %+v, %v", st, err)
		}
		for i := range 5 {
			if got := read(t, e.svc, in, admin, loc("dev", "/", fmt.Sprintf("K%d", i)), vault.ReadOptions{}); got != fmt.Sprintf("value %d", i) {
				t.Errorf("K%d half-way: %q", i, got)
			}
		}
		st, err = e.svc.ReencryptTenant(in, admin, tenant, 2)
		if err != nil || st.Reencrypted != 3 || st.Batches != 2 {
			t.Fatalf("resumed run: %+v, %v", st, err)
		}
		var stale int
		mustOK(t, db.Read(allTenants, func(tx *store.Tx) error {
			return tx.QueryRow(ctx, `SELECT count(*) FROM vault_secret_versions WHERE tenant_id = ? AND data_key_version <> 2`, tenant).Scan(&stale)
		}))
		if stale != 0 {
			t.Errorf("%d versions left under the old data key", stale)
		}
		var n int
		for _, a := range entries(t, db) {
			if a.Action == "vault.reencrypt" {
				n++
			}
		}
		if n != 2 {
			t.Errorf("%d vault.reencrypt entries, want one per run", n)
		}
	})
}

// TestDestroyWipesCiphertext: a destroyed version's ciphertext (and a
// pruned one's) is gone from the row and, on SQLite, from the file's
// free space too, once the WAL is checkpointed.
func TestDestroyWipesCiphertext(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		in, _ := tenantCtx()
		l := loc("prod", "/", "OLD_TOKEN")
		s := write(t, e.svc, in, l, canary)
		write(t, e.svc, in, l, "second")
		gone := ciphertext(t, db, s.ID, 1)
		if _, err := e.svc.DestroyVersions(in, admin, l, []int{1}); err != nil {
			t.Fatal(err)
		}
		if ct := ciphertext(t, db, s.ID, 1); ct != nil {
			t.Fatalf("destroyed version keeps %d bytes", len(ct))
		}
		all := write(t, e.svc, in, loc("prod", "/", "ALL"), canary)
		goneAll := ciphertext(t, db, all.ID, 1)
		mustOK(t, e.svc.DestroySecret(in, admin, loc("prod", "/", "ALL")))
		if db.Dialect() != store.SQLite {
			return // PostgreSQL drops dead row versions at VACUUM
		}
		mustOK(t, db.Maintain(ctx))
		path := store.SQLitePath(db.URL())
		for _, f := range []string{path, path + "-wal"} {
			b, err := os.ReadFile(f)
			if err != nil {
				continue
			}
			for name, ct := range map[string][]byte{"destroyed version": gone, "destroyed secret": goneAll} {
				if bytes.Contains(b, ct[17:]) {
					t.Errorf("%s: the %s's ciphertext is still in the file", f, name)
				}
			}
		}
	})
}
