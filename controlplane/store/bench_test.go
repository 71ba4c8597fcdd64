package store

import (
	"context"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Benchmarks run with, for example:
//
//	go test -run '^$' -bench . -benchtime 5s ./controlplane/store/
//
// Results and commands are in BENCHMARKS.md at the repository root.

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
