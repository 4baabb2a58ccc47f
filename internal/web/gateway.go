package web

import (
	"context"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nodus-os/nodus/internal/gateway"
	"github.com/nodus-os/nodus/internal/identity"
	"github.com/nodus-os/nodus/internal/nodus"
)

// This file holds the gateway's pages: models (deployments), virtual
// keys, budgets and spend. They call the gateway's Manager methods as the
// API does; the gateway itself refuses what a non-admin may not do, and
// the pages check the role table first so a viewer gets a clear answer.

// gatewayTab is one tab of the gateway's pages.
type gatewayTab struct {
	Label, Path string
	Current     bool
}

type gatewayBase struct {
	pageBase
	Tabs []gatewayTab
}

// gatewayManager is the viewer as the gateway sees them, or why they may
// not see the page: no tenant, no gateway, or a role without action.
func (s *Server) gatewayManager(v *viewer, action identity.Action) (gateway.Manager, error) {
	switch {
	case s.deps.Gateway == nil:
		return gateway.Manager{}, &nodus.Error{Code: nodus.EUNAVAILABLE,
			Message: "The gateway is not running: its migrations are not applied. Run `nodus migrate up`"}
	case v.tenantID() == "":
		return gateway.Manager{}, errNoTenant
	case !s.perms.Allows(v.user.Role, action):
		msg := "Only an administrator of your organisation may do this"
		if action == identity.ActionUseGateway {
			msg = "Viewers do not use gateway keys or spend; ask an administrator for a user role"
		}
		return gateway.Manager{}, &nodus.Error{Code: nodus.EFORBIDDEN, Message: msg}
	}
	return gateway.Manager{TenantID: v.tenantID(), UserID: v.user.ID, Admin: v.admin(), Entry: v.entry()}, nil
}

// gatewayAction is a handler of the gateway's pages, called with the
// viewer and the manager the gateway sees them as when their role allows
// action; any other viewer gets the reason.
func (s *Server) gatewayAction(action identity.Action,
	fn func(w http.ResponseWriter, r *http.Request, v *viewer, m gateway.Manager)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := viewerFrom(r.Context())
		m, err := s.gatewayManager(v, action)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		fn(w, r, v, m)
	})
}

// gatewayPage builds the layout and the tabs the viewer may open.
func (s *Server) gatewayPage(r *http.Request, v *viewer, title string) gatewayBase {
	b := gatewayBase{pageBase: s.base(r, v, title)}
	tabs := []gatewayTab{{Label: "Models", Path: "/gateway/models"}}
	if s.perms.Allows(v.user.Role, identity.ActionUseGateway) {
		tabs = append(tabs, gatewayTab{Label: "Keys", Path: "/gateway/keys"})
	}
	if v.admin() {
		tabs = append(tabs, gatewayTab{Label: "Budgets", Path: "/gateway/budgets"})
	}
	if s.perms.Allows(v.user.Role, identity.ActionUseGateway) {
		tabs = append(tabs, gatewayTab{Label: "Spend", Path: "/gateway/spend"})
	}
	for i := range tabs {
		tabs[i].Current = tabs[i].Path == r.URL.Path
	}
	b.Tabs = tabs
	return b
}

// ---- Models -------------------------------------------------------------

type gatewayModelsPage struct {
	gatewayBase
	Admin       bool
	Deployments []deploymentRow
	Models      []string // a member's view: the names they may call
	Form        deploymentForm
	Providers   []string
	Error       *formError
}

type deploymentRow struct {
	gateway.Deployment
	Timeout string
}

// deploymentForm is the form of a new deployment, or of one edited (ID
// set).
type deploymentForm struct {
	ID                                                                          string
	ModelName, Provider, UpstreamModel, BaseURL, APIKeyHandle, APIVersion, Mode string
	Weight, RPM, TPM, MaxConcurrency, TimeoutSeconds                            string
	Active                                                                      bool
}

