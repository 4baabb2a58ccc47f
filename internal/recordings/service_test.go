package recordings_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/audit"
	"github.com/nodus-os/nodus/internal/blob"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/recordings"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
)

// dbStore is the real store with the queue replaced by a list.
type dbStore struct {
	*store.DB
	mu     sync.Mutex
	queued []string
	woken  int // QueueRecording calls asking for a job beside a running one
}

func (s *dbStore) enqueue(_ context.Context, _ *store.Tx, tenantID, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queued = append(s.queued, tenantID+"/"+id)
	return nil
}

func (s *dbStore) CreateRecording(ctx context.Context, r recordings.Recording) error {
	return s.DB.CreateRecording(ctx, r, s.enqueue)
}

func (s *dbStore) UpdateRecording(ctx context.Context, id string, queue bool, fn func(*recordings.Recording) error) (recordings.Recording, error) {
	var q store.RecordingEnqueue
	if queue {
		q = s.enqueue
	}
	return s.DB.UpdateRecording(ctx, id, fn, q)
}

func (s *dbStore) QueueRecording(ctx context.Context, tenantID, id string, wake bool) error {
	if wake {
		s.mu.Lock()
		s.woken++
		s.mu.Unlock()
	}
	return s.DB.QueueRecording(ctx, tenantID, id, s.enqueue)
}

// fakes with function fields.
type transcriber func(context.Context, recordings.TranscribeRequest) (recordings.Transcript, error)

func (f transcriber) Transcribe(ctx context.Context, r recordings.TranscribeRequest) (recordings.Transcript, error) {
	return f(ctx, r)
}

type models func(context.Context, recordings.CompleteRequest) (string, error)

func (f models) Complete(ctx context.Context, r recordings.CompleteRequest) (string, error) {
	return f(ctx, r)
}

type settingsMap map[string]recordings.ModelSettings

func (m settingsMap) RecordingModels(_ context.Context, tenantID string) (recordings.ModelSettings, error) {
	return m[tenantID], nil
}

type knowledgeFunc func(context.Context, recordings.KnowledgeDocument) (string, error)

func (f knowledgeFunc) AddDocument(ctx context.Context, d recordings.KnowledgeDocument) (string, error) {
	return f(ctx, d)
}

func wav(secs float64) []byte {
	n := int(secs * 8000 * 2)
	b := []byte("RIFF")
	b = binary.LittleEndian.AppendUint32(b, uint32(36+n))
	b = append(b, "WAVEfmt "...)
	b = binary.LittleEndian.AppendUint32(b, 16)
	b = binary.LittleEndian.AppendUint16(b, 1)
	b = binary.LittleEndian.AppendUint16(b, 1)
	b = binary.LittleEndian.AppendUint32(b, 8000)
	b = binary.LittleEndian.AppendUint32(b, 16000)
	b = binary.LittleEndian.AppendUint16(b, 2)
	b = binary.LittleEndian.AppendUint16(b, 16)
	b = append(b, "data"...)
	b = binary.LittleEndian.AppendUint32(b, uint32(n))
	return append(b, make([]byte, n)...)
}

type world struct {
	svc      *recordings.Service
	st       *dbStore
	blobs    *blob.Local
	settings settingsMap
	heard    []string // transcriber calls: model
	fail     error    // the transcriber's next answer
	notified []recordings.Recording
	docs     []recordings.KnowledgeDocument
	audited  []audit.Entry
}

type auditFunc func(context.Context, audit.Entry) error

func (f auditFunc) Record(ctx context.Context, e audit.Entry) error { return f(ctx, e) }

