package fulltext

import (
	"math"
	"os"
	"slices"
	"sort"
	"testing"

	"github.com/kljensen/snowball/english"
	"github.com/nodus-os/nodus/internal/retrieval/eval"
)

// TestAnalysisChoices measures, on a BEIR dataset named by
// NODUS_BEIR_DIR (../shared/data/scifact), how stemming, stop words and
// BM25's constants change the ranking, by scoring every document for every
// query (no index, no chunking), and checks that the analysis Nodus uses
// is within 0.005 nDCG@10 of the best variant tried. Without the variable
// it is skipped: the data is not part of the repository.
//
//	NODUS_BEIR_DIR=../shared/data/scifact go test -run TestAnalysisChoices -v ./internal/fulltext/
func TestAnalysisChoices(t *testing.T) {
	root := os.Getenv("NODUS_BEIR_DIR")
	if root == "" {
		t.Skip("NODUS_BEIR_DIR not set")
	}
	dir := eval.Dir(root)
	split := "test"
	if splits, _ := dir.Splits(); !slices.Contains(splits, split) && len(splits) > 0 {
		split = splits[0]
	}
	var ids, texts []string
	if err := dir.Corpus(func(d eval.Document) error {
		ids = append(ids, d.ID)
		texts = append(texts, d.Title+"\n\n"+d.Text)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	qs, err := dir.Queries()
	if err != nil {
		t.Fatal(err)
	}
	qrels, err := dir.Qrels(split)
	if err != nil {
		t.Fatal(err)
	}
	words := func(s string, fn func(string)) {
		start := -1
		var lower []byte
		for i, r := range s + " " {
			if isWordRune(r) {
				if start < 0 {
					start = i
				}
				continue
			}
			if start >= 0 {
				lower = appendLower(lower[:0], s[start:i])
				if len(lower) <= MaxTermBytes {
					fn(string(lower))
				}
				start = -1
			}
		}
	}
	type variant struct {
		name string
		stop func(string) bool
		stem bool
	}
	none := func(string) bool { return false }
	lucene := func(w string) bool { return stopWords[w] }
	variants := []variant{{"no stem, no stop", none, false}, {"no stem, lucene", lucene, false},
		{"porter2, no stop", none, true}, {"porter2, lucene", lucene, true}, {"porter2, snowball list", english.IsStopWord, true}}
	best, ours := 0.0, 0.0
	for _, v := range variants {
		an := func(s string) []string {
			var out []string
			words(s, func(w string) {
				if v.stop(w) {
					return
				}
				if v.stem {
					w = stem([]byte(w))
				}
				out = append(out, w)
			})
			return out
		}
		df := map[string]int{}
		docs := make([]map[string]int, len(texts))
		lens := make([]int, len(texts))
		total := 0
		for i, tx := range texts {
			m := map[string]int{}
			for _, w := range an(tx) {
				m[w]++
				lens[i]++
			}
			for w := range m {
				df[w]++
			}
			docs[i] = m
			total += lens[i]
		}
		avg := float64(total) / float64(len(texts))
		for _, p := range []Params{{0.9, 0.4}, {1.2, 0.75}} {
			run := map[string][]string{}
			for _, q := range qs {
				if _, ok := qrels[q.ID]; !ok {
					continue
				}
				qc := map[string]int{}
				for _, w := range an(q.Text) {
					qc[w]++
				}
				type sc struct {
					i int
					s float64
				}
				var scores []sc
				for i, d := range docs {
					s := 0.0
					for w, c := range qc {
						if f := d[w]; f > 0 {
							idf := math.Log(1 + (float64(len(texts))-float64(df[w])+0.5)/(float64(df[w])+0.5))
							s += float64(c) * idf * float64(f) * (p.K1 + 1) / (float64(f) + p.K1*(1-p.B+p.B*float64(lens[i])/avg))
						}
					}
					if s > 0 {
						scores = append(scores, sc{i, s})
					}
				}
				sort.Slice(scores, func(a, b int) bool { return scores[a].s > scores[b].s })
				var r []string
				for _, s := range scores[:min(100, len(scores))] {
					r = append(r, ids[s.i])
				}
				run[q.ID] = r
			}
			rep := eval.Evaluate(qrels, run, eval.Options{})
			t.Logf("%-24s k1=%.1f b=%.2f  nDCG@10 %.4f  Recall@100 %.4f  MRR@10 %.4f", v.name, p.K1, p.B,
				rep.Mean.NDCG10, rep.Mean.Recall100, rep.Mean.MRR10)
			best = max(best, rep.Mean.NDCG10)
			if v.name == "porter2, lucene" && p == DefaultParams {
				ours = rep.Mean.NDCG10
			}
		}
	}
	if ours < best-0.005 {
		t.Errorf("Nodus's analysis scores nDCG@10 %.4f, the best variant %.4f", ours, best)
	}
}
