// Package console is the web console of the admin API: a page a person
// opens in a browser to see the tasks of a running `sluice run`, pause and
// resume them, tap a stage, replay dead letters and try a filter or a
// transform in a playground.
//
// It is plain HTML, CSS and JavaScript embedded in the binary: no build
// step, no CDN, nothing fetched from the network, so it works on an edge
// box without Internet access and `make` needs no Node. Every URL in the
// assets is relative, so the console also works behind a reverse proxy
// that serves it under a path prefix (docs/operations.md).
//
// The pages themselves hold no data: they call the admin API, which asks
// for the bearer token; the console asks the person for it on the first
// 401 and keeps it in the tab's sessionStorage.
package console

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
)

//go:embed assets
var assets embed.FS

// csp allows the console's own scripts, styles and API calls and nothing
// else: no inline script (an injected <script> does not run), no other
// origin, no framing (clickjacking of the pause button).
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

type file struct {
	body  []byte
	ctype string
	etag  string
}

// Handler serves the console: the page at "/" (and "/index.html"), its
// assets under "/ui/". Any other path is 404, so the handler can be mounted
// at "GET /" of the admin API's mux without hiding a mistyped API path
// behind a web page.
func Handler() http.Handler {
	files := map[string]file{}
	err := fs.WalkDir(assets, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := assets.ReadFile(p)
		if err != nil {
			return err
		}
		ctype := mime.TypeByExtension(path.Ext(p))
		if ctype == "" {
			ctype = "application/octet-stream"
		}
		sum := sha256.Sum256(body)
		files["/ui/"+strings.TrimPrefix(p, "assets/")] = file{body: body, ctype: ctype, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		return nil
	})
	if err != nil {
		panic("console: embedded assets unreadable: " + err.Error()) // only a broken build gets here
	}
	files["/"] = files["/ui/index.html"]
	files["/index.html"] = files["/ui/index.html"]
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, ok := files[r.URL.Path]
		if !ok {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": "no page or API endpoint at " + r.URL.Path + ": the console is at /, the API under /tasks (docs/operations.md)"})
			return
		}
		h := w.Header()
		h.Set("Content-Type", f.ctype)
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		// Revalidated on every load (a cheap 304): an upgraded binary's
		// console is never mixed with the old one's cached script.
		h.Set("Cache-Control", "no-cache")
		h.Set("ETag", f.etag)
		if match := r.Header.Get("If-None-Match"); match != "" && match == f.etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		if r.Method == http.MethodHead {
			return
		}
		_, _ = w.Write(f.body)
	})
}
