package settings_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/mail"
	"github.com/nodus-os/nodus/internal/mail/mailtest"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/settings"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
)

const smtpPassword = "canary-settings-smtp-password"

type stepClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *stepClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *stepClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// mailWorld is the settings fixture with a test SMTP server configured as
// the platform's mail server, a service that sends through it, and a
// count of the dials it makes.
type mailWorld struct {
	*fixture
	srv   *mailtest.Server
	svc   *settings.Service
	clock *stepClock
	dials sync.Map // tenant id -> count
}

func newMailWorld(t *testing.T, db *store.DB) *mailWorld {
	t.Helper()
	f := setup(t, db)
	srv, err := mailtest.Start(mailtest.Options{User: "mailer", Password: smtpPassword})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	w := &mailWorld{fixture: f, srv: srv, clock: &stepClock{t: time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)}}
	// The same sealer as the fixture's service, so both read one store.
	box, err := f.ring.Sealer("settings")
	if err != nil {
		t.Fatal(err)
	}
	w.svc = settings.NewService(db, box, f.log, w.clock)
	sender, err := mail.NewSender(mail.Options{RootCAs: srv.Roots, Timeout: 5 * time.Second,
		// Straight to the server: egress is tried end to end in cmd/nodus.
		Dial: func(ctx context.Context, tenantID, network, address string) (net.Conn, error) {
			n, _ := w.dials.LoadOrStore(tenantID, new(int))
			*n.(*int)++
			var d net.Dialer
			return d.DialContext(ctx, network, address)
		}})
	if err != nil {
		t.Fatal(err)
	}
	w.svc.UseMailer(sender)
	f.update(t, platform, "", fmt.Sprintf(`{"email": {"smtp_host": "127.0.0.1", "smtp_port": %d, "smtp_user": "mailer",
		"smtp_password": %q, "from": "Nodus <noreply@nodus.example>", "security": "starttls"}}`, srv.Port, smtpPassword))
	return w
}

func (w *mailWorld) dialsOf(tenantID string) int {
	n, ok := w.dials.Load(tenantID)
	if !ok {
		return 0
	}
	return *n.(*int)
}

func TestSendTestEmail(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		w := newMailWorld(t, db)
		w.update(t, w.inA, w.a, `{"branding": {"product_name": "Acme AI"}}`)
		if err := w.svc.SendTestEmail(w.inA, w.actor, w.a, "Zoë <zoe@example.test>"); err != nil {
			t.Fatalf("SendTestEmail: %v", err)
		}
		msgs := w.srv.Messages()
		if len(msgs) != 1 || msgs[0].To[0] != "zoe@example.test" || !msgs[0].TLS || msgs[0].AuthUser != "mailer" {
			t.Fatalf("received %+v", msgs)
		}
		if !strings.Contains(msgs[0].Data, "Subject: Acme AI test email\r\n") || !strings.Contains(msgs[0].Data, "From: \"Nodus\" <noreply@nodus.example>") {
			t.Errorf("message:\n%s", msgs[0].Data)
		}
		e := w.log.last(t)
		if e.Action != "settings.email_test" || e.TenantID != w.a || e.Changes["result"].After != "sent" ||
			e.Changes["to"].After != "zoe@example.test" || e.ActorID != w.actor.ActorID {
			t.Errorf("audit = %+v", e)
		}
		if w.dialsOf(w.a) != 1 {
			t.Errorf("dials as tenant A = %d, want 1", w.dialsOf(w.a))
		}
	})
}

func TestSendTestEmailFailures(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		w := newMailWorld(t, db)

		// B's settings, through A's scope, are not found, and nothing is
		// dialed.
		err := w.svc.SendTestEmail(w.inA, w.actor, w.b, "zoe@example.test")
		if nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("A sending as B = %v, want not_found", err)
		}
		if w.dialsOf(w.b) != 0 {
			t.Errorf("dialed as B")
		}

		for _, to := range []string{"", "zoe@example.test\r\nBcc: v@example.test", "a@example.test, b@example.test", "not an address"} {
			err := w.svc.SendTestEmail(w.inA, w.actor, w.a, to)
			if nodus.ErrorCode(err) != nodus.EINVALID || nodus.ErrorFields(err)["to"] == "" {
				t.Errorf("to %q = %v, want invalid on to", to, err)
			}
		}

		// A's own server with a wrong password: an auth failure that
		// says so, audited, and never showing either password.
		w.update(t, w.inA, w.a, fmt.Sprintf(`{"email": {"smtp_host": "127.0.0.1", "smtp_port": %d, "smtp_user": "mailer",
			"smtp_password": "canary-wrong-password", "from": "a@example.test", "security": "starttls"}}`, w.srv.Port))
		err = w.svc.SendTestEmail(w.inA, w.actor, w.a, "zoe@example.test")
		var me *mail.Error
		if !errors.As(err, &me) || me.Kind != mail.KindAuth || nodus.ErrorCode(err) != nodus.EUNAVAILABLE ||
			!strings.Contains(nodus.ErrorMessage(err), "authentication failed") {
			t.Fatalf("wrong password = %v, want an auth failure", err)
		}
		e := w.log.last(t)
		if e.Action != "settings.email_test" || e.Changes["result"].After != "failed: auth" {
			t.Errorf("audit = %+v", e)
		}
		for _, secret := range []string{smtpPassword, "canary-wrong-password"} {
			if strings.Contains(err.Error(), secret) || strings.Contains(fmt.Sprintf("%+v", w.log.entries), secret) {
				t.Errorf("%q leaked into the error or the audit log", secret)
			}
		}
		if len(w.srv.Messages()) != 0 {
			t.Errorf("delivered with a wrong password")
		}
	})
}

func TestSendTestEmailRateLimit(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		w := newMailWorld(t, db)
		inB := nodus.WithTenant(ctx, w.b)
		for i := range 5 {
			if err := w.svc.SendTestEmail(w.inA, w.actor, w.a, "zoe@example.test"); err != nil {
				t.Fatalf("send %d: %v", i+1, err)
			}
			w.clock.add(time.Second)
		}
		err := w.svc.SendTestEmail(w.inA, w.actor, w.a, "zoe@example.test")
		if nodus.ErrorCode(err) != nodus.ERATELIMIT || nodus.ErrorRetryAfter(err) <= 0 || nodus.ErrorRetryAfter(err) > time.Minute {
			t.Fatalf("sixth send = %v (retry after %v), want rate_limited", err, nodus.ErrorRetryAfter(err))
		}
		if got := w.dialsOf(w.a); got != 5 {
			t.Errorf("dials = %d, want 5: a limited send must not connect", got)
		}
		// Another tenant has its own allowance.
		if err := w.svc.SendTestEmail(inB, w.actor, w.b, "zoe@example.test"); err != nil {
			t.Errorf("B: %v", err)
		}
		// A minute after the first, one more is allowed.
		w.clock.add(56 * time.Second)
		if err := w.svc.SendTestEmail(w.inA, w.actor, w.a, "zoe@example.test"); err != nil {
			t.Errorf("after the window: %v", err)
		}
		if got := len(w.srv.Messages()); got != 7 {
			t.Errorf("delivered %d, want 7", got)
		}
	})
}

func TestSendTestEmailWithoutMailer(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		if err := f.svc.SendTestEmail(f.inA, f.actor, f.a, "zoe@example.test"); nodus.ErrorCode(err) != nodus.EUNAVAILABLE {
			t.Errorf("SendTestEmail without a mailer = %v, want unavailable", err)
		}
	})
}
