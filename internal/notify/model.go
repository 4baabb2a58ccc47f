package notify

import (
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nodus-os/nodus/internal/nodus"
)

// Kind names what happened. Webhook subscribers and email opt-ins name
// kinds, so they are part of the API: add, never rename.
type Kind string

const (
	KindDocumentProcessed    Kind = "document.processed"
	KindDocumentFailed       Kind = "document.failed"
	KindBudgetWarning        Kind = "budget.warning" // a budget reached 80% of its maximum
	KindBudgetExhausted      Kind = "budget.exhausted"
	KindSecretRotated        Kind = "secret.rotated"
	KindKeyExpiring          Kind = "key.expiring"  // a gateway virtual key expires within KeyExpiryWarning
	KindEgressDenied         Kind = "egress.denied" // an outbound request of the tenant was refused by its policy
	KindRecordingTranscribed Kind = "recording.transcribed"
	KindRecordingFailed      Kind = "recording.failed"
)

// KeyExpiryWarning is how long before a gateway key expires its owner and
// the tenant's admins hear of it.
const KeyExpiryWarning = 7 * 24 * time.Hour

// Kinds lists every kind, in the order the API shows them.
func Kinds() []Kind {
	return []Kind{KindDocumentProcessed, KindDocumentFailed, KindBudgetWarning, KindBudgetExhausted, KindSecretRotated,
		KindKeyExpiring, KindEgressDenied, KindRecordingTranscribed, KindRecordingFailed}
}

// Valid reports whether k is one of Kinds.
func (k Kind) Valid() bool { return slices.Contains(Kinds(), k) }

// Role names an audience by role in the tenant; the directory resolves it.
const RoleOrgAdmin = "org_admin"

// Audience is who hears of an event: users by id and every active user
// of the tenant holding one of Roles. Duplicates are notified once.
type Audience struct {
	UserIDs []string
	Roles   []string
}

// Event is something that happened in a tenant.
type Event struct {
	ID       string
	TenantID string
	Kind     Kind
	// DedupeKey, when set, publishes the event at most once per tenant.
	DedupeKey string
	Title     string
	Body      string
	// Link is a path in the UI about the event, for the notification list.
	Link string
	// Data is the machine-readable detail sent to webhooks.
	Data      map[string]any
	CreatedAt time.Time
}

// Notification is an event as one user sees it in the app.
type Notification struct {
	ID        string     `json:"id"`
	TenantID  string     `json:"-"`
	UserID    string     `json:"-"`
	EventID   string     `json:"event_id"`
	Kind      Kind       `json:"kind"`
	Title     string     `json:"title"`
	Body      string     `json:"body"`
	Link      string     `json:"link"`
	CreatedAt time.Time  `json:"created_at"`
	ReadAt    *time.Time `json:"read_at"`
}

// ListFilter selects a page of a user's notifications, newest first.
type ListFilter struct {
	UnreadOnly bool
	Limit      int
	Cursor     string
}

// Webhook is a tenant's endpoint for events of some kinds. Secret holds
// the signing secret only when it was just created (shown once) or inside
// the service while signing.
type Webhook struct {
	ID        string    `json:"id"`
	TenantID  string    `json:"-"`
	URL       string    `json:"url"`
	Kinds     []Kind    `json:"kinds"`
	Active    bool      `json:"active"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
	// SealedSecret is the secret as stored; never serialised.
	SealedSecret []byte `json:"-"`
}

// Subscribes reports whether w wants events of kind k.
func (w Webhook) Subscribes(k Kind) bool { return w.Active && slices.Contains(w.Kinds, k) }

// Delivery outcomes.
const (
	DeliverySucceeded = "succeeded"
	DeliveryFailed    = "failed"
)

// Delivery is one attempt at posting an event to a webhook.
type Delivery struct {
	ID           string    `json:"id"`
	TenantID     string    `json:"-"`
	WebhookID    string    `json:"webhook_id"`
	EventID      string    `json:"event_id"`
	Kind         Kind      `json:"kind"`
	Attempt      int       `json:"attempt"`
	Status       string    `json:"status"`
	ResponseCode int       `json:"response_code"`
	Error        string    `json:"error"`
	DurationMS   int64     `json:"duration_ms"`
	CreatedAt    time.Time `json:"created_at"`
}

// Task is work a published event leaves for the job queue: an email to
// the user of NotificationID, or a post of EventID to WebhookID.
type Task struct {
	TenantID       string
	NotificationID string // an email
	WebhookID      string // a webhook post
	EventID        string
}

// Limits.
const (
	// MaxDeliveriesKept bounds the delivery log of one webhook.
	MaxDeliveriesKept = 200
	// MaxWebhooks bounds a tenant's webhooks: each event is posted to
	// every one subscribed.
	MaxWebhooks = 20
	maxURLBytes = 2048
	maxText     = 2000
)

// WebhookInput is a webhook to create.
type WebhookInput struct {
	URL   string `json:"url"`
	Kinds []Kind `json:"kinds"`
}

// validate checks in and returns it normalised. Only http and https URLs
// are taken; where they may point is egress's decision at send time, so
// a tenant's policy change applies to webhooks already created.
func (in WebhookInput) validate() (WebhookInput, error) {
	fields := map[string]string{}
	u, err := url.Parse(strings.TrimSpace(in.URL))
	switch {
	case in.URL == "":
		fields["url"] = "is required"
	case len(in.URL) > maxURLBytes || !utf8.ValidString(in.URL):
		fields["url"] = "too long"
	case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil:
		fields["url"] = "must be an http or https URL without credentials"
	default:
		in.URL = u.String()
	}
	if len(in.Kinds) == 0 {
		fields["kinds"] = "name at least one kind"
	}
	var kinds []Kind
	for _, k := range in.Kinds {
		if !k.Valid() {
			fields["kinds"] = "unknown kind " + string(k)
			break
		}
		if !slices.Contains(kinds, k) {
			kinds = append(kinds, k)
		}
	}
	in.Kinds = kinds
	if len(fields) > 0 {
		return in, &nodus.Error{Code: nodus.EINVALID, Message: "invalid webhook", Fields: fields}
	}
	return in, nil
}

// clip bounds a producer's text: titles and bodies are shown in lists and
// emails, and a producer's error message could be long.
func clip(s string) string {
	if len(s) <= maxText {
		return s
	}
	s = s[:maxText]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "…"
}
