package store

import (
	"context"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Benchmarks run with, for example:
//
//	go test -run '^$' -bench . -benchtime 3s ./controlplane/store/
//
// The machine is shared, so write benchmarks report items per wall second
// and per CPU second of the whole process (producers included).

const benchBatch = 512

// spanBatcher produces batches of realistic spans: shop traces of 7 spans
// from 4 services with the attributes an instrumented Gin service sets,
// each trace with a fresh random ID.
type spanBatcher struct {
	rng      *rand.Rand
	template []Span
	parents  []int // index in template of each span's parent, -1 for the root
	at       time.Time
	pending  map[string][]Span // per service, for per-service batches
}

func newSpanBatcher(seed uint64) *spanBatcher {
	tr := shopTrace(0, t0, "", 200)
	parents := make([]int, len(tr))
	for i := range tr {
		parents[i] = slices.IndexFunc(tr, func(x Span) bool { return x.SpanID == tr[i].ParentSpanID })
		tr[i].Attributes = map[string]any{
			"http.request.method":       "GET",
			"url.path":                  "/api/orders/12345",
			"http.response.status_code": 200.0,
			"server.address":            tr[i].Service + ".shop.svc",
			"user_agent.original":       "Mozilla/5.0 (X11; Linux x86_64) shop-loadgen/1.0",
			"network.peer.address":      "10.0.3.17",
		}
	}
	return &spanBatcher{rng: rand.New(rand.NewPCG(seed, seed+1)), template: tr, parents: parents, at: t0,
		pending: make(map[string][]Span)}
}

// trace appends the spans of one new trace to dst.
func (g *spanBatcher) trace(dst []Span) []Span {
	var tid [16]byte
	var sids [7][8]byte
	for i := range tid {
		tid[i] = byte(g.rng.Uint32())
	}
	for i := range sids {
		for j := range sids[i] {
			sids[i][j] = byte(g.rng.Uint32())
		}
	}
	traceHex := hex.EncodeToString(tid[:])
	reqID := fmt.Sprintf("req-%016x", g.rng.Uint64())
	g.at = g.at.Add(time.Millisecond)
	for i, sp := range g.template {
		sp.TraceID = traceHex
		sp.SpanID = hex.EncodeToString(sids[i][:])
		if p := g.parents[i]; p >= 0 {
			sp.ParentSpanID = hex.EncodeToString(sids[p][:])
		}
		sp.Start = g.at.Add(sp.Start.Sub(t0))
		sp.RequestID = reqID
		dst = append(dst, sp)
	}
	return dst
}

// next returns a batch of whole traces.
func (g *spanBatcher) next(dst []Span) []Span {
	dst = dst[:0]
	for len(dst) < benchBatch {
		dst = g.trace(dst)
	}
	return dst[:benchBatch]
}

// nextOfService returns a batch of one service's spans, as that service's
// agent exports them: the other spans of its traces come in other batches,
// before or after.
func (g *spanBatcher) nextOfService(dst []Span) []Span {
	var tr []Span
	for {
		for svc, q := range g.pending {
			if len(q) >= benchBatch {
				dst = append(dst[:0], q[:benchBatch]...)
				g.pending[svc] = append(q[:0], q[benchBatch:]...)
				return dst
			}
		}
		tr = g.trace(tr[:0])
		for _, sp := range tr {
			g.pending[sp.Service] = append(g.pending[sp.Service], sp)
		}
	}
}

func BenchmarkWriteSpans(b *testing.B) {
	cases := []struct {
		name       string
		writers    int
		perService bool
	}{
		{"whole-traces/writers=1", 1, false},
		{"whole-traces/writers=8", 8, false},
		{"per-service/writers=8", 8, true},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			s := openTestStore(b, b.TempDir(), Options{MaxAge: -1, MaxBytes: -1})
			b.ReportAllocs()
			var seed uint64
			var mu sync.Mutex
			b.SetParallelism(max(1, tc.writers/runtime.GOMAXPROCS(0)))
			clock := startClocks(b)
			b.RunParallel(func(pb *testing.PB) {
				mu.Lock()
				seed++
				g := newSpanBatcher(seed)
				mu.Unlock()
				var batch []Span
				for pb.Next() {
					if tc.perService {
						batch = g.nextOfService(batch)
					} else {
						batch = g.next(batch)
					}
					if err := s.WriteSpans(context.Background(), batch); err != nil {
						b.Error(err)
						return
					}
				}
			})
			clock.report(b, float64(b.N*benchBatch), "spans")
		})
	}
}

// clocks measures wall time and the process's CPU time. The machine is
// shared, so besides items per wall second the benchmarks report items per
// CPU second (user+system, all goroutines of the process).
type clocks struct {
	wall time.Time
	cpu  time.Duration
}

func startClocks(b *testing.B) clocks {
	b.Helper()
	b.ResetTimer()
	return clocks{wall: time.Now(), cpu: processCPU(b)}
}