func newWorld(t *testing.T, db *store.DB, maxBytes int64) *world {
	t.Helper()
	blobs, err := blob.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { blobs.Close() })
	w := &world{st: &dbStore{DB: db}, blobs: blobs, settings: settingsMap{}}
	w.svc, err = recordings.NewService(recordings.Config{Store: w.st, Blobs: blobs, Settings: w.settings, MaxBytes: maxBytes,
		Transcriber: transcriber(func(_ context.Context, r recordings.TranscribeRequest) (recordings.Transcript, error) {
			audio := new(bytes.Buffer)
			audio.ReadFrom(r.Audio)
			if !bytes.HasPrefix(audio.Bytes(), []byte("RIFF")) || r.MIME != "audio/wav" || r.FileName != "audio.wav" {
				return recordings.Transcript{}, nodus.Errorf(nodus.EINVALID, "bad upload %q %q", r.MIME, r.FileName)
			}
			w.heard = append(w.heard, r.Model)
			if err := w.fail; err != nil {
				w.fail = nil
				return recordings.Transcript{}, err
			}
			return recordings.Transcript{Language: "en", Text: "Hello there. Refunds take two weeks.", Duration: 2,
				Segments: []recordings.Segment{{ID: 0, Start: 0, End: 1, Text: " Hello there."},
					{ID: 1, Start: 1, End: 2, Text: " Refunds take two weeks.", AvgLogprob: -1.5}}}, nil
		}),
		Models: models(func(_ context.Context, r recordings.CompleteRequest) (string, error) {
			if !strings.Contains(r.Prompt, "Refunds take two weeks") {
				return "", errors.New("no transcript in the prompt")
			}
			return "```json\n{\"summary\": \"A greeting and the refund delay.\", \"key_points\": [\"Refunds take two weeks\", \" \"]}\n```", nil
		}),
		Knowledge: knowledgeFunc(func(_ context.Context, d recordings.KnowledgeDocument) (string, error) {
			w.docs = append(w.docs, d)
			return nodus.NewID(), nil
		}),
		Notify: func(_ context.Context, r recordings.Recording) { w.notified = append(w.notified, r) },
		Audit: auditFunc(func(_ context.Context, e audit.Entry) error {
			w.audited = append(w.audited, e)
			return nil
		}),
	})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func run(t *testing.T, fn func(t *testing.T, w *world)) {
	storetest.RunMigrated(t, store.SetMain, func(t *testing.T, db *store.DB) { fn(t, newWorld(t, db, 1<<20)) })
}

