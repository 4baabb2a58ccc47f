package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"time"

	"github.com/nodus-os/nodus/internal/audit"
	"github.com/nodus-os/nodus/internal/nodus"
)

// Manager is who changes the gateway's configuration: a user of the tenant
// in scope. Admins (org_admin, super_admin) manage deployments, budgets
// and every key of the tenant; other users only their own keys.
type Manager struct {
	TenantID string
	UserID   string
	Admin    bool
	// Entry carries the actor, address and user agent of the audit
	// entries the change makes.
	Entry audit.Entry
}

func (m Manager) ctx(ctx context.Context) context.Context { return nodus.WithTenant(ctx, m.TenantID) }

func (m Manager) entry(action, targetType, targetID string, changes map[string]audit.Change) audit.Entry {
	return m.Entry.About(m.TenantID, action, targetType, targetID, changes)
}

func (s *Service) record(ctx context.Context, e audit.Entry) error {
	if s.audit == nil {
		return nil
	}
	if err := s.audit.Record(ctx, e); err != nil {
		return fmt.Errorf("gateway: audit %s: %w", e.Action, err)
	}
	return nil
}

func forbidden(what string) error {
	return nodus.Errorf(nodus.EFORBIDDEN, "only an admin may %s", what)
}

func invalid(field, msg string) error {
	return &nodus.Error{Code: nodus.EINVALID, Message: "invalid " + field, Fields: map[string]string{field: msg}}
}

// DeploymentInput is a deployment as an admin writes it.
type DeploymentInput struct {
	ModelName      string `json:"model_name"`
	Provider       string `json:"provider"`
	UpstreamModel  string `json:"upstream_model"`
	BaseURL        string `json:"base_url"`
	APIKeyHandle   string `json:"api_key_handle"`
	APIVersion     string `json:"api_version"`
	Mode           string `json:"mode"`
	Weight         int    `json:"weight"`
	RPM            int64  `json:"rpm"`
	TPM            int64  `json:"tpm"`
	MaxConcurrency int    `json:"max_concurrency"`
	TimeoutSeconds int    `json:"timeout_seconds"`
	IsActive       *bool  `json:"is_active"`
}

func (in DeploymentInput) validate() error {
	switch {
	case in.ModelName == "" || len(in.ModelName) > 200:
		return invalid("model_name", "required, at most 200 characters")
	case !slices.Contains([]string{ProviderOpenAI, ProviderAzure, ProviderAnthropic}, in.Provider):
		return invalid("provider", "one of openai, azure, anthropic")
	case in.UpstreamModel == "":
		return invalid("upstream_model", "required")
	case in.Mode != "" && !slices.Contains([]string{ModeChat, ModeEmbedding, ModeTranscription}, in.Mode):
		return invalid("mode", "one of chat, embedding, transcription")
	case in.Weight < 0 || in.RPM < 0 || in.TPM < 0 || in.MaxConcurrency < 0 || in.TimeoutSeconds < 0 || in.TimeoutSeconds > 3600:
		return invalid("limits", "weight, rpm, tpm, max_concurrency must not be negative; timeout_seconds at most 3600")
	}
	u, err := url.Parse(in.BaseURL)
	if in.BaseURL != "" && (err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil) {
		return invalid("base_url", "an http(s) URL without credentials")
	}
	if in.BaseURL == "" && in.Provider != ProviderAnthropic {
		return invalid("base_url", "required for "+in.Provider)
	}
	return nil
}

func (in DeploymentInput) apply(d *Deployment) {
	d.ModelName, d.Provider, d.UpstreamModel, d.BaseURL = in.ModelName, in.Provider, in.UpstreamModel, in.BaseURL
	d.APIKeyHandle, d.APIVersion, d.Mode = in.APIKeyHandle, in.APIVersion, in.Mode
	if d.Mode == "" {
		d.Mode = ModeChat
	}
	d.Weight = max(in.Weight, 1)
	d.RPM, d.TPM, d.MaxConcurrency = in.RPM, in.TPM, in.MaxConcurrency
	d.Timeout = time.Duration(in.TimeoutSeconds) * time.Second
	d.IsActive = in.IsActive == nil || *in.IsActive
}

