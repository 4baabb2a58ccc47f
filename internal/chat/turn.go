package chat

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nodus-os/nodus/internal/nodus"
)

// A chat turn: the user's message is stored, the chatbot's knowledge bases
// are searched with it, the best passages become numbered sources in the
// system prompt (the convention nodus/extractive reads: a line starting
// "[n] "), as much of the conversation as fits the model's context follows,
// and the gateway is called in process as the user, streaming or not. The
// answer is stored with its metadata (model, usage, cost, latency, time to
// first token, citations, the gateway's request id, which names its spend
// log row) whether it completed, failed or was cut short by the client
// going away, which also stops the upstream call.

// TurnInput is one user message to a chatbot.
type TurnInput struct {
	ChatbotID      string
	ConversationID string // "" starts a new conversation
	Message        string
	TraceID        string // the caller's trace, if any
}

// Source is a passage retrieved for a turn, numbered as the prompt cites it.
type Source struct {
	N               int     `json:"n"`
	KnowledgeBaseID string  `json:"knowledge_base_id"`
	DocumentID      string  `json:"document_id"`
	DocumentName    string  `json:"document_name"`
	ChunkID         string  `json:"chunk_id"`
	Position        int     `json:"position"`
	Score           float64 `json:"score"`
	Snippet         string  `json:"snippet"` // HTML: escaped, matches in <mark>
	Content         string  `json:"content"`
	Cited           bool    `json:"cited"` // the answer refers to it as [n]
	// A passage of a recording's transcript: the recording and the
	// seconds of its audio the passage was heard at.
	RecordingID string   `json:"recording_id,omitempty"`
	Start       *float64 `json:"start,omitempty"`
	End         *float64 `json:"end,omitempty"`
}

// MessageMetadata is an assistant message's metadata, stored as JSON.
type MessageMetadata struct {
	Model          string   `json:"model"`
	DeploymentID   string   `json:"deployment_id,omitempty"`
	Provider       string   `json:"provider,omitempty"`
	UpstreamModel  string   `json:"upstream_model,omitempty"`
	RequestID      string   `json:"request_id,omitempty"` // the gateway's, as in its spend log
	TraceID        string   `json:"trace_id,omitempty"`
	Usage          *Usage   `json:"usage,omitempty"`
	UsageEstimated bool     `json:"usage_estimated,omitempty"`
	CostMicros     int64    `json:"cost_micros"`
	Cost           string   `json:"cost"` // USD, decimal
	LatencyMS      int64    `json:"latency_ms"`
	TTFTMS         int64    `json:"time_to_first_token_ms"`
	Citations      []Source `json:"citations"`
	Partial        bool     `json:"partial,omitempty"` // the answer was cut short
	Error          string   `json:"error,omitempty"`
	Notice         string   `json:"notice,omitempty"`   // e.g. documents still indexing
	Memories       []string `json:"memories,omitempty"` // recalled of the user, for chatbots with memory
}

// Turn is a chat turn in progress, then done.
type Turn struct {
	Conversation Conversation
	Created      bool // the conversation was started by this turn
	Question     Message
	Answer       Message // its ID is set before the answer starts
	Metadata     MessageMetadata

	// For the turn's trace: the chatbot, the asker, and when each step ran.
	bot               Chatbot
	userID, question  string
	retrieval, recall Step
	// The turn's trace: the caller's (a traceparent) or its own, and the
	// turn's span in it, under which the gateway nests its generation.
	ownTrace bool
	spanID   string
}

// Sink receives a streamed turn as it happens.
type Sink interface {
	// Started is called once the question is stored and the sources are
	// known, before the model is called.
	Started(t *Turn) error
	// Delta is a piece of the answer. An error (the client went away)
	// stops the model's call; the answer so far is kept, marked partial.
	Delta(text string) error
}

