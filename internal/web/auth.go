package web

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/nodus-os/nodus/internal/audit"
	"github.com/nodus-os/nodus/internal/httpapi"
	"github.com/nodus-os/nodus/internal/identity"
	"github.com/nodus-os/nodus/internal/nodus"
)

// sessionCookie is the API's session cookie: the pages and the API's
// routes the pages' scripts call share one session.
const sessionCookie = httpapi.SessionCookie

// loginCookie carries the login form's CSRF token before there is a
// session: a form on another site cannot sign a browser in to an account
// of its choosing, since it can neither read nor set this cookie.
const loginCookie = "nodus_login_csrf"

// viewer is who is looking at a page: the signed-in user and their
// session, whose CSRF token every form carries.
type viewer struct {
	user    identity.User
	session *identity.Session
	client  identity.Client
	// tenant is the tenant a super_admin chose to act in (admin_tenants.go),
	// nil otherwise: members always act in their own.
	tenant *identity.Tenant
}

type viewerKey struct{}

func viewerFrom(ctx context.Context) *viewer {
	v, _ := ctx.Value(viewerKey{}).(*viewer)
	return v
}

// tenantID is the tenant the viewer's pages are about; for a super_admin,
// who belongs to none, the one they act in, or "" for none.
func (v *viewer) tenantID() string {
	if v.tenant != nil {
		return v.tenant.ID
	}
	return v.user.TenantID
}

func (v *viewer) admin() bool {
	return v.user.Role == identity.RoleOrgAdmin || v.user.Role == identity.RoleSuperAdmin
}

// entry starts the audit entry of a change the viewer makes.
func (v *viewer) entry() audit.Entry {
	return audit.Entry{ActorKind: audit.ActorUser, ActorID: v.user.ID, Address: v.client.Address, UserAgent: v.client.UserAgent}
}

// viewer resolves the session cookie, with identity's idle and absolute
// timeouts.
func (s *Server) viewer(r *http.Request) (*viewer, error) {
	ck, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil, nodus.Errorf(nodus.EUNAUTHORIZED, "not signed in")
	}
	sess, p, err := s.deps.Identity.ResolveSession(r.Context(), ck.Value)
	if err != nil {
		return nil, err
	}
	return &viewer{user: p.User, session: sess, client: s.clientOf(r)}, nil
}

// clientOf is where a request comes from, as the API finds it (behind
// trusted proxies, from X-Forwarded-For): sign-in throttling counts per
// address.
func (s *Server) clientOf(r *http.Request) identity.Client {
	return identity.Client{Address: httpapi.ClientAddress(r, s.cfg.TrustedProxies), UserAgent: r.UserAgent()}
}

// toLogin sends a browser without a session to the login page, which
// brings it back here after signing in.
func (s *Server) toLogin(w http.ResponseWriter, r *http.Request) {
	target := "/login"
	if r.Method == http.MethodGet && r.URL.Path != "/" {
		target += "?next=" + url.QueryEscape(r.URL.RequestURI())
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}

var errCrossSite = errors.New("This form was sent from another site, or its security token has expired. Reload the page and try again.")

// sameOrigin refuses a request a browser says comes from another site:
// its Origin names another host, or Sec-Fetch-Site says cross-site.
func sameOrigin(r *http.Request) bool {
	if origin := r.Header.Get("Origin"); origin != "" {
		u, err := url.Parse(origin)
		if err != nil || !strings.EqualFold(u.Host, r.Host) {
			return false
		}
	}
	return r.Header.Get("Sec-Fetch-Site") != "cross-site"
}

// checkForm checks a POST's origin and its csrf field against want.
func checkForm(r *http.Request, want string) error {
	if !sameOrigin(r) {
		return errCrossSite
	}
	got := r.PostFormValue("csrf")
	if got == "" || want == "" || subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		return errCrossSite
	}
	return nil
}

// Cookies are always Secure, as the API's are (SECURITY.md check 8):
// browsers treat http://localhost and 127.0.0.1 as secure, so a local
// install signs in over plain HTTP, and anywhere else Nodus belongs
// behind TLS.
const secureCookies = true

