package tracing

import (
	"context"
	"encoding/json"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/nodus"
)

func TestLatencyBuckets(t *testing.T) {
	for _, tc := range []struct {
		ms   float64
		want int
	}{
		{-5, 0}, {0, 0}, {0.999, 0}, {math.NaN(), 0},
		{1, 1}, {math.Exp2(1.0/8) - 1e-9, 1}, {math.Exp2(1.0 / 8), 2},
		{2, 9}, {1000, 1 + int(math.Floor(8*math.Log2(1000)))},
		{math.Exp2(22) - 1, HistBuckets - 2}, {math.Exp2(22), HistBuckets - 1}, {1e12, HistBuckets - 1},
	} {
		if got := LatencyBucket(tc.ms); got != tc.want {
			t.Errorf("LatencyBucket(%v) = %d, want %d", tc.ms, got, tc.want)
		}
	}
	// A bucket's value lies inside it, so it maps back to the bucket.
	for i := range HistBuckets {
		if got := LatencyBucket(BucketValue(i)); got != i {
			t.Errorf("bucket %d: value %v falls in bucket %d", i, BucketValue(i), got)
		}
	}
}

// TestHistogramQuantiles: percentiles of a merged histogram are in the
// bucket of the exact nearest-rank percentile, however the latencies were
// split between histograms, and survive encoding.
func TestHistogramQuantiles(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 50 {
		n := 1 + rng.IntN(2000)
		values := make([]float64, n)
		parts := make([]Histogram, 1+rng.IntN(5))
		for i := range values {
			// Log-normal around 800 ms, with a few under a millisecond.
			values[i] = math.Exp(rng.NormFloat64()*2 + 6.7)
			parts[rng.IntN(len(parts))].Observe(values[i])
		}
		var merged Histogram
		for i := range parts {
			var decoded Histogram
			if err := decoded.AddEncoded(parts[i].String()); err != nil {
				t.Fatal(err)
			}
			merged.Merge(&decoded)
		}
		if merged.Count() != int64(n) {
			t.Fatalf("round %d: merged %d of %d", round, merged.Count(), n)
		}
		slices.Sort(values)
		for _, q := range []float64{0.01, 0.5, 0.95, 0.99, 1} {
			exact := values[int(math.Ceil(q*float64(n)))-1]
			got, ok := merged.Quantile(q)
			if !ok || LatencyBucket(got) != LatencyBucket(exact) {
				t.Fatalf("round %d: p%v = %v, exact %v", round, q*100, got, exact)
			}
		}
	}
	var empty Histogram
	if _, ok := empty.Quantile(0.5); ok || empty.String() != "" {
		t.Error("an empty histogram has a percentile")
	}
	// The window grows downwards as well as upwards.
	var h Histogram
	for _, i := range []int{50, 40, 60, 40} {
		h.Add(i, 1)
	}
	if got := h.String(); got != "40:2,50:1,60:1" {
		t.Errorf("encoded %q", got)
	}
	for _, bad := range []string{"1", "x:1", "1:x", "-1:1", "178:1", "5:-1", "1:2,,3:4"} {
		var h Histogram
		if err := h.AddEncoded(bad); err == nil {
			t.Errorf("AddEncoded(%q) accepted", bad)
		}
	}
}

