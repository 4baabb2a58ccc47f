package chat_test

import (
	"context"
	"strings"
	"testing"

	"github.com/nodus-os/nodus/internal/chat"
	"github.com/nodus-os/nodus/internal/knowledge"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
)

// indexingSearcher finds nothing: its documents are still being indexed.
type indexingSearcher struct{ indexing int }

func (s indexingSearcher) Search(context.Context, chat.SearchRequest) ([]chat.Passage, error) {
	return nil, nil
}

func (s indexingSearcher) DocumentsIndexing(context.Context, string, string) (int, error) {
	return s.indexing, nil
}

// recordingSink keeps what a turn streamed.
type recordingSink struct {
	started bool
	text    strings.Builder
}

func (r *recordingSink) Started(*chat.Turn) error { r.started = true; return nil }
func (r *recordingSink) Delta(s string) error {
	r.text.WriteString(s)
	return nil
}

// TestTurnWhileIndexing: with nothing found and documents still being
// indexed, the answer says so, and no model is called (there is none).
func TestTurnWhileIndexing(t *testing.T) {
	storetest.RunMigrated(t, store.SetMain, func(t *testing.T, db *store.DB) {
		a := chat.Actor{TenantID: nodus.NewID(), UserID: "u1", Admin: true}
		ctx := context.Background()
		now := nodus.SystemClock{}.Now()
		kb := knowledge.KnowledgeBase{ID: nodus.NewID(), TenantID: a.TenantID, Name: "docs", CreatedAt: now, UpdatedAt: now}
		kb.SetDefaults()
		if err := db.CreateKnowledgeBase(nodus.WithTenant(ctx, a.TenantID), kb); err != nil {
			t.Fatal(err)
		}
		svc, err := chat.NewService(chat.Config{Store: db, Knowledge: indexingSearcher{indexing: 2}})
		if err != nil {
			t.Fatal(err)
		}
		name, model, kbs := "Helper", "any-model", []string{kb.ID}
		bot, err := svc.CreateChatbot(ctx, a, chat.ChatbotInput{Name: &name, ModelName: &model, KnowledgeBases: &kbs})
		if err != nil {
			t.Fatal(err)
		}
		sink := &recordingSink{}
		turn, err := svc.Turn(ctx, a, chat.TurnInput{ChatbotID: bot.ID, Message: "What is the refund policy?"}, sink)
		if err != nil {
			t.Fatal(err)
		}
		if !sink.started || !strings.Contains(sink.text.String(), "still being indexed") ||
			!strings.Contains(turn.Metadata.Notice, "2 document(s)") {
			t.Fatalf("answer %q, notice %q", sink.text.String(), turn.Metadata.Notice)
		}
		msgs, err := db.ListMessages(nodus.WithTenant(ctx, a.TenantID), turn.Conversation.ID, 0)
		if err != nil || len(msgs) != 2 || msgs[1].Content != sink.text.String() {
			t.Fatalf("stored %+v, %v", msgs, err)
		}
	})
}
