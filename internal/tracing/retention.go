package tracing

import (
	"context"
	"fmt"
	"time"

	"github.com/nodus-os/nodus/internal/nodus"
)

// Retention: a tenant keeps its traces for a number of days it chooses (0
// keeps them), and a periodic job (jobs.AddTracingRetention) deletes what
// is older, with the observations and scores under it. Envelope ids, kept
// to skip a retried event, are forgotten after DedupWindow.

// Bounds of retention.
const (
	MaxRetentionDays = 3650
	// DedupWindow is how long an envelope id is remembered: SDKs retry a
	// failed batch within minutes, so a day would do; a week is margin.
	DedupWindow = 7 * 24 * time.Hour
)

// RetentionStore is the part of the store retention needs.
type RetentionStore interface {
	// TracingRetention returns the scoped tenant's retention in days.
	TracingRetention(ctx context.Context) (int, error)
	SetTracingRetention(ctx context.Context, days int, at time.Time) error
	// PruneTraces deletes every tenant's traces past its retention and
	// the envelope ids received before dedupBefore, in batches; it needs
	// the all-tenants scope and returns the traces deleted.
	PruneTraces(ctx context.Context, now, dedupBefore time.Time) (int, error)
}

func (s *Service) retention() (RetentionStore, error) {
	rs, ok := s.store.(RetentionStore)
	if !ok {
		return nil, nodus.Errorf(nodus.EUNAVAILABLE, "trace retention is not available on this store")
	}
	return rs, nil
}

// Retention returns a tenant's retention in days, 0 when it keeps its
// traces.
func (s *Service) Retention(ctx context.Context, tenantID string) (int, error) {
	rs, err := s.retention()
	if err != nil {
		return 0, err
	}
	return rs.TracingRetention(nodus.WithTenant(ctx, tenantID))
}

// SetRetention sets a tenant's retention in days (0 keeps its traces).
func (s *Service) SetRetention(ctx context.Context, tenantID string, days int) error {
	if days < 0 || days > MaxRetentionDays {
		return &nodus.Error{Code: nodus.EINVALID, Message: "invalid retention_days",
			Fields: map[string]string{"retention_days": fmt.Sprintf("must be 0 (keep) to %d days", MaxRetentionDays)}}
	}
	rs, err := s.retention()
	if err != nil {
		return err
	}
	return rs.SetTracingRetention(nodus.WithTenant(ctx, tenantID), days, s.now())
}

// Prune deletes what retention no longer keeps, across tenants, and
// returns how many traces went: the periodic job's work.
func (s *Service) Prune(ctx context.Context, now time.Time) (int, error) {
	rs, err := s.retention()
	if err != nil {
		return 0, err
	}
	n, err := rs.PruneTraces(nodus.WithAllTenants(ctx), now, now.Add(-DedupWindow))
	if err != nil {
		return n, fmt.Errorf("tracing: prune: %w", err)
	}
	return n, nil
}
