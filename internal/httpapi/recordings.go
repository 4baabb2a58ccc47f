package httpapi

import (
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/nodus-os/nodus/internal/identity"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/recordings"
)

// recordingEnvelope is the room an upload's multipart framing and title
// take beside the audio itself.
const recordingEnvelope = 64 << 10

// recordingMaxBytes is the audio upload limit.
func (s *Server) recordingMaxBytes() int64 {
	if s.deps.Recordings == nil {
		return recordings.DefaultMaxBytes
	}
	return s.deps.Recordings.MaxBytes()
}

// recordingActor is the caller as the recordings module sees them, in
// the tenant they act in (a super_admin names it with ?tenant_id=).
func (s *Server) recordingActor(r *http.Request) (recordings.Actor, error) {
	if s.deps.Recordings == nil {
		return recordings.Actor{}, &nodus.Error{Code: nodus.EUNAVAILABLE, Message: "recordings are not available"}
	}
	_, tenantID, err := s.egressTenant(r)
	if err != nil {
		return recordings.Actor{}, err
	}
	c := callerFrom(r.Context())
	role := c.principal.User.Role // a token's role already capped at its owner's current one
	return recordings.Actor{TenantID: tenantID, UserID: c.principal.User.ID,
		Admin: role == identity.RoleOrgAdmin || role == identity.RoleSuperAdmin, Entry: egressActor(r)}, nil
}

func (s *Server) recordingAnswer(status int, fn func(r *http.Request, a recordings.Actor) (any, error)) http.Handler {
	return s.answer(status, func(r *http.Request) (any, error) {
		a, err := s.recordingActor(r)
		if err != nil {
			return nil, err
		}
		return fn(r, a)
	})
}

// recordingView is a recording as the API shows it.
type recordingView struct {
	ID           string               `json:"id"`
	UserID       string               `json:"user_id"`
	Title        string               `json:"title"`
	Filename     string               `json:"filename"`
	MIME         string               `json:"mime"`
	SizeBytes    int64                `json:"size_bytes"`
	DurationS    float64              `json:"duration_s"`
	Status       string               `json:"status"`
	StatusDetail string               `json:"status_detail"`
	Error        string               `json:"error"`
	Language     string               `json:"language"`
	Text         string               `json:"text,omitempty"`
	Segments     []recordings.Segment `json:"segments,omitempty"`
	Summary      string               `json:"summary"`
	KeyPoints    []string             `json:"key_points"`
	Model        string               `json:"model"`
	SummaryModel string               `json:"summary_model"`
	ProcessingMS int64                `json:"processing_ms"`
	CreatedAt    time.Time            `json:"created_at"`
	UpdatedAt    time.Time            `json:"updated_at"`
}

