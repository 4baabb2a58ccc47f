package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/chunk"
	"github.com/nodus-os/nodus/internal/identity"
	"github.com/nodus-os/nodus/internal/knowledge"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
)

// streamEvent is one event of a stream as a client reads it; a comment
// line comes as name ":" with the comment as data.
type streamEvent struct {
	id         int
	name, data string
}

// document decodes a document event's data.
func (e streamEvent) document(t *testing.T) documentView {
	t.Helper()
	var v documentView
	if e.name != "document" {
		t.Fatalf("event %d is %q, want document: %s", e.id, e.name, e.data)
	}
	if err := json.Unmarshal([]byte(e.data), &v); err != nil {
		t.Fatalf("event %d: %v: %s", e.id, err, e.data)
	}
	return v
}

// eventClient is an open stream read by a real HTTP client on loopback.
type eventClient struct {
	res    *http.Response
	events chan streamEvent // closed at the end of the body
	cancel context.CancelFunc
}

// openEvents opens a stream at url as token: the answer's status and, if
// it is 200, the stream.
func openEvents(t *testing.T, url, token string) (*eventClient, int, string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	// The answer, or at least its headers, must come at once.
	timer := time.AfterFunc(10*time.Second, cancel)
	res, err := (&http.Client{}).Do(req)
	timer.Stop()
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 200 {
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		cancel()
		return nil, res.StatusCode, string(body)
	}
	c := &eventClient{res: res, events: make(chan streamEvent, 100), cancel: cancel}
	go func() {
		defer close(c.events)
		defer res.Body.Close()
		sc := bufio.NewScanner(res.Body)
		var ev streamEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.name != "" {
					c.events <- ev
				}
				ev = streamEvent{}
			case strings.HasPrefix(line, ": "):
				c.events <- streamEvent{name: ":", data: line[2:]}
			case strings.HasPrefix(line, "id: "):
				ev.id, _ = strconv.Atoi(line[4:])
			case strings.HasPrefix(line, "event: "):
				ev.name = line[7:]
			case strings.HasPrefix(line, "data: "):
				ev.data = line[6:]
			default:
				t.Errorf("unexpected line %q", line)
			}
		}
	}()
	return c, 200, ""
}

// next returns the next event, skipping pings; ok is false at the end of
// the stream.
func (c *eventClient) next(t *testing.T) (streamEvent, bool) {
	t.Helper()
	for {
		select {
		case ev, ok := <-c.events:
			if ok && ev.name == ":" {
				continue
			}
			return ev, ok
		case <-time.After(10 * time.Second):
			t.Fatal("no event within 10s")
		}
	}
}

// mustNext is next at a point where the stream must go on.
func (c *eventClient) mustNext(t *testing.T) streamEvent {
	t.Helper()
	ev, ok := c.next(t)
	if !ok {
		t.Fatal("the stream closed")
	}
	return ev
}

// until reads events up to and including the end event, and checks the
// stream closes after it and the ids count from 1 without a gap.
func (c *eventClient) until(t *testing.T) (docs []streamEvent, end streamEvent) {
	t.Helper()
	want := 1
	for {
		ev, ok := c.next(t)
		if !ok {
			t.Fatal("the stream closed without an end event")
		}
		if ev.id != want {
			t.Errorf("event id %d, want %d", ev.id, want)
		}
		want = ev.id + 1
		if ev.name == "end" {
			if _, ok := c.next(t); ok {
				t.Fatal("events after the end event")
			}
			return docs, ev
		}
		docs = append(docs, ev)
	}
}

// eventsServer serves the events route alone, built with cfg and wrapped
// as NewServer wraps its routes (credentials, tenant, deadlines); each
// request that returns sends on returned, when it is not nil.
func (f *knowledgeFixture) eventsServer(t *testing.T, cfg documentEventsConfig, returned chan<- struct{}) string {
	t.Helper()
	s := f.ts.Config.Handler.(*Server)
	h := s.wrap(route{handler: s.handleDocumentEvents(cfg), action: identity.ActionReadKnowledge, timeout: time.Minute})
	mux := http.NewServeMux()
	mux.Handle("GET /api/v1/knowledge-bases/{id}/documents/events", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if returned != nil {
			defer func() { returned <- struct{}{} }()
		}
		h.ServeHTTP(w, r)
	}))
	return serve(t, mux).URL
}

