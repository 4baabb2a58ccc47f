package recordings

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/nodus-os/nodus/internal/audit"
	"github.com/nodus-os/nodus/internal/blob"
	"github.com/nodus-os/nodus/internal/nodus"
)

// Config holds a Service's dependencies. Store and Blobs are required;
// without Transcriber every recording waits, without Models none is
// summarised, without Knowledge transcripts cannot be added to knowledge
// bases.
type Config struct {
	Store       Store
	Blobs       blob.Store
	Transcriber Transcriber
	Models      Models
	Settings    Settings
	Knowledge   Knowledge
	// Notify hears of a recording that completed or failed.
	Notify func(ctx context.Context, r Recording)
	// Audit records uploads, renames, retries and deletions; nil records
	// nothing.
	Audit  Auditor
	Logger *slog.Logger
	Now    func() time.Time
	// MaxBytes bounds an upload (DefaultMaxBytes when 0).
	MaxBytes int64
	// PieceBytes bounds the audio of one transcription request
	// (DefaultPieceBytes when 0): a longer WAV or MP3 file is sent in
	// pieces (split.go).
	PieceBytes int64
	// StaleAfter is how long a transcribing or summarising recording may
	// go without an update before another run takes it over.
	StaleAfter time.Duration
}

// Service manages recordings and processes them.
type Service struct {
	store       Store
	blobs       blob.Store
	transcriber Transcriber
	models      Models
	settings    Settings
	knowledge   Knowledge
	notify      func(context.Context, Recording)
	audit       Auditor
	log         *slog.Logger
	now         func() time.Time
	maxBytes    int64
	pieceBytes  int64
	staleAfter  time.Duration
}

