package knowledge

import (
	"context"
	"io"

	"github.com/nodus-os/nodus/internal/extract"
	"github.com/nodus-os/nodus/internal/nodus"
)

// DocumentFile is a document's uploaded file, open for reading. The
// caller closes Content.
type DocumentFile struct {
	Document    Document
	Content     io.ReadSeekCloser
	Size        int64
	ContentType string // from the type detected by content, never the client's claim
}

// OpenDocumentFile opens the file a document of one of the tenant's
// knowledge bases was made from, for every member of the tenant: a
// citation's reader may open its source. ENOTFOUND for a document not in
// that knowledge base, or whose file is gone.
func (s *Service) OpenDocumentFile(ctx context.Context, m Manager, kbID, id string) (*DocumentFile, error) {
	d, err := s.GetDocument(ctx, m, kbID, id)
	if err != nil {
		return nil, err
	}
	if d.BlobID == "" {
		return nil, nodus.Errorf(nodus.ENOTFOUND, "document %s has no file", id)
	}
	r, info, err := s.blobs.Open(ctx, d.BlobID)
	if err != nil {
		if code := nodus.ErrorCode(err); code == nodus.ENOTFOUND || code == nodus.EINVALID {
			return nil, nodus.WrapError(err, nodus.ENOTFOUND, "the document's file is missing from storage")
		}
		return nil, err
	}
	return &DocumentFile{Document: *d, Content: r, Size: info.Size, ContentType: ContentType(d.FileType)}, nil
}

// ContentType is the media type a document of fileType is served as.
func ContentType(fileType string) string {
	switch extract.Type(fileType) {
	case extract.TypeText:
		return "text/plain; charset=utf-8"
	case extract.TypeMarkdown:
		return "text/markdown; charset=utf-8"
	case extract.TypeHTML:
		return "text/html; charset=utf-8"
	case extract.TypeCSV:
		return "text/csv; charset=utf-8"
	case extract.TypeJSON:
		return "application/json"
	case extract.TypePDF:
		return "application/pdf"
	case extract.TypeDOCX:
		return "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
	}
	return "application/octet-stream"
}
