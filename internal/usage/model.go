package usage

import (
	"slices"
	"time"
)

// DayFormat is how days are written: UTC dates.
const DayFormat = time.DateOnly

// Row is one day's usage of a tenant by one chatbot, user and model.
// Empty ids stand for none: gateway calls outside a chat have no chatbot,
// conversations and documents no model.
type Row struct {
	TenantID         string `json:"-"`
	Day              string `json:"day,omitempty"`
	ChatbotID        string `json:"chatbot_id,omitempty"`
	UserID           string `json:"user_id,omitempty"`
	Model            string `json:"model,omitempty"`
	Requests         int64  `json:"requests"`
	Errors           int64  `json:"errors"`
	PromptTokens     int64  `json:"prompt_tokens"`
	CompletionTokens int64  `json:"completion_tokens"`
	CostMicros       int64  `json:"cost_micros"`
	ChatTurns        int64  `json:"chat_turns"`
	Conversations    int64  `json:"conversations"`
	Documents        int64  `json:"documents"`
}

// add sums o's figures into r.
func (r *Row) add(o Row) {
	r.Requests += o.Requests
	r.Errors += o.Errors
	r.PromptTokens += o.PromptTokens
	r.CompletionTokens += o.CompletionTokens
	r.CostMicros += o.CostMicros
	r.ChatTurns += o.ChatTurns
	r.Conversations += o.Conversations
	r.Documents += o.Documents
}

func (r Row) zero() bool {
	return r.Requests == 0 && r.Errors == 0 && r.PromptTokens == 0 && r.CompletionTokens == 0 && r.CostMicros == 0 &&
		r.ChatTurns == 0 && r.Conversations == 0 && r.Documents == 0
}

// The dimensions a query may group by.
const (
	GroupDay     = "day"
	GroupModel   = "model"
	GroupUser    = "user"
	GroupChatbot = "chatbot"
)

// Groups lists the dimensions, in the order rows are sorted by them.
func Groups() []string { return []string{GroupDay, GroupChatbot, GroupUser, GroupModel} }

// Query selects a tenant's usage over days From to To (inclusive),
// summed by GroupBy (none: one row of totals).
type Query struct {
	From, To string
	GroupBy  []string
}

// Result is a query's rows, ordered by their groups, and their totals.
type Result struct {
	From    string   `json:"from"`
	To      string   `json:"to"`
	GroupBy []string `json:"group_by"`
	Rows    []Row    `json:"rows"`
	Totals  Row      `json:"totals"`
}

// Limits.
const (
	// MaxDays bounds a query's period.
	MaxDays = 366
	// MaxRows bounds a query's rows: a year by user and model could be
	// large; the API says when it cut.
	MaxRows = 10000
)

// validGroups reports whether every name is a dimension, once.
func validGroups(g []string) bool {
	for i, x := range g {
		if !slices.Contains(Groups(), x) || slices.Contains(g[:i], x) {
			return false
		}
	}
	return true
}

// Activity is what the main database recorded in a period: the chat turns
// (an assistant message each, with its gateway request id when a model
// answered), conversations started and documents ingested.
type Activity struct {
	Turns         []Turn
	Conversations []Row // ChatbotID, UserID and Conversations set
	Documents     []Row // UserID and Documents set
}

// Turn is one chat answer.
type Turn struct {
	TenantID, ChatbotID, UserID, Model string
	RequestID                          string // the gateway's, "" when no model was called
	At                                 time.Time
}

// Call is one gateway call, from its spend log row.
type Call struct {
	RequestID, TenantID, UserID, Model string
	PromptTokens, CompletionTokens     int64
	CostMicros                         int64
	Failed                             bool
	StartedAt                          time.Time
}
