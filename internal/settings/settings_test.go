package settings_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/nodus-os/nodus/internal/audit"
	"github.com/nodus-os/nodus/internal/identity"
	"github.com/nodus-os/nodus/internal/keyring"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/settings"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
)

var (
	ctx      = context.Background()
	platform = nodus.WithAllTenants(ctx)
)

// auditLog keeps recorded entries in memory.
type auditLog struct {
	mu      sync.Mutex
	entries []audit.Entry
}

func (l *auditLog) Record(_ context.Context, e audit.Entry) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entries = append(l.entries, e)
	return nil
}

func (l *auditLog) last(t *testing.T) audit.Entry {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.entries) == 0 {
		t.Fatal("nothing audited")
	}
	return l.entries[len(l.entries)-1]
}

type fixture struct {
	db    *store.DB
	svc   *settings.Service
	log   *auditLog
	ring  *keyring.Keyring
	a, b  string // tenant ids
	inA   context.Context
	actor audit.Entry
}

func newSealer(t *testing.T) (*keyring.Keyring, *keyring.Sealer) {
	t.Helper()
	key := make([]byte, keyring.KeySize)
	_, _ = rand.Read(key)
	ring, err := keyring.New(key, "test")
	if err != nil {
		t.Fatal(err)
	}
	box, err := ring.Sealer("settings")
	if err != nil {
		t.Fatal(err)
	}
	return ring, box
}

func setup(t *testing.T, db *store.DB) *fixture {
	t.Helper()
	m, err := store.NewMigrator(store.SetAuth, db)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Up(ctx); err != nil {
		t.Fatal(err)
	}
	f := &fixture{db: db, log: &auditLog{}, actor: audit.Entry{ActorKind: audit.ActorUser, ActorID: nodus.NewID(), Address: "192.0.2.1"}}
	var box *keyring.Sealer
	f.ring, box = newSealer(t)
	f.svc = settings.NewService(db, box, f.log, nil)
	for name, id := range map[string]*string{"A": &f.a, "B": &f.b} {
		now := nodus.SystemClock{}.Now()
		tn := &identity.Tenant{ID: nodus.NewID(), Name: name, IsActive: true, CreatedAt: now, UpdatedAt: now}
		if err := db.CreateTenant(platform, tn); err != nil {
			t.Fatal(err)
		}
		*id = tn.ID
	}
	f.inA = nodus.WithTenant(ctx, f.a)
	return f
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// patch builds an update body from JSON text.
func patch(t *testing.T, body string) map[string]json.RawMessage {
	t.Helper()
	var p map[string]json.RawMessage
	if err := json.Unmarshal([]byte(body), &p); err != nil {
		t.Fatalf("bad test body %s: %v", body, err)
	}
	return p
}

func (f *fixture) update(t *testing.T, ctx context.Context, tenantID, body string) *settings.Settings {
	t.Helper()
	s, err := f.svc.Update(ctx, tenantID, patch(t, body), f.actor)
	if err != nil {
		t.Fatalf("Update(%q, %s): %v", tenantID, body, err)
	}
	return s
}

func (f *fixture) effective(t *testing.T, ctx context.Context, tenantID string) *settings.Settings {
	t.Helper()
	s, err := f.svc.Effective(ctx, tenantID, true)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestDefaults(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		want := settings.Settings{
			Branding: settings.Branding{
				ProductName:  settings.Value[string]{Value: "Nodus", Source: settings.SourceDefault},
				LogoURL:      settings.Value[string]{Value: "", Source: settings.SourceDefault},
				PrimaryColor: settings.Value[string]{Value: "#2563eb", Source: settings.SourceDefault},
			},
			Email: &settings.Email{
				SMTPHost:    settings.Value[string]{Source: settings.SourceDefault},
				SMTPPort:    settings.Value[int]{Value: 587, Source: settings.SourceDefault},
				SMTPUser:    settings.Value[string]{Source: settings.SourceDefault},
				From:        settings.Value[string]{Source: settings.SourceDefault},
				Security:    settings.Value[string]{Value: "starttls", Source: settings.SourceDefault},
				PasswordSet: settings.Value[bool]{Value: false, Source: settings.SourceDefault},
			},
		}
		for _, tc := range []struct {
			ctx    context.Context
			tenant string
		}{{platform, ""}, {f.inA, f.a}, {f.inA, ""}} {
			got := f.effective(t, tc.ctx, tc.tenant)
			want.TenantID = tc.tenant
			if got.Branding != want.Branding || *got.Email != *want.Email || got.TenantID != tc.tenant {
				t.Errorf("defaults for %q:\n got %+v %+v\nwant %+v %+v", tc.tenant, got, got.Email, want, want.Email)
			}
		}
		noEmail, err := f.svc.Effective(f.inA, f.a, false)
		if err != nil || noEmail.Email != nil || noEmail.Branding != want.Branding {
			t.Errorf("without email: %+v, %v", noEmail, err)
		}
		b, _ := json.Marshal(noEmail)
		if strings.Contains(string(b), "email") || strings.Contains(string(b), "smtp") {
			t.Errorf("branding-only JSON mentions email: %s", b)
		}
		cfg, err := f.svc.EmailConfig(f.inA, f.a)
		if err != nil || cfg != (settings.EmailConfig{Port: 587, Security: "starttls"}) {
			t.Errorf("EmailConfig with nothing set = %v, %v", cfg, err)
		}
	})
}

