package tracebackend

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pilothouse/pilothouse/controlplane/forward"
	"github.com/pilothouse/pilothouse/controlplane/ingest"
	"github.com/pilothouse/pilothouse/controlplane/store"
)

// collector is a fake OTLP/HTTP receiver that decodes exports with
// ingest's decoder.
type collector struct {
	mu      sync.Mutex
	spans   [][]store.Span
	headers []http.Header
	status  func(n int) int
	hang    chan struct{} // when non-nil, every export waits on it
	entered chan struct{}
}

func (c *collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != TracesPath || r.Header.Get("Content-Type") != ingest.ContentTypeProtobuf {
		http.Error(w, "unexpected "+r.URL.Path+" "+r.Header.Get("Content-Type"), http.StatusBadRequest)
		return
	}
	if c.hang != nil {
		c.entered <- struct{}{}
		<-c.hang
	}
	body, _ := io.ReadAll(r.Body)
	spans, _, err := ingest.DecodeTraces(body, ingest.ContentTypeProtobuf)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	c.mu.Lock()
	n := len(c.spans)
	c.spans = append(c.spans, spans)
	c.headers = append(c.headers, r.Header.Clone())
	c.mu.Unlock()
	if c.status != nil {
		w.WriteHeader(c.status(n))
	}
}

func (c *collector) all() ([][]store.Span, []http.Header) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([][]store.Span(nil), c.spans...), append([]http.Header(nil), c.headers...)
}

func testSpan(id string, start time.Time) store.Span {
	return store.Span{
		TraceID: testTrace, SpanID: id, ParentSpanID: "00f067aa0ba902b7", Service: "orders", Instance: "orders-1",
		Name: "GET /orders/:id", Kind: "server", Start: start, Duration: 7 * time.Millisecond, StatusCode: "error",
		StatusMessage: "db down", RequestID: "req-9", Route: "/orders/:id", HTTPStatus: 503,
		Attributes: map[string]any{
			"http.route": "/orders/:id", "http.response.status_code": int64(503), "request_id": "req-9",
			"service.version": "2.0.1", "cache.hit": false, "ratio": 0.25, "tags": []any{"a", "b"},
		},
		Events: []store.SpanEvent{{Name: "pilothouse.policy", Time: start.Add(time.Millisecond), Attributes: map[string]any{"rule": "r1"}}},
	}
}

func newTestForwarder(t *testing.T, url string, cfg ForwarderConfig) *Forwarder {
	t.Helper()
	cfg.URL = url
	cfg.Registerer = prometheus.NewRegistry()
	f, err := NewForwarder(cfg)
	if err != nil {
		t.Fatalf("NewForwarder: %v", err)
	}
	t.Cleanup(func() { f.Close(context.Background()) })
	return f
}

func TestForwarderRoundTrip(t *testing.T) {
	col := &collector{}
	srv := httptest.NewServer(col)
	defer srv.Close()
	f := newTestForwarder(t, srv.URL, ForwarderConfig{Headers: map[string]string{"Authorization": "Bearer t"}})
	start := time.Date(2026, 11, 24, 16, 0, 0, 5, time.UTC)
	in := []store.Span{testSpan("a1b2c3d4e5f60718", start)}
	noRequestAttr := testSpan("a1b2c3d4e5f60719", start)
	delete(noRequestAttr.Attributes, "request_id")
	bad := testSpan("zz", start)
	f.Enqueue(append(in, noRequestAttr, bad))
	if err := f.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	got, headers := col.all()
	if len(got) != 1 || len(got[0]) != 2 {
		t.Fatalf("exports: got %v, want 1 export of 2 spans", got)
	}
	if h := headers[0].Get("Authorization"); h != "Bearer t" {
		t.Errorf("Authorization: got %q, want Bearer t", h)
	}
	want := in[0]
	gotSpan := got[0][0]
	gotSpan.Start = gotSpan.Start.UTC()
	for i := range gotSpan.Events {
		gotSpan.Events[i].Time = gotSpan.Events[i].Time.UTC()
	}
	if !reflect.DeepEqual(gotSpan, want) {
		t.Errorf("span:\ngot  %+v\nwant %+v", gotSpan, want)
	}
	if got[0][1].RequestID != "req-9" {
		t.Errorf("request ID without the attribute: got %q, want req-9", got[0][1].RequestID)
	}
	if d := testutil.ToFloat64(f.metrics.Dropped.WithLabelValues(DropInvalid)); d != 1 {
		t.Errorf("invalid dropped: got %v, want 1", d)
	}
	if n := testutil.ToFloat64(f.metrics.Forwarded); n != 2 {
		t.Errorf("forwarded: got %v, want 2", n)
	}
}