// NewService builds the service.
func NewService(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Blobs == nil {
		return nil, errors.New("recordings: a store and a blob store are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	if cfg.StaleAfter <= 0 {
		cfg.StaleAfter = 15 * time.Minute
	}
	if cfg.PieceBytes <= 0 {
		cfg.PieceBytes = DefaultPieceBytes
	}
	return &Service{store: cfg.Store, blobs: cfg.Blobs, transcriber: cfg.Transcriber, models: cfg.Models,
		settings: cfg.Settings, knowledge: cfg.Knowledge, notify: cfg.Notify, audit: cfg.Audit, log: cfg.Logger, now: cfg.Now,
		maxBytes: cfg.MaxBytes, pieceBytes: cfg.PieceBytes, staleAfter: cfg.StaleAfter}, nil
}

// MaxBytes is the upload limit.
func (s *Service) MaxBytes() int64 { return s.maxBytes }

// Actor is who acts: a user of a tenant, an org admin or not.
type Actor struct {
	TenantID string
	UserID   string
	Admin    bool
	// Entry carries the actor, address and user agent of the audit
	// entries the actor's changes make.
	Entry audit.Entry
}

// Auditor records changes; *audit.Service is one.
type Auditor interface {
	Record(ctx context.Context, e audit.Entry) error
}

// record audits a change to a recording. Entries name the recording, its
// title and sizes, never its audio or transcript.
func (s *Service) record(ctx context.Context, a Actor, action, id string, changes map[string]audit.Change) error {
	if s.audit == nil {
		return nil
	}
	if err := s.audit.Record(ctx, a.Entry.About(a.TenantID, action, "recording", id, changes)); err != nil {
		return fmt.Errorf("recordings: audit %s: %w", action, err)
	}
	return nil
}

func (a Actor) ctx(ctx context.Context) context.Context { return nodus.WithTenant(ctx, a.TenantID) }

// find reads a recording the actor may see: their own, or any of the
// tenant's for an admin. Another user's is not found, as another tenant's.
func (s *Service) find(ctx context.Context, a Actor, id string) (Recording, error) {
	if !nodus.ValidID(id) {
		return Recording{}, notFound(id)
	}
	r, err := s.store.FindRecording(a.ctx(ctx), id)
	if err != nil {
		return Recording{}, err
	}
	if !a.Admin && r.UserID != a.UserID {
		return Recording{}, notFound(id)
	}
	return r, nil
}

// UploadInput is an audio file a user uploads.
type UploadInput struct {
	Title    string // "" takes the file name
	Filename string // the client's name, for display only
	Body     io.Reader
}

// CreateRecording stores the audio (up to MaxBytes, ETOOLARGE past it),
// detects its format from its content, reads its duration from its
// container (EINVALID, with the reason, for a file that is not readable
// audio) and queues its processing.
func (s *Service) CreateRecording(ctx context.Context, a Actor, in UploadInput) (*Recording, error) {
	if a.TenantID == "" || a.UserID == "" {
		return nil, nodus.ErrNoScope
	}
	name := cleanFilename(in.Filename)
	title := titleFrom(name)
	if strings.TrimSpace(in.Title) != "" {
		t, err := checkTitle(in.Title)
		if err != nil {
			return nil, err
		}
		title = t
	}
	info, err := s.blobs.Put(ctx, in.Body, s.maxBytes)
	if err != nil {
		if nodus.ErrorCode(err) == nodus.ETOOLARGE {
			return nil, nodus.WrapError(err, nodus.ETOOLARGE, fmt.Sprintf("the file is larger than the %d-byte limit", s.maxBytes))
		}
		if c := nodus.ErrorCode(err); c == nodus.EINVALID || c == nodus.ETIMEOUT {
			return nil, err
		}
		return nil, fmt.Errorf("recordings: store upload: %w", err)
	}
	drop := func() {
		if err := s.blobs.Delete(context.WithoutCancel(ctx), info.ID); err != nil {
			s.log.WarnContext(ctx, "recording blob not removed", "blob", info.ID, "err", err)
		}
	}
	format, duration, err := s.probe(ctx, info.ID)
	if err != nil {
		drop()
		return nil, err
	}
	now := s.now().UTC()
	r := Recording{ID: nodus.NewID(), TenantID: a.TenantID, UserID: a.UserID, Title: title, Filename: name,
		BlobID: info.ID, MIME: format.MIME(), Size: info.Size, Duration: duration, Status: StatusPending,
		Segments: []Segment{}, KeyPoints: []string{}, CreatedAt: now, UpdatedAt: now}
	if err := s.store.CreateRecording(a.ctx(ctx), r); err != nil {
		drop()
		return nil, fmt.Errorf("recordings: create: %w", err)
	}
	return &r, s.record(ctx, a, "recording.create", r.ID, map[string]audit.Change{
		"title": {After: r.Title}, "filename": {After: r.Filename}, "mime": {After: r.MIME},
		"size": {After: r.Size}, "duration_seconds": {After: r.Duration}})
}

// probe detects a stored blob's format and reads its duration.
func (s *Service) probe(ctx context.Context, blobID string) (Format, float64, error) {
	rc, info, err := s.blobs.Open(ctx, blobID)
	if err != nil {
		return "", 0, fmt.Errorf("recordings: read upload: %w", err)
	}
	defer rc.Close()
	ra, ok := rc.(io.ReaderAt)
	if !ok {
		b, err := io.ReadAll(io.LimitReader(rc, s.maxBytes))
		if err != nil {
			return "", 0, fmt.Errorf("recordings: read upload: %w", err)
		}
		ra = bytes.NewReader(b)
	}
	head := make([]byte, min(info.Size, HeadSize))
	if n, _ := ra.ReadAt(head, 0); n < len(head) {
		return "", 0, fmt.Errorf("recordings: read upload: short read")
	}
	f, err := Detect(head)
	if err != nil {
		return "", 0, audioError(err)
	}
	d, err := Duration(f, ra, info.Size)
	if err != nil {
		return "", 0, audioError(err)
	}
	return f, d, nil
}

// audioError makes a format error an EINVALID the uploader reads.
func audioError(err error) error {
	var fe *formatError
	if errors.As(err, &fe) {
		return &nodus.Error{Code: nodus.EINVALID, Message: "unreadable audio: " + fe.msg,
			Fields: map[string]string{"file": fe.msg}}
	}
	return fmt.Errorf("recordings: read upload: %w", err)
}

// FindRecording returns a recording the actor may see.
func (s *Service) FindRecording(ctx context.Context, a Actor, id string) (*Recording, error) {
	r, err := s.find(ctx, a, id)
	if err != nil {
		return nil, err
	}
	return &r, nil
}

// ListRecordings returns a page of the actor's recordings (the tenant's,
// for an admin with f.UserID ""), newest first.
func (s *Service) ListRecordings(ctx context.Context, a Actor, f Filter, cursor string, limit int) ([]Recording, string, error) {
	if !a.Admin {
		f.UserID = a.UserID
	}
	switch f.Status {
	case "", StatusPending, StatusTranscribing, StatusSummarising, StatusCompleted, StatusFailed:
	default:
		return nil, "", invalid("status", "must be pending, transcribing, summarising, completed or failed")
	}
	return s.store.ListRecordings(a.ctx(ctx), f, cursor, limit)
}

// UpdateRecordingTitle renames a recording.
func (s *Service) UpdateRecordingTitle(ctx context.Context, a Actor, id, title string) (*Recording, error) {
	t, err := checkTitle(title)
	if err != nil {
		return nil, err
	}
	if _, err := s.find(ctx, a, id); err != nil {
		return nil, err
	}
	var before string
	r, err := s.store.UpdateRecording(a.ctx(ctx), id, false, func(r *Recording) error {
		before = r.Title
		r.Title, r.UpdatedAt = t, s.now().UTC()
		return nil
	})
	if err != nil {
		return nil, err
	}
	if before == r.Title {
		return &r, nil
	}
	return &r, s.record(ctx, a, "recording.update", id, map[string]audit.Change{"title": {Before: before, After: r.Title}})
}

// DeleteRecording removes a recording and its audio.
func (s *Service) DeleteRecording(ctx context.Context, a Actor, id string) error {
	if _, err := s.find(ctx, a, id); err != nil {
		return err
	}
	r, err := s.store.DeleteRecording(a.ctx(ctx), id)
	if err != nil {
		return err
	}
	if err := s.blobs.Delete(context.WithoutCancel(ctx), r.BlobID); err != nil {
		// The row is gone; the blob sweep of a later start cannot know
		// it, so say so.
		s.log.WarnContext(ctx, "recording audio not removed", "tenant", a.TenantID, "recording", id, "blob", r.BlobID, "err", err)
	}
	return s.record(ctx, a, "recording.delete", id, map[string]audit.Change{
		"title": {Before: r.Title}, "owner": {Before: r.UserID}, "size": {Before: r.Size}})
}

// Audio is a recording's audio for playback.
type Audio struct {
	Recording Recording
	Content   io.ReadSeekCloser
}

// OpenRecordingAudio opens a recording's audio; the caller closes it.
func (s *Service) OpenRecordingAudio(ctx context.Context, a Actor, id string) (*Audio, error) {
	r, err := s.find(ctx, a, id)
	if err != nil {
		return nil, err
	}
	rc, _, err := s.blobs.Open(ctx, r.BlobID)
	if err != nil {
		if nodus.ErrorCode(err) == nodus.ENOTFOUND {
			return nil, nodus.Errorf(nodus.ENOTFOUND, "the audio of recording %s is missing from storage", id)
		}
		return nil, fmt.Errorf("recordings: open audio: %w", err)
	}
	return &Audio{Recording: r, Content: rc}, nil
}

// RetryRecording processes a failed or waiting recording again, from
// the start, and queues it.
func (s *Service) RetryRecording(ctx context.Context, a Actor, id string) (*Recording, error) {
	if _, err := s.find(ctx, a, id); err != nil {
		return nil, err
	}
	var before string
	r, err := s.store.UpdateRecording(a.ctx(ctx), id, true, func(r *Recording) error {
		switch r.Status {
		case StatusPending, StatusFailed:
		case StatusCompleted:
			return nodus.Errorf(nodus.ECONFLICT, "the recording is already transcribed")
		default:
			if s.now().Sub(r.UpdatedAt) < s.staleAfter {
				return nodus.Errorf(nodus.ECONFLICT, "the recording is being processed")
			}
		}
		before = r.Status
		r.Status, r.StatusDetail, r.Error, r.UpdatedAt = StatusPending, "queued again", "", s.now().UTC()
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &r, s.record(ctx, a, "recording.retry", id, map[string]audit.Change{"status": {Before: before, After: r.Status}})
}

// PurgeTenant removes a deleted tenant's recordings and their audio.
func (s *Service) PurgeTenant(ctx context.Context, tenantID string) error {
	ids, err := s.store.DeleteRecordingsTenant(nodus.WithTenant(ctx, tenantID))
	if err != nil {
		return fmt.Errorf("recordings: purge tenant: %w", err)
	}
	for _, id := range ids {
		if err := s.blobs.Delete(ctx, id); err != nil {
			s.log.WarnContext(ctx, "recording audio not removed", "tenant", tenantID, "blob", id, "err", err)
		}
	}
	return nil
}

// ResumeStalled queues again the recordings left pending (a speech model
// may have been configured since) or stuck mid-way by a crashed run.
func (s *Service) ResumeStalled(ctx context.Context) (int, error) {
	return s.resume(nodus.WithAllTenants(ctx))
}

// ResumeTenant is ResumeStalled for one tenant ("" for all), when its
// settings changed: a speech model just configured starts the recordings
// waiting for one. A failure is logged; the periodic sweep tries again.
func (s *Service) ResumeTenant(ctx context.Context, tenantID string) {
	scoped := nodus.WithAllTenants(ctx)
	if tenantID != "" {
		scoped = nodus.WithTenant(ctx, tenantID)
	}
	if _, err := s.resume(scoped); err != nil {
		s.log.WarnContext(ctx, "recordings not resumed", "tenant", tenantID, "err", err)
	}
}

func (s *Service) resume(ctx context.Context) (int, error) {
	rs, err := s.store.StalledRecordings(ctx, s.now().Add(-s.staleAfter), 500)
	if err != nil {
		return 0, fmt.Errorf("recordings: stalled: %w", err)
	}
	n := 0
	for _, r := range rs {
		if r.Status == StatusPending && r.StatusDetail == DetailNoSpeechModel && s.settings != nil {
			m, err := s.settings.RecordingModels(nodus.WithTenant(ctx, r.TenantID), r.TenantID)
			if err != nil || m.Speech == "" {
				continue // still waiting: no job for it
			}
		}
		wake := r.Status == StatusPending && r.StatusDetail == DetailNoSpeechModel
		if err := s.store.QueueRecording(nodus.WithTenant(ctx, r.TenantID), r.TenantID, r.ID, wake); err != nil {
			return n, fmt.Errorf("recordings: queue %s: %w", r.ID, err)
		}
		n++
	}
	return n, nil
}

// TranscriptDocument is a completed recording's transcript as a document:
// one line per segment, "[mm:ss] text", and the metadata mapping each
// line's bytes to its seconds in the audio.
func TranscriptDocument(r Recording) (string, map[string]json.RawMessage) {
	var b strings.Builder
	b.WriteString("# " + cleanText(r.Title, maxTitleRunes) + "\n\n")
	timeline := make([]TimelineEntry, 0, len(r.Segments))
	for _, seg := range r.Segments {
		// Clean as extraction would leave it, so byte offsets hold.
		text := cleanText(seg.Text, maxTextBytes)
		if text == "" {
			continue
		}
		line := "[" + Clock(seg.Start) + "] " + text
		timeline = append(timeline, TimelineEntry{Offset: b.Len(), Length: len(line), Start: seg.Start, End: seg.End})
		b.WriteString(line + "\n")
	}
	if text := cleanText(r.Text, maxTextBytes); len(timeline) == 0 && text != "" {
		timeline = append(timeline, TimelineEntry{Offset: b.Len(), Length: len(text), Start: 0, End: r.Duration})
		b.WriteString(text + "\n")
	}
	id, _ := json.Marshal(r.ID)
	tl, _ := json.Marshal(timeline)
	return b.String(), map[string]json.RawMessage{MetaRecordingID: id, MetaTimeline: tl}
}

// Clock formats seconds as m:ss (h:mm:ss past an hour).
func Clock(secs float64) string {
	t := int(secs)
	h, m, sec := t/3600, t/60%60, t%60
	if h > 0 {
		return fmt.Sprintf("%d:%02d:%02d", h, m, sec)
	}
	return fmt.Sprintf("%d:%02d", m, sec)
}

// AddRecordingToKnowledgeBase adds a completed recording's transcript to
// a knowledge base as a document whose chunks can be traced back to the
// moment in the audio, and returns the document's id.
func (s *Service) AddRecordingToKnowledgeBase(ctx context.Context, a Actor, id, kbID string) (string, error) {
	r, err := s.find(ctx, a, id)
	if err != nil {
		return "", err
	}
	if s.knowledge == nil {
		return "", nodus.Errorf(nodus.EUNAVAILABLE, "knowledge bases are not available")
	}
	if r.Status != StatusCompleted {
		return "", nodus.Errorf(nodus.ECONFLICT, "the recording is not transcribed yet (%s)", r.Status)
	}
	if strings.TrimSpace(r.Text) == "" {
		return "", nodus.Errorf(nodus.ECONFLICT, "the recording's transcript is empty")
	}
	text, meta := TranscriptDocument(r)
	return s.knowledge.AddDocument(ctx, KnowledgeDocument{TenantID: a.TenantID, UserID: a.UserID, Admin: a.Admin,
		KnowledgeBaseID: kbID, Filename: titleFileName(r.Title) + ".md", Text: text, Metadata: meta})
}

// titleFileName makes a title a harmless file name for display.
func titleFileName(t string) string {
	t = strings.Map(func(r rune) rune {
		if strings.ContainsRune(`/\:*?"<>|`, r) {
			return '_'
		}
		return r
	}, t)
	if t = strings.Trim(t, ". "); t == "" {
		return "recording"
	}
	return t
}

// formatSeconds is for logs and details.
func formatSeconds(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + "s" }
