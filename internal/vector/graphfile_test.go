package vector

import (
	"bytes"
	"encoding/binary"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// churnData is an index with tombstones of both kinds, deleted keys and
// replaced vectors, and what a caller would hold beside it.
type churnData struct {
	h       *HNSW
	dim     int
	live    map[int64][]float32 // the live keys' vectors, as the caller stores them
	queries []float32
	nextKey int64 // above every key used
}

// churned builds an index of n clustered vectors of dimension dim, by Add
// or by Build on two goroutines, then deletes a tenth of the keys and
// re-adds another tenth with new vectors.
func churned(n, dim int, p Params, byAdd bool) *churnData {
	const nq = 50
	all := clustered(n+n/10+nq, dim, 20, 11)
	at := func(i int) []float32 { return all[i*dim : (i+1)*dim] }
	d := &churnData{dim: dim, live: make(map[int64][]float32), queries: all[(n+n/10)*dim:], nextKey: int64(n)}
	keys := make([]int64, n)
	for i := range keys {
		keys[i] = int64(i)
		d.live[keys[i]] = at(i)
	}
	if byAdd {
		d.h = NewHNSW(dim, p)
		for i, key := range keys {
			d.h.Add(key, at(i))
		}
	} else {
		d.h = Build(dim, keys, all[:n*dim], p, 2)
	}
	r := rand.New(rand.NewPCG(5, 5))
	perm := r.Perm(n)
	for _, i := range perm[:n/10] {
		d.h.Delete(keys[i])
		delete(d.live, keys[i])
	}
	for j, i := range perm[n/10 : n/5] {
		d.h.Add(keys[i], at(n+j))
		d.live[keys[i]] = at(n + j)
	}
	return d
}

// vecOf returns a LoadGraph vec function over model.
func vecOf(model map[int64][]float32) func(int64) []float32 {
	return func(key int64) []float32 { return model[key] }
}

func (d *churnData) query(i int) []float32 { return d.queries[i*d.dim : (i+1)*d.dim] }

// checkRecall checks that no search of h returns a key outside model and
// that recall@10 against a brute-force ranking of model is at least want.
func checkRecall(t *testing.T, h *HNSW, model map[int64][]float32, queries []float32, want float64) {
	t.Helper()
	dim := h.Dim()
	nq := len(queries) / dim
	var sum float64
	for i := range nq {
		q := queries[i*dim : (i+1)*dim]
		got := h.Search(q, 10)
		for _, r := range got {
			if _, ok := model[r.Key]; !ok {
				t.Fatalf("query %d returned key %d, which is not live", i, r.Key)
			}
		}
		sum += recall(got, bruteForce(model, q, 10))
	}
	if got := sum / float64(nq); got < want {
		t.Errorf("recall@10 %.3f, want ≥ %.2f", got, want)
	}
}

// TestGraphRoundTrip: a loaded index answers every search as the
// marshalled one did, marshals to the same bytes, and goes on taking
// changes.
func TestGraphRoundTrip(t *testing.T) {
	n, dim := 3000, 32
	if raceEnabled {
		n = 800
	}
	cases := []struct {
		name   string
		p      Params
		byAdd  bool
		recall float64 // at least, through the loaded and the compacted index
	}{
		{"Add", DefaultParams(), true, 0.9},
		// A parallel build (Compact on two goroutines) links nodes in an
		// order that varies from run to run; at M 4 its recall does too
		// (0.876 in one run of many).
		{"Build", DefaultParams(), false, 0.9},
		{"small M", Params{M: 4, EfConstruction: 40, EfSearch: 30, Seed: 9}, true, 0.8},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := churned(n, dim, tc.p, tc.byAdd)
			h := d.h
			if h.Tombstones() == 0 {
				t.Fatal("the churned index has no tombstones")
			}
			data := h.MarshalGraph()
			start := time.Now()
			l, _, err := LoadGraph(dim, data, vecOf(d.live), 1)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%d nodes: %d bytes, loaded in %v", h.Nodes(), len(data), time.Since(start))

			if l.Len() != h.Len() || l.Nodes() != h.Nodes() || l.Tombstones() != h.Tombstones() || l.Params() != h.Params() {
				t.Fatalf("loaded Len %d Nodes %d Tombstones %d Params %+v, want %d %d %d %+v",
					l.Len(), l.Nodes(), l.Tombstones(), l.Params(), h.Len(), h.Nodes(), h.Tombstones(), h.Params())
			}
			for key := range int64(n) {
				if l.Has(key) != h.Has(key) {
					t.Fatalf("Has(%d) = %v, want %v", key, l.Has(key), h.Has(key))
				}
			}
			// Tombstones are placed again, so searches may route a little
			// differently; recall stays.
			checkRecall(t, l, d.live, d.queries, tc.recall)
			if again := l.MarshalGraph(); !bytes.Equal(again, data) {
				t.Fatalf("the loaded index marshals to %d different bytes", len(again))
			}

			// Changes after loading: new keys, deletes, then Compact.
			extra := uniform(n/10, dim, 3)
			for i := range n / 10 {
				key := d.nextKey + int64(i)
				l.Add(key, extra[i*dim:(i+1)*dim])
				d.live[key] = extra[i*dim : (i+1)*dim]
			}
			deleted := 0
			for key := range d.live {
				if deleted == n/20 {
					break
				}
				if !l.Delete(key) {
					t.Fatalf("Delete(%d) of a live key found nothing", key)
				}
				delete(d.live, key)
				deleted++
			}
			if l.Len() != len(d.live) {
				t.Fatalf("after changes Len %d, want %d", l.Len(), len(d.live))
			}
			checkRecall(t, l, d.live, d.queries, tc.recall)
			l.Compact(2)
			if l.Tombstones() != 0 || l.Len() != len(d.live) {
				t.Fatalf("after Compact: Len %d, Tombstones %d", l.Len(), l.Tombstones())
			}
			checkRecall(t, l, d.live, d.queries, tc.recall)
		})
	}
}

