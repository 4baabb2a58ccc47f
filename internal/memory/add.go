package memory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/nodus-os/nodus/internal/nodus"
)

// Message is one message of a conversation given to Add.
type Message struct {
	ID      string // its id in the caller's store, recorded as a source; may be ""
	Role    string // user, assistant or system
	Content string
}

// AddInput is a conversation to remember for a user of an app.
type AddInput struct {
	TenantID  string
	AppName   string
	UserID    string
	SessionID string
	Messages  []Message
	// Model is the chat model that extracts facts; "" or
	// "nodus/extractive" keeps salient user sentences verbatim.
	Model string
	// EmbeddingModel, with an Embedder, gives new and updated memories a
	// vector; "" stores none.
	EmbeddingModel string
	Actor          string // recorded in the history
}

// Change is what Add did with one fact.
type Change struct {
	Event    string // EventAdd, EventUpdate, EventDelete or EventNone
	MemoryID string // the memory changed or already holding the fact; "" for a NONE without one
	Text     string // the memory's text after the change (the fact for NONE)
	Old      string // the text before an UPDATE or DELETE
}

func (in AddInput) validate() error {
	switch {
	case len(in.Messages) == 0:
		return invalid("messages", "at least one message is required")
	case len(in.Messages) > MaxMessages:
		return invalid("messages", fmt.Sprintf("at most %d messages", MaxMessages))
	}
	for i, m := range in.Messages {
		field := fmt.Sprintf("messages[%d]", i)
		switch {
		case m.Role != "user" && m.Role != "assistant" && m.Role != "system":
			return invalid(field+".role", "must be user, assistant or system")
		case len(m.Content) > MaxMessageBytes:
			return invalid(field+".content", fmt.Sprintf("must be at most %d bytes", MaxMessageBytes))
		case !utf8.ValidString(m.Content):
			return invalid(field+".content", "must be valid UTF-8")
		}
	}
	return nil
}

// Add turns a conversation into memories of its user and returns what
// changed, one Change per fact. With a chat model (in.Model, not
// "nodus/extractive", and Models configured) it runs mem0's pipeline:
// the model extracts the user's facts, then decides for each, against the
// five memories most similar to it, to ADD, UPDATE, DELETE or do nothing;
// a fact with no similar memory is added without asking. If the model's
// extraction is not valid JSON, or there is no model, the user's salient
// sentences are kept verbatim (SalientSentences). At most MaxFacts facts
// are applied. Each change writes its history in its own transaction; if
// a later decision fails, the changes already made are returned with the
// error.
func (s *Service) Add(ctx context.Context, in AddInput) ([]Change, error) {
	ctx, err := checkScope(ctx, in.TenantID, in.AppName, in.UserID)
	if err != nil {
		return nil, err
	}
	if err := in.validate(); err != nil {
		return nil, err
	}
	if s.models != nil && in.Model != "" && in.Model != extractiveModel {
		facts, err := s.extract(ctx, in)
		switch {
		case errors.Is(err, errBadAnswer):
			s.log.WarnContext(ctx, "memory: fact extraction was not valid JSON; keeping sentences verbatim",
				"model", in.Model, "error", err)
		case err != nil:
			return nil, fmt.Errorf("memory: extract facts: %w", err)
		default:
			return s.decideAll(ctx, in, facts)
		}
	}
	return s.addVerbatim(ctx, in)
}

// newMemory returns a memory of in's user holding text.
func (s *Service) newMemory(in AddInput, text string, sources []string, model string, vec []float32) Memory {
	now := s.now()
	m := Memory{ID: nodus.NewID(), TenantID: in.TenantID, AppName: in.AppName, UserID: in.UserID, Text: text,
		Hash: Hash(text), SessionID: in.SessionID, SourceMessageIDs: sources, CreatedAt: now, UpdatedAt: now}
	if vec != nil {
		m.EmbeddingModel, m.Embedding = model, vec
	}
	return m
}

// create stores m with its ADD history; a memory of the user with the
// same text already is a NONE naming it.
func (s *Service) create(ctx context.Context, m Memory, actor string) (Change, error) {
	err := s.store.CreateMemory(ctx, m, HistoryEntry{ID: nodus.NewID(), Actor: actor, CreatedAt: m.CreatedAt})
	if nodus.ErrorCode(err) == nodus.ECONFLICT {
		// Added meanwhile by another Add of the same user.
		old, ferr := s.store.FindMemoryByHash(ctx, m.AppName, m.UserID, m.Hash)
		if ferr != nil {
			return Change{}, fmt.Errorf("memory: add: %w", ferr)
		}
		return Change{Event: EventNone, MemoryID: old.ID, Text: old.Text}, nil
	}
	if err != nil {
		return Change{}, fmt.Errorf("memory: add: %w", err)
	}
	return Change{Event: EventAdd, MemoryID: m.ID, Text: m.Text}, nil
}

