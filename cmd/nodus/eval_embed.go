package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/nodus-os/nodus/internal/apiclient"
	"github.com/nodus-os/nodus/internal/nodus"
)

// evalEmbedder is the embedding model of `nodus eval retrieval
// --embedding-url`: an OpenAI-compatible embeddings API the operator
// names, called directly (a scratch evaluation has no tenant gateway).
// It remembers the vectors of single texts, so a query searched in
// several modes is embedded once.
type evalEmbedder struct {
	client *http.Client
	url    string
	key    string
	model  string

	mu      sync.Mutex
	queries map[string][]float32
}

func newEvalEmbedder(baseURL, model, key string) *evalEmbedder {
	return &evalEmbedder{client: apiclient.New(), url: strings.TrimSuffix(baseURL, "/") + "/embeddings", key: key,
		model: model, queries: make(map[string][]float32)}
}

// Embed implements knowledge.Embedder.
func (e *evalEmbedder) Embed(ctx context.Context, _, _ string, texts []string) ([][]float32, error) {
	if len(texts) == 1 {
		e.mu.Lock()
		v, ok := e.queries[texts[0]]
		e.mu.Unlock()
		if ok {
			return [][]float32{append([]float32(nil), v...)}, nil
		}
	}
	out, err := e.call(ctx, texts)
	if err != nil {
		return nil, err
	}
	if len(texts) == 1 {
		e.mu.Lock()
		e.queries[texts[0]] = append([]float32(nil), out[0]...)
		e.mu.Unlock()
	}
	return out, nil
}

func (e *evalEmbedder) call(ctx context.Context, texts []string) ([][]float32, error) {
	body, err := json.Marshal(map[string]any{"model": e.model, "input": texts, "encoding_format": "float"})
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.url, bytes.NewReader(body))
	if err != nil {
		return nil, nodus.WrapError(err, nodus.EINVALID, "--embedding-url is not a URL")
	}
	req.Header.Set("Content-Type", "application/json")
	if e.key != "" {
		req.Header.Set("Authorization", "Bearer "+e.key)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return nil, nodus.WrapError(err, nodus.EUNAVAILABLE, "the embedding server cannot be reached: "+err.Error())
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return nil, nodus.WrapError(err, nodus.EUNAVAILABLE, "reading the embedding server's answer")
	}
	if resp.StatusCode != http.StatusOK {
		return nil, nodus.Errorf(nodus.EUNAVAILABLE, "the embedding server answered %d: %.300s", resp.StatusCode, b)
	}
	var answer struct {
		Data []struct {
			Index     int       `json:"index"`
			Embedding []float32 `json:"embedding"`
		} `json:"data"`
	}
	if err := json.Unmarshal(b, &answer); err != nil {
		return nil, nodus.WrapError(err, nodus.EUNAVAILABLE, "the embedding server's answer is not an embeddings list")
	}
	out := make([][]float32, len(texts))
	for _, d := range answer.Data {
		if d.Index < 0 || d.Index >= len(out) || out[d.Index] != nil {
			return nil, nodus.Errorf(nodus.EUNAVAILABLE, "the embedding server's answer has index %d out of place", d.Index)
		}
		out[d.Index] = d.Embedding
	}
	for i, v := range out {
		if v == nil {
			return nil, nodus.Errorf(nodus.EUNAVAILABLE, "the embedding server returned no vector for text %d", i)
		}
	}
	return out, nil
}
