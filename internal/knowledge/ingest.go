package knowledge

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/nodus-os/nodus/internal/chunk"
	"github.com/nodus-os/nodus/internal/extract"
	"github.com/nodus-os/nodus/internal/fulltext"
	"github.com/nodus-os/nodus/internal/nodus"
)

// Ingestion runs a document through its stages, recording each on the
// document's row so the API can show where it is:
//
//	pending|failed → processing: extracting → chunking → [embedding] → indexing → completed
//
// Embedding happens only for a knowledge base with an embedding model.
//
// Progress is coarse and only grows within a run (a new run starts at 0):
// ProgressStarted while extracting, ProgressExtracted while chunking,
// ProgressChunked and up to ProgressEmbedded while embedding (batch by
// batch), ProgressDone when completed. Indexing is one transaction that also completes the
// document, so the row shows StageIndexing only when that write failed.
//
// Every run redoes every stage from the blob: nothing between stages is
// kept, so a run that dies anywhere is simply run again. That is safe
// because chunk ids derive from (document, index) and IndexChunks swaps a
// document's whole set in one transaction: a retry, a crash between stages
// or two overlapping runs leave exactly one set (SECURITY.md check 26).
// The one costly stage, embedding, pays only for text whose vector the
// knowledge base does not hold yet: a run after indexing failed, or a
// re-index that keeps passages unchanged, reuses the stored vectors.
const (
	ProgressStarted   = 0
	ProgressExtracted = 10
	ProgressChunked   = 40
	ProgressEmbedded  = 90
	ProgressDone      = 100
)

// IngestOptions tune one Ingest call.
type IngestOptions struct {
	// Force ingests a completed document again, for re-indexing after its
	// knowledge base's chunking or embedding settings change.
	// Without it a completed document is left as it is.
	Force bool
}

// errUpToDate aborts the start transaction of a completed document.
var errUpToDate = errors.New("document already completed")

// errTakenOver is returned when the document stopped being ours between
// stages: another run took it over, or it was reset. The run stops without
// recording a failure over the other's state.
var errTakenOver = nodus.Errorf(nodus.ECONFLICT, "the document's ingestion was taken over by another run")

// failWriteTimeout bounds recording a failure after ctx has ended.
const failWriteTimeout = 10 * time.Second

// Ingest runs one document of tenantID through extraction, chunking and
// indexing, and returns nil once it is completed. A completed document is
// left alone unless opts.Force. A document another run is processing (its
// row updated within Config.StaleAfter) is ECONFLICT; a processing
// document left longer than that is taken to be a crashed run and taken
// over. Any other failure marks the document failed at the stage it
// reached, with a message fit for its uploader, and is returned (the code
// is that of the cause: EINVALID for a malformed file, ETOOLARGE, ETIMEOUT,
// ENOTFOUND for a missing blob, EINTERNAL for the database).
func (s *Service) Ingest(ctx context.Context, tenantID, documentID string, opts IngestOptions) error {
	if tenantID == "" || !nodus.ValidID(documentID) {
		return nodus.Errorf(nodus.ENOTFOUND, "document %s not found", documentID)
	}
	ctx = nodus.WithTenant(ctx, tenantID)
	d, err := s.start(ctx, documentID, opts.Force)
	if errors.Is(err, errUpToDate) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("knowledge: ingest document %s: %w", documentID, err)
	}
	began := s.now()
	n, err := s.run(ctx, d)
	if errors.Is(err, errTakenOver) {
		s.log.InfoContext(ctx, "document ingestion taken over", "tenant", tenantID, "document", documentID)
		return fmt.Errorf("knowledge: ingest document %s: %w", documentID, err)
	}
	if err != nil {
		stage := s.fail(ctx, documentID, err)
		s.log.WarnContext(ctx, "document ingestion failed", "tenant", tenantID, "document", documentID,
			"stage", stage, "error", err)
		return fmt.Errorf("knowledge: ingest document %s: %s: %w", documentID, stage, err)
	}
	s.log.InfoContext(ctx, "document ingested", "tenant", tenantID, "document", documentID, "chunks", n,
		"duration", s.now().Sub(began))
	return nil
}

// start claims the document for this run: pending or failed (or completed,
// with force; or processing, if stale) becomes processing at the first
// stage, in one locked update.
func (s *Service) start(ctx context.Context, id string, force bool) (Document, error) {
	return s.store.UpdateDocumentState(ctx, id, func(d *Document) error {
		now := s.now()
		switch d.Status {
		case StatusCompleted:
			if !force {
				return errUpToDate
			}
			// Re-indexing goes back to pending, and is picked up at once.
			if err := CheckTransition(d.Status, StatusPending); err != nil {
				return err
			}
			d.Status = StatusPending
		case StatusProcessing:
			if now.Sub(d.UpdatedAt) < s.staleAfter {
				return nodus.Errorf(nodus.ECONFLICT, "the document is already being processed")
			}
		}
		if err := CheckTransition(d.Status, StatusProcessing); err != nil {
			return err
		}
		d.Status, d.Stage, d.Progress, d.Error, d.UpdatedAt = StatusProcessing, StageExtracting, ProgressStarted, "", now
		return nil
	})
}

