package recordingswire

import (
	"testing"

	"github.com/nodus-os/nodus/internal/nodus"
)

func TestParseVerboseJSON(t *testing.T) {
	// As whisper.cpp's server and OpenAI answer verbose_json.
	body := `{"task":"transcribe","language":"english","duration":4.2,"text":" Hello there. General Kenobi.",
	  "segments":[{"id":0,"seek":0,"start":0.0,"end":1.8,"text":" Hello there.","tokens":[1,2],"temperature":0.0,
	  "avg_logprob":-0.21,"compression_ratio":1.2,"no_speech_prob":0.01},
	  {"id":1,"seek":180,"start":1.8,"end":4.2,"text":" General Kenobi.","avg_logprob":-1.3,"no_speech_prob":0.2}],
	  "words":[{"word":"Hello","start":0,"end":0.4}]}`
	tr, err := ParseVerboseJSON([]byte(body), "", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if tr.Language != "english" || tr.Text != "Hello there. General Kenobi." || tr.Duration != 4.2 || len(tr.Segments) != 2 ||
		tr.Segments[1].Text != "General Kenobi." || tr.Segments[1].Start != 1.8 || tr.Segments[1].AvgLogprob != -1.3 ||
		tr.Segments[0].NoSpeechProb != 0.01 {
		t.Fatalf("parsed %+v", tr)
	}
	// Plain json: one segment over the reported duration.
	tr, err = ParseVerboseJSON([]byte(`{"text":"Just text."}`), "", "en", 3)
	if err != nil || len(tr.Segments) != 1 || tr.Segments[0].End != 3 || tr.Language != "en" {
		t.Fatalf("plain json: %+v, %v", tr, err)
	}
	for _, bad := range []string{`not json`, `{"text":"x","segments":[{"id":0,"start":5,"end":1,"text":"x"}]}`} {
		if _, err := ParseVerboseJSON([]byte(bad), "", "", 0); nodus.ErrorCode(err) != nodus.EINVALID {
			t.Errorf("%s: %v", bad, err)
		}
	}
}