// TestGraphEmpty: an empty index, and one holding only tombstones, load
// and take vectors afterwards.
func TestGraphEmpty(t *testing.T) {
	const dim = 8
	p := Params{M: 5, EfConstruction: 20, EfSearch: 10, Seed: 3}
	tombs := NewHNSW(dim, p)
	tombs.Add(1, uniform(1, dim, 1))
	tombs.Delete(1)
	for _, tc := range []struct {
		name  string
		h     *HNSW
		nodes int
	}{
		{"empty", NewHNSW(dim, p), 0},
		{"tombstones only", tombs, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, _, err := LoadGraph(dim, tc.h.MarshalGraph(), func(int64) []float32 { return nil }, 1)
			if err != nil {
				t.Fatal(err)
			}
			if l.Len() != 0 || l.Nodes() != tc.nodes || l.Tombstones() != tc.nodes || l.Params() != p {
				t.Fatalf("Len %d Nodes %d Tombstones %d Params %+v", l.Len(), l.Nodes(), l.Tombstones(), l.Params())
			}
			q := uniform(1, dim, 2)
			if got := l.Search(q, 3); len(got) != 0 {
				t.Fatalf("Search = %v", got)
			}
			l.Add(7, q)
			if got := l.Search(q, 3); len(got) != 1 || got[0].Key != 7 || !l.Has(7) {
				t.Fatalf("after Add: %v", got)
			}
		})
	}
}

