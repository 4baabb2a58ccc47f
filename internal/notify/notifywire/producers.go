package notifywire

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/nodus-os/nodus/internal/egress"
	"github.com/nodus-os/nodus/internal/gateway"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/notify"
)

// ExpiringKeys lists active gateway keys of every tenant expiring in
// [from, to), by expiry and id, after (afterExpiry, afterID): the gateway
// database (*store.DB's ListKeysExpiring), read in the all-tenants scope.
type ExpiringKeys interface {
	ListKeysExpiring(ctx context.Context, from, to time.Time, afterExpiry time.Time, afterID string, limit int) ([]gateway.Key, error)
}

// keyExpiryPage is how many keys the sweep reads at a time.
const keyExpiryPage = 500

// KeyExpiry tells a gateway key's owner and the tenant's org_admins that
// the key expires within notify.KeyExpiryWarning. It is the periodic
// job's work (jobs.AddKeyExpiry); each key and expiry is published once
// (the dedupe key), so the sweep may run as often as it likes and a key
// whose expiry is moved is announced again.
type KeyExpiry struct {
	Keys   ExpiringKeys
	Notify *notify.Service
	Logger *slog.Logger
	Now    func() time.Time
}

// NotifyExpiring sweeps every tenant's keys and returns how many expiring
// keys it reported (published now or before).
func (k KeyExpiry) NotifyExpiring(ctx context.Context) (int, error) {
	now, log := time.Now, k.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if k.Now != nil {
		now = k.Now
	}
	from := now().UTC()
	to := from.Add(notify.KeyExpiryWarning)
	ctx = nodus.WithAllTenants(ctx)
	n := 0
	var afterExp time.Time
	afterID := ""
	for {
		keys, err := k.Keys.ListKeysExpiring(ctx, from, to, afterExp, afterID, keyExpiryPage)
		if err != nil {
			return n, err
		}
		for _, key := range keys {
			if err := k.Notify.Notify(ctx, keyExpiringEvent(key, from), keyAudience(key)); err != nil {
				// One tenant's failure does not stop the others' notices.
				log.WarnContext(ctx, "key expiry notification not published", "tenant", key.TenantID, "key", key.ID, "err", err)
				continue
			}
			n++
		}
		if len(keys) < keyExpiryPage {
			return n, nil
		}
		last := keys[len(keys)-1]
		afterExp, afterID = *last.ExpiresAt, last.ID
	}
}

func keyAudience(k gateway.Key) notify.Audience {
	to := notify.Audience{Roles: []string{notify.RoleOrgAdmin}}
	if k.UserID != "" {
		to.UserIDs = []string{k.UserID}
	}
	return to
}

func keyExpiringEvent(k gateway.Key, now time.Time) notify.Event {
	exp := k.ExpiresAt.UTC()
	left := exp.Sub(now)
	when := "in " + strconv.Itoa(int(left.Hours()/24)) + " days"
	if left < 48*time.Hour {
		when = "in " + strconv.Itoa(max(int(left.Hours()), 1)) + " hours"
	}
	return notify.Event{TenantID: k.TenantID, Kind: notify.KindKeyExpiring, Link: "/gateway/keys",
		DedupeKey: "key.expiring:" + k.ID + ":" + strconv.FormatInt(exp.Unix(), 10),
		Title:     "Gateway key " + k.Name + " expires " + when,
		Body: "The key " + k.Prefix + "… expires at " + exp.Format("2006-01-02 15:04 MST") +
			". Calls with it are refused from then on; create a new key or extend this one.",
		Data: map[string]any{"key_id": k.ID, "name": k.Name, "prefix": k.Prefix, "user_id": k.UserID, "expires_at": exp}}
}

// EgressDenials is egress.Options.Denied: the tenant's org_admins hear that
// an outbound request was refused, once per target (host:port) and hour.
// A loop of refusals costs a map lookup each here, and at most one
// publish per target, hour and replica; the dedupe key makes the replicas'
// publishes one notification.
func EgressDenials(n func() *notify.Service, log *slog.Logger, now func() time.Time) func(ctx context.Context, d egress.Denial) {
	l := &denialLimiter{seen: map[string]int64{}}
	return func(ctx context.Context, d egress.Denial) {
		svc := n()
		if svc == nil {
			return
		}
		hour := now().UTC().Truncate(time.Hour)
		if !l.first(d.TenantID+"|"+d.Target, hour.Unix()) {
			return
		}
		ev := notify.Event{TenantID: d.TenantID, Kind: notify.KindEgressDenied, Link: "/egress",
			DedupeKey: "egress.denied:" + d.Target + ":" + strconv.FormatInt(hour.Unix(), 10),
			Title:     "Outbound request to " + d.Target + " denied",
			Body: "Nodus refused a request of your organisation to " + d.Target + " (" + string(d.Reason) + "): " + d.Detail +
				". If the host should be reachable, add it to the egress policy. Further refusals to it this hour are not notified.",
			Data: map[string]any{"target": d.Target, "reason": string(d.Reason), "detail": d.Detail, "mode": string(d.Mode),
				"hour": hour}}
		// Off the request's path: the refusal answers at once, the
		// notification is written behind it.
		go func() {
			ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			notifyOrLog(ctx, svc, log, ev, notify.Audience{Roles: []string{notify.RoleOrgAdmin}})
		}()
	}
}

// denialLimiter remembers the hour each (tenant, target) was last
// notified in; bounded, it forgets everything when full (at worst one more
// publish per target, which the dedupe key absorbs).
type denialLimiter struct {
	mu   sync.Mutex
	seen map[string]int64
}

const maxDenialKeys = 10000

func (l *denialLimiter) first(key string, hour int64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seen[key] == hour {
		return false
	}
	if len(l.seen) >= maxDenialKeys {
		clear(l.seen)
	}
	l.seen[key] = hour
	return true
}
