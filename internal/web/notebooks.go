package web

import (
	"cmp"
	"context"
	"encoding/json"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/nodus-os/nodus/internal/identity"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/notebook"
)

// This file serves the notebook pages (Llibreta): the viewer's notebooks
// and those shared with them, and one notebook's sources, cards and chat.
// Every form posts and redirects back; the notebook service checks the
// viewer's share, as for the API. The owner shares the notebook with users
// of the tenant from its page; a member may leave it.

func (s *Server) notebookActor(v *viewer) (notebook.Actor, error) {
	if s.deps.Notebooks == nil {
		return notebook.Actor{}, &nodus.Error{Code: nodus.EUNAVAILABLE, Message: "Notebooks are not available on this server"}
	}
	if v.tenantID() == "" {
		return notebook.Actor{}, errNoTenant
	}
	return notebook.Actor{TenantID: v.tenantID(), UserID: v.user.ID,
		ReadOnly: !s.perms.Allows(v.user.Role, identity.ActionWriteContent), Entry: v.entry()}, nil
}

// notebookHandler runs fn with the viewer's actor, showing errors as pages.
func (s *Server) notebookHandler(fn func(w http.ResponseWriter, r *http.Request, v *viewer, a notebook.Actor) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := viewerFrom(r.Context())
		a, err := s.notebookActor(v)
		if err == nil {
			err = fn(w, r, v, a)
		}
		if err != nil {
			s.fail(w, r, err)
		}
	})
}

type notebooksPage struct {
	pageBase
	Notebooks []notebook.Notebook
	Next      string
	CanCreate bool
	Archived  bool
}

func (s *Server) handleNotebooks() http.Handler {
	return s.notebookHandler(func(w http.ResponseWriter, r *http.Request, v *viewer, a notebook.Actor) error {
		archived := r.URL.Query().Get("archived") == "1"
		list, next, err := s.deps.Notebooks.ListNotebooks(r.Context(), a, &archived, r.URL.Query().Get("cursor"), listPage)
		if err != nil {
			return err
		}
		p := notebooksPage{pageBase: s.base(r, v, "Notebooks"), Notebooks: list, CanCreate: !a.ReadOnly, Archived: archived}
		if next != "" {
			p.Next = pageURL(r.URL.Query(), next)
		}
		s.render(w, r, http.StatusOK, "notebooks", &p)
		return nil
	})
}

func (s *Server) handleCreateNotebook() http.Handler {
	return s.notebookHandler(func(w http.ResponseWriter, r *http.Request, v *viewer, a notebook.Actor) error {
		name, desc := r.PostFormValue("name"), r.PostFormValue("description")
		n, err := s.deps.Notebooks.CreateNotebook(r.Context(), a, notebook.NotebookInput{Name: &name, Description: &desc})
		if err != nil {
			return err
		}
		http.Redirect(w, r, "/notebooks/"+n.ID, http.StatusSeeOther)
		return nil
	})
}

type notebookPage struct {
	pageBase
	Notebook *notebook.Notebook
	Sources  []notebook.Source
	Pinned   []cardItem
	Cards    []cardItem
	Chats    []notebook.Chat
	Chat     *notebook.Chat
	Messages []notebookMessage
	CanEdit  bool // a write share or the owner
	CanChat  bool
	IsOwner  bool
	Levels   []string
	// Sharing: the members by name; for the owner, the tenant's other
	// active users to add and the permissions a share may give.
	Members    []notebookMember
	Candidates []notebookMember
	// MoreUsers: the tenant has more users than Candidates lists; the
	// share form then takes a username too.
	MoreUsers bool
	Perms     []string
	Shared    bool // the viewer holds a share, which they may leave
}

// notebookMember is a user of the tenant as the sharing section shows
// them: a member with their permission, or a user the owner may add.
type notebookMember struct {
	UserID     string
	Name       string // full name, or "" when they gave none
	Username   string // "" for a user no longer found
	Permission string
	Self       bool
}