// vectors embeds texts for storage; a failure is logged and leaves them
// without vectors (full-text search still finds them).
func (s *Service) vectors(ctx context.Context, in AddInput, texts []string) [][]float32 {
	vecs, err := s.embed(ctx, in.TenantID, in.EmbeddingModel, texts)
	if err != nil {
		s.log.WarnContext(ctx, "memory: embed memories; storing them without vectors",
			"model", in.EmbeddingModel, "error", err)
		return nil
	}
	return vecs
}

func at(vecs [][]float32, i int) []float32 {
	if i < len(vecs) {
		return vecs[i]
	}
	return nil
}

// addVerbatim keeps the salient sentences of the user's messages.
func (s *Service) addVerbatim(ctx context.Context, in AddInput) ([]Change, error) {
	type fact struct{ text, source string }
	var facts []fact
	seen := map[string]bool{}
	for _, m := range in.Messages {
		if m.Role != "user" {
			continue
		}
		for _, text := range SalientSentences(m.Content) {
			if h := Hash(text); !seen[h] && len(facts) < MaxFacts {
				seen[h] = true
				facts = append(facts, fact{text, m.ID})
			}
		}
	}
	var out []Change
	var fresh []fact
	for _, f := range facts {
		old, err := s.store.FindMemoryByHash(ctx, in.AppName, in.UserID, Hash(f.text))
		switch {
		case err == nil:
			out = append(out, Change{Event: EventNone, MemoryID: old.ID, Text: old.Text})
		case nodus.ErrorCode(err) == nodus.ENOTFOUND:
			fresh = append(fresh, f)
		default:
			return out, fmt.Errorf("memory: add: %w", err)
		}
	}
	texts := make([]string, len(fresh))
	for i, f := range fresh {
		texts[i] = f.text
	}
	vecs := s.vectors(ctx, in, texts)
	for i, f := range fresh {
		var sources []string
		if f.source != "" {
			sources = []string{f.source}
		}
		m := s.newMemory(in, f.text, sources, in.EmbeddingModel, at(vecs, i))
		c, err := s.create(ctx, m, in.Actor)
		if err != nil {
			return out, err
		}
		if c.Event == EventAdd {
			s.wroteMemory(ctx, m, false)
		}
		out = append(out, c)
	}
	return out, nil
}

// errBadAnswer marks a model answer that is not the JSON asked for.
var errBadAnswer = errors.New("memory: model answer is not the JSON asked for")

const extractPrompt = `You extract lasting facts about the user from a conversation, for the user's long-term memory.
Return only a JSON object: {"facts": ["...", "..."]}.
Each fact is one short, self-contained statement of something the user said about themselves: personal details, preferences, plans, relationships, work, health, or anything they asked you to remember.
Use only the user's messages. Leave out what the assistant said, questions, greetings and small talk.
Write each fact in the language the user wrote in, without the user's name as subject (for example "Is vegetarian", "Works at Acme as a nurse").
Return {"facts": []} when there is nothing worth remembering.`

const decidePrompt = `You keep a user's long-term memory. Compare a new fact about the user with the existing memories most similar to it and choose one action.
Return only a JSON object: {"event": "ADD" | "UPDATE" | "DELETE" | "NONE", "id": "<memory id>", "text": "<memory text>"}.
- ADD: the fact is new information; "text" is the fact, "id" is empty.
- UPDATE: the fact corrects or adds detail to one existing memory; "id" is that memory's id and "text" merges both into one statement.
- DELETE: the fact contradicts one existing memory, which is no longer true; "id" is that memory's id.
- NONE: the memories already hold the fact.`

// transcript renders the conversation for extraction: its last messages
// that fit in extractInputSize bytes, oldest first.
func transcript(msgs []Message) string {
	var parts []string
	size := 0
	for i := len(msgs) - 1; i >= 0; i-- {
		m := msgs[i]
		if m.Role == "system" || strings.TrimSpace(m.Content) == "" {
			continue
		}
		line := m.Role + ": " + strings.TrimSpace(m.Content)
		if size+len(line) > extractInputSize {
			if size == 0 { // a single long message: keep its end
				line = m.Role + ": …" + truncateStart(m.Content, extractInputSize-len(m.Role)-6)
				parts = append(parts, line)
			}
			break
		}
		size += len(line) + 1
		parts = append(parts, line)
	}
	var b strings.Builder
	for i := len(parts) - 1; i >= 0; i-- {
		b.WriteString(parts[i])
		b.WriteByte('\n')
	}
	return b.String()
}

