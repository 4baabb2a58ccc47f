package notebook_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/nodus-os/nodus/internal/gateway"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/notebook"
	"github.com/nodus-os/nodus/internal/notebook/notebookwire"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
)

// models answers with the gateway's built-in extractive model, in
// process and offline, and records every request; fail makes every call
// fail, summary answers every call with it.
type models struct {
	fail    error
	summary string
	calls   []notebook.ModelRequest
}

func (m *models) Complete(_ context.Context, r notebook.ModelRequest) (string, *notebook.ModelCall, error) {
	m.calls = append(m.calls, r)
	if m.fail != nil {
		return "", nil, m.fail
	}
	if m.summary != "" {
		return m.summary, &notebook.ModelCall{Model: r.Model}, nil
	}
	req := &gateway.ChatRequest{Model: r.Model}
	for _, msg := range r.Messages {
		req.Messages = append(req.Messages, gateway.Message{Role: msg.Role, Content: gateway.TextContent(msg.Content)})
	}
	return gateway.Extractive{}.Answer(req), &notebook.ModelCall{Model: r.Model, RequestID: "req-1"}, nil
}

func (m *models) CountTokens(model, text string) int64 { return gateway.CountTokens(model, text) }

type members map[string]bool

func (m members) Member(_ context.Context, tenantID, userID string) (bool, error) {
	return m[tenantID+"/"+userID], nil
}

type web struct{ c *http.Client }

func (w web) Client(string) *http.Client { return w.c }

type world struct {
	svc                                      *notebook.Service
	db                                       *store.DB
	models                                   *models
	tenant, other                            string
	owner, writer, reader, stranger, foreign notebook.Actor
}

func newWorld(t *testing.T, db *store.DB) *world {
	t.Helper()
	w := &world{db: db, models: &models{}, tenant: nodus.NewID(), other: nodus.NewID()}
	w.owner = notebook.Actor{TenantID: w.tenant, UserID: nodus.NewID()}
	w.writer = notebook.Actor{TenantID: w.tenant, UserID: nodus.NewID()}
	w.reader = notebook.Actor{TenantID: w.tenant, UserID: nodus.NewID()}
	w.stranger = notebook.Actor{TenantID: w.tenant, UserID: nodus.NewID()}
	w.foreign = notebook.Actor{TenantID: w.other, UserID: w.owner.UserID}
	dir := members{}
	for _, a := range []notebook.Actor{w.owner, w.writer, w.reader, w.stranger} {
		dir[a.TenantID+"/"+a.UserID] = true
	}
	svc, err := notebook.NewService(notebook.Config{Store: notebookwire.Store{DB: db}, Models: w.models, Users: dir,
		Web: web{http.DefaultClient}})
	if err != nil {
		t.Fatal(err)
	}
	w.svc = svc
	return w
}

func code(t *testing.T, what string, err error, want string) {
	t.Helper()
	if got := nodus.ErrorCode(err); got != want {
		t.Errorf("%s: %v (%s), want %s", what, err, got, want)
	}
}

func ptr[T any](v T) *T { return &v }

