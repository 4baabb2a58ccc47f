package eval

import (
	"math"
	"testing"
)

func TestMetrics(t *testing.T) {
	l2 := math.Log2
	tests := []struct {
		name              string
		rels              map[string]int
		ranking           []string
		k                 int
		ndcg, recall, mrr float64
	}{
		{
			name:    "binary",
			rels:    map[string]int{"d1": 1, "d2": 1, "d3": 0},
			ranking: []string{"d3", "d1", "x", "d2"},
			k:       10,
			// DCG 1/log2(3) + 1/log2(5); ideal 1 + 1/log2(3).
			ndcg:   (1/l2(3) + 1/l2(5)) / (1 + 1/l2(3)),
			recall: 1,
			mrr:    0.5,
		},
		{
			name:    "binary at k=2",
			rels:    map[string]int{"d1": 1, "d2": 1, "d3": 0},
			ranking: []string{"d3", "d1", "x", "d2"},
			k:       2,
			ndcg:    (1 / l2(3)) / (1 + 1/l2(3)),
			recall:  0.5,
			mrr:     0.5,
		},
		{
			name:    "graded",
			rels:    map[string]int{"a": 2, "b": 1, "c": 3},
			ranking: []string{"a", "b", "c"},
			k:       10,
			// DCG 2 + 1/log2(3) + 3/log2(4); ideal 3 + 2/log2(3) + 1/log2(4).
			ndcg:   (2 + 1/l2(3) + 3.0/2) / (3 + 2/l2(3) + 1.0/2),
			recall: 1,
			mrr:    1,
		},
		{
			name:    "graded at k=1: the ideal is cut too",
			rels:    map[string]int{"a": 2, "b": 1, "c": 3},
			ranking: []string{"a", "b", "c"},
			k:       1,
			ndcg:    2.0 / 3,
			recall:  1.0 / 3,
			mrr:     1,
		},
		{
			name:    "no results",
			rels:    map[string]int{"z": 1},
			ranking: nil,
			k:       10,
		},
		{
			name:    "nothing relevant retrieved",
			rels:    map[string]int{"z": 2},
			ranking: []string{"a", "b"},
			k:       10,
		},
		{
			name:    "no positive judgement",
			rels:    map[string]int{"y": 0, "w": -1},
			ranking: []string{"y", "w"},
			k:       10,
		},
		{
			name:    "relevant past k",
			rels:    map[string]int{"d": 1},
			ranking: []string{"a", "b", "d"},
			k:       2,
		},
		{
			name:    "a duplicate counts once, at its first place",
			rels:    map[string]int{"d1": 1},
			ranking: []string{"x", "x", "d1"},
			k:       2,
			ndcg:    1 / l2(3),
			recall:  1,
			mrr:     0.5,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, m := range []struct {
				name      string
				got, want float64
			}{
				{"NDCG", NDCG(tt.rels, tt.ranking, tt.k), tt.ndcg},
				{"Recall", Recall(tt.rels, tt.ranking, tt.k), tt.recall},
				{"MRR", MRR(tt.rels, tt.ranking, tt.k), tt.mrr},
			} {
				if math.Abs(m.got-m.want) > 1e-12 {
					t.Errorf("%s@%d = %.6f, want %.6f", m.name, tt.k, m.got, m.want)
				}
			}
		})
	}
	// The figures above, worked out to four places by hand.
	if got := NDCG(tests[0].rels, tests[0].ranking, 10); math.Abs(got-0.6509) > 5e-5 {
		t.Errorf("binary nDCG@10 = %.5f, want 0.6509", got)
	}
	if got := NDCG(tests[2].rels, tests[2].ranking, 10); math.Abs(got-0.8675) > 5e-5 {
		t.Errorf("graded nDCG@10 = %.5f, want 0.8675", got)
	}
}

func TestEvaluate(t *testing.T) {
	qrels := Qrels{
		"q1": {"d1": 1, "d2": 1}, // nDCG (1/log2(3))/(1+1/log2(3)), recall 1/2, MRR 1/2
		"q2": {"d3": 2},          // perfect
		"q3": {"d4": 1},          // no results: 0
		"q4": {"d5": 0},          // no relevant document: 0, still counted
		"q5": {"q5": 1, "d6": 1}, // the query's own id is dropped
		"q6": {"d7": 1},          // missing from the run: 0
	}
	run := map[string][]string{
		"q1":    {"x", "d1"},
		"q2":    {"d3"},
		"q3":    {},
		"q4":    {"d5"},
		"q5":    {"q5", "d6"},
		"extra": {"d1"}, // not in the qrels: ignored
	}
	rep := Evaluate(qrels, run, Options{})
	if rep.Queries != 6 || len(rep.PerQuery) != 6 {
		t.Fatalf("Queries %d, PerQuery %d; want 6", rep.Queries, len(rep.PerQuery))
	}
	l2 := math.Log2
	q1 := (1 / l2(3)) / (1 + 1/l2(3))
	q5 := 1 / (1 + 1/l2(3))
	want := Scores{
		NDCG10:    (q1 + 1 + q5) / 6,
		Recall100: (0.5 + 1 + 0.5) / 6,
		MRR10:     (0.5 + 1 + 1) / 6,
	}
	if !near(rep.Mean, want) {
		t.Errorf("Mean = %+v, want %+v", rep.Mean, want)
	}
	if p := rep.PerQuery[4]; p.QueryID != "q5" || p.Results != 1 || p.MRR10 != 1 {
		t.Errorf("PerQuery[4] = %+v, want q5 with its own id dropped", p)
	}
	for i, p := range rep.PerQuery {
		if i > 0 && rep.PerQuery[i-1].QueryID >= p.QueryID {
			t.Errorf("PerQuery not in query id order at %d", i)
		}
	}

	rep = Evaluate(qrels, run, Options{KeepIdenticalIDs: true})
	if p := rep.PerQuery[4]; p.NDCG10 != 1 || p.Recall100 != 1 {
		t.Errorf("with KeepIdenticalIDs, q5 = %+v, want perfect", p)
	}

	if rep := Evaluate(Qrels{}, run, Options{}); rep.Queries != 0 || rep.Mean != (Scores{}) {
		t.Errorf("empty qrels: %+v", rep)
	}
}

func near(a, b Scores) bool {
	const eps = 1e-12
	return math.Abs(a.NDCG10-b.NDCG10) < eps && math.Abs(a.Recall100-b.Recall100) < eps && math.Abs(a.MRR10-b.MRR10) < eps
}
