package memory_test

import (
	"context"
	"encoding/json"
	"errors"
	"hash/fnv"
	"math"
	"reflect"
	"strings"
	"testing"
	"unicode"

	"github.com/nodus-os/nodus/internal/memory"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
)

// scriptedModel stands for the upstream LLM: extract answers the fact
// extraction prompt, decide the decision prompt (given the fact and the
// memories shown).
type scriptedModel struct {
	extract   func() string
	decide    func(fact string, shown []shownMemory) string
	decisions int
	requests  []memory.ModelRequest
}

type shownMemory struct {
	ID   string `json:"id"`
	Text string `json:"text"`
}

func (m *scriptedModel) Complete(_ context.Context, req memory.ModelRequest) (string, error) {
	m.requests = append(m.requests, req)
	if len(req.Messages) != 2 || req.Messages[0].Role != "system" {
		return "", errors.New("unexpected prompt shape")
	}
	if strings.Contains(req.Messages[0].Content, `{"facts"`) {
		return m.extract(), nil
	}
	var ask struct {
		Fact     string        `json:"fact"`
		Memories []shownMemory `json:"memories"`
	}
	if err := json.Unmarshal([]byte(req.Messages[1].Content), &ask); err != nil {
		return "", err
	}
	m.decisions++
	return m.decide(ask.Fact, ask.Memories), nil
}

// wordEmbedder gives each text a bag-of-words vector, words hashed to 256
// dimensions, "automobile" counted as "car": similar wording, similar
// vectors, and one synonym that full text cannot match.
type wordEmbedder struct{ calls int }

func (e *wordEmbedder) Embed(_ context.Context, _, model string, texts []string) ([][]float32, error) {
	e.calls++
	if model != "embed-test" {
		return nil, nodus.Errorf(nodus.EINVALID, "unknown embedding model %s", model)
	}
	out := make([][]float32, len(texts))
	for i, text := range texts {
		v := make([]float32, 256)
		for _, w := range strings.FieldsFunc(strings.ToLower(text), func(r rune) bool { return !unicode.IsLetter(r) }) {
			if w == "automobile" {
				w = "car"
			}
			h := fnv.New32a()
			h.Write([]byte(w))
			v[h.Sum32()%256]++
		}
		out[i] = v
	}
	return out, nil
}

type fixture struct {
	db  *store.DB
	svc *memory.Service
}

func runService(t *testing.T, models memory.Models, embedder memory.Embedder, fn func(t *testing.T, f fixture)) {
	storetest.RunMigrated(t, store.SetMain, func(t *testing.T, db *store.DB) {
		cfg := memory.Config{Store: db}
		if models != nil {
			cfg.Models = models
		}
		if embedder != nil {
			cfg.Embedder = embedder
		}
		svc, err := memory.NewService(cfg)
		if err != nil {
			t.Fatal(err)
		}
		fn(t, fixture{db: db, svc: svc})
	})
}

var ctx = context.Background()

func userSays(texts ...string) []memory.Message {
	var out []memory.Message
	for _, s := range texts {
		out = append(out, memory.Message{ID: nodus.NewID(), Role: "user", Content: s},
			memory.Message{ID: nodus.NewID(), Role: "assistant", Content: "I see. My answer is yes."})
	}
	return out
}

func events(cs []memory.Change) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.Event + " " + c.Text
	}
	return out
}

func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if nodus.ErrorCode(err) != code {
		t.Errorf("%s: %v, want %s", what, err, code)
	}
}

