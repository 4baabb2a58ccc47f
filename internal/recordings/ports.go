package recordings

import (
	"context"
	"encoding/json"
	"io"
	"time"
)

// This file holds what the recordings module needs of the database, the
// model gateway, the tenant's settings, the knowledge bases and the
// notifications, in its own terms; recordingswire adapts the other
// modules to these ports.

// Store keeps recordings. Every method but StalledRecordings works in
// ctx's tenant scope; a recording of another tenant is ENOTFOUND.
type Store interface {
	// CreateRecording writes a new recording and queues its processing in
	// the same transaction.
	CreateRecording(ctx context.Context, r Recording) error
	FindRecording(ctx context.Context, id string) (Recording, error)
	// ListRecordings returns a page, newest first, and the next cursor.
	ListRecordings(ctx context.Context, f Filter, cursor string, limit int) ([]Recording, string, error)
	// UpdateRecording applies fn to the locked row and writes it back
	// (nothing when fn fails); with queue it also queues the recording's
	// processing in that transaction.
	UpdateRecording(ctx context.Context, id string, queue bool, fn func(*Recording) error) (Recording, error)
	// DeleteRecording removes the row and returns it (for its blob).
	DeleteRecording(ctx context.Context, id string) (Recording, error)
	// StalledRecordings lists, across tenants, recordings pending, or
	// transcribing or summarising without an update since before.
	StalledRecordings(ctx context.Context, before time.Time, limit int) ([]Recording, error)
	// QueueRecording queues a recording's processing again. wake queues
	// it even while an earlier job for it still runs: that job may have
	// just found no speech model and be about to end.
	QueueRecording(ctx context.Context, tenantID, id string, wake bool) error
	// DeleteRecordingsTenant removes the scope tenant's recordings and
	// returns their blob ids.
	DeleteRecordingsTenant(ctx context.Context) ([]string, error)
}

// TranscribeRequest asks the gateway to transcribe audio as a user of the
// tenant, with timed segments.
type TranscribeRequest struct {
	TenantID string
	UserID   string
	Model    string
	Audio    io.Reader
	FileName string
	MIME     string
}

// Transcript is what the speech model heard.
type Transcript struct {
	Language string
	Text     string
	Duration float64 // seconds; 0 when not reported
	Segments []Segment
}

// Transcriber transcribes through the gateway. Its errors are
// *nodus.Error: EINVALID for audio or a request the model refuses,
// ENOTFOUND for a model the gateway does not have, ERATELIMIT for a
// spent budget or a rate limit, EUNAVAILABLE or ETIMEOUT for an upstream
// that could not answer.
type Transcriber interface {
	Transcribe(ctx context.Context, req TranscribeRequest) (Transcript, error)
}

// CompleteRequest is a chat completion asked as a user of the tenant.
type CompleteRequest struct {
	TenantID string
	UserID   string
	Model    string
	System   string
	Prompt   string
}

// Models calls chat models through the gateway (errors as Transcriber's).
type Models interface {
	Complete(ctx context.Context, req CompleteRequest) (string, error)
}

// ModelSettings are a tenant's models for recordings; "" for none.
type ModelSettings struct {
	Speech  string
	Summary string
}

// Settings reads a tenant's settings.
type Settings interface {
	RecordingModels(ctx context.Context, tenantID string) (ModelSettings, error)
}

// KnowledgeDocument is a transcript to add to a knowledge base, as the
// actor: the text, one line per segment, and the metadata that lets a
// chunk of it be traced back to the moment in the audio.
type KnowledgeDocument struct {
	TenantID        string
	UserID          string
	Admin           bool
	KnowledgeBaseID string
	Filename        string
	Text            string
	Metadata        map[string]json.RawMessage
}

// Knowledge adds documents to knowledge bases; a knowledge base of
// another tenant is ENOTFOUND, a caller who may not manage it EFORBIDDEN.
type Knowledge interface {
	AddDocument(ctx context.Context, d KnowledgeDocument) (documentID string, err error)
}

// Timeline metadata of a transcript document (see TranscriptDocument).
const (
	MetaRecordingID = "recording_id"
	MetaTimeline    = "timeline"
)

// TimelineEntry maps a byte range of a transcript document's text to the
// seconds of the audio it was heard at.
type TimelineEntry struct {
	Offset int     `json:"o"` // byte offset of the segment's line
	Length int     `json:"n"`
	Start  float64 `json:"s"`
	End    float64 `json:"e"`
}

// Span returns the audio seconds of the document's bytes [from, to): the
// start of the first segment overlapping them and the end of the last.
// ok is false when none does.
func Span(timeline []TimelineEntry, from, to int) (start, end float64, ok bool) {
	for _, t := range timeline {
		if t.Offset+t.Length <= from || t.Offset >= to {
			continue
		}
		if !ok {
			start, ok = t.Start, true
		}
		end = t.End
	}
	return start, end, ok
}
