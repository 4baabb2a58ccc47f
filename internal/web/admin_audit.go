package web

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/nodus-os/nodus/internal/audit"
	"github.com/nodus-os/nodus/internal/nodus"
)

// The audit log page lists the entries the viewer's scope shows (an
// org_admin's tenant; the tenant a super_admin acts in, or every entry),
// newest first, filtered by actor, action and days, a page at a time.

type auditPage struct {
	pageBase
	Filter  auditFilter
	Entries []auditRow
	Next    string // the next page's URL, "" on the last
	Error   *formError
}

// auditFilter is the filter form as typed: dates as YYYY-MM-DD, both
// inclusive.
type auditFilter struct{ Actor, Action, Since, Until string }

type auditRow struct {
	audit.Entry
	Actor   string // the actor's user name, or their id when not found
	Changes []auditChange
}

// auditChange is one changed field, its values as compact JSON text (the
// template escapes them: a user's name in a change is shown, not run).
type auditChange struct{ Field, Before, After string }

func (s *Server) handleAudit() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := viewerFrom(r.Context())
		if s.deps.Audit == nil {
			s.fail(w, r, &nodus.Error{Code: nodus.EUNAVAILABLE, Message: "The audit log is not available on this server"})
			return
		}
		q := r.URL.Query()
		p := auditPage{pageBase: s.base(r, v, "Audit log"), Filter: auditFilter{Actor: strings.TrimSpace(q.Get("actor")),
			Action: strings.TrimSpace(q.Get("action")), Since: q.Get("since"), Until: q.Get("until")}}
		f, err := p.Filter.parse()
		if err == nil {
			f.Cursor, f.Limit = q.Get("cursor"), listPage
			var entries []audit.Entry
			var next string
			entries, next, err = s.deps.Audit.List(r.Context(), f)
			if err == nil {
				p.Entries = s.auditRows(r, entries)
				if next != "" {
					q.Set("cursor", next)
					p.Next = "/admin/audit?" + q.Encode()
				}
			}
		}
		status := http.StatusOK
		if err != nil {
			if statusOf(nodus.ErrorCode(err)) >= 500 {
				s.fail(w, r, err)
				return
			}
			p.Error, status = toFormError(err), statusOf(nodus.ErrorCode(err))
		}
		s.render(w, r, status, "admin_audit", &p)
	})
}

// parse turns the form into the audit service's filter. The actor is an
// id; the days are UTC, until included.
func (f auditFilter) parse() (audit.Filter, error) {
	out := audit.Filter{ActorID: f.Actor, Action: f.Action}
	fields := map[string]string{}
	if f.Since != "" {
		t, err := time.Parse(time.DateOnly, f.Since)
		if err != nil {
			fields["since"] = "must be a date, such as 2026-01-31"
		}
		out.Since = t
	}
	if f.Until != "" {
		t, err := time.Parse(time.DateOnly, f.Until)
		if err != nil {
			fields["until"] = "must be a date, such as 2026-01-31"
		}
		out.Until = t.AddDate(0, 0, 1)
	}
	if len(fields) > 0 {
		return out, &nodus.Error{Code: nodus.EINVALID, Message: "Check the filter", Fields: fields}
	}
	return out, nil
}

// maxActorLookups bounds the user lookups a page makes to name its actors.
const maxActorLookups = 20

// auditRows names each entry's actor (as the viewer's scope shows them:
// another tenant's user stays an id) and flattens its changes.
func (s *Server) auditRows(r *http.Request, entries []audit.Entry) []auditRow {
	names := map[string]string{}
	rows := make([]auditRow, len(entries))
	for i, e := range entries {
		rows[i].Entry = e
		if id := e.ActorID; id != "" && (e.ActorKind == audit.ActorUser || e.ActorKind == audit.ActorToken) {
			if _, seen := names[id]; !seen && len(names) < maxActorLookups {
				names[id] = ""
				if u, err := s.deps.Identity.User(r.Context(), id); err == nil {
					names[id] = u.Username
				}
			}
		}
		rows[i].Actor = names[e.ActorID]
		keys := make([]string, 0, len(e.Changes))
		for k := range e.Changes {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			c := e.Changes[k]
			rows[i].Changes = append(rows[i].Changes, auditChange{Field: k, Before: jsonText(c.Before), After: jsonText(c.After)})
		}
	}
	return rows
}

// jsonText shows a change's value: a string as itself, anything else as
// compact JSON, nothing as "".
func jsonText(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "?"
	}
	return string(b)
}

// actorLink is the audit log filtered on one actor, kept with the page's
// other filters.
func (f auditFilter) actorLink(id string) string {
	q := url.Values{"actor": {id}}
	for k, v := range map[string]string{"action": f.Action, "since": f.Since, "until": f.Until} {
		if v != "" {
			q.Set(k, v)
		}
	}
	return "/admin/audit?" + q.Encode()
}

// ActorLink is actorLink for the template.
func (p *auditPage) ActorLink(id string) string { return p.Filter.actorLink(id) }
