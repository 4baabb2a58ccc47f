package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"time"

	"github.com/nodus-os/nodus/internal/identity"
	"github.com/nodus-os/nodus/internal/knowledge"
	"github.com/nodus-os/nodus/internal/nodus"
)

// This file holds the knowledge bases' routes: every member of a tenant
// reads its knowledge bases and their documents, admins change them. A
// super_admin names the tenant with ?tenant_id=. Documents are shown by
// the name they were uploaded with, never by their storage name.

// knowledgeManager is the caller as the knowledge module sees them, in the
// tenant the request means.
func (s *Server) knowledgeManager(r *http.Request) (knowledge.Manager, error) {
	if s.deps.Knowledge == nil {
		return knowledge.Manager{}, &nodus.Error{Code: nodus.EUNAVAILABLE, Message: "knowledge bases are not available"}
	}
	_, tenantID, err := s.egressTenant(r)
	if err != nil {
		return knowledge.Manager{}, err
	}
	c := callerFrom(r.Context())
	role := c.principal.User.Role // a token's role already capped at its owner's current one
	m := knowledge.Manager{TenantID: tenantID, UserID: c.principal.User.ID,
		Admin: role == identity.RoleOrgAdmin || role == identity.RoleSuperAdmin,
		Entry: egressActor(r)}
	return m, nil
}

// knowledgeAnswer is answer for a knowledge route: fn gets the caller as
// the knowledge module sees them.
func (s *Server) knowledgeAnswer(status int, fn func(r *http.Request, m knowledge.Manager) (any, error)) http.Handler {
	return s.answer(status, func(r *http.Request) (any, error) {
		m, err := s.knowledgeManager(r)
		if err != nil {
			return nil, err
		}
		return fn(r, m)
	})
}

type retrievalView struct {
	Mode           string  `json:"mode"`
	TopK           int     `json:"top_k"`
	ScoreThreshold float64 `json:"score_threshold"`
	HybridWeight   float64 `json:"hybrid_weight"`
}

type chunkingView struct {
	Size        int  `json:"size"`
	Overlap     int  `json:"overlap"`
	HeaderAware bool `json:"header_aware"`
}

type knowledgeBaseView struct {
	ID             string        `json:"id"`
	Name           string        `json:"name"`
	Description    string        `json:"description"`
	EmbeddingModel string        `json:"embedding_model"`
	Retrieval      retrievalView `json:"retrieval"`
	Chunking       chunkingView  `json:"chunking"`
	DocumentCount  int           `json:"document_count"`
	CreatedBy      string        `json:"created_by"`
	CreatedAt      time.Time     `json:"created_at"`
	UpdatedAt      time.Time     `json:"updated_at"`
}

func viewKnowledgeBase(kb *knowledge.KnowledgeBase) knowledgeBaseView {
	r, c := kb.Retrieval, kb.Chunking
	return knowledgeBaseView{ID: kb.ID, Name: kb.Name, Description: kb.Description, EmbeddingModel: kb.EmbeddingModel,
		Retrieval:     retrievalView{Mode: r.Mode, TopK: r.TopK, ScoreThreshold: r.ScoreThreshold, HybridWeight: r.HybridWeight},
		Chunking:      chunkingView{Size: c.Size, Overlap: c.Overlap, HeaderAware: c.HeaderAware},
		DocumentCount: kb.DocumentCount, CreatedBy: kb.CreatedBy, CreatedAt: kb.CreatedAt, UpdatedAt: kb.UpdatedAt}
}

// documentView is a document as the API shows it: no blob id, no storage
// filename.
type documentView struct {
	ID               string                     `json:"id"`
	KnowledgeBaseID  string                     `json:"knowledge_base_id"`
	OriginalFilename string                     `json:"original_filename"`
	FileType         string                     `json:"file_type"`
	FileSize         int64                      `json:"file_size"`
	SourceURL        string                     `json:"source_url,omitempty"`
	Status           string                     `json:"status"`
	Stage            string                     `json:"stage"`
	Progress         int                        `json:"progress"`
	Error            string                     `json:"error"`
	ChunkCount       int                        `json:"chunk_count"`
	Metadata         map[string]json.RawMessage `json:"metadata,omitempty"`
	UploadedBy       string                     `json:"uploaded_by"`
	CreatedAt        time.Time                  `json:"created_at"`
	UpdatedAt        time.Time                  `json:"updated_at"`
	ProcessedAt      *time.Time                 `json:"processed_at"`
}

