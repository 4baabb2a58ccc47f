package web

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nodus-os/nodus/internal/identity"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/tracing"
)

// This file holds the tracing pages: the tenant's traces with filters,
// and one trace with its observation tree, timings, inputs and outputs.

type tracesPage struct {
	pageBase
	NoTenant bool
	Filter   traceFilterForm
	Levels   []string
	Traces   []traceRow
	Next     string // the next page's URL, with the filters kept
	Error    *formError
	Filtered bool // some filter is set: the empty state says so
}

// traceFilterForm is the filter form as typed, shown back as it was.
type traceFilterForm struct {
	From, To, User, Session, Name, Tags, Model, Level, MinCost, MaxCost string
}

type traceRow struct {
	tracing.Trace
	URL     string
	Cost    string
	Latency string
}

func (s *Server) tracingUnavailable() error {
	return &nodus.Error{Code: nodus.EUNAVAILABLE, Message: "Tracing is not available on this server"}
}

// parseDay reads a date input (YYYY-MM-DD, UTC); end gives the start of
// the next day, so a "to" date includes the whole day.
func parseDay(v string, end bool) (time.Time, error) {
	d, err := time.Parse(time.DateOnly, v)
	if err != nil {
		return time.Time{}, err
	}
	if end {
		d = d.AddDate(0, 0, 1)
	}
	return d, nil
}

// traceFilter reads the list's filters; a malformed one is a field error
// shown beside the form.
func traceFilter(q url.Values) (traceFilterForm, tracing.TraceFilter, error) {
	form := traceFilterForm{From: q.Get("from"), To: q.Get("to"), User: strings.TrimSpace(q.Get("user")),
		Session: strings.TrimSpace(q.Get("session")), Name: strings.TrimSpace(q.Get("name")), Tags: q.Get("tags"),
		Model: strings.TrimSpace(q.Get("model")), Level: q.Get("level"), MinCost: strings.TrimSpace(q.Get("min_cost")),
		MaxCost: strings.TrimSpace(q.Get("max_cost"))}
	f := tracing.TraceFilter{UserID: form.User, SessionID: form.Session, Name: form.Name, Model: form.Model}
	fields := map[string]string{}
	for _, d := range []struct {
		v   string
		end bool
		dst *time.Time
		key string
	}{{form.From, false, &f.From, "from"}, {form.To, true, &f.To, "to"}} {
		if d.v == "" {
			continue
		}
		t, err := parseDay(d.v, d.end)
		if err != nil {
			fields[d.key] = "a date, such as 2026-03-14"
			continue
		}
		*d.dst = t
	}
	for tag := range strings.SplitSeq(form.Tags, ",") {
		if tag = strings.TrimSpace(tag); tag != "" {
			f.Tags = append(f.Tags, tag)
		}
	}
	if form.Level != "" {
		if !slices.Contains(traceLevels(), form.Level) {
			fields["level"] = "one of " + strings.Join(traceLevels(), ", ")
		} else {
			f.Level = form.Level
		}
	}
	for _, c := range []struct {
		v, key string
		dst    **float64
	}{{form.MinCost, "min_cost", &f.MinCost}, {form.MaxCost, "max_cost", &f.MaxCost}} {
		if c.v == "" {
			continue
		}
		n, err := strconv.ParseFloat(strings.TrimPrefix(c.v, "$"), 64)
		if err != nil || n < 0 {
			fields[c.key] = "an amount in USD, such as 0.05"
			continue
		}
		*c.dst = &n
	}
	if len(fields) > 0 {
		return form, f, &nodus.Error{Code: nodus.EINVALID, Message: "Check the highlighted filters", Fields: fields}
	}
	return form, f, nil
}

// traceLevels are the levels a trace can be filtered by, least severe
// first: "at least WARNING" includes ERROR.
func traceLevels() []string {
	return []string{tracing.LevelDebug, tracing.LevelDefault, tracing.LevelWarning, tracing.LevelError}
}

// pageURL is the list's URL for another cursor with the same filters.
func pageURL(q url.Values, cursor string) string {
	next := url.Values{}
	for k, v := range q {
		if k != "cursor" && len(v) > 0 && v[0] != "" {
			next[k] = v[:1]
		}
	}
	next.Set("cursor", cursor)
	return "?" + next.Encode()
}

// traceURL is a trace's page. Trace ids come from SDKs and may hold any
// character, so the id is escaped as one path segment.
func traceURL(id string) string { return "/traces/" + url.PathEscape(id) }

