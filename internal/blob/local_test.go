package blob

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/nodus"
)

func newLocal(t testing.TB) (*Local, string) {
	t.Helper()
	root := filepath.Join(t.TempDir(), "blobs")
	l, err := NewLocal(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, root
}

func randomBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)})
	r.Read(b)
	return b
}

func sameInfo(a, b Info) bool {
	return a.ID == b.ID && a.Size == b.Size && a.SHA256 == b.SHA256 && a.CreatedAt.Equal(b.CreatedAt)
}

// files lists the regular files and symlinks under root, relative to it.
func files(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(root, p)
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func assertEmpty(t *testing.T, root string) {
	t.Helper()
	if f := files(t, root); len(f) != 0 {
		t.Errorf("files left under the root: %v", f)
	}
}

func readAll(t *testing.T, l *Local, id string) ([]byte, Info) {
	t.Helper()
	rc, info, err := l.Open(context.Background(), id)
	if err != nil {
		t.Fatalf("Open(%s): %v", id, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", id, err)
	}
	return b, info
}

func TestLocalRoundTrip(t *testing.T) {
	ctx := context.Background()
	l, root := newLocal(t)
	for _, size := range []int{0, 1, 4095, bufSize, 3*bufSize + 17} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			data := randomBytes(uint64(size), size)
			before := time.Now().Add(-time.Second)
			info, err := l.Put(ctx, bytes.NewReader(data), int64(size))
			if err != nil {
				t.Fatal(err)
			}
			if !ValidID(info.ID) || !nodus.ValidID(info.ID) {
				t.Errorf("id %q is not a valid id", info.ID)
			}
			if info.Size != int64(size) || info.SHA256 != sha256.Sum256(data) {
				t.Errorf("Info = %d bytes %x, want %d %x", info.Size, info.SHA256, size, sha256.Sum256(data))
			}
			if info.CreatedAt.Before(before) || info.CreatedAt.After(time.Now()) || info.CreatedAt.Location() != time.UTC {
				t.Errorf("CreatedAt = %v", info.CreatedAt)
			}

			got, openInfo := readAll(t, l, info.ID)
			if !bytes.Equal(got, data) {
				t.Errorf("Open read %d bytes, not the %d put", len(got), size)
			}
			if !sameInfo(openInfo, info) {
				t.Errorf("Open Info = %+v, want %+v", openInfo, info)
			}
			statInfo, err := l.Stat(ctx, info.ID)
			if err != nil || !sameInfo(statInfo, info) {
				t.Errorf("Stat = %+v, %v, want %+v", statInfo, err, info)
			}

			// The layout, and the modes: 0600 files in 0700 directories.
			id := info.ID
			name := filepath.Join(root, id[34:36], id[32:34], id)
			for p, want := range map[string]fs.FileMode{
				name:                             0o600,
				filepath.Dir(name):               0o700 | fs.ModeDir,
				filepath.Dir(filepath.Dir(name)): 0o700 | fs.ModeDir,
				root:                             0o700 | fs.ModeDir,
			} {
				fi, err := os.Lstat(p)
				if err != nil {
					t.Fatal(err)
				}
				if fi.Mode() != want {
					t.Errorf("%s: mode %v, want %v", p, fi.Mode(), want)
				}
			}
		})
	}
	if f := files(t, filepath.Join(root, tmpDir)); len(f) != 0 {
		t.Errorf("temp files left: %v", f)
	}
}

