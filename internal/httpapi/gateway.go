package httpapi

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/nodus-os/nodus/internal/gateway"
	"github.com/nodus-os/nodus/internal/identity"
	"github.com/nodus-os/nodus/internal/nodus"
)

// This file holds the gateway's management routes: deployments, budgets,
// router settings, prices and the model-list import (admins), virtual keys
// (each user their own, admins all of the tenant's), and the spend log. The model API itself (/v1/…) is served by
// the gateway with its own keys. A super_admin names the tenant with
// ?tenant_id=.

// gatewayManager is the caller as the gateway sees them, in the tenant
// the request means.
func (s *Server) gatewayManager(r *http.Request) (gateway.Manager, error) {
	if s.deps.GatewayAdmin == nil {
		return gateway.Manager{}, &nodus.Error{Code: nodus.EUNAVAILABLE, Message: "the gateway is not running: its migrations are not applied"}
	}
	_, tenantID, err := s.egressTenant(r)
	if err != nil {
		return gateway.Manager{}, err
	}
	c := callerFrom(r.Context())
	role := c.principal.User.Role // a token's role already capped at its owner's current one
	return gateway.Manager{TenantID: tenantID, UserID: c.principal.User.ID,
		Admin: role == identity.RoleOrgAdmin || role == identity.RoleSuperAdmin,
		Entry: egressActor(r)}, nil
}

// gatewayAnswer is answer for a gateway route: fn gets the caller as the
// gateway sees them.
func (s *Server) gatewayAnswer(status int, fn func(r *http.Request, m gateway.Manager) (any, error)) http.Handler {
	return s.answer(status, func(r *http.Request) (any, error) {
		m, err := s.gatewayManager(r)
		if err != nil {
			return nil, err
		}
		return fn(r, m)
	})
}

type deploymentView struct {
	ID             string    `json:"id"`
	ModelName      string    `json:"model_name"`
	Provider       string    `json:"provider"`
	UpstreamModel  string    `json:"upstream_model"`
	BaseURL        string    `json:"base_url"`
	APIKeyHandle   string    `json:"api_key_handle"`
	APIVersion     string    `json:"api_version,omitempty"`
	Mode           string    `json:"mode"`
	Weight         int       `json:"weight"`
	RPM            int64     `json:"rpm"`
	TPM            int64     `json:"tpm"`
	MaxConcurrency int       `json:"max_concurrency"`
	TimeoutSeconds int       `json:"timeout_seconds"`
	IsActive       bool      `json:"is_active"`
	CreatedAt      time.Time `json:"created_at"`
	UpdatedAt      time.Time `json:"updated_at"`
}

func viewDeployment(d *gateway.Deployment) deploymentView {
	return deploymentView{ID: d.ID, ModelName: d.ModelName, Provider: d.Provider, UpstreamModel: d.UpstreamModel, BaseURL: d.BaseURL,
		APIKeyHandle: d.APIKeyHandle, APIVersion: d.APIVersion, Mode: d.Mode, Weight: d.Weight, RPM: d.RPM, TPM: d.TPM,
		MaxConcurrency: d.MaxConcurrency, TimeoutSeconds: int(d.Timeout / time.Second), IsActive: d.IsActive,
		CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt}
}

type keyView struct {
	ID          string                     `json:"id"`
	Name        string                     `json:"name"`
	Prefix      string                     `json:"prefix"`
	UserID      string                     `json:"user_id"`
	Models      []string                   `json:"models"`
	RPM         int64                      `json:"rpm"`
	TPM         int64                      `json:"tpm"`
	MaxParallel int                        `json:"max_parallel"`
	ExpiresAt   *time.Time                 `json:"expires_at"`
	Metadata    map[string]json.RawMessage `json:"metadata,omitempty"`
	Status      string                     `json:"status"`
	GraceUntil  *time.Time                 `json:"previous_valid_until,omitempty"`
	CreatedAt   time.Time                  `json:"created_at"`
	LastUsedAt  *time.Time                 `json:"last_used_at"`
	// Key is the secret, present only in the answer that created or
	// rotated it.
	Key string `json:"key,omitempty"`
}

func viewKey(k *gateway.Key, secret string) keyView {
	models := k.Models
	if models == nil {
		models = []string{}
	}
	return keyView{ID: k.ID, Name: k.Name, Prefix: k.Prefix, UserID: k.UserID, Models: models, RPM: k.RPM, TPM: k.TPM,
		MaxParallel: k.MaxParallel, ExpiresAt: k.ExpiresAt, Metadata: k.Metadata, Status: k.Status, GraceUntil: k.PreviousValidUntil,
		CreatedAt: k.CreatedAt, LastUsedAt: k.LastUsedAt, Key: secret}
}