func TestResolution(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		f.update(t, platform, "", `{"branding": {"product_name": "Acme Cloud", "primary_color": "#FF0000"}, "email": {"smtp_port": 2525}}`)

		a := f.effective(t, f.inA, f.a)
		if a.Branding.ProductName != (settings.Value[string]{Value: "Acme Cloud", Source: settings.SourcePlatform}) ||
			a.Branding.PrimaryColor != (settings.Value[string]{Value: "#ff0000", Source: settings.SourcePlatform}) ||
			a.Branding.LogoURL.Source != settings.SourceDefault ||
			a.Email.SMTPPort != (settings.Value[int]{Value: 2525, Source: settings.SourcePlatform}) {
			t.Fatalf("tenant A inherits: %+v %+v", a.Branding, a.Email)
		}

		a = f.update(t, f.inA, f.a, `{"branding": {"product_name": "Tenant A"}, "email": {"smtp_port": 465}}`)
		if a.Branding.ProductName != (settings.Value[string]{Value: "Tenant A", Source: settings.SourceTenant}) ||
			a.Email.SMTPPort != (settings.Value[int]{Value: 465, Source: settings.SourceTenant}) ||
			a.Branding.PrimaryColor.Source != settings.SourcePlatform {
			t.Fatalf("override: %+v %+v", a.Branding, a.Email)
		}
		// B is untouched by A's override; the platform's own view too.
		if b := f.effective(t, platform, f.b); b.Branding.ProductName.Value != "Acme Cloud" || b.Email.SMTPPort.Value != 2525 {
			t.Errorf("tenant B sees %+v %+v", b.Branding, b.Email)
		}
		if p := f.effective(t, platform, ""); p.Branding.ProductName.Value != "Acme Cloud" || p.Branding.ProductName.Source != settings.SourcePlatform {
			t.Errorf("platform view %+v", p.Branding)
		}

		// null removes the override: the platform's value applies again;
		// null on the platform falls back to the default.
		a = f.update(t, f.inA, f.a, `{"branding": {"product_name": null}}`)
		if a.Branding.ProductName != (settings.Value[string]{Value: "Acme Cloud", Source: settings.SourcePlatform}) || a.Email.SMTPPort.Value != 465 {
			t.Errorf("after null: %+v %+v", a.Branding, a.Email)
		}
		f.update(t, platform, "", `{"branding": {"product_name": null}}`)
		if a = f.effective(t, f.inA, f.a); a.Branding.ProductName != (settings.Value[string]{Value: "Nodus", Source: settings.SourceDefault}) {
			t.Errorf("after the platform's null: %+v", a.Branding)
		}
		// Removing what is not set is no error.
		f.update(t, f.inA, f.a, `{"email": {"from": null}}`)
	})
}

