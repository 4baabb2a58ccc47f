package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/gateway/gatewaytest"
	"github.com/nodus-os/nodus/internal/httpapi"
	"github.com/nodus-os/nodus/internal/recordings"
	"github.com/nodus-os/nodus/internal/store/storetest"
)

// espeakWAV speaks text with espeak-ng into a WAV file and returns its
// bytes. Without espeak-ng the test is skipped, except under CI=true,
// where it fails: CI installs it (.ci/run, scripts/test.sh).
func espeakWAV(t *testing.T, text string) []byte {
	t.Helper()
	bin, err := exec.LookPath("espeak-ng")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("espeak-ng is not installed under CI=true: the recordings tests need real speech (apt-get install espeak-ng)")
		}
		t.Skip("espeak-ng is not installed: the recordings tests need real speech (apt-get install espeak-ng)")
	}
	out := filepath.Join(t.TempDir(), "speech.wav")
	if b, err := exec.Command(bin, "-w", out, text).CombinedOutput(); err != nil {
		t.Fatalf("espeak-ng: %v: %s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fakeWhisper is an OpenAI-compatible transcription server: it checks the
// multipart form as a speech engine would and answers verbose_json with
// the segments it was given, spread over the WAV's real duration.
type fakeWhisper struct {
	*httptest.Server
	mu       sync.Mutex
	files    [][]byte
	forms    []url.Values
	segments []string
}

func newFakeWhisper(t *testing.T, segments []string) *fakeWhisper {
	f := &fakeWhisper{segments: segments}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != "POST" || r.URL.Path != "/v1/audio/transcriptions" {
			http.Error(w, `{"error":{"message":"not found"}}`, 404)
			return
		}
		if err := r.ParseMultipartForm(64 << 20); err != nil {
			http.Error(w, `{"error":{"message":"bad form"}}`, 400)
			return
		}
		file, _, err := r.FormFile("file")
		if err != nil {
			http.Error(w, `{"error":{"message":"no file"}}`, 400)
			return
		}
		audio, _ := io.ReadAll(file)
		f.mu.Lock()
		f.files, f.forms = append(f.files, audio), append(f.forms, r.MultipartForm.Value)
		f.mu.Unlock()
		d, err := recordings.Duration(recordings.FormatWAV, bytes.NewReader(audio), int64(len(audio)))
		if err != nil || !bytes.HasPrefix(audio, []byte("RIFF")) {
			http.Error(w, `{"error":{"message":"Invalid file format."}}`, 400)
			return
		}
		type segment struct {
			ID           int     `json:"id"`
			Seek         int     `json:"seek"`
			Start        float64 `json:"start"`
			End          float64 `json:"end"`
			Text         string  `json:"text"`
			AvgLogprob   float64 `json:"avg_logprob"`
			NoSpeechProb float64 `json:"no_speech_prob"`
		}
		var segs []segment
		step := d / float64(len(f.segments))
		for i, s := range f.segments {
			segs = append(segs, segment{ID: i, Start: math.Round(float64(i)*step*100) / 100,
				End: math.Round(float64(i+1)*step*100) / 100, Text: " " + s, AvgLogprob: -0.2, NoSpeechProb: 0.01})
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"task": "transcribe", "language": "english", "duration": d,
			"text": strings.Join(f.segments, " "), "segments": segs})
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeWhisper) calls() ([][]byte, []url.Values) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]byte(nil), f.files...), append([]url.Values(nil), f.forms...)
}

// uploadAudio posts audio to /api/v1/recordings.
func uploadAudio(t *testing.T, c *client, title, filename string, audio []byte, query ...string) (int, []byte) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	if title != "" {
		mw.WriteField("title", title)
	}
	p, _ := mw.CreateFormFile("file", filename)
	p.Write(audio)
	mw.Close()
	resp, b := call(t, "POST", c.base+"/api/v1/recordings"+strings.Join(query, ""), &buf, withBearer(c.token),
		withHeader("Content-Type", mw.FormDataContentType()))
	return resp.StatusCode, b
}

type recordingAnswer struct {
	Recording struct {
		ID, Title, Status, Error, Language, Text, Summary, Model, MIME string
		StatusDetail                                                   string   `json:"status_detail"`
		DurationS                                                      float64  `json:"duration_s"`
		KeyPoints                                                      []string `json:"key_points"`
		Segments                                                       []recordings.Segment
	}
}