// uploadDocument uploads a file as A's org_admin and returns its id,
// pending, not ingested.
func (f *knowledgeFixture) uploadDocument(t *testing.T, kbID, filename, content string) string {
	t.Helper()
	body, ct := multipartBody(t, "", filename, content)
	var up struct {
		Document struct{ ID string } `json:"document"`
	}
	f.must(t, f.admin, "POST", "/api/v1/knowledge-bases/"+kbID+"/documents", ct, body, 201, &up)
	return up.Document.ID
}

var fastEvents = documentEventsConfig{poll: 5 * time.Millisecond}

// TestDocumentEventsFollowIngestion follows one document through its
// ingestion: pending, processing (held at chunking until the stream has
// shown it), completed, then the end of the stream.
func TestDocumentEventsFollowIngestion(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		gate := make(chan struct{})
		f := newKnowledgeFixture(t, db, func(c *knowledge.Config) {
			c.Count = func(s string) int {
				select {
				case <-gate:
				case <-time.After(10 * time.Second):
				}
				return chunk.Approx(s)
			}
		})
		var kb kbAnswer
		f.must(t, f.admin, "POST", "/api/v1/knowledge-bases", "", map[string]any{"name": "Docs"}, 201, &kb)
		kbID := kb.KnowledgeBase.ID
		docID := f.uploadDocument(t, kbID, "guide.md", "# Guide\n\nHow to follow an ingestion.\n")
		base := f.eventsServer(t, fastEvents, nil)

		c, status, body := openEvents(t, base+"/api/v1/knowledge-bases/"+kbID+"/documents/events?document="+docID, f.admin)
		if status != 200 {
			t.Fatalf("open: %d %s", status, body)
		}
		for k, v := range map[string]string{"Content-Type": "text/event-stream", "Cache-Control": "no-store", "X-Accel-Buffering": "no"} {
			if got := c.res.Header.Get(k); got != v {
				t.Errorf("%s: %q, want %q", k, got, v)
			}
		}
		ingested := make(chan error, 1)
		go func() { ingested <- f.kn.Ingest(context.Background(), f.a, docID, knowledge.IngestOptions{}) }()

		var statuses []string
		want := 1
		for {
			ev, ok := c.next(t)
			if !ok {
				t.Fatal("the stream closed without an end event")
			}
			if ev.id != want {
				t.Errorf("event id %d, want %d", ev.id, want)
			}
			want++
			if ev.name == "end" {
				if ev.data != `{"reason":"finished"}` {
					t.Errorf("end: %s", ev.data)
				}
				break
			}
			d := ev.document(t)
			if d.ID != docID || d.KnowledgeBaseID != kbID || d.OriginalFilename != "guide.md" {
				t.Errorf("event %d: %+v", ev.id, d)
			}
			if len(statuses) == 0 || statuses[len(statuses)-1] != d.Status {
				statuses = append(statuses, d.Status)
			}
			if d.Status == knowledge.StatusProcessing && d.Stage == knowledge.StageChunking {
				close(gate)
			}
			if d.Status == knowledge.StatusCompleted && (d.Progress != 100 || d.ChunkCount < 1 || d.Error != "") {
				t.Errorf("completed: %+v", d)
			}
		}
		if strings.Join(statuses, ",") != "pending,processing,completed" {
			t.Errorf("statuses %v, want pending, processing, completed", statuses)
		}
		if _, ok := c.next(t); ok {
			t.Error("the stream did not close after its end")
		}
		if err := <-ingested; err != nil {
			t.Fatal(err)
		}
	})
}

