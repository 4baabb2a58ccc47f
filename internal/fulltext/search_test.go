package fulltext

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"
)

// memIndex is an Index over texts held in memory, keyed 1, 2, … in the
// order given.
type memIndex struct {
	texts []memText
}

type memText struct {
	key int64
	vec Vector
}

func newMemIndex(texts ...string) *memIndex {
	ix := &memIndex{}
	for i, s := range texts {
		ix.texts = append(ix.texts, memText{int64(i + 1), Analyze(s)})
	}
	return ix
}

func (t memText) freq(term string) int {
	i, ok := slices.BinarySearchFunc(t.vec.Terms, term, func(tf TermFreq, s string) int { return strings.Compare(tf.Term, s) })
	if !ok {
		return 0
	}
	return t.vec.Terms[i].Freq
}

func (t memText) holds(term string) bool { return t.freq(term) > 0 }

func (ix *memIndex) Stats(_ context.Context, terms []string) (Stats, error) {
	st := Stats{Texts: int64(len(ix.texts)), DF: make(map[string]int64)}
	for _, t := range ix.texts {
		st.Length += int64(t.vec.Length)
		for _, term := range terms {
			if t.holds(term) {
				st.DF[term]++
			}
		}
	}
	return st, nil
}

func (ix *memIndex) Postings(_ context.Context, term string) ([]Posting, error) {
	var out []Posting
	for _, t := range ix.texts {
		if f := t.freq(term); f > 0 {
			out = append(out, Posting{Key: t.key, Freq: int32(f), Length: int32(t.vec.Length)})
		}
	}
	return out, nil
}

// countingIndex records the Postings calls made on an Index.
type countingIndex struct {
	Index
	calls []string
}

func (ix *countingIndex) Postings(ctx context.Context, term string) ([]Posting, error) {
	ix.calls = append(ix.calls, term)
	return ix.Index.Postings(ctx, term)
}

// bruteForce scores every text of ix with BM25 and returns the best
// q.Limit. It sums the terms' parts in query order, as Search does, so
// that equal scores are equal bit for bit and ties compare the same.
func bruteForce(ix *memIndex, q Query, p Params) []Hit {
	if q.Limit <= 0 || len(ix.texts) == 0 {
		return nil
	}
	n := float64(len(ix.texts))
	total := 0.0
	for _, t := range ix.texts {
		total += float64(t.vec.Length)
	}
	avgLen := max(total/n, 1)

	type weighted struct {
		term   string
		weight float64
	}
	var ws []weighted
	for _, qt := range ParseQuery(q.Text) {
		df := 0.0
		for _, t := range ix.texts {
			if t.holds(qt.Term) {
				df++
			}
		}
		if df == 0 {
			continue
		}
		idf := math.Log(1 + (n-df+0.5)/(df+0.5))
		ws = append(ws, weighted{qt.Term, idf * float64(qt.Count)})
	}

	var hits []Hit
	for _, t := range ix.texts {
		norm := p.K1 * (1 - p.B + p.B*float64(t.vec.Length)/avgLen)
		s := 0.0
		for _, w := range ws {
			for _, tf := range t.vec.Terms {
				if tf.Term == w.term {
					f := float64(tf.Freq)
					s += w.weight * f * (p.K1 + 1) / (f + norm)
				}
			}
		}
		if s > 0 && s >= q.MinScore {
			hits = append(hits, Hit{t.key, s})
		}
	}
	slices.SortFunc(hits, func(a, b Hit) int {
		if c := cmp.Compare(b.Score, a.Score); c != 0 {
			return c
		}
		return cmp.Compare(a.Key, b.Key)
	})
	return hits[:min(len(hits), q.Limit)]
}

func checkHits(t *testing.T, got, want []Hit) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d hits, want %d\n got %v\nwant %v", len(got), len(want), got, want)
	}
	for i := range got {
		if got[i].Key != want[i].Key || math.Abs(got[i].Score-want[i].Score) > 1e-9 {
			t.Fatalf("hit %d is %v, want %v\n got %v\nwant %v", i, got[i], want[i], got, want)
		}
	}
}