func (s *Server) handleTraces() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := viewerFrom(r.Context())
		p := tracesPage{pageBase: s.base(r, v, "Traces"), Levels: traceLevels()}
		if v.tenantID() == "" {
			p.NoTenant = true
			s.render(w, r, http.StatusOK, "traces", &p)
			return
		}
		if s.deps.Tracing == nil {
			s.fail(w, r, s.tracingUnavailable())
			return
		}
		q := r.URL.Query()
		form, f, err := traceFilter(q)
		p.Filter = form
		p.Filtered = form != traceFilterForm{}
		if err != nil {
			p.Error = toFormError(err)
			s.render(w, r, http.StatusBadRequest, "traces", &p)
			return
		}
		traces, next, err := s.deps.Tracing.ListTraces(r.Context(), v.tenantID(), f, q.Get("cursor"), listPage)
		if err != nil {
			if nodus.ErrorCode(err) == nodus.EINVALID {
				p.Error = toFormError(err)
				s.render(w, r, http.StatusBadRequest, "traces", &p)
				return
			}
			s.fail(w, r, err)
			return
		}
		for _, t := range traces {
			p.Traces = append(p.Traces, traceRow{Trace: t, URL: traceURL(t.ID), Cost: usdFloat(t.TotalCost), Latency: millis(t.LatencyMS)})
		}
		if next != "" {
			p.Next = pageURL(q, next)
		}
		s.render(w, r, http.StatusOK, "traces", &p)
	})
}

// usdFloat formats a cost in USD as tracing keeps it: a float, often far
// under a cent.
func usdFloat(c float64) string {
	if c == 0 {
		return "$0"
	}
	if c < 0.01 && c > -0.01 {
		return "$" + strconv.FormatFloat(c, 'f', 6, 64)
	}
	return "$" + strconv.FormatFloat(c, 'f', 2, 64)
}

// millis formats milliseconds as a duration a person reads.
func millis(ms int64) string {
	if ms < 1000 {
		return strconv.FormatInt(ms, 10) + " ms"
	}
	return strconv.FormatFloat(float64(ms)/1000, 'f', 2, 64) + " s"
}

func duration(d time.Duration) string { return millis(d.Milliseconds()) }

type tracePage struct {
	pageBase
	Trace        tracing.Trace
	Cost         string
	Latency      string
	Input        jsonBlock
	Output       jsonBlock
	Metadata     jsonBlock
	Observations []observationRow
	Hidden       int // observations not shown: past maxShownObservations
	Truncated    bool
	Scores       []scoreRow
	Pending      bool // the trace has not arrived yet
	ID           string
	URL          string
	// CanScore: the viewer may score the trace (not a viewer role);
	// ScoreForm and ScoreError hold a refused score's form.
	CanScore   bool
	ScoreForm  scoreForm
	ScoreError *formError
}

// scoreForm is the trace page's form for a score a member gives.
type scoreForm struct {
	Name, Value, Comment, ObservationID string
}

// jsonBlock is a value shown pretty-printed as text; Cut says it was
// shortened to keep the page small.
type jsonBlock struct {
	Label string
	Open  bool // shown unfolded
	Text  string
	Cut   bool
}

type observationRow struct {
	tracing.Observation
	Depth    int // nesting under the trace
	Indent   int // the depth class, 0..maxDepthClass
	Started  string
	Bar      timingBar
	Duration string
	Usage    string
	Cost     string
	Level    string
	Input    jsonBlock
	Output   jsonBlock
	Params   jsonBlock
}

// timingBar is an observation's start and length within the trace, in
// the units of its SVG's viewBox (0 to timingWidth).
type timingBar struct {
	X, W  float64
	Open  bool   // not ended: drawn to the trace's end
	Label string // the offset and duration, for screen readers
}

type scoreRow struct {
	tracing.ScoreView
	Value string
}

const (
	timingWidth = 1000
	// maxDepthClass is the deepest indentation the stylesheet draws;
	// deeper observations line up with it.
	maxDepthClass = 8
	// maxShownObservations and the JSON budgets keep a trace page under
	// ~150 KB: the full trace stays in the API (/api/v1/traces/{id}).
	maxShownObservations = 100
	jsonBlockMax         = 6 << 10
	jsonPageBudget       = 56 << 10
)

// prettyJSON indents a JSON value (a JSON string is shown as its text)
// and cuts it where its HTML-escaped form would pass max bytes: quotes
// escape to five bytes, and the page's weight is what the budget bounds.
func prettyJSON(raw json.RawMessage, max int) (jsonBlock, int) {
	if len(raw) == 0 || string(raw) == "null" {
		return jsonBlock{}, 0
	}
	var text string
	var str string
	if raw[0] == '"' && json.Unmarshal(raw, &str) == nil {
		text = str
	} else {
		var buf bytes.Buffer
		if err := json.Indent(&buf, raw, "", "  "); err != nil {
			text = string(raw)
		} else {
			text = unescapeHTMLSafe(buf.String())
		}
	}
	size := 0
	for i, r := range text {
		n := utf8.RuneLen(r)
		switch r {
		case '<', '>':
			n = 4
		case '&', '"', '\'', 0:
			n = 5
		}
		if size+n > max {
			return jsonBlock{Text: text[:i], Cut: true}, size
		}
		size += n
	}
	return jsonBlock{Text: text}, size
}

