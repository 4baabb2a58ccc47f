package knowledge

import (
	"math"
	"strings"
	"testing"

	"github.com/nodus-os/nodus/internal/nodus"
)

func validBase() KnowledgeBase {
	kb := KnowledgeBase{Name: "Handbook"}
	kb.SetDefaults()
	return kb
}

func TestSetDefaults(t *testing.T) {
	kb := KnowledgeBase{Name: "x"}
	kb.SetDefaults()
	if kb.Retrieval != DefaultRetrieval() || kb.Chunking != DefaultChunking() {
		t.Errorf("zero settings: %+v %+v", kb.Retrieval, kb.Chunking)
	}
	// Chosen zeros stay.
	kb = KnowledgeBase{Retrieval: RetrievalSettings{HybridWeight: 0.3}, Chunking: ChunkingSettings{Size: 200}}
	kb.SetDefaults()
	if kb.Retrieval.Mode != ModeFullText || kb.Retrieval.TopK != 4 || kb.Retrieval.HybridWeight != 0.3 ||
		kb.Chunking.Size != 200 || kb.Chunking.Overlap != 0 || kb.Chunking.HeaderAware {
		t.Errorf("partial settings: %+v %+v", kb.Retrieval, kb.Chunking)
	}
	if err := validBase().Validate(); err != nil {
		t.Errorf("defaults do not validate: %v", err)
	}
}

func TestKnowledgeBaseValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*KnowledgeBase)
		field  string // "" for valid
	}{
		{"valid", func(*KnowledgeBase) {}, ""},
		{"200 characters", func(kb *KnowledgeBase) { kb.Name = strings.Repeat("é", 200) }, ""},
		{"empty name", func(kb *KnowledgeBase) { kb.Name = "" }, "name"},
		{"blank name", func(kb *KnowledgeBase) { kb.Name = "   " }, "name"},
		{"201 characters", func(kb *KnowledgeBase) { kb.Name = strings.Repeat("a", 201) }, "name"},
		{"control character", func(kb *KnowledgeBase) { kb.Name = "a\x00b" }, "name"},
		{"newline", func(kb *KnowledgeBase) { kb.Name = "a\nb" }, "name"},
		{"long description", func(kb *KnowledgeBase) { kb.Description = strings.Repeat("a", 2001) }, "description"},
		{"unknown mode", func(kb *KnowledgeBase) { kb.Retrieval.Mode = "semantic" }, "retrieval.mode"},
		{"vector without model", func(kb *KnowledgeBase) { kb.Retrieval.Mode = ModeVector }, "retrieval.mode"},
		{"hybrid without model", func(kb *KnowledgeBase) { kb.Retrieval.Mode = ModeHybrid }, "retrieval.mode"},
		{"hybrid with model", func(kb *KnowledgeBase) { kb.Retrieval.Mode, kb.EmbeddingModel = ModeHybrid, "e5" }, ""},
		{"top_k 0", func(kb *KnowledgeBase) { kb.Retrieval.TopK = 0 }, "retrieval.top_k"},
		{"top_k 100", func(kb *KnowledgeBase) { kb.Retrieval.TopK = 100 }, ""},
		{"top_k 101", func(kb *KnowledgeBase) { kb.Retrieval.TopK = 101 }, "retrieval.top_k"},
		{"negative threshold", func(kb *KnowledgeBase) { kb.Retrieval.ScoreThreshold = -0.1 }, "retrieval.score_threshold"},
		{"NaN threshold", func(kb *KnowledgeBase) { kb.Retrieval.ScoreThreshold = math.NaN() }, "retrieval.score_threshold"},
		{"weight 1", func(kb *KnowledgeBase) { kb.Retrieval.HybridWeight = 1 }, ""},
		{"weight 1.5", func(kb *KnowledgeBase) { kb.Retrieval.HybridWeight = 1.5 }, "retrieval.hybrid_weight"},
		{"size 49", func(kb *KnowledgeBase) { kb.Chunking.Size, kb.Chunking.Overlap = 49, 0 }, "chunking.size"},
		{"size 8192", func(kb *KnowledgeBase) { kb.Chunking.Size = 8192 }, ""},
		{"size 8193", func(kb *KnowledgeBase) { kb.Chunking.Size = 8193 }, "chunking.size"},
		{"overlap just under half", func(kb *KnowledgeBase) { kb.Chunking.Size, kb.Chunking.Overlap = 100, 49 }, ""},
		{"overlap half", func(kb *KnowledgeBase) { kb.Chunking.Size, kb.Chunking.Overlap = 100, 50 }, "chunking.overlap"},
		{"negative overlap", func(kb *KnowledgeBase) { kb.Chunking.Overlap = -1 }, "chunking.overlap"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kb := validBase()
			tt.change(&kb)
			err := kb.Validate()
			if tt.field == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if nodus.ErrorCode(err) != nodus.EINVALID || nodus.ErrorFields(err)[tt.field] == "" ||
				!strings.Contains(nodus.ErrorMessage(err), tt.field) {
				t.Fatalf("Validate = %v (fields %v), want EINVALID naming %s", err, nodus.ErrorFields(err), tt.field)
			}
		})
	}
}

func TestDocumentValidate(t *testing.T) {
	ok := Document{Status: StatusPending, ContentHash: strings.Repeat("ab", 32)}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for field, d := range map[string]Document{
		"status":       {Status: "done"},
		"stage":        {Status: StatusProcessing, Stage: "parsing"},
		"progress":     {Status: StatusProcessing, Progress: 101},
		"file_size":    {Status: StatusPending, FileSize: -1},
		"content_hash": {Status: StatusPending, ContentHash: strings.Repeat("AB", 32)},
	} {
		if err := d.Validate(); nodus.ErrorFields(err)[field] == "" {
			t.Errorf("%s: %v", field, err)
		}
	}
}

func TestCheckTransition(t *testing.T) {
	allowed := map[[2]string]bool{
		{StatusPending, StatusPending}: true, {StatusPending, StatusProcessing}: true, {StatusPending, StatusFailed}: true,
		{StatusProcessing, StatusProcessing}: true, {StatusProcessing, StatusCompleted}: true,
		{StatusProcessing, StatusFailed}: true, {StatusProcessing, StatusPending}: true,
		{StatusCompleted, StatusCompleted}: true, {StatusCompleted, StatusPending}: true,
		{StatusFailed, StatusFailed}: true, {StatusFailed, StatusPending}: true, {StatusFailed, StatusProcessing}: true,
	}
	all := []string{StatusPending, StatusProcessing, StatusCompleted, StatusFailed, "done"}
	for _, from := range all {
		for _, to := range all {
			err := CheckTransition(from, to)
			if (err == nil) != allowed[[2]string{from, to}] {
				t.Errorf("%s → %s: %v", from, to, err)
			}
		}
	}
}
