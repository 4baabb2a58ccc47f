package httpapi

import (
	"encoding/csv"
	"net/http"
	"strconv"
	"strings"

	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/usage"
)

// usageRowView is a row as the API shows it: each dimension grouped by
// is present, "" included (no chatbot, no user, no model), and the others
// absent.
type usageRowView struct {
	Day       *string `json:"day,omitempty"`
	ChatbotID *string `json:"chatbot_id,omitempty"`
	UserID    *string `json:"user_id,omitempty"`
	Model     *string `json:"model,omitempty"`
	usage.Row
}

func viewUsageRow(r usage.Row, groups []string) usageRowView {
	v := usageRowView{Row: r}
	v.Row.Day, v.Row.ChatbotID, v.Row.UserID, v.Row.Model = "", "", "", ""
	for _, g := range groups {
		switch g {
		case usage.GroupDay:
			v.Day = &r.Day
		case usage.GroupChatbot:
			v.ChatbotID = &r.ChatbotID
		case usage.GroupUser:
			v.UserID = &r.UserID
		case usage.GroupModel:
			v.Model = &r.Model
		}
	}
	return v
}

// handleUsageMetrics serves GET /api/v1/metrics/usage: the tenant's usage
// of days from to to (YYYY-MM-DD, UTC; the last 30 days by default) summed
// by group_by (day, chatbot, user, model; comma-separated or repeated; none for the
// totals). A super_admin names the tenant with ?tenant_id=. ?format=csv
// answers the rows as CSV.
func (s *Server) handleUsageMetrics() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.deps.Usage == nil {
			s.writeError(w, r, &nodus.Error{Code: nodus.EUNAVAILABLE, Message: "usage metrics are not available"})
			return
		}
		ctx, tenantID, err := s.egressTenant(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		q := r.URL.Query()
		uq := usage.Query{From: q.Get("from"), To: q.Get("to")}
		for _, v := range q["group_by"] {
			for g := range strings.SplitSeq(v, ",") {
				if g = strings.TrimSpace(g); g != "" {
					uq.GroupBy = append(uq.GroupBy, g)
				}
			}
		}
		res, err := s.deps.Usage.Usage(ctx, tenantID, uq)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		switch q.Get("format") {
		case "", "json":
			rows := make([]usageRowView, len(res.Rows))
			for i := range res.Rows {
				rows[i] = viewUsageRow(res.Rows[i], res.GroupBy)
			}
			s.writeJSON(w, r, http.StatusOK, map[string]any{"from": res.From, "to": res.To, "group_by": res.GroupBy,
				"rows": rows, "totals": viewUsageRow(res.Totals, nil)})
			return
		case "csv":
		default:
			s.writeError(w, r, &nodus.Error{Code: nodus.EINVALID, Message: "invalid format",
				Fields: map[string]string{"format": "json or csv"}})
			return
		}
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="usage-`+res.From+`-`+res.To+`.csv"`)
		cw := csv.NewWriter(w)
		head := append([]string{}, res.GroupBy...)
		head = append(head, "requests", "errors", "prompt_tokens", "completion_tokens", "cost_usd", "chat_turns",
			"conversations", "documents")
		_ = cw.Write(head)
		for _, row := range res.Rows {
			var rec []string
			for _, g := range res.GroupBy {
				switch g {
				case usage.GroupDay:
					rec = append(rec, row.Day)
				case usage.GroupChatbot:
					rec = append(rec, csvSafe(row.ChatbotID))
				case usage.GroupUser:
					rec = append(rec, csvSafe(row.UserID))
				case usage.GroupModel:
					rec = append(rec, csvSafe(row.Model))
				}
			}
			rec = append(rec, strconv.FormatInt(row.Requests, 10), strconv.FormatInt(row.Errors, 10),
				strconv.FormatInt(row.PromptTokens, 10), strconv.FormatInt(row.CompletionTokens, 10), microsToUSD(row.CostMicros),
				strconv.FormatInt(row.ChatTurns, 10), strconv.FormatInt(row.Conversations, 10), strconv.FormatInt(row.Documents, 10))
			_ = cw.Write(rec)
		}
		cw.Flush()
	})
}
