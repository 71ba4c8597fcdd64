package store

import (
	"slices"
	"strings"
)

// traceCache remembers, for recently written traces, the summary row as
// committed and (for traces with few spans) the IDs of their stored spans.
// Spans of one trace arrive in several batches (each service exports its
// own), usually seconds apart, so most batches find their traces here:
// the writer then skips reading the stored summary and, when the span IDs
// are known, detects re-sent spans in memory and inserts with a plain
// INSERT instead of INSERT OR IGNORE ... RETURNING. Measured on the
// per-service span benchmark, these were two fifths of the writer's time.
//
// Only the writer goroutine uses it. Every entry mirrors a committed row:
// entries are added after COMMIT, and the whole cache is dropped when a
// transaction fails or retention deletes traces.
//
// The bound is approximate LRU with two generations: lookups look in the
// current map, then in the previous one (moving the entry forward); when
// the current map is full it becomes the previous one and the oldest
// generation is dropped. At most 2*perGeneration entries are held.
type traceCache struct {
	cur, prev     map[[16]byte]*cachedTrace
	perGeneration int
}

// cachedTrace is one trace as stored.
type cachedTrace struct {
	sum traceSummaryRow
	// spanIDs lists every stored span of the trace, or is nil when not
	// known (summary read from the database, or more than
	// maxCachedSpanIDs spans).
	spanIDs [][8]byte
}

// Bounds of the trace cache; about 300 bytes per entry.
const (
	traceCacheGeneration = 32 << 10
	maxCachedSpanIDs     = 64
)

func newTraceCache(perGeneration int) *traceCache {
	return &traceCache{
		cur:           make(map[[16]byte]*cachedTrace),
		prev:          make(map[[16]byte]*cachedTrace),
		perGeneration: perGeneration,
	}
}

// get returns the cached trace id, or nil.
func (c *traceCache) get(id [16]byte) *cachedTrace {
	if e := c.cur[id]; e != nil {
		return e
	}
	e := c.prev[id]
	if e != nil {
		delete(c.prev, id)
		c.add(id, e)
	}
	return e
}

// put records the committed state of trace id.
func (c *traceCache) put(id [16]byte, e *cachedTrace) {
	if _, ok := c.cur[id]; ok {
		c.cur[id] = e
		return
	}
	delete(c.prev, id)
	c.add(id, e)
}

func (c *traceCache) add(id [16]byte, e *cachedTrace) {
	if len(c.cur) >= c.perGeneration {
		c.prev = c.cur
		c.cur = make(map[[16]byte]*cachedTrace, c.perGeneration)
	}
	c.cur[id] = e
}

// reset forgets every trace.
func (c *traceCache) reset() {
	clear(c.cur)
	clear(c.prev)
}

// len is the number of cached traces.
func (c *traceCache) len() int { return len(c.cur) + len(c.prev) }

// has reports whether the span IDs of e are known and include sid.
func (e *cachedTrace) has(sid [8]byte) bool { return slices.Contains(e.spanIDs, sid) }

// detached returns a copy of t for the cache that shares no memory with
// span rows, whose strings may point into large caller buffers: strings not
// already held by old (the entry t was merged from, or nil) are cloned.
func (t traceSummaryRow) detached(old *cachedTrace) traceSummaryRow {
	var was traceSummaryRow
	if old != nil {
		was = old.sum
	}
	t.services = slices.Clone(t.services)
	for i, s := range t.services {
		if j, found := slices.BinarySearch(was.services, s); found {
			t.services[i] = was.services[j]
		} else {
			t.services[i] = strings.Clone(s)
		}
	}
	t.rootService = keepString(was.rootService, t.rootService)
	t.rootName = keepString(was.rootName, t.rootName)
	t.route = keepString(was.route, t.route)
	t.requestID = keepString(was.requestID, t.requestID)
	return t
}

// keepString returns old if it equals s, else a copy of s.
func keepString(old, s string) string {
	if s == old {
		return old
	}
	return strings.Clone(s)
}
