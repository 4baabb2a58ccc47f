package knowledge

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/nodus-os/nodus/internal/fulltext"
	"github.com/nodus-os/nodus/internal/nodus"
)

// This file holds the knowledge module's stored records and the Store
// interface the main database implements (internal/store/knowledge.go).
// Every record belongs to one tenant; the store filters by the tenant scope
// in the context, as every other Nodus store does.

// Retrieval modes.
const (
	ModeFullText = "fulltext" // BM25 over the chunks' text
	ModeVector   = "vector"   // similarity of stored embeddings
	ModeHybrid   = "hybrid"   // both, fused with HybridWeight on the vector side
)

// Bounds of a knowledge base's settings.
const (
	MaxNameLength        = 200
	MaxDescriptionLength = 2000
	MaxTopK              = 100
	MinChunkSize         = 50
	MaxChunkSize         = 8192
)

// RetrievalSettings say how search ranks a knowledge base's chunks.
type RetrievalSettings struct {
	Mode           string  // ModeFullText, ModeVector or ModeHybrid
	TopK           int     // chunks returned, 1 to MaxTopK
	ScoreThreshold float64 // drop matches scoring below; 0 keeps all
	HybridWeight   float64 // 0..1: the vector side's share in hybrid fusion
}

// ChunkingSettings say how documents are split, in tokens.
type ChunkingSettings struct {
	Size        int  // most tokens per chunk, MinChunkSize to MaxChunkSize
	Overlap     int  // tokens a chunk repeats of the previous one, below Size/2
	HeaderAware bool // split on Markdown headings and prefix each chunk with its heading path
}

// DefaultRetrieval is what a knowledge base gets when it names no retrieval
// settings: full-text, the top 4 chunks (3 to 5 is typical), no threshold,
// and hybrid search weighted 0.3 on the vector side. Measured on SciFact
// with the one embedding model that runs offline here (USE-lite, weak on
// that corpus; docs/benchmarks.md), weights 0.1 to 0.3 matched or beat
// full text alone and 0.5 fell well below it; a stronger model gains from
// a larger share, which a knowledge base can set.
func DefaultRetrieval() RetrievalSettings {
	return RetrievalSettings{Mode: ModeFullText, TopK: 4, HybridWeight: 0.3}
}

// DefaultChunking is Dify's automatic rule (500 tokens, 50 of overlap),
// which internal/chunk also defaults to, split on headings.
func DefaultChunking() ChunkingSettings {
	return ChunkingSettings{Size: 500, Overlap: 50, HeaderAware: true}
}

