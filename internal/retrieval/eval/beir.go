package eval

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// MaxLine is the longest line the readers accept, in bytes. BEIR's largest
// documents are far shorter; a longer line means a file that is not JSONL.
const MaxLine = 16 << 20

// Document is one line of corpus.jsonl. Fields other than these are
// ignored.
type Document struct {
	ID    string
	Title string
	Text  string
}

// Query is one line of queries.jsonl.
type Query struct {
	ID   string
	Text string
}

// Dir is a BEIR-layout dataset directory: corpus.jsonl, queries.jsonl and
// qrels/<split>.tsv.
type Dir string

// Corpus calls fn with each document of corpus.jsonl, in file order, and
// stops at fn's first error.
func (d Dir) Corpus(fn func(Document) error) error {
	return d.open("corpus.jsonl", func(r io.Reader) error { return ReadCorpus(r, fn) })
}

// Queries reads queries.jsonl.
func (d Dir) Queries() ([]Query, error) {
	var qs []Query
	err := d.open("queries.jsonl", func(r io.Reader) error {
		var err error
		qs, err = ReadQueries(r)
		return err
	})
	return qs, err
}

// Qrels reads qrels/<split>.tsv.
func (d Dir) Qrels(split string) (Qrels, error) {
	if split == "" || strings.ContainsAny(split, `/\`) || split == "." || split == ".." {
		return nil, fmt.Errorf("eval: bad split name %q", split)
	}
	var q Qrels
	err := d.open(filepath.Join("qrels", split+".tsv"), func(r io.Reader) error {
		var err error
		q, err = ReadQrels(r)
		return err
	})
	return q, err
}

// Splits are the names of the qrels files, sorted ("dev", "test", "train").
func (d Dir) Splits() ([]string, error) {
	names, err := filepath.Glob(filepath.Join(string(d), "qrels", "*.tsv"))
	if err != nil {
		return nil, fmt.Errorf("eval: %w", err)
	}
	splits := make([]string, len(names))
	for i, n := range names {
		splits[i] = strings.TrimSuffix(filepath.Base(n), ".tsv")
	}
	sort.Strings(splits)
	return splits, nil
}

// open reads the file name of d with read, naming the file in any error.
func (d Dir) open(name string, read func(io.Reader) error) error {
	f, err := os.Open(filepath.Join(string(d), name))
	if err != nil {
		return fmt.Errorf("eval: %w", err)
	}
	defer f.Close()
	if err := read(f); err != nil {
		return fmt.Errorf("eval: %s: %w", name, err)
	}
	return nil
}

// ReadCorpus calls fn with each document of a corpus.jsonl stream.
func ReadCorpus(r io.Reader, fn func(Document) error) error {
	return readLines(r, MaxLine, func(n int, line []byte) error {
		var v struct {
			ID    jsonID `json:"_id"`
			Title string `json:"title"`
			Text  string `json:"text"`
		}
		if err := decodeLine(line, &v); err != nil {
			return fmt.Errorf("line %d: %w", n, err)
		}
		if v.ID == "" {
			return fmt.Errorf("line %d: no _id", n)
		}
		return fn(Document{ID: string(v.ID), Title: v.Title, Text: v.Text})
	})
}

// ReadQueries reads a queries.jsonl stream. A query id given twice is an
// error.
func ReadQueries(r io.Reader) ([]Query, error) {
	var qs []Query
	seen := map[string]int{}
	err := readLines(r, MaxLine, func(n int, line []byte) error {
		var v struct {
			ID   jsonID `json:"_id"`
			Text string `json:"text"`
		}
		if err := decodeLine(line, &v); err != nil {
			return fmt.Errorf("line %d: %w", n, err)
		}
		if v.ID == "" {
			return fmt.Errorf("line %d: no _id", n)
		}
		if first, ok := seen[string(v.ID)]; ok {
			return fmt.Errorf("line %d: query %q already on line %d", n, v.ID, first)
		}
		seen[string(v.ID)] = n
		qs = append(qs, Query{ID: string(v.ID), Text: v.Text})
		return nil
	})
	return qs, err
}

// qrelsHeader is the first line of a BEIR qrels file.
var qrelsHeader = []string{"query-id", "corpus-id", "score"}

// ReadQrels reads a qrels TSV stream: the header query-id, corpus-id,
// score, then one judgement a line, the score an integer.
func ReadQrels(r io.Reader) (Qrels, error) {
	q := Qrels{}
	header := false
	err := readLines(r, MaxLine, func(n int, line []byte) error {
		f := strings.Split(string(line), "\t")
		if !header {
			if len(f) != 3 || f[0] != qrelsHeader[0] || f[1] != qrelsHeader[1] || f[2] != qrelsHeader[2] {
				return fmt.Errorf("line %d: want the header %q, got %q", n, strings.Join(qrelsHeader, "\t"), line)
			}
			header = true
			return nil
		}
		if len(f) != 3 {
			return fmt.Errorf("line %d: want 3 tab-separated fields, got %d", n, len(f))
		}
		if f[0] == "" || f[1] == "" {
			return fmt.Errorf("line %d: empty query-id or corpus-id", n)
		}
		score, err := strconv.Atoi(strings.TrimSpace(f[2]))
		if err != nil {
			return fmt.Errorf("line %d: score %q is not an integer", n, f[2])
		}
		if q[f[0]] == nil {
			q[f[0]] = map[string]int{}
		}
		q[f[0]][f[1]] = score
		return nil
	})
	if err == nil && !header {
		err = errors.New("empty file: no header")
	}
	return q, err
}

// readLines calls fn with each non-blank line of r and its number (from
// 1), without the line ending and, on line 1, a UTF-8 byte order mark.
// The line is only valid during the call.
func readLines(r io.Reader, maxLine int, fn func(n int, line []byte) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine+2) // room for "\r\n"
	n := 0
	for sc.Scan() {
		n++
		line := bytes.TrimSuffix(sc.Bytes(), []byte("\r"))
		if n == 1 {
			line = bytes.TrimPrefix(line, []byte("\ufeff"))
		}
		if len(line) > maxLine {
			return fmt.Errorf("line %d: longer than %d bytes", n, maxLine)
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if err := fn(n, line); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return fmt.Errorf("line %d: longer than %d bytes", n+1, maxLine)
		}
		return fmt.Errorf("line %d: %w", n+1, err)
	}
	return nil
}

// decodeLine decodes one JSON object, and nothing after it, into v.
func decodeLine(line []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(line))
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("invalid JSON: %w", err)
	}
	if dec.More() {
		return errors.New("invalid JSON: more than one value")
	}
	return nil
}

// jsonID is an id given as a JSON string or, as some exports do, a number.
type jsonID string

func (id *jsonID) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*id = jsonID(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("_id must be a string or a number, got %s", b)
	}
	*id = jsonID(n)
	return nil
}