// TestNotebookSharing checks who may do what: the owner everything, a write
// share the content, a read share reading and chatting, a viewer never
// writing, and everyone else, another tenant's user with the same id
// included, nothing at all (not found).
func TestNotebookSharing(t *testing.T) {
	storetest.RunMigrated(t, store.SetMain, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		w := newWorld(t, db)
		n, err := w.svc.CreateNotebook(ctx, w.owner, notebook.NotebookInput{Name: ptr("Research")})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.svc.Share(ctx, w.owner, n.ID, w.writer.UserID, notebook.PermWrite); err != nil {
			t.Fatal(err)
		}
		if _, err := w.svc.Share(ctx, w.owner, n.ID, w.reader.UserID, notebook.PermRead); err != nil {
			t.Fatal(err)
		}
		_, err = w.svc.Share(ctx, w.owner, n.ID, nodus.NewID(), notebook.PermRead)
		code(t, "share with a user not in the tenant", err, nodus.ENOTFOUND)
		_, err = w.svc.Share(ctx, w.writer, n.ID, w.stranger.UserID, notebook.PermRead)
		code(t, "a writer shares", err, nodus.EFORBIDDEN)

		text := notebook.SourceInput{Kind: notebook.KindText, Text: "Some notes."}
		card := notebook.CardInput{Title: ptr("A card")}
		viewer := w.writer
		viewer.ReadOnly = true
		for _, tc := range []struct {
			name  string
			a     notebook.Actor
			read  string // code of reading
			write string // of adding a source and a card
			own   string // of deleting the notebook
		}{
			{"writer", w.writer, "", "", nodus.EFORBIDDEN},
			{"reader", w.reader, "", nodus.EFORBIDDEN, nodus.EFORBIDDEN},
			{"viewer with a write share", viewer, "", nodus.EFORBIDDEN, nodus.EFORBIDDEN},
			{"stranger", w.stranger, nodus.ENOTFOUND, nodus.ENOTFOUND, nodus.ENOTFOUND},
			{"another tenant", w.foreign, nodus.ENOTFOUND, nodus.ENOTFOUND, nodus.ENOTFOUND},
		} {
			_, err := w.svc.GetNotebook(ctx, tc.a, n.ID)
			code(t, tc.name+" reads", err, tc.read)
			_, err = w.svc.ListCards(ctx, tc.a, n.ID)
			code(t, tc.name+" lists cards", err, tc.read)
			_, err = w.svc.AddSource(ctx, tc.a, n.ID, text)
			code(t, tc.name+" adds a source", err, tc.write)
			_, err = w.svc.CreateCard(ctx, tc.a, n.ID, card)
			code(t, tc.name+" adds a card", err, tc.write)
			code(t, tc.name+" deletes", w.svc.DeleteNotebook(ctx, tc.a, n.ID), tc.own)
		}
		// A reader chats in a session of their own, which the owner does
		// not see, and cannot save the answer as a card.
		ch, err := w.svc.CreateChat(ctx, w.reader, n.ID, "")
		if err != nil {
			t.Fatal(err)
		}
		turn, err := w.svc.Ask(ctx, w.reader, n.ID, ch.ID, "What notes are there?")
		if err != nil {
			t.Fatal(err)
		}
		_, err = w.svc.SaveAnswer(ctx, w.reader, n.ID, ch.ID, turn.Answer.ID, "")
		code(t, "a reader saves a card", err, nodus.EFORBIDDEN)
		_, _, err = w.svc.GetChat(ctx, w.owner, n.ID, ch.ID)
		code(t, "the owner reads the reader's chat", err, nodus.ENOTFOUND)
		list, _, err := w.svc.ListNotebooks(ctx, w.reader, nil, "", 10)
		if err != nil || len(list) != 1 || list[0].Permission != notebook.PermRead {
			t.Fatalf("reader's list: %+v %v", list, err)
		}
		// Unsharing ends access; a user may leave.
		code(t, "writer leaves", w.svc.Unshare(ctx, w.writer, n.ID, w.writer.UserID), "")
		_, err = w.svc.GetNotebook(ctx, w.writer, n.ID)
		code(t, "writer after leaving", err, nodus.ENOTFOUND)
		code(t, "owner deletes", w.svc.DeleteNotebook(ctx, w.owner, n.ID), "")
	})
}

