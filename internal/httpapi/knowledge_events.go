package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/nodus-os/nodus/internal/knowledge"
	"github.com/nodus-os/nodus/internal/nodus"
)

// This file holds the progress stream of a knowledge base's documents:
// Server-Sent Events read from the database by polling, since ingestion
// runs in the job queue, possibly in another process, and leaves its
// progress only in the document's row.

// documentEventsConfig times a progress stream; zero fields take the
// defaults below. Tests build the handler with shorter ones.
type documentEventsConfig struct {
	poll     time.Duration // how often the database is read
	ping     time.Duration // how often a comment keeps idle proxies from closing the stream
	lifetime time.Duration // how long a stream lasts before it ends itself with event: end
	tracked  int           // the most documents one stream follows
}

const (
	documentEventsPoll     = 500 * time.Millisecond
	documentEventsPing     = 15 * time.Second
	documentEventsLifetime = 30 * time.Minute
	documentEventsTracked  = 200
	// documentEventsTimeout is the route's timeout: past the stream's
	// lifetime, so a stream ends with event: end, not a cut connection.
	documentEventsTimeout = documentEventsLifetime + time.Minute
	// documentEventsPage is the page size of the listings of a poll.
	documentEventsPage = 100
	// eventWriteTimeout bounds the write of one batch of events: a client
	// that stops reading loses its stream instead of holding a goroutine.
	eventWriteTimeout = 10 * time.Second
)

func (c documentEventsConfig) withDefaults() documentEventsConfig {
	if c.poll <= 0 {
		c.poll = documentEventsPoll
	}
	if c.ping <= 0 {
		c.ping = documentEventsPing
	}
	if c.lifetime <= 0 {
		c.lifetime = documentEventsLifetime
	}
	if c.tracked <= 0 {
		c.tracked = documentEventsTracked
	}
	return c
}

// Why a stream ended, the data of its last event.
const (
	endFinished = "finished" // the document followed is completed or failed
	endDeleted  = "deleted"  // the document followed, or the knowledge base, is gone
	endLifetime = "lifetime" // the stream lasted documentEventsConfig.lifetime
	endShutdown = "shutdown" // the server is shutting down (Server.Drain)
	endError    = "error"    // the database could not be read
)

// handleDocumentEvents streams the progress of a knowledge base's
// documents, or of the one named by ?document=, as Server-Sent Events
// (docs/api.md). The knowledge base and the document are looked up before
// the stream starts, so another tenant's are a plain 404.
func (s *Server) handleDocumentEvents(cfg documentEventsConfig) http.Handler {
	cfg = cfg.withDefaults()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		m, err := s.knowledgeManager(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		f := &documentFeed{kn: s.deps.Knowledge, m: m, kbID: r.PathValue("id"), docID: r.URL.Query().Get("document"),
			limit: cfg.tracked, sent: map[string]documentState{}}
		if _, err := f.kn.GetKnowledgeBase(ctx, m, f.kbID); err != nil {
			s.writeError(w, r, err)
			return
		}
		// The first poll sends the initial state; its errors are still
		// answers in JSON.
		events, end, err := f.poll(ctx)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		es := newEventStream(w)
		// A HEAD (which a GET route answers too) gets the headers only:
		// its body is discarded, so a stream would poll for nobody.
		if err := es.send(events, end); err != nil || end != "" || r.Method == http.MethodHead {
			return
		}
		poll, ping, life := time.NewTicker(cfg.poll), time.NewTicker(cfg.ping), time.NewTimer(cfg.lifetime)
		defer poll.Stop()
		defer ping.Stop()
		defer life.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-s.draining:
				_ = es.send(nil, endShutdown)
				return
			case <-life.C:
				_ = es.send(nil, endLifetime)
				return
			case <-ping.C:
				if es.comment("ping") != nil {
					return
				}
			case <-poll.C:
				events, end, err := f.poll(ctx)
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					s.deps.Logger.WarnContext(ctx, "document events: poll failed", "knowledge_base", f.kbID, "error", err)
					_ = es.send(nil, endError)
					return
				}
				if err := es.send(events, end); err != nil || end != "" {
					return
				}
			}
		}
	})
}

// documentState is what a progress event reports of a document; an event
// is sent when it changes.
type documentState struct {
	status, stage, error string
	progress, chunks     int
}

func stateOf(d *knowledge.Document) documentState {
	return documentState{status: d.Status, stage: d.Stage, error: d.Error, progress: d.Progress, chunks: d.ChunkCount}
}

func finished(status string) bool {
	return status == knowledge.StatusCompleted || status == knowledge.StatusFailed
}

// sseEvent is one event of a stream before it is written.
type sseEvent struct {
	name string
	data any
}

// documentFeed turns polls of the database into events. It follows one
// document, or the knowledge base's pending and processing ones (at most
// limit of them): its memory is one small state per document followed.
type documentFeed struct {
	kn          *knowledge.Service
	m           knowledge.Manager
	kbID, docID string
	limit       int
	// sent is the state last sent of each document followed.
	sent map[string]documentState
	// polled is set after the first poll: from then on a document or
	// knowledge base not found has been deleted.
	polled bool
}