func TestSearchExample(t *testing.T) {
	ix := newMemIndex(
		"The cat sat on the mat.",        // 1
		"Dogs chase cats; the cats run.", // 2
		"A dog and a cat.",               // 3
		"Birds sing in the morning.",     // 4
		"Cats, cats, cats: a very long text about many cats and nothing else at all", // 5
		"A mat for the dog.", // 6
	)
	hits, err := Search(context.Background(), ix, Query{Text: "cats dog", Limit: 10}, DefaultParams)
	if err != nil {
		t.Fatal(err)
	}
	var keys []int64
	for _, h := range hits {
		keys = append(keys, h.Key)
	}
	// Text 3 holds both terms in two; 2 both, cat twice, but in five; 6
	// only the rarer dog; 5 many cats but is long; 1 one cat in a short
	// text; 4 neither.
	want := []int64{3, 2, 6, 5, 1}
	if !slices.Equal(keys, want) {
		t.Errorf("keys %v, want %v (hits %v)", keys, want, hits)
	}
	checkHits(t, hits, bruteForce(ix, Query{Text: "cats dog", Limit: 10}, DefaultParams))
}

func TestSearchTiesByKey(t *testing.T) {
	ix := newMemIndex("alpha beta", "gamma", "alpha beta", "alpha beta", "gamma")
	hits, err := Search(context.Background(), ix, Query{Text: "alpha", Limit: 2}, DefaultParams)
	if err != nil {
		t.Fatal(err)
	}
	if len(hits) != 2 || hits[0].Key != 1 || hits[1].Key != 3 || hits[0].Score != hits[1].Score {
		t.Errorf("hits %v, want keys 1 and 3 with equal scores", hits)
	}
}

// corpus makes n random texts over a vocabulary of vocab words whose
// frequencies follow a Zipf law, with a stop word here and there.
func corpus(rng *rand.Rand, n, vocab int) []string {
	zipf := rand.NewZipf(rng, 1.1, 1, uint64(vocab-1))
	texts := make([]string, n)
	for i := range texts {
		length := 1 + rng.IntN(40)
		switch rng.IntN(10) {
		case 0:
			length = 100 + rng.IntN(300)
		case 1:
			length = 1 + rng.IntN(3)
		}
		words := make([]string, length)
		for j := range words {
			if rng.IntN(10) == 0 {
				words[j] = "the"
			} else {
				words[j] = fmt.Sprintf("w%02d", zipf.Uint64())
			}
		}
		texts[i] = strings.Join(words, " ")
	}
	return texts
}

// query makes a query of 1 to 8 words, repeats allowed, drawn evenly or
// by the corpus's law, now and then with a word no text holds.
func query(rng *rand.Rand, vocab int) string {
	zipf := rand.NewZipf(rng, 1.1, 1, uint64(vocab-1))
	words := make([]string, 1+rng.IntN(8))
	for i := range words {
		switch rng.IntN(8) {
		case 0:
			words[i] = "absent"
		case 1, 2, 3:
			words[i] = fmt.Sprintf("w%02d", zipf.Uint64())
		default:
			words[i] = fmt.Sprintf("W%02d", rng.IntN(vocab))
		}
	}
	return strings.Join(words, " ")
}

// TestSearchMatchesBruteForce checks on random corpora and queries that
// Search, for all its pruning, ranks exactly as scoring every text, and
// reads each term's postings once.
func TestSearchMatchesBruteForce(t *testing.T) {
	params := []Params{DefaultParams, {K1: 1.2, B: 0.75}, {K1: 2, B: 1}, {K1: 0.5, B: 0}, {K1: 0, B: 0.4}}
	corpora, queries := 12, 25
	if testing.Short() {
		corpora = 3
	}
	for seed := range corpora {
		rng := rand.New(rand.NewPCG(uint64(seed), 7))
		ix := newMemIndex(corpus(rng, 200, 50)...)
		p := params[seed%len(params)]
		for range queries {
			text := query(rng, 50)
			for _, limit := range []int{1, 5, 10, 100} {
				q := Query{Text: text, Limit: limit}
				t.Run(fmt.Sprintf("%d/%s/%d", seed, text, limit), func(t *testing.T) {
					counted := &countingIndex{Index: ix}
					got, err := Search(context.Background(), counted, q, p)
					if err != nil {
						t.Fatal(err)
					}
					checkHits(t, got, bruteForce(ix, q, p))
					var occurring []string // terms some text holds
					for _, qt := range ParseQuery(text) {
						if slices.ContainsFunc(ix.texts, func(mt memText) bool { return mt.holds(qt.Term) }) {
							occurring = append(occurring, qt.Term)
						}
					}
					if !slices.Equal(counted.calls, occurring) {
						t.Errorf("Postings read for %q, want %q", counted.calls, occurring)
					}
				})
			}
		}
	}
}

