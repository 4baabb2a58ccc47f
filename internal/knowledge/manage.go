package knowledge

import (
	"context"
	"fmt"

	"github.com/nodus-os/nodus/internal/audit"
	"github.com/nodus-os/nodus/internal/nodus"
)

// This file holds the management of knowledge bases and their documents:
// the service methods the HTTP API calls. Every member of a tenant reads
// its knowledge bases; admins (org_admin, super_admin) change them, and
// every change is audited. Audit entries name records and settings, never
// a document's text.

// Auditor records management changes; *audit.Service is one.
type Auditor interface {
	Record(ctx context.Context, e audit.Entry) error
}

// Manager is who manages knowledge bases: a user of the tenant in scope.
type Manager struct {
	TenantID string
	UserID   string
	Admin    bool
	// Entry carries the actor, address and user agent of the audit
	// entries the change makes.
	Entry audit.Entry
}

func (m Manager) ctx(ctx context.Context) context.Context { return nodus.WithTenant(ctx, m.TenantID) }

func (m Manager) entry(action, targetType, targetID string, changes map[string]audit.Change) audit.Entry {
	return m.Entry.About(m.TenantID, action, targetType, targetID, changes)
}

func (s *Service) record(ctx context.Context, e audit.Entry) error {
	if s.audit == nil {
		return nil
	}
	if err := s.audit.Record(ctx, e); err != nil {
		return fmt.Errorf("knowledge: audit %s: %w", e.Action, err)
	}
	return nil
}

func forbidden(what string) error {
	return nodus.Errorf(nodus.EFORBIDDEN, "only an admin may %s", what)
}

func invalid(field, msg string) error {
	return &nodus.Error{Code: nodus.EINVALID, Message: "invalid " + field, Fields: map[string]string{field: msg}}
}

func kbNotFound(id string) error {
	return nodus.Errorf(nodus.ENOTFOUND, "knowledge base %s not found", id)
}

func docNotFound(id string) error { return nodus.Errorf(nodus.ENOTFOUND, "document %s not found", id) }

// RetrievalInput changes retrieval settings; nil fields stay.
type RetrievalInput struct {
	Mode           *string  `json:"mode"`
	TopK           *int     `json:"top_k"`
	ScoreThreshold *float64 `json:"score_threshold"`
	HybridWeight   *float64 `json:"hybrid_weight"`
}

// ChunkingInput changes chunking settings; nil fields stay.
type ChunkingInput struct {
	Size        *int  `json:"size"`
	Overlap     *int  `json:"overlap"`
	HeaderAware *bool `json:"header_aware"`
}

// KnowledgeBaseInput is a knowledge base as an admin writes it. On create
// nil fields take the defaults; on update they stay as they are.
type KnowledgeBaseInput struct {
	Name           *string         `json:"name"`
	Description    *string         `json:"description"`
	EmbeddingModel *string         `json:"embedding_model"`
	Retrieval      *RetrievalInput `json:"retrieval"`
	Chunking       *ChunkingInput  `json:"chunking"`
}

func (in KnowledgeBaseInput) apply(kb *KnowledgeBase) {
	set := func(dst *string, v *string) {
		if v != nil {
			*dst = *v
		}
	}
	set(&kb.Name, in.Name)
	set(&kb.Description, in.Description)
	set(&kb.EmbeddingModel, in.EmbeddingModel)
	if r := in.Retrieval; r != nil {
		set(&kb.Retrieval.Mode, r.Mode)
		if r.TopK != nil {
			kb.Retrieval.TopK = *r.TopK
		}
		if r.ScoreThreshold != nil {
			kb.Retrieval.ScoreThreshold = *r.ScoreThreshold
		}
		if r.HybridWeight != nil {
			kb.Retrieval.HybridWeight = *r.HybridWeight
		}
	}
	if c := in.Chunking; c != nil {
		if c.Size != nil {
			kb.Chunking.Size = *c.Size
		}
		if c.Overlap != nil {
			kb.Chunking.Overlap = *c.Overlap
		}
		if c.HeaderAware != nil {
			kb.Chunking.HeaderAware = *c.HeaderAware
		}
	}
}

// CreateKnowledgeBase adds a knowledge base to the manager's tenant;
// ECONFLICT when the tenant has one of the same name.
func (s *Service) CreateKnowledgeBase(ctx context.Context, m Manager, in KnowledgeBaseInput) (*KnowledgeBase, error) {
	if !m.Admin {
		return nil, forbidden("manage knowledge bases")
	}
	now := s.now().UTC()
	kb := KnowledgeBase{ID: nodus.NewID(), TenantID: m.TenantID, CreatedBy: m.UserID, CreatedAt: now, UpdatedAt: now,
		Retrieval: DefaultRetrieval(), Chunking: DefaultChunking()}
	in.apply(&kb)
	kb.SetDefaults()
	if err := kb.Validate(); err != nil {
		return nil, err
	}
	if err := s.store.CreateKnowledgeBase(m.ctx(ctx), kb); err != nil {
		return nil, fmt.Errorf("knowledge: create knowledge base: %w", err)
	}
	return &kb, s.record(ctx, m.entry("knowledge.kb_create", "knowledge_base", kb.ID, kbChanges(nil, &kb)))
}