// Turn answers a user's message to a chatbot. With a sink the answer is
// streamed to it; without one the model is called once and the whole
// answer returned. Errors before the answer starts (validation, an
// unknown chatbot or conversation) are returned with no Turn; an error
// once it started (the model failed, the client went away) returns the
// Turn too, its answer stored with what arrived and the error in its
// metadata.
func (s *Service) Turn(ctx context.Context, a Actor, in TurnInput, sink Sink) (*Turn, error) {
	began := s.now()
	if err := validateMessage(in.Message); err != nil {
		return nil, err
	}
	if !nodus.ValidID(in.ChatbotID) {
		return nil, notFound("chatbot", in.ChatbotID)
	}
	tctx := a.ctx(ctx)
	bot, err := s.store.FindChatbot(tctx, in.ChatbotID)
	if err != nil {
		return nil, err
	}
	if !bot.IsActive {
		return nil, nodus.Errorf(nodus.ECONFLICT, "the chatbot %s is not active", bot.Name)
	}
	t := &Turn{}
	if in.ConversationID == "" {
		now := s.now().UTC()
		t.Conversation = Conversation{ID: nodus.NewID(), TenantID: a.TenantID, ChatbotID: bot.ID, UserID: a.UserID,
			Title: titleFrom(in.Message), CreatedAt: now, UpdatedAt: now}
		if err := s.store.CreateConversation(tctx, t.Conversation); err != nil {
			return nil, fmt.Errorf("chat: start conversation: %w", err)
		}
		t.Created = true
	} else {
		c, err := s.conversation(ctx, a, in.ConversationID, true)
		if err != nil {
			return nil, err
		}
		switch {
		case c.ChatbotID != bot.ID:
			return nil, invalid("conversation_id", "belongs to another chatbot")
		case c.Archived:
			return nil, nodus.Errorf(nodus.ECONFLICT, "the conversation is archived; unarchive it to continue")
		}
		t.Conversation = c
	}

	// Earlier messages, before this one is added.
	history, err := s.store.ListMessages(tctx, t.Conversation.ID, historyMessages)
	if err != nil {
		return nil, err
	}
	t.Question = Message{ID: nodus.NewID(), TenantID: a.TenantID, ConversationID: t.Conversation.ID, Role: RoleUser,
		Content: in.Message, Metadata: json.RawMessage(`{}`), CreatedAt: s.now().UTC()}
	if err := s.store.AddMessage(tctx, t.Question); err != nil {
		return nil, fmt.Errorf("chat: store the message: %w", err)
	}
	t.Answer = Message{ID: nodus.NewID(), TenantID: a.TenantID, ConversationID: t.Conversation.ID, Role: RoleAssistant}
	t.Metadata = MessageMetadata{Model: bot.ModelName, TraceID: in.TraceID, Citations: []Source{}}
	if !validTraceID(in.TraceID) {
		t.Metadata.TraceID, t.ownTrace = randomHex(16), true
	}
	t.spanID = randomHex(8)

	t.bot, t.userID, t.question = bot, a.UserID, in.Message
	t.retrieval.Began = s.now()
	sources, indexing, err := s.retrieve(ctx, a, bot, in.Message)
	t.retrieval.Ended = s.now()
	if err != nil {
		return nil, err
	}
	t.Metadata.Citations = sources
	if indexing > 0 {
		t.Metadata.Notice = fmt.Sprintf("%d document(s) of this chatbot's knowledge bases are still being indexed; "+
			"this answer cannot draw on them yet.", indexing)
	}
	if bot.MemoryEnabled && s.memory != nil {
		t.recall.Began = s.now()
		mems, err := s.memory.Recall(ctx, a.TenantID, bot.ID, a.UserID, in.Message, MaxMemories)
		t.recall.Ended = s.now()
		if err != nil {
			// A turn without its memories beats no turn.
			s.log.WarnContext(ctx, "chat: recalling memories", "chatbot", bot.ID, "error", err)
		}
		t.Metadata.Memories = mems
	}
	if sink != nil {
		if err := sink.Started(t); err != nil {
			return t, s.finish(ctx, t, "", began, 0, nil, err)
		}
	}

	// Nothing to answer from while the documents are still indexing: say
	// so rather than answer from nothing.
	if len(bot.KnowledgeBases) > 0 && len(sources) == 0 && indexing > 0 {
		answer := fmt.Sprintf("I cannot answer yet: %d document(s) of my knowledge bases are still being indexed. "+
			"Please ask again in a moment.", indexing)
		var err error
		if sink != nil {
			err = sink.Delta(answer)
		}
		return t, s.finish(ctx, t, answer, began, s.now().Sub(began), nil, err)
	}

	req, err := s.prompt(bot, history, sources, t.Metadata.Memories, in.Message)
	if err != nil {
		return t, s.finish(ctx, t, "", began, 0, nil, err)
	}
	req.TenantID, req.UserID, req.TraceID, req.ParentSpanID = a.TenantID, a.UserID, t.Metadata.TraceID, t.spanID
	if s.models == nil {
		return t, s.finish(ctx, t, "", began, 0, nil, nodus.Errorf(nodus.EUNAVAILABLE, "the model gateway is not running"))
	}
	var (
		answer strings.Builder
		ttft   time.Duration
		info   *ModelCall
	)
	if sink == nil {
		var text string
		text, info, err = s.models.Complete(ctx, req)
		answer.WriteString(text)
		ttft = s.now().Sub(began)
	} else {
		info, err = s.models.Stream(ctx, req, func(piece string) error {
			if piece == "" {
				return nil
			}
			if ttft == 0 {
				ttft = s.now().Sub(began)
			}
			answer.WriteString(piece)
			return sink.Delta(piece)
		})
	}
	err = s.finish(ctx, t, answer.String(), began, ttft, info, err)
	if err == nil && bot.MemoryEnabled && s.memory != nil {
		// The exchange is written to memory in the background.
		rr := RememberRequest{TenantID: a.TenantID, App: bot.ID, UserID: a.UserID, ConversationID: t.Conversation.ID,
			QuestionID: t.Question.ID, AnswerID: t.Answer.ID, Model: bot.ModelName}
		if err := s.memory.Remember(context.WithoutCancel(ctx), rr); err != nil {
			s.log.WarnContext(ctx, "chat: queueing the exchange for memory", "conversation", t.Conversation.ID, "error", err)
		}
	}
	return t, err
}

