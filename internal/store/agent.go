package store

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/nodus-os/nodus/internal/agent"
	"github.com/nodus-os/nodus/internal/nodus"
)

// This file holds the SQL of agent sessions, their events and the app's
// and users' shared state, in the main database (migration 0008).
//
// Every statement names the tenant: a session's key is only unique within
// one, so the all-tenants scope has nothing to read here and fails like
// no scope. An append locks the session row first, then the app's state,
// then the user's, always in that order, so concurrent appends queue
// rather than deadlock; on SQLite the single writer serialises them.

// The store implements the agent database.
var _ agent.Store = (*DB)(nil)

const agentSessionKey = `tenant_id = ? AND app_name = ? AND user_id = ? AND id = ?`

const agentEventKey = `tenant_id = ? AND app_name = ? AND user_id = ? AND session_id = ?`

func agentKeyArgs(tenantID string, k agent.Key) []any {
	return []any{tenantID, k.AppName, k.UserID, k.SessionID}
}

// agentTenant is the one tenant in scope.
func agentTenant(ctx context.Context) (string, error) {
	id, all, ok := nodus.TenantScope(ctx)
	if !ok || all || id == "" {
		return "", nodus.ErrNoScope
	}
	return id, nil
}

// encodeState stores a state as a JSON object within the size limit.
func encodeState(what string, state map[string]any) (string, error) {
	s, err := encodeJSON(state, "{}", len(state) == 0)
	if err != nil {
		return "", err
	}
	if len(s) > agent.MaxStateBytes {
		return "", &nodus.Error{Code: nodus.EINVALID, Message: fmt.Sprintf("the %s state would exceed %d KiB", what, agent.MaxStateBytes>>10),
			Fields: map[string]string{"state": "too large"}}
	}
	return s, nil
}

func decodeState(what, s string) (map[string]any, error) {
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		return nil, fmt.Errorf("store: agent %s state: %w", what, err)
	}
	return m, nil
}

// mergeShared merges delta into the shared state row (app or user) of
// keyCols = keyArgs, under a lock. The row is inserted first if absent (DO
// NOTHING when it exists or a concurrent append inserts it first), so the
// locking read below always finds it.
func mergeShared(ctx context.Context, tx *Tx, table, what string, keyCols []string, keyArgs []any, delta map[string]any, at time.Time) error {
	if len(delta) == 0 {
		return nil
	}
	cols, marks, cond := "", "", ""
	for i, c := range keyCols {
		cols += c + ", "
		marks += "?, "
		if i > 0 {
			cond += " AND "
		}
		cond += c + " = ?"
	}
	if _, err := tx.Exec(ctx, `INSERT INTO `+table+` (`+cols+`state, update_time) VALUES (`+marks+`'{}', ?)
		ON CONFLICT DO NOTHING`, append(slices.Clone(keyArgs), at)...); err != nil {
		return err
	}
	var raw string
	if err := tx.QueryRow(ctx, `SELECT state FROM `+table+` WHERE `+cond+tx.Dialect().ForUpdate(), keyArgs...).Scan(&raw); err != nil {
		return err
	}
	state, err := decodeState(what, raw)
	if err != nil {
		return err
	}
	if state == nil {
		state = map[string]any{}
	}
	maps.Copy(state, delta)
	enc, err := encodeState(what, state)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `UPDATE `+table+` SET state = ?, update_time = ? WHERE `+cond,
		append([]any{enc, at}, keyArgs...)...)
	return err
}

// sharedState reads the app's and the user's state.
func sharedState(ctx context.Context, tx *Tx, tenantID, appName, userID string) (app, user map[string]any, err error) {
	var raw string
	err = tx.QueryRow(ctx, `SELECT state FROM agent_app_states WHERE tenant_id = ? AND app_name = ?`, tenantID, appName).Scan(&raw)
	switch {
	case err == nil:
		if app, err = decodeState("app", raw); err != nil {
			return nil, nil, err
		}
	case !errors.Is(err, sql.ErrNoRows):
		return nil, nil, err
	}
	err = tx.QueryRow(ctx, `SELECT state FROM agent_user_states WHERE tenant_id = ? AND app_name = ? AND user_id = ?`,
		tenantID, appName, userID).Scan(&raw)
	switch {
	case err == nil:
		if user, err = decodeState("user", raw); err != nil {
			return nil, nil, err
		}
	case !errors.Is(err, sql.ErrNoRows):
		return nil, nil, err
	}
	return app, user, nil
}

func mergeAppUser(ctx context.Context, tx *Tx, tenantID, appName, userID string, app, user map[string]any, at time.Time) error {
	if err := mergeShared(ctx, tx, "agent_app_states", "app", []string{"tenant_id", "app_name"},
		[]any{tenantID, appName}, app, at); err != nil {
		return err
	}
	return mergeShared(ctx, tx, "agent_user_states", "user", []string{"tenant_id", "app_name", "user_id"},
		[]any{tenantID, appName, userID}, user, at)
}

