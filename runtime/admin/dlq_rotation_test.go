package admin

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func deadLetterLine(id string) string {
	return fmt.Sprintf(`{"event":{"specversion":"1.0","id":%q,"source":"t","type":"t","data":{}},"task":"gen","stage":"sink","error":{"class":"permanent","message":"refused"},"attempts":1,"time":"2026-12-06T10:00:00Z"}`, id) + "\n"
}

func dlqPage(t *testing.T, url string) DeadLetterPage {
	t.Helper()
	_, body := call(t, "GET", url+"/tasks/gen/dlq", "", "Authorization: Bearer t")
	var page DeadLetterPage
	if err := json.Unmarshal([]byte(body), &page); err != nil {
		t.Fatalf("page: %v: %s", err, body)
	}
	return page
}

// Replayed marks are byte offsets; when the file sink rotates the
// dead-letter file (FILE becomes FILE.1, a new FILE starts), the marks of
// the old file must not apply to the new file's records at the same
// offsets.
func TestDeadLetterReplayedMarksIgnoredAfterRotation(t *testing.T) {
	dir := t.TempDir()
	dlq := filepath.Join(dir, "dlq.jsonl")
	os.WriteFile(dlq, []byte(deadLetterLine("old-1")), 0o644)
	out := &syncBuffer{}
	_, srv := consoleTask(t, out, TaskFiles{DeadLetterPath: dlq})
	h := []string{"Authorization: Bearer t", "Content-Type: application/json"}
	if code, body := call(t, "POST", srv.URL+"/tasks/gen/dlq/replay", `{"ids":[0]}`, h...); code != 200 || !strings.Contains(body, `"replayed":1`) {
		t.Fatalf("replay: %d %s", code, body)
	}
	if page := dlqPage(t, srv.URL); len(page.Items) != 1 || !page.Items[0].Replayed {
		t.Fatalf("not marked replayed: %+v", page)
	}
	os.Rename(dlq, dlq+".1")
	os.WriteFile(dlq, []byte(deadLetterLine("new-1")), 0o644)

	page := dlqPage(t, srv.URL)
	if len(page.Items) != 1 || !strings.Contains(string(page.Items[0].Event), "new-1") {
		t.Fatalf("page: %+v", page)
	}
	if page.Items[0].Replayed {
		t.Fatal("the new file's first record is shown replayed: the old file's mark applied to it")
	}
	if code, body := call(t, "POST", srv.URL+"/tasks/gen/dlq/replay", `{"ids":[0]}`, h...); code != 200 || !strings.Contains(body, `"replayed":1`) {
		t.Fatalf("replaying the new record: %d %s", code, body)
	}
	if !strings.Contains(out.String(), `"new-1"`) {
		t.Fatal("the new record did not reach the sink")
	}
	if page := dlqPage(t, srv.URL); !page.Items[0].Replayed {
		t.Fatalf("the new record is not marked replayed: %+v", page)
	}
}

// Without rotation, marks hold as the file grows, and across a restart of
// the API (a new server reading the same files).
func TestDeadLetterReplayedMarksKeptAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	dlq := filepath.Join(dir, "dlq.jsonl")
	os.WriteFile(dlq, []byte(deadLetterLine("a")+deadLetterLine("b")), 0o644)
	h := []string{"Authorization: Bearer t", "Content-Type: application/json"}
	_, srv := consoleTask(t, &syncBuffer{}, TaskFiles{DeadLetterPath: dlq})
	second := int64(len(deadLetterLine("a")))
	if code, body := call(t, "POST", srv.URL+"/tasks/gen/dlq/replay", fmt.Sprintf(`{"ids":[%d]}`, second), h...); code != 200 || !strings.Contains(body, `"replayed":1`) {
		t.Fatalf("replay: %d %s", code, body)
	}
	// The file grows; the mark stays on its record.
	f, _ := os.OpenFile(dlq, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(deadLetterLine("c"))
	f.Close()
	if code, body := call(t, "POST", srv.URL+"/tasks/gen/dlq/replay", `{"ids":[0]}`, h...); code != 200 || !strings.Contains(body, `"replayed":1`) {
		t.Fatalf("replay: %d %s", code, body)
	}
	srv.Close()

	out := &syncBuffer{}
	_, srv2 := consoleTask(t, out, TaskFiles{DeadLetterPath: dlq})
	page := dlqPage(t, srv2.URL)
	var got []bool
	for _, it := range page.Items {
		got = append(got, it.Replayed)
	}
	if fmt.Sprint(got) != "[true true false]" {
		t.Fatalf("replayed after a restart: %v, want [true true false]", got)
	}
	if _, body := call(t, "POST", srv2.URL+"/tasks/gen/dlq/replay", fmt.Sprintf(`{"ids":[0,%d]}`, second), h...); !strings.Contains(body, `"replayed":0`) {
		t.Fatalf("replaying marked records again: %s", body)
	}
}
