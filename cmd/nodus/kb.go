package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nodus-os/nodus/internal/apiclient"
)

// kbCmd runs the knowledge base commands, clients of a running server's
// API:
//
//	nodus kb import --server URL --token TOKEN --kb ID [--workers 4] PATH...
//
// import adds every regular file under each folder PATH (recursively;
// symlinks not followed, hidden files and folders skipped) through the
// upload route, and every record of each .jsonl or .ndjson PATH through
// the bulk route, in batches. Duplicates are reported, not failures.
func kbCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("kb", flag.ContinueOnError)
	fs.SetOutput(stderr)
	server := fs.String("server", "", "the Nodus server's base URL, e.g. https://nodus.example.com")
	token := fs.String("token", "", "an API token of an admin of the knowledge base's tenant (or NODUS_TOKEN)")
	kb := fs.String("kb", "", "the knowledge base's id")
	tenant := fs.String("tenant", "", "the knowledge base's tenant, for a super_admin's token")
	workers := fs.Int("workers", 4, "uploads in flight at once")
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: nodus kb import --server URL --token TOKEN --kb ID [--workers 4] PATH...\n\n"+
			"PATH is a folder (every regular file under it is uploaded; hidden files and symlinks are skipped)\n"+
			"or a .jsonl/.ndjson file of {\"filename\", \"text\" or \"content_base64\", \"metadata\"} records.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if *token == "" {
		*token = getenv("NODUS_TOKEN")
	}
	switch {
	case len(pos) == 0:
		return errUsage{"kb needs a subcommand: import"}
	case pos[0] != "import":
		return errUsage{fmt.Sprintf("unknown kb subcommand %q", pos[0])}
	case len(pos) < 2:
		return errUsage{"kb import needs at least one folder or .jsonl file"}
	case *server == "":
		return errUsage{"kb import needs --server"}
	case *token == "":
		return errUsage{"kb import needs --token or NODUS_TOKEN"}
	case *kb == "":
		return errUsage{"kb import needs --kb"}
	case *workers < 1 || *workers > 64:
		return errUsage{"--workers must be 1 to 64"}
	}
	base, err := url.Parse(strings.TrimRight(*server, "/"))
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return errUsage{fmt.Sprintf("--server %q is not an http or https URL", *server)}
	}
	im := &importer{server: base.String(), token: *token, kbPath: "/api/v1/knowledge-bases/" + url.PathEscape(*kb),
		client: apiclient.New()}
	if *tenant != "" {
		im.query = "?tenant_id=" + url.QueryEscape(*tenant)
	}

	// The server, the token and the knowledge base before any file.
	if err := im.check(ctx); err != nil {
		return err
	}
	plan, err := planImport(pos[1:])
	if err != nil {
		return err
	}
	im.progress = newProgress(stderr, plan.docs, plan.bytes)
	im.run(ctx, plan, *workers)
	im.progress.finish()
	im.summary(stdout)
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(im.failures) > 0 {
		return fmt.Errorf("kb import: %d of %d documents failed", len(im.failures), plan.docs)
	}
	return nil
}

// importer sends documents to one knowledge base and tallies the outcome.
type importer struct {
	server, token, kbPath, query string
	client                       *http.Client
	progress                     *progress

	mu                  sync.Mutex
	created, duplicates int
	failures            []importFailure
}

type importFailure struct{ where, message string }

// apiError is the server's error envelope.
type apiError struct {
	Code        string            `json:"code"`
	Message     string            `json:"message"`
	Fields      map[string]string `json:"fields"`
	DuplicateOf string            `json:"duplicate_of"`
}

func (e apiError) String() string {
	msg := e.Message
	for k, v := range e.Fields {
		msg += fmt.Sprintf(" (%s: %s)", k, v)
	}
	return msg
}

func (im *importer) do(req *http.Request) (int, []byte, error) {
	req.Header.Set("Authorization", "Bearer "+im.token)
	resp, err := im.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	return resp.StatusCode, b, err
}

