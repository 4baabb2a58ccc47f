package agent

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/nodus-os/nodus/internal/nodus"
)

// This file holds the Service: ADK's SessionService operations over the
// Store. Callers name the tenant with nodus.WithTenant; who may use which
// user's sessions is the caller's rule (the HTTP API's is in
// internal/httpapi/agent.go).

// Config assembles a Service.
type Config struct {
	Store Store
	// Now defaults to the system clock (UTC, microseconds, as stored).
	Now func() time.Time
}

// Service runs sessions on top of a Store. It is safe for concurrent use.
type Service struct {
	store Store
	now   func() time.Time
}

// NewService builds the service; a store is required.
func NewService(cfg Config) (*Service, error) {
	if cfg.Store == nil {
		return nil, errors.New("agent: a store is required")
	}
	if cfg.Now == nil {
		cfg.Now = nodus.SystemClock{}.Now
	}
	return &Service{store: cfg.Store, now: cfg.Now}, nil
}

func (s *Service) clock() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

// CreateRequest is a new session. SessionID is generated when empty;
// State may hold app:, user: and session keys (temp: keys are dropped).
type CreateRequest struct {
	AppName, UserID, SessionID string
	State                      map[string]any
	DisplayName                string
}

// Create stores a new session, and the app: and user: keys of its state
// in the app's and the user's shared state; ECONFLICT when the session
// exists. It returns the session with its merged state.
func (s *Service) Create(ctx context.Context, req CreateRequest) (*Session, error) {
	k := Key{AppName: req.AppName, UserID: req.UserID, SessionID: req.SessionID}
	if k.SessionID == "" {
		k.SessionID = nodus.NewID()
	}
	if err := checkKey(k, true); err != nil {
		return nil, err
	}
	if len(req.DisplayName) > MaxDisplayNameBytes || !printable(req.DisplayName) {
		return nil, invalid("display_name", "at most 1024 bytes of printable UTF-8")
	}
	if err := checkState("state", req.State); err != nil {
		return nil, err
	}
	sc := SplitState(req.State)
	now := s.clock()
	sess := Session{AppName: k.AppName, UserID: k.UserID, ID: k.SessionID, State: sc.Session,
		DisplayName: req.DisplayName, CreateTime: now, LastUpdateTime: now}
	if err := s.store.CreateAgentSession(ctx, sess, sc.App, sc.User); err != nil {
		if nodus.ErrorCode(err) == nodus.ECONFLICT {
			return nil, &nodus.Error{Code: nodus.ECONFLICT, Message: fmt.Sprintf("session %s exists", k.SessionID),
				Fields: map[string]string{"session_id": "already taken"}, Err: err}
		}
		return nil, fmt.Errorf("agent: create session: %w", err)
	}
	out, err := s.store.FindAgentSession(ctx, k, EventFilter{})
	if err != nil {
		return nil, fmt.Errorf("agent: create session: %w", err)
	}
	return &out, nil
}

// GetRequest names a session and which of its events to read.
type GetRequest struct {
	AppName, UserID, SessionID string
	// NumRecentEvents keeps the newest n events; 0 keeps all.
	NumRecentEvents int
	// After keeps events whose timestamp is at or after it.
	After time.Time
}

