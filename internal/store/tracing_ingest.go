package store

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/tracing"
)

// This file holds ingestion into the tracing database, set-based: a batch
// costs a handful of statements per table, not four per event.
//
//  1. The envelope ids are recorded with one multi-row INSERT … ON
//     CONFLICT DO NOTHING RETURNING: an id not returned was already there
//     and its event is skipped, as is a repeat of an id within the batch.
//  2. Per table (traces, observations, scores, in that order) the rows the
//     surviving events touch are read in one SELECT, locked on PostgreSQL
//     in id order so concurrent batches queue rather than deadlock. A row
//     that is missing starts from what the column defaults and the
//     entity's first event would have made it (a child's trace: its id and
//     time). The patches are applied in event order in Go
//     (tracing.*Patch.Apply), so the merge rules live in one place.
//  3. New rows are inserted whole with ON CONFLICT DO NOTHING, learning
//     which were stored from RETURNING id (insertNew: on SQLite only when
//     one was skipped), so a new entity is written once rather than
//     created and then updated; existing rows are written back with a
//     multi-row upsert. A
//     new row another transaction inserted meanwhile (PostgreSQL; its
//     insert made ours wait) comes back missing from RETURNING, and its
//     events are merged again into the row now there, under its lock.
//
// Every trace the batch names is locked, not only those it patches: the
// per-trace summaries (updateTraceSummaries) are recomputed from the
// trace's observations, and the lock makes two batches adding
// observations to one trace recompute one after the other.
//
// Nodus's own events (tracing.Event.Fresh: the gateway's calls) name ids
// made for them, so step 2 does not look for their rows, and a fresh
// trace is inserted with its summary computed in Go from the batch's
// fresh observations, which are all it has. Should an id exist after all,
// the insert's RETURNING says so; the row is then merged like any other
// and its trace's summary recomputed by updateTraceSummaries.

// ingestChunk bounds the rows of one multi-row statement, and
// shapedChunks splits a batch in runs of it and of smaller powers of two,
// so each statement comes in eight shapes. They stay prepared in the
// SQLite writer's statement cache (128 rows of the widest table,
// observations with 24 columns, are about 9.5 KiB of SQL) and in pgx's.
// With a statement per batch size instead, the cache filled with hundreds
// of multi-row programs, over 100 MB of SQLite memory for the tracing
// database alone.
const ingestChunk = 128

// ingestAttempts bounds the transactions a batch takes when PostgreSQL
// aborts one as a deadlock victim: rows created concurrently are locked
// after the rest, out of id order, so three batches racing on the same
// new ids can still meet in a cycle. The batch is redone whole.
const ingestAttempts = 3

// IngestEvents applies a batch in one transaction; see tracing.Store.
func (db *DB) IngestEvents(ctx context.Context, events []tracing.Event, receivedAt time.Time) ([]string, error) {
	tenantID, err := createTenant(ctx, "")
	if err != nil {
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		var skipped []string
		err = db.Write(ctx, func(tx *Tx) error {
			var done ingested
			var err error
			if skipped, err = ingestBatch(ctx, tx, tenantID, events, receivedAt, &done); err != nil {
				return err
			}
			return db.afterIngest(ctx, tx, tenantID, &done)
		})
		if attempt < ingestAttempts && isDeadlock(err) {
			continue
		}
		return skipped, err
	}
}

// isDeadlock reports PostgreSQL's deadlock victim error.
func isDeadlock(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "40P01"
}

func firstTime(ts ...*time.Time) time.Time {
	for _, t := range ts {
		if t != nil {
			return *t
		}
	}
	return time.Time{}
}

