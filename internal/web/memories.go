package web

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/nodus-os/nodus/internal/identity"
	"github.com/nodus-os/nodus/internal/memory"
	"github.com/nodus-os/nodus/internal/nodus"
)

// This file holds the memories page: what each app (a chatbot, or an
// agent app by name) remembers about the signed-in user, to read, correct
// or forget. Only the viewer's own memories are ever listed or changed:
// the user id is always the viewer's, never taken from the request.

type memoriesPage struct {
	pageBase
	Apps     []memoryApp
	App      string // the app shown, "" before one is chosen
	AppName  string // its chatbot's name, when it is one
	Memories []memory.Memory
	Next     string
	CanEdit  bool // viewers read only
	Editing  string
	Form     string // the text typed into a failed edit
	Error    *formError
}

// memoryApp is an app the user may have memories of: a chatbot of the
// tenant with memory on.
type memoryApp struct {
	ID, Name string
	Current  bool
}

func (s *Server) memoryUnavailable() error {
	return &nodus.Error{Code: nodus.EUNAVAILABLE, Message: "Memory is not available on this server"}
}

func (s *Server) handleMemories() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.memoriesPage(w, r, http.StatusOK, strings.TrimSpace(r.URL.Query().Get("app")), "", "", nil)
	})
}

func (s *Server) memoriesPage(w http.ResponseWriter, r *http.Request, status int, app, editing, text string, ferr *formError) {
	v := viewerFrom(r.Context())
	switch {
	case v.tenantID() == "":
		s.fail(w, r, errNoTenant)
		return
	case s.deps.Memory == nil:
		s.fail(w, r, s.memoryUnavailable())
		return
	}
	p := memoriesPage{App: app, CanEdit: s.perms.Allows(v.user.Role, identity.ActionUseAgent), Editing: editing, Form: text, Error: ferr}
	if a, err := s.chatActor(v); err == nil {
		// The chatbots with memory on are the apps a chat user has; one
		// that failed to list leaves the app field usable.
		bots, _, err := s.deps.Chat.ListChatbots(r.Context(), a, "", 200)
		if err != nil {
			s.deps.Logger.WarnContext(r.Context(), "web: list chatbots for memories", "err", err)
		}
		for _, b := range bots {
			if b.MemoryEnabled || b.ID == app {
				p.Apps = append(p.Apps, memoryApp{ID: b.ID, Name: b.Name, Current: b.ID == app})
			}
			if b.ID == app {
				p.AppName = b.Name
			}
		}
	}
	title := "Memories"
	if app != "" {
		mems, next, err := s.deps.Memory.List(r.Context(), memory.ListInput{TenantID: v.tenantID(), AppName: app, UserID: v.user.ID,
			Cursor: r.URL.Query().Get("cursor"), Limit: listPage})
		if err != nil {
			if nodus.ErrorCode(err) != nodus.EINVALID {
				s.fail(w, r, err)
				return
			}
			p.Error, status = toFormError(err), http.StatusBadRequest
		}
		p.Memories = mems
		if next != "" {
			p.Next = pageURL(r.URL.Query(), next)
		}
		title = "Memories of " + app
		if p.AppName != "" {
			title = "Memories of " + p.AppName
		}
	}
	p.pageBase = s.base(r, v, title)
	s.render(w, r, status, "memories", &p)
}

// ownMemory finds one of the viewer's memories; another user's is not
// found, as the API answers.
func (s *Server) ownMemory(r *http.Request, v *viewer) (memory.Memory, error) {
	if s.deps.Memory == nil {
		return memory.Memory{}, s.memoryUnavailable()
	}
	if v.tenantID() == "" {
		return memory.Memory{}, errNoTenant
	}
	m, err := s.deps.Memory.Get(r.Context(), v.tenantID(), r.PathValue("id"))
	if err != nil {
		return memory.Memory{}, err
	}
	if m.UserID != v.user.ID {
		return memory.Memory{}, nodus.Errorf(nodus.ENOTFOUND, "memory %s not found", r.PathValue("id"))
	}
	return m, nil
}

func (s *Server) memoryChange(w http.ResponseWriter, r *http.Request, change func(v *viewer, m memory.Memory) error) {
	v := viewerFrom(r.Context())
	if !s.perms.Allows(v.user.Role, identity.ActionUseAgent) {
		s.renderError(w, r, v, http.StatusForbidden, "Viewers may read their memories but not change them.")
		return
	}
	m, err := s.ownMemory(r, v)
	if err == nil {
		err = change(v, m)
	}
	if err != nil {
		if nodus.ErrorCode(err) == nodus.EINVALID || nodus.ErrorCode(err) == nodus.ECONFLICT {
			s.memoriesPage(w, r, statusOf(nodus.ErrorCode(err)), m.AppName, m.ID, r.PostFormValue("text"), toFormError(err))
			return
		}
		s.fail(w, r, err)
		return
	}
	http.Redirect(w, r, "/agents/memories?app="+url.QueryEscape(m.AppName), http.StatusSeeOther)
}

func (s *Server) handleUpdateMemory() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.memoryChange(w, r, func(v *viewer, m memory.Memory) error {
			_, err := s.deps.Memory.Update(r.Context(), v.tenantID(), m.ID, r.PostFormValue("text"), v.user.ID)
			return err
		})
	})
}

func (s *Server) handleDeleteMemory() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.memoryChange(w, r, func(v *viewer, m memory.Memory) error {
			return s.deps.Memory.Delete(r.Context(), v.tenantID(), m.ID, v.user.ID)
		})
	})
}