func waitRecording(t *testing.T, w *gwWorld, id string, done func(recordingAnswer) bool) recordingAnswer {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var r recordingAnswer
		w.do(t, w.orgAdmin, "GET", "/api/v1/recordings/"+id, nil, 200, &r)
		if done(r) {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("recording %+v\n%s", r.Recording, w.in.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// newRecordingWorld is a gateway world (a fake chat provider answering
// answer) with a fake speech server behind a "whisper" deployment, both
// reachable through egress. No speech model is set yet.
func newRecordingWorld(t *testing.T, databaseURL, answer string, sentences []string) (*gwWorld, *fakeWhisper) {
	t.Helper()
	w := newGatewayWorld(t, databaseURL, gatewaytest.Script{Text: answer})
	whisper := newFakeWhisper(t, sentences)
	var rules, exceptions []map[string]any
	for _, u := range []string{w.fake.URL, whisper.URL} {
		pu, _ := url.Parse(u)
		p := 0
		fmt.Sscan(pu.Port(), &p)
		rules = append(rules, map[string]any{"host": "127.0.0.1", "port": p, "comment": "fake upstreams"})
		exceptions = append(exceptions, map[string]any{"ip": "127.0.0.1", "port": p, "comment": "fake upstreams"})
	}
	w.do(t, w.admin, "PUT", "/api/v1/egress/platform", map[string]any{"rules": rules, "address_exceptions": exceptions}, 200, nil)
	w.do(t, w.orgAdmin, "POST", "/api/v1/gateway/deployments", map[string]any{"model_name": "whisper", "provider": "openai",
		"upstream_model": "whisper-1", "base_url": whisper.URL + "/v1", "api_key_handle": w.handle, "timeout_seconds": 30}, 201, nil)
	return w, whisper
}

// TestRecordingTranscribedSummarisedCited runs a full `nodus serve` on
// both databases: real speech made by espeak-ng is uploaded, waits while
// the tenant has no speech model, is transcribed as soon as one is set
// (a fake OpenAI-compatible speech server behind a gateway deployment,
// reached through egress), summarised by the tenant's chat model, its
// uploader notified; its audio plays back with Range; its transcript goes
// into a knowledge base, and a chatbot's answer cites it with the moment
// in the audio.
func TestRecordingTranscribedSummarisedCited(t *testing.T) {
	sentences := []string{
		"Welcome to the weekly operations meeting of the shop, where the whole team reviews what happened in the warehouse and on the website during the last seven days before we plan the next ones.",
		"Parcels ship from Lisbon every weekday morning, and the courier collects them at ten, so any order confirmed before nine in the morning leaves the warehouse on the same day.",
		"Refunds are issued within fourteen days of the return reaching our warehouse, and customers receive an email as soon as the money has been sent back to their card.",
	}
	wav := espeakWAV(t, strings.Join(sentences, " "))
	storetest.RunURL(t, func(t *testing.T, databaseURL string) {
		answer := "Refunds are issued within fourteen days of the return [1]."
		w, whisper := newRecordingWorld(t, databaseURL, answer, sentences)

		// Without a speech model the recording waits, saying why.
		status, body := uploadAudio(t, w.orgAdmin, "Ops meeting", `../../etc/<b>meeting</b>.wav`, wav)
		if status != 201 {
			t.Fatalf("upload: %d %s", status, body)
		}
		var up recordingAnswer
		json.Unmarshal(body, &up)
		id := up.Recording.ID
		if up.Recording.MIME != "audio/wav" || up.Recording.DurationS < 5 || up.Recording.Status != "pending" {
			t.Fatalf("uploaded %+v", up.Recording)
		}
		waitRecording(t, w, id, func(r recordingAnswer) bool { return r.Recording.StatusDetail == recordings.DetailNoSpeechModel })
		if files, _ := whisper.calls(); len(files) != 0 {
			t.Fatal("transcribed without a speech model")
		}

		// A speech and a summary model in the settings start it at once.
		w.do(t, w.orgAdmin, "PATCH", "/api/v1/settings", map[string]any{"recordings": map[string]any{
			"speech_model": "whisper", "summary_model": "fake"}}, 200, nil)
		done := waitRecording(t, w, id, func(r recordingAnswer) bool {
			if r.Recording.Status == "failed" {
				t.Fatalf("recording failed: %+v\n%s", r.Recording, w.in.logs.String())
			}
			return r.Recording.Status == "completed"
		})
		rec := done.Recording
		if len(rec.Segments) != 3 || rec.Language != "english" || rec.Model != "whisper" || rec.Summary != answer ||
			!strings.Contains(rec.Text, "Refunds are issued") || rec.Segments[2].Start <= 0 || rec.Segments[2].End < rec.Segments[2].Start {
			t.Fatalf("completed recording %+v", rec)
		}
		files, forms := whisper.calls()
		if len(files) != 1 || !bytes.Equal(files[0], wav) || forms[0].Get("response_format") != "verbose_json" ||
			forms[0].Get("model") != "whisper-1" {
			t.Fatalf("the speech server got %d files, form %v", len(files), forms)
		}

		// The transcription and the summary went through the gateway as
		// the uploader: both are in the tenant's spend log.
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			var spend struct {
				Spend []struct {
					Model  string `json:"model"`
					UserID string `json:"user_id"`
				}
			}
			w.do(t, w.orgAdmin, "GET", "/api/v1/spend?limit=500", nil, 200, &spend)
			models := map[string]bool{}
			for _, s := range spend.Spend {
				models[s.Model] = true
			}
			if models["whisper"] && models["fake"] {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the spend log lacks the transcription or the summary: %+v", spend.Spend)
			}
		}

		// The uploader is notified.
		var notes struct{ Notifications []struct{ Kind, Link string } }
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			w.do(t, w.orgAdmin, "GET", "/api/v1/notifications", nil, 200, &notes)
			if len(notes.Notifications) > 0 && notes.Notifications[0].Kind == "recording.transcribed" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no recording.transcribed notification: %+v", notes)
			}
		}

		// Playback: typed, unsniffed, seekable.
		resp, b := call(t, "GET", w.in.base+"/api/v1/recordings/"+id+"/audio", nil, withBearer(w.orgAdmin.token),
			withHeader("Range", "bytes=0-3"))
		if resp.StatusCode != 206 || string(b) != "RIFF" || resp.Header.Get("Content-Type") != "audio/wav" ||
			resp.Header.Get("X-Content-Type-Options") != "nosniff" ||
			!strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment") ||
			!strings.Contains(resp.Header.Get("Content-Security-Policy"), "sandbox") {
			t.Fatalf("audio range: %d %q %v", resp.StatusCode, b, resp.Header)
		}

		// Into a knowledge base of small chunks, and cited by a chatbot
		// with the moment in the audio.
		var kb struct {
			KnowledgeBase struct{ ID string } `json:"knowledge_base"`
		}
		w.do(t, w.orgAdmin, "POST", "/api/v1/knowledge-bases", map[string]any{"name": "Meetings",
			"chunking": map[string]any{"size": 50, "overlap": 0}}, 201, &kb)
		var added struct {
			DocumentID string `json:"document_id"`
		}
		w.do(t, w.orgAdmin, "POST", "/api/v1/recordings/"+id+"/knowledge", map[string]any{"knowledge_base_id": kb.KnowledgeBase.ID}, 201, &added)
		docs := "/api/v1/knowledge-bases/" + kb.KnowledgeBase.ID + "/documents/"
		for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			var d documentAnswer
			w.do(t, w.orgAdmin, "GET", docs+added.DocumentID, nil, 200, &d)
			if d.Document.Status == "completed" {
				break
			}
			if d.Document.Status == "failed" || time.Now().After(deadline) {
				t.Fatalf("transcript document %+v\n%s", d.Document, w.in.logs.String())
			}
		}
		var bot struct{ Chatbot struct{ ID string } }
		w.do(t, w.orgAdmin, "POST", "/api/v1/chatbots", map[string]any{"name": "Ops", "model_name": "fake",
			"knowledge_bases": []string{kb.KnowledgeBase.ID}, "retrieval": map[string]any{"top_k": 1}}, 201, &bot)
		status, events := chatStream(t, w.in.base, w.orgAdmin.token, "/api/v1/chatbots/"+bot.Chatbot.ID+"/chat",
			map[string]any{"message": "How long until refunds are issued after a return?"}, nil)
		if status != 200 || len(events) < 2 {
			t.Fatalf("chat: %d %+v\n%s", status, events, w.in.logs.String())
		}
		cites, _ := events[0].data["citations"].([]any)
		if len(cites) == 0 {
			t.Fatalf("no citations: %+v", events[0].data)
		}
		first := cites[0].(map[string]any)
		start, _ := first["start"].(float64)
		end, _ := first["end"].(float64)
		refunds := rec.Segments[2]
		if first["recording_id"] != id || first["document_id"] != added.DocumentID ||
			start <= 0 || start > refunds.Start || end < refunds.End {
			t.Fatalf("citation %+v, want recording %s around %.2f–%.2f", first, id, refunds.Start, refunds.End)
		}

		// The transcript is a notebook source of its uploader's, whose
		// summary job reads it; another user cannot add it.
		var nb notebookAnswer
		w.do(t, w.orgAdmin, "POST", "/api/v1/notebooks", map[string]any{"name": "Meeting notes"}, 201, &nb)
		sources := "/api/v1/notebooks/" + nb.Notebook.ID + "/sources"
		var src notebookSourceAnswer
		w.do(t, w.orgAdmin, "POST", sources, map[string]any{"kind": "recording", "recording_id": id, "context_level": "full"}, 201, &src)
		for deadline := time.Now().Add(30 * time.Second); src.Source.Status != "ready"; time.Sleep(50 * time.Millisecond) {
			if src.Source.Status == "failed" || time.Now().After(deadline) {
				t.Fatalf("recording source %+v", src.Source)
			}
			w.do(t, w.orgAdmin, "GET", sources+"/"+src.Source.ID, nil, 200, &src)
		}
		if src.Source.Title != "Ops meeting" || src.Source.Summary == "" {
			t.Errorf("recording source %+v", src.Source)
		}
		w.do(t, w.orgAdmin, "POST", "/api/v1/users", map[string]any{"email": "rec-user@example.test", "username": "rec-user",
			"role": "user", "password": "rec-user's password"}, 201, nil)
		user := signIn(t, w.in.base, "rec-user", "rec-user's password")
		var other notebookAnswer
		w.do(t, user, "POST", "/api/v1/notebooks", map[string]any{"name": "Not mine"}, 201, &other)
		w.do(t, user, "POST", "/api/v1/notebooks/"+other.Notebook.ID+"/sources",
			map[string]any{"kind": "recording", "recording_id": id, "context_level": "full"}, 404, nil)
	})
}

