package web

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/nodus-os/nodus/internal/audit"
	"github.com/nodus-os/nodus/internal/identity"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/vault"
)

// The vault pages show a tenant's environments, folders and secrets by
// name only. A value leaves the vault through one action: the Reveal
// button, a POST that the vault audits (secret.read) before answering,
// and whose answer page (no-store) is the only place the value appears.
// The vault's grants decide, within a role's actions, which folders a
// user may list and read.

// vaultPrincipal is the viewer as the vault sees them.
func (v *viewer) vaultPrincipal() vault.Principal {
	return vault.Principal{UserID: v.user.ID, Role: string(v.user.Role), ActorKind: audit.ActorUser,
		Address: v.client.Address, UserAgent: v.client.UserAgent}
}

// vaultReady refuses when there is no vault to show: none on this
// server, a sealed one, or a super_admin acting in no tenant.
func (s *Server) vaultReady(v *viewer) error {
	switch {
	case s.deps.Vault == nil:
		return &nodus.Error{Code: nodus.EUNAVAILABLE, Message: "The vault is not available on this server"}
	case s.deps.Vault.Sealed():
		return &nodus.Error{Code: nodus.EUNAVAILABLE, Message: "The vault is sealed: its master key is missing or wrong. An operator must fix the key and restart Nodus"}
	case v.tenantID() == "":
		return errPickTenant
	}
	return nil
}

// vaultLocation reads a location from a query or a form; the folder is
// "/" when not given.
func vaultLocation(get func(string) string) vault.Location {
	loc := vault.Location{Environment: get("env"), Path: get("path"), Key: strings.TrimSpace(get("key"))}
	if loc.Path == "" {
		loc.Path = "/"
	}
	return loc
}

// vaultURL is a vault page's URL for a location.
func vaultURL(page string, loc vault.Location) string {
	q := url.Values{"env": {loc.Environment}, "path": {loc.Path}}
	if loc.Key != "" {
		q.Set("key", loc.Key)
	}
	return page + "?" + q.Encode()
}

// vaultPerms are what the viewer's role may do in the vault (the grants
// still decide per folder).
type vaultPerms struct{ Write, Reveal, Manage bool }

func (s *Server) vaultPermsOf(v *viewer) vaultPerms {
	return vaultPerms{Write: s.perms.Allows(v.user.Role, identity.ActionWriteVault),
		Reveal: s.perms.Allows(v.user.Role, identity.ActionRevealVault),
		Manage: s.perms.Allows(v.user.Role, identity.ActionManageVault)}
}

type vaultPage struct {
	pageBase
	Environments []vault.Environment
	Location     vault.Location // the environment and folder shown
	Crumbs       []crumb        // the folder's ancestors, "/" first
	Folders      []crumb        // the folders right below it
	Secrets      []vault.Secret
	Next         string
	Can          vaultPerms
	Form         secretForm
	EnvForm      envForm
	Error        *formError
}

type crumb struct{ Name, URL string }

type secretForm struct{ Path, Key, Comment string }

type envForm struct{ Slug, Name string }

func (s *Server) handleVault() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.vaultPage(w, r, http.StatusOK, vaultLocation(r.URL.Query().Get), func(*vaultPage) {})
	})
}

func (s *Server) vaultPage(w http.ResponseWriter, r *http.Request, status int, loc vault.Location, change func(*vaultPage)) {
	v := viewerFrom(r.Context())
	if err := s.vaultReady(v); err != nil {
		s.fail(w, r, err)
		return
	}
	ctx, p := r.Context(), v.vaultPrincipal()
	envs, err := s.deps.Vault.ListEnvironments(ctx, p)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if loc.Environment == "" && len(envs) > 0 {
		loc.Environment = envs[0].Slug
	}
	loc.Key = ""
	page := vaultPage{pageBase: s.base(r, v, "Vault"), Environments: envs, Location: loc, Can: s.vaultPermsOf(v),
		Form: secretForm{Path: loc.Path}}
	page.Secrets, page.Next, err = s.deps.Vault.ListSecrets(ctx, p, vault.SecretFilter{Environment: loc.Environment,
		Path: loc.Path, Cursor: r.URL.Query().Get("cursor"), Limit: listPage})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if page.Next != "" {
		page.Next = vaultURL("/vault", loc) + "&cursor=" + url.QueryEscape(page.Next)
	}
	// Folders exist only as the paths of secrets: the ones below this
	// folder are read from one recursive page of them.
	below, _, err := s.deps.Vault.ListSecrets(ctx, p, vault.SecretFilter{Environment: loc.Environment, Path: loc.Path,
		Recursive: true, Limit: vault.MaxListLimit})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	page.Folders = subfolders(loc, below)
	page.Crumbs = crumbsOf(loc)
	change(&page)
	s.render(w, r, status, "admin_vault", &page)
}

