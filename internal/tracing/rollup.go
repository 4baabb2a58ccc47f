package tracing

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nodus-os/nodus/internal/nodus"
)

// Rollups: what a tenant's GENERATION and EMBEDDING observations (the
// "generations" below: the types with usage and cost) add up to per UTC
// day, by model, by the trace's user and by its chatbot (trace metadata
// "chatbot_id"), kept by the store so that dashboards (Aggregates) read a
// few rows per day and never the observations. The ingestion transaction
// marks the days a batch touched; a periodic job (jobs.AddTracingRollup)
// rebuilds each marked day from its generations. So aggregates lag
// ingestion by up to the job's interval, a minute, and always agree with
// the stored observations once it has run: an update, a retention prune
// or a late generation marks its day again.
//
// The figures follow Langfuse: usage "input"/"output"/"total" (or
// OpenAI's prompt_tokens/completion_tokens/total_tokens), cost
// cost_details["total"] or else the sum of the other keys, latency from
// start to end, time to first token from start to completion start.
// Latency percentiles come from a log-scale histogram kept per row, which
// merges across rows and days: a percentile is exact to its bucket, 1/8
// of a doubling (±4.4%).

// RollupStore is the part of the store rollups need (embedded in Store).
type RollupStore interface {
	// RollupTraces rebuilds the rollups of up to limit marked (tenant,
	// day)s, newest days first, across tenants; it needs the all-tenants
	// scope and returns how many days it rebuilt. A day marked again
	// while it was rebuilt stays marked. Any write of a day's rows marks
	// its month.
	RollupTraces(ctx context.Context, limit int) (int, error)
	// RollupTraceMonths rebuilds the month rows of up to limit marked (tenant, month)s whose month starts before before,
	// newest first, across tenants, from their days' rows; it needs the
	// all-tenants scope and returns how many months it rebuilt. A month
	// marked again while it was rebuilt stays marked.
	RollupTraceMonths(ctx context.Context, before time.Time, limit int) (int, error)
	// DirtyRollupMonths returns the scoped tenant's marked months (their
	// first days) from from to to, both included: the months whose rows
	// may not add up to their days.
	DirtyRollupMonths(ctx context.Context, from, to time.Time) ([]time.Time, error)
	// ScanRollups calls fn with each of the scoped tenant's rollup rows
	// of a grain (GrainModel, …) for the days from to to (both included).
	// The *Rollup is reused: it is valid during the call only.
	ScanRollups(ctx context.Context, grain string, from, to time.Time, fn func(*Rollup) error) error
	// ScanMonthRollups is ScanRollups for the month rows: the months of
	// from to to, each row's Day the month's first.
	ScanMonthRollups(ctx context.Context, grain string, from, to time.Time, fn func(*Rollup) error) error
}

// Bounds of an aggregate query.
const (
	MaxAggregateDays      = 400
	DefaultAggregateDays  = 30
	DefaultAggregateLimit = 100
	MaxAggregateLimit     = 1000
	// MaxAggregateGroups bounds the groups held in memory at once: every
	// group of a year by day, model, user and chatbot would be millions.
	MaxAggregateGroups = 100000
	// rollupDaysPerRun and rollupMonthsPerRun bound one run of the job; a
	// backlog (a first run, a retention prune of many days) drains over
	// the next runs.
	rollupDaysPerRun   = 1000
	rollupMonthsPerRun = 200
)

// Dimensions an aggregate groups by.
const (
	GroupDay     = "day"
	GroupModel   = "model"
	GroupUser    = "user"
	GroupChatbot = "chatbot"
)

// Orders of aggregate rows.
const (
	OrderCost     = "cost"     // most expensive first
	OrderRequests = "requests" // most requests first
	OrderKey      = "key"      // by day, model, user, chatbot
)

// DayFormat is how a day is written: in the rollup tables and the API.
const DayFormat = "2006-01-02"

// The latency histogram: bucket 0 holds [0, 1 ms), bucket i in 1..176
// holds [2^((i-1)/8), 2^(i/8)) ms, up to 2^22 ms (70 minutes), and the
// last bucket everything longer.
const (
	histPerDoubling = 8
	histDoublings   = 22
	// HistBuckets is the number of latency buckets.
	HistBuckets = 1 + histPerDoubling*histDoublings + 1
)