func (s *Server) handleGatewayModels() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		form := deploymentForm{Provider: gateway.ProviderOpenAI, Weight: "1", Active: true}
		if id := r.URL.Query().Get("edit"); id != "" {
			d, err := s.findDeployment(r, id)
			if err != nil {
				s.fail(w, r, err)
				return
			}
			form = formOfDeployment(d)
		}
		s.gatewayModelsPage(w, r, http.StatusOK, form, nil)
	})
}

// findDeployment is the viewer's tenant's deployment id, for an admin.
func (s *Server) findDeployment(r *http.Request, id string) (gateway.Deployment, error) {
	m, err := s.gatewayManager(viewerFrom(r.Context()), identity.ActionManageGateway)
	if err != nil {
		return gateway.Deployment{}, err
	}
	deps, err := s.deps.Gateway.ListDeployments(r.Context(), m)
	if err != nil {
		return gateway.Deployment{}, err
	}
	for _, d := range deps {
		if d.ID == id {
			return d, nil
		}
	}
	return gateway.Deployment{}, nodus.Errorf(nodus.ENOTFOUND, "deployment %s not found", id)
}

func formOfDeployment(d gateway.Deployment) deploymentForm {
	num := func(n int64) string {
		if n == 0 {
			return ""
		}
		return strconv.FormatInt(n, 10)
	}
	return deploymentForm{ID: d.ID, ModelName: d.ModelName, Provider: d.Provider, UpstreamModel: d.UpstreamModel,
		BaseURL: d.BaseURL, APIKeyHandle: d.APIKeyHandle, APIVersion: d.APIVersion, Mode: d.Mode,
		Weight: strconv.Itoa(d.Weight), RPM: num(d.RPM), TPM: num(d.TPM), MaxConcurrency: num(int64(d.MaxConcurrency)),
		TimeoutSeconds: num(int64(d.Timeout / time.Second)), Active: d.IsActive}
}

