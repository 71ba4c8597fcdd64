package agent

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus/testutil"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"

	"github.com/pilothouse/pilothouse/agent/internal/batch"
	"github.com/pilothouse/pilothouse/agent/wire"
)

func shutdown(t *testing.T, a *Agent) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: got %v, want nil", err)
	}
}

func kvMap(kvs []*commonpb.KeyValue) map[string]*commonpb.AnyValue {
	m := make(map[string]*commonpb.AnyValue, len(kvs))
	for _, kv := range kvs {
		m[kv.GetKey()] = kv.GetValue()
	}
	return m
}

func TestLogsExportedAsOTLP(t *testing.T) {
	cp := newFakeControlPlane(t)
	a, rec := newTestAgent(t, WithControlPlane(cp.URL), WithToken("s3cret"), WithVersion("v9"), WithHeartbeatInterval(time.Minute))
	w := serve(t, newEngine(a), http.MethodGet, "/users/7", http.Header{wire.HeaderRequestID: {"rid-logs"}})
	if w.Code != http.StatusOK {
		t.Fatalf("status: got %d, want 200", w.Code)
	}
	a.Logger().WithGroup("db").Warn("pool low", slog.Int("free", 1))
	shutdown(t, a)

	span := rec.Ended()[0]
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if cp.logType != "application/x-protobuf" {
		t.Errorf("content type: got %q, want application/x-protobuf", cp.logType)
	}
	var records []*logspb.LogRecord
	for _, req := range cp.logs {
		for _, rl := range req.GetResourceLogs() {
			res := kvMap(rl.GetResource().GetAttributes())
			if res["service.name"].GetStringValue() != "svc" || res[wire.AttrInstanceID].GetStringValue() != "test-1" ||
				res["service.version"].GetStringValue() != "v9" {
				t.Errorf("resource: got %v, want service svc, instance test-1, version v9", res)
			}
			for _, sl := range rl.GetScopeLogs() {
				records = append(records, sl.GetLogRecords()...)
			}
		}
	}
	byBody := map[string]*logspb.LogRecord{}
	for _, r := range records {
		byBody[r.GetBody().GetStringValue()] = r
	}
	tests := []struct {
		name        string
		body        string
		wantSev     logspb.SeverityNumber
		wantAttrs   map[string]string
		wantTraceID bool
	}{
		{name: "handler line", body: "loading user", wantSev: logspb.SeverityNumber_SEVERITY_NUMBER_INFO,
			wantAttrs: map[string]string{wire.AttrRequestID: "rid-logs", "user": "7"}, wantTraceID: true},
		{name: "access line", body: "request", wantSev: logspb.SeverityNumber_SEVERITY_NUMBER_INFO,
			wantAttrs: map[string]string{wire.AttrRequestID: "rid-logs", "route": "/users/:id", "method": "GET"}, wantTraceID: true},
		{name: "agent logger with group", body: "pool low", wantSev: logspb.SeverityNumber_SEVERITY_NUMBER_WARN,
			wantAttrs: map[string]string{"db.free": "1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := byBody[tt.body]
			if r == nil {
				t.Fatalf("record %q: got none among %d records", tt.body, len(records))
			}
			if r.GetSeverityNumber() != tt.wantSev {
				t.Errorf("severity: got %v, want %v", r.GetSeverityNumber(), tt.wantSev)
			}
			at := kvMap(r.GetAttributes())
			for k, v := range tt.wantAttrs {
				got := at[k]
				s := got.GetStringValue()
				if iv, ok := got.GetValue().(*commonpb.AnyValue_IntValue); ok {
					s = strconv.FormatInt(iv.IntValue, 10)
				}
				if s != v {
					t.Errorf("attribute %s: got %q, want %q", k, s, v)
				}
			}
			if tt.wantTraceID {
				if got := hex.EncodeToString(r.GetTraceId()); got != span.SpanContext().TraceID().String() {
					t.Errorf("trace_id: got %s, want %s", got, span.SpanContext().TraceID())
				}
				if got := hex.EncodeToString(r.GetSpanId()); got != span.SpanContext().SpanID().String() {
					t.Errorf("span_id: got %s, want %s", got, span.SpanContext().SpanID())
				}
			} else if len(r.GetTraceId()) != 0 {
				t.Errorf("trace_id: got %x, want none", r.GetTraceId())
			}
		})
	}
	for _, auth := range cp.auth {
		if auth != "Bearer s3cret" {
			t.Errorf("authorization: got %q, want Bearer s3cret", auth)
		}
	}
}