// KnowledgeBase is a tenant's collection of documents searched together.
type KnowledgeBase struct {
	ID             string
	TenantID       string
	Name           string // unique within the tenant
	Description    string
	CreatedBy      string
	EmbeddingModel string // a gateway model name; "" for full-text only
	Retrieval      RetrievalSettings
	Chunking       ChunkingSettings
	DocumentCount  int // computed by the store on reads; ignored on writes
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// SetDefaults fills the settings left at their zero value: a zero
// Retrieval or Chunking gets the defaults whole; otherwise only an empty
// mode, a zero top-k and a zero size are filled (a zero threshold, weight
// or overlap is a valid choice).
func (kb *KnowledgeBase) SetDefaults() {
	dr, dc := DefaultRetrieval(), DefaultChunking()
	if kb.Retrieval == (RetrievalSettings{}) {
		kb.Retrieval = dr
	}
	if kb.Retrieval.Mode == "" {
		kb.Retrieval.Mode = dr.Mode
	}
	if kb.Retrieval.TopK == 0 {
		kb.Retrieval.TopK = dr.TopK
	}
	if kb.Chunking == (ChunkingSettings{}) {
		kb.Chunking = dc
	}
	if kb.Chunking.Size == 0 {
		kb.Chunking.Size = dc.Size
	}
}

// Validate checks a knowledge base's fields, all at once: EINVALID with a
// message per field.
func (kb KnowledgeBase) Validate() error {
	f := map[string]string{}
	if n := utf8.RuneCountInString(kb.Name); strings.TrimSpace(kb.Name) == "" || n > MaxNameLength ||
		hasControl(kb.Name) || !utf8.ValidString(kb.Name) {
		f["name"] = fmt.Sprintf("required, at most %d characters, no control characters", MaxNameLength)
	}
	if utf8.RuneCountInString(kb.Description) > MaxDescriptionLength || !utf8.ValidString(kb.Description) {
		f["description"] = fmt.Sprintf("at most %d characters", MaxDescriptionLength)
	}
	if len(kb.EmbeddingModel) > 200 || hasControl(kb.EmbeddingModel) || kb.EmbeddingModel != strings.TrimSpace(kb.EmbeddingModel) {
		f["embedding_model"] = "a model name of at most 200 characters"
	}
	r := kb.Retrieval
	switch r.Mode {
	case ModeFullText:
	case ModeVector, ModeHybrid:
		if kb.EmbeddingModel == "" {
			f["retrieval.mode"] = r.Mode + " search needs an embedding model"
		}
	default:
		f["retrieval.mode"] = "must be fulltext, vector or hybrid"
	}
	if r.TopK < 1 || r.TopK > MaxTopK {
		f["retrieval.top_k"] = fmt.Sprintf("must be 1 to %d", MaxTopK)
	}
	if math.IsNaN(r.ScoreThreshold) || math.IsInf(r.ScoreThreshold, 0) || r.ScoreThreshold < 0 {
		f["retrieval.score_threshold"] = "must be 0 or more"
	}
	if math.IsNaN(r.HybridWeight) || r.HybridWeight < 0 || r.HybridWeight > 1 {
		f["retrieval.hybrid_weight"] = "must be 0 to 1"
	}
	c := kb.Chunking
	if c.Size < MinChunkSize || c.Size > MaxChunkSize {
		f["chunking.size"] = fmt.Sprintf("must be %d to %d tokens", MinChunkSize, MaxChunkSize)
	}
	if c.Overlap < 0 || c.Overlap*2 >= c.Size {
		f["chunking.overlap"] = "must be 0 or more and less than half the size"
	}
	return fieldErrors(f)
}

// Document statuses: pending → processing → completed or failed. A failed
// document may be retried, and a completed one re-indexed, which takes it
// back to pending.
const (
	StatusPending    = "pending"
	StatusProcessing = "processing"
	StatusCompleted  = "completed"
	StatusFailed     = "failed"
)

// Ingestion stages of a processing document, in order; "" when none runs.
const (
	StageExtracting = "extracting"
	StageChunking   = "chunking"
	StageEmbedding  = "embedding"
	StageIndexing   = "indexing"
)

// nextStatuses lists the statuses a document may move to from status;
// staying put is always allowed (progress and stage updates). ok is false
// for an unknown status.
func nextStatuses(status string) (next []string, ok bool) {
	switch status {
	case StatusPending:
		return []string{StatusProcessing, StatusFailed}, true
	case StatusProcessing:
		return []string{StatusCompleted, StatusFailed, StatusPending}, true
	case StatusCompleted:
		return []string{StatusPending}, true
	case StatusFailed:
		return []string{StatusPending, StatusProcessing}, true
	}
	return nil, false
}

// ValidStatus reports whether s is a document status.
func ValidStatus(s string) bool {
	_, ok := nextStatuses(s)
	return ok
}

// CheckTransition returns EINVALID unless a document may move from one
// status to the other. UpdateDocumentState callbacks call it.
func CheckTransition(from, to string) error {
	next, ok := nextStatuses(from)
	if ok && (from == to || slices.Contains(next, to)) {
		return nil
	}
	return nodus.Errorf(nodus.EINVALID, "a %s document cannot become %s", from, to)
}

// Document is one file of a knowledge base. Its bytes live in the blob store
// under BlobID; the name it was uploaded with is only ever displayed.
type Document struct {
	ID               string
	TenantID         string
	KnowledgeBaseID  string
	Filename         string // the stored name: the blob id
	OriginalFilename string // as uploaded, for display only (never a path)
	FileType         string // detected from the content
	FileSize         int64  // bytes
	ContentHash      string // hex SHA-256 of the bytes; "" until known (a URL not fetched yet)
	BlobID           string
	SourceURL        string // for imports from a URL; "" for uploads
	Status           string // one of the Status constants
	Stage            string // one of the Stage constants, or ""
	Progress         int    // 0 to 100
	Error            string // why the document failed; "" otherwise
	ChunkCount       int    // set by ReplaceChunks; ignored on other writes
	Metadata         map[string]json.RawMessage
	UploadedBy       string
	CreatedAt        time.Time
	UpdatedAt        time.Time
	ProcessedAt      *time.Time // when it last completed
}

// Validate checks the fields the store keeps constraints on.
func (d Document) Validate() error {
	f := map[string]string{}
	if _, ok := nextStatuses(d.Status); !ok {
		f["status"] = "must be pending, processing, completed or failed"
	}
	switch d.Stage {
	case "", StageExtracting, StageChunking, StageEmbedding, StageIndexing:
	default:
		f["stage"] = "must be empty, extracting, chunking, embedding or indexing"
	}
	if d.Progress < 0 || d.Progress > 100 {
		f["progress"] = "must be 0 to 100"
	}
	if d.FileSize < 0 {
		f["file_size"] = "must be 0 or more"
	}
	if d.ContentHash != "" && !isSHA256Hex(d.ContentHash) {
		f["content_hash"] = "must be a lower-case hex SHA-256"
	}
	if utf8.RuneCountInString(d.OriginalFilename) > 1024 || hasControl(d.OriginalFilename) {
		f["original_filename"] = "at most 1024 characters, no control characters"
	}
	return fieldErrors(f)
}

// DuplicateError is the cause of the ECONFLICT CreateDocument returns for
// content the knowledge base already holds: DocumentID is the first copy.
type DuplicateError struct {
	DocumentID string
}

func (e *DuplicateError) Error() string {
	return "same content as document " + e.DocumentID
}

// DuplicateOf returns the id of the document err says already holds the
// same content, if it says so.
func DuplicateOf(err error) (string, bool) {
	var d *DuplicateError
	if errors.As(err, &d) {
		return d.DocumentID, true
	}
	return "", false
}

// DocumentRef names a document across tenants.
type DocumentRef struct {
	TenantID string
	ID       string
}

// Chunk is a piece of a document's text, the unit search ranks.
type Chunk struct {
	ID              string // generated by ReplaceChunks when ""
	TenantID        string // set by ReplaceChunks from the document
	KnowledgeBaseID string // likewise
	DocumentID      string // likewise
	Index           int    // 0, 1, 2, … in document order
	Text            string
	Prefix          string   // the heading path the text lacks ("Install > Linux\n\n")
	Headings        []string // outermost first; nil when none
	Start, End      int      // byte offsets in the extracted text
	Tokens          int
	// Terms is the full-text analysis of Prefix and Text, which search
	// ranks; written with the chunk, not read back by ListChunks.
	Terms fulltext.Vector
	// Embedding is the vector of Prefix and Text by the knowledge base's
	// embedding model; nil when it has none. Written with the chunk, not
	// read back by ListChunks.
	Embedding *Embedding
}

// Embedding is a chunk's vector and where it came from.
type Embedding struct {
	Model    string    // the gateway model that made it
	TextHash string    // EmbeddingTextHash of the text embedded
	Vector   []float32 // unit length
}

// EmbeddingTextHash identifies an embedded text, so a vector already made
// for the same text by the same model is used again rather than paid for
// again (re-indexing, a retry, the same passage in two documents).
func EmbeddingTextHash(text string) string {
	sum := sha256.Sum256([]byte(text))
	return hex.EncodeToString(sum[:])
}

// ChunkHit is a chunk that a search found.
type ChunkHit struct {
	Chunk
	DocumentName string // the document's original file name
	Score        float64
	// The scores of each side, in hybrid search (nil for a side that did
	// not find the chunk) and in the mode's own (the other nil).
	FullTextScore *float64 // BM25
	VectorScore   *float64 // cosine similarity
}

// Ranked is a chunk a search chose, by its chunk id or, from full-text
// search, by its full-text key (fulltext.Hit.Key).
type Ranked struct {
	ChunkID                    string
	FullTextKey                int64 // when ChunkID is ""
	Score                      float64
	FullTextScore, VectorScore *float64
}

// Indexes are a knowledge base's indexes within one consistent read.
type Indexes struct {
	FullText FullTextIndex
	Vectors  VectorIndex
}

// FullTextIndex is a knowledge base's full-text index.
type FullTextIndex interface {
	fulltext.Index
	// ChunkIDs returns the ids of the chunks of full-text keys, in order.
	ChunkIDs(ctx context.Context, keys []int64) ([]string, error)
}

// VectorIndex finds a knowledge base's chunks by the similarity of their
// vectors.
type VectorIndex interface {
	// Search returns the k chunks whose vectors by model are the most
	// similar to q (unit length, and of their dimension), best first,
	// with their cosine similarity.
	Search(ctx context.Context, model string, q []float32, k int) ([]VectorHit, error)
}

// VectorHit is a chunk found by its vector.
type VectorHit struct {
	ChunkID string
	Score   float64
}

// ChunkID is the id of the chunk at index of a document: a name-based
// (version 5) UUID of the two, so a retried or repeated ingestion writes the
// same ids and a stray second set could never pass for a different one.
func ChunkID(documentID string, index int) string {
	return uuid.NewSHA1(uuid.NameSpaceURL, []byte("nodus:kb-chunk:"+documentID+":"+strconv.Itoa(index))).String()
}

// Store is the knowledge database. Methods run in the tenant scope of ctx;
// a record of another tenant is ENOTFOUND. Timestamps are the caller's.
type Store interface {
	// CreateKnowledgeBase stores a knowledge base of the scoped tenant;
	// ECONFLICT when the tenant has one of the same name.
	CreateKnowledgeBase(ctx context.Context, kb KnowledgeBase) error
	FindKnowledgeBase(ctx context.Context, id string) (KnowledgeBase, error)
	// LookupKnowledgeBase is FindKnowledgeBase without DocumentCount (0),
	// which costs a count of the documents.
	LookupKnowledgeBase(ctx context.Context, id string) (KnowledgeBase, error)
	// ListKnowledgeBases returns a page by id (creation order) and the
	// cursor of the next page, "" after the last.
	ListKnowledgeBases(ctx context.Context, cursor string, limit int) ([]KnowledgeBase, string, error)
	// UpdateKnowledgeBase reads the knowledge base, applies change (an error
	// aborts) and writes it back in one locked transaction, returning it as
	// written. Its id, tenant, creator and creation time do not change.
	UpdateKnowledgeBase(ctx context.Context, id string, change func(*KnowledgeBase) error) (KnowledgeBase, error)
	// DeleteKnowledgeBase removes it with its documents and chunks, and
	// returns the blob ids of the documents removed.
	DeleteKnowledgeBase(ctx context.Context, id string) ([]string, error)

	// CreateDocument stores a document in a knowledge base of the scoped
	// tenant (ENOTFOUND if there is none). Content the knowledge base
	// already holds is ECONFLICT caused by a *DuplicateError.
	CreateDocument(ctx context.Context, d Document) error
	FindDocument(ctx context.Context, id string) (Document, error)
	// ListDocuments returns a page of a knowledge base's documents by id,
	// those with the given status only unless status is "".
	ListDocuments(ctx context.Context, kbID, status, cursor string, limit int) ([]Document, string, error)
	// UpdateDocumentState reads the document under a lock, applies change
	// (which enforces the transitions; an error aborts and changes nothing)
	// and writes back its state and file fields, returning it as written.
	UpdateDocumentState(ctx context.Context, id string, change func(*Document) error) (Document, error)
	// DeleteDocument removes a document and its chunks and returns its blob id.
	DeleteDocument(ctx context.Context, id string) (string, error)
	// MarkQueued sets the update time of the pending documents of refs
	// to at, across tenants (it needs the all-tenants scope): their
	// ingestion was just queued.
	MarkQueued(ctx context.Context, refs []DocumentRef, at time.Time) error
	// CountUnfinishedDocuments counts a knowledge base's documents that
	// are pending or processing: not searchable yet.
	CountUnfinishedDocuments(ctx context.Context, kbID string) (int, error)
	// ReindexDocuments moves a knowledge base's completed documents back
	// to pending, updated at at, and returns how many it moved.
	ReindexDocuments(ctx context.Context, kbID string, at time.Time) (int, error)
	// ListStalledDocuments returns, across tenants (it needs the
	// all-tenants scope), up to limit documents pending since before
	// pendingBefore or processing without an update since processingBefore,
	// oldest first: work whose job was lost or whose run crashed.
	ListStalledDocuments(ctx context.Context, pendingBefore, processingBefore time.Time, limit int) ([]DocumentRef, error)

	// ReplaceChunks replaces all of a document's chunks with chunks, and
	// sets its ChunkCount, in one transaction.
	ReplaceChunks(ctx context.Context, documentID string, chunks []Chunk) error
	// IndexChunks is ReplaceChunks that also applies change (unless nil)
	// to the document in the same transaction, as UpdateDocumentState
	// does, and returns the document as written.
	IndexChunks(ctx context.Context, documentID string, chunks []Chunk, change func(*Document) error) (Document, error)
	// ListChunks returns a document's chunks by index.
	ListChunks(ctx context.Context, documentID string) ([]Chunk, error)
	// CountChunks returns how many chunks a knowledge base holds.
	CountChunks(ctx context.Context, kbID string) (int, error)
	// SearchChunks runs search over a knowledge base's full-text index in
	// one consistent read, and returns the chunks of its hits in its
	// order. ENOTFOUND for a knowledge base not in scope.
	// search is given the knowledge base (its DocumentCount not counted).
	SearchChunks(ctx context.Context, kbID string, search func(KnowledgeBase, fulltext.Index) ([]fulltext.Hit, error)) ([]ChunkHit, error)
	// Retrieve is SearchChunks over every index of the knowledge base:
	// search ranks with them and returns its choice, whose chunks come
	// back in its order. A vector hit whose chunk this read does not see
	// (written or removed since) is left out.
	Retrieve(ctx context.Context, kbID string, search func(KnowledgeBase, Indexes) ([]Ranked, error)) ([]ChunkHit, error)
	// ReusableVectors returns the vectors the knowledge base holds by
	// model for the texts of hashes (EmbeddingTextHash), by hash.
	ReusableVectors(ctx context.Context, kbID, model string, hashes []string) (map[string][]float32, error)

	// DeleteKnowledgeTenant removes every knowledge record of the scoped
	// tenant, for the tenant's deletion (tenants live in another database,
	// so no foreign key does it), and returns the blob ids of the documents
	// removed. Running it again is a no-op.
	DeleteKnowledgeTenant(ctx context.Context) ([]string, error)
}

func hasControl(s string) bool {
	return strings.IndexFunc(s, unicode.IsControl) >= 0
}

func isSHA256Hex(s string) bool {
	if len(s) != 64 || strings.ToLower(s) != s {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

func fieldErrors(f map[string]string) error {
	if len(f) == 0 {
		return nil
	}
	names := slices.Sorted(maps.Keys(f))
	return &nodus.Error{Code: nodus.EINVALID, Message: "invalid " + strings.Join(names, ", "), Fields: f}
}