// GetKnowledgeBase returns one of the tenant's knowledge bases.
func (s *Service) GetKnowledgeBase(ctx context.Context, m Manager, id string) (*KnowledgeBase, error) {
	if !nodus.ValidID(id) {
		return nil, kbNotFound(id)
	}
	kb, err := s.store.FindKnowledgeBase(m.ctx(ctx), id)
	if err != nil {
		return nil, err
	}
	return &kb, nil
}

// ListKnowledgeBases lists a page of the tenant's knowledge bases and the
// cursor of the next, "" after the last.
func (s *Service) ListKnowledgeBases(ctx context.Context, m Manager, cursor string, limit int) ([]KnowledgeBase, string, error) {
	return s.store.ListKnowledgeBases(m.ctx(ctx), cursor, limit)
}

// UpdateKnowledgeBase changes a knowledge base's name, description,
// embedding model and settings. A change of the chunking settings or of
// the embedding model re-indexes its documents: the completed ones go back
// to pending, and ingestion runs again for each (queued now, and by the
// sweep of pending documents should a queue fail), each keeping its old
// chunks searchable until the new ones replace them.
func (s *Service) UpdateKnowledgeBase(ctx context.Context, m Manager, id string, in KnowledgeBaseInput) (*KnowledgeBase, error) {
	if !m.Admin {
		return nil, forbidden("manage knowledge bases")
	}
	if !nodus.ValidID(id) {
		return nil, kbNotFound(id)
	}
	var before KnowledgeBase
	kb, err := s.store.UpdateKnowledgeBase(m.ctx(ctx), id, func(kb *KnowledgeBase) error {
		before = *kb
		in.apply(kb)
		kb.SetDefaults()
		if err := kb.Validate(); err != nil {
			return err
		}
		kb.UpdatedAt = s.now().UTC()
		return nil
	})
	if err != nil {
		return nil, err
	}
	changes := kbChanges(&before, &kb)
	if before.Chunking != kb.Chunking || before.EmbeddingModel != kb.EmbeddingModel {
		n, err := s.reindex(ctx, m, kb.ID)
		if err != nil {
			return nil, err
		}
		changes["documents_reindexed"] = audit.Change{After: n}
	}
	return &kb, s.record(ctx, m.entry("knowledge.kb_update", "knowledge_base", kb.ID, changes))
}

// reindex moves a knowledge base's completed documents back to pending and
// queues the first batch of them; the sweep of pending documents queues
// the rest (RequeueStalled), as their update time is set a grace period
// back.
func (s *Service) reindex(ctx context.Context, m Manager, kbID string) (int, error) {
	n, err := s.store.ReindexDocuments(m.ctx(ctx), kbID, s.now().Add(-pendingGrace))
	if err != nil || n == 0 || s.enqueue == nil {
		return n, err
	}
	docs, _, err := s.store.ListDocuments(m.ctx(ctx), kbID, StatusPending, "", requeueBatch)
	if err != nil {
		return n, err
	}
	for _, d := range docs {
		s.queue(ctx, m.TenantID, d.ID)
	}
	return n, nil
}

// DeleteKnowledgeBase removes a knowledge base with its documents and
// chunks, then its documents' files. A file that cannot be deleted is
// logged and left for an operator: the rows are already gone.
func (s *Service) DeleteKnowledgeBase(ctx context.Context, m Manager, id string) error {
	if !m.Admin {
		return forbidden("manage knowledge bases")
	}
	if !nodus.ValidID(id) {
		return kbNotFound(id)
	}
	kb, err := s.store.FindKnowledgeBase(m.ctx(ctx), id)
	if err != nil {
		return err
	}
	blobs, err := s.store.DeleteKnowledgeBase(m.ctx(ctx), id)
	if err != nil {
		return err
	}
	s.deleteBlobs(ctx, m.TenantID, blobs)
	return s.record(ctx, m.entry("knowledge.kb_delete", "knowledge_base", id, map[string]audit.Change{
		"name": {Before: kb.Name}, "documents": {Before: len(blobs)}}))
}

