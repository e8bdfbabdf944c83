package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/sluicehq/sluice/runtime/testkit"
	"github.com/sluicehq/sluice/runtime/wasmhost/wasmtest"
)

// TestE2EStateDirIsOwnerOnly: everything Sluice writes under its state
// directory (checkpoints, disk buffer segments, cursors, locks) holds event
// data or positions, so it is created readable by its owner only, whatever
// the umask lets through.
func TestE2EStateDirIsOwnerOnly(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state") // created by sluice
	in := write(t, dir, "in.jsonl", "{\"n\":1}\n{\"n\":2}\n")
	task := write(t, dir, "task.toml", `name = "perm"
[source]
type = "file"
path = "`+in+`"
[sink]
type = "file"
path = "`+filepath.Join(dir, "out.jsonl")+`"
buffer = { type = "disk", max_size = "64MiB" }
`)
	r := sluiceIn(t, dir, nil, "run", "--state-dir", state, task)
	if r.code != 0 {
		t.Fatalf("run: %+v", r)
	}
	if out, _ := os.ReadFile(filepath.Join(dir, "out.jsonl")); strings.Count(string(out), "\n") != 2 {
		t.Fatalf("output: %q", out)
	}
	var seen []string
	err := filepath.WalkDir(state, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		seen = append(seen, rel)
		if perm := fi.Mode().Perm(); perm&0o077 != 0 {
			t.Errorf("%s has mode %v: want owner-only (0700 folders, 0600 files)", rel, fi.Mode())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var files int
	for _, s := range seen {
		if strings.Contains(s, "buffers") && strings.HasSuffix(s, ".seg") || strings.HasSuffix(s, ".lock") {
			files++
		}
	}
	if files < 2 {
		t.Fatalf("expected buffer segments and checkpoint locks under the state dir, found %q", seen)
	}
}

// TestE2EValidateHidesURLSecrets: the http sink's URL may carry a key in
// its query or credentials in its userinfo; a problem with it names the
// URL without either, and quotes no excerpt of the file, whether the
// value was written in the file or came from the environment.
func TestE2EValidateHidesURLSecrets(t *testing.T) {
	dir := t.TempDir()
	urls := []string{
		"ftp://user:pw-SECRET@hooks.example.com/in?api_key=SECRET",
		"http://hooks.example.com/in?api_key=SECRET#frag",
		"http://hooks.exa mple.com/in?api_key=SECRET",
		"http://hooks.example.com:port/in?api_key=SECRET",
		"http://user:pw-SECRET@hooks.example.com/in#SECRET",
	}
	var files []string
	for i, u := range urls {
		files = append(files, write(t, dir, fmt.Sprintf("t%d.toml", i), fmt.Sprintf(`name = "t%d"
[source]
type = "stdin"
[sink]
type = "http"
url = %q
`, i, u)))
	}
	files = append(files, write(t, dir, "env.toml", `name = "env"
[source]
type = "stdin"
[sink]
type = "http"
url = "${env:HOOK_URL}"
`))
	for _, f := range files {
		r := sluiceIn(t, dir, []string{"HOOK_URL=ftp://hooks.example.com/in?api_key=SECRET"}, "validate", f)
		if r.code == 0 {
			t.Fatalf("validate %s passed: %+v", f, r)
		}
		if strings.Contains(r.stdout+r.stderr, "SECRET") {
			t.Errorf("validate %s printed a secret:\n%s%s", filepath.Base(f), r.stdout, r.stderr)
		}
		if !strings.Contains(r.stderr, "sink.url: invalid url") {
			t.Errorf("validate %s: no url problem:\n%s", filepath.Base(f), r.stderr)
		}
	}
}

// TestE2EAdminToken: `sluice run` refuses an admin address other machines
// reach without a token; with --admin-token-file, pause needs the token
// and a JSON request, and a cross-origin form post (what any web page open
// in a local browser can send) changes nothing.
func TestE2EAdminToken(t *testing.T) {
	dir := t.TempDir()
	task := write(t, dir, "task.toml", `name = "gen"
[source]
type = "generate"
rate = 100
[sink]
type = "file"
path = "`+filepath.Join(dir, "out.jsonl")+`"
`)
	r := sluiceIn(t, dir, nil, "run", "--admin-addr", "0.0.0.0:0", task)
	if r.code == 0 || !strings.Contains(r.stderr, "without a token") {
		t.Fatalf("run on 0.0.0.0 without a token: %+v", r)
	}
	r = sluiceIn(t, dir, []string{"SLUICE_ADMIN_TOKEN=short"}, "run", "--admin-addr", "127.0.0.1:0", task)
	if r.code != 2 || !strings.Contains(r.stderr, "shorter than 16") {
		t.Fatalf("run with a short token: %+v", r)
	}

	const token = "0123456789abcdef-e2e"
	tokenFile := write(t, dir, "token", token+"\n")
	addr := testkit.FreeAddr(t)
	p := testkit.StartSluice(t, testkit.ProcOptions{Dir: dir}, "run", "--state-dir", filepath.Join(dir, "state"),
		"--admin-addr", addr, "--admin-token-file", tokenFile, task)
	p.WaitLog(t, "task running")
	base := "http://" + addr
	send := func(method, path, body string, headers map[string]string) int {
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		for k, v := range headers {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	state := func() string {
		req, _ := http.NewRequest(http.MethodGet, base+"/tasks/gen", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var v struct{ State string }
		json.NewDecoder(resp.Body).Decode(&v)
		return v.State
	}
	form := map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}
	if code := send(http.MethodPost, "/tasks/gen/pause", "a=1", form); code != 403 || state() != "Running" {
		t.Fatalf("cross-origin form post: %d, state %s", code, state())
	}
	if code := send(http.MethodPost, "/tasks/gen/pause", "{}", map[string]string{"Content-Type": "application/json"}); code != 401 || state() != "Running" {
		t.Fatalf("pause without the token: %d, state %s", code, state())
	}
	if code := send(http.MethodPost, "/tasks/gen/pause", "", map[string]string{"Content-Type": "application/json", "Authorization": "Bearer " + token}); code != 200 || state() != "Paused" {
		t.Fatalf("pause with the token: %d, state %s", code, state())
	}
	if p.LogHas(token) {
		t.Fatal("the token was logged")
	}
	p.Stop(t)
}

// TestE2EInvalidUTF8: lines holding bytes that are not UTF-8 (Latin-1 text,
// a truncated sequence inside a JSON string) become events in valid UTF-8
// by default, each bad byte replaced by U+FFFD; with invalid_utf8 =
// "reject" they go to the dead-letter file, which stays valid JSON and
// keeps their exact bytes in event_base64.
func TestE2EInvalidUTF8(t *testing.T) {
	input := "caf\xe9 au lait\n{\"name\":\"Jos\xc3\"}\n{\"ok\":\"\u00e9\"}\n"
	for _, policy := range []string{"replace", "reject"} {
		t.Run(policy, func(t *testing.T) {
			dir := t.TempDir()
			task := write(t, dir, "task.toml", `name = "utf8"
[source]
type = "stdin"
invalid_utf8 = "`+policy+`"
[sink]
type = "file"
path = "`+filepath.Join(dir, "out.jsonl")+`"
[dead_letter]
type = "file"
path = "`+filepath.Join(dir, "dlq.jsonl")+`"
`)
			r := sluice(t, input, "run", task)
			if r.code != 0 {
				t.Fatalf("run: %+v", r)
			}
			out, _ := os.ReadFile(filepath.Join(dir, "out.jsonl"))
			dlq, _ := os.ReadFile(filepath.Join(dir, "dlq.jsonl"))
			for name, data := range map[string][]byte{"output": out, "dead letters": dlq} {
				for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
					if line != "" && (!utf8.ValidString(line) || !json.Valid([]byte(line))) {
						t.Errorf("%s: %q is not JSON in valid UTF-8", name, line)
					}
				}
			}
			lines := func(b []byte) int { return strings.Count(string(b), "\n") }
			if policy == "replace" {
				if lines(out) != 3 || lines(dlq) != 0 || !strings.Contains(string(out), "caf\ufffd au lait") || !strings.Contains(string(out), `"name":"Jos`+"\ufffd"+`"`) {
					t.Fatalf("output:\n%s\ndead letters:\n%s", out, dlq)
				}
				return
			}
			if lines(out) != 1 || lines(dlq) != 2 {
				t.Fatalf("output:\n%s\ndead letters:\n%s", out, dlq)
			}
			var rec struct {
				EventBase64 string `json:"event_base64"`
				Stage       string
			}
			json.Unmarshal([]byte(strings.Split(string(dlq), "\n")[0]), &rec)
			if raw, _ := base64.StdEncoding.DecodeString(rec.EventBase64); string(raw) != "caf\xe9 au lait" || rec.Stage != "decode" {
				t.Fatalf("dead letter keeps %q at stage %q, want the original bytes at decode", raw, rec.Stage)
			}
		})
	}
}

// TestE2EInvalidJSONBeforeTemplate: a WASM module that passes on text (here
// what a partial extracted) feeds a template that reads JSON. The record
// must go to the dead-letter queue at the template, not become an empty
// output counted as delivered.
func TestE2EInvalidJSONBeforeTemplate(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "pass.wasm", string(wasmtest.ABIModule{PerRecord: true}.Bytes()))
	task := write(t, dir, "task.toml", `name = "chain"
[source]
type = "stdin"

[[transform]]
type = "partial"
path = "$.data.name"

[[transform]]
type = "wasm"
module = "pass.wasm"

[[transform]]
type = "template"
template = '{"name": "${n}"}'
variables = { n = "$" }

[sink]
type = "file"
path = "`+filepath.Join(dir, "out.jsonl")+`"
[dead_letter]
type = "file"
path = "`+filepath.Join(dir, "dlq.jsonl")+`"
`)
	r := sluice(t, "{\"name\":\"ada\"}\n{\"name\":{\"first\":\"bob\"}}\n", "run", task)
	if r.code != 0 {
		t.Fatalf("run: %+v", r)
	}
	out, _ := os.ReadFile(filepath.Join(dir, "out.jsonl"))
	dlq, _ := os.ReadFile(filepath.Join(dir, "dlq.jsonl"))
	// "ada" became the text ada: not JSON for the template. The object
	// stayed JSON and renders.
	if strings.TrimSpace(string(out)) != `{"name":"{\"first\":\"bob\"}"}` {
		t.Fatalf("delivered:\n%s", out)
	}
	if strings.Count(string(dlq), "\n") != 1 || !strings.Contains(string(dlq), `"stage":"transform[2]"`) || !strings.Contains(string(dlq), "not JSON") {
		t.Fatalf("dead letters:\n%s", dlq)
	}
}