func TestValidation(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		valid := []struct{ body, key, want string }{
			{`{"branding": {"logo_url": "/static/logo.svg"}}`, "logo_url", "/static/logo.svg"},
			{`{"branding": {"logo_url": "https://cdn.example.com/logo.png?v=2"}}`, "logo_url", "https://cdn.example.com/logo.png?v=2"},
			{`{"branding": {"logo_url": ""}}`, "logo_url", ""},
			{`{"branding": {"primary_color": "#ABCdef"}}`, "primary_color", "#abcdef"},
			{`{"branding": {"product_name": "` + strings.Repeat("é", 100) + `"}}`, "product_name", strings.Repeat("é", 100)},
			{`{"email": {"smtp_host": "SMTP.Example.com"}}`, "smtp_host", "smtp.example.com"},
			{`{"email": {"smtp_host": "10.0.0.25"}}`, "smtp_host", "10.0.0.25"},
			{`{"email": {"smtp_host": "2001:DB8::1"}}`, "smtp_host", "2001:db8::1"},
			{`{"email": {"from": "Nodus <noreply@example.com>"}}`, "from", "Nodus <noreply@example.com>"},
			{`{"email": {"from": "noreply@example.com"}}`, "from", "noreply@example.com"},
			{`{"email": {"security": "tls"}}`, "security", "tls"},
			{`{"email": {"smtp_user": "mailer@example.com"}}`, "smtp_user", "mailer@example.com"},
		}
		for _, tt := range valid {
			s := f.update(t, f.inA, f.a, tt.body)
			got := map[string]string{"logo_url": s.Branding.LogoURL.Value, "primary_color": s.Branding.PrimaryColor.Value,
				"product_name": s.Branding.ProductName.Value, "smtp_host": s.Email.SMTPHost.Value, "from": s.Email.From.Value,
				"security": s.Email.Security.Value, "smtp_user": s.Email.SMTPUser.Value}[tt.key]
			if got != tt.want {
				t.Errorf("%s: %s = %q, want %q", tt.body, tt.key, got, tt.want)
			}
		}
		if s := f.update(t, f.inA, f.a, `{"email": {"smtp_port": 65535}}`); s.Email.SMTPPort.Value != 65535 {
			t.Errorf("port 65535: %v", s.Email.SMTPPort)
		}

		before := f.effective(t, f.inA, f.a)
		invalid := []struct {
			body string
			keys []string
		}{
			{`{"branding": {"product_name": ""}}`, []string{"branding.product_name"}},
			{`{"branding": {"product_name": "   "}}`, []string{"branding.product_name"}},
			{`{"branding": {"product_name": "` + strings.Repeat("x", 101) + `"}}`, []string{"branding.product_name"}},
			{`{"branding": {"product_name": "a\nb"}}`, []string{"branding.product_name"}},
			{`{"branding": {"product_name": 7}}`, []string{"branding.product_name"}},
			{`{"branding": {"logo_url": "http://example.com/logo.png"}}`, []string{"branding.logo_url"}},
			{`{"branding": {"logo_url": "javascript:alert(1)"}}`, []string{"branding.logo_url"}},
			{`{"branding": {"logo_url": "//evil.example/logo.png"}}`, []string{"branding.logo_url"}},
			{`{"branding": {"logo_url": "/\\evil.example/logo.png"}}`, []string{"branding.logo_url"}},
			{`{"branding": {"logo_url": "https://user:pw@example.com/x.png"}}`, []string{"branding.logo_url"}},
			{`{"branding": {"logo_url": "https:///x.png"}}`, []string{"branding.logo_url"}},
			{`{"branding": {"logo_url": "/logo .png"}}`, []string{"branding.logo_url"}},
			{`{"branding": {"logo_url": "logo.png"}}`, []string{"branding.logo_url"}},
			{`{"branding": {"logo_url": "/` + strings.Repeat("a", 2000) + `"}}`, []string{"branding.logo_url"}},
			{`{"branding": {"primary_color": "red"}}`, []string{"branding.primary_color"}},
			{`{"branding": {"primary_color": "#12345"}}`, []string{"branding.primary_color"}},
			{`{"branding": {"primary_color": "#12345g"}}`, []string{"branding.primary_color"}},
			{`{"email": {"smtp_host": "smtp example.com"}}`, []string{"email.smtp_host"}},
			{`{"email": {"smtp_host": "smtp.example.com/x"}}`, []string{"email.smtp_host"}},
			{`{"email": {"smtp_host": "-bad.example.com"}}`, []string{"email.smtp_host"}},
			{`{"email": {"smtp_host": "a..b"}}`, []string{"email.smtp_host"}},
			{`{"email": {"smtp_host": "fe80::1%eth0"}}`, []string{"email.smtp_host"}},
			{`{"email": {"smtp_host": "` + strings.Repeat("a.", 127) + `"}}`, []string{"email.smtp_host"}},
			{`{"email": {"smtp_port": 0}}`, []string{"email.smtp_port"}},
			{`{"email": {"smtp_port": 65536}}`, []string{"email.smtp_port"}},
			{`{"email": {"smtp_port": 25.5}}`, []string{"email.smtp_port"}},
			{`{"email": {"smtp_port": "587"}}`, []string{"email.smtp_port"}},
			{`{"email": {"smtp_user": "` + strings.Repeat("u", 255) + `"}}`, []string{"email.smtp_user"}},
			{`{"email": {"from": "not an address"}}`, []string{"email.from"}},
			{`{"email": {"from": "a@example.com, b@example.com"}}`, []string{"email.from"}},
			{`{"email": {"from": "a@example.com\r\nBcc: victim@example.com"}}`, []string{"email.from"}},
			{`{"email": {"security": "ssl"}}`, []string{"email.security"}},
			{`{"email": {"smtp_password": ""}}`, []string{"email.smtp_password"}},
			{`{"email": {"smtp_password": 1234}}`, []string{"email.smtp_password"}},
			{`{"email": {"smtp_password_set": true}}`, []string{"email.smtp_password_set"}},
			{`{"branding": {"favicon": "/f.ico"}}`, []string{"branding.favicon"}},
			{`{"theme": {}}`, []string{"theme"}},
			{`{"branding": null}`, []string{"branding"}},
			{`{"branding": "Acme"}`, []string{"branding"}},
			// Every problem at once, and the valid field beside them is not written.
			{`{"branding": {"product_name": "", "primary_color": "blue", "logo_url": "/ok.png"}, "email": {"smtp_port": -1, "nope": 1}, "extra": 1}`,
				[]string{"branding.product_name", "branding.primary_color", "email.smtp_port", "email.nope", "extra"}},
		}
		n := len(f.log.entries)
		for _, tt := range invalid {
			_, err := f.svc.Update(f.inA, f.a, patch(t, tt.body), f.actor)
			fields := nodus.ErrorFields(err)
			if nodus.ErrorCode(err) != nodus.EINVALID || len(fields) != len(tt.keys) {
				t.Errorf("%.80s: %v %v, want invalid on %v", tt.body, err, fields, tt.keys)
				continue
			}
			for _, k := range tt.keys {
				if fields[k] == "" {
					t.Errorf("%.80s: fields %v lack %s", tt.body, fields, k)
				}
			}
		}
		if _, err := f.svc.Update(f.inA, f.a, nil, f.actor); nodus.ErrorCode(err) != nodus.EINVALID {
			t.Errorf("a null body: %v, want invalid", err)
		}
		after := f.effective(t, f.inA, f.a)
		if b1, b2 := mustJSON(t, before), mustJSON(t, after); b1 != b2 {
			t.Errorf("invalid updates changed settings:\n%s\n%s", b1, b2)
		}
		if len(f.log.entries) != n {
			t.Errorf("invalid updates were audited")
		}
	})
}

