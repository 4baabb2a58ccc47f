package jobs

import (
	"context"
	"fmt"
	"time"

	"github.com/riverqueue/river"
)

// MemoryArgs is the job that writes a chat exchange to its user's
// long-term memory: the question and answer of a conversation of a
// chatbot with memory on.
type MemoryArgs struct {
	TenantID       string `json:"tenant_id"`
	App            string `json:"app"`
	UserID         string `json:"user_id"`
	ConversationID string `json:"conversation_id"`
	QuestionID     string `json:"question_id"`
	AnswerID       string `json:"answer_id"`
	Model          string `json:"model"`
}

// Kind names the job in the queue.
func (MemoryArgs) Kind() string { return "nodus_chat_memory" }

// InsertOpts retries a few times: extraction calls a model, which may be
// briefly down.
func (MemoryArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{MaxAttempts: 4} }

// Rememberer writes an exchange to memory (wired in cmd/nodus: the
// chat and memory modules do not import jobs).
type Rememberer func(ctx context.Context, args MemoryArgs) error

// memoryTimeout bounds one run: two model calls per fact at most.
const memoryTimeout = 5 * time.Minute

type memoryWorker struct {
	river.WorkerDefaults[MemoryArgs]
	remember Rememberer
}

// Work writes the exchange. Errors a retry cannot fix (the conversation
// was deleted, the input is refused) end the job, others are retried.
func (w *memoryWorker) Work(ctx context.Context, job *river.Job[MemoryArgs]) error {
	err := w.remember(ctx, job.Args)
	if err == nil || final(ctx, err) {
		return nil
	}
	return fmt.Errorf("remember conversation %s: %w", job.Args.ConversationID, err)
}

// Timeout implements river.Worker.
func (w *memoryWorker) Timeout(*river.Job[MemoryArgs]) time.Duration { return memoryTimeout }

// AddMemory registers the memory worker.
func AddMemory(workers *river.Workers, remember Rememberer) {
	river.AddWorker(workers, &memoryWorker{remember: remember})
}
