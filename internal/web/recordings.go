package web

import (
	"net/http"
	"net/url"

	"github.com/nodus-os/nodus/internal/identity"
	"github.com/nodus-os/nodus/internal/knowledge"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/recordings"
)

// This file holds the recordings pages: the list with an upload form and
// each recording's status, and a recording's page with its audio, its
// summary and its timed segments (static/app.js seeks the player to a
// segment clicked and highlights the one playing). Uploads go to the API
// from the page's script, as documents do; the other changes are forms.

type recordingsPage struct {
	pageBase
	Recordings []recordings.Recording
	Next       string
	CanEdit    bool
	MaxBytes   int64
}

type recordingPage struct {
	pageBase
	Rec      *recordings.Recording
	CanEdit  bool
	Admin    bool
	Bases    []knowledge.KnowledgeBase
	Error    *formError
	Segments []segmentView
}

// segmentView is a segment as the page lists it.
type segmentView struct {
	recordings.Segment
	Clock    string
	Doubtful bool
}

func (s *Server) recordingActor(v *viewer) (recordings.Actor, error) {
	if s.deps.Recordings == nil {
		return recordings.Actor{}, &nodus.Error{Code: nodus.EUNAVAILABLE, Message: "Recordings are not available on this server"}
	}
	if v.tenantID() == "" {
		return recordings.Actor{}, errNoTenant
	}
	return recordings.Actor{TenantID: v.tenantID(), UserID: v.user.ID, Admin: v.admin(), Entry: v.entry()}, nil
}

func (s *Server) handleRecordings() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := viewerFrom(r.Context())
		a, err := s.recordingActor(v)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		list, next, err := s.deps.Recordings.ListRecordings(r.Context(), a, recordings.Filter{}, r.URL.Query().Get("cursor"), listPage)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		p := recordingsPage{Recordings: list, CanEdit: s.perms.Allows(v.user.Role, identity.ActionWriteContent),
			MaxBytes: s.deps.Recordings.MaxBytes()}
		if next != "" {
			p.Next = pageURL(r.URL.Query(), next)
		}
		p.pageBase = s.base(r, v, "Recordings")
		s.render(w, r, http.StatusOK, "recordings", &p)
	})
}

func (s *Server) handleRecording() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.recordingPage(w, r, http.StatusOK, nil)
	})
}

func (s *Server) recordingPage(w http.ResponseWriter, r *http.Request, status int, ferr *formError) {
	v := viewerFrom(r.Context())
	a, err := s.recordingActor(v)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	rec, err := s.deps.Recordings.FindRecording(r.Context(), a, r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	p := recordingPage{Rec: rec, CanEdit: s.perms.Allows(v.user.Role, identity.ActionWriteContent), Admin: a.Admin, Error: ferr}
	for _, seg := range rec.Segments {
		p.Segments = append(p.Segments, segmentView{Segment: seg, Clock: recordings.Clock(seg.Start), Doubtful: seg.Doubtful()})
	}
	if a.Admin && rec.Status == recordings.StatusCompleted && s.deps.Knowledge != nil {
		if m, err := s.knowledgeManager(v); err == nil {
			bases, _, err := s.deps.Knowledge.ListKnowledgeBases(r.Context(), m, "", 200)
			if err != nil {
				s.deps.Logger.WarnContext(r.Context(), "web: list knowledge bases for a recording", "err", err)
			}
			p.Bases = bases
		}
	}
	p.pageBase = s.base(r, v, rec.Title)
	s.render(w, r, status, "recording", &p)
}

// recordingChange runs a form's change on a recording and redirects to
// to (the recording's page when ""); a refusal the user can act on shows
// on the page.
func (s *Server) recordingChange(w http.ResponseWriter, r *http.Request, change func(a recordings.Actor) (string, error)) {
	v := viewerFrom(r.Context())
	if !s.perms.Allows(v.user.Role, identity.ActionWriteContent) {
		s.renderError(w, r, v, http.StatusForbidden, "Viewers may listen to recordings but not change them.")
		return
	}
	a, err := s.recordingActor(v)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	to, err := change(a)
	if err != nil {
		if c := nodus.ErrorCode(err); c == nodus.EINVALID || c == nodus.ECONFLICT || c == nodus.EFORBIDDEN {
			s.recordingPage(w, r, statusOf(c), toFormError(err))
			return
		}
		s.fail(w, r, err)
		return
	}
	if to == "" {
		to = "/recordings/" + url.PathEscape(r.PathValue("id"))
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
}

func (s *Server) handleRenameRecording() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.recordingChange(w, r, func(a recordings.Actor) (string, error) {
			_, err := s.deps.Recordings.UpdateRecordingTitle(r.Context(), a, r.PathValue("id"), r.PostFormValue("title"))
			return "", err
		})
	})
}

func (s *Server) handleRetryRecording() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.recordingChange(w, r, func(a recordings.Actor) (string, error) {
			_, err := s.deps.Recordings.RetryRecording(r.Context(), a, r.PathValue("id"))
			return "", err
		})
	})
}

func (s *Server) handleDeleteRecording() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.recordingChange(w, r, func(a recordings.Actor) (string, error) {
			return "/recordings", s.deps.Recordings.DeleteRecording(r.Context(), a, r.PathValue("id"))
		})
	})
}

func (s *Server) handleRecordingToKnowledge() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.recordingChange(w, r, func(a recordings.Actor) (string, error) {
			kb := r.PostFormValue("knowledge_base_id")
			if _, err := s.deps.Recordings.AddRecordingToKnowledgeBase(r.Context(), a, r.PathValue("id"), kb); err != nil {
				return "", err
			}
			return "/knowledge/" + url.PathEscape(kb), nil
		})
	})
}
