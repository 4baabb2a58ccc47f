package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/nodus-os/nodus/internal/nodus"
)

// This file holds the coordination of replicas. Several gateways on one
// database share every budget and every key's rate limits, and none may
// let its callers overspend a budget or exceed a limit because another
// replica admitted calls at the same time. Asking the database on every
// call would cost a round trip and a row lock per request, so each replica
// claims a part of each capacity in the store and admits calls locally
// against its claim:
//
//   - the store holds one row per (quota, replica): the amount claimed and
//     when the claim expires;
//   - a claim grows only in a transaction that locks the quota and checks
//     that the claims of every live replica plus the budget's written
//     spend stay within the capacity;
//   - a replica admits a call only while its own use (reservations,
//     settled cost not yet written, calls in the window) plus the call
//     fits its claim, so Σ use ≤ Σ claims ≤ capacity at every moment;
//   - a claim shrinks as spend is written (it is then counted in the
//     budget's spend instead) and, after a second without use, to what is
//     still in use, which hands the rest back to the other replicas;
//   - every claim is renewed each second and expires after ClaimTTL, so a
//     replica that dies frees its part within a minute; one that cannot
//     renew stops trusting its claims and forgets them.
//
// A claim grows by what the call needs plus a quarter of what is left, so
// a replica with plenty of room reaches the store a handful of times per
// budget, and only near the end of a budget or limit does every call pay
// a round trip. The price of the scheme: near the end, a replica may be
// refused for up to a second while another holds an unused part that its
// next trim hands back.

// Quota ids name what a claim is on.
const (
	quotaBudget   = "budget:"
	quotaRPM      = "rpm:"
	quotaTPM      = "tpm:"
	quotaParallel = "par:"
)

// ClaimTTL is how long a replica's claims stay valid without renewal;
// claimTrustFor is how long after its last renewal a replica still
// admits calls against them, leaving a margin for clock skew.
const (
	ClaimTTL      = time.Minute
	claimTrustFor = ClaimTTL / 2
)

// claimEvery is how often claims are renewed and unused parts handed back;
// claimIdle is how long a quota must go unused before its spare is.
const (
	claimEvery = time.Second
	claimIdle  = time.Second
)

// claimExtraShare: a claim grows by the need plus 1/claimExtraShare of the
// capacity left beyond it.
const claimExtraShare = 4

// claimTimeout bounds one store call of the coordination: every claim of
// the replica waits on the one in flight, so a database that hangs must
// fail calls (503) rather than hold them all.
const claimTimeout = 5 * time.Second

// QuotaClaim asks to grow one of the replica's claims.
type QuotaClaim struct {
	Quota string // quotaBudget + budget id, or quotaRPM/TPM/Parallel + key id
	// BudgetID, when set, makes the capacity the budget's maximum less its
	// written spend (none when the period has ended); otherwise Capacity
	// is the capacity.
	BudgetID string
	Capacity int64
	// Held is the replica's claim as memory has it, which the row may
	// exceed by spend written since the last sync: the row is set to Held
	// before it grows, so written spend is not counted twice.
	Held int64
	// Need is the least the claim must grow by; it grows by Need plus
	// 1/ExtraShare of what is left beyond it (ExtraShare 0: Need only).
	Need       int64
	ExtraShare int64
}

// ErrQuotaExhausted is returned by ClaimQuotas when a claim cannot grow by
// its need; Index is the first such claim.
type ErrQuotaExhausted struct{ Index int }

func (e *ErrQuotaExhausted) Error() string {
	return fmt.Sprintf("quota %d exhausted", e.Index)
}

// QuotaStore is the shared record of the replicas' claims. The store
// implements it on PostgreSQL and SQLite alike.
type QuotaStore interface {
	// ClaimQuotas grows the replica's claims, all or nothing, in one
	// transaction that locks each quota, and renews their expiry to
	// expires. Claims of other replicas that expired by now do not count.
	// It returns how much each claim grew, or *ErrQuotaExhausted.
	ClaimQuotas(ctx context.Context, replica string, claims []QuotaClaim, now, expires time.Time) ([]int64, error)
	// SetQuotaClaims lowers the replica's claims named in lower to the
	// amounts given (0 removes the row), then renews the expiry of every
	// claim of the replica that has not expired by now. It returns how
	// many claims it renewed.
	SetQuotaClaims(ctx context.Context, replica string, lower map[string]int64, now, expires time.Time) (int, error)
	// ReleaseQuotas removes every claim of the replica.
	ReleaseQuotas(ctx context.Context, replica string) error
}

