package notify

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/nodus-os/nodus/internal/audit"
	"github.com/nodus-os/nodus/internal/keyring"
	"github.com/nodus-os/nodus/internal/nodus"
)

// Store is what the service needs of the main database. Every method
// works within ctx's tenant scope; user-facing ones also name the user.
type Store interface {
	// PublishEvent writes ev, its notifications and its tasks (queued as
	// jobs) in one transaction. It returns false, writing nothing, when
	// an event with ev's DedupeKey was already published.
	PublishEvent(ctx context.Context, ev Event, notes []Notification, tasks []Task) (bool, error)
	FindNotifyEvent(ctx context.Context, id string) (Event, error)
	FindNotification(ctx context.Context, id string) (Notification, error)
	ListNotifications(ctx context.Context, userID string, f ListFilter) ([]Notification, string, error)
	CountUnreadNotifications(ctx context.Context, userID string) (int, error)
	MarkNotificationRead(ctx context.Context, userID, id string, at time.Time) error
	MarkAllNotificationsRead(ctx context.Context, userID string, at time.Time) (int, error)
	// NotificationPrefs returns a user's email opt-ins; a kind absent is
	// not emailed.
	NotificationPrefs(ctx context.Context, userID string) (map[Kind]bool, error)
	SetNotificationPrefs(ctx context.Context, userID string, email map[Kind]bool, at time.Time) error
	// EmailOptIns returns which of userIDs opted in to email for kind.
	EmailOptIns(ctx context.Context, kind Kind, userIDs []string) (map[string]bool, error)
	// CreateWebhook fails with ECONFLICT when the tenant has max webhooks.
	CreateWebhook(ctx context.Context, w Webhook, max int) error
	FindWebhook(ctx context.Context, id string) (Webhook, error)
	ListWebhooks(ctx context.Context) ([]Webhook, error)
	DeleteWebhook(ctx context.Context, id string) error
	// AddWebhookDelivery logs an attempt and keeps the newest keep of the
	// webhook's.
	AddWebhookDelivery(ctx context.Context, d Delivery, keep int) error
	ListWebhookDeliveries(ctx context.Context, webhookID string, limit int) ([]Delivery, error)
	DeleteNotifyTenant(ctx context.Context) error
}

// Recipient is a user who may be notified.
type Recipient struct {
	ID    string
	Email string
}

// Directory resolves an audience to the tenant's active users (identity,
// which lives in another database and module).
type Directory interface {
	Recipients(ctx context.Context, tenantID string, to Audience) ([]Recipient, error)
}

// Mailer sends one plain-text message with the tenant's email settings.
// Its errors say whether a retry could help (see Config.Permanent).
type Mailer interface {
	SendMail(ctx context.Context, tenantID, to, subject, body string) error
}

// Egress gives a tenant's egress-checked HTTP client (*egress.Service).
type Egress interface {
	Client(tenantID string) *http.Client
}

// Sealer encrypts webhook secrets at rest (a *keyring.Sealer).
type Sealer interface {
	Seal(plaintext, ad []byte) ([]byte, error)
	Open(sealed, ad []byte) ([]byte, error)
}

// Auditor records webhook changes.
type Auditor interface {
	Record(ctx context.Context, e audit.Entry) error
}

// Config holds the service's dependencies. Store, Directory and Sealer are
// required; without Mailer nothing is emailed, without Egress webhooks
// fail their deliveries.
type Config struct {
	Store     Store
	Directory Directory
	Mailer    Mailer
	Egress    Egress
	Sealer    Sealer
	Audit     Auditor
	Logger    *slog.Logger
	Now       func() time.Time
}

// Service is the notifications module.
type Service struct {
	store  Store
	dir    Directory
	mailer Mailer
	egress Egress
	box    Sealer
	audit  Auditor
	log    *slog.Logger
	now    func() time.Time
}

