package main

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/store/storetest"
)

// This file tests the traces, gateway and memories pages and the
// conversation actions of the UI over a real `nodus serve`, on both
// databases: what each role may see and change, CSRF on every form, and
// stored XSS in trace names and inputs, key names and memory texts
// rendering inert.

var traceLink = regexp.MustCompile(`href="/traces/([0-9a-f]{32})"`)

// pageOK fetches a page that must answer 200 and render inert, and
// returns it.
func (b *browser) pageOK(path string) string {
	b.t.Helper()
	resp, body, took := b.get(path)
	if resp.StatusCode != 200 {
		b.t.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
	}
	assertInert(b.t, path, body)
	if len(body) > 150<<10 {
		b.t.Errorf("GET %s: %d bytes of HTML, over 150 KB", path, len(body))
	}
	b.t.Logf("GET %s: %d bytes of HTML in %v", path, len(body), took.Round(time.Microsecond))
	return body
}

// waitPage reloads a page until it holds all of want: what background
// writers (the trace recorder) add arrives a moment after the request.
func (b *browser) waitPage(path string, want ...string) string {
	b.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, body, _ := b.get(path)
		missing := ""
		for _, w := range want {
			if !strings.Contains(body, w) {
				missing = w
			}
		}
		if resp.StatusCode == 200 && missing == "" {
			assertInert(b.t, path, body)
			return body
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("GET %s: %d, still without %q:\n%s", path, resp.StatusCode, missing, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// payloadText is xssPayload as a page shows it: text, escaped.
const payloadText = "&lt;img src=x onerror=alert(1)&gt;"

func TestWebModulePages(t *testing.T) {
	storetest.RunURL(t, func(t *testing.T, databaseURL string) {
		w := newWebWorld(t, databaseURL)
		w.seed(t)
		b := newBrowser(t, w.in.base)
		csrf := b.signIn(w.orgLogin, w.orgPass)

		// Members of the tenant: a user and a viewer.
		w.org.must("POST", "/api/v1/users", map[string]any{"email": "mod-user@example.test", "username": "mod-user",
			"role": "user", "password": "mod-user-password-41"}, 201, nil)
		w.org.must("POST", "/api/v1/users", map[string]any{"email": "mod-viewer@example.test", "username": "mod-viewer",
			"role": "viewer", "password": "mod-viewer-password-52"}, 201, nil)
		userAPI := signIn(t, w.in.base, "mod-user", "mod-user-password-41")
		user := newBrowser(t, w.in.base)
		userCSRF := user.signIn("mod-user", "mod-user-password-41")
		viewer := newBrowser(t, w.in.base)
		viewerCSRF := viewer.signIn("mod-viewer", "mod-viewer-password-52")

		// ---- Traces: the seeded answer links to its trace, whose name
		// (the chatbot's) and input (the question) hold the payload.
		conv := b.pageOK("/chat/c/" + w.convID)
		m := traceLink.FindStringSubmatch(conv)
		if m == nil {
			t.Fatalf("the answer does not link to its trace:\n%s", conv)
		}
		tracePath := "/traces/" + m[1]
		trace := b.waitPage(tracePath, "chat turn", ">GENERATION<", `class="timing"`)
		for _, want := range []string{"<h1>chat Helpdesk " + payloadText, "How long do refunds take? " + payloadText, "retrieval"} {
			if !strings.Contains(trace, want) {
				t.Errorf("the trace page lacks %q", want)
			}
		}
		list := b.pageOK("/traces")
		if !strings.Contains(list, `href="`+tracePath+`"`) || !strings.Contains(list, "chat Helpdesk "+payloadText) {
			t.Errorf("the trace list does not show the turn:\n%s", list)
		}
		// The filters reach the store: the turn's generation is of
		// nodus/extractive, and nothing in it is an error.
		today := time.Now().UTC().Format(time.DateOnly)
		if body := b.pageOK("/traces?model=nodus%2Fextractive&from=" + today + "&to=" + today); !strings.Contains(body, `href="`+tracePath+`"`) {
			t.Error("the model and date filters lose the turn's trace")
		}
		if body := b.pageOK("/traces?level=ERROR"); strings.Contains(body, `href="`+tracePath+`"`) {
			t.Error("the level filter keeps a trace without errors")
		}
		if body := b.pageOK("/traces?name=no-such-trace"); !strings.Contains(body, "No trace matches these filters") {
			t.Error("a filter matching nothing does not say so")
		}
		if resp, body, _ := b.get("/traces?from=yesterday"); resp.StatusCode != 400 || !strings.Contains(body, `role="alert"`) {
			t.Errorf("a malformed date: %d", resp.StatusCode)
		}
		if resp, body, _ := b.get("/traces/0123456789abcdef0123456789abcdef"); resp.StatusCode != 404 || !strings.Contains(body, "reload this page") {
			t.Errorf("a trace not (yet) recorded: %d", resp.StatusCode)
		}
		// Every member reads the tenant's traces, viewers included; a
		// viewer may not score them.
		if body := viewer.pageOK(tracePath); strings.Contains(body, "Add score") {
			t.Error("a viewer is offered the score form")
		}
		if resp, _ := viewer.post(tracePath+"/scores", url.Values{"csrf": {viewerCSRF}, "name": {"x"}, "value": {"1"}}, viewer.base); resp.StatusCode != 403 {
			t.Errorf("a viewer scoring a trace: %d", resp.StatusCode)
		}
		// A member scores the trace and one of its steps: a number, then a
		// category; the payload stays text.
		genID := regexp.MustCompile(`<option value="([0-9a-f]+)">GENERATION`).FindStringSubmatch(trace)
		if genID == nil {
			t.Fatalf("the score form offers no step:\n%s", trace)
		}
		for _, sc := range []url.Values{
			{"name": {"correctness"}, "value": {"0.75"}, "comment": {"mostly " + xssPayload}},
			{"name": {"tone"}, "value": {"friendly"}, "observation_id": {genID[1]}},
		} {
			sc.Set("csrf", csrf)
			if resp, body := b.post(tracePath+"/scores", sc, b.base); resp.StatusCode != http.StatusSeeOther ||
				resp.Header.Get("Location") != tracePath+"#scores" {
				t.Fatalf("score %v: %d %s", sc, resp.StatusCode, body)
			}
		}
		scored := b.pageOK(tracePath)
		assertInert(t, "scored trace", scored)
		if !strings.Contains(scored, "<td>correctness</td><td>0.75</td><td>ANNOTATION</td><td>trace</td><td>mostly "+payloadText) ||
			!strings.Contains(scored, "<td>tone</td><td>friendly</td><td>ANNOTATION</td><td><a href=\"#o-"+genID[1]+"\">step</a>") {
			t.Errorf("the scores are not listed:\n%s", scored)
		}
		// Stored as the API would: a number numeric, a word categorical.
		var got struct {
			Scores []struct {
				Name     string `json:"name"`
				DataType string `json:"data_type"`
			} `json:"scores"`
		}
		w.org.must("GET", "/api/v1"+tracePath, nil, 200, &got)
		types := map[string]string{}
		for _, sc := range got.Scores {
			types[sc.Name] = sc.DataType
		}
		if types["correctness"] != "NUMERIC" || types["tone"] != "CATEGORICAL" {
			t.Errorf("stored scores %+v", got.Scores)
		}
		// A missing name is the form again, with what was typed.
		if resp, body := b.post(tracePath+"/scores", url.Values{"csrf": {csrf}, "value": {"3"}, "comment": {"keep me"}}, b.base); resp.StatusCode != 400 ||
			!strings.Contains(body, "keep me") || !strings.Contains(body, `role="alert"`) {
			t.Errorf("a score without a name: %d %s", resp.StatusCode, body)
		}
		if resp, _ := b.post("/traces/0123456789abcdef0123456789abcdef/scores", url.Values{"csrf": {csrf}, "name": {"x"}, "value": {"1"}}, b.base); resp.StatusCode != 404 {
			t.Errorf("scoring a trace that does not exist: %d", resp.StatusCode)
		}
		if !strings.Contains(b.pageOK("/"), `href="/traces"`) {
			t.Error("the dashboard does not link to the traces")
		}

		// ---- Gateway: an admin adds a deployment and a key named with
		// the payload; the key's secret is shown once, and works.
		if resp, _, _ := b.get("/gateway"); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/gateway/models" {
			t.Errorf("GET /gateway: %d %v", resp.StatusCode, resp.Header)
		}
		if body := b.pageOK("/gateway/models"); !strings.Contains(body, "No deployments yet") {
			t.Error("the models page has no empty state")
		}
		resp, body := b.post("/gateway/models", url.Values{"csrf": {csrf}, "model_name": {"team " + xssPayload}, "provider": {"openai"},
			"upstream_model": {"gpt-test"}, "base_url": {"http://127.0.0.1:9/v1"}, "weight": {"2"}, "rpm": {"60"}, "timeout_seconds": {"30"}}, b.base)
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("POST /gateway/models: %d %s", resp.StatusCode, body)
		}
		if resp, body := b.post("/gateway/models", url.Values{"csrf": {csrf}, "model_name": {"x"}, "provider": {"openai"},
			"upstream_model": {"y"}, "base_url": {"ftp://nope"}, "weight": {"many"}}, b.base); resp.StatusCode != 400 ||
			!strings.Contains(body, `value="ftp://nope"`) || !strings.Contains(body, "weight") {
			t.Errorf("a bad deployment: %d %s", resp.StatusCode, body)
		}
		models := b.pageOK("/gateway/models")
		if !strings.Contains(models, "team "+payloadText) || !strings.Contains(models, "gpt-test") {
			t.Errorf("the deployment is not listed:\n%s", models)
		}
		// Editing: the form comes filled in; a new base URL with the old
		// key handle is refused; the saved change is listed.
		depID := regexp.MustCompile(`href="/gateway/models\?edit=([^"#]+)#dep-form"`).FindStringSubmatch(models)
		if depID == nil {
			t.Fatalf("no edit link:\n%s", models)
		}
		edit := b.pageOK("/gateway/models?edit=" + depID[1])
		if !strings.Contains(edit, "Edit deployment") || !strings.Contains(edit, `value="gpt-test"`) ||
			!strings.Contains(edit, `action="/gateway/models/`+depID[1]+`"`) || !strings.Contains(edit, `name="active" checked`) {
			t.Errorf("the edit form:\n%s", edit)
		}
		assertInert(t, "deployment edit form", edit)
		save := url.Values{"csrf": {csrf}, "model_name": {"team " + xssPayload}, "provider": {"openai"}, "upstream_model": {"gpt-test-2"},
			"base_url": {"http://127.0.0.1:9/v1"}, "weight": {"3"}, "max_concurrency": {"4"}, "timeout_seconds": {"30"}}
		if resp, body := b.post("/gateway/models/"+depID[1], save, b.base); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("save the deployment: %d %s", resp.StatusCode, body)
		}
		var listedDeps struct {
			Deployments []struct {
				UpstreamModel  string `json:"upstream_model"`
				Weight         int    `json:"weight"`
				MaxConcurrency int    `json:"max_concurrency"`
				IsActive       bool   `json:"is_active"`
			} `json:"deployments"`
		}
		w.org.must("GET", "/api/v1/gateway/deployments", nil, 200, &listedDeps)
		if len(listedDeps.Deployments) != 1 || listedDeps.Deployments[0].UpstreamModel != "gpt-test-2" ||
			listedDeps.Deployments[0].Weight != 3 || listedDeps.Deployments[0].MaxConcurrency != 4 || listedDeps.Deployments[0].IsActive {
			t.Errorf("the saved deployment (the box unticked: inactive): %+v", listedDeps.Deployments)
		}
		save.Set("api_key_handle", "handle-1")
		save.Set("active", "on")
		if resp, body := b.post("/gateway/models/"+depID[1], save, b.base); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("save with a key handle: %d %s", resp.StatusCode, body)
		}
		save.Set("base_url", "http://127.0.0.1:10/v1")
		if resp, body := b.post("/gateway/models/"+depID[1], save, b.base); resp.StatusCode != 400 ||
			!strings.Contains(body, "must change when base_url changes") || !strings.Contains(body, `value="http://127.0.0.1:10/v1"`) {
			t.Errorf("a new base URL with the old key handle: %d %s", resp.StatusCode, body)
		}
		if resp, _ := b.post("/gateway/models/no-such-deployment", save, b.base); resp.StatusCode != 404 {
			t.Errorf("saving a deployment that does not exist: %d", resp.StatusCode)
		}
		if resp, _, _ := b.get("/gateway/models?edit=no-such-deployment"); resp.StatusCode != 404 {
			t.Errorf("editing a deployment that does not exist: %d", resp.StatusCode)
		}
		if resp, _ := user.post("/gateway/models/"+depID[1], save, user.base); resp.StatusCode != 403 {
			t.Errorf("a user saving a deployment: %d", resp.StatusCode)
		}
		// A user sees the model names, not the deployments.
		if body := user.pageOK("/gateway/models"); !strings.Contains(body, "team "+payloadText) || strings.Contains(body, "127.0.0.1:9") {
			t.Errorf("a user's models page:\n%s", body)
		}

		if body := b.pageOK("/gateway/keys"); !strings.Contains(body, "No keys yet") {
			t.Error("the keys page has no empty state")
		}
		resp, body = b.post("/gateway/keys", url.Values{"csrf": {csrf}, "name": {"ci " + xssPayload}, "models": {"nodus/extractive"},
			"max_budget": {"5"}, "budget_period": {"30d"}, "expires_days": {"30"}}, b.base)
		secret := regexp.MustCompile(`id="secret" class="mono" readonly value="(sk-nodus-[^"]+)"`).FindStringSubmatch(body)
		if resp.StatusCode != http.StatusCreated || secret == nil || resp.Header.Get("Cache-Control") != "no-store" {
			t.Fatalf("POST /gateway/keys: %d %v\n%s", resp.StatusCode, resp.Header, body)
		}
		assertInert(t, "key created", body)
		keys := b.pageOK("/gateway/keys")
		if strings.Contains(keys, secret[1]) || !strings.Contains(keys, "ci "+payloadText) {
			t.Errorf("the key list shows the secret, or not the key:\n%s", keys)
		}
		status, out := (&client{t: t, base: w.in.base, token: secret[1]}).do("GET", "/v1/models", nil)
		if status != 200 {
			t.Errorf("the shown secret does not authenticate: %d %s", status, out)
		}
		keyID := regexp.MustCompile(`<tr id="k-([^"]+)">`).FindStringSubmatch(keys)[1]
		var listed struct {
			Keys []struct{ ID, Status string } `json:"keys"`
		}
		keyStatus := func() string {
			w.org.must("GET", "/api/v1/gateway/keys", nil, 200, &listed)
			for _, k := range listed.Keys {
				if k.ID == keyID {
					return k.Status
				}
			}
			return "deleted"
		}
		for _, tc := range []struct{ blocked, want string }{{"true", "blocked"}, {"false", "active"}} {
			if resp, _ := b.post("/gateway/keys/"+keyID+"/status", url.Values{"csrf": {csrf}, "blocked": {tc.blocked}}, b.base); resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("block %s: %d", tc.blocked, resp.StatusCode)
			}
			if got := keyStatus(); got != tc.want {
				t.Errorf("after blocked=%s the key is %s", tc.blocked, got)
			}
		}

		// Rotation: the new secret is shown once; the old one keeps
		// working for the grace chosen, then not at all.
		rotate := func(grace string) string {
			t.Helper()
			resp, body := b.post("/gateway/keys/"+keyID+"/rotate", url.Values{"csrf": {csrf}, "grace_seconds": {grace}}, b.base)
			m := regexp.MustCompile(`id="secret" class="mono" readonly value="(sk-nodus-[^"]+)"`).FindStringSubmatch(body)
			if resp.StatusCode != 200 || m == nil || !strings.Contains(body, "rotated") || resp.Header.Get("Cache-Control") != "no-store" {
				t.Fatalf("rotate with grace %s: %d\n%s", grace, resp.StatusCode, body)
			}
			assertInert(t, "key rotated", body)
			return m[1]
		}
		authenticates := func(secret string) bool {
			status, _ := (&client{t: t, base: w.in.base, token: secret}).do("GET", "/v1/models", nil)
			return status == 200
		}
		second := rotate("3600")
		if !authenticates(second) || !authenticates(secret[1]) {
			t.Error("after a rotation with an hour's grace, the new or the old key does not authenticate")
		}
		if keys := b.pageOK("/gateway/keys"); !strings.Contains(keys, "old key until") || strings.Contains(keys, second) {
			t.Errorf("the key list after a rotation:\n%s", keys)
		}
		third := rotate("0")
		if !authenticates(third) || authenticates(second) || authenticates(secret[1]) {
			t.Error("after a rotation without grace, an old key still authenticates or the new one does not")
		}
		if resp, _ := b.post("/gateway/keys/"+keyID+"/rotate", url.Values{"csrf": {csrf}, "grace_seconds": {"999"}}, b.base); resp.StatusCode != 400 {
			t.Errorf("a grace not offered: %d", resp.StatusCode)
		}

		// A viewer may neither see nor create keys; a user sees only
		// their own and may not touch the admin's.
		for _, p := range []string{"/gateway/keys", "/gateway/spend", "/gateway/budgets"} {
			if resp, body, _ := viewer.get(p); resp.StatusCode != 403 || !strings.Contains(body, `class="lead"`) {
				t.Errorf("a viewer's GET %s: %d", p, resp.StatusCode)
			}
		}
		if resp, _ := viewer.post("/gateway/keys", url.Values{"csrf": {viewerCSRF}, "name": {"viewer key"}}, viewer.base); resp.StatusCode != 403 {
			t.Errorf("a viewer creating a key: %d", resp.StatusCode)
		}
		if body := user.pageOK("/gateway/keys"); strings.Contains(body, "ci "+payloadText) || strings.Contains(body, `name="user_id"`) {
			t.Error("a user sees the admin's key, or may name another owner")
		}
		if resp, _ := user.post("/gateway/keys/"+keyID+"/delete", url.Values{"csrf": {userCSRF}}, user.base); resp.StatusCode != 404 {
			t.Errorf("a user deleting the admin's key: %d", resp.StatusCode)
		}
		if resp, _ := user.post("/gateway/keys/"+keyID+"/rotate", url.Values{"csrf": {userCSRF}, "grace_seconds": {"0"}}, user.base); resp.StatusCode != 404 {
			t.Errorf("a user rotating the admin's key: %d", resp.StatusCode)
		}
		if resp, _ := user.post("/gateway/keys", url.Values{"csrf": {userCSRF}, "name": {"mine"}, "user_id": {w.org.user.ID}}, user.base); resp.StatusCode != 403 {
			t.Errorf("a user creating a key for another: %d", resp.StatusCode)
		}
		if resp, _, _ := user.get("/gateway/budgets"); resp.StatusCode != 403 {
			t.Errorf("a user's budgets page: %d", resp.StatusCode)
		}

		// Budgets: the tenant's and the key's (made with the key).
		resp, body = b.post("/gateway/budgets", url.Values{"csrf": {csrf}, "scope": {"tenant"}, "subject_id": {"ignored"},
			"max": {"100"}, "period": {"30d"}}, b.base)
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("PUT budget: %d %s", resp.StatusCode, body)
		}
		budgets := b.pageOK("/gateway/budgets")
		if !strings.Contains(budgets, "the whole tenant") || !strings.Contains(budgets, "$100.00") ||
			!strings.Contains(budgets, "ci "+payloadText) || !strings.Contains(budgets, "$5.00") {
			t.Errorf("the budgets page:\n%s", budgets)
		}
		if resp, body := b.post("/gateway/budgets", url.Values{"csrf": {csrf}, "scope": {"user"}, "max": {"ten"}}, b.base); resp.StatusCode != 400 ||
			!strings.Contains(body, "an amount in USD") {
			t.Errorf("a bad budget: %d", resp.StatusCode)
		}

		// Spend: the seeded answer's call, filtered, and its CSV export
		// through the API with the same session.
		spend := b.waitPage("/gateway/spend", "nodus/extractive")
		csv := regexp.MustCompile(`href="(/api/v1/spend\?[^"]+)" download`).FindStringSubmatch(spend)
		if csv == nil {
			t.Fatalf("no CSV link:\n%s", spend)
		}
		if body := b.pageOK("/gateway/spend?model=no-such-model"); !strings.Contains(body, "No calls match these filters") {
			t.Error("a spend filter matching nothing does not say so")
		}
		if body := b.pageOK("/gateway/spend?request=no-such-request"); !strings.Contains(body, "No calls match these filters") ||
			!strings.Contains(body, "client_request_id=no-such-request") {
			t.Error("the request id filter matches a call, or its CSV link drops it")
		}
		filtered := b.pageOK("/gateway/spend?from=" + today + "&to=" + today + "&model=nodus%2Fextractive")
		csv = regexp.MustCompile(`href="(/api/v1/spend\?[^"]+)" download`).FindStringSubmatch(filtered)
		resp, body, _ = b.get(strings.ReplaceAll(csv[1], "&amp;", "&"))
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") ||
			!strings.HasPrefix(body, "request_id,") || !strings.Contains(body, "nodus/extractive") {
			t.Errorf("the CSV export %s: %d %v\n%s", csv[1], resp.StatusCode, resp.Header, body)
		}
		if resp, _, _ := b.get("/gateway/spend?from=soon"); resp.StatusCode != 400 {
			t.Errorf("a malformed spend date: %d", resp.StatusCode)
		}

		// ---- Memories: the admin's own, with the payload, and a user's
		// of the same app the admin's page never shows.
		const app = "helpdesk-app"
		w.org.must("POST", "/api/v1/agent/apps/"+app+"/users/me/memories", map[string]any{"messages": []map[string]string{
			{"role": "user", "content": "I prefer tea " + xssPayload}}}, 200, nil)
		userAPI.must("POST", "/api/v1/agent/apps/"+app+"/users/me/memories", map[string]any{"messages": []map[string]string{
			{"role": "user", "content": "My cat is called Mochi"}}}, 200, nil)
		var theirs struct {
			Memories []struct{ ID string } `json:"memories"`
		}
		userAPI.must("GET", "/api/v1/agent/apps/"+app+"/users/me/memories", nil, 200, &theirs)
		if len(theirs.Memories) != 1 {
			t.Fatalf("the user's memories: %+v", theirs)
		}
		if body := b.pageOK("/agents/memories"); !strings.Contains(body, `name="app"`) {
			t.Error("the memories page offers no app")
		}
		mems := b.pageOK("/agents/memories?app=" + app)
		if !strings.Contains(mems, "I prefer tea "+payloadText) || strings.Contains(mems, "Mochi") {
			t.Errorf("the admin's memories page:\n%s", mems)
		}
		if body := user.pageOK("/agents/memories?app=" + app); !strings.Contains(body, "Mochi") || strings.Contains(body, "I prefer tea") {
			t.Error("a user's memories page shows another's memory, or not their own")
		}
		memID := regexp.MustCompile(`<li id="mem-([^"]+)">`).FindStringSubmatch(mems)[1]
		if resp, _ := b.post("/agents/memories/"+memID, url.Values{"csrf": {csrf}, "text": {"I prefer green tea"}}, b.base); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("edit a memory: %d", resp.StatusCode)
		}
		if body := b.pageOK("/agents/memories?app=" + app); !strings.Contains(body, "I prefer green tea") {
			t.Error("the edited memory is not shown")
		}
		if resp, body := b.post("/agents/memories/"+memID, url.Values{"csrf": {csrf}, "text": {"  "}}, b.base); resp.StatusCode != 400 ||
			!strings.Contains(body, `role="alert"`) {
			t.Errorf("an empty memory: %d", resp.StatusCode)
		}
		// Another's memory is not found, even for an admin: the page is
		// the viewer's own memories.
		for _, p := range []string{"/agents/memories/" + theirs.Memories[0].ID, "/agents/memories/" + theirs.Memories[0].ID + "/delete"} {
			if resp, _ := b.post(p, url.Values{"csrf": {csrf}, "text": {"hijacked"}}, b.base); resp.StatusCode != 404 {
				t.Errorf("POST %s on another's memory: %d", p, resp.StatusCode)
			}
		}
		userAPI.must("GET", "/api/v1/agent/apps/"+app+"/users/me/memories", nil, 200, &theirs)
		if len(theirs.Memories) != 1 {
			t.Error("another's memory was deleted")
		}
		if resp, _ := viewer.post("/agents/memories/"+memID+"/delete", url.Values{"csrf": {viewerCSRF}}, viewer.base); resp.StatusCode != 403 {
			t.Errorf("a viewer deleting a memory: %d", resp.StatusCode)
		}
		if resp, _ := b.post("/agents/memories/"+memID+"/delete", url.Values{"csrf": {csrf}}, b.base); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("delete a memory: %d", resp.StatusCode)
		}
		if body := b.pageOK("/agents/memories?app=" + app); !strings.Contains(body, "remembers nothing about you yet") {
			t.Error("the deleted memory is still listed")
		}

		// ---- Conversations: rename, archive, restore.
		if resp, _ := b.post("/chat/c/"+w.convID+"/update", url.Values{"csrf": {csrf}, "title": {"Refunds " + xssPayload}}, b.base); resp.StatusCode != http.StatusSeeOther ||
			resp.Header.Get("Location") != "/chat/c/"+w.convID {
			t.Fatalf("rename: %d %v", resp.StatusCode, resp.Header)
		}
		if body := b.pageOK("/chat"); !strings.Contains(body, "Refunds "+payloadText) {
			t.Error("the new title is not listed")
		}
		if resp, _ := b.post("/chat/c/"+w.convID+"/update", url.Values{"csrf": {csrf}, "title": {""}}, b.base); resp.StatusCode != 400 {
			t.Errorf("an empty title: %d", resp.StatusCode)
		}
		if resp, _ := b.post("/chat/c/"+w.convID+"/update", url.Values{"csrf": {csrf}, "archived": {"true"}, "next": {"/chat"}}, b.base); resp.StatusCode != http.StatusSeeOther ||
			resp.Header.Get("Location") != "/chat" {
			t.Fatalf("archive: %d %v", resp.StatusCode, resp.Header)
		}
		if body := b.pageOK("/chat"); strings.Contains(body, "/chat/c/"+w.convID+`"`) {
			t.Error("an archived conversation is still listed")
		}
		if body := b.pageOK("/chat?archived=1"); !strings.Contains(body, "/chat/c/"+w.convID) {
			t.Error("the archived conversation is not in the archive")
		}
		if body := b.pageOK("/chat/c/" + w.convID); !strings.Contains(body, "This conversation is archived") || strings.Contains(body, `id="ask"`) {
			t.Error("an archived conversation still takes questions")
		}
		if resp, _ := user.post("/chat/c/"+w.convID+"/update", url.Values{"csrf": {userCSRF}, "archived": {"false"}}, user.base); resp.StatusCode != 404 {
			t.Errorf("another user restoring the conversation: %d", resp.StatusCode)
		}
		if resp, _ := b.post("/chat/c/"+w.convID+"/update", url.Values{"csrf": {csrf}, "archived": {"false"}}, b.base); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("restore: %d", resp.StatusCode)
		}

		// ---- CSRF: every form of these pages refuses a post without the
		// token, or from another origin, before it changes anything.
		posts := []string{"/gateway/models", "/gateway/models/x/delete", "/gateway/keys", "/gateway/keys/" + keyID + "/status",
			"/gateway/keys/" + keyID + "/delete", "/gateway/budgets", "/gateway/budgets/x/delete", "/agents/memories/x",
			"/agents/memories/x/delete", "/chat/c/" + w.convID + "/update"}
		for _, p := range posts {
			form := url.Values{"name": {"csrf probe"}, "blocked": {"true"}, "archived": {"true"}, "title": {"csrf probe"}}
			if resp, _ := b.post(p, form, b.base); resp.StatusCode != 403 {
				t.Errorf("POST %s without a token: %d", p, resp.StatusCode)
			}
			form.Set("csrf", csrf)
			if resp, _ := b.post(p, form, "https://evil.test"); resp.StatusCode != 403 {
				t.Errorf("POST %s from another origin: %d", p, resp.StatusCode)
			}
		}
		if got := keyStatus(); got != "active" {
			t.Errorf("a refused form changed the key: %s", got)
		}
		if body := b.pageOK("/chat"); !strings.Contains(body, "Refunds "+payloadText) {
			t.Error("a refused form changed the conversation")
		}

		// Finally the key goes.
		if resp, _ := b.post("/gateway/keys/"+keyID+"/delete", url.Values{"csrf": {csrf}}, b.base); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("delete the key: %d", resp.StatusCode)
		}
		if got := keyStatus(); got != "deleted" {
			t.Errorf("the deleted key is %s", got)
		}
	})
}
