// Package recordingswire plugs the other modules into recordings, for
// cmd/nodus: the store bound to the job queue (a recording and its job
// commit together), the gateway in process as the transcriber and the
// summary model, the settings as the tenant's choice of models, the
// knowledge service as where transcripts go, and notify as who hears of a
// finished recording.
package recordingswire

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/nodus-os/nodus/internal/gateway"
	"github.com/nodus-os/nodus/internal/jobs"
	"github.com/nodus-os/nodus/internal/knowledge"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/notify"
	"github.com/nodus-os/nodus/internal/recordings"
	"github.com/nodus-os/nodus/internal/settings"
	"github.com/nodus-os/nodus/internal/store"
)

// Store is the main database with recordings' jobs queued in the
// transactions that need them.
type Store struct {
	DB *store.DB
	// Queue returns the job queue; a function because serve builds the
	// queue after the services whose workers it runs.
	Queue func() *jobs.Queue
}

var _ recordings.Store = Store{}

func (s Store) enqueue(ctx context.Context, tx *store.Tx, tenantID, id string) error {
	return s.insert(ctx, tx, jobs.RecordingArgs{TenantID: tenantID, RecordingID: id})
}

func (s Store) insert(ctx context.Context, tx *store.Tx, args jobs.RecordingArgs) error {
	q := s.Queue()
	if q == nil {
		return fmt.Errorf("recordingswire: the job queue is not built yet")
	}
	_, err := q.InsertTx(ctx, tx, args, nil)
	return err
}

// CreateRecording implements recordings.Store.
func (s Store) CreateRecording(ctx context.Context, r recordings.Recording) error {
	return s.DB.CreateRecording(ctx, r, s.enqueue)
}

// FindRecording implements recordings.Store.
func (s Store) FindRecording(ctx context.Context, id string) (recordings.Recording, error) {
	return s.DB.FindRecording(ctx, id)
}

// ListRecordings implements recordings.Store.
func (s Store) ListRecordings(ctx context.Context, f recordings.Filter, cursor string, limit int) ([]recordings.Recording, string, error) {
	return s.DB.ListRecordings(ctx, f, cursor, limit)
}

// UpdateRecording implements recordings.Store.
func (s Store) UpdateRecording(ctx context.Context, id string, queue bool, fn func(*recordings.Recording) error) (recordings.Recording, error) {
	var enqueue store.RecordingEnqueue
	if queue {
		enqueue = s.enqueue
	}
	return s.DB.UpdateRecording(ctx, id, fn, enqueue)
}

// DeleteRecording implements recordings.Store.
func (s Store) DeleteRecording(ctx context.Context, id string) (recordings.Recording, error) {
	return s.DB.DeleteRecording(ctx, id)
}

// StalledRecordings implements recordings.Store.
func (s Store) StalledRecordings(ctx context.Context, before time.Time, limit int) ([]recordings.Recording, error) {
	return s.DB.StalledRecordings(ctx, before, limit)
}

// QueueRecording implements recordings.Store.
func (s Store) QueueRecording(ctx context.Context, tenantID, id string, wake bool) error {
	if !wake {
		return s.DB.QueueRecording(ctx, tenantID, id, s.enqueue)
	}
	// A job unique to this wake-up: the queue would otherwise drop it as
	// a duplicate of the job still finishing.
	return s.DB.QueueRecording(ctx, tenantID, id, func(ctx context.Context, tx *store.Tx, tenantID, id string) error {
		return s.insert(ctx, tx, jobs.RecordingArgs{TenantID: tenantID, RecordingID: id, Wake: nodus.NewID()})
	})
}

// DeleteRecordingsTenant implements recordings.Store.
func (s Store) DeleteRecordingsTenant(ctx context.Context) ([]string, error) {
	return s.DB.DeleteRecordingsTenant(ctx)
}

// Gateway is the transcriber and the summary model: the gateway called in
// process as the recording's user, so the tenant's routing, budgets and
// spend log apply as to any caller.
type Gateway struct{ Service *gateway.Service }

var (
	_ recordings.Transcriber = Gateway{}
	_ recordings.Models      = Gateway{}
)

// Transcribe asks for verbose_json with segment timestamps.
func (g Gateway) Transcribe(ctx context.Context, r recordings.TranscribeRequest) (recordings.Transcript, error) {
	resp, _, err := g.Service.Transcribe(ctx, gateway.Caller{TenantID: r.TenantID, UserID: r.UserID},
		&gateway.TranscriptionRequest{Model: r.Model, File: r.Audio, FileName: r.FileName, ContentType: r.MIME,
			ResponseFormat: "verbose_json", TimestampGranularities: []string{"segment"}})
	if err != nil {
		return recordings.Transcript{}, gateway.NodusError(err, "speech model "+r.Model)
	}
	return ParseVerboseJSON(resp.Body, resp.Text, resp.Language, resp.Duration)
}