func viewDocument(d *knowledge.Document) documentView {
	return documentView{ID: d.ID, KnowledgeBaseID: d.KnowledgeBaseID, OriginalFilename: d.OriginalFilename, FileType: d.FileType,
		FileSize: d.FileSize, SourceURL: d.SourceURL, Status: d.Status, Stage: d.Stage, Progress: d.Progress, Error: d.Error,
		ChunkCount: d.ChunkCount, Metadata: d.Metadata, UploadedBy: d.UploadedBy, CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt,
		ProcessedAt: d.ProcessedAt}
}

func (s *Server) handleListKnowledgeBases() http.Handler {
	return s.knowledgeAnswer(http.StatusOK, func(r *http.Request, m knowledge.Manager) (any, error) {
		limit, cursor, err := pageQuery(r)
		if err != nil {
			return nil, err
		}
		kbs, next, err := s.deps.Knowledge.ListKnowledgeBases(r.Context(), m, cursor, limit)
		if err != nil {
			return nil, err
		}
		out := make([]knowledgeBaseView, len(kbs))
		for i := range kbs {
			out[i] = viewKnowledgeBase(&kbs[i])
		}
		return map[string]any{"knowledge_bases": out, "next_cursor": next}, nil
	})
}

func (s *Server) handleCreateKnowledgeBase() http.Handler {
	return s.knowledgeAnswer(http.StatusCreated, func(r *http.Request, m knowledge.Manager) (any, error) {
		var in knowledge.KnowledgeBaseInput
		if err := decodeJSON(r, &in); err != nil {
			return nil, err
		}
		kb, err := s.deps.Knowledge.CreateKnowledgeBase(r.Context(), m, in)
		if err != nil {
			return nil, err
		}
		return map[string]any{"knowledge_base": viewKnowledgeBase(kb)}, nil
	})
}

func (s *Server) handleGetKnowledgeBase() http.Handler {
	return s.knowledgeAnswer(http.StatusOK, func(r *http.Request, m knowledge.Manager) (any, error) {
		kb, err := s.deps.Knowledge.GetKnowledgeBase(r.Context(), m, r.PathValue("id"))
		if err != nil {
			return nil, err
		}
		return map[string]any{"knowledge_base": viewKnowledgeBase(kb)}, nil
	})
}

func (s *Server) handleUpdateKnowledgeBase() http.Handler {
	return s.knowledgeAnswer(http.StatusOK, func(r *http.Request, m knowledge.Manager) (any, error) {
		var in knowledge.KnowledgeBaseInput
		if err := decodeJSON(r, &in); err != nil {
			return nil, err
		}
		kb, err := s.deps.Knowledge.UpdateKnowledgeBase(r.Context(), m, r.PathValue("id"), in)
		if err != nil {
			return nil, err
		}
		return map[string]any{"knowledge_base": viewKnowledgeBase(kb)}, nil
	})
}

func (s *Server) handleDeleteKnowledgeBase() http.Handler {
	return s.knowledgeAnswer(http.StatusNoContent, func(r *http.Request, m knowledge.Manager) (any, error) {
		return nil, s.deps.Knowledge.DeleteKnowledgeBase(r.Context(), m, r.PathValue("id"))
	})
}

func (s *Server) handleListDocuments() http.Handler {
	return s.knowledgeAnswer(http.StatusOK, func(r *http.Request, m knowledge.Manager) (any, error) {
		limit, cursor, err := pageQuery(r)
		if err != nil {
			return nil, err
		}
		ds, next, err := s.deps.Knowledge.ListDocuments(r.Context(), m, r.PathValue("id"), r.URL.Query().Get("status"), cursor, limit)
		if err != nil {
			return nil, err
		}
		out := make([]documentView, len(ds))
		for i := range ds {
			out[i] = viewDocument(&ds[i])
		}
		return map[string]any{"documents": out, "next_cursor": next}, nil
	})
}

