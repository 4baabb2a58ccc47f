package main

import (
	"bytes"
	"context"
	"encoding/json"
	"hash/fnv"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nodus-os/nodus/internal/store/storetest"
)

// evalCorpus is a tiny BEIR corpus: eight topics, each with a word no
// other document holds, except the zeppelin, which two share.
var evalCorpus = []struct{ id, title, text string }{
	{"d1", "Volcanoes", "A stratovolcano erupts lava and ash; magma chambers feed each eruption."},
	{"d2", "Gardening", "Tomatoes grow best in compost; the gardener waters the seedlings at dawn."},
	{"d3", "Astronomy", "A quasar outshines its whole galaxy, powered by a black hole."},
	{"d4", "Baking", "Sourdough bread rises slowly with a wild yeast starter and rye flour."},
	{"d5", "Sailing", "The catamaran tacks upwind; two hulls keep the boat level in a gust."},
	{"d6", "Airships", "The zeppelin crossed the Atlantic with hydrogen in its gas cells."},
	{"d7", "Museums", "A restored zeppelin gondola hangs in the aviation museum's main hall."},
	{"d8", "Chess", "The grandmaster sacrificed a bishop to open the king's file."},
}

// evalQueries each match one document by a word only it holds, except q4,
// which matches both zeppelin documents.
var evalQueries = []struct{ id, text string }{
	{"q1", "stratovolcano"},
	{"q2", "quasar"},
	{"q3", "catamaran tacks"},
	{"q4", "zeppelin"},
}

const evalQrels = "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td3\t1\nq3\td5\t1\nq4\td6\t1\nq4\td7\t1\n"

// writeBEIR writes the corpus and the queries into a new directory, with a
// qrels file for each split (name to content); it returns the directory.
func writeBEIR(t *testing.T, splits map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	var corpus, queries bytes.Buffer
	for _, d := range evalCorpus {
		corpus.Write(mustJSON(map[string]string{"_id": d.id, "title": d.title, "text": d.text}))
		corpus.WriteByte('\n')
	}
	for _, q := range evalQueries {
		queries.Write(mustJSON(map[string]string{"_id": q.id, "text": q.text}))
		queries.WriteByte('\n')
	}
	files := map[string]string{"corpus.jsonl": corpus.String(), "queries.jsonl": queries.String()}
	for split, content := range splits {
		files[filepath.Join("qrels", split+".tsv")] = content
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// evalRun runs `nodus eval` with args and returns its output.
func evalRun(args ...string) (stdout, stderr string, err error) {
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err = run(ctx, append([]string{"nodus", "eval"}, args...), env(nil), strings.NewReader(""), &out, &errOut)
	return out.String(), errOut.String(), err
}

var ndcgLine = regexp.MustCompile(`(?m)^nDCG@10\s+([0-9.]+)\s*$`)

// TestEvalRetrieval runs `nodus eval retrieval` over a tiny dataset whose
// queries each name a word only their documents hold, on both databases:
// the ranking is perfect, and a PostgreSQL run leaves no rows behind.
func TestEvalRetrieval(t *testing.T) {
	dir := writeBEIR(t, map[string]string{"test": evalQrels})
	storetest.RunURL(t, func(t *testing.T, databaseURL string) {
		args := []string{"retrieval", "--workers", "2", dir}
		engine := "sqlite"
		if strings.HasPrefix(databaseURL, "postgres") {
			args = append([]string{"retrieval", "--database-url", databaseURL}, args[1:]...)
			engine = "postgres"
		}
		out, errOut, err := evalRun(args...)
		if err != nil {
			t.Fatalf("eval: %v\nstdout:\n%s\nstderr:\n%s", err, out, errOut)
		}
		m := ndcgLine.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no nDCG@10 line in:\n%s", out)
		}
		if v, err := strconv.ParseFloat(m[1], 64); err != nil || m[1] != "1.0000" || v != 1 {
			t.Errorf("nDCG@10 = %q, want 1.0000\n%s", m[1], out)
		}
		if !regexp.MustCompile(`(?m)^Database\s+`+engine+`$`).MatchString(out) ||
			!strings.Contains(out, "Ingested   8 documents (0 duplicates skipped, 0 failed)") ||
			!strings.Contains(out, "(split test, 4 queries)") {
			t.Errorf("output does not name the %s engine, 8 documents and 4 queries:\n%s", engine, out)
		}
		for _, metric := range []string{"Recall@100", "MRR@10"} {
			if !regexp.MustCompile(`(?m)^` + metric + `\s+1\.0000$`).MatchString(out) {
				t.Errorf("%s is not 1.0000:\n%s", metric, out)
			}
		}

		if engine != "postgres" {
			return
		}
		// The scratch tenant is purged: no knowledge base, document or
		// chunk is left in the schema the run migrated.
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, databaseURL)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		for table, query := range map[string]string{
			"knowledge_bases": "SELECT count(*) FROM knowledge_bases WHERE name LIKE 'eval %'",
			"documents":       "SELECT count(*) FROM documents",
			"kb_chunks":       "SELECT count(*) FROM kb_chunks",
		} {
			var n int
			if err := conn.QueryRow(ctx, query).Scan(&n); err != nil {
				t.Fatalf("%s: %v", query, err)
			}
			if n != 0 {
				t.Errorf("%s: %d rows left after the run", table, n)
			}
		}
	})
}