func TestSpansExportedToControlPlane(t *testing.T) {
	cp := newFakeControlPlane(t)
	a, _ := newTestAgent(t, WithControlPlane(cp.URL), WithHeartbeatInterval(time.Minute))
	r := newEngine(a)
	for range 3 {
		serve(t, r, http.MethodGet, "/users/1", nil)
	}
	shutdown(t, a)
	cp.mu.Lock()
	defer cp.mu.Unlock()
	n := 0
	for _, req := range cp.traces {
		for _, rs := range req.GetResourceSpans() {
			for _, ss := range rs.GetScopeSpans() {
				for _, s := range ss.GetSpans() {
					if s.GetName() == "GET /users/:id" {
						n++
					}
				}
			}
		}
	}
	if n != 3 {
		t.Errorf("exported spans: got %d, want 3", n)
	}
	if got := a.spanStats().Exported; got != 3 {
		t.Errorf("exported counter: got %d, want 3", got)
	}
}

func TestHeartbeat(t *testing.T) {
	cp := newFakeControlPlane(t)
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	a, _ := newTestAgent(t, WithControlPlane(cp.URL), WithAddress("127.0.0.1:8081"), WithVersion("v2"),
		WithHeartbeatInterval(time.Minute), WithToken("tok"), withClock(func() time.Time { return now }))
	waitFor(t, "first heartbeat", func() bool { return a.beats.sent.Load() == 1 })
	a.AddCheck("db", func(context.Context) error { return nil })
	a.AddCheck("cache", func(context.Context) error { return errors.New("cache down") })
	r := newEngine(a)
	for range 4 {
		serve(t, r, http.MethodGet, "/users/1", nil)
	}
	serve(t, r, http.MethodGet, "/fail", nil)
	shutdown(t, a) // the final beat carries whatever the first one did not

	cp.mu.Lock()
	defer cp.mu.Unlock()
	if len(cp.heartbeats) != 2 {
		t.Fatalf("heartbeats: got %d, want the first and the final one", len(cp.heartbeats))
	}
	totals := map[string][2]int64{}
	for _, hb := range cp.heartbeats {
		if hb.Service != "svc" || hb.InstanceID != "test-1" || hb.Address != "127.0.0.1:8081" || hb.Version != "v2" {
			t.Errorf("identity: got %s/%s/%s/%s, want svc/test-1/127.0.0.1:8081/v2", hb.Service, hb.InstanceID, hb.Address, hb.Version)
		}
		if !hb.StartedAt.Equal(now) || !hb.SentAt.Equal(now) || hb.Interval.D() != time.Minute {
			t.Errorf("times: got started %v sent %v interval %v", hb.StartedAt, hb.SentAt, hb.Interval.D())
		}
		for _, rt := range hb.Routes {
			v := totals[rt.Method+" "+rt.Route]
			totals[rt.Method+" "+rt.Route] = [2]int64{v[0] + rt.Requests, v[1] + rt.Errors}
			if rt.Requests > 0 && (rt.P50.D() <= 0 || rt.Max.D() < rt.P99.D()) {
				t.Errorf("route %s latencies: got p50 %v p99 %v max %v", rt.Route, rt.P50.D(), rt.P99.D(), rt.Max.D())
			}
		}
	}
	if got := totals["GET /users/:id"]; got != [2]int64{4, 0} {
		t.Errorf("GET /users/:id requests/errors: got %v, want [4 0]", got)
	}
	if got := totals["GET /fail"]; got != [2]int64{1, 1} {
		t.Errorf("GET /fail requests/errors: got %v, want [1 1]", got)
	}
	last := cp.heartbeats[len(cp.heartbeats)-1]
	checks := map[string]wire.CheckResult{}
	for _, c := range last.Checks {
		checks[c.Name] = c
	}
	if !checks["db"].OK || checks["cache"].OK || checks["cache"].Message != "cache down" {
		t.Errorf("checks: got %+v, want db ok and cache failing with its message", last.Checks)
	}
	if cp.auth[0] != "Bearer tok" {
		t.Errorf("authorization: got %q, want Bearer tok", cp.auth[0])
	}
}

