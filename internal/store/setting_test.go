package store_test

import (
	"slices"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/settings"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
)

func setting(tenantID, key, value string) settings.Setting {
	return settings.Setting{ID: nodus.NewID(), TenantID: tenantID, Key: key, Value: value,
		UpdatedAt: nodus.SystemClock{}.Now(), UpdatedBy: "u1"}
}

// settingValues renders rows as owner/key=value, for comparisons.
func settingValues(rows []settings.Setting) []string {
	var out []string
	for _, r := range rows {
		owner := r.TenantID
		if owner == "" {
			owner = "platform"
		}
		out = append(out, owner+"/"+r.Key+"="+r.Value)
	}
	slices.Sort(out)
	return out
}

func TestSettingStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		migrate(t, db, store.SetAuth)
		a := newTenant(t, db, "A", 0)
		inA := nodus.WithTenant(ctx, a.ID)

		// Platform values, then a tenant override of the same key: the
		// two rows live side by side.
		p := setting("", "branding.product_name", `"Platform"`)
		before, err := db.UpdateSettings(platform, "", []settings.Setting{p, setting("", "email.smtp_port", "2525")}, nil)
		if err != nil || len(before) != 0 {
			t.Fatalf("first platform write: before %v, %v", before, err)
		}
		first := setting(a.ID, "branding.product_name", `"Acme"`)
		if _, err := db.UpdateSettings(inA, a.ID, []settings.Setting{first}, nil); err != nil {
			t.Fatal(err)
		}
		rows, err := db.ListSettings(inA, a.ID)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{a.ID + `/branding.product_name="Acme"`, `platform/branding.product_name="Platform"`, "platform/email.smtp_port=2525"}
		if got := settingValues(rows); !slices.Equal(got, want) {
			t.Fatalf("ListSettings(A) = %v, want %v", got, want)
		}
		for _, r := range rows {
			if r.TenantID == a.ID && (!r.UpdatedAt.Equal(first.UpdatedAt) || r.UpdatedBy != "u1" || r.ID != first.ID) {
				t.Errorf("stored row %+v, want %+v", r, first)
			}
		}
		if rows, err := db.ListSettings(inA, ""); err != nil || len(rows) != 2 {
			t.Errorf("platform rows from a tenant scope: %v, %v; want the two platform rows", settingValues(rows), err)
		}

		// An upsert replaces the value in place and returns what it replaced.
		second := setting(a.ID, "branding.product_name", `"Acme Corp"`)
		second.UpdatedAt = second.UpdatedAt.Add(time.Minute)
		before, err = db.UpdateSettings(inA, a.ID, []settings.Setting{second, setting(a.ID, "email.from", `"a@example.test"`)}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := settingValues(before); !slices.Equal(got, []string{a.ID + `/branding.product_name="Acme"`}) {
			t.Errorf("before = %v, want the replaced override only", got)
		}
		rows, _ = db.ListSettings(inA, a.ID)
		for _, r := range rows {
			if r.TenantID == a.ID && r.Key == "branding.product_name" && (r.ID != first.ID || !r.UpdatedAt.Equal(second.UpdatedAt) || r.Value != `"Acme Corp"`) {
				t.Errorf("after the upsert: %+v", r)
			}
		}
		if len(rows) != 4 {
			t.Errorf("after the upsert %d rows, want 4: %v", len(rows), settingValues(rows))
		}

		// Removing an override returns it; removing a missing one is no error.
		before, err = db.UpdateSettings(inA, a.ID, nil, []string{"branding.product_name", "email.smtp_host"})
		if err != nil || len(before) != 1 || before[0].Value != `"Acme Corp"` {
			t.Fatalf("remove: before %v, %v", settingValues(before), err)
		}
		rows, _ = db.ListSettings(inA, a.ID)
		want = []string{a.ID + `/email.from="a@example.test"`, `platform/branding.product_name="Platform"`, "platform/email.smtp_port=2525"}
		if got := settingValues(rows); !slices.Equal(got, want) {
			t.Errorf("after remove = %v, want %v", got, want)
		}

		// All or nothing: a failing row rolls back the rows before it.
		good := setting(a.ID, "branding.logo_url", `"/logo.png"`)
		clash := setting(a.ID, "email.smtp_user", `"x"`)
		for _, r := range rows {
			if r.Key == "email.from" {
				clash.ID = r.ID // the primary key of an existing row
			}
		}
		if _, err := db.UpdateSettings(inA, a.ID, []settings.Setting{good, clash}, []string{"email.from"}); nodus.ErrorCode(err) != nodus.ECONFLICT {
			t.Fatalf("write with a clashing row: %v, want conflict", err)
		}
		if got, _ := db.ListSettings(inA, a.ID); !slices.Equal(settingValues(got), want) {
			t.Errorf("a failed write changed rows: %v", settingValues(got))
		}

		// A row for another owner is refused before anything is written.
		if _, err := db.UpdateSettings(inA, a.ID, []settings.Setting{setting("", "branding.logo_url", `""`)}, nil); err == nil {
			t.Error("a platform row written through a tenant update")
		}

		// Deleting the tenant deletes its overrides and keeps the platform's.
		if err := db.DeleteTenant(platform, a.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := db.ListSettings(platform, a.ID); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("settings of a deleted tenant: %v, want not_found", err)
		}
		if rows, err := db.ListSettings(platform, ""); err != nil || len(rows) != 2 {
			t.Errorf("platform rows after the tenant went: %v, %v", settingValues(rows), err)
		}
	})
}

