package recordings

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/nodus-os/nodus/internal/nodus"
)

// errSettled stops a run for a recording already completed or failed.
var errSettled = errors.New("recording already settled")

// errBusy stops a run that finds the recording transcribing or
// summarising under another run that is not stale.
var errBusy = errors.New("recording being processed by another run")

// Process runs one recording of tenantID: transcription by the tenant's
// speech model, then a summary and key points by its summary model when
// it has one. It is the job's work, safe to run again: a completed or
// failed recording is left alone, a transcript already made is kept.
//
// A recording whose tenant has no speech model stays pending with
// DetailNoSpeechModel, and nil is returned. A failure the model's answer
// makes final (audio refused, model unknown) fails the recording; a
// passing one (upstream down, budget or rate limit) is returned for the
// job to retry, unless final is set (the job's last attempt), when it
// fails the recording too.
func (s *Service) Process(ctx context.Context, tenantID, id string, final bool) error {
	if tenantID == "" || !nodus.ValidID(id) {
		return notFound(id)
	}
	ctx = nodus.WithTenant(ctx, tenantID)
	r, err := s.store.FindRecording(ctx, id)
	if err != nil {
		return err
	}
	if r.Status == StatusCompleted || r.Status == StatusFailed {
		return nil
	}
	var models ModelSettings
	if s.settings != nil {
		if models, err = s.settings.RecordingModels(ctx, tenantID); err != nil {
			return fmt.Errorf("recordings: read settings: %w", err)
		}
	}
	if models.Speech == "" || s.transcriber == nil {
		if r.Status != StatusPending || r.StatusDetail != DetailNoSpeechModel {
			_, err = s.store.UpdateRecording(ctx, id, false, func(r *Recording) error {
				if r.Status == StatusCompleted || r.Status == StatusFailed {
					return errSettled
				}
				r.Status, r.StatusDetail, r.UpdatedAt = StatusPending, DetailNoSpeechModel, s.now().UTC()
				return nil
			})
			if errors.Is(err, errSettled) {
				return nil
			}
		}
		return err
	}
	began := s.now()
	r, err = s.store.UpdateRecording(ctx, id, false, func(r *Recording) error {
		switch r.Status {
		case StatusCompleted, StatusFailed:
			return errSettled
		case StatusTranscribing, StatusSummarising:
			if s.now().Sub(r.UpdatedAt) < s.staleAfter {
				return errBusy
			}
		}
		if r.Status != StatusSummarising || r.Text == "" {
			r.Status, r.Model = StatusTranscribing, models.Speech
			r.StatusDetail = "transcribing with " + models.Speech
		}
		r.Error, r.UpdatedAt = "", s.now().UTC()
		return nil
	})
	if errors.Is(err, errSettled) || errors.Is(err, errBusy) {
		// Done, or another run has it (a wake-up job beside the first);
		// the sweep takes over a run that dies.
		return nil
	}
	if err != nil {
		return err
	}
	if r.Status == StatusTranscribing {
		t, err := s.transcribe(ctx, r, models.Speech)
		if err != nil {
			return s.failOrRetry(ctx, r, err, final)
		}
		next, detail := StatusCompleted, ""
		if models.Summary != "" && s.models != nil && strings.TrimSpace(t.Text) != "" {
			next, detail = StatusSummarising, "summarising with "+models.Summary
		}
		if r, err = s.store.UpdateRecording(ctx, id, false, func(r *Recording) error {
			if r.Status != StatusTranscribing {
				return errSettled
			}
			r.Language, r.Text, r.Segments = t.Language, t.Text, t.Segments
			if t.Duration > 0 && r.Duration == 0 {
				r.Duration = t.Duration
			}
			r.Status, r.StatusDetail = next, detail
			r.ProcessingMS += s.now().Sub(began).Milliseconds()
			r.UpdatedAt = s.now().UTC()
			return nil
		}); err != nil {
			if errors.Is(err, errSettled) {
				return nil
			}
			return err
		}
		began = s.now()
	}
	if r.Status == StatusSummarising {
		summary, points, err := s.summarise(ctx, r, models.Summary)
		detail := ""
		if err != nil {
			// The transcript stands without a summary: say why.
			detail = "no summary: " + nodus.ErrorMessage(err)
			s.log.WarnContext(ctx, "recording summary failed", "tenant", tenantID, "recording", id, "err", err)
		}
		if r, err = s.store.UpdateRecording(ctx, id, false, func(r *Recording) error {
			if r.Status != StatusSummarising {
				return errSettled
			}
			r.Summary, r.KeyPoints, r.SummaryModel = summary, points, models.Summary
			r.Status, r.StatusDetail = StatusCompleted, detail
			r.ProcessingMS += s.now().Sub(began).Milliseconds()
			r.UpdatedAt = s.now().UTC()
			return nil
		}); err != nil {
			if errors.Is(err, errSettled) {
				return nil
			}
			return err
		}
	}
	s.log.InfoContext(ctx, "recording processed", "tenant", tenantID, "recording", id, "segments", len(r.Segments),
		"duration", formatSeconds(s.now().Sub(began)))
	if s.notify != nil {
		s.notify(context.WithoutCancel(ctx), r)
	}
	return nil
}

