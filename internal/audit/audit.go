package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nodus-os/nodus/internal/nodus"
)

// Actor kinds: who performed an action.
const (
	ActorUser      = "user"      // a signed-in user (session)
	ActorToken     = "token"     // a user's API token
	ActorMachine   = "machine"   // a vault machine identity (its access token)
	ActorSystem    = "system"    // Nodus itself: jobs, start-up, operator commands
	ActorAnonymous = "anonymous" // nobody authenticated, e.g. a failed sign-in
)

// GenesisHash is the PrevHash of the first entry.
const GenesisHash = "0000000000000000000000000000000000000000000000000000000000000000"

// List limits.
const (
	DefaultLimit = 50
	MaxLimit     = 500
)

// Entry is one recorded action.
type Entry struct {
	ID        string    `json:"id"`  // UUIDv7
	Seq       int64     `json:"seq"` // position in the chain, from 1; assigned by the store
	Time      time.Time `json:"time"`
	TenantID  string    `json:"tenant_id,omitempty"` // "" for platform-level actions
	ActorID   string    `json:"actor_id,omitempty"`  // user id; "" for system or anonymous
	ActorKind string    `json:"actor_kind"`
	// Action names what happened as domain.verb: auth.login,
	// auth.login_failed, authz.denied, user.create, tenant.delete,
	// token.create, setting.update, secret.read, …
	Action     string `json:"action"`
	TargetType string `json:"target_type,omitempty"`
	TargetID   string `json:"target_id,omitempty"`
	Address    string `json:"address,omitempty"` // client IP address
	UserAgent  string `json:"user_agent,omitempty"`
	// Changes maps a field to its value before and after. Never secrets:
	// the caller redacts them.
	Changes  map[string]Change `json:"changes,omitempty"`
	PrevHash string            `json:"prev_hash"`
	Hash     string            `json:"hash"`
}

// About returns e, which carries who acted (actor, address, user agent),
// as the entry of one action on one target of tenantID ("" for the
// platform) with changes.
func (e Entry) About(tenantID, action, targetType, targetID string, changes map[string]Change) Entry {
	e.TenantID, e.Action, e.TargetType, e.TargetID, e.Changes = tenantID, action, targetType, targetID, changes
	return e
}

// Change is one field's value before and after an action. A creation has
// no Before and a deletion no After.
type Change struct {
	Before any `json:"before,omitempty"`
	After  any `json:"after,omitempty"`
}

// Filter selects entries for List. Empty fields do not filter. Since is
// inclusive and Until exclusive.
type Filter struct {
	Action     string
	ActorID    string
	TargetType string
	TargetID   string
	TenantID   string
	Since      time.Time
	Until      time.Time
	Limit      int
	Cursor     string // from the previous page; "" for the first
}

// Store keeps the log. The store, not the service, assigns Seq and
// PrevHash, because only it can do so atomically.
type Store interface {
	// AppendAudit assigns e the next Seq and the previous entry's hash as
	// PrevHash, computes its Hash and inserts it, atomically with respect
	// to concurrent appenders. On success e holds what was stored.
	AppendAudit(ctx context.Context, e *Entry) error
	// ListAudit returns the entries f selects, newest first, scoped by
	// nodus.TenantScope(ctx), and a cursor for the next page ("" on the
	// last). Without a scope it returns nodus.ErrNoScope.
	ListAudit(ctx context.Context, f Filter) ([]Entry, string, error)
	// WalkAudit calls fn with every entry in Seq order, across tenants, and
	// stops at fn's first error, which it returns.
	WalkAudit(ctx context.Context, fn func(Entry) error) error
}

// Service records, lists and verifies audit entries.
type Service struct {
	store Store
	clock nodus.Clock
}

// NewService returns a Service over s. A nil clock is the system clock.
func NewService(s Store, c nodus.Clock) *Service {
	if c == nil {
		c = nodus.SystemClock{}
	}
	return &Service{store: s, clock: c}
}

// Field limits. Address and UserAgent come from request headers, which a
// client controls, so they are cleaned and cut rather than rejected: a
// security event must not be lost because its user agent was odd.
const (
	maxAction     = 100
	maxID         = 200
	maxAddress    = 100
	maxUserAgent  = 512
	maxChangesLen = 64 << 10
)