// unescapeHTMLSafe turns Go's \u003c, \u003e and \u0026 back into <, >
// and &, as a person reads them: the template escapes the text anyway. An
// escaped backslash (\\u003c) is left alone.
func unescapeHTMLSafe(s string) string {
	if !strings.Contains(s, `\u00`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		if s[i+1] == 'u' && i+6 <= len(s) {
			switch s[i+2 : i+6] {
			case "003c":
				b.WriteByte('<')
				i += 5
				continue
			case "003e":
				b.WriteByte('>')
				i += 5
				continue
			case "0026":
				b.WriteByte('&')
				i += 5
				continue
			}
		}
		b.WriteString(s[i : i+2])
		i++
	}
	return b.String()
}

// jsonBudget hands out the page's JSON bytes: each block at most
// jsonBlockMax, all of them at most jsonPageBudget.
type jsonBudget struct{ left int }

func (b *jsonBudget) block(label string, open bool, raw json.RawMessage) jsonBlock {
	jb, size := prettyJSON(raw, min(jsonBlockMax, b.left))
	b.left -= size
	jb.Label, jb.Open = label, open
	return jb
}

func (s *Server) handleTrace() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := viewerFrom(r.Context())
		if v.tenantID() == "" {
			s.fail(w, r, errNoTenant)
			return
		}
		if s.deps.Tracing == nil {
			s.fail(w, r, s.tracingUnavailable())
			return
		}
		id := r.PathValue("id")
		t, err := s.deps.Tracing.GetPublicTrace(r.Context(), v.tenantID(), id)
		if nodus.ErrorCode(err) == nodus.ENOTFOUND {
			// A chat answer links to its trace at once, but traces are
			// written in the background: say so rather than "deleted".
			p := tracePage{pageBase: s.base(r, v, "Trace not found"), Pending: true, ID: id, URL: traceURL(id)}
			s.render(w, r, http.StatusNotFound, "trace", &p)
			return
		}
		if err != nil {
			s.fail(w, r, err)
			return
		}
		s.renderTrace(w, r, v, http.StatusOK, t, scoreForm{}, nil)
	})
}

// renderTrace renders a trace's page, with a refused score's form when
// there is one.
func (s *Server) renderTrace(w http.ResponseWriter, r *http.Request, v *viewer, status int, t tracing.PublicTrace,
	form scoreForm, ferr *formError) {
	title := t.Trace.Name
	if title == "" {
		title = "Trace " + t.Trace.ID
	}
	p := viewTrace(s.base(r, v, title), t)
	p.CanScore, p.ScoreForm, p.ScoreError = s.perms.Allows(v.user.Role, identity.ActionWriteTracing), form, ferr
	s.render(w, r, status, "trace", p)
}

// handleScoreTrace gives a trace, or one of its steps, a score annotated
// by the member: a number, or a word (a categorical score), with a
// comment.
func (s *Server) handleScoreTrace() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := viewerFrom(r.Context())
		switch {
		case v.tenantID() == "":
			s.fail(w, r, errNoTenant)
			return
		case s.deps.Tracing == nil:
			s.fail(w, r, s.tracingUnavailable())
			return
		case !s.perms.Allows(v.user.Role, identity.ActionWriteTracing):
			s.fail(w, r, &nodus.Error{Code: nodus.EFORBIDDEN, Message: "Viewers read traces; scoring them needs a user role"})
			return
		}
		id := r.PathValue("id")
		form := scoreForm{Name: strings.TrimSpace(r.PostFormValue("name")), Value: strings.TrimSpace(r.PostFormValue("value")),
			Comment: r.PostFormValue("comment"), ObservationID: r.PostFormValue("observation_id")}
		// A number is a numeric score; anything else a category.
		value, err := json.Marshal(form.Value)
		if n, perr := strconv.ParseFloat(form.Value, 64); perr == nil && !math.IsNaN(n) && !math.IsInf(n, 0) {
			value, err = json.Marshal(n)
		}
		if err == nil && form.Value == "" {
			err = &nodus.Error{Code: nodus.EINVALID, Message: "invalid score", Fields: map[string]string{"value": "is required"}}
		}
		if err == nil {
			_, err = s.deps.Tracing.CreateScore(r.Context(), v.tenantID(), tracing.ScoreInput{TraceID: id,
				ObservationID: form.ObservationID, Name: form.Name, Value: value, Comment: form.Comment})
		}
		if nodus.ErrorCode(err) == nodus.EINVALID {
			t, terr := s.deps.Tracing.GetPublicTrace(r.Context(), v.tenantID(), id)
			if terr != nil {
				s.fail(w, r, terr)
				return
			}
			s.renderTrace(w, r, v, http.StatusBadRequest, t, form, toFormError(err))
			return
		}
		if err != nil {
			s.fail(w, r, err)
			return
		}
		http.Redirect(w, r, traceURL(id)+"#scores", http.StatusSeeOther)
	})
}

