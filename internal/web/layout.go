package web

import (
	"bytes"
	"fmt"
	"html/template"
	"io/fs"
	"math"
	"net/http"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/nodus-os/nodus/internal/audit"
	"github.com/nodus-os/nodus/internal/identity"
	"github.com/nodus-os/nodus/internal/knowledge"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/recordings"
)

// pageBase is what the layout of every page needs.
type pageBase struct {
	Title    string
	CSRF     string // the session's token (the login form's own before sign-in)
	User     *identity.User
	Nav      []navItem
	Brand    brand
	Path     string // the request's path, to mark the current menu item
	BrandCSS string // the tenant's stylesheet URL, "" for the default colours
	// Picker is the tenant picker of a super_admin (admin_tenants.go);
	// nil for everyone else.
	Picker *tenantPicker
	// Notify shows the header's link to the notifications, with Unread
	// of them unread; false without a tenant or the service.
	Notify bool
	Unread int
}

// navItem is a menu item the UI can open.
type navItem struct {
	Label    string
	Path     string
	Current  bool
	Children []navItem
}

// brand is the tenant's branding as the layout shows it.
type brand struct {
	Name    string
	LogoURL string
}

// pageData is what every page's data has: its pageBase.
type pageData interface{ basePtr() *pageBase }

func (p *pageBase) basePtr() *pageBase { return p }

// defaultColor is settings' default primary colour, used when a tenant's
// is missing or malformed.
const defaultColor = "#2563eb"

var colorPattern = regexp.MustCompile(`^#[0-9a-f]{6}$`)

// base builds the layout's data for v (nil before sign-in). Menus and
// branding that fail to load leave the page usable: the failure is logged
// and the page shows the defaults.
func (s *Server) base(r *http.Request, v *viewer, title string) pageBase {
	b := pageBase{Title: title, Path: r.URL.Path, Brand: brand{Name: "Nodus"}}
	if v == nil {
		return b
	}
	b.User, b.CSRF = &v.user, v.session.CSRFToken
	b.Picker = pickerOf(v)
	ctx := r.Context()
	menu, err := s.deps.Menus.FindMenu(ctx, identity.Actor{User: &v.user, Kind: audit.ActorUser, Client: v.client}, v.tenantID())
	if err != nil {
		s.deps.Logger.WarnContext(ctx, "web: menu", "err", err)
	}
	b.Nav = s.nav(r, menu)
	if s.deps.Notify != nil && v.tenantID() != "" {
		// One indexed count per page (notifications_unread); a failure
		// leaves the link without a number.
		b.Notify = true
		if n, err := s.deps.Notify.UnreadCount(ctx, v.tenantID(), v.user.ID); err != nil {
			s.deps.Logger.WarnContext(ctx, "web: unread notifications", "err", err)
		} else {
			b.Unread = n
		}
	}
	if set, err := s.deps.Settings.Effective(ctx, v.tenantID(), false); err != nil {
		s.deps.Logger.WarnContext(ctx, "web: branding", "err", err)
	} else {
		if n := set.Branding.ProductName.Value; n != "" {
			b.Brand.Name = n
		}
		b.Brand.LogoURL = set.Branding.LogoURL.Value
		if c := strings.ToLower(set.Branding.PrimaryColor.Value); c != defaultColor && colorPattern.MatchString(c) {
			b.BrandCSS = "/brand.css?c=" + strings.TrimPrefix(c, "#")
		}
	}
	return b
}

// nav keeps the menu items the UI serves (and absolute https links): the
// default menu names every module, and a link to a page not built would
// only lead to an error. A parent with nothing left to open is dropped.
func (s *Server) nav(r *http.Request, nodes []identity.MenuNode) []navItem {
	var out []navItem
	for _, n := range nodes {
		it := navItem{Label: n.Label, Children: s.nav(r, n.Children)}
		switch {
		case strings.HasPrefix(n.Path, "https://"):
			it.Path = n.Path
		case strings.HasPrefix(n.Path, "/") && s.servesPage(n.Path):
			it.Path = n.Path
			it.Current = n.Path == r.URL.Path || n.Path != "/" && strings.HasPrefix(r.URL.Path, n.Path+"/")
		}
		if it.Path == "" && len(it.Children) == 0 {
			continue
		}
		out = append(out, it)
	}
	return out
}

// servesPage reports whether GET p is a page of the UI.
func (s *Server) servesPage(p string) bool {
	req, err := http.NewRequest(http.MethodGet, p, nil)
	if err != nil {
		return false
	}
	return s.Handles(req)
}

// handleBrandCSS serves the tenant's primary colour as CSS custom
// properties: a stylesheet, since the CSP allows no inline style. The
// colour is in the URL so the answer can be cached; it is checked against
// the tenant's own, so the URL cannot inject anything into the CSS.
func (s *Server) handleBrandCSS() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := viewerFrom(r.Context())
		c := defaultColor
		if set, err := s.deps.Settings.Effective(r.Context(), v.tenantID(), false); err == nil {
			if pc := strings.ToLower(set.Branding.PrimaryColor.Value); colorPattern.MatchString(pc) {
				c = pc
			}
		}
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
		if "#"+r.URL.Query().Get("c") == c {
			w.Header().Set("Cache-Control", "private, max-age=86400")
		} else {
			w.Header().Set("Cache-Control", "no-store")
		}
		fmt.Fprintf(w, ":root{--brand:%s;--brand-ink:%s}\n", c, inkOn(c))
	})
}

