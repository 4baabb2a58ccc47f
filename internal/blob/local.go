package blob

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/nodus-os/nodus/internal/nodus"
)

const (
	tmpDir = ".tmp" // never a shard name: those are two hex digits

	// The header that starts every blob file:
	//
	//	magic (8) | size (8) | created, Unix µs (8) | SHA-256 (32) | id (36) | zero (36)
	//
	// Integers are big-endian. The zero tail is room for later versions.
	headerSize = 128
	magic      = "NDSBLOB1"

	bufSize = 128 << 10
)

// Local is a Store in a directory on the local disk. See the package
// documentation for the layout. It is safe for concurrent use, also by
// several processes sharing the directory.
type Local struct {
	root  *os.Root
	clock nodus.Clock
}

var _ Store = (*Local)(nil)

// NewLocal opens the store in the directory root, creating it (mode 0700)
// if needed. It does not sweep leftovers of crashed Puts; see Sweep.
func NewLocal(root string) (*Local, error) {
	if root == "" {
		return nil, errors.New("blob: empty root directory")
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("blob: %w", err)
	}
	r, err := os.OpenRoot(root)
	if err != nil {
		return nil, fmt.Errorf("blob: %w", err)
	}
	if err := mkdir(r, tmpDir); err != nil {
		r.Close()
		return nil, fmt.Errorf("blob: %w", err)
	}
	return &Local{root: r, clock: nodus.SystemClock{}}, nil
}

// Close releases the directory handle. The store is unusable afterwards.
func (l *Local) Close() error { return l.root.Close() }

// Put implements Store.
func (l *Local) Put(ctx context.Context, r io.Reader, limit int64) (Info, error) {
	if limit < 0 {
		return Info{}, nodus.Errorf(nodus.EINVALID, "negative blob size limit")
	}
	if err := ctx.Err(); err != nil {
		return Info{}, fmt.Errorf("blob: put: %w", err)
	}
	id := nodus.NewID()
	tmp := filepath.Join(tmpDir, id)
	f, err := l.root.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return Info{}, fmt.Errorf("blob: put: %w", err)
	}
	info, err := l.write(ctx, f, r, limit, id)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("blob: put: %w", cerr)
	}
	if err == nil {
		err = l.commit(tmp, id)
	}
	if err != nil {
		// The temp name is ours alone (O_EXCL on a fresh id); if removing
		// it fails too, Sweep takes it later.
		l.root.Remove(tmp)
		return Info{}, err
	}
	return info, nil
}