// LatencyBucket returns the bucket of a latency in milliseconds.
func LatencyBucket(ms float64) int {
	if !(ms >= 1) { // also NaN
		return 0
	}
	i := 1 + int(math.Floor(histPerDoubling*math.Log2(ms)))
	return min(i, HistBuckets-1)
}

// BucketValue is the latency a bucket stands for: the geometric middle
// of its bounds, so the error is at most half a bucket either way.
func BucketValue(i int) float64 {
	switch {
	case i <= 0:
		return 0.5
	case i >= HistBuckets-1:
		return math.Exp2(histDoublings)
	}
	return math.Exp2((float64(i) - 0.5) / histPerDoubling)
}

// Histogram counts latencies by bucket. It holds only the window of
// buckets from its lowest to its highest non-empty one (latencies of one
// model span a few doublings), so a group costs tens of counters.
type Histogram struct {
	lo     int
	counts []int64
}

// Reset empties the histogram and keeps its memory.
func (h *Histogram) Reset() { h.lo, h.counts = 0, h.counts[:0] }

// Add counts n latencies in bucket i.
func (h *Histogram) Add(i int, n int64) {
	i = max(0, min(i, HistBuckets-1))
	switch {
	case len(h.counts) == 0:
		h.lo = i
		h.counts = append(h.counts, n)
		return
	case i < h.lo:
		grow := h.lo - i
		h.counts = append(h.counts, make([]int64, grow)...)
		copy(h.counts[grow:], h.counts)
		clear(h.counts[:grow])
		h.lo = i
	case i >= h.lo+len(h.counts):
		h.counts = append(h.counts, make([]int64, i-h.lo-len(h.counts)+1)...)
	}
	h.counts[i-h.lo] += n
}

// Observe counts one latency in milliseconds.
func (h *Histogram) Observe(ms float64) { h.Add(LatencyBucket(ms), 1) }

// Merge adds another histogram's counts.
func (h *Histogram) Merge(o *Histogram) {
	for j, n := range o.counts {
		if n != 0 {
			h.Add(o.lo+j, n)
		}
	}
}

// Count is the number of latencies counted.
func (h *Histogram) Count() int64 {
	var n int64
	for _, c := range h.counts {
		n += c
	}
	return n
}

// Quantile returns the latency at quantile q (0 < q ≤ 1) by nearest rank:
// the value of the bucket holding the ceil(q·n)-th smallest latency; false
// when the histogram is empty.
func (h *Histogram) Quantile(q float64) (float64, bool) {
	n := h.Count()
	if n == 0 {
		return 0, false
	}
	rank := max(1, int64(math.Ceil(q*float64(n))))
	var seen int64
	for j, c := range h.counts {
		if seen += c; seen >= rank {
			return BucketValue(h.lo + j), true
		}
	}
	return BucketValue(h.lo + len(h.counts) - 1), true
}

// String encodes the non-empty buckets as "bucket:count,…", ascending:
// how the rollup tables store it.
func (h *Histogram) String() string {
	var b strings.Builder
	for j, c := range h.counts {
		if c == 0 {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(h.lo + j))
		b.WriteByte(':')
		b.WriteString(strconv.FormatInt(c, 10))
	}
	return b.String()
}

// AddEncoded adds the counts of an encoded histogram (String's form).
func (h *Histogram) AddEncoded(s string) error {
	for s != "" {
		var pair string
		pair, s, _ = strings.Cut(s, ",")
		bs, cs, ok := strings.Cut(pair, ":")
		i, err1 := strconv.Atoi(bs)
		c, err2 := strconv.ParseInt(cs, 10, 64)
		if !ok || err1 != nil || err2 != nil || i < 0 || i >= HistBuckets || c < 0 {
			return fmt.Errorf("tracing: bad latency histogram %q", pair)
		}
		h.Add(i, c)
	}
	return nil
}

// Rollup is what a set of generations adds up to: a stored row (one day,
// model, user and chatbot) or a group of an aggregate.
type Rollup struct {
	Day       time.Time // UTC midnight
	Model     string
	UserID    string
	ChatbotID string

	Requests     int64 // generations
	Errors       int64 // of level ERROR
	InputTokens  int64
	OutputTokens int64
	TotalTokens  int64
	Cost         float64 // USD
	LatencySumMs float64 // over the generations with an end time
	LatencyCount int64
	TTFTSumMs    float64 // over those with a completion start time
	TTFTCount    int64
	Latency      Histogram
}