func decodeAPIError(status int, body []byte) apiError {
	var env struct{ Error apiError }
	if json.Unmarshal(body, &env) != nil || env.Error.Message == "" {
		return apiError{Code: http.StatusText(status), Message: fmt.Sprintf("HTTP %d: %s", status, bytes.TrimSpace(body[:min(len(body), 200)]))}
	}
	return env.Error
}

// check reads the knowledge base, so a wrong server, token or id fails
// before anything is sent.
func (im *importer) check(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, "GET", im.server+im.kbPath+im.query, nil)
	if err != nil {
		return err
	}
	status, body, err := im.do(req)
	if err != nil {
		return fmt.Errorf("kb import: cannot reach %s: %w", im.server, err)
	}
	e := decodeAPIError(status, body)
	switch status {
	case http.StatusOK:
		return nil
	case http.StatusUnauthorized:
		return fmt.Errorf("kb import: the server refused the token (401 %s): check --token or NODUS_TOKEN", e.Message)
	case http.StatusNotFound:
		return fmt.Errorf("kb import: knowledge base not found (404 %s): check --kb, and --tenant for a super_admin", e.Message)
	}
	return fmt.Errorf("kb import: reading the knowledge base: %d %s", status, e)
}

// importPlan is what an import sends: files to upload and JSON Lines
// files to send in batches.
type importPlan struct {
	files []string
	jsonl []string
	docs  int
	bytes int64
}

func isJSONL(path string) bool {
	ext := strings.ToLower(filepath.Ext(path))
	return ext == ".jsonl" || ext == ".ndjson"
}

func hidden(name string) bool { return strings.HasPrefix(name, ".") && name != "." && name != ".." }

// planImport walks the paths: folders recursively (regular files only, no
// symlinks, nothing hidden), JSON Lines files counted by record.
func planImport(paths []string) (*importPlan, error) {
	p := &importPlan{}
	for _, root := range paths {
		fi, err := os.Lstat(root)
		if err != nil {
			return nil, err
		}
		switch {
		case fi.Mode().IsRegular() && isJSONL(root):
			n, err := countRecords(root)
			if err != nil {
				return nil, err
			}
			p.jsonl = append(p.jsonl, root)
			p.docs += n
			p.bytes += fi.Size()
		case fi.Mode().IsRegular():
			p.files = append(p.files, root)
			p.docs++
			p.bytes += fi.Size()
		case fi.IsDir():
			err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				if path != root && hidden(d.Name()) {
					if d.IsDir() {
						return filepath.SkipDir
					}
					return nil
				}
				if !d.Type().IsRegular() { // folders, symlinks, devices…
					return nil
				}
				info, err := d.Info()
				if err != nil {
					return err
				}
				p.files = append(p.files, path)
				p.docs++
				p.bytes += info.Size()
				return nil
			})
			if err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("%s is neither a folder nor a regular file", root)
		}
	}
	return p, nil
}

// maxRecordBytes bounds a JSON Lines record the client reads: the
// server's own per-line limit is a little under it.
const maxRecordBytes = 80 << 20

// Batches of a JSON Lines file: well under the bulk route's limits.
const (
	batchRecords = 500
	batchBytes   = 32 << 20
)

func countRecords(path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	n := 0
	err = eachLine(f, func(line []byte) error {
		if len(bytes.TrimSpace(line)) > 0 {
			n++
		}
		return nil
	})
	return n, err
}