// finish stores the answer with its metadata (even after ctx ended: a
// client that went away keeps its partial answer), titles a new
// conversation, and returns cause wrapped.
func (s *Service) finish(ctx context.Context, t *Turn, answer string, began time.Time, ttft time.Duration, info *ModelCall, cause error) error {
	md := &t.Metadata
	if info != nil {
		md.Model, md.DeploymentID, md.Provider, md.UpstreamModel = info.Model, info.DeploymentID, info.Provider, info.UpstreamModel
		md.RequestID, md.UsageEstimated, md.CostMicros = info.RequestID, info.UsageEstimated, info.CostMicros
		u := info.Usage
		md.Usage = &u
	}
	md.Cost = formatMicros(md.CostMicros)
	md.LatencyMS = s.now().Sub(began).Milliseconds()
	md.TTFTMS = ttft.Milliseconds()
	cited := citedSources(answer)
	for i := range md.Citations {
		md.Citations[i].Cited = cited[md.Citations[i].N]
	}
	if cause != nil {
		md.Partial = true
		md.Error = turnError(ctx, cause)
	}
	meta, err := json.Marshal(md)
	if err != nil {
		return errors.Join(cause, err)
	}
	t.Answer.Content, t.Answer.Metadata, t.Answer.CreatedAt = answer, meta, s.now().UTC()
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	wctx = nodus.WithTenant(wctx, t.Conversation.TenantID)
	// A failed answer is stored too, empty or partial, with its error: the
	// conversation shows what happened (the prompt skips empty answers).
	if err := s.store.AddMessage(wctx, t.Answer); err != nil {
		s.log.ErrorContext(ctx, "chat: storing an answer", "conversation", t.Conversation.ID, "error", err)
		return errors.Join(cause, fmt.Errorf("chat: store the answer: %w", err))
	}
	if s.tracer != nil {
		s.tracer.Turn(t.trace(answer, began, s.now()))
	}
	if cause != nil {
		return fmt.Errorf("chat: turn: %w", cause)
	}
	return nil
}

// trace is the turn as its trace shows it.
func (t *Turn) trace(answer string, began, ended time.Time) TurnTrace {
	tt := TurnTrace{TenantID: t.Conversation.TenantID, UserID: t.userID, TraceID: t.Metadata.TraceID,
		OwnTrace: t.ownTrace, SpanID: t.spanID,
		ChatbotID: t.bot.ID, ChatbotName: t.bot.Name, Model: t.Metadata.Model, ConversationID: t.Conversation.ID,
		MessageID: t.Answer.ID, Question: t.question, Answer: answer, Turn: Step{began, ended},
		Retrieval: t.retrieval, Sources: t.Metadata.Citations, Recall: t.recall, Memories: t.Metadata.Memories,
		Error: t.Metadata.Error}
	return tt
}

// turnError is what an answer's metadata says went wrong.
func turnError(ctx context.Context, err error) string {
	if ctx.Err() != nil {
		return "the client disconnected before the answer was complete"
	}
	return nodus.ErrorMessage(err)
}

