package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// This file drives Debian's Chromium, headless, through the UI of a real
// `nodus serve`: the journey of issue 9 (sign in, a knowledge base, an
// upload, a chatbot, a streamed answer with a citation), with stored XSS
// in every name and message, and a screenshot of each page.

// chromium finds an installed Chromium; nothing is ever downloaded.
func chromium() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// screenshotDir is where the screenshots go: $NODUS_TEST_OUTPUT/browser,
// or out/browser at the repository's root (ignored by git).
func screenshotDir(t *testing.T) string {
	t.Helper()
	root := os.Getenv("NODUS_TEST_OUTPUT")
	if root == "" {
		root = filepath.Join("..", "..", "out")
	}
	dir := filepath.Join(root, "browser")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// console collects what the page logs: script errors and CSP violations
// fail the test.
type console struct {
	mu    sync.Mutex
	lines []string
}

func (c *console) add(s string) {
	c.mu.Lock()
	c.lines = append(c.lines, s)
	c.mu.Unlock()
}

func (c *console) all() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.lines...)
}

func TestWebBrowser(t *testing.T) {
	exe := chromium()
	if exe == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true and no Chromium found: install it (apt-get install chromium); .ci/run does")
		}
		t.Skip("no Chromium found (apt-get install chromium): the browser test is skipped outside CI")
	}
	w := newWebWorld(t, "")
	dir := screenshotDir(t)
	files := t.TempDir()
	refunds := filepath.Join(files, "refunds "+xssPayload+".md")
	shipping := filepath.Join(files, "shipping.md")
	for p, text := range map[string]string{
		refunds:  "# Refunds\n\nRefunds are issued within fourteen days of the return reaching our warehouse.\n",
		shipping: "# Shipping\n\nParcels ship from Lisbon every weekday morning.\n",
	} {
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.WindowSize(1280, 900))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancelTab := chromedp.NewContext(allocCtx)
	defer cancelTab()
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()

	// Any dialog is an XSS payload that ran: count it and close it, so the
	// page does not stay blocked.
	var dialogs console
	events := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for ev, err := range events {
			if err != nil {
				return
			}
			dialogs.add(ev.Message)
			_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
		}
	}()
	var logs console
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			logs.add(fmt.Sprintf("%s %s (%s:%d)", m.Type, m.Text, m.URL, m.Line+1))
		}
	}()

	step := 0
	do := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			loc, _ := chromedp.Run(ctx, chromedp.Location())
			t.Fatalf("%s: %v (at %s)\n%s", what, err, loc, w.in.logs.String())
		}
	}
	shot := func(name string) {
		t.Helper()
		step++
		buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%02d-%s.png", step, name)), buf, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	eval := func(js string) bool {
		t.Helper()
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](js))
		if err != nil {
			t.Fatalf("evaluate %s: %v", js, err)
		}
		return ok
	}
	wait := func(what, js string) {
		t.Helper()
		do(what, chromedp.Poll[chromedp.Void](js, chromedp.WithPollingInterval(100*time.Millisecond),
			chromedp.WithPollingTimeout(60*time.Second)))
	}

	// Signed out, the dashboard leads to the login page.
	do("open the dashboard", chromedp.Navigate(w.in.base+"/"), chromedp.WaitVisible(chromedp.ID("login")))
	shot("login")
	do("sign in",
		chromedp.SendKeys(chromedp.ID("login"), w.orgLogin),
		chromedp.SendKeys(chromedp.ID("password"), w.orgPass),
		chromedp.Submit(chromedp.ID("password")),
		chromedp.WaitVisible(chromedp.CSS("nav.side")))
	if !eval(`document.querySelector("h1").textContent === "Dashboard"`) {
		t.Fatal("signing in did not lead to the dashboard")
	}
	shot("dashboard-empty")

	// A knowledge base, from its form, named with a payload.
	do("create a knowledge base",
		chromedp.Navigate(w.in.base+"/knowledge"),
		chromedp.SendKeys(chromedp.ID("kb-name"), "Policies "+xssPayload),
		chromedp.SendKeys(chromedp.ID("kb-description"), "What customers ask about."),
		chromedp.Submit(chromedp.ID("kb-name")),
		chromedp.WaitVisible(chromedp.ID("upload")))
	shot("knowledge-base-empty")

	// Two files at once, with progress bars; the table follows them to
	// completed without a reload.
	do("upload two documents",
		chromedp.SetUploadFiles(chromedp.ID("files"), []string{refunds, shipping}),
		chromedp.Click(chromedp.CSS("#upload button[type=submit]")))
	wait("the documents complete", `document.querySelectorAll('#documents tr[data-status="completed"]').length === 2`)
	if !eval(`document.querySelectorAll("#uploads progress").length === 2 && [...document.querySelectorAll("#uploads progress")].every(p => p.value === 100)`) {
		t.Error("the uploads' progress bars are not full")
	}
	if !eval(`[...document.querySelectorAll("#documents td.name")].some(td => td.textContent.includes("<img src=x onerror=alert(1)>"))`) {
		t.Error("the document's name is not shown as text")
	}
	shot("knowledge-base-documents")
	kbURL, _ := chromedp.Run(ctx, chromedp.Location())

	do("search", chromedp.SendKeys(chromedp.ID("q"), "refunds fourteen"), chromedp.Submit(chromedp.ID("q")),
		chromedp.WaitVisible(chromedp.CSS(".hits mark")))
	shot("knowledge-base-search")

	// A chatbot on the built-in extractive model, grounded in the base.
	do("create a chatbot",
		chromedp.Navigate(w.in.base+"/chatbots"),
		chromedp.SendKeys(chromedp.ID("bot-name"), "Helpdesk "+xssPayload),
		chromedp.SendKeys(chromedp.ID("bot-prompt"), "You answer customers of the shop."),
		chromedp.SetValue(chromedp.ID("bot-temperature"), "0.2"),
		chromedp.Click(chromedp.CSS(`input[name="knowledge_bases"]`)),
		chromedp.Submit(chromedp.ID("bot-name")),
		chromedp.WaitVisible(chromedp.CSS(`a.button.primary[href^="/chat/new/"]`)))
	shot("chatbot")

	// A question: the answer streams into the page, then the rendered
	// answer with its citations takes its place.
	do("open the chat", chromedp.Click(chromedp.CSS(`a.button.primary[href^="/chat/new/"]`)), chromedp.WaitVisible(chromedp.ID("question")))
	shot("chat-new")
	do("watch the stream", chromedp.Evaluate[chromedp.Void](`window.__streamed = 0;
		new MutationObserver(ms => ms.forEach(m => { if (m.target.closest && m.target.closest(".msg.assistant") && m.target.classList.contains("text")) window.__streamed++; }))
			.observe(document.getElementById("messages"), {childList: true, subtree: true, characterData: true});`))
	do("ask", chromedp.SendKeys(chromedp.ID("question"), "How long do refunds take?"),
		chromedp.Click(chromedp.CSS("#ask button[type=submit]")))
	wait("the answer with its citations", `document.querySelector(".msg.assistant .citations") !== null`)
	if !eval(`window.__streamed > 0`) {
		t.Error("the answer did not stream into the page")
	}
	if !eval(`document.querySelector(".msg.assistant .body").textContent.includes("fourteen days")`) {
		t.Error("the answer does not quote the source")
	}
	if !eval(`location.pathname.startsWith("/chat/c/")`) {
		t.Error("the page's address is not the conversation's")
	}
	shot("chat-answer")
	do("open a citation", chromedp.Click(chromedp.CSS(".msg.assistant .citations summary")),
		chromedp.WaitVisible(chromedp.CSS(".msg.assistant .citations .passage")))
	shot("chat-citation")
	do("like the answer", chromedp.Click(chromedp.CSS(`.msg.assistant .feedback button[value="like"]`)),
		chromedp.WaitVisible(chromedp.CSS(`.msg.assistant .feedback button[aria-pressed="true"]`)))

	// Payloads in a chat message, streamed and then reloaded.
	do("ask with payloads", chromedp.SendKeys(chromedp.ID("question"),
		"Refunds? "+xssPayload+" [link](javascript:alert(1)) <a href=javascript:alert(1)>x</a>"),
		chromedp.Click(chromedp.CSS("#ask button[type=submit]")))
	wait("the second answer", `document.querySelectorAll(".msg.assistant .feedback").length === 2`)
	do("reload the conversation", chromedp.Reload(), chromedp.WaitVisible(chromedp.ID("messages")))
	if !eval(`[...document.querySelectorAll(".msg.user .text")].some(p => p.textContent.includes("<img src=x onerror=alert(1)>"))`) {
		t.Error("the message's payload is not shown as text")
	}
	if eval(`document.querySelector('#messages img, #messages svg, #messages a[href^="javascript"], #messages script') !== null`) {
		t.Error("a payload became markup in the conversation")
	}
	shot("chat-conversation")

	// The first answer links to its trace: the turn's steps, and the
	// model call once the gateway's generation is recorded, which happens
	// in the background a moment after the answer: reload until it shows.
	do("open the answer's trace", chromedp.Click(chromedp.CSS(".msg.assistant .trace-link a")), chromedp.WaitVisible(chromedp.CSS(".crumbs")))
	traced := `[...document.querySelectorAll(".obs-type")].some(e => e.textContent === "GENERATION") &&
		[...document.querySelectorAll(".obs-name")].some(e => e.textContent.includes("chat turn"))`
	for deadline := time.Now().Add(30 * time.Second); !eval(traced); {
		if time.Now().After(deadline) {
			body, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("main").innerText`))
			t.Fatalf("the trace page never showed the turn and its generation:\n%s", body)
		}
		time.Sleep(200 * time.Millisecond)
		do("reload the trace", chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS(".crumbs")))
	}
	if !eval(`document.querySelector("h1").textContent.includes("<img src=x onerror=alert(1)>")`) {
		t.Error("the trace's name (the chatbot's) is not shown as text")
	}
	if !eval(`[...document.querySelectorAll(".timing .span")].every(r => +r.getAttribute("width") > 0)`) {
		t.Error("an observation has no timing bar")
	}
	do("open the generation", chromedp.Evaluate[chromedp.Void](`[...document.querySelectorAll(".obs")]
		.find(li => li.querySelector(".obs-type").textContent === "GENERATION").querySelector("summary").click()`),
		chromedp.WaitVisible(chromedp.CSS(".obs details[open] .kv")))
	if !eval(`[...document.querySelectorAll(".obs details[open] .kv dd")].some(dd => dd.textContent === "nodus/extractive")`) {
		t.Error("the opened generation does not show its model")
	}
	traceURL, _ := chromedp.Run(ctx, chromedp.Location())
	shot("trace")
	do("the traces", chromedp.Navigate(w.in.base+"/traces"), chromedp.WaitVisible(chromedp.CSS("table.traces")))
	shot("traces")
	// The gateway's pages, with a key created from its form: the secret
	// is shown on the answer only.
	do("create a key", chromedp.Navigate(w.in.base+"/gateway/keys"), chromedp.SendKeys(chromedp.ID("key-name"), "ci "+xssPayload),
		chromedp.Submit(chromedp.ID("key-name")), chromedp.WaitVisible(chromedp.ID("secret")))
	if !eval(`document.getElementById("secret").value.startsWith("sk-nodus-")`) {
		t.Error("the new key's secret is not shown")
	}
	shot("gateway-key-created")
	do("the spend", chromedp.Navigate(w.in.base+"/gateway/spend"), chromedp.WaitVisible(chromedp.CSS(".filter-grid")))
	shot("gateway-spend")
	do("the memories", chromedp.Navigate(w.in.base+"/agents/memories"), chromedp.WaitVisible(chromedp.ID("mem-app")))
	shot("memories")

	// The administration pages (admin_*.go): a secret written from the
	// vault's form and revealed with its button, shown as text.
	do("write a secret", chromedp.Navigate(w.in.base+"/vault?env=dev"), chromedp.SendKeys(chromedp.ID("secret-key"), "API_TOKEN"),
		chromedp.SendKeys(chromedp.ID("secret-value"), "browser-secret "+xssPayload), chromedp.Submit(chromedp.ID("secret-key")),
		chromedp.WaitVisible(chromedp.CSS(`button[aria-label="Reveal version 1"]`)))
	do("reveal it", chromedp.Click(chromedp.CSS(`button[aria-label="Reveal version 1"]`)), chromedp.WaitVisible(chromedp.ID("revealed")))
	if !eval(`document.getElementById("revealed").textContent === "browser-secret <img src=x onerror=alert(1)><svg onload=alert(1)>"`) {
		t.Error("the revealed value is not shown as text")
	}
	shot("vault-revealed")
	for _, p := range []struct{ path, name string }{{"/admin/users", "admin-users"}, {"/admin/menus", "admin-menus"},
		{"/admin/settings", "admin-settings"}, {"/admin/audit", "admin-audit"}} {
		do("open "+p.path, chromedp.Navigate(w.in.base+p.path), chromedp.WaitVisible(chromedp.CSS("main h1")))
		shot(p.name)
	}

	do("the conversation list", chromedp.Navigate(w.in.base+"/chat"), chromedp.WaitVisible(chromedp.CSS(".list a")))
	shot("chat-list")
	do("the chatbots", chromedp.Navigate(w.in.base+"/chatbots"), chromedp.WaitVisible(chromedp.CSS(".cards")))
	shot("chatbots")
	do("the knowledge bases", chromedp.Navigate(w.in.base+"/knowledge"), chromedp.WaitVisible(chromedp.CSS(".cards")))
	shot("knowledge-bases")
	// The spend of the two answers reaches the dashboard once the
	// gateway's batch is written.
	do("the dashboard", chromedp.Navigate(w.in.base+"/"), chromedp.WaitVisible(chromedp.CSS("h1")))
	shot("dashboard")

	// On a phone-sized screen: the menu fits, nothing overflows sideways.
	do("phone size", chromedp.EmulateViewport(390, 844), chromedp.Navigate(kbURL), chromedp.WaitVisible(chromedp.ID("documents")))
	if !eval(`document.documentElement.scrollWidth <= window.innerWidth + 1`) {
		wide, _ := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("body *")]
			.filter(e => e.getBoundingClientRect().right > window.innerWidth + 1 && !e.parentElement.closest(".side, .table-wrap")).slice(0, 5)
			.map(e => e.tagName + "." + e.className + " " + Math.round(e.getBoundingClientRect().right))
			.concat(["scrollWidth " + document.documentElement.scrollWidth + ", innerWidth " + window.innerWidth])`))
		t.Errorf("the knowledge base page scrolls sideways on a phone: %q", wide)
	}
	shot("phone-knowledge-base")
	do("phone chat", chromedp.Navigate(w.in.base+"/chat"), chromedp.WaitVisible(chromedp.CSS(".list a")),
		chromedp.Click(chromedp.CSS(".list a")), chromedp.WaitVisible(chromedp.ID("question")))
	if !eval(`document.documentElement.scrollWidth <= window.innerWidth + 1`) {
		t.Error("the conversation scrolls sideways on a phone")
	}
	shot("phone-chat")
	do("phone trace", chromedp.Navigate(traceURL), chromedp.WaitVisible(chromedp.CSS(".obs-tree")))
	if !eval(`document.documentElement.scrollWidth <= window.innerWidth + 1`) {
		t.Error("the trace page scrolls sideways on a phone")
	}
	shot("phone-trace")

	// Keyboard: the first Tab reaches the skip link, which leads to the
	// content.
	do("tab to the skip link", chromedp.KeyEvent("\t"))
	if !eval(`document.activeElement.classList.contains("skip")`) {
		t.Error("the first Tab does not reach the skip link")
	}

	do("sign out", chromedp.Click(chromedp.CSS(".who button")), chromedp.WaitVisible(chromedp.ID("login")))

	time.Sleep(200 * time.Millisecond) // the last console messages arrive
	if d := dialogs.all(); len(d) > 0 {
		t.Errorf("dialogs opened (a payload ran): %q", d)
	}
	for _, l := range logs.all() {
		if strings.HasPrefix(l, "exception") || strings.Contains(l, "Content Security Policy") || strings.Contains(l, "Refused to") {
			t.Errorf("browser console: %s", l)
		}
	}
	t.Logf("screenshots in %s", dir)
}