func TestAddVerbatim(t *testing.T) {
	runService(t, nil, nil, func(t *testing.T, f fixture) {
		tenant := nodus.NewID()
		in := memory.AddInput{TenantID: tenant, AppName: "bot1", UserID: "alice", SessionID: "conv1",
			Messages: userSays("Hi! My favourite colour is teal. What's the weather?"), Actor: "chat"}
		changes, err := f.svc.Add(ctx, in)
		if err != nil || !reflect.DeepEqual(events(changes), []string{"ADD My favourite colour is teal."}) {
			t.Fatalf("Add = %q, %v", events(changes), err)
		}
		m, err := f.svc.Get(ctx, tenant, changes[0].MemoryID)
		if err != nil || m.SessionID != "conv1" || !reflect.DeepEqual(m.SourceMessageIDs, []string{in.Messages[0].ID}) ||
			m.Embedding != nil || m.Hash != memory.Hash(m.Text) {
			t.Fatalf("Get = %+v, %v", m, err)
		}
		// The assistant's first-person sentences are not the user's facts.
		list, _, err := f.svc.List(ctx, memory.ListInput{TenantID: tenant, AppName: "bot1", UserID: "alice"})
		if err != nil || len(list) != 1 {
			t.Fatalf("List = %+v, %v", list, err)
		}
		// The same fact again, however written, is NONE.
		in.Messages = userSays("my favourite colour is TEAL")
		changes, err = f.svc.Add(ctx, in)
		if err != nil || len(changes) != 1 || changes[0].Event != memory.EventNone || changes[0].MemoryID != m.ID {
			t.Fatalf("second Add = %+v, %v", changes, err)
		}
		// "nodus/extractive" is no model: verbatim too.
		in.Model, in.Messages = "nodus/extractive", userSays("I work as a nurse.")
		if changes, err = f.svc.Add(ctx, in); err != nil || len(changes) != 1 || changes[0].Event != memory.EventAdd {
			t.Fatalf("extractive Add = %+v, %v", changes, err)
		}
		hist, err := f.svc.History(ctx, tenant, m.ID)
		if err != nil || len(hist) != 1 || hist[0].Event != memory.EventAdd || hist[0].Actor != "chat" {
			t.Fatalf("History = %+v, %v", hist, err)
		}
	})
}

func TestAddValidation(t *testing.T) {
	runService(t, nil, nil, func(t *testing.T, f fixture) {
		ok := memory.AddInput{TenantID: nodus.NewID(), AppName: "bot1", UserID: "alice", Messages: userSays("I am Al.")}
		for name, change := range map[string]func(*memory.AddInput){
			"no tenant":        func(in *memory.AddInput) { in.TenantID = "" },
			"no app":           func(in *memory.AddInput) { in.AppName = "" },
			"long app":         func(in *memory.AddInput) { in.AppName = strings.Repeat("a", 129) },
			"control in user":  func(in *memory.AddInput) { in.UserID = "al\x00ice" },
			"no messages":      func(in *memory.AddInput) { in.Messages = nil },
			"too many":         func(in *memory.AddInput) { in.Messages = make([]memory.Message, 201) },
			"bad role":         func(in *memory.AddInput) { in.Messages = []memory.Message{{Role: "tool", Content: "x"}} },
			"message too long": func(in *memory.AddInput) { in.Messages[0].Content = strings.Repeat("x", 64<<10+1) },
		} {
			in := ok
			in.Messages = append([]memory.Message(nil), ok.Messages...)
			change(&in)
			_, err := f.svc.Add(ctx, in)
			wantCode(t, name, err, nodus.EINVALID)
		}
		if _, err := f.svc.Add(ctx, ok); err != nil {
			t.Fatalf("valid Add: %v", err)
		}
		list, _, _ := f.svc.List(ctx, memory.ListInput{TenantID: ok.TenantID, AppName: "bot1", UserID: "alice"})
		_, err := f.svc.Update(ctx, ok.TenantID, list[0].ID, strings.Repeat("é", 2001), "u")
		wantCode(t, "text too long", err, nodus.EINVALID)
		_, err = f.svc.Update(ctx, ok.TenantID, list[0].ID, "  ", "u")
		wantCode(t, "empty text", err, nodus.EINVALID)
		_, err = f.svc.Search(ctx, memory.SearchInput{TenantID: ok.TenantID, AppName: "bot1", UserID: "alice"})
		wantCode(t, "empty query", err, nodus.EINVALID)
		_, err = f.svc.Get(ctx, ok.TenantID, "not-an-id")
		wantCode(t, "malformed id", err, nodus.ENOTFOUND)
	})
}