func TestTokensAndCost(t *testing.T) {
	for _, tc := range []struct {
		usage                map[string]int64
		input, output, total int64
	}{
		{nil, 0, 0, 0},
		{map[string]int64{"input": 12, "output": 3}, 12, 3, 15},
		{map[string]int64{"input": 12, "output": 3, "total": 20}, 12, 3, 20},
		{map[string]int64{"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}, 7, 2, 9},
		{map[string]int64{"input_tokens": 7, "output_tokens": 2, "cached_tokens": 5}, 7, 2, 9},
		// Langfuse's keys win over OpenAI's.
		{map[string]int64{"input": 1, "prompt_tokens": 100, "output": 2, "completion_tokens": 200}, 1, 2, 3},
	} {
		in, out, total := Tokens(tc.usage)
		if in != tc.input || out != tc.output || total != tc.total {
			t.Errorf("Tokens(%v) = %d, %d, %d; want %d, %d, %d", tc.usage, in, out, total, tc.input, tc.output, tc.total)
		}
	}
	for _, tc := range []struct {
		cost map[string]float64
		want float64
	}{
		{nil, 0},
		{map[string]float64{"total": 0.5, "input": 7}, 0.5},
		{map[string]float64{"input": 0.25, "output": 0.5, "cache": 0.125}, 0.875},
	} {
		if got := Cost(tc.cost); got != tc.want {
			t.Errorf("Cost(%v) = %v, want %v", tc.cost, got, tc.want)
		}
	}
	for raw, want := range map[string]string{`{"chatbot_id":"cb-1","message_id":"m"}`: "cb-1", `{"chatbot_id":7}`: "",
		`{"other":"chatbot_id"}`: "", `not json "chatbot_id"`: "", ``: ""} {
		if got := ChatbotID(json.RawMessage(raw)); got != want {
			t.Errorf("ChatbotID(%s) = %q, want %q", raw, got, want)
		}
	}
}

// TestRollupGeneration: one generation's figures, latency and TTFT from
// its times, and a generation that never ended has neither.
func TestRollupGeneration(t *testing.T) {
	start := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	end, first := start.Add(1500*time.Millisecond), start.Add(300*time.Millisecond)
	d := NewPeriodRollup(start.Truncate(24 * time.Hour))
	d.Add(&Observation{Model: "m", StartTime: start, EndTime: &end, CompletionStartTime: &first, Level: LevelError,
		UsageDetails: map[string]int64{"input": 10, "output": 5}, CostDetails: map[string]float64{"total": 0.25}}, "u", "cb")
	d.Add(&Observation{Model: "m", StartTime: start, UsageDetails: map[string]int64{"input": 1}}, "u", "cb")
	d.Add(&Observation{Model: "m", StartTime: start}, "v", "")
	rows, models, users, chatbots := d.Rows(GrainFull), d.Rows(GrainModel), d.Rows(GrainUser), d.Rows(GrainChatbot)
	if len(rows) != 2 || len(models) != 1 || len(users) != 2 || len(chatbots) != 2 {
		t.Fatalf("%d rows, %d by model, %d by user, %d by chatbot", len(rows), len(models), len(users), len(chatbots))
	}
	// Each grain holds every generation once, keyed by its own dimensions.
	if u := users[0]; u.UserID != "u" || u.Model != "" || u.ChatbotID != "" || u.Requests != 2 || u.TotalTokens != 16 {
		t.Errorf("user row = %+v", *u)
	}
	if c := chatbots[1]; c.ChatbotID != "cb" || c.UserID != "" || c.Requests != 2 || c.Cost != 0.25 {
		t.Errorf("chatbot row = %+v", *c)
	}
	r := rows[0]
	if r.UserID != "u" || r.ChatbotID != "cb" || r.Requests != 2 || r.Errors != 1 || r.InputTokens != 11 ||
		r.OutputTokens != 5 || r.TotalTokens != 16 || r.Cost != 0.25 || r.LatencyCount != 1 || r.LatencySumMs != 1500 ||
		r.TTFTCount != 1 || r.TTFTSumMs != 300 || r.Latency.String() != "85:1" {
		t.Errorf("row = %+v", *r)
	}
	if m := models[0]; m.Requests != 3 || m.UserID != "" || m.TotalTokens != 16 || m.LatencyCount != 1 {
		t.Errorf("model row = %+v", *m)
	}
}

func TestGrainFor(t *testing.T) {
	for _, tc := range []struct {
		model, user, chatbot bool
		want                 string
	}{
		{false, false, false, GrainModel}, {true, false, false, GrainModel}, {false, true, false, GrainUser},
		{false, false, true, GrainChatbot}, {true, true, false, GrainFull}, {false, true, true, GrainFull},
		{true, false, true, GrainFull},
	} {
		if got := grainFor(tc.model, tc.user, tc.chatbot); got != tc.want {
			t.Errorf("grainFor(%v, %v, %v) = %s, want %s", tc.model, tc.user, tc.chatbot, got, tc.want)
		}
	}
}

// TestAggregateQuery: defaults, and each bad parameter refused with its
// field.
func TestAggregateQuery(t *testing.T) {
	now := time.Date(2026, 11, 24, 15, 30, 0, 0, time.UTC)
	today := time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)
	q := AggregateQuery{GroupBy: []string{"model"}}
	if err := q.normalize(now); err != nil {
		t.Fatal(err)
	}
	if !q.To.Equal(today) || !q.From.Equal(today.AddDate(0, 0, -29)) || q.OrderBy != OrderCost ||
		q.Limit != DefaultAggregateLimit {
		t.Errorf("defaults: %+v", q)
	}
	q = AggregateQuery{GroupBy: []string{"model", "day"}}
	if err := q.normalize(now); err != nil || q.OrderBy != OrderKey {
		t.Errorf("a time series is ordered by %q, %v", q.OrderBy, err)
	}
	for name, tc := range map[string]struct {
		q     AggregateQuery
		field string
	}{
		"from after to": {AggregateQuery{From: today, To: today.AddDate(0, 0, -1)}, "from"},
		"401 days":      {AggregateQuery{From: today.AddDate(0, 0, -400), To: today}, "to"},
		"unknown group": {AggregateQuery{GroupBy: []string{"tenant"}}, "group_by"},
		"twice":         {AggregateQuery{GroupBy: []string{"day", "day"}}, "group_by"},
		"order":         {AggregateQuery{OrderBy: "latency"}, "order_by"},
		"limit":         {AggregateQuery{Limit: MaxAggregateLimit + 1}, "limit"},
		"negative":      {AggregateQuery{Limit: -1}, "limit"},
	} {
		err := tc.q.normalize(now)
		if nodus.ErrorCode(err) != nodus.EINVALID || nodus.ErrorFields(err)[tc.field] == "" {
			t.Errorf("%s: %v, want EINVALID on %s", name, err, tc.field)
		}
	}
	q = AggregateQuery{From: today.AddDate(0, 0, -399), To: today}
	if err := q.normalize(now); err != nil {
		t.Errorf("400 days refused: %v", err)
	}
	if !reflect.DeepEqual(q.GroupBy, []string(nil)) {
		t.Errorf("group by %v", q.GroupBy)
	}
}

// markedMonths is a store whose only part is the months marked dirty.
type markedMonths struct {
	Store
	marked []time.Time
	asked  int
}

func (m *markedMonths) DirtyRollupMonths(_ context.Context, from, to time.Time) ([]time.Time, error) {
	m.asked++
	var out []time.Time
	for _, t := range m.marked {
		if !t.Before(from) && !t.After(to) {
			out = append(out, t)
		}
	}
	return out, nil
}

// TestRollupScans: an aggregate not grouped by day reads each month it
// covers whole from the month rows unless the month is marked, and every
// other day from the day rows, each day once.
func TestRollupScans(t *testing.T) {
	d := func(y int, m time.Month, day int) time.Time { return time.Date(y, m, day, 0, 0, 0, 0, time.UTC) }
	days := func(from, to time.Time) rollupScan { return rollupScan{grain: GrainModel, from: from, to: to} }
	months := func(from, to time.Time) rollupScan {
		return rollupScan{grain: GrainModel, months: true, from: from, to: to}
	}
	for _, tc := range []struct {
		name     string
		from, to time.Time
		byDay    bool
		marked   []time.Time
		want     []rollupScan
		asks     bool
	}{
		{name: "by day", from: d(2025, 11, 25), to: d(2026, 11, 24), byDay: true,
			want: []rollupScan{days(d(2025, 11, 25), d(2026, 11, 24))}},
		{name: "inside a month", from: d(2026, 11, 3), to: d(2026, 11, 20),
			want: []rollupScan{days(d(2026, 11, 3), d(2026, 11, 20))}},
		{name: "across a month's end", from: d(2026, 10, 3), to: d(2026, 11, 20),
			want: []rollupScan{days(d(2026, 10, 3), d(2026, 11, 20))}},
		{name: "one month whole", from: d(2026, 2, 1), to: d(2026, 2, 28), asks: true,
			want: []rollupScan{months(d(2026, 2, 1), d(2026, 2, 1))}},
		{name: "a year", from: d(2025, 11, 25), to: d(2026, 11, 24), asks: true,
			want: []rollupScan{days(d(2025, 11, 25), d(2025, 11, 30)), months(d(2025, 12, 1), d(2026, 10, 1)),
				days(d(2026, 11, 1), d(2026, 11, 24))}},
		{name: "a marked month in the middle", from: d(2025, 11, 25), to: d(2026, 11, 24), asks: true,
			marked: []time.Time{d(2026, 3, 1), d(2026, 11, 1), d(2025, 11, 1)},
			want: []rollupScan{days(d(2025, 11, 25), d(2025, 11, 30)), months(d(2025, 12, 1), d(2026, 2, 1)),
				days(d(2026, 3, 1), d(2026, 3, 31)), months(d(2026, 4, 1), d(2026, 10, 1)),
				days(d(2026, 11, 1), d(2026, 11, 24))}},
		{name: "marked at both ends", from: d(2026, 1, 1), to: d(2026, 4, 30), asks: true,
			marked: []time.Time{d(2026, 1, 1), d(2026, 4, 1)},
			want: []rollupScan{days(d(2026, 1, 1), d(2026, 1, 31)), months(d(2026, 2, 1), d(2026, 3, 1)),
				days(d(2026, 4, 1), d(2026, 4, 30))}},
		{name: "every month marked", from: d(2026, 1, 1), to: d(2026, 3, 31), asks: true,
			marked: []time.Time{d(2026, 1, 1), d(2026, 2, 1), d(2026, 3, 1)},
			want:   []rollupScan{days(d(2026, 1, 1), d(2026, 3, 31))}},
		{name: "a leap February", from: d(2028, 2, 1), to: d(2028, 3, 1), asks: true,
			want: []rollupScan{months(d(2028, 2, 1), d(2028, 2, 1)), days(d(2028, 3, 1), d(2028, 3, 1))}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := &markedMonths{marked: tc.marked}
			s := &Service{store: st}
			got, err := s.rollupScans(context.Background(), GrainModel, tc.from, tc.to, tc.byDay)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("scans\n%v\nwant\n%v", got, tc.want)
			}
			if (st.asked > 0) != tc.asks {
				t.Errorf("asked for the marked months %d times", st.asked)
			}
		})
	}
}
