package httpapi

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/nodus-os/nodus/internal/knowledge"
	"github.com/nodus-os/nodus/internal/nodus"
)

// This file holds the other two ways documents arrive besides a multipart
// upload: fetched from a URL, and many at once as JSON Lines. Both take the
// upload's path in the knowledge module (typed by content, duplicates
// refused, audited, ingestion queued) and its size limit per document.

// importURLRequest is the body of an import from a URL.
type importURLRequest struct {
	URL      string                     `json:"url"`
	Metadata map[string]json.RawMessage `json:"metadata"`
}

// importURLMaxBody bounds an import's body: a URL and the metadata.
const importURLMaxBody = metadataLimit + 8<<10

func (s *Server) handleImportURL() http.Handler {
	return s.knowledgeAnswer(http.StatusCreated, func(r *http.Request, m knowledge.Manager) (any, error) {
		// The knowledge base first: another tenant's is 404 whatever the body.
		if _, err := s.deps.Knowledge.GetKnowledgeBase(r.Context(), m, r.PathValue("id")); err != nil {
			return nil, err
		}
		var in importURLRequest
		if err := decodeJSON(r, &in); err != nil {
			return nil, err
		}
		d, err := s.deps.Knowledge.ImportURL(r.Context(), m, r.PathValue("id"), knowledge.URLImportInput{
			URL: in.URL, Limit: uploadLimit, Metadata: in.Metadata})
		if err != nil {
			return nil, err
		}
		return map[string]any{"document": viewDocument(d)}, nil
	})
}

// Limits of a bulk import. The body is read a line at a time, so only one
// line is ever held; a line holds one file of up to uploadLimit bytes in
// base64 (4/3 of it) with its metadata and field names.
const (
	bulkMaxBody   = 256 << 20
	bulkMaxLines  = 10000
	bulkLineLimit = uploadLimit/3*4 + 4 + metadataLimit + 4<<10
)

// bulkLine is one line of a bulk import: a file name and either its text
// or its bytes in base64.
type bulkLine struct {
	Filename      string                     `json:"filename"`
	Text          *string                    `json:"text"`
	ContentBase64 *string                    `json:"content_base64"`
	Metadata      map[string]json.RawMessage `json:"metadata"`
}

// bulkResult is one line's outcome: its document or its error.
type bulkResult struct {
	Line     int           `json:"line"`
	Document *documentView `json:"document,omitempty"`
	Error    *bulkError    `json:"error,omitempty"`
}

type bulkError struct {
	Code    string            `json:"code"`
	Message string            `json:"message"`
	Fields  map[string]string `json:"fields,omitempty"`
	// DuplicateOf names the document that already holds the content.
	DuplicateOf string `json:"duplicate_of,omitempty"`
}

// handleBulkDocuments takes JSON Lines, one document per line, and answers
// each line's outcome. A bad line does not stop the others, and leaves
// nothing behind. Blank lines are skipped. Past the body's or the lines'
// limit the import stops with 413 or 400: the lines before it stay
// imported, and a retry of the whole body reports them as duplicates.
func (s *Server) handleBulkDocuments() http.Handler {
	return s.knowledgeAnswer(http.StatusOK, func(r *http.Request, m knowledge.Manager) (any, error) {
		kbID := r.PathValue("id")
		if _, err := s.deps.Knowledge.GetKnowledgeBase(r.Context(), m, kbID); err != nil {
			return nil, err
		}
		if !m.Admin {
			return nil, nodus.Errorf(nodus.EFORBIDDEN, "only an admin may manage documents")
		}
		mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if mt != "application/x-ndjson" && mt != "application/jsonl" {
			return nil, nodus.Errorf(nodus.EINVALID, "Content-Type must be application/x-ndjson or application/jsonl")
		}
		if r.ContentLength > bulkMaxBody {
			return nil, errTooLarge(bulkMaxBody)
		}
		results := []bulkResult{}
		created, failed := 0, 0
		stopped := func(line int, err error) error {
			var e *nodus.Error
			if !errors.As(err, &e) {
				return err
			}
			return &nodus.Error{Code: e.Code, Fields: e.Fields, Err: err, Message: fmt.Sprintf(
				"%s; the import stopped at line %d: %d documents created, %d lines failed before it", e.Message, line, created, failed)}
		}
		br := bufio.NewReaderSize(r.Body, 64<<10)
		var buf []byte
		for n := 1; ; n++ {
			line, tooLong, err := readLine(br, buf[:0], bulkLineLimit)
			buf = line[:0]
			if err != nil && !errors.Is(err, io.EOF) {
				var maxErr *http.MaxBytesError
				if errors.As(err, &maxErr) {
					return nil, stopped(n, errTooLarge(maxErr.Limit))
				}
				return nil, err
			}
			if len(bytes.TrimSpace(line)) > 0 || tooLong {
				if n > bulkMaxLines {
					return nil, stopped(n, nodus.Errorf(nodus.EINVALID, "a bulk import takes at most %d lines", bulkMaxLines))
				}
				res := bulkResult{Line: n}
				if tooLong {
					res.Error = &bulkError{Code: nodus.ETOOLARGE, Message: fmt.Sprintf("the line is longer than %d bytes", bulkLineLimit)}
				} else if d, err := s.bulkDocument(r, m, kbID, line); err != nil {
					res.Error = s.bulkLineError(r, n, err)
				} else {
					v := viewDocument(d)
					res.Document = &v
				}
				if res.Error != nil {
					failed++
				} else {
					created++
				}
				results = append(results, res)
			}
			if errors.Is(err, io.EOF) {
				break
			}
			if err := r.Context().Err(); err != nil {
				return nil, err
			}
		}
		return map[string]any{"documents": results, "created": created, "failed": failed}, nil
	})
}

