package web

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/notify"
)

// This file holds the notifications pages: the signed-in user's own
// notifications (newest first, unread marked), their email opt-ins, and
// for administrators the tenant's webhooks with their delivery logs. The
// user is always the viewer, never taken from the request.

type notificationsPage struct {
	pageBase
	Notifications []notify.Notification
	Next          string
	UnreadOnly    bool
	Prefs         []kindPref
	Saved         bool
	Error         *formError
}

// kindPref is one kind's email opt-in, as a checkbox.
type kindPref struct {
	Kind  notify.Kind
	Label string
	Email bool
}

// kindLabels name the kinds for people; a kind without one shows its
// machine name.
var kindLabels = map[notify.Kind]string{
	notify.KindDocumentProcessed:    "A document I uploaded was processed",
	notify.KindDocumentFailed:       "A document I uploaded failed",
	notify.KindBudgetWarning:        "A budget reached 80%",
	notify.KindBudgetExhausted:      "A budget is exhausted",
	notify.KindSecretRotated:        "A secret was rotated",
	notify.KindKeyExpiring:          "A gateway key expires within a week",
	notify.KindEgressDenied:         "An outbound request was denied by the egress policy",
	notify.KindRecordingTranscribed: "A recording I uploaded was transcribed",
	notify.KindRecordingFailed:      "A recording I uploaded failed",
}

func kindLabel(k notify.Kind) string {
	if l := kindLabels[k]; l != "" {
		return l
	}
	return string(k)
}

func (s *Server) notifyUnavailable() error {
	return &nodus.Error{Code: nodus.EUNAVAILABLE, Message: "Notifications are not available on this server"}
}

// notifyViewer checks that the viewer has notifications: a tenant (a
// super_admin acting in one) and the service.
func (s *Server) notifyViewer(r *http.Request) (*viewer, error) {
	v := viewerFrom(r.Context())
	switch {
	case v.tenantID() == "":
		return nil, errNoTenant
	case s.deps.Notify == nil:
		return nil, s.notifyUnavailable()
	}
	return v, nil
}

func (s *Server) handleNotifications() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.notificationsPage(w, r, http.StatusOK, r.URL.Query().Get("saved") == "1", nil)
	})
}

func (s *Server) notificationsPage(w http.ResponseWriter, r *http.Request, status int, saved bool, ferr *formError) {
	v, err := s.notifyViewer(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	q := r.URL.Query()
	p := notificationsPage{UnreadOnly: q.Get("unread") == "1", Saved: saved, Error: ferr}
	notes, next, err := s.deps.Notify.ListNotifications(r.Context(), v.tenantID(), v.user.ID,
		notify.ListFilter{UnreadOnly: p.UnreadOnly, Limit: listPage, Cursor: q.Get("cursor")})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	p.Notifications = notes
	if next != "" {
		p.Next = pageURL(q, next)
	}
	prefs, err := s.deps.Notify.Preferences(r.Context(), v.tenantID(), v.user.ID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	for _, k := range notify.Kinds() {
		p.Prefs = append(p.Prefs, kindPref{Kind: k, Label: kindLabel(k), Email: prefs[k]})
	}
	// The count in the header is read after the list, so both agree.
	p.pageBase = s.base(r, v, "Notifications")
	s.render(w, r, status, "notifications", &p)
}

// handleOpenNotification marks a notification read and goes to what it is
// about (back to the list when it names nothing, or anything but a path
// of this site).
func (s *Server) handleOpenNotification() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, err := s.notifyViewer(r)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		n, err := s.deps.Notify.OpenNotification(r.Context(), v.tenantID(), v.user.ID, r.PathValue("id"))
		if err != nil {
			s.fail(w, r, err)
			return
		}
		to := "/notifications"
		if r.PostFormValue("open") == "1" && localPath(n.Link) {
			to = n.Link
		}
		http.Redirect(w, r, to, http.StatusSeeOther)
	})
}

func (s *Server) handleReadAllNotifications() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, err := s.notifyViewer(r)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		if _, err := s.deps.Notify.MarkAllRead(r.Context(), v.tenantID(), v.user.ID); err != nil {
			s.fail(w, r, err)
			return
		}
		http.Redirect(w, r, "/notifications", http.StatusSeeOther)
	})
}

