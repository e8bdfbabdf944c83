package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/sluicehq/sluice/runtime/admin"
)

// apiClient calls the admin API of a running `sluice run`.
type apiClient struct {
	base  string
	token string
	http  *http.Client
}

// defaultAdminAddr is where the tools look when neither --admin-addr nor
// SLUICE_ADMIN_ADDR says: the address the docs use.
const defaultAdminAddr = "127.0.0.1:9090"

// bindAdmin adds --admin-addr (alias --admin), --admin-token and
// --admin-token-file to fs.
func bindAdmin(fs *flag.FlagSet, s *settings) {
	fs.StringVar(&s.adminAddr, "admin", s.adminAddr, "same as --admin-addr")
}

// parseAdminTool parses the arguments of a command that talks to the admin
// API (its own flags already on fs): the admin address and token, then
// between lo and hi positional arguments. code is -1 when the command
// goes on, else the exit status to return.
func parseAdminTool(fs *flag.FlagSet, args []string, stdout, stderr io.Writer, lo, hi int, usage string) (s settings, pos []string, code int) {
	check := bindSettings(fs, &s, settingAdminAddr)
	bindAdmin(fs, &s)
	pos, err := parseArgs(fs, args, stdout)
	if err != nil {
		return s, nil, usageErr(err)
	}
	if err := check(); err != nil {
		fmt.Fprintf(stderr, "sluice %s: %v\n", fs.Name(), err)
		return s, nil, exitUsage
	}
	if !wantArgs(fs, pos, lo, hi, usage) {
		return s, nil, exitUsage
	}
	return s, pos, -1
}

func newAPIClient(s settings) *apiClient {
	addr := s.adminAddr
	if addr == "" {
		addr = defaultAdminAddr
	}
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	return &apiClient{base: strings.TrimRight(addr, "/"), token: s.adminToken, http: &http.Client{}}
}

// get sends a GET to path; an answer other than 200 is an error that says
// what the API said.
func (c *apiClient) get(ctx context.Context, path string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return nil, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the admin API at %s (is `sluice run --admin-addr` running there? set --admin-addr or SLUICE_ADMIN_ADDR): %w", c.base, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		var e struct {
			Error string `json:"error"`
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(body, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(body))
		}
		hint := ""
		if resp.StatusCode == http.StatusUnauthorized {
			hint = " (set SLUICE_ADMIN_TOKEN, --admin-token-file or --admin-token)"
		}
		return nil, fmt.Errorf("%s %s: %s: %s%s", http.MethodGet, path, resp.Status, e.Error, hint)
	}
	return resp, nil
}