func (s *Service) deleteBlobs(ctx context.Context, tenantID string, ids []string) {
	// The rows are gone: a client hanging up must not leave the files.
	ctx = context.WithoutCancel(ctx)
	for _, id := range ids {
		if id == "" {
			continue
		}
		if err := s.blobs.Delete(ctx, id); err != nil && nodus.ErrorCode(err) != nodus.ENOTFOUND {
			s.log.WarnContext(ctx, "document file not deleted", "tenant", tenantID, "blob", id, "error", err)
		}
	}
}

// ListDocuments lists a page of a knowledge base's documents, those with
// status only unless it is "".
func (s *Service) ListDocuments(ctx context.Context, m Manager, kbID, status, cursor string, limit int) ([]Document, string, error) {
	if !nodus.ValidID(kbID) {
		return nil, "", kbNotFound(kbID)
	}
	if status != "" && !ValidStatus(status) {
		return nil, "", invalid("status", "one of pending, processing, completed, failed")
	}
	return s.store.ListDocuments(m.ctx(ctx), kbID, status, cursor, limit)
}

// DocumentsIndexing counts a knowledge base's documents not searchable
// yet (pending or processing), for a chat to say so rather than answer
// from nothing.
func (s *Service) DocumentsIndexing(ctx context.Context, m Manager, kbID string) (int, error) {
	if !nodus.ValidID(kbID) {
		return 0, kbNotFound(kbID)
	}
	return s.store.CountUnfinishedDocuments(m.ctx(ctx), kbID)
}

// GetDocument returns a document of one of the tenant's knowledge bases;
// ENOTFOUND when it is not in that knowledge base.
func (s *Service) GetDocument(ctx context.Context, m Manager, kbID, id string) (*Document, error) {
	if !nodus.ValidID(kbID) || !nodus.ValidID(id) {
		return nil, docNotFound(id)
	}
	d, err := s.store.FindDocument(m.ctx(ctx), id)
	if err != nil {
		return nil, err
	}
	if d.KnowledgeBaseID != kbID {
		return nil, docNotFound(id)
	}
	return &d, nil
}

// DeleteDocument removes a document with its chunks, then its file (best
// effort, as DeleteKnowledgeBase).
func (s *Service) DeleteDocument(ctx context.Context, m Manager, kbID, id string) error {
	if !m.Admin {
		return forbidden("manage documents")
	}
	d, err := s.GetDocument(ctx, m, kbID, id)
	if err != nil {
		return err
	}
	blobID, err := s.store.DeleteDocument(m.ctx(ctx), id)
	if err != nil {
		return err
	}
	s.deleteBlobs(ctx, m.TenantID, []string{blobID})
	return s.record(ctx, m.entry("knowledge.document_delete", "document", id, map[string]audit.Change{
		"knowledge_base_id": {Before: kbID}, "original_filename": {Before: d.OriginalFilename}}))
}

// RetryDocumentFor is RetryDocument on behalf of a manager: a failed
// document of the knowledge base goes back to pending, audited.
func (s *Service) RetryDocumentFor(ctx context.Context, m Manager, kbID, id string) (*Document, error) {
	if !m.Admin {
		return nil, forbidden("manage documents")
	}
	before, err := s.GetDocument(ctx, m, kbID, id)
	if err != nil {
		return nil, err
	}
	d, err := s.RetryDocument(ctx, m.TenantID, id)
	if err != nil {
		return nil, err
	}
	s.queue(ctx, m.TenantID, id)
	return &d, s.record(ctx, m.entry("knowledge.document_retry", "document", id, map[string]audit.Change{
		"status": {Before: before.Status, After: d.Status}}))
}

func retrievalMap(r RetrievalSettings) map[string]any {
	return map[string]any{"mode": r.Mode, "top_k": r.TopK, "score_threshold": r.ScoreThreshold, "hybrid_weight": r.HybridWeight}
}

func chunkingMap(c ChunkingSettings) map[string]any {
	return map[string]any{"size": c.Size, "overlap": c.Overlap, "header_aware": c.HeaderAware}
}

// kbChanges lists what differs between two versions of a knowledge base
// (b nil for a new one).
func kbChanges(b, a *KnowledgeBase) map[string]audit.Change {
	out := map[string]audit.Change{}
	var zero KnowledgeBase
	if b == nil {
		b = &zero
	}
	add := func(name string, x, y any) {
		if x != y {
			out[name] = audit.Change{Before: x, After: y}
		}
	}
	add("name", b.Name, a.Name)
	add("description", b.Description, a.Description)
	add("embedding_model", b.EmbeddingModel, a.EmbeddingModel)
	if b.Retrieval != a.Retrieval {
		out["retrieval"] = audit.Change{Before: retrievalMap(b.Retrieval), After: retrievalMap(a.Retrieval)}
	}
	if b.Chunking != a.Chunking {
		out["chunking"] = audit.Change{Before: chunkingMap(b.Chunking), After: chunkingMap(a.Chunking)}
	}
	return out
}