// CreateDeployment adds a deployment to the manager's tenant.
func (s *Service) CreateDeployment(ctx context.Context, m Manager, in DeploymentInput) (*Deployment, error) {
	if !m.Admin {
		return nil, forbidden("manage deployments")
	}
	if err := in.validate(); err != nil {
		return nil, err
	}
	now := s.now().UTC()
	d := Deployment{ID: nodus.NewID(), TenantID: m.TenantID, CreatedAt: now, CreatedBy: m.UserID, UpdatedAt: now, UpdatedBy: m.UserID}
	in.apply(&d)
	if err := s.store.CreateDeployment(m.ctx(ctx), d); err != nil {
		return nil, err
	}
	s.invalidate(m.TenantID)
	return &d, s.record(ctx, m.entry("gateway.deployment_create", "gateway_deployment", d.ID, deploymentChanges(nil, &d)))
}

// UpdateDeployment replaces a deployment's settings. Pointing it at
// another base URL while keeping its key handle is refused: the key would
// follow the URL (SECURITY.md check 17) — change the handle with it.
func (s *Service) UpdateDeployment(ctx context.Context, m Manager, id string, in DeploymentInput) (*Deployment, error) {
	if !m.Admin {
		return nil, forbidden("manage deployments")
	}
	if err := in.validate(); err != nil {
		return nil, err
	}
	before, err := s.store.FindDeployment(m.ctx(ctx), id)
	if err != nil {
		return nil, err
	}
	d := before
	in.apply(&d)
	if d.BaseURL != before.BaseURL && d.APIKeyHandle != "" && d.APIKeyHandle == before.APIKeyHandle {
		return nil, &nodus.Error{Code: nodus.EINVALID, Message: "a new base URL needs its key entered again: give a new api_key_handle",
			Fields: map[string]string{"api_key_handle": "must change when base_url changes"}}
	}
	d.UpdatedAt, d.UpdatedBy = s.now().UTC(), m.UserID
	if err := s.store.UpdateDeployment(m.ctx(ctx), d); err != nil {
		return nil, err
	}
	s.invalidate(m.TenantID)
	return &d, s.record(ctx, m.entry("gateway.deployment_update", "gateway_deployment", d.ID, deploymentChanges(&before, &d)))
}

// DeleteDeployment removes a deployment.
func (s *Service) DeleteDeployment(ctx context.Context, m Manager, id string) error {
	if !m.Admin {
		return forbidden("manage deployments")
	}
	if err := s.store.DeleteDeployment(m.ctx(ctx), id); err != nil {
		return err
	}
	s.invalidate(m.TenantID)
	s.router.Forget(id)
	return s.record(ctx, m.entry("gateway.deployment_delete", "gateway_deployment", id, nil))
}

// ListDeployments lists the tenant's deployments.
func (s *Service) ListDeployments(ctx context.Context, m Manager) ([]Deployment, error) {
	return s.store.ListDeployments(m.ctx(ctx))
}

func deploymentChanges(b, a *Deployment) map[string]audit.Change {
	out := map[string]audit.Change{}
	var zero Deployment
	if b == nil {
		b = &zero
	}
	add := func(name string, x, y any) {
		if x != y {
			out[name] = audit.Change{Before: x, After: y}
		}
	}
	add("model_name", b.ModelName, a.ModelName)
	add("provider", b.Provider, a.Provider)
	add("upstream_model", b.UpstreamModel, a.UpstreamModel)
	add("base_url", b.BaseURL, a.BaseURL)
	add("api_key_handle", b.APIKeyHandle, a.APIKeyHandle)
	add("is_active", b.IsActive, a.IsActive)
	return out
}

// KeyInput is a virtual key as its creator writes it.
type KeyInput struct {
	Name             string                     `json:"name"`
	UserID           string                     `json:"user_id"` // admins only; default the creator
	Models           []string                   `json:"models"`
	MaxBudgetMicros  int64                      `json:"max_budget_micros"`
	BudgetPeriod     string                     `json:"budget_period"`
	RPM              int64                      `json:"rpm"`
	TPM              int64                      `json:"tpm"`
	MaxParallel      int                        `json:"max_parallel"`
	ExpiresInSeconds int64                      `json:"expires_in_seconds"`
	Metadata         map[string]json.RawMessage `json:"metadata"`
}

