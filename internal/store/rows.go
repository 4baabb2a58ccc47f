package store

import (
	"context"
	"database/sql"
	"errors"
)

// rowByID reads the row of table with id within the scope cond (with its
// args) in tx, locked for the rest of a write transaction when lock is
// set; a missing row is notFound(id). The module stores' find functions
// share it, each naming its table, columns, scan and error.
func rowByID[T any](ctx context.Context, tx *Tx, table, columns, id, cond string, args []any, lock bool,
	scan func(scanner, *T) error, notFound func(string) error) (T, error) {
	var v T
	q := `SELECT ` + columns + ` FROM ` + table + ` WHERE id = ? AND ` + cond
	if lock {
		q += tx.Dialect().ForUpdate()
	}
	err := scan(tx.QueryRow(ctx, q, append([]any{id}, args...)...), &v)
	if errors.Is(err, sql.ErrNoRows) {
		return v, notFound(id)
	}
	return v, err
}

// readInScope runs find in a read transaction with the tenant condition of
// ctx's scope: the Find methods that read one record.
func readInScope[T any](ctx context.Context, db *DB, find func(tx *Tx, cond string, args []any) (T, error)) (T, error) {
	var v T
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return v, err
	}
	err = db.Read(ctx, func(tx *Tx) error {
		v, err = find(tx, cond, args)
		return err
	})
	return v, err
}