// write fills f with the header and r's bytes and syncs it.
func (l *Local) write(ctx context.Context, f *os.File, r io.Reader, limit int64, id string) (Info, error) {
	if _, err := f.Write(make([]byte, headerSize)); err != nil {
		return Info{}, fmt.Errorf("blob: put: %w", err)
	}
	h := sha256.New()
	buf := make([]byte, bufSize)
	var size int64
	for {
		if err := ctx.Err(); err != nil {
			return Info{}, fmt.Errorf("blob: put: %w", err)
		}
		n, rerr := r.Read(buf)
		if n > 0 {
			size += int64(n)
			if size > limit {
				return Info{}, nodus.Errorf(nodus.ETOOLARGE, "file exceeds the limit of %d bytes", limit)
			}
			h.Write(buf[:n])
			if _, err := f.Write(buf[:n]); err != nil {
				return Info{}, fmt.Errorf("blob: put: %w", err)
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return Info{}, fmt.Errorf("blob: put: read: %w", rerr)
		}
	}
	info := Info{ID: id, Size: size, CreatedAt: l.clock.Now()}
	h.Sum(info.SHA256[:0])
	if _, err := f.WriteAt(encodeHeader(info), 0); err != nil {
		return Info{}, fmt.Errorf("blob: put: %w", err)
	}
	if err := f.Sync(); err != nil {
		return Info{}, fmt.Errorf("blob: put: %w", err)
	}
	return info, nil
}

// commit moves a complete temp file to its id's path and makes the new name
// durable. On error nothing is left under the id.
func (l *Local) commit(tmp, id string) error {
	dir := shardDir(id)
	if err := mkdir(l.root, filepath.Dir(dir)); err != nil {
		return fmt.Errorf("blob: put: %w", err)
	}
	if err := mkdir(l.root, dir); err != nil {
		return fmt.Errorf("blob: put: %w", err)
	}
	name := filepath.Join(dir, id)
	if err := l.root.Rename(tmp, name); err != nil {
		return fmt.Errorf("blob: put: %w", err)
	}
	if err := syncDir(l.root, dir); err != nil {
		// Unsure the name would survive a crash: better no blob than a
		// blob that may vanish after Put reported success.
		l.root.Remove(name)
		return fmt.Errorf("blob: put: %w", err)
	}
	return nil
}

// Open implements Store.
func (l *Local) Open(ctx context.Context, id string) (io.ReadSeekCloser, Info, error) {
	f, info, err := l.open(ctx, id)
	if err != nil {
		return nil, Info{}, err
	}
	return &reader{io.NewSectionReader(f, headerSize, info.Size), f}, info, nil
}

// Stat implements Store.
func (l *Local) Stat(ctx context.Context, id string) (Info, error) {
	f, info, err := l.open(ctx, id)
	if err != nil {
		return Info{}, err
	}
	f.Close()
	return info, nil
}

// open opens id's file and checks its header against the id and the
// file's size.
func (l *Local) open(ctx context.Context, id string) (*os.File, Info, error) {
	if !ValidID(id) {
		return nil, Info{}, nodus.Errorf(nodus.EINVALID, "invalid blob id")
	}
	if err := ctx.Err(); err != nil {
		return nil, Info{}, fmt.Errorf("blob: open %s: %w", id, err)
	}
	f, err := l.root.Open(filepath.Join(shardDir(id), id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, Info{}, nodus.Errorf(nodus.ENOTFOUND, "blob %s not found", id)
	}
	if err != nil {
		return nil, Info{}, fmt.Errorf("blob: open %s: %w", id, err)
	}
	info, err := check(f, id)
	if err != nil {
		f.Close()
		return nil, Info{}, fmt.Errorf("blob: open %s: %w", id, err)
	}
	return f, info, nil
}

func check(f *os.File, id string) (Info, error) {
	fi, err := f.Stat()
	if err != nil {
		return Info{}, err
	}
	if !fi.Mode().IsRegular() {
		return Info{}, fmt.Errorf("not a regular file (%s)", fi.Mode().Type())
	}
	hdr := make([]byte, headerSize)
	if _, err := f.ReadAt(hdr, 0); err != nil {
		return Info{}, fmt.Errorf("corrupt: header: %w", err)
	}
	info, ok := decodeHeader(hdr)
	if !ok || info.ID != id {
		return Info{}, errors.New("corrupt: bad header")
	}
	if fi.Size() != headerSize+info.Size {
		return Info{}, fmt.Errorf("corrupt: %d bytes, header says %d", fi.Size()-headerSize, info.Size)
	}
	return info, nil
}

// Delete implements Store.
func (l *Local) Delete(ctx context.Context, id string) error {
	if !ValidID(id) {
		return nodus.Errorf(nodus.EINVALID, "invalid blob id")
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("blob: delete %s: %w", id, err)
	}
	dir := shardDir(id)
	err := l.root.Remove(filepath.Join(dir, id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("blob: delete %s: %w", id, err)
	}
	// A deleted document must stay deleted after a crash. Shard
	// directories are never removed: a concurrent Put may be renaming
	// into one.
	if err := syncDir(l.root, dir); err != nil {
		return fmt.Errorf("blob: delete %s: %w", id, err)
	}
	return nil
}

// Sweep removes the temp files of Puts that crashed (or whose cleanup
// failed) last modified before cutoff, and returns how many it removed.
// A Put in progress writes its temp file continually, so a cutoff an hour
// or more in the past never touches one.
func (l *Local) Sweep(ctx context.Context, cutoff time.Time) (int, error) {
	d, err := l.root.Open(tmpDir)
	if err != nil {
		return 0, fmt.Errorf("blob: sweep: %w", err)
	}
	entries, err := d.ReadDir(-1)
	d.Close()
	if err != nil {
		return 0, fmt.Errorf("blob: sweep: %w", err)
	}
	removed := 0
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return removed, fmt.Errorf("blob: sweep: %w", err)
		}
		fi, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // its Put finished or cleaned up meanwhile
		}
		if err != nil {
			return removed, fmt.Errorf("blob: sweep: %w", err)
		}
		if fi.IsDir() || !fi.ModTime().Before(cutoff) {
			continue
		}
		err = l.root.Remove(filepath.Join(tmpDir, e.Name()))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return removed, fmt.Errorf("blob: sweep: %w", err)
		}
		removed++
	}
	return removed, nil
}

// shardDir is the directory of id's file, relative to the root, named by
// the random last four hex digits of the (already validated) id.
func shardDir(id string) string {
	return filepath.Join(id[34:36], id[32:34])
}

func encodeHeader(info Info) []byte {
	b := make([]byte, headerSize)
	copy(b[0:8], magic)
	binary.BigEndian.PutUint64(b[8:16], uint64(info.Size))
	binary.BigEndian.PutUint64(b[16:24], uint64(info.CreatedAt.UnixMicro()))
	copy(b[24:56], info.SHA256[:])
	copy(b[56:92], info.ID)
	return b
}

func decodeHeader(b []byte) (Info, bool) {
	if len(b) != headerSize || string(b[0:8]) != magic {
		return Info{}, false
	}
	size := int64(binary.BigEndian.Uint64(b[8:16]))
	if size < 0 || !bytes.Equal(b[92:], make([]byte, headerSize-92)) {
		return Info{}, false
	}
	info := Info{
		ID:        string(b[56:92]),
		Size:      size,
		CreatedAt: time.UnixMicro(int64(binary.BigEndian.Uint64(b[16:24]))).UTC(),
	}
	copy(info.SHA256[:], b[24:56])
	return info, true
}

// mkdir creates dir (mode 0700) unless it exists, and syncs its parent when
// it does create it, so the new entry survives a crash.
func mkdir(r *os.Root, dir string) error {
	err := r.Mkdir(dir, 0o700)
	if errors.Is(err, fs.ErrExist) {
		fi, err := r.Lstat(dir)
		if err != nil {
			return err
		}
		if !fi.IsDir() {
			return fmt.Errorf("%s is not a directory", dir)
		}
		return nil
	}
	if err != nil {
		return err
	}
	return syncDir(r, filepath.Dir(dir))
}

func syncDir(r *os.Root, dir string) error {
	d, err := r.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// reader is an open blob: its content, without the header.
type reader struct {
	*io.SectionReader
	f *os.File
}

func (r *reader) Close() error { return r.f.Close() }
