package web

import (
	"cmp"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/nodus-os/nodus/internal/gateway"
	"github.com/nodus-os/nodus/internal/identity"
	"github.com/nodus-os/nodus/internal/tracing"
	"github.com/nodus-os/nodus/internal/usage"
)

// dashboardDays is how many days the dashboard's charts cover.
const dashboardDays = 14

type dashboardPage struct {
	pageBase
	NoTenant    bool   // a super_admin: spend is per tenant
	Unavailable string // why there is no spend to show, if the gateway is down
	Empty       bool   // no request in the period
	Days        int
	Totals      dayTotals
	Charts      []chart
	Models      []modelTotals
	Chatbots    []chatbotTotals
	// Usage is the usage metrics' section, for administrators.
	Usage *usageSection
}

// usageSection is the period's usage metrics (usage_daily) by chatbot and
// by user, with a CSV of every row.
type usageSection struct {
	Totals    usage.Row
	ByChatbot []usageLine
	ByUser    []usageLine
	CSV       string
}

// usageLine is one chatbot's or user's usage, named for people.
type usageLine struct {
	ID, Name string
	usage.Row
	Cost string
}

// chatbotTotals is a chatbot's share of the period's model calls, from
// tracing's rollups.
type chatbotTotals struct {
	ID, Name string
	Requests int64
	Tokens   int64
	Cost     string
	P95      string // latency, "" when no call has ended
}

type dayTotals struct {
	Day      string
	Requests int64
	Tokens   int64
	Micros   int64
}

type modelTotals struct {
	Model    string
	Requests int64
	Tokens   int64
	Cost     string
}

// chart is a bar chart drawn as SVG on the server: no chart library, no
// script, and it prints.
type chart struct {
	ID      string
	Title   string
	Summary string // what the chart shows, for screen readers
	Max     string // the top of the scale, as text
	Width   int
	Height  int
	Base    float64 // the y of the baseline
	Bars    []bar
	Labels  []axisLabel
}

type bar struct {
	X, Y, W, H float64
	Title      string // the value, shown on hover and read by screen readers
}

type axisLabel struct {
	X      float64
	Text   string
	Anchor string // SVG text-anchor: the last label ends at the edge rather than overflow it
}

func (s *Server) handleDashboard() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := viewerFrom(r.Context())
		p := dashboardPage{pageBase: s.base(r, v, "Dashboard"), Days: dashboardDays}
		switch {
		case v.tenantID() == "":
			p.NoTenant = true
		case s.deps.Gateway == nil:
			p.Unavailable = "The gateway is not running: its migrations are not applied. Run `nodus migrate up`."
		default:
			now := s.clock().UTC()
			from := now.AddDate(0, 0, -(dashboardDays - 1)).Format(time.DateOnly)
			m := gateway.Manager{TenantID: v.tenantID(), UserID: v.user.ID, Admin: v.admin(), Entry: v.entry()}
			rows, err := s.deps.Gateway.ListDailySpend(r.Context(), m, from, now.Format(time.DateOnly))
			if err != nil {
				s.fail(w, r, err)
				return
			}
			days, models := summarize(rows, now, dashboardDays)
			for _, d := range days {
				p.Totals.Requests += d.Requests
				p.Totals.Tokens += d.Tokens
				p.Totals.Micros += d.Micros
			}
			p.Empty = p.Totals.Requests == 0
			p.Models = models
			p.Charts = []chart{
				barChart("requests", "Requests per day", days, func(d dayTotals) int64 { return d.Requests }, strconv.FormatInt),
				barChart("tokens", "Tokens per day", days, func(d dayTotals) int64 { return d.Tokens }, strconv.FormatInt),
				barChart("cost", "Cost per day (USD)", days, func(d dayTotals) int64 { return d.Micros },
					func(n int64, _ int) string { return usd(n) }),
			}
			if s.deps.Usage != nil && s.perms.Allows(v.user.Role, identity.ActionReadUsage) {
				if p.Usage, err = s.usageFigures(r, v, now); err != nil {
					s.fail(w, r, err)
					return
				}
			}
			if s.deps.Tracing != nil {
				if err := s.tracedFigures(r, v, now, days, &p); err != nil {
					s.fail(w, r, err)
					return
				}
			}
		}
		s.render(w, r, http.StatusOK, "dashboard", &p)
	})
}

