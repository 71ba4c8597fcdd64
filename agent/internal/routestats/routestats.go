// Package routestats keeps per-route request, error and latency figures
// for one heartbeat window. Observing is lock-free apart from a shared read
// lock; taking a window (Swap) installs a fresh one and waits only for the
// observations already inside the old one, so no figure is lost or counted
// twice and no lock is ever held across I/O.
package routestats

import (
	"math"
	"math/bits"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pilothouse/pilothouse/agent/wire"
)

// numBuckets covers every positive int64 nanosecond value with four
// sub-buckets per power of two (relative error at most 25%).
const numBuckets = 4 * 64

// Recorder collects figures per (method, route). It is safe for concurrent
// use; the zero value is not usable, call New.
type Recorder struct {
	cur atomic.Pointer[window]
}

type key struct{ method, route string }

type window struct {
	mu     sync.RWMutex
	closed bool
	routes map[key]*route
}

type route struct {
	requests atomic.Int64
	errors   atomic.Int64
	sumNanos atomic.Int64
	maxNanos atomic.Int64
	buckets  [numBuckets]atomic.Uint32
}

// New returns an empty recorder.
func New() *Recorder {
	r := &Recorder{}
	r.cur.Store(newWindow())
	return r
}

func newWindow() *window { return &window{routes: make(map[key]*route)} }

// Observe records one request. Status >= 500 counts as an error.
func (r *Recorder) Observe(method, routeName string, status int, d time.Duration) {
	k := key{method, routeName}
	for {
		w := r.cur.Load()
		w.mu.RLock()
		if w.closed {
			w.mu.RUnlock()
			continue
		}
		rt := w.routes[k]
		if rt == nil {
			w.mu.RUnlock()
			w.mu.Lock()
			if w.closed {
				w.mu.Unlock()
				continue
			}
			if rt = w.routes[k]; rt == nil {
				rt = &route{}
				w.routes[k] = rt
			}
			w.mu.Unlock()
			w.mu.RLock()
			if w.closed {
				w.mu.RUnlock()
				continue
			}
		}
		rt.observe(status, d)
		w.mu.RUnlock()
		return
	}
}

func (rt *route) observe(status int, d time.Duration) {
	ns := int64(d)
	if ns < 0 {
		ns = 0
	}
	rt.requests.Add(1)
	if status >= 500 {
		rt.errors.Add(1)
	}
	rt.sumNanos.Add(ns)
	for {
		m := rt.maxNanos.Load()
		if ns <= m || rt.maxNanos.CompareAndSwap(m, ns) {
			break
		}
	}
	rt.buckets[bucketOf(ns)].Add(1)
}

// Swap returns the figures since the previous Swap (or New), sorted by
// route then method, and starts a new window.
func (r *Recorder) Swap() []wire.RouteSummary {
	old := r.cur.Swap(newWindow())
	old.mu.Lock() // waits for observations already in the old window
	old.closed = true
	old.mu.Unlock()
	out := make([]wire.RouteSummary, 0, len(old.routes))
	for k, rt := range old.routes {
		out = append(out, rt.summary(k))
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Route != out[j].Route {
			return out[i].Route < out[j].Route
		}
		return out[i].Method < out[j].Method
	})
	return out
}

func (rt *route) summary(k key) wire.RouteSummary {
	var counts [numBuckets]uint64
	for i := range rt.buckets {
		counts[i] = uint64(rt.buckets[i].Load())
	}
	n := rt.requests.Load()
	maxD := time.Duration(rt.maxNanos.Load())
	return wire.RouteSummary{
		Method:      k.method,
		Route:       k.route,
		Requests:    n,
		Errors:      rt.errors.Load(),
		DurationSum: wire.Duration(rt.sumNanos.Load()),
		P50:         wire.Duration(quantile(&counts, uint64(n), 0.50, maxD)),
		P95:         wire.Duration(quantile(&counts, uint64(n), 0.95, maxD)),
		P99:         wire.Duration(quantile(&counts, uint64(n), 0.99, maxD)),
		Max:         wire.Duration(maxD),
	}
}

// quantile returns the upper bound of the bucket holding the q-th
// observation, never more than the observed maximum.
func quantile(counts *[numBuckets]uint64, n uint64, q float64, maxD time.Duration) time.Duration {
	if n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(n)))
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i, c := range counts {
		seen += c
		if seen >= rank {
			return min(time.Duration(upperBound(i)), maxD)
		}
	}
	return maxD
}

// bucketOf maps nanoseconds to a bucket: values below 4 have their own
// bucket, larger ones are split into four per power of two.
func bucketOf(ns int64) int {
	if ns < 4 {
		return int(max(ns, 0))
	}
	e := bits.Len64(uint64(ns)) // 3..63
	top := int(uint64(ns) >> (e - 3))
	return 4*(e-2) + top - 4
}

// upperBound is the largest value that falls in bucket i.
func upperBound(i int) int64 {
	if i < 4 {
		return int64(i)
	}
	e := i/4 + 2
	m := uint64(i%4 + 4)
	u := (m+1)<<(e-3) - 1
	if u > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(u)
}