// TestProcess walks a recording through waiting for a speech model,
// transcription, summary, a passing failure retried and a final one.
func TestProcess(t *testing.T) {
	run(t, func(t *testing.T, w *world) {
		ctx := context.Background()
		alice := recordings.Actor{TenantID: "tenant-a", UserID: "alice"}
		rec, err := w.svc.CreateRecording(ctx, alice, recordings.UploadInput{Filename: "../../etc/pass\x00wd\x1b[31m.wav", Body: bytes.NewReader(wav(2))})
		if err != nil {
			t.Fatal(err)
		}
		if rec.Filename != "pass wd [31m.wav" || rec.Title != "pass wd [31m" || rec.Duration != 2 || rec.MIME != "audio/wav" ||
			rec.Status != recordings.StatusPending || len(w.st.queued) != 1 {
			t.Fatalf("created %+v, queued %v", rec, w.st.queued)
		}

		// No speech model: it waits, saying so, and nothing is heard.
		if err := w.svc.Process(ctx, alice.TenantID, rec.ID, false); err != nil {
			t.Fatal(err)
		}
		got, _ := w.svc.FindRecording(ctx, alice, rec.ID)
		if got.Status != recordings.StatusPending || got.StatusDetail != recordings.DetailNoSpeechModel || len(w.heard) != 0 {
			t.Fatalf("without a speech model: %+v", got)
		}
		// The sweep leaves it alone until a model is set, then queues it.
		w.st.queued = nil
		if n, err := w.svc.ResumeStalled(ctx); err != nil || n != 0 {
			t.Fatalf("resume without a model = %d, %v", n, err)
		}
		w.settings["tenant-a"] = recordings.ModelSettings{Speech: "whisper", Summary: "gpt"}
		// The job that found no model may still be ending: the new one
		// must not be dropped as its duplicate.
		if n, err := w.svc.ResumeStalled(ctx); err != nil || n != 1 || len(w.st.queued) != 1 || w.st.woken != 1 {
			t.Fatalf("resume with a model = %d, %v, %v (woken %d)", n, err, w.st.queued, w.st.woken)
		}

		// A passing failure leaves it pending for the job to retry.
		w.fail = nodus.Errorf(nodus.EUNAVAILABLE, "upstream down")
		if err := w.svc.Process(ctx, alice.TenantID, rec.ID, false); nodus.ErrorCode(err) != nodus.EUNAVAILABLE {
			t.Fatalf("passing failure = %v", err)
		}
		got, _ = w.svc.FindRecording(ctx, alice, rec.ID)
		if got.Status != recordings.StatusPending || !strings.Contains(got.StatusDetail, "retried: upstream down") || len(w.notified) != 0 {
			t.Fatalf("after a passing failure: %+v", got)
		}

		// Then it is transcribed and summarised.
		if err := w.svc.Process(ctx, alice.TenantID, rec.ID, false); err != nil {
			t.Fatal(err)
		}
		got, _ = w.svc.FindRecording(ctx, alice, rec.ID)
		if got.Status != recordings.StatusCompleted || got.Language != "en" || len(got.Segments) != 2 || got.Model != "whisper" ||
			got.Summary != "A greeting and the refund delay." || len(got.KeyPoints) != 1 || got.SummaryModel != "gpt" ||
			!got.Segments[1].Doubtful() || got.Segments[0].Doubtful() {
			t.Fatalf("completed: %+v", got)
		}
		if len(w.notified) != 1 || w.notified[0].Status != recordings.StatusCompleted {
			t.Fatalf("notified %+v", w.notified)
		}
		// Done is done: running the job again changes nothing.
		if err := w.svc.Process(ctx, alice.TenantID, rec.ID, false); err != nil || len(w.heard) != 2 {
			t.Fatalf("a second run: %v, heard %v", err, w.heard)
		}

		// Into a knowledge base: one line per segment, a timeline that
		// maps each line's bytes to its seconds.
		if _, err := w.svc.AddRecordingToKnowledgeBase(ctx, alice, rec.ID, "kb"); err != nil {
			t.Fatal(err)
		}
		d := w.docs[0]
		var timeline []recordings.TimelineEntry
		json.Unmarshal(d.Metadata[recordings.MetaTimeline], &timeline)
		i := strings.Index(d.Text, "Refunds")
		if start, end, ok := recordings.Span(timeline, i, i+5); !ok || start != 1 || end != 2 {
			t.Fatalf("span of the refunds line = %v %v %v in %q %+v", start, end, ok, d.Text, timeline)
		}
		if start, end, ok := recordings.Span(timeline, 0, len(d.Text)); !ok || start != 0 || end != 2 {
			t.Fatalf("span of the whole text = %v %v %v", start, end, ok)
		}
		if !strings.Contains(d.Text, "[0:01] Refunds take two weeks.") {
			t.Fatalf("transcript document %q", d.Text)
		}

		// A final failure fails a new recording with the reason.
		rec2, _ := w.svc.CreateRecording(ctx, alice, recordings.UploadInput{Title: "Second", Body: bytes.NewReader(wav(1))})
		w.fail = nodus.Errorf(nodus.EINVALID, "speech model whisper: Invalid file format.")
		if err := w.svc.Process(ctx, alice.TenantID, rec2.ID, false); err != nil {
			t.Fatal(err)
		}
		got, _ = w.svc.FindRecording(ctx, alice, rec2.ID)
		if got.Status != recordings.StatusFailed || !strings.Contains(got.Error, "Invalid file format") ||
			w.notified[len(w.notified)-1].Status != recordings.StatusFailed {
			t.Fatalf("after a final failure: %+v", got)
		}
		if _, err := w.svc.AddRecordingToKnowledgeBase(ctx, alice, rec2.ID, "kb"); nodus.ErrorCode(err) != nodus.ECONFLICT {
			t.Fatalf("a failed recording added to a knowledge base: %v", err)
		}
		// Retry starts it again; a completed one cannot be retried.
		if r, err := w.svc.RetryRecording(ctx, alice, rec2.ID); err != nil || r.Status != recordings.StatusPending || r.Error != "" {
			t.Fatalf("retry = %+v, %v", r, err)
		}
		if _, err := w.svc.RetryRecording(ctx, alice, rec.ID); nodus.ErrorCode(err) != nodus.ECONFLICT {
			t.Fatalf("retry of a completed recording: %v", err)
		}
		// On the job's last attempt a passing failure is final too.
		w.fail = nodus.Errorf(nodus.ETIMEOUT, "upstream too slow")
		if err := w.svc.Process(ctx, alice.TenantID, rec2.ID, true); err != nil {
			t.Fatal(err)
		}
		if got, _ = w.svc.FindRecording(ctx, alice, rec2.ID); got.Status != recordings.StatusFailed {
			t.Fatalf("after the last attempt: %+v", got)
		}
	})
}

