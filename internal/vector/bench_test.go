package vector

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// Run with:
//
//	go test -run XXX -bench . -benchtime 200x ./internal/vector/

func BenchmarkDot(b *testing.B) {
	for _, dim := range []int{384, 1536} {
		b.Run(fmt.Sprint(dim), func(b *testing.B) {
			v := uniform(2, dim, 1)
			x, y := v[:dim], v[dim:]
			var sink float32
			b.SetBytes(int64(8 * dim))
			for b.Loop() {
				sink += Dot(x, y)
			}
			_ = sink
		})
	}
}

// searchBench is the data BenchmarkSearch shares between its
// sub-benchmarks: building it takes tens of seconds, so it is made once.
type searchBench struct {
	flat      *Flat
	hnsw      *HNSW
	queries   []float32
	truth     [][]Result // Flat's top 10 for each query
	buildTime time.Duration
}

const (
	benchN, benchDim, benchQueries, benchK = 100_000, 384, 200, 10
)

var (
	benchOnce sync.Once
	benchData searchBench
)

func loadSearchBench(b *testing.B) *searchBench {
	b.Helper()
	benchOnce.Do(func() {
		all := clustered(benchN+benchQueries, benchDim, 50, 42)
		vecs, queries := all[:benchN*benchDim], all[benchN*benchDim:]
		keys := make([]int64, benchN)
		flat := NewFlat(benchDim)
		for i := range keys {
			keys[i] = int64(i)
			flat.Add(keys[i], vecs[i*benchDim:(i+1)*benchDim])
		}
		start := time.Now()
		h := Build(benchDim, keys, vecs, DefaultParams(), 0)
		d := &benchData
		d.flat, d.hnsw, d.queries, d.buildTime = flat, h, queries, time.Since(start)
		for i := range benchQueries {
			d.truth = append(d.truth, flat.Search(d.query(i), benchK))
		}
	})
	b.Logf("HNSW Build of %d×%d: %v; Bytes: Flat %d MB, HNSW %d MB", benchN, benchDim,
		benchData.buildTime.Round(time.Millisecond), benchData.flat.Bytes()>>20, benchData.hnsw.Bytes()>>20)
	return &benchData
}

func (d *searchBench) query(i int) []float32 {
	i %= benchQueries
	return d.queries[i*benchDim : (i+1)*benchDim]
}

// BenchmarkSearch measures top-10 search latency at 100,000 × 384
// (clustered): Flat, and HNSW at several EfSearch values around the
// default, each HNSW run reporting its recall@10 against Flat.
func BenchmarkSearch(b *testing.B) {
	b.Run("Flat", func(b *testing.B) {
		d := loadSearchBench(b)
		i := 0
		for b.Loop() {
			d.flat.Search(d.query(i), benchK)
			i++
		}
		b.ReportMetric(float64(d.flat.Bytes())/(1<<20), "MB")
	})
	for _, ef := range []int{32, 64, 96, 128} {
		b.Run(fmt.Sprintf("HNSW/ef=%d", ef), func(b *testing.B) {
			d := loadSearchBench(b)
			var sum float64
			n := 0
			for b.Loop() {
				got := d.hnsw.SearchEf(d.query(n), benchK, ef)
				sum += recall(got, d.truth[n%benchQueries])
				n++
			}
			b.ReportMetric(sum/float64(n), "recall@10")
			b.ReportMetric(d.buildTime.Seconds(), "build-s")
			b.ReportMetric(float64(d.hnsw.Bytes())/(1<<20), "MB")
		})
	}
}
