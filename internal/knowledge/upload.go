package knowledge

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/nodus-os/nodus/internal/audit"
	"github.com/nodus-os/nodus/internal/extract"
	"github.com/nodus-os/nodus/internal/nodus"
)

// UploadInput is a file an admin uploads to a knowledge base.
type UploadInput struct {
	// OriginalFilename is the client's name for the file: kept, cleaned,
	// for display and as a hint among text types; never a path.
	OriginalFilename string
	// DeclaredType is the client's Content-Type, a hint among text types.
	DeclaredType string
	Body         io.Reader
	// Limit is the most bytes Body may hold (ETOOLARGE past it).
	Limit    int64
	Metadata map[string]json.RawMessage
}

// maxFilenameBytes bounds a displayed file name.
const maxFilenameBytes = 255

// UploadDocument stores a file in a knowledge base of the manager's tenant
// as a pending document and queues its ingestion. The type is decided by
// the content: a file of no supported type is EINVALID and nothing is
// kept. Content the knowledge base already holds is ECONFLICT naming the
// existing document. A failure to queue is logged, not returned: the
// document stays pending (see queue).
func (s *Service) UploadDocument(ctx context.Context, m Manager, kbID string, in UploadInput) (*Document, error) {
	return s.addDocument(ctx, m, kbID, in, "")
}

// addDocument is UploadDocument for a file that came from sourceURL ("" for
// an upload): the one path every new document takes.
func (s *Service) addDocument(ctx context.Context, m Manager, kbID string, in UploadInput, sourceURL string) (*Document, error) {
	if !m.Admin {
		return nil, forbidden("manage documents")
	}
	if !nodus.ValidID(kbID) {
		return nil, kbNotFound(kbID)
	}
	if _, err := s.store.LookupKnowledgeBase(m.ctx(ctx), kbID); err != nil {
		return nil, err
	}
	info, err := s.blobs.Put(ctx, in.Body, in.Limit)
	if err != nil {
		if nodus.ErrorCode(err) == nodus.ETOOLARGE {
			return nil, nodus.WrapError(err, nodus.ETOOLARGE, fmt.Sprintf("the file is larger than the %d-byte limit", in.Limit))
		}
		return nil, fmt.Errorf("knowledge: store upload: %w", err)
	}
	// From here on the blob is ours to remove on any failure; a client
	// hanging up must not leave it behind.
	drop := func() { s.deleteBlobs(ctx, m.TenantID, []string{info.ID}) }
	name := cleanFilename(in.OriginalFilename)
	typ, err := s.detect(ctx, info.ID, info.Size, name, in.DeclaredType)
	if err != nil {
		drop()
		return nil, err
	}
	now := s.now().UTC()
	d := Document{ID: nodus.NewID(), TenantID: m.TenantID, KnowledgeBaseID: kbID, Filename: info.ID,
		OriginalFilename: name, FileType: string(typ), FileSize: info.Size,
		ContentHash: hex.EncodeToString(info.SHA256[:]), BlobID: info.ID, SourceURL: sourceURL, Status: StatusPending,
		Metadata: in.Metadata, UploadedBy: m.UserID, CreatedAt: now, UpdatedAt: now}
	if err := d.Validate(); err != nil {
		drop()
		return nil, err
	}
	if err := s.store.CreateDocument(m.ctx(ctx), d); err != nil {
		drop()
		if _, dup := DuplicateOf(err); dup {
			return nil, err
		}
		return nil, fmt.Errorf("knowledge: create document: %w", err)
	}
	action, changes := "knowledge.document_upload", map[string]audit.Change{
		"knowledge_base_id": {After: kbID}, "original_filename": {After: name},
		"file_size": {After: d.FileSize}, "file_type": {After: d.FileType}}
	if sourceURL != "" {
		action, changes["source_url"] = "knowledge.document_import", audit.Change{After: sourceURL}
	}
	err = s.record(ctx, m.entry(action, "document", d.ID, changes))
	s.queue(ctx, m.TenantID, d.ID)
	return &d, err
}

// detect reads the head of a stored blob and decides its type.
func (s *Service) detect(ctx context.Context, blobID string, size int64, name, declared string) (extract.Type, error) {
	r, _, err := s.blobs.Open(ctx, blobID)
	if err != nil {
		return "", fmt.Errorf("knowledge: read upload: %w", err)
	}
	defer r.Close()
	head := make([]byte, min(size, extract.HeadSize))
	if _, err := io.ReadFull(r, head); err != nil {
		return "", nodus.WrapError(err, nodus.EINTERNAL, "the upload could not be read back from storage")
	}
	return extract.Detect(head, name, declared)
}

// queue asks for a pending document's ingestion. A failure is only
// logged: the upload or retry itself succeeded, and the document stays
// pending for a sweep of stale pending documents to queue again (not
// built yet; until then, delete and upload it again).
func (s *Service) queue(ctx context.Context, tenantID, documentID string) {
	if s.enqueue == nil {
		return
	}
	if err := s.enqueue(context.WithoutCancel(ctx), tenantID, documentID); err != nil {
		s.log.ErrorContext(ctx, "document ingestion not queued; it stays pending", "tenant", tenantID,
			"document", documentID, "error", err)
	}
}

// cleanFilename makes a client's file name fit for display: its base name
// only (either separator), valid UTF-8 without control characters, at most
// maxFilenameBytes. It is never used as a path.
func cleanFilename(name string) string {
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	name = strings.ToValidUTF8(name, "")
	name = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == utf8.RuneError {
			return -1
		}
		return r
	}, name)
	name = strings.TrimSpace(name)
	for len(name) > maxFilenameBytes {
		_, n := utf8.DecodeLastRuneInString(name)
		name = name[:len(name)-n]
	}
	if name == "" || name == "." || name == ".." {
		name = "upload"
	}
	return name
}
