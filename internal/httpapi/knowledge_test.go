package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"mime/multipart"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/audit"
	"github.com/nodus-os/nodus/internal/blob"
	"github.com/nodus-os/nodus/internal/identity"
	"github.com/nodus-os/nodus/internal/knowledge"
	"github.com/nodus-os/nodus/internal/metrics"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
)

// knowledgeFixture is the API over a real store with knowledge bases
// served: tenants A and B, A's org_admin, user and viewer, B's org_admin
// and the super_admin, each with an API token.
type knowledgeFixture struct {
	gatewayFixture // for call and must
	db             *store.DB
	blobs          *blob.Local
	kn             *knowledge.Service // to run ingestion, which the queue would
	viewer, bAdmin string             // tokens

	mu     sync.Mutex
	queued []string // documents whose ingestion was queued
}

func newKnowledgeFixture(t *testing.T, db *store.DB, configure ...func(*knowledge.Config)) *knowledgeFixture {
	t.Helper()
	ctx := context.Background()
	for _, set := range []string{store.SetAuth, store.SetMain} {
		m, err := store.NewMigrator(set, db)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.Up(ctx); err != nil {
			t.Fatal(err)
		}
	}
	clock := nodus.SystemClock{}
	aud := audit.NewService(db, clock)
	ids := identity.NewService(db, identity.NewHasher(identity.Params{Memory: 1024, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}, 0),
		identity.NewThrottle(20, 100, 15*time.Minute), aud, clock)
	root, _, err := ids.Bootstrap(ctx, "root@example.test", "a long enough password")
	if err != nil {
		t.Fatal(err)
	}
	all := nodus.WithAllTenants(ctx)
	f := &knowledgeFixture{gatewayFixture: gatewayFixture{audit: aud}, db: db}
	for name, dst := range map[string]*string{"Tenant A": &f.a, "Tenant B": &f.b} {
		tn := &identity.Tenant{Name: name, IsActive: true}
		if err := ids.CreateTenant(all, identity.Actor{User: root}, tn); err != nil {
			t.Fatal(err)
		}
		*dst = tn.ID
	}
	token := func(u *identity.User) string {
		_, secret, err := ids.CreateToken(all, u, "test", "", 0, identity.Client{})
		if err != nil {
			t.Fatal(err)
		}
		return secret
	}
	f.root = token(root)
	for _, m := range []struct {
		name   string
		role   identity.Role
		tenant string
		dst    *string
	}{{"a-admin", identity.RoleOrgAdmin, f.a, &f.admin}, {"a-user", identity.RoleUser, f.a, &f.user},
		{"a-viewer", identity.RoleViewer, f.a, &f.viewer}, {"b-admin", identity.RoleOrgAdmin, f.b, &f.bAdmin}} {
		u := &identity.User{Email: m.name + "@example.test", Username: m.name, Role: m.role, TenantID: m.tenant, IsActive: true}
		if err := ids.CreateUser(all, u, "a long enough password", audit.Entry{ActorKind: "system"}); err != nil {
			t.Fatal(err)
		}
		*m.dst = token(u)
	}
	f.blobs, err = blob.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.blobs.Close() })
	cfg := knowledge.Config{Store: db, Blobs: f.blobs, Audit: aud,
		Enqueue: func(_ context.Context, _, id string) error {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.queued = append(f.queued, id)
			return nil
		}}
	for _, c := range configure {
		c(&cfg)
	}
	kn, err := knowledge.NewService(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.kn = kn
	s := NewServer(Deps{
		Logger:    slog.New(slog.DiscardHandler),
		Metrics:   metrics.NewRegistry(),
		Ready:     func(context.Context) Readiness { return Readiness{Ready: true} },
		Identity:  ids,
		Audit:     aud,
		Knowledge: kn,
	}, Config{})
	f.ts = serve(t, s)
	return f
}

