package ui

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// benchPage measures the server-side render time of one page with the
// fake source (no store): templates, layout computation and escaping.
func benchPage(b *testing.B, h http.Handler, target string) {
	b.Helper()
	req := httptest.NewRequest(http.MethodGet, target, nil)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("GET %s: got %d, want 200", target, rec.Code)
		}
	}
}

func BenchmarkPageOverview(b *testing.B) { benchPage(b, newTestHandler(newFakeSource()), "/") }

func BenchmarkPageService(b *testing.B) {
	benchPage(b, newTestHandler(newFakeSource()), "/services/payments?sort=p95&dir=desc")
}

func BenchmarkPageTraces(b *testing.B) { benchPage(b, newTestHandler(newFakeSource()), "/traces") }

func BenchmarkPageLogs(b *testing.B) { benchPage(b, newTestHandler(newFakeSource()), "/logs") }

func BenchmarkPageMap(b *testing.B) { benchPage(b, newTestHandler(newFakeSource()), "/map") }

func BenchmarkPageTrace(b *testing.B) {
	benchPage(b, newTestHandler(newFakeSource()), "/traces/"+testTraceID)
}

func BenchmarkPageTrace2000Spans(b *testing.B) {
	f := newFakeSource()
	f.traces[testTraceID] = bigTrace(2000)
	benchPage(b, newTestHandler(f), "/traces/"+testTraceID)
}
