package notebook

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nodus-os/nodus/internal/nodus"
)

// A chat turn: the notebook's included sources become numbered sources in
// the system prompt (the convention nodus/extractive reads: a line
// starting "[n] "), a full source its text cut to what the budget leaves, a
// summarised one its summary; excluded sources are never read. As much of
// the session's history as fits follows, then the question, and the
// gateway answers in process as the user. Question and answer are stored
// together, the answer with its citations.

// CreateChat starts a chat session of the actor in a notebook (read
// access: chatting changes nothing in the notebook).
func (s *Service) CreateChat(ctx context.Context, a Actor, notebookID, title string) (*Chat, error) {
	if a.ReadOnly {
		return nil, nodus.Errorf(nodus.EFORBIDDEN, "viewers cannot chat")
	}
	if _, err := s.notebook(ctx, a, notebookID, PermRead); err != nil {
		return nil, err
	}
	title = oneLine(title)
	if title != "" {
		if err := validTitle(title); err != nil {
			return nil, err
		}
	}
	now := s.now().UTC()
	c := Chat{ID: nodus.NewID(), NotebookID: notebookID, TenantID: a.TenantID, UserID: a.UserID, Title: title,
		CreatedAt: now, UpdatedAt: now}
	if err := s.store.CreateNotebookChat(a.ctx(ctx), c); err != nil {
		return nil, fmt.Errorf("notebook: start chat: %w", err)
	}
	return &c, nil
}

// ListChats lists the actor's chat sessions in a notebook, newest first.
func (s *Service) ListChats(ctx context.Context, a Actor, notebookID, cursor string, limit int) ([]Chat, string, error) {
	if _, err := s.notebook(ctx, a, notebookID, PermRead); err != nil {
		return nil, "", err
	}
	return s.store.ListNotebookChats(a.ctx(ctx), notebookID, a.UserID, cursor, limit)
}

// GetChat returns one of the actor's chat sessions with its messages.
func (s *Service) GetChat(ctx context.Context, a Actor, notebookID, id string) (*Chat, []Message, error) {
	c, err := s.chat(ctx, a, notebookID, id)
	if err != nil {
		return nil, nil, err
	}
	msgs, err := s.store.ListNotebookMessages(a.ctx(ctx), c.ID)
	if err != nil {
		return nil, nil, err
	}
	return &c, msgs, nil
}

// DeleteChat deletes one of the actor's chat sessions.
func (s *Service) DeleteChat(ctx context.Context, a Actor, notebookID, id string) error {
	c, err := s.chat(ctx, a, notebookID, id)
	if err != nil {
		return err
	}
	return s.store.DeleteNotebookChat(a.ctx(ctx), notebookID, c.ID, a.UserID)
}

func (s *Service) chat(ctx context.Context, a Actor, notebookID, id string) (Chat, error) {
	if _, err := s.notebook(ctx, a, notebookID, PermRead); err != nil {
		return Chat{}, err
	}
	if !nodus.ValidID(id) {
		return Chat{}, notFound("chat", id)
	}
	return s.store.FindNotebookChat(a.ctx(ctx), notebookID, id, a.UserID)
}

// Turn is a finished chat turn.
type Turn struct {
	Question Message
	Answer   Message
	Metadata AnswerMetadata
}

// Prompt instructions.
const (
	groundingPrompt = "You answer questions about a notebook from its numbered sources below, and from nothing else. " +
		"Cite each source you use with its number in square brackets, like [1]. If the sources do not contain " +
		"the answer, say that you do not know rather than guess."
	noSourcesPrompt = "This notebook has no source included in its chat. Say that you cannot answer until a source " +
		"is included."
)

// Sink receives a streamed turn as it happens.
type Sink interface {
	// Started is called once the prompt is built, before the model is
	// called: the turn's ids and the sources it may cite are known.
	Started(t *Turn) error
	// Delta is a piece of the answer. An error (the client went away)
	// stops the model's call; the answer so far is kept.
	Delta(text string) error
}

