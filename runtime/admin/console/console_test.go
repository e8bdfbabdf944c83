package console

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func get(t *testing.T, h http.Handler, path string, headers ...string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func body(t *testing.T, r *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestHandler: the page at / and /index.html, its assets under /ui/ with
// their types, the security headers, 304 on a matching ETag, and a JSON 404
// for any other path (the handler is mounted at "GET /" of the API's mux).
func TestHandler(t *testing.T) {
	h := Handler()
	for _, p := range []string{"/", "/index.html", "/ui/index.html"} {
		r := get(t, h, p)
		b := body(t, r)
		if r.StatusCode != 200 || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/html") || !strings.Contains(b, `<script type="module" src="ui/app.js">`) {
			t.Fatalf("GET %s: %d %s\n%.200s", p, r.StatusCode, r.Header.Get("Content-Type"), b)
		}
		for _, k := range []string{"Content-Security-Policy", "X-Content-Type-Options", "X-Frame-Options", "ETag", "Cache-Control"} {
			if r.Header.Get(k) == "" {
				t.Errorf("GET %s: no %s header", p, k)
			}
		}
		if csp := r.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe") {
			t.Errorf("GET %s: CSP %q", p, csp)
		}
	}
	types := map[string]string{"/ui/app.js": "text/javascript", "/ui/style.css": "text/css", "/ui/favicon.svg": "image/svg+xml"}
	for p, want := range types {
		r := get(t, h, p)
		if r.StatusCode != 200 || !strings.HasPrefix(r.Header.Get("Content-Type"), want) {
			t.Errorf("GET %s: %d %q, want %s", p, r.StatusCode, r.Header.Get("Content-Type"), want)
		}
		etag := r.Header.Get("ETag")
		if r := get(t, h, p, "If-None-Match", etag); r.StatusCode != http.StatusNotModified {
			t.Errorf("GET %s with If-None-Match %s: %d, want 304", p, etag, r.StatusCode)
		}
	}
	for _, p := range []string{"/nope", "/ui/", "/ui/../console.go", "/task"} {
		r := get(t, h, p)
		if b := body(t, r); r.StatusCode != 404 || !strings.Contains(b, `"error"`) || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("GET %s: %d %s", p, r.StatusCode, b)
		}
	}
}

// TestAssetsOffline: the console needs nothing but its own files. No asset
// names another origin (a CDN, a font service), every URL is relative (so a
// proxy's path prefix is kept), and every module a script imports is
// embedded.
func TestAssetsOffline(t *testing.T) {
	external := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}`)
	absolute := regexp.MustCompile(`(?:src|href)="/|fetch\(\s*['"]/|(?:get|post|stream)\(\s*['"]/|url\(\s*['"]?/`)
	imports := regexp.MustCompile(`(?m)^import .* from '\./([^']+)';`)
	// Event data and error messages reach the pages: they go in as text,
	// never parsed as markup (docs/security.md).
	markup := regexp.MustCompile(`\.innerHTML\s*=|\.outerHTML\s*=|insertAdjacentHTML|document\.write|\beval\(|new Function\(`)
	n := 0
	err := fs.WalkDir(assets, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		n++
		data, err := assets.ReadFile(p)
		if err != nil {
			return err
		}
		text := strings.ReplaceAll(string(data), "http://www.w3.org/2000/svg", "") // the SVG namespace is a name, not a fetch
		if m := external.FindString(text); m != "" {
			t.Errorf("%s names another origin: %q (the console must work offline)", p, m)
		}
		if m := markup.FindString(text); m != "" {
			t.Errorf("%s parses text as markup or code (%q): build nodes with h() and text", p, m)
		}
		if m := absolute.FindString(text); m != "" {
			t.Errorf("%s uses an absolute path %q: use a relative one, so the console works under a proxy's path prefix", p, m)
		}
		for _, m := range imports.FindAllStringSubmatch(text, -1) {
			if _, err := fs.Stat(assets, "assets/"+m[1]); err != nil {
				t.Errorf("%s imports %s, which is not embedded", p, m[1])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 5 {
		t.Fatalf("only %d embedded assets", n)
	}
}