// truncateStart keeps the last n bytes of s, cut at a rune boundary.
func truncateStart(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[len(s)-n:]
	for len(s) > 0 && !utf8.RuneStart(s[0]) {
		s = s[1:]
	}
	return s
}

// decodeAnswer reads the JSON object of a model's answer into v, allowing
// code fences and prose around it.
func decodeAnswer(answer string, v any) error {
	i, j := strings.IndexByte(answer, '{'), strings.LastIndexByte(answer, '}')
	if i < 0 || j < i {
		return fmt.Errorf("%w: no JSON object", errBadAnswer)
	}
	if err := json.Unmarshal([]byte(answer[i:j+1]), v); err != nil {
		return fmt.Errorf("%w: %v", errBadAnswer, err)
	}
	return nil
}

// extract asks the model for the user's facts: cleaned, distinct, at most
// MaxFacts.
func (s *Service) extract(ctx context.Context, in AddInput) ([]string, error) {
	conv := transcript(in.Messages)
	if conv == "" {
		return nil, nil
	}
	answer, err := s.models.Complete(ctx, ModelRequest{TenantID: in.TenantID, UserID: in.UserID, Model: in.Model,
		MaxTokens: extractMaxTokens, Messages: []ModelMessage{
			{Role: "system", Content: extractPrompt},
			{Role: "user", Content: "Conversation:\n" + conv},
		}})
	if err != nil {
		return nil, err
	}
	var got struct {
		Facts []string `json:"facts"`
	}
	if err := decodeAnswer(answer, &got); err != nil {
		return nil, err
	}
	var facts []string
	seen := map[string]bool{}
	for _, f := range got.Facts {
		text, err := cleanText(f)
		if err != nil {
			continue
		}
		if h := Hash(text); !seen[h] && len(facts) < MaxFacts {
			seen[h] = true
			facts = append(facts, text)
		}
	}
	return facts, nil
}

// decision is a model's choice for one fact.
type decision struct {
	Event string `json:"event"`
	ID    string `json:"id"`
	Text  string `json:"text"`
}

// decide asks the model what to do with fact given the similar memories.
// An answer that is not JSON adds the fact; an unknown event does nothing.
func (s *Service) decide(ctx context.Context, in AddInput, fact string, similar []Hit) (decision, error) {
	type shown struct {
		ID   string `json:"id"`
		Text string `json:"text"`
	}
	ask := struct {
		Fact     string  `json:"fact"`
		Memories []shown `json:"memories"`
	}{Fact: fact}
	for _, h := range similar {
		ask.Memories = append(ask.Memories, shown{h.Memory.ID, h.Memory.Text})
	}
	body, err := json.Marshal(ask)
	if err != nil {
		return decision{}, err
	}
	answer, err := s.models.Complete(ctx, ModelRequest{TenantID: in.TenantID, UserID: in.UserID, Model: in.Model,
		MaxTokens: decideMaxTokens, Messages: []ModelMessage{
			{Role: "system", Content: decidePrompt},
			{Role: "user", Content: string(body)},
		}})
	if err != nil {
		return decision{}, err
	}
	var d decision
	if err := decodeAnswer(answer, &d); err != nil {
		s.log.WarnContext(ctx, "memory: decision was not valid JSON; adding the fact", "model", in.Model,
			"error", err)
		return decision{Event: EventAdd, Text: fact}, nil
	}
	d.Event = strings.ToUpper(strings.TrimSpace(d.Event))
	switch d.Event {
	case EventAdd, EventUpdate, EventDelete, EventNone:
	default:
		s.log.WarnContext(ctx, "memory: unknown decision; doing nothing", "model", in.Model, "event", d.Event)
		d.Event = EventNone
	}
	// An id that is not one of the memories shown is not one the model
	// may change: the fact is added instead.
	if d.Event == EventUpdate || d.Event == EventDelete {
		known := false
		for _, h := range similar {
			known = known || h.Memory.ID == d.ID
		}
		if !known {
			d = decision{Event: EventAdd, Text: fact}
		}
	}
	if text, err := cleanText(d.Text); err == nil {
		d.Text = text
	} else {
		d.Text = fact
	}
	return d, nil
}

