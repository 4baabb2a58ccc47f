// Package eval measures retrieval quality for `nodus eval retrieval`: it
// reads a BEIR-layout dataset (corpus.jsonl, queries.jsonl, qrels/*.tsv)
// and scores rankings with nDCG@k, Recall@k and MRR@k, computed as BEIR
// computes them (pytrec_eval, which is trec_eval, for nDCG and Recall; BEIR's
// own code for MRR), so that a figure printed here can be set beside a
// published one.
//
// The metrics, for one query with judgements rel(d) and a ranking d1, d2, …:
//
//   - nDCG@k = DCG@k / IDCG@k, DCG@k = Σ_{i≤k} gain(d_i) / log2(i+1), where
//     gain is the judged relevance when positive and 0 otherwise (so graded
//     judgements count by grade), and IDCG@k is the DCG@k of the judged
//     documents in the best order. 0 when no judgement is positive.
//   - Recall@k = (relevant documents in the top k) / (relevant documents),
//     a document being relevant when judged 1 or more; 0 when none is.
//   - MRR@k = 1/i for the first relevant d_i with i ≤ k, else 0.
//
// Conventions, all BEIR's:
//
//   - The mean is over every query in the qrels, whether or not it has a
//     relevant document: BEIR keeps the queries named in the qrels and
//     averages over them (len(qrels) for MRR; every query in both the
//     qrels and the run for the others, and its runs answer every query).
//     A query with no results, or missing from the run, scores 0; a query
//     in the run but not in the qrels is ignored.
//   - A document whose id equals the query's id is dropped from the
//     ranking (BEIR's ignore_identical_ids, on by default), unless
//     Options.KeepIdenticalIDs.
//   - The ranking is the caller's, in order; ties were broken by whoever
//     made it. A document listed twice counts at its first place.
//   - For duplicate qrels rows the last one wins, as in BEIR's loader.
//
// Readers are streaming (the corpus is read document by document) and
// bounded: a line longer than MaxLine is an error, and every error names
// the file and line.
package eval
