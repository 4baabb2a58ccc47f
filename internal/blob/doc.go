// Package blob stores the bytes of uploaded files (documents, recordings)
// under ids it generates itself. Store is the interface the rest of Nodus
// uses; Local keeps blobs in a directory on the local disk, and an
// S3-compatible store can implement the same interface later.
//
// Invariants:
//
//   - Ids come from nodus.NewID (a lower-case UUIDv7) and nothing else. A
//     file name, a key or any other caller input never becomes part of a
//     path (SECURITY check 23). Open, Stat and Delete accept only strings of
//     exactly that form and answer EINVALID for anything else, before the
//     file system is touched.
//   - The store is not an authorization boundary: whoever holds an id can
//     read the blob. Callers keep ids in tenant-scoped rows and take them
//     from there, never straight from a request.
//   - Put streams: it never holds a whole blob in memory. It counts and
//     hashes (SHA-256) while writing, and past its limit fails with
//     ETOOLARGE. A Put that fails for any reason (limit, a failing reader,
//     a cancelled context, a full disk) leaves nothing under any id.
//   - A blob is immutable once Put returns; Delete is idempotent.
//
// Local lays blobs out as root/<id[34:36]>/<id[32:34]>/<id>, with mode 0600
// in directories of mode 0700. The shard names come from the random tail of
// the id, not its head, because the head of a UUIDv7 is a timestamp and
// would put months of uploads in one directory. Every blob file starts with
// a 128-byte header (magic, size, creation time, SHA-256, its own id) so
// that Stat needs no database and a file that is truncated, foreign or
// moved under another id is refused instead of served.
//
// A Put writes to root/.tmp/<id>, fsyncs the file, renames it into place
// and fsyncs the shard directory, so after a crash an id names either a
// complete blob or nothing. What a crash can leave is a file in root/.tmp;
// Sweep removes those older than a cutoff. NewLocal does not sweep by
// itself, because during a rolling restart another process may still be
// writing there: the caller runs Sweep at start-up with a cutoff well past
// the longest upload.
//
// Every file operation of Local goes through an os.Root, so a symbolic link
// planted under root that points outside it is never followed.
package blob