func (s *Server) handleListDeployments() http.Handler {
	return s.gatewayAnswer(http.StatusOK, func(r *http.Request, m gateway.Manager) (any, error) {
		ds, err := s.deps.GatewayAdmin.ListDeployments(r.Context(), m)
		if err != nil {
			return nil, err
		}
		out := make([]deploymentView, len(ds))
		for i := range ds {
			out[i] = viewDeployment(&ds[i])
		}
		return map[string]any{"deployments": out}, nil
	})
}

func (s *Server) handleCreateDeployment() http.Handler {
	return s.gatewayAnswer(http.StatusCreated, func(r *http.Request, m gateway.Manager) (any, error) {
		var in gateway.DeploymentInput
		if err := decodeJSON(r, &in); err != nil {
			return nil, err
		}
		d, err := s.deps.GatewayAdmin.CreateDeployment(r.Context(), m, in)
		if err != nil {
			return nil, err
		}
		return map[string]any{"deployment": viewDeployment(d)}, nil
	})
}

func (s *Server) handleUpdateDeployment() http.Handler {
	return s.gatewayAnswer(http.StatusOK, func(r *http.Request, m gateway.Manager) (any, error) {
		var in gateway.DeploymentInput
		if err := decodeJSON(r, &in); err != nil {
			return nil, err
		}
		d, err := s.deps.GatewayAdmin.UpdateDeployment(r.Context(), m, r.PathValue("id"), in)
		if err != nil {
			return nil, err
		}
		return map[string]any{"deployment": viewDeployment(d)}, nil
	})
}

func (s *Server) handleDeleteDeployment() http.Handler {
	return s.gatewayAnswer(http.StatusNoContent, func(r *http.Request, m gateway.Manager) (any, error) {
		return nil, s.deps.GatewayAdmin.DeleteDeployment(r.Context(), m, r.PathValue("id"))
	})
}

func (s *Server) handleListKeys() http.Handler {
	return s.gatewayAnswer(http.StatusOK, func(r *http.Request, m gateway.Manager) (any, error) {
		limit, cursor, err := pageQuery(r)
		if err != nil {
			return nil, err
		}
		ks, next, err := s.deps.GatewayAdmin.ListKeys(r.Context(), m, cursor, limit)
		if err != nil {
			return nil, err
		}
		out := make([]keyView, len(ks))
		for i := range ks {
			out[i] = viewKey(&ks[i], "")
		}
		return map[string]any{"keys": out, "next_cursor": next}, nil
	})
}

func (s *Server) handleCreateKey() http.Handler {
	return s.gatewayAnswer(http.StatusCreated, func(r *http.Request, m gateway.Manager) (any, error) {
		var in gateway.KeyInput
		if err := decodeJSON(r, &in); err != nil {
			return nil, err
		}
		k, secret, err := s.deps.GatewayAdmin.CreateKey(r.Context(), m, in)
		if err != nil {
			return nil, err
		}
		return map[string]any{"key": viewKey(k, secret)}, nil
	})
}

func (s *Server) handleUpdateKey() http.Handler {
	return s.gatewayAnswer(http.StatusOK, func(r *http.Request, m gateway.Manager) (any, error) {
		var p gateway.KeyPatch
		if err := decodeJSON(r, &p); err != nil {
			return nil, err
		}
		k, err := s.deps.GatewayAdmin.UpdateKey(r.Context(), m, r.PathValue("id"), p)
		if err != nil {
			return nil, err
		}
		return map[string]any{"key": viewKey(k, "")}, nil
	})
}

func (s *Server) handleRotateKey() http.Handler {
	type request struct {
		GraceSeconds int64 `json:"grace_seconds"`
	}
	return s.gatewayAnswer(http.StatusOK, func(r *http.Request, m gateway.Manager) (any, error) {
		var in request
		if err := decodeJSON(r, &in); err != nil {
			return nil, err
		}
		k, secret, err := s.deps.GatewayAdmin.RotateKey(r.Context(), m, r.PathValue("id"), time.Duration(in.GraceSeconds)*time.Second)
		if err != nil {
			return nil, err
		}
		return map[string]any{"key": viewKey(k, secret)}, nil
	})
}

