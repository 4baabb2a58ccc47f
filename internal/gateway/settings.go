package gateway

import (
	"context"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/nodus-os/nodus/internal/audit"
	"github.com/nodus-os/nodus/internal/nodus"
)

// This file holds the management of a tenant's router settings and price
// overrides. Like every other change, each drops the tenant's cached
// configuration so the next call in this process sees it.

// Bounds of what an admin may set.
const (
	maxNumRetries      = 10
	maxAllowedFails    = 1000
	maxFailWindowSecs  = 3600
	maxCooldownSecs    = 24 * 3600
	maxFallbackModels  = 200
	maxFallbackTargets = 10
	maxModelNameLen    = 200
	// maxPriceMicros is $1 a token: no real price comes near it, and sums
	// of such prices stay far from overflowing an int64.
	maxPriceMicros = 1_000_000_000_000
)

// RouterSettingsInput is a tenant's routing rules as an admin writes them.
// Zero fields take the defaults; RouterSettings.Input gives the stored
// rules back in this form, so an answer can be sent back unchanged.
type RouterSettingsInput struct {
	Strategy          string              `json:"strategy"`            // "weighted" (default) or "least-busy"
	NumRetries        *int                `json:"num_retries"`         // retries within a group, 0 for none; null: the default (2)
	AllowedFails      int                 `json:"allowed_fails"`       // failures in the window that cool a deployment down; 0: the default (3)
	FailWindowSeconds int                 `json:"fail_window_seconds"` // 0: the default (60)
	CooldownSeconds   int                 `json:"cooldown_seconds"`    // 0: the default (30)
	Fallbacks         map[string][]string `json:"fallbacks"`           // public model → models to try, in order, once its group fails
}

func (in RouterSettingsInput) validate() error {
	switch {
	case in.Strategy != "" && in.Strategy != StrategyWeighted && in.Strategy != StrategyLeastBusy:
		return invalid("strategy", "weighted or least-busy")
	case in.NumRetries != nil && (*in.NumRetries < 0 || *in.NumRetries > maxNumRetries):
		return invalid("num_retries", "between 0 (no retries) and 10, or null for the default")
	case in.AllowedFails < 0 || in.AllowedFails > maxAllowedFails:
		return invalid("allowed_fails", "between 0 (the default) and 1000")
	case in.FailWindowSeconds < 0 || in.FailWindowSeconds > maxFailWindowSecs:
		return invalid("fail_window_seconds", "between 0 (the default) and 3600")
	case in.CooldownSeconds < 0 || in.CooldownSeconds > maxCooldownSecs:
		return invalid("cooldown_seconds", "between 0 (the default) and 86400")
	case len(in.Fallbacks) > maxFallbackModels:
		return invalid("fallbacks", "at most 200 models")
	}
	for _, model := range slices.Sorted(maps.Keys(in.Fallbacks)) {
		targets := in.Fallbacks[model]
		switch {
		case !validModelName(model):
			return invalid("fallbacks", "a model name is empty, too long or holds control characters")
		case len(targets) == 0 || len(targets) > maxFallbackTargets:
			return invalid("fallbacks", model+": between 1 and 10 fallback models")
		}
		for i, fb := range targets {
			switch {
			case !validModelName(fb):
				return invalid("fallbacks", model+": a fallback name is empty, too long or holds control characters")
			case fb == model:
				return invalid("fallbacks", model+": a model cannot fall back to itself")
			case slices.Contains(targets[:i], fb):
				return invalid("fallbacks", model+": "+fb+" is listed twice")
			}
		}
	}
	return nil
}

// settings turns the input into stored rules.
func (in RouterSettingsInput) settings(tenantID string) RouterSettings {
	s := RouterSettings{TenantID: tenantID, Strategy: in.Strategy, AllowedFails: in.AllowedFails,
		FailWindow: time.Duration(in.FailWindowSeconds) * time.Second, CooldownTime: time.Duration(in.CooldownSeconds) * time.Second}
	if s.Strategy == "" {
		s.Strategy = StrategyWeighted
	}
	// Stored, zero means the default and a negative number none.
	switch {
	case in.NumRetries == nil:
	case *in.NumRetries == 0:
		s.NumRetries = -1
	default:
		s.NumRetries = *in.NumRetries
	}
	if len(in.Fallbacks) > 0 {
		s.Fallbacks = make(map[string][]string, len(in.Fallbacks))
		for k, v := range in.Fallbacks {
			s.Fallbacks[k] = slices.Clone(v)
		}
	}
	return s
}