// TestGraphSameSearches: a graph without tombstones loads to an index
// that answers every search exactly as the marshalled one.
func TestGraphSameSearches(t *testing.T) {
	const n, dim = 2000, 16
	vecs, queries := uniform(n, dim, 5), uniform(50, dim, 6)
	keys := make([]int64, n)
	model := make(map[int64][]float32, n)
	for i := range keys {
		keys[i] = int64(i)
		model[keys[i]] = vecs[i*dim : (i+1)*dim]
	}
	h := Build(dim, keys, vecs, DefaultParams(), 2)
	l, dead, err := LoadGraph(dim, h.MarshalGraph(), vecOf(model), 0)
	if err != nil || dead != 0 {
		t.Fatalf("dead %d, %v", dead, err)
	}
	for i := range 50 {
		q := queries[i*dim : (i+1)*dim]
		if got, want := l.Search(q, 10), h.Search(q, 10); !slices.Equal(got, want) {
			t.Fatalf("query %d: loaded %v, marshalled %v", i, got, want)
		}
	}
}

// TestGraphMissingKeys: keys the caller no longer has become tombstones
// that never come back from a search, and the remaining keys are still
// found: for keys missing at random, and for a whole region missing, as
// when a document's chunks are deleted.
func TestGraphMissingKeys(t *testing.T) {
	n, dim := 3000, 32
	if raceEnabled {
		n = 1000
	}
	const nq = 100
	all := clustered(n+nq, dim, 20, 21)
	vecs, queries := all[:n*dim], all[n*dim:]
	keys := make([]int64, n)
	model := make(map[int64][]float32, n)
	for i := range keys {
		keys[i] = int64(i) * 7
		model[keys[i]] = vecs[i*dim : (i+1)*dim]
	}
	h := Build(dim, keys, vecs, DefaultParams(), 2)
	data := h.MarshalGraph()

	random := func() []int64 {
		r := rand.New(rand.NewPCG(8, 8))
		var out []int64
		for _, i := range r.Perm(n)[:n/10] {
			out = append(out, keys[i])
		}
		return out
	}
	region := func() []int64 {
		var out []int64
		for _, r := range bruteForce(model, queries[:dim], 300) {
			out = append(out, r.Key)
		}
		return out
	}
	for _, tc := range []struct {
		name    string
		missing []int64
		chained bool // some missing nodes have only missing neighbours
	}{
		{"random tenth", random(), false},
		{"a region", region(), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			remaining := maps.Clone(model)
			for _, key := range tc.missing {
				delete(remaining, key)
			}
			if _, _, err := LoadGraph(dim, data, vecOf(remaining), float64(len(tc.missing)-1)/float64(n)); err != ErrGraphStale {
				t.Fatalf("more dead nodes than accepted: %v, want ErrGraphStale", err)
			}
			l, dead, err := LoadGraph(dim, data, vecOf(remaining), float64(len(tc.missing))/float64(n))
			if err != nil {
				t.Fatal(err)
			}
			if dead != len(tc.missing) {
				t.Fatalf("dead = %d, want %d", dead, len(tc.missing))
			}
			if l.Len() != n-len(tc.missing) || l.Nodes() != n || l.Tombstones() != len(tc.missing) {
				t.Fatalf("Len %d Nodes %d Tombstones %d, want %d %d %d",
					l.Len(), l.Nodes(), l.Tombstones(), n-len(tc.missing), n, len(tc.missing))
			}
			for _, key := range tc.missing {
				if l.Has(key) || l.Delete(key) {
					t.Fatalf("missing key %d is live", key)
				}
			}
			// Every missing node is placed somewhere: each has a neighbour
			// with a vector or one placed before it.
			zero := 0
			for id := range int32(n) {
				if l.g.deleted[id] && slices.Equal(l.g.vector(id), make([]float32, dim)) {
					zero++
				}
			}
			if zero > 0 {
				t.Errorf("%d missing nodes left at the zero vector", zero)
			}
			inner := 0 // placed from other missing nodes only
			for id := range int32(n) {
				b := l.g.block(id, 0)
				if l.g.deleted[id] && !slices.ContainsFunc(b[1:1+b[0]], func(nb int32) bool { return !l.g.deleted[nb] }) {
					inner++
				}
			}
			t.Logf("%d of %d missing nodes had only missing neighbours", inner, len(tc.missing))
			if tc.chained && inner == 0 {
				t.Error("no missing node had only missing neighbours: the case no longer tests placing them")
			}
			checkRecall(t, l, remaining, queries, 0.9)
		})
	}
}

