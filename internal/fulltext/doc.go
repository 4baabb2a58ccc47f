// Package fulltext is Nodus's full-text analysis and BM25 ranking, shared
// by both databases so a knowledge base ranks the same on SQLite and on
// PostgreSQL.
//
// Analysis (Tokens, Analyze) turns text into terms: words lower-cased,
// Lucene's English stop words dropped, English (Porter2) stems. A text's
// terms are stored as a Vector beside it. The database's own full-text
// index (SQLite FTS5, PostgreSQL tsvector with GIN) holds the distinct
// terms only to find candidate texts fast; Search scores the candidates
// from their vectors with BM25, exactly, and stops reading candidates as
// soon as no unread text could enter the result. Snippet cuts the passage
// of a hit that shows the query's terms.
package fulltext
