package loki

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pilothouse/pilothouse/controlplane/await"
	"github.com/pilothouse/pilothouse/controlplane/forward"
	"github.com/pilothouse/pilothouse/controlplane/store"
)

var t0 = time.Date(2026, 11, 24, 16, 0, 0, 123456789, time.UTC)

// manual is a BatchWait no test outlives: the client pushes only when a
// batch is full (BatchBytes) or it is stopped, so pushes are counted
// exactly.
const manual = time.Hour

func record(svc, level, body, reqID string, at time.Time) store.LogRecord {
	return store.LogRecord{
		Time: at, Service: svc, Instance: svc + "-1", Level: level, Body: body, RequestID: reqID,
		TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", SpanID: "00f067aa0ba902b7",
	}
}

func newForwarder(t *testing.T, url string, cfg Config) (*Forwarder, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	cfg.URL = url
	cfg.Registerer = reg
	f, err := NewForwarder(cfg)
	if err != nil {
		t.Fatalf("NewForwarder: %v", err)
	}
	t.Cleanup(func() { f.Close(context.Background()) })
	return f, reg
}

func TestForwarderPushesStreamsWithMetadata(t *testing.T) {
	rc := newReceiver(t)
	srv := httptest.NewServer(rc)
	defer srv.Close()
	f, _ := newForwarder(t, srv.URL, Config{TenantID: "team-a", BatchWait: manual})

	logs := []store.LogRecord{
		record("orders", "INFO", "order created", "req-1", t0),
		record("orders", "ERROR", "db timeout", "req-1", t0.Add(time.Millisecond)),
		record("orders", "INFO", "order listed", "req-2", t0.Add(2*time.Millisecond)),
		{Time: t0, Body: "no service"},
	}
	if !f.Enqueue(logs) {
		t.Fatalf("Enqueue: got false, want true")
	}
	if err := f.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	pushes, headers := rc.all()
	if len(pushes) != 1 {
		t.Fatalf("pushes: got %d, want 1", len(pushes))
	}
	if got := headers[0].Get("X-Scope-OrgID"); got != "team-a" {
		t.Errorf("X-Scope-OrgID: got %q, want team-a", got)
	}
	if got := headers[0].Get("Content-Type"); got != "application/x-protobuf" {
		t.Errorf("Content-Type: got %q, want application/x-protobuf", got)
	}
	meta := func(req string) map[string]string {
		return map[string]string{
			"request_id": req, "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
			"span_id": "00f067aa0ba902b7", "instance": "orders-1",
		}
	}
	want := []gotStream{ // sorted by labels
		{Labels: `{level="error", service="orders"}`, Entries: []gotEntry{
			{Time: t0.Add(time.Millisecond), Line: "db timeout", Meta: meta("req-1")},
		}},
		{Labels: `{level="info", service="orders"}`, Entries: []gotEntry{
			{Time: t0, Line: "order created", Meta: meta("req-1")},
			{Time: t0.Add(2 * time.Millisecond), Line: "order listed", Meta: meta("req-2")},
		}},
		{Labels: `{level="info", service="unknown"}`, Entries: []gotEntry{{Time: t0, Line: "no service"}}},
	}
	if got := sorted(pushes[0]); !reflect.DeepEqual(got, want) {
		t.Errorf("streams:\ngot  %+v\nwant %+v", got, want)
	}
	if got := testutil.ToFloat64(f.metrics.Forwarded); got != 4 {
		t.Errorf("forwarded: got %v, want 4", got)
	}
}