// Tokens returns a generation's input, output and total tokens: Langfuse's
// usage keys, else OpenAI's (chat, then Responses API); the total when
// none is sent is input plus output.
func Tokens(usage map[string]int64) (input, output, total int64) {
	first := func(keys ...string) (int64, bool) {
		for _, k := range keys {
			if v, ok := usage[k]; ok {
				return v, true
			}
		}
		return 0, false
	}
	input, _ = first("input", "prompt_tokens", "input_tokens")
	output, _ = first("output", "completion_tokens", "output_tokens")
	total, ok := first("total", "total_tokens")
	if !ok {
		total = input + output
	}
	return input, output, total
}

// Cost returns a generation's cost in USD by Langfuse's rule: the "total"
// sent, else the sum of the other keys.
func Cost(details map[string]float64) float64 {
	if v, ok := details["total"]; ok {
		return v
	}
	var sum float64
	for _, k := range slices.Sorted(maps.Keys(details)) { // a fixed order: the same sum every time
		sum += details[k]
	}
	return sum
}

// ChatbotID returns the "chatbot_id" a trace's metadata names (a chat
// turn's trace does), "" when none.
func ChatbotID(metadata json.RawMessage) string {
	if len(metadata) == 0 || !strings.Contains(string(metadata), `"chatbot_id"`) {
		return ""
	}
	var m struct {
		ChatbotID any `json:"chatbot_id"`
	}
	if json.Unmarshal(metadata, &m) != nil {
		return ""
	}
	s, _ := m.ChatbotID.(string)
	return s
}

// AddGeneration counts one generation.
func (r *Rollup) AddGeneration(o *Observation) {
	r.Requests++
	if o.Level == LevelError {
		r.Errors++
	}
	in, out, total := Tokens(o.UsageDetails)
	r.InputTokens += in
	r.OutputTokens += out
	r.TotalTokens += total
	r.Cost += Cost(o.CostDetails)
	if o.EndTime != nil {
		ms := max(0, float64(o.EndTime.Sub(o.StartTime))/float64(time.Millisecond))
		r.LatencySumMs += ms
		r.LatencyCount++
		r.Latency.Observe(ms)
	}
	if o.CompletionStartTime != nil {
		r.TTFTSumMs += max(0, float64(o.CompletionStartTime.Sub(o.StartTime))/float64(time.Millisecond))
		r.TTFTCount++
	}
}

// Merge adds another rollup's figures (not its keys).
func (r *Rollup) Merge(o *Rollup) {
	r.Requests += o.Requests
	r.Errors += o.Errors
	r.InputTokens += o.InputTokens
	r.OutputTokens += o.OutputTokens
	r.TotalTokens += o.TotalTokens
	r.Cost += o.Cost
	r.LatencySumMs += o.LatencySumMs
	r.LatencyCount += o.LatencyCount
	r.TTFTSumMs += o.TTFTSumMs
	r.TTFTCount += o.TTFTCount
	r.Latency.Merge(&o.Latency)
}

// Grains of the stored rollups: the dimensions besides the day a set of
// rows keeps (the others are ""). Each grain holds every generation once.
const (
	GrainModel   = "model"
	GrainUser    = "user"
	GrainChatbot = "chatbot"
	GrainFull    = "model,user,chatbot"
)

// Grains lists the grains a day is rolled up at.
func Grains() []string { return []string{GrainModel, GrainUser, GrainChatbot, GrainFull} }

// MonthOf is the first day of t's UTC month.
func MonthOf(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
}

// grainFor returns the smallest grain that holds a grouping.
func grainFor(byModel, byUser, byChatbot bool) string {
	switch {
	case !byUser && !byChatbot:
		return GrainModel
	case !byModel && !byChatbot:
		return GrainUser
	case !byModel && !byUser:
		return GrainChatbot
	}
	return GrainFull
}

// PeriodRollup builds the rollup rows of one tenant's day, at every
// grain, from its generations (Add), or of a month from its days' rows
// (AddRow): the store feeds it and writes Rows.
type PeriodRollup struct {
	Day  time.Time // the day, or the month's first
	rows map[rollupKey]*Rollup
}

