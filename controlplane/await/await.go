// Package await is for end-to-end tests (the control plane's, the shop's):
// telemetry is exported in batches off the request path, policy travels by
// long-poll and Consul's catalog by blocking query, so what a request causes
// is true a moment later, not at once.
package await

import (
	"testing"
	"time"
)

// Interval is how often Until asks again.
const Interval = 100 * time.Millisecond

// Until polls cond until it holds and returns how long that took, or fails
// the test when within passes, with what and cond's last description of
// the state it saw.
func Until(t testing.TB, within time.Duration, what string, cond func() (ok bool, state string)) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		ok, state := cond()
		if ok {
			return time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("%s: not true after %s: %s", what, within, state)
		}
		time.Sleep(Interval)
	}
}