// Label names the member for a person: their full name and username.
func (m notebookMember) Label() string {
	switch {
	case m.Username == "":
		return "user " + m.UserID
	case m.Name == "":
		return m.Username
	}
	return m.Name + " (" + m.Username + ")"
}

// cardItem is a card as the page shows it: its Markdown rendered.
type cardItem struct {
	notebook.Card
	HTML  template.HTML
	First bool
	Last  bool
}

// notebookMessage is a chat message as the page shows it.
type notebookMessage struct {
	notebook.Message
	HTML      template.HTML // an answer's Markdown
	Citations []notebook.Citation
	Error     string
}

func (s *Server) handleNotebook() http.Handler {
	return s.notebookHandler(func(w http.ResponseWriter, r *http.Request, v *viewer, a notebook.Actor) error {
		ctx, id := r.Context(), r.PathValue("id")
		n, err := s.deps.Notebooks.GetNotebook(ctx, a, id)
		if err != nil {
			return err
		}
		srcs, err := s.deps.Notebooks.ListSources(ctx, a, id)
		if err != nil {
			return err
		}
		cards, err := s.deps.Notebooks.ListCards(ctx, a, id)
		if err != nil {
			return err
		}
		p := notebookPage{pageBase: s.base(r, v, n.Name), Notebook: n, Sources: srcs,
			CanEdit: n.Permission == notebook.PermOwner || n.Permission == notebook.PermWrite, CanChat: !a.ReadOnly,
			IsOwner: n.Permission == notebook.PermOwner, Levels: []string{notebook.LevelFull, notebook.LevelSummary, notebook.LevelExcluded}}
		for i, c := range cards {
			item := cardItem{Card: c, HTML: renderMarkdown(c.Content), First: i == 0, Last: i == len(cards)-1}
			if c.Pinned {
				p.Pinned = append(p.Pinned, item)
			}
			p.Cards = append(p.Cards, item)
		}
		if p.Chats, _, err = s.deps.Notebooks.ListChats(ctx, a, id, "", listPage); err != nil {
			return err
		}
		if chatID := r.URL.Query().Get("chat"); chatID != "" {
			c, msgs, err := s.deps.Notebooks.GetChat(ctx, a, id, chatID)
			if err != nil {
				return err
			}
			p.Chat = c
			for _, m := range msgs {
				p.Messages = append(p.Messages, viewNotebookMessage(m))
			}
		}
		if err := s.loadSharing(ctx, a, n, &p); err != nil {
			return err
		}
		s.render(w, r, http.StatusOK, "notebook", &p)
		return nil
	})
}

// maxShareCandidates bounds the users the owner's share form lists; past
// it the form takes a username as well.
var maxShareCandidates = 1000

// loadSharing fills the sharing section: the members by name and, for the
// owner, the tenant's active users not yet members. Names come from
// identity, scoped to the notebook's tenant, as the service's check does.
func (s *Server) loadSharing(ctx context.Context, a notebook.Actor, n *notebook.Notebook, p *notebookPage) error {
	shares, err := s.deps.Notebooks.ListShares(ctx, a, n.ID)
	if err != nil {
		return err
	}
	ctx = nodus.WithTenant(ctx, a.TenantID)
	var users []identity.User
	if p.IsOwner {
		p.Perms = []string{notebook.PermRead, notebook.PermWrite}
		cursor := ""
		for len(users) < maxShareCandidates {
			page, next, err := s.deps.Identity.ListUsers(ctx, 200, cursor)
			if err != nil {
				return err
			}
			users = append(users, page...)
			if cursor = next; next == "" {
				break
			}
		}
		p.MoreUsers = cursor != ""
	}
	byID := make(map[string]identity.User, len(users))
	for _, u := range users {
		byID[u.ID] = u
	}
	taken := map[string]bool{n.OwnerID: true}
	for _, sh := range shares {
		taken[sh.UserID] = true
		u, ok := byID[sh.UserID]
		if !ok {
			found, err := s.deps.Identity.User(ctx, sh.UserID)
			switch {
			case err == nil:
				u = *found
			case nodus.ErrorCode(err) != nodus.ENOTFOUND:
				return err
			}
		}
		p.Members = append(p.Members, notebookMember{UserID: sh.UserID, Name: u.FullName, Username: u.Username,
			Permission: sh.Permission, Self: sh.UserID == a.UserID})
		p.Shared = p.Shared || sh.UserID == a.UserID
	}
	for _, u := range users {
		if u.IsActive && u.TenantID == a.TenantID && !taken[u.ID] {
			p.Candidates = append(p.Candidates, notebookMember{UserID: u.ID, Name: u.FullName, Username: u.Username})
		}
	}
	byLabel := func(x, y notebookMember) int {
		return cmp.Compare(strings.ToLower(x.Label()), strings.ToLower(y.Label()))
	}
	slices.SortFunc(p.Members, byLabel)
	slices.SortFunc(p.Candidates, byLabel)
	return nil
}

