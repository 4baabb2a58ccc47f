package gateway

import (
	"context"
	"encoding/json"
	"time"
)

// This file holds the gateway's stored records and the Store interface the
// gateway database implements (internal/store/gateway*.go). Every record
// belongs to one tenant; the store filters by the tenant scope in the
// context, as every other Nodus store does.

// Provider kinds a deployment can use.
const (
	ProviderOpenAI     = "openai"     // any OpenAI-compatible server: OpenAI, vLLM, Ollama, LM Studio, Together, Groq, Mistral, DeepSeek, OpenRouter
	ProviderAzure      = "azure"      // Azure OpenAI: api-key header, deployment in the path, api-version query
	ProviderAnthropic  = "anthropic"  // Anthropic's Messages API
	ProviderExtractive = "extractive" // the built-in offline model; no network
)

// Deployment modes: what kind of call a deployment serves.
const (
	ModeChat          = "chat"
	ModeEmbedding     = "embedding"
	ModeTranscription = "transcription"
)

// Deployment is one upstream that serves a public model name. Several
// deployments with the same ModelName form a load-balanced group. The
// upstream's address and credential come only from here, never from a
// request (SECURITY.md check 22).
type Deployment struct {
	ID             string
	TenantID       string
	ModelName      string // the public name callers ask for
	Provider       string // one of the Provider constants
	UpstreamModel  string // the name the upstream knows it by
	BaseURL        string // e.g. https://api.openai.com/v1; "" for extractive
	APIKeyHandle   string // a vault secret handle id; "" for a keyless local server
	APIVersion     string // Azure's api-version; "" otherwise
	Mode           string // one of the Mode constants
	Weight         int    // relative share of traffic within the group, ≥ 1
	RPM            int64  // requests per minute; 0 is unlimited
	TPM            int64  // tokens per minute; 0 is unlimited
	MaxConcurrency int    // in-flight requests; 0 is unlimited
	Timeout        time.Duration
	IsActive       bool
	CreatedAt      time.Time
	CreatedBy      string
	UpdatedAt      time.Time
	UpdatedBy      string
}

// RouterSettings are a tenant's routing rules (LiteLLM's router_settings).
type RouterSettings struct {
	TenantID     string
	Strategy     string              // "weighted" (default) or "least-busy"
	NumRetries   int                 // retries within a group before fallbacks
	AllowedFails int                 // failures within FailWindow that cool a deployment down
	FailWindow   time.Duration       // default one minute
	CooldownTime time.Duration       // how long a cooled-down deployment is skipped before a probe
	Fallbacks    map[string][]string // public model → models to try, in order, once its group fails
	UpdatedAt    time.Time
	UpdatedBy    string
}

// Virtual key statuses.
const (
	KeyActive  = "active"
	KeyBlocked = "blocked"
)

// Key is a virtual key: what an external caller presents as a bearer token.
// Only the SHA-256 hash of the secret is stored. After a rotation the old
// secret's hash stays valid until PreviousValidUntil.
type Key struct {
	ID                 string
	TenantID           string
	Name               string
	Hash               []byte // SHA-256 of the full secret
	Prefix             string // the first characters of the secret, for display ("sk-nodus-ab12")
	UserID             string // the owner; the user's budget applies to the key's calls
	Models             []string
	RPM                int64 // 0 is unlimited
	TPM                int64
	MaxParallel        int
	ExpiresAt          *time.Time
	Metadata           map[string]json.RawMessage
	Status             string // KeyActive or KeyBlocked
	PreviousHash       []byte // the secret before the last rotation, or nil
	PreviousValidUntil *time.Time
	CreatedAt          time.Time
	CreatedBy          string
	UpdatedAt          time.Time
	UpdatedBy          string
	LastUsedAt         *time.Time
}

// Budget scopes. Every budget that applies to a call must pass: the key's,
// its owner's (or the in-process caller's user), and the tenant's.
const (
	BudgetTenant = "tenant"
	BudgetUser   = "user"
	BudgetKey    = "key"
)

// Budget periods; "" never resets.
var BudgetPeriods = map[string]time.Duration{
	"":    0,
	"1h":  time.Hour,
	"1d":  24 * time.Hour,
	"7d":  7 * 24 * time.Hour,
	"30d": 30 * 24 * time.Hour,
}

// Budget is a spending cap in micro-dollars over a period. Spend is what
// the current period has settled; ResetAt is when it goes back to zero.
type Budget struct {
	ID        string
	TenantID  string
	Scope     string // BudgetTenant, BudgetUser or BudgetKey
	SubjectID string // the user or key id; "" for the tenant
	MaxMicros int64
	Period    string
	ResetAt   *time.Time // nil when Period is ""
	Spend     int64
	UpdatedAt time.Time
	UpdatedBy string
}

// BudgetChanges is what a read of budget changes found: the budgets
// written at or after its cursor (every budget for cursor 0), the ids of
// those deleted since (none for cursor 0), and the cursor of the next read.
type BudgetChanges struct {
	Budgets []Budget
	Deleted []string
	Next    int64
}

// PriceOverride is a tenant's own price for a model, in micro-dollars per
// million tokens.
type PriceOverride struct {
	TenantID  string
	Model     string
	Price     Price
	UpdatedAt time.Time
	UpdatedBy string
}

// Spend-log statuses.
const (
	StatusSuccess   = "success"
	StatusError     = "error"
	StatusCancelled = "cancelled" // the client went away; what streamed was billed
)

