package store

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// t0 is the base time of test data.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func openTestStore(t testing.TB, dir string, opts Options) *Store {
	t.Helper()
	if opts.RetentionInterval == 0 {
		opts.RetentionInterval = -1 // tests call RunRetention
	}
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func traceID(n int) string { return fmt.Sprintf("%032x", n+1) }
func spanID(trace, n int) string {
	return fmt.Sprintf("%08x%08x", trace+1, n+1)
}

// shopTrace is one request through the demo shop: gateway -> orders ->
// payments and inventory. Spans are in a fixed order, root first.
func shopTrace(n int, start time.Time, reqID string, httpStatus int) []Span {
	tid := traceID(n)
	status := "unset"
	if httpStatus >= 500 {
		status = "error"
	}
	mk := func(i, parent int, service, kind, name, route string, offset, dur time.Duration, code int, st string) Span {
		sp := Span{
			TraceID: tid, SpanID: spanID(n, i), Service: service, Instance: service + "-1",
			Name: name, Kind: kind, Start: start.Add(offset), Duration: dur, StatusCode: st,
			RequestID: reqID, Route: route, HTTPStatus: code,
			Attributes: map[string]any{"http.request.method": "GET", "n": float64(n)},
		}
		if parent >= 0 {
			sp.ParentSpanID = spanID(n, parent)
		}
		return sp
	}
	return []Span{
		mk(0, -1, "gateway", "server", "GET /api/orders/:id", "/api/orders/:id", 0, 40*time.Millisecond, httpStatus, status),
		mk(1, 0, "gateway", "client", "GET", "", 1*time.Millisecond, 38*time.Millisecond, httpStatus, status),
		mk(2, 1, "orders", "server", "GET /orders/:id", "/orders/:id", 2*time.Millisecond, 35*time.Millisecond, httpStatus, status),
		mk(3, 2, "orders", "client", "POST", "", 3*time.Millisecond, 10*time.Millisecond, 200, "unset"),
		mk(4, 3, "payments", "server", "POST /charge", "/charge", 4*time.Millisecond, 8*time.Millisecond, 200, "ok"),
		mk(5, 2, "orders", "client", "GET", "", 14*time.Millisecond, 20*time.Millisecond, httpStatus, status),
		mk(6, 5, "inventory", "server", "GET /stock/:sku", "/stock/:sku", 15*time.Millisecond, 18*time.Millisecond, httpStatus, status),
	}
}

func mustWriteSpans(t testing.TB, s *Store, spans []Span) {
	t.Helper()
	if err := s.WriteSpans(context.Background(), spans); err != nil {
		t.Fatalf("WriteSpans: %v", err)
	}
}

func mustWriteLogs(t testing.TB, s *Store, logs []LogRecord) {
	t.Helper()
	if err := s.WriteLogs(context.Background(), logs); err != nil {
		t.Fatalf("WriteLogs: %v", err)
	}
}