func TestLocalOpenSeek(t *testing.T) {
	ctx := context.Background()
	l, _ := newLocal(t)
	data := randomBytes(1, 1000)
	info, err := l.Put(ctx, bytes.NewReader(data), 1000)
	if err != nil {
		t.Fatal(err)
	}
	rc, _, err := l.Open(ctx, info.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	// Offsets are into the content: the header is invisible.
	if n, err := rc.Seek(0, io.SeekEnd); n != 1000 || err != nil {
		t.Errorf("Seek(0, End) = %d, %v, want 1000", n, err)
	}
	if _, err := rc.Seek(990, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(rc)
	if err != nil || !bytes.Equal(rest, data[990:]) {
		t.Errorf("read after Seek(990) = %v, %v, want %v", rest, err, data[990:])
	}
}

func TestLocalLimit(t *testing.T) {
	const limit = 2*bufSize + 5
	tests := []struct {
		name  string
		size  int
		limit int64
		ok    bool
	}{
		{"empty, zero limit", 0, 0, true},
		{"one byte, zero limit", 1, 0, false},
		{"below", limit - 1, limit, true},
		{"at", limit, limit, true},
		{"one over", limit + 1, limit, false},
		{"a buffer over", limit + bufSize, limit, false},
		{"far over", 10 * limit, limit, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, root := newLocal(t)
			data := randomBytes(uint64(tt.size), tt.size)
			// A reader without WriterTo or Len, as an HTTP body would be.
			info, err := l.Put(context.Background(), io.MultiReader(bytes.NewReader(data)), tt.limit)
			if tt.ok {
				if err != nil || info.Size != int64(tt.size) {
					t.Fatalf("Put = %+v, %v, want %d bytes", info, err, tt.size)
				}
				if got, _ := readAll(t, l, info.ID); !bytes.Equal(got, data) {
					t.Error("content differs")
				}
				return
			}
			if code := nodus.ErrorCode(err); code != nodus.ETOOLARGE {
				t.Fatalf("Put = %+v, %v (code %q), want %s", info, err, code, nodus.ETOOLARGE)
			}
			if info != (Info{}) {
				t.Errorf("failed Put returned %+v", info)
			}
			assertEmpty(t, root)
		})
	}
	t.Run("negative", func(t *testing.T) {
		l, root := newLocal(t)
		_, err := l.Put(context.Background(), strings.NewReader(""), -1)
		if code := nodus.ErrorCode(err); code != nodus.EINVALID {
			t.Errorf("Put with limit -1 = %v, want %s", err, nodus.EINVALID)
		}
		assertEmpty(t, root)
	})
}

func TestLocalHostileIDs(t *testing.T) {
	ctx := context.Background()
	base := t.TempDir()
	root := filepath.Join(base, "blobs")
	l, err := NewLocal(root)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	stored, err := l.Put(ctx, strings.NewReader("stored"), 100)
	if err != nil {
		t.Fatal(err)
	}
	id := stored.ID
	// A canary next to the root, reachable by ../ from it.
	canary := filepath.Join(base, "canary")
	if err := os.WriteFile(canary, []byte("canary"), 0o600); err != nil {
		t.Fatal(err)
	}

	ids := []string{
		"",
		".",
		"..",
		"../canary",
		"../../canary",
		canary,
		"/etc/passwd",
		"a/b",
		tmpDir,
		filepath.Join(tmpDir, id),
		filepath.Join(id[34:36], id[32:34], id),
		id + "/",
		"/" + id,
		id + "\x00",
		id[:35] + "\x00",
		"\x00" + id[1:],
		id + "\n",
		" " + id[1:],
		id[:35],
		id + "0",
		strings.Repeat("a", 4096),
		strings.Repeat("../", 12) + "etc/passwd",
		strings.ToUpper(id),
		id[:9] + strings.ToUpper(id[9:]),
		strings.ReplaceAll(id, "-", "\u2010"), // Unicode hyphens
		strings.ReplaceAll(id, "-", ""),
		"{" + id + "}",
		"urn:uuid:" + id,
		"6ba7b810-9dad-41d1-80b4-00c04fd430c8", // version 4
		"6ba7b810-9dad-11d1-80b4-00c04fd430c8", // version 1
		id[:14] + "4" + id[15:],                // the stored id, version 4
		id[:19] + "c" + id[20:],                // the stored id, another variant
		"00000000-0000-0000-0000-000000000000", // nil UUID
		"ffffffff-ffff-ffff-ffff-ffffffffffff", // max UUID
		"0190a6f0-7b1c-7g00-8000-000000000000", // not hex
		"0190a6f0-7b1c-7000-8000-00000000000\u00e9",                       // Unicode, 37 bytes
		"0190a6f0-7b1c-7000-8000-00000000..ab",                            // dots
		"0190a6f0/7b1c/7000/8000/000000000000",                            // slashes
		"0190a6f0-7b1c-7000-8000-0000000000" + string([]byte{0xc3, 0xa9}), // UTF-8 é, 36 bytes
	}
	before := files(t, root)
	for _, bad := range ids {
		t.Run(fmt.Sprintf("%q", bad), func(t *testing.T) {
			if ValidID(bad) {
				t.Fatalf("ValidID(%q) = true", bad)
			}
			if rc, _, err := l.Open(ctx, bad); !refused(err) {
				if rc != nil {
					rc.Close()
				}
				t.Errorf("Open = %v, want invalid or not found", err)
			}
			if _, err := l.Stat(ctx, bad); !refused(err) {
				t.Errorf("Stat = %v, want invalid or not found", err)
			}
			if err := l.Delete(ctx, bad); !refused(err) {
				t.Errorf("Delete = %v, want invalid or not found", err)
			}
		})
	}
	// An id of the right form with no blob is simply not found.
	absent := nodus.NewID()
	if _, err := l.Stat(ctx, absent); nodus.ErrorCode(err) != nodus.ENOTFOUND {
		t.Errorf("Stat(absent) = %v, want %s", err, nodus.ENOTFOUND)
	}
	if rc, _, err := l.Open(ctx, absent); nodus.ErrorCode(err) != nodus.ENOTFOUND {
		if rc != nil {
			rc.Close()
		}
		t.Errorf("Open(absent) = %v, want %s", err, nodus.ENOTFOUND)
	}

	if after := files(t, root); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("files under root changed: %v, was %v", after, before)
	}
	if b, err := os.ReadFile(canary); err != nil || string(b) != "canary" {
		t.Errorf("canary: %q, %v", b, err)
	}
	if got, _ := readAll(t, l, id); string(got) != "stored" {
		t.Errorf("stored blob reads %q", got)
	}
}