// viewTrace lays out a trace: its observations flattened in tree order
// with their depth and timing bar, its values pretty-printed within the
// page's budget.
func viewTrace(base pageBase, t tracing.PublicTrace) *tracePage {
	budget := &jsonBudget{left: jsonPageBudget}
	p := &tracePage{pageBase: base, Trace: t.Trace, ID: t.Trace.ID, URL: traceURL(t.Trace.ID), Cost: usdFloat(t.Trace.TotalCost),
		Latency: millis(t.Trace.LatencyMS), Truncated: t.ObservationsTruncated || t.ScoresTruncated}
	p.Input, p.Output = budget.block("Input", true, t.Trace.Input), budget.block("Output", true, t.Trace.Output)
	p.Metadata = budget.block("Metadata", false, t.Trace.Metadata)

	// The timeline runs from the earliest start (the trace's timestamp or
	// its first observation) to the latest end or start.
	start, end := t.Trace.Timestamp, t.Trace.Timestamp
	for _, o := range t.Observations {
		if start.IsZero() || o.StartTime.Before(start) {
			start = o.StartTime
		}
		if o.StartTime.After(end) {
			end = o.StartTime
		}
		if o.EndTime != nil && o.EndTime.After(end) {
			end = *o.EndTime
		}
	}
	span := end.Sub(start)
	var walk func(nodes []*tracing.ObservationNode, depth int)
	walk = func(nodes []*tracing.ObservationNode, depth int) {
		for _, n := range nodes {
			if len(p.Observations) >= maxShownObservations {
				p.Hidden++
			} else {
				p.Observations = append(p.Observations, viewObservation(&n.Observation, depth, start, end, span, budget))
			}
			walk(n.Children, depth+1)
		}
	}
	walk(tracing.Tree(t.Observations), 0)
	for _, sc := range t.Scores {
		row := scoreRow{ScoreView: sc, Value: sc.StringValue}
		if sc.Value != nil && sc.DataType != tracing.DataCategorical {
			row.Value = strconv.FormatFloat(*sc.Value, 'f', -1, 64)
		}
		p.Scores = append(p.Scores, row)
	}
	return p
}

func viewObservation(o *tracing.Observation, depth int, start, end time.Time, span time.Duration, budget *jsonBudget) observationRow {
	row := observationRow{Observation: *o, Depth: depth, Indent: min(depth, maxDepthClass), Level: o.Level,
		Started: o.StartTime.UTC().Format("2006-01-02 15:04:05.000")}
	if row.Level == "" {
		row.Level = tracing.LevelDefault
	}
	oend := end
	if o.EndTime != nil {
		oend = *o.EndTime
		row.Duration = duration(o.EndTime.Sub(o.StartTime))
	} else {
		row.Bar.Open = true
		row.Duration = "not ended"
	}
	offset := o.StartTime.Sub(start)
	if span > 0 {
		row.Bar.X = timingWidth * float64(offset) / float64(span)
		row.Bar.W = timingWidth * float64(oend.Sub(o.StartTime)) / float64(span)
	} else {
		row.Bar.W = timingWidth
	}
	// An instant (an event) is still a visible mark.
	row.Bar.W = max(row.Bar.W, 4)
	row.Bar.X = min(max(row.Bar.X, 0), timingWidth-row.Bar.W)
	row.Bar.Label = fmt.Sprintf("starts at +%s, %s", duration(offset), row.Duration)
	if u, ok := o.LegacyUsage(); ok {
		keys := make([]string, 0, len(o.UsageDetails))
		for k := range o.UsageDetails {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		parts := make([]string, 0, len(keys)+1)
		for _, k := range keys {
			parts = append(parts, k+" "+strconv.FormatInt(o.UsageDetails[k], 10))
		}
		if _, sent := o.UsageDetails["total"]; !sent {
			parts = append(parts, "total "+strconv.FormatInt(u.Total, 10))
		}
		row.Usage = strings.Join(parts, " · ")
	}
	if c, ok := o.CalculatedCosts(); ok {
		row.Cost = usdFloat(c.Total)
	}
	row.Input, row.Output = budget.block("Input", true, o.Input), budget.block("Output", true, o.Output)
	row.Params = budget.block("Model parameters", false, o.ModelParameters)
	return row
}
