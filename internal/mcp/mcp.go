// Package mcp serves tools over the Model Context Protocol's Streamable
// HTTP transport (https://modelcontextprotocol.io, revision 2025-06-18;
// clients of 2025-03-26 and 2024-11-05 are answered too): JSON-RPC 2.0
// messages POSTed to one endpoint, each request answered with one JSON
// response. The server is stateless, as the transport allows: it issues
// no Mcp-Session-Id and offers no stream of its own (GET and DELETE are
// 405), so any replica answers any request.
//
// It implements what a tool server needs: initialize (with version
// negotiation), ping, tools/list and tools/call. A tool's failure is
// reported to the model as a result with isError, as the protocol asks,
// so it can correct its arguments; an unknown tool or malformed params
// are JSON-RPC errors.
package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"

	"github.com/nodus-os/nodus/internal/nodus"
)

// Versions are the protocol revisions the server speaks, newest first.
var Versions = []string{"2025-06-18", "2025-03-26", "2024-11-05"}

// Server answers the MCP requests of one endpoint with its tools.
type Server struct {
	Name    string // serverInfo.name
	Title   string // serverInfo.title, for display
	Version string // serverInfo.version
	// Instructions tell the client's model how to use the tools.
	Instructions string
	Tools        []Tool
	// Failed, when set, is told of each tool error that is the server's
	// (internal, unavailable, timed out; the model sees only that it
	// failed), for the log.
	Failed func(ctx context.Context, tool string, err error)
}

// maxBatch bounds the messages of one batch (revision 2025-03-26; the
// later revision has none): each may be a tool call as long as a chat
// turn.
const maxBatch = 16

// Tool is one tool: its description for the model and the function that
// runs it.
type Tool struct {
	Name        string
	Title       string
	Description string
	// InputSchema is a JSON Schema of type "object" for the arguments.
	InputSchema json.RawMessage
	// ReadOnly, Destructive and Idempotent are hints for the client
	// (whether to ask the user before a call), not guarantees.
	ReadOnly, Destructive, Idempotent bool
	// Call runs the tool with its arguments (a JSON object, "{}" when the
	// client sent none). Its result, which must encode as a JSON object,
	// is the call's structured content and, encoded, its text.
	Call func(ctx context.Context, args json.RawMessage) (any, error)
}

// JSON-RPC error codes.
const (
	codeParse          = -32700
	codeInvalidRequest = -32600
	codeNoMethod       = -32601
	codeInvalidParams  = -32602
)

// message is any JSON-RPC message a client sends: a request (method and
// id), a notification (method, no id) or a response to a request of the
// server's (no method), which this server never makes.
type message struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id,omitempty"`
	Method  string          `json:"method"`
	Params  json.RawMessage `json:"params,omitempty"`
	Result  json.RawMessage `json:"result,omitempty"`
	Error   json.RawMessage `json:"error,omitempty"`
}

type response struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Result  any             `json:"result,omitempty"`
	Error   *rpcError       `json:"error,omitempty"`
}

type rpcError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// null is the id of an answer to a message whose id could not be read.
var null = json.RawMessage("null")