func (in KeyInput) validate() error {
	switch {
	case in.Name == "" || len(in.Name) > 200:
		return invalid("name", "required, at most 200 characters")
	case in.MaxBudgetMicros < 0 || in.RPM < 0 || in.TPM < 0 || in.MaxParallel < 0 || in.ExpiresInSeconds < 0:
		return invalid("limits", "must not be negative")
	case len(in.Models) > 200:
		return invalid("models", "at most 200")
	}
	if _, ok := BudgetPeriods[in.BudgetPeriod]; !ok {
		return invalid("budget_period", "one of 1h, 1d, 7d, 30d or empty")
	}
	return nil
}

// CreateKey makes a virtual key and returns it with its secret, which is
// never shown again.
func (s *Service) CreateKey(ctx context.Context, m Manager, in KeyInput) (*Key, string, error) {
	if err := in.validate(); err != nil {
		return nil, "", err
	}
	owner := in.UserID
	if owner == "" {
		owner = m.UserID
	}
	if owner != m.UserID && !m.Admin {
		return nil, "", forbidden("create keys for other users")
	}
	secret, hash := NewKeySecret()
	now := s.now().UTC()
	k := Key{ID: nodus.NewID(), TenantID: m.TenantID, Name: in.Name, Hash: hash, Prefix: keyDisplayPrefix(secret), UserID: owner,
		Models: in.Models, RPM: in.RPM, TPM: in.TPM, MaxParallel: in.MaxParallel, Metadata: in.Metadata, Status: KeyActive,
		CreatedAt: now, CreatedBy: m.UserID, UpdatedAt: now, UpdatedBy: m.UserID}
	if in.ExpiresInSeconds > 0 {
		exp := now.Add(time.Duration(in.ExpiresInSeconds) * time.Second)
		k.ExpiresAt = &exp
	}
	tctx := m.ctx(ctx)
	if err := s.store.CreateKey(tctx, k); err != nil {
		return nil, "", err
	}
	if in.MaxBudgetMicros > 0 {
		if _, err := s.putBudget(tctx, m, BudgetKey, k.ID, in.MaxBudgetMicros, in.BudgetPeriod); err != nil {
			return nil, "", err
		}
	}
	return &k, secret, s.record(ctx, m.entry("gateway.key_create", "gateway_key", k.ID, map[string]audit.Change{
		"name": {After: k.Name}, "user_id": {After: owner}, "models": {After: k.Models}}))
}

// keyFor finds a key the manager may change: any of the tenant's for an
// admin, their own for a user.
func (s *Service) keyFor(ctx context.Context, m Manager, id string) (Key, error) {
	k, err := s.store.FindKey(m.ctx(ctx), id)
	if err != nil {
		return Key{}, err
	}
	if !m.Admin && k.UserID != m.UserID {
		return Key{}, nodus.Errorf(nodus.ENOTFOUND, "no key %s", id)
	}
	return k, nil
}

// ListKeys lists the tenant's keys (an admin) or the manager's own.
func (s *Service) ListKeys(ctx context.Context, m Manager, cursor string, limit int) ([]Key, string, error) {
	keys, next, err := s.store.ListKeys(m.ctx(ctx), cursor, limit)
	if err != nil || m.Admin {
		return keys, next, err
	}
	return slices.DeleteFunc(keys, func(k Key) bool { return k.UserID != m.UserID }), next, nil
}

// KeyPatch changes some of a key's settings; nil fields stay.
type KeyPatch struct {
	Name        *string                    `json:"name"`
	Models      *[]string                  `json:"models"`
	RPM         *int64                     `json:"rpm"`
	TPM         *int64                     `json:"tpm"`
	MaxParallel *int                       `json:"max_parallel"`
	Blocked     *bool                      `json:"blocked"`
	Metadata    map[string]json.RawMessage `json:"metadata"`
}

