package faults_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pilothouse/pilothouse/agent/wire"
	"github.com/pilothouse/pilothouse/controlplane/auth"
)

// child is a control plane running in a child process.
type child struct {
	cmd *exec.Cmd
	url string
}

// startChild starts the test binary as a control plane over dir and
// waits until it listens (its store opened).
func startChild(t *testing.T, dir string, env ...string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), envChildDir+"="+dir), env...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start control plane: %v", err)
	}
	c := &child{cmd: cmd}
	t.Cleanup(func() { c.kill() })
	lines := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		lines <- strings.TrimSpace(line)
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case addr := <-lines:
		if addr == "" {
			t.Fatalf("control plane exited before listening")
		}
		c.url = "http://" + addr
	case <-time.After(20 * time.Second):
		t.Fatalf("control plane did not listen within 20s")
	}
	return c
}

// kill sends SIGKILL and reaps the process.
func (c *child) kill() {
	if c.cmd.ProcessState != nil {
		return
	}
	_ = c.cmd.Process.Kill()
	_ = c.cmd.Wait()
}

// acked records which writes the control plane acknowledged with 200.
type acked struct {
	mu       sync.Mutex
	traces   []int // trace numbers whose spans were acknowledged
	logs     []int // trace numbers whose logs were acknowledged
	versions []int64
}

// TestControlPlaneKilled SIGKILLs a control plane while agents' OTLP
// batches and operators' policy writes stream in, restarts it on the same
// data directory and checks that it opens cleanly and that every span,
// log record and policy version it acknowledged is there.
func TestControlPlaneKilled(t *testing.T) {
	dir := t.TempDir()
	users, err := auth.Open(dir, fastAuth)
	if err != nil {
		t.Fatalf("auth.Open: %v", err)
	}
	operator := apiToken(t, users, auth.RoleOperator)
	viewer := apiToken(t, users, auth.RoleViewer)
	if err := users.Close(); err != nil {
		t.Fatal(err)
	}

	const (
		spansPerTrace = 5
		linesPerTrace = 3
		senders       = 3
	)
	cp := startChild(t, dir)
	var got acked
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 5 * time.Second}
	now := time.Now()
	for w := range senders {
		wg.Go(func() {
			for n := w; ctx.Err() == nil; n += senders {
				reqID := fmt.Sprintf("kill-%d", n)
				tr := otlpTrace(t, "checkout", traceIDBytes(9, uint64(n)), uint64(n), spansPerTrace, reqID, now)
				if post(ctx, client, cp.url+wire.PathTraces, childAgentKey, protobufType, tr) != http.StatusOK {
					return
				}
				got.mu.Lock()
				got.traces = append(got.traces, n)
				got.mu.Unlock()
				if post(ctx, client, cp.url+wire.PathLogs, childAgentKey, protobufType, otlpLogs(t, "checkout", linesPerTrace, reqID, now)) != http.StatusOK {
					return
				}
				got.mu.Lock()
				got.logs = append(got.logs, n)
				got.mu.Unlock()
			}
		})
	}
	wg.Go(func() {
		var version int64
		for i := 0; ctx.Err() == nil; i++ {
			body := fmt.Sprintf(`{"service":"checkout","version":%d,"degradations":[{"id":"rule-%d","match":{"route":"/cart"},"enabled":false,"fallback":{"status":200,"body":"{}"}}]}`, version, i)
			req, _ := http.NewRequestWithContext(ctx, http.MethodPut, cp.url+"/api/v1/policies/checkout", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+operator)
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			if err != nil {
				return
			}
			var stored struct {
				Version int64 `json:"version"`
			}
			derr := json.NewDecoder(resp.Body).Decode(&stored)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || derr != nil {
				return
			}
			version = stored.Version
			got.mu.Lock()
			got.versions = append(got.versions, version)
			got.mu.Unlock()
		}
	})

	time.Sleep(1500 * time.Millisecond)
	cp.kill() // SIGKILL mid-stream: requests are in flight
	cancel()
	wg.Wait()
	t.Logf("acknowledged before the kill: %d traces, %d log batches, %d policy versions", len(got.traces), len(got.logs), len(got.versions))
	if len(got.traces) < 10 || len(got.versions) < 3 {
		t.Fatalf("too little written before the kill to test anything: %d traces, %d versions", len(got.traces), len(got.versions))
	}

	cp = startChild(t, dir)
	var health struct {
		OK bool `json:"ok"`
	}
	if code := getJSON(t, "", cp.url+"/healthz", &health); code != http.StatusOK || !health.OK {
		t.Fatalf("healthz after restart: got %d %+v, want 200 ok", code, health)
	}
	lost := 0
	for _, n := range got.traces {
		var tr struct {
			Spans []json.RawMessage `json:"spans"`
		}
		id := hexID(traceIDBytes(9, uint64(n)))
		if code := getJSON(t, viewer, cp.url+"/api/v1/traces/"+id, &tr); code != http.StatusOK || len(tr.Spans) != spansPerTrace {
			lost++
			t.Errorf("acknowledged trace %d (%s): got %d with %d spans, want 200 with %d", n, id, code, len(tr.Spans), spansPerTrace)
		}
	}
	for _, n := range got.logs {
		var lg struct {
			Logs []json.RawMessage `json:"logs"`
		}
		if code := getJSON(t, viewer, fmt.Sprintf("%s/api/v1/logs?request_id=kill-%d", cp.url, n), &lg); code != http.StatusOK || len(lg.Logs) != linesPerTrace {
			lost++
			t.Errorf("acknowledged logs of trace %d: got %d with %d lines, want 200 with %d", n, code, len(lg.Logs), linesPerTrace)
		}
	}
	var hist struct {
		Changes []struct {
			Version int64 `json:"version"`
		} `json:"changes"`
	}
	if code := getJSON(t, viewer, cp.url+"/api/v1/policies/checkout/history?limit=10000", &hist); code != http.StatusOK {
		t.Fatalf("policy history: got %d, want 200", code)
	}
	have := map[int64]bool{}
	for _, c := range hist.Changes {
		have[c.Version] = true
	}
	for _, v := range got.versions {
		if !have[v] {
			lost++
			t.Errorf("acknowledged policy version %d: missing after restart", v)
		}
	}
	if lost > 5 {
		t.Fatalf("%d acknowledged writes lost", lost)
	}

	// The reopened store takes writes again.
	if code := post(context.Background(), client, cp.url+wire.PathTraces, childAgentKey, protobufType,
		otlpTrace(t, "checkout", traceIDBytes(10, 0), 0, 1, "after-kill", now)); code != http.StatusOK {
		t.Errorf("ingest after restart: got %d, want 200", code)
	}
}

// post sends body and returns the status, or 0 when the request failed.
func post(ctx context.Context, client *http.Client, url, token, contentType string, body []byte) int {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(string(body)))
	if err != nil {
		return 0
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", contentType)
	resp, err := client.Do(req)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}
