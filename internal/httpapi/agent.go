package httpapi

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/nodus-os/nodus/internal/agent"
	"github.com/nodus-os/nodus/internal/identity"
	"github.com/nodus-os/nodus/internal/nodus"
)

// This file holds the agent sessions' routes, shaped after ADK's
// api_server: /api/v1/agent/apps/{app}/users/{user}/sessions/….
//
// Whose sessions: {user} is a Nodus user id, or "me" for the caller. A
// user (and a viewer, read only) may use only their own; an org_admin or
// a super_admin (or a token of either role) may name any user of the
// tenant, which must exist in it, so another tenant's user is not found.
// A super_admin names the tenant with ?tenant_id=, as on the knowledge
// routes.

// agentUser resolves the tenant and the user a request's sessions belong
// to, and returns the context scoped to that tenant.
func (s *Server) agentUser(r *http.Request) (context.Context, string, error) {
	if s.deps.Agent == nil {
		return nil, "", &nodus.Error{Code: nodus.EUNAVAILABLE, Message: "agent sessions are not available"}
	}
	ctx, tenantID, err := s.egressTenant(r)
	if err != nil {
		return nil, "", err
	}
	ctx = nodus.WithTenant(ctx, tenantID)
	c := callerFrom(r.Context())
	self := c.principal.User.ID
	user := r.PathValue("user")
	if user == "me" || user == self {
		return ctx, self, nil
	}
	role := c.principal.User.Role // a token's role already capped at its owner's current one
	if role != identity.RoleOrgAdmin && role != identity.RoleSuperAdmin {
		return nil, "", nodus.Errorf(nodus.EFORBIDDEN, "you may use only your own agent sessions")
	}
	u, err := s.deps.Identity.User(ctx, user)
	if err != nil {
		return nil, "", err
	}
	if u.TenantID != tenantID {
		return nil, "", nodus.Errorf(nodus.ENOTFOUND, "user %s not found", user)
	}
	return ctx, u.ID, nil
}

// agentAnswer is answer for an agent route: fn gets the tenant's context
// and the user whose sessions the request means.
func (s *Server) agentAnswer(status int, fn func(r *http.Request, ctx context.Context, userID string) (any, error)) http.Handler {
	return s.answer(status, func(r *http.Request) (any, error) {
		ctx, userID, err := s.agentUser(r)
		if err != nil {
			return nil, err
		}
		return fn(r, ctx, userID)
	})
}

// Bodies: a session's state, an event, and room for their envelope.
const (
	agentSessionMaxBody = agent.MaxStateBytes + 16<<10
	agentEventMaxBody   = agent.MaxEventBytes + 16<<10
)

// agentSessionView is a session as the API shows it; events only when
// read one by one.
type agentSessionView struct {
	ID             string         `json:"id"`
	AppName        string         `json:"app_name"`
	UserID         string         `json:"user_id"`
	DisplayName    string         `json:"display_name,omitempty"`
	State          map[string]any `json:"state"`
	Events         []agent.Event  `json:"events,omitzero"`
	EventSequence  int64          `json:"event_sequence"`
	CreateTime     time.Time      `json:"create_time"`
	LastUpdateTime time.Time      `json:"last_update_time"`
}

func viewAgentSession(s *agent.Session) agentSessionView {
	state := s.State
	if state == nil {
		state = map[string]any{}
	}
	return agentSessionView{ID: s.ID, AppName: s.AppName, UserID: s.UserID, DisplayName: s.DisplayName, State: state,
		Events: s.Events, EventSequence: s.EventSequence, CreateTime: s.CreateTime, LastUpdateTime: s.LastUpdateTime}
}

func (s *Server) handleCreateAgentSession() http.Handler {
	type request struct {
		SessionID   string         `json:"session_id"`
		State       map[string]any `json:"state"`
		DisplayName string         `json:"display_name"`
	}
	return s.agentAnswer(http.StatusCreated, func(r *http.Request, ctx context.Context, userID string) (any, error) {
		var req request
		if err := decodeJSON(r, &req); err != nil {
			return nil, err
		}
		sess, err := s.deps.Agent.Create(ctx, agent.CreateRequest{AppName: r.PathValue("app"), UserID: userID,
			SessionID: req.SessionID, State: req.State, DisplayName: req.DisplayName})
		if err != nil {
			return nil, err
		}
		sess.Events = []agent.Event{}
		return map[string]any{"session": viewAgentSession(sess)}, nil
	})
}

func (s *Server) handleListAgentSessions() http.Handler {
	return s.agentAnswer(http.StatusOK, func(r *http.Request, ctx context.Context, userID string) (any, error) {
		limit, cursor, err := pageQuery(r)
		if err != nil {
			return nil, err
		}
		list, next, err := s.deps.Agent.List(ctx, agent.ListRequest{AppName: r.PathValue("app"), UserID: userID,
			Cursor: cursor, Limit: limit})
		if err != nil {
			return nil, err
		}
		out := make([]agentSessionView, len(list))
		for i := range list {
			out[i] = viewAgentSession(&list[i])
		}
		return map[string]any{"sessions": out, "next_cursor": next}, nil
	})
}

func (s *Server) handleGetAgentSession() http.Handler {
	return s.agentAnswer(http.StatusOK, func(r *http.Request, ctx context.Context, userID string) (any, error) {
		req := agent.GetRequest{AppName: r.PathValue("app"), UserID: userID, SessionID: r.PathValue("session")}
		q := r.URL.Query()
		if v := q.Get("num_recent_events"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return nil, &nodus.Error{Code: nodus.EINVALID, Message: "invalid query",
					Fields: map[string]string{"num_recent_events": "must be 0 or more"}}
			}
			req.NumRecentEvents = n
		}
		if v := q.Get("after"); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return nil, &nodus.Error{Code: nodus.EINVALID, Message: "invalid query",
					Fields: map[string]string{"after": "must be an RFC 3339 time"}}
			}
			req.After = t
		}
		sess, err := s.deps.Agent.Get(ctx, req)
		if err != nil {
			return nil, err
		}
		return map[string]any{"session": viewAgentSession(sess)}, nil
	})
}

func (s *Server) handleDeleteAgentSession() http.Handler {
	return s.agentAnswer(http.StatusNoContent, func(r *http.Request, ctx context.Context, userID string) (any, error) {
		return nil, s.deps.Agent.Delete(ctx, agent.Key{AppName: r.PathValue("app"), UserID: userID,
			SessionID: r.PathValue("session")})
	})
}

// handleAppendAgentEvent appends an event. With event_sequence, the
// append is refused (409) unless the session is still at that sequence:
// the client computed its state delta from the session as it read it. A
// partial event is not stored: 200 with stored false.
func (s *Server) handleAppendAgentEvent() http.Handler {
	type request struct {
		agent.Event
		EventSequence *int64 `json:"event_sequence"`
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, userID, err := s.agentUser(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		var req request
		if err := decodeJSON(r, &req); err != nil {
			s.writeError(w, r, err)
			return
		}
		e, sess, err := s.deps.Agent.Append(ctx, agent.AppendRequest{Key: agent.Key{AppName: r.PathValue("app"),
			UserID: userID, SessionID: r.PathValue("session")}, Event: req.Event, ExpectedSequence: req.EventSequence})
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if sess == nil {
			s.writeJSON(w, r, http.StatusOK, map[string]any{"event": e, "stored": false})
			return
		}
		s.writeJSON(w, r, http.StatusCreated, map[string]any{"event": e, "stored": true, "session_state": sess.State,
			"event_sequence": sess.EventSequence, "last_update_time": sess.LastUpdateTime})
	})
}
