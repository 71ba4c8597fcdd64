// Package routing picks where an outbound call goes: a subset of the
// target service by weight (a canary split) or by a header override, then
// one healthy instance of that subset in round-robin order. Randomness is
// an input, so tests check the split statistically with a seeded source.
package routing

import (
	"net/http"
	"sync/atomic"
)

// Subset is a weighted group of a target's instances.
type Subset struct {
	Name string
	// Version selects instances of this version; empty matches all.
	Version string
	Weight  int
}

// Override sends requests whose Header equals Value to Subset.
type Override struct {
	Header, Value, Subset string
}

// Instance is one reachable instance of a target service.
type Instance struct {
	Address string
	Version string
}

// Table routes calls to one target. It is immutable after New apart from
// its round-robin counters, and safe for concurrent use.
type Table struct {
	subsets   []Subset
	overrides []Override
	total     int
	next      []atomic.Uint64 // per subset round-robin position
}

// New returns a routing table. Subsets with weight 0 are only reachable
// through overrides.
func New(subsets []Subset, overrides []Override) *Table {
	t := &Table{subsets: subsets, overrides: overrides, next: make([]atomic.Uint64, len(subsets)+1)}
	for _, s := range subsets {
		t.total += s.Weight
	}
	return t
}

// PickSubset chooses a subset for a request: the first matching override,
// else by weight using r, a uniform random number in [0, 1). It returns
// the subset index, or -1 when the table has no subsets.
func (t *Table) PickSubset(h http.Header, r float64) int {
	for _, o := range t.overrides {
		if h.Get(o.Header) == o.Value {
			for i, s := range t.subsets {
				if s.Name == o.Subset {
					return i
				}
			}
		}
	}
	if t.total <= 0 {
		return -1
	}
	n := int(r * float64(t.total))
	for i, s := range t.subsets {
		if n < s.Weight {
			return i
		}
		n -= s.Weight
	}
	return len(t.subsets) - 1
}

// Subset returns subset i's name ("" for -1).
func (t *Table) Subset(i int) string {
	if i < 0 || i >= len(t.subsets) {
		return ""
	}
	return t.subsets[i].Name
}

// PickInstance chooses among instances those of subset i (all when i is
// -1 or the subset has no version), in round-robin order. ok is false
// when none matches.
func (t *Table) PickInstance(i int, instances []Instance) (Instance, bool) {
	version := ""
	if i >= 0 && i < len(t.subsets) {
		version = t.subsets[i].Version
	}
	counter := &t.next[len(t.next)-1]
	if i >= 0 && i < len(t.subsets) {
		counter = &t.next[i]
	}
	matching := 0
	for _, in := range instances {
		if version == "" || in.Version == version {
			matching++
		}
	}
	if matching == 0 {
		return Instance{}, false
	}
	k := int(counter.Add(1)-1) % matching
	for _, in := range instances {
		if version == "" || in.Version == version {
			if k == 0 {
				return in, true
			}
			k--
		}
	}
	return Instance{}, false
}

// RoundRobin picks among instances in turn; for targets with no routing
// rule.
type RoundRobin struct{ next atomic.Uint64 }

// Pick returns the next instance, or false when there is none.
func (rr *RoundRobin) Pick(instances []Instance) (Instance, bool) {
	if len(instances) == 0 {
		return Instance{}, false
	}
	return instances[int(rr.next.Add(1)-1)%len(instances)], true
}
