package store

import (
	"context"

	"github.com/nodus-os/nodus/internal/tracing"
)

// RebuildRollupDay lets the tests rebuild a day with a token of their
// choosing, as a run that raced a batch would.
var RebuildRollupDay = (*DB).rebuildRollupDay

// MarkRollupsOfBatch runs afterIngest's marking of a batch's days alone,
// in a transaction of its own, for the benchmark of its cost.
func MarkRollupsOfBatch(ctx context.Context, db *DB, tenantID string, traces []tracing.Trace, obs []tracing.Observation) error {
	return db.Write(ctx, func(tx *Tx) error {
		return markRollupsOfBatch(ctx, tx, tenantID, &ingested{traces: traces, observations: obs})
	})
}

// RebuildRollupMonth lets the tests rebuild a month with a token of their
// choosing, as a run that raced a day's rebuild would.
var RebuildRollupMonth = (*DB).rebuildRollupMonth