// UpdateKey changes a key; blocking takes effect on its next request in
// this process, within ConfigTTL on others.
func (s *Service) UpdateKey(ctx context.Context, m Manager, id string, p KeyPatch) (*Key, error) {
	k, err := s.keyFor(ctx, m, id)
	if err != nil {
		return nil, err
	}
	before := k
	if p.Name != nil {
		k.Name = *p.Name
	}
	if p.Models != nil {
		k.Models = *p.Models
	}
	if p.RPM != nil {
		k.RPM = *p.RPM
	}
	if p.TPM != nil {
		k.TPM = *p.TPM
	}
	if p.MaxParallel != nil {
		k.MaxParallel = *p.MaxParallel
	}
	if p.Metadata != nil {
		k.Metadata = p.Metadata
	}
	if p.Blocked != nil {
		k.Status = KeyActive
		if *p.Blocked {
			k.Status = KeyBlocked
		}
	}
	if k.Name == "" || k.RPM < 0 || k.TPM < 0 || k.MaxParallel < 0 {
		return nil, invalid("key", "name required; limits must not be negative")
	}
	k.UpdatedAt, k.UpdatedBy = s.now().UTC(), m.UserID
	if err := s.store.UpdateKey(m.ctx(ctx), k); err != nil {
		return nil, err
	}
	s.forgetKeys()
	ch := map[string]audit.Change{}
	if before.Status != k.Status {
		ch["status"] = audit.Change{Before: before.Status, After: k.Status}
	}
	if before.Name != k.Name {
		ch["name"] = audit.Change{Before: before.Name, After: k.Name}
	}
	if !slices.Equal(before.Models, k.Models) {
		ch["models"] = audit.Change{Before: before.Models, After: k.Models}
	}
	return &k, s.record(ctx, m.entry("gateway.key_update", "gateway_key", k.ID, ch))
}

// RotateKey gives a key a new secret; the old one keeps working for grace.
func (s *Service) RotateKey(ctx context.Context, m Manager, id string, grace time.Duration) (*Key, string, error) {
	if grace < 0 || grace > 30*24*time.Hour {
		return nil, "", invalid("grace_seconds", "between 0 and 30 days")
	}
	k, err := s.keyFor(ctx, m, id)
	if err != nil {
		return nil, "", err
	}
	secret, hash := NewKeySecret()
	now := s.now().UTC()
	k.PreviousHash, k.PreviousValidUntil = nil, nil
	if grace > 0 {
		until := now.Add(grace)
		k.PreviousHash, k.PreviousValidUntil = k.Hash, &until
	}
	k.Hash, k.Prefix, k.UpdatedAt, k.UpdatedBy = hash, keyDisplayPrefix(secret), now, m.UserID
	if err := s.store.UpdateKey(m.ctx(ctx), k); err != nil {
		return nil, "", err
	}
	s.forgetKeys()
	return &k, secret, s.record(ctx, m.entry("gateway.key_rotate", "gateway_key", k.ID,
		map[string]audit.Change{"grace_seconds": {After: int64(grace / time.Second)}}))
}

// DeleteKey removes a key; its spend history stays in the spend log.
func (s *Service) DeleteKey(ctx context.Context, m Manager, id string) error {
	if _, err := s.keyFor(ctx, m, id); err != nil {
		return err
	}
	if err := s.store.DeleteKey(m.ctx(ctx), id); err != nil {
		return err
	}
	s.forgetKeys()
	if b, err := s.store.FindBudget(m.ctx(ctx), BudgetKey, id); err == nil {
		_ = s.DeleteBudget(ctx, Manager{TenantID: m.TenantID, UserID: m.UserID, Admin: true, Entry: m.Entry}, b.ID)
	}
	return s.record(ctx, m.entry("gateway.key_delete", "gateway_key", id, nil))
}

// BudgetInput sets a budget: the tenant's, a user's or a key's.
type BudgetInput struct {
	Scope     string `json:"scope"`
	SubjectID string `json:"subject_id"`
	MaxMicros int64  `json:"max_micros"`
	Period    string `json:"period"`
}

// PutBudget creates or replaces a budget's cap and period (admins).
func (s *Service) PutBudget(ctx context.Context, m Manager, in BudgetInput) (*Budget, error) {
	if !m.Admin {
		return nil, forbidden("manage budgets")
	}
	switch {
	case !slices.Contains([]string{BudgetTenant, BudgetUser, BudgetKey}, in.Scope):
		return nil, invalid("scope", "one of tenant, user, key")
	case (in.Scope == BudgetTenant) != (in.SubjectID == ""):
		return nil, invalid("subject_id", "required for user and key budgets, empty for the tenant's")
	case in.MaxMicros < 0:
		return nil, invalid("max_micros", "must not be negative")
	}
	if _, ok := BudgetPeriods[in.Period]; !ok {
		return nil, invalid("period", "one of 1h, 1d, 7d, 30d or empty")
	}
	return s.putBudget(m.ctx(ctx), m, in.Scope, in.SubjectID, in.MaxMicros, in.Period)
}