func (s *Server) handleGetDocument() http.Handler {
	return s.knowledgeAnswer(http.StatusOK, func(r *http.Request, m knowledge.Manager) (any, error) {
		d, err := s.deps.Knowledge.GetDocument(r.Context(), m, r.PathValue("id"), r.PathValue("doc"))
		if err != nil {
			return nil, err
		}
		return map[string]any{"document": viewDocument(d)}, nil
	})
}

func (s *Server) handleDeleteDocument() http.Handler {
	return s.knowledgeAnswer(http.StatusNoContent, func(r *http.Request, m knowledge.Manager) (any, error) {
		return nil, s.deps.Knowledge.DeleteDocument(r.Context(), m, r.PathValue("id"), r.PathValue("doc"))
	})
}

func (s *Server) handleRetryDocument() http.Handler {
	return s.knowledgeAnswer(http.StatusOK, func(r *http.Request, m knowledge.Manager) (any, error) {
		d, err := s.deps.Knowledge.RetryDocumentFor(r.Context(), m, r.PathValue("id"), r.PathValue("doc"))
		if err != nil {
			return nil, err
		}
		return map[string]any{"document": viewDocument(d)}, nil
	})
}

// searchRequest is the body of a search. It has json tags of its own so
// knowledge.SearchInput stays free of the wire format.
type searchRequest struct {
	Query          string   `json:"query"`
	TopK           int      `json:"top_k"`
	ScoreThreshold *float64 `json:"score_threshold"`
	Mode           string   `json:"mode"`
	HybridWeight   *float64 `json:"hybrid_weight"`
}

// searchMaxBody bounds a search body: a query of knowledge.MaxQueryBytes
// written entirely in \uXXXX escapes, with room for the other fields.
const searchMaxBody = 6*knowledge.MaxQueryBytes + 4<<10

// searchHitView is a chunk a search found, as the API shows it: no tenant
// id and no term vector. Snippet is HTML (escaped text, matches in <mark>).
type searchHitView struct {
	ChunkID         string   `json:"chunk_id"`
	DocumentID      string   `json:"document_id"`
	DocumentName    string   `json:"document_name"`
	KnowledgeBaseID string   `json:"knowledge_base_id"`
	Position        int      `json:"position"`
	StartOffset     int      `json:"start_offset"`
	EndOffset       int      `json:"end_offset"`
	Headings        []string `json:"headings"`
	Score           float64  `json:"score"`
	FullTextScore   *float64 `json:"fulltext_score,omitempty"`
	VectorScore     *float64 `json:"vector_score,omitempty"`
	Snippet         string   `json:"snippet"`
	Text            string   `json:"text"`
}

func viewSearchHit(h *knowledge.SearchHit) searchHitView {
	headings := h.Headings
	if headings == nil {
		headings = []string{}
	}
	return searchHitView{ChunkID: h.ID, DocumentID: h.DocumentID, DocumentName: h.DocumentName, KnowledgeBaseID: h.KnowledgeBaseID,
		Position: h.Index, StartOffset: h.Start, EndOffset: h.End, Headings: headings, Score: h.Score, FullTextScore: h.FullTextScore, VectorScore: h.VectorScore,
		Snippet: h.Snippet, Text: h.Text}
}

// handleSearchKnowledgeBase ranks a knowledge base's chunks for a query. It
// is a POST for the body, not a write: every member of the tenant may
// search.
func (s *Server) handleSearchKnowledgeBase() http.Handler {
	return s.knowledgeAnswer(http.StatusOK, func(r *http.Request, m knowledge.Manager) (any, error) {
		var in searchRequest
		if err := decodeJSON(r, &in); err != nil {
			return nil, err
		}
		res, err := s.deps.Knowledge.Search(r.Context(), m, r.PathValue("id"), knowledge.SearchInput{
			Query: in.Query, TopK: in.TopK, ScoreThreshold: in.ScoreThreshold, Mode: in.Mode, HybridWeight: in.HybridWeight})
		if err != nil {
			return nil, err
		}
		return viewSearchResult(res), nil
	})
}