func TestAddWithModel(t *testing.T) {
	model := &scriptedModel{}
	runService(t, model, nil, func(t *testing.T, f fixture) {
		tenant := nodus.NewID()
		in := memory.AddInput{TenantID: tenant, AppName: "bot1", UserID: "alice", Model: "gpt-test", Actor: "chat",
			Messages: userSays("Hi, I really like teal, it's my favourite colour. What's the weather?")}
		model.decisions, model.requests = 0, nil

		// Extraction, fenced; nothing similar yet, so ADD without a decision.
		model.extract = func() string {
			return "```json\n{\"facts\": [\"Favourite colour is teal\", \"favourite colour is teal.\", \"\"]}\n```"
		}
		changes, err := f.svc.Add(ctx, in)
		if err != nil || !reflect.DeepEqual(events(changes), []string{"ADD Favourite colour is teal"}) {
			t.Fatalf("first Add = %q, %v", events(changes), err)
		}
		if model.decisions != 0 || len(model.requests) != 1 {
			t.Fatalf("%d decisions, %d requests; want 0, 1", model.decisions, len(model.requests))
		}
		req := model.requests[0]
		if req.TenantID != tenant || req.UserID != "alice" || req.Model != "gpt-test" || req.MaxTokens <= 0 ||
			!strings.Contains(req.Messages[1].Content, "user: Hi, I really like teal") {
			t.Fatalf("extraction request = %+v", req)
		}
		id := changes[0].MemoryID

		// A refinement: the model is shown the similar memory and merges.
		model.extract = func() string { return `{"facts": ["Favourite colour is now navy blue"]}` }
		model.decide = func(fact string, shown []shownMemory) string {
			if len(shown) != 1 || shown[0].ID != id {
				t.Errorf("decision for %q shown %+v", fact, shown)
			}
			return `{"event": "UPDATE", "id": "` + id + `", "text": "Favourite colour is navy blue (was teal)"}`
		}
		changes, err = f.svc.Add(ctx, in)
		want := []memory.Change{{Event: "UPDATE", MemoryID: id, Text: "Favourite colour is navy blue (was teal)",
			Old: "Favourite colour is teal"}}
		if err != nil || !reflect.DeepEqual(changes, want) {
			t.Fatalf("second Add = %+v, %v; want %+v", changes, err, want)
		}

		// A contradiction: DELETE.
		model.extract = func() string { return `{"facts": ["Has no favourite colour any more"]}` }
		model.decide = func(string, []shownMemory) string { return `Sure: {"event": "delete", "id": "` + id + `"}` }
		changes, err = f.svc.Add(ctx, in)
		if err != nil || len(changes) != 1 || changes[0].Event != memory.EventDelete || changes[0].MemoryID != id {
			t.Fatalf("third Add = %+v, %v", changes, err)
		}
		_, err = f.svc.Get(ctx, tenant, id)
		wantCode(t, "deleted memory", err, nodus.ENOTFOUND)
		hist, err := f.svc.History(ctx, tenant, id)
		if err != nil || len(hist) != 3 {
			t.Fatalf("History = %+v, %v", hist, err)
		}
		if hist[0].Event != "ADD" || hist[0].New != "Favourite colour is teal" ||
			hist[1].Event != "UPDATE" || hist[1].Old != "Favourite colour is teal" ||
			hist[1].New != "Favourite colour is navy blue (was teal)" ||
			hist[2].Event != "DELETE" || hist[2].Old != "Favourite colour is navy blue (was teal)" ||
			hist[2].Actor != "chat" {
			t.Fatalf("History = %+v", hist)
		}

		// An id not among the memories shown adds the fact; an unknown
		// event does nothing; a known fact is NONE without asking.
		model.extract = func() string { return `{"facts": ["Colour of car is red"]}` }
		f.svc.Add(ctx, in)
		model.extract = func() string {
			return `{"facts": ["Colour of bike is red", "Colour of house is red", "Colour of car is red"]}`
		}
		model.decisions = 0
		model.decide = func(fact string, shown []shownMemory) string {
			if strings.Contains(fact, "bike") {
				return `{"event": "UPDATE", "id": "` + nodus.NewID() + `", "text": "made up"}`
			}
			return `{"event": "MERGE"}`
		}
		changes, err = f.svc.Add(ctx, in)
		if err != nil || !reflect.DeepEqual(events(changes), []string{"ADD Colour of bike is red",
			"NONE Colour of house is red", "NONE Colour of car is red"}) {
			t.Fatalf("fourth Add = %q, %v", events(changes), err)
		}
		if model.decisions != 2 {
			t.Fatalf("%d decisions, want 2", model.decisions)
		}

		// Extraction that is not JSON falls back to verbatim sentences.
		model.extract = func() string { return "I could not find any facts, sorry." }
		in.Messages = userSays("My favourite colour is teal. What's the weather?")
		changes, err = f.svc.Add(ctx, in)
		if err != nil || !reflect.DeepEqual(events(changes), []string{"ADD My favourite colour is teal."}) {
			t.Fatalf("fallback Add = %q, %v", events(changes), err)
		}
	})
}