// tracedFigures adds what tracing's rollups know and the spend log does
// not: latency per day and the busiest chatbots. The rollups are rebuilt
// every minute, so the latest calls may not show yet.
func (s *Server) tracedFigures(r *http.Request, v *viewer, now time.Time, days []dayTotals, p *dashboardPage) error {
	from := now.AddDate(0, 0, -(dashboardDays - 1))
	byDay, err := s.deps.Tracing.Aggregates(r.Context(), v.tenantID(), tracing.AggregateQuery{From: from, To: now,
		GroupBy: []string{tracing.GroupDay}, Limit: dashboardDays})
	if err != nil {
		return err
	}
	p95 := map[string]int64{}
	for _, a := range byDay.Rows {
		if a.LatencyP95Ms != nil {
			p95[a.Day.Format(time.DateOnly)] = int64(math.Round(*a.LatencyP95Ms))
		}
	}
	p.Charts = append(p.Charts, barChart("latency", "Latency per day (p95, ms)", days,
		func(d dayTotals) int64 { return p95[d.Day] }, strconv.FormatInt))
	byBot, err := s.deps.Tracing.Aggregates(r.Context(), v.tenantID(), tracing.AggregateQuery{From: from, To: now,
		GroupBy: []string{tracing.GroupChatbot}, OrderBy: tracing.OrderRequests, Limit: 11})
	if err != nil {
		return err
	}
	a, aerr := s.chatActor(v)
	for _, row := range byBot.Rows {
		if row.ChatbotID == "" || len(p.Chatbots) == 10 {
			continue // calls of no chatbot (the API's keys)
		}
		t := chatbotTotals{ID: row.ChatbotID, Name: row.ChatbotID, Requests: row.Requests, Tokens: row.TotalTokens,
			Cost: usd(int64(math.Round(row.Cost * 1e6)))}
		if row.LatencyP95Ms != nil {
			t.P95 = strconv.FormatInt(int64(math.Round(*row.LatencyP95Ms)), 10) + " ms"
		}
		if aerr == nil {
			// A chatbot deleted since keeps its id as its name.
			if b, err := s.deps.Chat.GetChatbot(r.Context(), a, row.ChatbotID); err == nil {
				t.Name = b.Name
			}
		}
		p.Chatbots = append(p.Chatbots, t)
	}
	return nil
}

// usageFigures reads the period's usage metrics by chatbot and by user
// (the ten largest of each, by cost, requests and then turns), through
// the service the API's /api/v1/metrics/usage reads.
func (s *Server) usageFigures(r *http.Request, v *viewer, now time.Time) (*usageSection, error) {
	from, to := now.AddDate(0, 0, -(dashboardDays-1)).Format(usage.DayFormat), now.Format(usage.DayFormat)
	sec := &usageSection{CSV: "/api/v1/metrics/usage?" + url.Values{"from": {from}, "to": {to},
		"group_by": {"day,chatbot,user,model"}, "format": {"csv"}}.Encode()}
	names := map[string]string{}
	if a, err := s.chatActor(v); err == nil {
		bots, _, err := s.deps.Chat.ListChatbots(r.Context(), a, "", 200)
		if err != nil {
			s.deps.Logger.WarnContext(r.Context(), "web: list chatbots for usage", "err", err)
		}
		for _, b := range bots {
			names[b.ID] = b.Name
		}
	}
	lines := func(group string) ([]usageLine, error) {
		res, err := s.deps.Usage.Usage(r.Context(), v.tenantID(), usage.Query{From: from, To: to, GroupBy: []string{group}})
		if err != nil {
			return nil, err
		}
		sec.Totals = res.Totals
		out := make([]usageLine, 0, len(res.Rows))
		for _, row := range res.Rows {
			l := usageLine{Row: row, Cost: usd(row.CostMicros)}
			switch group {
			case usage.GroupChatbot:
				l.ID, l.Name = row.ChatbotID, cmp.Or(names[row.ChatbotID], row.ChatbotID)
				if row.ChatbotID == "" {
					l.Name = "Outside chats (API keys, embeddings)"
				}
			case usage.GroupUser:
				l.ID, l.Name = row.UserID, cmp.Or(row.UserID, "No user (Nodus itself)")
			}
			out = append(out, l)
		}
		slices.SortFunc(out, func(a, b usageLine) int {
			return cmp.Or(cmp.Compare(b.CostMicros, a.CostMicros), cmp.Compare(b.Requests, a.Requests),
				cmp.Compare(b.ChatTurns, a.ChatTurns), cmp.Compare(a.Name, b.Name))
		})
		if len(out) > 10 {
			out = out[:10]
		}
		return out, nil
	}
	var err error
	if sec.ByChatbot, err = lines(usage.GroupChatbot); err != nil {
		return nil, err
	}
	if sec.ByUser, err = lines(usage.GroupUser); err != nil {
		return nil, err
	}
	return sec, nil
}