// TestUploadRefusals: unreadable audio and oversize uploads are refused
// with a reason, and leave no blob behind.
func TestUploadRefusals(t *testing.T) {
	storetest.RunMigrated(t, store.SetMain, func(t *testing.T, db *store.DB) {
		w := newWorld(t, db, 4096)
		ctx := context.Background()
		a := recordings.Actor{TenantID: "t", UserID: "u"}
		truncated := wav(1)[:3000]
		for _, tt := range []struct {
			name string
			body []byte
			code string
			msg  string
		}{
			{"too large", wav(1), nodus.ETOOLARGE, "4096-byte limit"},
			{"not audio", []byte("%PDF-1.7 not a recording"), nodus.EINVALID, "not audio in a supported format"},
			{"truncated", truncated, nodus.EINVALID, "truncated"},
		} {
			_, err := w.svc.CreateRecording(ctx, a, recordings.UploadInput{Filename: "x.wav", Body: bytes.NewReader(tt.body)})
			if nodus.ErrorCode(err) != tt.code || !strings.Contains(nodus.ErrorMessage(err), tt.msg) {
				t.Errorf("%s: %v (%s), want %s with %q", tt.name, err, nodus.ErrorMessage(err), tt.code, tt.msg)
			}
		}
		if n, err := w.blobs.Sweep(ctx, time.Now().Add(time.Hour)); err != nil || n != 0 {
			t.Errorf("refused uploads left %d files (%v)", n, err)
		}
		if list, _, _ := w.svc.ListRecordings(ctx, recordings.Actor{TenantID: "t", UserID: "u", Admin: true}, recordings.Filter{}, "", 10); len(list) != 0 {
			t.Errorf("refused uploads left rows: %+v", list)
		}
		if _, err := w.svc.CreateRecording(ctx, a, recordings.UploadInput{Title: strings.Repeat("t", 201), Body: bytes.NewReader(wav(0.1))}); nodus.ErrorCode(err) != nodus.EINVALID {
			t.Errorf("a long title: %v", err)
		}
	})
}

// TestIsolation: another tenant, or another user of the tenant who is not
// an admin, does not find a recording; an admin of the tenant does. Each
// change is audited as who made it; refused attempts leave no entry.
func TestIsolation(t *testing.T) {
	run(t, func(t *testing.T, w *world) {
		ctx := context.Background()
		alice := recordings.Actor{TenantID: "tenant-a", UserID: "alice",
			Entry: audit.Entry{ActorKind: audit.ActorUser, ActorID: "alice", Address: "192.0.2.1"}}
		rec, err := w.svc.CreateRecording(ctx, alice, recordings.UploadInput{Title: "Mine", Body: bytes.NewReader(wav(0.5))})
		if err != nil {
			t.Fatal(err)
		}
		for _, other := range []recordings.Actor{
			{TenantID: "tenant-b", UserID: "alice", Admin: true},
			{TenantID: "tenant-a", UserID: "bob"},
		} {
			if _, err := w.svc.FindRecording(ctx, other, rec.ID); nodus.ErrorCode(err) != nodus.ENOTFOUND {
				t.Errorf("%+v finds it: %v", other, err)
			}
			if _, err := w.svc.UpdateRecordingTitle(ctx, other, rec.ID, "hijacked"); nodus.ErrorCode(err) != nodus.ENOTFOUND {
				t.Errorf("%+v renames it: %v", other, err)
			}
			if _, err := w.svc.OpenRecordingAudio(ctx, other, rec.ID); nodus.ErrorCode(err) != nodus.ENOTFOUND {
				t.Errorf("%+v plays it: %v", other, err)
			}
			if _, err := w.svc.RetryRecording(ctx, other, rec.ID); nodus.ErrorCode(err) != nodus.ENOTFOUND {
				t.Errorf("%+v retries it: %v", other, err)
			}
			if _, err := w.svc.AddRecordingToKnowledgeBase(ctx, other, rec.ID, "kb"); nodus.ErrorCode(err) != nodus.ENOTFOUND {
				t.Errorf("%+v adds it to a knowledge base: %v", other, err)
			}
			if err := w.svc.DeleteRecording(ctx, other, rec.ID); nodus.ErrorCode(err) != nodus.ENOTFOUND {
				t.Errorf("%+v deletes it: %v", other, err)
			}
			if list, _, err := w.svc.ListRecordings(ctx, other, recordings.Filter{}, "", 10); err != nil || len(list) != 0 {
				t.Errorf("%+v lists %d, %v", other, len(list), err)
			}
		}
		admin := recordings.Actor{TenantID: "tenant-a", UserID: "carol", Admin: true,
			Entry: audit.Entry{ActorKind: audit.ActorUser, ActorID: "carol"}}
		if r, err := w.svc.UpdateRecordingTitle(ctx, admin, rec.ID, "  Renamed\u202e by admin\n"); err != nil || r.Title != "Renamed by admin" {
			t.Fatalf("admin rename = %+v, %v", r, err)
		}
		audio, err := w.svc.OpenRecordingAudio(ctx, alice, rec.ID)
		if err != nil {
			t.Fatal(err)
		}
		audio.Content.Close()
		if err := w.svc.DeleteRecording(ctx, alice, rec.ID); err != nil {
			t.Fatal(err)
		}
		if _, _, err := w.blobs.Open(ctx, rec.BlobID); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("the blob outlived its recording: %v", err)
		}

		type seen struct{ action, actor, address, title string }
		want := []seen{{"recording.create", "alice", "192.0.2.1", "Mine"}, {"recording.update", "carol", "", "Renamed by admin"},
			{"recording.delete", "alice", "192.0.2.1", "Renamed by admin"}}
		if len(w.audited) != len(want) {
			t.Fatalf("audited %d entries, want %d: %+v", len(w.audited), len(want), w.audited)
		}
		for i, e := range w.audited {
			title := e.Changes["title"].After
			if e.Action == "recording.delete" {
				title = e.Changes["title"].Before
			}
			got := seen{e.Action, e.ActorID, e.Address, fmt.Sprint(title)}
			if got != want[i] || e.TenantID != "tenant-a" || e.TargetType != "recording" || e.TargetID != rec.ID {
				t.Errorf("entry %d = %+v, want %+v on tenant-a's recording %s", i, e, want[i], rec.ID)
			}
		}
		if c := w.audited[1].Changes["title"]; c.Before != "Mine" {
			t.Errorf("the rename's entry has no title before: %+v", c)
		}
	})
}

