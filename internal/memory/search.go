package memory

import (
	"cmp"
	"container/heap"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/nodus-os/nodus/internal/fulltext"
	"github.com/nodus-os/nodus/internal/retrieval/fusion"
	"github.com/nodus-os/nodus/internal/vector"
)

// SearchInput is one search of a user's memories of an app.
type SearchInput struct {
	TenantID string
	AppName  string
	UserID   string
	Query    string
	Limit    int // DefaultLimit when 0, at most MaxSearchLimit
	// EmbeddingModel, with an Embedder, adds vector similarity against
	// the memories embedded by that model, fused with the full-text
	// ranking; "" searches full text only.
	EmbeddingModel string
}

// Hit is a memory a search found and its score: BM25 for a full-text
// search, the fusion of both rankings (0 to 1) for a hybrid one.
type Hit struct {
	Memory Memory
	Score  float64
}

// Search ranks the newest 5,000 memories of the user of the app for the
// query, best first: by BM25 over their words (internal/fulltext, the same
// analysis as knowledge bases), fused with cosine similarity when the
// input names an embedding model and an embedder is configured. Each side
// is scaled 0..1 by its best and worst hit and weighs half, as knowledge
// bases' hybrid search does. A memory neither side finds is left out. If
// the query cannot be embedded the search falls back to full text.
func (s *Service) Search(ctx context.Context, in SearchInput) ([]Hit, error) {
	ctx, err := checkScope(ctx, in.TenantID, in.AppName, in.UserID)
	if err != nil {
		return nil, err
	}
	switch {
	case strings.TrimSpace(in.Query) == "":
		return nil, invalid("query", "is required")
	case len(in.Query) > MaxQueryBytes:
		return nil, invalid("query", fmt.Sprintf("must be at most %d bytes", MaxQueryBytes))
	case in.Limit < 0:
		return nil, invalid("limit", "must not be negative")
	}
	limit := in.Limit
	if limit == 0 {
		limit = DefaultLimit
	}
	limit = min(limit, MaxSearchLimit)
	var qvec []float32
	if in.EmbeddingModel != "" && s.embedder != nil {
		vecs, err := s.embed(ctx, in.TenantID, in.EmbeddingModel, []string{in.Query})
		if err != nil {
			s.log.WarnContext(ctx, "memory: search without vectors", "error", err)
		} else if len(vecs) == 1 {
			qvec = vecs[0]
		}
	}
	c, err := s.corpus(ctx, corpusKey{in.TenantID, in.AppName, in.UserID})
	if err != nil {
		return nil, fmt.Errorf("memory: search: %w", err)
	}
	hits, err := rank(ctx, c, in.Query, in.EmbeddingModel, qvec, limit)
	// The hits leave the module: their lists must not be the cache's.
	for i := range hits {
		m := &hits[i].Memory
		m.Categories, m.SourceMessageIDs, m.Embedding = slices.Clone(m.Categories), slices.Clone(m.SourceMessageIDs),
			slices.Clone(m.Embedding)
	}
	return hits, err
}

// searchDepth is how many hits each side of a hybrid search ranks.
func searchDepth(limit int) int { return max(50, 5*limit) }

