package usage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nodus-os/nodus/internal/nodus"
)

// Store is what the service needs of the main database, where the
// metrics and the chat and knowledge records live.
type Store interface {
	// UsageActivity returns the chat turns written in [from, turnsTo) and
	// the conversations started and documents ingested in [from, to), of
	// every tenant in ctx's scope.
	UsageActivity(ctx context.Context, from, to, turnsTo time.Time) (Activity, error)
	// ReplaceUsageDay replaces every row of day with rows, in one
	// transaction (the all-tenants scope).
	ReplaceUsageDay(ctx context.Context, day string, rows []Row) error
	// ListUsage returns the scoped tenant's rows of days q.From to q.To
	// summed by q.GroupBy and ordered by it, at most limit of them.
	ListUsage(ctx context.Context, q Query, limit int) ([]Row, error)
	// DeleteUsageTenant deletes the scoped tenant's rows.
	DeleteUsageTenant(ctx context.Context) error
}

// Gateway is what the service reads of the gateway's database.
type Gateway interface {
	// DailyGatewayUsage returns the day's calls of every tenant in scope
	// summed by tenant, user and model (Requests, Errors, tokens, cost),
	// from the gateway's daily rollups.
	DailyGatewayUsage(ctx context.Context, day string) ([]Row, error)
	// GatewayCalls returns the spend log rows of the request ids that
	// still have one.
	GatewayCalls(ctx context.Context, requestIDs []string) ([]Call, error)
}

// Config holds the service's dependencies; Gateway may be nil (the
// gateway's migrations not applied): the metrics then have no calls.
type Config struct {
	Store   Store
	Gateway Gateway
	Logger  *slog.Logger
	Now     func() time.Time
}

// Service is the usage metrics module.
type Service struct {
	store Store
	gw    Gateway
	log   *slog.Logger
	now   func() time.Time
}

