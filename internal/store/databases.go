package store

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/nodus-os/nodus/internal/metrics"
)

// Databases are the module databases of one deployment. Sets that share a
// URL share one *DB (and one pool), as they do on PostgreSQL by default.
type Databases struct {
	bySet  map[string]*DB
	unique []*DB
	label  map[*DB]string
}

// OpenDatabases opens the database of every set in urls, once per distinct
// URL. configFor gives the pool settings for a URL.
func OpenDatabases(ctx context.Context, urls map[string]string, configFor func(url string) Config) (*Databases, error) {
	d := &Databases{bySet: map[string]*DB{}, label: map[*DB]string{}}
	byURL := map[string]*DB{}
	for _, set := range MigrationSets() {
		url, ok := urls[set]
		if !ok {
			d.Close()
			return nil, fmt.Errorf("store: no database URL for %s", set)
		}
		db := byURL[url]
		if db == nil {
			var err error
			cfg := configFor(url)
			if set == SetTracing && cfg.WriteCacheKiB == 0 {
				cfg.WriteCacheKiB = TracingWriteCacheKiB
			}
			if slices.Contains(TempMemorySets, set) {
				cfg.WriteTempMemory = true
			}
			if db, err = Open(ctx, cfg); err != nil {
				d.Close()
				return nil, fmt.Errorf("store: %s database: %w", set, err)
			}
			byURL[url] = db
			d.unique = append(d.unique, db)
			d.label[db] = set
		}
		d.bySet[set] = db
	}
	return d, nil
}

// DB returns the database of a migration set.
func (d *Databases) DB(set string) *DB { return d.bySet[set] }

// Unique returns each distinct database once.
func (d *Databases) Unique() []*DB { return d.unique }

// Label names a database by the first set that uses it: "main" for the
// shared PostgreSQL database, the module's name for a SQLite file.
func (d *Databases) Label(db *DB) string { return d.label[db] }

// MigrationSets returns the SQL migration set of every module on its
// database, in the order they are applied.
func (d *Databases) MigrationSets() ([]MigrationSet, error) {
	var sets []MigrationSet
	for _, set := range MigrationSets() {
		m, err := NewMigrator(set, d.bySet[set])
		if err != nil {
			return nil, err
		}
		sets = append(sets, m)
	}
	return sets, nil
}

// Close closes every database.
func (d *Databases) Close() error {
	var errs []error
	for _, db := range d.unique {
		errs = append(errs, db.Close())
	}
	return errors.Join(errs...)
}

// RegisterMetrics exposes each pool's connections and waits.
func (d *Databases) RegisterMetrics(reg *metrics.Registry) {
	each := func(f func(label string, p PoolStat) metrics.Sample) func() []metrics.Sample {
		return func() []metrics.Sample {
			var out []metrics.Sample
			for _, db := range d.unique {
				for _, p := range db.PoolStats() {
					out = append(out, f(d.label[db], p))
				}
			}
			return out
		}
	}
	reg.GaugeFunc("nodus_db_connections_open", "Open database connections, by database and pool.",
		[]string{"database", "pool"}, each(func(l string, p PoolStat) metrics.Sample {
			return metrics.Sample{LabelValues: []string{l, p.Pool}, Value: float64(p.Open)}
		}))
	reg.GaugeFunc("nodus_db_connections_in_use", "Database connections in use, by database and pool.",
		[]string{"database", "pool"}, each(func(l string, p PoolStat) metrics.Sample {
			return metrics.Sample{LabelValues: []string{l, p.Pool}, Value: float64(p.InUse)}
		}))
	reg.GaugeFunc("nodus_db_connections_max", "Largest size of each database pool.",
		[]string{"database", "pool"}, each(func(l string, p PoolStat) metrics.Sample {
			return metrics.Sample{LabelValues: []string{l, p.Pool}, Value: float64(p.MaxOpen)}
		}))
	reg.CounterFunc("nodus_db_connection_waits_total", "Times a caller waited for a free database connection.",
		[]string{"database", "pool"}, each(func(l string, p PoolStat) metrics.Sample {
			return metrics.Sample{LabelValues: []string{l, p.Pool}, Value: float64(p.WaitCount)}
		}))
	reg.CounterFunc("nodus_db_connection_wait_seconds_total", "Time spent waiting for a free database connection.",
		[]string{"database", "pool"}, each(func(l string, p PoolStat) metrics.Sample {
			return metrics.Sample{LabelValues: []string{l, p.Pool}, Value: p.WaitDuration.Seconds()}
		}))

	// Knowledge bases' vectors are searched from the main database's cache.
	main := d.bySet[SetMain]
	reg.GaugeFunc("nodus_vector_cache_bytes", "Memory held by knowledge bases' vectors kept for search, by index.",
		[]string{"index"}, func() []metrics.Sample {
			var exact, hnsw float64
			for _, st := range main.VectorCacheStats() {
				if st.Approximate {
					hnsw += float64(st.Bytes)
				} else {
					exact += float64(st.Bytes)
				}
			}
			return []metrics.Sample{{LabelValues: []string{"exact"}, Value: exact}, {LabelValues: []string{"hnsw"}, Value: hnsw}}
		})
	reg.GaugeFunc("nodus_vector_sets", "Knowledge bases' vector sets kept for search, by index (building: searched exactly while their HNSW index is built).",
		[]string{"index"}, func() []metrics.Sample {
			var exact, hnsw, building float64
			for _, st := range main.VectorCacheStats() {
				switch {
				case st.Approximate:
					hnsw++
				case st.Building:
					building++
				default:
					exact++
				}
			}
			return []metrics.Sample{{LabelValues: []string{"exact"}, Value: exact}, {LabelValues: []string{"hnsw"}, Value: hnsw},
				{LabelValues: []string{"building"}, Value: building}}
		})
	reg.CounterFunc("nodus_vector_graph_saves_total", "HNSW graphs saved to the main database, by result.",
		[]string{"result"}, func() []metrics.Sample {
			g := main.VectorGraphStats()
			return []metrics.Sample{{LabelValues: []string{"saved"}, Value: float64(g.Saved)},
				{LabelValues: []string{"failed"}, Value: float64(g.SaveFailed)}}
		})
	reg.CounterFunc("nodus_vector_graph_loads_total", "Loads of vector sets past the exact limit, by what became of the saved HNSW graph.",
		[]string{"result"}, func() []metrics.Sample {
			g := main.VectorGraphStats()
			return []metrics.Sample{{LabelValues: []string{"loaded"}, Value: float64(g.Loaded)},
				{LabelValues: []string{"stale"}, Value: float64(g.Stale)},
				{LabelValues: []string{"unusable"}, Value: float64(g.Unusable)},
				{LabelValues: []string{"none"}, Value: float64(g.None)}}
		})
}
