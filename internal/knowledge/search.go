package knowledge

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/nodus-os/nodus/internal/fulltext"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/retrieval/fusion"
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
	Mode           string   // ModeFullText, ModeVector or ModeHybrid; "" for the knowledge base's
	HybridWeight   *float64 // the vector side's share in hybrid search; nil for the knowledge base's
}

// SearchResult is what a search found, best first.
type SearchResult struct {
	// Mode is how the chunks were ranked: the one asked for, or
	// ModeFullText when a hybrid search could not embed its query (the
	// embedding model failed), which Warning then says.
	Mode    string
	Warning string
	Hits    []SearchHit
}

// SearchHit is a chunk found, with the passage that shows why.
type SearchHit struct {
	ChunkHit
	// Snippet is HTML: the passage of the chunk's text escaped, with the
	// words matching the query in <mark> elements.
	Snippet string
}

// Scores by mode: full-text hits score BM25 (0 and up, unbounded), vector
// hits cosine similarity (-1 to 1), hybrid hits the fusion of both (0 to
// 1): each side's scores are scaled to 0..1 by the best and worst of its
// candidates (min-max, as Weaviate's relative score fusion), a side that
// did not find a chunk gives it 0, and the sides are mixed by
// HybridWeight, the vector side's share. A score threshold applies to the
// mode's own score.
//
// Each side of a hybrid search ranks hybridDepth(top_k) candidates, so a
// chunk second-best on both sides is not lost to one that tops only one.
func hybridDepth(topK int) int { return max(50, 5*topK) }

// Search ranks a knowledge base's chunks for a query by its retrieval
// mode (or the one asked for) and returns the best, each with a
// highlighted snippet. Every member of the tenant may search. Only the
// knowledge base's chunks are read: the store filters by tenant and
// knowledge base before anything is ranked (SECURITY.md check 4). Vector
// and hybrid search embed the query with the knowledge base's embedding
// model through the gateway, as the tenant.
func (s *Service) Search(ctx context.Context, m Manager, kbID string, in SearchInput) (*SearchResult, error) {
	if !nodus.ValidID(kbID) {
		return nil, kbNotFound(kbID)
	}
	if err := in.validate(); err != nil {
		return nil, err
	}
	ctx = m.ctx(ctx)
	kb, err := s.store.LookupKnowledgeBase(ctx, kbID)
	if err != nil {
		return nil, fmt.Errorf("knowledge: search %s: %w", kbID, err)
	}
	p := searchPlan{mode: kb.Retrieval.Mode, topK: kb.Retrieval.TopK, threshold: kb.Retrieval.ScoreThreshold,
		weight: kb.Retrieval.HybridWeight, query: in.Query, model: kb.EmbeddingModel}
	if in.Mode != "" {
		p.mode = in.Mode
	}
	if in.TopK > 0 {
		p.topK = in.TopK
	}
	if in.ScoreThreshold != nil {
		p.threshold = *in.ScoreThreshold
	}
	if in.HybridWeight != nil {
		p.weight = *in.HybridWeight
	}
	if p.mode != ModeFullText && kb.EmbeddingModel == "" {
		return nil, invalid("mode", p.mode+" search needs an embedding model, and this knowledge base has none")
	}
	out := &SearchResult{}
	if p.mode != ModeFullText {
		p.vec, err = s.embedQuery(ctx, m.TenantID, kb, in.Query)
		if err != nil && p.mode == ModeHybrid && nodus.ErrorCode(err) != nodus.EINVALID {
			// The model is down or slow: full text still answers.
			s.log.WarnContext(ctx, "hybrid search without vectors", "knowledge_base", kbID, "error", err)
			out.Warning = "the embedding model could not be reached, so this search ranked by full text only: " +
				nodus.ErrorMessage(err)
			p.mode, err = ModeFullText, nil
		}
		if err != nil {
			return nil, fmt.Errorf("knowledge: search %s: %w", kbID, err)
		}
	}
	hits, err := s.store.Retrieve(ctx, kbID, func(_ KnowledgeBase, ix Indexes) ([]Ranked, error) {
		return p.rank(ctx, ix)
	})
	if err != nil {
		return nil, fmt.Errorf("knowledge: search %s: %w", kbID, err)
	}
	out.Mode = p.mode
	out.Hits = make([]SearchHit, len(hits))
	for i, h := range hits {
		out.Hits[i] = SearchHit{ChunkHit: h, Snippet: fulltext.Snippet(h.Text, in.Query, SnippetWidth)}
	}
	return out, nil
}

