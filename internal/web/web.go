package web

import (
	"context"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/netip"
	"path"
	"strings"
	"time"

	"github.com/nodus-os/nodus/internal/audit"
	"github.com/nodus-os/nodus/internal/chat"
	"github.com/nodus-os/nodus/internal/egress"
	"github.com/nodus-os/nodus/internal/gateway"
	"github.com/nodus-os/nodus/internal/identity"
	"github.com/nodus-os/nodus/internal/knowledge"
	"github.com/nodus-os/nodus/internal/memory"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/notebook"
	"github.com/nodus-os/nodus/internal/notify"
	"github.com/nodus-os/nodus/internal/recordings"
	"github.com/nodus-os/nodus/internal/settings"
	"github.com/nodus-os/nodus/internal/tracing"
	"github.com/nodus-os/nodus/internal/usage"
	"github.com/nodus-os/nodus/internal/vault"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Deps are the services the pages read and change. Identity, Menus and
// Settings are required; a nil module service shows its pages as
// unavailable, as the API answers 503.
type Deps struct {
	Logger    *slog.Logger
	Identity  *identity.Service
	Menus     *identity.MenuService
	Settings  *settings.Service
	Knowledge *knowledge.Service
	Chat      *chat.Service
	Gateway   *gateway.Service
	// The administration pages' services (admin_*.go): the audit log
	// (also where refused pages are recorded), the vault and egress.
	Audit  *audit.Service
	Vault  *vault.Service
	Egress *egress.Service
	// Tracing and Memory serve the traces and memories pages.
	Tracing *tracing.Service
	Memory  *memory.Service
	// Notify serves the notifications pages, the header's unread count
	// and the webhooks administration.
	Notify *notify.Service
	// Notebooks serves the notebook pages.
	Notebooks *notebook.Service
	// Usage gives administrators the dashboard's usage section.
	Usage *usage.Service
	// Recordings serves the recordings pages.
	Recordings *recordings.Service
}

// Config holds the UI's limits.
type Config struct {
	// RequestTimeout bounds a page's handler.
	RequestTimeout time.Duration
	// TrustedProxies are the reverse proxies whose X-Forwarded-For is
	// believed, as for the API.
	TrustedProxies []netip.Prefix
}

// Server is the UI's http.Handler.
type Server struct {
	deps   Deps
	cfg    Config
	mux    *http.ServeMux
	perms  identity.Permissions
	assets *assets
	pages  map[string]*template.Template
	clock  func() time.Time
	// firsts holds the literal first path segments of the routes ("" for
	// the root), so Handles turns other paths away without a match.
	firsts map[string]bool
}

// formMaxBytes bounds a form's body: the largest is a chatbot's, whose
// system prompt is the longest field.
const formMaxBytes = 64 << 10

// New builds the UI: it parses every template and fingerprints every
// static file once, so a broken template fails at start, not on a page.
func New(deps Deps, cfg Config) (*Server, error) {
	if deps.Identity == nil || deps.Menus == nil || deps.Settings == nil || deps.Logger == nil {
		return nil, fmt.Errorf("web: Logger, Identity, Menus and Settings are required")
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 30 * time.Second
	}
	static, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, err
	}
	a, err := newAssets(static)
	if err != nil {
		return nil, err
	}
	s := &Server{deps: deps, cfg: cfg, mux: http.NewServeMux(), perms: identity.NewPermissions(), assets: a,
		clock: time.Now}
	if s.pages, err = parsePages(a); err != nil {
		return nil, err
	}
	routes := s.routes()
	for _, rt := range routes {
		s.mux.Handle(rt.pattern, s.wrap(rt))
	}
	s.firsts = routeFirsts(routes)
	return s, nil
}

// route is one page or form target of the UI.
type route struct {
	pattern string
	handler http.Handler
	// public routes (login, static files) need no session.
	public bool
	// action, when set, is the permission the route needs, checked as the
	// API checks its routes' (a refusal is audited and shown as a 403
	// page). Routes without one check in their handler.
	action identity.Action
}

