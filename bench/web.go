package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"
)

// Targets from the web UI issue.
const (
	targetPageBytes = 150 << 10
	targetPageTime  = 50 * time.Millisecond
)

// runWeb starts nodus on SQLite, gives a tenant a knowledge base, a
// chatbot on nodus/extractive and -conversations conversations (one turn
// each, through the API, so the gateway's spend rollups fill too), then
// signs in through the login form and reads each page -requests times.
// It prints each page's HTML bytes, the bytes of the stylesheets and
// scripts it links (cached after the first page, but counted here as a
// first visit pays them), and the time to the last byte on loopback:
// the server's time plus the client's, an upper bound of the server's.
func runWeb(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench web", flag.ContinueOnError)
	fs.SetOutput(stderr)
	convs := fs.Int("conversations", 10000, "conversations in the tenant")
	requests := fs.Int("requests", 50, "reads of each page")
	if err := fs.Parse(args); err != nil {
		return err
	}
	tmp, bin, err := buildNodus()
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	port, err := freePort()
	if err != nil {
		return err
	}
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	const adminPassword = "bench admin password 123"
	cmd := exec.CommandContext(ctx, bin, "serve", "--addr", "127.0.0.1:"+strconv.Itoa(port), "--data-dir", filepath.Join(tmp, "data"),
		"--log-level", "warn")
	cmd.Env = append(os.Environ(), "NODUS_ADMIN_PASSWORD="+adminPassword)
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() }()
	if err := waitReady(base + "/ready"); err != nil {
		return err
	}

	api := &apiCaller{base: base}
	admin, err := api.signIn("admin", adminPassword)
	if err != nil {
		return err
	}
	var tenant struct{ Tenant struct{ ID string } }
	const login, password = "bench-admin", "bench org password 123"
	if err := api.do("POST", "/api/v1/tenants", admin, map[string]any{"name": "Bench"}, &tenant); err != nil {
		return err
	}
	if err := api.do("POST", "/api/v1/users", admin, map[string]any{"email": "bench@example.test", "username": login,
		"role": "org_admin", "tenant_id": tenant.Tenant.ID, "password": password}, nil); err != nil {
		return err
	}
	org, err := api.signIn(login, password)
	if err != nil {
		return err
	}
	var kb struct {
		KnowledgeBase struct{ ID string } `json:"knowledge_base"`
	}
	if err := api.do("POST", "/api/v1/knowledge-bases", org, map[string]any{"name": "Policies"}, &kb); err != nil {
		return err
	}
	if err := api.upload("/api/v1/knowledge-bases/"+kb.KnowledgeBase.ID+"/documents", org, "refunds.md",
		"# Refunds\n\nRefunds are issued within fourteen days of the return reaching our warehouse.\n"); err != nil {
		return err
	}
	var bot struct{ Chatbot struct{ ID string } }
	if err := api.do("POST", "/api/v1/chatbots", org, map[string]any{"name": "Helpdesk", "model_name": "nodus/extractive",
		"knowledge_bases": []string{kb.KnowledgeBase.ID}}, &bot); err != nil {
		return err
	}
	began := time.Now()
	lastConv, err := api.seedConversations(ctx, org, bot.Chatbot.ID, *convs)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "seeded %d conversations in %v\n\n", *convs, time.Since(began).Round(time.Second))

	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar}
	page, err := getBody(browser, base+"/login")
	if err != nil {
		return err
	}
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(page)
	if m == nil {
		return fmt.Errorf("no CSRF field on the login page")
	}
	resp, err := browser.PostForm(base+"/login", url.Values{"csrf": {string(m[1])}, "login": {login}, "password": {password}})
	if err != nil {
		return err
	}
	resp.Body.Close()

	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "page\tHTML\tCSS+JS\ttotal\tp50\tp95\tmax\ttargets\t")
	linked := regexp.MustCompile(`(?:href|src)="(/static/[^"]+|/brand\.css[^"]*)"`)
	for _, p := range []struct{ name, path string }{
		{"dashboard", "/"}, {"conversations", "/chat"}, {"conversation", "/chat/c/" + lastConv},
		{"knowledge base", "/knowledge/" + kb.KnowledgeBase.ID}, {"chatbots", "/chatbots"},
	} {
		var times []time.Duration
		var body []byte
		for range *requests {
			start := time.Now()
			if body, err = getBody(browser, base+p.path); err != nil {
				return err
			}
			times = append(times, time.Since(start))
		}
		slices.Sort(times)
		assets := 0
		for _, a := range linked.FindAllSubmatch(body, -1) {
			b, err := getBody(browser, base+string(a[1]))
			if err != nil {
				return err
			}
			assets += len(b)
		}
		total := len(body) + assets
		met := "met"
		if total > targetPageBytes || pct(times, 0.95) > targetPageTime {
			met = "missed"
		}
		fmt.Fprintf(tw, "%s\t%d B\t%d B\t%d B\t%v\t%v\t%v\t%s\t\n", p.name, len(body), assets, total,
			pct(times, 0.5).Round(10*time.Microsecond), pct(times, 0.95).Round(10*time.Microsecond),
			times[len(times)-1].Round(10*time.Microsecond), met)
	}
	return tw.Flush()
}

