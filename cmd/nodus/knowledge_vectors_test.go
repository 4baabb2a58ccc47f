package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/gateway/gatewaytest"
	"github.com/nodus-os/nodus/internal/store/storetest"
)

// TestKnowledgeVectorsThroughGateway runs a full `nodus serve`, on both
// databases, with a knowledge base whose embedding model is a gateway
// deployment on the fake upstream: the job embeds the document's chunks
// through the gateway (one spend row per call, the tenant's), and vector
// and hybrid searches embed the query the same way and find the chunk
// whose text it repeats (the fake's vectors are a hash of the text).
func TestKnowledgeVectorsThroughGateway(t *testing.T) {
	storetest.RunURL(t, func(t *testing.T, databaseURL string) {
		w := newGatewayWorld(t, databaseURL, gatewaytest.Script{EmbeddingDims: 32})
		w.do(t, w.orgAdmin, "POST", "/api/v1/gateway/deployments", map[string]any{"model_name": "embed", "provider": "openai",
			"upstream_model": "text-embedding-3-small", "base_url": w.fake.URL + "/v1",
			"api_key_handle": w.handle, "timeout_seconds": 5}, 201, nil)
		var kb struct {
			KnowledgeBase struct {
				ID string
			} `json:"knowledge_base"`
		}
		w.do(t, w.orgAdmin, "POST", "/api/v1/knowledge-bases", map[string]any{"name": "Vectors",
			"embedding_model": "embed", "retrieval": map[string]any{"mode": "vector", "top_k": 3}}, 201, &kb)
		base := "/api/v1/knowledge-bases/" + kb.KnowledgeBase.ID

		text := "The lighthouse keeper logs every passing ship in a blue ledger."
		status, body := w.orgAdmin.upload(base+"/documents", "ledger.txt", text)
		var d documentAnswer
		if status != 201 || json.Unmarshal(body, &d) != nil {
			t.Fatalf("upload: %d %s", status, body)
		}
		other := "Bakers start before dawn to have bread ready for the morning market."
		if status, body := w.orgAdmin.upload(base+"/documents", "bakery.txt", other); status != 201 {
			t.Fatalf("upload: %d %s", status, body)
		}
		deadline := time.Now().Add(60 * time.Second)
		for {
			var list struct {
				Documents []struct{ Status, Stage, Error string }
			}
			w.do(t, w.orgAdmin, "GET", base+"/documents", nil, 200, &list)
			done := 0
			for _, doc := range list.Documents {
				if doc.Status == "failed" {
					t.Fatalf("a document failed at %s: %s\n%s", doc.Stage, doc.Error, w.in.logs.String())
				}
				if doc.Status == "completed" {
					done++
				}
			}
			if done == 2 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("documents not ingested: %+v\n%s", list, w.in.logs.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
		embedCalls := 0
		for _, r := range w.fake.Requests() {
			if strings.HasSuffix(r.Path, "/embeddings") {
				embedCalls++
			}
		}
		if embedCalls != 2 {
			t.Fatalf("%d embeddings calls reached the provider, want one per document", embedCalls)
		}

		type hit struct {
			DocumentID    string   `json:"document_id"`
			Score         float64  `json:"score"`
			VectorScore   *float64 `json:"vector_score"`
			FullTextScore *float64 `json:"fulltext_score"`
		}
		var res struct {
			Mode string
			Hits []hit
		}
		for _, mode := range []string{"vector", "hybrid"} {
			w.do(t, w.orgAdmin, "POST", base+"/search", map[string]any{"query": text, "mode": mode}, 200, &res)
			if res.Mode != mode || len(res.Hits) == 0 || res.Hits[0].DocumentID != d.Document.ID ||
				res.Hits[0].VectorScore == nil || *res.Hits[0].VectorScore < 0.999 {
				t.Fatalf("%s search: %+v", mode, res)
			}
		}
		if res.Hits[0].FullTextScore == nil {
			t.Fatalf("hybrid hit without its full-text score: %+v", res.Hits[0])
		}

		// Every call was the tenant's and reaches its spend log (written
		// in batches, off the request path).
		var spend struct {
			Spend []struct {
				Model  string `json:"model"`
				Status string `json:"status"`
			}
		}
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			w.do(t, w.orgAdmin, "GET", "/api/v1/spend?limit=500", nil, 200, &spend)
			embeds := 0
			for _, s := range spend.Spend {
				if s.Model == "embed" && s.Status == "success" {
					embeds++
				}
			}
			if embeds == 4 { // two documents, two queries
				break
			}
			if embeds > 4 || time.Now().After(deadline) {
				t.Fatalf("%d embedding calls in the spend log, want 4: %+v", embeds, spend.Spend)
			}
		}
	})
}