func (s *Server) gatewayModelsPage(w http.ResponseWriter, r *http.Request, status int, form deploymentForm, ferr *formError) {
	v := viewerFrom(r.Context())
	m, err := s.gatewayManager(v, identity.ActionReadTenant)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	p := gatewayModelsPage{gatewayBase: s.gatewayPage(r, v, "Models"), Admin: m.Admin, Form: form, Error: ferr,
		Providers: []string{gateway.ProviderOpenAI, gateway.ProviderAzure, gateway.ProviderAnthropic}}
	if m.Admin {
		deps, err := s.deps.Gateway.ListDeployments(r.Context(), m)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		for _, d := range deps {
			row := deploymentRow{Deployment: d}
			if d.Timeout > 0 {
				row.Timeout = d.Timeout.String()
			}
			p.Deployments = append(p.Deployments, row)
		}
	} else {
		if p.Models, err = s.deps.Gateway.Models(r.Context(), gateway.Caller{TenantID: m.TenantID, UserID: m.UserID}); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	s.render(w, r, status, "gateway_models", &p)
}

// formInt reads an optional whole number field; empty is 0.
func formInt(r *http.Request, name string, fields map[string]string) int64 {
	v := strings.TrimSpace(r.PostFormValue(name))
	if v == "" {
		return 0
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		fields[name] = "a whole number"
	}
	return n
}

// formMicros reads an optional amount in USD as micro-dollars.
func formMicros(r *http.Request, name string, fields map[string]string) int64 {
	v := strings.TrimPrefix(strings.TrimSpace(r.PostFormValue(name)), "$")
	if v == "" {
		return 0
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < 0 || f > 1e9 || math.IsNaN(f) {
		fields[name] = "an amount in USD, such as 25 or 0.50"
		return 0
	}
	return int64(math.Round(f * 1e6))
}

func checkFields(fields map[string]string) error {
	if len(fields) == 0 {
		return nil
	}
	return &nodus.Error{Code: nodus.EINVALID, Message: "Check the highlighted fields", Fields: fields}
}

// handleSaveDeployment adds a deployment, or saves the one of the path's
// id.
func (s *Server) handleSaveDeployment() http.Handler {
	return s.gatewayAction(identity.ActionManageGateway, func(w http.ResponseWriter, r *http.Request, v *viewer, m gateway.Manager) {
		form := deploymentForm{ID: r.PathValue("id"), ModelName: strings.TrimSpace(r.PostFormValue("model_name")),
			Provider: r.PostFormValue("provider"), UpstreamModel: strings.TrimSpace(r.PostFormValue("upstream_model")),
			BaseURL: strings.TrimSpace(r.PostFormValue("base_url")), APIKeyHandle: strings.TrimSpace(r.PostFormValue("api_key_handle")),
			APIVersion: strings.TrimSpace(r.PostFormValue("api_version")), Mode: r.PostFormValue("mode"),
			Weight: r.PostFormValue("weight"), RPM: r.PostFormValue("rpm"), TPM: r.PostFormValue("tpm"),
			MaxConcurrency: r.PostFormValue("max_concurrency"), TimeoutSeconds: r.PostFormValue("timeout_seconds"),
			// A new deployment is active; an edited one as its box says.
			Active: r.PostFormValue("active") == "on" || r.PathValue("id") == ""}
		fields := map[string]string{}
		in := gateway.DeploymentInput{ModelName: form.ModelName, Provider: form.Provider, UpstreamModel: form.UpstreamModel,
			BaseURL: form.BaseURL, APIKeyHandle: form.APIKeyHandle, APIVersion: form.APIVersion, Mode: form.Mode,
			Weight: int(formInt(r, "weight", fields)), RPM: formInt(r, "rpm", fields), TPM: formInt(r, "tpm", fields),
			MaxConcurrency: int(formInt(r, "max_concurrency", fields)), TimeoutSeconds: int(formInt(r, "timeout_seconds", fields)),
			IsActive: &form.Active}
		err := checkFields(fields)
		if err == nil {
			if form.ID == "" {
				_, err = s.deps.Gateway.CreateDeployment(r.Context(), m, in)
			} else {
				_, err = s.deps.Gateway.UpdateDeployment(r.Context(), m, form.ID, in)
			}
		}
		if nodus.ErrorCode(err) == nodus.ENOTFOUND {
			s.fail(w, r, err)
			return
		}
		if err != nil {
			s.gatewayModelsPage(w, r, statusOf(nodus.ErrorCode(err)), form, toFormError(err))
			return
		}
		http.Redirect(w, r, "/gateway/models?saved=1", http.StatusSeeOther)
	})
}

func (s *Server) handleDeleteDeployment() http.Handler {
	return s.gatewayDelete(identity.ActionManageGateway, "/gateway/models", s.deps.Gateway.DeleteDeployment)
}

// gatewayDelete removes the gateway object of the path's id as the viewer
// (a deployment, a key, a budget), then shows its list again.
func (s *Server) gatewayDelete(action identity.Action, list string,
	remove func(context.Context, gateway.Manager, string) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m, err := s.gatewayManager(viewerFrom(r.Context()), action)
		if err == nil {
			err = remove(r.Context(), m, r.PathValue("id"))
		}
		if err != nil {
			s.fail(w, r, err)
			return
		}
		http.Redirect(w, r, list, http.StatusSeeOther)
	})
}

// ---- Keys ---------------------------------------------------------------

type gatewayKeysPage struct {
	gatewayBase
	Admin   bool
	Keys    []keyRow
	Next    string
	Form    keyForm
	Periods []string
	Error   *formError
	// Secret is the new key's secret, on the answer to its creation or
	// rotation only: it is never stored, so it cannot be shown again.
	Secret  string
	Created *gateway.Key
	Rotated bool // Created is a key given a new secret
	Graces  []graceChoice
}

// graceChoice is how long a rotated key's old secret keeps working.
type graceChoice struct {
	Label   string
	Seconds int64
}

func graceChoices() []graceChoice {
	return []graceChoice{{"stops now", 0}, {"works 1 hour more", 3600}, {"works 1 day more", 86400},
		{"works 7 days more", 7 * 86400}}
}

type keyRow struct {
	gateway.Key
	Blocked bool
	Expired bool
	Mine    bool
	// OldUntil is when the secret a rotation replaced stops working,
	// nil when none does.
	OldUntil *time.Time
}

type keyForm struct {
	Name, UserID, Models, MaxBudget, Period, RPM, TPM, ExpiresDays string
}

