package notebook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nodus-os/nodus/internal/extract"
	"github.com/nodus-os/nodus/internal/nodus"
)

// SourceInput adds a source to a notebook.
type SourceInput struct {
	Kind         string
	Ref          string // a document or recording id, or a URL
	Text         string // pasted text
	Title        string // "" takes the document's, recording's or page's
	ContextLevel string // "" is full
}

// SourceChange changes a source; nil fields keep their value.
type SourceChange struct {
	Title        *string
	ContextLevel *string
}

func validLevel(l string) bool { return l == LevelExcluded || l == LevelSummary || l == LevelFull }

// AddSource captures a source's text and adds it to a notebook (write
// access); its summary is written in the background.
func (s *Service) AddSource(ctx context.Context, a Actor, notebookID string, in SourceInput) (*Source, error) {
	if _, err := s.notebook(ctx, a, notebookID, PermWrite); err != nil {
		return nil, err
	}
	if in.ContextLevel == "" {
		in.ContextLevel = LevelFull
	}
	if !validLevel(in.ContextLevel) {
		return nil, invalid("context_level", "must be excluded, summary or full")
	}
	if n, err := s.store.CountNotebookSources(a.ctx(ctx), notebookID); err != nil {
		return nil, err
	} else if n >= MaxSourcesPerNotebook {
		return nil, nodus.Errorf(nodus.ECONFLICT, "a notebook holds at most %d sources", MaxSourcesPerNotebook)
	}
	title, text, ref, err := s.capture(ctx, a, in)
	if err != nil {
		return nil, err
	}
	if t := strings.TrimSpace(in.Title); t != "" {
		title = t
	}
	title = oneLine(title)
	if title == "" {
		title = "Untitled"
	}
	title, _ = cut(title, MaxTitleChars)
	if err := validTitle(title); err != nil {
		return nil, err
	}
	text, _ = cut(strings.ToValidUTF8(text, "\uFFFD"), MaxSourceTextBytes)
	if strings.TrimSpace(text) == "" {
		return nil, invalid("text", "the source has no text")
	}
	now := s.now().UTC()
	src := Source{ID: nodus.NewID(), NotebookID: notebookID, TenantID: a.TenantID, Kind: in.Kind, Ref: ref, Title: title,
		ContextLevel: in.ContextLevel, Status: StatusSummarising, FullText: text, CreatedBy: a.UserID, CreatedAt: now, UpdatedAt: now}
	if err := s.store.CreateNotebookSource(a.ctx(ctx), src); err != nil {
		return nil, fmt.Errorf("notebook: add source: %w", err)
	}
	s.touch(ctx, a, notebookID)
	return &src, nil
}

// capture reads a source's title and text from where it comes from.
func (s *Service) capture(ctx context.Context, a Actor, in SourceInput) (title, text, ref string, err error) {
	switch in.Kind {
	case KindText:
		switch {
		case strings.TrimSpace(in.Text) == "":
			return "", "", "", invalid("text", "is required")
		case len(in.Text) > MaxPastedBytes:
			return "", "", "", nodus.Errorf(nodus.ETOOLARGE, "pasted text is limited to %d bytes", MaxPastedBytes)
		case !utf8.ValidString(in.Text):
			return "", "", "", invalid("text", "is not valid UTF-8")
		}
		return titleFrom(in.Text), in.Text, "", nil
	case KindDocument:
		if s.documents == nil {
			return "", "", "", nodus.Errorf(nodus.EUNAVAILABLE, "knowledge-base documents are not available as sources on this server")
		}
		if !nodus.ValidID(in.Ref) {
			return "", "", "", notFound("document", in.Ref)
		}
		title, text, err := s.documents.DocumentText(ctx, a.TenantID, in.Ref)
		return title, text, in.Ref, err
	case KindRecording:
		if s.recordings == nil {
			return "", "", "", nodus.Errorf(nodus.EUNAVAILABLE, "recordings are not available as sources on this server")
		}
		if !nodus.ValidID(in.Ref) {
			return "", "", "", notFound("recording", in.Ref)
		}
		title, text, err := s.recordings.Transcript(ctx, a.TenantID, a.UserID, in.Ref)
		return title, text, in.Ref, err
	case KindURL:
		title, text, err := s.fetch(ctx, a, in.Ref)
		return title, text, in.Ref, err
	}
	return "", "", "", invalid("kind", "must be document, recording, text or url")
}

