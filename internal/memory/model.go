package memory

import (
	"context"
	"time"
)

// This file holds the module's stored records and the Store interface the
// main database implements (internal/store/memory.go). The store filters
// by the tenant scope in the context, as every other Nodus store does.

// Memory is one fact an app keeps about one of its users.
type Memory struct {
	ID               string
	TenantID         string
	AppName          string
	UserID           string
	Text             string
	Hash             string   // Hash(Text): unique per tenant, app and user
	Categories       []string // nil when none
	SessionID        string   // the session (conversation) it came from, if any
	SourceMessageIDs []string // the messages it came from, nil when none
	EmbeddingModel   string   // "" when it has no vector
	Embedding        []float32
	CreatedAt        time.Time
	UpdatedAt        time.Time
}

// History events, as mem0 names them.
const (
	EventAdd    = "ADD"
	EventUpdate = "UPDATE"
	EventDelete = "DELETE"
	EventNone   = "NONE" // a Change that changed nothing; never stored
)

// HistoryEntry is one change to a memory.
type HistoryEntry struct {
	ID        string
	TenantID  string
	MemoryID  string
	Event     string // EventAdd, EventUpdate or EventDelete
	Old       string // the text before ("" for ADD)
	New       string // the text after ("" for DELETE)
	Actor     string
	CreatedAt time.Time
}

// Store keeps memories and their history. A memory of another tenant is
// ENOTFOUND.
type Store interface {
	// CreateMemory stores m with its ADD history entry h (whose MemoryID,
	// Event, Old and New it sets), in one transaction. A memory of the
	// same user of the app with the same hash is ECONFLICT.
	CreateMemory(ctx context.Context, m Memory, h HistoryEntry) error
	FindMemory(ctx context.Context, id string) (Memory, error)
	// FindMemoryByHash returns the user's memory of the app with hash,
	// or ENOTFOUND.
	FindMemoryByHash(ctx context.Context, appName, userID, hash string) (Memory, error)
	// ListMemories returns a page of the user's memories of the app,
	// newest first by (updated_at, id), and the next page's cursor, ""
	// after the last.
	ListMemories(ctx context.Context, appName, userID, cursor string, limit int) ([]Memory, string, error)
	// LoadMemoryCorpus returns the version of the user's memories of the
	// app (MemoryVersion) and the newest limit of them with their vectors,
	// newest first, for search. The version is read first, so it is never
	// newer than the memories.
	LoadMemoryCorpus(ctx context.Context, appName, userID string, limit int) (int64, []Memory, error)
	// MemoryVersion returns the version of the user's memories of the app:
	// every write to them moves it on, and it is 0 when they never had
	// one. Versions start at random, so a user purged and made again does
	// not repeat one.
	MemoryVersion(ctx context.Context, appName, userID string) (int64, error)
	// UpdateMemory reads the memory under a lock, applies change and
	// writes back its text, hash, categories, vector and update time with
	// the UPDATE history entry h (MemoryID, Event, Old and New set by the
	// store), in one transaction. A hash another memory of the user has is
	// ECONFLICT.
	UpdateMemory(ctx context.Context, id string, change func(*Memory) error, h HistoryEntry) (Memory, error)
	// DeleteMemory removes the memory and writes its DELETE history entry
	// h in one transaction, and returns what it removed. The history stays.
	DeleteMemory(ctx context.Context, id string, h HistoryEntry) (Memory, error)
	// DeleteMemories removes every memory of the user of the app, each
	// with a DELETE history entry made from h (a new id each), in one
	// transaction, and returns how many it removed.
	DeleteMemories(ctx context.Context, appName, userID string, h HistoryEntry) (int, error)
	// ListMemoryHistory returns a memory's history, oldest first, also
	// after the memory was deleted; ENOTFOUND when it has none in scope.
	ListMemoryHistory(ctx context.Context, memoryID string) ([]HistoryEntry, error)
	// DeleteMemoryTenant removes every memory and history row of the
	// scoped tenant, for a tenant purge.
	DeleteMemoryTenant(ctx context.Context) error
}