func (s *Server) handleDeleteKey() http.Handler {
	return s.gatewayAnswer(http.StatusNoContent, func(r *http.Request, m gateway.Manager) (any, error) {
		return nil, s.deps.GatewayAdmin.DeleteKey(r.Context(), m, r.PathValue("id"))
	})
}

type budgetView struct {
	ID          string     `json:"id"`
	Scope       string     `json:"scope"`
	SubjectID   string     `json:"subject_id"`
	MaxMicros   int64      `json:"max_micros"`
	SpendMicros int64      `json:"spend_micros"`
	Period      string     `json:"period"`
	ResetAt     *time.Time `json:"reset_at"`
}

func viewBudget(b *gateway.Budget) budgetView {
	return budgetView{ID: b.ID, Scope: b.Scope, SubjectID: b.SubjectID, MaxMicros: b.MaxMicros, SpendMicros: b.Spend,
		Period: b.Period, ResetAt: b.ResetAt}
}

func (s *Server) handleListBudgets() http.Handler {
	return s.gatewayAnswer(http.StatusOK, func(r *http.Request, m gateway.Manager) (any, error) {
		bs, err := s.deps.GatewayAdmin.ListBudgets(r.Context(), m)
		if err != nil {
			return nil, err
		}
		out := make([]budgetView, len(bs))
		for i := range bs {
			out[i] = viewBudget(&bs[i])
		}
		return map[string]any{"budgets": out}, nil
	})
}

func (s *Server) handlePutBudget() http.Handler {
	return s.gatewayAnswer(http.StatusOK, func(r *http.Request, m gateway.Manager) (any, error) {
		var in gateway.BudgetInput
		if err := decodeJSON(r, &in); err != nil {
			return nil, err
		}
		b, err := s.deps.GatewayAdmin.PutBudget(r.Context(), m, in)
		if err != nil {
			return nil, err
		}
		return map[string]any{"budget": viewBudget(b)}, nil
	})
}

func (s *Server) handleDeleteBudget() http.Handler {
	return s.gatewayAnswer(http.StatusNoContent, func(r *http.Request, m gateway.Manager) (any, error) {
		return nil, s.deps.GatewayAdmin.DeleteBudget(r.Context(), m, r.PathValue("id"))
	})
}

type spendView struct {
	RequestID        string    `json:"request_id"`
	ClientRequestID  string    `json:"client_request_id,omitempty"`
	KeyID            string    `json:"key_id"`
	UserID           string    `json:"user_id"`
	EndUser          string    `json:"end_user,omitempty"`
	CallType         string    `json:"call_type"`
	Model            string    `json:"model"`
	DeploymentID     string    `json:"deployment_id"`
	Provider         string    `json:"provider"`
	UpstreamModel    string    `json:"upstream_model"`
	PromptTokens     int64     `json:"prompt_tokens"`
	CompletionTokens int64     `json:"completion_tokens"`
	CachedTokens     int64     `json:"cached_tokens"`
	UsageEstimated   bool      `json:"usage_estimated"`
	CostMicros       int64     `json:"cost_micros"`
	StartedAt        time.Time `json:"started_at"`
	EndedAt          time.Time `json:"ended_at"`
	TTFTMillis       int64     `json:"ttft_ms"`
	Status           string    `json:"status"`
	StatusCode       int       `json:"status_code"`
	ErrorClass       string    `json:"error_class,omitempty"`
	TraceID          string    `json:"trace_id,omitempty"`
}

func viewSpend(l *gateway.SpendLog) spendView {
	return spendView{RequestID: l.RequestID, ClientRequestID: l.ClientRequestID, KeyID: l.KeyID, UserID: l.UserID,
		EndUser: l.EndUser, CallType: l.CallType, Model: l.Model, DeploymentID: l.DeploymentID, Provider: l.Provider, UpstreamModel: l.UpstreamModel,
		PromptTokens: l.PromptTokens, CompletionTokens: l.CompletionTokens, CachedTokens: l.CachedTokens,
		UsageEstimated: l.UsageEstimated, CostMicros: l.CostMicros, StartedAt: l.StartedAt, EndedAt: l.EndedAt,
		TTFTMillis: l.TTFT.Milliseconds(), Status: l.Status, StatusCode: l.StatusCode, ErrorClass: l.ErrorClass, TraceID: l.TraceID}
}