// routes lists every path the UI serves. The paths of the default menu
// (migrations/auth 0004) are the ones a page answers here.
func (s *Server) routes() []route {
	return append([]route{
		{pattern: "GET /static/{file}", handler: s.assets, public: true},
		{pattern: "GET /brand.css", handler: s.handleBrandCSS()},
		{pattern: "GET /login", handler: s.handleLoginPage(), public: true},
		{pattern: "POST /login", handler: s.handleLogin(), public: true},
		{pattern: "POST /logout", handler: s.handleLogout()},

		{pattern: "GET /{$}", handler: s.handleDashboard()},

		{pattern: "GET /knowledge", handler: s.handleKnowledgeBases()},
		{pattern: "POST /knowledge", handler: s.handleCreateKnowledgeBase()},
		{pattern: "GET /knowledge/{id}", handler: s.handleKnowledgeBase()},
		{pattern: "POST /knowledge/{id}/documents/{doc}/retry", handler: s.handleRetryDocument()},
		{pattern: "GET /knowledge/{id}/documents/{doc}/row", handler: s.handleDocumentRow()},

		{pattern: "GET /chatbots", handler: s.handleChatbots()},
		{pattern: "POST /chatbots", handler: s.handleSaveChatbot()},
		{pattern: "GET /chatbots/{id}", handler: s.handleChatbot()},
		{pattern: "POST /chatbots/{id}", handler: s.handleSaveChatbot()},

		{pattern: "GET /chat", handler: s.handleConversations()},
		{pattern: "GET /chat/new/{bot}", handler: s.handleConversation()},
		{pattern: "GET /chat/c/{id}", handler: s.handleConversation()},
		{pattern: "GET /chat/c/{id}/m/{msg}", handler: s.handleMessageFragment()},
		{pattern: "POST /chat/c/{id}/m/{msg}/feedback", handler: s.handleFeedback()},
		{pattern: "POST /chat/c/{id}/update", handler: s.handleUpdateConversation()},

		{pattern: "GET /traces", handler: s.handleTraces()},
		{pattern: "GET /traces/{id}", handler: s.handleTrace()},
		{pattern: "POST /traces/{id}/scores", handler: s.handleScoreTrace()},

		{pattern: "GET /gateway", handler: http.RedirectHandler("/gateway/models", http.StatusSeeOther)},
		{pattern: "GET /gateway/models", handler: s.handleGatewayModels()},
		{pattern: "POST /gateway/models", handler: s.handleSaveDeployment()},
		{pattern: "POST /gateway/models/{id}", handler: s.handleSaveDeployment()},
		{pattern: "POST /gateway/models/{id}/delete", handler: s.handleDeleteDeployment()},
		{pattern: "GET /gateway/keys", handler: s.handleGatewayKeys()},
		{pattern: "POST /gateway/keys", handler: s.handleCreateKey()},
		{pattern: "POST /gateway/keys/{id}/status", handler: s.handleKeyStatus()},
		{pattern: "POST /gateway/keys/{id}/rotate", handler: s.handleRotateKey()},
		{pattern: "POST /gateway/keys/{id}/delete", handler: s.handleDeleteKey()},
		{pattern: "GET /gateway/budgets", handler: s.handleGatewayBudgets()},
		{pattern: "POST /gateway/budgets", handler: s.handlePutBudget()},
		{pattern: "POST /gateway/budgets/{id}/delete", handler: s.handleDeleteBudget()},
		{pattern: "GET /gateway/spend", handler: s.handleGatewaySpend()},

		// The menu's "Agents & memory" item; agent sessions have no page yet.
		{pattern: "GET /agents", handler: http.RedirectHandler("/agents/memories", http.StatusSeeOther)},
		{pattern: "GET /agents/memories", handler: s.handleMemories()},
		{pattern: "POST /agents/memories/{id}", handler: s.handleUpdateMemory()},
		{pattern: "POST /agents/memories/{id}/delete", handler: s.handleDeleteMemory()},

		// Recordings: the list (uploads go to the API from the page's
		// script), a recording's page and its forms.
		{pattern: "GET /recordings", handler: s.handleRecordings()},
		{pattern: "GET /recordings/{id}", handler: s.handleRecording()},
		{pattern: "POST /recordings/{id}/title", handler: s.handleRenameRecording()},
		{pattern: "POST /recordings/{id}/retry", handler: s.handleRetryRecording()},
		{pattern: "POST /recordings/{id}/delete", handler: s.handleDeleteRecording()},
		{pattern: "POST /recordings/{id}/knowledge", handler: s.handleRecordingToKnowledge()},

		// Notebooks: the viewer's own and those shared with them.
		{pattern: "GET /notebooks", handler: s.handleNotebooks()},
		{pattern: "POST /notebooks", handler: s.handleCreateNotebook()},
		{pattern: "GET /notebooks/{id}", handler: s.handleNotebook()},
		{pattern: "POST /notebooks/{id}/update", handler: s.handleNotebookUpdate()},
		{pattern: "POST /notebooks/{id}/delete", handler: s.handleNotebookDelete()},
		{pattern: "POST /notebooks/{id}/sources", handler: s.handleNotebookAddSource()},
		{pattern: "POST /notebooks/{id}/sources/{source}", handler: s.handleNotebookSource()},
		{pattern: "POST /notebooks/{id}/sources/{source}/delete", handler: s.handleNotebookDeleteSource()},
		{pattern: "POST /notebooks/{id}/cards", handler: s.handleNotebookCreateCard()},
		{pattern: "POST /notebooks/{id}/cards/{card}", handler: s.handleNotebookCard()},
		{pattern: "POST /notebooks/{id}/cards/{card}/move", handler: s.handleNotebookMoveCard()},
		{pattern: "POST /notebooks/{id}/cards/{card}/delete", handler: s.handleNotebookDeleteCard()},
		{pattern: "POST /notebooks/{id}/ask", handler: s.handleNotebookAsk()},
		{pattern: "POST /notebooks/{id}/chats/{chat}/m/{msg}/card", handler: s.handleNotebookSaveAnswer()},
		{pattern: "POST /notebooks/{id}/shares", handler: s.handleNotebookShare()},
		{pattern: "POST /notebooks/{id}/shares/{member}", handler: s.handleNotebookShare()},
		{pattern: "POST /notebooks/{id}/shares/{member}/delete", handler: s.handleNotebookUnshare()},
		{pattern: "POST /notebooks/{id}/leave", handler: s.handleNotebookLeave()},

		// The viewer's own notifications and email opt-ins.
		{pattern: "GET /notifications", handler: s.handleNotifications()},
		{pattern: "POST /notifications/{id}/read", handler: s.handleOpenNotification()},
		{pattern: "POST /notifications/read-all", handler: s.handleReadAllNotifications()},
		{pattern: "POST /notifications/preferences", handler: s.handleSaveNotificationPrefs()},
	}, s.adminRoutes()...)
}