// inkOn picks black or white text for a background colour #rrggbb,
// whichever contrasts more (WCAG relative luminance).
func inkOn(c string) string {
	lin := func(h string) float64 {
		n, _ := strconv.ParseUint(h, 16, 8)
		v := float64(n) / 255
		if v <= 0.03928 {
			return v / 12.92
		}
		return math.Pow((v+0.055)/1.055, 2.4)
	}
	l := 0.2126*lin(c[1:3]) + 0.7152*lin(c[3:5]) + 0.0722*lin(c[5:7])
	// Contrast with white is 1.05/(l+0.05), with black (l+0.05)/0.05.
	if 1.05/(l+0.05) >= (l+0.05)/0.05 {
		return "#ffffff"
	}
	return "#111111"
}

// parsePages parses each page template with the layout and the shared
// partials.
func parsePages(a *assets) (map[string]*template.Template, error) {
	funcs := template.FuncMap{
		"asset":    a.url,
		"markdown": renderMarkdown,
		"snippet":  snippetHTML,
		"ago":      ago,
		"date":     func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04") },
		"bytes":    humanBytes,
		"pct":      func(n int) string { return strconv.Itoa(n) + "%" },
		"badge":    unreadBadge,
		"clock":    recordings.Clock,
		"deref": func(f *float64) float64 {
			if f == nil {
				return 0
			}
			return *f
		},
		"row": func(kb string, d knowledge.Document, edit bool, csrf string) documentRow {
			return documentRow{BaseID: kb, Doc: d, CanEdit: edit, CSRF: csrf}
		},
	}
	root, err := template.New("").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/partials.html")
	if err != nil {
		return nil, err
	}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	pages := map[string]*template.Template{}
	for _, n := range names {
		name := strings.TrimSuffix(path.Base(n), ".html")
		if name == "layout" || name == "partials" {
			continue
		}
		t, err := template.Must(root.Clone()).ParseFS(templateFS, n)
		if err != nil {
			return nil, err
		}
		pages[name] = t
	}
	return pages, nil
}

// render writes a page: into a buffer first, so a template error becomes
// an error page rather than half a page.
func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, page string, data pageData) {
	s.renderTemplate(w, r, status, page, "layout", data)
}

// renderTemplate executes one named template of a page (a fragment the
// page's script swaps in, or the whole layout).
func (s *Server) renderTemplate(w http.ResponseWriter, r *http.Request, status int, page, name string, data any) {
	t, ok := s.pages[page]
	if !ok {
		panic("web: no page template " + page)
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, name, data); err != nil {
		s.deps.Logger.ErrorContext(r.Context(), "web: render", "page", page, "err", err)
		http.Error(w, "This page could not be shown. The error has been logged.", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

type errorPage struct {
	pageBase
	Status  int
	Message string
}

// renderError shows a readable error page: what happened, and a way on.
func (s *Server) renderError(w http.ResponseWriter, r *http.Request, v *viewer, status int, msg string) {
	p := errorPage{pageBase: s.base(r, v, http.StatusText(status)), Status: status, Message: msg}
	s.render(w, r, status, "error", &p)
}

// fail shows err as an error page, with the status and message the API
// would give it; internal errors are logged and shown generically.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	code := nodus.ErrorCode(err)
	status := statusOf(code)
	msg := nodus.ErrorMessage(err)
	if status >= 500 {
		s.deps.Logger.ErrorContext(r.Context(), "web: page failed", "path", r.URL.Path, "err", err)
		if code != nodus.EUNAVAILABLE {
			msg = "Something went wrong on our side. It has been logged; try again in a minute."
		}
	}
	if code == nodus.ENOTFOUND {
		msg += ". It may have been deleted, or the link is wrong."
	}
	s.renderError(w, r, viewerFrom(r.Context()), status, msg)
}

// statusOf maps error codes to statuses as httpapi does.
func statusOf(code string) int {
	switch code {
	case nodus.EINVALID:
		return http.StatusBadRequest
	case nodus.EUNAUTHORIZED:
		return http.StatusUnauthorized
	case nodus.EFORBIDDEN:
		return http.StatusForbidden
	case nodus.ENOTFOUND:
		return http.StatusNotFound
	case nodus.ECONFLICT:
		return http.StatusConflict
	case nodus.ETOOLARGE:
		return http.StatusRequestEntityTooLarge
	case nodus.ERATELIMIT:
		return http.StatusTooManyRequests
	case nodus.EUNAVAILABLE:
		return http.StatusServiceUnavailable
	case nodus.ETIMEOUT:
		return http.StatusGatewayTimeout
	}
	return http.StatusInternalServerError
}

// formError is a failed form's message and its fields' messages, shown
// beside the form the user filled in.
type formError struct {
	Message string
	Fields  map[string]string
}

func toFormError(err error) *formError {
	if err == nil {
		return nil
	}
	msg := nodus.ErrorMessage(err)
	if statusOf(nodus.ErrorCode(err)) >= 500 && nodus.ErrorCode(err) != nodus.EUNAVAILABLE {
		msg = "Saving failed on our side. It has been logged; try again in a minute."
	}
	return &formError{Message: msg, Fields: nodus.ErrorFields(err)}
}

// ago is a short relative time for lists.
func ago(t time.Time) string {
	d := time.Since(t)
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return strconv.Itoa(int(d.Minutes())) + " min ago"
	case d < 24*time.Hour:
		return strconv.Itoa(int(d.Hours())) + " h ago"
	case d < 30*24*time.Hour:
		return strconv.Itoa(int(d.Hours()/24)) + " days ago"
	}
	return t.UTC().Format("2006-01-02")
}

func humanBytes(n int64) string {
	switch {
	case n < 1<<10:
		return strconv.FormatInt(n, 10) + " B"
	case n < 1<<20:
		return strconv.FormatFloat(float64(n)/(1<<10), 'f', 1, 64) + " KB"
	}
	return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + " MB"
}
