package vault_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
	"github.com/nodus-os/nodus/internal/vault"
)

// TestReferences: references expand on read when asked, in both syntaxes,
// relative to the secret that holds them, within the reader's tenant only,
// with the reader's permission checked on each secret reached; cycles and
// depth stop with a clear error.
func TestReferences(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		inA, _ := tenantCtx()
		inB, _ := tenantCtx()
		write(t, e.svc, inA, loc("prod", "/db", "USER"), "app")
		write(t, e.svc, inA, loc("prod", "/db", "PASSWORD"), canary)
		write(t, e.svc, inA, loc("prod", "/db", "HOST"), "db.internal")
		write(t, e.svc, inA, loc("prod", "/app", "DSN"), "postgres://${prod:/db/USER}:${prod.db.PASSWORD}@${prod:/db/HOST}/app?x=$${literal}")
		write(t, e.svc, inA, loc("prod", "/app", "ENV_DSN"), "DSN=${DSN}")
		write(t, e.svc, inA, loc("dev", "/", "LOOP_A"), "${LOOP_B}")
		write(t, e.svc, inA, loc("dev", "/", "LOOP_B"), "${dev:/LOOP_A}")
		write(t, e.svc, inA, loc("prod", "/app", "FROM_B"), "${prod:/shared/ONLY_IN_B}")
		write(t, e.svc, inB, loc("prod", "/shared", "ONLY_IN_B"), "tenant B's secret")

		want := "postgres://app:" + canary + "@db.internal/app?x=${literal}"
		if got := read(t, e.svc, inA, admin, loc("prod", "/app", "DSN"), vault.ReadOptions{Expand: true}); got != want {
			t.Errorf("expanded DSN = %q", got)
		}
		if got := read(t, e.svc, inA, admin, loc("prod", "/app", "ENV_DSN"), vault.ReadOptions{Expand: true}); got != "DSN="+want {
			t.Errorf("nested = %q", got)
		}
		if got := read(t, e.svc, inA, admin, loc("prod", "/app", "ENV_DSN"), vault.ReadOptions{}); got != "DSN=${DSN}" {
			t.Errorf("unexpanded = %q", got)
		}
		_, err := e.svc.ReadSecret(inA, admin, loc("dev", "/", "LOOP_A"), vault.ReadOptions{Expand: true})
		code(t, "cycle", err, nodus.EINVALID)
		if !strings.Contains(nodus.ErrorMessage(err), "reference cycle: dev:/LOOP_A → dev:/LOOP_B → dev:/LOOP_A") {
			t.Errorf("cycle message: %q", nodus.ErrorMessage(err))
		}
		// Tenant-bound: B's secret of that name is not A's.
		_, err = e.svc.ReadSecret(inA, admin, loc("prod", "/app", "FROM_B"), vault.ReadOptions{Expand: true})
		code(t, "reference to another tenant's secret", err, nodus.ENOTFOUND)
		if !strings.Contains(nodus.ErrorMessage(err), "reference to prod:/shared/ONLY_IN_B") {
			t.Errorf("message does not name the reference: %q", nodus.ErrorMessage(err))
		}

		// Permission-checked: a user with read on /app only cannot expand
		// into /db; with /db granted too, it can.
		user := vault.Principal{UserID: nodus.NewID(), Role: vault.RoleUser}
		if _, err := e.svc.CreateGrant(inA, admin, vault.GrantInput{SubjectType: vault.SubjectUser, Subject: user.UserID,
			Environment: "prod", PathPrefix: "/app", Permission: vault.PermRead}); err != nil {
			t.Fatal(err)
		}
		if got := read(t, e.svc, inA, user, loc("prod", "/app", "ENV_DSN"), vault.ReadOptions{}); got != "DSN=${DSN}" {
			t.Errorf("user reads unexpanded: %q", got)
		}
		r, err := e.svc.ReadSecret(inA, user, loc("prod", "/app", "DSN"), vault.ReadOptions{Expand: true})
		if r != nil {
			t.Error("a value came back with a denied reference")
		}
		code(t, "reference outside the user's grants", err, nodus.EFORBIDDEN)
		if !strings.Contains(nodus.ErrorMessage(err), "prod:/db/") {
			t.Errorf("message does not name the denied secret: %q", nodus.ErrorMessage(err))
		}
		if _, err := e.svc.CreateGrant(inA, admin, vault.GrantInput{SubjectType: vault.SubjectUser, Subject: user.UserID,
			Environment: "prod", PathPrefix: "/db", Permission: vault.PermRead}); err != nil {
			t.Fatal(err)
		}
		if got := read(t, e.svc, inA, user, loc("prod", "/app", "DSN"), vault.ReadOptions{Expand: true}); got != want {
			t.Errorf("user with both grants: %q", got)
		}
		_, err = e.svc.ReadSecret(inA, viewer, loc("prod", "/app", "DSN"), vault.ReadOptions{Expand: true})
		code(t, "viewer expands", err, nodus.EFORBIDDEN)
	})
}