// TestForwarderPushesWithoutClose: with the default BatchWait a line
// reaches Loki on its own, and the metrics catch up, while the
// forwarder runs (the dashboard reads logs back from Loki).
func TestForwarderPushesWithoutClose(t *testing.T) {
	rc := newReceiver(t)
	srv := httptest.NewServer(rc)
	defer srv.Close()
	f, reg := newForwarder(t, srv.URL, Config{})
	f.Enqueue([]store.LogRecord{record("orders", "INFO", "order created", "req-1", t0)})
	took := await.Until(t, 10*time.Second, "push without Close", func() (bool, string) {
		n := rc.count()
		return n == 1, fmt.Sprintf("%d pushes", n)
	})
	t.Logf("pushed after %s (BatchWait %s)", took, DefaultBatchWait)
	await.Until(t, 10*time.Second, "forwarded counted", func() (bool, string) {
		got := testutil.ToFloat64(f.metrics.Forwarded)
		return got == 1, fmt.Sprintf("forwarded %v", got)
	})
	want := `
# HELP pilothouse_loki_pushes_total Push requests to Loki, by result (ok, error).
# TYPE pilothouse_loki_pushes_total counter
pilothouse_loki_pushes_total{result="error"} 0
pilothouse_loki_pushes_total{result="ok"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "pilothouse_loki_pushes_total"); err != nil {
		t.Error(err)
	}
}

func TestForwarderNeverBlocksWhenLokiHangs(t *testing.T) {
	release := make(chan struct{})
	hung := make(chan struct{}, 100)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hung <- struct{}{}
		<-release
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	defer close(release)
	const queue = 2
	f, reg := newForwarder(t, srv.URL, Config{BatchRecords: 1,
		Delivery: forward.Delivery{QueueBatches: queue, Retries: -1, Timeout: time.Minute}})
	tee := Tee{Primary: &memLogs{}, Forwarder: f}

	if err := tee.WriteLogs(context.Background(), []store.LogRecord{record("a", "INFO", "first", "r", t0)}); err != nil {
		t.Fatalf("WriteLogs: %v", err)
	}
	<-hung // the client is now stuck in a push and takes no more lines
	const writes = 10
	for i := range writes {
		if err := tee.WriteLogs(context.Background(), []store.LogRecord{record("a", "INFO", "more", "r", t0.Add(time.Duration(i)))}); err != nil {
			t.Fatalf("WriteLogs %d: %v", i, err)
		}
	}
	// Held while Loki hangs: the queue, and at most one record on its way
	// to the client plus one in the client's blocked Handle.
	dropped := int(testutil.ToFloat64(f.metrics.Dropped.WithLabelValues(DropQueueFull)))
	if accepted := writes - dropped; accepted < queue || accepted > queue+2 {
		t.Errorf("queued while Loki hangs: got %d, want %d to %d (the queue and the hand-off)", accepted, queue, queue+2)
	}
	if n, err := testutil.GatherAndCount(reg, "pilothouse_loki_dropped_records_total"); err != nil || n != 3 {
		t.Errorf("dropped series: got %d (%v), want 3", n, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := f.Close(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Close with a cancelled context: got %v, want context.Canceled", err)
	}
	if got := testutil.ToFloat64(f.metrics.Dropped.WithLabelValues(DropClosed)); got < 1 {
		t.Errorf("dropped as closed: got %v, want the records still queued (at least 1)", got)
	}
	if f.Enqueue([]store.LogRecord{record("a", "INFO", "late", "r", t0)}) {
		t.Errorf("Enqueue after Close: got true, want false")
	}
}

// TestForwarderCloseDeadlineWhileLokiHangs: the client's Stop waits for
// its push; Close does not wait past its context.
func TestForwarderCloseDeadlineWhileLokiHangs(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	defer close(release)
	f, _ := newForwarder(t, srv.URL, Config{BatchWait: manual, Delivery: forward.Delivery{Timeout: time.Minute}})
	f.Enqueue([]store.LogRecord{record("a", "INFO", "x", "r", t0)})

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- f.Close(ctx) }()
	var err error
	await.Until(t, 20*time.Second, "Close returns at its deadline", func() (bool, string) {
		select {
		case err = <-done:
			return true, ""
		default:
			return false, "Close still waiting"
		}
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close: got %v, want context.DeadlineExceeded", err)
	}
}

func TestForwarderRetries(t *testing.T) {
	tests := []struct {
		name          string
		statuses      []int
		wantPushes    int
		wantForwarded float64
		wantDropped   float64
		wantOK        float64
		wantErrors    float64
	}{
		{name: "ok", statuses: []int{204}, wantPushes: 1, wantForwarded: 2, wantOK: 1},
		{name: "503 then ok", statuses: []int{503, 204}, wantPushes: 2, wantForwarded: 2, wantOK: 1, wantErrors: 1},
		{name: "429 then ok", statuses: []int{429, 429, 204}, wantPushes: 3, wantForwarded: 2, wantOK: 1, wantErrors: 2},
		{name: "400 is not retried", statuses: []int{400, 204}, wantPushes: 1, wantDropped: 2, wantErrors: 1},
		{name: "gives up after retries", statuses: []int{500, 500, 500, 204}, wantPushes: 3, wantDropped: 2, wantErrors: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := newReceiver(t)
			rc.status = func(n int) int { return tt.statuses[min(n, len(tt.statuses)-1)] }
			srv := httptest.NewServer(rc)
			defer srv.Close()
			logs := &logRecorder{}
			f, _ := newForwarder(t, srv.URL, Config{BatchWait: manual,
				Delivery: forward.Delivery{Retries: 2, RetryBackoff: time.Millisecond, Logger: slog.New(logs)}})
			f.Enqueue([]store.LogRecord{record("a", "INFO", "x", "r", t0), record("a", "WARN", "y", "r", t0)})
			if err := f.Close(context.Background()); err != nil {
				t.Fatalf("Close: %v", err)
			}
			pushes, _ := rc.all()
			if len(pushes) != tt.wantPushes {
				t.Errorf("pushes: got %d, want %d", len(pushes), tt.wantPushes)
			}
			if got := testutil.ToFloat64(f.metrics.Forwarded); got != tt.wantForwarded {
				t.Errorf("forwarded: got %v, want %v", got, tt.wantForwarded)
			}
			if got := testutil.ToFloat64(f.metrics.Dropped.WithLabelValues(DropPush)); got != tt.wantDropped {
				t.Errorf("dropped: got %v, want %v", got, tt.wantDropped)
			}
			if got := testutil.ToFloat64(f.metrics.Requests.WithLabelValues("ok")); got != tt.wantOK {
				t.Errorf("pushes ok: got %v, want %v", got, tt.wantOK)
			}
			if got := testutil.ToFloat64(f.metrics.Requests.WithLabelValues("error")); got != tt.wantErrors {
				t.Errorf("pushes error: got %v, want %v", got, tt.wantErrors)
			}
			if gaveUp := logs.has(slog.LevelError, "loki: client: final error sending batch"); gaveUp != (tt.wantDropped > 0) {
				t.Errorf("error logged on giving up: got %v, want %v; logs: %s", gaveUp, tt.wantDropped > 0, logs)
			}
		})
	}
}

func TestForwarderSplitsLargeBatches(t *testing.T) {
	rc := newReceiver(t)
	srv := httptest.NewServer(rc)
	defer srv.Close()
	f, _ := newForwarder(t, srv.URL, Config{BatchWait: manual, BatchBytes: 3})
	var logs []store.LogRecord
	for i := range 7 {
		logs = append(logs, record("a", "INFO", "x", "r", t0.Add(time.Duration(i)))) // one byte each
	}
	f.Enqueue(logs)
	if err := f.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	pushes, _ := rc.all()
	var sizes []int
	for _, p := range pushes {
		n := 0
		for _, s := range p {
			n += len(s.Entries)
		}
		sizes = append(sizes, n)
	}
	if want := []int{3, 3, 1}; !reflect.DeepEqual(sizes, want) {
		t.Errorf("records per push: got %v, want %v", sizes, want)
	}
	if got := testutil.ToFloat64(f.metrics.Forwarded); got != 7 {
		t.Errorf("forwarded: got %v, want 7", got)
	}
}

func TestTeeSkipsLokiWhenPrimaryFails(t *testing.T) {
	rc := newReceiver(t)
	srv := httptest.NewServer(rc)
	defer srv.Close()
	f, _ := newForwarder(t, srv.URL, Config{})
	errFull := errors.New("store full")
	tee := Tee{Primary: &memLogs{err: errFull}, Forwarder: f}
	if err := tee.WriteLogs(context.Background(), []store.LogRecord{record("a", "INFO", "x", "r", t0)}); !errors.Is(err, errFull) {
		t.Fatalf("WriteLogs: got %v, want %v", err, errFull)
	}
	f.Close(context.Background())
	if pushes, _ := rc.all(); len(pushes) != 0 {
		t.Errorf("pushes: got %d, want 0", len(pushes))
	}
}

func TestNewForwarderRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{name: "empty URL", cfg: Config{}},
		{name: "no scheme", cfg: Config{URL: "loki:3100"}},
		{name: "ftp", cfg: Config{URL: "ftp://loki"}},
		{name: "own HTTP client", cfg: Config{URL: "http://loki:3100", Delivery: forward.Delivery{Client: &http.Client{}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if f, err := NewForwarder(tt.cfg); err == nil {
				f.Close(context.Background())
				t.Errorf("NewForwarder(%+v): got nil error, want one", tt.cfg)
			}
		})
	}
}

func TestPushURL(t *testing.T) {
	tests := []struct {
		name, base, want string
	}{
		{name: "base", base: "http://loki:3100", want: "http://loki:3100/loki/api/v1/push"},
		{name: "trailing slash", base: "https://loki.example/", want: "https://loki.example/loki/api/v1/push"},
		{name: "behind a prefix", base: "http://gw/logs", want: "http://gw/logs/loki/api/v1/push"},
		{name: "already the push path", base: "http://loki:3100/loki/api/v1/push/", want: "http://loki:3100/loki/api/v1/push"},
		{name: "credentials kept", base: "http://u:p@loki:3100", want: "http://u:p@loki:3100/loki/api/v1/push"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := pushURL(tt.base)
			if err != nil || u.String() != tt.want {
				t.Errorf("pushURL(%q): got %v (%v), want %s", tt.base, u, err, tt.want)
			}
		})
	}
	if _, err := pushURL(""); !errors.Is(err, ErrNoURL) {
		t.Errorf("pushURL(\"\"): got %v, want ErrNoURL", err)
	}
}

func TestClientConfig(t *testing.T) {
	tests := []struct {
		name         string
		delivery     forward.Delivery
		wantAttempts int
		wantMax      time.Duration
	}{
		{name: "defaults", delivery: forward.Delivery{}, wantAttempts: 3, wantMax: 4 * forward.DefaultRetryBackoff},
		{name: "no retries", delivery: forward.Delivery{Retries: -1, RetryBackoff: time.Second}, wantAttempts: 1, wantMax: time.Second},
		{name: "many retries", delivery: forward.Delivery{Retries: 100, RetryBackoff: time.Second}, wantAttempts: 101, wantMax: 5 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{BatchWait: time.Second, BatchBytes: 10, TenantID: "t", Delivery: tt.delivery.WithDefaults()}
			u := mustParse(t, "http://loki:3100/loki/api/v1/push")
			got := clientConfig(cfg, u)
			if got.BackoffConfig.MaxRetries != tt.wantAttempts || got.BackoffConfig.MaxBackoff != tt.wantMax ||
				got.BackoffConfig.MinBackoff != cfg.RetryBackoff {
				t.Errorf("backoff: got %+v, want %d attempts from %s up to %s", got.BackoffConfig, tt.wantAttempts, cfg.RetryBackoff, tt.wantMax)
			}
			if got.URL.String() != u.String() || got.BatchWait != time.Second || got.BatchSize != 10 || got.TenantID != "t" || got.Timeout != cfg.Timeout {
				t.Errorf("config: got %+v, want the forwarder's", got)
			}
		})
	}
}

func mustParse(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// memLogs is a primary LogWriter.
type memLogs struct {
	err  error
	logs []store.LogRecord
}

func (m *memLogs) WriteLogs(_ context.Context, logs []store.LogRecord) error {
	if m.err != nil {
		return m.err
	}
	m.logs = append(m.logs, logs...)
	return nil
}

// logRecorder is a slog.Handler that keeps what it is given.
type logRecorder struct {
	mu      sync.Mutex
	records []slog.Record
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logRecorder) WithGroup(string) slog.Handler            { return l }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.records = append(l.records, r.Clone())
	return nil
}

func (l *logRecorder) has(level slog.Level, msg string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.records {
		if r.Level == level && r.Message == msg {
			return true
		}
	}
	return false
}

func (l *logRecorder) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b bytes.Buffer
	for _, r := range l.records {
		fmt.Fprintf(&b, "%s %q;", r.Level, r.Message)
	}
	return b.String()
}

func BenchmarkTeeEnqueue(b *testing.B) {
	b.ReportAllocs()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	defer srv.Close()
	f, err := NewForwarder(Config{URL: srv.URL, Delivery: forward.Delivery{QueueBatches: 16}})
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close(context.Background())
	tee := Tee{Primary: &discardLogs{}, Forwarder: f}
	logs := []store.LogRecord{record("orders", "INFO", "x", "r", t0)}
	for b.Loop() {
		tee.WriteLogs(context.Background(), logs)
	}
}

type discardLogs struct{}

func (discardLogs) WriteLogs(context.Context, []store.LogRecord) error { return nil }