// Input returns the rules as an admin writes them.
func (s RouterSettings) Input() RouterSettingsInput {
	in := RouterSettingsInput{Strategy: s.Strategy, AllowedFails: s.AllowedFails,
		FailWindowSeconds: int(s.FailWindow / time.Second), CooldownSeconds: int(s.CooldownTime / time.Second),
		Fallbacks: s.Fallbacks}
	if in.Strategy == "" {
		in.Strategy = StrategyWeighted
	}
	if s.NumRetries != 0 {
		n := max(s.NumRetries, 0)
		in.NumRetries = &n
	}
	if in.Fallbacks == nil {
		in.Fallbacks = map[string][]string{}
	}
	return in
}

// sameSettings reports whether two tenants' rules route alike.
func sameSettings(a, b RouterSettings) bool {
	return a.Input().Strategy == b.Input().Strategy && a.NumRetries == b.NumRetries && a.AllowedFails == b.AllowedFails &&
		a.FailWindow == b.FailWindow && a.CooldownTime == b.CooldownTime &&
		maps.EqualFunc(a.Fallbacks, b.Fallbacks, slices.Equal)
}

// settingsChanges names what differs between two tenants' rules, for the
// audit log and the import's report.
func settingsChanges(b, a RouterSettings) map[string]audit.Change {
	out := map[string]audit.Change{}
	bi, ai := b.Input(), a.Input()
	add := func(name string, x, y any, differ bool) {
		if differ {
			out[name] = audit.Change{Before: x, After: y}
		}
	}
	add("strategy", bi.Strategy, ai.Strategy, bi.Strategy != ai.Strategy)
	add("num_retries", bi.NumRetries, ai.NumRetries, b.NumRetries != a.NumRetries)
	add("allowed_fails", bi.AllowedFails, ai.AllowedFails, bi.AllowedFails != ai.AllowedFails)
	add("fail_window_seconds", bi.FailWindowSeconds, ai.FailWindowSeconds, b.FailWindow != a.FailWindow)
	add("cooldown_seconds", bi.CooldownSeconds, ai.CooldownSeconds, b.CooldownTime != a.CooldownTime)
	add("fallbacks", bi.Fallbacks, ai.Fallbacks, !maps.EqualFunc(b.Fallbacks, a.Fallbacks, slices.Equal))
	return out
}

// FindRouterSettings returns the tenant's routing rules; a tenant that
// never set any gets the defaults.
func (s *Service) FindRouterSettings(ctx context.Context, m Manager) (RouterSettings, error) {
	rs, err := s.store.FindRouterSettings(m.ctx(ctx))
	if nodus.ErrorCode(err) == nodus.ENOTFOUND {
		return RouterSettings{TenantID: m.TenantID, Strategy: StrategyWeighted}, nil
	}
	return rs, err
}

// UpdateRouterSettings replaces the tenant's routing rules.
func (s *Service) UpdateRouterSettings(ctx context.Context, m Manager, in RouterSettingsInput) (*RouterSettings, error) {
	if !m.Admin {
		return nil, forbidden("manage router settings")
	}
	if err := in.validate(); err != nil {
		return nil, err
	}
	before, err := s.FindRouterSettings(ctx, m)
	if err != nil {
		return nil, err
	}
	rs := in.settings(m.TenantID)
	return &rs, s.putRouterSettings(ctx, m, before, &rs)
}

// putRouterSettings stores rs (stamped now) and records the change from
// before.
func (s *Service) putRouterSettings(ctx context.Context, m Manager, before RouterSettings, rs *RouterSettings) error {
	rs.UpdatedAt, rs.UpdatedBy = s.now().UTC(), m.UserID
	if err := s.store.UpdateRouterSettings(m.ctx(ctx), *rs); err != nil {
		return err
	}
	s.invalidate(m.TenantID)
	return s.record(ctx, m.entry("gateway.router_settings_update", "gateway_router_settings", m.TenantID, settingsChanges(before, *rs)))
}

// PriceInput is a tenant's price for a model, in micro-dollars per million
// tokens ($2.50 per million tokens is 2500000).
type PriceInput struct {
	Input  int64 `json:"input"`
	Output int64 `json:"output"`
	// CachedInput is the price of prompt tokens read from the provider's
	// cache; null means the same as Input (no discount).
	CachedInput *int64 `json:"cached_input"`
}