// silentWAV is secs seconds of 8 kHz 16-bit mono silence.
func silentWAV(secs float64) []byte {
	n := int(secs * 8000 * 2)
	b := []byte("RIFF")
	b = binary.LittleEndian.AppendUint32(b, uint32(36+n))
	b = append(b, "WAVEfmt "...)
	b = binary.LittleEndian.AppendUint32(b, 16)
	b = binary.LittleEndian.AppendUint16(b, 1)
	b = binary.LittleEndian.AppendUint16(b, 1)
	b = binary.LittleEndian.AppendUint32(b, 8000)
	b = binary.LittleEndian.AppendUint32(b, 16000)
	b = binary.LittleEndian.AppendUint16(b, 2)
	b = binary.LittleEndian.AppendUint16(b, 16)
	b = append(b, "data"...)
	b = binary.LittleEndian.AppendUint32(b, uint32(n))
	return append(b, make([]byte, n)...)
}

// waitRecordingsSettled waits until every recording c sees has been
// looked at by its job (none is left pending without a reason), so the
// rows no longer change by themselves.
func waitRecordingsSettled(t *testing.T, c *client) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var list struct {
			Recordings []struct {
				Status       string
				StatusDetail string `json:"status_detail"`
			}
		}
		c.must("GET", "/api/v1/recordings", nil, 200, &list)
		settled := true
		for _, r := range list.Recordings {
			if r.Status == "pending" && r.StatusDetail == "" || r.Status == "transcribing" || r.Status == "summarising" {
				settled = false
			}
		}
		if settled {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("recordings not settled: %+v", list.Recordings)
		}
	}
}

