package store

import (
	"context"
	"encoding/base64"
	"strings"
	"time"

	"github.com/nodus-os/nodus/internal/nodus"
)

// scopeCond returns the condition that limits a query on col to the
// context's tenant scope: "col = ?" with the tenant, or "1 = 1" for the
// all-tenants scope. Without a scope it fails closed with nodus.ErrNoScope;
// every query on tenant-owned rows goes through it.
func scopeCond(ctx context.Context, col string) (string, []any, error) {
	id, all, ok := nodus.TenantScope(ctx)
	switch {
	case !ok:
		return "", nil, nodus.ErrNoScope
	case all:
		return "1 = 1", nil, nil
	}
	return col + " = ?", []any{id}, nil
}

// crossTenant returns ctx with the all-tenants scope. It is for the few
// store methods that take no scope by design, whose SQL itself names the
// rows: sign-in lookups by login or secret hash (they are how a request
// gets its scope), the audit chain (one sequence across tenants) and the
// gateway's batched spend and key touches. On PostgreSQL, row-level
// security would otherwise show them no tenant row at all; see setScope.
func crossTenant(ctx context.Context) context.Context { return nodus.WithAllTenants(ctx) }

// requireAllTenants fails unless ctx has the all-tenants scope: for
// platform-level writes such as creating a tenant.
func requireAllTenants(ctx context.Context) error {
	_, all, ok := nodus.TenantScope(ctx)
	if !ok {
		return nodus.ErrNoScope
	}
	if !all {
		return nodus.Errorf(nodus.EFORBIDDEN, "this needs the platform scope")
	}
	return nil
}

// Page limits.
const (
	defaultPageSize = 50
	maxPageSize     = 500
)

func pageSize(limit int) int {
	switch {
	case limit <= 0:
		return defaultPageSize
	case limit > maxPageSize:
		return maxPageSize
	}
	return limit
}

// encodeCursor and decodeCursor make the last id of a page opaque to
// clients. Ids are UUIDv7, so id order is creation order.
func encodeCursor(lastID string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(lastID))
}

var errBadCursor = nodus.Errorf(nodus.EINVALID, "invalid cursor")

// timeKey is the position of a row listed newest first by (time, id):
// fixed-width times, so keys of one list compare as their rows sort.
func timeKey(at time.Time, id string) string {
	return at.UTC().Format(TimeFormat) + " " + id
}

// encodeTimeCursor makes a timeKey opaque to clients.
func encodeTimeCursor(at time.Time, id string) string {
	return encodeCursor(timeKey(at, id))
}

// decodeTimeCursor reads a cursor of encodeTimeCursor (or of listPage
// over timeKey), refusing one whose id validID refuses.
func decodeTimeCursor(c string, validID func(string) bool) (time.Time, string, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return time.Time{}, "", errBadCursor
	}
	at, id, ok := strings.Cut(string(b), " ")
	t, err := time.Parse(TimeFormat, at)
	if !ok || err != nil || !validID(id) {
		return time.Time{}, "", errBadCursor
	}
	return t, id, nil
}

// anyID accepts any id but the empty one: client-chosen ids (traces,
// request ids) are not UUIDs.
func anyID(id string) bool { return id != "" }

func decodeCursor(c string) (string, error) {
	if c == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || !nodus.ValidID(string(b)) {
		return "", errBadCursor
	}
	return string(b), nil
}