// TestNotebookChatGrounding checks that a turn reads the included sources
// only, at their level, and that its answer is saved as a card with its
// citations.
func TestNotebookChatGrounding(t *testing.T) {
	storetest.RunMigrated(t, store.SetMain, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		w := newWorld(t, db)
		n, err := w.svc.CreateNotebook(ctx, w.owner, notebook.NotebookInput{Name: ptr("Travel")})
		if err != nil {
			t.Fatal(err)
		}
		in, err := w.svc.AddSource(ctx, w.owner, n.ID, notebook.SourceInput{Kind: notebook.KindText, Title: "Refunds",
			Text: "Refunds for cancelled flights are paid within fourteen days."})
		if err != nil {
			t.Fatal(err)
		}
		out, err := w.svc.AddSource(ctx, w.owner, n.ID, notebook.SourceInput{Kind: notebook.KindText, Title: "Secret",
			Text: "Refunds for cancelled flights are a zebra-canary matter.", ContextLevel: notebook.LevelExcluded})
		if err != nil {
			t.Fatal(err)
		}
		sum, err := w.svc.AddSource(ctx, w.owner, n.ID, notebook.SourceInput{Kind: notebook.KindText, Title: "Long",
			Text:         "Baggage rules. " + strings.Repeat("Filler words about nothing. ", 200) + "The tail holds a tail-canary refund.",
			ContextLevel: notebook.LevelSummary})
		if err != nil {
			t.Fatal(err)
		}
		// Summaries without a model are extracts, and say so.
		for _, s := range []*notebook.Source{in, out, sum} {
			if err := w.svc.Summarize(ctx, w.tenant, n.ID, s.ID); err != nil {
				t.Fatal(err)
			}
		}
		got, err := w.svc.GetSource(ctx, w.owner, n.ID, sum.ID)
		if err != nil || got.Status != notebook.StatusReady || got.SummaryMethod != notebook.SummaryExtract ||
			got.SummaryNote == "" || strings.Contains(got.Summary, "tail-canary") {
			t.Fatalf("extract summary: %+v %v", got, err)
		}
		if len(w.models.calls) != 0 {
			t.Fatalf("a model was called without one set: %+v", w.models.calls)
		}

		ch, err := w.svc.CreateChat(ctx, w.owner, n.ID, "")
		if err != nil {
			t.Fatal(err)
		}
		turn, err := w.svc.Ask(ctx, w.owner, n.ID, ch.ID, "When are refunds for cancelled flights paid?")
		if err != nil {
			t.Fatal(err)
		}
		prompt := w.models.calls[len(w.models.calls)-1].Messages[0].Content
		if strings.Contains(prompt, "zebra-canary") || strings.Contains(prompt, "tail-canary") || !strings.Contains(prompt, "fourteen days") {
			t.Fatalf("prompt:\n%s", prompt)
		}
		if !strings.Contains(turn.Answer.Content, "fourteen days") || strings.Contains(turn.Answer.Content, "zebra") {
			t.Fatalf("answer %q", turn.Answer.Content)
		}
		if len(turn.Metadata.Citations) != 2 || !turn.Metadata.Citations[0].Cited || turn.Metadata.Citations[0].SourceID != in.ID ||
			!strings.Contains(turn.Metadata.Citations[0].Quote, "fourteen days") {
			t.Fatalf("citations: %+v", turn.Metadata.Citations)
		}
		c, err := w.svc.SaveAnswer(ctx, w.owner, n.ID, ch.ID, turn.Answer.ID, "")
		if err != nil {
			t.Fatal(err)
		}
		if c.Kind != notebook.CardAI || c.Title != "When are refunds for cancelled flights paid?" || len(c.Citations) != 1 ||
			c.Citations[0].SourceID != in.ID || c.Content != turn.Answer.Content {
			t.Fatalf("card: %+v", c)
		}
		_, err = w.svc.SaveAnswer(ctx, w.owner, n.ID, ch.ID, turn.Question.ID, "")
		code(t, "saving a question", err, nodus.EINVALID)

		// Including the excluded source changes what the chat reads.
		if _, err := w.svc.UpdateSource(ctx, w.owner, n.ID, out.ID, notebook.SourceChange{ContextLevel: ptr(notebook.LevelFull)}); err != nil {
			t.Fatal(err)
		}
		if _, err := w.svc.Ask(ctx, w.owner, n.ID, ch.ID, "What kind of matter are refunds?"); err != nil {
			t.Fatal(err)
		}
		if prompt := w.models.calls[len(w.models.calls)-1].Messages[0].Content; !strings.Contains(prompt, "zebra-canary") {
			t.Fatalf("included source missing:\n%s", prompt)
		}
	})
}

// TestNotebookSummaryByModel checks a summary written by the notebook's
// model, and the extract a failing model falls back to.
func TestNotebookSummaryByModel(t *testing.T) {
	storetest.RunMigrated(t, store.SetMain, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		w := newWorld(t, db)
		n, err := w.svc.CreateNotebook(ctx, w.owner, notebook.NotebookInput{Name: ptr("M"), Model: ptr("gpt-test")})
		if err != nil {
			t.Fatal(err)
		}
		add := func() *notebook.Source {
			s, err := w.svc.AddSource(ctx, w.owner, n.ID, notebook.SourceInput{Kind: notebook.KindText, Text: "A text. More."})
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
		s1 := add()
		w.models.summary = "A short summary."
		if err := w.svc.Summarize(ctx, w.tenant, n.ID, s1.ID); err != nil {
			t.Fatal(err)
		}
		got, _ := w.svc.GetSource(ctx, w.owner, n.ID, s1.ID)
		if got.Summary != "A short summary." || got.SummaryMethod != notebook.SummaryModel || w.models.calls[0].UserID != w.owner.UserID {
			t.Fatalf("model summary: %+v", got)
		}
		s2 := add()
		w.models.fail = nodus.Errorf(nodus.EUNAVAILABLE, "upstream down")
		if err := w.svc.Summarize(ctx, w.tenant, n.ID, s2.ID); err != nil {
			t.Fatal(err)
		}
		got, _ = w.svc.GetSource(ctx, w.owner, n.ID, s2.ID)
		if got.SummaryMethod != notebook.SummaryExtract || !strings.Contains(got.SummaryNote, "upstream down") || got.Summary != "A text. More." {
			t.Fatalf("fallback summary: %+v", got)
		}
		// Run again: a summarised source is left alone.
		w.models.fail, w.models.summary = nil, "another"
		if err := w.svc.Summarize(ctx, w.tenant, n.ID, s2.ID); err != nil {
			t.Fatal(err)
		}
		if again, _ := w.svc.GetSource(ctx, w.owner, n.ID, s2.ID); again.Summary != got.Summary {
			t.Fatalf("summarised twice: %+v", again)
		}
	})
}

