// Package chatwire adapts the knowledge and gateway services to the chat
// module's ports (chat.Searcher, chat.Models), for the composition roots
// (cmd/nodus, bench): the modules themselves never import each other.
package chatwire

import (
	"context"
	"encoding/json"

	"github.com/nodus-os/nodus/internal/chat"
	"github.com/nodus-os/nodus/internal/gateway"
	"github.com/nodus-os/nodus/internal/knowledge"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/recordings"
)

// Knowledge is a chat.Searcher over the knowledge service.
type Knowledge struct{ Service *knowledge.Service }

var _ chat.Searcher = Knowledge{}

// Search searches one knowledge base as the user.
func (k Knowledge) Search(ctx context.Context, r chat.SearchRequest) ([]chat.Passage, error) {
	res, err := k.Service.Search(ctx, knowledge.Manager{TenantID: r.TenantID, UserID: r.UserID}, r.KnowledgeBaseID,
		knowledge.SearchInput{Query: r.Query, TopK: r.TopK, ScoreThreshold: r.ScoreThreshold, Mode: r.Mode,
			HybridWeight: r.HybridWeight})
	if err != nil {
		return nil, err
	}
	out := make([]chat.Passage, len(res.Hits))
	timelines := map[string]*transcript{}
	for i, h := range res.Hits {
		out[i] = chat.Passage{KnowledgeBaseID: h.KnowledgeBaseID, DocumentID: h.DocumentID, DocumentName: h.DocumentName,
			ChunkID: h.ID, Position: h.Index, Score: h.Score, Snippet: h.Snippet, Text: h.Text}
		tr, ok := timelines[h.DocumentID]
		if !ok {
			if tr, err = k.transcript(ctx, r, h.KnowledgeBaseID, h.DocumentID); err != nil {
				return nil, err
			}
			timelines[h.DocumentID] = tr
		}
		if tr == nil {
			continue
		}
		if start, end, ok := recordings.Span(tr.timeline, h.Start, h.End); ok {
			out[i].RecordingID, out[i].Start, out[i].End = tr.recordingID, &start, &end
		}
	}
	return out, nil
}

// transcript is the timeline of a document made from a recording's
// transcript (recordings.TranscriptDocument).
type transcript struct {
	recordingID string
	timeline    []recordings.TimelineEntry
}

// transcript reads a document's timeline metadata: nil for a document
// that is not a transcript (or whose metadata is not a timeline).
func (k Knowledge) transcript(ctx context.Context, r chat.SearchRequest, kbID, docID string) (*transcript, error) {
	d, err := k.Service.GetDocument(ctx, knowledge.Manager{TenantID: r.TenantID, UserID: r.UserID}, kbID, docID)
	if nodus.ErrorCode(err) == nodus.ENOTFOUND {
		return nil, nil // deleted since the search
	}
	if err != nil {
		return nil, err
	}
	var tr transcript
	if json.Unmarshal(d.Metadata[recordings.MetaRecordingID], &tr.recordingID) != nil || !nodus.ValidID(tr.recordingID) ||
		json.Unmarshal(d.Metadata[recordings.MetaTimeline], &tr.timeline) != nil {
		return nil, nil
	}
	return &tr, nil
}

// DocumentsIndexing counts a knowledge base's documents not searchable yet.
func (k Knowledge) DocumentsIndexing(ctx context.Context, tenantID, kbID string) (int, error) {
	return k.Service.DocumentsIndexing(ctx, knowledge.Manager{TenantID: tenantID}, kbID)
}

// Models is a chat.Models over the gateway service, called in process as
// the request's user.
type Models struct{ Service *gateway.Service }

var _ chat.Models = Models{}

func request(r chat.ModelRequest) (gateway.Caller, *gateway.ChatRequest) {
	msgs := make([]gateway.Message, len(r.Messages))
	for i, m := range r.Messages {
		msgs[i] = gateway.Message{Role: m.Role, Content: gateway.TextContent(m.Content)}
	}
	maxTokens := r.MaxTokens
	return gateway.Caller{TenantID: r.TenantID, UserID: r.UserID, TraceID: r.TraceID, ParentSpanID: r.ParentSpanID},
		&gateway.ChatRequest{Model: r.Model, Messages: msgs, Temperature: r.Temperature, MaxTokens: &maxTokens}
}

func call(info *gateway.CallInfo) *chat.ModelCall {
	if info == nil {
		return nil
	}
	return &chat.ModelCall{Model: info.Model, DeploymentID: info.DeploymentID, Provider: info.Provider,
		UpstreamModel: info.UpstreamModel, RequestID: info.RequestID, UsageEstimated: info.UsageEstimated,
		CostMicros: info.CostMicros, Usage: chat.Usage{PromptTokens: info.Usage.PromptTokens,
			CompletionTokens: info.Usage.CompletionTokens, TotalTokens: info.Usage.TotalTokens}}
}

// Complete returns the whole answer of the first choice.
func (m Models) Complete(ctx context.Context, r chat.ModelRequest) (string, *chat.ModelCall, error) {
	caller, req := request(r)
	resp, info, err := m.Service.Chat(ctx, caller, req)
	if err != nil {
		return "", call(info), gateway.NodusError(err, "model "+r.Model)
	}
	return resp.Text(), call(info), nil
}

// Stream hands the first choice's content to delta as it arrives.
func (m Models) Stream(ctx context.Context, r chat.ModelRequest, delta func(string) error) (*chat.ModelCall, error) {
	caller, req := request(r)
	info, err := m.Service.ChatStreamText(ctx, caller, req, delta)
	if err != nil {
		return call(info), gateway.NodusError(err, "model "+r.Model)
	}
	return call(info), nil
}

// CountTokens counts with the gateway's tokenizers.
func (Models) CountTokens(model, text string) int64 { return gateway.CountTokens(model, text) }
