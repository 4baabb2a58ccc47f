package gateway

// Every call the gateway finishes is one generation in LLM tracing: the
// gateway hands it to a CallObserver (serve wires the tracing module's
// recorder through tracewire), with the spend-log row it wrote and the
// payload. The trace store keeps the call once, linked to the spend row by
// its request id; the caller's own tracer (chat, an SDK's spans) nests it
// through Caller.TraceID and Caller.ParentSpanID rather than record it a
// second time.

// CallObserver is told of every finished call. ObserveCall runs on the
// request path: it must not block and must not keep the request after it
// returns except to read it (it is not changed after the call).
type CallObserver interface {
	ObserveCall(c CallRecord)
}

// CallRecord is a finished call as tracing sees it.
type CallRecord struct {
	Log          SpendLog // as written to the spend log
	ParentSpanID string   // the caller's span the call nests under; "" at the trace's top
	// Chat is the request of a chat call (nil for other kinds); read it,
	// never change it.
	Chat *ChatRequest
	// Response is a non-streamed chat call's answer; Streamed is what a
	// stream delivered (content and tool-call arguments, in order).
	Response *ChatResponse
	Streamed string
}