// ServeHTTP answers one POST of the transport.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		// No server-initiated stream (GET) and no session to end (DELETE).
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "this MCP endpoint answers POST requests only", http.StatusMethodNotAllowed)
		return
	}
	// After initialization the client names the revision it negotiated.
	if v := r.Header.Get("Mcp-Protocol-Version"); v != "" && !slices.Contains(Versions, v) {
		writeJSON(w, http.StatusBadRequest, response{JSONRPC: "2.0", ID: null,
			Error: &rpcError{codeInvalidRequest, fmt.Sprintf("unsupported protocol version %q", v)}})
		return
	}
	var body bytes.Buffer
	if _, err := body.ReadFrom(r.Body); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeJSON(w, http.StatusRequestEntityTooLarge, response{JSONRPC: "2.0", ID: null,
				Error: &rpcError{codeInvalidRequest, fmt.Sprintf("the message is over %d bytes", tooBig.Limit)}})
		}
		return // the client went away
	}
	raw := bytes.TrimSpace(body.Bytes())
	if len(raw) > 0 && raw[0] == '[' {
		// A batch (revision 2025-03-26): the answers of its requests, in
		// an array; none when it holds only notifications.
		var batch []json.RawMessage
		if err := json.Unmarshal(raw, &batch); err != nil {
			writeJSON(w, http.StatusBadRequest, parseError(err))
			return
		}
		var refused string
		switch {
		case len(batch) == 0:
			refused = "an empty batch"
		case len(batch) > maxBatch:
			refused = fmt.Sprintf("a batch holds at most %d messages", maxBatch)
		case r.Header.Get("Mcp-Protocol-Version") == Versions[0]:
			refused = "revision " + Versions[0] + " has no batches"
		}
		for i := 0; refused == "" && i < len(batch); i++ {
			var probe struct {
				Method string `json:"method"`
			}
			if json.Unmarshal(batch[i], &probe) == nil && probe.Method == "initialize" {
				refused = "initialize cannot be batched"
			}
		}
		if refused != "" {
			writeJSON(w, http.StatusBadRequest, response{JSONRPC: "2.0", ID: null, Error: &rpcError{codeInvalidRequest, refused}})
			return
		}
		var out []response
		for _, m := range batch {
			if resp, ok := s.handle(r.Context(), m); ok {
				out = append(out, resp)
			}
		}
		if len(out) == 0 {
			w.WriteHeader(http.StatusAccepted)
			return
		}
		writeJSON(w, http.StatusOK, out)
		return
	}
	resp, ok := s.handle(r.Context(), raw)
	switch {
	case !ok:
		w.WriteHeader(http.StatusAccepted) // a notification or a response
	case resp.Error != nil && (resp.Error.Code == codeParse || resp.Error.Code == codeInvalidRequest):
		writeJSON(w, http.StatusBadRequest, resp)
	default:
		writeJSON(w, http.StatusOK, resp)
	}
}

func parseError(err error) response {
	msg := "the body is not a JSON-RPC message"
	if err != nil {
		msg += ": " + err.Error()
	}
	return response{JSONRPC: "2.0", ID: null, Error: &rpcError{codeParse, msg}}
}

// handle answers one message; ok is false when it needs no answer (a
// notification, or a response from the client).
func (s *Server) handle(ctx context.Context, raw json.RawMessage) (resp response, ok bool) {
	var m message
	if err := json.Unmarshal(raw, &m); err != nil {
		var syntax *json.SyntaxError
		if errors.As(err, &syntax) {
			return parseError(err), true
		}
		return response{JSONRPC: "2.0", ID: null, Error: &rpcError{codeInvalidRequest, "not a JSON-RPC 2.0 message: " + err.Error()}}, true
	}
	if m.Method == "" {
		if m.JSONRPC == "2.0" && len(m.ID) > 0 && (len(m.Result) > 0) != (len(m.Error) > 0) {
			return response{}, false // a response to a request of ours
		}
		return response{JSONRPC: "2.0", ID: idOr(m.ID), Error: &rpcError{codeInvalidRequest, "not a JSON-RPC 2.0 request"}}, true
	}
	if m.JSONRPC != "2.0" {
		return response{JSONRPC: "2.0", ID: idOr(m.ID), Error: &rpcError{codeInvalidRequest, `"jsonrpc" must be "2.0"`}}, true
	}
	if len(m.ID) == 0 {
		return response{}, false // a notification: notifications/initialized, cancelled, …
	}
	if !validID(m.ID) {
		return response{JSONRPC: "2.0", ID: null, Error: &rpcError{codeInvalidRequest, "a request's id is a string or a number"}}, true
	}
	result, rerr := s.call(ctx, m.Method, m.Params)
	if rerr != nil {
		return response{JSONRPC: "2.0", ID: m.ID, Error: rerr}, true
	}
	return response{JSONRPC: "2.0", ID: m.ID, Result: result}, true
}

func idOr(id json.RawMessage) json.RawMessage {
	if validID(id) {
		return id
	}
	return null
}

// validID reports whether id is a JSON string or number.
func validID(id json.RawMessage) bool {
	var v any
	if json.Unmarshal(id, &v) != nil {
		return false
	}
	switch v.(type) {
	case string, float64:
		return true
	}
	return false
}