func refused(err error) bool {
	code := nodus.ErrorCode(err)
	return code == nodus.EINVALID || code == nodus.ENOTFOUND
}

// failingReader yields n bytes, then fails.
type failingReader struct {
	n   int
	err error
}

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, r.err
	}
	k := min(len(p), r.n, 1000)
	for i := range p[:k] {
		p[i] = byte(i)
	}
	r.n -= k
	return k, nil
}

func TestLocalFailingReader(t *testing.T) {
	for _, n := range []int{0, 1, 5000, 3 * bufSize} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			l, root := newLocal(t)
			cause := errors.New("connection reset")
			info, err := l.Put(context.Background(), &failingReader{n: n, err: cause}, 1<<30)
			if !errors.Is(err, cause) {
				t.Fatalf("Put = %+v, %v, want the reader's error", info, err)
			}
			assertEmpty(t, root)
		})
	}
}

// cancellingReader cancels its context after n bytes and never ends.
type cancellingReader struct {
	n      int
	cancel context.CancelFunc
}

func (r *cancellingReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		r.cancel()
	}
	if r.n < -64<<20 {
		return 0, errors.New("Put went on reading after its context was cancelled")
	}
	k := min(len(p), 4096)
	r.n -= k
	return k, nil
}

func TestLocalCancel(t *testing.T) {
	t.Run("mid-way", func(t *testing.T) {
		l, root := newLocal(t)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		_, err := l.Put(ctx, &cancellingReader{n: 1 << 20, cancel: cancel}, 1<<40)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Put = %v, want context.Canceled", err)
		}
		assertEmpty(t, root)
	})
	t.Run("before", func(t *testing.T) {
		l, root := newLocal(t)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := l.Put(ctx, strings.NewReader("x"), 10); !errors.Is(err, context.Canceled) {
			t.Fatalf("Put = %v, want context.Canceled", err)
		}
		assertEmpty(t, root)
	})
}