// tapCmd prints a sample of the events leaving a stage of a running task.
func tapCmd(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("tap", stderr, "tap TASK [STAGE] [--limit N] [--admin-addr ADDR]",
		"Prints a sample of the events leaving a stage of a running task (at most 10 a second), one JSON",
		"object a line: {\"stage\", \"time\", \"event\"}. STAGE is source (default), filter, transform[N] or sink.",
		"Reads the admin API of `sluice run --admin-addr`, with the admin token (SLUICE_ADMIN_TOKEN).")
	limit := fs.Int("limit", 0, "stop after this many events (0: until interrupted)")
	s, pos, code := parseAdminTool(fs, args, stdout, stderr, 1, 2, "TASK [STAGE]")
	if code >= 0 {
		return code
	}
	stage := "source"
	if len(pos) == 2 {
		stage = pos[1]
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	c := newAPIClient(s)
	q := url.Values{"stage": {stage}}
	if *limit > 0 {
		q.Set("limit", fmt.Sprint(*limit))
	}
	resp, err := c.get(ctx, "/tasks/"+url.PathEscape(pos[0])+"/tap?"+q.Encode())
	if err != nil {
		fmt.Fprintf(stderr, "sluice tap: %v\n", err)
		return exitFailed
	}
	defer resp.Body.Close()
	w := bufio.NewWriter(stdout)
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	event := ""
	for sc.Scan() {
		line := sc.Text()
		if name, ok := strings.CutPrefix(line, "event: "); ok {
			event = name
			continue
		}
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			continue
		}
		if event == "end" {
			// The task's run ended: nothing more comes on this stream.
			var end admin.TapEnd
			if json.Unmarshal([]byte(data), &end) != nil || end.Message == "" {
				end.Message = data
			}
			fmt.Fprintf(stderr, "sluice tap: %s\n", end.Message)
			return exitOK
		}
		w.WriteString(data)
		w.WriteByte('\n')
		w.Flush()
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil {
		fmt.Fprintf(stderr, "sluice tap: the stream broke: %v\n", err)
		return exitFailed
	}
	return exitOK
}

// topCmd shows the tasks of a running process in a table that refreshes
// every second.
func topCmd(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("top", stderr, "top [--once] [--admin-addr ADDR]",
		"Shows the tasks of a running `sluice run --admin-addr`: state, events/s, counters and lag, refreshed",
		"every second until interrupted (--once: one table, for scripts). Uses the admin token (SLUICE_ADMIN_TOKEN).")
	once := fs.Bool("once", false, "print one table and exit")
	s, _, code := parseAdminTool(fs, args, stdout, stderr, 0, 0, "")
	if code >= 0 {
		return code
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	c := newAPIClient(s)
	if *once {
		views, err := c.tasks(ctx)
		if err != nil {
			fmt.Fprintf(stderr, "sluice top: %v\n", err)
			return exitFailed
		}
		writeTop(stdout, views)
		return exitOK
	}
	// The live table reads the /events stream: one table a second, drawn
	// over the last one (plain ANSI: home the cursor, clear the screen).
	resp, err := c.get(ctx, "/events")
	if err != nil {
		fmt.Fprintf(stderr, "sluice top: %v\n", err)
		return exitFailed
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	term := isTerminal(stdout)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		var views []admin.TaskView
		if err := json.Unmarshal([]byte(data), &views); err != nil {
			fmt.Fprintf(stderr, "sluice top: an event that is no task list: %v\n", err)
			return exitFailed
		}
		if term {
			io.WriteString(stdout, "\x1b[H\x1b[2J")
		}
		fmt.Fprintf(stdout, "sluice top — %s — %s (Ctrl-C to quit)\n\n", c.base, time.Now().Format(time.TimeOnly))
		writeTop(stdout, views)
		if !term {
			fmt.Fprintln(stdout)
		}
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil {
		fmt.Fprintf(stderr, "sluice top: the stream broke: %v\n", err)
		return exitFailed
	}
	if ctx.Err() == nil {
		fmt.Fprintln(stderr, "sluice top: the process closed the stream (it stopped)")
	}
	return exitOK
}

func (c *apiClient) tasks(ctx context.Context) ([]admin.TaskView, error) {
	resp, err := c.get(ctx, "/tasks")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var views []admin.TaskView
	if err := json.NewDecoder(resp.Body).Decode(&views); err != nil {
		return nil, fmt.Errorf("GET /tasks: %w", err)
	}
	return views, nil
}

// writeTop prints the task table.
func writeTop(w io.Writer, views []admin.TaskView) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "TASK\tSTATE\tEVENTS/S\tRECEIVED\tDELIVERED\tFILTERED\tFAILED\tIN\tOUT\tLAG\tLATENCY\t")
	for _, v := range views {
		lag := "-"
		if v.Lag != nil {
			lag = fmt.Sprint(*v.Lag)
		}
		c := v.Counters
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t\n", v.Name, v.State, human(v.Rate), c.Received, c.Delivered,
			c.Filtered, c.Failed, bytesHuman(c.BytesIn), bytesHuman(c.BytesOut), lag, time.Duration(v.LatencySeconds*float64(time.Second)).Round(time.Microsecond))
	}
	tw.Flush()
	for _, v := range views {
		if v.Reason != "" {
			fmt.Fprintf(w, "%s: %s\n", v.Name, v.Reason)
		}
	}
}

func bytesHuman(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1fGiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1fMiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1fKiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%dB", n)
}