// TestGrants: who may read and write values, per environment and path
// prefix, and who manages the vault.
func TestGrants(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		in, _ := tenantCtx()
		other, _ := tenantCtx()
		u1, u2 := nodus.NewID(), nodus.NewID()
		for _, g := range []vault.GrantInput{
			{SubjectType: vault.SubjectUser, Subject: u1, Environment: "prod", PathPrefix: "/db", Permission: vault.PermRead},
			{SubjectType: vault.SubjectUser, Subject: u1, Environment: "*", PathPrefix: "/ci", Permission: vault.PermWrite},
			{SubjectType: vault.SubjectRole, Subject: vault.RoleUser, Environment: "dev", Permission: vault.PermRead},
			{SubjectType: vault.SubjectUser, Subject: u2, Environment: "*", PathPrefix: "/", Permission: vault.PermRead},
		} {
			if _, err := e.svc.CreateGrant(in, admin, g); err != nil {
				t.Fatalf("grant %+v: %v", g, err)
			}
		}
		// Another tenant's grant for u1 gives nothing here.
		if _, err := e.svc.CreateGrant(other, admin, vault.GrantInput{SubjectType: vault.SubjectUser, Subject: u1,
			Environment: "*", PathPrefix: "/", Permission: vault.PermWrite}); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			role, user, env, path, perm string
			want                        bool
		}{
			{vault.RoleOrgAdmin, "", "prod", "/anything", vault.PermWrite, true},
			{vault.RoleSuperAdmin, "", "prod", "/", vault.PermRead, true},
			{vault.RoleSystem, "", "prod", "/", vault.PermWrite, true},
			{vault.RoleUser, u1, "prod", "/db", vault.PermRead, true},
			{vault.RoleUser, u1, "prod", "/db/replica", vault.PermRead, true},
			{vault.RoleUser, u1, "prod", "/dbx", vault.PermRead, false},
			{vault.RoleUser, u1, "prod", "/", vault.PermRead, false},
			{vault.RoleUser, u1, "staging", "/db", vault.PermRead, false},
			{vault.RoleUser, u1, "prod", "/db", vault.PermWrite, false},
			{vault.RoleUser, u1, "staging", "/ci/deploy", vault.PermWrite, true},
			{vault.RoleUser, u1, "staging", "/ci/deploy", vault.PermRead, false}, // write does not imply read
			{vault.RoleUser, u1, "dev", "/deep/er", vault.PermRead, true},        // the role grant
			{vault.RoleUser, u1, "dev", "/", vault.PermWrite, false},
			{vault.RoleUser, nodus.NewID(), "dev", "/x", vault.PermRead, true},
			{vault.RoleUser, nodus.NewID(), "prod", "/x", vault.PermRead, false},
			{vault.RoleViewer, u2, "prod", "/", vault.PermRead, false}, // a viewer never reads, whatever the grant
			{vault.RoleViewer, u2, "dev", "/", vault.PermRead, false},
			{"", u2, "prod", "/", vault.PermRead, false},
			{"hacker", u2, "prod", "/", vault.PermRead, false},
			{vault.RoleUser, u2, "prod", "/", "admin", false},
		} {
			if got := e.svc.Can(in, tc.role, tc.user, tc.env, tc.path, tc.perm); got != tc.want {
				t.Errorf("Can(%s %s, %s %s, %s) = %v, want %v", tc.role, tc.user, tc.env, tc.path, tc.perm, got, tc.want)
			}
		}
		if e.svc.Can(other, vault.RoleUser, u2, "prod", "/", vault.PermRead) {
			t.Error("u2's grant in one tenant applies in another")
		}

		// What each role may do through the service.
		l := loc("prod", "/db", "PASSWORD")
		write(t, e.svc, in, l, canary)
		user1 := vault.Principal{UserID: u1, Role: vault.RoleUser}
		if got := read(t, e.svc, in, user1, l, vault.ReadOptions{}); got != canary {
			t.Errorf("u1 reads %q", got)
		}
		_, err := e.svc.WriteSecret(in, user1, vault.WriteInput{Location: l, Value: vault.NewValue("x")})
		code(t, "u1 writes /db", err, nodus.EFORBIDDEN)
		code(t, "u1 deletes /db", e.svc.DeleteSecret(in, user1, l), nodus.EFORBIDDEN)
		if _, err := e.svc.WriteSecret(in, user1, vault.WriteInput{Location: loc("prod", "/ci", "TOKEN"), Value: vault.NewValue("t")}); err != nil {
			t.Errorf("u1 writes /ci: %v", err)
		}
		_, err = e.svc.ReadSecret(in, user1, loc("prod", "/ci", "TOKEN"), vault.ReadOptions{})
		code(t, "u1 reads what it may only write", err, nodus.EFORBIDDEN)
		_, err = e.svc.ReadSecret(in, viewer, l, vault.ReadOptions{})
		code(t, "viewer reads", err, nodus.EFORBIDDEN)
		if !strings.Contains(nodus.ErrorMessage(err), "never values") {
			t.Errorf("viewer message %q", nodus.ErrorMessage(err))
		}
		// Viewers see names and metadata.
		if s, err := e.svc.FindSecret(in, viewer, l); err != nil || s.Key != "PASSWORD" {
			t.Errorf("viewer finds: %v", err)
		}
		if list, _, err := e.svc.ListSecrets(in, viewer, vault.SecretFilter{Environment: "prod", Recursive: true}); err != nil || len(list) != 2 {
			t.Errorf("viewer lists: %d, %v", len(list), err)
		}
		nobody := vault.Principal{UserID: u1}
		_, _, err = e.svc.ListSecrets(in, nobody, vault.SecretFilter{Environment: "prod"})
		code(t, "no role lists", err, nodus.EFORBIDDEN)
		// Management is for admins.
		for name, err := range map[string]error{
			"grant":  second(e.svc.CreateGrant(in, user1, vault.GrantInput{SubjectType: "user", Subject: u1, Environment: "*", Permission: "read"})),
			"grants": second(e.svc.ListGrants(in, user1)),
			"env":    second(e.svc.CreateEnvironment(in, user1, "qa", "")),
			"handle": second(e.svc.CreateHandle(in, user1, vault.HandleInput{Location: l})),
		} {
			code(t, "user "+name, err, nodus.EFORBIDDEN)
		}

		grants, err := e.svc.ListGrants(in, admin)
		if err != nil || len(grants) != 4 {
			t.Fatalf("grants %d, %v", len(grants), err)
		}
		_, err = e.svc.CreateGrant(in, admin, vault.GrantInput{SubjectType: vault.SubjectUser, Subject: u1, Environment: "prod", PathPrefix: "/db", Permission: vault.PermRead})
		code(t, "duplicate grant", err, nodus.ECONFLICT)
		for name, g := range map[string]vault.GrantInput{
			"viewer role":  {SubjectType: "role", Subject: "viewer", Environment: "*", Permission: "read"},
			"subject type": {SubjectType: "group", Subject: u1, Environment: "*", Permission: "read"},
			"user id":      {SubjectType: "user", Subject: "bob", Environment: "*", Permission: "read"},
			"env":          {SubjectType: "user", Subject: u1, Environment: "PROD", Permission: "read"},
			"path":         {SubjectType: "user", Subject: u1, Environment: "*", PathPrefix: "db", Permission: "read"},
			"permission":   {SubjectType: "user", Subject: u1, Environment: "*", Permission: "admin"},
		} {
			_, err := e.svc.CreateGrant(in, admin, g)
			code(t, "grant "+name, err, nodus.EINVALID)
		}
		mustOK(t, e.svc.DeleteGrant(in, admin, grants[0].ID))
		if e.svc.Can(in, vault.RoleUser, u1, "prod", "/db", vault.PermRead) {
			t.Error("a deleted grant still applies")
		}
		code(t, "delete again", e.svc.DeleteGrant(in, admin, grants[0].ID), nodus.ENOTFOUND)
	})
}