// Get returns a session with its merged state and the events asked for,
// oldest first.
func (s *Service) Get(ctx context.Context, req GetRequest) (*Session, error) {
	k := Key{AppName: req.AppName, UserID: req.UserID, SessionID: req.SessionID}
	if checkKey(k, true) != nil {
		return nil, SessionNotFound(req.SessionID)
	}
	if req.NumRecentEvents < 0 {
		return nil, invalid("num_recent_events", "must be 0 or more")
	}
	out, err := s.store.FindAgentSession(ctx, k, EventFilter{NumRecent: req.NumRecentEvents, After: req.After})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// ListRequest names a user of an app, and a page of their sessions.
type ListRequest struct {
	AppName, UserID string
	Cursor          string
	Limit           int // 0 for the default page size
}

// List returns a page of the user's sessions of the app, by id, with
// their merged state and no events, and the cursor of the next page.
func (s *Service) List(ctx context.Context, req ListRequest) ([]Session, string, error) {
	if err := checkKey(Key{AppName: req.AppName, UserID: req.UserID}, false); err != nil {
		return nil, "", err
	}
	return s.store.ListAgentSessions(ctx, req.AppName, req.UserID, req.Cursor, req.Limit)
}

// Delete removes a session and its events; the app's and the user's
// shared state stay.
func (s *Service) Delete(ctx context.Context, k Key) error {
	if checkKey(k, true) != nil {
		return SessionNotFound(k.SessionID)
	}
	return s.store.DeleteAgentSession(ctx, k)
}

// AppendRequest is an event to append to a session. With
// ExpectedSequence set the append is conditional: it fails with
// ECONFLICT ErrStale unless the session's EventSequence is still that
// value, as ADK's DatabaseSessionService refuses a stale session. Without
// it the event is appended after whatever came before: its delta is
// merged key by key, so no event or key of another append is lost.
type AppendRequest struct {
	Key
	Event            Event
	ExpectedSequence *int64
}

// Append stores an event, as ADK's append_event does:
//   - a partial event (a streaming fragment) is not stored and changes
//     nothing: Append returns it with a nil session;
//   - temp: keys are removed from its state delta, which is then applied
//     to the app's, the user's and the session's state;
//   - an empty id is generated and a zero timestamp set to now.
//
// It returns the event as stored and the session as written (merged
// state, no events).
func (s *Service) Append(ctx context.Context, req AppendRequest) (*Event, *Session, error) {
	if checkKey(req.Key, true) != nil {
		return nil, nil, SessionNotFound(req.SessionID)
	}
	e := req.Event
	e.Actions.StateDelta = withoutTemp(e.Actions.StateDelta)
	if e.ID == "" {
		e.ID = nodus.NewID()
	}
	now := s.clock()
	if e.Timestamp.IsZero() {
		e.Timestamp = now
	}
	e.Timestamp = e.Timestamp.UTC().Truncate(time.Microsecond)
	if err := e.Validate(); err != nil {
		return nil, nil, err
	}
	if e.Partial {
		return &e, nil, nil
	}
	if req.ExpectedSequence != nil && *req.ExpectedSequence < 0 {
		return nil, nil, invalid("event_sequence", "must be 0 or more")
	}
	sess, err := s.store.AppendAgentEvent(ctx, req.Key, req.ExpectedSequence, e, SplitState(e.Actions.StateDelta), now)
	if err != nil {
		if nodus.ErrorCode(err) == nodus.ECONFLICT && !errors.Is(err, ErrStale) {
			return nil, nil, &nodus.Error{Code: nodus.ECONFLICT, Message: fmt.Sprintf("event %s exists in the session", e.ID),
				Fields: map[string]string{"id": "already taken"}, Err: err}
		}
		return nil, nil, err
	}
	return &e, &sess, nil
}

// AppendEvent is ADK's append_event on a session as read: the append is
// conditional on sess.EventSequence, and on success e and sess are
// updated in place (e as stored; sess with the event, the new sequence,
// update time and merged state, keeping the temp: keys it held for the
// invocation). A partial event changes neither.
func (s *Service) AppendEvent(ctx context.Context, sess *Session, e *Event) error {
	expected := sess.EventSequence
	stored, after, err := s.Append(ctx, AppendRequest{Key: sess.Key(), Event: *e, ExpectedSequence: &expected})
	if err != nil || after == nil {
		return err
	}
	*e = *stored
	state := after.State
	for k, v := range sess.State {
		if strings.HasPrefix(k, TempPrefix) {
			state[k] = v
		}
	}
	sess.State = maps.Clone(state)
	sess.Events = append(sess.Events, *stored)
	sess.EventSequence, sess.LastUpdateTime = after.EventSequence, after.LastUpdateTime
	return nil
}

// PurgeTenant removes every session, event and shared state of a tenant
// (a tenant purger).
func (s *Service) PurgeTenant(ctx context.Context, tenantID string) error {
	if err := s.store.DeleteAgentTenant(nodus.WithTenant(ctx, tenantID)); err != nil {
		return fmt.Errorf("agent: purge tenant %s: %w", tenantID, err)
	}
	return nil
}
