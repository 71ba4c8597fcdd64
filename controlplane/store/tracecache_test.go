package store

import (
	"context"
	"fmt"
	"testing"
	"time"
)

func TestTraceCacheBound(t *testing.T) {
	c := newTraceCache(4)
	id := func(n int) [16]byte { return [16]byte{byte(n), 1} }
	for n := range 10 {
		c.put(id(n), &cachedTrace{sum: traceSummaryRow{key: int64(n)}})
		if c.len() > 8 {
			t.Fatalf("after %d puts: got %d entries, want at most 8", n+1, c.len())
		}
	}
	// 0 and 1 were dropped with the oldest generation; 5 is in the
	// previous one and moves forward when read.
	tests := []struct {
		name string
		n    int
		want bool
	}{
		{"dropped", 0, false},
		{"previous generation", 5, true},
		{"current generation", 9, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := c.get(id(tc.n))
			if got := e != nil; got != tc.want {
				t.Fatalf("got cached %v, want %v", got, tc.want)
			}
			if e != nil && e.sum.key != int64(tc.n) {
				t.Errorf("got key %d, want %d", e.sum.key, tc.n)
			}
		})
	}
	c.reset()
	if c.len() != 0 || c.get(id(9)) != nil {
		t.Errorf("after reset: got %d entries, want 0", c.len())
	}
}

// bigTrace is one trace of n spans, all children of span 0.
func bigTrace(n int) []Span {
	spans := make([]Span, n)
	for i := range spans {
		spans[i] = Span{TraceID: traceID(900), SpanID: spanID(900, i), Service: fmt.Sprintf("svc%d", i%3),
			Name: "work", Kind: "internal", Start: t0.Add(time.Duration(i) * time.Millisecond), Duration: time.Millisecond}
		if i > 0 {
			spans[i].ParentSpanID = spanID(900, 0)
		}
	}
	return spans
}

// A trace with more spans than the cache keeps IDs for is still counted
// exactly when batches overlap.
func TestTraceSummaryManySpansResent(t *testing.T) {
	const n = maxCachedSpanIDs*2 + 10
	spans := bigTrace(n)
	s := openTestStore(t, t.TempDir(), Options{})
	for start := 0; start < n; start += 25 {
		mustWriteSpans(t, s, spans[start:min(n, start+40)]) // overlaps the next batch
	}
	mustWriteSpans(t, s, spans[:50])
	got, err := s.Traces(context.Background(), TraceFilter{})
	if err != nil || len(got) != 1 {
		t.Fatalf("Traces: got %v, %v, want one trace", got, err)
	}
	if got[0].SpanCount != n {
		t.Errorf("span count: got %d, want %d", got[0].SpanCount, n)
	}
	if st := s.Stats(); st.Spans != n {
		t.Errorf("Stats: got %d spans, want %d", st.Spans, n)
	}
}

// Retention deletes cached traces; spans of such a trace sent again make
// a new trace, not a duplicate of the deleted one.
func TestTraceCacheAfterRetention(t *testing.T) {
	s := openTestStore(t, t.TempDir(), Options{MaxAge: time.Hour})
	full := shopTrace(3, t0, "req-3", 200)
	mustWriteSpans(t, s, full)
	if err := s.RunRetention(t0.Add(2 * time.Hour)); err != nil {
		t.Fatalf("RunRetention: %v", err)
	}
	if st := s.Stats(); st.Spans != 0 || st.Traces != 0 {
		t.Fatalf("after retention: got %d spans, %d traces, want 0, 0", st.Spans, st.Traces)
	}
	mustWriteSpans(t, s, full[2:])
	mustWriteSpans(t, s, full)
	checkTraceSummary(t, s, TraceSummary{
		TraceID: traceID(3), RootService: "gateway", RootName: "GET /api/orders/:id", Route: "/api/orders/:id",
		HTTPStatus: 200, RequestID: "req-3", Start: t0, Duration: 40 * time.Millisecond,
		SpanCount: 7, Services: []string{"gateway", "inventory", "orders", "payments"},
	})
	if _, err := s.Trace(context.Background(), traceID(3)); err != nil {
		t.Errorf("Trace: %v", err)
	}
}
