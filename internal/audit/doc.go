// Package audit owns Nodus's audit log (the seeds' "auditoría"): an
// append-only, hash-chained record of every security-relevant action —
// sign-ins and failed sign-ins, denied requests, changes to tenants, users,
// tokens, menus and settings, reads of secrets.
//
// Invariants:
//   - Entries are only ever appended. The store gives each one the next
//     Seq (1, 2, 3, … with no gaps, also under concurrent appenders) and
//     the previous entry's Hash as its PrevHash; the first entry's PrevHash
//     is GenesisHash. The database refuses UPDATE, DELETE and TRUNCATE of
//     the table with triggers. Retention, should it ever be needed, must be
//     an explicit, audited procedure — archive the rows, record the
//     archived head (Seq and Hash) as the anchor Verify starts from, and
//     lift the triggers for that one transaction — never an ad-hoc DELETE.
//     No such procedure exists yet: the log keeps everything.
//   - Hash is the lowercase hex SHA-256 of the entry's canonical encoding
//     (below), which covers every field except Hash itself, Seq and PrevHash
//     included. Editing, deleting or reordering a row therefore breaks the
//     chain at that row, and Service.Verify reports the first break.
//   - Changes never hold secrets: callers redact before recording.
//   - Listing is tenant scoped (nodus.TenantScope): a tenant sees only its
//     own entries; platform-level entries (TenantID "") are visible only
//     under nodus.WithAllTenants. Appending is not scoped: an entry names
//     its tenant explicitly, because platform code records entries too
//     (a failed sign-in before any tenant is known).
//
// # Canonical encoding (version 1)
//
// An entry is hashed as this JSON object, with exactly these members in
// exactly this order, no insignificant white space, strings escaped as
// encoding/json escapes them but with <, > and & left as they are:
//
//	{"v":1,"seq":S,"id":"…","time":"2006-01-02T15:04:05.000000Z",
//	 "tenant_id":"…","actor_id":"…","actor_kind":"…","action":"…",
//	 "target_type":"…","target_id":"…","address":"…","user_agent":"…",
//	 "changes":{…},"prev_hash":"…"}
//
// time is the UTC time truncated to the microsecond. changes is the
// canonical form of Changes (MarshalChanges): an object whose keys are
// sorted at every depth, each value {"before":…,"after":…} with a nil side
// left out, numbers written as the literal encoding/json produced for them
// (kept exactly through storage, see below), and {} when there are none.
// JSON is self-delimiting, so no two different entries share an encoding,
// and the fixed member order and sorted keys make it deterministic. The
// version member lets a later encoding coexist with entries hashed by this
// one.
//
// Changes are stored as that same canonical text and read back with
// json.Number for numbers, so a value survives the database exactly (an
// int64 above 2^53 does not collapse into a float64) and the hash of a
// stored entry equals the hash computed when it was appended. A stored
// changes text that is not in canonical form was edited by hand; reading it
// fails with a *ChainError.
//
// # What Verify cannot see
//
// The chain proves that no row was edited, removed or reordered before the
// newest one. Removing the newest rows (or the whole table) leaves a valid,
// shorter chain: to detect that, keep the head (Seq and Hash of the last
// entry, which Verify's count and List return) somewhere the database's
// administrators cannot write, and compare.
package audit
