package routestats

import (
	"sync"
	"testing"
	"time"

	"github.com/pilothouse/pilothouse/agent/wire"
)

func TestBucketBounds(t *testing.T) {
	tests := []struct {
		name string
		ns   int64
	}{
		{name: "zero", ns: 0},
		{name: "three", ns: 3},
		{name: "four", ns: 4},
		{name: "microsecond", ns: 1000},
		{name: "millisecond", ns: 1_234_567},
		{name: "minute", ns: int64(time.Minute)},
		{name: "max", ns: 1<<63 - 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := bucketOf(tt.ns)
			if b < 0 || b >= numBuckets {
				t.Fatalf("bucket: got %d, want in [0, %d)", b, numBuckets)
			}
			if up := upperBound(b); up < tt.ns {
				t.Errorf("upper bound: got %d, want >= %d", up, tt.ns)
			}
			if b > 0 && upperBound(b-1) >= tt.ns {
				t.Errorf("previous bucket bound: got %d, want < %d", upperBound(b-1), tt.ns)
			}
			if tt.ns >= 4 && float64(upperBound(b)) > 1.25*float64(tt.ns) {
				t.Errorf("relative error: bound %d for %d, want <= 25%%", upperBound(b), tt.ns)
			}
		})
	}
}

func TestSwapSummaries(t *testing.T) {
	r := New()
	for i := 1; i <= 100; i++ {
		status := 200
		if i%10 == 0 {
			status = 503
		}
		r.Observe("GET", "/orders/:id", status, time.Duration(i)*time.Millisecond)
	}
	r.Observe("POST", "/orders", 201, 5*time.Millisecond)

	got := r.Swap()
	if len(got) != 2 {
		t.Fatalf("routes: got %d, want 2", len(got))
	}
	tests := []struct {
		name string
		got  wire.RouteSummary
		want wire.RouteSummary
	}{
		{
			name: "get",
			got:  got[1],
			want: wire.RouteSummary{Method: "GET", Route: "/orders/:id", Requests: 100, Errors: 10,
				DurationSum: wire.Duration(5050 * time.Millisecond), Max: wire.Duration(100 * time.Millisecond)},
		},
		{
			name: "post",
			got:  got[0],
			want: wire.RouteSummary{Method: "POST", Route: "/orders", Requests: 1, Errors: 0,
				DurationSum: wire.Duration(5 * time.Millisecond), Max: wire.Duration(5 * time.Millisecond)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := tt.got
			if g.Method != tt.want.Method || g.Route != tt.want.Route || g.Requests != tt.want.Requests ||
				g.Errors != tt.want.Errors || g.DurationSum != tt.want.DurationSum || g.Max != tt.want.Max {
				t.Errorf("summary: got %+v, want %+v", g, tt.want)
			}
			if !(g.P50 <= g.P95 && g.P95 <= g.P99 && g.P99 <= g.Max) {
				t.Errorf("quantiles not ordered: got p50=%s p95=%s p99=%s max=%s", g.P50.D(), g.P95.D(), g.P99.D(), g.Max.D())
			}
		})
	}
	p50 := got[1].P50.D()
	if p50 < 50*time.Millisecond || p50 > 63*time.Millisecond {
		t.Errorf("p50: got %s, want within 25%% above 50ms", p50)
	}
	if again := r.Swap(); len(again) != 0 {
		t.Errorf("second swap: got %d routes, want 0", len(again))
	}
}

func TestConcurrentObserveAndSwapLosesNothing(t *testing.T) {
	r := New()
	const workers, each = 4, 2000
	var wg sync.WaitGroup
	var total int64
	var mu sync.Mutex
	stop := make(chan struct{})
	swapped := make(chan struct{})
	go func() {
		defer close(swapped)
		for {
			select {
			case <-stop:
				return
			default:
			}
			for _, s := range r.Swap() {
				mu.Lock()
				total += s.Requests
				mu.Unlock()
			}
		}
	}()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				r.Observe("GET", "/", 200, time.Millisecond)
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-swapped
	for _, s := range r.Swap() {
		total += s.Requests
	}
	if total != workers*each {
		t.Errorf("requests: got %d, want %d", total, workers*each)
	}
}

func BenchmarkObserve(b *testing.B) {
	b.ReportAllocs()
	r := New()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r.Observe("GET", "/orders/:id", 200, 3*time.Millisecond)
		}
	})
}