// Ask answers a question in one of the actor's chat sessions from the
// notebook's included sources. A failed model call still stores the
// question and an empty answer with the error, and returns the error with
// the turn.
func (s *Service) Ask(ctx context.Context, a Actor, notebookID, chatID, question string) (*Turn, error) {
	return s.AskStream(ctx, a, notebookID, chatID, question, nil)
}

// AskStream is Ask with the answer streamed to sink (nil for none).
// Errors before the answer starts come with no Turn; once it started, the
// turn is stored with what arrived and returned with the error.
func (s *Service) AskStream(ctx context.Context, a Actor, notebookID, chatID, question string, sink Sink) (*Turn, error) {
	if a.ReadOnly {
		return nil, nodus.Errorf(nodus.EFORBIDDEN, "viewers cannot chat")
	}
	// The notebook and session first: another's is not found whatever
	// the body.
	n, err := s.notebook(ctx, a, notebookID, PermRead)
	if err != nil {
		return nil, err
	}
	c, err := s.chat(ctx, a, notebookID, chatID)
	if err != nil {
		return nil, err
	}
	switch {
	case strings.TrimSpace(question) == "":
		return nil, invalid("message", "is required")
	case len(question) > MaxMessageBytes:
		return nil, invalid("message", fmt.Sprintf("at most %d bytes", MaxMessageBytes))
	case !utf8.ValidString(question):
		return nil, invalid("message", "is not valid UTF-8")
	}
	tctx := a.ctx(ctx)
	sources, err := s.store.ListNotebookSources(tctx, notebookID)
	if err != nil {
		return nil, err
	}
	history, err := s.store.ListNotebookMessages(tctx, c.ID)
	if err != nil {
		return nil, err
	}
	model := s.model(ctx, n)
	if model == "" {
		model = DefaultChatModel
	}
	req, md, err := s.prompt(model, sources, history, question)
	if err != nil {
		return nil, err
	}
	req.TenantID, req.UserID = a.TenantID, a.UserID

	now := s.now().UTC()
	t := &Turn{Metadata: md,
		Question: Message{ID: nodus.NewID(), ChatID: c.ID, TenantID: a.TenantID, Role: RoleUser, Content: question,
			Metadata: json.RawMessage(`{}`), CreatedAt: now},
		Answer: Message{ID: nodus.NewID(), ChatID: c.ID, TenantID: a.TenantID, Role: RoleAssistant}}
	var callErr error
	if sink != nil {
		callErr = sink.Started(t)
	}
	var answer strings.Builder
	if callErr == nil {
		callErr = s.call(ctx, req, &t.Metadata, &answer, sink)
	}
	md = t.Metadata
	if callErr != nil {
		md.Error = nodus.ErrorMessage(callErr)
		if ctx.Err() != nil {
			md.Error = "the client disconnected before the answer was complete"
		}
	}
	quotes := quotesOf(answer.String())
	for i := range md.Citations {
		q, ok := quotes[md.Citations[i].N]
		md.Citations[i].Cited, md.Citations[i].Quote = ok, q
	}
	meta, err := json.Marshal(md)
	if err != nil {
		return nil, err
	}
	t.Metadata, t.Answer.Content, t.Answer.Metadata, t.Answer.CreatedAt = md, answer.String(), meta, s.now().UTC()
	title := ""
	if c.Title == "" {
		title = titleFrom(question)
	}
	// Stored even when the client went away: the session shows what
	// happened.
	wctx, cancel := context.WithTimeout(nodus.WithTenant(context.WithoutCancel(ctx), a.TenantID), 10*time.Second)
	defer cancel()
	if err := s.store.AddNotebookMessages(wctx, c.ID, title, t.Answer.CreatedAt, t.Question, t.Answer); err != nil {
		return nil, fmt.Errorf("notebook: store the turn: %w", err)
	}
	if callErr != nil {
		return t, fmt.Errorf("notebook: ask: %w", callErr)
	}
	return t, nil
}

