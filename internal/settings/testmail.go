package settings

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nodus-os/nodus/internal/audit"
	"github.com/nodus-os/nodus/internal/mail"
	"github.com/nodus-os/nodus/internal/nodus"
)

// Mailer sends one message with a tenant's SMTP settings, connecting as
// that tenant; *mail.Sender over egress is one.
type Mailer interface {
	Send(ctx context.Context, tenantID string, cfg mail.Config, msg mail.Message) error
}

// Test emails per owner (a tenant, or the platform) per window: enough to
// fix a setting and try again, too few to make Nodus a spam relay.
const (
	testEmailLimit  = 5
	testEmailWindow = time.Minute
)

// UseMailer lets the service send mail. It is called once while Nodus is
// wired together, before any request: the sender depends on egress, which
// is built after settings.
func (s *Service) UseMailer(m Mailer) {
	s.mailer = m
	s.tests = &windowLimiter{limit: testEmailLimit, window: testEmailWindow, seen: map[string][]time.Time{}}
}

// MailConfig turns an owner's EmailConfig into what the sender takes.
func (c EmailConfig) MailConfig() mail.Config {
	return mail.Config{Host: c.Host, Port: c.Port, User: c.User, Password: c.Password, From: c.From, Security: c.Security}
}

// SendTestEmail sends a short message to to with the effective email
// settings of tenantID (the platform's for ""), so an administrator sees
// that they work. It is limited to a few per minute per owner and audited
// as settings.email_test, sent or not; the error of a failed send is a
// *nodus.Error whose cause is the *mail.Error, its message safe to show.
func (s *Service) SendTestEmail(ctx context.Context, actor audit.Entry, tenantID, to string) error {
	if s.mailer == nil {
		return nodus.Errorf(nodus.EUNAVAILABLE, "sending email is not available")
	}
	rcpt, err := mail.ParseAddress(to)
	if err != nil {
		return &nodus.Error{Code: nodus.EINVALID, Message: "invalid test email", Fields: map[string]string{"to": "must be one email address"}, Err: err}
	}
	// Reading the settings first checks the scope: a tenant the caller
	// cannot see is not found, and does not spend its limit.
	cfg, err := s.EmailConfig(ctx, tenantID)
	if err != nil {
		return err
	}
	if wait := s.tests.take(tenantID, s.clock.Now()); wait > 0 {
		return &nodus.Error{Code: nodus.ERATELIMIT, RetryAfter: wait,
			Message: fmt.Sprintf("at most %d test emails a minute; try again in a moment", testEmailLimit)}
	}
	product := "Nodus"
	if eff, err := s.Effective(ctx, tenantID, false); err == nil {
		product = eff.Branding.ProductName.Value
	}
	sendErr := s.mailer.Send(ctx, tenantID, cfg.MailConfig(), mail.Message{
		To:      rcpt.String(),
		Subject: product + " test email",
		Body: "This is a test email from " + product + ".\n\n" +
			"It was sent with the email settings of " + owner(tenantID) + ", at the request of an administrator. " +
			"If you received it, those settings work.\n",
	})
	result := "sent"
	if sendErr != nil {
		result = "failed"
		var me *mail.Error
		if errors.As(sendErr, &me) {
			result = "failed: " + string(me.Kind)
		}
	}
	target := tenantID
	if target == "" {
		target = "platform"
	}
	changes := map[string]audit.Change{"to": {After: rcpt.Address}, "host": {After: cfg.Host}, "result": {After: result}}
	// A send that happened is recorded even when the request was
	// cancelled meanwhile.
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := s.audit.Record(actx, actor.About(tenantID, "settings.email_test", "settings", target, changes)); err != nil {
		return err
	}
	if sendErr != nil {
		var me *mail.Error
		if errors.As(sendErr, &me) {
			return nodus.WrapError(me, me.Code(), me.Message)
		}
		return fmt.Errorf("settings: send test email: %w", sendErr)
	}
	return nil
}

func owner(tenantID string) string {
	if tenantID == "" {
		return "the platform"
	}
	return "your organisation"
}

// windowLimiter allows limit events per key in any window: a sliding log,
// small because the limit is. It is per process, which is enough for a
// limit meant to stop abuse rather than to meter.
type windowLimiter struct {
	limit  int
	window time.Duration
	mu     sync.Mutex
	seen   map[string][]time.Time
}

// take records an event for key at now, or returns how long until one is
// allowed.
func (l *windowLimiter) take(key string, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	kept := l.seen[key][:0]
	for _, t := range l.seen[key] {
		if now.Sub(t) < l.window {
			kept = append(kept, t)
		}
	}
	if len(kept) >= l.limit {
		l.seen[key] = kept
		return kept[0].Add(l.window).Sub(now)
	}
	l.seen[key] = append(kept, now)
	// Forget keys with nothing recent, so the map does not grow with
	// every tenant that ever sent one.
	for k, ts := range l.seen {
		if len(ts) > 0 && now.Sub(ts[len(ts)-1]) >= l.window {
			delete(l.seen, k)
		}
	}
	return 0
}