const agentSessionColumns = `tenant_id, app_name, user_id, id, state, display_name, event_sequence, create_time, update_time`

func scanAgentSession(row interface{ Scan(...any) error }, s *agent.Session) error {
	var state string
	if err := row.Scan(&s.TenantID, &s.AppName, &s.UserID, &s.ID, &state, &s.DisplayName, &s.EventSequence,
		&s.CreateTime, &s.LastUpdateTime); err != nil {
		return err
	}
	var err error
	s.State, err = decodeState("session", state)
	return err
}

// findAgentSession reads a session (its own state only), locking it for
// the rest of a write transaction when lock is set.
func findAgentSession(ctx context.Context, tx *Tx, tenantID string, k agent.Key, lock bool) (agent.Session, error) {
	var s agent.Session
	q := `SELECT ` + agentSessionColumns + ` FROM agent_sessions WHERE ` + agentSessionKey
	if lock {
		q += tx.Dialect().ForUpdate()
	}
	err := scanAgentSession(tx.QueryRow(ctx, q, agentKeyArgs(tenantID, k)...), &s)
	if errors.Is(err, sql.ErrNoRows) {
		return s, agent.SessionNotFound(k.SessionID)
	}
	return s, err
}

// CreateAgentSession stores a new session of the scoped tenant and merges
// app and user into the shared state, in one transaction; ECONFLICT when
// the session exists.
func (db *DB) CreateAgentSession(ctx context.Context, s agent.Session, app, user map[string]any) error {
	tenantID, err := agentTenant(ctx)
	if err != nil {
		return err
	}
	if _, err := createTenant(ctx, s.TenantID); err != nil {
		return err
	}
	state, err := encodeState("session", s.State)
	if err != nil {
		return err
	}
	return db.Write(ctx, func(tx *Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO agent_sessions (`+agentSessionColumns+`) VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?)`,
			tenantID, s.AppName, s.UserID, s.ID, state, s.DisplayName, s.CreateTime, s.LastUpdateTime); err != nil {
			return err
		}
		return mergeAppUser(ctx, tx, tenantID, s.AppName, s.UserID, app, user, s.LastUpdateTime)
	})
}

// FindAgentSession returns a session of the scoped tenant with its merged
// state and the events f selects, oldest first, from one snapshot.
func (db *DB) FindAgentSession(ctx context.Context, k agent.Key, f agent.EventFilter) (agent.Session, error) {
	tenantID, err := agentTenant(ctx)
	if err != nil {
		return agent.Session{}, err
	}
	var s agent.Session
	err = db.readSnapshot(ctx, func(tx *Tx) error {
		if s, err = findAgentSession(ctx, tx, tenantID, k, false); err != nil {
			return err
		}
		app, user, err := sharedState(ctx, tx, tenantID, k.AppName, k.UserID)
		if err != nil {
			return err
		}
		s.State = agent.MergeState(app, user, s.State)
		s.Events, err = agentEvents(ctx, tx, tenantID, k, f)
		return err
	})
	if err != nil {
		return agent.Session{}, err
	}
	return s, nil
}

// agentEvents reads the events of a session f selects, oldest first: the
// newest NumRecent by seq, read backwards and reversed.
func agentEvents(ctx context.Context, tx *Tx, tenantID string, k agent.Key, f agent.EventFilter) ([]agent.Event, error) {
	q := `SELECT id, seq, invocation_id, author, timestamp, event_data FROM agent_events WHERE ` + agentEventKey
	args := agentKeyArgs(tenantID, k)
	if !f.After.IsZero() {
		q += ` AND timestamp >= ?`
		args = append(args, f.After.UTC())
	}
	if f.NumRecent > 0 {
		q += ` ORDER BY seq DESC LIMIT ?`
		args = append(args, f.NumRecent)
	} else {
		q += ` ORDER BY seq`
	}
	rows, err := tx.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []agent.Event{}
	for rows.Next() {
		var e agent.Event
		var seq int64
		var id, inv, author, data string
		var ts time.Time
		if err := rows.Scan(&id, &seq, &inv, &author, &ts, &data); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(data), &e); err != nil {
			return nil, fmt.Errorf("store: agent event %s: %w", id, err)
		}
		// The columns are what queries saw; they win over the copy.
		e.ID, e.InvocationID, e.Author, e.Timestamp = id, inv, author, ts
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if f.NumRecent > 0 {
		slices.Reverse(out)
	}
	return out, nil
}

// ListAgentSessions returns a page of a user's sessions of an app, by id,
// with merged state and no events.
func (db *DB) ListAgentSessions(ctx context.Context, appName, userID, cursor string, limit int) ([]agent.Session, string, error) {
	tenantID, err := agentTenant(ctx)
	if err != nil {
		return nil, "", err
	}
	after := ""
	if cursor != "" {
		b, err := base64.RawURLEncoding.DecodeString(cursor)
		if err != nil || !agent.ValidName(string(b)) {
			return nil, "", errBadCursor
		}
		after = string(b)
	}
	n := pageSize(limit)
	var out []agent.Session
	err = db.readSnapshot(ctx, func(tx *Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+agentSessionColumns+` FROM agent_sessions
			WHERE tenant_id = ? AND app_name = ? AND user_id = ? AND id > ? ORDER BY id LIMIT ?`,
			tenantID, appName, userID, after, n+1)
		if err != nil {
			return err
		}
		for rows.Next() {
			var s agent.Session
			if err := scanAgentSession(rows, &s); err != nil {
				rows.Close()
				return err
			}
			out = append(out, s)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		app, user, err := sharedState(ctx, tx, tenantID, appName, userID)
		if err != nil {
			return err
		}
		for i := range out {
			out[i].State = agent.MergeState(app, user, out[i].State)
		}
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	if out == nil {
		out = []agent.Session{}
	}
	if len(out) <= n {
		return out, "", nil
	}
	out = out[:n]
	return out, base64.RawURLEncoding.EncodeToString([]byte(out[n-1].ID)), nil
}

// DeleteAgentSession removes a session of the scoped tenant and its
// events, in one transaction.
func (db *DB) DeleteAgentSession(ctx context.Context, k agent.Key) error {
	tenantID, err := agentTenant(ctx)
	if err != nil {
		return err
	}
	return db.Write(ctx, func(tx *Tx) error {
		// The lock makes a concurrent append finish first (its event is
		// deleted here) or find no session.
		if _, err := findAgentSession(ctx, tx, tenantID, k, true); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM agent_events WHERE `+agentEventKey, agentKeyArgs(tenantID, k)...); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM agent_sessions WHERE `+agentSessionKey, agentKeyArgs(tenantID, k)...)
		return err
	})
}

// AppendAgentEvent stores e as the session's next event and merges delta
// into the session's, the user's and the app's state, in one transaction
// holding the session's lock. With expected set, a session at another
// sequence is ECONFLICT (agent.StaleError) and nothing is written.
func (db *DB) AppendAgentEvent(ctx context.Context, k agent.Key, expected *int64, e agent.Event, delta agent.Scoped,
	at time.Time) (agent.Session, error) {
	tenantID, err := agentTenant(ctx)
	if err != nil {
		return agent.Session{}, err
	}
	data, err := json.Marshal(e)
	if err != nil {
		return agent.Session{}, nodus.WrapError(err, nodus.EINVALID, "invalid event")
	}
	var s agent.Session
	err = db.Write(ctx, func(tx *Tx) error {
		if s, err = findAgentSession(ctx, tx, tenantID, k, true); err != nil {
			return err
		}
		if expected != nil && *expected != s.EventSequence {
			return agent.StaleError(*expected, s.EventSequence)
		}
		s.EventSequence++
		s.LastUpdateTime = at
		if _, err := tx.Exec(ctx, `INSERT INTO agent_events (tenant_id, app_name, user_id, session_id, id, seq,
			invocation_id, author, timestamp, event_data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			tenantID, k.AppName, k.UserID, k.SessionID, e.ID, s.EventSequence, e.InvocationID, e.Author, e.Timestamp,
			string(data)); err != nil {
			return err
		}
		if s.State == nil {
			s.State = map[string]any{}
		}
		maps.Copy(s.State, delta.Session)
		state, err := encodeState("session", s.State)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE agent_sessions SET state = ?, event_sequence = ?, update_time = ? WHERE `+
			agentSessionKey, append([]any{state, s.EventSequence, at}, agentKeyArgs(tenantID, k)...)...); err != nil {
			return err
		}
		if err := mergeAppUser(ctx, tx, tenantID, k.AppName, k.UserID, delta.App, delta.User, at); err != nil {
			return err
		}
		app, user, err := sharedState(ctx, tx, tenantID, k.AppName, k.UserID)
		if err != nil {
			return err
		}
		s.State = agent.MergeState(app, user, s.State)
		return nil
	})
	if err != nil {
		return agent.Session{}, err
	}
	return s, nil
}

// DeleteAgentTenant removes every session, event and shared state of the
// scoped tenant.
func (db *DB) DeleteAgentTenant(ctx context.Context) error {
	tenantID, err := agentTenant(ctx)
	if err != nil {
		return err
	}
	return db.Write(ctx, func(tx *Tx) error {
		for _, table := range []string{"agent_events", "agent_sessions", "agent_user_states", "agent_app_states"} {
			if _, err := tx.Exec(ctx, `DELETE FROM `+table+` WHERE tenant_id = ?`, tenantID); err != nil {
				return err
			}
		}
		return nil
	})
}
