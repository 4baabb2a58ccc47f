// Package notifywire plugs the other modules into notify and notify into
// them, for cmd/nodus: the store bound to the job queue (so an event and
// its email and webhook jobs commit together), identity as the directory
// of recipients, the tenant's email settings and the mail sender as the
// mailer, and the producers' ports (knowledge's documents, the gateway's
// budgets, the vault's rotations) as notify events.
package notifywire

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strconv"

	"github.com/nodus-os/nodus/internal/gateway"
	"github.com/nodus-os/nodus/internal/identity"
	"github.com/nodus-os/nodus/internal/jobs"
	"github.com/nodus-os/nodus/internal/knowledge"
	"github.com/nodus-os/nodus/internal/mail"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/notify"
	"github.com/nodus-os/nodus/internal/settings"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/vault"
)

// Store is the main database with PublishEvent queuing the event's tasks
// as jobs in its transaction.
type Store struct {
	*store.DB
	// Queue returns the job queue; a function because serve builds the
	// queue after the services whose workers it runs.
	Queue func() *jobs.Queue
}

var _ notify.Store = Store{}

// PublishEvent implements notify.Store.
func (s Store) PublishEvent(ctx context.Context, ev notify.Event, notes []notify.Notification, tasks []notify.Task) (bool, error) {
	return s.DB.PublishNotifyEvent(ctx, ev, notes, tasks, func(ctx context.Context, tx *store.Tx, t notify.Task) error {
		q := s.Queue()
		if q == nil {
			return fmt.Errorf("notifywire: the job queue is not built yet")
		}
		var err error
		if t.WebhookID != "" {
			_, err = q.InsertTx(ctx, tx, jobs.WebhookArgs{TenantID: t.TenantID, WebhookID: t.WebhookID, EventID: t.EventID}, nil)
		} else {
			_, err = q.InsertTx(ctx, tx, jobs.NotifyEmailArgs{TenantID: t.TenantID, NotificationID: t.NotificationID}, nil)
		}
		return err
	})
}

// Directory resolves recipients through identity: only active users of
// the tenant, with their email.
type Directory struct{ Identity *identity.Service }

// Recipients implements notify.Directory.
func (d Directory) Recipients(ctx context.Context, tenantID string, to notify.Audience) ([]notify.Recipient, error) {
	ctx = nodus.WithTenant(ctx, tenantID)
	var out []notify.Recipient
	add := func(u identity.User) {
		if u.IsActive && u.TenantID == tenantID && !slices.ContainsFunc(out, func(r notify.Recipient) bool { return r.ID == u.ID }) {
			out = append(out, notify.Recipient{ID: u.ID, Email: u.Email})
		}
	}
	for _, id := range to.UserIDs {
		u, err := d.Identity.User(ctx, id)
		if nodus.ErrorCode(err) == nodus.ENOTFOUND {
			continue // deleted since: nobody to tell
		}
		if err != nil {
			return nil, err
		}
		add(*u)
	}
	if len(to.Roles) == 0 {
		return out, nil
	}
	for cursor := ""; ; {
		users, next, err := d.Identity.ListUsers(ctx, 500, cursor)
		if err != nil {
			return nil, err
		}
		for _, u := range users {
			if slices.Contains(to.Roles, string(u.Role)) {
				add(u)
			}
		}
		if next == "" {
			return out, nil
		}
		cursor = next
	}
}

// Mailer sends with the tenant's effective email settings over the mail
// sender (which dials through egress).
type Mailer struct {
	Settings *settings.Service
	Sender   *mail.Sender
}

// SendMail implements notify.Mailer. A tenant without an SMTP host gets
// no email, permanently: a retry would not configure one.
func (m Mailer) SendMail(ctx context.Context, tenantID, to, subject, body string) error {
	cfg, err := m.Settings.EmailConfig(nodus.WithTenant(ctx, tenantID), tenantID)
	if err != nil {
		return err
	}
	if cfg.Host == "" {
		return fmt.Errorf("%w: the tenant has no email settings", notify.ErrPermanent)
	}
	return m.Sender.Send(ctx, tenantID, cfg.MailConfig(), mail.Message{To: to, Subject: subject, Body: body})
}

// notifyOrLog publishes, logging a failure: a producer's own work (an
// ingestion, a model call, a secret write) has succeeded and must not
// fail because its notification could not be written.
func notifyOrLog(ctx context.Context, n *notify.Service, log *slog.Logger, ev notify.Event, to notify.Audience) {
	if err := n.Notify(ctx, ev, to); err != nil {
		log.WarnContext(ctx, "notification not published", "tenant", ev.TenantID, "kind", ev.Kind, "err", err)
	}
}