// TestSearchMinScore checks that MinScore drops exactly the hits below it.
func TestSearchMinScore(t *testing.T) {
	for seed := range 6 {
		rng := rand.New(rand.NewPCG(uint64(seed), 99))
		ix := newMemIndex(corpus(rng, 200, 50)...)
		for range 20 {
			text := query(rng, 50)
			all := bruteForce(ix, Query{Text: text, Limit: 1000}, DefaultParams)
			if len(all) == 0 {
				continue
			}
			// Below every score, at a score (kept), between two, above all.
			mins := []float64{all[len(all)-1].Score / 2, all[len(all)/2].Score, all[0].Score * 1.01}
			if len(all) > 1 {
				mins = append(mins, (all[0].Score+all[1].Score)/2)
			}
			for _, ms := range mins {
				for _, limit := range []int{1, 5, 100} {
					q := Query{Text: text, Limit: limit, MinScore: ms}
					t.Run(fmt.Sprintf("%d/%s/%g/%d", seed, text, ms, limit), func(t *testing.T) {
						got, err := Search(context.Background(), ix, q, DefaultParams)
						if err != nil {
							t.Fatal(err)
						}
						want := bruteForce(ix, q, DefaultParams)
						checkHits(t, got, want)
						for _, h := range got {
							if h.Score < ms {
								t.Errorf("hit %v below MinScore %g", h, ms)
							}
						}
					})
				}
			}
		}
	}
}

// TestSearchTiesWithExactBounds: with K1 = 0 a text scores its terms'
// bounds exactly, so pruning must not drop a text that ties the limit-th
// best and has a lower key.
func TestSearchTiesWithExactBounds(t *testing.T) {
	ix := newMemIndex("bbb", "aaa")
	q := Query{Text: "aaa bbb", Limit: 1}
	p := Params{K1: 0, B: 0.4}
	got, err := Search(context.Background(), ix, q, p)
	if err != nil {
		t.Fatal(err)
	}
	checkHits(t, got, bruteForce(ix, q, p))
	if got[0].Key != 1 {
		t.Errorf("hit %v, want key 1", got[0])
	}
}

func TestSearchNothing(t *testing.T) {
	ix := newMemIndex("the cat sat", "a dog ran")
	tests := []struct {
		name string
		ix   Index
		q    Query
	}{
		{"empty query", ix, Query{Text: "", Limit: 10}},
		{"punctuation query", ix, Query{Text: " ?! -- ", Limit: 10}},
		{"stop words only", ix, Query{Text: "the and of The", Limit: 10}},
		{"limit 0", ix, Query{Text: "cat", Limit: 0}},
		{"negative limit", ix, Query{Text: "cat", Limit: -1}},
		{"empty index", newMemIndex(), Query{Text: "cat", Limit: 10}},
		{"term in no text", ix, Query{Text: "zebra", Limit: 10}},
		{"MinScore above every score", ix, Query{Text: "cat", Limit: 10, MinScore: 100}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			counted := &countingIndex{Index: tt.ix}
			hits, err := Search(context.Background(), counted, tt.q, DefaultParams)
			if err != nil || len(hits) != 0 {
				t.Errorf("Search = %v, %v; want no hits, no error", hits, err)
			}
			if tt.q.MinScore == 0 && len(counted.calls) != 0 {
				t.Errorf("Postings read for %q", counted.calls)
			}
		})
	}
}

// funcIndex is an Index whose methods are its fields.
type funcIndex struct {
	stats    func(ctx context.Context, terms []string) (Stats, error)
	postings func(ctx context.Context, term string) ([]Posting, error)
}