// subfolders are the folders right below loc's that hold secrets.
func subfolders(loc vault.Location, secrets []vault.Secret) []crumb {
	prefix := strings.TrimSuffix(loc.Path, "/") + "/"
	var names []string
	for _, sec := range secrets {
		rest, ok := strings.CutPrefix(sec.Path, prefix)
		if !ok || rest == "" {
			continue
		}
		name, _, _ := strings.Cut(rest, "/")
		if !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	out := make([]crumb, len(names))
	for i, n := range names {
		out[i] = crumb{Name: n, URL: vaultURL("/vault", vault.Location{Environment: loc.Environment, Path: prefix + n})}
	}
	return out
}

// crumbsOf links each ancestor of loc's folder, the root first.
func crumbsOf(loc vault.Location) []crumb {
	out := []crumb{{Name: loc.Environment + ":/", URL: vaultURL("/vault", vault.Location{Environment: loc.Environment, Path: "/"})}}
	path := ""
	for seg := range strings.SplitSeq(strings.Trim(loc.Path, "/"), "/") {
		if seg == "" {
			continue
		}
		path += "/" + seg
		out = append(out, crumb{Name: seg, URL: vaultURL("/vault", vault.Location{Environment: loc.Environment, Path: path})})
	}
	return out
}

func (s *Server) handleCreateEnvironment() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := viewerFrom(r.Context())
		if err := s.vaultReady(v); err != nil {
			s.fail(w, r, err)
			return
		}
		form := envForm{Slug: strings.TrimSpace(r.PostFormValue("slug")), Name: strings.TrimSpace(r.PostFormValue("name"))}
		env, err := s.deps.Vault.CreateEnvironment(r.Context(), v.vaultPrincipal(), form.Slug, form.Name)
		if err != nil {
			s.vaultPage(w, r, statusOf(nodus.ErrorCode(err)), vault.Location{Path: "/"}, func(p *vaultPage) {
				p.EnvForm, p.Error = form, toFormError(err)
			})
			return
		}
		http.Redirect(w, r, vaultURL("/vault", vault.Location{Environment: env.Slug, Path: "/"}), http.StatusSeeOther)
	})
}

// handleWriteSecret writes a new secret, or a new version of one: the
// secret's page sends the version it showed, so a write that crossed
// another is refused rather than lost.
func (s *Server) handleWriteSecret() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := viewerFrom(r.Context())
		if err := s.vaultReady(v); err != nil {
			s.fail(w, r, err)
			return
		}
		loc := vaultLocation(r.PostFormValue)
		in := vault.WriteInput{Location: loc, Value: vault.NewValue(r.PostFormValue("value")),
			Comment: strings.TrimSpace(r.PostFormValue("comment"))}
		var err error
		if c := r.PostFormValue("cas"); c != "" {
			n, perr := strconv.Atoi(c)
			if perr != nil {
				err = nodus.Errorf(nodus.EINVALID, "the version this form was made from is not a number: reload the page")
			}
			in.CAS = &n
		}
		if err == nil {
			_, err = s.deps.Vault.WriteSecret(r.Context(), v.vaultPrincipal(), in)
		}
		if err != nil {
			if in.CAS != nil {
				s.secretPage(w, r, statusOf(nodus.ErrorCode(err)), loc, func(p *secretPage) { p.Error = toFormError(err) })
				return
			}
			s.vaultPage(w, r, statusOf(nodus.ErrorCode(err)), vault.Location{Environment: loc.Environment, Path: r.PostFormValue("folder")},
				func(p *vaultPage) {
					p.Form, p.Error = secretForm{Path: loc.Path, Key: loc.Key, Comment: in.Comment}, toFormError(err)
				})
			return
		}
		http.Redirect(w, r, vaultURL("/vault/secret", loc)+"&saved=1", http.StatusSeeOther)
	})
}