func (c clocks) report(b *testing.B, items float64, unit string) {
	b.Helper()
	wall := time.Since(c.wall).Seconds()
	cpu := (processCPU(b) - c.cpu).Seconds()
	b.ReportMetric(items/wall, unit+"/s")
	if cpu > 0 {
		b.ReportMetric(items/cpu, unit+"/cpu-s")
	}
}

func processCPU(b *testing.B) time.Duration {
	b.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// logBatcher produces realistic log lines: ten per request across four
// services, with request and trace IDs.
type logBatcher struct {
	rng *rand.Rand
	at  time.Time
	req int
}

var benchServices = []string{"gateway", "orders", "payments", "inventory"}

var benchBodies = []string{
	"request started", "loading order from database", "order loaded", "reserving stock for sku",
	"stock reserved", "charging card", "payment authorized", "upstream call finished",
	"rendering response", "request finished",
}

func benchRequestID(n int) string { return fmt.Sprintf("req-%08d", n) }

// request appends the ten log lines of the next request to dst.
func (g *logBatcher) request(dst []LogRecord) []LogRecord {
	g.req++
	rid := benchRequestID(g.req)
	tid := traceID(g.req)
	for i, body := range benchBodies {
		g.at = g.at.Add(100 * time.Microsecond)
		sev := severityInfo
		if g.rng.IntN(50) == 0 {
			sev = severityError
		}
		dst = append(dst, LogRecord{
			Time: g.at, Service: benchServices[i%len(benchServices)], Instance: "pod-7f9c", SeverityNumber: sev,
			Body: body, TraceID: tid, SpanID: spanID(g.req, i), RequestID: rid,
			Attributes: map[string]any{"http.route": "/api/orders/:id", "duration_ms": float64(g.rng.IntN(200))},
		})
	}
	return dst
}

func (g *logBatcher) next(dst []LogRecord) []LogRecord {
	dst = dst[:0]
	for len(dst) < benchBatch {
		dst = g.request(dst)
	}
	return dst
}

func BenchmarkWriteLogs(b *testing.B) {
	for _, writers := range []int{1, 8} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			s := openTestStore(b, b.TempDir(), Options{MaxAge: -1, MaxBytes: -1})
			b.ReportAllocs()
			var mu sync.Mutex
			var seed uint64
			b.SetParallelism(max(1, writers/runtime.GOMAXPROCS(0)))
			clock := startClocks(b)
			b.RunParallel(func(pb *testing.PB) {
				mu.Lock()
				seed++
				g := &logBatcher{rng: rand.New(rand.NewPCG(seed, 1)), at: t0, req: int(seed) * 10_000_000}
				mu.Unlock()
				var batch []LogRecord
				for pb.Next() {
					batch = g.next(batch)
					if err := s.WriteLogs(context.Background(), batch); err != nil {
						b.Error(err)
						return
					}
				}
			})
			clock.report(b, float64(b.N*benchBatch), "logs")
		})
	}
}

