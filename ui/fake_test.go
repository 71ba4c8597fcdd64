package ui

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"
)

// fakeSource is an in-memory Source with a small shop's worth of data. It
// records the last queries so tests can check that filters pass through.
type fakeSource struct {
	mu        sync.Mutex
	services  []ServiceSummary
	details   map[string]ServiceDetail
	traceRows []TraceRow
	traces    map[string]Trace
	logs      []LogLine // newest first
	edges     []Edge
	err       error

	lastTraceQuery TraceQuery
	lastLogQuery   LogQuery
	lastEdgeRange  [2]time.Time
}

var _ Source = (*fakeSource)(nil)

var testNow = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

const (
	testTraceID   = "4bf92f3577b34da6a3ce929d0e0e4736"
	testRequestID = "req-7f3a9c"
	xssPayload    = "<script>alert(1)</script>"
)

func series(now time.Time, base int64) []Point {
	out := make([]Point, 30)
	for i := range out {
		out[i] = Point{Time: now.Add(-time.Duration(29-i) * 30 * time.Second), Requests: base + int64(i%7)*3, Errors: int64(i % 5 / 4), P95: time.Duration(40+i) * time.Millisecond}
	}
	return out
}

func newFakeSource() *fakeSource {
	now := testNow
	names := []string{"gateway", "inventory", "orders", "payments"}
	f := &fakeSource{details: map[string]ServiceDetail{}, traces: map[string]Trace{}}
	for i, n := range names {
		s := ServiceSummary{Name: n, Health: Healthy, InstanceCount: 1 + i%2, RequestsPerSec: 8.5 - float64(i), ErrorRate: 0.01 * float64(i), P95: time.Duration(20+10*i) * time.Millisecond, Series: series(now, int64(200-30*i))}
		if n == "payments" {
			s.Health = Degraded
			s.Drops = Drops{Spans: 120, Logs: 4}
		}
		f.services = append(f.services, s)
		d := ServiceDetail{Summary: s}
		d.Routes = []RouteStats{
			{Method: "GET", Route: "/api/" + n + "/:id", Requests: 1200, Errors: 3, RequestsPerSec: 4, ErrorRate: 0.0025, P50: 8 * time.Millisecond, P95: 30 * time.Millisecond, P99: 60 * time.Millisecond, Max: 90 * time.Millisecond},
			{Method: "POST", Route: "/api/" + n, Requests: 300, Errors: 30, RequestsPerSec: 1, ErrorRate: 0.1, P50: 20 * time.Millisecond, P95: 120 * time.Millisecond, P99: 200 * time.Millisecond, Max: 350 * time.Millisecond},
			{Method: "GET", Route: "/healthz", Requests: 60, RequestsPerSec: 0.2, P50: time.Millisecond, P95: 2 * time.Millisecond, P99: 3 * time.Millisecond, Max: 4 * time.Millisecond},
		}
		for j := range s.InstanceCount {
			in := Instance{ID: fmt.Sprintf("%s-%d", n, j), Address: fmt.Sprintf("10.0.0.%d:8080", i*2+j), Version: "v1.4.2", StartedAt: now.Add(-time.Hour), LastSeen: now.Add(-3 * time.Second), Health: s.Health,
				Checks: []Check{{Name: "db", OK: true, Duration: 2 * time.Millisecond}}}
			if n == "payments" {
				in.Checks = append(in.Checks, Check{Name: "bank-api", OK: false, Message: "dial tcp 10.9.0.1:443: connection refused"})
				in.Drops = s.Drops
			}
			d.Instances = append(d.Instances, in)
		}
		f.details[n] = d
	}
	for i := range 20 {
		id := fmt.Sprintf("%032x", i+1)
		row := TraceRow{TraceID: id, RootService: "gateway", RootName: "GET /api/orders/:id", Route: "/api/orders/:id", HTTPStatus: 200, RequestID: fmt.Sprintf("req-%04d", i),
			Start: now.Add(-time.Duration(i) * time.Second), Duration: time.Duration(10+i*7) * time.Millisecond, SpanCount: 6, Services: []string{"gateway", "orders", "payments"}}
		if i%4 == 0 {
			row.HTTPStatus, row.ErrorCount = 502, 2
		}
		f.traceRows = append(f.traceRows, row)
	}
	f.traceRows[0].TraceID, f.traceRows[0].RequestID = testTraceID, testRequestID
	f.traces[testTraceID] = shopTrace(testTraceID, testRequestID, now.Add(-time.Second))
	for n, d := range f.details {
		d.RecentErrors = f.traceRows[:2]
		d.Slowest = f.traceRows[2:5]
		f.details[n] = d
	}
	for i := range 300 {
		seq := int64(1000 - i)
		l := LogLine{Seq: seq, Time: now.Add(-time.Duration(i) * 100 * time.Millisecond), Service: names[i%4], Instance: names[i%4] + "-0", Level: []string{"INFO", "DEBUG", "WARN", "ERROR"}[i%4],
			Body: fmt.Sprintf("handled request %d", i), TraceID: fmt.Sprintf("%032x", i%20+1), SpanID: fmt.Sprintf("%016x", i+1), RequestID: fmt.Sprintf("req-%04d", i%20),
			Attributes: []Attr{{"http.route", "/api/orders/:id"}, {"status", "200"}}}
		f.logs = append(f.logs, l)
	}
	f.logs[0].Body = "payment failed: " + xssPayload
	f.logs[0].RequestID = testRequestID
	f.logs[0].TraceID = testTraceID
	f.edges = []Edge{
		{Caller: "gateway", Callee: "orders", Requests: 9000, Errors: 20},
		{Caller: "orders", Callee: "payments", Requests: 4000, Errors: 400},
		{Caller: "orders", Callee: "inventory", Requests: 4200, Errors: 0},
	}
	return f
}