func viewNotebookMessage(m notebook.Message) notebookMessage {
	out := notebookMessage{Message: m}
	if m.Role != notebook.RoleAssistant {
		return out
	}
	out.HTML = renderMarkdown(m.Content)
	var md notebook.AnswerMetadata
	if json.Unmarshal(m.Metadata, &md) == nil {
		for _, c := range md.Citations {
			if c.Cited {
				out.Citations = append(out.Citations, c)
			}
		}
		out.Error = md.Error
	}
	return out
}

// back redirects to the notebook's page, at an anchor.
func back(w http.ResponseWriter, r *http.Request, notebookID string, q url.Values, anchor string) {
	target := "/notebooks/" + url.PathEscape(notebookID)
	if len(q) > 0 {
		target += "?" + q.Encode()
	}
	if anchor != "" {
		target += "#" + anchor
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}

func (s *Server) handleNotebookUpdate() http.Handler {
	return s.notebookHandler(func(w http.ResponseWriter, r *http.Request, v *viewer, a notebook.Actor) error {
		id := r.PathValue("id")
		var in notebook.NotebookInput
		if _, ok := r.PostForm["name"]; ok {
			name, desc := r.PostFormValue("name"), r.PostFormValue("description")
			in.Name, in.Description = &name, &desc
		}
		switch r.PostFormValue("archived") {
		case "true", "false":
			archived := r.PostFormValue("archived") == "true"
			in.Archived = &archived
		}
		if _, err := s.deps.Notebooks.UpdateNotebook(r.Context(), a, id, in); err != nil {
			return err
		}
		back(w, r, id, nil, "")
		return nil
	})
}

func (s *Server) handleNotebookDelete() http.Handler {
	return s.notebookHandler(func(w http.ResponseWriter, r *http.Request, v *viewer, a notebook.Actor) error {
		if err := s.deps.Notebooks.DeleteNotebook(r.Context(), a, r.PathValue("id")); err != nil {
			return err
		}
		http.Redirect(w, r, "/notebooks", http.StatusSeeOther)
		return nil
	})
}

func (s *Server) handleNotebookAddSource() http.Handler {
	return s.notebookHandler(func(w http.ResponseWriter, r *http.Request, v *viewer, a notebook.Actor) error {
		id := r.PathValue("id")
		in := notebook.SourceInput{Kind: r.PostFormValue("kind"), Title: r.PostFormValue("title"),
			ContextLevel: r.PostFormValue("context_level"), Text: r.PostFormValue("text"), Ref: strings.TrimSpace(r.PostFormValue("ref"))}
		src, err := s.deps.Notebooks.AddSource(r.Context(), a, id, in)
		if err != nil {
			return err
		}
		back(w, r, id, nil, "src-"+src.ID)
		return nil
	})
}

func (s *Server) handleNotebookSource() http.Handler {
	return s.notebookHandler(func(w http.ResponseWriter, r *http.Request, v *viewer, a notebook.Actor) error {
		id, srcID := r.PathValue("id"), r.PathValue("source")
		var in notebook.SourceChange
		if l := r.PostFormValue("context_level"); l != "" {
			in.ContextLevel = &l
		}
		if _, ok := r.PostForm["title"]; ok {
			t := r.PostFormValue("title")
			in.Title = &t
		}
		if _, err := s.deps.Notebooks.UpdateSource(r.Context(), a, id, srcID, in); err != nil {
			return err
		}
		back(w, r, id, nil, "src-"+srcID)
		return nil
	})
}

func (s *Server) handleNotebookDeleteSource() http.Handler {
	return s.notebookHandler(func(w http.ResponseWriter, r *http.Request, v *viewer, a notebook.Actor) error {
		id := r.PathValue("id")
		if err := s.deps.Notebooks.DeleteSource(r.Context(), a, id, r.PathValue("source")); err != nil {
			return err
		}
		back(w, r, id, nil, "sources")
		return nil
	})
}

func (s *Server) handleNotebookCreateCard() http.Handler {
	return s.notebookHandler(func(w http.ResponseWriter, r *http.Request, v *viewer, a notebook.Actor) error {
		id := r.PathValue("id")
		title, content := r.PostFormValue("title"), r.PostFormValue("content")
		c, err := s.deps.Notebooks.CreateCard(r.Context(), a, id, notebook.CardInput{Title: &title, Content: &content})
		if err != nil {
			return err
		}
		back(w, r, id, nil, "card-"+c.ID)
		return nil
	})
}

// handleNotebookCard edits a card (title and content fields) or pins and
// unpins it (a pinned field).
func (s *Server) handleNotebookCard() http.Handler {
	return s.notebookHandler(func(w http.ResponseWriter, r *http.Request, v *viewer, a notebook.Actor) error {
		id, cardID := r.PathValue("id"), r.PathValue("card")
		var in notebook.CardInput
		if _, ok := r.PostForm["title"]; ok {
			t, c := r.PostFormValue("title"), r.PostFormValue("content")
			in.Title, in.Content = &t, &c
		}
		switch r.PostFormValue("pinned") {
		case "true", "false":
			p := r.PostFormValue("pinned") == "true"
			in.Pinned = &p
		}
		if _, err := s.deps.Notebooks.UpdateCard(r.Context(), a, id, cardID, in); err != nil {
			return err
		}
		back(w, r, id, nil, "card-"+cardID)
		return nil
	})
}

func (s *Server) handleNotebookMoveCard() http.Handler {
	return s.notebookHandler(func(w http.ResponseWriter, r *http.Request, v *viewer, a notebook.Actor) error {
		id, cardID := r.PathValue("id"), r.PathValue("card")
		delta := 1
		if r.PostFormValue("dir") == "up" {
			delta = -1
		}
		if _, err := s.deps.Notebooks.MoveCard(r.Context(), a, id, cardID, delta); err != nil {
			return err
		}
		back(w, r, id, nil, "card-"+cardID)
		return nil
	})
}

func (s *Server) handleNotebookDeleteCard() http.Handler {
	return s.notebookHandler(func(w http.ResponseWriter, r *http.Request, v *viewer, a notebook.Actor) error {
		id := r.PathValue("id")
		if err := s.deps.Notebooks.DeleteCard(r.Context(), a, id, r.PathValue("card")); err != nil {
			return err
		}
		back(w, r, id, nil, "cards")
		return nil
	})
}

// handleNotebookAsk asks a question in a chat session of the viewer,
// starting one when the form names none.
func (s *Server) handleNotebookAsk() http.Handler {
	return s.notebookHandler(func(w http.ResponseWriter, r *http.Request, v *viewer, a notebook.Actor) error {
		id, chatID := r.PathValue("id"), r.PostFormValue("chat")
		if strings.TrimSpace(r.PostFormValue("message")) == "" {
			return &nodus.Error{Code: nodus.EINVALID, Message: "Type a question to ask."}
		}
		if chatID == "" {
			c, err := s.deps.Notebooks.CreateChat(r.Context(), a, id, "")
			if err != nil {
				return err
			}
			chatID = c.ID
		}
		t, err := s.deps.Notebooks.Ask(r.Context(), a, id, chatID, r.PostFormValue("message"))
		if err != nil && t == nil {
			return err
		}
		anchor := "chat"
		if t != nil {
			anchor = "m-" + t.Answer.ID
		}
		// A failed answer is stored with its error: the page shows it.
		back(w, r, id, url.Values{"chat": {chatID}}, anchor)
		return nil
	})
}

func (s *Server) handleNotebookSaveAnswer() http.Handler {
	return s.notebookHandler(func(w http.ResponseWriter, r *http.Request, v *viewer, a notebook.Actor) error {
		id := r.PathValue("id")
		c, err := s.deps.Notebooks.SaveAnswer(r.Context(), a, id, r.PathValue("chat"), r.PathValue("msg"), r.PostFormValue("title"))
		if err != nil {
			return err
		}
		back(w, r, id, url.Values{"chat": {r.PathValue("chat")}}, "card-"+c.ID)
		return nil
	})
}

// Sharing: the owner adds, changes and removes members; a member leaves.

// handleNotebookShare shares the notebook with the user picked in the
// form, or changes a member's permission (the path names them).
func (s *Server) handleNotebookShare() http.Handler {
	return s.notebookHandler(func(w http.ResponseWriter, r *http.Request, v *viewer, a notebook.Actor) error {
		id, userID, perm := r.PathValue("id"), r.PathValue("member"), r.PostFormValue("permission")
		if userID == "" {
			userID = r.PostFormValue("user_id")
		}
		if name := strings.TrimSpace(r.PostFormValue("username")); userID == "" && name != "" {
			// A tenant with more users than the form lists: by username,
			// among the tenant's users only.
			u, err := s.deps.Identity.UserByUsername(nodus.WithTenant(r.Context(), a.TenantID), name)
			switch {
			case nodus.ErrorCode(err) == nodus.ENOTFOUND:
				return &nodus.Error{Code: nodus.EINVALID,
					Message: "No user of your organisation is called " + name + ": a notebook is shared only within it."}
			case err != nil:
				return err
			}
			userID = u.ID
		}
		if perm != notebook.PermRead && perm != notebook.PermWrite {
			return &nodus.Error{Code: nodus.EINVALID, Message: "Choose read or write access."}
		}
		if err := s.checkShareTarget(r.Context(), a.TenantID, userID); err != nil {
			return err
		}
		if _, err := s.deps.Notebooks.Share(r.Context(), a, id, userID, perm); err != nil {
			return err
		}
		back(w, r, id, nil, "sharing")
		return nil
	})
}

// checkShareTarget refuses, with a message a person can act on, a user
// the service would refuse as not found: unknown, inactive or of another
// tenant. A page would otherwise read that as a broken link.
func (s *Server) checkShareTarget(ctx context.Context, tenantID, userID string) error {
	if userID == "" {
		return &nodus.Error{Code: nodus.EINVALID, Message: "Choose a user to share the notebook with."}
	}
	u, err := s.deps.Identity.User(nodus.WithTenant(ctx, tenantID), userID)
	if nodus.ErrorCode(err) == nodus.ENOTFOUND || err == nil && (!u.IsActive || u.TenantID != tenantID) {
		return &nodus.Error{Code: nodus.EINVALID,
			Message: "That user is not an active member of your organisation: a notebook is shared only within it."}
	}
	return err
}

func (s *Server) handleNotebookUnshare() http.Handler {
	return s.notebookHandler(func(w http.ResponseWriter, r *http.Request, v *viewer, a notebook.Actor) error {
		id := r.PathValue("id")
		if err := s.deps.Notebooks.Unshare(r.Context(), a, id, r.PathValue("member")); err != nil {
			return err
		}
		back(w, r, id, nil, "sharing")
		return nil
	})
}

// handleNotebookLeave ends the viewer's own share: the notebook is then
// gone from their list.
func (s *Server) handleNotebookLeave() http.Handler {
	return s.notebookHandler(func(w http.ResponseWriter, r *http.Request, v *viewer, a notebook.Actor) error {
		if err := s.deps.Notebooks.Unshare(r.Context(), a, r.PathValue("id"), a.UserID); err != nil {
			return err
		}
		http.Redirect(w, r, "/notebooks", http.StatusSeeOther)
		return nil
	})
}
