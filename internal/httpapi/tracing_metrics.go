package httpapi

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/tracing"
)

// metricsRow is a row of GET /api/v1/tracing/metrics: the dimensions it
// is grouped by (the others absent) and its figures.
type metricsRow struct {
	Day          string   `json:"day,omitempty"`
	Model        *string  `json:"model,omitempty"`
	UserID       *string  `json:"user_id,omitempty"`
	ChatbotID    *string  `json:"chatbot_id,omitempty"`
	Requests     int64    `json:"requests"`
	Errors       int64    `json:"errors"`
	InputTokens  int64    `json:"input_tokens"`
	OutputTokens int64    `json:"output_tokens"`
	TotalTokens  int64    `json:"total_tokens"`
	Cost         float64  `json:"cost"`
	LatencyAvgMs *float64 `json:"latency_avg_ms"`
	LatencyP50Ms *float64 `json:"latency_p50_ms"`
	LatencyP95Ms *float64 `json:"latency_p95_ms"`
	LatencyP99Ms *float64 `json:"latency_p99_ms"`
	TTFTAvgMs    *float64 `json:"ttft_avg_ms"`
}

func viewMetrics(a *tracing.Aggregate, groupBy []string) metricsRow {
	v := metricsRow{Requests: a.Requests, Errors: a.Errors, InputTokens: a.InputTokens, OutputTokens: a.OutputTokens,
		TotalTokens: a.TotalTokens, Cost: a.Cost, LatencyAvgMs: a.LatencyAvgMs, LatencyP50Ms: a.LatencyP50Ms,
		LatencyP95Ms: a.LatencyP95Ms, LatencyP99Ms: a.LatencyP99Ms, TTFTAvgMs: a.TTFTAvgMs}
	for _, g := range groupBy {
		switch g {
		case tracing.GroupDay:
			v.Day = a.Day.Format(tracing.DayFormat)
		case tracing.GroupModel:
			v.Model = &a.Model
		case tracing.GroupUser:
			v.UserID = &a.UserID
		case tracing.GroupChatbot:
			v.ChatbotID = &a.ChatbotID
		}
	}
	return v
}

// metricsQuery reads an aggregate query: from and to as YYYY-MM-DD (UTC
// days, both included), group_by as a comma-separated list, order_by and
// limit.
func metricsQuery(r *http.Request) (tracing.AggregateQuery, error) {
	q := r.URL.Query()
	var out tracing.AggregateQuery
	fields := map[string]string{}
	for name, dst := range map[string]*time.Time{"from": &out.From, "to": &out.To} {
		if v := q.Get(name); v != "" {
			t, err := time.Parse(tracing.DayFormat, v)
			if err != nil {
				fields[name] = "must be a day, YYYY-MM-DD"
			}
			*dst = t
		}
	}
	for _, v := range q["group_by"] {
		for g := range strings.SplitSeq(v, ",") {
			if g = strings.TrimSpace(g); g != "" {
				out.GroupBy = append(out.GroupBy, g)
			}
		}
	}
	out.OrderBy = q.Get("order_by")
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			fields["limit"] = "must be a positive number"
		}
		out.Limit = n
	}
	if len(fields) > 0 {
		return out, &nodus.Error{Code: nodus.EINVALID, Message: "invalid query", Fields: fields}
	}
	return out, nil
}

// handleTracingMetrics answers a tenant's requests, tokens, cost and
// latencies over a range of days, grouped by day, model, user and chatbot,
// from the rollups (up to a minute behind ingestion).
func (s *Server) handleTracingMetrics() http.Handler {
	return s.tracingAnswer(http.StatusOK, func(r *http.Request, tenantID string) (any, error) {
		q, err := metricsQuery(r)
		if err != nil {
			return nil, err
		}
		agg, err := s.deps.Tracing.Aggregates(r.Context(), tenantID, q)
		if err != nil {
			return nil, err
		}
		rows := make([]metricsRow, len(agg.Rows))
		for i := range agg.Rows {
			rows[i] = viewMetrics(&agg.Rows[i], agg.GroupBy)
		}
		groupBy := agg.GroupBy
		if groupBy == nil {
			groupBy = []string{}
		}
		return map[string]any{"from": agg.From.Format(tracing.DayFormat), "to": agg.To.Format(tracing.DayFormat),
			"group_by": groupBy, "order_by": agg.OrderBy, "groups": agg.Groups, "rows": rows,
			"totals": viewMetrics(&agg.Totals, nil)}, nil
	})
}