// shopTrace is one failing checkout across four services.
func shopTrace(traceID, requestID string, start time.Time) Trace {
	sp := func(id, parent, svc, name string, off, dur time.Duration, status string) Span {
		return Span{SpanID: id, ParentSpanID: parent, Service: svc, Instance: svc + "-0", Name: name, Kind: "server", Start: start.Add(off), Duration: dur, Status: status, RequestID: requestID,
			Attributes: []Attr{{"http.method", "GET"}, {"net.peer", "10.0.0.1"}}}
	}
	t := Trace{TraceID: traceID, Spans: []Span{
		sp("a000000000000001", "", "gateway", "GET /api/orders/:id", 0, 120*time.Millisecond, "error"),
		sp("a000000000000002", "a000000000000001", "gateway", "GET orders", 2*time.Millisecond, 110*time.Millisecond, "error"),
		sp("a000000000000003", "a000000000000002", "orders", "GET /orders/:id", 4*time.Millisecond, 100*time.Millisecond, "error"),
		sp("a000000000000004", "a000000000000003", "inventory", "GET /stock/:sku", 6*time.Millisecond, 20*time.Millisecond, "ok"),
		sp("a000000000000005", "a000000000000003", "payments", "POST /charge", 30*time.Millisecond, 70*time.Millisecond, "error"),
		sp("a000000000000006", "a000000000000005", "payments", xssPayload, 35*time.Millisecond, 5*time.Millisecond, "unset"),
	}}
	t.Spans[4].StatusMessage = "bank declined"
	t.Spans[4].HTTPStatus = 502
	t.Spans[4].Events = []SpanEvent{{Name: "exception", Time: start.Add(90 * time.Millisecond), Attributes: []Attr{{"exception.message", "connection reset"}}}}
	return t
}

// bigTrace is a trace of n spans: a fan-out of chains, as a busy request
// across many services looks.
func bigTrace(n int) Trace {
	start := testNow.Add(-time.Minute)
	t := Trace{TraceID: testTraceID}
	for i := range n {
		parent := ""
		if i > 0 {
			parent = fmt.Sprintf("%016x", (i-1)/4+1)
		}
		t.Spans = append(t.Spans, Span{SpanID: fmt.Sprintf("%016x", i+1), ParentSpanID: parent, Service: fmt.Sprintf("svc-%d", i%12), Instance: "i-1", Name: fmt.Sprintf("GET /api/item/%d", i%50),
			Kind: "client", Start: start.Add(time.Duration(i) * 50 * time.Microsecond), Duration: time.Duration(n-i) * 40 * time.Microsecond, Status: []string{"ok", "unset", "ok", "error"}[i%4],
			Attributes: []Attr{{"http.method", "GET"}, {"http.route", "/api/item/:id"}, {"net.peer.name", "svc"}}})
	}
	return t
}

func (f *fakeSource) Services(ctx context.Context, now time.Time) ([]ServiceSummary, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.services, f.err
}

func (f *fakeSource) Service(ctx context.Context, name string, now time.Time) (ServiceDetail, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return ServiceDetail{}, f.err
	}
	d, ok := f.details[name]
	if !ok {
		return ServiceDetail{}, fmt.Errorf("fake: service %q: %w", name, ErrNotFound)
	}
	return d, nil
}

func (f *fakeSource) Traces(ctx context.Context, q TraceQuery) ([]TraceRow, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastTraceQuery = q
	if f.err != nil {
		return nil, f.err
	}
	var out []TraceRow
	for _, r := range f.traceRows {
		if q.RequestID != "" && r.RequestID != q.RequestID {
			continue
		}
		if q.Status == "error" && r.ErrorCount == 0 {
			continue
		}
		out = append(out, r)
		if q.Limit > 0 && len(out) == q.Limit {
			break
		}
	}
	return out, nil
}

func (f *fakeSource) Trace(ctx context.Context, id string) (Trace, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return Trace{}, f.err
	}
	t, ok := f.traces[id]
	if !ok {
		return Trace{}, fmt.Errorf("fake: trace %s: %w", id, ErrNotFound)
	}
	return t, nil
}

func (f *fakeSource) Logs(ctx context.Context, q LogQuery) ([]LogLine, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastLogQuery = q
	if f.err != nil {
		return nil, f.err
	}
	var out []LogLine
	for _, l := range f.logs {
		switch {
		case q.BeforeSeq > 0 && l.Seq >= q.BeforeSeq,
			q.AfterSeq > 0 && l.Seq <= q.AfterSeq,
			q.RequestID != "" && l.RequestID != q.RequestID,
			q.Service != "" && l.Service != q.Service,
			q.Text != "" && !strings.Contains(l.Body, q.Text):
			continue
		}
		out = append(out, l)
		if q.Limit > 0 && len(out) == q.Limit {
			break
		}
	}
	return out, nil
}

func (f *fakeSource) Edges(ctx context.Context, since, until time.Time) ([]Edge, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastEdgeRange = [2]time.Time{since, until}
	return f.edges, f.err
}

// addLog prepends a newer log line, as the store would on write.
func (f *fakeSource) addLog(l LogLine) {
	f.mu.Lock()
	defer f.mu.Unlock()
	l.Seq = f.logs[0].Seq + 1
	f.logs = append([]LogLine{l}, f.logs...)
}
