package knowledge

import (
	"context"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/nodus-os/nodus/internal/fulltext"
	"github.com/nodus-os/nodus/internal/nodus"
)

// Search bounds.
const (
	MaxQueryBytes = 4096 // a query longer than this is refused
	SnippetWidth  = 240  // bytes of a hit's text its snippet shows
)

// SearchInput is one search of a knowledge base. Zero values take the
// knowledge base's retrieval settings.
type SearchInput struct {
	Query          string
	TopK           int      // 1 to MaxTopK; 0 for the knowledge base's
	ScoreThreshold *float64 // nil for the knowledge base's
}

// SearchResult is what a search found, best first.
type SearchResult struct {
	// Mode is how the chunks were ranked. It is ModeFullText: vector and
	// hybrid ranking need embeddings, which are not built yet, so every
	// knowledge base is searched by full text whatever its settings say.
	Mode string
	Hits []SearchHit
}

// SearchHit is a chunk found, with the passage that shows why.
type SearchHit struct {
	ChunkHit
	// Snippet is HTML: the passage of the chunk's text escaped, with the
	// words matching the query in <mark> elements.
	Snippet string
}

// Search ranks a knowledge base's chunks for a query by BM25 over their
// text (and heading path) and returns the best, each with a highlighted
// snippet. Every member of the tenant may search. Only the knowledge
// base's chunks are read: the store filters by tenant and knowledge base
// before anything is ranked (SECURITY.md check 4).
func (s *Service) Search(ctx context.Context, m Manager, kbID string, in SearchInput) (*SearchResult, error) {
	if !nodus.ValidID(kbID) {
		return nil, kbNotFound(kbID)
	}
	if err := in.validate(); err != nil {
		return nil, err
	}
	hits, err := s.store.SearchChunks(m.ctx(ctx), kbID, func(kb KnowledgeBase, ix fulltext.Index) ([]fulltext.Hit, error) {
		q := fulltext.Query{Text: in.Query, Limit: kb.Retrieval.TopK, MinScore: kb.Retrieval.ScoreThreshold}
		if in.TopK > 0 {
			q.Limit = in.TopK
		}
		if in.ScoreThreshold != nil {
			q.MinScore = *in.ScoreThreshold
		}
		return fulltext.Search(ctx, ix, q, fulltext.DefaultParams)
	})
	if err != nil {
		return nil, fmt.Errorf("knowledge: search %s: %w", kbID, err)
	}
	out := &SearchResult{Mode: ModeFullText, Hits: make([]SearchHit, len(hits))}
	for i, h := range hits {
		out.Hits[i] = SearchHit{ChunkHit: h, Snippet: fulltext.Snippet(h.Text, in.Query, SnippetWidth)}
	}
	return out, nil
}

func (in SearchInput) validate() error {
	switch {
	case strings.TrimSpace(in.Query) == "":
		return invalid("query", "is required")
	case len(in.Query) > MaxQueryBytes:
		return invalid("query", fmt.Sprintf("is longer than %d bytes", MaxQueryBytes))
	case !utf8.ValidString(in.Query):
		return invalid("query", "is not valid UTF-8")
	case in.TopK < 0 || in.TopK > MaxTopK:
		return invalid("top_k", fmt.Sprintf("must be between 1 and %d", MaxTopK))
	case in.ScoreThreshold != nil && !(*in.ScoreThreshold >= 0):
		return invalid("score_threshold", "must be 0 or more")
	}
	return nil
}
