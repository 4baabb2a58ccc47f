package store

import "context"

// JobCounts returns how many jobs of the queue (River's river_job table in
// this database) are waiting or running, by state. Finished jobs are left
// out: they only wait for River's cleaner, and counting them would scan a
// table that grows with traffic.
func (db *DB) JobCounts(ctx context.Context) (map[string]int64, error) {
	// Every state is reported, zero included, so a dashboard sees a queue
	// drain to nothing rather than a series that disappears.
	counts := map[string]int64{"available": 0, "pending": 0, "retryable": 0, "running": 0, "scheduled": 0}
	err := db.Read(ctx, func(tx *Tx) error {
		rows, err := tx.Query(ctx, `SELECT CAST(state AS TEXT), count(*) FROM river_job
			WHERE state IN ('available', 'pending', 'retryable', 'running', 'scheduled') GROUP BY state`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var state string
			var n int64
			if err := rows.Scan(&state, &n); err != nil {
				return err
			}
			counts[state] = n
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	return counts, nil
}