// summarize sums rollup rows by day (every day of the period, zeros
// included, oldest first) and by model (the ten most used, by cost and
// then requests).
func summarize(rows []gateway.DailySpend, now time.Time, n int) ([]dayTotals, []modelTotals) {
	days := make([]dayTotals, n)
	index := map[string]int{}
	for i := range days {
		d := now.AddDate(0, 0, i-(n-1)).Format(time.DateOnly)
		days[i].Day, index[d] = d, i
	}
	type sum struct {
		requests, tokens, micros int64
	}
	byModel := map[string]*sum{}
	for _, r := range rows {
		tokens := r.PromptTokens + r.CompletionTokens
		if i, ok := index[r.Day]; ok {
			days[i].Requests += r.Requests
			days[i].Tokens += tokens
			days[i].Micros += r.CostMicros
		}
		m := byModel[r.Model]
		if m == nil {
			m = &sum{}
			byModel[r.Model] = m
		}
		m.requests += r.Requests
		m.tokens += tokens
		m.micros += r.CostMicros
	}
	var models []modelTotals
	for name, m := range byModel {
		models = append(models, modelTotals{Model: name, Requests: m.requests, Tokens: m.tokens, Cost: usd(m.micros)})
	}
	slices.SortFunc(models, func(a, b modelTotals) int {
		return cmp.Or(cmp.Compare(byModel[b.Model].micros, byModel[a.Model].micros), cmp.Compare(b.Requests, a.Requests),
			cmp.Compare(a.Model, b.Model))
	})
	if len(models) > 10 {
		models = models[:10]
	}
	return days, models
}

// Chart geometry, in SVG user units; the SVG scales to its container.
const (
	chartWidth  = 600
	chartHeight = 180
	chartTop    = 10
	chartBottom = 30 // room for the date labels
)

func barChart(id, title string, days []dayTotals, value func(dayTotals) int64, format func(int64, int) string) chart {
	c := chart{ID: id, Title: title, Width: chartWidth, Height: chartHeight, Base: chartHeight - chartBottom}
	var top, total int64
	for _, d := range days {
		top = max(top, value(d))
		total += value(d)
	}
	c.Max = format(top, 10)
	c.Summary = fmt.Sprintf("%s, %s to %s: %s in all, at most %s in a day.", title, days[0].Day, days[len(days)-1].Day,
		format(total, 10), c.Max)
	slot := float64(chartWidth) / float64(len(days))
	span := c.Base - chartTop
	for i, d := range days {
		h := 0.0
		if top > 0 {
			h = span * float64(value(d)) / float64(top)
		}
		// A day with some activity is at least a sliver high, so it does
		// not look like a day with none.
		if value(d) > 0 && h < 2 {
			h = 2
		}
		c.Bars = append(c.Bars, bar{X: float64(i)*slot + slot*0.15, W: slot * 0.7, Y: c.Base - h, H: h,
			Title: d.Day + ": " + format(value(d), 10)})
		// Every third day, counted back from today so today is labelled.
		if (len(days)-1-i)%3 == 0 {
			l := axisLabel{X: float64(i)*slot + slot/2, Text: d.Day[5:], Anchor: "middle"}
			if i == len(days)-1 {
				l.X, l.Anchor = float64(i+1)*slot, "end"
			}
			c.Labels = append(c.Labels, l)
		}
	}
	return c
}

// usd formats micro-dollars as dollars, with cents and more digits for
// amounts under a cent (model calls are often cheaper than that).
func usd(micros int64) string {
	if micros != 0 && micros < 10_000 && micros > -10_000 {
		return "$" + strconv.FormatFloat(float64(micros)/1e6, 'f', 6, 64)
	}
	return "$" + strconv.FormatFloat(float64(micros)/1e6, 'f', 2, 64)
}