// decideAll runs the decision step for each fact and applies it, keeping
// the user's memories in memory as they change so that a later fact sees
// an earlier one's effect.
func (s *Service) decideAll(ctx context.Context, in AddInput, facts []string) ([]Change, error) {
	if len(facts) == 0 {
		return nil, nil
	}
	var sources []string
	for _, m := range in.Messages {
		if m.ID != "" {
			sources = append(sources, m.ID)
		}
	}
	k := corpusKey{in.TenantID, in.AppName, in.UserID}
	cor, err := s.corpus(ctx, k)
	if err != nil {
		return nil, fmt.Errorf("memory: add: %w", err)
	}
	// then moves cor on past one write of this Add, m written or deleted,
	// with the cache when it can.
	then := func(m Memory, deleted bool) {
		if next := s.wrote(ctx, k, cor, m.ID, deleted); next != nil {
			cor = next
		} else if deleted {
			cor = cor.remove(m.ID)
		} else {
			cor = cor.put(m)
		}
	}
	vecs := s.vectors(ctx, in, facts)
	// vectorOf reuses a fact's vector for its text and embeds other text.
	vectorOf := func(i int, text string) []float32 {
		if text == facts[i] {
			return at(vecs, i)
		}
		return at(s.vectors(ctx, in, []string{text}), 0)
	}
	var out []Change
	for i, fact := range facts {
		mems := cor.mems
		h := Hash(fact)
		if j := indexMemory(mems, func(m Memory) bool { return m.Hash == h }); j >= 0 {
			out = append(out, Change{Event: EventNone, MemoryID: mems[j].ID, Text: mems[j].Text})
			continue
		}
		similar, err := rank(ctx, cor, fact, in.EmbeddingModel, at(vecs, i), similarMemories)
		if err != nil {
			return out, fmt.Errorf("memory: add: %w", err)
		}
		d := decision{Event: EventAdd, Text: fact}
		if len(similar) > 0 {
			if d, err = s.decide(ctx, in, fact, similar); err != nil {
				return out, fmt.Errorf("memory: decide: %w", err)
			}
		}
		target := indexMemory(mems, func(m Memory) bool { return m.ID == d.ID })
		var c Change
		switch d.Event {
		case EventNone:
			c = Change{Event: EventNone, Text: fact}
			if target >= 0 {
				c.MemoryID = mems[target].ID
			}
		case EventAdd:
			m := s.newMemory(in, d.Text, sources, in.EmbeddingModel, vectorOf(i, d.Text))
			if c, err = s.create(ctx, m, in.Actor); err != nil {
				return out, err
			}
			if c.Event == EventAdd {
				then(m, false)
			}
		case EventUpdate:
			old := mems[target]
			if Hash(d.Text) == old.Hash {
				c = Change{Event: EventNone, MemoryID: old.ID, Text: old.Text}
				break
			}
			m, err := s.update(ctx, old.ID, d.Text, in.EmbeddingModel, vectorOf(i, d.Text), in.Actor)
			switch {
			case nodus.ErrorCode(err) == nodus.ECONFLICT || nodus.ErrorCode(err) == nodus.ENOTFOUND:
				// Another memory holds the merged text already, or the
				// memory went meanwhile.
				c = Change{Event: EventNone, MemoryID: old.ID, Text: fact}
			case err != nil:
				return out, err
			default:
				then(m, false)
				c = Change{Event: EventUpdate, MemoryID: m.ID, Text: m.Text, Old: old.Text}
			}
		case EventDelete:
			old := mems[target]
			_, err := s.store.DeleteMemory(ctx, old.ID, HistoryEntry{ID: nodus.NewID(), Actor: in.Actor,
				CreatedAt: s.now()})
			switch {
			case nodus.ErrorCode(err) == nodus.ENOTFOUND: // gone meanwhile
				cor = cor.remove(old.ID)
				c = Change{Event: EventNone, Text: fact}
			case err != nil:
				return out, fmt.Errorf("memory: delete %s: %w", old.ID, err)
			default:
				then(old, true)
				c = Change{Event: EventDelete, MemoryID: old.ID, Old: old.Text}
			}
		}
		out = append(out, c)
	}
	return out, nil
}

func indexMemory(mems []Memory, match func(Memory) bool) int {
	for i, m := range mems {
		if match(m) {
			return i
		}
	}
	return -1
}