func budgetPeriods() []string { return []string{"", "1h", "1d", "7d", "30d"} }

func (s *Server) handleGatewayKeys() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.gatewayKeysPage(w, r, http.StatusOK, keyForm{}, nil, "", nil, false)
	})
}

func (s *Server) gatewayKeysPage(w http.ResponseWriter, r *http.Request, status int, form keyForm, ferr *formError,
	secret string, created *gateway.Key, rotated bool) {
	v := viewerFrom(r.Context())
	m, err := s.gatewayManager(v, identity.ActionUseGateway)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	keys, next, err := s.deps.Gateway.ListKeys(r.Context(), m, r.URL.Query().Get("cursor"), listPage)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	p := gatewayKeysPage{gatewayBase: s.gatewayPage(r, v, "Keys"), Admin: m.Admin, Next: next, Form: form,
		Periods: budgetPeriods(), Error: ferr, Secret: secret, Created: created, Rotated: rotated, Graces: graceChoices()}
	now := s.clock()
	for _, k := range keys {
		row := keyRow{Key: k, Blocked: k.Status == gateway.KeyBlocked, Mine: k.UserID == v.user.ID,
			Expired: k.ExpiresAt != nil && k.ExpiresAt.Before(now)}
		if k.PreviousValidUntil != nil && k.PreviousValidUntil.After(now) {
			row.OldUntil = k.PreviousValidUntil
		}
		p.Keys = append(p.Keys, row)
	}
	s.render(w, r, status, "gateway_keys", &p)
}

func (s *Server) handleCreateKey() http.Handler {
	return s.gatewayAction(identity.ActionUseGateway, func(w http.ResponseWriter, r *http.Request, v *viewer, m gateway.Manager) {
		form := keyForm{Name: strings.TrimSpace(r.PostFormValue("name")), UserID: strings.TrimSpace(r.PostFormValue("user_id")),
			Models: r.PostFormValue("models"), MaxBudget: r.PostFormValue("max_budget"), Period: r.PostFormValue("budget_period"),
			RPM: r.PostFormValue("rpm"), TPM: r.PostFormValue("tpm"), ExpiresDays: r.PostFormValue("expires_days")}
		fields := map[string]string{}
		in := gateway.KeyInput{Name: form.Name, UserID: form.UserID, MaxBudgetMicros: formMicros(r, "max_budget", fields),
			BudgetPeriod: form.Period, RPM: formInt(r, "rpm", fields), TPM: formInt(r, "tpm", fields),
			ExpiresInSeconds: formInt(r, "expires_days", fields) * int64(24*time.Hour/time.Second)}
		for model := range strings.SplitSeq(form.Models, ",") {
			if model = strings.TrimSpace(model); model != "" && !slices.Contains(in.Models, model) {
				in.Models = append(in.Models, model)
			}
		}
		err := checkFields(fields)
		var k *gateway.Key
		var secret string
		if err == nil {
			k, secret, err = s.deps.Gateway.CreateKey(r.Context(), m, in)
		}
		if err != nil {
			s.gatewayKeysPage(w, r, statusOf(nodus.ErrorCode(err)), form, toFormError(err), "", nil, false)
			return
		}
		// The answer itself shows the secret (render sets no-store); a
		// redirect would have to carry it in a URL or a store.
		s.gatewayKeysPage(w, r, http.StatusCreated, keyForm{}, nil, secret, k, false)
	})
}

// handleRotateKey gives a key a new secret, shown once as a new key's is;
// the old secret keeps working for the grace chosen, so the applications
// using it can be moved over.
func (s *Server) handleRotateKey() http.Handler {
	return s.gatewayAction(identity.ActionUseGateway, func(w http.ResponseWriter, r *http.Request, v *viewer, m gateway.Manager) {
		grace, err := strconv.ParseInt(r.PostFormValue("grace_seconds"), 10, 64)
		if err != nil || !slices.ContainsFunc(graceChoices(), func(c graceChoice) bool { return c.Seconds == grace }) {
			s.renderError(w, r, v, http.StatusBadRequest, "Choose how long the old key keeps working.")
			return
		}
		k, secret, err := s.deps.Gateway.RotateKey(r.Context(), m, r.PathValue("id"), time.Duration(grace)*time.Second)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		s.gatewayKeysPage(w, r, http.StatusOK, keyForm{}, nil, secret, k, true)
	})
}

