package store

import (
	"context"
	"slices"
	"time"

	"github.com/nodus-os/nodus/internal/tracing"
)

// ingested is what one IngestEvents transaction wrote: each entity as
// stored after its event was merged (an entity patched twice in the batch
// appears twice, the later last).
type ingested struct {
	traces       []tracing.Trace
	observations []tracing.Observation
	scores       []tracing.Score
	// The sessions and users of traces that moved (to another session or
	// user, or in time), whose rows are settled from the traces.
	settleSessions, settleUsers []string
	// The start times observations had before the batch moved them to
	// another day, whose rollups are marked too.
	movedFromDays []time.Time
	// The fresh traces the batch inserted with their summaries: their
	// observations are all in the batch.
	summarized map[string]bool
}

// afterIngest keeps what is derived from traces and observations (the
// per-trace summaries, the rollups' dirty days, the sessions and users)
// in step with a batch, inside the batch's transaction, so a reader never
// sees rows without what is derived from them.
func (db *DB) afterIngest(ctx context.Context, tx *Tx, tenantID string, b *ingested) error {
	if err := updateTraceSummaries(ctx, tx, tenantID, observedTraceIDs(b)); err != nil {
		return err
	}
	if err := upsertTraceSessions(ctx, tx, tenantID, b.traces); err != nil {
		return err
	}
	if len(b.settleSessions)+len(b.settleUsers) > 0 {
		if err := settleTraceGroups(ctx, tx, tenantID, slices.Compact(slices.Sorted(slices.Values(b.settleSessions))),
			slices.Compact(slices.Sorted(slices.Values(b.settleUsers)))); err != nil {
			return err
		}
	}
	if err := markRollupsOfBatch(ctx, tx, tenantID, b); err != nil {
		return err
	}
	return nil
}