// addDocument stores a failed document with a blob in a knowledge base of
// tenant, as an upload would have, and returns it.
func (f *knowledgeFixture) addDocument(t *testing.T, tenant, kbID, content string) knowledge.Document {
	t.Helper()
	ctx := nodus.WithTenant(context.Background(), tenant)
	info, err := f.blobs.Put(ctx, strings.NewReader(content), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	d := knowledge.Document{ID: nodus.NewID(), TenantID: tenant, KnowledgeBaseID: kbID, Filename: info.ID, BlobID: info.ID,
		OriginalFilename: "notes.md", FileType: "markdown", FileSize: info.Size, Status: knowledge.StatusFailed,
		Stage: knowledge.StageExtracting, Error: "boom", UploadedBy: "someone", CreatedAt: now, UpdatedAt: now}
	if err := f.db.CreateDocument(ctx, d); err != nil {
		t.Fatal(err)
	}
	return d
}

type kbAnswer struct {
	KnowledgeBase struct {
		ID             string `json:"id"`
		Name           string `json:"name"`
		Description    string `json:"description"`
		EmbeddingModel string `json:"embedding_model"`
		Retrieval      struct {
			Mode string `json:"mode"`
			TopK int    `json:"top_k"`
		} `json:"retrieval"`
		Chunking struct {
			Size        int  `json:"size"`
			Overlap     int  `json:"overlap"`
			HeaderAware bool `json:"header_aware"`
		} `json:"chunking"`
		DocumentCount int `json:"document_count"`
	} `json:"knowledge_base"`
}

func TestKnowledgeBaseRoutes(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		f := newKnowledgeFixture(t, db)
		const base = "/api/v1/knowledge-bases"

		var created kbAnswer
		f.must(t, f.admin, "POST", base, "", map[string]any{"name": "Handbook", "description": "HR",
			"chunking": map[string]any{"size": 300}}, 201, &created)
		kb := created.KnowledgeBase
		if kb.ID == "" || kb.Name != "Handbook" || kb.Retrieval.Mode != "fulltext" || kb.Retrieval.TopK != 4 ||
			kb.Chunking.Size != 300 || kb.Chunking.Overlap != 50 || !kb.Chunking.HeaderAware {
			t.Fatalf("created: %+v", kb)
		}
		f.must(t, f.admin, "POST", base, "", map[string]any{"name": "Handbook"}, 409, nil)

		// Every member reads; the list pages.
		f.must(t, f.admin, "POST", base, "", map[string]any{"name": "Second"}, 201, nil)
		var page struct {
			KnowledgeBases []struct{ ID string } `json:"knowledge_bases"`
			NextCursor     string                `json:"next_cursor"`
		}
		f.must(t, f.viewer, "GET", base+"?limit=1", "", nil, 200, &page)
		if len(page.KnowledgeBases) != 1 || page.NextCursor == "" {
			t.Fatalf("first page: %+v", page)
		}
		f.must(t, f.viewer, "GET", base+"?limit=1&cursor="+page.NextCursor, "", nil, 200, &page)
		if len(page.KnowledgeBases) != 1 || page.NextCursor != "" {
			t.Fatalf("second page: %+v", page)
		}
		var got kbAnswer
		f.must(t, f.user, "GET", base+"/"+kb.ID, "", nil, 200, &got)
		if got.KnowledgeBase.Description != "HR" {
			t.Errorf("get: %+v", got.KnowledgeBase)
		}

		// Update: only the fields given change.
		f.must(t, f.admin, "PATCH", base+"/"+kb.ID, "", map[string]any{"description": "People",
			"retrieval": map[string]any{"top_k": 8}}, 200, &got)
		if k := got.KnowledgeBase; k.Name != "Handbook" || k.Description != "People" || k.Retrieval.TopK != 8 || k.Chunking.Size != 300 {
			t.Errorf("after PATCH: %+v", k)
		}

		// Validation names the fields.
		for name, tc := range map[string]struct {
			method, path string
			body         map[string]any
			field        string
		}{
			"no name":         {"POST", base, map[string]any{"description": "x"}, "name"},
			"top_k":           {"POST", base, map[string]any{"name": "x", "retrieval": map[string]any{"top_k": 1000}}, "retrieval.top_k"},
			"vector no model": {"PATCH", base + "/" + kb.ID, map[string]any{"retrieval": map[string]any{"mode": "vector"}}, "retrieval.mode"},
			"overlap":         {"PATCH", base + "/" + kb.ID, map[string]any{"chunking": map[string]any{"overlap": 200}}, "chunking.overlap"},
			"empty name":      {"PATCH", base + "/" + kb.ID, map[string]any{"name": " "}, "name"},
			"unknown field":   {"POST", base, map[string]any{"name": "x", "owner": "me"}, ""},
		} {
			status, body := f.call(t, f.admin, tc.method, tc.path, "", tc.body)
			var e struct {
				Error struct{ Fields map[string]string }
			}
			_ = json.Unmarshal(body, &e)
			if status != 400 || (tc.field != "" && e.Error.Fields[tc.field] == "") {
				t.Errorf("%s: %d %s, want 400 naming %s", name, status, body, tc.field)
			}
		}
		f.must(t, f.admin, "GET", base+"/"+kb.ID+"/documents?status=bogus", "", nil, 400, nil)

		// Users and viewers cannot write.
		for _, token := range []string{f.user, f.viewer} {
			f.must(t, token, "POST", base, "", map[string]any{"name": "Mine"}, 403, nil)
			f.must(t, token, "PATCH", base+"/"+kb.ID, "", map[string]any{"name": "Mine"}, 403, nil)
			f.must(t, token, "DELETE", base+"/"+kb.ID, "", nil, 403, nil)
		}

		// The super_admin names the tenant.
		f.must(t, f.root, "GET", base, "", nil, 400, nil)
		f.must(t, f.root, "GET", base+"/"+kb.ID+"?tenant_id="+f.a, "", nil, 200, nil)
		f.must(t, f.root, "GET", base+"/"+kb.ID+"?tenant_id="+f.b, "", nil, 404, nil)

		// Another tenant's knowledge base is not found, by id or tenant.
		f.must(t, f.bAdmin, "GET", base+"/"+kb.ID, "", nil, 404, nil)
		f.must(t, f.bAdmin, "PATCH", base+"/"+kb.ID, "", map[string]any{"name": "Stolen"}, 404, nil)
		f.must(t, f.bAdmin, "DELETE", base+"/"+kb.ID, "", nil, 404, nil)
		f.must(t, f.bAdmin, "GET", base+"/"+kb.ID+"/documents", "", nil, 404, nil)
		f.must(t, f.bAdmin, "GET", base+"?tenant_id="+f.a, "", nil, 404, nil)
		f.must(t, f.bAdmin, "GET", base+"/not-an-id", "", nil, 404, nil)
		f.must(t, f.admin, "GET", base+"/"+kb.ID, "", nil, 200, &got)
		if got.KnowledgeBase.Name != "Handbook" {
			t.Errorf("B renamed A's knowledge base: %+v", got.KnowledgeBase)
		}

		f.must(t, f.admin, "DELETE", base+"/"+kb.ID, "", nil, 204, nil)
		f.must(t, f.admin, "GET", base+"/"+kb.ID, "", nil, 404, nil)

		var entries []audit.Entry
		entries, _, err := f.audit.List(nodus.WithAllTenants(context.Background()), audit.Filter{Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, e := range entries {
			seen[e.Action] = true
		}
		for _, a := range []string{"knowledge.kb_create", "knowledge.kb_update", "knowledge.kb_delete"} {
			if !seen[a] {
				t.Errorf("no %s audit entry", a)
			}
		}
	})
}

func TestKnowledgeDocumentRoutes(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		f := newKnowledgeFixture(t, db)
		const base = "/api/v1/knowledge-bases"
		var a, b kbAnswer
		f.must(t, f.admin, "POST", base, "", map[string]any{"name": "A docs"}, 201, &a)
		f.must(t, f.bAdmin, "POST", base, "", map[string]any{"name": "B docs"}, 201, &b)
		aKB, bKB := a.KnowledgeBase.ID, b.KnowledgeBase.ID
		secret := "the secret text of the document"
		doc := f.addDocument(t, f.a, aKB, secret)
		bDoc := f.addDocument(t, f.b, bKB, "B's text")

		var list struct {
			Documents  []map[string]any `json:"documents"`
			NextCursor string           `json:"next_cursor"`
		}
		f.must(t, f.viewer, "GET", base+"/"+aKB+"/documents?status=failed", "", nil, 200, &list)
		if len(list.Documents) != 1 || list.Documents[0]["id"] != doc.ID || list.Documents[0]["original_filename"] != "notes.md" {
			t.Fatalf("documents: %+v", list)
		}
		f.must(t, f.viewer, "GET", base+"/"+aKB+"/documents?status=completed", "", nil, 200, &list)
		if len(list.Documents) != 0 {
			t.Fatalf("completed documents: %+v", list)
		}
		status, raw := f.call(t, f.viewer, "GET", base+"/"+aKB+"/documents/"+doc.ID, "", nil)
		if status != 200 || strings.Contains(string(raw), doc.BlobID) || strings.Contains(string(raw), "blob") ||
			strings.Contains(string(raw), `"filename"`) {
			t.Fatalf("get document: %d %s", status, raw)
		}

		// Another tenant's document, or one named under another knowledge
		// base, is not found.
		f.must(t, f.admin, "GET", base+"/"+bKB+"/documents/"+bDoc.ID, "", nil, 404, nil)
		f.must(t, f.admin, "GET", base+"/"+aKB+"/documents/"+bDoc.ID, "", nil, 404, nil)
		f.must(t, f.admin, "DELETE", base+"/"+bKB+"/documents/"+bDoc.ID, "", nil, 404, nil)
		f.must(t, f.admin, "POST", base+"/"+bKB+"/documents/"+bDoc.ID+"/retry", "", map[string]any{}, 404, nil)

		// Retry: admins only, failed documents only, audited.
		f.must(t, f.viewer, "POST", base+"/"+aKB+"/documents/"+doc.ID+"/retry", "", map[string]any{}, 403, nil)
		var retried struct{ Document map[string]any }
		f.must(t, f.admin, "POST", base+"/"+aKB+"/documents/"+doc.ID+"/retry", "", map[string]any{}, 200, &retried)
		if retried.Document["status"] != "pending" || retried.Document["error"] != "" {
			t.Errorf("retried: %+v", retried.Document)
		}
		f.must(t, f.admin, "POST", base+"/"+aKB+"/documents/"+doc.ID+"/retry", "", map[string]any{}, 409, nil)

		// Delete takes the file with it.
		f.must(t, f.viewer, "DELETE", base+"/"+aKB+"/documents/"+doc.ID, "", nil, 403, nil)
		f.must(t, f.admin, "DELETE", base+"/"+aKB+"/documents/"+doc.ID, "", nil, 204, nil)
		f.must(t, f.admin, "GET", base+"/"+aKB+"/documents/"+doc.ID, "", nil, 404, nil)
		if _, err := f.blobs.Stat(context.Background(), doc.BlobID); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("blob after delete: %v", err)
		}
		// Deleting a knowledge base deletes its documents' files.
		doc2 := f.addDocument(t, f.a, aKB, "more text")
		f.must(t, f.admin, "DELETE", base+"/"+aKB, "", nil, 204, nil)
		if _, err := f.blobs.Stat(context.Background(), doc2.BlobID); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("blob after knowledge base delete: %v", err)
		}
		if _, err := f.blobs.Stat(context.Background(), bDoc.BlobID); err != nil {
			t.Errorf("B's blob: %v", err)
		}

		entries, _, err := f.audit.List(nodus.WithAllTenants(context.Background()), audit.Filter{Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, e := range entries {
			seen[e.Action] = true
			if j, _ := json.Marshal(e); strings.Contains(string(j), secret) {
				t.Errorf("audit entry %s holds the document's text", e.Action)
			}
		}
		for _, act := range []string{"knowledge.document_retry", "knowledge.document_delete", "knowledge.kb_delete"} {
			if !seen[act] {
				t.Errorf("no %s audit entry", act)
			}
		}
	})
}

