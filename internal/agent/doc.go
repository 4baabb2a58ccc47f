// Package agent owns the agent runtime's sessions, in the shape of Google
// ADK's SessionService: a session of an app (an agent or chatbot of the
// tenant) and a user, its ordered events, and its state.
//
// State is one key/value map whose keys' prefixes set their scope: no
// prefix for the session alone, "user:" for every session of the user in
// the app, "app:" for every user of the app, and "temp:" for the current
// invocation only, never stored. A session as read carries the merged
// view of all three stored scopes; state changes only through an appended
// event's Actions.StateDelta (or the initial state of Create).
//
// Invariants the store keeps:
//   - every session, event and shared state belongs to one tenant, taken
//     from the context; another tenant's session is ENOTFOUND;
//   - a session's events are numbered 1, 2, 3, … in the order they were
//     appended (EventSequence is the newest), and an append that names the
//     sequence it read fails with ECONFLICT once another append has moved
//     it on, so no delta is computed from a stale state unnoticed;
//   - an append writes its event and every scope of its state delta in one
//     transaction, and deleting a session takes its events with it.
package agent
