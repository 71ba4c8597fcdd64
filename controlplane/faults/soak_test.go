package faults_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pilothouse/pilothouse/agent"
	"github.com/pilothouse/pilothouse/agent/wire"
	"github.com/pilothouse/pilothouse/controlplane/auth"
	"github.com/pilothouse/pilothouse/examples/shop/services"
)

// Soak settings. The soak is an opt-in, not part of CI: PILOTHOUSE_SOAK=1
// runs it, PILOTHOUSE_SOAK_DURATION shortens or lengthens it.
const (
	envSoak         = "PILOTHOUSE_SOAK"
	envSoakDuration = "PILOTHOUSE_SOAK_DURATION"
	soakDefault     = 10 * time.Minute
	soakSample      = 30 * time.Second
	soakMaxAge      = 2 * time.Minute // retention on: data older than this goes
	soakShopRate    = 20              // shop requests per second
	soakSpanRate    = 25000           // OTLP spans per second, half the benchmarked ingest rate
	soakBatchSpans  = 500             // spans per OTLP request (100 traces of 5)
)

// memSample is one memory reading.
type memSample struct {
	at                 time.Duration
	cpRSS, cpHeap      float64 // MiB, control plane process
	shopRSS, shopHeap  float64 // MiB, this process: shop, 4 agents, load generators
	spansSent, spansDB int64
}

// TestSoak runs the shop with its agents in this process and the control
// plane in a child, with shop traffic and OTLP ingest at half the
// benchmarked rate, retention on, and samples the memory of both every
// 30 s. Memory must level off: the last sample may not exceed twice the
// one taken after the first minute plus 64 MiB.
func TestSoak(t *testing.T) {
	if os.Getenv(envSoak) != "1" {
		t.Skip("soak: set " + envSoak + "=1 to run (10 minutes)")
	}
	dur := soakDefault
	if v := os.Getenv(envSoakDuration); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatal(err)
		}
		dur = d
	}
	dir := t.TempDir()
	users, err := auth.Open(dir, fastAuth)
	if err != nil {
		t.Fatal(err)
	}
	viewer := apiToken(t, users, auth.RoleViewer)
	if err := users.Close(); err != nil {
		t.Fatal(err)
	}
	cp := startChild(t, dir, envChildMaxAge+"="+soakMaxAge.String())
	gateway := startShop(t, cp.url)

	ctx, cancel := context.WithTimeout(context.Background(), dur)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() { services.Traffic(ctx, gateway, soakShopRate, nil) })
	var sent, refused atomic.Int64
	const senders = 4
	for w := range senders {
		wg.Go(func() { ingestAtRate(ctx, t, cp.url, w, senders, &sent, &refused) })
	}

	var samples []memSample
	start := time.Now()
	sample := func() {
		s := memSample{at: time.Since(start).Round(time.Second), spansSent: sent.Load()}
		s.cpRSS = metricValue(t, cp.url, viewer, "process_resident_memory_bytes") / (1 << 20)
		s.cpHeap = metricValue(t, cp.url, viewer, "go_memstats_heap_alloc_bytes") / (1 << 20)
		s.spansDB = int64(metricValue(t, cp.url, viewer, "pilothouse_store_spans"))
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		s.shopHeap = float64(m.HeapAlloc) / (1 << 20)
		s.shopRSS = selfRSS() / (1 << 20)
		samples = append(samples, s)
		t.Logf("%6v  control plane RSS %6.1f MiB heap %6.1f MiB | shop+agents RSS %6.1f MiB heap %6.1f MiB | spans sent %d (%.0f/s), in store %d, refused batches %d",
			s.at, s.cpRSS, s.cpHeap, s.shopRSS, s.shopHeap, s.spansSent, float64(s.spansSent)/max(time.Since(start).Seconds(), 1), s.spansDB, refused.Load())
	}
	sample()
	tick := time.NewTicker(soakSample)
	defer tick.Stop()
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-tick.C:
			sample()
		}
	}
	wg.Wait()
	sample()

	summary := func(name string, f func(memSample) float64) {
		lo, hi := f(samples[0]), f(samples[0])
		for _, s := range samples {
			lo, hi = min(lo, f(s)), max(hi, f(s))
		}
		t.Logf("%-24s start %6.1f  min %6.1f  max %6.1f  end %6.1f MiB", name, f(samples[0]), lo, hi, f(samples[len(samples)-1]))
	}
	summary("control plane RSS", func(s memSample) float64 { return s.cpRSS })
	summary("control plane heap", func(s memSample) float64 { return s.cpHeap })
	summary("shop+agents RSS", func(s memSample) float64 { return s.shopRSS })
	summary("shop+agents heap", func(s memSample) float64 { return s.shopHeap })
	t.Logf("ingest: %d spans in %v = %.0f spans/s; %d batches refused", sent.Load(), dur, float64(sent.Load())/dur.Seconds(), refused.Load())

	if len(samples) < 4 {
		return
	}
	warm, last := samples[2], samples[len(samples)-1] // after the first minute
	for _, c := range []struct {
		name       string
		warm, last float64
	}{
		{"control plane heap", warm.cpHeap, last.cpHeap},
		{"shop+agents heap", warm.shopHeap, last.shopHeap},
	} {
		if limit := 2*c.warm + 64; c.last > limit {
			t.Errorf("%s: got %.1f MiB at the end, want at most %.1f (2 x %.1f after a minute + 64)", c.name, c.last, limit, c.warm)
		}
	}
}