// NewService returns the service of cfg.
func NewService(cfg Config) (*Service, error) {
	if cfg.Store == nil {
		return nil, errors.New("usage: a store is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = nodus.SystemClock{}.Now
	}
	return &Service{store: cfg.Store, gw: cfg.Gateway, log: cfg.Logger, now: cfg.Now}, nil
}

// turnSlack is how long after a day a chat turn whose model call started
// that day may be written (the answer's time): turns that late are read
// to attribute the day's calls to their chatbots.
const turnSlack = time.Hour

type rowKey struct{ tenant, chatbot, user, model string }

// RollupDay recomputes day (YYYY-MM-DD) for every tenant from the sources
// and replaces its rows, and returns how many rows it wrote.
func (s *Service) RollupDay(ctx context.Context, day string) (int, error) {
	start, err := time.Parse(DayFormat, day)
	if err != nil {
		return 0, nodus.Errorf(nodus.EINVALID, "day %q is not YYYY-MM-DD", day)
	}
	ctx = nodus.WithAllTenants(ctx)
	end := start.Add(24 * time.Hour)
	act, err := s.store.UsageActivity(ctx, start, end, end.Add(turnSlack))
	if err != nil {
		return 0, fmt.Errorf("usage: activity of %s: %w", day, err)
	}
	rows := map[rowKey]*Row{}
	at := func(k rowKey) *Row {
		r := rows[k]
		if r == nil {
			r = &Row{TenantID: k.tenant, Day: day, ChatbotID: k.chatbot, UserID: k.user, Model: k.model}
			rows[k] = r
		}
		return r
	}
	if s.gw != nil {
		totals, err := s.gw.DailyGatewayUsage(ctx, day)
		if err != nil {
			return 0, fmt.Errorf("usage: gateway usage of %s: %w", day, err)
		}
		for _, t := range totals {
			at(rowKey{t.TenantID, "", t.UserID, t.Model}).add(t)
		}
		// The calls chats made move from chatbot '' to their chatbot,
		// with the spend log's figures: the sum stays the gateway's.
		turnOf := map[string]Turn{}
		var ids []string
		for _, t := range act.Turns {
			if t.RequestID != "" && t.ChatbotID != "" {
				turnOf[t.RequestID] = t
				ids = append(ids, t.RequestID)
			}
		}
		calls, err := s.gw.GatewayCalls(ctx, ids)
		if err != nil {
			return 0, fmt.Errorf("usage: chat calls of %s: %w", day, err)
		}
		for _, c := range calls {
			t, ok := turnOf[c.RequestID]
			if !ok || t.TenantID != c.TenantID || c.StartedAt.UTC().Format(DayFormat) != day {
				continue
			}
			from := rows[rowKey{c.TenantID, "", c.UserID, c.Model}]
			if from == nil {
				continue // the day's rollup lacks it: not written yet, or gone
			}
			moved := Row{Requests: 1, PromptTokens: c.PromptTokens, CompletionTokens: c.CompletionTokens, CostMicros: c.CostMicros}
			if c.Failed {
				moved.Errors = 1
			}
			at(rowKey{c.TenantID, t.ChatbotID, c.UserID, c.Model}).add(moved)
			from.add(Row{Requests: -moved.Requests, Errors: -moved.Errors, PromptTokens: -moved.PromptTokens,
				CompletionTokens: -moved.CompletionTokens, CostMicros: -moved.CostMicros})
		}
	}
	for _, t := range act.Turns {
		if !t.At.Before(start) && t.At.Before(end) {
			at(rowKey{t.TenantID, t.ChatbotID, t.UserID, t.Model}).ChatTurns++
		}
	}
	for _, c := range act.Conversations {
		at(rowKey{c.TenantID, c.ChatbotID, c.UserID, ""}).Conversations += c.Conversations
	}
	for _, d := range act.Documents {
		at(rowKey{d.TenantID, "", d.UserID, ""}).Documents += d.Documents
	}
	out := make([]Row, 0, len(rows))
	for _, r := range rows {
		if !r.zero() {
			out = append(out, *r)
		}
	}
	if err := s.store.ReplaceUsageDay(ctx, day, out); err != nil {
		return 0, fmt.Errorf("usage: replace %s: %w", day, err)
	}
	return len(out), nil
}

// Rollup recomputes yesterday and today (UTC): the days still changing.
// It is the periodic job's work; older days keep the rows of their last
// rebuild.
func (s *Service) Rollup(ctx context.Context) (int, error) {
	today := s.now().UTC()
	n := 0
	for _, d := range []time.Time{today.AddDate(0, 0, -1), today} {
		k, err := s.RollupDay(ctx, d.Format(DayFormat))
		if err != nil {
			return n, err
		}
		n += k
	}
	return n, nil
}

// DefaultDays is a query's period when it names none.
const DefaultDays = 30

// Usage returns tenantID's usage of q's days summed by q's groups. ctx's
// scope must cover the tenant (a tenant's only itself).
func (s *Service) Usage(ctx context.Context, tenantID string, q Query) (Result, error) {
	id, all, ok := nodus.TenantScope(ctx)
	switch {
	case !ok:
		return Result{}, nodus.ErrNoScope
	case tenantID == "":
		return Result{}, nodus.Errorf(nodus.EINVALID, "usage belongs to a tenant; name one")
	case !all && id != tenantID:
		return Result{}, nodus.Errorf(nodus.ENOTFOUND, "tenant %s not found", tenantID)
	}
	q, err := s.normalise(q)
	if err != nil {
		return Result{}, err
	}
	rows, err := s.store.ListUsage(nodus.WithTenant(ctx, tenantID), q, MaxRows+1)
	if err != nil {
		return Result{}, err
	}
	res := Result{From: q.From, To: q.To, GroupBy: q.GroupBy, Rows: rows}
	if len(rows) > MaxRows {
		return Result{}, &nodus.Error{Code: nodus.EINVALID, Message: fmt.Sprintf("more than %d rows; shorten the period or group by less", MaxRows),
			Fields: map[string]string{"group_by": "too many rows"}}
	}
	for _, r := range rows {
		res.Totals.add(r)
	}
	if res.Rows == nil {
		res.Rows = []Row{}
	}
	return res, nil
}

func (s *Service) normalise(q Query) (Query, error) {
	fields := map[string]string{}
	today := s.now().UTC()
	if q.To == "" {
		q.To = today.Format(DayFormat)
	}
	to, err := time.Parse(DayFormat, q.To)
	if err != nil {
		fields["to"] = "must be YYYY-MM-DD"
	}
	if q.From == "" && err == nil {
		q.From = to.AddDate(0, 0, -(DefaultDays - 1)).Format(DayFormat)
	}
	from, ferr := time.Parse(DayFormat, q.From)
	switch {
	case ferr != nil:
		fields["from"] = "must be YYYY-MM-DD"
	case err == nil && from.After(to):
		fields["from"] = "is after to"
	case err == nil && to.Sub(from) >= MaxDays*24*time.Hour:
		fields["from"] = fmt.Sprintf("the period is longer than %d days", MaxDays)
	}
	if !validGroups(q.GroupBy) {
		fields["group_by"] = "name day, chatbot, user or model, each once"
	}
	if len(fields) > 0 {
		return q, &nodus.Error{Code: nodus.EINVALID, Message: "invalid usage query", Fields: fields}
	}
	// Rows are ordered by their groups in one order, whatever the
	// order they were named in.
	var groups []string
	for _, g := range Groups() {
		for _, x := range q.GroupBy {
			if x == g {
				groups = append(groups, g)
			}
		}
	}
	if groups == nil {
		groups = []string{}
	}
	q.GroupBy = groups
	return q, nil
}

// PurgeTenant deletes the tenant's metrics.
func (s *Service) PurgeTenant(ctx context.Context, tenantID string) error {
	return s.store.DeleteUsageTenant(nodus.WithTenant(ctx, tenantID))
}