// searchPlan is one search with its settings resolved.
type searchPlan struct {
	mode      string
	topK      int
	threshold float64
	weight    float64
	query     string
	model     string
	vec       []float32 // the query's vector, for vector and hybrid
}

// rank chooses the chunks, best first, with the indexes of one read.
func (p searchPlan) rank(ctx context.Context, ix Indexes) ([]Ranked, error) {
	switch p.mode {
	case ModeFullText:
		hits, err := fulltext.Search(ctx, ix.FullText, fulltext.Query{Text: p.query, Limit: p.topK, MinScore: p.threshold},
			fulltext.DefaultParams)
		if err != nil {
			return nil, err
		}
		out := make([]Ranked, len(hits))
		for i, h := range hits {
			out[i] = Ranked{FullTextKey: h.Key, Score: h.Score, FullTextScore: ptr(h.Score)}
		}
		return out, nil
	case ModeVector:
		hits, err := ix.Vectors.Search(ctx, p.model, p.vec, p.topK)
		if err != nil {
			return nil, err
		}
		out := make([]Ranked, 0, len(hits))
		for _, h := range hits {
			if h.Score >= p.threshold {
				out = append(out, Ranked{ChunkID: h.ChunkID, Score: h.Score, VectorScore: ptr(h.Score)})
			}
		}
		return out, nil
	}
	return p.hybrid(ctx, ix)
}

// hybrid fuses a full-text and a vector ranking (see hybridDepth).
func (p searchPlan) hybrid(ctx context.Context, ix Indexes) ([]Ranked, error) {
	depth := hybridDepth(p.topK)
	ft, err := fulltext.Search(ctx, ix.FullText, fulltext.Query{Text: p.query, Limit: depth}, fulltext.DefaultParams)
	if err != nil {
		return nil, err
	}
	vec, err := ix.Vectors.Search(ctx, p.model, p.vec, depth)
	if err != nil {
		return nil, err
	}
	// The sides meet on chunk ids, which the full-text side names by key.
	ftScores := make([]float64, len(ft))
	for i, h := range ft {
		ftScores[i] = h.Score
	}
	vecScores := make([]float64, len(vec))
	for i, h := range vec {
		vecScores[i] = h.Score
	}
	ftNorm, vecNorm := fusion.MinMax(ftScores), fusion.MinMax(vecScores)
	byID := make(map[string]*Ranked, len(vec))
	out := make([]Ranked, 0, len(ft)+len(vec))
	keys := make([]int64, len(ft))
	for i, h := range ft {
		keys[i] = h.Key
	}
	ids, err := ix.FullText.ChunkIDs(ctx, keys)
	if err != nil {
		return nil, err
	}
	for i, h := range ft {
		out = append(out, Ranked{ChunkID: ids[i], FullTextScore: ptr(h.Score), Score: (1 - p.weight) * ftNorm[i]})
	}
	for i := range out {
		byID[out[i].ChunkID] = &out[i]
	}
	for i, h := range vec {
		r := byID[h.ChunkID]
		if r == nil {
			out = append(out, Ranked{ChunkID: h.ChunkID})
			r = &out[len(out)-1]
			byID[h.ChunkID] = r
		}
		r.VectorScore = ptr(h.Score)
		r.Score += p.weight * vecNorm[i]
	}
	slices.SortStableFunc(out, func(a, b Ranked) int {
		if a.Score != b.Score {
			if a.Score > b.Score {
				return -1
			}
			return 1
		}
		return strings.Compare(a.ChunkID, b.ChunkID)
	})
	out = slices.DeleteFunc(out, func(r Ranked) bool { return r.Score < p.threshold })
	return out[:min(len(out), p.topK)], nil
}

func ptr(f float64) *float64 { return &f }

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
	case in.ScoreThreshold != nil && !(*in.ScoreThreshold >= 0) && in.Mode != ModeVector:
		return invalid("score_threshold", "must be 0 or more")
	case in.ScoreThreshold != nil && (math.IsNaN(*in.ScoreThreshold) || math.IsInf(*in.ScoreThreshold, 0)):
		return invalid("score_threshold", "must be a number")
	case in.Mode != "" && in.Mode != ModeFullText && in.Mode != ModeVector && in.Mode != ModeHybrid:
		return invalid("mode", "must be fulltext, vector or hybrid")
	case in.HybridWeight != nil && !(*in.HybridWeight >= 0 && *in.HybridWeight <= 1):
		return invalid("hybrid_weight", "must be 0 to 1")
	}
	return nil
}
