package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/audit"
	"github.com/nodus-os/nodus/internal/identity"
	"github.com/nodus-os/nodus/internal/metrics"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
	"github.com/nodus-os/nodus/internal/tracing"
)

// publicFixture is the API over a real store with tracing served: tenants
// A and B, each with a Langfuse key pair, and an API token of A's viewer
// for Nodus's own routes.
type publicFixture struct {
	ts           *httptest.Server
	a, b         string    // tenant ids
	keyA, keyB   [2]string // public, secret
	viewer, bAdm string    // tokens
}

func newPublicFixture(t *testing.T, db *store.DB) *publicFixture {
	t.Helper()
	ctx := context.Background()
	for _, set := range []string{store.SetAuth, store.SetMain, store.SetTracing} {
		m, err := store.NewMigrator(set, db)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.Up(ctx); err != nil {
			t.Fatal(err)
		}
	}
	clock := nodus.SystemClock{}
	aud := audit.NewService(db, clock)
	ids := identity.NewService(db, identity.NewHasher(identity.Params{Memory: 1024, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}, 0),
		identity.NewThrottle(20, 100, 15*time.Minute), aud, clock)
	root, _, err := ids.Bootstrap(ctx, "root@example.test", "a long enough password")
	if err != nil {
		t.Fatal(err)
	}
	all := nodus.WithAllTenants(ctx)
	svc, err := tracing.NewService(tracing.Config{Store: db})
	if err != nil {
		t.Fatal(err)
	}
	f := &publicFixture{}
	for _, m := range []struct {
		name   string
		tenant *string
		key    *[2]string
		token  *string
		role   identity.Role
	}{{"Tenant A", &f.a, &f.keyA, &f.viewer, identity.RoleViewer}, {"Tenant B", &f.b, &f.keyB, &f.bAdm, identity.RoleOrgAdmin}} {
		tn := &identity.Tenant{Name: m.name, IsActive: true}
		if err := ids.CreateTenant(all, identity.Actor{User: root}, tn); err != nil {
			t.Fatal(err)
		}
		*m.tenant = tn.ID
		k, secret, err := svc.CreateKey(ctx, tn.ID, "sdk", root.ID)
		if err != nil {
			t.Fatal(err)
		}
		*m.key = [2]string{k.PublicKey, secret}
		u := &identity.User{Email: tn.ID + "@example.test", Username: "member-" + tn.ID[len(tn.ID)-8:], Role: m.role,
			TenantID: tn.ID, IsActive: true}
		if err := ids.CreateUser(all, u, "a long enough password", audit.Entry{ActorKind: "system"}); err != nil {
			t.Fatal(err)
		}
		if _, *m.token, err = ids.CreateToken(all, u, "test", "", 0, identity.Client{}); err != nil {
			t.Fatal(err)
		}
	}
	s := NewServer(Deps{
		Logger:   slog.New(slog.DiscardHandler),
		Metrics:  metrics.NewRegistry(),
		Ready:    func(context.Context) Readiness { return Readiness{Ready: true} },
		Identity: ids,
		Audit:    aud,
		Tracing:  svc,
		Version:  "test",
	}, Config{})
	f.ts = serve(t, s)
	return f
}

// lf calls the public API with a key pair (nil: none) and decodes a JSON
// answer into into.
func (f *publicFixture) lf(t *testing.T, key *[2]string, method, path string, body any, want int, into any) http.Header {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, f.ts.URL+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != nil {
		req.SetBasicAuth(key[0], key[1])
	}
	res, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	out, _ := io.ReadAll(res.Body)
	if res.StatusCode != want {
		t.Fatalf("%s %s: %d %s, want %d", method, path, res.StatusCode, out, want)
	}
	if want >= 400 {
		var e struct{ Message string }
		if err := json.Unmarshal(out, &e); err != nil || e.Message == "" {
			t.Errorf("%s %s: error %s is not Langfuse's {\"message\": …}", method, path, out)
		}
	}
	if into != nil {
		if err := json.Unmarshal(out, into); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, path, out, err)
		}
	}
	return res.Header
}

