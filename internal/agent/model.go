package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/nodus-os/nodus/internal/nodus"
)

// This file holds the agent module's records, their validation and the
// Store interface the main database implements (internal/store/agent.go).

// State key prefixes (ADK's State.APP_PREFIX, USER_PREFIX, TEMP_PREFIX).
const (
	AppPrefix  = "app:"
	UserPrefix = "user:"
	TempPrefix = "temp:"
)

// Bounds of names, ids and payloads.
const (
	MaxNameBytes        = 128       // app names, user ids, session, event and invocation ids, authors
	MaxDisplayNameBytes = 1024      // a session's display name, an event's branch
	MaxStateBytes       = 256 << 10 // each stored state (session, user, app) as JSON
	MaxEventBytes       = 1 << 20   // an event as JSON
	MaxJSONDepth        = 64        // nesting of any JSON value in a state or an event
)

// Session is a conversation of a user with an app's agent.
type Session struct {
	TenantID string
	AppName  string
	UserID   string
	ID       string
	// State is the merged view: the session's own keys, the user's shared
	// keys (with "user:") and the app's (with "app:").
	State       map[string]any
	DisplayName string
	// Events are the events read, oldest first; nil from List.
	Events []Event
	// EventSequence counts the events appended; an append that expects
	// another value is ECONFLICT.
	EventSequence  int64
	CreateTime     time.Time
	LastUpdateTime time.Time
}

// Key names a session within the tenant in scope.
type Key struct {
	AppName, UserID, SessionID string
}

// Key returns the session's key.
func (s *Session) Key() Key { return Key{AppName: s.AppName, UserID: s.UserID, SessionID: s.ID} }

// Event is one step of a session: a message, a tool call or its answer,
// an agent's transfer or a change of state. Its JSON is ADK's event
// (snake_case), and is what the store keeps.
type Event struct {
	ID           string    `json:"id"`
	InvocationID string    `json:"invocation_id,omitempty"`
	Author       string    `json:"author"`
	Branch       string    `json:"branch,omitempty"`
	Timestamp    time.Time `json:"timestamp"`
	// Content is a genai Content: {"role": …, "parts": […]}.
	Content            json.RawMessage `json:"content,omitempty"`
	Actions            EventActions    `json:"actions"`
	LongRunningToolIDs []string        `json:"long_running_tool_ids,omitempty"`
	// Partial marks a streaming fragment: appended events that are
	// partial are not stored.
	Partial           bool            `json:"partial,omitempty"`
	TurnComplete      bool            `json:"turn_complete,omitempty"`
	Interrupted       bool            `json:"interrupted,omitempty"`
	ErrorCode         string          `json:"error_code,omitempty"`
	ErrorMessage      string          `json:"error_message,omitempty"`
	CustomMetadata    json.RawMessage `json:"custom_metadata,omitempty"`
	UsageMetadata     json.RawMessage `json:"usage_metadata,omitempty"`
	GroundingMetadata json.RawMessage `json:"grounding_metadata,omitempty"`
	CitationMetadata  json.RawMessage `json:"citation_metadata,omitempty"`
}

// EventActions are what an event does besides its content.
type EventActions struct {
	// StateDelta sets state keys, each in the scope its prefix names;
	// temp: keys are dropped before the event is stored.
	StateDelta map[string]any `json:"state_delta,omitempty"`
	// ArtifactDelta maps an artifact's name to its new version.
	ArtifactDelta        map[string]int64 `json:"artifact_delta,omitempty"`
	TransferToAgent      string           `json:"transfer_to_agent,omitempty"`
	Escalate             bool             `json:"escalate,omitempty"`
	SkipSummarization    bool             `json:"skip_summarization,omitempty"`
	RequestedAuthConfigs json.RawMessage  `json:"requested_auth_configs,omitempty"`
}

// Scoped is a state or a state delta split by scope, prefixes removed
// from the app and user keys, temp: keys dropped.
type Scoped struct {
	App, User, Session map[string]any
}

// SplitState splits state by its keys' prefixes. Maps are nil when no
// key falls in them.
func SplitState(state map[string]any) Scoped {
	var sc Scoped
	put := func(m *map[string]any, k string, v any) {
		if *m == nil {
			*m = map[string]any{}
		}
		(*m)[k] = v
	}
	for k, v := range state {
		switch {
		case strings.HasPrefix(k, TempPrefix):
		case strings.HasPrefix(k, AppPrefix):
			put(&sc.App, strings.TrimPrefix(k, AppPrefix), v)
		case strings.HasPrefix(k, UserPrefix):
			put(&sc.User, strings.TrimPrefix(k, UserPrefix), v)
		default:
			put(&sc.Session, k, v)
		}
	}
	return sc
}