// call asks the model, streaming to sink when there is one (in one piece
// when the models cannot stream), and records the call in md.
func (s *Service) call(ctx context.Context, req ModelRequest, md *AnswerMetadata, answer *strings.Builder, sink Sink) error {
	if s.models == nil {
		return nodus.Errorf(nodus.EUNAVAILABLE, "the model gateway is not running")
	}
	var (
		info *ModelCall
		err  error
	)
	if sm, ok := s.models.(StreamModels); ok && sink != nil {
		info, err = sm.Stream(ctx, req, func(piece string) error {
			if piece == "" {
				return nil
			}
			answer.WriteString(piece)
			return sink.Delta(piece)
		})
	} else {
		var text string
		text, info, err = s.models.Complete(ctx, req)
		answer.WriteString(text)
		if err == nil && sink != nil && text != "" {
			err = sink.Delta(text)
		}
	}
	if info != nil {
		md.Model, md.RequestID, md.CostMicros = info.Model, info.RequestID, info.CostMicros
	}
	return err
}

// prompt builds the model's request and the answer's metadata: the
// included sources numbered in order, each cut to what the budget leaves,
// then as much history as fits, newest kept.
func (s *Service) prompt(model string, sources []Source, history []Message, question string) (ModelRequest, AnswerMetadata, error) {
	md := AnswerMetadata{Model: model, Citations: []Citation{}}
	budget := int64(s.contextTokens) - MaxAnswerTokens
	count := func(text string) int64 { return s.countTokens(model, text) + 4 }
	base := groundingPrompt
	var included []Source
	for _, src := range sources {
		if src.ContextLevel != LevelExcluded {
			included = append(included, src)
		}
	}
	if len(included) == 0 {
		base = noSourcesPrompt
	}
	used := count(base) + count(question)
	if used > budget {
		return ModelRequest{}, md, invalid("message", fmt.Sprintf("the message is too long for the model's context of %d tokens", s.contextTokens))
	}
	// Sources take what the question and instructions leave, less a
	// quarter kept for the conversation so far.
	srcBudget := budget - used - (budget-used)/4
	var b strings.Builder
	for _, src := range included {
		if srcBudget <= 0 {
			md.Truncated = append(md.Truncated, src.ID)
			continue
		}
		body := src.FullText
		if src.ContextLevel == LevelSummary {
			body = src.Summary
			if body == "" { // not summarised yet
				body = leadingExtract(src.FullText, extractSummaryChars)
			}
		}
		n := len(md.Citations) + 1
		head := fmt.Sprintf("[%d] %s: ", n, oneLine(src.Title))
		body = oneLine(body)
		line := head + body + "\n"
		if c := count(line); c > srcBudget {
			// Cut the text to the tokens left, estimated by its bytes per
			// token.
			per := float64(len(body)) / float64(max(c, 1))
			keep := int(float64(srcBudget-count(head)) * per)
			if keep <= 0 {
				md.Truncated = append(md.Truncated, src.ID)
				continue
			}
			body, _ = cut(body, keep)
			line = head + body + "\n"
			md.Truncated = append(md.Truncated, src.ID)
		}
		srcBudget -= count(line)
		used += count(line)
		b.WriteString(line)
		md.Citations = append(md.Citations, Citation{N: n, SourceID: src.ID, Title: src.Title})
	}
	system := base
	if b.Len() > 0 {
		system += "\n\nSources:\n" + b.String()
	}
	var kept []ModelMessage
	for i := len(history) - 1; i >= 0 && len(kept) < historyMessages; i-- {
		m := history[i]
		if m.Content == "" {
			continue
		}
		c := count(m.Content)
		if used+c > budget {
			break
		}
		used += c
		// History is quoted as plain text: a past answer's "[n] " lines
		// must not read as sources of this turn.
		kept = append(kept, ModelMessage{Role: m.Role, Content: strings.ReplaceAll(m.Content, "\n[", "\n (")})
	}
	msgs := []ModelMessage{{Role: "system", Content: system}}
	for i := len(kept) - 1; i >= 0; i-- {
		msgs = append(msgs, kept[i])
	}
	msgs = append(msgs, ModelMessage{Role: RoleUser, Content: question})
	return ModelRequest{Model: model, Messages: msgs, MaxTokens: MaxAnswerTokens}, md, nil
}