// bearer calls Nodus's own API with a token.
func (f *publicFixture) bearer(t *testing.T, token, path string, want int, into any) {
	t.Helper()
	req, _ := http.NewRequest("GET", f.ts.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	out, _ := io.ReadAll(res.Body)
	if res.StatusCode != want {
		t.Fatalf("GET %s: %d %s, want %d", path, res.StatusCode, out, want)
	}
	if into != nil {
		if err := json.Unmarshal(out, into); err != nil {
			t.Fatalf("GET %s: decode %s: %v", path, out, err)
		}
	}
}

// sdkBatch is what a Langfuse SDK sends for three traces of a chat app:
// two turns of session s-1 (users u-1 and u-2) and one of s-2 in dev, the
// first with a span, a generation under it, an event and a score.
func sdkBatch() []map[string]any {
	ev := func(id, typ, ts string, body map[string]any) map[string]any {
		return map[string]any{"id": id, "type": typ, "timestamp": ts, "body": body}
	}
	return []map[string]any{
		ev("e1", "trace-create", "2026-11-01T10:00:00.000Z", map[string]any{"id": "tr-1", "name": "chat", "userId": "u-1",
			"sessionId": "s-1", "input": "hi", "tags": []string{"prod", "beta"}, "release": "r1", "version": "v1",
			"environment": "production", "metadata": map[string]any{"k": "v"}, "timestamp": "2026-11-01T10:00:00.000Z"}),
		ev("e2", "span-create", "2026-11-01T10:00:00.010Z", map[string]any{"id": "span-1", "traceId": "tr-1",
			"name": "retrieve", "startTime": "2026-11-01T10:00:00.000Z", "endTime": "2026-11-01T10:00:00.050Z"}),
		ev("e3", "generation-create", "2026-11-01T10:00:00.100Z", map[string]any{"id": "gen-1", "traceId": "tr-1",
			"parentObservationId": "span-1", "name": "llm", "model": "gpt-4o", "modelParameters": map[string]any{"temperature": 0.2},
			"startTime": "2026-11-01T10:00:00.100Z", "completionStartTime": "2026-11-01T10:00:00.400Z",
			"usageDetails": map[string]any{"input": 12, "output": 3}, "costDetails": map[string]any{"input": 0.25, "output": 0.5}}),
		ev("e4", "generation-update", "2026-11-01T10:00:01.200Z", map[string]any{"id": "gen-1", "traceId": "tr-1",
			"endTime": "2026-11-01T10:00:01.100Z", "output": "hello"}),
		ev("e5", "event-create", "2026-11-01T10:00:01.300Z", map[string]any{"id": "evt-1", "traceId": "tr-1",
			"name": "done", "startTime": "2026-11-01T10:00:01.300Z"}),
		ev("e6", "score-create", "2026-11-01T10:00:02.000Z", map[string]any{"id": "score-1", "traceId": "tr-1",
			"observationId": "gen-1", "name": "helpful", "value": 1}),
		ev("e7", "trace-create", "2026-11-01T10:05:00.000Z", map[string]any{"id": "tr-2", "name": "chat", "userId": "u-2",
			"sessionId": "s-1", "environment": "production", "timestamp": "2026-11-01T10:05:00.000Z"}),
		ev("e8", "score-create", "2026-11-01T10:05:01.000Z", map[string]any{"id": "score-2", "traceId": "tr-2",
			"name": "tone", "value": "friendly", "dataType": "CATEGORICAL"}),
		ev("e9", "trace-create", "2026-11-01T11:00:00.000Z", map[string]any{"id": "tr-3", "name": "embed", "userId": "u-1",
			"sessionId": "s-2", "environment": "dev", "timestamp": "2026-11-01T11:00:00.000Z"}),
		ev("e10", "span-create", "2026-11-01T11:00:00.000Z", map[string]any{"id": "span-3", "traceId": "tr-3",
			"name": "embed", "startTime": "2026-11-01T11:00:00.000Z"}),
	}
}

type lfPage struct {
	Data []map[string]any
	Meta struct {
		Page, Limit, TotalItems, TotalPages int
	}
}

func (p lfPage) ids() []string {
	out := make([]string, len(p.Data))
	for i, d := range p.Data {
		out[i], _ = d["id"].(string)
	}
	return out
}

func TestLangfusePublicAPI(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		f := newPublicFixture(t, db)
		f.lf(t, &f.keyA, "POST", "/api/public/ingestion", map[string]any{"batch": sdkBatch()}, 207, nil)
		f.lf(t, &f.keyB, "POST", "/api/public/ingestion", map[string]any{"batch": []map[string]any{
			{"id": "b1", "type": "trace-create", "body": map[string]any{"id": "tr-1", "name": "b-secret", "sessionId": "s-1", "userId": "u-1"}},
			{"id": "b2", "type": "trace-create", "body": map[string]any{"id": "b-only", "sessionId": "b-session"}},
			{"id": "b3", "type": "span-create", "body": map[string]any{"id": "b-span", "traceId": "b-only"}},
			{"id": "b4", "type": "score-create", "body": map[string]any{"id": "b-score", "traceId": "b-only", "name": "x", "value": 1}},
		}}, 207, nil)

		// The trace list: newest first, Langfuse's meta and fields.
		var page lfPage
		f.lf(t, &f.keyA, "GET", "/api/public/traces", nil, 200, &page)
		if !slices.Equal(page.ids(), []string{"tr-3", "tr-2", "tr-1"}) || page.Meta.Page != 1 || page.Meta.Limit != 50 ||
			page.Meta.TotalItems != 3 || page.Meta.TotalPages != 1 {
			t.Fatalf("traces = %v, meta %+v", page.ids(), page.Meta)
		}
		tr1 := page.Data[2]
		for _, k := range []string{"id", "timestamp", "name", "input", "output", "sessionId", "release", "version", "userId",
			"metadata", "tags", "public", "environment", "htmlPath", "latency", "totalCost", "observations", "scores", "projectId"} {
			if _, ok := tr1[k]; !ok {
				t.Errorf("a trace of the list has no %q: %v", k, tr1)
			}
		}
		if tr1["userId"] != "u-1" || tr1["sessionId"] != "s-1" || tr1["latency"] != 1.1 || tr1["totalCost"] != 0.75 ||
			tr1["projectId"] != f.a ||
			tr1["htmlPath"] != "/project/"+f.a+"/traces/tr-1" ||
			!reflect.DeepEqual(tr1["observations"], []any{"evt-1", "gen-1", "span-1"}) ||
			!reflect.DeepEqual(tr1["scores"], []any{"score-1"}) || !reflect.DeepEqual(tr1["tags"], []any{"beta", "prod"}) {
			t.Errorf("tr-1 in the list = %v", tr1)
		}
		if tr3 := page.Data[0]; tr3["latency"] != 0.0 || tr3["sessionId"] != "s-2" {
			t.Errorf("tr-3 in the list = %v", tr3)
		}

		for _, c := range []struct {
			query string
			want  []string
			total int
		}{
			{"limit=2&page=2", []string{"tr-1"}, 3},
			{"userId=u-1", []string{"tr-3", "tr-1"}, 2},
			{"sessionId=s-1&name=chat", []string{"tr-2", "tr-1"}, 2},
			{"tags=prod&tags=beta", []string{"tr-1"}, 1},
			{"fromTimestamp=2026-11-01T10:01:00Z&toTimestamp=2026-11-01T11:00:00%2B00:00", []string{"tr-2"}, 1},
			{"environment=dev", []string{"tr-3"}, 1},
			{"release=r1&version=v1", []string{"tr-1"}, 1},
			{"orderBy=timestamp.asc", []string{"tr-1", "tr-2", "tr-3"}, 3},
			{"orderBy=name.desc", []string{"tr-3", "tr-2", "tr-1"}, 3},
		} {
			var p lfPage
			f.lf(t, &f.keyA, "GET", "/api/public/traces?"+c.query, nil, 200, &p)
			if !slices.Equal(p.ids(), c.want) || p.Meta.TotalItems != c.total {
				t.Errorf("traces?%s = %v of %d, want %v of %d", c.query, p.ids(), p.Meta.TotalItems, c.want, c.total)
			}
		}
		f.lf(t, &f.keyA, "GET", "/api/public/traces?limit=2&page=2", nil, 200, &page)
		if page.Meta.Page != 2 || page.Meta.Limit != 2 || page.Meta.TotalPages != 2 {
			t.Errorf("meta of page 2 = %+v", page.Meta)
		}
		for _, bad := range []string{"limit=101", "limit=0", "page=0", "page=x", "orderBy=cost.desc", "orderBy=timestamp",
			"fromTimestamp=yesterday"} {
			f.lf(t, &f.keyA, "GET", "/api/public/traces?"+bad, nil, 400, nil)
		}

		// One trace: its observations flat by start time, its scores, the
		// generation's derived fields.
		var trace struct {
			ID, Name     string
			Latency      float64
			TotalCost    float64
			Observations []map[string]any
			Scores       []map[string]any
			HTMLPath     string `json:"htmlPath"`
			Truncated    bool   `json:"observationsTruncated"`
		}
		f.lf(t, &f.keyA, "GET", "/api/public/traces/tr-1", nil, 200, &trace)
		if trace.Name != "chat" || trace.Latency != 1.1 || trace.TotalCost != 0.75 || trace.Truncated || len(trace.Observations) != 3 || len(trace.Scores) != 1 {
			t.Fatalf("trace = %+v", trace)
		}
		var order []string
		for _, o := range trace.Observations {
			order = append(order, o["id"].(string))
		}
		if !slices.Equal(order, []string{"span-1", "gen-1", "evt-1"}) {
			t.Errorf("observation order = %v", order)
		}
		gen := trace.Observations[1]
		wantGen := map[string]any{"type": "GENERATION", "traceId": "tr-1", "parentObservationId": "span-1", "model": "gpt-4o",
			"modelParameters": map[string]any{"temperature": 0.2}, "output": "hello",
			"usageDetails": map[string]any{"input": 12.0, "output": 3.0}, "costDetails": map[string]any{"input": 0.25, "output": 0.5},
			"usage":               map[string]any{"input": 12.0, "output": 3.0, "total": 15.0, "unit": "TOKENS", "inputCost": 0.25, "outputCost": 0.5, "totalCost": 0.75},
			"calculatedTotalCost": 0.75, "calculatedInputCost": 0.25, "calculatedOutputCost": 0.5, "latency": 1.0,
			"timeToFirstToken": 0.3, "completionStartTime": "2026-11-01T10:00:00.4Z", "level": "DEFAULT", "promptName": nil}
		for k, want := range wantGen {
			if got := gen[k]; !reflect.DeepEqual(got, want) {
				t.Errorf("generation %s = %#v, want %#v", k, got, want)
			}
		}
		if sc := trace.Scores[0]; sc["name"] != "helpful" || sc["value"] != 1.0 || sc["observationId"] != "gen-1" ||
			sc["dataType"] != "NUMERIC" || sc["source"] != "API" {
			t.Errorf("score = %v", sc)
		}
		// B's key reads B's trace under the shared id; A's key never
		// reads B's.
		f.lf(t, &f.keyB, "GET", "/api/public/traces/tr-1", nil, 200, &trace)
		if trace.Name != "b-secret" {
			t.Errorf("B's tr-1 = %+v", trace)
		}
		f.lf(t, &f.keyA, "GET", "/api/public/traces/b-only", nil, 404, nil)

		// Credentials: none, a wrong secret, B's public key with A's secret.
		for _, key := range []*[2]string{nil, {f.keyA[0], "sk-lf-wrong"}, {f.keyB[0], f.keyA[1]}} {
			h := f.lf(t, key, "GET", "/api/public/traces", nil, 401, nil)
			if !strings.HasPrefix(h.Get("WWW-Authenticate"), "Basic") {
				t.Errorf("401 without WWW-Authenticate: Basic: %q", h.Get("WWW-Authenticate"))
			}
		}
		f.lf(t, nil, "GET", "/api/public/scores", nil, 401, nil)

		// Observations: filters and pages, and one by id.
		for _, c := range []struct {
			query string
			want  []string
			total int
		}{
			{"", []string{"span-3", "evt-1", "gen-1", "span-1"}, 4},
			{"limit=1&page=2", []string{"evt-1"}, 4},
			{"type=GENERATION", []string{"gen-1"}, 1},
			{"traceId=tr-1&name=retrieve", []string{"span-1"}, 1},
			{"parentObservationId=span-1", []string{"gen-1"}, 1},
			{"userId=u-1&fromStartTime=2026-11-01T10:00:01Z", []string{"span-3", "evt-1"}, 2},
			{"toStartTime=2026-11-01T10:00:00.100Z", []string{"span-1"}, 1},
			{"environment=dev", nil, 0},
		} {
			var p lfPage
			f.lf(t, &f.keyA, "GET", "/api/public/observations?"+c.query, nil, 200, &p)
			if !slices.Equal(p.ids(), c.want) || p.Meta.TotalItems != c.total {
				t.Errorf("observations?%s = %v of %d, want %v of %d", c.query, p.ids(), p.Meta.TotalItems, c.want, c.total)
			}
		}
		f.lf(t, &f.keyA, "GET", "/api/public/observations?type=THING", nil, 400, nil)
		f.lf(t, &f.keyA, "GET", "/api/public/observations?limit=1000", nil, 400, nil)
		var obs map[string]any
		f.lf(t, &f.keyA, "GET", "/api/public/observations/gen-1", nil, 200, &obs)
		if obs["id"] != "gen-1" || obs["model"] != "gpt-4o" || obs["calculatedTotalCost"] != 0.75 {
			t.Errorf("observation = %v", obs)
		}
		f.lf(t, &f.keyA, "GET", "/api/public/observations/b-span", nil, 404, nil)

		// Sessions: A's two, newest first; one with its traces; B's not.
		f.lf(t, &f.keyA, "GET", "/api/public/sessions", nil, 200, &page)
		if !slices.Equal(page.ids(), []string{"s-2", "s-1"}) || page.Meta.TotalItems != 2 ||
			page.Data[1]["createdAt"] != "2026-11-01T10:00:00Z" || page.Data[1]["projectId"] != f.a {
			t.Errorf("sessions = %v %+v", page.Data, page.Meta)
		}
		f.lf(t, &f.keyA, "GET", "/api/public/sessions?fromTimestamp=2026-11-01T10:30:00Z", nil, 200, &page)
		if !slices.Equal(page.ids(), []string{"s-2"}) {
			t.Errorf("sessions from 10:30 = %v", page.ids())
		}
		var sess struct {
			ID     string
			Traces []struct{ ID, Name string }
		}
		f.lf(t, &f.keyA, "GET", "/api/public/sessions/s-1", nil, 200, &sess)
		if sess.ID != "s-1" || len(sess.Traces) != 2 || sess.Traces[0].ID != "tr-1" || sess.Traces[1].ID != "tr-2" {
			t.Errorf("session = %+v", sess)
		}
		f.lf(t, &f.keyA, "GET", "/api/public/sessions/b-session", nil, 404, nil)
		f.lf(t, &f.keyA, "GET", "/api/public/sessions?page=-1", nil, 400, nil)

		// Scores: list (v1 and v2), filters, create, read, delete.
		for _, path := range []string{"/api/public/scores", "/api/public/v2/scores"} {
			f.lf(t, &f.keyA, "GET", path, nil, 200, &page)
			if !slices.Equal(page.ids(), []string{"score-2", "score-1"}) || page.Meta.TotalItems != 2 {
				t.Fatalf("%s = %v", path, page.Data)
			}
			if tone := page.Data[0]; tone["stringValue"] != "friendly" || tone["dataType"] != "CATEGORICAL" ||
				!reflect.DeepEqual(tone["trace"], map[string]any{"userId": "u-2", "tags": []any{}, "environment": "production"}) {
				t.Errorf("%s: categorical score = %v", path, tone)
			}
		}
		for _, c := range []struct {
			query string
			want  []string
		}{
			{"userId=u-1", []string{"score-1"}},
			{"name=tone", []string{"score-2"}},
			{"dataType=NUMERIC&source=API", []string{"score-1"}},
			{"traceId=tr-2", []string{"score-2"}},
			{"fromTimestamp=2026-11-01T10:05:00Z", []string{"score-2"}},
			{"source=ANNOTATION", nil},
		} {
			var p lfPage
			f.lf(t, &f.keyA, "GET", "/api/public/v2/scores?"+c.query, nil, 200, &p)
			if !slices.Equal(p.ids(), c.want) {
				t.Errorf("scores?%s = %v, want %v", c.query, p.ids(), c.want)
			}
		}
		f.lf(t, &f.keyA, "GET", "/api/public/scores?dataType=TEXT", nil, 400, nil)
		var created struct{ ID string }
		f.lf(t, &f.keyA, "POST", "/api/public/scores", map[string]any{"traceId": "tr-2", "name": "correct", "value": 1,
			"dataType": "BOOLEAN", "comment": "checked"}, 200, &created)
		var sc map[string]any
		f.lf(t, &f.keyA, "GET", "/api/public/scores/"+created.ID, nil, 200, &sc)
		if sc["stringValue"] != "True" || sc["value"] != 1.0 || sc["comment"] != "checked" || sc["source"] != "API" ||
			sc["traceId"] != "tr-2" || sc["observationId"] != nil {
			t.Errorf("created score = %v", sc)
		}
		// The client's own id, sent again, updates the same score.
		for _, v := range []any{0.5, 0.9} {
			f.lf(t, &f.keyA, "POST", "/api/public/scores", map[string]any{"id": "my-score", "traceId": "tr-1",
				"observationId": "gen-1", "name": "accuracy", "value": v}, 200, &created)
		}
		f.lf(t, &f.keyA, "GET", "/api/public/scores/my-score", nil, 200, &sc)
		if created.ID != "my-score" || sc["value"] != 0.9 || sc["observationId"] != "gen-1" {
			t.Errorf("updated score = %v", sc)
		}
		f.lf(t, &f.keyA, "POST", "/api/public/scores", map[string]any{"traceId": "b-only", "name": "x", "value": 1}, 404, nil)
		f.lf(t, &f.keyA, "POST", "/api/public/scores", map[string]any{"traceId": "tr-1", "observationId": "b-span",
			"name": "x", "value": 1}, 404, nil)
		f.lf(t, &f.keyA, "POST", "/api/public/scores", map[string]any{"traceId": "tr-1", "name": "x", "value": 2,
			"dataType": "BOOLEAN"}, 400, nil)
		f.lf(t, &f.keyA, "POST", "/api/public/scores", map[string]any{"traceId": "tr-1", "value": 1}, 400, nil)
		f.lf(t, &f.keyA, "GET", "/api/public/scores/b-score", nil, 404, nil)
		f.lf(t, &f.keyA, "DELETE", "/api/public/scores/b-score", nil, 404, nil)
		f.lf(t, &f.keyA, "DELETE", "/api/public/scores/"+created.ID, nil, 204, nil)
		f.lf(t, &f.keyA, "GET", "/api/public/scores/"+created.ID, nil, 404, nil)
		f.lf(t, &f.keyB, "GET", "/api/public/scores/b-score", nil, 200, nil)

		// Health needs no key; the project is the key's tenant.
		var health map[string]string
		f.lf(t, nil, "GET", "/api/public/health", nil, 200, &health)
		if !reflect.DeepEqual(health, map[string]string{"status": "OK", "version": "test"}) {
			t.Errorf("health = %v", health)
		}
		var projects struct {
			Data []struct{ ID, Name string }
		}
		f.lf(t, &f.keyA, "GET", "/api/public/projects", nil, 200, &projects)
		if len(projects.Data) != 1 || projects.Data[0].ID != f.a || projects.Data[0].Name != "Tenant A" {
			t.Errorf("projects = %+v", projects)
		}

		// Nodus's own views: sessions newest first with counts and users,
		// one session's traces, the users.
		var sessions struct {
			Sessions []struct {
				ID         string
				TraceCount int      `json:"trace_count"`
				UserIDs    []string `json:"user_ids"`
				TotalCost  float64  `json:"total_cost"`
			}
			NextCursor string `json:"next_cursor"`
		}
		f.bearer(t, f.viewer, "/api/v1/tracing/sessions?limit=1", 200, &sessions)
		if len(sessions.Sessions) != 1 || sessions.Sessions[0].ID != "s-2" || sessions.NextCursor == "" {
			t.Fatalf("sessions = %+v", sessions)
		}
		f.bearer(t, f.viewer, "/api/v1/tracing/sessions?limit=1&cursor="+sessions.NextCursor, 200, &sessions)
		if len(sessions.Sessions) != 1 || sessions.Sessions[0].ID != "s-1" || sessions.Sessions[0].TraceCount != 2 ||
			sessions.Sessions[0].TotalCost != 0.75 || !slices.Equal(sessions.Sessions[0].UserIDs, []string{"u-1", "u-2"}) || sessions.NextCursor != "" {
			t.Errorf("second page of sessions = %+v", sessions)
		}
		var one struct {
			Session struct {
				ID         string
				TraceCount int `json:"trace_count"`
			}
			Traces []struct{ ID string }
		}
		f.bearer(t, f.viewer, "/api/v1/tracing/sessions/s-1", 200, &one)
		if one.Session.TraceCount != 2 || len(one.Traces) != 2 || one.Traces[0].ID != "tr-2" {
			t.Errorf("session s-1 = %+v", one)
		}
		f.bearer(t, f.viewer, "/api/v1/tracing/sessions/b-session", 404, nil)
		f.bearer(t, f.viewer, "/api/v1/tracing/sessions?limit=101", 400, nil)
		var users struct {
			Users []struct {
				ID         string
				TraceCount int `json:"trace_count"`
			}
		}
		f.bearer(t, f.viewer, "/api/v1/tracing/users", 200, &users)
		if len(users.Users) != 2 || users.Users[0].ID != "u-1" || users.Users[0].TraceCount != 2 || users.Users[1].ID != "u-2" {
			t.Errorf("users = %+v", users)
		}
		f.bearer(t, f.bAdm, "/api/v1/tracing/users", 200, &users)
		if len(users.Users) != 1 || users.Users[0].TraceCount != 1 {
			t.Errorf("B's users = %+v", users)
		}

		// Deleting a trace: B's by A's key is not found; A's own goes, with
		// its session when it was the last.
		f.lf(t, &f.keyA, "DELETE", "/api/public/traces/b-only", nil, 404, nil)
		var deleted struct{ Message string }
		f.lf(t, &f.keyA, "DELETE", "/api/public/traces/tr-3", nil, 200, &deleted)
		if deleted.Message == "" {
			t.Error("delete answered no message")
		}
		f.lf(t, &f.keyA, "GET", "/api/public/traces/tr-3", nil, 404, nil)
		f.lf(t, &f.keyA, "GET", "/api/public/sessions/s-2", nil, 404, nil)
		f.lf(t, &f.keyB, "GET", "/api/public/traces/b-only", nil, 200, nil)
	})
}