// SpendLog is one request through the gateway (the columns of LiteLLM's
// spend logs that matter). Payloads are never stored here.
type SpendLog struct {
	RequestID        string // made by the gateway for each call: the row's key
	ClientRequestID  string // the X-Request-Id the HTTP caller sent or was given; "" in process
	TenantID         string
	KeyID            string // "" for in-process calls
	UserID           string
	EndUser          string // the request's "user" field
	CallType         string // "chat", "embedding", "transcription", "messages"
	Model            string // the public name asked for
	DeploymentID     string // "" when no deployment was reached
	Provider         string
	UpstreamModel    string
	PromptTokens     int64
	CompletionTokens int64
	CachedTokens     int64
	UsageEstimated   bool // counted locally: the provider sent no usage
	CostMicros       int64
	StartedAt        time.Time
	EndedAt          time.Time
	TTFT             time.Duration // streams: time to the first content; 0 otherwise
	Status           string
	StatusCode       int
	ErrorClass       string // "rate_limit", "timeout", "upstream_5xx", "budget", … ; "" on success
	TraceID          string
	Metadata         map[string]json.RawMessage // the key's metadata, copied
}

// DailySpend is one rollup row: a tenant's day for one key, user, model and
// provider.
type DailySpend struct {
	TenantID         string
	Day              string // YYYY-MM-DD, UTC
	KeyID            string
	UserID           string
	Model            string
	Provider         string
	Requests         int64
	Successes        int64
	Failures         int64
	PromptTokens     int64
	CompletionTokens int64
	CachedTokens     int64
	CostMicros       int64
}

// SpendFilter selects spend-log rows; zero fields match everything.
type SpendFilter struct {
	From, To time.Time // StartedAt in [From, To)
	KeyID    string
	UserID   string
	Model    string
	Status   string
	// ClientRequestID finds the calls answered with that X-Request-Id.
	ClientRequestID string
}

// BudgetSpend is an increment of one budget's settled spend, applied in
// the same transaction as the spend-log rows that caused it.
type BudgetSpend struct {
	BudgetID string
	Micros   int64
}

// Store is the gateway database. Methods run in the tenant scope of ctx
// unless they say otherwise; a record of another tenant is ENOTFOUND.
type Store interface {
	CreateDeployment(ctx context.Context, d Deployment) error
	FindDeployment(ctx context.Context, id string) (Deployment, error)
	// ListDeployments returns the tenant's deployments by model name, then id.
	ListDeployments(ctx context.Context) ([]Deployment, error)
	UpdateDeployment(ctx context.Context, d Deployment) error
	DeleteDeployment(ctx context.Context, id string) error

	// FindRouterSettings returns the tenant's settings; ENOTFOUND when it has
	// none (the defaults apply).
	FindRouterSettings(ctx context.Context) (RouterSettings, error)
	UpdateRouterSettings(ctx context.Context, s RouterSettings) error

	CreateKey(ctx context.Context, k Key) error
	FindKey(ctx context.Context, id string) (Key, error)
	// FindKeyByHash looks a secret up by its hash or its previous hash. It is
	// a sign-in lookup: it needs no tenant scope.
	FindKeyByHash(ctx context.Context, hash []byte) (Key, error)
	ListKeys(ctx context.Context, cursor string, limit int) ([]Key, string, error)
	UpdateKey(ctx context.Context, k Key) error
	DeleteKey(ctx context.Context, id string) error
	// TouchKeys records last use for several keys at once (no scope needed).
	TouchKeys(ctx context.Context, at time.Time, ids []string) error

	CreateBudget(ctx context.Context, b Budget) error
	FindBudget(ctx context.Context, scope, subjectID string) (Budget, error)
	ListBudgets(ctx context.Context) ([]Budget, error)
	// BudgetChanges returns every tenant's budgets changed, created or
	// deleted at or after the cursor since, and the next cursor (no scope
	// needed). Cursor 0 reads every budget: the gateway loads them so at
	// start, and replicas sharing budgets then read only what changed.
	BudgetChanges(ctx context.Context, since int64) (BudgetChanges, error)
	// PruneBudgetTombstones forgets budgets deleted before t (no scope
	// needed); a read of changes from a cursor older than that must start
	// again from 0.
	PruneBudgetTombstones(ctx context.Context, t time.Time) (int64, error)
	UpdateBudget(ctx context.Context, b Budget) error
	DeleteBudget(ctx context.Context, id string) error
	// ResetBudget sets Spend to 0 and ResetAt to next if ResetAt is still
	// prev; false when another process reset it first.
	ResetBudget(ctx context.Context, id string, prev, next time.Time) (bool, error)

	SetPriceOverride(ctx context.Context, p PriceOverride) error
	DeletePriceOverride(ctx context.Context, model string) error
	ListPriceOverrides(ctx context.Context) ([]PriceOverride, error)

	// WriteSpend inserts spend-log rows (any tenants; no scope needed), adds
	// them to the daily rollups and applies the budget increments, all in one
	// transaction. A row whose request id exists is skipped, with its
	// rollup and budget share, so a retried batch counts once.
	WriteSpend(ctx context.Context, logs []SpendLog, budgets []BudgetSpend) error
	// ListSpend returns a page of the tenant's spend logs, newest first.
	ListSpend(ctx context.Context, f SpendFilter, cursor string, limit int) ([]SpendLog, string, error)
	// ListDailySpend returns the tenant's rollup rows for days in [from, to].
	ListDailySpend(ctx context.Context, from, to string) ([]DailySpend, error)
	// DeleteSpendBefore removes up to limit of the tenant's spend-log rows
	// older than t (retention in small chunks); it returns how many.
	DeleteSpendBefore(ctx context.Context, t time.Time, limit int) (int, error)

	// DeleteGatewayTenant removes every gateway record of the tenant in scope.
	DeleteGatewayTenant(ctx context.Context) error
}