// eachLine calls fn with each line of r, its newline removed.
func eachLine(r io.Reader, fn func([]byte) error) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > maxRecordBytes {
			return fmt.Errorf("a line is longer than %d bytes", maxRecordBytes)
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if len(line) > 0 {
			if ferr := fn(bytes.TrimSuffix(line, []byte("\n"))); ferr != nil {
				return ferr
			}
		}
		line = line[:0]
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// job is one request: a file to upload, or a batch of a JSON Lines file
// whose first line is line number first.
type job struct {
	file    string
	batch   []byte
	first   int
	records int
}

// run sends the plan's documents with workers requests in flight.
func (im *importer) run(ctx context.Context, plan *importPlan, workers int) {
	jobs := make(chan job)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for j := range jobs {
				if j.batch != nil {
					im.sendBatch(ctx, j)
				} else {
					im.upload(ctx, j.file)
				}
			}
		})
	}
	send := func(j job) bool {
		select {
		case jobs <- j:
			return true
		case <-ctx.Done():
			return false
		}
	}
	func() {
		for _, f := range plan.files {
			if !send(job{file: f}) {
				return
			}
		}
		for _, path := range plan.jsonl {
			if err := im.batches(path, send); err != nil {
				im.fail(path, err.Error(), 0, 0)
			}
		}
	}()
	close(jobs)
	wg.Wait()
}

// batches cuts a JSON Lines file into batches, blank lines kept so the
// server's line numbers map back to the file's.
func (im *importer) batches(path string, send func(job) bool) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var cur job
	n := 0
	flush := func() bool {
		if cur.records == 0 {
			cur = job{}
			return true
		}
		ok := send(cur)
		cur = job{}
		return ok
	}
	errStop := errors.New("stopped")
	err = eachLine(f, func(line []byte) error {
		n++
		if cur.records > 0 && (cur.records >= batchRecords || len(cur.batch)+len(line) > batchBytes) {
			if !flush() {
				return errStop
			}
		}
		if cur.batch == nil {
			cur = job{file: path, first: n, batch: make([]byte, 0, min(batchBytes, 1<<20))}
		}
		cur.batch = append(append(cur.batch, line...), '\n')
		if len(bytes.TrimSpace(line)) > 0 {
			cur.records++
		}
		return nil
	})
	if errors.Is(err, errStop) {
		return nil
	}
	if err != nil {
		return err
	}
	flush()
	return nil
}