type rollupKey struct {
	grain                string
	model, user, chatbot string
}

// NewPeriodRollup starts the rollup of the day, or month, that starts at
// start.
func NewPeriodRollup(start time.Time) *PeriodRollup {
	return &PeriodRollup{Day: start, rows: map[rollupKey]*Rollup{}}
}

// Add counts a generation of a trace of userID and chatbotID.
func (d *PeriodRollup) Add(o *Observation, userID, chatbotID string) {
	var one Rollup
	one.AddGeneration(o)
	for _, k := range []rollupKey{{GrainModel, o.Model, "", ""}, {GrainUser, "", userID, ""},
		{GrainChatbot, "", "", chatbotID}, {GrainFull, o.Model, userID, chatbotID}} {
		d.merge(k, &one)
	}
}

// AddRow counts a stored row of a grain (a day's, for its month).
func (d *PeriodRollup) AddRow(grain string, r *Rollup) {
	d.merge(rollupKey{grain, r.Model, r.UserID, r.ChatbotID}, r)
}

func (d *PeriodRollup) merge(k rollupKey, one *Rollup) {
	r := d.rows[k]
	if r == nil {
		r = &Rollup{Day: d.Day, Model: k.model, UserID: k.user, ChatbotID: k.chatbot}
		d.rows[k] = r
	}
	r.Merge(one)
}