// addAs stores text verbatim as a memory of the user.
func addAs(t *testing.T, f fixture, tenant, app, user, text, embeddingModel string) string {
	t.Helper()
	changes, err := f.svc.Add(ctx, memory.AddInput{TenantID: tenant, AppName: app, UserID: user,
		EmbeddingModel: embeddingModel, Messages: []memory.Message{{Role: "user", Content: text}}})
	if err != nil || len(changes) != 1 || changes[0].Event != memory.EventAdd {
		t.Fatalf("Add %q = %+v, %v", text, changes, err)
	}
	return changes[0].MemoryID
}

func hitTexts(hits []memory.Hit) []string {
	out := make([]string, len(hits))
	for i, h := range hits {
		out[i] = h.Memory.Text
	}
	return out
}

func TestSearchScope(t *testing.T) {
	runService(t, nil, nil, func(t *testing.T, f fixture) {
		tenant, other := nodus.NewID(), nodus.NewID()
		mine := addAs(t, f, tenant, "bot1", "alice", "My favourite colour is teal.", "")
		addAs(t, f, tenant, "bot1", "alice", "I live in Lisbon.", "")
		addAs(t, f, tenant, "bot1", "bob", "My favourite colour is teal too.", "")
		addAs(t, f, tenant, "bot2", "alice", "My favourite colour is teal, said in bot2.", "")
		addAs(t, f, other, "bot1", "alice", "My favourite colour is teal in tenant B.", "")

		search := func(tenant, app, user, q string) []memory.Hit {
			t.Helper()
			hits, err := f.svc.Search(ctx, memory.SearchInput{TenantID: tenant, AppName: app, UserID: user, Query: q})
			if err != nil {
				t.Fatal(err)
			}
			return hits
		}
		hits := search(tenant, "bot1", "alice", "which colour? teal?")
		if len(hits) != 1 || hits[0].Memory.ID != mine || hits[0].Score <= 0 {
			t.Fatalf("alice's search = %q", hitTexts(hits))
		}
		for _, h := range search(tenant, "bot1", "alice", "colour teal Lisbon bot2 tenant") {
			if h.Memory.UserID != "alice" || h.Memory.AppName != "bot1" || h.Memory.TenantID != tenant {
				t.Fatalf("alice found %+v", h.Memory)
			}
		}
		if hits := search(tenant, "bot1", "carol", "teal"); len(hits) != 0 {
			t.Fatalf("carol found %q", hitTexts(hits))
		}
		if hits := search(tenant, "bot1", "bob", "teal"); len(hits) != 1 || hits[0].Memory.UserID != "bob" {
			t.Fatalf("bob found %q", hitTexts(hits))
		}
		if hits := search(tenant, "bot2", "alice", "teal"); len(hits) != 1 || hits[0].Memory.AppName != "bot2" {
			t.Fatalf("bot2 found %q", hitTexts(hits))
		}
		if hits := search(other, "bot1", "alice", "teal"); len(hits) != 1 || hits[0].Memory.TenantID != other {
			t.Fatalf("tenant B found %q", hitTexts(hits))
		}
		if hits := search(tenant, "bot1", "alice", "zebra"); len(hits) != 0 {
			t.Fatalf("zebra found %q", hitTexts(hits))
		}
		// By id, another tenant's memory is not found at all.
		_, err := f.svc.Get(ctx, other, mine)
		wantCode(t, "other tenant's Get", err, nodus.ENOTFOUND)
		_, err = f.svc.Update(ctx, other, mine, "hacked", "x")
		wantCode(t, "other tenant's Update", err, nodus.ENOTFOUND)
		wantCode(t, "other tenant's Delete", f.svc.Delete(ctx, other, mine, "x"), nodus.ENOTFOUND)
		_, err = f.svc.History(ctx, other, mine)
		wantCode(t, "other tenant's History", err, nodus.ENOTFOUND)

		// DeleteAll and the tenant purge.
		if n, err := f.svc.DeleteAll(ctx, tenant, "bot1", "alice", "admin"); err != nil || n != 2 {
			t.Fatalf("DeleteAll = %d, %v", n, err)
		}
		if hits := search(tenant, "bot1", "alice", "teal"); len(hits) != 0 {
			t.Fatalf("after DeleteAll found %q", hitTexts(hits))
		}
		if hist, err := f.svc.History(ctx, tenant, mine); err != nil || len(hist) != 2 || hist[1].Actor != "admin" {
			t.Fatalf("History after DeleteAll = %+v, %v", hist, err)
		}
		if err := f.svc.PurgeTenant(ctx, tenant); err != nil {
			t.Fatal(err)
		}
		_, err = f.svc.History(ctx, tenant, mine)
		wantCode(t, "history after purge", err, nodus.ENOTFOUND)
		if hits := search(other, "bot1", "alice", "teal"); len(hits) != 1 {
			t.Fatalf("purge took tenant B's memory: %q", hitTexts(hits))
		}
	})
}