// Handles reports whether r is for a path of the UI, so the top-level
// handler can send everything else (the API, the gateway, probes) to the
// API unchanged.
func (s *Server) Handles(r *http.Request) bool {
	// Most requests are the API's. A clean path whose first segment no
	// route starts with cannot match, so the mux is asked only about the
	// others (it cleans and redirects, so an unclean path always goes to it).
	if s.firsts != nil && r.Method != http.MethodConnect && isClean(r.URL.Path) && !s.firsts[firstSegment(r.URL.Path)] {
		return false
	}
	_, pattern := s.mux.Handler(r)
	return pattern != ""
}

// routeFirsts is the literal first path segments of routes, or nil when a
// route's is not literal (every path then goes to the mux).
func routeFirsts(routes []route) map[string]bool {
	firsts := map[string]bool{}
	for _, rt := range routes {
		first, ok := patternFirstSegment(rt.pattern)
		if !ok {
			return nil
		}
		firsts[first] = true
	}
	return firsts
}

// patternFirstSegment is the literal first path segment of a ServeMux
// pattern ("GET /static/{file}" → "static", "/{$}" → ""); ok is false when
// it is not literal (a wildcard, a bare "/" subtree or a host pattern).
func patternFirstSegment(pattern string) (first string, ok bool) {
	p := pattern
	if _, after, found := strings.Cut(p, " "); found {
		p = strings.TrimLeft(after, " \t")
	}
	if !strings.HasPrefix(p, "/") || p == "/" {
		return "", false
	}
	first = firstSegment(p)
	switch {
	case first == "{$}":
		return "", true
	case strings.Contains(first, "{"):
		return "", false
	}
	return first, true
}