// TestDocumentEventsFailure follows a malformed PDF: its last event is
// failed with the message its uploader reads.
func TestDocumentEventsFailure(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		f := newKnowledgeFixture(t, db)
		var kb kbAnswer
		f.must(t, f.admin, "POST", "/api/v1/knowledge-bases", "", map[string]any{"name": "Docs"}, 201, &kb)
		kbID := kb.KnowledgeBase.ID
		docID := f.uploadDocument(t, kbID, "scan.pdf", "%PDF-1.4\n1 0 obj\n<< /Type /Catalog garbage\n\x00\x01\x02 trailer\n")
		base := f.eventsServer(t, fastEvents, nil)
		c, status, body := openEvents(t, base+"/api/v1/knowledge-bases/"+kbID+"/documents/events?document="+docID, f.user)
		if status != 200 {
			t.Fatalf("open: %d %s", status, body)
		}
		if err := f.kn.Ingest(context.Background(), f.a, docID, knowledge.IngestOptions{}); err == nil {
			t.Fatal("a malformed PDF was ingested")
		}
		docs, end := c.until(t)
		if end.data != `{"reason":"finished"}` {
			t.Errorf("end: %s", end.data)
		}
		last := docs[len(docs)-1].document(t)
		var stored struct{ Document documentView }
		f.must(t, f.admin, "GET", "/api/v1/knowledge-bases/"+kbID+"/documents/"+docID, "", nil, 200, &stored)
		if last.Status != knowledge.StatusFailed || last.Error == "" || last.Error != stored.Document.Error {
			t.Errorf("last event %+v, want failed with %q", last, stored.Document.Error)
		}
		t.Logf("error shown: %q", last.Error)
	})
}

// TestDocumentEventsDeleted deletes the document followed: event: deleted,
// then the end.
func TestDocumentEventsDeleted(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		f := newKnowledgeFixture(t, db)
		var kb kbAnswer
		f.must(t, f.admin, "POST", "/api/v1/knowledge-bases", "", map[string]any{"name": "Docs"}, 201, &kb)
		kbID := kb.KnowledgeBase.ID
		docID := f.uploadDocument(t, kbID, "gone.md", "# Gone\n\nSoon deleted.\n")
		base := f.eventsServer(t, fastEvents, nil)
		c, status, body := openEvents(t, base+"/api/v1/knowledge-bases/"+kbID+"/documents/events?document="+docID, f.viewer)
		if status != 200 {
			t.Fatalf("open: %d %s", status, body)
		}
		if ev, _ := c.next(t); ev.document(t).Status != knowledge.StatusPending {
			t.Fatalf("first event: %s", ev.data)
		}
		f.must(t, f.admin, "DELETE", "/api/v1/knowledge-bases/"+kbID+"/documents/"+docID, "", nil, 204, nil)
		ev, ok := c.next(t)
		if !ok || ev.name != "deleted" || ev.data != `{"id":"`+docID+`"}` || ev.id != 2 {
			t.Fatalf("after the delete: %+v", ev)
		}
		if ev, ok := c.next(t); !ok || ev.name != "end" || ev.data != `{"reason":"deleted"}` {
			t.Fatalf("end: %+v", ev)
		}
		if _, ok := c.next(t); ok {
			t.Error("the stream did not close after its end")
		}
	})
}

