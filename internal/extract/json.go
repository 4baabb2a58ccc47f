package extract

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"

	"github.com/nodus-os/nodus/internal/nodus"
)

// writeJSON writes JSON as "path: value" lines (`items[0].name: Ada`), one
// block per element of a top-level array and per top-level value of JSON
// Lines. It streams tokens, so memory stays near the size of the input.
func writeJSON(w *writer, src string, lim Limits) error {
	dec := json.NewDecoder(strings.NewReader(src))
	dec.UseNumber()
	// Each frame is an open object or array: the path to it, and for an
	// array the index of the next element.
	type frame struct {
		path  string
		array bool
		index int
		key   string // object: the key whose value comes next
		inKey bool   // object: the next token is a key
	}
	var stack []frame
	top := 0
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			if len(stack) > 0 {
				return nodus.Errorf(nodus.EINVALID, "the JSON file ends in the middle of a value")
			}
			return nil
		}
		if err != nil {
			return jsonError(src, err)
		}
		if w.err != nil {
			return w.err
		}
		// The path of a value token, and, for an object key, nothing.
		var p string
		if n := len(stack); n > 0 {
			f := &stack[n-1]
			if !f.array && f.inKey {
				if d, ok := tok.(json.Delim); ok && d == '}' {
					stack = stack[:n-1]
					continue
				}
				f.key, _ = tok.(string)
				f.inKey = false
				continue
			}
			if d, ok := tok.(json.Delim); ok && (d == '}' || d == ']') {
				stack = stack[:n-1]
				continue
			}
			if f.array {
				p = f.path + "[" + strconv.Itoa(f.index) + "]"
				f.index++
				if n == 1 {
					w.block()
				}
			} else {
				p = joinPath(f.path, f.key)
				f.inKey = true
			}
		} else {
			if top > 0 {
				w.block()
			}
			top++
		}
		switch v := tok.(type) {
		case json.Delim:
			if len(stack) >= lim.MaxDepth {
				return nodus.Errorf(nodus.EINVALID, "the JSON file is nested deeper than %d levels", lim.MaxDepth)
			}
			stack = append(stack, frame{path: p, array: v == '[', inKey: v == '{'})
			continue
		case string:
			writeJSONLine(w, p, strings.ReplaceAll(v, "\n", " "))
		case json.Number:
			writeJSONLine(w, p, v.String())
		case bool:
			writeJSONLine(w, p, strconv.FormatBool(v))
		case nil:
			writeJSONLine(w, p, "null")
		}
	}
}

func writeJSONLine(w *writer, path, value string) {
	if path == "" {
		w.WriteString(value + "\n")
		return
	}
	w.WriteString(path + ": " + value + "\n")
}

func joinPath(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

// jsonError reports a syntax error with its line number.
func jsonError(src string, err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		off := min(int(se.Offset), len(src))
		line := 1 + bytes.Count([]byte(src[:off]), []byte("\n"))
		return nodus.Errorf(nodus.EINVALID, "the JSON file is malformed on line %d: %v", line, se)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return nodus.Errorf(nodus.EINVALID, "the JSON file ends in the middle of a value")
	}
	return nodus.Errorf(nodus.EINVALID, "the JSON file is malformed: %v", err)
}