// transcribe sends the audio to the speech model, in pieces when it is
// a WAV or MP3 file larger than one request takes.
func (s *Service) transcribe(ctx context.Context, r Recording, model string) (Transcript, error) {
	rc, info, err := s.blobs.Open(ctx, r.BlobID)
	if err != nil {
		if nodus.ErrorCode(err) == nodus.ENOTFOUND {
			return Transcript{}, nodus.Errorf(nodus.EINVALID, "the audio is missing from storage; upload it again")
		}
		return Transcript{}, err
	}
	defer rc.Close()
	format := formatOfMIME(r.MIME)
	req := TranscribeRequest{TenantID: r.TenantID, UserID: r.UserID, Model: model, Audio: rc,
		FileName: "audio." + string(format), MIME: r.MIME}
	var t Transcript
	if info.Size > s.pieceBytes && (format == FormatWAV || format == FormatMP3) {
		t, err = s.transcribePieces(ctx, req, format, rc, info.Size)
	} else {
		t, err = s.transcriber.Transcribe(ctx, req)
	}
	if err != nil {
		return Transcript{}, err
	}
	if len(t.Text) > maxTextBytes || len(t.Segments) > maxSegments {
		return Transcript{}, nodus.Errorf(nodus.EINVALID, "the speech model's transcript is larger than Nodus keeps")
	}
	if t.Segments == nil {
		t.Segments = []Segment{}
	}
	for i := range t.Segments {
		t.Segments[i].Text = strings.ToValidUTF8(t.Segments[i].Text, "\uFFFD")
	}
	t.Text = strings.ToValidUTF8(t.Text, "\uFFFD")
	t.Language = cleanText(t.Language, 32)
	return t, nil
}

// transcribePieces transcribes a file too large for one request piece by
// piece, one after another, and joins the transcripts: texts in order,
// segments renumbered and moved to where their piece starts.
func (s *Service) transcribePieces(ctx context.Context, req TranscribeRequest, format Format, rc io.Reader,
	size int64) (Transcript, error) {
	ra, ok := rc.(io.ReaderAt)
	if !ok {
		b, err := io.ReadAll(io.LimitReader(rc, s.maxBytes))
		if err != nil {
			return Transcript{}, fmt.Errorf("recordings: read audio: %w", err)
		}
		ra, size = bytes.NewReader(b), int64(len(b))
	}
	pieces, _, err := splitAudio(format, ra, size, s.pieceBytes)
	if err != nil {
		return Transcript{}, audioError(err)
	}
	if len(pieces) == 0 {
		return Transcript{}, nodus.Errorf(nodus.EINVALID, "the %s file holds no audio to transcribe", format)
	}
	var out Transcript
	var texts []string
	for _, p := range pieces {
		req.Audio = p.reader(ra)
		t, err := s.transcriber.Transcribe(ctx, req)
		if err != nil {
			return Transcript{}, err
		}
		if out.Language == "" {
			out.Language = t.Language
		}
		if text := strings.TrimSpace(t.Text); text != "" {
			texts = append(texts, text)
		}
		for _, seg := range t.Segments {
			seg.ID, seg.Start, seg.End = len(out.Segments), seg.Start+p.start, seg.End+p.start
			out.Segments = append(out.Segments, seg)
		}
		if t.Duration > 0 {
			out.Duration = p.start + t.Duration
		}
		if len(out.Segments) > maxSegments {
			break // refused by the caller's check
		}
	}
	out.Text = strings.Join(texts, " ")
	s.log.InfoContext(ctx, "recording transcribed in pieces", "pieces", len(pieces), "bytes", size)
	return out, nil
}

