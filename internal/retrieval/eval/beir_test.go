package eval

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestReadCorpus(t *testing.T) {
	in := "\ufeff{\"_id\": \"4983\", \"title\": \"T\", \"text\": \"Body.\", \"metadata\": {}}\r\n" +
		"\n" +
		"{\"_id\": 7, \"text\": \"Numeric id, no title.\"}\n"
	var got []Document
	err := ReadCorpus(strings.NewReader(in), func(d Document) error { got = append(got, d); return nil })
	if err != nil {
		t.Fatal(err)
	}
	want := []Document{{ID: "4983", Title: "T", Text: "Body."}, {ID: "7", Text: "Numeric id, no title."}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}

	stop := errors.New("stop")
	if err := ReadCorpus(strings.NewReader(in), func(Document) error { return stop }); err != stop {
		t.Errorf("fn's error: got %v", err)
	}
}

func TestReadErrors(t *testing.T) {
	corpus := func(in string) error {
		return ReadCorpus(strings.NewReader(in), func(Document) error { return nil })
	}
	queries := func(in string) error { _, err := ReadQueries(strings.NewReader(in)); return err }
	qrels := func(in string) error { _, err := ReadQrels(strings.NewReader(in)); return err }
	tests := []struct {
		name string
		read func(string) error
		in   string
		want string
	}{
		{"corpus: bad JSON", corpus, "{\"_id\":\"1\"}\n{\"_id\":\n", "line 2: invalid JSON"},
		{"corpus: no id", corpus, "{\"_id\":\"1\"}\n\n{\"text\":\"x\"}\n", "line 3: no _id"},
		{"corpus: two values", corpus, "{\"_id\":\"1\"} {}\n", "line 1: invalid JSON: more than one value"},
		{"corpus: id not a string", corpus, "{\"_id\":[1]}\n", "line 1: invalid JSON"},
		{"queries: duplicate", queries, "{\"_id\":\"1\",\"text\":\"a\"}\n{\"_id\":\"1\",\"text\":\"b\"}\n", `line 2: query "1" already on line 1`},
		{"qrels: no header", qrels, "q1\td1\t1\n", "line 1: want the header"},
		{"qrels: empty", qrels, "", "empty file"},
		{"qrels: fields", qrels, "query-id\tcorpus-id\tscore\nq1\td1\n", "line 2: want 3 tab-separated fields, got 2"},
		{"qrels: score", qrels, "query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\t0.5\n", `line 3: score "0.5" is not an integer`},
		{"qrels: empty id", qrels, "query-id\tcorpus-id\tscore\n\td1\t1\n", "line 2: empty query-id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.read(tt.in)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestReadLinesBounded(t *testing.T) {
	in := "short\n" + strings.Repeat("x", 100) + "\nmore\n"
	var lines []int
	err := readLines(strings.NewReader(in), 50, func(n int, _ []byte) error { lines = append(lines, n); return nil })
	if err == nil || !strings.Contains(err.Error(), "line 2: longer than 50 bytes") {
		t.Errorf("got %v, want line 2 too long", err)
	}
	if !reflect.DeepEqual(lines, []int{1}) {
		t.Errorf("read lines %v before the error, want [1]", lines)
	}
	// A line of exactly the limit, with CRLF, is fine.
	in = strings.Repeat("y", 50) + "\r\n"
	if err := readLines(strings.NewReader(in), 50, func(int, []byte) error { return nil }); err != nil {
		t.Errorf("line at the limit: %v", err)
	}
}

func TestReadQrels(t *testing.T) {
	in := "query-id\tcorpus-id\tscore\r\nq1\td1\t1\r\nq1\td2\t2\r\nq2\td1\t0\r\nq1\td1\t3\r\n"
	got, err := ReadQrels(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := Qrels{"q1": {"d1": 3, "d2": 2}, "q2": {"d1": 0}} // the last of duplicates wins
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// TestDir reads a tiny BEIR directory and evaluates a run over it.
func TestDir(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("corpus.jsonl", `{"_id": "d1", "title": "Cats", "text": "Cats purr."}
{"_id": "d2", "title": "Dogs", "text": "Dogs bark."}
{"_id": "d3", "title": "Birds", "text": "Birds sing."}
`)
	write("queries.jsonl", `{"_id": "q1", "text": "what purrs"}
{"_id": "q2", "text": "what barks or sings", "metadata": {}}
{"_id": "q3", "text": "unjudged query"}
`)
	write("qrels/test.tsv", "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t2\nq2\td3\t1\n")
	write("qrels/dev.tsv", "query-id\tcorpus-id\tscore\nq1\td1\t1\n")

	d := Dir(dir)
	var docs []string
	if err := d.Corpus(func(doc Document) error { docs = append(docs, doc.ID+":"+doc.Title); return nil }); err != nil {
		t.Fatal(err)
	}
	if want := []string{"d1:Cats", "d2:Dogs", "d3:Birds"}; !reflect.DeepEqual(docs, want) {
		t.Errorf("corpus %v, want %v", docs, want)
	}
	queries, err := d.Queries()
	if err != nil || len(queries) != 3 || queries[1] != (Query{ID: "q2", Text: "what barks or sings"}) {
		t.Fatalf("queries %+v, %v", queries, err)
	}
	splits, err := d.Splits()
	if err != nil || !reflect.DeepEqual(splits, []string{"dev", "test"}) {
		t.Fatalf("splits %v, %v", splits, err)
	}
	qrels, err := d.Qrels("test")
	if err != nil {
		t.Fatal(err)
	}

	// A run that gets q1 right and ranks q2's documents in the wrong order;
	// q3 has no judgements and does not count.
	run := map[string][]string{"q1": {"d1", "d2"}, "q2": {"d3", "d2", "d1"}, "q3": {"d1"}}
	rep := Evaluate(qrels, run, Options{})
	q2 := (1 + 2/math.Log2(3)) / (2 + 1/math.Log2(3))
	want := Scores{NDCG10: (1 + q2) / 2, Recall100: 1, MRR10: 1}
	if rep.Queries != 2 || !near(rep.Mean, want) {
		t.Errorf("report %+v, want 2 queries with %+v", rep, want)
	}

	if _, err := d.Qrels("../corpus"); err == nil {
		t.Error("a split name with a path was accepted")
	}
	if _, err := Dir(filepath.Join(dir, "missing")).Queries(); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing directory: %v", err)
	}
	write("queries.jsonl", "{\"_id\": \"q1\"}\nnot json\n")
	if _, err := d.Queries(); err == nil || !strings.Contains(err.Error(), "queries.jsonl: line 2:") {
		t.Errorf("error %v does not name the file and line", err)
	}
}
