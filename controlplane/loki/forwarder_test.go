package loki

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pilothouse/pilothouse/controlplane/forward"
	"github.com/pilothouse/pilothouse/controlplane/store"
)

var t0 = time.Date(2026, 11, 24, 16, 0, 0, 123456789, time.UTC)

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
	f, _ := newForwarder(t, srv.URL, Config{TenantID: "team-a"})

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
	if got := headers[0].Get("Content-Encoding"); got != "snappy" {
		t.Errorf("Content-Encoding: got %q, want snappy", got)
	}
	meta := func(req string) map[string]string {
		return map[string]string{
			"request_id": req, "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
			"span_id": "00f067aa0ba902b7", "instance": "orders-1",
		}
	}
	want := []gotStream{
		{Labels: `{level="info", service="orders"}`, Entries: []gotEntry{
			{Time: t0, Line: "order created", Meta: meta("req-1")},
			{Time: t0.Add(2 * time.Millisecond), Line: "order listed", Meta: meta("req-2")},
		}},
		{Labels: `{level="error", service="orders"}`, Entries: []gotEntry{
			{Time: t0.Add(time.Millisecond), Line: "db timeout", Meta: meta("req-1")},
		}},
		{Labels: `{level="info", service="unknown"}`, Entries: []gotEntry{{Time: t0, Line: "no service"}}},
	}
	if !reflect.DeepEqual(pushes[0], want) {
		t.Errorf("streams:\ngot  %+v\nwant %+v", pushes[0], want)
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
	f, reg := newForwarder(t, srv.URL, Config{Delivery: forward.Delivery{QueueBatches: 2, Retries: -1}})
	tee := Tee{Primary: &memLogs{}, Forwarder: f}

	if err := tee.WriteLogs(context.Background(), []store.LogRecord{record("a", "INFO", "first", "r", t0)}); err != nil {
		t.Fatalf("WriteLogs: %v", err)
	}
	<-hung // the forwarder is now stuck in a push
	accepted := 0
	for i := range 10 {
		if err := tee.WriteLogs(context.Background(), []store.LogRecord{record("a", "INFO", "more", "r", t0.Add(time.Duration(i)))}); err != nil {
			t.Fatalf("WriteLogs %d: %v", i, err)
		}
	}
	accepted = 10 - int(testutil.ToFloat64(f.metrics.Dropped.WithLabelValues(DropQueueFull)))
	if accepted != 2 {
		t.Errorf("queued while Loki hangs: got %d, want 2 (the queue size)", accepted)
	}
	if got := testutil.ToFloat64(f.metrics.Dropped.WithLabelValues(DropQueueFull)); got != 8 {
		t.Errorf("dropped: got %v, want 8", got)
	}
	if n, err := testutil.GatherAndCount(reg, "pilothouse_loki_dropped_records_total"); err != nil || n != 3 {
		t.Errorf("dropped series: got %d (%v), want 3", n, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := f.Close(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Close with a cancelled context: got %v, want context.Canceled", err)
	}
	if f.Enqueue([]store.LogRecord{record("a", "INFO", "late", "r", t0)}) {
		t.Errorf("Enqueue after Close: got true, want false")
	}
}

func TestForwarderRetries(t *testing.T) {
	tests := []struct {
		name          string
		statuses      []int
		wantPushes    int
		wantForwarded float64
		wantDropped   float64
	}{
		{name: "ok", statuses: []int{204}, wantPushes: 1, wantForwarded: 2},
		{name: "503 then ok", statuses: []int{503, 204}, wantPushes: 2, wantForwarded: 2},
		{name: "429 then ok", statuses: []int{429, 429, 204}, wantPushes: 3, wantForwarded: 2},
		{name: "400 is not retried", statuses: []int{400, 204}, wantPushes: 1, wantDropped: 2},
		{name: "gives up after retries", statuses: []int{500, 500, 500, 204}, wantPushes: 3, wantDropped: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := newReceiver(t)
			rc.status = func(n int) int { return tt.statuses[min(n, len(tt.statuses)-1)] }
			srv := httptest.NewServer(rc)
			defer srv.Close()
			f, _ := newForwarder(t, srv.URL, Config{Delivery: forward.Delivery{Retries: 2, RetryBackoff: time.Millisecond}})
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
		})
	}
}

func TestForwarderSplitsLargeBatches(t *testing.T) {
	rc := newReceiver(t)
	srv := httptest.NewServer(rc)
	defer srv.Close()
	f, _ := newForwarder(t, srv.URL, Config{BatchRecords: 3})
	var logs []store.LogRecord
	for i := range 7 {
		logs = append(logs, record("a", "INFO", "x", "r", t0.Add(time.Duration(i))))
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

func TestNewForwarderRejectsBadURL(t *testing.T) {
	tests := []struct {
		name string
		url  string
	}{
		{name: "empty", url: ""},
		{name: "no scheme", url: "loki:3100"},
		{name: "ftp", url: "ftp://loki"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if f, err := NewForwarder(Config{URL: tt.url}); err == nil {
				f.Close(context.Background())
				t.Errorf("NewForwarder(%q): got nil error, want one", tt.url)
			}
		})
	}
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

func BenchmarkEncodePush(b *testing.B) {
	b.ReportAllocs()
	logs := make([]store.LogRecord, 100)
	for i := range logs {
		logs[i] = record("orders", []string{"INFO", "WARN"}[i%2], "order created with a line of typical length", "req-1", t0.Add(time.Duration(i)))
	}
	var buf []byte
	for b.Loop() {
		buf = encodePush(buf[:0], streamsOf(logs))
	}
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