func TestPassword(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		const secret = "s3cret-SMTP-pa55word"
		s := f.update(t, f.inA, f.a, `{"email": {"smtp_host": "smtp.a.example", "smtp_user": "a", "smtp_password": "`+secret+`"}}`)
		if s.Email.PasswordSet != (settings.Value[bool]{Value: true, Source: settings.SourceTenant}) {
			t.Fatalf("after setting: %+v", s.Email.PasswordSet)
		}
		if b, _ := json.Marshal(s); strings.Contains(string(b), secret) {
			t.Fatalf("the answer holds the password: %s", b)
		}
		rows, err := db.ListSettings(f.inA, f.a)
		if err != nil {
			t.Fatal(err)
		}
		stored := ""
		for _, r := range rows {
			if strings.Contains(r.Value, secret) || strings.Contains(r.Value, "s3cret") {
				t.Fatalf("the row %s holds the plaintext: %s", r.Key, r.Value)
			}
			if r.Key == settings.KeySMTPPassword {
				stored = r.Value
			}
		}
		if stored == "" {
			t.Fatal("no password row stored")
		}
		cfg, err := f.svc.EmailConfig(f.inA, f.a)
		if err != nil || cfg.Password != secret || cfg.Host != "smtp.a.example" || cfg.User != "a" {
			t.Fatalf("EmailConfig = %v, %v", cfg, err)
		}

		e := f.log.last(t)
		changes, _ := audit.MarshalChanges(e.Changes)
		if strings.Contains(string(changes), "s3cret") || e.Changes[settings.KeySMTPPassword] != (audit.Change{After: "(set)"}) {
			t.Errorf("audited changes %s: want the password only as (set)", changes)
		}
		f.update(t, f.inA, f.a, `{"email": {"smtp_password": "another one"}}`)
		if c := f.log.last(t).Changes[settings.KeySMTPPassword]; c != (audit.Change{Before: "(set)", After: "(set)"}) {
			t.Errorf("replacing the password audited as %+v", c)
		}
		s = f.update(t, f.inA, f.a, `{"email": {"smtp_password": null}}`)
		if c := f.log.last(t).Changes[settings.KeySMTPPassword]; c != (audit.Change{Before: "(set)", After: "(cleared)"}) {
			t.Errorf("clearing the password audited as %+v", c)
		}
		if s.Email.PasswordSet.Value {
			t.Error("the password is still set after null")
		}
		if cfg, err := f.svc.EmailConfig(f.inA, f.a); err != nil || cfg.Password != "" {
			t.Errorf("EmailConfig after clearing: %v, %v", cfg, err)
		}

		// The sealed bytes copied into tenant B's row do not open there.
		if _, err := db.UpdateSettings(platform, f.b, []settings.Setting{{ID: nodus.NewID(), TenantID: f.b,
			Key: settings.KeySMTPPassword, Value: stored, UpdatedAt: nodus.SystemClock{}.Now()}}, nil); err != nil {
			t.Fatal(err)
		}
		if cfg, err := f.svc.EmailConfig(platform, f.b); err == nil || cfg.Password != "" {
			t.Errorf("A's sealed password in B's row: %v, %v; want an error and no password", cfg, err)
		}
		// Another master key opens nothing.
		f.update(t, f.inA, f.a, `{"email": {"smtp_password": "`+secret+`"}}`)
		_, otherBox := newSealer(t)
		other := settings.NewService(db, otherBox, f.log, nil)
		if cfg, err := other.EmailConfig(f.inA, f.a); nodus.ErrorCode(err) != nodus.EUNAVAILABLE || cfg.Password != "" || strings.Contains(err.Error(), secret) {
			t.Errorf("with another master key: %v, %v; want unavailable (sealed) and no password", cfg, err)
		}
	})
}

