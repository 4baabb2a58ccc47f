package gateway

import (
	"encoding/json"
	"io"
	"sort"

	jsonv1 "github.com/go-json-experiment/json/v1"
)

// EmbeddingRequest is the body of POST /v1/embeddings. Input is kept raw:
// a string, a list of strings, a token array or a list of token arrays,
// passed upstream as it came. Fields not modelled are kept in Extra.
type EmbeddingRequest struct {
	Model          string          `json:"model"`
	Input          json.RawMessage `json:"input"`
	EncodingFormat string          `json:"encoding_format,omitempty"` // "float" (default) or "base64"
	Dimensions     *int            `json:"dimensions,omitempty"`
	User           string          `json:"user,omitempty"`

	Extra map[string]json.RawMessage `json:"-"`
}

// knownEmbeddingFields are the JSON names of EmbeddingRequest's typed fields.
var knownEmbeddingFields = []string{"model", "input", "encoding_format", "dimensions", "user"}

type embeddingRequestFields EmbeddingRequest // the same fields without the methods

// UnmarshalJSON decodes the typed fields and keeps every other field in Extra.
func (r *EmbeddingRequest) UnmarshalJSON(b []byte) error {
	var f embeddingRequestFields
	extra, err := splitExtra(b, &f, knownEmbeddingFields)
	if err != nil {
		return err
	}
	f.Extra = extra
	*r = EmbeddingRequest(f)
	return nil
}

// MarshalJSON encodes the typed fields, then the Extra fields in key order.
func (r EmbeddingRequest) MarshalJSON() ([]byte, error) {
	b, err := jsonv1.Marshal(embeddingRequestFields(r))
	if err != nil {
		return nil, err
	}
	return joinExtra(b, r.Extra, knownEmbeddingFields)
}

// UpstreamOverrides returns the paths of the fields that try to choose the
// upstream, as ChatRequest.UpstreamOverrides does.
func (r *EmbeddingRequest) UpstreamOverrides() []string {
	var found []string
	upstreamOverrides("", r.Extra, &found)
	sort.Strings(found)
	return found
}

// EmbeddingResponse is the body of an embeddings answer. Each Embedding is
// raw: a JSON array of floats, or a base64 string of little-endian float32
// values when the request asked for base64.
type EmbeddingResponse struct {
	Object string          `json:"object"` // "list"
	Data   []Embedding     `json:"data"`
	Model  string          `json:"model"`
	Usage  *EmbeddingUsage `json:"usage,omitempty"`
}

// Embedding is one vector of an EmbeddingResponse.
type Embedding struct {
	Object    string          `json:"object"` // "embedding"
	Index     int             `json:"index"`
	Embedding json.RawMessage `json:"embedding"`
}

// EmbeddingUsage counts an embeddings call's tokens.
type EmbeddingUsage struct {
	PromptTokens int64 `json:"prompt_tokens"`
	TotalTokens  int64 `json:"total_tokens"`
}

// TranscriptionRequest is a POST /v1/audio/transcriptions call, parsed from
// its multipart form. File is read once, by the provider.
type TranscriptionRequest struct {
	Model                  string
	File                   io.Reader
	FileName               string // the client's name for the file, passed on as the part's filename only
	ContentType            string
	Language               string
	Prompt                 string
	ResponseFormat         string // json (default), text, srt, vtt, verbose_json
	Temperature            string // kept as sent
	TimestampGranularities []string
}

// TranscriptionResponse is the upstream's answer: Body and ContentType as
// the upstream sent them for response formats the gateway passes through
// (text, srt, vtt), and Text, Duration and Language read from json and
// verbose_json bodies for billing and the spend log.
type TranscriptionResponse struct {
	ContentType string
	Body        []byte
	Text        string
	Language    string
	Duration    float64 // seconds, when the upstream reports it
	Usage       *Usage  // when the upstream reports token usage
}