func getBody(c *http.Client, u string) ([]byte, error) {
	resp, err := c.Get(u)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != 200 {
		err = fmt.Errorf("GET %s: %d", u, resp.StatusCode)
	}
	return b, err
}

// apiCaller calls the JSON API with API tokens.
type apiCaller struct{ base string }

func (a *apiCaller) do(method, path, token string, body, into any) error {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, a.base+path, r)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return a.send(req, into)
}

func (a *apiCaller) send(req *http.Request, into any) error {
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %d %s", req.Method, req.URL.Path, resp.StatusCode, b)
	}
	if into != nil {
		return json.Unmarshal(b, into)
	}
	return nil
}

// signIn signs in with a password and mints an API token with the session.
func (a *apiCaller) signIn(login, password string) (string, error) {
	body, _ := json.Marshal(map[string]string{"login": login, "password": password})
	resp, err := http.Post(a.base+"/api/v1/auth/login", "application/json", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	var me struct {
		CSRF string `json:"csrf_token"`
	}
	err = json.NewDecoder(resp.Body).Decode(&me)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 {
		return "", fmt.Errorf("sign in as %s: %d %v", login, resp.StatusCode, err)
	}
	req, _ := http.NewRequest("POST", a.base+"/api/v1/tokens", bytes.NewReader([]byte(`{"name":"bench"}`)))
	for _, c := range resp.Cookies() {
		req.AddCookie(c)
	}
	req.Header.Set("X-CSRF-Token", me.CSRF)
	req.Header.Set("Content-Type", "application/json")
	var tok struct{ Secret string }
	return tok.Secret, a.send(req, &tok)
}

// upload stores a document and waits until its ingestion ends.
func (a *apiCaller) upload(path, token, name, text string) error {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	p, err := mw.CreateFormFile("file", name)
	if err != nil {
		return err
	}
	p.Write([]byte(text))
	mw.Close()
	req, _ := http.NewRequest("POST", a.base+path, &buf)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	var doc struct{ Document struct{ ID, Status string } }
	if err := a.send(req, &doc); err != nil {
		return err
	}
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if err := a.do("GET", path+"/"+doc.Document.ID, token, nil, &doc); err != nil {
			return err
		}
		if doc.Document.Status == "completed" {
			return nil
		}
	}
	return fmt.Errorf("document %s not completed in a minute: %s", name, doc.Document.Status)
}

// seedConversations runs n one-turn conversations, four at a time, and
// returns the last one's id.
func (a *apiCaller) seedConversations(ctx context.Context, token, botID string, n int) (string, error) {
	var (
		mu   sync.Mutex
		next int
		last string
		errs []error
		wg   sync.WaitGroup
	)
	for range 4 {
		wg.Go(func() {
			for ctx.Err() == nil {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= n {
					return
				}
				var turn struct {
					ConversationID string `json:"conversation_id"`
				}
				err := a.do("POST", "/api/v1/chatbots/"+botID+"/chat", token, map[string]any{"stream": false,
					"message": "How long do refunds take? (" + strconv.Itoa(i) + ")"}, &turn)
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				}
				last = turn.ConversationID
				mu.Unlock()
				if err != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		return "", errs[0]
	}
	return last, ctx.Err()
}