// startShop runs the four shop services with the agent embedded,
// reporting to cp, and returns the gateway's URL.
func startShop(t *testing.T, cp string) string {
	t.Helper()
	names := []string{services.Inventory, services.Payments, services.Orders, services.Gateway}
	peers := map[string]string{}
	listeners := map[string]net.Listener{}
	for _, name := range names {
		ln := listen(t)
		listeners[name] = ln
		peers[name] = "http://" + ln.Addr().String()
	}
	for _, name := range names {
		ag, err := agent.New(name, agent.WithControlPlane(cp), agent.WithToken(childAgentKey),
			agent.WithAddress(listeners[name].Addr().String()), agent.WithHeartbeatInterval(2*time.Second), agent.WithLocalLog(io.Discard))
		if err != nil {
			t.Fatalf("agent for %s: %v", name, err)
		}
		srv := &http.Server{Handler: services.Builders[name](services.Config{Agent: ag, Peers: peers}), ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = srv.Serve(listeners[name]) }()
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(ctx)
			_ = ag.Shutdown(ctx)
		})
	}
	return peers[services.Gateway]
}

// ingestAtRate posts OTLP batches of fresh spans, its share of
// soakSpanRate, until ctx ends.
func ingestAtRate(ctx context.Context, t *testing.T, cp string, worker, workers int, sent, refused *atomic.Int64) {
	client := &http.Client{Timeout: 10 * time.Second}
	every := time.Duration(float64(time.Second) * soakBatchSpans * float64(workers) / soakSpanRate)
	tick := time.NewTicker(every)
	defer tick.Stop()
	const perTrace = 5
	for n := uint64(worker); ; n += uint64(workers) {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		body := soakBatch(t, n, soakBatchSpans/perTrace, perTrace)
		switch code := post(ctx, client, cp+wire.PathTraces, childAgentKey, protobufType, body); {
		case code == http.StatusOK:
			sent.Add(soakBatchSpans)
		case code == 0 && errors.Is(ctx.Err(), context.DeadlineExceeded):
			return
		default:
			refused.Add(1)
		}
	}
}

// soakBatch is one OTLP request of traces x perTrace fresh spans.
func soakBatch(t testing.TB, batch uint64, traces, perTrace int) []byte {
	now := time.Now()
	var out []byte
	for i := range traces {
		n := batch*uint64(traces) + uint64(i)
		tr := otlpTrace(t, "soak-"+strconv.Itoa(i%8), traceIDBytes(12, n), n, perTrace, fmt.Sprintf("soak-%d", n), now)
		out = append(out, tr...) // concatenated requests merge their repeated fields
	}
	return out
}

// selfRSS is this process's resident set size in bytes.
func selfRSS() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			return kb * 1024
		}
	}
	return 0
}