func TestSearchHybrid(t *testing.T) {
	emb := &wordEmbedder{}
	runService(t, nil, emb, func(t *testing.T, f fixture) {
		tenant := nodus.NewID()
		car := addAs(t, f, tenant, "bot1", "alice", "I have a red car.", "embed-test")
		bike := addAs(t, f, tenant, "bot1", "alice", "My red bicycle is old.", "embed-test")
		addAs(t, f, tenant, "bot1", "alice", "I live in Lisbon.", "") // no vector
		m, err := f.svc.Get(ctx, tenant, car)
		if err != nil || m.EmbeddingModel != "embed-test" || len(m.Embedding) != 256 {
			t.Fatalf("Get = %+v, %v", m, err)
		}
		var norm float64
		for _, x := range m.Embedding {
			norm += float64(x) * float64(x)
		}
		if math.Abs(norm-1) > 1e-5 {
			t.Fatalf("stored vector has norm² %v, want 1", norm)
		}

		search := func(q, model string) []memory.Hit {
			t.Helper()
			hits, err := f.svc.Search(ctx, memory.SearchInput{TenantID: tenant, AppName: "bot1", UserID: "alice",
				Query: q, EmbeddingModel: model})
			if err != nil {
				t.Fatal(err)
			}
			return hits
		}
		// Full text cannot match the synonym; the vectors can.
		if hits := search("automobile", ""); len(hits) != 0 {
			t.Fatalf("full text found %q", hitTexts(hits))
		}
		if hits := search("automobile", "embed-test"); len(hits) != 1 || hits[0].Memory.ID != car {
			t.Fatalf("hybrid found %q", hitTexts(hits))
		}
		// "red" ties the two on full text (scaled 1 each); the vectors
		// put the car first (scaled 1) and the bicycle last (0): fused
		// 0.5·1 + 0.5·1 and 0.5·1 + 0.5·0.
		hits := search("red automobile", "embed-test")
		if len(hits) != 2 || hits[0].Memory.ID != car || hits[1].Memory.ID != bike ||
			math.Abs(hits[0].Score-1) > 1e-9 || math.Abs(hits[1].Score-0.5) > 1e-9 {
			t.Fatalf("hybrid = %q %+v", hitTexts(hits), hits)
		}
		// An embedding model the memories were not made with only adds
		// full text; an embedder failing falls back to it.
		if hits := search("red", "other-model"); len(hits) != 2 {
			t.Fatalf("other model = %q", hitTexts(hits))
		}

		// Update re-embeds a memory that had a vector.
		up, err := f.svc.Update(ctx, tenant, bike, "My blue automobile is old.", "alice")
		if err != nil || up.EmbeddingModel != "embed-test" || reflect.DeepEqual(up.Embedding, m.Embedding) {
			t.Fatalf("Update = %+v, %v", up, err)
		}
		if hits := search("car", "embed-test"); len(hits) != 2 || hits[0].Memory.ID == "" {
			t.Fatalf("after update = %q", hitTexts(hits))
		}
		hist, _ := f.svc.History(ctx, tenant, bike)
		if len(hist) != 2 || hist[1].Event != "UPDATE" || hist[1].Old != "My red bicycle is old." ||
			hist[1].New != "My blue automobile is old." || hist[1].Actor != "alice" {
			t.Fatalf("History = %+v", hist)
		}
		// Updating to another memory's text is a conflict.
		_, err = f.svc.Update(ctx, tenant, bike, "I have a red car", "alice")
		wantCode(t, "update to a taken text", err, nodus.ECONFLICT)
	})
}
