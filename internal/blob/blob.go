package blob

import (
	"context"
	"crypto/sha256"
	"io"
	"time"
)

// Info describes a stored blob. Every method of a Store returns the same
// Info for the same blob.
type Info struct {
	ID        string
	Size      int64 // bytes
	SHA256    [sha256.Size]byte
	CreatedAt time.Time // UTC, microsecond precision
}

// Store keeps blobs under ids it generates.
//
// Errors carry nodus codes: ETOOLARGE from Put past its limit, EINVALID for
// a string that is not a blob id, ENOTFOUND for an id with no blob. Other
// failures (the disk, a corrupt blob) are internal.
type Store interface {
	// Put copies r into a new blob and returns its Info. It reads at most
	// limit bytes: a longer r fails with ETOOLARGE. r is read until io.EOF;
	// cancelling ctx stops Put between reads, and nothing is kept after an
	// error.
	Put(ctx context.Context, r io.Reader, limit int64) (Info, error)
	// Open returns the blob's content for reading and seeking (so it can
	// feed http.ServeContent) and its Info. The caller closes it.
	Open(ctx context.Context, id string) (io.ReadSeekCloser, Info, error)
	// Stat returns the blob's Info.
	Stat(ctx context.Context, id string) (Info, error)
	// Delete removes the blob. Deleting an id that has no blob succeeds.
	Delete(ctx context.Context, id string) error
}

// ValidID reports whether s has exactly the form of an id the store
// generates: a UUIDv7 in lower-case canonical form. It is stricter than
// nodus.ValidID, which accepts any version and either case; on a
// case-insensitive file system an upper-case id would otherwise reach the
// same file by another name.
func ValidID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		case 14: // version
			if c != '7' {
				return false
			}
		case 19: // RFC 9562 variant
			if c != '8' && c != '9' && c != 'a' && c != 'b' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				return false
			}
		}
	}
	return true
}