// TestDocumentEventsKnowledgeBase follows a whole knowledge base: its
// pending documents first, then each change, until the client leaves,
// and the handler returns when it does.
func TestDocumentEventsKnowledgeBase(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		f := newKnowledgeFixture(t, db)
		var kb kbAnswer
		f.must(t, f.admin, "POST", "/api/v1/knowledge-bases", "", map[string]any{"name": "Docs"}, 201, &kb)
		kbID := kb.KnowledgeBase.ID
		f.addDocument(t, f.a, kbID, "a failed document, not followed")
		one := f.uploadDocument(t, kbID, "one.md", "# One\n\nThe first document.\n")
		two := f.uploadDocument(t, kbID, "two.md", "# Two\n\nThe second document.\n")
		returned := make(chan struct{}, 1)
		base := f.eventsServer(t, fastEvents, returned)
		c, status, body := openEvents(t, base+"/api/v1/knowledge-bases/"+kbID+"/documents/events", f.viewer)
		if status != 200 {
			t.Fatalf("open: %d %s", status, body)
		}
		for _, want := range []string{one, two} { // in id order
			if d := c.mustNext(t).document(t); d.ID != want || d.Status != knowledge.StatusPending {
				t.Fatalf("initial event: %+v, want %s pending", d, want)
			}
		}
		if err := f.kn.Ingest(context.Background(), f.a, one, knowledge.IngestOptions{}); err != nil {
			t.Fatal(err)
		}
		// Ingestion may be seen midway; its last event is completed.
		for {
			d := c.mustNext(t).document(t)
			if d.ID != one {
				t.Fatalf("event for %s, want %s", d.ID, one)
			}
			if d.Status == knowledge.StatusCompleted {
				break
			}
		}
		f.must(t, f.admin, "DELETE", "/api/v1/knowledge-bases/"+kbID+"/documents/"+two, "", nil, 204, nil)
		if ev := c.mustNext(t); ev.name != "deleted" || ev.data != `{"id":"`+two+`"}` {
			t.Fatalf("after the delete: %+v", ev)
		}
		select {
		case <-returned:
			t.Fatal("the handler returned while the client reads")
		case <-time.After(50 * time.Millisecond):
		}
		c.cancel()
		select {
		case <-returned:
		case <-time.After(5 * time.Second):
			t.Fatal("the handler still runs after the client left")
		}

		// A HEAD gets the headers, and no stream.
		req, _ := http.NewRequest("HEAD", base+"/api/v1/knowledge-bases/"+kbID+"/documents/events", nil)
		req.Header.Set("Authorization", "Bearer "+f.viewer)
		res, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" {
			t.Errorf("HEAD: %d %v", res.StatusCode, res.Header)
		}
		select {
		case <-returned:
		case <-time.After(5 * time.Second):
			t.Fatal("the handler of a HEAD still runs")
		}
	})
}

// TestDocumentEventsLifetime: an idle stream is pinged, and ends by itself
// with event: end once its lifetime is over.
func TestDocumentEventsLifetime(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		f := newKnowledgeFixture(t, db)
		var kb kbAnswer
		f.must(t, f.admin, "POST", "/api/v1/knowledge-bases", "", map[string]any{"name": "Docs"}, 201, &kb)
		base := f.eventsServer(t, documentEventsConfig{poll: 5 * time.Millisecond, ping: 20 * time.Millisecond,
			lifetime: 300 * time.Millisecond}, nil)
		c, status, body := openEvents(t, base+"/api/v1/knowledge-bases/"+kb.KnowledgeBase.ID+"/documents/events", f.viewer)
		if status != 200 {
			t.Fatalf("open: %d %s", status, body)
		}
		var pings int
		for {
			select {
			case ev, ok := <-c.events:
				switch {
				case !ok:
					t.Fatal("the stream closed without an end event")
				case ev.name == ":":
					if ev.data != "ping" {
						t.Errorf("comment %q", ev.data)
					}
					pings++
					continue
				case ev.name != "end" || ev.data != `{"reason":"lifetime"}` || ev.id != 1:
					t.Fatalf("event %+v, want the end", ev)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the stream outlived its lifetime")
			}
			break
		}
		if pings == 0 {
			t.Error("no ping")
		}
		if _, ok := c.next(t); ok {
			t.Error("the stream did not close after its end")
		}
	})
}