// TestPasswordInheritance: a tenant inherits the platform's password only
// while it sends it where the platform does.
func TestPasswordInheritance(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		f.update(t, platform, "", `{"email": {"smtp_host": "smtp.platform.example", "smtp_user": "platform", "smtp_password": "platform-secret"}}`)

		a := f.update(t, f.inA, f.a, `{"email": {"from": "A <a@a.example>"}}`)
		if a.Email.PasswordSet != (settings.Value[bool]{Value: true, Source: settings.SourcePlatform}) {
			t.Errorf("inherited password: %+v", a.Email.PasswordSet)
		}
		cfg, err := f.svc.EmailConfig(f.inA, f.a)
		if err != nil || cfg.Password != "platform-secret" || cfg.Host != "smtp.platform.example" || cfg.From != "A <a@a.example>" {
			t.Errorf("EmailConfig inheriting = %v, %v", cfg, err)
		}

		for _, override := range []string{`"smtp_host": "smtp.evil.example"`, `"smtp_port": 25`, `"smtp_user": "other"`, `"security": "none"`} {
			a = f.update(t, f.inA, f.a, `{"email": {`+override+`}}`)
			if a.Email.PasswordSet.Value {
				t.Errorf("after overriding %s the platform password still applies", override)
			}
			if cfg, err := f.svc.EmailConfig(f.inA, f.a); err != nil || cfg.Password != "" {
				t.Errorf("after overriding %s EmailConfig = %v, %v; want no password", override, cfg, err)
			}
			name, _, _ := strings.Cut(override, ":")
			f.update(t, f.inA, f.a, `{"email": {`+name+`: null}}`)
		}
		if cfg, _ := f.svc.EmailConfig(f.inA, f.a); cfg.Password != "platform-secret" {
			t.Error("after removing the overrides the platform password does not apply again")
		}
		// The tenant's own password goes with its own server.
		a = f.update(t, f.inA, f.a, `{"email": {"smtp_host": "smtp.a.example", "smtp_password": "a-secret"}}`)
		if cfg, _ := f.svc.EmailConfig(f.inA, f.a); cfg.Password != "a-secret" || cfg.Host != "smtp.a.example" ||
			a.Email.PasswordSet.Source != settings.SourceTenant {
			t.Errorf("own password: %v %+v", cfg, a.Email.PasswordSet)
		}
	})
}

