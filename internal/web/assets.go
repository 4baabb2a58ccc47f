package web

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
)

// assets are the embedded static files, each served under a name that
// carries a hash of its content ("app.3f2a9c1b.css"): a new build changes
// the name of what changed, so browsers may keep every file for a year.
type assets struct {
	byName map[string]string // "app.css" -> "app.3f2a9c1b.css"
	files  map[string]asset  // "app.3f2a9c1b.css" -> content
}

type asset struct {
	body        []byte
	contentType string
}

// assetMaxAge is a year: the name changes with the content.
const assetMaxAge = 365 * 24 * time.Hour

func newAssets(fsys fs.FS) (*assets, error) {
	a := &assets{byName: map[string]string{}, files: map[string]asset{}}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		ext := path.Ext(p)
		// Directories are flattened: vendored licences sit beside their
		// files but only served files need unique base names.
		base := path.Base(p)
		hashed := strings.TrimSuffix(base, ext) + "." + hex.EncodeToString(sum[:6]) + ext
		if _, dup := a.byName[base]; dup {
			return fmt.Errorf("web: two static files named %s", base)
		}
		ct := mime.TypeByExtension(ext)
		if ct == "" {
			ct = "application/octet-stream"
		}
		a.byName[base] = hashed
		a.files[hashed] = asset{body: b, contentType: ct}
		return nil
	})
	return a, err
}

// url is the fingerprinted URL of a static file; a name that does not
// exist is a template error, caught when the page is first rendered in
// tests.
func (a *assets) url(name string) (string, error) {
	h, ok := a.byName[name]
	if !ok {
		return "", fmt.Errorf("web: no static file %q", name)
	}
	return "/static/" + h, nil
}

func (a *assets) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f, ok := a.files[r.PathValue("file")]
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", f.contentType)
	w.Header().Set("Cache-Control", fmt.Sprintf("public, max-age=%d, immutable", int(assetMaxAge.Seconds())))
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(f.body))
}