// TestRecordingUploadRefusals runs `nodus serve` with a small upload
// limit on both databases: too large is 413, text, truncated or corrupt
// audio is 400 with the reason, a viewer may not upload, and a hostile
// title and file name come back as text.
func TestRecordingUploadRefusals(t *testing.T) {
	storetest.RunURL(t, func(t *testing.T, databaseURL string) {
		vars := nodusEnv(t, databaseURL)
		vars["NODUS_ADMIN_PASSWORD"] = "the administrator's password"
		vars["NODUS_RECORDING_MAX_BYTES"] = "40000"
		in := startNodus(t, vars)
		admin := signIn(t, in.base, "admin", vars["NODUS_ADMIN_PASSWORD"])
		var tenant struct{ Tenant struct{ ID string } }
		admin.must("POST", "/api/v1/tenants", map[string]any{"name": "Tenant R", "max_users": 10}, 201, &tenant)
		for _, role := range []string{"org_admin", "viewer"} {
			admin.must("POST", "/api/v1/users", map[string]any{"email": role + "@example.test", "username": "r-" + role,
				"role": role, "tenant_id": tenant.Tenant.ID, "password": memberPassword}, 201, nil)
		}
		orgAdmin := signIn(t, in.base, "r-org_admin", memberPassword)
		viewer := signIn(t, in.base, "r-viewer", memberPassword)

		wav := silentWAV(1) // 16044 bytes
		for _, tt := range []struct {
			name   string
			file   []byte
			status int
			want   string
		}{
			{"too large", silentWAV(3), 413, "too_large"},
			{"text", []byte("just some text, named .wav"), 400, "not audio in a supported format"},
			{"truncated", wav[:8000], 400, "truncated"},
			{"corrupt mp3", append([]byte("ID3\x04\x00\x00\x00\x00\x00\x00"), bytes.Repeat([]byte{0x42}, 500)...), 400, "corrupt"},
		} {
			status, b := uploadAudio(t, orgAdmin, "", "x.wav", tt.file)
			if status != tt.status || !strings.Contains(string(b), tt.want) {
				t.Errorf("%s: %d %s, want %d with %q", tt.name, status, b, tt.status, tt.want)
			}
		}
		if status, b := uploadAudio(t, viewer, "", "x.wav", wav); status != 403 {
			t.Errorf("a viewer uploaded: %d %s", status, b)
		}
		status, b := uploadAudio(t, orgAdmin, "<script>alert(1)</script>\x1b[2J", "..\\..\\win\\evil\u202e.wav", wav)
		var up recordingAnswer
		if status != 201 || json.Unmarshal(b, &up) != nil {
			t.Fatalf("upload: %d %s", status, b)
		}
		var raw struct {
			Recording struct{ Title, Filename string }
		}
		json.Unmarshal(b, &raw)
		if raw.Recording.Title != "<script>alert(1)</script> [2J" || raw.Recording.Filename != "evil .wav" {
			t.Errorf("title %q, filename %q", raw.Recording.Title, raw.Recording.Filename)
		}
		// The viewer reads; another user of the tenant does not see it.
		orgAdmin.must("GET", "/api/v1/recordings/"+up.Recording.ID, nil, 200, nil)
		viewer.must("GET", "/api/v1/recordings/"+up.Recording.ID, nil, 404, nil)
		viewer.must("DELETE", "/api/v1/recordings/"+up.Recording.ID, nil, 403, nil)
		// The page renders it as text.
		_, cookie := gwSignIn(t, in.base, "r-org_admin", memberPassword)
		resp, page := call(t, "GET", in.base+"/recordings/"+up.Recording.ID, nil,
			withHeader("Cookie", httpapi.SessionCookie+"="+cookie))
		if resp.StatusCode != 200 || strings.Contains(string(page), "<script>alert(1)") ||
			!strings.Contains(string(page), "&lt;script&gt;alert(1)&lt;/script&gt; [2J") {
			t.Errorf("recording page: %d %s", resp.StatusCode, page)
		}
		orgAdmin.must("DELETE", "/api/v1/recordings/"+up.Recording.ID, nil, 204, nil)
		orgAdmin.must("GET", "/api/v1/recordings/"+up.Recording.ID+"/audio", nil, 404, nil)

		// The upload and the deletion are in the tenant's audit log, as the
		// org admin's; the refused uploads and the viewer's refused
		// deletion are not.
		var audited struct {
			Entries []struct {
				Action   string `json:"action"`
				ActorID  string `json:"actor_id"`
				TargetID string `json:"target_id"`
			} `json:"entries"`
		}
		orgAdmin.must("GET", "/api/v1/audit?target_type=recording&limit=50", nil, 200, &audited)
		var actions []string
		for _, e := range audited.Entries {
			if e.TargetID != up.Recording.ID {
				t.Errorf("an audit entry for another recording: %+v", e)
			}
			actions = append(actions, e.Action)
		}
		if strings.Join(actions, " ") != "recording.delete recording.create" {
			t.Errorf("recording audit entries: %+v", audited.Entries)
		}
	})
}