func TestForwarderNeverBlocksWhenBackendHangs(t *testing.T) {
	col := &collector{hang: make(chan struct{}), entered: make(chan struct{}, 10)}
	srv := httptest.NewServer(col)
	defer srv.Close()
	defer close(col.hang)
	f := newTestForwarder(t, srv.URL, ForwarderConfig{Delivery: forward.Delivery{QueueBatches: 3, Retries: -1}})
	tee := Tee{Primary: discardSpans{}, Forwarder: f}
	start := time.Now()
	if err := tee.WriteSpans(context.Background(), []store.Span{testSpan("a1b2c3d4e5f60718", start)}); err != nil {
		t.Fatal(err)
	}
	<-col.entered
	for range 10 {
		if err := tee.WriteSpans(context.Background(), []store.Span{testSpan("a1b2c3d4e5f60718", start)}); err != nil {
			t.Fatal(err)
		}
	}
	if got := testutil.ToFloat64(f.metrics.Dropped.WithLabelValues(DropQueueFull)); got != 7 {
		t.Errorf("dropped while hanging: got %v, want 7", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := f.Close(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Close: got %v, want context.Canceled", err)
	}
}

func TestForwarderRetries(t *testing.T) {
	tests := []struct {
		name        string
		statuses    []int
		wantExports int
		wantOK      float64
		wantDropped float64
	}{
		{name: "ok", statuses: []int{200}, wantExports: 1, wantOK: 1},
		{name: "503 then ok", statuses: []int{503, 200}, wantExports: 2, wantOK: 1},
		{name: "400 is final", statuses: []int{400, 200}, wantExports: 1, wantDropped: 1},
		{name: "retries exhausted", statuses: []int{429, 502, 504, 200}, wantExports: 3, wantDropped: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			col := &collector{status: func(n int) int { return tt.statuses[min(n, len(tt.statuses)-1)] }}
			srv := httptest.NewServer(col)
			defer srv.Close()
			f := newTestForwarder(t, srv.URL+"/", ForwarderConfig{Delivery: forward.Delivery{Retries: 2, RetryBackoff: time.Millisecond}})
			f.Enqueue([]store.Span{testSpan("a1b2c3d4e5f60718", time.Now())})
			if err := f.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			got, _ := col.all()
			if len(got) != tt.wantExports {
				t.Errorf("exports: got %d, want %d", len(got), tt.wantExports)
			}
			if n := testutil.ToFloat64(f.metrics.Forwarded); n != tt.wantOK {
				t.Errorf("forwarded: got %v, want %v", n, tt.wantOK)
			}
			if n := testutil.ToFloat64(f.metrics.Dropped.WithLabelValues(DropExport)); n != tt.wantDropped {
				t.Errorf("dropped: got %v, want %v", n, tt.wantDropped)
			}
		})
	}
}

func TestTeeSkipsBackendWhenPrimaryFails(t *testing.T) {
	col := &collector{}
	srv := httptest.NewServer(col)
	defer srv.Close()
	f := newTestForwarder(t, srv.URL, ForwarderConfig{})
	tee := Tee{Primary: failingSpans{store.ErrBusy}, Forwarder: f}
	if err := tee.WriteSpans(context.Background(), []store.Span{testSpan("a1b2c3d4e5f60718", time.Now())}); !errors.Is(err, store.ErrBusy) {
		t.Fatalf("got %v, want ErrBusy", err)
	}
	f.Close(context.Background())
	if got, _ := col.all(); len(got) != 0 {
		t.Errorf("exports: got %d, want 0", len(got))
	}
}

type discardSpans struct{}

func (discardSpans) WriteSpans(context.Context, []store.Span) error { return nil }

type failingSpans struct{ err error }

func (f failingSpans) WriteSpans(context.Context, []store.Span) error { return f.err }

func BenchmarkExportRequest(b *testing.B) {
	b.ReportAllocs()
	spans := make([]store.Span, 100)
	for i := range spans {
		spans[i] = testSpan("a1b2c3d4e5f60718", time.Unix(1764000000, int64(i)))
	}
	for b.Loop() {
		exportRequest(spans)
	}
}