// quotas is one replica's side of the coordination: its id, the store,
// and the lock that orders every change to its claims in the store.
type quotas struct {
	store   QuotaStore
	replica string
	now     func() time.Time
	log     *slog.Logger

	mu sync.Mutex // held for every store call, so lowering and growing never interleave
	// spendMu is held by the spend writer while it stores spend and then
	// lowers the claims by as much (Ledger.Written). A claim holds it too:
	// between the two, the store's spend and the replica's claim would
	// both count the same spend, and a claim near the end of a budget
	// would be refused for it.
	spendMu sync.Mutex
	// renewed is when the claims were last known valid (UnixNano).
	renewed atomic.Int64
	// observe, when set, counts each store call growing claims by result:
	// granted, refused or error (metrics).
	observe func(result string)
}

func newQuotas(store QuotaStore, now func() time.Time, log *slog.Logger) *quotas {
	q := &quotas{store: store, replica: uuid.NewString(), now: now, log: log}
	q.renewed.Store(now().UnixNano())
	return q
}

// trusted reports whether the replica's claims may be used at now.
func (q *quotas) trusted(now time.Time) bool {
	return now.Sub(time.Unix(0, q.renewed.Load())) < claimTrustFor
}

// errCoordination is a call refused because the replica cannot reach the
// store to claim its share: failing closed is the only way to keep every
// replica within the shared budgets and limits.
func errCoordination(err error) error {
	return &nodus.Error{Code: nodus.EUNAVAILABLE, Message: "gateway: budgets and limits are shared with other replicas and the store cannot be reached",
		RetryAfter: time.Second, Err: err}
}

// claim grows claims in the store. build lists them and apply is told
// the growth of each, both under q.mu, so that no other claim or trim runs
// between reading memory, the store and writing memory back.
func (q *quotas) claim(ctx context.Context, build func() []QuotaClaim, apply func(grown []int64)) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.spendMu.Lock()
	defer q.spendMu.Unlock()
	claims := build()
	if len(claims) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, claimTimeout)
	defer cancel()
	now := q.now()
	grown, err := q.store.ClaimQuotas(ctx, q.replica, claims, now, now.Add(ClaimTTL))
	if q.observe != nil {
		switch {
		case err == nil:
			q.observe("granted")
		case exhaustedIndex(err) >= 0:
			q.observe("refused")
		default:
			q.observe("error")
		}
	}
	if err != nil {
		return err
	}
	apply(grown)
	return nil
}

// trimmer is a holder of claims (the budget ledger, the limiter): trim
// lowers its claims that went unused since idleSince to what is in use,
// sets lower[quota] for each claim it lowered, and returns how many
// non-zero claims it holds after that.
type trimmer interface {
	trimClaims(now, idleSince time.Time, lower map[string]int64) int
	forgetClaims()
}

// sync renews the replica's claims and hands back unused parts. When the
// store renews fewer claims than the replica holds, some expired (the
// replica could not renew for ClaimTTL): others may have claimed that room
// since, so every claim is dropped, here and in the store, and claimed
// afresh by the next calls.
func (q *quotas) sync(ctx context.Context, holders ...trimmer) {
	q.mu.Lock()
	defer q.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, claimTimeout)
	defer cancel()
	now := q.now()
	lower := map[string]int64{}
	held := 0
	for _, h := range holders {
		held += h.trimClaims(now, now.Add(-claimIdle), lower)
	}
	renewed, err := q.store.SetQuotaClaims(ctx, q.replica, lower, now, now.Add(ClaimTTL))
	if err != nil {
		q.log.Warn("gateway: renew shared budget and limit claims", "err", err)
		return
	}
	if renewed < held {
		q.log.Warn("gateway: shared claims expired before renewal; dropping them", "held", held, "renewed", renewed)
		for _, h := range holders {
			h.forgetClaims()
		}
		if err := q.store.ReleaseQuotas(ctx, q.replica); err != nil {
			q.log.Warn("gateway: release expired claims", "err", err)
			return
		}
	}
	q.renewed.Store(now.UnixNano())
}

// release hands every claim back, at shutdown once spend is written.
func (q *quotas) release(ctx context.Context, holders ...trimmer) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, claimTimeout)
	defer cancel()
	for _, h := range holders {
		h.forgetClaims()
	}
	return q.store.ReleaseQuotas(ctx, q.replica)
}

// exhaustedIndex returns the index of the claim the store refused, or -1.
func exhaustedIndex(err error) int {
	var ex *ErrQuotaExhausted
	if errors.As(err, &ex) {
		return ex.Index
	}
	return -1
}
