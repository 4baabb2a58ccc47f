package knowledge

import (
	"context"

	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/vector"
)

// Embedder turns texts into vectors with a model on behalf of a tenant:
// the gateway in process (gateway.Service.EmbedTexts), so the tenant's
// routing, budgets and spend log apply to ingestion and search alike. It
// returns one vector per text, in order; its errors are *nodus.Error with
// a message fit for the document's uploader.
type Embedder interface {
	Embed(ctx context.Context, tenantID, model string, texts []string) ([][]float32, error)
}

// EmbedFunc adapts a function to Embedder.
type EmbedFunc func(ctx context.Context, tenantID, model string, texts []string) ([][]float32, error)

// Embed implements Embedder.
func (f EmbedFunc) Embed(ctx context.Context, tenantID, model string, texts []string) ([][]float32, error) {
	return f(ctx, tenantID, model, texts)
}

// DefaultEmbedBatch is how many texts one embeddings call carries: 64
// chunks of 500 tokens is 32,000 tokens, within every provider's request
// limit (OpenAI's is 300,000 tokens and 2,048 inputs), and few enough
// that a document's progress moves.
const DefaultEmbedBatch = 64

// embedChunks is the embedding stage: it gives each chunk its vector by
// the knowledge base's model. Texts the knowledge base already holds a
// vector for by that model (the document's previous chunks when it is
// re-indexed or retried, or the same passage elsewhere) are not embedded
// again; the rest go to the model in batches, each raising the document's
// progress from ProgressChunked towards ProgressEmbedded. Identical texts
// within the document are embedded once.
func (s *Service) embedChunks(ctx context.Context, d Document, kb KnowledgeBase, chunks []Chunk) error {
	model := kb.EmbeddingModel
	if err := s.advance(ctx, d.ID, StageEmbedding, ProgressChunked, nil); err != nil {
		return err
	}
	if s.embedder == nil {
		return nodus.Errorf(nodus.EUNAVAILABLE, "the embedding model %s cannot be called: this server has no gateway", model)
	}
	hashes := make([]string, len(chunks))
	texts := make(map[string]string, len(chunks))
	var order []string // distinct hashes, in document order
	for i, c := range chunks {
		text := c.Prefix + c.Text
		h := EmbeddingTextHash(text)
		hashes[i] = h
		if _, seen := texts[h]; !seen {
			texts[h] = text
			order = append(order, h)
		}
	}
	have, err := s.store.ReusableVectors(ctx, kb.ID, model, order)
	if err != nil {
		return internalError(err, StageEmbedding)
	}
	vecs, err := s.embedMissing(ctx, d, model, order, texts, have)
	if err != nil {
		return err
	}
	for i := range chunks {
		chunks[i].Embedding = &Embedding{Model: model, TextHash: hashes[i], Vector: vecs[hashes[i]]}
	}
	return nil
}

// embedMissing returns a vector for every hash of order: those of have of
// the common dimension, the others embedded. Reused vectors of another
// dimension than the model now returns (its deployment changed) are
// embedded again.
func (s *Service) embedMissing(ctx context.Context, d Document, model string, order []string, texts map[string]string, have map[string][]float32) (map[string][]float32, error) {
	dim := 0
	for _, h := range order {
		if v, ok := have[h]; ok {
			if dim != 0 && len(v) != dim {
				clear(have) // mixed sizes: trust none of them
				dim = 0
				break
			}
			dim = len(v)
		}
	}
	var todo []string
	for _, h := range order {
		if _, ok := have[h]; !ok {
			todo = append(todo, h)
		}
	}
	out := have
	batch := s.embedBatch
	for done := 0; done < len(todo); {
		n := min(batch, len(todo)-done)
		part := todo[done : done+n]
		in := make([]string, n)
		for i, h := range part {
			in[i] = texts[h]
		}
		got, err := s.embedder.Embed(ctx, d.TenantID, model, in)
		if err != nil {
			return nil, err
		}
		if len(got) != n {
			return nil, nodus.Errorf(nodus.EUNAVAILABLE, "the embedding model %s returned %d vectors for %d texts", model, len(got), n)
		}
		for i, v := range got {
			if dim == 0 {
				dim = len(v)
			}
			if len(v) != dim {
				if done == 0 && i == 0 {
					// The reused vectors are of an older size: embed
					// them all again.
					return s.embedMissing(ctx, d, model, order, texts, map[string][]float32{})
				}
				return nil, nodus.Errorf(nodus.EINVALID, "the embedding model %s returned vectors of %d and %d dimensions",
					model, dim, len(v))
			}
			if len(v) > MaxEmbeddingDim {
				return nil, nodus.Errorf(nodus.EINVALID, "the embedding model %s returned %d dimensions; at most %d are supported",
					model, len(v), MaxEmbeddingDim)
			}
			if !vector.Normalize(v) {
				return nil, nodus.Errorf(nodus.EINVALID, "the embedding model %s returned a zero or non-finite vector", model)
			}
			out[part[i]] = v
		}
		done += n
		progress := ProgressChunked + (ProgressEmbedded-ProgressChunked)*done/len(todo)
		if err := s.advance(ctx, d.ID, StageEmbedding, progress, nil); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// MaxEmbeddingDim bounds a vector's dimensions (the largest models give
// 4,096).
const MaxEmbeddingDim = 8192

// embedQuery embeds a search query with the knowledge base's model.
func (s *Service) embedQuery(ctx context.Context, tenantID string, kb KnowledgeBase, query string) ([]float32, error) {
	if s.embedder == nil {
		return nil, nodus.Errorf(nodus.EUNAVAILABLE, "the embedding model %s cannot be called: this server has no gateway",
			kb.EmbeddingModel)
	}
	got, err := s.embedder.Embed(ctx, tenantID, kb.EmbeddingModel, []string{query})
	if err != nil {
		return nil, err
	}
	if len(got) != 1 || len(got[0]) > MaxEmbeddingDim || !vector.Normalize(got[0]) {
		return nil, nodus.Errorf(nodus.EUNAVAILABLE, "the embedding model %s returned no usable vector for the query",
			kb.EmbeddingModel)
	}
	return got[0], nil
}