// call runs one request's method.
func (s *Server) call(ctx context.Context, method string, params json.RawMessage) (any, *rpcError) {
	switch method {
	case "initialize":
		var p struct {
			ProtocolVersion string `json:"protocolVersion"`
		}
		if err := decodeParams(params, &p); err != nil {
			return nil, err
		}
		// The client's revision when the server speaks it, else the
		// newest: the client then decides whether it can go on.
		version := Versions[0]
		if slices.Contains(Versions, p.ProtocolVersion) {
			version = p.ProtocolVersion
		}
		return map[string]any{
			"protocolVersion": version,
			"capabilities":    map[string]any{"tools": map[string]bool{"listChanged": false}},
			"serverInfo":      map[string]string{"name": s.Name, "title": s.Title, "version": s.Version},
			"instructions":    s.Instructions,
		}, nil
	case "ping":
		return struct{}{}, nil
	case "tools/list":
		tools := make([]map[string]any, len(s.Tools))
		for i, t := range s.Tools {
			tools[i] = map[string]any{"name": t.Name, "title": t.Title, "description": t.Description,
				"inputSchema": t.InputSchema, "annotations": map[string]any{"title": t.Title, "readOnlyHint": t.ReadOnly,
					"destructiveHint": t.Destructive, "idempotentHint": t.Idempotent, "openWorldHint": false}}
		}
		return map[string]any{"tools": tools}, nil
	case "tools/call":
		var p struct {
			Name      string          `json:"name"`
			Arguments json.RawMessage `json:"arguments"`
		}
		if err := decodeParams(params, &p); err != nil {
			return nil, err
		}
		i := slices.IndexFunc(s.Tools, func(t Tool) bool { return t.Name == p.Name })
		if i < 0 {
			return nil, &rpcError{codeInvalidParams, fmt.Sprintf("unknown tool %q", p.Name)}
		}
		args := bytes.TrimSpace(p.Arguments)
		switch {
		case len(args) == 0 || bytes.Equal(args, []byte("null")):
			args = []byte("{}")
		case args[0] != '{':
			return nil, &rpcError{codeInvalidParams, "the arguments are a JSON object"}
		}
		return s.runTool(ctx, s.Tools[i], args), nil
	}
	return nil, &rpcError{codeNoMethod, fmt.Sprintf("method %q is not served here", method)}
}

func decodeParams(params json.RawMessage, v any) *rpcError {
	if len(params) == 0 {
		return nil
	}
	if err := json.Unmarshal(params, v); err != nil {
		return &rpcError{codeInvalidParams, "invalid params: " + err.Error()}
	}
	return nil
}

// toolResult is a CallToolResult.
type toolResult struct {
	Content           []textContent   `json:"content"`
	StructuredContent json.RawMessage `json:"structuredContent,omitempty"`
	IsError           bool            `json:"isError"`
}

type textContent struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

// runTool calls a tool and makes its result, or its failure, the call's.
func (s *Server) runTool(ctx context.Context, t Tool, args json.RawMessage) toolResult {
	out, err := t.Call(ctx, args)
	var b []byte
	if err == nil {
		b, err = json.Marshal(out)
	}
	if err != nil {
		switch nodus.ErrorCode(err) {
		case nodus.EINTERNAL, nodus.EUNAVAILABLE, nodus.ETIMEOUT:
			// The server's trouble, not the model's: the log hears of it.
			if s.Failed != nil {
				s.Failed(ctx, t.Name, err)
			}
		}
		return toolResult{Content: []textContent{{"text", toolErrorText(err)}}, IsError: true}
	}
	return toolResult{Content: []textContent{{"text", string(b)}}, StructuredContent: b}
}

// toolErrorText is what the model reads of a failed call: the message of a
// Nodus error with its field errors, "internal error" for anything else.
func toolErrorText(err error) string {
	if errors.Is(err, context.DeadlineExceeded) {
		return "the tool ran out of time"
	}
	msg := nodus.ErrorMessage(err)
	fields := nodus.ErrorFields(err)
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		msg += fmt.Sprintf("; %s: %s", k, fields[k])
	}
	return msg
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// -32603: JSON-RPC's internal error.
		status, b = http.StatusInternalServerError, []byte(`{"jsonrpc":"2.0","id":null,"error":{"code":-32603,"message":"internal error"}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// Arguments decodes a tool's arguments into v, refusing unknown fields, as
// a *nodus.Error the model can read and correct.
func Arguments(args json.RawMessage, v any) error {
	dec := json.NewDecoder(bytes.NewReader(args))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return nodus.Errorf(nodus.EINVALID, "invalid arguments: %v", err)
	}
	return nil
}
