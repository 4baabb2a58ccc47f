package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// TestRecordingBrowser drives Chromium through the recordings pages of a
// real `nodus serve`: an espeak-ng recording uploaded from the list's form
// with a title holding an XSS payload, transcribed by the fake speech
// server, opened at a citation's #t= link (the player seeks there and the
// segment playing is highlighted), then a segment clicked. No dialog may
// open and the console must hold no error or CSP violation.
func TestRecordingBrowser(t *testing.T) {
	exe := chromium()
	if exe == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true and no Chromium found: install it (apt-get install chromium); .ci/run does")
		}
		t.Skip("no Chromium found (apt-get install chromium): the browser test is skipped outside CI")
	}
	sentences := []string{"Good morning, this is the weekly review.", "Refunds are issued within fourteen days.",
		"Parcels ship from Lisbon every weekday."}
	wav := espeakWAV(t, strings.Join(sentences, " "))
	audio := filepath.Join(t.TempDir(), "review.wav")
	if err := os.WriteFile(audio, wav, 0o644); err != nil {
		t.Fatal(err)
	}
	w, _ := newRecordingWorld(t, "", "A weekly review.", sentences)
	w.do(t, w.orgAdmin, "PATCH", "/api/v1/settings", map[string]any{"recordings": map[string]any{"speech_model": "whisper"}}, 200, nil)
	dir := screenshotDir(t)

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.WindowSize(1280, 900), chromedp.Flag("autoplay-policy", "no-user-gesture-required"), chromedp.Flag("mute-audio", true))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancelTab := chromedp.NewContext(allocCtx)
	defer cancelTab()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var dialogs, logs console
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
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			logs.add(fmt.Sprintf("%s %s (%s:%d)", m.Type, m.Text, m.URL, m.Line+1))
		}
	}()
	do := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			loc, _ := chromedp.Run(ctx, chromedp.Location())
			t.Fatalf("%s: %v (at %s)\n%s", what, err, loc, w.in.logs.String())
		}
	}
	wait := func(what, js string) {
		t.Helper()
		do(what, chromedp.Poll[chromedp.Void](js, chromedp.WithPollingInterval(100*time.Millisecond),
			chromedp.WithPollingTimeout(30*time.Second)))
	}
	shot := func(name string) {
		t.Helper()
		buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, "recording-"+name+".png"), buf, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	do("sign in", chromedp.Navigate(w.in.base+"/login"),
		chromedp.SendKeys(chromedp.ID("login"), "g-admin"),
		chromedp.SendKeys(chromedp.ID("password"), canaryOrgPassword),
		chromedp.Submit(chromedp.ID("password")),
		chromedp.WaitVisible(chromedp.CSS("nav.side")))
	do("open the recordings from the menu", chromedp.Click(chromedp.CSS(`nav.side a[href="/recordings"]`)),
		chromedp.WaitVisible(chromedp.ID("rec-upload")))
	do("upload", chromedp.SendKeys(chromedp.ID("rec-title"), "Review "+xssPayload),
		chromedp.SetUploadFiles(chromedp.ID("rec-file"), []string{audio}),
		chromedp.Click(chromedp.CSS("#rec-upload button[type=submit]")),
		chromedp.WaitVisible(chromedp.ID("player")))
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	id := loc[strings.LastIndex(loc, "/")+1:]
	done := waitRecording(t, w, id, func(r recordingAnswer) bool { return r.Recording.Status == "completed" })
	second := done.Recording.Segments[1]

	// A citation's link: the player seeks to the moment and its segment
	// is the one highlighted.
	// (From another page: a change of fragment alone loads nothing.)
	do("open at the second segment", chromedp.Navigate(w.in.base+"/recordings"), chromedp.Navigate(fmt.Sprintf("%s/recordings/%s#t=%g", w.in.base, id, second.Start)),
		chromedp.WaitVisible(chromedp.ID("segments")))
	wait("the second segment is highlighted", `(document.querySelector("#segments li.playing") || {}).dataset?.start === "`+fmt.Sprint(second.Start)+`"`)
	if got, _ := chromedp.Run(ctx, chromedp.Evaluate[float64](`document.getElementById("player").currentTime`)); got < second.Start-0.01 {
		t.Errorf("the player is at %.2f s, want %.2f", got, second.Start)
	}
	shot("at-citation")
	do("click the first segment", chromedp.Click(chromedp.CSS("#segments li:first-child button.seek")))
	wait("the first segment is highlighted", `document.querySelector("#segments li:first-child").classList.contains("playing")`)
	shot("first-segment")
	if ok, _ := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.querySelector("h1").textContent.includes("<img src=x onerror=alert(1)>")`)); !ok {
		t.Error("the title is not shown as text")
	}
	if d := dialogs.all(); len(d) > 0 {
		t.Errorf("dialogs opened (XSS ran): %q", d)
	}
	for _, l := range logs.all() {
		if strings.HasPrefix(l, "exception") || strings.Contains(l, "Content Security Policy") || strings.Contains(l, "Refused to") ||
			strings.HasPrefix(l, "error") && !strings.Contains(l, "favicon.ico") {
			t.Errorf("console: %s", l)
		}
	}
}