func (s *Server) handleKeyStatus() http.Handler {
	return s.gatewayAction(identity.ActionUseGateway, func(w http.ResponseWriter, r *http.Request, v *viewer, m gateway.Manager) {
		var blocked bool
		switch r.PostFormValue("blocked") {
		case "true":
			blocked = true
		case "false":
		default:
			s.renderError(w, r, v, http.StatusBadRequest, "Say whether to block or unblock the key.")
			return
		}
		if _, err := s.deps.Gateway.UpdateKey(r.Context(), m, r.PathValue("id"), gateway.KeyPatch{Blocked: &blocked}); err != nil {
			s.fail(w, r, err)
			return
		}
		http.Redirect(w, r, "/gateway/keys#k-"+r.PathValue("id"), http.StatusSeeOther)
	})
}

func (s *Server) handleDeleteKey() http.Handler {
	return s.gatewayDelete(identity.ActionUseGateway, "/gateway/keys", s.deps.Gateway.DeleteKey)
}

// ---- Budgets ------------------------------------------------------------

type gatewayBudgetsPage struct {
	gatewayBase
	Budgets []budgetRow
	Keys    []gateway.Key // for the subject's choices
	Form    budgetForm
	Scopes  []string
	Periods []string
	Error   *formError
}

type budgetRow struct {
	gateway.Budget
	Max, Spent string
	Subject    string // the key's name, or the user id
	Over       bool
}

type budgetForm struct {
	Scope, SubjectID, Max, Period string
}

func (s *Server) handleGatewayBudgets() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.gatewayBudgetsPage(w, r, http.StatusOK, budgetForm{Scope: gateway.BudgetTenant, Period: "30d"}, nil)
	})
}

func (s *Server) gatewayBudgetsPage(w http.ResponseWriter, r *http.Request, status int, form budgetForm, ferr *formError) {
	v := viewerFrom(r.Context())
	m, err := s.gatewayManager(v, identity.ActionManageGateway)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	budgets, err := s.deps.Gateway.ListBudgets(r.Context(), m)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	keys, _, err := s.deps.Gateway.ListKeys(r.Context(), m, "", 200)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	names := map[string]string{}
	for _, k := range keys {
		names[k.ID] = k.Name
	}
	p := gatewayBudgetsPage{gatewayBase: s.gatewayPage(r, v, "Budgets"), Keys: keys, Form: form, Periods: budgetPeriods(), Error: ferr,
		Scopes: []string{gateway.BudgetTenant, gateway.BudgetUser, gateway.BudgetKey}}
	for _, b := range budgets {
		row := budgetRow{Budget: b, Max: usd(b.MaxMicros), Spent: usd(b.Spend), Subject: b.SubjectID,
			Over: b.MaxMicros > 0 && b.Spend >= b.MaxMicros}
		if n, ok := names[b.SubjectID]; ok && b.Scope == gateway.BudgetKey {
			row.Subject = n
		}
		p.Budgets = append(p.Budgets, row)
	}
	s.render(w, r, status, "gateway_budgets", &p)
}

func (s *Server) handlePutBudget() http.Handler {
	return s.gatewayAction(identity.ActionManageGateway, func(w http.ResponseWriter, r *http.Request, v *viewer, m gateway.Manager) {
		form := budgetForm{Scope: r.PostFormValue("scope"), SubjectID: strings.TrimSpace(r.PostFormValue("subject_id")),
			Max: r.PostFormValue("max"), Period: r.PostFormValue("period")}
		fields := map[string]string{}
		in := gateway.BudgetInput{Scope: form.Scope, SubjectID: form.SubjectID, MaxMicros: formMicros(r, "max", fields), Period: form.Period}
		if in.Scope == gateway.BudgetTenant {
			in.SubjectID = "" // the field may hold what was typed for another scope
		}
		err := checkFields(fields)
		if err == nil {
			_, err = s.deps.Gateway.PutBudget(r.Context(), m, in)
		}
		if err != nil {
			s.gatewayBudgetsPage(w, r, statusOf(nodus.ErrorCode(err)), form, toFormError(err))
			return
		}
		http.Redirect(w, r, "/gateway/budgets", http.StatusSeeOther)
	})
}