// viewSearchResult is a search's answer: how it ranked, any warning, and
// the hits, best first.
func viewSearchResult(res *knowledge.SearchResult) map[string]any {
	hits := make([]searchHitView, len(res.Hits))
	for i := range res.Hits {
		hits[i] = viewSearchHit(&res.Hits[i])
	}
	out := map[string]any{"mode": res.Mode, "hits": hits}
	if res.Warning != "" {
		out["warning"] = res.Warning
	}
	return out
}

// uploadLimit is the largest file an upload takes (extraction's default
// input limit); the route's body limit adds uploadEnvelope for the
// multipart headers and the metadata part.
const (
	uploadLimit    = 50 << 20
	uploadEnvelope = 1 << 20
	// metadataLimit bounds the optional metadata part.
	metadataLimit = 64 << 10
)

// handleUploadDocument takes a multipart/form-data body: an optional
// "metadata" part (a JSON object) and a "file" part, streamed to the blob
// store as it arrives. Parts after the file are not read.
func (s *Server) handleUploadDocument() http.Handler {
	return s.knowledgeAnswer(http.StatusCreated, func(r *http.Request, m knowledge.Manager) (any, error) {
		// The knowledge base first: another tenant's is 404 whatever the body.
		if _, err := s.deps.Knowledge.GetKnowledgeBase(r.Context(), m, r.PathValue("id")); err != nil {
			return nil, err
		}
		mr, err := r.MultipartReader()
		if err != nil {
			return nil, nodus.Errorf(nodus.EINVALID, "the body must be multipart/form-data with a file part")
		}
		var meta map[string]json.RawMessage
		for {
			part, err := mr.NextPart()
			if errors.Is(err, io.EOF) {
				return nil, &nodus.Error{Code: nodus.EINVALID, Message: "no file part in the upload",
					Fields: map[string]string{"file": "required"}}
			}
			if err != nil {
				return nil, multipartError(err)
			}
			switch part.FormName() {
			case "metadata":
				if meta, err = readMetadata(part); err != nil {
					return nil, err
				}
			case "file":
				d, err := s.deps.Knowledge.UploadDocument(r.Context(), m, r.PathValue("id"), knowledge.UploadInput{
					OriginalFilename: part.FileName(), DeclaredType: part.Header.Get("Content-Type"),
					Body: partReader{part}, Limit: uploadLimit, Metadata: meta})
				if err != nil {
					return nil, err
				}
				return map[string]any{"document": viewDocument(d)}, nil
			}
			part.Close()
		}
	})
}

func readMetadata(part *multipart.Part) (map[string]json.RawMessage, error) {
	defer part.Close()
	b, err := io.ReadAll(io.LimitReader(partReader{part}, metadataLimit+1))
	if err != nil {
		return nil, err
	}
	if len(b) > metadataLimit {
		return nil, &nodus.Error{Code: nodus.EINVALID, Message: "the metadata part is too large",
			Fields: map[string]string{"metadata": fmt.Sprintf("at most %d bytes", metadataLimit)}}
	}
	var meta map[string]json.RawMessage
	if err := json.Unmarshal(b, &meta); err != nil || meta == nil {
		return nil, &nodus.Error{Code: nodus.EINVALID, Message: "the metadata part must be a JSON object",
			Fields: map[string]string{"metadata": "must be a JSON object"}}
	}
	return meta, nil
}

// partReader turns a multipart read failure into an error with a code: a
// body over the route's limit is ETOOLARGE, a malformed one EINVALID.
type partReader struct{ r io.Reader }

func (p partReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if err != nil && !errors.Is(err, io.EOF) {
		err = multipartError(err)
	}
	return n, err
}

func multipartError(err error) error {
	var maxErr *http.MaxBytesError
	if errors.As(err, &maxErr) {
		return errTooLarge(maxErr.Limit)
	}
	return nodus.WrapError(err, nodus.EINVALID, "malformed multipart body")
}