func TestCheckTimeoutAndPanic(t *testing.T) {
	a, _ := newTestAgent(t, WithHeartbeatInterval(100*time.Millisecond))
	release := make(chan struct{})
	defer close(release)
	a.AddCheck("stuck", func(context.Context) error { <-release; return nil })
	a.AddCheck("panics", func(context.Context) error { panic("oops") })
	a.AddCheck("respects ctx", func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })
	got := map[string]wire.CheckResult{}
	for _, c := range a.runChecks(context.Background()) {
		got[c.Name] = c
	}
	for _, name := range []string{"stuck", "panics", "respects ctx"} {
		if got[name].OK || got[name].Message == "" {
			t.Errorf("check %s: got %+v, want failing with a message", name, got[name])
		}
	}
	again := a.runChecks(context.Background())
	if again[0].Message != "still running since an earlier beat" {
		t.Errorf("stuck check on next beat: got %q, want still running", again[0].Message)
	}
}

type blockingExporter struct{}

func (blockingExporter) ExportSpans(ctx context.Context, _ []sdktrace.ReadOnlySpan) error {
	<-ctx.Done()
	return ctx.Err()
}
func (blockingExporter) sendSpans(ctx context.Context, _ []queuedSpan) error {
	<-ctx.Done()
	return ctx.Err()
}
func (blockingExporter) Shutdown(context.Context) error { return nil }

func TestDropsCountedWhenQueueFull(t *testing.T) {
	a, _ := newTestAgent(t)
	// Queues that are never drained: the first few items fit, the rest drop.
	a.spans = newSpanQueue(blockingExporter{}, batch.Settings{Size: 2})
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(a.spans))
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		defer cancel()
		_ = tp.Shutdown(ctx) // the exporter never returns: give up at once
	}()
	for range 5 {
		_, s := tp.Tracer("t").Start(context.Background(), "x")
		s.End()
	}
	cfg := a.cfg
	cfg.logs.endpoint, cfg.logQueue = "http://127.0.0.1:1/v1/logs", 3
	a.sink = newLogSink(a, cfg)
	logger := slog.New(&logHandler{sink: a.sink})
	for range 10 {
		logger.Info("x")
	}
	tests := []struct {
		name   string
		signal string
		want   float64
	}{
		{name: "spans", signal: "spans", want: 3},
		{name: "logs", signal: "logs", want: 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := strings.NewReader(`
# HELP pilothouse_agent_telemetry_dropped_total Telemetry items dropped because a queue was full or an export failed.
# TYPE pilothouse_agent_telemetry_dropped_total counter
pilothouse_agent_telemetry_dropped_total{signal="heartbeats"} 0
pilothouse_agent_telemetry_dropped_total{signal="local_logs"} 0
pilothouse_agent_telemetry_dropped_total{signal="logs"} 7
pilothouse_agent_telemetry_dropped_total{signal="spans"} 3
`)
			if err := testutil.GatherAndCompare(a.metrics.registry, want, "pilothouse_agent_telemetry_dropped_total"); err != nil {
				t.Errorf("dropped counters: %v", err)
			}
		})
	}
	hb := a.heartbeat(context.Background())
	if hb.Telemetry.SpansDropped != 3 || hb.Telemetry.LogsDropped != 7 {
		t.Errorf("heartbeat telemetry: got %+v, want 3 spans and 7 logs dropped", hb.Telemetry)
	}
}