// stored is a time as the database gives it back: UTC, to the
// microsecond (both engines truncate).
func stored(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// ingestBatch writes the events of one batch in tx, filling done, and
// returns the envelope ids it skipped, in event order.
func ingestBatch(ctx context.Context, tx *Tx, tenantID string, events []tracing.Event, now time.Time,
	done *ingested) ([]string, error) {
	fresh, err := recordEnvelopes(ctx, tx, tenantID, events, now)
	if err != nil {
		return nil, err
	}
	var skipped []string
	live := make([]tracing.Event, 0, len(events))
	for _, ev := range events {
		if ev.ID != "" {
			if !fresh[ev.ID] {
				skipped = append(skipped, ev.ID)
				continue
			}
			// A repeat later in the batch is a duplicate of this one.
			delete(fresh, ev.ID)
		}
		if ev.Trace == nil && ev.Observation == nil && ev.Score == nil {
			return nil, nodus.Errorf(nodus.EINTERNAL, "tracing event %s has no body", ev.ID)
		}
		live = append(live, ev)
	}
	if len(live) == 0 {
		return skipped, nil
	}
	now = stored(now)
	var traceOps []entityOp[tracing.Trace]
	var obsOps []entityOp[tracing.Observation]
	var scoreOps []entityOp[tracing.Score]
	newTrace := func(id string, at time.Time) func() tracing.Trace {
		return func() tracing.Trace {
			return tracing.Trace{TenantID: tenantID, ID: id, Environment: tracing.DefaultEnvironment,
				Timestamp: stored(at), CreatedAt: now, UpdatedAt: now}
		}
	}
	for _, ev := range live {
		switch {
		case ev.Trace != nil:
			p := ev.Trace
			traceOps = append(traceOps, entityOp[tracing.Trace]{id: p.ID, fresh: ev.Fresh,
				create: newTrace(p.ID, firstTime(p.Timestamp, &ev.Timestamp)),
				apply:  func(t *tracing.Trace) { p.Apply(t); t.UpdatedAt = now }})
		case ev.Observation != nil:
			p := ev.Observation
			start := firstTime(p.StartTime, &ev.Timestamp)
			traceOps = append(traceOps, entityOp[tracing.Trace]{id: p.TraceID, fresh: ev.Fresh, create: newTrace(p.TraceID, start)})
			typ := p.Type
			if typ == "" {
				typ = p.NewType
			}
			obsOps = append(obsOps, entityOp[tracing.Observation]{id: p.ID, fresh: ev.Fresh,
				create: func() tracing.Observation {
					return tracing.Observation{TenantID: tenantID, ID: p.ID, TraceID: p.TraceID, Type: typ,
						StartTime: stored(start), Level: tracing.LevelDefault, Environment: tracing.DefaultEnvironment,
						CreatedAt: now, UpdatedAt: now}
				},
				apply: func(o *tracing.Observation) { p.Apply(o); o.UpdatedAt = now }})
		case ev.Score != nil:
			p := ev.Score
			at := firstTime(p.Timestamp, &ev.Timestamp)
			traceOps = append(traceOps, entityOp[tracing.Trace]{id: p.TraceID, fresh: ev.Fresh, create: newTrace(p.TraceID, at)})
			scoreOps = append(scoreOps, entityOp[tracing.Score]{id: p.ID,
				create: func() tracing.Score {
					return tracing.Score{TenantID: tenantID, ID: p.ID, TraceID: p.TraceID, DataType: tracing.DataNumeric,
						Source: p.Source, Timestamp: stored(at), CreatedAt: now, UpdatedAt: now}
				},
				apply: func(s *tracing.Score) { p.Apply(s); s.UpdatedAt = now }})
		}
	}
	// The fresh traces' summaries, from their observations as the batch
	// leaves them: each is inserted with its own.
	freshTraces, freshObs := freshIDs(traceOps), freshIDs(obsOps)
	summaries := freshSummaries(obsOps, freshObs, freshTraces)
	for i, op := range traceOps {
		if sum, ok := summaries[op.id]; ok {
			create := op.create
			traceOps[i].create = func() tracing.Trace { t := create(); sum.set(&t, tx.Dialect()); return t }
		}
	}
	var tracesBefore map[string]tracing.Trace
	if done.traces, tracesBefore, err = mergeEntities(ctx, tx, tenantID, traceTable, traceOps, freshTraces); err != nil {
		return nil, err
	}
	// A trace that moved to another session or user, or in time, leaves
	// the old session's and user's first and last seen behind: afterIngest
	// settles them from the traces (an emptied one goes).
	for _, t := range done.traces {
		b, ok := tracesBefore[t.ID]
		if !ok || b.SessionID == t.SessionID && b.UserID == t.UserID && b.Timestamp.Equal(t.Timestamp) {
			continue
		}
		done.settleSessions = append(done.settleSessions, nonEmpty(b.SessionID, t.SessionID)...)
		done.settleUsers = append(done.settleUsers, nonEmpty(b.UserID, t.UserID)...)
	}
	var before map[string]tracing.Observation
	if done.observations, before, err = mergeEntities(ctx, tx, tenantID, observationTable, obsOps, freshObs); err != nil {
		return nil, err
	}
	// A fresh trace inserted with its summary needs no other, unless one
	// of its observations existed after all and was merged instead.
	freshObsExisted := false
	for id := range freshObs {
		if _, ok := before[id]; ok {
			freshObsExisted = true
		}
	}
	if !freshObsExisted {
		for id := range summaries {
			if _, ok := tracesBefore[id]; !ok {
				if done.summarized == nil {
					done.summarized = map[string]bool{}
				}
				done.summarized[id] = true
			}
		}
	}
	if done.scores, _, err = mergeEntities(ctx, tx, tenantID, scoreTable, scoreOps, freshIDs(scoreOps)); err != nil {
		return nil, err
	}
	// An observation moved to another trace leaves the old one's summary
	// behind; afterIngest recomputes only the traces observations are in
	// now.
	var movedFrom []string
	for _, o := range done.observations {
		b, ok := before[o.ID]
		if ok && b.TraceID != o.TraceID {
			movedFrom = append(movedFrom, b.TraceID)
		}
		// A generation moved to another day leaves the old day's rollups
		// counting it until that day is marked too.
		if ok && tracing.DayOf(b.StartTime) != tracing.DayOf(o.StartTime) {
			done.movedFromDays = append(done.movedFromDays, b.StartTime)
		}
	}
	if len(movedFrom) > 0 {
		if err := lockTraces(ctx, tx, tenantID, movedFrom); err != nil {
			return nil, err
		}
		if err := updateTraceSummaries(ctx, tx, tenantID, movedFrom); err != nil {
			return nil, err
		}
	}
	return skipped, nil
}

// recordEnvelopes records the batch's envelope ids and returns those that
// were new.
func recordEnvelopes(ctx context.Context, tx *Tx, tenantID string, events []tracing.Event, now time.Time) (map[string]bool, error) {
	ids := make([]string, 0, len(events))
	for _, ev := range events {
		if ev.ID != "" { // Nodus's own events: nothing retries them
			ids = append(ids, ev.ID)
		}
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	fresh := make(map[string]bool, len(ids))
	for chunk := range shapedChunks(ids, ingestChunk) {
		args := make([]any, 0, 3*len(chunk))
		for _, id := range chunk {
			args = append(args, tenantID, id, now)
		}
		rows, err := tx.Query(ctx, `INSERT INTO ingestion_events (tenant_id, event_id, received_at) VALUES `+
			valuesSQL(len(chunk), 3)+` ON CONFLICT DO NOTHING RETURNING event_id`, args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return nil, err
			}
			fresh[id] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return fresh, nil
}

// entityOp is one event's part in a table: the row it needs (create makes
// it when missing) and, unless the event only needs the row to exist (a
// child's trace), the patch it applies.
type entityOp[T any] struct {
	id     string
	fresh  bool // from a tracing.Event.Fresh: the row is not looked for before it is inserted
	create func() T
	apply  func(*T)
}

// freshIDs is the ids of ops whose every op is fresh.
func freshIDs[T any](ops []entityOp[T]) map[string]bool {
	fresh := make(map[string]bool)
	for _, op := range ops {
		f, seen := fresh[op.id]
		fresh[op.id] = op.fresh && (f || !seen)
	}
	maps.DeleteFunc(fresh, func(_ string, f bool) bool { return !f })
	return fresh
}

// entityTable is what mergeEntities needs to know of a table: the columns
// it reads and writes (tenant_id and id first), how to scan a row and how
// to turn one into the written columns' values.
type entityTable[T any] struct {
	name  string
	read  string   // the columns a SELECT reads, for scan
	write []string // the columns an insert or upsert writes
	kept  []string // written columns an upsert leaves as they are, besides the key and created_at
	scan  func(scanner, *T) error
	// values appends the row's write columns to args.
	values func(args []any, row *T) ([]any, error)
	key    func(*T) string // the row's id
}

// upsertSet is the DO UPDATE clause of an upsert of t: every written
// column but the key and created_at.
func (t entityTable[T]) upsertSet() string {
	var set []string
	for _, c := range t.write {
		if c != "tenant_id" && c != "id" && c != "created_at" && !slices.Contains(t.kept, c) {
			set = append(set, c+" = excluded."+c)
		}
	}
	return strings.Join(set, ", ")
}

var traceTable = entityTable[tracing.Trace]{
	name: "traces",
	read: traceColumns,
	write: []string{"tenant_id", "id", "name", "user_id", "session_id", "release", "version", "environment", "tags",
		"public", "input", "output", "metadata", "timestamp", "created_at", "updated_at", "total_cost", "level",
		"observation_count", "latency_ms"},
	// The summary is updateTraceSummaries's to change: an upsert writes
	// back what it read, and a new row has a fresh trace's summary or
	// zeros.
	kept: []string{"total_cost", "level", "observation_count", "latency_ms"},
	scan: scanTrace,
	key:  func(t *tracing.Trace) string { return t.ID },
	values: func(args []any, t *tracing.Trace) ([]any, error) {
		tags, err := encodeJSON(t.Tags, "[]", len(t.Tags) == 0)
		return append(args, t.TenantID, t.ID, t.Name, t.UserID, t.SessionID, t.Release, t.Version, t.Environment, tags,
			t.Public, rawArg(t.Input), rawArg(t.Output), rawArg(t.Metadata), t.Timestamp, t.CreatedAt, t.UpdatedAt,
			t.TotalCost, t.Level, t.ObservationCount, t.LatencyMS), err
	},
}

var observationTable = entityTable[tracing.Observation]{
	name: "observations",
	read: observationColumns,
	write: []string{"tenant_id", "id", "trace_id", "parent_observation_id", "type", "name", "start_time", "end_time",
		"completion_start_time", "input", "output", "metadata", "level", "status_message", "version", "environment",
		"model", "model_parameters", "usage_details", "cost_details", "prompt_name", "prompt_version", "created_at",
		"updated_at"},
	scan: scanObservation,
	values: func(args []any, o *tracing.Observation) ([]any, error) {
		usage, err := encodeJSON(o.UsageDetails, "{}", len(o.UsageDetails) == 0)
		if err != nil {
			return args, err
		}
		cost, err := encodeJSON(o.CostDetails, "{}", len(o.CostDetails) == 0)
		return append(args, o.TenantID, o.ID, o.TraceID, o.ParentObservationID, o.Type, o.Name, o.StartTime, o.EndTime,
			o.CompletionStartTime, rawArg(o.Input), rawArg(o.Output), rawArg(o.Metadata), o.Level, o.StatusMessage,
			o.Version, o.Environment, o.Model, rawArg(o.ModelParameters), usage, cost, o.PromptName, o.PromptVersion,
			o.CreatedAt, o.UpdatedAt), err
	},
	key: func(o *tracing.Observation) string { return o.ID },
}

var scoreTable = entityTable[tracing.Score]{
	name: "scores",
	read: scoreColumns,
	write: []string{"tenant_id", "id", "trace_id", "observation_id", "name", "value", "string_value", "data_type",
		"comment", "source", "timestamp", "created_at", "updated_at"},
	scan: scanScore,
	key:  func(s *tracing.Score) string { return s.ID },
	values: func(args []any, s *tracing.Score) ([]any, error) {
		return append(args, s.TenantID, s.ID, s.TraceID, s.ObservationID, s.Name, s.Value, s.StringValue, s.DataType,
			s.Comment, s.Source, s.Timestamp, s.CreatedAt, s.UpdatedAt), nil
	},
}

// mergeRounds bounds how often a row created concurrently is merged
// again; beyond a few rounds something deletes and recreates it as fast.
const mergeRounds = 5

// mergeEntities applies ops to the rows of table and writes the result.
// It returns each patching op's row as it stood after the patch, in op
// order, and the rows that existed before the batch. freshRows is
// freshIDs(ops), which the caller has already made.
func mergeEntities[T any](ctx context.Context, tx *Tx, tenantID string, table entityTable[T],
	ops []entityOp[T], freshRows map[string]bool) ([]T, map[string]T, error) {
	if len(ops) == 0 {
		return nil, nil, nil
	}
	// out holds each patching op's row after its patch, in op order:
	// patch[i] is op i's place in it, -1 for an op that only needs its row.
	patch := make([]int, len(ops))
	n := 0
	for i, op := range ops {
		patch[i] = -1
		if op.apply != nil {
			patch[i], n = n, n+1
		}
	}
	out := make([]T, n)
	before := make(map[string]T)
	pending := make([]string, 0, len(ops))
	for _, op := range ops {
		pending = append(pending, op.id)
	}
	slices.Sort(pending)
	pending = slices.Compact(pending)
	for round := 0; len(pending) > 0; round++ {
		if round == mergeRounds {
			return nil, nil, nodus.Errorf(nodus.ECONFLICT, "%s created and deleted concurrently, retry", table.name)
		}
		lookup := pending
		if round == 0 {
			// Fresh rows are not looked for: they are new, and if one is
			// not, its insert returns no id and the next round reads it.
			if len(freshRows) > 0 {
				lookup = slices.DeleteFunc(slices.Clone(pending), func(id string) bool { return freshRows[id] })
			}
		}
		rows, err := selectEntities(ctx, tx, tenantID, table, lookup)
		if err != nil {
			return nil, nil, err
		}
		for id, r := range rows {
			before[id] = *r
		}
		created := make(map[string]*T)
		dirty := make(map[string]bool)
		want := make(map[string]bool, len(pending))
		for _, id := range pending {
			want[id] = true
		}
		for i, op := range ops {
			if !want[op.id] {
				continue
			}
			r := rows[op.id]
			if r == nil {
				v := op.create()
				r = &v
				rows[op.id], created[op.id] = r, r
			}
			if op.apply != nil {
				op.apply(r)
				out[patch[i]] = *r
				dirty[op.id] = true
			}
		}
		var fresh, changed []*T
		var freshIDs []string
		for _, id := range pending {
			switch {
			case created[id] != nil:
				fresh, freshIDs = append(fresh, created[id]), append(freshIDs, id)
			case dirty[id]:
				changed = append(changed, rows[id])
			}
		}
		inserted, err := writeEntities(ctx, tx, table, fresh, false)
		if err != nil {
			return nil, nil, err
		}
		if _, err := writeEntities(ctx, tx, table, changed, true); err != nil {
			return nil, nil, err
		}
		// A new row another batch inserted first: merge its events again
		// into the row it made.
		pending = pending[:0]
		for _, id := range freshIDs {
			if !inserted[id] {
				pending = append(pending, id)
			}
		}
	}
	return out, before, nil
}

// selectEntities reads the rows of table with ids (sorted), locked on
// PostgreSQL, in id order.
func selectEntities[T any](ctx context.Context, tx *Tx, tenantID string, table entityTable[T],
	ids []string) (map[string]*T, error) {
	out := make(map[string]*T, len(ids))
	for chunk := range shapedChunks(ids, ingestChunk) {
		args := make([]any, 0, len(chunk)+1)
		args = append(args, tenantID)
		for _, id := range chunk {
			args = append(args, id)
		}
		rows, err := tx.Query(ctx, `SELECT `+table.read+` FROM `+table.name+` WHERE tenant_id = ? AND id IN (`+
			placeholders(len(chunk))+`) ORDER BY id`+tx.Dialect().ForUpdate(), args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			r := new(T)
			if err := table.scan(rows, r); err != nil {
				rows.Close()
				return nil, err
			}
			out[table.key(r)] = r
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// writeEntities inserts rows (new ones: a row that exists meanwhile is
// left alone) or, with upsert, writes them over the rows there. It
// returns the ids it inserted.
func writeEntities[T any](ctx context.Context, tx *Tx, table entityTable[T], rows []*T, upsert bool) (map[string]bool, error) {
	inserted := make(map[string]bool, len(rows))
	cols := len(table.write)
	for chunk := range shapedChunks(rows, ingestChunk) {
		args := make([]any, 0, cols*len(chunk))
		for _, r := range chunk {
			var err error
			if args, err = table.values(args, r); err != nil {
				return nil, err
			}
		}
		q := `INSERT INTO ` + table.name + ` (` + strings.Join(table.write, ", ") + `) VALUES ` + valuesSQL(len(chunk), cols)
		if upsert {
			if _, err := tx.Exec(ctx, q+` ON CONFLICT (tenant_id, id) DO UPDATE SET `+table.upsertSet(), args...); err != nil {
				return nil, err
			}
			continue
		}
		keys := make([]string, len(chunk))
		for i, r := range chunk {
			keys[i] = table.key(r)
		}
		if err := insertNew(ctx, tx, q+` ON CONFLICT DO NOTHING`, ` RETURNING id`, args, keys, inserted); err != nil {
			return nil, err
		}
	}
	return inserted, nil
}

// lockTraces locks the tenant's traces with ids on PostgreSQL, in id
// order; SQLite's single writer already excludes every other writer.
func lockTraces(ctx context.Context, tx *Tx, tenantID string, ids []string) error {
	if tx.Dialect() != Postgres {
		return nil
	}
	ids = slices.Compact(slices.Sorted(slices.Values(ids)))
	for chunk := range shapedChunks(ids, ingestChunk) {
		args := append([]any{tenantID}, idArgs(chunk)...)
		if _, err := tx.Exec(ctx, `SELECT id FROM traces WHERE tenant_id = ? AND id IN (`+placeholders(len(chunk))+
			`) ORDER BY id FOR UPDATE`, args...); err != nil {
			return err
		}
	}
	return nil
}

func idArgs(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// observedTraceIDs is the traces whose observations a batch wrote, the
// ones whose summaries it may have changed.
func observedTraceIDs(b *ingested) []string {
	ids := make([]string, 0, len(b.observations))
	for _, o := range b.observations {
		if !b.summarized[o.TraceID] {
			ids = append(ids, o.TraceID)
		}
	}
	return ids
}

// The per-trace summary (migration 0004) as one aggregate over the
// traces' observations: the cost is Langfuse's, cost_details' "total"
// when sent, else the sum of its other entries; the level the most severe.
// Each engine reads the JSON its own way.
const (
	summaryCostSQLite = `CASE WHEN json_type(o.cost_details, '$.total') IN ('integer', 'real')
		THEN json_extract(o.cost_details, '$.total')
		ELSE (SELECT TOTAL(value) FROM json_each(o.cost_details)) END`
	summaryCostPostgres = `CASE WHEN o.cost_details::jsonb -> 'total' IS NOT NULL
		THEN (o.cost_details::jsonb ->> 'total')::double precision
		ELSE (SELECT COALESCE(SUM(value::double precision), 0) FROM jsonb_each_text(o.cost_details::jsonb)) END`
	summaryLatencySQLite   = `MAX(0, CAST(ROUND((julianday(MAX(o.end_time)) - julianday(MIN(o.start_time))) * 86400000) AS INTEGER))`
	summaryLatencyPostgres = `GREATEST(0, ROUND(EXTRACT(EPOCH FROM MAX(o.end_time) - MIN(o.start_time)) * 1000))::bigint`
	summaryLevel           = `CASE MAX(CASE o.level WHEN 'ERROR' THEN 4 WHEN 'WARNING' THEN 3 WHEN 'DEFAULT' THEN 2
		WHEN 'DEBUG' THEN 1 ELSE 0 END) WHEN 4 THEN 'ERROR' WHEN 3 THEN 'WARNING' WHEN 2 THEN 'DEFAULT'
		WHEN 1 THEN 'DEBUG' ELSE '' END`
)

// updateTraceSummaries recomputes total_cost, level, observation_count
// and latency_ms of the tenant's traces with ids from their observations,
// in one statement per chunk. The caller holds the traces' locks (the
// ingestion locks every trace a batch names), so on PostgreSQL the
// aggregate sees every observation committed before and none is added
// until the transaction ends.
func updateTraceSummaries(ctx context.Context, tx *Tx, tenantID string, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	ids = slices.Compact(slices.Sorted(slices.Values(ids)))
	cost, latency := summaryCostSQLite, summaryLatencySQLite
	if tx.Dialect() == Postgres {
		cost, latency = summaryCostPostgres, summaryLatencyPostgres
	}
	for chunk := range shapedChunks(ids, ingestChunk) {
		// One correlated aggregate per trace, through observations_trace;
		// a trace left without observations gets zeros. (UPDATE … FROM a
		// grouped subquery had SQLite scan the tenant's every trace.)
		if _, err := tx.Exec(ctx, `UPDATE traces SET (total_cost, level, observation_count, latency_ms) =
			(SELECT COALESCE(SUM(`+cost+`), 0), `+summaryLevel+`, COUNT(*), COALESCE(`+latency+`, 0)
				FROM observations o WHERE o.tenant_id = traces.tenant_id AND o.trace_id = traces.id)
			WHERE tenant_id = ? AND id IN (`+placeholders(len(chunk))+`)`,
			append([]any{tenantID}, idArgs(chunk)...)...); err != nil {
			return err
		}
	}
	return nil
}

// traceSummary is a trace's summary as updateTraceSummaries computes it.
type traceSummary struct {
	cost           float64
	severity       int // an index of levels
	count          int
	start, end     time.Time
	started, ended bool
}

// levels are the observation levels by severity, as summaryLevel ranks
// them; 0 is none.
var levels = [...]string{"", tracing.LevelDebug, tracing.LevelDefault, tracing.LevelWarning, tracing.LevelError}

// add counts o in the summary.
func (s *traceSummary) add(o *tracing.Observation) {
	cost, ok := o.CostDetails["total"]
	if !ok {
		cost = 0
		for _, v := range o.CostDetails {
			cost += v
		}
	}
	s.cost += cost
	if n := slices.Index(levels[:], o.Level); n > 0 {
		s.severity = max(s.severity, n)
	}
	s.count++
	if start := stored(o.StartTime); !s.started || start.Before(s.start) {
		s.start, s.started = start, true
	}
	if o.EndTime != nil {
		if end := stored(*o.EndTime); !s.ended || end.After(s.end) {
			s.end, s.ended = end, true
		}
	}
}

// latencyMS is the span from the first start to the last end, in
// milliseconds, as each engine's SQL computes it: PostgreSQL rounds the
// exact difference; SQLite's julianday rounds each time to the
// millisecond first.
func (s *traceSummary) latencyMS(d Dialect) int64 {
	if !s.started || !s.ended {
		return 0
	}
	var ms int64
	if d == Postgres {
		us := s.end.Sub(s.start).Microseconds()
		if us < 0 {
			return 0
		}
		ms = (us + 500) / 1000
	} else {
		ms = sqliteMillis(s.end) - sqliteMillis(s.start)
	}
	return max(ms, 0)
}

// sqliteMillis is t as SQLite's date functions hold it (DateTime.iJD, up
// to a constant): whole milliseconds, the seconds' fraction parsed from
// TimeFormat's six digits, capped at .999 and rounded half up.
func sqliteMillis(t time.Time) int64 {
	t = t.UTC()
	frac := float64(t.Nanosecond()/1000) / 1e6
	if frac > 0.999 {
		frac = 0.999
	}
	sec := float64(t.Second()) + frac
	midnight := t.Unix() - int64(t.Hour()*3600+t.Minute()*60+t.Second())
	return midnight*1000 + int64(t.Hour())*3600000 + int64(t.Minute())*60000 + int64(sec*1000+0.5)
}

// set writes the summary into t.
func (s *traceSummary) set(t *tracing.Trace, d Dialect) {
	t.TotalCost, t.ObservationCount, t.LatencyMS = s.cost, s.count, s.latencyMS(d)
	t.Level = levels[s.severity]
}

// freshSummaries is the summaries of the fresh traces (traces) from the
// batch's observation ops on fresh ids (fresh), applied in Go as
// mergeEntities would: a fresh trace's observations are all fresh and all
// in the batch. A trace none of them is in gets a zero summary.
func freshSummaries(obsOps []entityOp[tracing.Observation], fresh, traces map[string]bool) map[string]*traceSummary {
	if len(traces) == 0 {
		return nil
	}
	final := make(map[string]*tracing.Observation, len(fresh))
	var order []string
	for _, op := range obsOps {
		if !fresh[op.id] {
			continue
		}
		o := final[op.id]
		if o == nil {
			v := op.create()
			o = &v
			final[op.id] = o
			order = append(order, op.id)
		}
		if op.apply != nil {
			op.apply(o)
		}
	}
	out := make(map[string]*traceSummary, len(traces))
	for id := range traces {
		out[id] = &traceSummary{}
	}
	for _, id := range order {
		if s := out[final[id].TraceID]; s != nil {
			s.add(final[id])
		}
	}
	return out
}
