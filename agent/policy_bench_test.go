package agent

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/pilothouse/pilothouse/agent/wire"
)

// The policy benchmarks: the agent-overhead benchmark with a full policy
// set in force, next to BenchmarkGinBare and BenchmarkGinAgent, and the
// cost of single decisions.
//
//	go test ./agent -run '^$' -bench 'GinBare|GinAgent|Decide' -benchtime 2s -count 3

// fullPolicy has a rule of every kind: a degradation of another route, a
// rate limit that passes, an inbound breaker, a shadow rate limit, and
// outbound routing, breaker and timeout rules.
func fullPolicy(service string) wire.Policy {
	return wire.Policy{Service: service, Version: 1,
		Degradations: []wire.DegradationRule{{RuleMeta: wire.RuleMeta{ID: "reports-off"}, Match: wire.Match{Route: "/reports/daily", Method: http.MethodGet},
			Enabled: true, Fallback: wire.Response{Status: 200, Body: `{"degraded":true}`}}},
		RateLimits: []wire.RateLimitRule{
			{RuleMeta: wire.RuleMeta{ID: "users-limit"}, Match: wire.Match{Route: "/users/:id"}, Rate: 1e9, Burst: 1e9},
			{RuleMeta: wire.RuleMeta{ID: "users-ip-shadow", Mode: wire.Shadow}, Match: wire.Match{Route: "/users/:id"}, Rate: 1e9, Burst: 1e9, Key: wire.KeyClientIP},
		},
		Breakers: []wire.BreakerRule{
			{RuleMeta: wire.RuleMeta{ID: "users-breaker"}, Match: &wire.Match{Route: "/users/:id"}, Threshold: 0.5},
			{RuleMeta: wire.RuleMeta{ID: "payments-breaker"}, Target: "payments", Threshold: 0.5},
		},
		Routes: []wire.RoutingRule{{RuleMeta: wire.RuleMeta{ID: "orders-canary"}, Target: "orders",
			Subsets: []wire.Subset{{Name: "stable", Version: "v1", Weight: 9}, {Name: "canary", Version: "v2", Weight: 1}}}},
		Timeouts: []wire.TimeoutRule{{RuleMeta: wire.RuleMeta{ID: "payments-timeout"}, Target: "payments", Timeout: wire.Duration(2 * time.Second)}},
	}
}

// benchDecide measures decide (and recording the breakers' outcome) alone
// for route, with the full policy, on every core sharing the rules' state
// (parallel) or on one.
func benchDecide(b *testing.B, route string, wantReject, parallel bool) {
	a, err := New("bench", withEnv(noEnv), WithControlPlane(""), WithLocalLog(discardWriter{}))
	if err != nil {
		b.Fatalf("New: %v", err)
	}
	b.Cleanup(func() { _ = a.Shutdown(context.Background()) })
	if err := a.ApplyPolicy(fullPolicy("bench")); err != nil {
		b.Fatalf("ApplyPolicy: %v", err)
	}
	c, _ := gin.CreateTestContext(httptest.NewRecorder())
	c.Request = httptest.NewRequest(http.MethodGet, route, nil)
	one := func(st *requestState) {
		st.verdict = verdict{}
		if got := a.decide(c, st, http.MethodGet, route); got != wantReject {
			b.Fatalf("decide %s: got %v, want %v", route, got, wantReject)
		}
		a.recordOutcome(&st.verdict, http.StatusOK, time.Millisecond)
	}
	b.ReportAllocs()
	b.ResetTimer()
	if !parallel {
		st := &requestState{span: serverSpan{client: "127.0.0.1"}}
		for b.Loop() {
			one(st)
		}
		return
	}
	b.RunParallel(func(pb *testing.PB) {
		st := &requestState{span: serverSpan{client: "127.0.0.1"}}
		for pb.Next() {
			one(st)
		}
	})
}

// BenchmarkDecideNoRule: a route no rule matches.
func BenchmarkDecideNoRule(b *testing.B) {
	b.Run("serial", func(b *testing.B) { benchDecide(b, "/other", false, false) })
	b.Run("parallel", func(b *testing.B) { benchDecide(b, "/other", false, true) })
}

// BenchmarkDecideLimitsAndBreaker: three decisions on one request, two
// rate limits (one shadow) and a breaker that pass, with the breaker's
// outcome recorded.
func BenchmarkDecideLimitsAndBreaker(b *testing.B) {
	b.Run("serial", func(b *testing.B) { benchDecide(b, "/users/:id", false, false) })
	b.Run("parallel", func(b *testing.B) { benchDecide(b, "/users/:id", false, true) })
}

// BenchmarkDecideDegraded: the degradation answers.
func BenchmarkDecideDegraded(b *testing.B) {
	b.Run("serial", func(b *testing.B) { benchDecide(b, "/reports/daily", true, false) })
	b.Run("parallel", func(b *testing.B) { benchDecide(b, "/reports/daily", true, true) })
}
