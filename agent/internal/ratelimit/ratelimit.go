// Package ratelimit implements token buckets with time as an input, so a
// decision is a pure function of the bucket's state and now, and tests are
// step tables that never sleep.
package ratelimit

import (
	"math"
	"sync"
	"time"
)

// Bucket is a token bucket: it holds at most Burst tokens and refills at
// Rate tokens per second. A Bucket is safe for concurrent use.
type Bucket struct {
	mu     sync.Mutex
	rate   float64 // tokens per nanosecond
	burst  float64
	tokens float64
	last   int64 // unix nanos of the last refill
}

// NewBucket returns a full bucket. A burst below 1 means 1.
func NewBucket(ratePerSec float64, burst int, now time.Time) *Bucket {
	b := &Bucket{last: now.UnixNano()}
	b.set(ratePerSec, burst)
	b.tokens = b.burst
	return b
}

func (b *Bucket) set(ratePerSec float64, burst int) {
	b.rate = ratePerSec / float64(time.Second)
	b.burst = math.Max(1, float64(burst))
}

// SetRate changes rate and burst, keeping the tokens the bucket holds
// (capped at the new burst).
func (b *Bucket) SetRate(ratePerSec float64, burst int) {
	b.mu.Lock()
	b.set(ratePerSec, burst)
	b.tokens = math.Min(b.tokens, b.burst)
	b.mu.Unlock()
}

// AllowAt takes one token at now if there is one. When there is none it
// returns how long until there will be.
func (b *Bucket) AllowAt(now time.Time) (bool, time.Duration) {
	n := now.UnixNano()
	b.mu.Lock()
	if elapsed := n - b.last; elapsed > 0 {
		b.tokens = math.Min(b.burst, b.tokens+float64(elapsed)*b.rate)
		b.last = n
	}
	if b.tokens >= 1 {
		b.tokens--
		b.mu.Unlock()
		return true, 0
	}
	var wait time.Duration
	if b.rate > 0 {
		wait = time.Duration(math.Ceil((1 - b.tokens) / b.rate))
	} else {
		wait = time.Hour
	}
	b.mu.Unlock()
	return false, wait
}

func (b *Bucket) lastRefill() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.last
}

// MaxKeys bounds how many distinct keys a Keyed limiter tracks; past it,
// the least recently refilled half is forgotten (those keys start again
// with a full bucket).
const MaxKeys = 10000

// Keyed holds one bucket per key (client IP, header value). It is safe
// for concurrent use.
type Keyed struct {
	mu      sync.Mutex
	rate    float64
	burst   int
	buckets map[string]*Bucket
}

// NewKeyed returns a limiter that gives every key its own bucket.
func NewKeyed(ratePerSec float64, burst int) *Keyed {
	return &Keyed{rate: ratePerSec, burst: burst, buckets: map[string]*Bucket{}}
}

// SetRate changes every bucket's rate and burst, keeping their tokens.
func (k *Keyed) SetRate(ratePerSec float64, burst int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.rate, k.burst = ratePerSec, burst
	for _, b := range k.buckets {
		b.SetRate(ratePerSec, burst)
	}
}

// AllowAt takes one token from key's bucket at now.
func (k *Keyed) AllowAt(key string, now time.Time) (bool, time.Duration) {
	k.mu.Lock()
	b, ok := k.buckets[key]
	if !ok {
		if len(k.buckets) >= MaxKeys {
			k.evictLocked()
		}
		b = NewBucket(k.rate, k.burst, now)
		k.buckets[key] = b
	}
	k.mu.Unlock()
	return b.AllowAt(now)
}

// Len reports how many keys are tracked.
func (k *Keyed) Len() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.buckets)
}

func (k *Keyed) evictLocked() {
	lo, hi := int64(math.MaxInt64), int64(math.MinInt64)
	for _, b := range k.buckets {
		last := b.lastRefill()
		lo, hi = min(lo, last), max(hi, last)
	}
	mid := lo + (hi-lo)/2
	for key, b := range k.buckets {
		if b.lastRefill() <= mid {
			delete(k.buckets, key)
		}
	}
}