func (im *importer) upload(ctx context.Context, path string) {
	f, err := os.Open(path)
	if err != nil {
		im.fail(path, err.Error(), 1, 0)
		return
	}
	defer f.Close()
	size := int64(0)
	if fi, err := f.Stat(); err == nil {
		size = fi.Size()
	}
	// The file streams through a pipe: never all of it in memory.
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	written := make(chan struct{})
	go func() {
		defer close(written)
		typ := mime.TypeByExtension(filepath.Ext(path))
		if typ == "" {
			typ = "application/octet-stream"
		}
		h := make(map[string][]string)
		h["Content-Disposition"] = []string{fmt.Sprintf(`form-data; name="file"; filename=%q`, filepath.Base(path))}
		h["Content-Type"] = []string{typ}
		part, err := mw.CreatePart(h)
		if err == nil {
			_, err = io.Copy(part, f)
		}
		if err == nil {
			err = mw.Close()
		}
		pw.CloseWithError(err)
	}()
	req, err := http.NewRequestWithContext(ctx, "POST", im.server+im.kbPath+"/documents"+im.query, pr)
	if err != nil {
		pr.CloseWithError(err)
		<-written
		im.fail(path, err.Error(), 1, size)
		return
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	status, body, err := im.do(req)
	pr.CloseWithError(io.ErrClosedPipe) // the writer stops if the server answered early
	<-written
	switch {
	case err != nil:
		im.fail(path, err.Error(), 1, size)
	case status == http.StatusCreated:
		im.tally(1, 0, size)
	case status == http.StatusConflict:
		im.tally(0, 1, size)
	default:
		im.fail(path, decodeAPIError(status, body).String(), 1, size)
	}
}

func (im *importer) sendBatch(ctx context.Context, j job) {
	size := int64(len(j.batch))
	req, err := http.NewRequestWithContext(ctx, "POST", im.server+im.kbPath+"/documents/bulk"+im.query, bytes.NewReader(j.batch))
	if err != nil {
		im.fail(j.file, err.Error(), j.records, size)
		return
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	status, body, err := im.do(req)
	if err != nil {
		im.fail(fmt.Sprintf("%s:%d", j.file, j.first), err.Error(), j.records, size)
		return
	}
	var res struct {
		Documents []struct {
			Line  int
			Error *apiError
		}
	}
	if status != http.StatusOK || json.Unmarshal(body, &res) != nil {
		im.fail(fmt.Sprintf("%s:%d", j.file, j.first), decodeAPIError(status, body).String(), j.records, size)
		return
	}
	created, dups := 0, 0
	for _, d := range res.Documents {
		switch {
		case d.Error == nil:
			created++
		case d.Error.Code == "conflict":
			dups++
		default:
			im.fail(fmt.Sprintf("%s:%d", j.file, j.first+d.Line-1), d.Error.String(), 1, 0)
		}
	}
	im.tally(created, dups, size)
}

func (im *importer) tally(created, duplicates int, size int64) {
	im.mu.Lock()
	im.created += created
	im.duplicates += duplicates
	im.mu.Unlock()
	im.progress.add(created+duplicates, size)
}

func (im *importer) fail(where, message string, docs int, size int64) {
	im.mu.Lock()
	im.failures = append(im.failures, importFailure{where, message})
	im.mu.Unlock()
	im.progress.add(docs, size)
}

func (im *importer) summary(w io.Writer) {
	im.mu.Lock()
	defer im.mu.Unlock()
	fmt.Fprintf(w, "created %d, duplicates %d, failed %d\n", im.created, im.duplicates, len(im.failures))
	for _, f := range im.failures {
		fmt.Fprintf(w, "  failed %s: %s\n", f.where, f.message)
	}
}

// progress shows how far an import is: a bar redrawn in place on a
// terminal, a line per 100 documents otherwise.
type progress struct {
	w      io.Writer
	tty    bool
	total  int
	bytes  int64
	start  time.Time
	done   atomic.Int64
	sent   atomic.Int64
	mu     sync.Mutex
	logged int64 // documents at the last line printed (not a terminal)
	stop   chan struct{}
	wg     sync.WaitGroup
}

func newProgress(w io.Writer, total int, bytes int64) *progress {
	p := &progress{w: w, total: total, bytes: bytes, start: time.Now(), stop: make(chan struct{})}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	if p.tty {
		p.wg.Go(func() {
			t := time.NewTicker(200 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-p.stop:
					return
				case <-t.C:
					p.draw()
				}
			}
		})
	}
	return p
}

func (p *progress) add(docs int, size int64) {
	n := p.done.Add(int64(docs))
	p.sent.Add(size)
	if p.tty {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if n/100 > p.logged/100 {
		p.logged = n
		fmt.Fprintln(p.w, p.status())
	}
}

// status is "120/500 docs 3.1 MB 24/s".
func (p *progress) status() string {
	n := p.done.Load()
	rate := float64(n) / max(time.Since(p.start).Seconds(), 0.001)
	return fmt.Sprintf("%d/%d docs %.1f MB %.0f/s", n, p.total, float64(p.sent.Load())/1e6, rate)
}

// bar is "[=====>    ] " followed by the status.
func (p *progress) bar() string {
	const width = 30
	filled := width
	if p.total > 0 {
		filled = int(p.done.Load()) * width / p.total
	}
	filled = min(filled, width)
	b := strings.Repeat("=", filled)
	if filled < width {
		b += ">" + strings.Repeat(" ", width-filled-1)
	}
	return "[" + b + "] " + p.status()
}

func (p *progress) draw() {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "\r%s\x1b[K", p.bar())
}

// finish draws the last state: the full bar on a terminal, a last line
// otherwise.
func (p *progress) finish() {
	if p.tty {
		close(p.stop)
		p.wg.Wait()
		p.draw()
		fmt.Fprintln(p.w)
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done.Load() != p.logged {
		fmt.Fprintln(p.w, p.status())
	}
}