// NewService returns the service of cfg.
func NewService(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Directory == nil || cfg.Sealer == nil {
		return nil, errors.New("notify: a store, a directory and a sealer are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = nodus.SystemClock{}.Now
	}
	return &Service{store: cfg.Store, dir: cfg.Directory, mailer: cfg.Mailer, egress: cfg.Egress, box: cfg.Sealer,
		audit: cfg.Audit, log: cfg.Logger, now: cfg.Now}, nil
}

// inScope narrows ctx to tenantID, which ctx's scope must cover: the
// platform scope may name any tenant, a tenant's scope only itself (any
// other is not found, like every other tenant's object).
func inScope(ctx context.Context, tenantID string) (context.Context, error) {
	id, all, ok := nodus.TenantScope(ctx)
	switch {
	case !ok:
		return nil, nodus.ErrNoScope
	case tenantID == "":
		return nil, nodus.Errorf(nodus.EINVALID, "notifications belong to a tenant; name one")
	case all:
		return nodus.WithTenant(ctx, tenantID), nil
	case id != tenantID:
		return nil, nodus.Errorf(nodus.ENOTFOUND, "tenant %s not found", tenantID)
	}
	return ctx, nil
}

// Notify publishes ev to the audience: an in-app notification for each
// recipient, an email job for those who opted in to ev.Kind, and a post job
// for each active webhook subscribed to it. It is the Notifier port the
// other modules are given, called from in-process producers: ev.TenantID
// is trusted, not checked against a caller's scope.
func (s *Service) Notify(ctx context.Context, ev Event, to Audience) error {
	if ev.TenantID == "" || !ev.Kind.Valid() || ev.Title == "" {
		return fmt.Errorf("notify: event without tenant, known kind or title: %q %q", ev.TenantID, ev.Kind)
	}
	ctx = nodus.WithTenant(ctx, ev.TenantID)
	ev.ID, ev.CreatedAt = nodus.NewID(), s.now()
	ev.Title, ev.Body = clip(ev.Title), clip(ev.Body)
	users, err := s.dir.Recipients(ctx, ev.TenantID, to)
	if err != nil {
		return fmt.Errorf("notify: recipients of %s: %w", ev.Kind, err)
	}
	ids := make([]string, 0, len(users))
	for _, u := range users {
		if !slices.Contains(ids, u.ID) {
			ids = append(ids, u.ID)
		}
	}
	optIns := map[string]bool{}
	if s.mailer != nil && len(ids) > 0 {
		if optIns, err = s.store.EmailOptIns(ctx, ev.Kind, ids); err != nil {
			return fmt.Errorf("notify: email opt-ins: %w", err)
		}
	}
	hooks, err := s.store.ListWebhooks(ctx)
	if err != nil {
		return fmt.Errorf("notify: webhooks: %w", err)
	}
	var notes []Notification
	var tasks []Task
	for _, u := range users {
		if slices.ContainsFunc(notes, func(n Notification) bool { return n.UserID == u.ID }) {
			continue
		}
		n := Notification{ID: nodus.NewID(), TenantID: ev.TenantID, UserID: u.ID, EventID: ev.ID, Kind: ev.Kind,
			Title: ev.Title, Body: ev.Body, Link: ev.Link, CreatedAt: ev.CreatedAt}
		notes = append(notes, n)
		if optIns[u.ID] && u.Email != "" {
			tasks = append(tasks, Task{TenantID: ev.TenantID, NotificationID: n.ID, EventID: ev.ID})
		}
	}
	for _, h := range hooks {
		if h.Subscribes(ev.Kind) {
			tasks = append(tasks, Task{TenantID: ev.TenantID, WebhookID: h.ID, EventID: ev.ID})
		}
	}
	published, err := s.store.PublishEvent(ctx, ev, notes, tasks)
	if err != nil {
		return fmt.Errorf("notify: publish %s: %w", ev.Kind, err)
	}
	if !published {
		s.log.DebugContext(ctx, "notification already published", "tenant", ev.TenantID, "kind", ev.Kind, "key", ev.DedupeKey)
	}
	return nil
}

// ListNotifications returns a page of the user's notifications, newest
// first, and the cursor of the next page ("" at the end).
func (s *Service) ListNotifications(ctx context.Context, tenantID, userID string, f ListFilter) ([]Notification, string, error) {
	ctx, err := inScope(ctx, tenantID)
	if err != nil {
		return nil, "", err
	}
	return s.store.ListNotifications(ctx, userID, f)
}

// OpenNotification marks one of the user's notifications read and returns
// it, for the UI's link to what it is about; another user's is not found.
func (s *Service) OpenNotification(ctx context.Context, tenantID, userID, id string) (Notification, error) {
	ctx, err := inScope(ctx, tenantID)
	if err != nil {
		return Notification{}, err
	}
	if !nodus.ValidID(id) {
		return Notification{}, nodus.Errorf(nodus.ENOTFOUND, "notification %s not found", id)
	}
	n, err := s.store.FindNotification(ctx, id)
	if err != nil {
		return Notification{}, err
	}
	if n.UserID != userID {
		return Notification{}, nodus.Errorf(nodus.ENOTFOUND, "notification %s not found", id)
	}
	if err := s.store.MarkNotificationRead(ctx, userID, id, s.now()); err != nil {
		return Notification{}, err
	}
	return n, nil
}

// UnreadCount is how many of the user's notifications are unread.
func (s *Service) UnreadCount(ctx context.Context, tenantID, userID string) (int, error) {
	ctx, err := inScope(ctx, tenantID)
	if err != nil {
		return 0, err
	}
	return s.store.CountUnreadNotifications(ctx, userID)
}

// MarkRead marks one of the user's notifications read; another user's (or
// tenant's) is not found. Marking a read one again changes nothing.
func (s *Service) MarkRead(ctx context.Context, tenantID, userID, id string) error {
	ctx, err := inScope(ctx, tenantID)
	if err != nil {
		return err
	}
	if !nodus.ValidID(id) {
		return nodus.Errorf(nodus.ENOTFOUND, "notification %s not found", id)
	}
	return s.store.MarkNotificationRead(ctx, userID, id, s.now())
}

// MarkAllRead marks every notification of the user read and returns how
// many were unread.
func (s *Service) MarkAllRead(ctx context.Context, tenantID, userID string) (int, error) {
	ctx, err := inScope(ctx, tenantID)
	if err != nil {
		return 0, err
	}
	return s.store.MarkAllNotificationsRead(ctx, userID, s.now())
}

// Preferences returns whether the user is emailed each kind.
func (s *Service) Preferences(ctx context.Context, tenantID, userID string) (map[Kind]bool, error) {
	ctx, err := inScope(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	set, err := s.store.NotificationPrefs(ctx, userID)
	if err != nil {
		return nil, err
	}
	out := make(map[Kind]bool, len(Kinds()))
	for _, k := range Kinds() {
		out[k] = set[k]
	}
	return out, nil
}

// SetPreferences sets the user's email opt-in for the kinds named; kinds
// not named keep their setting.
func (s *Service) SetPreferences(ctx context.Context, tenantID, userID string, email map[Kind]bool) (map[Kind]bool, error) {
	cctx, err := inScope(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	for k := range email {
		if !k.Valid() {
			return nil, &nodus.Error{Code: nodus.EINVALID, Message: "invalid preferences",
				Fields: map[string]string{"email": "unknown kind " + string(k)}}
		}
	}
	if err := s.store.SetNotificationPrefs(cctx, userID, email, s.now()); err != nil {
		return nil, err
	}
	return s.Preferences(ctx, tenantID, userID)
}

// secretAD binds a sealed webhook secret to its tenant and webhook: copied
// to another row, it does not open.
func secretAD(tenantID, webhookID string) []byte {
	return []byte("notify|" + tenantID + "|webhook|" + webhookID)
}

// CreateWebhook adds a webhook to the tenant and returns it with its
// signing secret, which is shown this once.
func (s *Service) CreateWebhook(ctx context.Context, actor audit.Entry, tenantID string, in WebhookInput) (Webhook, string, error) {
	ctx, err := inScope(ctx, tenantID)
	if err != nil {
		return Webhook{}, "", err
	}
	if in, err = in.validate(); err != nil {
		return Webhook{}, "", err
	}
	raw := make([]byte, 32)
	_, _ = rand.Read(raw) // crypto/rand.Read never fails
	secret := "whsec_" + base64.RawURLEncoding.EncodeToString(raw)
	w := Webhook{ID: nodus.NewID(), TenantID: tenantID, URL: in.URL, Kinds: in.Kinds, Active: true,
		CreatedBy: actor.ActorID, CreatedAt: s.now()}
	if w.SealedSecret, err = s.box.Seal([]byte(secret), secretAD(tenantID, w.ID)); err != nil {
		return Webhook{}, "", fmt.Errorf("notify: seal webhook secret: %w", err)
	}
	if err := s.store.CreateWebhook(ctx, w, MaxWebhooks); err != nil {
		return Webhook{}, "", err
	}
	if err := s.record(ctx, actor.About(tenantID, "webhook.create", "webhook", w.ID,
		map[string]audit.Change{"url": {After: w.URL}, "kinds": {After: w.Kinds}})); err != nil {
		return Webhook{}, "", err
	}
	return w, secret, nil
}

// ListWebhooks returns the tenant's webhooks, without their secrets.
func (s *Service) ListWebhooks(ctx context.Context, tenantID string) ([]Webhook, error) {
	ctx, err := inScope(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	return s.store.ListWebhooks(ctx)
}

// DeleteWebhook removes a webhook and its delivery log; posts still queued
// for it end without sending.
func (s *Service) DeleteWebhook(ctx context.Context, actor audit.Entry, tenantID, id string) error {
	ctx, err := inScope(ctx, tenantID)
	if err != nil {
		return err
	}
	if !nodus.ValidID(id) {
		return nodus.Errorf(nodus.ENOTFOUND, "webhook %s not found", id)
	}
	w, err := s.store.FindWebhook(ctx, id)
	if err != nil {
		return err
	}
	if err := s.store.DeleteWebhook(ctx, id); err != nil {
		return err
	}
	return s.record(ctx, actor.About(tenantID, "webhook.delete", "webhook", id,
		map[string]audit.Change{"url": {Before: w.URL}}))
}

// ListDeliveries returns a webhook's newest delivery attempts.
func (s *Service) ListDeliveries(ctx context.Context, tenantID, webhookID string, limit int) ([]Delivery, error) {
	ctx, err := inScope(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	if !nodus.ValidID(webhookID) {
		return nil, nodus.Errorf(nodus.ENOTFOUND, "webhook %s not found", webhookID)
	}
	if _, err := s.store.FindWebhook(ctx, webhookID); err != nil {
		return nil, err
	}
	if limit <= 0 || limit > MaxDeliveriesKept {
		limit = MaxDeliveriesKept
	}
	return s.store.ListWebhookDeliveries(ctx, webhookID, limit)
}

func (s *Service) record(ctx context.Context, e audit.Entry) error {
	if s.audit == nil {
		return nil
	}
	return s.audit.Record(ctx, e)
}

// PurgeTenant deletes everything the tenant has here: events,
// notifications, preferences, webhooks and deliveries.
func (s *Service) PurgeTenant(ctx context.Context, tenantID string) error {
	return s.store.DeleteNotifyTenant(nodus.WithTenant(ctx, tenantID))
}

// ErrPermanent marks a failure a retry cannot fix (the notification or
// webhook is gone, the tenant has no email settings); the job ends.
var ErrPermanent = errors.New("notify: permanent failure")

// SendEmail emails one notification to its user, if they still opt in to
// its kind. It is the email job's work.
func (s *Service) SendEmail(ctx context.Context, tenantID, notificationID string) error {
	if s.mailer == nil {
		return fmt.Errorf("%w: email is not configured", ErrPermanent)
	}
	ctx = nodus.WithTenant(ctx, tenantID)
	n, err := s.store.FindNotification(ctx, notificationID)
	if nodus.ErrorCode(err) == nodus.ENOTFOUND {
		return fmt.Errorf("%w: %w", ErrPermanent, err)
	}
	if err != nil {
		return err
	}
	in, err := s.store.EmailOptIns(ctx, n.Kind, []string{n.UserID})
	if err != nil {
		return err
	}
	if !in[n.UserID] {
		return nil // opted out since
	}
	users, err := s.dir.Recipients(ctx, tenantID, Audience{UserIDs: []string{n.UserID}})
	if err != nil {
		return err
	}
	if len(users) == 0 || users[0].Email == "" {
		return fmt.Errorf("%w: user %s has no address or is inactive", ErrPermanent, n.UserID)
	}
	body := n.Body
	if n.Link != "" {
		body += "\n\n" + n.Link
	}
	body += "\n\nYou receive this email because you opted in to " + string(n.Kind) + " notifications.\n"
	return s.mailer.SendMail(ctx, tenantID, users[0].Email, n.Title, body)
}

// Webhook delivery bounds: one attempt's time, and how much of an answer
// is read (only its status matters; the rest is drained so the connection
// can be reused).
const (
	deliveryTimeout  = 15 * time.Second
	maxResponseBytes = 64 << 10
	maxErrorText     = 500
)

// payload is the JSON body of a webhook post.
type payload struct {
	ID        string         `json:"id"`
	Type      Kind           `json:"type"`
	CreatedAt time.Time      `json:"created_at"`
	TenantID  string         `json:"tenant_id"`
	Title     string         `json:"title"`
	Body      string         `json:"body"`
	Link      string         `json:"link,omitempty"`
	Data      map[string]any `json:"data"`
}

// Deliver posts one event to one webhook, signed, through the tenant's
// egress client, and logs the attempt. It is the webhook job's work; an
// error means the attempt failed and the queue retries it with backoff.
func (s *Service) Deliver(ctx context.Context, tenantID, webhookID, eventID string, attempt int) error {
	ctx = nodus.WithTenant(ctx, tenantID)
	w, err := s.store.FindWebhook(ctx, webhookID)
	if nodus.ErrorCode(err) == nodus.ENOTFOUND {
		return fmt.Errorf("%w: %w", ErrPermanent, err)
	}
	if err != nil {
		return err
	}
	if !w.Active {
		return nil
	}
	ev, err := s.store.FindNotifyEvent(ctx, eventID)
	if nodus.ErrorCode(err) == nodus.ENOTFOUND {
		return fmt.Errorf("%w: %w", ErrPermanent, err)
	}
	if err != nil {
		return err
	}
	secret, err := s.box.Open(w.SealedSecret, secretAD(tenantID, w.ID))
	if err != nil {
		return fmt.Errorf("%w: the webhook's secret does not open: %w", ErrPermanent, err)
	}
	body, err := json.Marshal(payload{ID: ev.ID, Type: ev.Kind, CreatedAt: ev.CreatedAt, TenantID: tenantID,
		Title: ev.Title, Body: ev.Body, Link: ev.Link, Data: ev.Data})
	if err != nil {
		return fmt.Errorf("%w: encode event: %w", ErrPermanent, err)
	}
	d := Delivery{ID: nodus.NewID(), TenantID: tenantID, WebhookID: w.ID, EventID: ev.ID, Kind: ev.Kind, Attempt: attempt}
	began := s.now()
	code, sendErr := s.post(ctx, tenantID, w.URL, d.ID, ev.Kind, secret, body)
	d.CreatedAt, d.DurationMS, d.ResponseCode = s.now(), s.now().Sub(began).Milliseconds(), code
	d.Status = DeliverySucceeded
	if sendErr != nil {
		d.Status, d.Error = DeliveryFailed, clipError(sendErr.Error())
	}
	// The attempt happened: log it even if the job is being cancelled.
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := s.store.AddWebhookDelivery(lctx, d, MaxDeliveriesKept); err != nil {
		s.log.WarnContext(ctx, "webhook delivery not logged", "tenant", tenantID, "webhook", w.ID, "err", err)
	}
	if sendErr != nil {
		return fmt.Errorf("notify: post %s to webhook %s: %w", ev.Kind, w.ID, sendErr)
	}
	return nil
}

// post sends body and returns the response code; any status outside 2xx
// is an error (redirects are not followed into a success: egress bounds
// and re-checks them, and a 3xx end is a failure).
func (s *Service) post(ctx context.Context, tenantID, url, deliveryID string, kind Kind, secret, body []byte) (int, error) {
	if s.egress == nil {
		return 0, errors.New("outbound connections are not available")
	}
	ctx, cancel := context.WithTimeout(ctx, deliveryTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Nodus-Webhooks/1")
	req.Header.Set("X-Nodus-Event", string(kind))
	req.Header.Set("X-Nodus-Delivery", deliveryID)
	req.Header.Set(SignatureHeader, Sign(secret, s.now(), body))
	resp, err := s.egress.Client(tenantID).Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseBytes))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, fmt.Errorf("the endpoint answered %s", resp.Status)
	}
	return resp.StatusCode, nil
}

func clipError(s string) string {
	s = strings.ToValidUTF8(s, "?")
	if len(s) > maxErrorText {
		s = strings.ToValidUTF8(s[:maxErrorText], "") + "…"
	}
	return s
}

// SecretStore is the store of ResealWebhookSecrets.
type SecretStore interface {
	// ListAllWebhooks returns every tenant's webhooks (all-tenants scope).
	ListAllWebhooks(ctx context.Context) ([]Webhook, error)
	// ReplaceWebhookSecret stores sealed as a webhook's secret if it still
	// holds old (all-tenants scope).
	ReplaceWebhookSecret(ctx context.Context, tenantID, id string, old, sealed []byte) (bool, error)
}

// ResealWebhookSecrets seals again with box's current master key (whose
// id is current) every webhook signing secret sealed with another one,
// and returns how many it resealed: after it, the other master keys can
// be removed. It needs the all-tenants scope. A secret whose master key
// is not loaded fails it with EUNAVAILABLE; one replaced meanwhile is left
// alone. It may run while Nodus serves, and again.
func ResealWebhookSecrets(ctx context.Context, st SecretStore, box Sealer, current byte) (int, error) {
	hooks, err := st.ListAllWebhooks(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, w := range hooks {
		if id, ok := keyring.KeyID(w.SealedSecret); ok && id == current {
			continue
		}
		ad := secretAD(w.TenantID, w.ID)
		secret, err := box.Open(w.SealedSecret, ad)
		if err != nil {
			return n, nodus.WrapError(err, nodus.EUNAVAILABLE, fmt.Sprintf(
				"the signing secret of webhook %s of tenant %s does not open: load the master key that sealed it and retry", w.ID, w.TenantID))
		}
		sealed, err := box.Seal(secret, ad)
		clear(secret)
		if err != nil {
			return n, err
		}
		ok, err := st.ReplaceWebhookSecret(ctx, w.TenantID, w.ID, w.SealedSecret, sealed)
		if err != nil {
			return n, err
		}
		if ok {
			n++
		}
	}
	return n, nil
}
