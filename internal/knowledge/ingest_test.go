package knowledge_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/blob"
	"github.com/nodus-os/nodus/internal/extract"
	"github.com/nodus-os/nodus/internal/extract/extracttest"
	"github.com/nodus-os/nodus/internal/knowledge"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
)

// env is one database with the main set applied, a blob directory, two
// tenants and a knowledge base of the first.
type env struct {
	db       *store.DB
	blobs    *blob.Local
	blobRoot string
	a, b     tenant
	kb       knowledge.KnowledgeBase
}

type tenant struct {
	id  string
	ctx context.Context
}

func newTenant() tenant {
	id := nodus.NewID()
	return tenant{id: id, ctx: nodus.WithTenant(context.Background(), id)}
}

// runIngest runs fn on both databases.
func runIngest(t *testing.T, fn func(t *testing.T, e *env)) {
	storetest.RunMigrated(t, store.SetMain, func(t *testing.T, db *store.DB) {
		root := t.TempDir()
		blobs, err := blob.NewLocal(root)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { blobs.Close() })
		e := &env{db: db, blobs: blobs, blobRoot: root, a: newTenant(), b: newTenant()}
		now := nodus.SystemClock{}.Now()
		e.kb = knowledge.KnowledgeBase{ID: nodus.NewID(), TenantID: e.a.id, Name: "Handbook", CreatedBy: "u1",
			CreatedAt: now, UpdatedAt: now}
		e.kb.SetDefaults()
		if err := db.CreateKnowledgeBase(e.a.ctx, e.kb); err != nil {
			t.Fatal(err)
		}
		fn(t, e)
	})
}