// TestPasswordFollowsServer: whoever changes where an owner's password is
// sent must give the password again (or remove it).
func TestPasswordFollowsServer(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		f.update(t, platform, "", `{"email": {"smtp_host": "smtp.platform.example", "smtp_password": "platform-secret"}}`)
		refused := func(ctx context.Context, tenantID, body string) {
			t.Helper()
			before := mustJSON(t, f.effective(t, ctx, tenantID))
			_, err := f.svc.Update(ctx, tenantID, patch(t, body), f.actor)
			if nodus.ErrorCode(err) != nodus.EINVALID || nodus.ErrorFields(err)[settings.KeySMTPPassword] == "" {
				t.Errorf("%s: %v, want invalid on email.smtp_password", body, err)
			}
			if after := mustJSON(t, f.effective(t, ctx, tenantID)); after != before {
				t.Errorf("%s: refused, yet settings changed:\n%s\n%s", body, before, after)
			}
		}
		for _, body := range []string{`{"email": {"smtp_host": "smtp.evil.example"}}`, `{"email": {"smtp_port": 25}}`,
			`{"email": {"smtp_user": "other"}}`, `{"email": {"security": "none"}}`, `{"email": {"smtp_host": null}}`} {
			refused(platform, "", body)
		}
		// Unchanged values, other fields, and the password given again pass.
		f.update(t, platform, "", `{"email": {"smtp_host": "smtp.platform.example", "from": "p@platform.example"}}`)
		f.update(t, platform, "", `{"email": {"smtp_host": "smtp2.platform.example", "smtp_password": "platform-secret"}}`)
		if cfg, _ := f.svc.EmailConfig(platform, ""); cfg.Host != "smtp2.platform.example" || cfg.Password != "platform-secret" {
			t.Errorf("after a move with the password: %v", cfg)
		}

		// A tenant with its own password: the same rule at its level,
		// including removing an override, which moves it to the platform's host.
		f.update(t, f.inA, f.a, `{"email": {"smtp_host": "smtp.a.example", "smtp_password": "a-secret"}}`)
		refused(f.inA, f.a, `{"email": {"smtp_host": null}}`)
		refused(f.inA, f.a, `{"email": {"security": "none"}}`)
		f.update(t, f.inA, f.a, `{"email": {"smtp_host": null, "smtp_password": null}}`)
		if cfg, _ := f.svc.EmailConfig(f.inA, f.a); cfg.Host != "smtp2.platform.example" || cfg.Password != "platform-secret" {
			t.Errorf("back to the platform's server and password: %v", cfg)
		}
	})
}

