package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"
)

// target is one side of a comparison: the fake upstream directly, or
// Nodus in front of it. Each side has its own transport, so its
// keep-alive connections survive from one round to the next.
type target struct {
	name   string
	url    string // the /v1/chat/completions URL
	auth   string // the Authorization header
	client *http.Client
}

func newTarget(name, url, key string, conns int) *target {
	return &target{name: name, url: url, auth: "Bearer " + key, client: &http.Client{Transport: &http.Transport{
		MaxIdleConns:        0, // no limit but the per-host one
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     5 * time.Minute,
		DisableCompression:  true,
		WriteBufferSize:     4 << 10,
		ReadBufferSize:      8 << 10,
	}}}
}

// load is what each request sends.
type load struct {
	body   []byte
	stream bool
}

// caller sends one client's requests, reusing its request, its header map
// and its reader between calls, so the load generator (which shares the
// machine's cores with Nodus and the fake upstream) allocates little.
type caller struct {
	t   *target
	l   load
	req *http.Request
	br  *bufio.Reader
}

func newCaller(ctx context.Context, t *target, l load) *caller {
	req, _ := http.NewRequestWithContext(ctx, "POST", t.url, nil)
	req.Header = http.Header{"Authorization": {t.auth}, "Content-Type": {"application/json"}}
	req.ContentLength = int64(len(l.body))
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(l.body)), nil }
	return &caller{t: t, l: l, req: req, br: bufio.NewReaderSize(nil, 4<<10)}
}

var (
	dataPrefix  = []byte("data: ")
	doneEvent   = []byte("data: [DONE]")
	contentText = []byte(`"content":"`)
	usageField  = []byte(`"usage":{`)
)

// do sends one request and returns when the answer has been read to the
// end; ttft is the time to the first event carrying content text (0 for
// a non-streaming answer).
func (c *caller) do() (ttft time.Duration, err error) {
	c.req.Body = io.NopCloser(bytes.NewReader(c.l.body))
	start := time.Now()
	resp, err := c.t.client.Do(c.req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		return 0, fmt.Errorf("%d %s", resp.StatusCode, bytes.TrimSpace(b))
	}
	if !c.l.stream {
		_, err = io.Copy(io.Discard, resp.Body)
		return 0, err
	}
	c.br.Reset(resp.Body)
	done, usage := false, false
	for {
		line, err := c.br.ReadSlice('\n')
		if len(line) > 0 && bytes.HasPrefix(line, dataPrefix) {
			switch {
			case bytes.HasPrefix(line, doneEvent):
				done = true
			case ttft == 0 && hasContent(line):
				ttft = time.Since(start)
			case !usage && bytes.Contains(line, usageField):
				usage = true
			}
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, err
		}
	}
	switch {
	case !done:
		return 0, errors.New("stream ended without [DONE]")
	case ttft == 0:
		return 0, errors.New("stream carried no content")
	case !usage:
		return 0, errors.New("stream carried no usage")
	}
	return ttft, nil
}

// hasContent reports whether an event's delta has non-empty content.
func hasContent(line []byte) bool {
	i := bytes.Index(line, contentText)
	return i >= 0 && i+len(contentText) < len(line) && line[i+len(contentText)] != '"'
}

// side is what one target measured in one cell.
type side struct {
	lat, ttft []time.Duration // sorted by finish()
	done      int             // requests completed within the measuring window
	window    time.Duration   // the measuring window's length
	errors    int
	firstErr  string
	dropped   int // open loop: arrivals no worker was free for
}

func (s *side) add(o side) {
	s.lat = append(s.lat, o.lat...)
	s.ttft = append(s.ttft, o.ttft...)
	s.done += o.done
	s.window += o.window
	s.errors += o.errors
	s.dropped += o.dropped
	if s.firstErr == "" {
		s.firstErr = o.firstErr
	}
}

func (s *side) finish() {
	slices.Sort(s.lat)
	slices.Sort(s.ttft)
}

// rate is requests completed per second of measuring window.
func (s *side) rate() float64 {
	if s.window <= 0 {
		return 0
	}
	return float64(s.done) / s.window.Seconds()
}

// pct is the p-th quantile of sorted samples, 0 without any.
func pct(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	return d[int(float64(len(d)-1)*p+0.5)]
}

// closedLoop runs clients that each send a request as soon as their
// previous one is answered, for d. Their starts are spread over stagger
// (the upstream's latency), so that they arrive evenly rather than in
// waves of all clients at once. The warm-up (a fifth of d, at least the
// stagger and a quarter, at most half of d) is not sampled: requests started in it are not
// timed, and throughput counts the completions after it.
func closedLoop(ctx context.Context, t *target, l load, clients int, d, stagger time.Duration) side {
	start := time.Now()
	warm, end := start.Add(min(max(d/5, stagger*5/4), d/2)), start.Add(d)
	var mu sync.Mutex
	var total side
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			c := newCaller(ctx, t, l)
			var my side
			time.Sleep(time.Duration(int64(stagger) * int64(i) / int64(clients)))
			for ctx.Err() == nil {
				began := time.Now()
				if !began.Before(end) {
					break
				}
				ttft, err := c.do()
				finished := time.Now()
				if err != nil {
					if ctx.Err() == nil {
						my.errors++
						if my.firstErr == "" {
							my.firstErr = err.Error()
						}
					}
					continue
				}
				if finished.After(warm) && finished.Before(end) {
					my.done++
				}
				if began.After(warm) {
					my.lat = append(my.lat, finished.Sub(began))
					if l.stream {
						my.ttft = append(my.ttft, ttft)
					}
				}
			}
			mu.Lock()
			total.add(my)
			mu.Unlock()
		})
	}
	wg.Wait()
	total.window = end.Sub(warm)
	return total
}

// openLoop sends requests at a fixed rate for d, whatever the answers, as
// independent users would. Latency is measured from when a request was
// due, not when it was sent, so a backlog counts (no coordinated
// omission). An arrival that finds every worker busy is dropped and
// counted: the rate is then beyond what the target serves.
func openLoop(ctx context.Context, t *target, l load, rate float64, d time.Duration, workers int) side {
	type job struct{ due time.Time }
	jobs := make(chan job, workers)
	start := time.Now()
	warm, end := start.Add(d/10), start.Add(d)
	var mu sync.Mutex
	var total side
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			c := newCaller(ctx, t, l)
			var my side
			for j := range jobs {
				_, err := c.do()
				finished := time.Now()
				if err != nil {
					if ctx.Err() == nil {
						my.errors++
						if my.firstErr == "" {
							my.firstErr = err.Error()
						}
					}
					continue
				}
				if j.due.After(warm) {
					my.done++
					my.lat = append(my.lat, finished.Sub(j.due))
				}
			}
			mu.Lock()
			total.add(my)
			mu.Unlock()
		})
	}
	interval := time.Duration(float64(time.Second) / rate)
	dropped := 0
	for i := 0; ctx.Err() == nil; i++ {
		due := start.Add(time.Duration(i) * interval)
		if !due.Before(end) {
			break
		}
		if wait := time.Until(due); wait > 0 {
			time.Sleep(wait)
		}
		select {
		case jobs <- job{due}:
		default:
			if due.After(warm) {
				dropped++
			}
		}
	}
	close(jobs)
	wg.Wait()
	total.dropped = dropped
	// Completions are counted by due time, so the window is the due
	// times' span after the warm-up.
	total.window = end.Sub(warm)
	return total
}
