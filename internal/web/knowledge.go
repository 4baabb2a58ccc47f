package web

import (
	"net/http"
	"strings"

	"github.com/nodus-os/nodus/internal/knowledge"
	"github.com/nodus-os/nodus/internal/nodus"
)

// listPage is how many rows a list page shows; the rest are a "next
// page" link away (the services' cursors).
const listPage = 50

// documentsPage is how many documents a knowledge base's page shows.
const documentsPage = 100

func (s *Server) knowledgeManager(v *viewer) (knowledge.Manager, error) {
	if s.deps.Knowledge == nil {
		return knowledge.Manager{}, &nodus.Error{Code: nodus.EUNAVAILABLE, Message: "Knowledge bases are not available on this server"}
	}
	if v.tenantID() == "" {
		return knowledge.Manager{}, errNoTenant
	}
	return knowledge.Manager{TenantID: v.tenantID(), UserID: v.user.ID, Admin: v.admin(), Entry: v.entry()}, nil
}

// errNoTenant is what a super_admin sees on a tenant's pages: they belong
// to no tenant, and the UI does not yet let them act as one.
var errNoTenant = nodus.Errorf(nodus.EINVALID,
	"This page shows a tenant's content and you are not acting in a tenant. Pick one on the Tenants page (Admin → Tenants)")

type knowledgeBasesPage struct {
	pageBase
	Bases   []knowledge.KnowledgeBase
	Next    string
	CanEdit bool
	Form    kbForm
	Error   *formError
}

type kbForm struct{ Name, Description string }

func (s *Server) handleKnowledgeBases() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.knowledgeBasesPage(w, r, http.StatusOK, kbForm{}, nil)
	})
}

func (s *Server) knowledgeBasesPage(w http.ResponseWriter, r *http.Request, status int, form kbForm, ferr *formError) {
	v := viewerFrom(r.Context())
	m, err := s.knowledgeManager(v)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	bases, next, err := s.deps.Knowledge.ListKnowledgeBases(r.Context(), m, r.URL.Query().Get("cursor"), listPage)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	p := knowledgeBasesPage{pageBase: s.base(r, v, "Knowledge bases"), Bases: bases, Next: next, CanEdit: v.admin(),
		Form: form, Error: ferr}
	s.render(w, r, status, "knowledge_bases", &p)
}

func (s *Server) handleCreateKnowledgeBase() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := viewerFrom(r.Context())
		m, err := s.knowledgeManager(v)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		form := kbForm{Name: strings.TrimSpace(r.PostFormValue("name")), Description: strings.TrimSpace(r.PostFormValue("description"))}
		kb, err := s.deps.Knowledge.CreateKnowledgeBase(r.Context(), m, knowledge.KnowledgeBaseInput{Name: &form.Name, Description: &form.Description})
		if err != nil {
			s.knowledgeBasesPage(w, r, statusOf(nodus.ErrorCode(err)), form, toFormError(err))
			return
		}
		http.Redirect(w, r, "/knowledge/"+kb.ID, http.StatusSeeOther)
	})
}

type knowledgeBasePage struct {
	pageBase
	Base      *knowledge.KnowledgeBase
	Documents []knowledge.Document
	Next      string
	CanEdit   bool
	Query     string
	Searched  bool
	Result    *knowledge.SearchResult
	Error     *formError
	// Indexing is whether a document is pending or processing: the
	// page's script then follows their progress.
	Indexing bool
}

func (s *Server) handleKnowledgeBase() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := viewerFrom(r.Context())
		m, err := s.knowledgeManager(v)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		kb, err := s.deps.Knowledge.GetKnowledgeBase(r.Context(), m, r.PathValue("id"))
		if err != nil {
			s.fail(w, r, err)
			return
		}
		docs, next, err := s.deps.Knowledge.ListDocuments(r.Context(), m, kb.ID, "", r.URL.Query().Get("cursor"), documentsPage)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		p := knowledgeBasePage{pageBase: s.base(r, v, kb.Name), Base: kb, Documents: docs, Next: next, CanEdit: v.admin(),
			Query: strings.TrimSpace(r.URL.Query().Get("q"))}
		for _, d := range docs {
			if d.Status == knowledge.StatusPending || d.Status == knowledge.StatusProcessing {
				p.Indexing = true
			}
		}
		status := http.StatusOK
		if p.Query != "" {
			p.Searched = true
			p.Result, err = s.deps.Knowledge.Search(r.Context(), m, kb.ID, knowledge.SearchInput{Query: p.Query})
			if err != nil {
				// The search failed, not the page: say so beside the box.
				p.Error, status = toFormError(err), statusOf(nodus.ErrorCode(err))
			}
		}
		s.render(w, r, status, "knowledge_base", &p)
	})
}

// documentRow is the data of one row of the documents table.
type documentRow struct {
	BaseID  string
	Doc     knowledge.Document
	CanEdit bool
	CSRF    string
}

// handleDocumentRow serves one document's table row, which the upload
// script adds to the table once the document is stored.
func (s *Server) handleDocumentRow() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := viewerFrom(r.Context())
		m, err := s.knowledgeManager(v)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		d, err := s.deps.Knowledge.GetDocument(r.Context(), m, r.PathValue("id"), r.PathValue("doc"))
		if err != nil {
			s.fail(w, r, err)
			return
		}
		s.renderTemplate(w, r, http.StatusOK, "knowledge_base", "document-row",
			documentRow{BaseID: d.KnowledgeBaseID, Doc: *d, CanEdit: v.admin(), CSRF: v.session.CSRFToken})
	})
}

func (s *Server) handleRetryDocument() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := viewerFrom(r.Context())
		m, err := s.knowledgeManager(v)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		if _, err := s.deps.Knowledge.RetryDocumentFor(r.Context(), m, r.PathValue("id"), r.PathValue("doc")); err != nil {
			s.fail(w, r, err)
			return
		}
		http.Redirect(w, r, "/knowledge/"+r.PathValue("id"), http.StatusSeeOther)
	})
}