func (s *Service) countTokens(model, text string) int64 {
	if s.models != nil {
		return s.models.CountTokens(model, text)
	}
	return int64(len(text)+3) / 4
}

var citation = regexp.MustCompile(`\[(\d{1,3})\]`)

// quotesOf returns, for each source number an answer cites as [n], the
// text it cites it for: the stretch of the answer before the marker, back
// to the previous marker or line break, without quotation marks.
func quotesOf(answer string) map[int]string {
	out := map[int]string{}
	prev := 0
	for _, m := range citation.FindAllStringSubmatchIndex(answer, -1) {
		n, err := strconv.Atoi(answer[m[2]:m[3]])
		if err != nil {
			continue
		}
		seg := answer[prev:m[0]]
		if i := strings.LastIndexByte(seg, '\n'); i >= 0 {
			seg = seg[i+1:]
		}
		seg = strings.Trim(strings.TrimSpace(seg), `"“”,;:`)
		seg = strings.TrimSpace(seg)
		seg, _ = cut(seg, 1000)
		if _, ok := out[n]; !ok || out[n] == "" {
			out[n] = seg
		}
		prev = m[1]
	}
	return out
}

// SaveAnswer saves an answer of one of the actor's chat sessions as an ai
// card with the sources it cites (write access). The title defaults to
// the question's first line.
func (s *Service) SaveAnswer(ctx context.Context, a Actor, notebookID, chatID, messageID, title string) (*Card, error) {
	if _, err := s.notebook(ctx, a, notebookID, PermWrite); err != nil {
		return nil, err
	}
	c, err := s.chat(ctx, a, notebookID, chatID)
	if err != nil {
		return nil, err
	}
	msgs, err := s.store.ListNotebookMessages(a.ctx(ctx), c.ID)
	if err != nil {
		return nil, err
	}
	var answer *Message
	question := ""
	for i := range msgs {
		if msgs[i].ID == messageID {
			answer = &msgs[i]
			if i > 0 && msgs[i-1].Role == RoleUser {
				question = msgs[i-1].Content
			}
			break
		}
	}
	switch {
	case answer == nil:
		return nil, notFound("message", messageID)
	case answer.Role != RoleAssistant:
		return nil, invalid("message", "only an answer can be saved as a card")
	case strings.TrimSpace(answer.Content) == "":
		return nil, invalid("message", "the answer is empty")
	}
	var md AnswerMetadata
	if err := json.Unmarshal(answer.Metadata, &md); err != nil {
		return nil, fmt.Errorf("notebook: answer %s metadata: %w", answer.ID, err)
	}
	cites := []Citation{}
	for _, ct := range md.Citations {
		if ct.Cited {
			cites = append(cites, Citation{N: ct.N, SourceID: ct.SourceID, Title: ct.Title, Quote: ct.Quote})
		}
	}
	title = oneLine(title)
	if title == "" {
		title = cardTitle(question)
	}
	content, _ := cut(answer.Content, MaxCardBytes)
	now := s.now().UTC()
	card := Card{ID: nodus.NewID(), NotebookID: notebookID, TenantID: a.TenantID, Title: title, Content: content,
		Kind: CardAI, Citations: cites, CreatedBy: a.UserID, CreatedAt: now, UpdatedAt: now}
	if err := validTitle(card.Title); err != nil {
		return nil, err
	}
	return s.addCard(ctx, a, card)
}