// TestBlackholeControlPlane checks that a control plane that never answers
// changes nothing about the service's responses.
func TestBlackholeControlPlane(t *testing.T) {
	release := make(chan struct{})
	hole := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer hole.Close()
	defer close(release)

	bare := gin.New()
	bare.GET("/users/:id", func(c *gin.Context) { c.String(http.StatusOK, "user "+c.Param("id")) })
	a, _ := newTestAgent(t, WithControlPlane(hole.URL), WithQueueSize(8, 8), WithHeartbeatInterval(100*time.Millisecond),
		WithHTTPClient(&http.Client{Timeout: 200 * time.Millisecond}))
	r := newEngine(a)
	for i := range 200 {
		want := serve(t, bare, http.MethodGet, "/users/1", nil)
		got := serve(t, r, http.MethodGet, "/users/1", nil)
		if got.Code != want.Code || !bytes.Equal(got.Body.Bytes(), want.Body.Bytes()) {
			t.Fatalf("request %d: got %d %q, want %d %q", i, got.Code, got.Body, want.Code, want.Body)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	_ = a.Shutdown(ctx) // may report the lost flush; must not hang
	if ctx.Err() != nil {
		t.Errorf("Shutdown: took %v, want it bounded by its context", time.Since(start))
	}
	if st := a.logStats(); st.Exported != 0 || st.Dropped == 0 {
		t.Errorf("log stats: got %+v, want nothing exported and drops counted", st)
	}
}

// stuckWriter blocks every Write until release is closed, like a pipe
// whose reader stopped reading.
type stuckWriter struct {
	entered chan struct{}
	once    sync.Once
	release chan struct{}
}

func (w *stuckWriter) Write(p []byte) (int, error) {
	w.once.Do(func() { close(w.entered) })
	<-w.release
	return len(p), nil
}

// TestStuckLocalLogNeverHoldsUpRequests checks that a local log writer that
// blocks (a stderr pipe nobody reads) costs requests nothing: they are
// answered, and the lines that find no room are dropped and counted.
func TestStuckLocalLogNeverHoldsUpRequests(t *testing.T) {
	w := &stuckWriter{entered: make(chan struct{}), release: make(chan struct{})}
	a, _ := newTestAgent(t, WithLocalLog(w))
	t.Cleanup(func() { close(w.release) }) // runs before the agent's Shutdown
	r := newEngine(a)
	serve(t, r, http.MethodGet, "/users/1", nil)
	select {
	case <-w.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the local log writer was never called")
	}
	// The writer is now stuck. Two lines per request (handler and access
	// line) of about 300 bytes: 5,000 requests overflow the 256 KiB buffer.
	for i := range 5000 {
		if w := serve(t, r, http.MethodGet, "/users/2", nil); w.Code != http.StatusOK {
			t.Fatalf("request %d: got %d, want 200", i, w.Code)
		}
	}
	dropped := gatheredCounter(t, a, "pilothouse_agent_telemetry_dropped_total", signalLocalLogs)
	if dropped == 0 {
		t.Fatal("local_logs dropped: got 0, want the lines that found no room counted")
	}
	if hb := a.heartbeat(context.Background()); float64(hb.Telemetry.LocalLogsDropped) != dropped {
		t.Errorf("heartbeat: got %d local log lines dropped, want %v as on /metrics", hb.Telemetry.LocalLogsDropped, dropped)
	}
}

// gatheredCounter returns the value of the agent's counter name{signal=signal}.
func gatheredCounter(t *testing.T, a *Agent, name, signal string) float64 {
	t.Helper()
	mfs, err := a.metrics.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "signal" && l.GetValue() == signal {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no %s{signal=%q}", name, signal)
	return 0
}

func TestLocalJSONLog(t *testing.T) {
	var buf bytes.Buffer
	a, _ := newTestAgent(t, WithLocalLog(&buf), WithAccessLog(false))
	r := newEngine(a)
	r.GET("/log", func(c *gin.Context) {
		Logger(c).With("k", "v").WithGroup("g").Info("hello \"world\"\n", "n", 3, slog.Group("h", "x", true), "err", errors.New("bad"))
	})
	w := serve(t, r, http.MethodGet, "/log", nil)
	flushLocalLog(t, a)
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("local line %q: got %v, want valid JSON", buf.String(), err)
	}
	want := map[string]any{
		"level": "INFO", "msg": "hello \"world\"\n", "service": "svc", "instance": "test-1",
		"request_id": w.Header().Get(wire.HeaderRequestID), "k": "v", "g.n": float64(3), "g.h.x": true, "g.err": "bad",
	}
	for k, v := range want {
		if line[k] != v {
			t.Errorf("field %s: got %v, want %v", k, line[k], v)
		}
	}
	for _, k := range []string{"time", "trace_id", "span_id"} {
		if line[k] == nil {
			t.Errorf("field %s: got none, want one", k)
		}
	}
}

func TestLoggerWithoutMiddleware(t *testing.T) {
	tests := []struct {
		name string
		get  func() *slog.Logger
	}{
		{name: "nil gin context", get: func() *slog.Logger { return Logger(nil) }},
		{name: "gin context without request", get: func() *slog.Logger { return Logger(&gin.Context{}) }},
		{name: "plain context", get: func() *slog.Logger { return LoggerFromContext(context.Background()) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.get() == nil {
				t.Errorf("logger: got nil, want a fallback")
			}
		})
	}
}

// waitFor polls cond until it holds; for events on background goroutines
// that the test cannot drive directly.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: did not happen within 5s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