// run does the stages of a started document and returns its chunk count.
// Its errors are *nodus.Error with a message fit for the uploader (or
// errTakenOver).
func (s *Service) run(ctx context.Context, d Document) (int, error) {
	text, typ, err := s.extract(ctx, d)
	if err != nil {
		return 0, err
	}
	// The type by content wins over the one recorded at upload.
	if err := s.advance(ctx, d.ID, StageChunking, ProgressExtracted, func(d *Document) {
		if d.FileType != string(typ) {
			s.log.InfoContext(ctx, "document type corrected by content", "document", d.ID,
				"recorded", d.FileType, "detected", typ)
			d.FileType = string(typ)
		}
	}); err != nil {
		return 0, err
	}

	kb, err := s.store.LookupKnowledgeBase(ctx, d.KnowledgeBaseID)
	if err != nil {
		return 0, internalError(err, StageChunking)
	}
	chunks := s.split(d.ID, text, kb.Chunking)

	// With an embedding model, the chunks get their vectors through the
	// gateway before they are indexed with them.
	if kb.EmbeddingModel != "" && len(chunks) > 0 {
		if err := s.embedChunks(ctx, d, kb, chunks); err != nil {
			return 0, err
		}
	}

	// Indexing stores the chunks, their full-text index and the completed
	// state in one transaction: a search never sees half a document, and
	// a crash leaves the document processing with its old chunks.
	done, err := s.store.IndexChunks(ctx, d.ID, chunks, func(d *Document) error {
		if d.Status != StatusProcessing {
			return errTakenOver
		}
		now := s.now()
		d.Status, d.Stage, d.Progress, d.Error, d.UpdatedAt, d.ProcessedAt = StatusCompleted, "", ProgressDone, "", now, &now
		return nil
	})
	if err != nil && !errors.Is(err, errTakenOver) {
		err = stageError{StageIndexing, internalError(err, StageIndexing)}
	}
	if err == nil && s.notify != nil {
		s.notify(ctx, done)
	}
	return len(chunks), err
}

// extract reads the document's blob, detects its type by content and
// returns its text.
func (s *Service) extract(ctx context.Context, d Document) (string, extract.Type, error) {
	r, info, err := s.blobs.Open(ctx, d.BlobID)
	switch code := nodus.ErrorCode(err); {
	case err == nil:
	case code == nodus.ENOTFOUND || code == nodus.EINVALID:
		return "", "", nodus.WrapError(err, nodus.ENOTFOUND, "the uploaded file is missing from storage; upload it again")
	default:
		return "", "", nodus.WrapError(err, nodus.EINTERNAL, "the uploaded file could not be read from storage; retry the document")
	}
	defer r.Close()
	if d.ContentHash != "" && hex.EncodeToString(info.SHA256[:]) != d.ContentHash {
		return "", "", nodus.Errorf(nodus.EINTERNAL, "the stored file does not match the upload; upload it again")
	}
	ra, err := s.readerAt(r, info.Size)
	if err != nil {
		return "", "", err
	}
	head := make([]byte, min(info.Size, extract.HeadSize))
	if n, err := ra.ReadAt(head, 0); n < len(head) {
		return "", "", nodus.WrapError(err, nodus.EINTERNAL, "the uploaded file could not be read from storage; retry the document")
	}
	typ, err := extract.Detect(head, d.OriginalFilename, "")
	if err != nil {
		return "", "", err
	}
	doc, err := extract.Extract(ctx, ra, info.Size, typ, s.limits)
	if err != nil {
		return "", "", err
	}
	return doc.Text, typ, nil
}

// readerAt returns r as an io.ReaderAt. blob.Local's readers are one; any
// other store's are read into memory, refusing more than the input limit.
func (s *Service) readerAt(r io.Reader, size int64) (io.ReaderAt, error) {
	if ra, ok := r.(io.ReaderAt); ok {
		return ra, nil
	}
	limit := s.limits.MaxInputBytes
	if limit <= 0 {
		limit = extract.DefaultLimits().MaxInputBytes
	}
	if size > limit {
		return nil, nodus.Errorf(nodus.ETOOLARGE, "the file is larger than the %d-byte limit", limit)
	}
	data, err := io.ReadAll(io.LimitReader(r, size))
	if err != nil || int64(len(data)) != size {
		return nil, nodus.WrapError(err, nodus.EINTERNAL, "the uploaded file could not be read from storage; retry the document")
	}
	return bytes.NewReader(data), nil
}