// fillLogs stores n log lines (n/10 requests) with two writers.
func fillLogs(b *testing.B, s *Store, n int) {
	b.Helper()
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Go(func() {
			g := &logBatcher{rng: rand.New(rand.NewPCG(uint64(w), 1)), at: t0, req: w * n / 20}
			var batch []LogRecord
			for range n / 2 / len(benchBodies) / 100 {
				batch = batch[:0]
				for range 100 {
					batch = g.request(batch)
				}
				if err := s.WriteLogs(context.Background(), batch); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// latencies records query durations and reports p50 and p99.
type latencies []time.Duration

func (l *latencies) time(f func()) {
	start := time.Now()
	f()
	*l = append(*l, time.Since(start))
}

func (l latencies) report(b *testing.B) {
	b.Helper()
	if len(l) == 0 {
		return
	}
	slices.Sort(l)
	ms := func(q float64) float64 { return float64(l[int(q*float64(len(l)-1))]) / float64(time.Millisecond) }
	b.ReportMetric(ms(0.50), "p50-ms")
	b.ReportMetric(ms(0.99), "p99-ms")
}

func BenchmarkLogsByRequestID(b *testing.B) {
	const lines = 1_000_000
	s := openTestStore(b, b.TempDir(), Options{MaxAge: -1, MaxBytes: -1})
	start := time.Now()
	fillLogs(b, s, lines)
	b.Logf("stored %d log lines in %v; %d MB", s.Stats().Logs, time.Since(start).Round(time.Millisecond), s.Stats().SizeBytes>>20)
	requests := lines / len(benchBodies)
	b.Run("request_id", func(b *testing.B) {
		b.ReportAllocs()
		rng := rand.New(rand.NewPCG(7, 7))
		var lat latencies
		for b.Loop() {
			rid := benchRequestID(1 + rng.IntN(requests))
			lat.time(func() {
				got, err := s.Logs(context.Background(), LogFilter{RequestID: rid})
				if err != nil || len(got) != len(benchBodies) {
					b.Fatalf("Logs(%s): got %d lines, %v, want %d", rid, len(got), err, len(benchBodies))
				}
			})
		}
		lat.report(b)
	})
	b.Run("service+level", func(b *testing.B) {
		b.ReportAllocs()
		var lat latencies
		for b.Loop() {
			lat.time(func() {
				if _, err := s.Logs(context.Background(), LogFilter{Service: "payments", Level: "ERROR"}); err != nil {
					b.Fatal(err)
				}
			})
		}
		lat.report(b)
	})
	// Every line has http.route; duration_ms is one of 200 values; no
	// line has 999, so that search reads the whole store.
	for _, tc := range []struct {
		name string
		m    AttributeMatch
	}{
		{"attr=every line", AttributeMatch{"http.route", "/api/orders/:id"}},
		{"attr=one line in 200", AttributeMatch{"duration_ms", "137"}},
		{"attr=no line, whole store", AttributeMatch{"duration_ms", "999"}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			var lat latencies
			for b.Loop() {
				lat.time(func() {
					if _, err := s.Logs(context.Background(), LogFilter{Attributes: []AttributeMatch{tc.m}}); err != nil {
						b.Fatal(err)
					}
				})
			}
			lat.report(b)
		})
	}
}

// fillTraces stores n shop traces, one every 10ms, with a mix of
// statuses, routes and durations, in batches of 64 traces.
func fillTraces(b *testing.B, s *Store, n int) {
	b.Helper()
	rng := rand.New(rand.NewPCG(3, 3))
	var batch []Span
	for i := range n {
		status := 200
		switch r := rng.IntN(100); {
		case r < 3:
			status = 503
		case r < 8:
			status = 404
		}
		tr := shopTrace(i, t0.Add(time.Duration(i)*10*time.Millisecond), benchRequestID(i), status)
		if rng.IntN(100) == 0 { // the slow endpoint
			tr[0].Duration = 2 * time.Second
			tr[0].Route, tr[0].Name = "/api/slow", "GET /api/slow"
		}
		if rng.IntN(4) == 0 { // no inventory call
			tr = tr[:5]
		}
		batch = append(batch, tr...)
		if len(batch) >= 64*7 || i == n-1 {
			if err := s.WriteSpans(context.Background(), batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
}

func BenchmarkTraces(b *testing.B) {
	const traces = 100_000
	s := openTestStore(b, b.TempDir(), Options{MaxAge: -1, MaxBytes: -1})
	start := time.Now()
	fillTraces(b, s, traces)
	b.Logf("stored %d traces (%d spans) in %v", s.Stats().Traces, s.Stats().Spans, time.Since(start).Round(time.Millisecond))
	end := t0.Add(traces * 10 * time.Millisecond)
	cases := []struct {
		name string
		f    func(rng *rand.Rand) TraceFilter
	}{
		{"recent", func(*rand.Rand) TraceFilter { return TraceFilter{} }},
		{"service", func(*rand.Rand) TraceFilter { return TraceFilter{Service: "inventory"} }},
		{"status=error", func(*rand.Rand) TraceFilter { return TraceFilter{Status: "error"} }},
		{"status=5xx+service", func(*rand.Rand) TraceFilter { return TraceFilter{Status: "5xx", Service: "payments"} }},
		{"min_duration", func(*rand.Rand) TraceFilter { return TraceFilter{MinDuration: time.Second} }},
		{"route+window", func(*rand.Rand) TraceFilter {
			return TraceFilter{Route: "/api/orders/:id", Since: end.Add(-10 * time.Minute), Until: end.Add(-5 * time.Minute)}
		}},
		{"request_id", func(rng *rand.Rand) TraceFilter { return TraceFilter{RequestID: benchRequestID(rng.IntN(traces))} }},
		// Every span has http.request.method=GET; n names one trace.
		{"attr=common", func(*rand.Rand) TraceFilter {
			return TraceFilter{Attributes: []AttributeMatch{{"http.request.method", "GET"}}}
		}},
		{"attr=one trace+5min window", func(rng *rand.Rand) TraceFilter {
			n := rng.IntN(traces)
			at := t0.Add(time.Duration(n) * 10 * time.Millisecond)
			return TraceFilter{Attributes: []AttributeMatch{{"n", strconv.Itoa(n)}}, Since: at.Add(-5 * time.Minute), Until: at.Add(time.Millisecond)}
		}},
		{"attr=one trace, whole store", func(rng *rand.Rand) TraceFilter {
			return TraceFilter{Attributes: []AttributeMatch{{"n", strconv.Itoa(rng.IntN(traces))}}}
		}},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			rng := rand.New(rand.NewPCG(5, 5))
			var lat latencies
			for b.Loop() {
				f := tc.f(rng)
				lat.time(func() {
					got, err := s.Traces(context.Background(), f)
					if err != nil || len(got) == 0 {
						b.Fatalf("Traces(%+v): got %d, %v, want results", f, len(got), err)
					}
				})
			}
			lat.report(b)
		})
	}
	b.Run("trace", func(b *testing.B) {
		b.ReportAllocs()
		rng := rand.New(rand.NewPCG(6, 6))
		var lat latencies
		for b.Loop() {
			id := traceID(rng.IntN(traces))
			lat.time(func() {
				if _, err := s.Trace(context.Background(), id); err != nil {
					b.Fatal(err)
				}
			})
		}
		lat.report(b)
	})
}
