package metrics

import (
	"runtime/metrics"
)

// RegisterRuntime registers process metrics (where the platform provides
// them cheaply; see registerProcess) and Go runtime metrics:
//
//	go_goroutines                 goroutines that currently exist
//	go_gc_cycles_total            completed GC cycles
//	go_memstats_heap_alloc_bytes  bytes of allocated heap objects
//	go_memstats_sys_bytes         bytes obtained from the OS
//
// The Go values come from runtime/metrics, which unlike
// runtime.ReadMemStats does not stop the world. The memstats names are kept
// because dashboards expect them; the values match the MemStats fields
// HeapAlloc and Sys. It panics if called twice on the same registry.
func (r *Registry) RegisterRuntime() {
	registerProcess(r)

	r.GaugeFunc("go_goroutines", "Number of goroutines that currently exist.",
		nil, runtimeMetric("/sched/goroutines:goroutines"))
	r.CounterFunc("go_gc_cycles_total", "Number of completed GC cycles.",
		nil, runtimeMetric("/gc/cycles/total:gc-cycles"))
	r.GaugeFunc("go_memstats_heap_alloc_bytes", "Number of heap bytes allocated and still in use.",
		nil, runtimeMetric("/memory/classes/heap/objects:bytes"))
	r.GaugeFunc("go_memstats_sys_bytes", "Number of bytes obtained from the OS.",
		nil, runtimeMetric("/memory/classes/total:bytes"))
}

// runtimeMetric returns a collect function that reads one runtime/metrics
// value. A name the running Go version does not know yields no sample, so
// the family shows with HELP and TYPE only instead of failing the scrape.
func runtimeMetric(name string) func() []Sample {
	return func() []Sample {
		s := []metrics.Sample{{Name: name}}
		metrics.Read(s)
		switch v := s[0].Value; v.Kind() {
		case metrics.KindUint64:
			return []Sample{{Value: float64(v.Uint64())}}
		case metrics.KindFloat64:
			return []Sample{{Value: v.Float64()}}
		default:
			return nil
		}
	}
}

// singleSample adapts a reader that may fail to a collect function: on an
// error the family is shown without samples rather than failing the scrape,
// since a transient /proc hiccup is not worth losing every other metric.
func singleSample(read func() (float64, error)) func() []Sample {
	return func() []Sample {
		v, err := read()
		if err != nil {
			return nil
		}
		return []Sample{{Value: v}}
	}
}