// TestEvalRetrievalErrors checks the usage and dataset errors of `nodus
// eval`: usage errors exit 2, and each message says what is wrong.
func TestEvalRetrievalErrors(t *testing.T) {
	noQrels := writeBEIR(t, nil)
	splits := writeBEIR(t, map[string]string{"dev": evalQrels, "train": evalQrels})
	tests := []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"no subcommand", nil, 2, []string{"subcommand"}},
		{"missing dir", []string{"retrieval"}, 2, []string{"one dataset directory"}},
		{"unknown subcommand", []string{"generation", noQrels}, 2, []string{`unknown eval subcommand "generation"`}},
		{"two dirs", []string{"retrieval", noQrels, splits}, 2, []string{"one dataset directory"}},
		{"no qrels", []string{"retrieval", noQrels}, 0, []string{"qrels"}},
		{"several splits", []string{"retrieval", splits}, 2, []string{"dev", "train", "--split"}},
		{"missing split", []string{"retrieval", "--split", "test", splits}, 1, []string{"test.tsv"}},
		{"missing dataset", []string{"retrieval", filepath.Join(noQrels, "nowhere")}, 0, []string{"nowhere"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _, err := evalRun(tt.args...)
			if err == nil {
				t.Fatalf("%v: success, want an error\n%s", tt.args, out)
			}
			if tt.code != 0 && exitCode(err) != tt.code {
				t.Errorf("%v: exit %d (%v), want %d", tt.args, exitCode(err), err, tt.code)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%v: error %q does not mention %q", tt.args, err, w)
				}
			}
		})
	}
}

// wordServer is an OpenAI-compatible embeddings server on loopback whose
// vectors count a text's words hashed over 64 dimensions: texts sharing
// words are similar, as a real model's sharing meaning are.
func wordServer(t *testing.T) (url string, calls *atomic.Int64) {
	t.Helper()
	calls = new(atomic.Int64)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Model string   `json:"model"`
			Input []string `json:"input"`
		}
		if r.URL.Path != "/v1/embeddings" || r.Header.Get("Authorization") != "Bearer word-key" ||
			json.NewDecoder(r.Body).Decode(&req) != nil || req.Model != "words" {
			http.Error(w, `{"error":{"message":"bad request"}}`, http.StatusBadRequest)
			return
		}
		calls.Add(1)
		type item struct {
			Index     int       `json:"index"`
			Embedding []float32 `json:"embedding"`
		}
		var data []item
		for i, text := range req.Input {
			v := make([]float32, 64)
			for _, word := range strings.Fields(strings.ToLower(text)) {
				h := fnv.New32a()
				h.Write([]byte(strings.Trim(word, ".,;'")))
				v[h.Sum32()%64]++
			}
			data = append(data, item{Index: i, Embedding: v})
		}
		json.NewEncoder(w).Encode(map[string]any{"object": "list", "data": data, "model": req.Model})
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/v1", calls
}

// TestEvalRetrievalWithEmbeddings measures vector and hybrid search too,
// the knowledge base embedding through the server --embedding-url names.
func TestEvalRetrievalWithEmbeddings(t *testing.T) {
	dir := writeBEIR(t, map[string]string{"test": evalQrels})
	url, calls := wordServer(t)
	t.Setenv("EVAL_WORD_KEY", "word-key")
	out, errOut, err := evalRun("retrieval", "--workers", "2", "--embedding-url", url, "--embedding-model", "words",
		"--embedding-key-env", "EVAL_WORD_KEY", "--hybrid-weights", "0.5,1", dir)
	if err != nil {
		t.Fatalf("eval: %v\nstdout:\n%s\nstderr:\n%s", err, out, errOut)
	}
	header := regexp.MustCompile(`(?m)^metric\s+full-text\s+vector\s+hybrid 0.5\s+hybrid 1$`)
	row := regexp.MustCompile(`(?m)^nDCG@10\s+1\.0000\s+([0-9.]+)\s+([0-9.]+)\s+([0-9.]+)$`)
	m := row.FindStringSubmatch(out)
	if !header.MatchString(out) || m == nil {
		t.Fatalf("no table of four modes:\n%s", out)
	}
	for _, v := range m[1:] {
		if f, _ := strconv.ParseFloat(v, 64); f < 0.5 {
			t.Errorf("nDCG@10 %s: the vectors found little of a corpus whose queries share words with it\n%s", v, out)
		}
	}
	// Eight documents, one call each; four queries embedded once each
	// whatever the modes.
	if n := calls.Load(); n != 8+4 {
		t.Errorf("%d embedding calls, want 12", n)
	}

	_, _, err = evalRun("retrieval", "--embedding-model", "words", dir)
	if err == nil {
		t.Fatal("--embedding-model without --embedding-url ran")
	}
}