// handleSaveNotificationPrefs sets every kind's email opt-in from the
// form's checkboxes: a kind not checked is not emailed.
func (s *Server) handleSaveNotificationPrefs() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, err := s.notifyViewer(r)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		checked := r.PostForm["email"]
		email := make(map[notify.Kind]bool, len(notify.Kinds()))
		for _, k := range notify.Kinds() {
			email[k] = false
		}
		for _, c := range checked {
			email[notify.Kind(c)] = true
		}
		if _, err := s.deps.Notify.SetPreferences(r.Context(), v.tenantID(), v.user.ID, email); err != nil {
			if nodus.ErrorCode(err) == nodus.EINVALID {
				s.notificationsPage(w, r, http.StatusBadRequest, false, toFormError(err))
				return
			}
			s.fail(w, r, err)
			return
		}
		http.Redirect(w, r, "/notifications?saved=1", http.StatusSeeOther)
	})
}

// localPath reports whether p is a path on this site: it starts with one
// slash (not "//" or "/\", which browsers take as another host).
func localPath(p string) bool {
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || strings.HasPrefix(p, "/\\") {
		return false
	}
	u, err := url.Parse(p)
	return err == nil && u.Scheme == "" && u.Host == ""
}

// webhooksPage is the administrators' page of the tenant's webhooks; with
// Selected, the delivery log of one.
type webhooksPage struct {
	pageBase
	Webhooks   []notify.Webhook
	Kinds      []kindPref // the create form's choices
	Form       webhookForm
	Error      *formError
	Created    *notify.Webhook
	Secret     string // the new webhook's signing secret, shown this once
	Selected   *notify.Webhook
	Deliveries []notify.Delivery
}

type webhookForm struct {
	URL   string
	Kinds []notify.Kind
}

func (s *Server) handleWebhooks() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.webhooksPage(w, r, http.StatusOK, webhookForm{}, nil, nil, "")
	})
}

func (s *Server) webhooksPage(w http.ResponseWriter, r *http.Request, status int, form webhookForm, ferr *formError,
	created *notify.Webhook, secret string) {
	v, err := s.notifyViewer(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	hooks, err := s.deps.Notify.ListWebhooks(r.Context(), v.tenantID())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	p := webhooksPage{Webhooks: hooks, Form: form, Error: ferr, Created: created, Secret: secret}
	for _, k := range notify.Kinds() {
		p.Kinds = append(p.Kinds, kindPref{Kind: k, Label: kindLabel(k), Email: containsKind(form.Kinds, k)})
	}
	title := "Webhooks"
	if id := r.PathValue("id"); id != "" && r.Method == http.MethodGet {
		for i := range hooks {
			if hooks[i].ID == id {
				p.Selected = &hooks[i]
			}
		}
		if p.Selected == nil {
			s.fail(w, r, nodus.Errorf(nodus.ENOTFOUND, "webhook %s not found", id))
			return
		}
		if p.Deliveries, err = s.deps.Notify.ListDeliveries(r.Context(), v.tenantID(), id, 100); err != nil {
			s.fail(w, r, err)
			return
		}
		title = "Deliveries to " + p.Selected.URL
	}
	p.pageBase = s.base(r, v, title)
	s.render(w, r, status, "admin_webhooks", &p)
}

func containsKind(ks []notify.Kind, k notify.Kind) bool {
	for _, x := range ks {
		if x == k {
			return true
		}
	}
	return false
}

func (s *Server) handleCreateWebhook() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, err := s.notifyViewer(r)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		form := webhookForm{URL: strings.TrimSpace(r.PostFormValue("url"))}
		for _, k := range r.PostForm["kinds"] {
			form.Kinds = append(form.Kinds, notify.Kind(k))
		}
		hook, secret, err := s.deps.Notify.CreateWebhook(r.Context(), v.entry(), v.tenantID(),
			notify.WebhookInput{URL: form.URL, Kinds: form.Kinds})
		if err != nil {
			s.webhooksPage(w, r, statusOf(nodus.ErrorCode(err)), form, toFormError(err), nil, "")
			return
		}
		// The answer itself shows the secret (render sets no-store), as
		// for a new gateway key.
		s.webhooksPage(w, r, http.StatusCreated, webhookForm{}, nil, &hook, secret)
	})
}

func (s *Server) handleDeleteWebhook() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, err := s.notifyViewer(r)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		if err := s.deps.Notify.DeleteWebhook(r.Context(), v.entry(), v.tenantID(), r.PathValue("id")); err != nil {
			s.fail(w, r, err)
			return
		}
		http.Redirect(w, r, "/admin/webhooks", http.StatusSeeOther)
	})
}

// unreadBadge is the header's count as text: past 99 it says "99+".
func unreadBadge(n int) string {
	if n > 99 {
		return "99+"
	}
	return strconv.Itoa(n)
}