func (s *Service) putBudget(tctx context.Context, m Manager, scope, subject string, maxMicros int64, period string) (*Budget, error) {
	now := s.now().UTC()
	var reset *time.Time
	if d := BudgetPeriods[period]; d > 0 {
		r := now.Add(d)
		reset = &r
	}
	b, err := s.store.FindBudget(tctx, scope, subject)
	switch {
	case err == nil:
		before := b
		b.MaxMicros, b.UpdatedAt, b.UpdatedBy = maxMicros, now, m.UserID
		if b.Period != period {
			b.Period, b.ResetAt = period, reset
		}
		if err := s.store.UpdateBudget(tctx, b); err != nil {
			return nil, err
		}
		// The ledger's spend runs ahead of the store's until the spend
		// writer flushes: keep it.
		if cur, ok := s.ledger.Budget(b.ID); ok {
			b.Spend = cur.Spend
		}
		if err := s.ledger.Put(b); err != nil {
			return nil, err
		}
		return &b, s.record(tctx, m.entry("gateway.budget_update", "gateway_budget", b.ID, map[string]audit.Change{
			"max_micros": {Before: before.MaxMicros, After: b.MaxMicros}, "period": {Before: before.Period, After: b.Period}}))
	case nodus.ErrorCode(err) == nodus.ENOTFOUND:
		b = Budget{ID: nodus.NewID(), TenantID: m.TenantID, Scope: scope, SubjectID: subject, MaxMicros: maxMicros, Period: period,
			ResetAt: reset, UpdatedAt: now, UpdatedBy: m.UserID}
		if err := s.store.CreateBudget(tctx, b); err != nil {
			return nil, err
		}
		if err := s.ledger.Put(b); err != nil {
			return nil, err
		}
		s.mu.Lock()
		s.budgetID[budgetRef{m.TenantID, scope, subject}] = b.ID
		s.mu.Unlock()
		return &b, s.record(tctx, m.entry("gateway.budget_create", "gateway_budget", b.ID, map[string]audit.Change{
			"scope": {After: scope}, "subject_id": {After: subject}, "max_micros": {After: maxMicros}, "period": {After: period}}))
	default:
		return nil, err
	}
}

// ListBudgets lists the tenant's budgets with their current spend.
func (s *Service) ListBudgets(ctx context.Context, m Manager) ([]Budget, error) {
	bs, err := s.store.ListBudgets(m.ctx(ctx))
	if err != nil {
		return nil, err
	}
	for i := range bs {
		if cur, ok := s.ledger.Budget(bs[i].ID); ok {
			bs[i].Spend = cur.Spend
		}
	}
	return bs, nil
}

// DeleteBudget removes a budget.
func (s *Service) DeleteBudget(ctx context.Context, m Manager, id string) error {
	if !m.Admin {
		return forbidden("manage budgets")
	}
	if err := s.store.DeleteBudget(m.ctx(ctx), id); err != nil {
		return err
	}
	s.ledger.Remove(id)
	s.mu.Lock()
	for ref, bid := range s.budgetID {
		if bid == id {
			delete(s.budgetID, ref)
		}
	}
	s.mu.Unlock()
	return s.record(ctx, m.entry("gateway.budget_delete", "gateway_budget", id, nil))
}

// ListSpend lists spend-log rows: the tenant's for an admin, the
// manager's own otherwise.
func (s *Service) ListSpend(ctx context.Context, m Manager, f SpendFilter, cursor string, limit int) ([]SpendLog, string, error) {
	if !m.Admin {
		f.UserID = m.UserID
	}
	return s.store.ListSpend(m.ctx(ctx), f, cursor, limit)
}

// ListDailySpend returns the daily rollup rows for days in [from, to]
// (YYYY-MM-DD): the tenant's for an admin, the manager's own otherwise.
// The rollups, not the spend log, answer dashboards: one row per day,
// key, user, model and provider however many requests there were.
func (s *Service) ListDailySpend(ctx context.Context, m Manager, from, to string) ([]DailySpend, error) {
	rows, err := s.store.ListDailySpend(m.ctx(ctx), from, to)
	if err != nil || m.Admin {
		return rows, err
	}
	own := rows[:0]
	for _, d := range rows {
		if d.UserID == m.UserID {
			own = append(own, d)
		}
	}
	return own, nil
}
