package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nodus-os/nodus/internal/blob"
	"github.com/nodus-os/nodus/internal/chat"
	"github.com/nodus-os/nodus/internal/chat/chatwire"
	"github.com/nodus-os/nodus/internal/fulltext"
	"github.com/nodus-os/nodus/internal/gateway"
	"github.com/nodus-os/nodus/internal/knowledge"
	memorymod "github.com/nodus-os/nodus/internal/memory"
	"github.com/nodus-os/nodus/internal/memory/memorywire"
)

// `bench chat` measures the time Nodus spends on a chat turn before the
// model is called: storing the question, reading the conversation,
// searching the chatbot's knowledge base (full text, as the default),
// recalling the user's memories (-memories of them, BM25), and assembling
// the prompt within the context budget. The knowledge base
// holds -sizes chunks of Zipf text (as `bench search`); the model is a
// stand-in at the gateway's door that notes when it is called and answers
// at once, so what is timed is the chat module and everything under it.
// The gateway's own added time is `bench gateway`'s (docs/benchmarks.md).

// Target from issue 7.
const targetChatP99 = 30 * time.Millisecond

type chatBench struct {
	sizes    []int
	turns    int
	memories int
	pgURL    string
	noSQLite bool
	out      io.Writer
}

func runChat(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("chat", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sizes := fs.String("sizes", "5000,100000", "knowledge base sizes, in chunks")
	turns := fs.Int("turns", 300, "chat turns per size")
	memories := fs.Int("memories", 200, "memories the user has with the chatbot, recalled from on each turn")
	pgURL := fs.String("postgres", os.Getenv("NODUS_TEST_POSTGRES_URL"), "PostgreSQL URL to measure too")
	skipSQLite := fs.Bool("no-sqlite", false, "measure PostgreSQL only")
	if err := fs.Parse(args); err != nil {
		return err
	}
	b := &chatBench{turns: *turns, memories: *memories, pgURL: *pgURL, noSQLite: *skipSQLite, out: stdout}
	for _, s := range strings.Split(*sizes, ",") {
		var n int
		if _, err := fmt.Sscan(strings.TrimSpace(s), &n); err != nil || n < 1 {
			return fmt.Errorf("bad size %q", s)
		}
		b.sizes = append(b.sizes, n)
	}
	engines := benchEngines(b.noSQLite, b.pgURL)
	type row struct {
		engine         string
		chunks         int
		cold, warm     searchLatency
		sources, turns float64
	}
	var rows []row
	for _, engine := range engines {
		for _, size := range b.sizes {
			cold, warm, sources, err := b.measure(ctx, engine, size)
			if err != nil {
				return fmt.Errorf("%s at %d chunks: %w", engine, size, err)
			}
			rows = append(rows, row{engine, size, cold, warm, sources, float64(b.turns)})
			fmt.Fprintf(b.out, "  %s, %d chunks: first pass p50 %s p99 %s, second pass p50 %s p99 %s\n",
				engine, size, cold.p50, cold.p99, warm.p50, warm.p99)
		}
	}
	w := tabwriter.NewWriter(b.out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "\nengine\tchunks\tfirst p50\tfirst p99\tthen p50\tthen p99\tthen max\tsources/turn\ttarget (then p99)\t\n")
	for _, r := range rows {
		verdict := "met"
		if r.warm.p99 > targetChatP99 {
			verdict = "NOT MET"
		}
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%.1f\t%s %s\t\n", r.engine, r.chunks, r.cold.p50, r.cold.p99,
			r.warm.p50, r.warm.p99, r.warm.max, r.sources, targetChatP99, verdict)
	}
	return w.Flush()
}

// doorModel stands at the gateway's door: it records how long after the
// turn began it was called, and answers at once.
type doorModel struct {
	began  time.Time
	called time.Duration
}

func (d *doorModel) Complete(context.Context, chat.ModelRequest) (string, *chat.ModelCall, error) {
	return "", nil, fmt.Errorf("the bench streams")
}

func (d *doorModel) Stream(_ context.Context, req chat.ModelRequest, delta func(string) error) (*chat.ModelCall, error) {
	d.called = time.Since(d.began)
	if err := delta("An answer [1]."); err != nil {
		return nil, err
	}
	return &chat.ModelCall{Model: req.Model, Usage: chat.Usage{PromptTokens: 100, CompletionTokens: 4, TotalTokens: 104}}, nil
}

