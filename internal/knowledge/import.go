package knowledge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/nodus-os/nodus/internal/nodus"
)

// URLImportInput is a document an admin imports from a URL.
type URLImportInput struct {
	URL string
	// Limit is the most bytes the response body may hold (ETOOLARGE past
	// it, checked while streaming).
	Limit    int64
	Metadata map[string]json.RawMessage
}

const (
	// maxURLBytes bounds an import's URL.
	maxURLBytes = 2048
	// urlImportTimeout bounds a whole fetch, body included.
	urlImportTimeout = 5 * time.Minute
)

// ImportURL fetches a file over HTTP(S) through the tenant's egress client
// (every redirect hop checked by it too) and adds it to a knowledge base as
// UploadDocument does: streamed into the blob store up to in.Limit, typed
// by its content (the response's Content-Type and the URL's file name are
// only hints), duplicates refused, audited, its ingestion queued. The
// document records the URL it came from.
func (s *Service) ImportURL(ctx context.Context, m Manager, kbID string, in URLImportInput) (*Document, error) {
	if !m.Admin {
		return nil, forbidden("manage documents")
	}
	if !nodus.ValidID(kbID) {
		return nil, kbNotFound(kbID)
	}
	// The knowledge base before the URL: another tenant's is 404 whatever
	// the body.
	if _, err := s.store.LookupKnowledgeBase(m.ctx(ctx), kbID); err != nil {
		return nil, err
	}
	if s.egress == nil {
		return nil, nodus.Errorf(nodus.EUNAVAILABLE, "imports from a URL are not available: this server has no egress service")
	}
	u, err := parseImportURL(in.URL)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, urlImportTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(m.ctx(ctx), http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, invalid("url", "cannot be requested")
	}
	req.Header.Set("User-Agent", "Nodus knowledge import")
	req.Header.Set("Accept", "*/*")
	resp, err := s.egress.Client(m.TenantID).Do(req)
	if err != nil {
		return nil, fetchError(ctx, u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, &nodus.Error{Code: nodus.EINVALID, Message: fmt.Sprintf("%s answered %s", u.Host, resp.Status),
			Fields: map[string]string{"url": "the server answered " + resp.Status}}
	}
	if resp.ContentLength > in.Limit {
		return nil, nodus.Errorf(nodus.ETOOLARGE, "the file is larger than the %d-byte limit", in.Limit)
	}
	name := u.Hostname()
	if base := path.Base(u.Path); base != "/" && base != "." && base != "" {
		name = base
	}
	return s.addDocument(ctx, m, kbID, UploadInput{OriginalFilename: name, DeclaredType: resp.Header.Get("Content-Type"),
		Body: fetchReader{ctx: ctx, r: resp.Body}, Limit: in.Limit, Metadata: in.Metadata}, withoutQuery(u.String()))
}

// parseImportURL accepts an absolute http or https URL with a host and no
// credentials; the fragment, never sent, is dropped.
func parseImportURL(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, invalid("url", "required")
	}
	if len(raw) > maxURLBytes {
		return nil, invalid("url", fmt.Sprintf("at most %d bytes", maxURLBytes))
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, invalid("url", "not a valid URL")
	}
	u.Scheme = strings.ToLower(u.Scheme)
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, invalid("url", "must be an http or https URL")
	case u.User != nil:
		return nil, invalid("url", "must not carry credentials (user:password@)")
	case u.Host == "" || u.Hostname() == "" || u.Opaque != "":
		return nil, invalid("url", "must name a host")
	}
	u.Fragment, u.RawFragment = "", ""
	return u, nil
}

// fetchError says why a fetch failed: egress refused the host, it took too
// long, or the server could not be reached. Network details stay in the
// cause, for the logs, and so does egress's reason: telling a member that
// a name resolves to a private address would map the internal network.
func fetchError(ctx context.Context, u *url.URL, err error) error {
	var ne *nodus.Error
	if errors.As(err, &ne) && ne.Code == nodus.EFORBIDDEN {
		return nodus.WrapError(err, nodus.EFORBIDDEN,
			fmt.Sprintf("the tenant's egress policy refused the host %s; an administrator finds why in the audit log", u.Host))
	}
	if ne != nil {
		return err
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return nodus.WrapError(err, nodus.ETIMEOUT, fmt.Sprintf("fetching from %s took longer than %s", u.Host, urlImportTimeout))
	}
	return nodus.WrapError(err, nodus.EUNAVAILABLE, fmt.Sprintf("%s could not be reached", u.Host))
}

// fetchReader gives a response body's read failures a code: a timeout is
// ETIMEOUT, a connection cut short EUNAVAILABLE.
type fetchReader struct {
	ctx context.Context
	r   io.Reader
}

func (f fetchReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		if errors.Is(f.ctx.Err(), context.DeadlineExceeded) {
			err = nodus.WrapError(err, nodus.ETIMEOUT, fmt.Sprintf("the download took longer than %s", urlImportTimeout))
		} else if nodus.ErrorCode(err) == nodus.EINTERNAL {
			err = nodus.WrapError(err, nodus.EUNAVAILABLE, "the download was cut short")
		}
	}
	return n, err
}

// withoutQuery is a source URL as a document keeps it and the audit log
// records it: without its query, which may hold a signature or a token
// (a pre-signed link) that every member of the tenant would see.
func withoutQuery(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	u.RawQuery, u.ForceQuery, u.User = "", false, nil
	return u.String()
}