type secretPage struct {
	pageBase
	Secret   *vault.Secret
	Versions []vault.VersionInfo
	Can      vaultPerms
	Crumbs   []crumb
	Folder   string // the folder page's URL
	// NextVersion is the version a write from this page makes.
	NextVersion int
	Error       *formError
	// Revealed is the value a Reveal just read: on this answer only.
	Revealed *revealed
}

type revealed struct {
	Version int
	Value   string
}

func (s *Server) handleSecret() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.secretPage(w, r, http.StatusOK, vaultLocation(r.URL.Query().Get), func(*secretPage) {})
	})
}

func (s *Server) secretPage(w http.ResponseWriter, r *http.Request, status int, loc vault.Location, change func(*secretPage)) {
	v := viewerFrom(r.Context())
	if err := s.vaultReady(v); err != nil {
		s.fail(w, r, err)
		return
	}
	sec, err := s.deps.Vault.FindSecret(r.Context(), v.vaultPrincipal(), loc)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	versions, err := s.deps.Vault.ListVersions(r.Context(), v.vaultPrincipal(), loc)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	p := secretPage{pageBase: s.base(r, v, sec.Key), Secret: sec, Versions: versions, Can: s.vaultPermsOf(v),
		Crumbs: crumbsOf(sec.Location), Folder: vaultURL("/vault", vault.Location{Environment: sec.Environment, Path: sec.Path}), NextVersion: sec.Version + 1}
	change(&p)
	s.render(w, r, status, "admin_vault_secret", &p)
}

// handleReveal reads one version's value through the vault's audited
// read: the audit entry is written before the value is, or nothing is
// shown.
func (s *Server) handleReveal() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := viewerFrom(r.Context())
		if err := s.vaultReady(v); err != nil {
			s.fail(w, r, err)
			return
		}
		loc := vaultLocation(r.PostFormValue)
		version, _ := strconv.Atoi(r.PostFormValue("version")) // 0, the newest, when absent
		rv, err := s.deps.Vault.ReadSecret(r.Context(), v.vaultPrincipal(), loc, vault.ReadOptions{Version: version})
		if err != nil {
			if nodus.ErrorCode(err) == nodus.ENOTFOUND {
				s.fail(w, r, err)
				return
			}
			s.secretPage(w, r, statusOf(nodus.ErrorCode(err)), loc, func(p *secretPage) { p.Error = toFormError(err) })
			return
		}
		s.secretPage(w, r, http.StatusOK, loc, func(p *secretPage) {
			p.Revealed = &revealed{Version: rv.Version, Value: rv.Value.Reveal()}
		})
	})
}

func (s *Server) handleDeleteSecret() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := viewerFrom(r.Context())
		if err := s.vaultReady(v); err != nil {
			s.fail(w, r, err)
			return
		}
		loc := vaultLocation(r.PostFormValue)
		if err := s.deps.Vault.DeleteSecret(r.Context(), v.vaultPrincipal(), loc); err != nil {
			if nodus.ErrorCode(err) == nodus.ENOTFOUND {
				s.fail(w, r, err)
				return
			}
			s.secretPage(w, r, statusOf(nodus.ErrorCode(err)), loc, func(p *secretPage) { p.Error = toFormError(err) })
			return
		}
		http.Redirect(w, r, vaultURL("/vault", vault.Location{Environment: loc.Environment, Path: loc.Path}), http.StatusSeeOther)
	})
}