// retrieve searches each of the chatbot's knowledge bases with the message
// and returns up to MaxSources passages, numbered from 1: the first of
// each knowledge base, then the second of each, and so on (their scores
// are not comparable across knowledge bases), and how many of their
// documents are still being indexed.
func (s *Service) retrieve(ctx context.Context, a Actor, bot Chatbot, question string) ([]Source, int, error) {
	if s.knowledge == nil || len(bot.KnowledgeBases) == 0 {
		return []Source{}, 0, nil
	}
	r := bot.Retrieval
	var (
		perKB    [][]Passage
		indexing int
	)
	for _, kbID := range bot.KnowledgeBases {
		req := SearchRequest{TenantID: a.TenantID, UserID: a.UserID, KnowledgeBaseID: kbID, Query: truncateQuery(question),
			TopK: r.TopK, ScoreThreshold: r.ScoreThreshold, Mode: r.Mode, HybridWeight: r.HybridWeight}
		hits, err := s.knowledge.Search(ctx, req)
		switch code := nodus.ErrorCode(err); {
		case err == nil:
		case code == nodus.ENOTFOUND:
			continue // deleted since the chatbot named it
		case code == nodus.EINVALID:
			// The chatbot's overrides do not suit this knowledge base
			// (vector search without an embedding model): its own
			// settings still answer.
			req.ScoreThreshold, req.Mode, req.HybridWeight = nil, "", nil
			if hits, err = s.knowledge.Search(ctx, req); err != nil {
				return nil, 0, fmt.Errorf("chat: search knowledge base %s: %w", kbID, err)
			}
		default:
			return nil, 0, fmt.Errorf("chat: search knowledge base %s: %w", kbID, err)
		}
		perKB = append(perKB, hits)
		n, err := s.knowledge.DocumentsIndexing(ctx, a.TenantID, kbID)
		if err != nil && nodus.ErrorCode(err) != nodus.ENOTFOUND {
			return nil, 0, fmt.Errorf("chat: knowledge base %s: %w", kbID, err)
		}
		indexing += n
	}
	out := []Source{}
	for rank := 0; len(out) < MaxSources; rank++ {
		added := false
		for _, hits := range perKB {
			if rank < len(hits) && len(out) < MaxSources {
				h := hits[rank]
				out = append(out, Source{N: len(out) + 1, KnowledgeBaseID: h.KnowledgeBaseID, DocumentID: h.DocumentID,
					DocumentName: h.DocumentName, ChunkID: h.ChunkID, Position: h.Position, Score: h.Score,
					Snippet: h.Snippet, Content: h.Text, RecordingID: h.RecordingID, Start: h.Start, End: h.End})
				added = true
			}
		}
		if !added {
			break
		}
	}
	return out, indexing, nil
}

// truncateQuery keeps a search query within the knowledge module's bound,
// at a rune boundary.
func truncateQuery(q string) string {
	if len(q) <= maxQueryBytes {
		return q
	}
	q = q[:maxQueryBytes]
	for !utf8.ValidString(q) {
		q = q[:len(q)-1]
	}
	return q
}

// Prompt instructions.
const (
	defaultSystemPrompt = "You are a helpful assistant."
	groundingPrompt     = "Answer the user's question from the numbered sources below. Cite each source you use " +
		"with its number in square brackets, like [1]. If the sources do not contain the answer, say that you do " +
		"not know rather than guess."
	memoryPrompt    = "What you remember about this user from earlier conversations (use it when it is relevant):"
	noSourcesPrompt = "The knowledge bases you answer from returned no passage for this question. Say that you " +
		"could not find the answer in them."
)