// viewRecording shows r; lists leave the transcript out (full is false).
func viewRecording(r *recordings.Recording, full bool) recordingView {
	v := recordingView{ID: r.ID, UserID: r.UserID, Title: r.Title, Filename: r.Filename, MIME: r.MIME, SizeBytes: r.Size,
		DurationS: r.Duration, Status: r.Status, StatusDetail: r.StatusDetail, Error: r.Error, Language: r.Language,
		Summary: r.Summary, KeyPoints: r.KeyPoints, Model: r.Model, SummaryModel: r.SummaryModel,
		ProcessingMS: r.ProcessingMS, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
	if v.KeyPoints == nil {
		v.KeyPoints = []string{}
	}
	if full {
		v.Text, v.Segments = r.Text, r.Segments
		if v.Segments == nil {
			v.Segments = []recordings.Segment{}
		}
	}
	return v
}

// handleCreateRecording takes multipart/form-data: an optional "title"
// part before a "file" part with the audio.
func (s *Server) handleCreateRecording() http.Handler {
	return s.recordingAnswer(http.StatusCreated, func(r *http.Request, a recordings.Actor) (any, error) {
		mr, err := r.MultipartReader()
		if err != nil {
			return nil, nodus.Errorf(nodus.EINVALID, "the body must be multipart/form-data with a file part")
		}
		title := ""
		for {
			part, err := mr.NextPart()
			if errors.Is(err, io.EOF) {
				return nil, &nodus.Error{Code: nodus.EINVALID, Message: "no file part in the upload",
					Fields: map[string]string{"file": "required"}}
			}
			if err != nil {
				return nil, multipartError(err)
			}
			switch part.FormName() {
			case "title":
				b, err := io.ReadAll(io.LimitReader(partReader{part}, 4<<10+1))
				part.Close()
				if err != nil {
					return nil, err
				}
				if len(b) > 4<<10 {
					return nil, &nodus.Error{Code: nodus.EINVALID, Message: "the title is too long",
						Fields: map[string]string{"title": "must be at most 200 characters"}}
				}
				title = string(b)
			case "file":
				rec, err := s.deps.Recordings.CreateRecording(r.Context(), a, recordings.UploadInput{Title: title,
					Filename: part.FileName(), Body: partReader{part}})
				if err != nil {
					return nil, err
				}
				return map[string]any{"recording": viewRecording(rec, true)}, nil
			default:
				part.Close()
			}
		}
	})
}

func (s *Server) handleListRecordings() http.Handler {
	type response struct {
		Recordings []recordingView `json:"recordings"`
		NextCursor string          `json:"next_cursor,omitempty"`
	}
	return s.recordingAnswer(http.StatusOK, func(r *http.Request, a recordings.Actor) (any, error) {
		limit, cursor, err := pageQuery(r)
		if err != nil {
			return nil, err
		}
		q := r.URL.Query()
		list, next, err := s.deps.Recordings.ListRecordings(r.Context(), a,
			recordings.Filter{UserID: q.Get("user_id"), Status: q.Get("status")}, cursor, limit)
		if err != nil {
			return nil, err
		}
		out := response{Recordings: make([]recordingView, len(list)), NextCursor: next}
		for i := range list {
			out.Recordings[i] = viewRecording(&list[i], false)
		}
		return out, nil
	})
}

func (s *Server) handleGetRecording() http.Handler {
	return s.recordingAnswer(http.StatusOK, func(r *http.Request, a recordings.Actor) (any, error) {
		rec, err := s.deps.Recordings.FindRecording(r.Context(), a, r.PathValue("id"))
		if err != nil {
			return nil, err
		}
		return map[string]any{"recording": viewRecording(rec, true)}, nil
	})
}

func (s *Server) handleUpdateRecording() http.Handler {
	return s.recordingAnswer(http.StatusOK, func(r *http.Request, a recordings.Actor) (any, error) {
		var in struct {
			Title *string `json:"title"`
		}
		// The recording before the body: another tenant's is 404.
		rec, err := s.deps.Recordings.FindRecording(r.Context(), a, r.PathValue("id"))
		if err != nil {
			return nil, err
		}
		if err := decodeJSON(r, &in); err != nil {
			return nil, err
		}
		if in.Title != nil {
			if rec, err = s.deps.Recordings.UpdateRecordingTitle(r.Context(), a, rec.ID, *in.Title); err != nil {
				return nil, err
			}
		}
		return map[string]any{"recording": viewRecording(rec, true)}, nil
	})
}

func (s *Server) handleDeleteRecording() http.Handler {
	return s.recordingAnswer(http.StatusNoContent, func(r *http.Request, a recordings.Actor) (any, error) {
		return nil, s.deps.Recordings.DeleteRecording(r.Context(), a, r.PathValue("id"))
	})
}

func (s *Server) handleRetryRecording() http.Handler {
	return s.recordingAnswer(http.StatusAccepted, func(r *http.Request, a recordings.Actor) (any, error) {
		rec, err := s.deps.Recordings.RetryRecording(r.Context(), a, r.PathValue("id"))
		if err != nil {
			return nil, err
		}
		return map[string]any{"recording": viewRecording(rec, true)}, nil
	})
}

func (s *Server) handleRecordingToKnowledge() http.Handler {
	return s.recordingAnswer(http.StatusCreated, func(r *http.Request, a recordings.Actor) (any, error) {
		var in struct {
			KnowledgeBaseID string `json:"knowledge_base_id"`
		}
		if err := decodeJSON(r, &in); err != nil {
			return nil, err
		}
		if in.KnowledgeBaseID == "" {
			return nil, &nodus.Error{Code: nodus.EINVALID, Message: "name the knowledge base",
				Fields: map[string]string{"knowledge_base_id": "required"}}
		}
		docID, err := s.deps.Recordings.AddRecordingToKnowledgeBase(r.Context(), a, r.PathValue("id"), in.KnowledgeBaseID)
		if err != nil {
			return nil, err
		}
		return map[string]any{"document_id": docID, "knowledge_base_id": in.KnowledgeBaseID}, nil
	})
}

// handleRecordingAudio serves a recording's audio for playback: typed by
// the format detected at upload, never sniffed, as an attachment under a
// sandbox CSP (a page opening it gets no script and no origin), with
// Range support so a player can seek.
func (s *Server) handleRecordingAudio() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, err := s.recordingActor(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		audio, err := s.deps.Recordings.OpenRecordingAudio(r.Context(), a, r.PathValue("id"))
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		defer audio.Content.Close()
		ServeRecordingAudio(w, r, audio)
	})
}

// ServeRecordingAudio writes audio with the headers of
// handleRecordingAudio (the UI serves the same file the same way).
func ServeRecordingAudio(w http.ResponseWriter, r *http.Request, audio *recordings.Audio) {
	h := w.Header()
	h.Set("Content-Type", audio.Recording.MIME)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "sandbox; default-src 'none'")
	h.Set("Cache-Control", "private, no-store")
	// Always a download when opened as a page (SECURITY.md check 25); an
	// <audio> element plays it regardless.
	h.Set("Content-Disposition", attachment(audio.Recording.Filename))
	http.ServeContent(w, r, "", audio.Recording.CreatedAt.Truncate(time.Second), audio.Content)
}
