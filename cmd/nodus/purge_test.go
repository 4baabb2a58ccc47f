package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/knowledge"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
)

// TestDeleteTenantPurgesEverything deletes a tenant that owns rows in
// every database, on both engines: its vault secrets, data keys and
// handles, and its egress policy, which no foreign key reaches from the
// auth database, are gone with it; another tenant's are untouched.
func TestDeleteTenantPurgesEverything(t *testing.T) {
	storetest.RunURL(t, func(t *testing.T, databaseURL string) {
		vars := nodusEnv(t, databaseURL)
		vars["NODUS_ADMIN_PASSWORD"] = "the administrator's password"
		in := startNodus(t, vars)
		admin := signIn(t, in.base, "admin", vars["NODUS_ADMIN_PASSWORD"])
		tenants := map[string]string{}
		for _, name := range []string{"Doomed", "Kept"} {
			var created struct{ Tenant struct{ ID string } }
			admin.must("POST", "/api/v1/tenants", map[string]any{"name": name}, 201, &created)
			id := created.Tenant.ID
			tenants[name] = id
			admin.must("PUT", "/api/v1/vault/secret?tenant_id="+id, map[string]any{"environment": "prod", "key": "API_KEY", "value": "v"}, 200, nil)
			admin.must("POST", "/api/v1/vault/handles?tenant_id="+id, map[string]any{"environment": "prod", "key": "API_KEY",
				"allowed_hosts": []string{"api.example.com"}, "purpose": "test.key"}, 201, nil)
			admin.must("PUT", "/api/v1/egress/policy?tenant_id="+id, map[string]any{"mode": "enforce",
				"rules": []map[string]any{{"host": "api.example.com"}}}, 200, nil)
			if status, b := uploadAudio(t, admin, name, name+".wav", silentWAV(0.5), "?tenant_id="+id); status != 201 {
				t.Fatalf("upload a recording: %d %s", status, b)
			}
		}

		ctx := context.Background()
		open := func(set string) *store.DB {
			url := vars["DATABASE_URL"]
			if url == "" {
				url = "sqlite:" + filepath.Join(vars["NODUS_DATA_DIR"], set+".db")
			}
			db, err := store.Open(ctx, storetest.Config(url))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			return db
		}
		vaultDB, mainDB := open("vault"), open("main")
		// Knowledge rows have no API yet: written through the store.
		for _, id := range tenants {
			tctx := nodus.WithTenant(ctx, id)
			now := time.Now().UTC()
			kb := knowledge.KnowledgeBase{ID: nodus.NewID(), TenantID: id, Name: "docs", CreatedBy: "admin", CreatedAt: now, UpdatedAt: now}
			kb.SetDefaults()
			doc := knowledge.Document{ID: nodus.NewID(), TenantID: id, KnowledgeBaseID: kb.ID, Filename: nodus.NewID(),
				OriginalFilename: "a.md", FileType: "markdown", FileSize: 5, ContentHash: strings.Repeat("ab", 32),
				Status: knowledge.StatusPending, UploadedBy: "admin", CreatedAt: now, UpdatedAt: now}
			doc.BlobID = doc.Filename
			if err := mainDB.CreateKnowledgeBase(tctx, kb); err != nil {
				t.Fatal(err)
			}
			if err := mainDB.CreateDocument(tctx, doc); err != nil {
				t.Fatal(err)
			}
			if err := mainDB.ReplaceChunks(tctx, doc.ID, []knowledge.Chunk{{ID: nodus.NewID(), TenantID: id, KnowledgeBaseID: kb.ID,
				DocumentID: doc.ID, Index: 0, Text: "hello", End: 5, Tokens: 1}}); err != nil {
				t.Fatal(err)
			}
		}
		count := func(db *store.DB, table, tenant string) int {
			var n int
			if err := db.Read(nodus.WithAllTenants(ctx), func(tx *store.Tx) error {
				return tx.QueryRow(ctx, "SELECT count(*) FROM "+table+" WHERE tenant_id = ?", tenant).Scan(&n)
			}); err != nil {
				t.Fatal(err)
			}
			return n
		}
		tables := []struct {
			db    *store.DB
			table string
		}{{vaultDB, "vault_secrets"}, {vaultDB, "vault_data_keys"}, {mainDB, "secret_handles"},
			{mainDB, "egress_rules"}, {mainDB, "tenant_egress_policies"},
			{mainDB, "knowledge_bases"}, {mainDB, "documents"}, {mainDB, "kb_chunks"}, {mainDB, "recordings"}}
		for _, tb := range tables {
			if n := count(tb.db, tb.table, tenants["Doomed"]); n == 0 {
				t.Fatalf("%s holds nothing of the tenant before the deletion: the test checks nothing", tb.table)
			}
		}

		admin.must("DELETE", "/api/v1/tenants/"+tenants["Doomed"], nil, 204, nil)
		admin.must("GET", "/api/v1/tenants/"+tenants["Doomed"], nil, 404, nil)
		for _, tb := range tables {
			if n := count(tb.db, tb.table, tenants["Doomed"]); n != 0 {
				t.Errorf("%s still holds %d rows of the deleted tenant", tb.table, n)
			}
			if n := count(tb.db, tb.table, tenants["Kept"]); n == 0 {
				t.Errorf("%s lost the other tenant's rows", tb.table)
			}
		}
		admin.must("DELETE", "/api/v1/tenants/"+tenants["Doomed"], nil, 404, nil)
	})
}
