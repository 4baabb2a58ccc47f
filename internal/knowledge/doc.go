// Package knowledge owns knowledge bases (issue 6): a tenant's collections
// of uploaded documents, each split into chunks that search ranks.
//
// This file set holds the records and the Store interface that
// internal/store/knowledge.go implements; ingestion, search and the HTTP
// handlers come later.
//
// Invariants the store keeps:
//   - every knowledge base, document and chunk belongs to one tenant, and a
//     document's and a chunk's tenant and knowledge base are their parent's
//     (composite foreign keys);
//   - a knowledge base holds no two documents with the same content hash
//     (re-uploading the same bytes is ECONFLICT, naming the first copy);
//   - a document has exactly one set of chunks: ReplaceChunks swaps the old
//     set for the new one in one transaction, so a retried or concurrent
//     ingestion never leaves two (SECURITY.md check 26);
//   - deleting a knowledge base or a document takes its documents and
//     chunks with it and hands back the blob ids, whose bytes the caller
//     deletes after the commit.
package knowledge
