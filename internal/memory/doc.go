// Package memory is Nodus's long-term memory: the facts an app (ADK's
// app_name; for chat, a chatbot) keeps about each of its users across
// sessions, what ADK's MemoryService and mem0 do. It owns the memory
// records, their change history and the pipeline that turns a
// conversation into memories; internal/store/memory.go keeps them
// (migration 0010_memory).
//
// Adding a conversation (Service.Add) works one of two ways:
//   - with a chat model, mem0's two steps: the model extracts the user's
//     facts as JSON, then, for each fact, decides against the five most
//     similar memories whether to ADD it, UPDATE one of them with merged
//     text, DELETE one it contradicts, or do nothing (NONE);
//   - without one (or when the model's extraction is not valid JSON), the
//     user's salient sentences are kept verbatim (SalientSentences).
//
// Invariants:
//   - every memory belongs to one tenant, app and user, and every search
//     and list is scoped to all three: another user's memories are never
//     seen, another tenant's are ENOTFOUND;
//   - a user of an app holds no two memories with the same normalised text
//     (Hash); adding one again is NONE;
//   - every ADD, UPDATE and DELETE writes its history row in the same
//     transaction as the change. Deleting a memory removes its row but
//     keeps its history, as mem0 does; the history goes when the tenant is
//     purged (Service.PurgeTenant);
//   - a stored embedding is unit length and names the model that made it.
//
// The module reaches models through its own ports (Models, Embedder),
// which the composition root adapts to the gateway; it imports no other
// module.
package memory