// fetch reads a web page (HTML or plain text) through the tenant's egress
// client, within URLFetchTimeout and MaxURLBodyBytes.
func (s *Service) fetch(ctx context.Context, a Actor, raw string) (title, text string, err error) {
	if s.web == nil {
		return "", "", nodus.Errorf(nodus.EUNAVAILABLE, "URL sources are not available on this server")
	}
	u, err := url.Parse(raw)
	switch {
	case raw == "":
		return "", "", invalid("url", "is required")
	case len(raw) > MaxURLBytes:
		return "", "", invalid("url", fmt.Sprintf("at most %d bytes", MaxURLBytes))
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "":
		return "", "", invalid("url", "must be an absolute http or https URL")
	case u.User != nil:
		return "", "", invalid("url", "must not carry credentials")
	}
	ctx, cancel := context.WithTimeout(ctx, URLFetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(a.ctx(ctx), http.MethodGet, u.String(), nil)
	if err != nil {
		return "", "", invalid("url", "cannot be requested")
	}
	req.Header.Set("User-Agent", "Nodus notebook")
	req.Header.Set("Accept", "text/html, text/plain;q=0.9, text/markdown;q=0.9")
	resp, err := s.web.Client(a.TenantID).Do(req)
	if err != nil {
		var ne *nodus.Error
		switch {
		case errors.As(err, &ne) && ne.Code == nodus.EFORBIDDEN:
			return "", "", nodus.WrapError(err, nodus.EFORBIDDEN,
				fmt.Sprintf("the tenant's egress policy refused the host %s; an administrator finds why in the audit log", u.Host))
		case ne != nil:
			return "", "", err
		case errors.Is(ctx.Err(), context.DeadlineExceeded):
			return "", "", nodus.WrapError(err, nodus.ETIMEOUT, fmt.Sprintf("fetching from %s took longer than %s", u.Host, URLFetchTimeout))
		}
		return "", "", nodus.WrapError(err, nodus.EUNAVAILABLE, fmt.Sprintf("%s could not be reached", u.Host))
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return "", "", &nodus.Error{Code: nodus.EINVALID, Message: fmt.Sprintf("%s answered %s", u.Hostname(), resp.Status),
			Fields: map[string]string{"url": "the server answered " + resp.Status}}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxURLBodyBytes+1))
	if err != nil {
		return "", "", nodus.Errorf(nodus.EINVALID, "reading the page from %s failed", u.Hostname())
	}
	if len(body) > MaxURLBodyBytes {
		return "", "", nodus.Errorf(nodus.ETOOLARGE, "the page is larger than the %d-byte limit", MaxURLBodyBytes)
	}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	var t extract.Type
	switch {
	case mt == "text/html" || mt == "application/xhtml+xml":
		t = extract.TypeHTML
	case mt == "text/plain" || mt == "text/markdown":
		t = extract.TypeText
	default:
		return "", "", invalid("url", fmt.Sprintf("the page is %q; only HTML and plain text can be sources", mt))
	}
	doc, err := extract.Extract(ctx, bytes.NewReader(body), int64(len(body)), t, extract.DefaultLimits())
	if err != nil {
		return "", "", err
	}
	title = doc.Title
	if title == "" {
		title = u.Hostname() + u.Path
	}
	return title, doc.Text, nil
}

// GetSource returns a source with its text (read access).
func (s *Service) GetSource(ctx context.Context, a Actor, notebookID, id string) (*Source, error) {
	if _, err := s.notebook(ctx, a, notebookID, PermRead); err != nil {
		return nil, err
	}
	if !nodus.ValidID(id) {
		return nil, notFound("source", id)
	}
	src, err := s.store.FindNotebookSource(a.ctx(ctx), notebookID, id)
	if err != nil {
		return nil, err
	}
	return &src, nil
}

// ListSources lists a notebook's sources, oldest first (read access).
func (s *Service) ListSources(ctx context.Context, a Actor, notebookID string) ([]Source, error) {
	if _, err := s.notebook(ctx, a, notebookID, PermRead); err != nil {
		return nil, err
	}
	return s.store.ListNotebookSources(a.ctx(ctx), notebookID)
}