// TestDocumentEventsDrain: Server.Drain, which a graceful shutdown calls,
// ends an open stream at once with its reason, so the shutdown does not
// wait on it.
func TestDocumentEventsDrain(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		f := newKnowledgeFixture(t, db)
		var kb kbAnswer
		f.must(t, f.admin, "POST", "/api/v1/knowledge-bases", "", map[string]any{"name": "Docs"}, 201, &kb)
		returned := make(chan struct{}, 1)
		base := f.eventsServer(t, fastEvents, returned)
		c, status, body := openEvents(t, base+"/api/v1/knowledge-bases/"+kb.KnowledgeBase.ID+"/documents/events", f.viewer)
		if status != 200 {
			t.Fatalf("open: %d %s", status, body)
		}
		f.ts.Config.Handler.(*Server).Drain()
		select {
		case ev, ok := <-c.events:
			if !ok || ev.name != "end" || ev.data != `{"reason":"shutdown"}` {
				t.Fatalf("event %+v (open %v), want the end for shutdown", ev, ok)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the stream outlived the drain")
		}
		select {
		case <-returned:
		case <-time.After(10 * time.Second):
			t.Fatal("the handler did not return after the drain")
		}
	})
}

// TestDocumentEventsRoute opens the real route: any member of the tenant
// may, another tenant's knowledge base or document is 404 before any
// stream, and the stream's headers pass through the server's middleware.
func TestDocumentEventsRoute(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		f := newKnowledgeFixture(t, db)
		const base = "/api/v1/knowledge-bases"
		var a, b kbAnswer
		f.must(t, f.admin, "POST", base, "", map[string]any{"name": "A docs"}, 201, &a)
		f.must(t, f.bAdmin, "POST", base, "", map[string]any{"name": "B docs"}, 201, &b)
		aKB, bKB := a.KnowledgeBase.ID, b.KnowledgeBase.ID
		aDoc := f.uploadDocument(t, aKB, "a.md", "# A\n\nTenant A's document.\n")
		bDoc := f.addDocument(t, f.b, bKB, "B's text").ID
		aFailed := f.addDocument(t, f.a, aKB, "another").ID

		for name, tc := range map[string]struct{ token, path string }{
			"B's kb":                 {f.admin, base + "/" + bKB + "/documents/events"},
			"B's kb naming B":        {f.admin, base + "/" + bKB + "/documents/events?tenant_id=" + f.b},
			"B's doc in A's kb":      {f.admin, base + "/" + aKB + "/documents/events?document=" + bDoc},
			"A's kb from B":          {f.bAdmin, base + "/" + aKB + "/documents/events?document=" + aDoc},
			"A's doc under B's kb":   {f.bAdmin, base + "/" + bKB + "/documents/events?document=" + aFailed},
			"unknown document":       {f.viewer, base + "/" + aKB + "/documents/events?document=" + nodus.NewID()},
			"not an id":              {f.viewer, base + "/" + aKB + "/documents/events?document=x"},
			"super_admin naming B":   {f.root, base + "/" + aKB + "/documents/events?tenant_id=" + f.b},
			"unknown knowledge base": {f.viewer, base + "/" + nodus.NewID() + "/documents/events"},
		} {
			c, status, body := openEvents(t, f.ts.URL+tc.path, tc.token)
			if c != nil {
				c.cancel()
			}
			if status != 404 || strings.Contains(body, "B's text") || !strings.Contains(body, `"code":"not_found"`) {
				t.Errorf("%s: %d %s, want 404", name, status, body)
			}
		}

		for name, token := range map[string]string{"viewer": f.viewer, "user": f.user, "admin": f.admin} {
			c, status, body := openEvents(t, f.ts.URL+base+"/"+aKB+"/documents/events?document="+aDoc, token)
			if status != 200 {
				t.Fatalf("%s: %d %s", name, status, body)
			}
			if ct := c.res.Header.Get("Content-Type"); ct != "text/event-stream" || c.res.Header.Get("X-Request-Id") == "" {
				t.Errorf("%s: headers %v", name, c.res.Header)
			}
			if d := c.mustNext(t).document(t); d.ID != aDoc || d.Status != knowledge.StatusPending {
				t.Errorf("%s: first event %+v", name, d)
			}
			c.cancel()
		}
		// The super_admin names the tenant.
		c, status, body := openEvents(t, f.ts.URL+base+"/"+aKB+"/documents/events?tenant_id="+f.a, f.root)
		if status != 200 {
			t.Fatalf("super_admin: %d %s", status, body)
		}
		c.cancel()
	})
}