// firstSegment is the text between a path's first slash and the next.
func firstSegment(p string) string {
	p = strings.TrimPrefix(p, "/")
	if i := strings.IndexByte(p, '/'); i >= 0 {
		return p[:i]
	}
	return p
}

// isClean reports whether the mux would take p as it is, without
// redirecting to a cleaned path.
func isClean(p string) bool {
	if p == "" || p[0] != '/' {
		return false
	}
	c := path.Clean(p)
	return c == p || (strings.HasSuffix(p, "/") && c+"/" == p)
}

// Mount returns the server's top-level handler: the UI's paths to ui,
// everything else to api, whose answers (JSON errors included) are left
// as they are.
func Mount(ui *Server, api http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ui.Handles(r) {
			ui.ServeHTTP(w, r)
			return
		}
		api.ServeHTTP(w, r)
	})
}

// contentSecurityPolicy allows the page's own scripts, styles, fetches
// and forms only: no inline script or style, no framing, no <base>.
// Images may come from https: for a tenant's logo URL.
// media-src: a recording's page plays its audio from the API.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' https: data:; media-src 'self'; " +
	"connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// ServeHTTP sets the security headers of every answer, logs it and hands
// it to the route.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	h := w.Header()
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	rec := &statusRecorder{ResponseWriter: w}
	_, pattern := s.mux.Handler(r)
	s.mux.ServeHTTP(rec, r)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	level := slog.LevelInfo
	if pattern == "GET /static/{file}" && rec.status < 400 {
		level = slog.LevelDebug
	}
	s.deps.Logger.LogAttrs(r.Context(), level, "page", slog.String("method", r.Method),
		slog.String("path", r.URL.EscapedPath()), slog.String("route", pattern), slog.Int("status", rec.status),
		slog.Int64("bytes", rec.bytes), slog.Duration("duration", time.Since(start)))
}

// wrap bounds a route's time and body and, unless it is public, finds the
// session: a page without one redirects to the login page.
func (s *Server) wrap(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
		defer cancel()
		r = r.WithContext(ctx)
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, formMaxBytes)
		}
		if rt.public {
			rt.handler.ServeHTTP(w, r)
			return
		}
		v, err := s.viewer(r)
		if err != nil {
			s.toLogin(w, r)
			return
		}
		if r.Method == http.MethodPost {
			if err := checkForm(r, v.session.CSRFToken); err != nil {
				s.renderError(w, r, v, http.StatusForbidden, err.Error())
				return
			}
		}
		if rt.action != "" && !s.perms.Allows(v.user.Role, rt.action) {
			s.deny(w, r, v, rt.action)
			return
		}
		// Scoped as the API scopes a session (httpapi's authorize): the
		// stores filter every query on it. A super_admin acting in a
		// tenant is scoped to it, as the API's ?tenant_id= narrows theirs.
		if v.user.Role == identity.RoleSuperAdmin {
			v.tenant = s.actingTenant(r)
		}
		ctx = context.WithValue(ctx, viewerKey{}, v)
		switch {
		case v.tenant != nil:
			ctx = nodus.WithTenant(ctx, v.tenant.ID)
		case v.user.Role == identity.RoleSuperAdmin:
			ctx = nodus.WithAllTenants(ctx)
		default:
			ctx = nodus.WithTenant(ctx, v.user.TenantID)
		}
		rt.handler.ServeHTTP(w, r.WithContext(ctx))
	})
}

// statusRecorder remembers the status and size of an answer for the log.
type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(p)
	r.bytes += int64(n)
	return n, err
}

// Flush lets a handler stream through the recorder.
func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