// service builds a Service over st (the database if nil).
func (e *env) service(t *testing.T, st knowledge.Store, change func(*knowledge.Config)) *knowledge.Service {
	t.Helper()
	if st == nil {
		st = e.db
	}
	cfg := knowledge.Config{Store: st, Blobs: e.blobs}
	if change != nil {
		change(&cfg)
	}
	s, err := knowledge.NewService(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// upload stores content as a pending document of tenant a's knowledge base,
// recorded with fileType as the upload claimed it.
func (e *env) upload(t *testing.T, name, fileType string, content []byte) knowledge.Document {
	t.Helper()
	info, err := e.blobs.Put(context.Background(), bytes.NewReader(content), 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	return e.createDoc(t, name, fileType, info.ID, int64(len(content)), hex.EncodeToString(info.SHA256[:]))
}

func (e *env) createDoc(t *testing.T, name, fileType, blobID string, size int64, hash string) knowledge.Document {
	t.Helper()
	now := nodus.SystemClock{}.Now()
	d := knowledge.Document{ID: nodus.NewID(), TenantID: e.a.id, KnowledgeBaseID: e.kb.ID, Filename: blobID,
		OriginalFilename: name, FileType: fileType, FileSize: size, ContentHash: hash, BlobID: blobID,
		Status: knowledge.StatusPending, UploadedBy: "u1", CreatedAt: now, UpdatedAt: now}
	if err := e.db.CreateDocument(e.a.ctx, d); err != nil {
		t.Fatal(err)
	}
	return d
}

func (e *env) find(t *testing.T, id string) knowledge.Document {
	t.Helper()
	d, err := e.db.FindDocument(e.a.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func (e *env) chunks(t *testing.T, id string) []knowledge.Chunk {
	t.Helper()
	c, err := e.db.ListChunks(e.a.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// chunkRows counts a document's chunk rows, whatever their index or id.
func (e *env) chunkRows(t *testing.T, id string) int {
	t.Helper()
	var n int
	if err := e.db.Read(nodus.WithAllTenants(context.Background()), func(tx *store.Tx) error {
		return tx.QueryRow(context.Background(), `SELECT count(*) FROM kb_chunks WHERE document_id = ?`, id).Scan(&n)
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// wantOneSet checks that d is completed with exactly one set of chunks,
// whose ids derive from the document and index, and returns them.
func (e *env) wantOneSet(t *testing.T, id string) []knowledge.Chunk {
	t.Helper()
	d := e.find(t, id)
	if d.Status != knowledge.StatusCompleted || d.Stage != "" || d.Progress != 100 || d.Error != "" ||
		d.ProcessedAt == nil {
		t.Fatalf("document = %s/%q/%d %q processed %v, want completed/\"\"/100", d.Status, d.Stage, d.Progress,
			d.Error, d.ProcessedAt)
	}
	cs := e.chunks(t, id)
	if len(cs) == 0 || d.ChunkCount != len(cs) || e.chunkRows(t, id) != len(cs) {
		t.Fatalf("chunk count %d, listed %d, rows %d", d.ChunkCount, len(cs), e.chunkRows(t, id))
	}
	for i, c := range cs {
		if c.Index != i || c.ID != knowledge.ChunkID(id, i) || c.DocumentID != id || c.TenantID != e.a.id ||
			c.KnowledgeBaseID != e.kb.ID {
			t.Fatalf("chunk %d: %+v", i, c)
		}
	}
	return cs
}

// wantFailed checks that d failed at stage with a readable error and has
// no chunks.
func (e *env) wantFailed(t *testing.T, d knowledge.Document, stage string) {
	t.Helper()
	got := e.find(t, d.ID)
	if got.Status != knowledge.StatusFailed || got.Stage != stage || got.ProcessedAt != nil {
		t.Fatalf("document = %s at %q, want failed at %s", got.Status, got.Stage, stage)
	}
	msg := got.Error
	if msg == "" || msg == "internal error" || strings.ContainsAny(msg, "\n\x00") {
		t.Errorf("error %q is not a readable message", msg)
	}
	for _, secret := range []string{e.blobRoot, d.BlobID, d.ID, e.a.id, "knowledge:", "blob:", "sql", "SQL", ".go"} {
		if strings.Contains(msg, secret) {
			t.Errorf("error %q reveals %q", msg, secret)
		}
	}
	if got.ChunkCount != 0 || e.chunkRows(t, d.ID) != 0 {
		t.Errorf("failed document has %d chunks (%d rows)", got.ChunkCount, e.chunkRows(t, d.ID))
	}
}

func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if nodus.ErrorCode(err) != code {
		t.Fatalf("%s: %v, want %s", what, err, code)
	}
}

const markdownDoc = `# Install

Nodus is one binary. Download it and run nodus serve.

## Linux

Copy the binary to /usr/local/bin and start the service with systemd.

## Windows

Unpack the archive and run nodus.exe from a terminal.

# Configure

Set NODUS_DATA_DIR to choose where the database lives.
`

func joinText(cs []knowledge.Chunk) string {
	var b strings.Builder
	for _, c := range cs {
		b.WriteString(c.Prefix + c.Text + "\n")
	}
	return b.String()
}

func TestIngestCompletes(t *testing.T) {
	tests := []struct {
		name, filename, recorded string
		content                  func(t *testing.T) []byte
		wantType                 extract.Type
		phrases                  []string
	}{
		{"markdown", "install.md", "markdown", func(*testing.T) []byte { return []byte(markdownDoc) },
			extract.TypeMarkdown, []string{"Nodus is one binary.", "start the service with systemd", "Set NODUS_DATA_DIR"}},
		// Recorded wrongly at upload: the content decides.
		{"docx", "report.docx", "pdf", buildDOCX, extract.TypeDOCX,
			[]string{"Quarterly Report", "The quick brown fox jumps over the lazy dog.", "After the table & more."}},
	}
	runIngest(t, func(t *testing.T, e *env) {
		svc := e.service(t, nil, nil)
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				d := e.upload(t, tt.filename, tt.recorded, tt.content(t))
				if err := svc.Ingest(context.Background(), e.a.id, d.ID, knowledge.IngestOptions{}); err != nil {
					t.Fatalf("Ingest: %v", err)
				}
				cs := e.wantOneSet(t, d.ID)
				if got := e.find(t, d.ID); got.FileType != string(tt.wantType) {
					t.Errorf("file type %q, want %q", got.FileType, tt.wantType)
				}
				text := joinText(cs)
				for _, p := range tt.phrases {
					if !strings.Contains(text, p) {
						t.Errorf("chunks lack %q:\n%s", p, text)
					}
				}
			})
		}
		// The Markdown document's headings became the chunks' paths.
		t.Run("headings", func(t *testing.T) {
			d := e.upload(t, "again.md", "markdown", []byte(markdownDoc+"\nA second copy.\n"))
			if err := svc.Ingest(context.Background(), e.a.id, d.ID, knowledge.IngestOptions{}); err != nil {
				t.Fatal(err)
			}
			cs := e.wantOneSet(t, d.ID)
			if !slices.ContainsFunc(cs, func(c knowledge.Chunk) bool {
				return slices.Equal(c.Headings, []string{"Install", "Linux"})
			}) {
				t.Errorf("no chunk under Install > Linux: %+v", cs)
			}
		})
	})
}

func TestIngestFailures(t *testing.T) {
	png := []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00\x90wS\xde")
	tests := []struct {
		name, filename, recorded string
		content                  []byte // nil: no blob at all
		limits                   extract.Limits
		code                     string
	}{
		{"malformed pdf", "scan.pdf", "pdf", []byte("%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 9 0 R\nendobj\ntrailer garbage\n%%EOF\n"),
			extract.Limits{}, nodus.EINVALID},
		{"png named .txt", "notes.txt", "text", png, extract.Limits{}, nodus.EINVALID},
		{"missing blob", "gone.md", "markdown", nil, extract.Limits{}, nodus.ENOTFOUND},
		{"too large", "big.md", "markdown", []byte(strings.Repeat("lorem ipsum ", 200)),
			extract.Limits{MaxInputBytes: 1000}, nodus.ETOOLARGE},
		{"empty text", "blank.md", "markdown", []byte("   \n\n  \n"), extract.Limits{}, nodus.EINVALID},
	}
	runIngest(t, func(t *testing.T, e *env) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				svc := e.service(t, nil, func(c *knowledge.Config) { c.Limits = tt.limits })
				var d knowledge.Document
				if tt.content == nil {
					d = e.createDoc(t, tt.filename, tt.recorded, nodus.NewID(), 10, "")
				} else {
					d = e.upload(t, tt.filename, tt.recorded, tt.content)
				}
				err := svc.Ingest(context.Background(), e.a.id, d.ID, knowledge.IngestOptions{})
				wantCode(t, "Ingest", err, tt.code)
				e.wantFailed(t, d, knowledge.StageExtracting)
				t.Logf("error shown: %q", e.find(t, d.ID).Error)
			})
		}
	})
}

func TestIngestIdempotentAndForce(t *testing.T) {
	runIngest(t, func(t *testing.T, e *env) {
		svc := e.service(t, nil, nil)
		// Prose without headings, so chunk size alone decides the count.
		long := strings.Repeat("Nodus runs as one binary and keeps its data in one directory. "+
			"Install it, configure it and start the service; then upload documents.\n\n", 40)
		d := e.upload(t, "guide.md", "markdown", []byte(long))
		if err := svc.Ingest(context.Background(), e.a.id, d.ID, knowledge.IngestOptions{}); err != nil {
			t.Fatal(err)
		}
		first := e.wantOneSet(t, d.ID)
		before := e.find(t, d.ID)

		// Again, without force: nothing changes.
		if err := svc.Ingest(context.Background(), e.a.id, d.ID, knowledge.IngestOptions{}); err != nil {
			t.Fatal(err)
		}
		if after := e.find(t, d.ID); !after.UpdatedAt.Equal(before.UpdatedAt) || !after.ProcessedAt.Equal(*before.ProcessedAt) {
			t.Errorf("a completed document was touched: %v → %v", before.UpdatedAt, after.UpdatedAt)
		}
		if again := e.wantOneSet(t, d.ID); !slices.EqualFunc(first, again, func(a, b knowledge.Chunk) bool {
			return a.ID == b.ID && a.Text == b.Text
		}) {
			t.Error("chunks changed")
		}

		// Forced with the same settings: the same ids and texts.
		if err := svc.Ingest(context.Background(), e.a.id, d.ID, knowledge.IngestOptions{Force: true}); err != nil {
			t.Fatal(err)
		}
		if again := e.wantOneSet(t, d.ID); !slices.EqualFunc(first, again, func(a, b knowledge.Chunk) bool {
			return a.ID == b.ID && a.Text == b.Text
		}) {
			t.Error("forced re-ingestion with the same settings changed the chunks")
		}

		// Smaller chunks: only a forced run applies them.
		if _, err := e.db.UpdateKnowledgeBase(e.a.ctx, e.kb.ID, func(kb *knowledge.KnowledgeBase) error {
			kb.Chunking = knowledge.ChunkingSettings{Size: 60, Overlap: 0, HeaderAware: true}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if err := svc.Ingest(context.Background(), e.a.id, d.ID, knowledge.IngestOptions{}); err != nil {
			t.Fatal(err)
		}
		if n := len(e.wantOneSet(t, d.ID)); n != len(first) {
			t.Fatalf("without force: %d chunks, want %d", n, len(first))
		}
		if err := svc.Ingest(context.Background(), e.a.id, d.ID, knowledge.IngestOptions{Force: true}); err != nil {
			t.Fatal(err)
		}
		smaller := e.wantOneSet(t, d.ID)
		if len(smaller) <= len(first) {
			t.Fatalf("size 60: %d chunks, size 500: %d", len(smaller), len(first))
		}
		for _, c := range smaller {
			if c.Tokens > 60 {
				t.Errorf("chunk %d has %d tokens", c.Index, c.Tokens)
			}
		}
	})
}

// flakyStore fails IndexChunks the next failures times: before writing,
// or, with commit, after replacing the chunks without completing the
// document (a stray set, as a crashed run of an older version left).
type flakyStore struct {
	knowledge.Store
	mu       sync.Mutex
	failures int
	commit   bool
}

func (f *flakyStore) IndexChunks(ctx context.Context, id string, chunks []knowledge.Chunk, change func(*knowledge.Document) error) (knowledge.Document, error) {
	f.mu.Lock()
	fail := f.failures > 0
	if fail {
		f.failures--
	}
	f.mu.Unlock()
	if !fail {
		return f.Store.IndexChunks(ctx, id, chunks, change)
	}
	if f.commit {
		if err := f.Store.ReplaceChunks(ctx, id, chunks); err != nil {
			return knowledge.Document{}, err
		}
	}
	return knowledge.Document{}, errors.New("simulated crash: connection reset by peer at /var/lib/nodus/main.db")
}

func TestIngestCrashAndRetry(t *testing.T) {
	runIngest(t, func(t *testing.T, e *env) {
		for _, commit := range []bool{false, true} {
			name := map[bool]string{false: "before indexing", true: "after indexing"}[commit]
			t.Run(name, func(t *testing.T) {
				st := &flakyStore{Store: e.db, failures: 1, commit: commit}
				svc := e.service(t, st, nil)
				d := e.upload(t, name+".md", "markdown", []byte(markdownDoc+"\n"+name+"\n"))
				err := svc.Ingest(context.Background(), e.a.id, d.ID, knowledge.IngestOptions{})
				wantCode(t, "crashed Ingest", err, nodus.EINTERNAL)
				got := e.find(t, d.ID)
				if got.Status != knowledge.StatusFailed || got.Stage != knowledge.StageIndexing ||
					got.Progress != knowledge.ProgressExtracted {
					t.Fatalf("document = %s at %q (%d%%), want failed at indexing (%d%%)", got.Status, got.Stage,
						got.Progress, knowledge.ProgressExtracted)
				}
				if strings.Contains(got.Error, "/var/lib") || strings.Contains(got.Error, "connection reset") {
					t.Errorf("error %q reveals the cause", got.Error)
				}
				if !commit {
					e.wantFailed(t, d, knowledge.StageIndexing)
				}

				// Only a failed document can be retried.
				if _, err := svc.RetryDocument(context.Background(), e.a.id, d.ID); err != nil {
					t.Fatal(err)
				}
				_, err = svc.RetryDocument(context.Background(), e.a.id, d.ID)
				wantCode(t, "retry a pending document", err, nodus.ECONFLICT)
				if got := e.find(t, d.ID); got.Status != knowledge.StatusPending || got.Error != "" {
					t.Fatalf("retried document = %s %q", got.Status, got.Error)
				}
				if err := svc.Ingest(context.Background(), e.a.id, d.ID, knowledge.IngestOptions{}); err != nil {
					t.Fatal(err)
				}
				e.wantOneSet(t, d.ID)
				_, err = svc.RetryDocument(context.Background(), e.a.id, d.ID)
				wantCode(t, "retry a completed document", err, nodus.ECONFLICT)
			})
		}
	})
}

func TestIngestConcurrent(t *testing.T) {
	runIngest(t, func(t *testing.T, e *env) {
		long := []byte(strings.Repeat(markdownDoc, 20))
		t.Run("same service", func(t *testing.T) {
			svc := e.service(t, nil, nil)
			d := e.upload(t, "concurrent.md", "markdown", long)
			ingestTogether(t, e, d.ID, svc, svc, svc, svc)
		})
		// A run that thinks the other crashed takes over: both run every
		// stage, and still one set remains.
		t.Run("overlapping runs", func(t *testing.T) {
			d := e.upload(t, "overlap.md", "markdown", append(long, "overlap\n"...))
			late := e.service(t, nil, func(c *knowledge.Config) {
				c.Now = func() time.Time { return nodus.SystemClock{}.Now().Add(time.Hour) }
			})
			ingestTogether(t, e, d.ID, e.service(t, nil, nil), late)
		})
	})
}

// ingestTogether runs Ingest of id on each service at once; each ends with
// nil or ECONFLICT, at least one with nil, and one set of chunks remains.
func ingestTogether(t *testing.T, e *env, id string, svcs ...*knowledge.Service) {
	t.Helper()
	errs := make([]error, len(svcs))
	var wg sync.WaitGroup
	for i, svc := range svcs {
		wg.Go(func() { errs[i] = svc.Ingest(context.Background(), e.a.id, id, knowledge.IngestOptions{}) })
	}
	wg.Wait()
	t.Logf("results: %v", errs)
	ok := 0
	for _, err := range errs {
		switch nodus.ErrorCode(err) {
		case "":
			ok++
		case nodus.ECONFLICT:
		default:
			t.Errorf("concurrent Ingest: %v", err)
		}
	}
	if ok == 0 {
		t.Errorf("no Ingest succeeded: %v", errs)
	}
	e.wantOneSet(t, id)
}

func TestIngestStaleProcessing(t *testing.T) {
	runIngest(t, func(t *testing.T, e *env) {
		svc := e.service(t, nil, nil)
		d := e.upload(t, "stale.md", "markdown", []byte(markdownDoc))
		setProcessing := func(at time.Time) {
			if _, err := e.db.UpdateDocumentState(e.a.ctx, d.ID, func(d *knowledge.Document) error {
				d.Status, d.Stage, d.Progress, d.UpdatedAt = knowledge.StatusProcessing, knowledge.StageChunking, 10, at
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		}
		// Another run is at work: leave it.
		setProcessing(nodus.SystemClock{}.Now())
		err := svc.Ingest(context.Background(), e.a.id, d.ID, knowledge.IngestOptions{})
		wantCode(t, "Ingest of a processing document", err, nodus.ECONFLICT)
		if got := e.find(t, d.ID); got.Status != knowledge.StatusProcessing || got.Stage != knowledge.StageChunking {
			t.Fatalf("document = %s at %q", got.Status, got.Stage)
		}
		// That run died an hour ago: take over.
		setProcessing(nodus.SystemClock{}.Now().Add(-time.Hour))
		if err := svc.Ingest(context.Background(), e.a.id, d.ID, knowledge.IngestOptions{}); err != nil {
			t.Fatal(err)
		}
		e.wantOneSet(t, d.ID)
	})
}

func TestIngestTenantIsolation(t *testing.T) {
	runIngest(t, func(t *testing.T, e *env) {
		svc := e.service(t, nil, nil)
		d := e.upload(t, "mine.md", "markdown", []byte(markdownDoc))
		before := e.find(t, d.ID)
		err := svc.Ingest(context.Background(), e.b.id, d.ID, knowledge.IngestOptions{})
		wantCode(t, "Ingest as another tenant", err, nodus.ENOTFOUND)
		err = svc.Ingest(nodus.WithAllTenants(context.Background()), e.b.id, d.ID, knowledge.IngestOptions{Force: true})
		wantCode(t, "Ingest as another tenant from the platform scope", err, nodus.ENOTFOUND)
		_, err = svc.RetryDocument(context.Background(), e.b.id, d.ID)
		wantCode(t, "RetryDocument as another tenant", err, nodus.ENOTFOUND)
		wantCode(t, "Ingest without a tenant", svc.Ingest(context.Background(), "", d.ID, knowledge.IngestOptions{}), nodus.ENOTFOUND)
		wantCode(t, "Ingest of a malformed id", svc.Ingest(context.Background(), e.a.id, "x", knowledge.IngestOptions{}), nodus.ENOTFOUND)
		after := e.find(t, d.ID)
		if after.Status != before.Status || !after.UpdatedAt.Equal(before.UpdatedAt) || e.chunkRows(t, d.ID) != 0 {
			t.Fatalf("document changed: %+v → %+v", before, after)
		}
		// Its own tenant still can.
		if err := svc.Ingest(context.Background(), e.a.id, d.ID, knowledge.IngestOptions{}); err != nil {
			t.Fatal(err)
		}
		e.wantOneSet(t, d.ID)
	})
}

func TestNewServiceRequires(t *testing.T) {
	if _, err := knowledge.NewService(knowledge.Config{}); err == nil {
		t.Error("NewService without a store: no error")
	}
}

const docxStyles = `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<w:styles xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:style w:type="paragraph" w:styleId="Heading1"><w:name w:val="heading 1"/></w:style></w:styles>`

// buildDOCX writes a Word document with a heading, paragraphs and a table.
func buildDOCX(t *testing.T) []byte {
	t.Helper()
	body := `<w:p><w:pPr><w:pStyle w:val="Heading1"/></w:pPr><w:r><w:t>Quarterly Report</w:t></w:r></w:p>` +
		`<w:p><w:r><w:t xml:space="preserve">The quick brown fox </w:t></w:r><w:r><w:t>jumps over the lazy dog.</w:t></w:r></w:p>` +
		`<w:tbl><w:tr><w:tc><w:p><w:r><w:t>Name</w:t></w:r></w:p></w:tc><w:tc><w:p><w:r><w:t>Score</w:t></w:r></w:p></w:tc></w:tr>` +
		`<w:tr><w:tc><w:p><w:r><w:t>Ada</w:t></w:r></w:p></w:tc><w:tc><w:p><w:r><w:t>42</w:t></w:r></w:p></w:tc></w:tr></w:tbl>` +
		`<w:p><w:r><w:t>After the table &amp; more.</w:t></w:r></w:p>`
	return extracttest.DOCX(t, body, extracttest.ZipEntry{Name: "word/styles.xml", Body: docxStyles})
}
