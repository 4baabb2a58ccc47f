package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"

	"github.com/nodus-os/nodus/internal/nodus"
)

// EmbedTexts embeds texts with model for c, as one embeddings call, and
// returns a vector per text in their order: the in-process door for the
// modules that embed (knowledge ingestion and search). The caller's
// tenant's routing, budgets and spend log apply as to any call. Its errors
// are *nodus.Error, their codes from the gateway's status (a model the
// tenant does not have or a budget spent is EINVALID, a rate limit
// ERATELIMIT, an upstream timeout ETIMEOUT, an upstream failure
// EUNAVAILABLE), their messages the gateway's.
func (s *Service) EmbedTexts(ctx context.Context, c Caller, model string, texts []string) ([][]float32, error) {
	if len(texts) == 0 {
		return nil, nil
	}
	input, err := json.Marshal(texts)
	if err != nil {
		return nil, nodus.WrapError(err, nodus.EINVALID, "texts to embed must be valid UTF-8")
	}
	resp, _, err := s.Embed(ctx, c, &EmbeddingRequest{Model: model, Input: input, EncodingFormat: "float"})
	if err != nil {
		return nil, NodusError(err, "embedding model "+model)
	}
	if len(resp.Data) != len(texts) {
		return nil, nodus.Errorf(nodus.EUNAVAILABLE, "the embedding model %s returned %d vectors for %d texts",
			model, len(resp.Data), len(texts))
	}
	out := make([][]float32, len(texts))
	for _, d := range resp.Data {
		if d.Index < 0 || d.Index >= len(texts) || out[d.Index] != nil {
			return nil, nodus.Errorf(nodus.EUNAVAILABLE, "the embedding model %s returned a vector out of order", model)
		}
		v, err := decodeEmbedding(d.Embedding)
		if err != nil {
			return nil, nodus.WrapError(err, nodus.EUNAVAILABLE,
				fmt.Sprintf("the embedding model %s returned a malformed vector", model))
		}
		out[d.Index] = v
	}
	return out, nil
}

// decodeEmbedding reads a vector sent as a JSON array of numbers, refusing
// an empty one or one holding a value float32 cannot hold.
func decodeEmbedding(raw json.RawMessage) ([]float32, error) {
	var f []float64
	if err := json.Unmarshal(raw, &f); err != nil {
		return nil, err
	}
	if len(f) == 0 {
		return nil, fmt.Errorf("empty vector")
	}
	v := make([]float32, len(f))
	for i, x := range f {
		if math.IsNaN(x) || math.Abs(x) > math.MaxFloat32 {
			return nil, fmt.Errorf("value %d out of range", i)
		}
		v[i] = float32(x)
	}
	return v, nil
}

// NodusError turns an error of an in-process call into a *nodus.Error
// whose message is the gateway's, after about (the model, say): a model
// the tenant does not have or a request it refuses is EINVALID, a rate
// limit or a spent budget ERATELIMIT, an upstream timeout or the caller's
// context ending ETIMEOUT, an upstream failure EUNAVAILABLE. The modules
// that call the gateway in process report these to their own callers.
func NodusError(err error, about string) error {
	e, _ := APIError(err)
	code := nodus.EUNAVAILABLE
	switch {
	case e.Status == http.StatusTooManyRequests:
		code = nodus.ERATELIMIT
	case e.Status == http.StatusGatewayTimeout || e.Status == http.StatusRequestTimeout:
		code = nodus.ETIMEOUT
	case e.Status == 499:
		code = nodus.ETIMEOUT // the caller's context ended
	case e.Status >= 400 && e.Status < 500:
		code = nodus.EINVALID
	}
	return nodus.WrapError(err, code, about+": "+e.Message)
}