// rank orders c's memories for a query: full text alone when qvec is nil,
// fused with the cosine of the memories embedded by model otherwise.
func rank(ctx context.Context, c *corpus, query, model string, qvec []float32, limit int) ([]Hit, error) {
	mems := c.mems
	if len(mems) == 0 {
		return nil, nil
	}
	depth := limit
	if qvec != nil {
		depth = searchDepth(limit)
	}
	ft, err := fulltext.Search(ctx, c.text, fulltext.Query{Text: query, Limit: depth}, fulltext.DefaultParams)
	if err != nil {
		return nil, err
	}
	if qvec == nil {
		out := make([]Hit, len(ft))
		for i, h := range ft {
			out[i] = Hit{Memory: mems[h.Key], Score: h.Score}
		}
		return out, nil
	}

	vec := topVectorHits(mems, model, qvec, depth)

	ftScores := make([]float64, len(ft))
	for i, h := range ft {
		ftScores[i] = h.Score
	}
	vecScores := make([]float64, len(vec))
	for i, h := range vec {
		vecScores[i] = h.score
	}
	ftNorm, vecNorm := fusion.MinMax(ftScores), fusion.MinMax(vecScores)
	fused := make(map[int]float64, len(ft)+len(vec))
	for i, h := range ft {
		fused[int(h.Key)] += 0.5 * ftNorm[i]
	}
	for i, h := range vec {
		fused[h.at] += 0.5 * vecNorm[i]
	}
	out := make([]Hit, 0, len(fused))
	for at, score := range fused {
		out = append(out, Hit{Memory: mems[at], Score: score})
	}
	slices.SortFunc(out, func(a, b Hit) int {
		if c := cmp.Compare(b.Score, a.Score); c != 0 {
			return c
		}
		return strings.Compare(b.Memory.ID, a.Memory.ID) // newer first
	})
	return out[:min(len(out), limit)], nil
}

// vecHit is a memory (by position) and its cosine with the query.
type vecHit struct {
	at    int
	score float64
}

// before orders hits best first: the higher cosine, then the newer memory
// (the lower position), as a stable sort by cosine would.
func (a vecHit) before(b vecHit) bool { return a.score > b.score || a.score == b.score && a.at < b.at }

// vecHeap keeps the best hits seen so far with the worst on top.
type vecHeap []vecHit

func (h vecHeap) Len() int           { return len(h) }
func (h vecHeap) Less(i, j int) bool { return h[j].before(h[i]) }
func (h vecHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *vecHeap) Push(x any)        { *h = append(*h, x.(vecHit)) }
func (h *vecHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// topVectorHits returns the depth memories embedded by model closest to
// qvec with a positive cosine, best first, without sorting them all.
func topVectorHits(mems []Memory, model string, qvec []float32, depth int) []vecHit {
	h := make(vecHeap, 0, depth)
	for i := range mems {
		m := &mems[i]
		if m.EmbeddingModel != model || len(m.Embedding) != len(qvec) {
			continue
		}
		c := float64(vector.Dot(qvec, m.Embedding))
		if c <= 0 {
			continue
		}
		switch x := (vecHit{i, c}); {
		case len(h) < depth:
			heap.Push(&h, x)
		case x.before(h[0]):
			h[0] = x
			heap.Fix(&h, 0)
		}
	}
	slices.SortFunc(h, func(a, b vecHit) int {
		if a.before(b) {
			return -1
		}
		return 1
	})
	return h
}

// textIndex is a fulltext.Index over a user's memories in memory, keyed
// by their position.
type textIndex struct {
	texts    int64
	length   int64
	postings map[string][]fulltext.Posting
}

// newTextIndex indexes the analysed texts terms.
func newTextIndex(terms []fulltext.Vector) *textIndex {
	ix := &textIndex{postings: make(map[string][]fulltext.Posting)}
	for i, v := range terms {
		if v.Length == 0 {
			continue
		}
		ix.texts++
		ix.length += int64(v.Length)
		for _, tf := range v.Terms {
			ix.postings[tf.Term] = append(ix.postings[tf.Term],
				fulltext.Posting{Key: int64(i), Freq: int32(tf.Freq), Length: int32(v.Length)})
		}
	}
	return ix
}

func (ix *textIndex) Stats(_ context.Context, terms []string) (fulltext.Stats, error) {
	st := fulltext.Stats{Texts: ix.texts, Length: ix.length, DF: make(map[string]int64, len(terms))}
	for _, t := range terms {
		if n := len(ix.postings[t]); n > 0 {
			st.DF[t] = int64(n)
		}
	}
	return st, nil
}

func (ix *textIndex) Postings(_ context.Context, term string) ([]fulltext.Posting, error) {
	return ix.postings[term], nil
}
