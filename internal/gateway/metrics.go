package gateway

import (
	"time"

	"github.com/nodus-os/nodus/internal/metrics"
)

// gatewayMetrics are the gateway's Prometheus series.
type gatewayMetrics struct {
	requests *metrics.CounterVec   // by model, status
	tokens   *metrics.CounterVec   // by model, kind (prompt, completion, cached)
	spend    *metrics.CounterVec   // micro-dollars by model
	duration *metrics.HistogramVec // whole call, by model
	ttft     *metrics.HistogramVec
	overhead *metrics.HistogramVec // the gateway's own time per HTTP call, by endpoint
	flushed  *metrics.CounterVec   // spend-log rows written, by result
	claims   *metrics.CounterVec   // store calls growing a replica's claims, by result
	dropped  *metrics.Counter
}

func newGatewayMetrics(reg *metrics.Registry, s *Service) *gatewayMetrics {
	m := &gatewayMetrics{
		requests: reg.Counter("nodus_gateway_requests_total", "Gateway calls, by public model and status.", "model", "status"),
		tokens:   reg.Counter("nodus_gateway_tokens_total", "Tokens billed by the gateway, by public model and kind.", "model", "kind"),
		spend:    reg.Counter("nodus_gateway_spend_micro_dollars_total", "Cost billed by the gateway in micro-dollars, by public model.", "model"),
		duration: reg.Histogram("nodus_gateway_request_duration_seconds", "Time from admission to the end of a gateway call, by public model.",
			metrics.DefBuckets, "model"),
		ttft: reg.Histogram("nodus_gateway_time_to_first_token_seconds", "Time to the first streamed content, by public model.",
			metrics.DefBuckets, "model"),
		overhead: reg.Histogram("nodus_gateway_overhead_seconds",
			"The gateway's own time in an HTTP call: from the request's arrival to its answer, less the time spent routing to and waiting on providers, by endpoint.",
			overheadBuckets, "endpoint"),
		flushed: reg.Counter("nodus_gateway_spend_rows_total", "Spend-log rows the writer tried to store, by result.", "result"),
		claims:  reg.Counter("nodus_gateway_quota_claims_total", "Times this replica asked the store for a larger part of a shared budget or rate limit, by result (granted, refused: the budget or limit is used up, error: the store failed).", "result"),
		dropped: reg.Counter("nodus_gateway_spend_rows_dropped_total", "Spend-log rows lost (buffer full past the deadline, or refused).").With(),
	}
	reg.GaugeFunc("nodus_gateway_budget_remaining_micro_dollars", "What each budget has left in its period, in micro-dollars.",
		[]string{"tenant", "scope", "subject"}, func() []metrics.Sample {
			// One pass over the ledger under its lock, not a lock per
			// budget.
			left := s.ledger.Left()
			out := make([]metrics.Sample, len(left))
			for i, b := range left {
				out[i] = metrics.Sample{LabelValues: []string{b.TenantID, b.Scope, b.SubjectID}, Value: float64(b.Micros)}
			}
			return out
		})
	reg.GaugeFunc("nodus_gateway_spend_buffered_rows", "Spend-log rows waiting to be written.", nil, func() []metrics.Sample {
		return []metrics.Sample{{Value: float64(s.spend.Buffered())}}
	})
	return m
}

// overheadBuckets resolve the tens of microseconds the gateway adds.
var overheadBuckets = []float64{25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3}

// observeOverhead records the gateway's own part of an HTTP call that
// reached a provider (info is nil when it was refused before).
func (s *Service) observeOverhead(endpoint string, c Caller, info *CallInfo) {
	if info == nil || c.received.IsZero() {
		return
	}
	if own := time.Since(c.received) - info.UpstreamTime; own >= 0 {
		s.m.overhead.With(endpoint).Observe(own.Seconds())
	}
}

// hookSpend counts the spend writer's flushes and drops.
func (m *gatewayMetrics) hookSpend(o *SpendWriterOptions) {
	onFlush, onDrop := o.OnFlush, o.OnDrop
	o.OnFlush = func(rows int, took time.Duration, err error) {
		result := "ok"
		if err != nil {
			result = "error"
		}
		m.flushed.With(result).Add(float64(rows))
		if onFlush != nil {
			onFlush(rows, took, err)
		}
	}
	o.OnDrop = func(n int) {
		m.dropped.Add(float64(n))
		if onDrop != nil {
			onDrop(n)
		}
	}
}

// observe records a finished call.
func (m *gatewayMetrics) observe(l *SpendLog, took time.Duration) {
	m.requests.With(l.Model, l.Status).Inc()
	if l.PromptTokens > 0 {
		m.tokens.With(l.Model, "prompt").Add(float64(l.PromptTokens))
	}
	if l.CompletionTokens > 0 {
		m.tokens.With(l.Model, "completion").Add(float64(l.CompletionTokens))
	}
	if l.CachedTokens > 0 {
		m.tokens.With(l.Model, "cached").Add(float64(l.CachedTokens))
	}
	if l.CostMicros > 0 {
		m.spend.With(l.Model).Add(float64(l.CostMicros))
	}
	m.duration.With(l.Model).Observe(took.Seconds())
	if l.TTFT > 0 {
		m.ttft.With(l.Model).Observe(l.TTFT.Seconds())
	}
}
