package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
)

// `bench synth` writes a synthetic dataset in BEIR's layout, for measuring
// ingestion and search on a corpus larger than SciFact:
//
//	go run ./bench synth -docs 50000 -out /tmp/synth
//	go run ./cmd/nodus eval retrieval /tmp/synth
//
// Documents are a title and -words words of made-up vocabulary with Zipf
// frequencies (as in `bench search`). Each query is 4 to 10 words drawn
// from one document, one of them among its rarest, and that document is
// its one relevant answer: the nDCG it yields is a sanity check, not a
// quality figure.
func runSynth(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("synth", flag.ContinueOnError)
	fs.SetOutput(stderr)
	docs := fs.Int("docs", 50000, "documents")
	words := fs.Int("words", 200, "words per document")
	queries := fs.Int("queries", 500, "queries")
	out := fs.String("out", "", "directory to write (created; must not exist)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" || *docs < 1 || *queries < 1 || *queries > *docs {
		return fmt.Errorf("-out is required, and 1 <= -queries <= -docs")
	}
	if err := os.Mkdir(*out, 0o755); err != nil {
		return err
	}
	if err := os.Mkdir(filepath.Join(*out, "qrels"), 0o755); err != nil {
		return err
	}
	gen := newZipfText(50000, 11)
	rng := rand.New(rand.NewPCG(5, 5))
	picked := make(map[int]bool)
	for len(picked) < *queries {
		picked[rng.IntN(*docs)] = true
	}

	write := func(name string, fill func(w *bufio.Writer) error) error {
		f, err := os.Create(filepath.Join(*out, name))
		if err != nil {
			return err
		}
		w := bufio.NewWriter(f)
		if err := fill(w); err != nil {
			f.Close()
			return err
		}
		if err := w.Flush(); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	}
	type query struct{ id, text, doc string }
	var qs []query
	var size int64
	err := write("corpus.jsonl", func(w *bufio.Writer) error {
		enc := json.NewEncoder(w)
		for i := range *docs {
			id := fmt.Sprintf("d%d", i)
			text := gen.text(*words)
			size += int64(len(text))
			if err := enc.Encode(map[string]string{"_id": id, "title": gen.text(6), "text": text}); err != nil {
				return err
			}
			if picked[i] {
				ws := strings.Fields(text)
				n := 4 + rng.IntN(7)
				q := make([]string, n)
				for j := range q {
					q[j] = ws[rng.IntN(len(ws))]
				}
				// The longest word stands for a rare one: Zipf gives long
				// made-up words no special rank, but they repeat least.
				for _, w := range ws {
					if len(w) > len(q[0]) {
						q[0] = w
					}
				}
				qs = append(qs, query{fmt.Sprintf("q%d", len(qs)), strings.Join(q, " "), id})
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := write("queries.jsonl", func(w *bufio.Writer) error {
		enc := json.NewEncoder(w)
		for _, q := range qs {
			if err := enc.Encode(map[string]string{"_id": q.id, "text": q.text}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return err
	}
	if err := write("qrels/test.tsv", func(w *bufio.Writer) error {
		fmt.Fprintln(w, "query-id\tcorpus-id\tscore")
		for _, q := range qs {
			fmt.Fprintf(w, "%s\t%s\t1\n", q.id, q.doc)
		}
		return nil
	}); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %d documents (%.1f MB of text) and %d queries to %s\n", *docs, float64(size)/1e6, len(qs), *out)
	return nil
}