// TestGraphAllMissing: a graph none of whose keys the caller has loads as
// an index of tombstones at the zero vector, which still takes vectors.
func TestGraphAllMissing(t *testing.T) {
	const n, dim = 200, 8
	vecs := uniform(n, dim, 4)
	keys := make([]int64, n)
	for i := range keys {
		keys[i] = int64(i)
	}
	h := Build(dim, keys, vecs, DefaultParams(), 1)
	l, _, err := LoadGraph(dim, h.MarshalGraph(), func(int64) []float32 { return nil }, 1)
	if err != nil {
		t.Fatal(err)
	}
	if l.Len() != 0 || l.Nodes() != n || l.Tombstones() != n {
		t.Fatalf("Len %d Nodes %d Tombstones %d", l.Len(), l.Nodes(), l.Tombstones())
	}
	if got := l.Search(vecs[:dim], 5); len(got) != 0 {
		t.Fatalf("Search = %v", got)
	}
	l.Add(1000, vecs[:dim])
	if got := l.Search(vecs[:dim], 5); len(got) != 1 || got[0].Key != 1000 {
		t.Fatalf("after Add: %v", got)
	}
}

// TestGraphCallerErrors: a dimension other than the graph's, or a vector
// of the wrong length from vec, is an error.
func TestGraphCallerErrors(t *testing.T) {
	const dim = 4
	d := churned(50, dim, DefaultParams(), true)
	data := d.h.MarshalGraph()
	short := func(key int64) []float32 {
		if v := d.live[key]; v != nil && key%2 == 1 {
			return v[:dim-1]
		}
		return d.live[key]
	}
	for _, tc := range []struct {
		name string
		dim  int
		vec  func(int64) []float32
		want string
	}{
		{"dimension too large", dim + 1, vecOf(d.live), "dimension 4, want 5"},
		{"dimension zero", 0, vecOf(d.live), "dimension 4, want 0"},
		{"short vector", dim, short, "has dimension 3, want 4"},
		{"empty vector", dim, func(int64) []float32 { return []float32{} }, "has dimension 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := LoadGraph(tc.dim, data, tc.vec, 1)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestGraphMarshalConcurrent: MarshalGraph taken while keys are added and
// deleted gives a consistent graph every time (and no race).
func TestGraphMarshalConcurrent(t *testing.T) {
	const n, dim = 600, 8
	vecs := uniform(n, dim, 6)
	vec := func(key int64) []float32 { return vecs[key*dim : (key+1)*dim] }
	h := NewHNSW(dim, Params{M: 6, EfConstruction: 32, EfSearch: 16})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for key := range int64(n) {
			h.Add(key, vec(key))
			if key%5 == 4 {
				h.Delete(key - 2)
			}
		}
	}()
	for loads := 0; ; loads++ {
		select {
		case <-done:
			t.Logf("%d graphs loaded while adding", loads)
			return
		default:
		}
		l, _, err := LoadGraph(dim, h.MarshalGraph(), vec, 1)
		if err != nil {
			t.Fatalf("after %d loads: %v", loads, err)
		}
		if l.Len() > 0 && len(l.Search(vecs[:dim], 3)) == 0 {
			t.Fatalf("a loaded graph of %d keys finds nothing", l.Len())
		}
	}
}

// rawNode and rawGraph spell out a graph in MarshalGraph's format field by
// field, so that a test can write what MarshalGraph never would.
type rawNode struct {
	key     int64
	level   int
	deleted bool
	links   [][]uint64
}

type rawGraph struct {
	magic                     string
	dim, m, efc, efs, seed, n uint64
	entry, top                int64
	nodes                     []rawNode
	trailing                  []byte
}

func (g rawGraph) bytes() []byte {
	b := []byte(g.magic)
	for _, x := range []uint64{g.dim, g.m, g.efc, g.efs, g.seed, g.n} {
		b = binary.AppendUvarint(b, x)
	}
	b = binary.AppendVarint(b, g.entry)
	b = binary.AppendVarint(b, g.top)
	for _, nd := range g.nodes {
		b = binary.AppendVarint(b, nd.key)
		flags := byte(nd.level)
		if nd.deleted {
			flags |= tombstoneFlag
		}
		b = append(b, flags)
		for _, l := range nd.links {
			b = binary.AppendUvarint(b, uint64(len(l)))
			for _, id := range l {
				b = binary.AppendUvarint(b, id)
			}
		}
	}
	return append(b, g.trailing...)
}

// smallRaw is a valid four-node graph of dimension 2 and M 2, node 2 a
// tombstone, and smallRawVecs the live keys' vectors.
func smallRaw() rawGraph {
	return rawGraph{
		magic: graphMagic, dim: 2, m: 2, efc: 8, efs: 4, seed: 1, n: 4, entry: 0, top: 1,
		nodes: []rawNode{
			{key: 10, level: 1, links: [][]uint64{{1, 2}, {3}}},
			{key: 11, links: [][]uint64{{0, 2}}},
			{key: 12, deleted: true, links: [][]uint64{{0, 1, 3}}},
			{key: -13, level: 1, links: [][]uint64{{0}, {0}}},
		},
	}
}

var smallRawVecs = map[int64][]float32{10: {1, 0}, 11: {0.6, 0.8}, -13: {-1, 0}}

// TestGraphCorrupt: every kind of damage LoadGraph checks for is an error
// naming it, and the valid variants load.
func TestGraphCorrupt(t *testing.T) {
	cases := []struct {
		name string
		edit func(g *rawGraph)
		want string // "" for a graph that must load
	}{
		{"valid", func(*rawGraph) {}, ""},
		{"a dead copy of a live key", func(g *rawGraph) { g.nodes[2].key = 10 }, ""},
		{"bad magic", func(g *rawGraph) { g.magic = "NHGX" }, "bad magic"},
		{"next version", func(g *rawGraph) { g.magic = "NHG2" }, "bad magic"},
		{"zero dimension", func(g *rawGraph) { g.dim = 0 }, "dimension 0 out of"},
		{"huge dimension", func(g *rawGraph) { g.dim = 1 << 17 }, "dimension 131072 out of"},
		{"M 1", func(g *rawGraph) { g.m = 1 }, "M 1 out of"},
		{"huge M", func(g *rawGraph) { g.m = 1 << 13 }, "M 8192 out of"},
		{"zero EfSearch", func(g *rawGraph) { g.efs = 0 }, "EfSearch 0 out of"},
		{"huge EfConstruction", func(g *rawGraph) { g.efc = 1 << 30 }, "EfConstruction 1073741824 out of"},
		{"huge node count", func(g *rawGraph) { g.n = 1 << 40 }, "cannot fit"},
		{"node count too high", func(g *rawGraph) { g.n = 5 }, "truncated"},
		{"node count too low", func(g *rawGraph) { g.n = 3 }, "neighbour 3 on layer 1 of a graph of 3 nodes"},
		{"entry out of range", func(g *rawGraph) { g.entry = 4 }, "entry 4 out of"},
		{"no entry", func(g *rawGraph) { g.entry = -1 }, "entry -1 out of"},
		{"top above every level", func(g *rawGraph) { g.top = 2 }, "not the top level 2"},
		{"top too high", func(g *rawGraph) { g.top = 40 }, "top level 40 out of"},
		{"entry not on top", func(g *rawGraph) { g.entry = 1 }, "not the top level"},
		{"level above top", func(g *rawGraph) { g.top, g.entry = 0, 1 }, "level 1 above the top level 0"},
		{"level above the maximum", func(g *rawGraph) { g.nodes[1].level = maxLevel + 1 }, "level 32 above the maximum"},
		{"layer-0 count above 2M", func(g *rawGraph) { g.nodes[1].links[0] = []uint64{0, 2, 3, 0, 2} }, "5 neighbours on layer 0, at most 4"},
		{"upper count above M", func(g *rawGraph) { g.nodes[0].links[1] = []uint64{3, 3, 3} }, "3 neighbours on layer 1, at most 2"},
		{"neighbour out of range", func(g *rawGraph) { g.nodes[1].links[0] = []uint64{0, 9} }, "neighbour 9 on layer 0"},
		{"upper link to a lower node", func(g *rawGraph) { g.nodes[0].links[1] = []uint64{1} }, "links on layer 1 to node 1 of level 0"},
		{"key live twice", func(g *rawGraph) { g.nodes[1].key = 10 }, "key 10 is live in node 0 too"},
		{"trailing byte", func(g *rawGraph) { g.trailing = []byte{0} }, "1 trailing bytes"},
		{"empty with an entry", func(g *rawGraph) { g.n, g.nodes, g.entry, g.top = 0, nil, 0, 0 }, "empty graph"},
		{"huge M over empty nodes", func(g *rawGraph) {
			g.m, g.efs, g.entry, g.top = maxGraphM, 1, 0, 0
			g.nodes = nil
			for i := range 20000 {
				g.nodes = append(g.nodes, rawNode{key: int64(i), links: [][]uint64{nil}})
			}
			g.n = uint64(len(g.nodes))
		}, "need more memory"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := smallRaw()
			tc.edit(&g)
			h, _, err := LoadGraph(2, g.bytes(), vecOf(smallRawVecs), 1)
			switch {
			case tc.want == "" && err != nil:
				t.Fatal(err)
			case tc.want == "":
				if h.Len() != 3 || h.Nodes() != 4 || h.Tombstones() != 1 || h.Has(12) || !h.Has(-13) {
					t.Fatalf("Len %d Nodes %d Tombstones %d", h.Len(), h.Nodes(), h.Tombstones())
				}
				got := h.Search([]float32{0, 1}, 3)
				want := []Result{{11, 0.8}, {-13, 0}, {10, 0}}
				if !slices.Equal(got, want) {
					t.Fatalf("Search = %v, want %v", got, want)
				}
			case err == nil:
				t.Fatalf("loaded, want an error containing %q", tc.want)
			case !strings.HasPrefix(err.Error(), "vector: graph: ") || !strings.Contains(err.Error(), tc.want):
				t.Fatalf("error %q, want one containing %q", err, tc.want)
			}
		})
	}

	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"nil", nil, "bad magic"},
		{"magic only", []byte(graphMagic), "truncated in dimension"},
		{"overflowing varint", append([]byte(graphMagic), bytes.Repeat([]byte{0xff}, 11)...), "overflows"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := LoadGraph(2, tc.data, vecOf(smallRawVecs), 1)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestGraphTruncated: every proper prefix of a graph's bytes, and the
// bytes with one more, are errors.
func TestGraphTruncated(t *testing.T) {
	const dim = 4
	d := churned(40, dim, Params{M: 3, EfConstruction: 16, EfSearch: 8}, true)
	data := d.h.MarshalGraph()
	vec := vecOf(d.live)
	if _, _, err := LoadGraph(dim, data, vec, 1); err != nil {
		t.Fatal(err)
	}
	for i := range len(data) {
		if _, _, err := LoadGraph(dim, data[:i], vec, 1); err == nil {
			t.Fatalf("loaded the first %d of %d bytes", i, len(data))
		}
	}
	if _, _, err := LoadGraph(dim, append(slices.Clip(data), 0), vec, 1); err == nil {
		t.Fatal("loaded with a trailing byte")
	}
}

// fuzzVec is FuzzLoadGraph's caller: a vector for two keys in three, made
// from the key's bits, and nil for the third.
func fuzzVec(dim int) func(int64) []float32 {
	return func(key int64) []float32 {
		if key%3 == 0 {
			return nil
		}
		v := make([]float32, dim)
		for i := range v {
			v[i] = float32(key>>(i%61)&7) + 1
		}
		Normalize(v)
		return v
	}
}

// FuzzLoadGraph: LoadGraph never panics; what it loads searches, takes a
// vector, and marshals to bytes that load to the same bytes again.
func FuzzLoadGraph(f *testing.F) {
	const dim = 4
	f.Add(NewHNSW(dim, Params{}).MarshalGraph())
	one := NewHNSW(dim, Params{M: 2})
	one.Add(1, fuzzVec(dim)(1))
	f.Add(one.MarshalGraph())
	for _, m := range []int{2, 4} {
		d := churned(30, dim, Params{M: m, EfConstruction: 8, EfSearch: 4, Seed: uint64(m)}, true)
		f.Add(d.h.MarshalGraph())
	}
	f.Add(smallRaw().bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		// Take the dimension from the header where it is small, so that
		// the fuzzer can reach the nodes of graphs of any dimension.
		dim := 4
		if len(data) > len(graphMagic) {
			if d, k := binary.Uvarint(data[len(graphMagic):]); k > 0 && d >= 1 && d <= 64 {
				dim = int(d)
			}
		}
		h, _, err := LoadGraph(dim, data, fuzzVec(dim), 1)
		if err != nil {
			if h != nil {
				t.Fatal("an index and an error")
			}
			return
		}
		q := make([]float32, dim)
		q[0] = 1
		for _, r := range h.Search(q, 5) {
			if !h.Has(r.Key) {
				t.Fatalf("Search returned %d, which is not live", r.Key)
			}
		}
		again := h.MarshalGraph()
		h2, _, err := LoadGraph(dim, again, fuzzVec(dim), 1)
		if err != nil {
			t.Fatalf("re-marshalled graph does not load: %v", err)
		}
		if third := h2.MarshalGraph(); !bytes.Equal(third, again) {
			t.Fatalf("load changes a loaded graph's bytes:\n% x\n% x", again, third)
		}
		h.Add(math.MinInt64, q)
		h.Search(q, 5)
		h.Delete(math.MinInt64)
	})
}

// graphBench is an index of 20,000 × 384 clustered vectors shared by the
// graph benchmarks, built once: about ten seconds.
var graphBench struct {
	once sync.Once
	h    *HNSW
	vecs []float32
	took time.Duration
}

const graphBenchN, graphBenchDim = 20_000, 384

func loadGraphBench(b *testing.B) (*HNSW, func(int64) []float32) {
	b.Helper()
	gb := &graphBench
	gb.once.Do(func() {
		gb.vecs = clustered(graphBenchN, graphBenchDim, 50, 42)
		keys := make([]int64, graphBenchN)
		for i := range keys {
			keys[i] = int64(i)
		}
		start := time.Now()
		gb.h = Build(graphBenchDim, keys, gb.vecs, DefaultParams(), 2)
		gb.took = time.Since(start)
	})
	b.Logf("Build of %d×%d on 2 goroutines: %v", graphBenchN, graphBenchDim, gb.took.Round(time.Millisecond))
	vec := func(key int64) []float32 {
		return gb.vecs[key*graphBenchDim : (key+1)*graphBenchDim]
	}
	return gb.h, vec
}

// BenchmarkMarshalGraph measures MarshalGraph at 20,000 × 384.
func BenchmarkMarshalGraph(b *testing.B) {
	h, _ := loadGraphBench(b)
	var data []byte
	for b.Loop() {
		data = h.MarshalGraph()
	}
	b.ReportMetric(float64(len(data))/1e6, "MB")
}

// BenchmarkLoadGraph measures LoadGraph at 20,000 × 384, against the
// Build time loadGraphBench logs.
func BenchmarkLoadGraph(b *testing.B) {
	h, vec := loadGraphBench(b)
	data := h.MarshalGraph()
	for b.Loop() {
		if _, _, err := LoadGraph(graphBenchDim, data, vec, 1); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(data))/1e6, "MB")
}
