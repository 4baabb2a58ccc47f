package chatwire

import (
	"encoding/hex"
	"encoding/json"

	"github.com/google/uuid"

	"github.com/nodus-os/nodus/internal/chat"
	"github.com/nodus-os/nodus/internal/tracing"
)

// Tracer is a chat.Tracer over the tracing recorder: a turn becomes a
// trace (its conversation is the trace's session, its user the trace's
// user), with the turn as a CHAIN observation and under it the retrieval
// and the memory recall (RETRIEVER) and the model call (GENERATION, whose
// metadata names the gateway's spend row, spend_request_id, rather than
// copy it). A turn that came with a W3C traceparent adds its observations
// to the caller's trace and leaves that trace's own fields alone.
type Tracer struct{ Recorder *tracing.Recorder }

var _ chat.Tracer = Tracer{}

// Turn records the turn; it does not wait for the write.
func (tr Tracer) Turn(t chat.TurnTrace) {
	traceID, callers := t.TraceID, true
	if !validTraceID(traceID) {
		traceID, callers = newTraceID(), false
	}
	var events []tracing.Event
	add := func(ev tracing.Event) {
		ev.ID, ev.Timestamp = newTraceID(), t.Turn.Began
		events = append(events, ev)
	}
	if !callers {
		name := "chat " + t.ChatbotName
		add(tracing.Event{Trace: &tracing.TracePatch{ID: traceID, Timestamp: &t.Turn.Began, Name: &name,
			UserID: &t.UserID, SessionID: &t.ConversationID, Tags: []string{"nodus", "chat"},
			Input: jsonOf(t.Question), Output: jsonOf(t.Answer),
			Metadata: jsonOf(map[string]string{"chatbot_id": t.ChatbotID, "message_id": t.MessageID})}})
	}
	turnID := newTraceID()
	obs := func(id, typ, name, parent string, step chat.Step) *tracing.ObservationPatch {
		p := &tracing.ObservationPatch{ID: id, TraceID: traceID, Type: typ, Name: &name, StartTime: &step.Began}
		if !step.Ended.IsZero() {
			end := step.Ended
			p.EndTime = &end
		}
		if parent != "" {
			p.ParentObservationID = &parent
		}
		return p
	}
	turn := obs(turnID, tracing.TypeChain, "chat turn", "", t.Turn)
	turn.Input, turn.Output = jsonOf(t.Question), jsonOf(t.Answer)
	turn.Metadata = jsonOf(map[string]string{"chatbot_id": t.ChatbotID, "conversation_id": t.ConversationID,
		"message_id": t.MessageID})
	add(tracing.Event{Observation: turn})
	if !t.Retrieval.Began.IsZero() {
		r := obs(newTraceID(), tracing.TypeRetriever, "retrieval", turnID, t.Retrieval)
		type source struct {
			N          int     `json:"n"`
			DocumentID string  `json:"document_id"`
			ChunkID    string  `json:"chunk_id"`
			Score      float64 `json:"score"`
		}
		srcs := make([]source, len(t.Sources))
		for i, s := range t.Sources {
			srcs[i] = source{s.N, s.DocumentID, s.ChunkID, s.Score}
		}
		r.Input, r.Output = jsonOf(t.Question), jsonOf(srcs)
		add(tracing.Event{Observation: r})
	}
	if !t.Recall.Began.IsZero() {
		m := obs(newTraceID(), tracing.TypeRetriever, "memory recall", turnID, t.Recall)
		m.Input, m.Output = jsonOf(t.Question), jsonOf(t.Memories)
		add(tracing.Event{Observation: m})
	}
	if !t.Generation.Began.IsZero() {
		g := obs(newTraceID(), tracing.TypeGeneration, "generation", turnID, t.Generation)
		model := t.Model
		if !t.FirstToken.IsZero() {
			first := t.FirstToken
			g.CompletionStartTime = &first
		}
		g.Output = jsonOf(t.Answer)
		if c := t.Call; c != nil {
			if c.Model != "" {
				model = c.Model
			}
			g.UsageDetails = map[string]int64{"input": c.Usage.PromptTokens, "output": c.Usage.CompletionTokens,
				"total": c.Usage.TotalTokens}
			g.CostDetails = map[string]float64{"total": float64(c.CostMicros) / 1e6}
			g.Metadata = jsonOf(map[string]any{"spend_request_id": c.RequestID, "deployment_id": c.DeploymentID,
				"provider": c.Provider, "upstream_model": c.UpstreamModel, "usage_estimated": c.UsageEstimated})
		}
		g.Model = &model
		if t.Error != "" {
			level, msg := "ERROR", t.Error
			g.Level, g.StatusMessage = &level, &msg
		}
		add(tracing.Event{Observation: g})
	}
	tr.Recorder.Record(t.TenantID, events...)
}

func jsonOf(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	return b
}

// newTraceID is a W3C-shaped id: 32 lowercase hex digits.
func newTraceID() string {
	u := uuid.New()
	return hex.EncodeToString(u[:])
}

func validTraceID(id string) bool {
	if len(id) != 32 || id == "00000000000000000000000000000000" {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil
}
