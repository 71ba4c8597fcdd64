package auth

import (
	"math"
	"sync"
	"time"
)

// Limiter is a set of token buckets, one per key, with time as an input:
// each key may spend burst attempts at once, and earns one back every
// interval. It remembers at most maxKeys keys; when full it forgets keys
// whose buckets have refilled, then arbitrary ones, so memory stays
// bounded whatever an attacker sends. It is safe for concurrent use.
type Limiter struct {
	every   time.Duration
	burst   float64
	maxKeys int

	mu      sync.Mutex
	buckets map[string]bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

// NewLimiter returns a Limiter refilling one attempt per every, up to
// burst, for at most maxKeys keys.
func NewLimiter(every time.Duration, burst, maxKeys int) *Limiter {
	return &Limiter{every: every, burst: float64(max(burst, 1)), maxKeys: max(maxKeys, 1), buckets: map[string]bucket{}}
}

func (l *Limiter) refill(b bucket, now time.Time) bucket {
	if el := now.Sub(b.at); el > 0 {
		b.tokens = math.Min(l.burst, b.tokens+float64(el)/float64(l.every))
		b.at = now
	}
	return b
}

// Allow spends one attempt for key at now. When none is left it returns
// false and how long until the next one.
func (l *Limiter) Allow(key string, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[key]
	if !ok {
		l.makeRoom(now)
		b = bucket{tokens: l.burst, at: now}
	}
	b = l.refill(b, now)
	if b.tokens < 1 {
		l.buckets[key] = b
		wait := time.Duration((1 - b.tokens) * float64(l.every))
		return false, wait
	}
	b.tokens--
	l.buckets[key] = b
	return true, 0
}

func (l *Limiter) makeRoom(now time.Time) {
	if len(l.buckets) < l.maxKeys {
		return
	}
	for k, b := range l.buckets {
		if l.refill(b, now).tokens >= l.burst {
			delete(l.buckets, k)
		}
	}
	for k := range l.buckets {
		if len(l.buckets) < l.maxKeys {
			break
		}
		delete(l.buckets, k)
	}
}

// LoginLimiter limits sign-in attempts per user name and per client IP.
type LoginLimiter struct {
	user, ip *Limiter
}

// Defaults for NewLoginLimiter: 5 attempts per user name at once then one
// a minute; 20 per client IP at once then one every 6 seconds.
const (
	DefaultUserBurst = 5
	DefaultUserEvery = time.Minute
	DefaultIPBurst   = 20
	DefaultIPEvery   = 6 * time.Second
	loginLimiterKeys = 10000
)

// NewLoginLimiter returns a LoginLimiter with the defaults above.
func NewLoginLimiter() *LoginLimiter {
	return &LoginLimiter{
		user: NewLimiter(DefaultUserEvery, DefaultUserBurst, loginLimiterKeys),
		ip:   NewLimiter(DefaultIPEvery, DefaultIPBurst, loginLimiterKeys),
	}
}

// Allow spends one attempt for both the user name and the IP. When either
// is exhausted it returns false and the longer wait.
func (l *LoginLimiter) Allow(user, ip string, now time.Time) (bool, time.Duration) {
	okIP, waitIP := l.ip.Allow(ip, now)
	if !okIP {
		return false, waitIP
	}
	okUser, waitUser := l.user.Allow(user, now)
	return okUser, waitUser
}