// TestSettingTenantIsolation checks each settings method from tenant A's
// scope against tenant B and the platform: reads of B are not found,
// writes change nothing, and no scope fails closed.
func TestSettingTenantIsolation(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		migrate(t, db, store.SetAuth)
		a, b := newTenant(t, db, "A", 0), newTenant(t, db, "B", 0)
		inA := nodus.WithTenant(ctx, a.ID)
		if _, err := db.UpdateSettings(platform, b.ID, []settings.Setting{setting(b.ID, "email.smtp_password", `"sealed-b"`)}, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := db.UpdateSettings(platform, "", []settings.Setting{setting("", "branding.product_name", `"P"`)}, nil); err != nil {
			t.Fatal(err)
		}
		bRows := func() []string {
			t.Helper()
			rows, err := db.ListSettings(platform, b.ID)
			if err != nil {
				t.Fatal(err)
			}
			return settingValues(rows)
		}
		wantB := bRows()

		if _, err := db.ListSettings(inA, b.ID); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("ListSettings(B) from A: %v, want not_found", err)
		}
		if _, err := db.UpdateSettings(inA, b.ID, []settings.Setting{setting(b.ID, "email.smtp_password", `"mallory"`)}, nil); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("UpdateSettings(B) from A: %v, want not_found", err)
		}
		if _, err := db.UpdateSettings(inA, b.ID, nil, []string{"email.smtp_password"}); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("removing B's setting from A: %v, want not_found", err)
		}
		if _, err := db.UpdateSettings(inA, "", []settings.Setting{setting("", "branding.product_name", `"hijacked"`)}, nil); nodus.ErrorCode(err) != nodus.EFORBIDDEN {
			t.Errorf("platform write from a tenant scope: %v, want forbidden", err)
		}
		if _, err := db.UpdateSettings(inA, "", nil, []string{"branding.product_name"}); nodus.ErrorCode(err) != nodus.EFORBIDDEN {
			t.Errorf("platform remove from a tenant scope: %v, want forbidden", err)
		}
		rows, err := db.ListSettings(inA, a.ID)
		if err != nil || !slices.Equal(settingValues(rows), []string{`platform/branding.product_name="P"`}) {
			t.Errorf("ListSettings(A) = %v, %v; want the platform row only", settingValues(rows), err)
		}
		if got := bRows(); !slices.Equal(got, wantB) {
			t.Errorf("B's settings changed: %v, want %v", got, wantB)
		}
		if rows, _ := db.ListSettings(platform, ""); !slices.Equal(settingValues(rows), []string{`platform/branding.product_name="P"`}) {
			t.Errorf("platform settings changed: %v", settingValues(rows))
		}

		unknown := nodus.NewID()
		if _, err := db.ListSettings(platform, unknown); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("ListSettings(unknown tenant): %v, want not_found", err)
		}
		if _, err := db.UpdateSettings(platform, unknown, []settings.Setting{setting(unknown, "branding.product_name", `"x"`)}, nil); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("UpdateSettings(unknown tenant): %v, want not_found", err)
		}
		if _, err := db.ListSettings(inA, "not-an-id"); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("ListSettings(malformed id): %v, want not_found", err)
		}

		// No scope: fail closed.
		for name, err := range map[string]error{
			"ListSettings(platform)":   func() error { _, err := db.ListSettings(ctx, ""); return err }(),
			"ListSettings(A)":          func() error { _, err := db.ListSettings(ctx, a.ID); return err }(),
			"UpdateSettings(platform)": func() error { _, err := db.UpdateSettings(ctx, "", nil, nil); return err }(),
			"UpdateSettings(A)":        func() error { _, err := db.UpdateSettings(ctx, a.ID, nil, nil); return err }(),
		} {
			if err != nodus.ErrNoScope {
				t.Errorf("%s without a scope: %v, want ErrNoScope", name, err)
			}
		}
	})
}