func (s *Server) handleDeleteBudget() http.Handler {
	return s.gatewayDelete(identity.ActionManageGateway, "/gateway/budgets", s.deps.Gateway.DeleteBudget)
}

// ---- Spend --------------------------------------------------------------

type gatewaySpendPage struct {
	gatewayBase
	Admin  bool
	Filter spendForm
	Keys   []gateway.Key
	Rows   []spendRow
	Next   string
	CSV    string // the API's CSV export of the same filters
	Total  string // of the rows shown
	Error  *formError
}

type spendForm struct {
	From, To, Key, User, Model string
	Request                    string // the X-Request-Id a call was answered with
}

type spendRow struct {
	gateway.SpendLog
	Cost     string
	KeyName  string
	TraceURL string
	Failed   bool
}

func (s *Server) handleGatewaySpend() http.Handler {
	return s.gatewayAction(identity.ActionUseGateway, func(w http.ResponseWriter, r *http.Request, v *viewer, m gateway.Manager) {
		q := r.URL.Query()
		form := spendForm{From: q.Get("from"), To: q.Get("to"), Key: strings.TrimSpace(q.Get("key")),
			User: strings.TrimSpace(q.Get("user")), Model: strings.TrimSpace(q.Get("model")),
			Request: strings.TrimSpace(q.Get("request"))}
		p := gatewaySpendPage{gatewayBase: s.gatewayPage(r, v, "Spend"), Admin: m.Admin, Filter: form}
		f := gateway.SpendFilter{KeyID: form.Key, UserID: form.User, Model: form.Model, ClientRequestID: form.Request}
		fields := map[string]string{}
		var err error
		if form.From != "" {
			if f.From, err = parseDay(form.From, false); err != nil {
				fields["from"] = "a date, such as 2026-03-14"
			}
		}
		if form.To != "" {
			if f.To, err = parseDay(form.To, true); err != nil {
				fields["to"] = "a date, such as 2026-03-14"
			}
		}
		if err := checkFields(fields); err != nil {
			p.Error = toFormError(err)
			s.render(w, r, http.StatusBadRequest, "gateway_spend", &p)
			return
		}
		keys, _, err := s.deps.Gateway.ListKeys(r.Context(), m, "", 200)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		p.Keys = keys
		names := map[string]string{}
		for _, k := range keys {
			names[k.ID] = k.Name
		}
		rows, next, err := s.deps.Gateway.ListSpend(r.Context(), m, f, q.Get("cursor"), listPage)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		var total int64
		for _, l := range rows {
			row := spendRow{SpendLog: l, Cost: usd(l.CostMicros), KeyName: names[l.KeyID], Failed: l.ErrorClass != ""}
			if l.TraceID != "" {
				row.TraceURL = traceURL(l.TraceID)
			}
			total += l.CostMicros
			p.Rows = append(p.Rows, row)
		}
		p.Total = usd(total)
		if next != "" {
			p.Next = pageURL(q, next)
		}
		// The export is the API's (GET /api/v1/spend?format=csv): the
		// same session, the same service method, every matching row.
		csv := url.Values{"format": {"csv"}}
		if !f.From.IsZero() {
			csv.Set("from", f.From.Format(time.RFC3339))
		}
		if !f.To.IsZero() {
			csv.Set("to", f.To.Format(time.RFC3339))
		}
		for k, val := range map[string]string{"key_id": f.KeyID, "user_id": f.UserID, "model": f.Model,
			"client_request_id": f.ClientRequestID} {
			if val != "" {
				csv.Set(k, val)
			}
		}
		p.CSV = "/api/v1/spend?" + csv.Encode()
		s.render(w, r, http.StatusOK, "gateway_spend", &p)
	})
}