func (in PriceInput) price() Price {
	p := Price{Input: in.Input, CachedInput: in.Input, Output: in.Output}
	if in.CachedInput != nil {
		p.CachedInput = *in.CachedInput
	}
	return p
}

func validPrice(p Price) error {
	for name, v := range map[string]int64{"input": p.Input, "cached_input": p.CachedInput, "output": p.Output} {
		if v < 0 || v > maxPriceMicros {
			return invalid(name, "micro-dollars per million tokens, between 0 and 1000000000000")
		}
	}
	return nil
}

// validModelName accepts what a tenant may call a model: 1 to 200
// characters without spaces at the ends or control characters.
func validModelName(name string) bool {
	return name != "" && len(name) <= maxModelNameLen && strings.TrimSpace(name) == name &&
		!strings.ContainsFunc(name, unicode.IsControl)
}

// PriceEntry is one model's price as a tenant pays it.
type PriceEntry struct {
	Model string
	Price Price
	// Override is true for the tenant's own price; Builtin is then the
	// catalogue's price it replaces, nil when the catalogue has none.
	Override  bool
	Builtin   *Price
	UpdatedAt time.Time // overrides only
	UpdatedBy string
}

// ListPrices returns the tenant's effective price list by model: the
// built-in catalogue with the tenant's overrides in place, and the
// overrides of models the catalogue lacks.
func (s *Service) ListPrices(ctx context.Context, m Manager) ([]PriceEntry, error) {
	overrides, err := s.store.ListPriceOverrides(m.ctx(ctx))
	if err != nil {
		return nil, err
	}
	byModel := make(map[string]PriceEntry, len(s.catalogue)+len(overrides))
	for model, p := range s.catalogue {
		byModel[model] = PriceEntry{Model: model, Price: p}
	}
	for _, o := range overrides {
		e := PriceEntry{Model: o.Model, Price: o.Price, Override: true, UpdatedAt: o.UpdatedAt, UpdatedBy: o.UpdatedBy}
		if p, ok := s.catalogue[o.Model]; ok {
			e.Builtin = &p
		}
		byModel[o.Model] = e
	}
	out := make([]PriceEntry, 0, len(byModel))
	for _, model := range slices.Sorted(maps.Keys(byModel)) {
		out = append(out, byModel[model])
	}
	return out, nil
}

// PutPrice sets the tenant's own price for a model. The model is matched
// as LookupPrice says: a price for "gpt-4o" covers "gpt-4o-2024-08-06" and
// "openai/gpt-4o".
func (s *Service) PutPrice(ctx context.Context, m Manager, model string, in PriceInput) (*PriceOverride, error) {
	if !m.Admin {
		return nil, forbidden("manage prices")
	}
	if !validModelName(model) {
		return nil, invalid("model", "1 to 200 characters, no control characters or spaces at the ends")
	}
	p := in.price()
	if err := validPrice(p); err != nil {
		return nil, err
	}
	o := PriceOverride{TenantID: m.TenantID, Model: model, Price: p}
	return &o, s.putPrice(ctx, m, &o)
}

// putPrice stores o (stamped now) and records it.
func (s *Service) putPrice(ctx context.Context, m Manager, o *PriceOverride) error {
	o.UpdatedAt, o.UpdatedBy = s.now().UTC(), m.UserID
	if err := s.store.SetPriceOverride(m.ctx(ctx), *o); err != nil {
		return err
	}
	s.invalidate(m.TenantID)
	return s.record(ctx, m.entry("gateway.price_put", "gateway_price", o.Model, map[string]audit.Change{
		"input": {After: o.Price.Input}, "cached_input": {After: o.Price.CachedInput}, "output": {After: o.Price.Output}}))
}

// DeletePrice removes the tenant's price for a model; the catalogue's
// applies again.
func (s *Service) DeletePrice(ctx context.Context, m Manager, model string) error {
	if !m.Admin {
		return forbidden("manage prices")
	}
	if err := s.store.DeletePriceOverride(m.ctx(ctx), model); err != nil {
		return err
	}
	s.invalidate(m.TenantID)
	return s.record(ctx, m.entry("gateway.price_delete", "gateway_price", model, nil))
}
