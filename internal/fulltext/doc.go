// Package fulltext is Nodus's full-text analysis and BM25 ranking, shared
// by both databases so a knowledge base ranks the same on SQLite and on
// PostgreSQL.
//
// Analysis (Tokens, Analyze) turns text into terms: words lower-cased,
// Lucene's English stop words dropped, English (Porter2) stems. A text's
// terms are stored as a Vector beside it; the database's own full-text
// index (SQLite FTS5, PostgreSQL tsvector with GIN) finds the texts that
// hold a term. Search takes each query term's postings from an Index and
// ranks them with BM25, exactly, walking the lists together with MaxScore
// pruning. Snippet cuts the passage of a hit that shows the query's terms.
package fulltext
