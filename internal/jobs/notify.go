package jobs

import (
	"context"
	"time"

	"github.com/riverqueue/river"
)

// NotifyEmailArgs is the job that emails one in-app notification to its
// user (who opted in to its kind when it was published).
type NotifyEmailArgs struct {
	TenantID       string `json:"tenant_id"`
	NotificationID string `json:"notification_id"`
}

// Kind names the job in the queue.
func (NotifyEmailArgs) Kind() string { return "nodus_notify_email" }

// InsertOpts retries a few times: an SMTP server may be briefly down, but
// an email hours late is worth less than none.
func (NotifyEmailArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{MaxAttempts: 5} }

// WebhookArgs is the job that posts one event to one webhook.
type WebhookArgs struct {
	TenantID  string `json:"tenant_id"`
	WebhookID string `json:"webhook_id"`
	EventID   string `json:"event_id"`
}

// Kind names the job in the queue.
func (WebhookArgs) Kind() string { return "nodus_notify_webhook" }

// InsertOpts: with River's default backoff (attempt⁴ seconds, jittered)
// eight attempts span about two hours, long enough to ride out a
// receiver's deploy or short outage.
func (WebhookArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{MaxAttempts: 8} }

// notifyTimeout bounds one run: one SMTP dialogue or one HTTP post, each
// with its own shorter timeouts, and the database.
const notifyTimeout = time.Minute

// EmailSender emails a notification (the notify service, wired in
// cmd/nodus: jobs does not import the modules it runs). An error is
// retried; return river.JobCancel's for one a retry cannot fix.
type EmailSender func(ctx context.Context, args NotifyEmailArgs) error

// WebhookPoster posts an event to a webhook; attempt counts from 1, for
// the delivery log. Errors as for EmailSender.
type WebhookPoster func(ctx context.Context, args WebhookArgs, attempt int) error

type notifyEmailWorker struct {
	river.WorkerDefaults[NotifyEmailArgs]
	send EmailSender
}

func (w *notifyEmailWorker) Work(ctx context.Context, job *river.Job[NotifyEmailArgs]) error {
	return w.send(ctx, job.Args)
}

func (w *notifyEmailWorker) Timeout(*river.Job[NotifyEmailArgs]) time.Duration { return notifyTimeout }

type webhookWorker struct {
	river.WorkerDefaults[WebhookArgs]
	post WebhookPoster
}

func (w *webhookWorker) Work(ctx context.Context, job *river.Job[WebhookArgs]) error {
	return w.post(ctx, job.Args, job.Attempt)
}

func (w *webhookWorker) Timeout(*river.Job[WebhookArgs]) time.Duration { return notifyTimeout }

// AddNotify registers the notification email and webhook workers.
func AddNotify(workers *river.Workers, send EmailSender, post WebhookPoster) {
	river.AddWorker(workers, &notifyEmailWorker{send: send})
	river.AddWorker(workers, &webhookWorker{post: post})
}
