package policyapi

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pilothouse/pilothouse/agent/wire"
	"github.com/pilothouse/pilothouse/controlplane/policy"
)

func newServer(t *testing.T) *httptest.Server {
	t.Helper()
	st, err := policy.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	mux := http.NewServeMux()
	New(Config{Store: st, Actor: func(*http.Request) string { return "tester" }}).Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func do(t *testing.T, method, url, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("%s %s: body %q is not JSON", method, url, raw)
		}
	}
	return resp.StatusCode, out
}

const degradeOn = `{"service":"orders","version":%d,"degradations":[{"id":"reports-off","match":{"route":"/reports/daily"},"enabled":true,"fallback":{"status":200,"body":"{}"}}]}`

func policyDoc(version int) string {
	return strings.Replace(degradeOn, "%d", string(rune('0'+version)), 1)
}

func TestPutConflictAndErrors(t *testing.T) {
	srv := newServer(t)
	base := srv.URL + "/api/v1/policies/orders"
	tests := []struct {
		name      string
		method    string
		url       string
		body      string
		wantCode  int
		wantField string
	}{
		{name: "first version", method: "PUT", url: base + "?reason=incident", body: policyDoc(0), wantCode: 200},
		{name: "stale base", method: "PUT", url: base, body: policyDoc(0), wantCode: 409, wantField: "version"},
		{name: "second version", method: "PUT", url: base, body: policyDoc(1), wantCode: 200},
		{name: "unknown field", method: "PUT", url: base, body: `{"service":"orders","version":2,"ratelimits":[]}`, wantCode: 400, wantField: "ratelimits"},
		{name: "invalid rule", method: "PUT", url: base, body: `{"service":"orders","version":2,"rate_limits":[{"id":"x","rate":-1}]}`, wantCode: 400, wantField: "rate_limits[0].rate"},
		{name: "service mismatch", method: "PUT", url: base, body: `{"service":"payments","version":2}`, wantCode: 400, wantField: "service"},
		{name: "too large", method: "PUT", url: base, body: `{"service":"orders","x":"` + strings.Repeat("a", wire.MaxPolicyBytes) + `"}`, wantCode: 413},
		{name: "rollback to 1", method: "POST", url: base + "/rollback", body: `{"to":1,"base_version":2}`, wantCode: 200},
		{name: "rollback stale", method: "POST", url: base + "/rollback", body: `{"to":1,"base_version":2}`, wantCode: 409, wantField: "version"},
		{name: "rollback missing", method: "POST", url: base + "/rollback", body: `{"to":99,"base_version":3}`, wantCode: 404, wantField: "to"},
		{name: "rollback bad body", method: "POST", url: base + "/rollback", body: `{"to":"one"}`, wantCode: 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := do(t, tt.method, tt.url, tt.body)
			if code != tt.wantCode {
				t.Fatalf("got %d %v, want %d", code, body, tt.wantCode)
			}
			if tt.wantField != "" && body["field"] != tt.wantField {
				t.Errorf("got field %v, want %q (%v)", body["field"], tt.wantField, body)
			}
		})
	}
	code, body := do(t, "GET", base+"/history", "")
	changes, _ := body["changes"].([]any)
	if code != 200 || len(changes) != 3 {
		t.Fatalf("history: got %d with %d changes, want 200 with 3", code, len(changes))
	}
	first := changes[2].(map[string]any)
	if first["actor"] != "tester" || first["reason"] != "incident" {
		t.Errorf("audit of version 1: got %v", first)
	}
}

func TestLongPoll(t *testing.T) {
	srv := newServer(t)
	poll := srv.URL + wire.PathPolicy + "?service=orders&instance=a&version=0&wait=20s"

	// Nothing newer: a short wait ends with 304.
	code, _ := do(t, "GET", srv.URL+wire.PathPolicy+"?service=orders&version=0&wait=10ms", "")
	if code != http.StatusNotModified {
		t.Fatalf("idle poll: got %d, want 304", code)
	}

	type result struct {
		code int
		body map[string]any
	}
	done := make(chan result, 1)
	go func() {
		c, b := do(t, "GET", poll, "")
		done <- result{c, b}
	}()
	// The change must wake the waiting poll long before its 20 s wait.
	time.Sleep(50 * time.Millisecond)
	if code, body := do(t, "PUT", srv.URL+"/api/v1/policies/orders", policyDoc(0)); code != 200 {
		t.Fatalf("put: got %d %v", code, body)
	}
	select {
	case r := <-done:
		p := r.body["policy"].(map[string]any)
		if r.code != 200 || p["version"].(float64) != 1 {
			t.Errorf("woken poll: got %d %v, want 200 with version 1", r.code, r.body)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("long-poll was not woken by the change")
	}

	// An agent on an old version is answered at once.
	code, body := do(t, "GET", poll, "")
	if code != 200 || body["policy"].(map[string]any)["version"].(float64) != 1 {
		t.Errorf("stale agent: got %d %v", code, body)
	}
	for _, bad := range []string{"?version=1", "?service=orders&version=x", "?service=orders&wait=1h"} {
		if code, _ := do(t, "GET", srv.URL+wire.PathPolicy+bad, ""); code != 400 {
			t.Errorf("%s: got %d, want 400", bad, code)
		}
	}
}

func TestUnavailableStoreAnswers503(t *testing.T) {
	rec := httptest.NewRecorder()
	writePolicyError(rec, fmt.Errorf("consul: request failed: %w", policy.ErrUnavailable))
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
		t.Errorf("got %d Retry-After %q, want 503 with Retry-After", rec.Code, rec.Header().Get("Retry-After"))
	}
}
