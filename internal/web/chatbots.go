package web

import (
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/nodus-os/nodus/internal/chat"
	"github.com/nodus-os/nodus/internal/gateway"
	"github.com/nodus-os/nodus/internal/knowledge"
	"github.com/nodus-os/nodus/internal/nodus"
)

func (s *Server) chatActor(v *viewer) (chat.Actor, error) {
	if s.deps.Chat == nil {
		return chat.Actor{}, &nodus.Error{Code: nodus.EUNAVAILABLE, Message: "Chat is not available on this server"}
	}
	if v.tenantID() == "" {
		return chat.Actor{}, errNoTenant
	}
	return chat.Actor{TenantID: v.tenantID(), UserID: v.user.ID, Admin: v.admin(), Entry: v.entry()}, nil
}

type chatbotsPage struct {
	pageBase
	Bots    []chat.Chatbot
	Next    string
	CanEdit bool
	Editor  *chatbotEditor // the create form, for admins
}

// chatbotEditor is the create or edit form of a chatbot, with what its
// fields offer.
type chatbotEditor struct {
	Form   chatbotForm
	Models []string
	Bases  []kbChoice
	Error  *formError
	Action string // where the form posts
	CSRF   string
}

type chatbotForm struct {
	ID, Name, Description, SystemPrompt, ModelName, Temperature, WelcomeMessage string
	KnowledgeBases                                                              []string
}

type kbChoice struct {
	ID, Name string
	Checked  bool
}

func (s *Server) handleChatbots() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.chatbotsPage(w, r, http.StatusOK, chatbotForm{ModelName: "nodus/extractive"}, nil)
	})
}

func (s *Server) chatbotsPage(w http.ResponseWriter, r *http.Request, status int, form chatbotForm, ferr *formError) {
	v := viewerFrom(r.Context())
	a, err := s.chatActor(v)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	bots, next, err := s.deps.Chat.ListChatbots(r.Context(), a, r.URL.Query().Get("cursor"), listPage)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	p := chatbotsPage{pageBase: s.base(r, v, "Chatbots"), Bots: bots, Next: next, CanEdit: v.admin()}
	if v.admin() {
		ed := s.editor(r, v, form, ferr)
		ed.Action = "/chatbots"
		p.Editor = &ed
	}
	s.render(w, r, status, "chatbots", &p)
}

type chatbotPage struct {
	pageBase
	Bot    *chat.Chatbot
	Editor *chatbotEditor
}

func (s *Server) handleChatbot() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := viewerFrom(r.Context())
		a, err := s.chatActor(v)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		b, err := s.deps.Chat.GetChatbot(r.Context(), a, r.PathValue("id"))
		if err != nil {
			s.fail(w, r, err)
			return
		}
		s.chatbotPage(w, r, http.StatusOK, b, formOf(b), nil)
	})
}

func (s *Server) chatbotPage(w http.ResponseWriter, r *http.Request, status int, b *chat.Chatbot, form chatbotForm, ferr *formError) {
	v := viewerFrom(r.Context())
	p := chatbotPage{pageBase: s.base(r, v, b.Name), Bot: b}
	if v.admin() {
		ed := s.editor(r, v, form, ferr)
		ed.Action = "/chatbots/" + b.ID
		p.Editor = &ed
	}
	s.render(w, r, status, "chatbot", &p)
}

func formOf(b *chat.Chatbot) chatbotForm {
	f := chatbotForm{ID: b.ID, Name: b.Name, Description: b.Description, SystemPrompt: b.SystemPrompt, ModelName: b.ModelName,
		WelcomeMessage: b.WelcomeMessage, KnowledgeBases: b.KnowledgeBases}
	if b.Temperature != nil {
		f.Temperature = strconv.FormatFloat(*b.Temperature, 'f', -1, 64)
	}
	return f
}

// editor fills the form's choices: the tenant's models and knowledge
// bases. Either failing leaves the form usable (a model can be typed).
func (s *Server) editor(r *http.Request, v *viewer, form chatbotForm, ferr *formError) chatbotEditor {
	ed := chatbotEditor{Form: form, Error: ferr, CSRF: v.session.CSRFToken}
	if s.deps.Gateway != nil {
		models, err := s.deps.Gateway.Models(r.Context(), gateway.Caller{TenantID: v.tenantID()})
		if err != nil {
			s.deps.Logger.WarnContext(r.Context(), "web: list models", "err", err)
		}
		ed.Models = models
	}
	if !slices.Contains(ed.Models, "nodus/extractive") {
		ed.Models = append(ed.Models, "nodus/extractive")
	}
	if s.deps.Knowledge != nil {
		m := knowledge.Manager{TenantID: v.tenantID(), UserID: v.user.ID, Admin: v.admin(), Entry: v.entry()}
		bases, _, err := s.deps.Knowledge.ListKnowledgeBases(r.Context(), m, "", 200)
		if err != nil {
			s.deps.Logger.WarnContext(r.Context(), "web: list knowledge bases", "err", err)
		}
		for _, kb := range bases {
			ed.Bases = append(ed.Bases, kbChoice{ID: kb.ID, Name: kb.Name, Checked: slices.Contains(form.KnowledgeBases, kb.ID)})
		}
	}
	return ed
}

func (s *Server) handleSaveChatbot() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := viewerFrom(r.Context())
		a, err := s.chatActor(v)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		_ = r.ParseForm() // checkForm parsed it already; errors were answered there
		form := chatbotForm{ID: r.PathValue("id"), Name: strings.TrimSpace(r.PostFormValue("name")),
			Description: strings.TrimSpace(r.PostFormValue("description")), SystemPrompt: r.PostFormValue("system_prompt"),
			ModelName: strings.TrimSpace(r.PostFormValue("model_name")), Temperature: strings.TrimSpace(r.PostFormValue("temperature")),
			WelcomeMessage: r.PostFormValue("welcome_message"), KnowledgeBases: r.PostForm["knowledge_bases"]}
		in := chat.ChatbotInput{Name: &form.Name, Description: &form.Description, SystemPrompt: &form.SystemPrompt,
			ModelName: &form.ModelName, WelcomeMessage: &form.WelcomeMessage, KnowledgeBases: &form.KnowledgeBases}
		var temp *float64
		if form.Temperature != "" {
			t, perr := strconv.ParseFloat(form.Temperature, 64)
			if perr != nil {
				err = &nodus.Error{Code: nodus.EINVALID, Message: "Check the highlighted fields",
					Fields: map[string]string{"temperature": "must be a number, such as 0.7, or empty for the model's default"}}
			}
			temp = &t
		}
		in.Temperature = &temp
		var b *chat.Chatbot
		if err == nil {
			if form.ID == "" {
				b, err = s.deps.Chat.CreateChatbot(r.Context(), a, in)
			} else {
				b, err = s.deps.Chat.UpdateChatbot(r.Context(), a, form.ID, in)
			}
		}
		if err != nil {
			status := statusOf(nodus.ErrorCode(err))
			if form.ID == "" {
				s.chatbotsPage(w, r, status, form, toFormError(err))
				return
			}
			cur, gerr := s.deps.Chat.GetChatbot(r.Context(), a, form.ID)
			if gerr != nil {
				s.fail(w, r, gerr)
				return
			}
			s.chatbotPage(w, r, status, cur, form, toFormError(err))
			return
		}
		http.Redirect(w, r, "/chatbots/"+b.ID+"?saved=1", http.StatusSeeOther)
	})
}
