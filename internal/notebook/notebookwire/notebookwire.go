// Package notebookwire plugs the other modules into notebooks, for the
// composition roots (cmd/nodus): the main database with a source's summary
// job queued in the transaction that adds it, knowledge-base documents
// read from their chunks, identity as the directory of users a notebook
// can be shared with, recordings' transcripts, and the gateway, called in
// process, as the chat model. The modules themselves never import each other.
package notebookwire

import (
	"context"
	"fmt"
	"strings"

	"github.com/nodus-os/nodus/internal/gateway"
	"github.com/nodus-os/nodus/internal/identity"
	"github.com/nodus-os/nodus/internal/jobs"
	"github.com/nodus-os/nodus/internal/knowledge"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/notebook"
	"github.com/nodus-os/nodus/internal/recordings"
	"github.com/nodus-os/nodus/internal/settings"
	"github.com/nodus-os/nodus/internal/store"
)

// Store is the main database with CreateNotebookSource queuing the
// source's summary job in its transaction.
type Store struct {
	*store.DB
	// Queue returns the job queue; a function because serve builds the
	// queue after the services whose workers it runs. A nil queue (tests
	// without jobs) queues nothing.
	Queue func() *jobs.Queue
}

var _ notebook.Store = Store{}

// CreateNotebookSource implements notebook.Store.
func (s Store) CreateNotebookSource(ctx context.Context, src notebook.Source) error {
	return s.DB.CreateNotebookSource(ctx, src, func(ctx context.Context, tx *store.Tx) error {
		if s.Queue == nil {
			return nil
		}
		q := s.Queue()
		if q == nil {
			return fmt.Errorf("notebookwire: the job queue is not built yet")
		}
		_, err := q.InsertTx(ctx, tx, jobs.NotebookSummaryArgs{TenantID: src.TenantID, NotebookID: src.NotebookID, SourceID: src.ID}, nil)
		return err
	})
}

// Documents reads a knowledge-base document's text from its chunks, in
// the tenant's scope.
type Documents struct{ DB *store.DB }

var _ notebook.Documents = Documents{}

// DocumentText implements notebook.Documents: the chunks' texts in order,
// without the overlap between neighbours.
func (d Documents) DocumentText(ctx context.Context, tenantID, id string) (string, string, error) {
	ctx = nodus.WithTenant(ctx, tenantID)
	doc, err := d.DB.FindDocument(ctx, id)
	if err != nil {
		return "", "", err
	}
	if doc.Status != knowledge.StatusCompleted {
		return "", "", nodus.Errorf(nodus.ECONFLICT, "the document %s is %s; only an indexed document can be a source",
			doc.OriginalFilename, doc.Status)
	}
	chunks, err := d.DB.ListChunks(ctx, id)
	if err != nil {
		return "", "", err
	}
	var b strings.Builder
	end := 0
	for _, c := range chunks {
		text := c.Text
		// A chunk that overlaps the one before repeats its opening bytes.
		if c.Start < end && c.End-c.Start == len(text) && end-c.Start <= len(text) {
			text = text[end-c.Start:]
		} else if b.Len() > 0 {
			b.WriteString("\n\n")
		}
		b.WriteString(text)
		end = max(end, c.End)
	}
	return doc.OriginalFilename, b.String(), nil
}

// Users are the active users of a tenant, through identity.
type Users struct{ Identity *identity.Service }

var _ notebook.Users = Users{}

// Member implements notebook.Users.
func (u Users) Member(ctx context.Context, tenantID, userID string) (bool, error) {
	if !nodus.ValidID(userID) {
		return false, nil
	}
	usr, err := u.Identity.User(nodus.WithTenant(ctx, tenantID), userID)
	if nodus.ErrorCode(err) == nodus.ENOTFOUND {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return usr.IsActive && usr.TenantID == tenantID, nil
}

// Models calls the gateway in process as the notebook's user.
type Models struct{ Service *gateway.Service }

var _ notebook.Models = Models{}

var _ notebook.StreamModels = Models{}

func request(r notebook.ModelRequest) (gateway.Caller, *gateway.ChatRequest) {
	msgs := make([]gateway.Message, len(r.Messages))
	for i, msg := range r.Messages {
		msgs[i] = gateway.Message{Role: msg.Role, Content: gateway.TextContent(msg.Content)}
	}
	maxTokens := r.MaxTokens
	return gateway.Caller{TenantID: r.TenantID, UserID: r.UserID},
		&gateway.ChatRequest{Model: r.Model, Messages: msgs, MaxTokens: &maxTokens}
}

func call(info *gateway.CallInfo) *notebook.ModelCall {
	if info == nil {
		return nil
	}
	return &notebook.ModelCall{Model: info.Model, RequestID: info.RequestID, CostMicros: info.CostMicros}
}

// Complete implements notebook.Models: the first choice's whole answer.
func (m Models) Complete(ctx context.Context, r notebook.ModelRequest) (string, *notebook.ModelCall, error) {
	caller, req := request(r)
	resp, info, err := m.Service.Chat(ctx, caller, req)
	if err != nil {
		return "", call(info), gateway.NodusError(err, "model "+r.Model)
	}
	return resp.Text(), call(info), nil
}

// Stream implements notebook.StreamModels: the first choice's content as
// it arrives.
func (m Models) Stream(ctx context.Context, r notebook.ModelRequest, delta func(string) error) (*notebook.ModelCall, error) {
	caller, req := request(r)
	info, err := m.Service.ChatStreamText(ctx, caller, req, delta)
	if err != nil {
		return call(info), gateway.NodusError(err, "model "+r.Model)
	}
	return call(info), nil
}

// CountTokens implements notebook.Models with the gateway's tokenizers.
func (Models) CountTokens(model, text string) int64 { return gateway.CountTokens(model, text) }

// Defaults reads a tenant's chat model from its settings: the model that
// summarises its recordings.
type Defaults struct{ Settings *settings.Service }

var _ notebook.Defaults = Defaults{}

// ChatModel implements notebook.Defaults.
func (d Defaults) ChatModel(ctx context.Context, tenantID string) (string, error) {
	_, summary, err := d.Settings.RecordingModels(nodus.WithTenant(ctx, tenantID), tenantID)
	return summary, err
}

// Recordings reads a recording's transcript for a notebook source, as the
// user who adds it: their own recordings only, as the recordings module
// shows a user.
type Recordings struct{ Service *recordings.Service }

// Transcript returns the recording's title and full transcript;
// ECONFLICT while it is not transcribed.
func (r Recordings) Transcript(ctx context.Context, tenantID, userID, id string) (string, string, error) {
	rec, err := r.Service.FindRecording(ctx, recordings.Actor{TenantID: tenantID, UserID: userID}, id)
	if err != nil {
		return "", "", err
	}
	if rec.Status != recordings.StatusCompleted {
		return "", "", nodus.Errorf(nodus.ECONFLICT, "recording %s is %s: only a transcribed recording can be a source", id, rec.Status)
	}
	return rec.Title, rec.Text, nil
}