func (ix funcIndex) Stats(ctx context.Context, terms []string) (Stats, error) {
	return ix.stats(ctx, terms)
}

func (ix funcIndex) Postings(ctx context.Context, term string) ([]Posting, error) {
	return ix.postings(ctx, term)
}

func TestSearchErrors(t *testing.T) {
	ix := newMemIndex("cat dog", "cat", "dog dog", "bird")
	errBoom := errors.New("boom")
	q := Query{Text: "cat dog", Limit: 10}

	t.Run("Stats", func(t *testing.T) {
		bad := funcIndex{
			stats:    func(context.Context, []string) (Stats, error) { return Stats{}, errBoom },
			postings: ix.Postings,
		}
		if hits, err := Search(context.Background(), bad, q, DefaultParams); !errors.Is(err, errBoom) || hits != nil {
			t.Errorf("Search = %v, %v; want %v", hits, err, errBoom)
		}
	})
	t.Run("Postings", func(t *testing.T) {
		bad := funcIndex{
			stats: ix.Stats,
			postings: func(ctx context.Context, term string) ([]Posting, error) {
				if term == "dog" {
					return nil, errBoom
				}
				return ix.Postings(ctx, term)
			},
		}
		if hits, err := Search(context.Background(), bad, q, DefaultParams); !errors.Is(err, errBoom) || hits != nil {
			t.Errorf("Search = %v, %v; want %v", hits, err, errBoom)
		}
	})
	t.Run("cancelled while reading", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		slow := funcIndex{
			stats: ix.Stats,
			postings: func(ctx context.Context, term string) ([]Posting, error) {
				cancel()
				return ix.Postings(ctx, term)
			},
		}
		if hits, err := Search(ctx, slow, q, DefaultParams); !errors.Is(err, context.Canceled) || hits != nil {
			t.Errorf("Search = %v, %v; want %v", hits, err, context.Canceled)
		}
	})
}

// TestCursorSeek checks the galloping seek against a linear one.
func TestCursorSeek(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	for range 200 {
		var list []Posting
		key := int64(0)
		for range rng.IntN(300) {
			key += 1 + rng.Int64N(5)
			list = append(list, Posting{Key: key, Freq: 1, Length: 1})
		}
		c := &cursor{list: list}
		target := int64(0)
		for range 50 {
			target += rng.Int64N(20)
			want := sort.Search(len(list), func(i int) bool { return list[i].Key >= target })
			want = max(want, c.at)
			found := c.seek(target)
			if c.at != want || found != (want < len(list) && list[want].Key == target) {
				t.Fatalf("seek(%d) at %d found %v, want %d", target, c.at, found, want)
			}
		}
	}
}

func TestParseQuery(t *testing.T) {
	var many []string
	for i := range MaxQueryTerms + 10 {
		many = append(many, fmt.Sprintf("w%d", i))
	}
	manyWant := make([]QueryTerm, MaxQueryTerms)
	for i := range manyWant {
		manyWant[i] = QueryTerm{fmt.Sprintf("w%d", i), 1}
	}
	manyWant[0].Count = 2 // a repeat after the cap still counts

	tests := []struct {
		name string
		text string
		want []QueryTerm
	}{
		{"empty", "", nil},
		{"stop words", "the Not of", nil},
		{"first order", "zebra apple mango", []QueryTerm{{"zebra", 1}, {"appl", 1}, {"mango", 1}}},
		{"repeats counted", "cat dog cat Cats", []QueryTerm{{"cat", 3}, {"dog", 1}}},
		{"repeats by stem", "running runs Run ran", []QueryTerm{{"run", 3}, {"ran", 1}}},
		{"stop words between", "the cat and the hat", []QueryTerm{{"cat", 1}, {"hat", 1}}},
		{"cap on distinct terms", strings.Join(many, " ") + " w0 w1000", manyWant},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ParseQuery(tt.text); !slices.Equal(got, tt.want) {
				t.Errorf("ParseQuery(%q)\n got %v\nwant %v", tt.text, got, tt.want)
			}
		})
	}
}
