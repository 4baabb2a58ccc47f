package httpapi

import (
	"net/http"
	"strconv"
	"time"

	"github.com/nodus-os/nodus/internal/audit"
	"github.com/nodus-os/nodus/internal/nodus"
)

// handleListAudit lists audit entries, newest first, filtered by the query
// parameters action, actor_id, target_type, target_id, tenant_id, since and
// until (RFC 3339), with limit and cursor. An org_admin sees their tenant's
// entries (naming another tenant is not found); a super_admin sees all.
func (s *Server) handleListAudit() http.Handler {
	type response struct {
		Entries    []audit.Entry `json:"entries"`
		NextCursor string        `json:"next_cursor,omitempty"`
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		f := audit.Filter{Action: q.Get("action"), ActorID: q.Get("actor_id"), TargetType: q.Get("target_type"),
			TargetID: q.Get("target_id"), TenantID: q.Get("tenant_id"), Cursor: q.Get("cursor")}
		fields := map[string]string{}
		for name, dst := range map[string]*time.Time{"since": &f.Since, "until": &f.Until} {
			if v := q.Get(name); v != "" {
				t, err := time.Parse(time.RFC3339Nano, v)
				if err != nil {
					fields[name] = "must be an RFC 3339 time"
				}
				*dst = t.UTC()
			}
		}
		if v := q.Get("limit"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				fields["limit"] = "must be a positive number"
			}
			f.Limit = n
		}
		if len(fields) > 0 {
			s.writeError(w, r, &nodus.Error{Code: nodus.EINVALID, Message: "invalid query", Fields: fields})
			return
		}
		ctx, err := narrowScope(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		entries, next, err := s.deps.Audit.List(ctx, f)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if entries == nil {
			entries = []audit.Entry{}
		}
		s.writeJSON(w, r, http.StatusOK, response{Entries: entries, NextCursor: next})
	})
}
