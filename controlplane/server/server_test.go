package server

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/pilothouse/pilothouse/controlplane/auth"
)

const testAdminPassword = "admin-password-for-tests"

// apiToken creates an API token with role and returns its secret.
func apiToken(t *testing.T, srv *Server, role auth.Role) string {
	t.Helper()
	secret, _, err := srv.Auth().CreateToken(context.Background(), auth.NewToken{Kind: auth.KindAPI, Name: "test-" + string(role), Role: role, CreatedBy: "test"})
	if err != nil {
		t.Fatalf("create %s token: %v", role, err)
	}
	return secret
}

// start runs a control plane on a free loopback port over dir.
func start(t *testing.T, dir, token string) (string, *Server) {
	t.Helper()
	return listenAndServe(t, Config{DataDir: dir, AgentToken: token, AdminPassword: testAdminPassword})
}

// listenAndServe runs New(cfg), with the cheapest bcrypt cost, on a free
// loopback port and returns its URL; stopping it is the caller's.
func listenAndServe(t *testing.T, cfg Config) (string, *Server) {
	t.Helper()
	cfg.Auth.BcryptCost = bcrypt.MinCost
	srv, err := New(cfg)
	if err != nil {
		t.Fatalf("new server: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	return "http://" + ln.Addr().String(), srv
}

func stop(t *testing.T, srv *Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Errorf("shutdown: %v", err)
	}
}

const otlpTraceJSON = `{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"checkout"}}]},
"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"GET /cart",
"kind":2,"startTimeUnixNano":"1764000000000000000","endTimeUnixNano":"1764000000250000000",
"attributes":[{"key":"request_id","value":{"stringValue":"req-restart-1"}},{"key":"http.route","value":{"stringValue":"/cart"}}]}]}]}]}`

const otlpLogJSON = `{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"checkout"}}]},
"scopeLogs":[{"logRecords":[{"timeUnixNano":"1764000000100000000","severityNumber":9,"body":{"stringValue":"cart loaded"},
"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174",
"attributes":[{"key":"request_id","value":{"stringValue":"req-restart-1"}}]}]}]}]}`

// postFixtures ingests the OTLP JSON fixtures (one trace, one log line)
// through url's /v1/traces and /v1/logs and fails unless both answer 200.
func postFixtures(t *testing.T, url string) {
	t.Helper()
	if code := post(t, url+"/v1/traces", "", otlpTraceJSON); code != 200 {
		t.Fatalf("POST /v1/traces: got %d, want 200", code)
	}
	if code := post(t, url+"/v1/logs", "", otlpLogJSON); code != 200 {
		t.Fatalf("POST /v1/logs: got %d, want 200", code)
	}
}

func post(t *testing.T, url, token, body string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// get sends GET url with token as bearer ("" for none).
func get(t *testing.T, url, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestAcknowledgedDataSurvivesRestart: what ingest acknowledged with 200 is
// queryable after the control plane restarts on the same data directory.
func TestAcknowledgedDataSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	url, srv := start(t, dir, "")
	postFixtures(t, url)
	stop(t, srv)

	url, srv = start(t, dir, "")
	defer stop(t, srv)
	viewer := apiToken(t, srv, auth.RoleViewer)
	code, body := get(t, url+"/api/v1/traces?request_id=req-restart-1", viewer)
	var traces struct {
		Traces []struct {
			TraceID string `json:"trace_id"`
		}
	}
	if err := json.Unmarshal([]byte(body), &traces); err != nil || code != 200 || len(traces.Traces) != 1 || traces.Traces[0].TraceID != "5b8efff798038103d269b633813fc60c" {
		t.Fatalf("trace after restart: got %d %s", code, body)
	}
	code, body = get(t, url+"/api/v1/logs?request_id=req-restart-1", viewer)
	if code != 200 || !strings.Contains(body, "cart loaded") {
		t.Fatalf("logs after restart: got %d %s", code, body)
	}
}

func TestAgentTokenRequired(t *testing.T) {
	url, srv := start(t, t.TempDir(), "s3cret")
	defer stop(t, srv)
	tests := []struct {
		name  string
		path  string
		token string
		want  int
	}{
		{name: "traces without token", path: "/v1/traces", want: 401},
		{name: "traces wrong token", path: "/v1/traces", token: "nope", want: 401},
		{name: "traces right token", path: "/v1/traces", token: "s3cret", want: 200},
		{name: "logs without token", path: "/v1/logs", want: 401},
		{name: "heartbeat without token", path: "/api/v1/agents/heartbeat", want: 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := otlpTraceJSON
			if tt.path == "/v1/logs" {
				body = otlpLogJSON
			}
			if got := post(t, url+tt.path, tt.token, body); got != tt.want {
				t.Errorf("got %d, want %d", got, tt.want)
			}
		})
	}
	if code, _ := get(t, url+"/api/v1/agents/policy?service=a&version=0&wait=0s", ""); code != 401 {
		t.Errorf("policy long-poll without token: got %d, want 401", code)
	}
}

func TestMetricsAndHealth(t *testing.T) {
	url, srv := start(t, t.TempDir(), "")
	defer stop(t, srv)
	viewer := apiToken(t, srv, auth.RoleViewer)
	post(t, url+"/v1/traces", "", otlpTraceJSON)
	code, body := get(t, url+"/metrics", viewer)
	if code != 200 {
		t.Fatalf("/metrics: got %d", code)
	}
	for _, want := range []string{"pilothouse_store_spans 1", "pilothouse_store_size_bytes", "pilothouse_ingest_spans_total", "pilothouse_store_queue_depth"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if code, body := get(t, url+"/healthz", ""); code != 200 || !strings.Contains(body, `"ok":true`) {
		t.Errorf("/healthz: got %d %s", code, body)
	}
	if code, body := get(t, url+"/api/v1/traces?limit=abc", viewer); code != 400 || !strings.Contains(body, `"field":"limit"`) {
		t.Errorf("bad parameter: got %d %s", code, body)
	}
	if code, _ := get(t, url+"/api/v1/traces/nothex", viewer); code != 400 {
		t.Errorf("bad trace id: got %d, want 400", code)
	}
	if code, _ := get(t, url+"/api/v1/traces/00000000000000000000000000000001", viewer); code != 404 {
		t.Errorf("unknown trace: got %d, want 404", code)
	}
}

// TestShutdownEndsLongPolls: an agent waiting on a 30 s policy long-poll
// does not hold the control plane's shutdown for its whole wait.
func TestShutdownEndsLongPolls(t *testing.T) {
	url, srv := start(t, t.TempDir(), "")
	polled := make(chan error, 1)
	go func() {
		resp, err := http.Get(url + "/api/v1/agents/policy?service=orders&version=0&wait=30s")
		if err == nil {
			resp.Body.Close()
		}
		polled <- err
	}()
	// The long-poll is waiting once the registry of waiters has it; a
	// short poll after it proves the server is up and the first is parked.
	if code, _ := get(t, url+"/api/v1/agents/policy?service=orders&version=0&wait=0s", ""); code != http.StatusNotModified {
		t.Fatalf("short poll: got %d, want 304", code)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Shutdown(ctx) }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("shutdown: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("shutdown waited out the long-poll")
	}
	<-polled
}