// safeNext keeps a post-login redirect on this site: a path, never a
// scheme-relative or absolute URL.
func safeNext(next string) string {
	if next == "" || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") {
		return "/"
	}
	if u, err := url.Parse(next); err != nil || u.Host != "" || u.Scheme != "" {
		return "/"
	}
	return next
}

type loginPage struct {
	pageBase
	Login string
	Next  string
	Error string
}

func (s *Server) handleLoginPage() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := s.viewer(r); err == nil {
			http.Redirect(w, r, safeNext(r.URL.Query().Get("next")), http.StatusSeeOther)
			return
		}
		s.renderLogin(w, r, http.StatusOK, loginPage{Next: safeNext(r.URL.Query().Get("next"))})
	})
}

// renderLogin renders the login page with a fresh pre-session CSRF token
// in a cookie and in the form.
func (s *Server) renderLogin(w http.ResponseWriter, r *http.Request, status int, p loginPage) {
	token := randomToken()
	http.SetCookie(w, &http.Cookie{Name: loginCookie, Value: token, Path: "/login", HttpOnly: true, Secure: secureCookies,
		SameSite: http.SameSiteStrictMode, MaxAge: int((30 * time.Minute).Seconds())})
	p.pageBase = s.base(r, nil, "Sign in")
	p.CSRF = token
	s.render(w, r, status, "login", &p)
}

func (s *Server) handleLogin() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next := safeNext(r.PostFormValue("next"))
		login := strings.TrimSpace(r.PostFormValue("login"))
		ck, err := r.Cookie(loginCookie)
		if err != nil || checkForm(r, ck.Value) != nil {
			s.renderLogin(w, r, http.StatusForbidden, loginPage{Login: login, Next: next, Error: errCrossSite.Error()})
			return
		}
		c := s.clientOf(r)
		p, err := s.deps.Identity.Authenticate(r.Context(), login, r.PostFormValue("password"), c)
		if err != nil {
			status, msg := http.StatusUnauthorized, "Wrong login or password."
			switch nodus.ErrorCode(err) {
			case nodus.EUNAUTHORIZED:
			case nodus.ERATELIMIT:
				status, msg = http.StatusTooManyRequests, "Too many attempts. Wait a few minutes, then try again."
			case nodus.EFORBIDDEN, nodus.EINVALID:
				status, msg = http.StatusForbidden, nodus.ErrorMessage(err)
			default:
				s.deps.Logger.ErrorContext(r.Context(), "web: sign in", "err", err)
				status, msg = http.StatusServiceUnavailable, "Signing in is not possible right now. Try again in a minute."
			}
			s.renderLogin(w, r, status, loginPage{Login: login, Next: next, Error: msg})
			return
		}
		secret, sess, err := s.deps.Identity.StartSession(r.Context(), p, c)
		if err != nil {
			s.deps.Logger.ErrorContext(r.Context(), "web: start session", "err", err)
			s.renderLogin(w, r, http.StatusServiceUnavailable, loginPage{Login: login, Next: next,
				Error: "Signing in is not possible right now. Try again in a minute."})
			return
		}
		http.SetCookie(w, &http.Cookie{Name: loginCookie, Value: "", Path: "/login", MaxAge: -1, HttpOnly: true, Secure: secureCookies})
		http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: secret, Path: "/", HttpOnly: true, Secure: secureCookies,
			SameSite: http.SameSiteLaxMode, Expires: sess.ExpiresAt})
		http.Redirect(w, r, next, http.StatusSeeOther)
	})
}

func (s *Server) handleLogout() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := viewerFrom(r.Context())
		p := &identity.Principal{User: v.user, TenantActive: true}
		if err := s.deps.Identity.EndSession(r.Context(), v.session, p, v.client); err != nil {
			s.deps.Logger.ErrorContext(r.Context(), "web: end session", "err", err)
			s.renderError(w, r, v, http.StatusServiceUnavailable, "Signing out failed. Try again in a minute.")
			return
		}
		http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true,
			Secure: secureCookies, SameSite: http.SameSiteLaxMode})
		http.Redirect(w, r, "/login", http.StatusSeeOther)
	})
}

// randomToken is 128 random bits, URL-safe.
func randomToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}
