package web

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/nodus-os/nodus/internal/mail"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/settings"
)

// The settings page edits the settings of the viewer's tenant (a
// super_admin's: the tenant they act in, or the platform's own, which
// every tenant inherits). A field left empty inherits; the SMTP password
// is write-only: the page says whether one is set, never what it is.

type settingsPage struct {
	pageBase
	Owner         string // "the platform" or the tenant's name
	Platform      bool   // the platform's own settings: nothing to inherit from but the defaults
	Settings      *settings.Settings
	Branding      brandingForm
	Email         emailForm
	BrandingError *formError
	EmailError    *formError
	Saved         string // which group was just saved
	TestTo        string // the test email's address, kept after a failure
	TestError     *formError
	TestSent      bool // a test email was just accepted by the server
}

type brandingForm struct{ ProductName, LogoURL, PrimaryColor string }

type emailForm struct{ Host, Port, User, From, Security string }

// ownSource is the source of a value the target itself set.
func ownSource(tenantID string) settings.Source {
	if tenantID == "" {
		return settings.SourcePlatform
	}
	return settings.SourceTenant
}

// formsOf fills the forms with the target's own values: an inherited
// value shows as the field's placeholder, so saving the form unchanged
// keeps inheriting it.
func formsOf(set *settings.Settings) (brandingForm, emailForm) {
	own := ownSource(set.TenantID)
	str := func(v settings.Value[string]) string {
		if v.Source == own {
			return v.Value
		}
		return ""
	}
	b := brandingForm{ProductName: str(set.Branding.ProductName), LogoURL: str(set.Branding.LogoURL),
		PrimaryColor: str(set.Branding.PrimaryColor)}
	var e emailForm
	if m := set.Email; m != nil {
		e = emailForm{Host: str(m.SMTPHost), User: str(m.SMTPUser), From: str(m.From), Security: str(m.Security)}
		if m.SMTPPort.Source == own {
			e.Port = strconv.Itoa(m.SMTPPort.Value)
		}
	}
	return b, e
}

func (s *Server) handleSettings() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.settingsPage(w, r, http.StatusOK, func(*settingsPage) {})
	})
}

func (s *Server) settingsPage(w http.ResponseWriter, r *http.Request, status int, change func(*settingsPage)) {
	v := viewerFrom(r.Context())
	set, err := s.deps.Settings.Effective(r.Context(), v.tenantID(), true)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	p := settingsPage{pageBase: s.base(r, v, "Settings"), Settings: set, Platform: v.tenantID() == "", Owner: "the platform",
		Saved: r.URL.Query().Get("saved"), TestSent: r.URL.Query().Get("tested") == "1"}
	switch {
	case v.tenant != nil:
		p.Owner = v.tenant.Name
	case v.tenantID() != "":
		p.Owner = "your organisation"
	}
	p.Branding, p.Email = formsOf(set)
	change(&p)
	s.render(w, r, status, "admin_settings", &p)
}

// changed adds to fields what a submitted form changes in one group: a
// field emptied that the owner had set is removed (null: it inherits
// again), a field whose value changed is set, and the rest are left out,
// so saving a form changes only what was changed.
func changed(own, submitted map[string]string, fields map[string]any) {
	for name, v := range submitted {
		switch {
		case v == "" && own[name] != "":
			fields[name] = nil
		case v != "" && v != own[name]:
			fields[name] = v
		}
	}
}

// updateSettings applies fields to one group of the viewer's settings; nothing
// changed is nothing written (and nothing audited).
func (s *Server) updateSettings(r *http.Request, v *viewer, group string, fields map[string]any) error {
	if len(fields) == 0 {
		return nil
	}
	b, err := json.Marshal(fields)
	if err != nil {
		return err
	}
	_, err = s.deps.Settings.Update(r.Context(), v.tenantID(), map[string]json.RawMessage{group: b}, v.entry())
	return err
}