var actionPattern = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$`)

// Record appends e to the log. It sets ID and Time (any values the caller
// gave are replaced), defaults ActorKind to "user" when ActorID is set and
// "anonymous" otherwise, and validates the rest: Action is required.
func (s *Service) Record(ctx context.Context, e Entry) error {
	e.ID = nodus.NewID()
	e.Time = s.clock.Now().UTC().Truncate(time.Microsecond)
	e.Seq, e.PrevHash, e.Hash = 0, "", ""
	e.Address = clean(e.Address, maxAddress)
	e.UserAgent = clean(e.UserAgent, maxUserAgent)
	if e.ActorKind == "" {
		e.ActorKind = ActorAnonymous
		if e.ActorID != "" {
			e.ActorKind = ActorUser
		}
	}
	if err := validate(&e); err != nil {
		return err
	}
	if err := s.store.AppendAudit(ctx, &e); err != nil {
		return fmt.Errorf("audit: record %s: %w", e.Action, err)
	}
	return nil
}

func validate(e *Entry) error {
	f := map[string]string{}
	if e.Action == "" || len(e.Action) > maxAction || !actionPattern.MatchString(e.Action) {
		f["action"] = fmt.Sprintf("required: domain.verb in lower case, at most %d characters", maxAction)
	}
	switch e.ActorKind {
	case ActorUser, ActorToken, ActorMachine:
		if e.ActorID == "" {
			f["actor_id"] = "required for user, token and machine actors"
		}
	case ActorSystem, ActorAnonymous:
	default:
		f["actor_kind"] = "must be user, token, machine, system or anonymous"
	}
	for name, v := range map[string]string{
		"tenant_id": e.TenantID, "actor_id": e.ActorID, "target_type": e.TargetType, "target_id": e.TargetID,
	} {
		if len(v) > maxID || !utf8.ValidString(v) || strings.ContainsRune(v, 0) {
			if _, ok := f[name]; !ok {
				f[name] = fmt.Sprintf("at most %d bytes of text", maxID)
			}
		}
	}
	if b, err := MarshalChanges(e.Changes); err != nil {
		f["changes"] = "must be encodable as JSON"
	} else if len(b) > maxChangesLen {
		f["changes"] = fmt.Sprintf("at most %d bytes as JSON", maxChangesLen)
	}
	if len(f) > 0 {
		return &nodus.Error{Code: nodus.EINVALID, Message: "invalid audit entry", Fields: f}
	}
	return nil
}

// clean makes client-supplied text storable: valid UTF-8, no NUL (which
// PostgreSQL's text refuses), at most max bytes, cut on a rune boundary.
func clean(s string, max int) string {
	s = strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "")
	if len(s) <= max {
		return s
	}
	s = s[:max]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// List returns the entries f selects, newest first, and the cursor of the
// next page ("" on the last). The context's tenant scope limits what is
// visible. Limit defaults to DefaultLimit and is capped at MaxLimit.
func (s *Service) List(ctx context.Context, f Filter) ([]Entry, string, error) {
	if f.Limit <= 0 {
		f.Limit = DefaultLimit
	}
	f.Limit = min(f.Limit, MaxLimit)
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Until.After(f.Since) {
		return nil, "", &nodus.Error{Code: nodus.EINVALID, Message: "invalid audit filter",
			Fields: map[string]string{"until": "must be after since"}}
	}
	entries, next, err := s.store.ListAudit(ctx, f)
	if err != nil {
		return nil, "", fmt.Errorf("audit: list: %w", err)
	}
	return entries, next, nil
}

// Chain problems reported by ChainError.
const (
	ProblemMissing    = "missing"       // a Seq is absent: a row was deleted
	ProblemOrder      = "out_of_order"  // a Seq repeats or goes back
	ProblemHash       = "hash_mismatch" // the row's content does not match its hash: it was edited
	ProblemLink       = "link_mismatch" // PrevHash is not the previous row's hash: a row was replaced, reordered or deleted
	ProblemUnreadable = "unreadable"    // the stored row cannot be decoded: it was edited
)

// ChainError reports the first place where the chain is broken.
type ChainError struct {
	Seq     int64  // the position where the chain breaks
	ID      string // the id of the row found there; "" when it is missing
	Problem string // one of the Problem constants
	Detail  string
}

func (e *ChainError) Error() string {
	var what string
	switch e.Problem {
	case ProblemMissing:
		what = "no such row: a row was deleted"
	case ProblemOrder:
		what = "rows out of order"
	case ProblemHash:
		what = "hash does not match the content: the row was edited"
	case ProblemLink:
		what = "prev_hash does not match the previous row's hash: a row was replaced, reordered or deleted"
	case ProblemUnreadable:
		what = "the row cannot be read: it was edited"
	default:
		what = e.Problem
	}
	if e.Detail != "" {
		what += " (" + e.Detail + ")"
	}
	return fmt.Sprintf("audit: chain broken at seq %d: %s", e.Seq, what)
}

// Verify walks the whole chain and checks every link: Seq runs 1, 2, 3, …
// without gaps, each PrevHash is the previous row's Hash (GenesisHash for
// the first) and each Hash matches the row's content. It returns how many
// entries passed and, at the first break, a *ChainError naming its Seq.
// A database or decoding failure is returned as is.
func (s *Service) Verify(ctx context.Context) (int64, error) {
	var n int64
	prev := GenesisHash
	err := s.store.WalkAudit(ctx, func(e Entry) error {
		want := n + 1
		switch {
		case e.Seq > want:
			return &ChainError{Seq: want, Problem: ProblemMissing,
				Detail: fmt.Sprintf("found seq %d after seq %d", e.Seq, n)}
		case e.Seq < want:
			return &ChainError{Seq: want, ID: e.ID, Problem: ProblemOrder,
				Detail: fmt.Sprintf("found seq %d after seq %d", e.Seq, n)}
		case e.ComputeHash() != e.Hash:
			return &ChainError{Seq: e.Seq, ID: e.ID, Problem: ProblemHash}
		case e.PrevHash != prev:
			return &ChainError{Seq: e.Seq, ID: e.ID, Problem: ProblemLink}
		}
		n, prev = e.Seq, e.Hash
		return nil
	})
	if err != nil {
		var ce *ChainError
		if errors.As(err, &ce) {
			return n, ce
		}
		return n, fmt.Errorf("audit: verify after seq %d: %w", n, err)
	}
	return n, nil
}

// ComputeHash returns the lowercase hex SHA-256 of the entry's canonical
// encoding (see the package documentation), which covers every field but
// Hash. It returns "" when Changes cannot be encoded as JSON; Record
// refuses such entries, so no stored entry has one.
func (e Entry) ComputeHash() string {
	b, err := e.canonical()
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// hashVersion is the "v" member of the canonical encoding.
const hashVersion = 1

// canonicalTime is how the encoding writes Time: UTC, microseconds.
const canonicalTime = "2006-01-02T15:04:05.000000Z"

// canonicalEntry fixes the members of the encoding and their order. Never
// reorder, rename or remove a member: every stored hash depends on it.
type canonicalEntry struct {
	V          int             `json:"v"`
	Seq        int64           `json:"seq"`
	ID         string          `json:"id"`
	Time       string          `json:"time"`
	TenantID   string          `json:"tenant_id"`
	ActorID    string          `json:"actor_id"`
	ActorKind  string          `json:"actor_kind"`
	Action     string          `json:"action"`
	TargetType string          `json:"target_type"`
	TargetID   string          `json:"target_id"`
	Address    string          `json:"address"`
	UserAgent  string          `json:"user_agent"`
	Changes    json.RawMessage `json:"changes"`
	PrevHash   string          `json:"prev_hash"`
}

func (e Entry) canonical() ([]byte, error) {
	changes, err := MarshalChanges(e.Changes)
	if err != nil {
		return nil, err
	}
	return encode(canonicalEntry{
		V:          hashVersion,
		Seq:        e.Seq,
		ID:         e.ID,
		Time:       e.Time.UTC().Format(canonicalTime),
		TenantID:   e.TenantID,
		ActorID:    e.ActorID,
		ActorKind:  e.ActorKind,
		Action:     e.Action,
		TargetType: e.TargetType,
		TargetID:   e.TargetID,
		Address:    e.Address,
		UserAgent:  e.UserAgent,
		Changes:    changes,
		PrevHash:   e.PrevHash,
	})
}

// MarshalChanges returns the canonical JSON of changes: keys sorted at
// every depth, nil sides left out, numbers as encoding/json writes them,
// and {} for none. Values that encode alike (a struct and the map with the
// same members) have the same canonical form. Stores keep exactly these
// bytes.
func MarshalChanges(changes map[string]Change) ([]byte, error) {
	if len(changes) == 0 {
		return []byte("{}"), nil
	}
	b, err := encode(changes)
	if err != nil {
		return nil, fmt.Errorf("audit: encode changes: %w", err)
	}
	// Decoding into plain maps and json.Number and encoding again sorts the
	// keys of nested structs and drops nil sides, so the form is the same
	// before and after a round trip through the database.
	norm, err := decodeChanges(b)
	if err != nil {
		return nil, fmt.Errorf("audit: encode changes: %w", err)
	}
	if len(norm) == 0 {
		return []byte("{}"), nil
	}
	return encode(norm)
}

// UnmarshalChanges decodes changes stored by MarshalChanges, numbers as
// json.Number so they keep their exact text. It refuses input that is not
// in canonical form, which only a hand edit produces. {} decodes to nil.
func UnmarshalChanges(b []byte) (map[string]Change, error) {
	changes, err := decodeChanges(b)
	if err != nil {
		return nil, fmt.Errorf("audit: decode changes: %w", err)
	}
	canon, err := MarshalChanges(changes)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(canon, b) {
		return nil, errors.New("audit: decode changes: not in canonical form")
	}
	if len(changes) == 0 {
		return nil, nil
	}
	return changes, nil
}

func decodeChanges(b []byte) (map[string]Change, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var changes map[string]Change
	if err := dec.Decode(&changes); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data after the changes object")
	}
	return changes, nil
}

// encode is json.Marshal without HTML escaping and without the newline an
// Encoder adds.
func encode(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