// failOrRetry records a transcription failure: a final one fails the
// recording (and tells its user), a passing one leaves it pending with
// the reason and returns the error for the job to retry.
func (s *Service) failOrRetry(ctx context.Context, r Recording, cause error, final bool) error {
	msg := nodus.ErrorMessage(cause)
	switch nodus.ErrorCode(cause) {
	case nodus.EINVALID, nodus.ENOTFOUND, nodus.EFORBIDDEN, nodus.ETOOLARGE:
		final = true
	}
	if final && ctx.Err() != nil {
		final = false // the job was stopped: it runs again, as is
	}
	upd, err := s.store.UpdateRecording(context.WithoutCancel(ctx), r.ID, false, func(r *Recording) error {
		if r.Status != StatusTranscribing {
			return errSettled
		}
		if final {
			r.Status, r.StatusDetail, r.Error = StatusFailed, "", "transcription failed: "+msg
		} else {
			r.Status, r.StatusDetail = StatusPending, "transcription will be retried: "+msg
		}
		r.UpdatedAt = s.now().UTC()
		return nil
	})
	if errors.Is(err, errSettled) {
		return nil
	}
	if err != nil {
		return err
	}
	s.log.WarnContext(ctx, "recording transcription failed", "tenant", r.TenantID, "recording", r.ID, "final", final, "err", cause)
	if !final {
		return fmt.Errorf("recordings: transcribe %s: %w", r.ID, cause)
	}
	if s.notify != nil {
		s.notify(context.WithoutCancel(ctx), upd)
	}
	return nil
}

// summaryPrompt asks for JSON so the key points come back as a list.
const summarySystem = `You summarise transcripts of audio recordings. Answer with a JSON object only:
{"summary": "a few sentences", "key_points": ["a point", "another point"]}. Use the transcript's language.`

// maxPromptBytes bounds the transcript sent for a summary.
const maxPromptBytes = 48 << 10

// summarise asks the summary model for a summary and key points. An
// answer that is not the JSON asked for is taken whole as the summary.
func (s *Service) summarise(ctx context.Context, r Recording, model string) (string, []string, error) {
	text := r.Text
	if len(text) > maxPromptBytes {
		text = strings.ToValidUTF8(text[:maxPromptBytes], "") + "…"
	}
	answer, err := s.models.Complete(ctx, CompleteRequest{TenantID: r.TenantID, UserID: r.UserID, Model: model,
		System: summarySystem, Prompt: "Title: " + r.Title + "\n\nTranscript:\n" + text})
	if err != nil {
		return "", []string{}, err
	}
	return parseSummary(answer)
}

func parseSummary(answer string) (string, []string, error) {
	a := strings.TrimSpace(answer)
	a = strings.TrimPrefix(strings.TrimSuffix(a, "```"), "```json")
	a = strings.TrimSpace(strings.TrimPrefix(a, "```"))
	var out struct {
		Summary   string   `json:"summary"`
		KeyPoints []string `json:"key_points"`
	}
	if i, j := strings.IndexByte(a, '{'), strings.LastIndexByte(a, '}'); i >= 0 && j > i && json.Unmarshal([]byte(a[i:j+1]), &out) == nil && out.Summary != "" {
		points := []string{}
		for _, p := range out.KeyPoints {
			if p = strings.TrimSpace(p); p != "" && len(points) < 20 {
				points = append(points, p)
			}
		}
		return strings.TrimSpace(out.Summary), points, nil
	}
	if strings.TrimSpace(answer) == "" {
		return "", []string{}, nodus.Errorf(nodus.EINVALID, "the summary model answered nothing")
	}
	return strings.TrimSpace(answer), []string{}, nil
}