func (s *Server) handleSaveBranding() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := viewerFrom(r.Context())
		form := brandingForm{ProductName: strings.TrimSpace(r.PostFormValue("product_name")),
			LogoURL: strings.TrimSpace(r.PostFormValue("logo_url")), PrimaryColor: strings.TrimSpace(r.PostFormValue("primary_color"))}
		cur, err := s.deps.Settings.Effective(r.Context(), v.tenantID(), true)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		own, _ := formsOf(cur)
		fields := map[string]any{}
		changed(map[string]string{"product_name": own.ProductName, "logo_url": own.LogoURL, "primary_color": own.PrimaryColor},
			map[string]string{"product_name": form.ProductName, "logo_url": form.LogoURL, "primary_color": form.PrimaryColor}, fields)
		if err := s.updateSettings(r, v, settings.GroupBranding, fields); err != nil {
			s.settingsPage(w, r, statusOf(nodus.ErrorCode(err)), func(p *settingsPage) {
				p.Branding, p.BrandingError = form, toFormError(err)
			})
			return
		}
		http.Redirect(w, r, "/admin/settings?saved=branding", http.StatusSeeOther)
	})
}

func (s *Server) handleSaveEmail() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := viewerFrom(r.Context())
		form := emailForm{Host: strings.TrimSpace(r.PostFormValue("smtp_host")), Port: strings.TrimSpace(r.PostFormValue("smtp_port")),
			User: strings.TrimSpace(r.PostFormValue("smtp_user")), From: strings.TrimSpace(r.PostFormValue("from")),
			Security: r.PostFormValue("security")}
		fail := func(err error) {
			s.settingsPage(w, r, statusOf(nodus.ErrorCode(err)), func(p *settingsPage) { p.Email, p.EmailError = form, toFormError(err) })
		}
		cur, err := s.deps.Settings.Effective(r.Context(), v.tenantID(), true)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		_, own := formsOf(cur)
		fields := map[string]any{}
		changed(map[string]string{"smtp_host": own.Host, "smtp_user": own.User, "from": own.From, "security": own.Security},
			map[string]string{"smtp_host": form.Host, "smtp_user": form.User, "from": form.From, "security": form.Security}, fields)
		switch {
		case form.Port == "" && own.Port != "":
			fields["smtp_port"] = nil
		case form.Port != "" && form.Port != own.Port:
			n, err := strconv.Atoi(form.Port)
			if err != nil {
				fail(&nodus.Error{Code: nodus.EINVALID, Message: "Check the highlighted fields",
					Fields: map[string]string{"email.smtp_port": "must be a whole number from 1 to 65535"}})
				return
			}
			fields["smtp_port"] = n
		}
		// The password is write-only: typed, it replaces the stored one;
		// "clear" removes it; left empty, it stays as it is.
		if pw := r.PostFormValue("smtp_password"); pw != "" {
			fields["smtp_password"] = pw
		} else if r.PostFormValue("clear_password") == "true" {
			fields["smtp_password"] = nil
		}
		if err := s.updateSettings(r, v, settings.GroupEmail, fields); err != nil {
			fail(err)
			return
		}
		http.Redirect(w, r, "/admin/settings?saved=email", http.StatusSeeOther)
	})
}

// handleTestEmail sends a test email with the settings the page shows.
// Success redirects (a reload does not send again); a failure shows the
// classified reason beside the form: what the server said, or why Nodus
// did not connect.
func (s *Server) handleTestEmail() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := viewerFrom(r.Context())
		to := strings.TrimSpace(r.PostFormValue("to"))
		err := s.deps.Settings.SendTestEmail(r.Context(), v.entry(), v.tenantID(), to)
		if err == nil {
			http.Redirect(w, r, "/admin/settings?tested=1#email-test", http.StatusSeeOther)
			return
		}
		status, fe := statusOf(nodus.ErrorCode(err)), toFormError(err)
		var me *mail.Error
		switch code := nodus.ErrorCode(err); {
		case errors.As(err, &me) && me.Upstream():
			// The mail server failed, not this page: its reason is the
			// point of the test.
			status, fe = http.StatusBadGateway, &formError{Message: nodus.ErrorMessage(err)}
		case code == nodus.ETIMEOUT || code == nodus.ERATELIMIT:
			fe = &formError{Message: nodus.ErrorMessage(err)}
		}
		s.settingsPage(w, r, status, func(p *settingsPage) { p.TestTo, p.TestError = to, fe })
	})
}
