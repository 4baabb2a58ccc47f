package knowledge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/nodus-os/nodus/internal/blob"
	"github.com/nodus-os/nodus/internal/chunk"
	"github.com/nodus-os/nodus/internal/extract"
	"github.com/nodus-os/nodus/internal/nodus"
)

// Config assembles a Service.
type Config struct {
	Store  Store
	Blobs  blob.Store // the uploaded files' bytes, under Document.BlobID
	Audit  Auditor    // records management changes; nil records nothing
	Logger *slog.Logger
	// Now defaults to the system clock (UTC, microseconds, as stored).
	Now func() time.Time
	// Limits bound each extraction; zero fields take extract's defaults.
	Limits extract.Limits
	// Count counts tokens for chunking; chunk.Approx if nil. It must be
	// deterministic, or a retry would split a document differently.
	Count func(string) int
	// StaleAfter is how long a processing document may go without a
	// state update before another Ingest takes it over as crashed. Every
	// stage updates the row, so it must exceed the longest stage: the
	// default is 10 minutes, and never less than twice Limits.Timeout.
	StaleAfter time.Duration
	// Enqueue queues the ingestion of a pending document (the job queue);
	// nil queues nothing, and documents stay pending.
	Enqueue func(ctx context.Context, tenantID, documentID string) error
	// Egress gives a tenant's egress-checked HTTP client, for imports
	// from a URL (*egress.Service is one); nil refuses them.
	Egress Egress
	// Embedder embeds chunks and queries for knowledge bases with an
	// embedding model (the gateway); nil fails their documents at the
	// embedding stage and their vector searches, with a clear error.
	Embedder Embedder
	// EmbedBatch is how many texts one embeddings call carries;
	// DefaultEmbedBatch if 0.
	EmbedBatch int
	// Notify is told of a document whose ingestion ended, completed or
	// failed (its Status says which), so its uploader can hear of it;
	// nil tells no one. It must not block for long: it runs in the
	// ingestion job.
	Notify func(ctx context.Context, d Document)
}

// Egress is where a tenant's outbound HTTP clients come from.
type Egress interface {
	Client(tenantID string) *http.Client
}

// Service runs the knowledge module's work on top of its Store: for now the
// ingestion of documents (ingest.go). It is safe for concurrent use.
type Service struct {
	store      Store
	blobs      blob.Store
	audit      Auditor
	log        *slog.Logger
	now        func() time.Time
	limits     extract.Limits
	count      func(string) int
	staleAfter time.Duration
	enqueue    func(ctx context.Context, tenantID, documentID string) error
	egress     Egress
	embedder   Embedder
	embedBatch int
	notify     func(ctx context.Context, d Document)
}

// NewService builds the service; a store and a blob store are required.
func NewService(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Blobs == nil {
		return nil, errors.New("knowledge: a store and a blob store are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = nodus.SystemClock{}.Now
	}
	if cfg.Count == nil {
		cfg.Count = chunk.Approx
	}
	timeout := cfg.Limits.Timeout
	if timeout <= 0 {
		timeout = extract.DefaultLimits().Timeout
	}
	if cfg.StaleAfter <= 0 {
		cfg.StaleAfter = 10 * time.Minute
	}
	cfg.StaleAfter = max(cfg.StaleAfter, 2*timeout)
	if cfg.EmbedBatch <= 0 {
		cfg.EmbedBatch = DefaultEmbedBatch
	}
	return &Service{
		store: cfg.Store, blobs: cfg.Blobs, audit: cfg.Audit, log: cfg.Logger, now: cfg.Now, limits: cfg.Limits,
		count: cfg.Count, staleAfter: cfg.StaleAfter, enqueue: cfg.Enqueue, egress: cfg.Egress, notify: cfg.Notify,
		embedder: cfg.Embedder, embedBatch: cfg.EmbedBatch,
	}, nil
}

// PurgeTenant removes every knowledge base, document and chunk of a tenant
// and their files (a tenant purger). Files are removed after the rows, best
// effort: one left behind is never reachable again, and is logged.
func (s *Service) PurgeTenant(ctx context.Context, tenantID string) error {
	blobIDs, err := s.store.DeleteKnowledgeTenant(nodus.WithTenant(ctx, tenantID))
	if err != nil {
		return fmt.Errorf("knowledge: purge tenant %s: %w", tenantID, err)
	}
	s.deleteBlobs(ctx, tenantID, blobIDs)
	return nil
}

// Stalled documents: a pending document whose job was lost (the queue was
// down when it was uploaded) or a processing one whose run crashed would
// otherwise wait for ever (SECURITY.md check 26). RequeueStalled queues them
// again; the queue drops a job already waiting for the same document.
const (
	pendingGrace  = time.Minute // an upload's own job normally starts well within it
	requeueBatch  = 500
	requeueRounds = 200 // 100,000 documents a sweep
)

// RequeueStalled queues ingestion again for every tenant's stalled
// documents and returns how many it queued. It needs Config.Enqueue.
func (s *Service) RequeueStalled(ctx context.Context) (int, error) {
	if s.enqueue == nil {
		return 0, nil
	}
	now := s.now()
	n := 0
	// Batch after batch, for a re-index leaves many documents pending at
	// once. Each document queued is marked as queued now (its update
	// time), so the next batch lists others, and the document comes back
	// only if its job is lost again. requeueRounds bounds a sweep.
	all := nodus.WithAllTenants(ctx)
	for range requeueRounds {
		refs, err := s.store.ListStalledDocuments(all, now.Add(-pendingGrace), now.Add(-s.staleAfter), requeueBatch)
		if err != nil {
			return n, fmt.Errorf("knowledge: list stalled documents: %w", err)
		}
		for _, r := range refs {
			if err := s.enqueue(ctx, r.TenantID, r.ID); err != nil {
				return n, fmt.Errorf("knowledge: requeue document %s: %w", r.ID, err)
			}
			n++
		}
		if err := s.store.MarkQueued(all, refs, now); err != nil {
			return n, fmt.Errorf("knowledge: mark documents queued: %w", err)
		}
		if len(refs) < requeueBatch {
			break
		}
	}
	if n > 0 {
		s.log.Info("knowledge: stalled documents queued again", "documents", n)
	}
	return n, nil
}