// Documents is knowledge.Config.Notify: a document's uploader hears that
// its ingestion completed or failed.
func Documents(n *notify.Service, log *slog.Logger) func(ctx context.Context, d knowledge.Document) {
	return func(ctx context.Context, d knowledge.Document) {
		if d.UploadedBy == "" {
			return
		}
		ev := notify.Event{TenantID: d.TenantID, Link: "/knowledge-bases/" + url.PathEscape(d.KnowledgeBaseID),
			Data: map[string]any{"document_id": d.ID, "knowledge_base_id": d.KnowledgeBaseID, "filename": d.OriginalFilename,
				"status": d.Status}}
		switch d.Status {
		case knowledge.StatusCompleted:
			ev.Kind, ev.Title = notify.KindDocumentProcessed, "Document processed: "+d.OriginalFilename
			ev.Body = "It is indexed and can be searched."
			ev.Data["chunks"] = d.ChunkCount
			if d.ProcessedAt != nil {
				// The same completion reported twice is one event.
				ev.DedupeKey = "document.processed:" + d.ID + ":" + d.ProcessedAt.Format("20060102T150405.000000")
			}
		case knowledge.StatusFailed:
			ev.Kind, ev.Title = notify.KindDocumentFailed, "Document failed: "+d.OriginalFilename
			ev.Body = "Processing stopped at " + d.Stage + ": " + d.Error
			ev.Data["stage"], ev.Data["error"] = d.Stage, d.Error
		default:
			return
		}
		notifyOrLog(ctx, n, log, ev, notify.Audience{UserIDs: []string{d.UploadedBy}})
	}
}

// BudgetAlerts is gateway.Config.BudgetAlerts: the tenant's org_admins
// hear of a budget at 80% or exhausted, once per budget, period and
// threshold (the dedupe key), however many replicas saw it cross.
func BudgetAlerts(n *notify.Service, log *slog.Logger) func(ctx context.Context, a gateway.BudgetAlert) {
	return func(ctx context.Context, a gateway.BudgetAlert) {
		ev := notify.Event{TenantID: a.TenantID, Link: "/gateway/budgets",
			DedupeKey: "budget:" + a.BudgetID + ":" + strconv.FormatInt(a.PeriodEnd.Unix(), 10) + ":" + strconv.Itoa(a.Percent),
			Data: map[string]any{"budget_id": a.BudgetID, "scope": a.Scope, "subject_id": a.SubjectID, "percent": a.Percent,
				"spend_micros": a.SpendMicros, "max_micros": a.MaxMicros}}
		if !a.PeriodEnd.IsZero() {
			ev.Data["period_end"] = a.PeriodEnd
		}
		what := a.Scope + " budget"
		if a.SubjectID != "" {
			what += " of " + a.SubjectID
		}
		spent := fmt.Sprintf("$%.2f of $%.2f spent", float64(a.SpendMicros)/1e6, float64(a.MaxMicros)/1e6)
		if a.Percent >= 100 {
			ev.Kind, ev.Title = notify.KindBudgetExhausted, "The "+what+" is exhausted"
			ev.Body = spent + ". Calls it covers are refused until it resets or is raised."
		} else {
			ev.Kind, ev.Title = notify.KindBudgetWarning, fmt.Sprintf("The %s is at %d%%", what, a.Percent)
			ev.Body = spent + "."
		}
		notifyOrLog(ctx, n, log, ev, notify.Audience{Roles: []string{notify.RoleOrgAdmin}})
	}
}

// SecretRotated is vault.Config.SecretRotated: the tenant's org_admins
// hear that a secret has a new version (its location, never its value).
func SecretRotated(n *notify.Service, log *slog.Logger) func(ctx context.Context, tenantID string, at vault.Location, version int, by string) {
	return func(ctx context.Context, tenantID string, at vault.Location, version int, by string) {
		ev := notify.Event{TenantID: tenantID, Kind: notify.KindSecretRotated, Link: "/vault",
			Title: "Secret rotated: " + at.String(), Body: "Version " + strconv.Itoa(version) + " was written.",
			Data: map[string]any{"environment": at.Environment, "path": at.Path, "key": at.Key, "version": version, "by": by}}
		notifyOrLog(context.WithoutCancel(ctx), n, log, ev, notify.Audience{Roles: []string{notify.RoleOrgAdmin}})
	}
}
