package fulltext

import (
	"cmp"
	"container/heap"
	"context"
	"math"
	"slices"
)

// Params are BM25's two constants: K1 bounds how much a term's repetition
// counts, B how much a long text is penalised.
type Params struct {
	K1, B float64
}

// DefaultParams are Anserini's BM25 defaults, which scored above
// Elasticsearch's (1.2, 0.75) on SciFact: docs/benchmarks.md.
var DefaultParams = Params{K1: 0.9, B: 0.4}

// MaxQueryTerms bounds the distinct terms of a query; further terms are
// ignored, so a pasted page cannot make one search unbounded.
const MaxQueryTerms = 64

// Stats are the collection figures BM25 needs, read in the same snapshot
// as the candidates.
type Stats struct {
	Texts  int64            // texts indexed (N)
	Length int64            // their total length in terms
	DF     map[string]int64 // texts holding each asked term; absent is 0
	// MaxTF bounds each asked term's frequency in any one text; absent
	// or 0 is no bound. A bound above the truth only costs speed.
	MaxTF map[string]int
}

// Candidate is an indexed text as Search scores it.
type Candidate struct {
	Key    int64  // the index's key for the text
	Length int    // its length in terms
	Terms  string // its Vector, encoded
}

// Index is a collection's full-text index, as one consistent read.
type Index interface {
	// Stats returns the collection figures, with the document frequency
	// of each of terms.
	Stats(ctx context.Context, terms []string) (Stats, error)
	// Candidates calls fn for each text holding term and none of without.
	// A text may come more than once or not match at all; Search scores
	// every text from its own Vector and counts each once.
	Candidates(ctx context.Context, term string, without []string, fn func(Candidate) error) error
}

// Query is one search.
type Query struct {
	Text     string
	Limit    int     // most hits returned
	MinScore float64 // hits scoring below are dropped; 0 keeps all
}

// Hit is a text found, with its BM25 score.
type Hit struct {
	Key   int64
	Score float64
}

// QueryTerm is a distinct analysed term of a query and how often the query
// repeats it; a repeated term weighs more, as in Lucene.
type QueryTerm struct {
	Term  string
	Count int
}

// ParseQuery returns a query's distinct terms in their first order, at most
// MaxQueryTerms of them.
func ParseQuery(text string) []QueryTerm {
	var out []QueryTerm
	at := make(map[string]int)
	Tokens(text, func(t Token) {
		if i, ok := at[t.Term]; ok {
			out[i].Count++
			return
		}
		if len(out) < MaxQueryTerms {
			at[t.Term] = len(out)
			out = append(out, QueryTerm{t.Term, 1})
		}
	})
	return out
}

// Search returns the texts of ix that score highest for q under BM25, best
// first, ties by key. The ranking is exact and the same whatever the
// database behind ix:
//
// Terms are taken rarest first (highest bound first). Each round fetches
// the texts holding the next term but none of the terms already taken,
// and scores them fully from their vectors. Any text not fetched yet holds
// only terms not taken, so it scores at most the sum of their bounds (a
// term's score at its highest frequency, Stats.MaxTF, in the shortest
// text); once that sum cannot beat the current limit-th best (or
// the MinScore), no unfetched text can enter the result and the search
// stops. A query whose rare terms find good matches thus never reads the
// long lists of its common terms.
func Search(ctx context.Context, ix Index, q Query, p Params) ([]Hit, error) {
	if q.Limit <= 0 {
		return nil, nil
	}
	qterms := ParseQuery(q.Text)
	if len(qterms) == 0 {
		return nil, nil
	}
	names := make([]string, len(qterms))
	for i, t := range qterms {
		names[i] = t.Term
	}
	st, err := ix.Stats(ctx, names)
	if err != nil {
		return nil, err
	}
	if st.Texts <= 0 {
		return nil, nil
	}
	avgLen := max(float64(st.Length)/float64(st.Texts), 1)

	// The terms that occur, with their weights and bounds, rarest first.
	type term struct {
		name   string
		weight float64 // idf × count
		bound  float64
	}
	var terms []term
	for _, t := range qterms {
		df := st.DF[t.Term]
		if df <= 0 {
			continue
		}
		w := idf(st.Texts, df) * float64(t.Count)
		// The most a text can score on the term: at its highest frequency
		// and the shortest length (0), or as the frequency grows unbounded.
		bound := w * (p.K1 + 1)
		if tf := float64(st.MaxTF[t.Term]); tf > 0 {
			bound = w * tf * (p.K1 + 1) / (tf + p.K1*(1-p.B))
		}
		terms = append(terms, term{t.Term, w, bound})
	}
	slices.SortStableFunc(terms, func(a, b term) int { return cmp.Compare(b.bound, a.bound) })
	slot := make(map[string]int, len(terms))
	rest := 0.0
	for i, t := range terms {
		slot[t.name] = i
		rest += t.bound
	}

	top := &hitHeap{}
	seen := make(map[int64]bool)
	freqs := make([]int, len(terms))
	score := func(c Candidate) {
		clear(freqs)
		scanEncoded(c.Terms, func(name string, f int) {
			if i, ok := slot[name]; ok {
				freqs[i] = f
			}
		})
		norm := p.K1 * (1 - p.B + p.B*float64(c.Length)/avgLen)
		s := 0.0
		for i, f := range freqs {
			if f > 0 {
				tf := float64(f)
				s += terms[i].weight * tf * (p.K1 + 1) / (tf + norm)
			}
		}
		if s <= 0 || s < q.MinScore {
			return
		}
		h := Hit{c.Key, s}
		if top.Len() < q.Limit {
			heap.Push(top, h)
		} else if better(h, (*top)[0]) {
			(*top)[0] = h
			heap.Fix(top, 0)
		}
	}

	taken := make([]string, 0, len(terms))
	for _, t := range terms {
		if rest < q.MinScore || top.Len() == q.Limit && rest < (*top)[0].Score {
			break
		}
		err := ix.Candidates(ctx, t.name, taken, func(c Candidate) error {
			if seen[c.Key] {
				return nil
			}
			seen[c.Key] = true
			score(c)
			return ctx.Err()
		})
		if err != nil {
			return nil, err
		}
		taken = append(taken, t.name)
		rest -= t.bound
	}

	hits := []Hit(*top)
	slices.SortFunc(hits, func(a, b Hit) int {
		if better(a, b) {
			return -1
		}
		return 1
	})
	return hits, nil
}

// idf is Lucene's BM25 inverse document frequency, never negative.
func idf(n, df int64) float64 {
	return math.Log(1 + (float64(n)-float64(df)+0.5)/(float64(df)+0.5))
}

// better orders hits: higher score first, then lower key.
func better(a, b Hit) bool {
	if a.Score != b.Score {
		return a.Score > b.Score
	}
	return a.Key < b.Key
}

// hitHeap keeps the best hits with the worst on top.
type hitHeap []Hit

func (h hitHeap) Len() int           { return len(h) }
func (h hitHeap) Less(i, j int) bool { return better(h[j], h[i]) }
func (h hitHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *hitHeap) Push(x any)        { *h = append(*h, x.(Hit)) }
func (h *hitHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
