package store_test

import (
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/identity"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
)

func newSession(u *identity.User, now time.Time) (string, *identity.Session) {
	secret, hash := identity.NewSecret("")
	csrf, _ := identity.NewSecret("")
	return secret, &identity.Session{IDHash: hash, UserID: u.ID, TenantID: u.TenantID, CSRFToken: csrf,
		CreatedAt: now, LastSeenAt: now, ExpiresAt: now.Add(12 * time.Hour), Address: "192.0.2.1", UserAgent: "test"}
}

func TestSessionStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		migrate(t, db, store.SetAuth)
		a, b := newTenant(t, db, "A", 0), newTenant(t, db, "B", 0)
		ann := mustCreateUser(t, db, newUser(a.ID, "ann", identity.RoleUser))
		bob := mustCreateUser(t, db, newUser(b.ID, "bob", identity.RoleUser))
		now := nodus.SystemClock{}.Now()

		secret, s1 := newSession(ann, now)
		_, s2 := newSession(ann, now)
		_, sb := newSession(bob, now)
		for _, s := range []*identity.Session{s1, s2, sb} {
			if err := db.CreateSession(ctx, s); err != nil {
				t.Fatal(err)
			}
		}
		got, p, err := db.FindSession(ctx, identity.HashSecret(secret))
		if err != nil {
			t.Fatal(err)
		}
		if got.UserID != ann.ID || got.CSRFToken != s1.CSRFToken || !got.ExpiresAt.Equal(s1.ExpiresAt) ||
			p.User.ID != ann.ID || p.User.TenantID != a.ID || !p.TenantActive {
			t.Fatalf("FindSession = %+v, %+v", got, p)
		}
		if _, _, err := db.FindSession(ctx, secret); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("lookup by the raw secret instead of its hash: %v, want not_found", err)
		}

		later := now.Add(time.Minute)
		if err := db.TouchSession(ctx, s1.IDHash, later); err != nil {
			t.Fatal(err)
		}
		if got, _, _ := db.FindSession(ctx, s1.IDHash); !got.LastSeenAt.Equal(later) {
			t.Errorf("last_seen_at = %v, want %v", got.LastSeenAt, later)
		}

		// Tenant B cannot end ann's sessions; ann's password change ends all
		// of hers but the one that made it.
		if n, err := db.DeleteUserSessions(nodus.WithTenant(ctx, b.ID), ann.ID, ""); err != nil || n != 0 {
			t.Errorf("B ended %d of ann's sessions (%v)", n, err)
		}
		if n, err := db.DeleteUserSessions(nodus.WithTenant(ctx, a.ID), ann.ID, s1.IDHash); err != nil || n != 1 {
			t.Errorf("DeleteUserSessions = %d, %v; want 1", n, err)
		}
		if _, _, err := db.FindSession(ctx, s2.IDHash); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("other session survived a password change: %v", err)
		}
		if err := db.DeleteSession(ctx, s1.IDHash); err != nil {
			t.Fatal(err)
		}
		if _, _, err := db.FindSession(ctx, s1.IDHash); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("session after logout: %v", err)
		}
		if _, _, err := db.FindSession(ctx, sb.IDHash); err != nil {
			t.Errorf("bob's session was touched: %v", err)
		}
		if n, err := db.DeleteExpiredSessions(ctx, now.Add(13*time.Hour)); err != nil || n != 1 {
			t.Errorf("DeleteExpiredSessions = %d, %v; want 1", n, err)
		}

		// A deactivated tenant shows in the principal at once.
		b.IsActive = false
		if err := putTenant(platform, db, b); err != nil {
			t.Fatal(err)
		}
		_, sb2 := newSession(bob, now)
		if err := db.CreateSession(ctx, sb2); err != nil {
			t.Fatal(err)
		}
		if _, p, _ := db.FindSession(ctx, sb2.IDHash); p.TenantActive {
			t.Error("session of a deactivated tenant reports it active")
		}
	})
}

func TestTokenStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		migrate(t, db, store.SetAuth)
		a, b := newTenant(t, db, "A", 0), newTenant(t, db, "B", 0)
		ann := mustCreateUser(t, db, newUser(a.ID, "ann", identity.RoleUser))
		bob := mustCreateUser(t, db, newUser(b.ID, "bob", identity.RoleUser))
		now := nodus.SystemClock{}.Now()
		inA, inB := nodus.WithTenant(ctx, a.ID), nodus.WithTenant(ctx, b.ID)

		secret, hash := identity.NewSecret(identity.TokenPrefix)
		if !identity.LooksLikeToken(secret) || identity.LooksLikeToken(hash) || identity.LooksLikeToken("nds_short") {
			t.Fatalf("LooksLikeToken misjudges %q / its hash", secret)
		}
		k := &identity.Token{ID: nodus.NewID(), UserID: ann.ID, TenantID: a.ID, Name: "ci", Prefix: secret[:12], Hash: hash, CreatedAt: now}
		if err := db.CreateToken(inB, k); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("B minting a token for ann: %v, want not_found", err)
		}
		if err := db.CreateToken(inA, k); err != nil {
			t.Fatal(err)
		}
		got, p, err := db.FindTokenByHash(ctx, identity.HashSecret(secret))
		if err != nil || got.ID != k.ID || p.User.ID != ann.ID || got.RevokedAt != nil {
			t.Fatalf("FindTokenByHash = %+v, %+v, %v", got, p, err)
		}
		if _, _, err := db.FindTokenByHash(ctx, secret); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("lookup by the raw token: %v, want not_found", err)
		}
		if list, err := db.ListTokens(inB, ann.ID); err != nil || len(list) != 0 {
			t.Errorf("B lists ann's tokens: %v, %v", list, err)
		}
		if err := db.RevokeToken(inB, ann.ID, k.ID, now); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("B revoking ann's token: %v, want not_found", err)
		}
		if err := db.RevokeToken(inA, bob.ID, k.ID, now); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("revoking ann's token as bob's: %v, want not_found", err)
		}
		if err := db.TouchToken(ctx, k.ID, now.Add(time.Second)); err != nil {
			t.Fatal(err)
		}
		if err := db.RevokeToken(inA, ann.ID, k.ID, now.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		list, err := db.ListTokens(inA, ann.ID)
		if err != nil || len(list) != 1 || list[0].RevokedAt == nil || list[0].LastUsedAt == nil || list[0].Hash != hash {
			t.Fatalf("ListTokens after revoke = %+v, %v", list, err)
		}
		// A second revocation keeps the first time.
		if err := db.RevokeToken(inA, ann.ID, k.ID, now.Add(2*time.Hour)); err != nil {
			t.Fatal(err)
		}
		if list, _ := db.ListTokens(inA, ann.ID); !list[0].RevokedAt.Equal(now.Add(time.Hour)) {
			t.Errorf("revoked_at moved to %v", list[0].RevokedAt)
		}
	})
}