// TestProcessInPieces: a WAV larger than one request takes is transcribed
// in pieces, each a WAV within the bound, and the transcript joins them:
// text in order, segments renumbered and moved to their piece's start.
func TestProcessInPieces(t *testing.T) {
	storetest.RunMigrated(t, store.SetMain, func(t *testing.T, db *store.DB) {
		blobs, err := blob.NewLocal(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		defer blobs.Close()
		const pieceBytes = 64 << 10 // 4 s of 8 kHz 16-bit mono a piece
		var sizes []int
		svc, err := recordings.NewService(recordings.Config{Store: &dbStore{DB: db}, Blobs: blobs, MaxBytes: 1 << 20,
			PieceBytes: pieceBytes, Settings: settingsMap{"tenant-a": {Speech: "whisper"}},
			Transcriber: transcriber(func(_ context.Context, r recordings.TranscribeRequest) (recordings.Transcript, error) {
				audio := new(bytes.Buffer)
				audio.ReadFrom(r.Audio)
				f, err := recordings.Detect(audio.Bytes()[:min(audio.Len(), recordings.HeadSize)])
				if err != nil || f != recordings.FormatWAV {
					return recordings.Transcript{}, nodus.Errorf(nodus.EINVALID, "not a WAV: %v", err)
				}
				secs, _ := recordings.Duration(f, bytes.NewReader(audio.Bytes()), int64(audio.Len()))
				sizes = append(sizes, audio.Len())
				n := len(sizes)
				return recordings.Transcript{Language: "en", Text: fmt.Sprintf(" Piece %d. ", n), Duration: secs,
					Segments: []recordings.Segment{{ID: 0, Start: 0.5, End: secs - 0.5, Text: fmt.Sprintf(" Piece %d.", n)}}}, nil
			})})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		alice := recordings.Actor{TenantID: "tenant-a", UserID: "alice"}
		rec, err := svc.CreateRecording(ctx, alice, recordings.UploadInput{Filename: "long.wav", Body: bytes.NewReader(wav(10))})
		if err != nil {
			t.Fatal(err)
		}
		if err := svc.Process(ctx, alice.TenantID, rec.ID, true); err != nil {
			t.Fatal(err)
		}
		got, err := svc.FindRecording(ctx, alice, rec.ID)
		if err != nil || got.Status != recordings.StatusCompleted {
			t.Fatalf("%+v %v", got, err)
		}
		if len(sizes) != 3 || got.Text != "Piece 1. Piece 2. Piece 3." || len(got.Segments) != 3 {
			t.Fatalf("pieces of %v bytes; transcript %q, %d segments", sizes, got.Text, len(got.Segments))
		}
		start := 0.0
		for i, seg := range got.Segments {
			if sizes[i] > pieceBytes || seg.ID != i || math.Abs(seg.Start-(start+0.5)) > 1e-6 {
				t.Errorf("segment %d: %+v (piece of %d bytes), want it to start at %.3f", i, seg, sizes[i], start+0.5)
			}
			start = seg.End + 0.5
		}
		if math.Abs(start-10) > 1e-6 {
			t.Errorf("the pieces end at %.3f s, want 10", start)
		}
	})
}