func TestUpdateAudit(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		f.update(t, platform, "", `{"branding": {"product_name": "P"}}`)
		e := f.log.last(t)
		if e.Action != "setting.update" || e.TargetType != "settings" || e.TargetID != "platform" || e.TenantID != "" ||
			e.ActorID != f.actor.ActorID || e.Address != "192.0.2.1" ||
			len(e.Changes) != 1 || e.Changes[settings.KeyProductName] != (audit.Change{After: "P"}) {
			t.Errorf("platform update audited as %+v", e)
		}

		f.update(t, f.inA, f.a, `{"branding": {"product_name": "A", "primary_color": "#2563eb"}, "email": {"smtp_port": 587}}`)
		f.update(t, f.inA, f.a, `{"branding": {"product_name": "A2", "primary_color": "#2563EB"}, "email": {"smtp_port": null}}`)
		e = f.log.last(t)
		want := map[string]audit.Change{
			settings.KeyProductName: {Before: "A", After: "A2"},
			settings.KeySMTPPort:    {Before: 587},
		}
		if e.TargetID != f.a || e.TenantID != f.a || fmt.Sprint(e.Changes) != fmt.Sprint(want) {
			t.Errorf("tenant update audited as %+v, want changes %v (the unchanged colour left out)", e, want)
		}
		// Updates that change nothing are still recorded.
		n := len(f.log.entries)
		f.update(t, f.inA, f.a, `{}`)
		if len(f.log.entries) != n+1 || len(f.log.last(t).Changes) != 0 {
			t.Errorf("empty update: %d entries, last %+v", len(f.log.entries)-n, f.log.last(t))
		}
	})
}

func TestServiceTenancy(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		f.update(t, platform, f.b, `{"branding": {"product_name": "B"}, "email": {"smtp_password": "b-secret"}}`)
		n := len(f.log.entries)

		if _, err := f.svc.Effective(f.inA, f.b, true); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("A reading B: %v, want not_found", err)
		}
		if _, err := f.svc.EmailConfig(f.inA, f.b); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("A's EmailConfig of B: %v, want not_found", err)
		}
		if _, err := f.svc.Update(f.inA, f.b, patch(t, `{"branding": {"product_name": "pwned"}}`), f.actor); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("A writing B: %v, want not_found", err)
		}
		if _, err := f.svc.Update(f.inA, "", patch(t, `{"branding": {"product_name": "pwned"}}`), f.actor); nodus.ErrorCode(err) != nodus.EFORBIDDEN {
			t.Errorf("A writing the platform: %v, want forbidden", err)
		}
		if _, err := f.svc.Update(platform, nodus.NewID(), patch(t, `{"branding": {"product_name": "x"}}`), f.actor); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("unknown tenant: %v, want not_found", err)
		}
		if _, err := f.svc.Effective(ctx, f.a, true); !errors.Is(err, nodus.ErrNoScope) {
			t.Errorf("no scope: %v, want the no-scope error", err)
		}
		if b := f.effective(t, platform, f.b); b.Branding.ProductName.Value != "B" || !b.Email.PasswordSet.Value {
			t.Errorf("B changed: %+v", b)
		}
		if len(f.log.entries) != n {
			t.Error("refused updates were audited")
		}
	})
}

