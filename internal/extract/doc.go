// Package extract turns an uploaded document into text for the knowledge
// base: it owns type detection and one extractor per supported format. It
// keeps no state and touches no database; the ingestion job calls Detect on
// the first bytes of an upload and Extract on the whole file.
//
// # Types
//
// Text, Markdown, HTML, CSV, JSON, PDF and DOCX (see Type). Detect decides by
// content, never by name (SECURITY check 24):
//
//  1. empty → error.
//  2. "%PDF-" at offset 0 → PDF.
//  3. a ZIP local header ("PK\x03\x04") whose first entries name a Word part
//     ("word/" or "[Content_Types].xml") → DOCX; any other ZIP → error.
//     Extract checks again that the archive holds the main document part.
//  4. a UTF-16 byte-order mark → the head is decoded and sniffed as text.
//  5. anything net/http.DetectContentType does not call "text/…", and any
//     head that is not valid UTF-8 (ignoring a rune cut off at the end) →
//     error: executables, images (a PNG named .txt), archives, Latin-1 text.
//  6. among text: "<!doctype html" or "<html" (after spaces, an XML
//     declaration or comments) → HTML; a first non-space "{" or "[" that is a
//     valid JSON prefix with nothing but spaces after the value → JSON; a
//     .md/.markdown name or a text/markdown content type → Markdown; a .txt
//     name → Text; other HTML the sniffer recognises → HTML; at least two
//     records with the same number (≥ 2) of ",", ";" or tab separated fields
//     → CSV; a "# heading" line or a ``` fence → Markdown; otherwise Text.
//
// The name and the declared content type are hints among text types only:
// they never turn binary content into text, nor text into PDF or DOCX.
//
// # Output
//
// Document.Text is Markdown-ish so the chunker can split on headers:
// headings as "#" lines, paragraphs separated by blank lines, list items as
// "- " lines, table rows as "| a | b |" lines; CSV rows as blocks of
// "column: value" lines and JSON as "path: value" lines. Text is valid UTF-8
// (invalid bytes become U+FFFD), has no NULs, "\n" line ends, no trailing
// spaces and never more than one blank line in a row. PDFs also report a
// Section per page.
//
// # Limits
//
// Limits bounds every extraction (zero fields take DefaultLimits): input
// size, output size, CSV rows, nesting depth, ZIP entries, uncompressed
// bytes and compression ratio, and wall time. Input is never read past
// MaxInputBytes, output never grows past MaxTextBytes, and every
// decompression is counted as it happens, not trusted from headers alone.
//
// # Errors
//
// Every error is a *nodus.Error whose Message is safe and readable for the
// person who uploaded the file ("the PDF file is damaged: …"):
//
//   - EINVALID: unsupported or malformed content, a zip bomb, a zip-slip
//     entry name, a password-protected or text-less PDF.
//   - ETOOLARGE: the input, the output, the CSV rows or the uncompressed
//     DOCX content exceed their limits.
//   - ETIMEOUT: the extraction ran longer than Limits.Timeout or the
//     context ended.
//
// A panic inside an extractor (the PDF library panics on some malformed
// files) is recovered and returned as EINVALID; it never reaches the caller.
// Each extraction runs in its own goroutine so Extract returns when the
// timeout fires; the extractors also check the context as they go (the PDF
// one on every read of the file and every few hundred content operators),
// so that goroutine ends soon after.
//
// PDF specifics: before ledongthuc/pdf sees the file, the raw bytes are
// scanned for values it would trust to allocate (object counts above 2^20,
// xref field widths, predictor columns, indirect /DecodeParms) and every
// zlib stream is inflated, counting, not keeping, against
// MaxUncompressedBytes. The library reads the file through a ReaderAt that
// panics with a stop when ctx ends or after 64× the file size in reads
// (its cyclic /Prev loop), and the page tree and content operators are
// walked here with caps. Known gap: a stream encrypted with an empty user
// password is not inflated by the prescan (only page contents are counted).
package extract