// UpdateSource renames a source or changes its context level (write access).
func (s *Service) UpdateSource(ctx context.Context, a Actor, notebookID, id string, in SourceChange) (*Source, error) {
	if _, err := s.notebook(ctx, a, notebookID, PermWrite); err != nil {
		return nil, err
	}
	if !nodus.ValidID(id) {
		return nil, notFound("source", id)
	}
	src, err := s.store.UpdateNotebookSource(a.ctx(ctx), notebookID, id, func(src *Source) error {
		if in.Title != nil {
			src.Title = oneLine(*in.Title)
			if err := validTitle(src.Title); err != nil {
				return err
			}
		}
		if in.ContextLevel != nil {
			if !validLevel(*in.ContextLevel) {
				return invalid("context_level", "must be excluded, summary or full")
			}
			src.ContextLevel = *in.ContextLevel
		}
		src.UpdatedAt = s.now().UTC()
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.touch(ctx, a, notebookID)
	return &src, nil
}

// DeleteSource removes a source (write access). Cards that cite it keep
// their citation, which then names a source no longer there.
func (s *Service) DeleteSource(ctx context.Context, a Actor, notebookID, id string) error {
	if _, err := s.notebook(ctx, a, notebookID, PermWrite); err != nil {
		return err
	}
	if !nodus.ValidID(id) {
		return notFound("source", id)
	}
	if err := s.store.DeleteNotebookSource(a.ctx(ctx), notebookID, id); err != nil {
		return err
	}
	s.touch(ctx, a, notebookID)
	return nil
}

// Summary notes.
const (
	noteNoModel     = "No chat model is set for this notebook or its tenant: the summary is the opening of the text."
	noteModelFailed = "The chat model could not summarise this source (%s): the summary is the opening of the text."
	summaryPrompt   = "Summarise the following source in a few short paragraphs for a reader who has not seen it. " +
		"Keep names, numbers and conclusions. Answer with the summary only."
)

// Summarize writes a source's summary (the summary job): with the
// notebook's chat model as the user who added it, or, without a model or
// when the model fails, the opening of the text, saying so. A source
// already summarised is left alone, so a job run twice is harmless.
func (s *Service) Summarize(ctx context.Context, tenantID, notebookID, sourceID string) error {
	tctx := nodus.WithTenant(ctx, tenantID)
	src, err := s.store.FindNotebookSource(tctx, notebookID, sourceID)
	if nodus.ErrorCode(err) == nodus.ENOTFOUND {
		return nil // deleted since: nothing to do
	}
	if err != nil {
		return err
	}
	if src.Status == StatusReady {
		return nil
	}
	n, err := s.store.FindNotebook(tctx, notebookID)
	if nodus.ErrorCode(err) == nodus.ENOTFOUND {
		return nil
	}
	if err != nil {
		return err
	}
	summary, method, note := "", SummaryExtract, noteNoModel
	if model := s.model(ctx, n); model != "" && model != DefaultChatModel && s.models != nil {
		text, _ := cut(src.FullText, summaryInputTokens*4)
		req := ModelRequest{TenantID: tenantID, UserID: src.CreatedBy, Model: model, MaxTokens: 512,
			Messages: []ModelMessage{{Role: "system", Content: summaryPrompt}, {Role: "user", Content: src.Title + "\n\n" + text}}}
		out, _, err := s.models.Complete(ctx, req)
		switch {
		case err != nil:
			// An extract now beats a source left summarising: a retry
			// would meet the same model, and the last one would leave it so.
			note = fmt.Sprintf(noteModelFailed, nodus.ErrorMessage(err))
		case strings.TrimSpace(out) != "":
			summary, method, note = strings.TrimSpace(out), SummaryModel, ""
		}
	}
	if method == SummaryExtract {
		summary = leadingExtract(src.FullText, extractSummaryChars)
	}
	// Written even when the job's time ran out during the model call.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(tctx), 10*time.Second)
	defer cancel()
	_, err = s.store.UpdateNotebookSource(wctx, notebookID, sourceID, func(src *Source) error {
		src.Summary, src.SummaryMethod, src.SummaryNote, src.Status = summary, method, note, StatusReady
		src.UpdatedAt = s.now().UTC()
		return nil
	})
	if nodus.ErrorCode(err) == nodus.ENOTFOUND {
		return nil
	}
	return err
}

// leadingExtract is the opening of a text, up to about n bytes, ending at
// a sentence or word boundary.
func leadingExtract(text string, n int) string {
	text = strings.Join(strings.Fields(text), " ")
	if len(text) <= n {
		return text
	}
	head, _ := cut(text, n)
	if i := strings.LastIndexAny(head, ".!?"); i > n/2 {
		return head[:i+1]
	}
	if i := strings.LastIndexByte(head, ' '); i > n/2 {
		head = head[:i]
	}
	return head + "…"
}

// oneLine collapses whitespace onto one line.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// titleFrom is a title for pasted text or a chat: its first line, cut at a
// word boundary to about 60 characters.
func titleFrom(text string) string {
	line := oneLine(strings.SplitN(strings.TrimSpace(text), "\n", 2)[0])
	if utf8.RuneCountInString(line) <= 60 {
		return line
	}
	r := []rune(line)[:60]
	if i := strings.LastIndexByte(string(r), ' '); i > 20 {
		return string(r)[:i] + "…"
	}
	return string(r) + "…"
}