// bulkDocument adds one line's document.
func (s *Server) bulkDocument(r *http.Request, m knowledge.Manager, kbID string, line []byte) (*knowledge.Document, error) {
	var in bulkLine
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return nil, jsonError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, nodus.Errorf(nodus.EINVALID, "a line must hold a single JSON object")
	}
	fields := map[string]string{}
	if strings.TrimSpace(in.Filename) == "" {
		fields["filename"] = "required"
	}
	var body io.Reader
	switch {
	case in.Text != nil && in.ContentBase64 != nil:
		fields["text"] = "give text or content_base64, not both"
	case in.Text != nil:
		body = strings.NewReader(*in.Text)
	case in.ContentBase64 != nil:
		body = base64Reader{base64.NewDecoder(base64.StdEncoding, strings.NewReader(*in.ContentBase64))}
	default:
		fields["text"] = "give text or content_base64"
	}
	if len(fields) > 0 {
		return nil, &nodus.Error{Code: nodus.EINVALID, Message: "invalid line", Fields: fields}
	}
	return s.deps.Knowledge.UploadDocument(r.Context(), m, kbID, knowledge.UploadInput{
		OriginalFilename: in.Filename, Body: body, Limit: uploadLimit, Metadata: in.Metadata})
}

// bulkLineError is a line's error as the answer shows it; an unexpected
// one is logged, and shown without its cause, as writeError would.
func (s *Server) bulkLineError(r *http.Request, line int, err error) *bulkError {
	code := nodus.ErrorCode(err)
	if code == nodus.EINTERNAL {
		s.deps.Logger.ErrorContext(r.Context(), "bulk import line failed", "request_id", RequestID(r.Context()),
			"line", line, "err", err)
	}
	e := &bulkError{Code: code, Message: nodus.ErrorMessage(err), Fields: nodus.ErrorFields(err)}
	if id, ok := knowledge.DuplicateOf(err); ok {
		e.DuplicateOf = id
	}
	return e
}

// base64Reader makes malformed base64 an EINVALID naming the field.
type base64Reader struct{ r io.Reader }

func (b base64Reader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		err = &nodus.Error{Code: nodus.EINVALID, Message: "content_base64 is not valid base64", Err: err,
			Fields: map[string]string{"content_base64": "not valid standard base64"}}
	}
	return n, err
}

// readLine reads one line (without its newline) into buf, up to limit
// bytes; a longer line is read to its end and dropped, and tooLong set.
// At the end of the body err is io.EOF, with the last line if it has no
// newline.
func readLine(br *bufio.Reader, buf []byte, limit int) (line []byte, tooLong bool, err error) {
	for {
		chunk, err := br.ReadSlice('\n')
		if !tooLong {
			if len(buf)+len(chunk) > limit+1 { // +1: the newline
				tooLong, buf = true, buf[:0]
			} else {
				buf = append(buf, chunk...)
			}
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		return bytes.TrimSuffix(buf, []byte("\n")), tooLong, err
	}
}