func TestLocalConcurrentPut(t *testing.T) {
	const n = 50
	ctx := context.Background()
	l, root := newLocal(t)
	infos := make([]Info, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			data := randomBytes(uint64(i), 10_000+i*997)
			infos[i], errs[i] = l.Put(ctx, bytes.NewReader(data), 1<<20)
		})
	}
	wg.Wait()
	seen := make(map[string]bool)
	for i, info := range infos {
		if errs[i] != nil {
			t.Fatalf("Put %d: %v", i, errs[i])
		}
		if seen[info.ID] {
			t.Fatalf("id %s given twice", info.ID)
		}
		seen[info.ID] = true
		data := randomBytes(uint64(i), 10_000+i*997)
		if info.SHA256 != sha256.Sum256(data) {
			t.Errorf("Put %d: wrong hash", i)
		}
		if got, _ := readAll(t, l, info.ID); !bytes.Equal(got, data) {
			t.Errorf("Put %d: content differs", i)
		}
	}
	if f := files(t, root); len(f) != n {
		t.Errorf("%d files under root, want %d", len(f), n)
	}
}

func TestLocalDelete(t *testing.T) {
	ctx := context.Background()
	l, root := newLocal(t)
	keep, err := l.Put(ctx, strings.NewReader("keep"), 10)
	if err != nil {
		t.Fatal(err)
	}
	info, err := l.Put(ctx, strings.NewReader("gone"), 10)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Delete(ctx, info.ID); err != nil {
		t.Fatal(err)
	}
	if rc, _, err := l.Open(ctx, info.ID); nodus.ErrorCode(err) != nodus.ENOTFOUND {
		if rc != nil {
			rc.Close()
		}
		t.Errorf("Open after Delete = %v, want %s", err, nodus.ENOTFOUND)
	}
	if _, err := l.Stat(ctx, info.ID); nodus.ErrorCode(err) != nodus.ENOTFOUND {
		t.Errorf("Stat after Delete = %v, want %s", err, nodus.ENOTFOUND)
	}
	if err := l.Delete(ctx, info.ID); err != nil {
		t.Errorf("second Delete = %v, want nil", err)
	}
	if err := l.Delete(ctx, nodus.NewID()); err != nil {
		t.Errorf("Delete of an id never stored = %v, want nil", err)
	}
	if got, _ := readAll(t, l, keep.ID); string(got) != "keep" {
		t.Errorf("the other blob reads %q", got)
	}
	if f := files(t, root); len(f) != 1 {
		t.Errorf("files under root: %v, want only %s", f, keep.ID)
	}

	// A blob open while deleted stays readable to whoever has it open.
	info, err = l.Put(ctx, strings.NewReader("open"), 10)
	if err != nil {
		t.Fatal(err)
	}
	rc, _, err := l.Open(ctx, info.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if err := l.Delete(ctx, info.ID); err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(rc); string(b) != "open" || err != nil {
		t.Errorf("reading a deleted open blob: %q, %v", b, err)
	}
}

// blobPath is where a blob lives under root.
func blobPath(root, id string) string {
	return filepath.Join(root, id[34:36], id[32:34], id)
}

func TestLocalSymlinks(t *testing.T) {
	ctx := context.Background()

	t.Run("blob file", func(t *testing.T) {
		base := t.TempDir()
		l, err := NewLocal(filepath.Join(base, "blobs"))
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		info, err := l.Put(ctx, strings.NewReader("secret"), 100)
		if err != nil {
			t.Fatal(err)
		}
		// Move the real blob outside and leave a link to it in its place,
		// absolute and relative.
		name := blobPath(filepath.Join(base, "blobs"), info.ID)
		outside := filepath.Join(base, "outside")
		if err := os.Rename(name, outside); err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(filepath.Dir(name), outside)
		for _, target := range []string{outside, rel} {
			os.Remove(name)
			if err := os.Symlink(target, name); err != nil {
				t.Fatal(err)
			}
			if rc, _, err := l.Open(ctx, info.ID); err == nil {
				rc.Close()
				t.Errorf("Open followed a link to %s", target)
			}
			if _, err := l.Stat(ctx, info.ID); err == nil {
				t.Errorf("Stat followed a link to %s", target)
			}
		}
		if _, err := os.Stat(outside); err != nil {
			t.Errorf("the file outside: %v", err)
		}
	})

	t.Run("shard directory", func(t *testing.T) {
		base := t.TempDir()
		root := filepath.Join(base, "blobs")
		l, err := NewLocal(root)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		info, err := l.Put(ctx, strings.NewReader("secret"), 100)
		if err != nil {
			t.Fatal(err)
		}
		// Move the whole first-level shard outside and link to it.
		shard := filepath.Join(root, info.ID[34:36])
		outside := filepath.Join(base, "outside")
		if err := os.Rename(shard, outside); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(outside, shard); err != nil {
			t.Fatal(err)
		}
		if rc, _, err := l.Open(ctx, info.ID); err == nil {
			rc.Close()
			t.Error("Open followed a linked shard directory")
		}
		if _, err := l.Stat(ctx, info.ID); err == nil {
			t.Error("Stat followed a linked shard directory")
		}
		l.Delete(ctx, info.ID)
		if _, err := os.Stat(filepath.Join(outside, info.ID[32:34], info.ID)); err != nil {
			t.Errorf("Delete through a linked shard: %v", err)
		}
	})

	t.Run("put", func(t *testing.T) {
		// Every first-level shard is a link outside: no Put may write there.
		base := t.TempDir()
		root := filepath.Join(base, "blobs")
		outside := filepath.Join(base, "outside")
		if err := os.Mkdir(outside, 0o700); err != nil {
			t.Fatal(err)
		}
		l, err := NewLocal(root)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		for i := range 256 {
			if err := os.Symlink(outside, filepath.Join(root, fmt.Sprintf("%02x", i))); err != nil {
				t.Fatal(err)
			}
		}
		for range 5 {
			if info, err := l.Put(ctx, strings.NewReader("secret"), 100); err == nil {
				t.Errorf("Put through a linked shard = %+v", info)
			}
		}
		if f := files(t, outside); len(f) != 0 {
			t.Errorf("Put wrote outside the root: %v", f)
		}
		if f := files(t, filepath.Join(root, tmpDir)); len(f) != 0 {
			t.Errorf("temp files left: %v", f)
		}
	})

	t.Run("temp directory", func(t *testing.T) {
		base := t.TempDir()
		root := filepath.Join(base, "blobs")
		outside := filepath.Join(base, "outside")
		for _, d := range []string{root, outside} {
			if err := os.Mkdir(d, 0o700); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Symlink(outside, filepath.Join(root, tmpDir)); err != nil {
			t.Fatal(err)
		}
		l, err := NewLocal(root)
		if err == nil {
			defer l.Close()
			if _, err := l.Put(ctx, strings.NewReader("secret"), 100); err == nil {
				t.Error("Put wrote through a linked temp directory")
			}
		}
		if f := files(t, outside); len(f) != 0 {
			t.Errorf("written outside the root: %v", f)
		}
	})
}

func TestLocalCorrupt(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		damage func(t *testing.T, root string, info, other Info)
	}{
		{"truncated", func(t *testing.T, root string, info, _ Info) {
			if err := os.Truncate(blobPath(root, info.ID), headerSize+3); err != nil {
				t.Fatal(err)
			}
		}},
		{"shorter than a header", func(t *testing.T, root string, info, _ Info) {
			if err := os.Truncate(blobPath(root, info.ID), 10); err != nil {
				t.Fatal(err)
			}
		}},
		{"appended to", func(t *testing.T, root string, info, _ Info) {
			f, err := os.OpenFile(blobPath(root, info.ID), os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.WriteString("more")
			f.Close()
		}},
		{"foreign file", func(t *testing.T, root string, info, _ Info) {
			if err := os.WriteFile(blobPath(root, info.ID), bytes.Repeat([]byte("x"), 200), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"another blob under this id", func(t *testing.T, root string, info, other Info) {
			b, err := os.ReadFile(blobPath(root, other.ID))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(blobPath(root, info.ID), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"link to another blob", func(t *testing.T, root string, info, other Info) {
			// Relative: os.Root refuses absolute links anyway.
			name := blobPath(root, info.ID)
			target, _ := filepath.Rel(filepath.Dir(name), blobPath(root, other.ID))
			os.Remove(name)
			if err := os.Symlink(target, name); err != nil {
				t.Fatal(err)
			}
		}},
		{"a directory", func(t *testing.T, root string, info, _ Info) {
			os.Remove(blobPath(root, info.ID))
			if err := os.Mkdir(blobPath(root, info.ID), 0o700); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, root := newLocal(t)
			info, err := l.Put(ctx, strings.NewReader("the real content"), 100)
			if err != nil {
				t.Fatal(err)
			}
			other, err := l.Put(ctx, strings.NewReader("another blob"), 100)
			if err != nil {
				t.Fatal(err)
			}
			tt.damage(t, root, info, other)
			if rc, _, err := l.Open(ctx, info.ID); err == nil {
				b, _ := io.ReadAll(rc)
				rc.Close()
				t.Errorf("Open served %q", b)
			} else if code := nodus.ErrorCode(err); code != nodus.EINTERNAL {
				t.Errorf("Open = %v, want an internal error", err)
			}
			if _, err := l.Stat(ctx, info.ID); err == nil {
				t.Error("Stat accepted it")
			}
		})
	}
}

func TestLocalSweep(t *testing.T) {
	ctx := context.Background()
	l, root := newLocal(t)
	blob, err := l.Put(ctx, strings.NewReader("kept"), 10)
	if err != nil {
		t.Fatal(err)
	}

	// What crashed Puts leave: temp files, complete or not, never renamed.
	old := time.Now().Add(-2 * time.Hour)
	var crashed []string
	for i := range 3 {
		id := nodus.NewID()
		p := filepath.Join(root, tmpDir, id)
		if err := os.WriteFile(p, bytes.Repeat([]byte{1}, i*1000), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
		crashed = append(crashed, id)
	}
	// A Put still writing.
	fresh := filepath.Join(root, tmpDir, nodus.NewID())
	if err := os.WriteFile(fresh, []byte("in progress"), 0o600); err != nil {
		t.Fatal(err)
	}

	// Leftovers are never blobs.
	for _, id := range crashed {
		if _, err := l.Stat(ctx, id); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("Stat of a crashed Put's id = %v, want %s", err, nodus.ENOTFOUND)
		}
	}

	n, err := l.Sweep(ctx, time.Now().Add(-time.Hour))
	if err != nil || n != len(crashed) {
		t.Errorf("Sweep = %d, %v, want %d", n, err, len(crashed))
	}
	left := files(t, filepath.Join(root, tmpDir))
	if len(left) != 1 || left[0] != filepath.Base(fresh) {
		t.Errorf("temp files after Sweep: %v, want only the fresh one", left)
	}
	if got, _ := readAll(t, l, blob.ID); string(got) != "kept" {
		t.Errorf("blob after Sweep reads %q", got)
	}
	if n, err := l.Sweep(ctx, time.Now().Add(-time.Hour)); n != 0 || err != nil {
		t.Errorf("second Sweep = %d, %v, want 0", n, err)
	}

	// A store reopened on the same root still reads its blobs.
	l2, err := NewLocal(root)
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	if got, _ := readAll(t, l2, blob.ID); string(got) != "kept" {
		t.Errorf("blob after reopening reads %q", got)
	}
}

func TestNewLocal(t *testing.T) {
	if _, err := NewLocal(""); err == nil {
		t.Error("NewLocal(\"\") succeeded")
	}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := NewLocal(file); err == nil {
		t.Error("NewLocal on a regular file succeeded")
	}
	// A root whose temp directory is a file is refused, not written around.
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, tmpDir), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := NewLocal(root); err == nil {
		t.Error("NewLocal with a file for its temp directory succeeded")
	}
}

func TestValidID(t *testing.T) {
	for range 1000 {
		if id := nodus.NewID(); !ValidID(id) {
			t.Fatalf("ValidID(%q) = false for a generated id", id)
		}
	}
}

func BenchmarkLocalPut(b *testing.B) {
	ctx := context.Background()
	l, _ := newLocal(b)
	data := randomBytes(1, 1<<20)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := l.Put(ctx, bytes.NewReader(data), int64(len(data))); err != nil {
			b.Fatal(err)
		}
	}
}