// poll reads the documents followed and returns the events for those that
// changed since the last poll, and the reason the stream ends ("" while it
// goes on).
func (f *documentFeed) poll(ctx context.Context) ([]sseEvent, string, error) {
	poll := f.pollKnowledgeBase
	if f.docID != "" {
		poll = f.pollDocument
	}
	events, end, err := poll(ctx)
	if nodus.ErrorCode(err) == nodus.ENOTFOUND && f.polled {
		return append(events, f.deleteAll()...), endDeleted, nil
	}
	f.polled = true
	return events, end, err
}

func (f *documentFeed) pollDocument(ctx context.Context) ([]sseEvent, string, error) {
	d, err := f.kn.GetDocument(ctx, f.m, f.kbID, f.docID)
	if err != nil {
		return nil, "", err
	}
	var out []sseEvent
	if f.changed(d) {
		out = append(out, sseEvent{"document", viewDocument(d)})
	}
	if finished(d.Status) {
		return out, endFinished, nil
	}
	return out, "", nil
}

// pollKnowledgeBase lists the processing documents, then the pending ones,
// up to the limit; a document followed that is in neither list any more
// is read once more for its final event (or its deletion) and dropped.
func (f *documentFeed) pollKnowledgeBase(ctx context.Context) ([]sseEvent, string, error) {
	var out []sseEvent
	listed := make(map[string]bool, len(f.sent))
	for _, status := range []string{knowledge.StatusProcessing, knowledge.StatusPending} {
		cursor := ""
		for len(listed) < f.limit {
			page, next, err := f.kn.ListDocuments(ctx, f.m, f.kbID, status, cursor, min(documentEventsPage, f.limit-len(listed)))
			if err != nil {
				return nil, "", err
			}
			for i := range page {
				d := &page[i]
				listed[d.ID] = true
				if f.changed(d) {
					out = append(out, sseEvent{"document", viewDocument(d)})
				}
			}
			if next == "" {
				break
			}
			cursor = next
		}
	}
	// Sorted, so the events of a poll come in id order whatever the map's.
	gone := make([]string, 0, len(f.sent))
	for id := range f.sent {
		if !listed[id] {
			gone = append(gone, id)
		}
	}
	slices.Sort(gone)
	for _, id := range gone {
		d, err := f.kn.GetDocument(ctx, f.m, f.kbID, id)
		switch {
		case nodus.ErrorCode(err) == nodus.ENOTFOUND:
			out = append(out, deletedEvent(id))
		case err != nil:
			return nil, "", err
		case f.changed(d):
			out = append(out, sseEvent{"document", viewDocument(d)})
		}
		// Finished, deleted, or still active but past the limit: either
		// way no longer followed. One past the limit that comes back into the
		// lists is sent again, which a client reading events as snapshots
		// does not mind.
		delete(f.sent, id)
	}
	return out, "", nil
}

// changed records d's state and reports whether it differs from the one
// last sent.
func (f *documentFeed) changed(d *knowledge.Document) bool {
	st := stateOf(d)
	if prev, ok := f.sent[d.ID]; ok && prev == st {
		return false
	}
	f.sent[d.ID] = st
	return true
}

func (f *documentFeed) deleteAll() []sseEvent {
	ids := make([]string, 0, len(f.sent))
	for id := range f.sent {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	out := make([]sseEvent, len(ids))
	for i, id := range ids {
		out[i] = deletedEvent(id)
	}
	clear(f.sent)
	return out
}

func deletedEvent(id string) sseEvent {
	return sseEvent{"deleted", map[string]string{"id": id}}
}

// eventStream writes Server-Sent Events, each with an id counting from 1.
// Every batch is flushed within eventWriteTimeout; the deadline is then
// lifted, as net/http would keep it for the connection's next request.
type eventStream struct {
	w   http.ResponseWriter
	rc  *http.ResponseController
	id  int
	buf bytes.Buffer
}

// newEventStream sends the stream's headers at once, so the client knows
// the stream is open before there is anything to report.
func newEventStream(w http.ResponseWriter) *eventStream {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx would otherwise buffer the stream
	h.Del("Content-Length")
	w.WriteHeader(http.StatusOK)
	return &eventStream{w: w, rc: http.NewResponseController(w)}
}

// send writes events, then event: end when end is not "", and flushes
// them; with neither it only flushes (the headers, the first time).
func (e *eventStream) send(events []sseEvent, end string) error {
	if end != "" {
		events = append(events, sseEvent{"end", map[string]string{"reason": end}})
	}
	for _, ev := range events {
		// encoding/json escapes line breaks, so the data is one line.
		data, err := json.Marshal(ev.data)
		if err != nil {
			return fmt.Errorf("event stream: encode %s event: %w", ev.name, err)
		}
		e.id++
		e.buf.WriteString("id: " + strconv.Itoa(e.id) + "\nevent: " + ev.name + "\ndata: ")
		e.buf.Write(data)
		e.buf.WriteString("\n\n")
	}
	return e.flush()
}

// comment writes a comment line, which clients ignore.
func (e *eventStream) comment(text string) error {
	e.buf.WriteString(": " + text + "\n\n")
	return e.flush()
}

func (e *eventStream) flush() error {
	_ = e.rc.SetWriteDeadline(time.Now().Add(eventWriteTimeout))
	defer e.rc.SetWriteDeadline(time.Time{})
	if e.buf.Len() > 0 {
		_, err := e.w.Write(e.buf.Bytes())
		e.buf.Reset()
		if err != nil {
			return fmt.Errorf("event stream: write: %w", err)
		}
	}
	if err := e.rc.Flush(); err != nil {
		return fmt.Errorf("event stream: flush: %w", err)
	}
	return nil
}
