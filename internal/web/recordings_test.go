package web

import (
	"strings"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/chat"
	"github.com/nodus-os/nodus/internal/knowledge"
	"github.com/nodus-os/nodus/internal/recordings"
)

// xssRecording holds the payload in every field a user or a speech model
// controls.
func xssRecording() *recordings.Recording {
	return &recordings.Recording{ID: "r1", Title: xssName, Filename: xssName + ".wav", MIME: "audio/wav", Size: 1234, Duration: 75,
		Status: recordings.StatusCompleted, StatusDetail: xssName, Error: xssName, Language: xssName, Text: xssName, Summary: xssName,
		KeyPoints: []string{xssName}, Model: xssName, CreatedAt: time.Now(),
		Segments: []recordings.Segment{{ID: 0, Start: 0, End: 2.5, Text: xssName}, {ID: 1, Start: 2.5, End: 75, Text: "</li>" + xssName, AvgLogprob: -2}}}
}

// recordingPages are this file's pages for TestPagesRenderStoredXSSInert.
func recordingPages(base pageBase) map[string]pageData {
	rec := xssRecording()
	p := &recordingPage{pageBase: base, Rec: rec, CanEdit: true, Admin: true,
		Bases: []knowledge.KnowledgeBase{{ID: "kb1", Name: xssName}}, Error: &formError{Message: xssName}}
	for _, s := range rec.Segments {
		p.Segments = append(p.Segments, segmentView{Segment: s, Clock: recordings.Clock(s.Start), Doubtful: s.Doubtful()})
	}
	return map[string]pageData{
		"recordings": &recordingsPage{pageBase: base, Recordings: []recordings.Recording{*rec}, CanEdit: true, MaxBytes: 100 << 20,
			Next: "/recordings?cursor=" + xssName},
		"recording": p,
	}
}

func TestRecordingPage(t *testing.T) {
	s := newTestServer(t)
	out := render(t, s, "recording", recordingPages(pageBase{Title: "t", CSRF: "tok"})["recording"])
	assertInertPage(t, "recording", out)
	for _, want := range []string{`<audio id="player" controls preload="metadata" src="/api/v1/recordings/r1/audio">`,
		`<li data-start="0" data-end="2.5">`, `<li data-start="2.5" data-end="75" class="doubtful">`,
		`aria-label="Play from 0:02"`, `1:15`, `action="/recordings/r1/knowledge"`, `&lt;/li&gt;&lt;img`} {
		if !strings.Contains(out, want) {
			t.Errorf("the recording page lacks %s", want)
		}
	}
	list := render(t, s, "recordings", recordingPages(pageBase{Title: "t", CSRF: "tok"})["recordings"])
	assertInertPage(t, "recordings", list)
	if !strings.Contains(list, `id="rec-upload"`) || !strings.Contains(list, `data-max="104857600"`) ||
		!strings.Contains(list, `href="/recordings/r1"`) {
		t.Errorf("the recordings page lacks its form or row:\n%s", list)
	}
}

// TestCitationLinksToTheMoment: a passage of a recording's transcript
// links to the recording's page at the second it was heard.
func TestCitationLinksToTheMoment(t *testing.T) {
	s := newTestServer(t)
	start, end := 63.5, 70.0
	answer := chat.Message{ID: "m2", ConversationID: "c1", Role: chat.RoleAssistant, Content: "Refunds take two weeks [1]."}
	answer.Metadata = []byte(`{"citations":[{"n":1,"knowledge_base_id":"kb1","document_name":"Ops.md","content":"x","cited":true,` +
		`"recording_id":"r1\"><script>alert(1)</script>","start":63.5,"end":70}]}`)
	bot := chat.Chatbot{ID: "b1", Name: "Ops"}
	conv := chat.Conversation{ID: "c1", ChatbotID: "b1", Title: "t"}
	out := render(t, s, "conversation", &conversationPage{pageBase: pageBase{Title: "t", CSRF: "tok"}, Bot: &bot, Conversation: &conv,
		Messages: []messageView{viewMessage(&answer, "tok")}})
	assertInertPage(t, "conversation", out)
	if !strings.Contains(out, `#t=63.5">Play the recording from 1:03</a>`) || strings.Contains(out, "<script>alert") {
		t.Errorf("the citation's link (start %v, end %v):\n%s", start, end, out)
	}
}
