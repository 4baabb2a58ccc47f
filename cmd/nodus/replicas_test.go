package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nodus-os/nodus/internal/gateway/gatewaytest"
	"github.com/nodus-os/nodus/internal/httpapi"
	"github.com/nodus-os/nodus/internal/store/storetest"
)

// TestTwoReplicas runs two `nodus serve` on one PostgreSQL and one data
// directory, as two replicas behind a load balancer, and drives both: a
// session opened on one is valid on the other and its logout ends it
// everywhere; a key's budget and rate limit configured through one hold
// across both under concurrent calls (never overspent, never exceeded); a
// document uploaded to one is ingested by the shared job queue and seen
// completed by the other. Sharing budgets and limits needs the gateway
// database to be shared, which SQLite's single writer does not offer
// between processes: PostgreSQL only.
func TestTwoReplicas(t *testing.T) {
	vars := nodusEnv(t, storetest.PostgresURL(t))
	vars["NODUS_ADMIN_PASSWORD"] = "the administrator's password"
	vars["NODUS_JOB_POLL_INTERVAL"] = "100ms"
	fake := gatewaytest.NewUpstream(gatewaytest.Script{APIKey: "sk-replicas-provider"})
	t.Cleanup(fake.Close)
	a := startNodus(t, vars)
	b := startNodus(t, vars)

	// Sessions: signed in on A, the cookie and the token work on B.
	resp, body := call(t, "POST", a.base+"/api/v1/auth/login", jsonBody(map[string]string{"login": "admin", "password": vars["NODUS_ADMIN_PASSWORD"]}))
	var me struct {
		CSRFToken string `json:"csrf_token"`
	}
	if resp.StatusCode != 200 || json.Unmarshal(body, &me) != nil || me.CSRFToken == "" {
		t.Fatalf("sign in on A: %d %s", resp.StatusCode, body)
	}
	var cookie string
	for _, c := range resp.Cookies() {
		if c.Name == httpapi.SessionCookie {
			cookie = httpapi.SessionCookie + "=" + c.Value
		}
	}
	if resp, body := call(t, "GET", b.base+"/api/v1/me", nil, withHeader("Cookie", cookie)); resp.StatusCode != 200 {
		t.Fatalf("A's session cookie on B: %d %s", resp.StatusCode, body)
	}
	adminA := signIn(t, a.base, "admin", vars["NODUS_ADMIN_PASSWORD"])
	adminB := &client{t: t, base: b.base, token: adminA.token, user: adminA.user}
	adminB.must("GET", "/api/v1/me", nil, 200, nil)

	// A tenant with a gateway deployment on the fake, set up through A.
	var tenant struct{ Tenant struct{ ID string } }
	adminA.must("POST", "/api/v1/tenants", map[string]any{"name": "Replicas"}, 201, &tenant)
	adminA.must("POST", "/api/v1/users", map[string]any{"email": "r-admin@example.test", "username": "r-admin",
		"role": "org_admin", "tenant_id": tenant.Tenant.ID, "password": "r-admin's password"}, 201, nil)
	orgA := signIn(t, a.base, "r-admin", "r-admin's password")
	orgB := &client{t: t, base: b.base, token: orgA.token, user: orgA.user}
	u, _ := url.Parse(fake.URL)
	port := 0
	fmt.Sscan(u.Port(), &port)
	adminA.must("PUT", "/api/v1/egress/platform", map[string]any{
		"rules":              []map[string]any{{"host": "127.0.0.1", "port": port}},
		"address_exceptions": []map[string]any{{"ip": "127.0.0.1", "port": port}}}, 200, nil)
	orgA.must("PUT", "/api/v1/vault/secret", map[string]any{"environment": "prod", "path": "/llm",
		"key": "OPENAI_API_KEY", "value": "sk-replicas-provider"}, 200, nil)
	var handle struct{ Handle struct{ ID string } }
	orgA.must("POST", "/api/v1/vault/handles", map[string]any{"environment": "prod", "path": "/llm",
		"key": "OPENAI_API_KEY", "allowed_hosts": []string{"127.0.0.1"}, "purpose": "gateway.provider_key"}, 201, &handle)
	orgA.must("POST", "/api/v1/gateway/deployments", map[string]any{"model_name": "fake", "provider": "openai",
		"upstream_model": "gpt-4o", "base_url": fake.URL + "/v1", "api_key_handle": handle.Handle.ID, "timeout_seconds": 5}, 201, nil)
	newKey := func(in map[string]any) string {
		var key struct{ Key struct{ ID, Key string } }
		orgB.must("POST", "/api/v1/gateway/keys", in, 201, &key)
		return key.Key.Key
	}

	// chatAll sends n chat calls with key at once, alternating between the
	// replicas, and counts the answers by status.
	chatAll := func(key string, n int) map[int]int {
		var mu sync.Mutex
		got := map[int]int{}
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				base := []string{a.base, b.base}[i%2]
				resp, _ := call(t, "POST", base+"/v1/chat/completions", jsonBody(map[string]any{"model": "fake", "max_tokens": 50,
					"messages": []map[string]any{{"role": "user", "content": "Say hello"}}}), withBearer(key))
				mu.Lock()
				got[resp.StatusCode]++
				mu.Unlock()
			}()
		}
		wg.Wait()
		return got
	}

	// A key budget (created on B, which A learns of from the store) of
	// 5,000 µ$: about ten calls' worst case. 80 concurrent calls over
	// both replicas never overspend it.
	budgetKey := newKey(map[string]any{"name": "budgeted", "max_budget_micros": 5000})
	got := chatAll(budgetKey, 80)
	if got[200] == 0 || got[429] == 0 || got[200]+got[429] != 80 {
		t.Fatalf("budgeted key over two replicas: %v", got)
	}

	// An rpm limit of 7 holds across both.
	rpmKey := newKey(map[string]any{"name": "limited", "rpm": 7})
	before := fake.Served()
	got = chatAll(rpmKey, 40)
	if got[200] > 7 || got[200] == 0 || got[200]+got[429] != 40 {
		t.Errorf("rpm 7 over two replicas: %v", got)
	}
	if n := fake.Served() - before; n != int64(got[200]) {
		t.Errorf("rpm 7: the upstream saw %d calls for %d answers", n, got[200])
	}

	// Jobs: a document uploaded to B is ingested by whichever replica's
	// worker takes the job, and A reports it completed.
	onT := "?tenant_id=" + tenant.Tenant.ID
	var kb struct {
		KnowledgeBase struct{ ID string } `json:"knowledge_base"`
	}
	adminA.must("POST", "/api/v1/knowledge-bases"+onT, map[string]any{"name": "Shared"}, 201, &kb)
	docs := "/api/v1/knowledge-bases/" + kb.KnowledgeBase.ID + "/documents"
	status, body := adminB.upload(docs+onT, "replicas.md", "# Replicas\n\nTwo processes share one job queue.\n")
	var d documentAnswer
	if status != 201 || json.Unmarshal(body, &d) != nil {
		t.Fatalf("upload on B: %d %s", status, body)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		adminA.must("GET", docs+"/"+d.Document.ID+onT, nil, 200, &d)
		if d.Document.Status == "completed" {
			break
		}
		if d.Document.Status == "failed" || time.Now().After(deadline) {
			t.Fatalf("document uploaded on B, seen on A: %+v", d.Document)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Logging out on B ends the session on A too.
	if resp, body := call(t, "POST", b.base+"/api/v1/auth/logout", nil, withHeader("Cookie", cookie),
		withHeader("X-CSRF-Token", me.CSRFToken)); resp.StatusCode/100 != 2 {
		t.Fatalf("logout on B: %d %s", resp.StatusCode, body)
	}
	if resp, _ := call(t, "GET", a.base+"/api/v1/me", nil, withHeader("Cookie", cookie)); resp.StatusCode != 401 {
		t.Errorf("A after logging out on B: %d, want 401", resp.StatusCode)
	}

	// Both stop (writing their spend); then the store says what was spent.
	if err := a.stop(t); err != nil {
		t.Fatal(err)
	}
	if err := b.stop(t); err != nil {
		t.Fatal(err)
	}
	db, err := pgx.Connect(context.Background(), vars["DATABASE_URL"])
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(context.Background())
	// Every tenant's rows, with row-level security in force too.
	if _, err := db.Exec(context.Background(), "SELECT set_config('nodus.all_tenants', 'on', false)"); err != nil {
		t.Fatal(err)
	}
	var maxMicros, spend, logged int64
	if err := db.QueryRow(context.Background(), `SELECT b.max_micros, b.spend, (SELECT COALESCE(SUM(cost_micros), 0)
		FROM gateway_spend_logs s WHERE s.key_id = k.id) FROM gateway_keys k JOIN gateway_budgets b ON b.subject_id = k.id
		WHERE k.name = 'budgeted'`).Scan(&maxMicros, &spend, &logged); err != nil {
		t.Fatal(err)
	}
	if spend > maxMicros || spend != logged || spend == 0 {
		t.Errorf("the budgeted key spent %d (spend log %d) of %d", spend, logged, maxMicros)
	}
	var claims int
	if err := db.QueryRow(context.Background(), `SELECT COUNT(*) FROM gateway_quota_claims`).Scan(&claims); err != nil || claims != 0 {
		t.Errorf("claims left after both replicas stopped: %d %v", claims, err)
	}
}