// split chunks text as the knowledge base says, with ids derived from the
// document and each chunk's index.
func (s *Service) split(documentID, text string, c ChunkingSettings) []Chunk {
	parts := chunk.Split(text, chunk.Options{Size: c.Size, Overlap: c.Overlap, Count: s.count, HeaderAware: c.HeaderAware})
	out := make([]Chunk, len(parts))
	for i, p := range parts {
		out[i] = Chunk{ID: ChunkID(documentID, p.Index), DocumentID: documentID, Index: p.Index, Text: p.Text,
			Prefix: p.Prefix, Headings: p.Headings, Start: p.Start, End: p.End, Tokens: p.Tokens,
			Terms: fulltext.Analyze(p.Prefix + p.Text)}
	}
	return out
}

// advance records that the run reached stage, at progress, applying also
// (if any) to the row. errTakenOver if the document is no longer
// processing.
func (s *Service) advance(ctx context.Context, id, stage string, progress int, also func(*Document)) error {
	_, err := s.store.UpdateDocumentState(ctx, id, func(d *Document) error {
		if d.Status != StatusProcessing {
			return errTakenOver
		}
		d.Stage, d.Progress, d.UpdatedAt = stage, max(d.Progress, progress), s.now()
		if also != nil {
			also(d)
		}
		return nil
	})
	if err != nil && !errors.Is(err, errTakenOver) {
		return internalError(err, stage)
	}
	return err
}

// fail marks the document failed at the stage it reached, with cause's
// message, and returns that stage. It writes even after ctx has ended (a
// timeout), and leaves alone a document no longer processing.
func (s *Service) fail(ctx context.Context, id string, cause error) string {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), failWriteTimeout)
	defer cancel()
	var stage string
	var at stageError
	failed, err := s.store.UpdateDocumentState(ctx, id, func(d *Document) error {
		if errors.As(cause, &at) {
			d.Stage = at.stage
		}
		stage = d.Stage
		if d.Status != StatusProcessing {
			return errTakenOver
		}
		d.Status, d.Error, d.UpdatedAt = StatusFailed, failureMessage(cause), s.now()
		return nil
	})
	if err != nil && !errors.Is(err, errTakenOver) {
		s.log.ErrorContext(ctx, "recording a document's failure", "document", id, "error", err)
	}
	if err == nil && s.notify != nil {
		s.notify(ctx, failed)
	}
	return stage
}

// stageError is a failure in a stage the document's row does not show
// yet, because that stage's first write is the one that failed.
type stageError struct {
	stage string
	error
}

func (e stageError) Unwrap() error { return e.error }

// failureMessage is what the document's Error says: the cause's message,
// which every error run returns makes fit for the uploader.
func failureMessage(err error) string {
	if nodus.ErrorMessage(err) == "internal error" {
		return "an internal error stopped the ingestion; retry the document"
	}
	return nodus.ErrorMessage(err)
}

// internalError hides a store error behind a message naming the stage; its
// code is kept for the caller.
func internalError(err error, stage string) error {
	var ne *nodus.Error
	if errors.As(err, &ne) && ne.Code == nodus.ENOTFOUND {
		return nodus.WrapError(err, nodus.ENOTFOUND, "the document or its knowledge base was deleted during "+stage)
	}
	return nodus.WrapError(err, nodus.ErrorCode(err), "an internal error interrupted "+stage+"; retry the document")
}

// RetryDocument moves a failed document of tenantID back to pending, for
// the ingestion job to pick up again; ECONFLICT unless it is failed. The
// stage it failed at is cleared with its error: a new run starts over.
func (s *Service) RetryDocument(ctx context.Context, tenantID, documentID string) (Document, error) {
	if tenantID == "" || !nodus.ValidID(documentID) {
		return Document{}, nodus.Errorf(nodus.ENOTFOUND, "document %s not found", documentID)
	}
	ctx = nodus.WithTenant(ctx, tenantID)
	d, err := s.store.UpdateDocumentState(ctx, documentID, func(d *Document) error {
		if d.Status != StatusFailed {
			return nodus.Errorf(nodus.ECONFLICT, "only a failed document can be retried; this one is %s", d.Status)
		}
		if err := CheckTransition(d.Status, StatusPending); err != nil {
			return err
		}
		d.Status, d.Stage, d.Progress, d.Error, d.UpdatedAt = StatusPending, "", 0, "", s.now()
		return nil
	})
	if err != nil {
		return Document{}, fmt.Errorf("knowledge: retry document %s: %w", documentID, err)
	}
	return d, nil
}
