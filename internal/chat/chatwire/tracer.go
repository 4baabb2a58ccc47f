package chatwire

import (
	"encoding/json"

	"github.com/nodus-os/nodus/internal/chat"
	"github.com/nodus-os/nodus/internal/tracing"
	"github.com/nodus-os/nodus/internal/tracing/tracewire"
)

// Tracer is a chat.Tracer over the tracing recorder: a turn becomes a
// trace (its conversation is the trace's session, its user the trace's
// user), with the turn as a CHAIN observation and under it the retrieval
// and the memory recall (RETRIEVER). The model call is the gateway's to
// record (tracewire.GatewayCalls): one GENERATION per call, under the
// turn's span, naming its spend-log row. A turn that came with a W3C
// traceparent adds its observations to the caller's trace and leaves that
// trace's own fields alone.
type Tracer struct{ Recorder *tracing.Recorder }

var _ chat.Tracer = Tracer{}

// Turn records the turn; it does not wait for the write.
func (tr Tracer) Turn(t chat.TurnTrace) {
	tr.Recorder.RecordLater(t.TenantID, func() []tracing.Event { return TurnEvents(t) })
}

// TurnEvents is a turn as tracing events.
func TurnEvents(t chat.TurnTrace) []tracing.Event {
	traceID := t.TraceID
	var events []tracing.Event
	add := func(ev tracing.Event) {
		ev.Timestamp = t.Turn.Began // no envelope id: nothing retries it
		events = append(events, ev)
	}
	if t.OwnTrace {
		name := "chat " + t.ChatbotName
		add(tracing.Event{Trace: &tracing.TracePatch{ID: traceID, Timestamp: &t.Turn.Began, Name: &name,
			UserID: &t.UserID, SessionID: &t.ConversationID, Tags: []string{"nodus", "chat"},
			Input: jsonOf(t.Question), Output: jsonOf(t.Answer),
			Metadata: jsonOf(map[string]string{"chatbot_id": t.ChatbotID, "message_id": t.MessageID})}})
	}
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
	turn := obs(t.SpanID, tracing.TypeChain, "chat turn", "", t.Turn)
	turn.Input, turn.Output = jsonOf(t.Question), jsonOf(t.Answer)
	turn.Metadata = jsonOf(map[string]string{"chatbot_id": t.ChatbotID, "conversation_id": t.ConversationID,
		"message_id": t.MessageID, "model": t.Model})
	if t.Error != "" {
		level, msg := tracing.LevelError, t.Error
		turn.Level, turn.StatusMessage = &level, &msg
	}
	add(tracing.Event{Observation: turn})
	if !t.Retrieval.Began.IsZero() {
		r := obs(tracewire.NewSpanID(), tracing.TypeRetriever, "retrieval", t.SpanID, t.Retrieval)
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
		m := obs(tracewire.NewSpanID(), tracing.TypeRetriever, "memory recall", t.SpanID, t.Recall)
		m.Input, m.Output = jsonOf(t.Question), jsonOf(t.Memories)
		add(tracing.Event{Observation: m})
	}
	return events
}

func jsonOf(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	return b
}