// TestHandles: a handle resolves in-process to the value and its hosts,
// follows or pins versions, records its use, and only in its tenant.
func TestHandles(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		in, tenant := tenantCtx()
		inB, _ := tenantCtx()
		l := loc("prod", "/llm", "OPENAI_API_KEY")
		write(t, e.svc, in, l, "sk-1")

		_, err := e.svc.CreateHandle(in, admin, vault.HandleInput{Location: loc("prod", "/llm", "MISSING")})
		code(t, "handle to a missing secret", err, nodus.ENOTFOUND)
		_, err = e.svc.CreateHandle(in, admin, vault.HandleInput{Location: l, Version: 7})
		code(t, "handle to a missing version", err, nodus.ENOTFOUND)
		_, err = e.svc.CreateHandle(in, admin, vault.HandleInput{Location: l, AllowedHosts: []string{"https://api.openai.com"}})
		code(t, "bad host", err, nodus.EINVALID)
		_, err = e.svc.CreateHandle(in, admin, vault.HandleInput{Location: l, Purpose: "Gateway Key"})
		code(t, "bad purpose", err, nodus.EINVALID)

		h, err := e.svc.CreateHandle(in, admin, vault.HandleInput{Location: l, AllowedHosts: []string{"API.openai.com", "*.openai.azure.com"},
			Purpose: "gateway.provider_key", Label: "OpenAI production"})
		if err != nil {
			t.Fatal(err)
		}
		if h.TenantID != tenant || len(h.AllowedHosts) != 2 || h.AllowedHosts[0] != "api.openai.com" {
			t.Errorf("created %+v", h)
		}
		user := nodus.NewID()
		r, err := e.svc.ResolveHandle(in, h.ID, user)
		if err != nil || r.Value.Reveal() != "sk-1" || r.Version != 1 || r.HandleID != h.ID || r.Purpose != "gateway.provider_key" {
			t.Fatalf("resolve: %+v, %v", r, err)
		}
		if !r.Allows("api.openai.com") || !r.Allows("x.openai.azure.com") || r.Allows("api.openai.com.evil.test") || r.Allows("evil.com") {
			t.Error("allowed hosts")
		}
		got, _ := e.svc.FindHandle(in, viewer, h.ID)
		if got.LastUsedAt == nil || got.LastUsedBy != user {
			t.Errorf("last use not recorded: %+v", got)
		}
		first := *got.LastUsedAt

		// A new version: the handle follows it; a pinned one does not.
		write(t, e.svc, in, l, "sk-2")
		pinned, err := e.svc.CreateHandle(in, admin, vault.HandleInput{Location: l, Version: 1})
		if err != nil {
			t.Fatal(err)
		}
		if r, _ := e.svc.ResolveHandle(in, h.ID, user); r.Value.Reveal() != "sk-2" || r.Version != 2 {
			t.Errorf("following handle: %+v", r)
		}
		if r, _ := e.svc.ResolveHandle(in, pinned.ID, ""); r.Value.Reveal() != "sk-1" || r.Version != 1 {
			t.Errorf("pinned handle: %+v", r)
		}
		// The second use within a minute does not rewrite last_used_at.
		if got, _ := e.svc.FindHandle(in, admin, h.ID); !got.LastUsedAt.Equal(first) {
			t.Errorf("last_used_at rewritten within the touch interval")
		}
		// With a zero-ish interval every use records.
		fresh, err := vault.NewService(vault.Config{Store: db, Handles: db, Keyring: e.ring, Audit: e.audit, TouchInterval: time.Nanosecond})
		if err != nil {
			t.Fatal(err)
		}
		mustOK(t, fresh.Unseal(ctx))
		if _, err := fresh.ResolveHandle(in, h.ID, "someone"); err != nil {
			t.Fatal(err)
		}
		if got, _ := e.svc.FindHandle(in, admin, h.ID); got.LastUsedBy != "someone" || !got.LastUsedAt.After(first) {
			t.Errorf("last use after the interval: %+v", got)
		}

		// Another tenant: not found, by any route.
		_, err = e.svc.ResolveHandle(inB, h.ID, user)
		code(t, "B resolves A's handle", err, nodus.ENOTFOUND)
		_, err = e.svc.ResolveHandle(in, "not-an-id", user)
		code(t, "malformed handle id", err, nodus.ENOTFOUND)

		// Update: point at another secret; the id stays. Whatever lets a
		// value go somewhere new needs that value entered again (check 17):
		// without it, or with a wrong one, nothing changes.
		write(t, e.svc, in, loc("prod", "/llm", "ANTHROPIC_API_KEY"), "sk-ant")
		moved := vault.HandleInput{Location: loc("prod", "/llm", "ANTHROPIC_API_KEY"), AllowedHosts: []string{"api.anthropic.com"}}
		_, err = e.svc.UpdateHandle(in, admin, h.ID, moved)
		code(t, "re-point without the value", err, nodus.EINVALID)
		moved.ConfirmValue = "sk-wrong"
		_, err = e.svc.UpdateHandle(in, admin, h.ID, moved)
		code(t, "re-point with a wrong value", err, nodus.EINVALID)
		if got, _ := e.svc.FindHandle(in, admin, h.ID); got.Location != h.Location {
			t.Fatalf("a refused update changed the handle: %+v", got)
		}
		moved.ConfirmValue = "sk-ant"
		up, err := e.svc.UpdateHandle(in, admin, h.ID, moved)
		if err != nil || up.ID != h.ID {
			t.Fatal(err)
		}
		// Adding a host needs the value too; narrowing or relabelling does not.
		wider := moved
		wider.ConfirmValue, wider.AllowedHosts = "", []string{"api.anthropic.com", "evil.example.test"}
		_, err = e.svc.UpdateHandle(in, admin, h.ID, wider)
		code(t, "widen hosts without the value", err, nodus.EINVALID)
		relabel := moved
		relabel.ConfirmValue, relabel.Label = "", "renamed"
		if _, err := e.svc.UpdateHandle(in, admin, h.ID, relabel); err != nil {
			t.Fatalf("relabel: %v", err)
		}
		if r, _ := e.svc.ResolveHandle(in, h.ID, user); r.Value.Reveal() != "sk-ant" || !r.Allows("api.anthropic.com") || r.Allows("api.openai.com") {
			t.Errorf("after update: %+v", r)
		}
		_, err = e.svc.UpdateHandle(in, viewer, h.ID, vault.HandleInput{Location: l})
		code(t, "viewer updates", err, nodus.EFORBIDDEN)

		// Deleted secret, destroyed version, deleted handle.
		mustOK(t, e.svc.DeleteSecret(in, admin, loc("prod", "/llm", "ANTHROPIC_API_KEY")))
		_, err = e.svc.ResolveHandle(in, h.ID, user)
		code(t, "handle to a deleted secret", err, nodus.ENOTFOUND)
		if _, err := e.svc.DestroyVersions(in, admin, l, []int{1}); err != nil {
			t.Fatal(err)
		}
		_, err = e.svc.ResolveHandle(in, pinned.ID, user)
		code(t, "pinned to a destroyed version", err, nodus.ENOTFOUND)
		list, next, err := e.svc.ListHandles(in, viewer, "", 1)
		if err != nil || len(list) != 1 || next == "" {
			t.Errorf("list page: %d, %q, %v", len(list), next, err)
		}
		mustOK(t, e.svc.DeleteHandle(in, admin, pinned.ID))
		_, err = e.svc.ResolveHandle(in, pinned.ID, user)
		code(t, "deleted handle", err, nodus.ENOTFOUND)
		code(t, "viewer deletes", e.svc.DeleteHandle(in, viewer, h.ID), nodus.EFORBIDDEN)

		// Handle management is audited.
		var kinds []string
		for _, a := range entries(t, db) {
			if strings.HasPrefix(a.Action, "secret_handle.") {
				kinds = append(kinds, a.Action)
			}
		}
		if strings.Join(kinds, ",") != "secret_handle.create,secret_handle.create,secret_handle.update,secret_handle.update,secret_handle.delete" { // the re-point and the relabel
			t.Errorf("handle audit: %v", kinds)
		}
	})
}

