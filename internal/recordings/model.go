package recordings

import (
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/nodus-os/nodus/internal/nodus"
)

// Statuses.
const (
	StatusPending      = "pending"
	StatusTranscribing = "transcribing"
	StatusSummarising  = "summarising"
	StatusCompleted    = "completed"
	StatusFailed       = "failed"
)

// DetailNoSpeechModel is the StatusDetail of a recording waiting for its
// tenant to configure a speech model.
const DetailNoSpeechModel = "waiting for a speech model: an org admin sets recordings.speech_model in the settings"

// Recording is an uploaded audio file and what was made of it.
type Recording struct {
	ID       string
	TenantID string
	UserID   string
	Title    string
	Filename string // the uploaded name, cleaned, for display only
	BlobID   string
	MIME     string // from the detected format
	Size     int64
	Duration float64 // seconds, from the container (or the transcription)
	Status   string
	// StatusDetail says what a pending or running recording waits for.
	StatusDetail string
	Error        string // why it failed
	Language     string
	Text         string
	Segments     []Segment
	Summary      string
	KeyPoints    []string
	Model        string // the speech model that transcribed it
	SummaryModel string
	ProcessingMS int64
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// Segment is a timed passage of a transcript. AvgLogprob and NoSpeechProb
// are the engine's confidence, kept so doubtful passages can be flagged.
type Segment struct {
	ID           int     `json:"id"`
	Start        float64 `json:"start"`
	End          float64 `json:"end"`
	Text         string  `json:"text"`
	AvgLogprob   float64 `json:"avg_logprob"`
	NoSpeechProb float64 `json:"no_speech_prob"`
}

// Doubtful reports whether the engine probably failed on s (whisper's
// heuristics: a low average log probability, or likely silence).
func (s Segment) Doubtful() bool {
	return s.AvgLogprob < -1 || s.NoSpeechProb > 0.6 && s.AvgLogprob < -0.5
}

// Filter selects recordings to list; UserID "" lists the tenant's.
type Filter struct {
	UserID string
	Status string
}

// Limits.
const (
	// DefaultMaxBytes is the default upload limit.
	DefaultMaxBytes = 100 << 20
	maxTitleRunes   = 200
	maxNameBytes    = 255
	maxSegments     = 20000
	maxTextBytes    = 4 << 20
)

// cleanText keeps s printable: control characters (but tab) become
// spaces, invalid UTF-8 is replaced, runs of space are trimmed, and it is
// cut to max runes. Titles and file names are shown, never used as paths.
func cleanText(s string, max int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' || unicode.Is(unicode.Bidi_Control, r) {
			return ' '
		}
		return r
	}, s)
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) > max {
		s = string([]rune(s)[:max])
	}
	return s
}

// cleanFilename keeps the last element of a client's file name, without
// directories, so a hostile name ("../../etc/passwd") is only ever text.
func cleanFilename(name string) string {
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	name = cleanText(name, maxNameBytes)
	for len(name) > maxNameBytes {
		_, n := utf8.DecodeLastRuneInString(name)
		name = name[:len(name)-n]
	}
	if name == "." || name == ".." {
		name = ""
	}
	return name
}

// titleFrom is a title for an upload without one: its file name without
// the extension, or "Recording".
func titleFrom(filename string) string {
	t := filename
	if i := strings.LastIndexByte(t, '.'); i > 0 {
		t = t[:i]
	}
	if t = cleanText(t, maxTitleRunes); t == "" {
		return "Recording"
	}
	return t
}

func checkTitle(t string) (string, error) {
	t = cleanText(t, maxTitleRunes+1)
	switch {
	case t == "":
		return "", invalid("title", "is required")
	case utf8.RuneCountInString(t) > maxTitleRunes:
		return "", invalid("title", "must be at most 200 characters")
	}
	return t, nil
}

func invalid(field, msg string) error {
	return &nodus.Error{Code: nodus.EINVALID, Message: "invalid recording: " + field + " " + msg,
		Fields: map[string]string{field: msg}}
}

func notFound(id string) error { return nodus.Errorf(nodus.ENOTFOUND, "recording %s not found", id) }
