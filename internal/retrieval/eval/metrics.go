package eval

import (
	"math"
	"slices"
	"sort"
)

// Qrels are relevance judgements: query id → document id → relevance.
type Qrels map[string]map[string]int

// NDCG is nDCG@k of ranking for a query judged rels.
func NDCG(rels map[string]int, ranking []string, k int) float64 {
	if k <= 0 {
		return 0
	}
	var gains []int
	for _, r := range rels {
		if r > 0 {
			gains = append(gains, r)
		}
	}
	if len(gains) == 0 {
		return 0
	}
	slices.SortFunc(gains, func(a, b int) int { return b - a })
	var ideal float64
	for i, g := range gains[:min(k, len(gains))] {
		ideal += float64(g) / math.Log2(float64(i+2))
	}
	var dcg float64
	for i, d := range topK(ranking, k) {
		if r := rels[d]; r > 0 {
			dcg += float64(r) / math.Log2(float64(i+2))
		}
	}
	return dcg / ideal
}

// Recall is Recall@k of ranking for a query judged rels.
func Recall(rels map[string]int, ranking []string, k int) float64 {
	relevant := 0
	for _, r := range rels {
		if r > 0 {
			relevant++
		}
	}
	if relevant == 0 || k <= 0 {
		return 0
	}
	found := 0
	for _, d := range topK(ranking, k) {
		if rels[d] > 0 {
			found++
		}
	}
	return float64(found) / float64(relevant)
}

// MRR is the reciprocal rank of the first relevant document of ranking
// within the top k, for a query judged rels: MRR@k before averaging.
func MRR(rels map[string]int, ranking []string, k int) float64 {
	for i, d := range topK(ranking, k) {
		if rels[d] > 0 {
			return 1 / float64(i+1)
		}
	}
	return 0
}

// topK is the first k distinct documents of ranking.
func topK(ranking []string, k int) []string {
	if k <= 0 {
		return nil
	}
	seen := make(map[string]bool, min(k, len(ranking)))
	out := make([]string, 0, min(k, len(ranking)))
	for _, d := range ranking {
		if len(out) == k {
			break
		}
		if !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	return out
}

// The cut-offs `nodus eval retrieval` reports, BEIR's headline figures.
const (
	NDCGAt   = 10
	RecallAt = 100
	MRRAt    = 10
)

// Scores are one query's figures, or their means.
type Scores struct {
	NDCG10    float64
	Recall100 float64
	MRR10     float64
}

// QueryScores are the scores of one query.
type QueryScores struct {
	QueryID string
	Scores
	Results int // documents in its ranking, identical ids dropped
}

// Report is the evaluation of a run.
type Report struct {
	Queries  int    // queries averaged over: every query in the qrels
	Mean     Scores // the means over Queries
	PerQuery []QueryScores
}

// Options change how Evaluate reads a run.
type Options struct {
	// KeepIdenticalIDs keeps a document whose id is the query's id in its
	// ranking, which BEIR drops by default.
	KeepIdenticalIDs bool
}

// Evaluate scores run, query id → ranked document ids, against qrels
// (see the package doc for the conventions). PerQuery is in query id
// order.
func Evaluate(qrels Qrels, run map[string][]string, opts Options) Report {
	ids := make([]string, 0, len(qrels))
	for q := range qrels {
		ids = append(ids, q)
	}
	sort.Strings(ids)
	rep := Report{Queries: len(ids), PerQuery: make([]QueryScores, 0, len(ids))}
	for _, q := range ids {
		ranking := run[q]
		if !opts.KeepIdenticalIDs && slices.Contains(ranking, q) {
			ranking = slices.DeleteFunc(slices.Clone(ranking), func(d string) bool { return d == q })
		}
		rels := qrels[q]
		s := QueryScores{QueryID: q, Results: len(ranking), Scores: Scores{
			NDCG10:    NDCG(rels, ranking, NDCGAt),
			Recall100: Recall(rels, ranking, RecallAt),
			MRR10:     MRR(rels, ranking, MRRAt),
		}}
		rep.PerQuery = append(rep.PerQuery, s)
		rep.Mean.NDCG10 += s.NDCG10
		rep.Mean.Recall100 += s.Recall100
		rep.Mean.MRR10 += s.MRR10
	}
	if n := float64(len(ids)); n > 0 {
		rep.Mean.NDCG10 /= n
		rep.Mean.Recall100 /= n
		rep.Mean.MRR10 /= n
	}
	return rep
}