// multipartBody returns a multipart/form-data body with a metadata part
// (when not "") and a file part, and its content type.
func multipartBody(t *testing.T, metadata, filename, content string) (string, string) {
	t.Helper()
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	if metadata != "" {
		if err := w.WriteField("metadata", metadata); err != nil {
			t.Fatal(err)
		}
	}
	if filename != "" {
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", `form-data; name="file"; filename="`+filename+`"`)
		h.Set("Content-Type", "application/octet-stream")
		p, err := w.CreatePart(h)
		if err != nil {
			t.Fatal(err)
		}
		p.Write([]byte(content))
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.String(), w.FormDataContentType()
}

func TestKnowledgeUploadRoute(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		f := newKnowledgeFixture(t, db)
		const base = "/api/v1/knowledge-bases"
		var a, b kbAnswer
		f.must(t, f.admin, "POST", base, "", map[string]any{"name": "A docs"}, 201, &a)
		f.must(t, f.bAdmin, "POST", base, "", map[string]any{"name": "B docs"}, 201, &b)
		path := base + "/" + a.KnowledgeBase.ID + "/documents"
		const text = "# Guide\n\nThe secret phrase of the upload.\n"

		body, ct := multipartBody(t, `{"team":"docs"}`, "guide.md", text)
		var up struct{ Document map[string]any }
		f.must(t, f.admin, "POST", path, ct, body, 201, &up)
		d := up.Document
		if d["status"] != "pending" || d["file_type"] != "markdown" || d["original_filename"] != "guide.md" ||
			d["file_size"] != float64(len(text)) || d["uploaded_by"] == "" {
			t.Fatalf("uploaded: %+v", d)
		}
		if m, _ := d["metadata"].(map[string]any); m["team"] != "docs" {
			t.Errorf("metadata: %+v", d["metadata"])
		}
		f.mu.Lock()
		queued := append([]string(nil), f.queued...)
		f.mu.Unlock()
		if len(queued) != 1 || queued[0] != d["id"] {
			t.Errorf("queued %v, want [%v]", queued, d["id"])
		}
		f.must(t, f.viewer, "GET", path+"/"+d["id"].(string), "", nil, 200, nil)

		// The same content again: 409 naming the first.
		body, ct = multipartBody(t, "", "copy.md", text)
		status, raw := f.call(t, f.admin, "POST", path, ct, body)
		if status != 409 || !strings.Contains(string(raw), d["id"].(string)) {
			t.Fatalf("duplicate: %d %s", status, raw)
		}

		for name, tc := range map[string]struct {
			token, path, ct, body string
			want                  int
		}{
			"png named .txt": {f.admin, path, "", "\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01", 400},
			"not multipart":  {f.admin, path, "text/plain", "hello", 400},
			"no file part":   {f.admin, path, "", "", 400},
			"bad metadata":   {f.admin, path, "", "", 400},
			"viewer":         {f.viewer, path, "", "viewer's file", 403},
			"user":           {f.user, path, "", "user's file", 403},
			"another tenant": {f.bAdmin, path, "", "B's file", 404},
			"unknown kb":     {f.admin, base + "/" + nodus.NewID() + "/documents", "", "lost file", 404},
		} {
			body, ct := tc.body, tc.ct
			switch {
			case name == "no file part":
				body, ct = multipartBody(t, `{"a":1}`, "", "")
			case name == "bad metadata":
				body, ct = multipartBody(t, `[1]`, "x.md", "text")
			case ct == "":
				body, ct = multipartBody(t, "", "file.txt", body)
			}
			if status, raw := f.call(t, tc.token, "POST", tc.path, ct, body); status != tc.want {
				t.Errorf("%s: %d %s, want %d", name, status, raw, tc.want)
			}
		}

		// Over the route's limit: 413 before the body is read.
		big := strings.Repeat("a", uploadLimit+uploadEnvelope+1)
		if status, raw := f.call(t, f.admin, "POST", path, "multipart/form-data; boundary=x", big); status != 413 {
			t.Errorf("over the limit: %d %s", status, raw)
		}

		var list struct{ Documents []map[string]any }
		f.must(t, f.admin, "GET", path, "", nil, 200, &list)
		if len(list.Documents) != 1 {
			t.Errorf("documents after refused uploads: %d", len(list.Documents))
		}
		entries, _, err := f.audit.List(nodus.WithAllTenants(context.Background()), audit.Filter{Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		uploads := 0
		for _, e := range entries {
			if e.Action == "knowledge.document_upload" {
				uploads++
				if j, _ := json.Marshal(e); strings.Contains(string(j), "secret phrase") {
					t.Errorf("the upload's audit entry holds its text: %s", j)
				}
			}
		}
		if uploads != 1 {
			t.Errorf("%d upload audit entries, want 1", uploads)
		}
	})
}

// ingestUpload uploads a file to a knowledge base as token and runs its
// ingestion, as the job queue would, and returns the document's id.
func (f *knowledgeFixture) ingestUpload(t *testing.T, token, tenant, kbID, filename, content string) string {
	t.Helper()
	body, ct := multipartBody(t, "", filename, content)
	var up struct {
		Document struct{ ID string } `json:"document"`
	}
	f.must(t, token, "POST", "/api/v1/knowledge-bases/"+kbID+"/documents", ct, body, 201, &up)
	if err := f.kn.Ingest(context.Background(), tenant, up.Document.ID, knowledge.IngestOptions{}); err != nil {
		t.Fatalf("ingest %s: %v", filename, err)
	}
	return up.Document.ID
}

type searchAnswer struct {
	Mode string `json:"mode"`
	Hits []struct {
		ChunkID         string   `json:"chunk_id"`
		DocumentID      string   `json:"document_id"`
		DocumentName    string   `json:"document_name"`
		KnowledgeBaseID string   `json:"knowledge_base_id"`
		Position        int      `json:"position"`
		StartOffset     int      `json:"start_offset"`
		EndOffset       int      `json:"end_offset"`
		Headings        []string `json:"headings"`
		Score           float64  `json:"score"`
		Snippet         string   `json:"snippet"`
		Text            string   `json:"text"`
	} `json:"hits"`
}

func TestKnowledgeSearchRoute(t *testing.T) {
	storetest.Run(t, func(t *testing.T, db *store.DB) {
		f := newKnowledgeFixture(t, db)
		const base = "/api/v1/knowledge-bases"
		var a, b kbAnswer
		f.must(t, f.admin, "POST", base, "", map[string]any{"name": "A docs"}, 201, &a)
		f.must(t, f.bAdmin, "POST", base, "", map[string]any{"name": "B docs"}, 201, &b)
		aKB, bKB := a.KnowledgeBase.ID, b.KnowledgeBase.ID
		volcano := f.ingestUpload(t, f.admin, f.a, aKB, "volcano.md",
			"# Volcanoes\n\nA volcano erupts lava and ash. Magma chambers under the volcano feed each eruption.\n")
		garden := f.ingestUpload(t, f.admin, f.a, aKB, "garden.txt",
			"Tomatoes grow best in a sunny garden with rich compost and a little lava rock.\n")
		script := f.ingestUpload(t, f.admin, f.a, aKB, "script.txt", "<script>alert(1)</script> zebra stripes\n")
		ours := map[string]bool{volcano: true, garden: true, script: true}
		const bSecret = "volcano lava of tenant B, confidential"
		f.ingestUpload(t, f.bAdmin, f.b, bKB, "b.txt", bSecret+"\n")
		search := aKB + "/search"

		// The best chunk first, highlighted; every role of the tenant may
		// search, and only the knowledge base's own chunks come back.
		for name, token := range map[string]string{"admin": f.admin, "user": f.user, "viewer": f.viewer} {
			var res searchAnswer
			f.must(t, token, "POST", base+"/"+search, "", map[string]any{"query": "volcano lava"}, 200, &res)
			if res.Mode != "fulltext" || len(res.Hits) != 2 {
				t.Fatalf("%s: %+v, want the volcano and garden chunks", name, res)
			}
			h := res.Hits[0]
			if h.DocumentID != volcano || h.DocumentName != "volcano.md" || h.KnowledgeBaseID != aKB || h.ChunkID == "" ||
				!strings.Contains(h.Snippet, "<mark>") || !strings.Contains(h.Text, "Magma") || h.EndOffset <= h.StartOffset ||
				h.Score <= 0 || h.Score < res.Hits[1].Score || len(h.Headings) != 1 || h.Headings[0] != "Volcanoes" {
				t.Errorf("%s: first hit %+v", name, h)
			}
			for _, h := range res.Hits {
				if !ours[h.DocumentID] || h.KnowledgeBaseID != aKB || strings.Contains(h.Text, "tenant B") {
					t.Errorf("%s: hit from elsewhere: %+v", name, h)
				}
			}
		}

		// The wire form: headings always an array, no tenant id, no terms.
		status, raw := f.call(t, f.viewer, "POST", base+"/"+search, "", map[string]any{"query": "tomatoes"})
		if status != 200 || !strings.Contains(string(raw), `"headings":[]`) || strings.Contains(string(raw), "tenant_id") ||
			strings.Contains(string(raw), "terms") || strings.Contains(string(raw), f.a) {
			t.Errorf("wire form: %d %s", status, raw)
		}

		// top_k 0 takes the knowledge base's; 1 keeps the best.
		var res searchAnswer
		f.must(t, f.user, "POST", base+"/"+search, "", map[string]any{"query": "volcano lava", "top_k": 0}, 200, &res)
		if len(res.Hits) != 2 {
			t.Errorf("top_k 0: %d hits", len(res.Hits))
		}
		f.must(t, f.user, "POST", base+"/"+search, "", map[string]any{"query": "volcano lava", "top_k": 1,
			"score_threshold": 0}, 200, &res)
		if len(res.Hits) != 1 || res.Hits[0].DocumentID != volcano {
			t.Errorf("top_k 1: %+v", res.Hits)
		}

		// Stop words alone match nothing: an empty array, not null.
		status, raw = f.call(t, f.viewer, "POST", base+"/"+search, "", map[string]any{"query": "the of and"})
		if status != 200 || !strings.Contains(string(raw), `"hits":[]`) {
			t.Errorf("stop words: %d %s", status, raw)
		}

		// A document's HTML comes back escaped.
		f.must(t, f.viewer, "POST", base+"/"+search, "", map[string]any{"query": "zebra"}, 200, &res)
		if len(res.Hits) != 1 || res.Hits[0].DocumentID != script {
			t.Fatalf("zebra: %+v", res.Hits)
		}
		if sn := res.Hits[0].Snippet; !strings.Contains(sn, "&lt;script&gt;") || strings.Contains(sn, "<script>") ||
			!strings.Contains(sn, "<mark>zebra</mark>") {
			t.Errorf("snippet not escaped: %q", sn)
		}

		// Validation names the field.
		for name, tc := range map[string]struct {
			body  any
			field string
		}{
			"no query":           {map[string]any{"top_k": 3}, "query"},
			"blank query":        {map[string]any{"query": "  "}, "query"},
			"long query":         {map[string]any{"query": strings.Repeat("a", knowledge.MaxQueryBytes+1)}, "query"},
			"top_k over":         {map[string]any{"query": "volcano", "top_k": knowledge.MaxTopK + 1}, "top_k"},
			"top_k negative":     {map[string]any{"query": "volcano", "top_k": -1}, "top_k"},
			"negative threshold": {map[string]any{"query": "volcano", "score_threshold": -0.5}, "score_threshold"},
			"query not a string": {map[string]any{"query": 7}, "query"},
			"unknown field":      {map[string]any{"query": "volcano", "mode": "vector"}, ""},
			"not JSON":           {"volcano", ""},
		} {
			status, body := f.call(t, f.viewer, "POST", base+"/"+search, "", tc.body)
			var e struct {
				Error struct{ Fields map[string]string }
			}
			_ = json.Unmarshal(body, &e)
			if status != 400 || (tc.field != "" && e.Error.Fields[tc.field] == "") {
				t.Errorf("%s: %d %s, want 400 naming %q", name, status, body, tc.field)
			}
		}

		// The longest query, written in escapes, fits the body limit; more
		// than the limit is 413.
		f.must(t, f.viewer, "POST", base+"/"+search, "application/json",
			`{"query":"`+strings.Repeat(`\u0061`, knowledge.MaxQueryBytes)+`","top_k":100,"score_threshold":0}`, 200, nil)
		if status, raw := f.call(t, f.viewer, "POST", base+"/"+search, "application/json",
			`{"query":"`+strings.Repeat(`\u0061`, searchMaxBody/6+1)+`"}`); status != 413 {
			t.Errorf("over the limit: %d %s", status, raw)
		}

		// The super_admin names the tenant.
		f.must(t, f.root, "POST", base+"/"+search+"?tenant_id="+f.a, "", map[string]any{"query": "zebra"}, 200, nil)
		f.must(t, f.root, "POST", base+"/"+search+"?tenant_id="+f.b, "", map[string]any{"query": "zebra"}, 404, nil)

		// Another tenant's knowledge base is not found, by id or tenant,
		// and none of its chunks come back.
		for name, tc := range map[string]struct{ token, path string }{
			"B's kb by id":         {f.admin, base + "/" + bKB + "/search"},
			"B's kb by tenant":     {f.admin, base + "/" + bKB + "/search?tenant_id=" + f.b},
			"A's kb from B":        {f.bAdmin, base + "/" + search},
			"B's kb as A's viewer": {f.viewer, base + "/" + bKB + "/search"},
			"unknown kb":           {f.admin, base + "/" + nodus.NewID() + "/search"},
			"not an id":            {f.admin, base + "/not-an-id/search"},
		} {
			status, raw := f.call(t, tc.token, "POST", tc.path, "", map[string]any{"query": "volcano lava zebra"})
			if status != 404 || strings.Contains(string(raw), "confidential") || strings.Contains(string(raw), "zebra stripes") {
				t.Errorf("%s: %d %s, want 404", name, status, raw)
			}
		}
		// B finds its own.
		f.must(t, f.bAdmin, "POST", base+"/"+bKB+"/search", "", map[string]any{"query": "volcano"}, 200, &res)
		if len(res.Hits) != 1 || res.Hits[0].KnowledgeBaseID != bKB {
			t.Errorf("B's search: %+v", res.Hits)
		}
	})
}