// ParseVerboseJSON reads an OpenAI verbose_json transcription. An engine
// that answers plain json (no segments) gives one segment of the whole
// text over the duration it reports.
func ParseVerboseJSON(body []byte, text, language string, duration float64) (recordings.Transcript, error) {
	var v struct {
		Text     string               `json:"text"`
		Language string               `json:"language"`
		Duration float64              `json:"duration"`
		Segments []recordings.Segment `json:"segments"`
	}
	if len(bytes.TrimSpace(body)) > 0 {
		if err := json.Unmarshal(body, &v); err != nil {
			return recordings.Transcript{}, nodus.Errorf(nodus.EINVALID, "the speech model's answer is not verbose JSON")
		}
	}
	t := recordings.Transcript{Text: strings.TrimSpace(v.Text), Language: v.Language, Duration: v.Duration, Segments: v.Segments}
	if t.Text == "" {
		t.Text = strings.TrimSpace(text)
	}
	if t.Language == "" {
		t.Language = language
	}
	if t.Duration == 0 {
		t.Duration = duration
	}
	for i := range t.Segments {
		s := &t.Segments[i]
		s.Text = strings.TrimSpace(s.Text)
		if s.End < s.Start || s.Start < 0 {
			return recordings.Transcript{}, nodus.Errorf(nodus.EINVALID, "the speech model's segment %d has impossible times", s.ID)
		}
	}
	if len(t.Segments) == 0 && t.Text != "" {
		t.Segments = []recordings.Segment{{ID: 0, Start: 0, End: t.Duration, Text: t.Text}}
	}
	return t, nil
}

// Complete returns the first choice's text.
func (g Gateway) Complete(ctx context.Context, r recordings.CompleteRequest) (string, error) {
	maxTokens := int64(1024)
	resp, _, err := g.Service.Chat(ctx, gateway.Caller{TenantID: r.TenantID, UserID: r.UserID}, &gateway.ChatRequest{
		Model: r.Model, MaxTokens: &maxTokens, Messages: []gateway.Message{
			{Role: "system", Content: gateway.TextContent(r.System)},
			{Role: "user", Content: gateway.TextContent(r.Prompt)}}})
	if err != nil {
		return "", gateway.NodusError(err, "summary model "+r.Model)
	}
	return resp.Text(), nil
}

// Settings reads the tenant's models from the settings service.
type Settings struct{ Service *settings.Service }

// RecordingModels implements recordings.Settings.
func (s Settings) RecordingModels(ctx context.Context, tenantID string) (recordings.ModelSettings, error) {
	speech, summary, err := s.Service.RecordingModels(nodus.WithTenant(ctx, tenantID), tenantID)
	return recordings.ModelSettings{Speech: speech, Summary: summary}, err
}

// Knowledge adds transcripts to knowledge bases as uploaded Markdown
// documents (audited and ingested as any upload).
type Knowledge struct{ Service *knowledge.Service }

// AddDocument implements recordings.Knowledge.
func (k Knowledge) AddDocument(ctx context.Context, d recordings.KnowledgeDocument) (string, error) {
	m := knowledge.Manager{TenantID: d.TenantID, UserID: d.UserID, Admin: d.Admin}
	m.Entry.ActorID, m.Entry.ActorKind = d.UserID, "user"
	doc, err := k.Service.UploadDocument(ctx, m, d.KnowledgeBaseID, knowledge.UploadInput{OriginalFilename: d.Filename,
		DeclaredType: "text/markdown", Body: strings.NewReader(d.Text), Limit: int64(len(d.Text)) + 1, Metadata: d.Metadata})
	if err != nil {
		return "", err
	}
	return doc.ID, nil
}

// Notify tells a recording's user it was transcribed or failed.
func Notify(n *notify.Service, log *slog.Logger) func(ctx context.Context, r recordings.Recording) {
	return func(ctx context.Context, r recordings.Recording) {
		ev := notify.Event{TenantID: r.TenantID, Link: "/recordings/" + url.PathEscape(r.ID),
			Data: map[string]any{"recording_id": r.ID, "title": r.Title, "status": r.Status}}
		switch r.Status {
		case recordings.StatusCompleted:
			ev.Kind, ev.Title = notify.KindRecordingTranscribed, "Recording transcribed: "+r.Title
			ev.Body = fmt.Sprintf("%d segments, %s of audio.", len(r.Segments), recordings.Clock(r.Duration))
			ev.Data["segments"], ev.Data["duration_s"] = len(r.Segments), r.Duration
			ev.DedupeKey = "recording.transcribed:" + r.ID + ":" + r.UpdatedAt.Format("20060102T150405.000000")
		case recordings.StatusFailed:
			ev.Kind, ev.Title = notify.KindRecordingFailed, "Recording failed: "+r.Title
			ev.Body, ev.Data["error"] = r.Error, r.Error
		default:
			return
		}
		if err := n.Notify(ctx, ev, notify.Audience{UserIDs: []string{r.UserID}}); err != nil {
			log.WarnContext(ctx, "notification not published", "tenant", r.TenantID, "kind", ev.Kind, "err", err)
		}
	}
}
