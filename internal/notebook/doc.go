// Package notebook owns the notebooks of the seeds' "Llibreta" (Open
// Notebook's model): a user's notebooks, shared within the tenant for
// reading or writing; their sources (a knowledge-base document, a
// recording's transcript, pasted text or a web page fetched through
// egress), each with a context level; their cards (Markdown notes, written
// by a person or saved from a chat answer with its citations); and chat
// sessions grounded only in the notebook's included sources.
//
// Invariants:
//   - A notebook is visible to its owner and to the users it is shared
//     with, in its tenant, and to nobody else: to everyone else, a
//     tenant's admins included, it does not exist (ENOTFOUND).
//   - The owner may do everything; a write share edits the notebook, its
//     sources and cards; a read share views them and chats (a chat session
//     is its user's own and changes nothing in the notebook) but cannot
//     save an answer as a card. Only the owner shares, unshares or deletes.
//     The caller's role caps all of this: a viewer never writes.
//   - A chat turn's prompt holds the included sources only: a source at
//     the full level gives its text (cut to a token budget), at the summary
//     level its summary; an excluded source is never read.
//   - A source's text is captured when it is added; its summary is written
//     by a background job (River), with the notebook's chat model, or,
//     without one, as the text's opening, and says which.
//
// The module reaches the knowledge bases, recordings, the web and the
// gateway only through its ports (ports.go); notebookwire adapts the other
// modules to them.
package notebook