// prompt builds the model's request: the system prompt with the sources,
// as much history as fits, and the question. Sources that do not fit are
// dropped from the last; history is kept from the newest.
func (s *Service) prompt(bot Chatbot, history []Message, sources []Source, memories []string, question string) (ModelRequest, error) {
	maxTokens := int64(bot.MaxTokens)
	if maxTokens <= 0 {
		maxTokens = DefaultMaxTokens
	}
	window := s.contextTokens
	if bot.ContextTokens > 0 {
		window = bot.ContextTokens
	}
	budget := int64(window) - maxTokens
	count := func(text string) int64 { return s.countTokens(bot.ModelName, text) + 4 }
	base := bot.SystemPrompt
	if strings.TrimSpace(base) == "" {
		base = defaultSystemPrompt
	}
	if len(bot.KnowledgeBases) > 0 {
		if len(sources) > 0 {
			base += "\n\n" + groundingPrompt
		} else {
			base += "\n\n" + noSourcesPrompt
		}
	}
	used := count(base) + count(question)
	if used > budget {
		return ModelRequest{}, invalid("message", fmt.Sprintf("the message is too long for the model's context of %d tokens", window))
	}
	var src strings.Builder
	for _, sc := range sources {
		line := fmt.Sprintf("[%d] %s: %s\n", sc.N, oneLine(sc.DocumentName), oneLine(sc.Content))
		n := count(line)
		if used+n > budget {
			break
		}
		used += n
		src.WriteString(line)
	}
	system := base
	if src.Len() > 0 {
		system += "\n\nSources:\n" + src.String()
	}
	// What the chatbot remembers of the user, as plain lines: a line
	// starting "[n] " would read as a source.
	var mem strings.Builder
	for _, m := range memories {
		line := "- " + oneLine(m) + "\n"
		n := count(line)
		if used+n > budget {
			break
		}
		used += n
		mem.WriteString(line)
	}
	if mem.Len() > 0 {
		system += "\n\n" + memoryPrompt + "\n" + mem.String()
	}
	// History, newest first until the budget is spent, then in order.
	var kept []ModelMessage
	for i := len(history) - 1; i >= 0; i-- {
		m := history[i]
		if (m.Role != RoleUser && m.Role != RoleAssistant) || m.Content == "" {
			continue
		}
		n := count(m.Content)
		if used+n > budget {
			break
		}
		used += n
		kept = append(kept, ModelMessage{Role: m.Role, Content: m.Content})
	}
	msgs := make([]ModelMessage, 0, len(kept)+2)
	msgs = append(msgs, ModelMessage{Role: RoleSystem, Content: system})
	for i := len(kept) - 1; i >= 0; i-- {
		msgs = append(msgs, kept[i])
	}
	msgs = append(msgs, ModelMessage{Role: RoleUser, Content: question})
	return ModelRequest{Model: bot.ModelName, Messages: msgs, Temperature: bot.Temperature, MaxTokens: maxTokens}, nil
}

// oneLine collapses a passage onto one line: a source runs until the next
// line starting "[n] ", so a passage must not hold such a line.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

var citation = regexp.MustCompile(`\[(\d{1,3})\]`)

// citedSources returns the source numbers an answer refers to.
func citedSources(answer string) map[int]bool {
	out := make(map[int]bool)
	for _, m := range citation.FindAllStringSubmatch(answer, -1) {
		if n, err := strconv.Atoi(m[1]); err == nil {
			out[n] = true
		}
	}
	return out
}

// titleFrom is a new conversation's title: the first line of its first
// message, cut at a word boundary to about 60 characters.
func titleFrom(message string) string {
	line := oneLine(strings.SplitN(strings.TrimSpace(message), "\n", 2)[0])
	if utf8.RuneCountInString(line) <= 60 {
		return line
	}
	r := []rune(line)[:60]
	if i := strings.LastIndexByte(string(r), ' '); i > 20 {
		return string(r)[:i] + "…"
	}
	return string(r) + "…"
}

// validateMessage checks a user's message.
func validateMessage(m string) error {
	switch {
	case strings.TrimSpace(m) == "":
		return invalid("message", "is required")
	case len(m) > MaxMessageBytes:
		return invalid("message", fmt.Sprintf("is longer than %d bytes", MaxMessageBytes))
	case !utf8.ValidString(m):
		return invalid("message", "is not valid UTF-8")
	}
	return nil
}

// formatMicros writes an amount of micro-dollars as a decimal.
func formatMicros(m int64) string {
	sign := ""
	if m < 0 {
		sign, m = "-", -m
	}
	return fmt.Sprintf("%s%d.%06d", sign, m/1e6, m%1e6)
}

// countTokens counts with the models' tokenizer, or estimates four bytes a
// token when there is no gateway.
func (s *Service) countTokens(model, text string) int64 {
	if s.models != nil {
		return s.models.CountTokens(model, text)
	}
	return int64(len(text)+3) / 4
}

// randomHex is n random bytes in lowercase hex: W3C trace (16) and span
// (8) ids.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}

// validTraceID tells whether id is a W3C trace id: 32 lowercase hex
// digits, not all zero.
func validTraceID(id string) bool {
	if len(id) != 32 || id == strings.Repeat("0", 32) {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
