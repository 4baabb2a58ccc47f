// Package chunk splits the text extracted from a document into the chunks
// a knowledge base embeds, indexes and cites (issue 6: "chunking settings,
// size and overlap in tokens, markdown-header aware").
//
// The input is Markdown-ish text: ATX headings ("# Title"), paragraphs
// separated by blank lines, list items, tables as "|" rows, and code fences
// (``` or ~~~). Setext headings (underlined titles) are treated as text.
//
// Invariants:
//
//   - A chunk's Text is exactly input[Start:End]: a UI highlights it by
//     offsets, and a citation quotes the document verbatim. Chunks carry no
//     leading or trailing white space, and together they cover every
//     non-space character of the input, in order.
//   - Tokens (the tokens of SearchText, that is Prefix+Text, counted by
//     Options.Count) never exceed Options.Size. The one exception is a
//     single character that alone counts more than Size, which becomes a
//     chunk of its own; that cannot happen with Approx, nor with a
//     byte-level BPE counter and a Size of 4 or more.
//   - Output is a pure function of the input and the options: ingestion
//     retries rely on getting the same chunks, with the same indexes.
//
// Where a chunk ends, in order of preference: before a heading, at a
// paragraph break (a blank line, or the edge of a fence or table), at a line
// break that starts a list item or a table row, at a sentence end, between
// words, and only when one word alone is too big, inside it. The cut with
// the strongest preference in the second half of the largest window that
// fits wins, so chunks stay near Size without ending at a weak place. A
// code fence, a table row and a heading line are never split if they fit
// in a chunk; the place right after a heading is the weakest boundary
// there is, so a heading stays with what follows it.
//
// Overlap: a chunk after the first (in a section, with HeaderAware) starts
// at a cut inside the previous chunk so that it repeats about Overlap
// tokens of it, never more; the strongest cut in the first half of that
// tail wins. Overlap is dropped where keeping it would leave no room for
// new text.
//
// HeaderAware: every heading that follows content starts a new chunk (a run
// of headings with nothing between them starts one together), so a chunk
// lies within one section. The heading path is given twice: in Headings,
// for display and filtering, and in Prefix ("Install > Linux\n\n"), the
// headings above the chunk that are not in its own text, which SearchText
// prepends so that an embedding of a chunk from the middle of a section
// still knows what the section is about. The prefix is kept outside Text so
// that Start and End still map to the input, and it counts towards Size:
// the text that gets embedded fits the embedding model's limit. A prefix
// longer than half of Size loses its outermost headings until it fits.
// Without HeaderAware, headings are only the preferred place to cut,
// Headings is still filled in and Prefix is empty.
//
// Counting: Options.Count is the embedding model's tokenizer, for example
// the gateway's, bound to a model:
//
//	count := func(s string) int { return int(gateway.CountTokens(model, s)) }
//
// Without one, Approx estimates. Split calls Count once on each piece
// between two cuts (words, mostly), to guess where a chunk ends, and then a
// handful of times per chunk on strings of about a chunk's length: in all,
// it counts 6 to 8 times the input's bytes at Size 500 (BenchmarkSplit's
// counted/byte), so the counter's speed sets Split's.
package chunk
