// Package breaker is a circuit breaker with time as an input. Every state
// change goes through one function; a generation number discards outcomes
// of calls admitted in an earlier state; transitions that depend on time
// (open -> half-open) are evaluated lazily from now.
package breaker

import (
	"fmt"
	"sync"
	"time"
)

// State is a breaker state.
type State int

// Breaker states.
const (
	Closed State = iota
	Open
	HalfOpen
)

func (s State) String() string {
	switch s {
	case Closed:
		return "closed"
	case Open:
		return "open"
	case HalfOpen:
		return "half-open"
	}
	return fmt.Sprintf("state(%d)", int(s))
}

// Strategy decides when a closed breaker opens.
type Strategy int

// Strategies.
const (
	// ErrorRatio opens when failures/calls in the window reach Threshold.
	ErrorRatio Strategy = iota
	// SlowCallRatio opens when slow calls/calls reach Threshold.
	SlowCallRatio
	// ConsecutiveErrors opens after Threshold failures in a row.
	ConsecutiveErrors
)

// Settings configure a Breaker. Zero values mean: MinRequests 10, Window
// 10s, OpenFor 5s, HalfOpenProbes 1. Threshold is required.
type Settings struct {
	Strategy       Strategy
	Threshold      float64
	MinRequests    int
	Window         time.Duration
	OpenFor        time.Duration
	HalfOpenProbes int
	// OnStateChange, if set, is called (with the breaker's lock held: it
	// must not call back into the breaker) on every transition.
	OnStateChange func(from, to State, reason string)
}

const buckets = 10

type bucket struct {
	epoch           int64 // which window slice this bucket counts
	calls, failures int64
	slow            int64
}

// Breaker is safe for concurrent use.
type Breaker struct {
	mu         sync.Mutex
	s          Settings
	state      State
	generation uint64
	openedAt   time.Time
	reason     string

	window      [buckets]bucket
	consecutive int64
	probes      int // admitted while half-open
	successes   int // successful probes
}

// New returns a closed breaker.
func New(s Settings) *Breaker {
	if s.MinRequests <= 0 {
		s.MinRequests = 10
	}
	if s.Window <= 0 {
		s.Window = 10 * time.Second
	}
	if s.OpenFor <= 0 {
		s.OpenFor = 5 * time.Second
	}
	if s.HalfOpenProbes <= 0 {
		s.HalfOpenProbes = 1
	}
	return &Breaker{s: s}
}

// Allow reports whether a call may proceed at now, and the generation to
// pass to Record with its outcome.
func (b *Breaker) Allow(now time.Time) (generation uint64, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.advanceLocked(now)
	switch b.state {
	case Open:
		return b.generation, false
	case HalfOpen:
		if b.probes >= b.s.HalfOpenProbes {
			return b.generation, false
		}
		b.probes++
	}
	return b.generation, true
}

// Record reports the outcome of a call admitted by Allow in generation.
// Outcomes from an earlier generation are ignored.
func (b *Breaker) Record(generation uint64, now time.Time, failed, slow bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.advanceLocked(now)
	if generation != b.generation {
		return
	}
	switch b.state {
	case HalfOpen:
		if failed || (slow && b.s.Strategy == SlowCallRatio) {
			b.setStateLocked(Open, now, "a half-open probe failed")
			return
		}
		b.successes++
		if b.successes >= b.s.HalfOpenProbes {
			b.setStateLocked(Closed, now, fmt.Sprintf("%d half-open probes succeeded", b.successes))
		}
	case Closed:
		bk := b.bucketLocked(now)
		bk.calls++
		if failed {
			bk.failures++
			b.consecutive++
		} else {
			b.consecutive = 0
		}
		if slow {
			bk.slow++
		}
		b.tripLocked(now)
	}
}

// Release gives back a call admitted by Allow in generation that was never
// made (a later check refused the request), so a half-open probe slot is
// not held forever. It records no outcome.
func (b *Breaker) Release(generation uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if generation == b.generation && b.state == HalfOpen && b.probes > 0 {
		b.probes--
	}
}

// State returns the state at now.
func (b *Breaker) State(now time.Time) State {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.advanceLocked(now)
	return b.state
}

// Reason says why the breaker last changed state.
func (b *Breaker) Reason() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.reason
}

func (b *Breaker) tripLocked(now time.Time) {
	if b.s.Strategy == ConsecutiveErrors {
		if float64(b.consecutive) >= b.s.Threshold {
			b.setStateLocked(Open, now, fmt.Sprintf("%d consecutive errors", b.consecutive))
		}
		return
	}
	var calls, bad int64
	oldest := b.epoch(now) - buckets + 1
	for i := range b.window {
		w := &b.window[i]
		if w.epoch < oldest {
			continue
		}
		calls += w.calls
		if b.s.Strategy == SlowCallRatio {
			bad += w.slow
		} else {
			bad += w.failures
		}
	}
	if calls < int64(b.s.MinRequests) || calls == 0 {
		return
	}
	if ratio := float64(bad) / float64(calls); ratio >= b.s.Threshold {
		what := "errors"
		if b.s.Strategy == SlowCallRatio {
			what = "slow calls"
		}
		b.setStateLocked(Open, now, fmt.Sprintf("%s %.0f%% of %d calls (threshold %.0f%%)", what, ratio*100, calls, b.s.Threshold*100))
	}
}

// advanceLocked applies time-driven transitions.
func (b *Breaker) advanceLocked(now time.Time) {
	if b.state == Open && !now.Before(b.openedAt.Add(b.s.OpenFor)) {
		b.setStateLocked(HalfOpen, now, fmt.Sprintf("open for %s", b.s.OpenFor))
	}
}

func (b *Breaker) epoch(now time.Time) int64 {
	return now.UnixNano() / int64(b.s.Window/buckets)
}

func (b *Breaker) bucketLocked(now time.Time) *bucket {
	e := b.epoch(now)
	bk := &b.window[e%buckets]
	if bk.epoch != e {
		*bk = bucket{epoch: e}
	}
	return bk
}

// setStateLocked is the only place the state changes.
func (b *Breaker) setStateLocked(to State, now time.Time, reason string) {
	from := b.state
	if from == to {
		return
	}
	b.state = to
	b.generation++
	b.reason = reason
	b.probes, b.successes, b.consecutive = 0, 0, 0
	b.window = [buckets]bucket{}
	if to == Open {
		b.openedAt = now
	}
	if b.s.OnStateChange != nil {
		b.s.OnStateChange(from, to, reason)
	}
}