// TestNotebookSourceKinds checks URL sources (HTML made text, limits),
// and that recordings and documents are refused clearly without their
// modules.
func TestNotebookSourceKinds(t *testing.T) {
	storetest.RunMigrated(t, store.SetMain, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		w := newWorld(t, db)
		srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			switch r.URL.Path {
			case "/page":
				rw.Header().Set("Content-Type", "text/html; charset=utf-8")
				rw.Write([]byte(`<html><head><title>Trip guide</title><script>evil()</script></head><body><p>Pack light.</p></body></html>`))
			case "/big":
				rw.Header().Set("Content-Type", "text/plain")
				rw.Write([]byte(strings.Repeat("x", notebook.MaxURLBodyBytes+10)))
			case "/pdf":
				rw.Header().Set("Content-Type", "application/pdf")
				rw.Write([]byte("%PDF-1.4"))
			default:
				http.NotFound(rw, r)
			}
		}))
		defer srv.Close()
		n, err := w.svc.CreateNotebook(ctx, w.owner, notebook.NotebookInput{Name: ptr("Kinds")})
		if err != nil {
			t.Fatal(err)
		}
		s, err := w.svc.AddSource(ctx, w.owner, n.ID, notebook.SourceInput{Kind: notebook.KindURL, Ref: srv.URL + "/page"})
		if err != nil {
			t.Fatal(err)
		}
		if s.Title != "Trip guide" || !strings.Contains(s.FullText, "Pack light.") || strings.Contains(s.FullText, "evil") {
			t.Fatalf("url source: %+v", s)
		}
		for path, want := range map[string]string{"/big": nodus.ETOOLARGE, "/pdf": nodus.EINVALID, "/gone": nodus.EINVALID} {
			_, err := w.svc.AddSource(ctx, w.owner, n.ID, notebook.SourceInput{Kind: notebook.KindURL, Ref: srv.URL + path})
			code(t, "url "+path, err, want)
		}
		for _, ref := range []string{"file:///etc/passwd", "http://user:pw@example.test/", ""} {
			_, err := w.svc.AddSource(ctx, w.owner, n.ID, notebook.SourceInput{Kind: notebook.KindURL, Ref: ref})
			code(t, "url "+ref, err, nodus.EINVALID)
		}
		_, err = w.svc.AddSource(ctx, w.owner, n.ID, notebook.SourceInput{Kind: notebook.KindRecording, Ref: nodus.NewID()})
		code(t, "recording without the module", err, nodus.EUNAVAILABLE)
		_, err = w.svc.AddSource(ctx, w.owner, n.ID, notebook.SourceInput{Kind: notebook.KindDocument, Ref: nodus.NewID()})
		code(t, "document without the module", err, nodus.EUNAVAILABLE)
		_, err = w.svc.AddSource(ctx, w.owner, n.ID, notebook.SourceInput{Kind: "podcast"})
		code(t, "unknown kind", err, nodus.EINVALID)
		_, err = w.svc.AddSource(ctx, w.owner, n.ID, notebook.SourceInput{Kind: notebook.KindText, Text: "x", ContextLevel: "most"})
		code(t, "unknown level", err, nodus.EINVALID)
		w.svc.UseRecordings(recordings{})
		r, err := w.svc.AddSource(ctx, w.owner, n.ID, notebook.SourceInput{Kind: notebook.KindRecording, Ref: nodus.NewID()})
		if err != nil || r.Title != "Standup" || r.FullText != "We shipped." {
			t.Fatalf("recording source: %+v %v", r, err)
		}
	})
}

type recordings struct{}