func TestEmailConfigNeverPrintsThePassword(t *testing.T) {
	c := settings.EmailConfig{Host: "smtp.example.com", Port: 587, User: "u", Password: "hunter2-secret", From: "a@example.com", Security: "tls"}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("send", "email", c)
	b, _ := json.Marshal(c)
	out := buf.String() + string(b) + fmt.Sprintf("%v %+v %#v %s", c, c, c, c)
	if strings.Contains(out, "hunter2") {
		t.Fatalf("the password is printed: %s", out)
	}
	for _, want := range []string{"smtp.example.com", "[redacted]", `"password_set":true`} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q: %s", want, out)
		}
	}
}

// TestResealSecrets: after a master key rotation, ResealSecrets seals
// every SMTP password sealed with the old key again with the new one, so
// the passwords open with the new key alone; SealedKeyIDs follows.
func TestResealSecrets(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		one, two := make([]byte, keyring.KeySize), make([]byte, keyring.KeySize)
		_, _ = rand.Read(one)
		_, _ = rand.Read(two)
		b64 := base64.StdEncoding.EncodeToString
		sealer := func(text string) *keyring.Sealer {
			t.Helper()
			ring, err := keyring.Parse(text, "test")
			if err != nil {
				t.Fatal(err)
			}
			box, err := ring.Sealer("settings")
			if err != nil {
				t.Fatal(err)
			}
			return box
		}
		old := settings.NewService(db, sealer("1:"+b64(one)), f.log, nil)
		for tenant, pw := range map[string]string{f.a: "tenant a", "": "platform"} {
			if _, err := old.Update(platform, tenant, patch(t, `{"email": {"smtp_password": "`+pw+`"}}`), f.actor); err != nil {
				t.Fatal(err)
			}
		}
		if ids, err := settings.SealedKeyIDs(platform, db); err != nil || ids[1] != 2 || len(ids) != 1 {
			t.Fatalf("sealed key ids before = %v, %v", ids, err)
		}
		both := sealer("1:" + b64(one) + ",*2:" + b64(two))
		rotated := settings.NewService(db, both, f.log, nil)
		if _, err := rotated.ResealSecrets(f.inA, 2); nodus.ErrorCode(err) != nodus.EFORBIDDEN && nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("a tenant's scope resealed every tenant's: %v", err)
		}
		if n, err := rotated.ResealSecrets(platform, both.CurrentID()); err != nil || n != 2 {
			t.Fatalf("resealed %d, %v; want 2", n, err)
		}
		if n, err := rotated.ResealSecrets(platform, both.CurrentID()); err != nil || n != 0 {
			t.Fatalf("again: resealed %d, %v; want 0", n, err)
		}
		if ids, err := settings.SealedKeyIDs(platform, db); err != nil || ids[2] != 2 || len(ids) != 1 {
			t.Fatalf("sealed key ids after = %v, %v", ids, err)
		}
		onlyTwo := settings.NewService(db, sealer("2:"+b64(two)), f.log, nil)
		for tenant, want := range map[string]string{f.a: "tenant a", "": "platform"} {
			if c, err := onlyTwo.EmailConfig(platform, tenant); err != nil || c.Password != want {
				t.Errorf("%q with key 2 alone: %q, %v; want %q", tenant, c.Password, err, want)
			}
		}
	})
}
