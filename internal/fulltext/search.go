package fulltext

import (
	"cmp"
	"container/heap"
	"context"
	"math"
	"slices"
	"sort"
)

// Params are BM25's two constants: K1 bounds how much a term's repetition
// counts, B how much a long text is penalised.
type Params struct {
	K1, B float64
}

// DefaultParams are Anserini's BM25 defaults. Elasticsearch's (1.2, 0.75)
// rank SciFact within 0.002 nDCG@10 of them (docs/benchmarks.md).
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
}

// Posting is one text holding a term: its key, how often it holds the
// term and its length in terms.
type Posting struct {
	Key    int64
	Freq   int32
	Length int32
}

// Index is a collection's full-text index, as one consistent read.
type Index interface {
	// Stats returns the collection figures, with the document frequency
	// of each of terms.
	Stats(ctx context.Context, terms []string) (Stats, error)
	// Postings returns every text holding term, by key.
	Postings(ctx context.Context, term string) ([]Posting, error)
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
// first, ties by key. The ranking is exact, and the same whatever the
// database behind ix.
//
// It reads the postings of every query term and walks them together by
// key, with MaxScore pruning: the terms whose bounds (their best score in
// any text) add up to less than the current limit-th best score are only
// looked up for texts another term found, and a text is dropped as soon as
// what it has plus what it could still get cannot beat that score. Scores
// are summed in the query's term order, so equal inputs give equal bits.
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

	// The terms that occur, in query order, with their postings.
	var terms []*cursor
	for _, t := range qterms {
		if st.DF[t.Term] <= 0 {
			continue
		}
		list, err := ix.Postings(ctx, t.Term)
		if err != nil {
			return nil, err
		}
		if len(list) == 0 {
			continue
		}
		c := &cursor{list: list, weight: idf(st.Texts, st.DF[t.Term]) * float64(t.Count), order: len(terms)}
		for _, post := range list {
			c.bound = max(c.bound, c.score(post, p, avgLen))
		}
		terms = append(terms, c)
	}
	if len(terms) == 0 {
		return nil, ctx.Err()
	}
	// byBound: lowest bound first; upTo[i] is the bound of byBound[:i+1].
	byBound := slices.Clone(terms)
	slices.SortStableFunc(byBound, func(a, b *cursor) int { return cmp.Compare(a.bound, b.bound) })
	upTo := make([]float64, len(byBound))
	sum := 0.0
	for i, c := range byBound {
		sum += c.bound
		upTo[i] = sum
	}

	top := &hitHeap{}
	// threshold is the score a text must reach to matter; a text below
	// it by more than rounding cannot enter the result.
	threshold := func() float64 {
		t := q.MinScore
		if top.Len() == q.Limit {
			t = max(t, (*top)[0].Score)
		}
		return t * (1 - 1e-12)
	}
	essential := 0 // byBound[essential:] are walked, the rest looked up
	parts := make([]float64, len(terms))
	for steps := 0; ; steps++ {
		if steps%1024 == 0 && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		theta := threshold()
		for essential < len(byBound) && upTo[essential] < theta {
			essential++
		}
		if essential == len(byBound) {
			break
		}
		// The next text any walked term holds.
		key := int64(math.MaxInt64)
		for _, c := range byBound[essential:] {
			if c.at < len(c.list) {
				key = min(key, c.list[c.at].Key)
			}
		}
		if key == math.MaxInt64 {
			break
		}
		clear(parts)
		have := 0.0
		for _, c := range byBound[essential:] {
			if c.at < len(c.list) && c.list[c.at].Key == key {
				parts[c.order] = c.score(c.list[c.at], p, avgLen)
				have += parts[c.order]
				c.at++
			}
		}
		dropped := false
		for i := essential - 1; i >= 0; i-- {
			if have+upTo[i] < theta {
				dropped = true
				break
			}
			c := byBound[i]
			if c.seek(key) {
				parts[c.order] = c.score(c.list[c.at], p, avgLen)
				have += parts[c.order]
			}
		}
		if dropped {
			continue
		}
		score := 0.0
		for _, v := range parts {
			score += v
		}
		if score <= 0 || score < q.MinScore {
			continue
		}
		h := Hit{key, score}
		if top.Len() < q.Limit {
			heap.Push(top, h)
		} else if better(h, (*top)[0]) {
			(*top)[0] = h
			heap.Fix(top, 0)
		}
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

// cursor walks one term's postings.
type cursor struct {
	list   []Posting
	at     int
	weight float64 // idf × the query's count of the term
	bound  float64 // the term's best score in any text
	order  int     // the term's place in the query
}

// score is the term's BM25 score in the text of post.
func (c *cursor) score(post Posting, p Params, avgLen float64) float64 {
	tf := float64(post.Freq)
	return c.weight * tf * (p.K1 + 1) / (tf + p.K1*(1-p.B+p.B*float64(post.Length)/avgLen))
}

// seek moves the cursor to the first posting at or after key, galloping
// (keys only grow), and reports whether it holds key itself.
func (c *cursor) seek(key int64) bool {
	n := len(c.list)
	if c.at >= n || c.list[c.at].Key >= key {
		return c.at < n && c.list[c.at].Key == key
	}
	step := 1
	lo := c.at
	for lo+step < n && c.list[lo+step].Key < key {
		lo += step
		step *= 2
	}
	hi := min(lo+step, n)
	c.at = lo + 1 + sort.Search(hi-lo-1, func(i int) bool { return c.list[lo+1+i].Key >= key })
	return c.at < n && c.list[c.at].Key == key
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