// TestPurgeTenant: the vault's part of deleting a tenant removes its
// secrets, versions, data keys, grants and handles, and nothing of
// another tenant's.
func TestPurgeTenant(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		inA, a := tenantCtx()
		inB, _ := tenantCtx()
		l := loc("prod", "/", "K")
		for _, in := range []context.Context{inA, inB} {
			write(t, e.svc, in, l, canary)
			if _, err := e.svc.CreateHandle(in, admin, vault.HandleInput{Location: l}); err != nil {
				t.Fatal(err)
			}
			if _, err := e.svc.CreateGrant(in, admin, vault.GrantInput{SubjectType: "role", Subject: "user", Environment: "*", Permission: "read"}); err != nil {
				t.Fatal(err)
			}
			if _, err := e.svc.CreateEnvironment(in, admin, "qa", ""); err != nil {
				t.Fatal(err)
			}
		}
		hA, _, _ := e.svc.ListHandles(inA, admin, "", 10)
		platform := nodus.WithAllTenants(ctx)
		code(t, "org_admin purges", e.svc.PurgeTenant(inA, admin, a), nodus.EFORBIDDEN)
		code(t, "purge from another tenant's scope", e.svc.PurgeTenant(inB, vault.System(), a), nodus.ENOTFOUND)
		mustOK(t, e.svc.PurgeTenant(platform, vault.System(), a))
		mustOK(t, e.svc.PurgeTenant(platform, vault.System(), a)) // idempotent

		_, err := e.svc.ReadSecret(inA, admin, l, vault.ReadOptions{})
		code(t, "A's secret after the purge", err, nodus.ENOTFOUND)
		_, err = e.svc.ResolveHandle(inA, hA[0].ID, "")
		code(t, "A's handle after the purge", err, nodus.ENOTFOUND)
		if g, _ := e.svc.ListGrants(inA, admin); len(g) != 0 {
			t.Errorf("A keeps %d grants", len(g))
		}
		if envs, _ := e.svc.ListEnvironments(inA, admin); len(envs) != 3 {
			t.Errorf("A keeps custom environments: %v", envs)
		}
		var rows int
		mustOK(t, db.Read(allTenants, func(tx *store.Tx) error {
			return tx.QueryRow(ctx, `SELECT (SELECT count(*) FROM vault_data_keys WHERE tenant_id = ?) +
				(SELECT count(*) FROM vault_secret_versions WHERE tenant_id = ?)`, a, a).Scan(&rows)
		}))
		if rows != 0 {
			t.Errorf("%d data key and version rows of A left", rows)
		}
		// B is untouched.
		if got := read(t, e.svc, inB, admin, l, vault.ReadOptions{}); got != canary {
			t.Errorf("B after A's purge: %q", got)
		}
		if hB, _, _ := e.svc.ListHandles(inB, admin, "", 10); len(hB) != 1 {
			t.Errorf("B's handles: %d", len(hB))
		}
		var purged int
		for _, en := range entries(t, db) {
			if en.Action == "vault.purge_tenant" && en.TenantID == a {
				purged++
			}
		}
		if purged != 2 {
			t.Errorf("%d purge entries, want 2", purged)
		}
	})
}