// spendFilter reads the spend log's filters: from and to (RFC 3339),
// key_id, user_id, model, status, client_request_id.
func spendFilter(r *http.Request) (gateway.SpendFilter, error) {
	q := r.URL.Query()
	f := gateway.SpendFilter{KeyID: q.Get("key_id"), UserID: q.Get("user_id"), Model: q.Get("model"), Status: q.Get("status"),
		ClientRequestID: q.Get("client_request_id")}
	for name, dst := range map[string]*time.Time{"from": &f.From, "to": &f.To} {
		if v := q.Get(name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return f, &nodus.Error{Code: nodus.EINVALID, Message: "invalid query", Fields: map[string]string{name: "an RFC 3339 time"}}
			}
			*dst = t
		}
	}
	return f, nil
}

// handleListSpend serves the spend log as JSON pages, or as CSV with
// ?format=csv (every matching row, streamed page by page).
func (s *Server) handleListSpend() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m, err := s.gatewayManager(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		f, err := spendFilter(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		limit, cursor, err := pageQuery(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if r.URL.Query().Get("format") != "csv" {
			rows, next, err := s.deps.GatewayAdmin.ListSpend(r.Context(), m, f, cursor, limit)
			if err != nil {
				s.writeError(w, r, err)
				return
			}
			out := make([]spendView, len(rows))
			for i := range rows {
				out[i] = viewSpend(&rows[i])
			}
			s.writeJSON(w, r, http.StatusOK, map[string]any{"spend": out, "next_cursor": next})
			return
		}
		first, next, err := s.deps.GatewayAdmin.ListSpend(r.Context(), m, f, "", 1000)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="spend.csv"`)
		cw := csv.NewWriter(w)
		_ = cw.Write([]string{"request_id", "started_at", "ended_at", "key_id", "user_id", "call_type", "model", "deployment_id",
			"provider", "upstream_model", "prompt_tokens", "completion_tokens", "cached_tokens", "usage_estimated", "cost_usd",
			"ttft_ms", "status", "status_code", "error_class", "trace_id", "client_request_id"})
		rows := first
		for {
			for _, l := range rows {
				_ = cw.Write([]string{csvSafe(l.RequestID), l.StartedAt.UTC().Format(time.RFC3339Nano), l.EndedAt.UTC().Format(time.RFC3339Nano),
					l.KeyID, l.UserID, l.CallType, csvSafe(l.Model), l.DeploymentID, l.Provider, csvSafe(l.UpstreamModel),
					strconv.FormatInt(l.PromptTokens, 10), strconv.FormatInt(l.CompletionTokens, 10), strconv.FormatInt(l.CachedTokens, 10),
					strconv.FormatBool(l.UsageEstimated), microsToUSD(l.CostMicros), strconv.FormatInt(l.TTFT.Milliseconds(), 10),
					l.Status, strconv.Itoa(l.StatusCode), l.ErrorClass, csvSafe(l.TraceID), csvSafe(l.ClientRequestID)})
			}
			if next == "" || r.Context().Err() != nil {
				break
			}
			if rows, next, err = s.deps.GatewayAdmin.ListSpend(r.Context(), m, f, next, 1000); err != nil {
				s.deps.Logger.Error("spend csv: page failed", "err", err)
				break
			}
		}
		cw.Flush()
	})
}

// microsToUSD formats micro-dollars as dollars with six decimals, without
// a float.
func microsToUSD(m int64) string {
	sign := ""
	if m < 0 {
		sign, m = "-", -m
	}
	frac := strconv.FormatInt(m%1_000_000, 10)
	for len(frac) < 6 {
		frac = "0" + frac
	}
	return sign + strconv.FormatInt(m/1_000_000, 10) + "." + frac
}

// csvSafe defuses a cell a spreadsheet would run as a formula.
func csvSafe(v string) string {
	if v != "" && (v[0] == '=' || v[0] == '+' || v[0] == '-' || v[0] == '@') {
		return "'" + v
	}
	return v
}

// routerSettingsView is gateway.RouterSettingsInput, which a PUT takes
// back, with when and by whom it was last changed.
type routerSettingsView struct {
	gateway.RouterSettingsInput
	UpdatedAt *time.Time `json:"updated_at"`
	UpdatedBy string     `json:"updated_by,omitempty"`
}

func viewRouterSettings(rs *gateway.RouterSettings) routerSettingsView {
	v := routerSettingsView{RouterSettingsInput: rs.Input(), UpdatedBy: rs.UpdatedBy}
	if !rs.UpdatedAt.IsZero() {
		v.UpdatedAt = &rs.UpdatedAt
	}
	return v
}

func (s *Server) handleGetRouterSettings() http.Handler {
	return s.gatewayAnswer(http.StatusOK, func(r *http.Request, m gateway.Manager) (any, error) {
		rs, err := s.deps.GatewayAdmin.FindRouterSettings(r.Context(), m)
		if err != nil {
			return nil, err
		}
		return map[string]any{"router_settings": viewRouterSettings(&rs)}, nil
	})
}

func (s *Server) handlePutRouterSettings() http.Handler {
	return s.gatewayAnswer(http.StatusOK, func(r *http.Request, m gateway.Manager) (any, error) {
		var in gateway.RouterSettingsInput
		if err := decodeJSON(r, &in); err != nil {
			return nil, err
		}
		rs, err := s.deps.GatewayAdmin.UpdateRouterSettings(r.Context(), m, in)
		if err != nil {
			return nil, err
		}
		return map[string]any{"router_settings": viewRouterSettings(rs)}, nil
	})
}

// priceView is a price in micro-dollars per million tokens.
type priceView struct {
	Input       int64 `json:"input"`
	CachedInput int64 `json:"cached_input"`
	Output      int64 `json:"output"`
}

type priceEntryView struct {
	Model string `json:"model"`
	priceView
	// Source is "builtin" (the catalogue's price) or "override" (the
	// tenant's own; Builtin is then the catalogue's, if it has one).
	Source    string     `json:"source"`
	Builtin   *priceView `json:"builtin,omitempty"`
	UpdatedAt *time.Time `json:"updated_at,omitempty"`
}

func viewPrice(p gateway.Price) priceView {
	return priceView{Input: p.Input, CachedInput: p.CachedInput, Output: p.Output}
}

func (s *Server) handleListPrices() http.Handler {
	return s.gatewayAnswer(http.StatusOK, func(r *http.Request, m gateway.Manager) (any, error) {
		ps, err := s.deps.GatewayAdmin.ListPrices(r.Context(), m)
		if err != nil {
			return nil, err
		}
		out := make([]priceEntryView, len(ps))
		for i, p := range ps {
			out[i] = priceEntryView{Model: p.Model, priceView: viewPrice(p.Price), Source: "builtin"}
			if p.Override {
				out[i].Source, out[i].UpdatedAt = "override", &ps[i].UpdatedAt
				if p.Builtin != nil {
					b := viewPrice(*p.Builtin)
					out[i].Builtin = &b
				}
			}
		}
		return map[string]any{"prices": out, "catalogue_date": gateway.CatalogueDate}, nil
	})
}

func (s *Server) handlePutPrice() http.Handler {
	return s.gatewayAnswer(http.StatusOK, func(r *http.Request, m gateway.Manager) (any, error) {
		var in gateway.PriceInput
		if err := decodeJSON(r, &in); err != nil {
			return nil, err
		}
		o, err := s.deps.GatewayAdmin.PutPrice(r.Context(), m, r.PathValue("model"), in)
		if err != nil {
			return nil, err
		}
		return map[string]any{"price": priceEntryView{Model: o.Model, priceView: viewPrice(o.Price), Source: "override",
			UpdatedAt: &o.UpdatedAt}}, nil
	})
}

func (s *Server) handleDeletePrice() http.Handler {
	return s.gatewayAnswer(http.StatusNoContent, func(r *http.Request, m gateway.Manager) (any, error) {
		return nil, s.deps.GatewayAdmin.DeletePrice(r.Context(), m, r.PathValue("model"))
	})
}

// handleImport imports a LiteLLM-style model list sent as YAML;
// ?dry_run=true reports what would change, ?prune=true also deletes the
// deployments the list does not have.
func (s *Server) handleImport() http.Handler {
	return s.gatewayAnswer(http.StatusOK, func(r *http.Request, m gateway.Manager) (any, error) {
		mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if err != nil || !slices.Contains([]string{"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"}, mt) {
			return nil, nodus.Errorf(nodus.EINVALID, "Content-Type must be application/yaml")
		}
		var opts gateway.ImportOptions
		for name, dst := range map[string]*bool{"dry_run": &opts.DryRun, "prune": &opts.Prune} {
			if v := r.URL.Query().Get(name); v != "" {
				if *dst, err = strconv.ParseBool(v); err != nil {
					return nil, &nodus.Error{Code: nodus.EINVALID, Message: "invalid query", Fields: map[string]string{name: "true or false"}}
				}
			}
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return nil, jsonError(err)
		}
		list, err := gateway.ParseModelList(bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		return s.deps.GatewayAdmin.ImportModelList(r.Context(), m, list, opts)
	})
}
