// Package recordings owns audio recordings: the uploaded audio (its bytes
// in the blob store), its transcript with timed segments, and the summary
// and key points a chat model writes of it.
//
// Invariants:
//   - A recording's format is detected from its content and its duration
//     read from its container at upload; a file that is not readable audio
//     is refused then, with a message saying why.
//   - Status moves pending → transcribing → summarising → completed, or to
//     failed with an error fit for its uploader. Processing is a job queued
//     in the transaction that creates (or retries) the recording; it runs
//     at least once and is idempotent.
//   - Without a speech model configured for its tenant a recording stays
//     pending with a StatusDetail saying so, and is picked up when one is
//     configured (the periodic sweep) or retried: it never fails silently.
//   - Transcription and summaries go through the gateway in process, as
//     the recording's user (its keys, budgets and spend log).
//   - A user sees their own recordings; org admins see the tenant's. Every
//     read and write is scoped by tenant in the store: another tenant's
//     recording is not found.
//   - The module imports no other module: the gateway, settings, knowledge
//     bases and notifications reach it through the ports in ports.go,
//     adapted by recordingswire.
package recordings
