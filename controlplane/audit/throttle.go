package audit

import (
	"sync"
	"time"
)

// Throttle lets at most one event per key through per interval, so that a
// flood (an agent with a wrong token retrying every second) leaves one
// audit record a minute, not thousands. It remembers at most maxKeys keys;
// beyond that, new keys are refused until old ones age out, which bounds
// its memory whatever the number of sources. It is safe for concurrent
// use.
type Throttle struct {
	every   time.Duration
	maxKeys int

	mu   sync.Mutex
	last map[string]time.Time
}

// NewThrottle returns a Throttle letting one event per key through every
// interval, remembering at most maxKeys keys (minimum 1).
func NewThrottle(every time.Duration, maxKeys int) *Throttle {
	return &Throttle{every: every, maxKeys: max(maxKeys, 1), last: map[string]time.Time{}}
}

// Allow reports whether an event for key at now may be recorded.
func (t *Throttle) Allow(key string, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if last, ok := t.last[key]; ok && now.Sub(last) < t.every {
		return false
	}
	if _, ok := t.last[key]; !ok && len(t.last) >= t.maxKeys {
		for k, last := range t.last {
			if now.Sub(last) >= t.every {
				delete(t.last, k)
			}
		}
		if len(t.last) >= t.maxKeys {
			return false
		}
	}
	t.last[key] = now
	return true
}