// MergeState is the view a session shows: its own keys, then the user's
// and the app's under their prefixes.
func MergeState(app, user, session map[string]any) map[string]any {
	out := make(map[string]any, len(app)+len(user)+len(session))
	maps.Copy(out, session)
	for k, v := range user {
		out[UserPrefix+k] = v
	}
	for k, v := range app {
		out[AppPrefix+k] = v
	}
	return out
}

// withoutTemp returns delta without its temp: keys, nil when none is left.
func withoutTemp(delta map[string]any) map[string]any {
	var out map[string]any
	for k, v := range delta {
		if strings.HasPrefix(k, TempPrefix) {
			continue
		}
		if out == nil {
			out = make(map[string]any, len(delta))
		}
		out[k] = v
	}
	return out
}

// ValidName reports whether s may be an app name, a user id or an id: 1
// to MaxNameBytes bytes of printable UTF-8.
func ValidName(s string) bool {
	return s != "" && len(s) <= MaxNameBytes && printable(s)
}

func printable(s string) bool {
	return utf8.ValidString(s) && strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) < 0
}

const nameRule = "1 to 128 bytes of printable UTF-8"

// checkKey validates a session's key, all fields at once.
func checkKey(k Key, needSession bool) error {
	f := map[string]string{}
	if !ValidName(k.AppName) {
		f["app_name"] = nameRule
	}
	if !ValidName(k.UserID) {
		f["user_id"] = nameRule
	}
	if (needSession || k.SessionID != "") && !ValidName(k.SessionID) {
		f["session_id"] = nameRule
	}
	return fieldErrors(f)
}

// checkState checks that a state's keys are names and that it fits the
// limits as JSON.
func checkState(field string, state map[string]any) error {
	for k := range state {
		if k == "" || len(k) > MaxNameBytes*2 || !printable(k) {
			return invalid(field, fmt.Sprintf("key %q: 1 to 256 bytes of printable UTF-8", truncate(k)))
		}
	}
	b, err := json.Marshal(state)
	if err != nil {
		return invalid(field, "must be JSON values")
	}
	if len(b) > MaxStateBytes {
		return invalid(field, fmt.Sprintf("at most %d KiB as JSON", MaxStateBytes>>10))
	}
	if d := jsonDepth(b); d > MaxJSONDepth {
		return invalid(field, fmt.Sprintf("nested at most %d deep", MaxJSONDepth))
	}
	return nil
}

// Validate checks an event's fields, all at once, as AppendEvent stores
// it (an id and a timestamp already set).
func (e *Event) Validate() error {
	f := map[string]string{}
	if !ValidName(e.ID) {
		f["id"] = nameRule
	}
	if e.InvocationID != "" && !ValidName(e.InvocationID) {
		f["invocation_id"] = nameRule
	}
	if !ValidName(e.Author) {
		f["author"] = nameRule
	}
	if len(e.Branch) > MaxDisplayNameBytes || !printable(e.Branch) {
		f["branch"] = "at most 1024 bytes of printable UTF-8"
	}
	if e.Timestamp.IsZero() {
		f["timestamp"] = "required"
	}
	if len(e.Actions.TransferToAgent) > MaxNameBytes || !printable(e.Actions.TransferToAgent) {
		f["actions.transfer_to_agent"] = "an agent name of at most 128 bytes"
	}
	for name, v := range e.Actions.ArtifactDelta {
		if !ValidName(name) || v < 0 {
			f["actions.artifact_delta"] = "artifact names of " + nameRule + " to versions of 0 or more"
		}
	}
	for _, id := range e.LongRunningToolIDs {
		if !ValidName(id) {
			f["long_running_tool_ids"] = "ids of " + nameRule
		}
	}
	for name, raw := range map[string]json.RawMessage{"content": e.Content, "custom_metadata": e.CustomMetadata,
		"usage_metadata": e.UsageMetadata, "grounding_metadata": e.GroundingMetadata,
		"citation_metadata": e.CitationMetadata, "actions.requested_auth_configs": e.Actions.RequestedAuthConfigs} {
		if len(raw) > 0 && !jsonObjectOrNull(raw) {
			f[name] = "a JSON object"
		}
	}
	if len(e.ErrorCode) > MaxNameBytes || len(e.ErrorMessage) > 16<<10 {
		f["error_code"] = "error_code at most 128 bytes, error_message at most 16 KiB"
	}
	if err := fieldErrors(f); err != nil {
		return err
	}
	if err := checkState("actions.state_delta", e.Actions.StateDelta); err != nil {
		return err
	}
	b, err := json.Marshal(e)
	if err != nil {
		return invalid("event", "must be JSON")
	}
	if len(b) > MaxEventBytes {
		return invalid("event", fmt.Sprintf("at most %d MiB as JSON", MaxEventBytes>>20))
	}
	if d := jsonDepth(b); d > MaxJSONDepth+2 {
		return invalid("event", fmt.Sprintf("nested at most %d deep", MaxJSONDepth))
	}
	return nil
}

