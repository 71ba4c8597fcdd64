package dashboard

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/pilothouse/pilothouse/controlplane/registry"
	"github.com/pilothouse/pilothouse/controlplane/store"
	"github.com/pilothouse/pilothouse/ui"
)

// Size of the benchmark store: 100,000 requests of seven spans and ten
// log lines each, spread over the last day.
const (
	benchRequests = 100_000
	benchLogsPer  = 10
	benchSpread   = 24 * time.Hour
	// benchStoreEnv names a directory to keep the filled store in between
	// runs (building it takes a few minutes); unset means b.TempDir.
	benchStoreEnv = "PILOTHOUSE_BENCH_STORE_DIR"
)

// benchNow is the fixed "now" of the benchmark data, so a kept store
// stays valid across runs.
var benchNow = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

// bigTraceID is a 2,000-span trace written next to the shop requests.
const bigTraceID = "b16b16b16b16b16b16b16b16b16b16b1"

func bigTrace(n int, start time.Time) []store.Span {
	spans := make([]store.Span, n)
	for i := range spans {
		s := store.Span{TraceID: bigTraceID, SpanID: fmt.Sprintf("b1%014x", i+1), Service: shopServices[i%4], Instance: "i-0", Name: fmt.Sprintf("GET /api/item/%d", i%50),
			Kind: "internal", Start: start.Add(time.Duration(i) * 50 * time.Microsecond), Duration: time.Duration(n-i) * 40 * time.Microsecond, StatusCode: "ok",
			RequestID: "req-big", Attributes: map[string]any{"http.request.method": "GET", "item": float64(i)}}
		if i > 0 {
			s.ParentSpanID = fmt.Sprintf("b1%014x", (i-1)/4+1)
		}
		if i%97 == 0 {
			s.StatusCode = "error"
		}
		spans[i] = s
	}
	return spans
}

func benchStore(b *testing.B) *store.Store {
	b.Helper()
	dir := os.Getenv(benchStoreEnv)
	if dir == "" {
		dir = b.TempDir()
	}
	_, statErr := os.Stat(filepath.Join(dir, "filled"))
	st := openStore(b, dir)
	if statErr == nil {
		return st
	}
	start := time.Now()
	fillStore(b, st, benchRequests, benchLogsPer, benchNow.Add(-time.Minute), benchSpread)
	if err := st.WriteSpans(context.Background(), bigTrace(2000, benchNow.Add(-2*time.Minute))); err != nil {
		b.Fatalf("write big trace: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "filled"), nil, 0o600); err != nil {
		b.Fatal(err)
	}
	b.Logf("filled the store in %s: %+v", time.Since(start).Round(time.Second), st.Stats())
	return st
}

// BenchmarkRealStore renders every page over the real store holding
// 100,000 traces (700,000 spans) and 1,000,000 log lines, and reports the
// 50th and 95th percentile of server-side time per request.
//
//	go test -run '^$' -bench RealStore -benchtime 200x ./controlplane/dashboard/
func BenchmarkRealStore(b *testing.B) {
	st := benchStore(b)
	reg := registry.New(registry.Options{})
	for i := range 30 {
		beat(reg, benchNow.Add(time.Duration(i-30)*30*time.Second))
	}
	h := ui.New(New(st, reg), ui.WithClock(func() time.Time { return benchNow }))
	mid := benchRequests / 2
	pages := []struct{ name, target string }{
		{"overview", "/"},
		{"service", "/services/payments"},
		{"traces", "/traces"},
		{"traces-service-errors", "/traces?service=payments&status=error"},
		{"traces-min-duration", "/traces?min=105ms&since=24h"},
		{"traces-request-id", "/traces?request_id=" + requestID(mid)},
		{"trace", "/traces/" + traceID(mid)},
		{"trace-2000-spans", "/traces/" + bigTraceID},
		{"logs", "/logs"},
		{"logs-request-id", "/logs?request_id=" + requestID(mid)},
		{"logs-service-error", "/logs?service=payments&level=ERROR"},
		{"logs-text", "/logs?q=bank+declined"},
		{"logs-older-page", fmt.Sprintf("/logs?before=%d", benchRequests*benchLogsPer/2)},
		{"map-15m", "/map"},
		{"map-1h", "/map?window=1h"},
		{"search", "/search?q=" + requestID(mid)},
	}
	for _, p := range pages {
		b.Run(p.name, func(b *testing.B) {
			req := httptest.NewRequest(http.MethodGet, p.target, nil)
			var took []time.Duration
			b.ReportAllocs()
			for b.Loop() {
				t0 := time.Now()
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				took = append(took, time.Since(t0))
				if rec.Code != http.StatusOK && rec.Code != http.StatusSeeOther {
					b.Fatalf("GET %s: got %d, want 200", p.target, rec.Code)
				}
			}
			slices.Sort(took)
			q := func(p float64) float64 {
				return float64(took[min(len(took)-1, int(p*float64(len(took))))]) / float64(time.Millisecond)
			}
			b.ReportMetric(q(0.50), "p50-ms")
			b.ReportMetric(q(0.95), "p95-ms")
		})
	}
}