// CountTokens is the gateway's: counting the prompt is part of the turn.
func (d *doorModel) CountTokens(model, text string) int64 { return gateway.CountTokens(model, text) }

type nullSink struct{}

func (nullSink) Started(*chat.Turn) error { return nil }
func (nullSink) Delta(string) error       { return nil }

func (b *chatBench) measure(ctx context.Context, engine string, size int) (cold, warm searchLatency, sources float64, err error) {
	bk, err := openBenchKB(ctx, engine, b.pgURL, nil)
	if err != nil {
		return cold, warm, 0, err
	}
	defer bk.close()
	gen := newZipfText(50000, 42)
	err = bk.fill(size, func(j int) knowledge.Chunk {
		text := gen.text(150)
		return knowledge.Chunk{Index: j, Text: text, End: len(text), Tokens: 150, Terms: fulltext.Analyze(text)}
	})
	if err != nil {
		return cold, warm, 0, err
	}
	dir, err := os.MkdirTemp("", "nodus-bench-chat-")
	if err != nil {
		return cold, warm, 0, err
	}
	defer os.RemoveAll(dir)
	blobs, err := blob.NewLocal(filepath.Join(dir, "blobs"))
	if err != nil {
		return cold, warm, 0, err
	}
	defer blobs.Close()
	kn, err := knowledge.NewService(knowledge.Config{Store: bk.db, Blobs: blobs})
	if err != nil {
		return cold, warm, 0, err
	}
	model := &doorModel{}
	mem, err := memorymod.NewService(memorymod.Config{Store: bk.db})
	if err != nil {
		return cold, warm, 0, err
	}
	remembered := 0
	svc, err := chat.NewService(chat.Config{Store: bk.db, Knowledge: chatwire.Knowledge{Service: kn}, Models: model,
		Memory: memorywire.ChatMemory{Service: mem, Enqueue: func(context.Context, chat.RememberRequest) error {
			remembered++ // the job's work is off the turn's path
			return nil
		}}})
	if err != nil {
		return cold, warm, 0, err
	}
	actor := chat.Actor{TenantID: bk.tenant, UserID: "bench-user", Admin: true}
	name, modelName, kbs, on := "bench", "gpt-4o", []string{bk.kb.ID}, true
	bot, err := svc.CreateChatbot(ctx, actor, chat.ChatbotInput{Name: &name, ModelName: &modelName, KnowledgeBases: &kbs,
		MemoryEnabled: &on})
	if err != nil {
		return cold, warm, 0, err
	}
	// The user has a history of memories with this chatbot to recall from.
	mgen := newZipfText(50000, 11)
	for i := range b.memories {
		text := "My " + mgen.text(6) + " is " + mgen.text(3) + "."
		if _, err := mem.Add(ctx, memorymod.AddInput{TenantID: bk.tenant, AppName: bot.ID, UserID: actor.UserID,
			Messages: []memorymod.Message{{ID: fmt.Sprint(i), Role: "user", Content: text}}}); err != nil {
			return cold, warm, 0, err
		}
	}
	qgen := newZipfText(50000, 7)
	questions := make([]string, b.turns)
	for i := range questions {
		questions[i] = qgen.text(5 + i%10)
	}
	// The same questions twice, as `bench search` does: the first pass
	// reads the posting lists of their terms from the database.
	total := 0
	for pass, dst := range []*searchLatency{&cold, &warm} {
		conv := ""
		lat := make([]time.Duration, 0, b.turns)
		for i, q := range questions {
			if i%20 == 0 {
				conv = "" // a new conversation now and then; each holds up to 40 messages
			}
			model.began = time.Now()
			t, err := svc.Turn(ctx, actor, chat.TurnInput{ChatbotID: bot.ID, ConversationID: conv, Message: q}, nullSink{})
			if err != nil {
				return cold, warm, 0, fmt.Errorf("pass %d turn %d: %w", pass+1, i, err)
			}
			conv = t.Conversation.ID
			lat = append(lat, model.called)
			total += len(t.Metadata.Citations)
		}
		*dst = latencyOf(lat, 0)
	}
	return cold, warm, float64(total) / float64(2*b.turns), nil
}