// Rows returns the rows of a grain, in key order.
func (d *PeriodRollup) Rows(grain string) []*Rollup {
	var out []*Rollup
	for k, r := range d.rows {
		if k.grain == grain {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, compareKeys)
	return out
}

func compareKeys(a, b *Rollup) int {
	return cmp.Or(a.Day.Compare(b.Day), strings.Compare(a.Model, b.Model), strings.Compare(a.UserID, b.UserID),
		strings.Compare(a.ChatbotID, b.ChatbotID))
}

// DayOf is the UTC day of a time, as DayFormat writes it.
func DayOf(t time.Time) string { return t.UTC().Format(DayFormat) }

// Rollup rebuilds the rollups of the days marked since the last run, then
// those of the marked months that have ended, across tenants, and returns
// how many days and months it rebuilt: the periodic job's work. The
// current month is left marked (aggregates read it from its days): every
// run rewrites today, and so would rebuild the month each minute for no
// reader, as no range covers a month whole before it ends.
func (s *Service) Rollup(ctx context.Context) (int, error) {
	ctx = nodus.WithAllTenants(ctx)
	days, err := s.store.RollupTraces(ctx, rollupDaysPerRun)
	if err != nil {
		return days, fmt.Errorf("tracing: rollup: %w", err)
	}
	months, err := s.store.RollupTraceMonths(ctx, MonthOf(s.now()), rollupMonthsPerRun)
	if err != nil {
		return days + months, fmt.Errorf("tracing: monthly rollup: %w", err)
	}
	return days + months, nil
}

// AggregateQuery asks for a tenant's figures over a range of days.
type AggregateQuery struct {
	// From and To are the first and last day, both included (their UTC
	// days). Zero To is today; zero From is DefaultAggregateDays before To.
	From, To time.Time
	// GroupBy holds the dimensions of a row: GroupDay, GroupModel,
	// GroupUser, GroupChatbot; none gives one row of everything.
	GroupBy []string
	// OrderBy is OrderCost, OrderRequests or OrderKey; "" is OrderKey when
	// grouping by day (a time series), else OrderCost.
	OrderBy string
	Limit   int // rows returned, 0: DefaultAggregateLimit
}

// Aggregate is one row of an aggregate: the dimensions grouped by (the
// others are zero) and the figures.
type Aggregate struct {
	Day       time.Time
	Model     string
	UserID    string
	ChatbotID string

	Requests     int64
	Errors       int64
	InputTokens  int64
	OutputTokens int64
	TotalTokens  int64
	Cost         float64
	// Latency figures in milliseconds, nil without a generation that
	// ended; TTFTAvgMs nil without one that recorded its first token.
	LatencyAvgMs *float64
	LatencyP50Ms *float64
	LatencyP95Ms *float64
	LatencyP99Ms *float64
	TTFTAvgMs    *float64
}

// Aggregates is the answer to an AggregateQuery.
type Aggregates struct {
	From, To time.Time
	GroupBy  []string
	OrderBy  string
	Rows     []Aggregate // at most the limit, in order
	Groups   int         // how many rows there were before the limit
	Totals   Aggregate   // over every row, with no dimension
}

func aggregateOf(r *Rollup) Aggregate {
	a := Aggregate{Day: r.Day, Model: r.Model, UserID: r.UserID, ChatbotID: r.ChatbotID, Requests: r.Requests,
		Errors: r.Errors, InputTokens: r.InputTokens, OutputTokens: r.OutputTokens, TotalTokens: r.TotalTokens,
		Cost: r.Cost}
	if r.LatencyCount > 0 {
		avg := r.LatencySumMs / float64(r.LatencyCount)
		a.LatencyAvgMs = &avg
		for q, dst := range map[float64]**float64{0.5: &a.LatencyP50Ms, 0.95: &a.LatencyP95Ms, 0.99: &a.LatencyP99Ms} {
			if v, ok := r.Latency.Quantile(q); ok {
				*dst = &v
			}
		}
	}
	if r.TTFTCount > 0 {
		avg := r.TTFTSumMs / float64(r.TTFTCount)
		a.TTFTAvgMs = &avg
	}
	return a
}

// normalize checks a query and fills in its defaults.
func (q *AggregateQuery) normalize(now time.Time) error {
	day := func(t time.Time) time.Time { return t.UTC().Truncate(24 * time.Hour) }
	if q.To.IsZero() {
		q.To = now
	}
	q.To = day(q.To)
	if q.From.IsZero() {
		q.From = q.To.AddDate(0, 0, -(DefaultAggregateDays - 1))
	}
	q.From = day(q.From)
	fields := map[string]string{}
	switch {
	case q.From.After(q.To):
		fields["from"] = "must not be after to"
	case q.To.Sub(q.From) >= MaxAggregateDays*24*time.Hour:
		fields["to"] = fmt.Sprintf("the range may span at most %d days", MaxAggregateDays)
	}
	seen := map[string]bool{}
	for _, g := range q.GroupBy {
		switch {
		case g != GroupDay && g != GroupModel && g != GroupUser && g != GroupChatbot:
			fields["group_by"] = fmt.Sprintf("%q is not one of day, model, user, chatbot", g)
		case seen[g]:
			fields["group_by"] = fmt.Sprintf("%q is named twice", g)
		}
		seen[g] = true
	}
	switch q.OrderBy {
	case "":
		q.OrderBy = OrderCost
		if seen[GroupDay] {
			q.OrderBy = OrderKey
		}
	case OrderCost, OrderRequests, OrderKey:
	default:
		fields["order_by"] = "must be cost, requests or key"
	}
	switch {
	case q.Limit == 0:
		q.Limit = DefaultAggregateLimit
	case q.Limit < 0 || q.Limit > MaxAggregateLimit:
		fields["limit"] = fmt.Sprintf("must be 1 to %d", MaxAggregateLimit)
	}
	if len(fields) > 0 {
		return &nodus.Error{Code: nodus.EINVALID, Message: "invalid aggregate query", Fields: fields}
	}
	return nil
}

// Aggregates returns a tenant's figures over a range of days, grouped and
// ordered as asked, with their totals. It reads the rollups only: what
// the job has not yet rolled up (the last minute or so) is not in it.
func (s *Service) Aggregates(ctx context.Context, tenantID string, q AggregateQuery) (Aggregates, error) {
	ctx, err := tenantCtx(ctx, tenantID)
	if err != nil {
		return Aggregates{}, err
	}
	if err := q.normalize(s.now()); err != nil {
		return Aggregates{}, err
	}
	var by [4]bool // day, model, user, chatbot
	for _, g := range q.GroupBy {
		by[slices.Index([]string{GroupDay, GroupModel, GroupUser, GroupChatbot}, g)] = true
	}
	type key struct {
		day                  time.Time
		model, user, chatbot string
	}
	groups := map[key]*Rollup{}
	var total Rollup
	tooMany := false
	scans, err := s.rollupScans(ctx, grainFor(by[1], by[2], by[3]), q.From, q.To, by[0])
	if err != nil {
		return Aggregates{}, fmt.Errorf("tracing: aggregates: %w", err)
	}
	add := func(r *Rollup) error {
		var k key
		if by[0] {
			k.day = r.Day
		}
		if by[1] {
			k.model = r.Model
		}
		if by[2] {
			k.user = r.UserID
		}
		if by[3] {
			k.chatbot = r.ChatbotID
		}
		g := groups[k]
		if g == nil {
			if len(groups) >= MaxAggregateGroups {
				tooMany = true
				return errStopScan
			}
			g = &Rollup{Day: k.day, Model: k.model, UserID: k.user, ChatbotID: k.chatbot}
			groups[k] = g
		}
		g.Merge(r)
		total.Merge(r)
		return nil
	}
	for _, sc := range scans {
		scan := s.store.ScanRollups
		if sc.months {
			scan = s.store.ScanMonthRollups
		}
		if err = scan(ctx, sc.grain, sc.from, sc.to, add); err != nil {
			break
		}
	}
	if tooMany {
		return Aggregates{}, &nodus.Error{Code: nodus.EINVALID, Message: "too many groups", Fields: map[string]string{
			"group_by": fmt.Sprintf("more than %d groups: narrow the range or group by less", MaxAggregateGroups)}}
	}
	if err != nil {
		return Aggregates{}, fmt.Errorf("tracing: aggregates: %w", err)
	}
	rows := make([]*Rollup, 0, len(groups))
	for _, g := range groups {
		rows = append(rows, g)
	}
	slices.SortFunc(rows, func(a, b *Rollup) int {
		switch q.OrderBy {
		case OrderCost:
			if c := cmp.Compare(b.Cost, a.Cost); c != 0 {
				return c
			}
		case OrderRequests:
			if c := cmp.Compare(b.Requests, a.Requests); c != 0 {
				return c
			}
		}
		return compareKeys(a, b)
	})
	out := Aggregates{From: q.From, To: q.To, GroupBy: q.GroupBy, OrderBy: q.OrderBy, Groups: len(rows),
		Rows: make([]Aggregate, 0, min(len(rows), q.Limit)), Totals: aggregateOf(&total)}
	for _, r := range rows[:min(len(rows), q.Limit)] {
		out.Rows = append(out.Rows, aggregateOf(r))
	}
	return out, nil
}

// rollupScan is one read of an aggregate: a grain's rows from one day to
// another, or from one month to another.
type rollupScan struct {
	grain    string
	months   bool
	from, to time.Time
}

// rollupScans plans the reads of an aggregate at grain over the days from
// to to. Grouped by day, it reads the days. Otherwise each month the range
// covers whole is read from its month rows unless it is marked (its rows
// may not add up to its days), and every other day from the day rows:
// a year is a dozen months and the days at either end.
func (s *Service) rollupScans(ctx context.Context, grain string, from, to time.Time, byDay bool) ([]rollupScan, error) {
	first := MonthOf(from)
	if !first.Equal(from) {
		first = first.AddDate(0, 1, 0)
	}
	end := MonthOf(to.AddDate(0, 0, 1)) // the first month after the last one covered whole
	if byDay || !first.Before(end) {
		return []rollupScan{{grain: grain, from: from, to: to}}, nil
	}
	marked, err := s.store.DirtyRollupMonths(ctx, first, end.AddDate(0, -1, 0))
	if err != nil {
		return nil, err
	}
	dirty := make(map[time.Time]bool, len(marked))
	for _, m := range marked {
		dirty[MonthOf(m)] = true
	}
	var scans []rollupScan
	days := from // the first day not yet read
	for m := first; m.Before(end); m = m.AddDate(0, 1, 0) {
		if dirty[m] {
			continue // read with the days around it
		}
		if days.Before(m) {
			scans = append(scans, rollupScan{grain: grain, from: days, to: m.AddDate(0, 0, -1)})
		}
		if n := len(scans); n > 0 && scans[n-1].months && scans[n-1].to.AddDate(0, 1, 0).Equal(m) {
			scans[n-1].to = m
		} else {
			scans = append(scans, rollupScan{grain: grain, months: true, from: m, to: m})
		}
		days = m.AddDate(0, 1, 0)
	}
	if !days.After(to) {
		scans = append(scans, rollupScan{grain: grain, from: days, to: to})
	}
	return scans, nil
}

// errStopScan ends a ScanRollups early.
var errStopScan = errors.New("tracing: scan stopped")