func jsonObjectOrNull(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return json.Valid(t) && (bytes.HasPrefix(t, []byte("{")) || bytes.Equal(t, []byte("null")))
}

// jsonDepth returns how deeply valid JSON nests (0 for a scalar). It
// counts brackets outside strings, without decoding.
func jsonDepth(b []byte) int {
	depth, most, inString, escaped := 0, 0, false, false
	for _, c := range b {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			depth++
			most = max(most, depth)
		case c == '}' || c == ']':
			depth--
		}
	}
	return most
}

func truncate(s string) string {
	if len(s) <= 40 {
		return s
	}
	return s[:40] + "…"
}

// EventFilter says which of a session's events a read returns.
type EventFilter struct {
	// NumRecent keeps only the newest n events; 0 keeps all.
	NumRecent int
	// After keeps only events whose timestamp is at or after it; the zero
	// time keeps all.
	After time.Time
}

// Store is the agent database. Methods run in the tenant scope of ctx,
// which must name one tenant; another tenant's session is ENOTFOUND.
// Times are the caller's.
type Store interface {
	// CreateAgentSession stores a new session whose State holds its own
	// keys only, and merges app and user (unprefixed) into the app's and
	// the user's shared state. ECONFLICT when the session exists.
	CreateAgentSession(ctx context.Context, s Session, app, user map[string]any) error
	// FindAgentSession returns a session with its merged state and the
	// events f selects, oldest first.
	FindAgentSession(ctx context.Context, k Key, f EventFilter) (Session, error)
	// ListAgentSessions returns a page of a user's sessions of an app by
	// id, with merged state and no events, and the cursor of the next
	// page, "" after the last.
	ListAgentSessions(ctx context.Context, appName, userID, cursor string, limit int) ([]Session, string, error)
	// DeleteAgentSession removes a session and its events.
	DeleteAgentSession(ctx context.Context, k Key) error
	// AppendAgentEvent stores e as the session's next event and merges
	// delta into the three scopes, in one transaction, at time at. With
	// expected set, a session whose EventSequence differs is ECONFLICT
	// and nothing changes. It returns the session as written, merged
	// state and no events.
	AppendAgentEvent(ctx context.Context, k Key, expected *int64, e Event, delta Scoped, at time.Time) (Session, error)
	// DeleteAgentTenant removes every agent record of the scoped tenant,
	// for the tenant's deletion. Running it again is a no-op.
	DeleteAgentTenant(ctx context.Context) error
}

// ErrStale is the cause of the ECONFLICT of an append whose expected
// sequence is not the session's.
var ErrStale = errors.New("the session was modified since it was read")

// StaleError returns the ECONFLICT of a stale append.
func StaleError(expected, actual int64) error {
	return &nodus.Error{Code: nodus.ECONFLICT, Message: ErrStale.Error(), Err: ErrStale,
		Fields: map[string]string{"event_sequence": fmt.Sprintf("expected %d, the session is at %d", expected, actual)}}
}

// SessionNotFound is the ENOTFOUND of a session not in scope.
func SessionNotFound(id string) error {
	return nodus.Errorf(nodus.ENOTFOUND, "session %s not found", truncate(id))
}

func invalid(field, msg string) error {
	return &nodus.Error{Code: nodus.EINVALID, Message: "invalid " + field + ": " + msg, Fields: map[string]string{field: msg}}
}

func fieldErrors(f map[string]string) error {
	if len(f) == 0 {
		return nil
	}
	names := slices.Sorted(maps.Keys(f))
	return &nodus.Error{Code: nodus.EINVALID, Message: "invalid " + strings.Join(names, ", "), Fields: f}
}