func (recordings) Transcript(context.Context, string, string, string) (string, string, error) {
	return "Standup", "We shipped.", nil
}

// TestNotebookChatBudget checks that a full source longer than the
// prompt's budget is cut to fit, and says so, and that a notebook with
// nothing included answers without a source.
func TestNotebookChatBudget(t *testing.T) {
	storetest.RunMigrated(t, store.SetMain, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		m := &models{}
		svc, err := notebook.NewService(notebook.Config{Store: notebookwire.Store{DB: db}, Models: m, ContextTokens: 2048})
		if err != nil {
			t.Fatal(err)
		}
		a := notebook.Actor{TenantID: nodus.NewID(), UserID: nodus.NewID()}
		n, err := svc.CreateNotebook(ctx, a, notebook.NotebookInput{Name: ptr("Big")})
		if err != nil {
			t.Fatal(err)
		}
		ch, err := svc.CreateChat(ctx, a, n.ID, "")
		if err != nil {
			t.Fatal(err)
		}
		turn, err := svc.Ask(ctx, a, n.ID, ch.ID, "Anything?")
		if err != nil || len(turn.Metadata.Citations) != 0 || !strings.Contains(m.calls[0].Messages[0].Content, "no source included") {
			t.Fatalf("empty notebook: %+v %v", turn, err)
		}
		big, err := svc.AddSource(ctx, a, n.ID, notebook.SourceInput{Kind: notebook.KindText,
			Text: "The opening line matters. " + strings.Repeat("Padding words go on and on. ", 2000) + "The end-canary is far away."})
		if err != nil {
			t.Fatal(err)
		}
		turn, err = svc.Ask(ctx, a, n.ID, ch.ID, "What matters?")
		if err != nil {
			t.Fatal(err)
		}
		prompt := m.calls[len(m.calls)-1]
		var total int64
		for _, msg := range prompt.Messages {
			total += gateway.CountTokens(prompt.Model, msg.Content)
		}
		if total > 2048-notebook.MaxAnswerTokens || strings.Contains(prompt.Messages[0].Content, "end-canary") ||
			!strings.Contains(prompt.Messages[0].Content, "The opening line matters.") {
			t.Fatalf("prompt of %d tokens:\n%.300s", total, prompt.Messages[0].Content)
		}
		if len(turn.Metadata.Truncated) != 1 || turn.Metadata.Truncated[0] != big.ID {
			t.Fatalf("truncated: %+v", turn.Metadata.Truncated)
		}
	})
}

type sink struct {
	started *notebook.Turn
	pieces  []string
	fail    error
}

func (s *sink) Started(t *notebook.Turn) error { s.started = t; return nil }
func (s *sink) Delta(text string) error {
	s.pieces = append(s.pieces, text)
	return s.fail
}

// TestNotebookAskStream checks a streamed turn: the sink hears of the
// turn, then the answer (in one piece from models that cannot stream); a
// sink that fails (the client gone) ends the turn, stored with its error.
func TestNotebookAskStream(t *testing.T) {
	storetest.RunMigrated(t, store.SetMain, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		w := newWorld(t, db)
		n, _ := w.svc.CreateNotebook(ctx, w.owner, notebook.NotebookInput{Name: ptr("S")})
		if _, err := w.svc.AddSource(ctx, w.owner, n.ID, notebook.SourceInput{Kind: notebook.KindText, Text: "Owls hunt at night."}); err != nil {
			t.Fatal(err)
		}
		ch, _ := w.svc.CreateChat(ctx, w.owner, n.ID, "")
		var sk sink
		turn, err := w.svc.AskStream(ctx, w.owner, n.ID, ch.ID, "When do owls hunt?", &sk)
		if err != nil || sk.started == nil || len(sk.started.Metadata.Citations) != 1 || strings.Join(sk.pieces, "") != turn.Answer.Content {
			t.Fatalf("stream: %+v %+v %v", sk, turn, err)
		}
		gone := &sink{fail: context.Canceled}
		turn, err = w.svc.AskStream(ctx, w.owner, n.ID, ch.ID, "Owls?", gone)
		if err == nil || turn == nil || turn.Metadata.Error == "" {
			t.Fatalf("a failing sink: %+v %v", turn, err)
		}
		_, msgs, err := w.svc.GetChat(ctx, w.owner, n.ID, ch.ID)
		if err != nil || len(msgs) != 4 {
			t.Fatalf("stored %d messages, %v", len(msgs), err)
		}
	})
}
