package ui

import (
	"fmt"
	"testing"
	"time"

	"github.com/pilothouse/pilothouse/agent/wire"
)

// bigPolicies is a service with 50 rules (10 of each kind) and 100
// stored versions, each toggling one degradation.
func bigPolicies() *fakePolicies {
	f := newFakePolicies()
	p := wire.Policy{Service: "big"}
	for i := range 10 {
		p.RateLimits = append(p.RateLimits, wire.RateLimitRule{RuleMeta: wire.RuleMeta{ID: fmt.Sprintf("rl-%d", i), Description: "limit " + xssPayload}, Match: wire.Match{Route: fmt.Sprintf("/api/r%d/:id", i)}, Rate: 10, Key: wire.KeyClientIP})
		p.Breakers = append(p.Breakers, wire.BreakerRule{RuleMeta: wire.RuleMeta{ID: fmt.Sprintf("br-%d", i)}, Target: fmt.Sprintf("svc-%d", i), Threshold: 0.5, Window: wire.Duration(10 * time.Second)})
		p.Degradations = append(p.Degradations, wire.DegradationRule{RuleMeta: wire.RuleMeta{ID: fmt.Sprintf("dg-%d", i)}, Match: wire.Match{Route: fmt.Sprintf("/api/d%d", i)}, Fallback: wire.Response{Status: 503, Body: `{"error":"later"}`}})
		p.Routes = append(p.Routes, wire.RoutingRule{RuleMeta: wire.RuleMeta{ID: fmt.Sprintf("rt-%d", i)}, Target: fmt.Sprintf("svc-%d", i), Subsets: []wire.Subset{{Name: "a", Weight: 90}, {Name: "b", Version: "v2", Weight: 10}}})
		p.Timeouts = append(p.Timeouts, wire.TimeoutRule{RuleMeta: wire.RuleMeta{ID: fmt.Sprintf("to-%d", i)}, Target: fmt.Sprintf("svc-%d", i), Timeout: wire.Duration(time.Second)})
	}
	for v := range 100 {
		p.Degradations[v%10].Enabled = !p.Degradations[v%10].Enabled
		f.mustPut(p, "bench", fmt.Sprintf("change %d", v))
	}
	for i := range 5 {
		f.instances["big"] = append(f.instances["big"], PolicyInstance{ID: fmt.Sprintf("big-%d", i), Health: Healthy, AppliedVersion: 100, AppliedAt: testNow})
	}
	for _, m := range ruleMetas(&p, kindRateLimits) {
		f.counters["big"] = append(f.counters["big"], RuleCount{m.ID, "passed", 1000}, RuleCount{m.ID, "limited", 10})
	}
	return f
}

func BenchmarkPagePolicy50Rules100Versions(b *testing.B) {
	benchPage(b, newTestHandler(newFakeSource(), WithPolicies(bigPolicies())), "/services/big/policy?history=100")
}

func BenchmarkPagePolicies(b *testing.B) {
	benchPage(b, newTestHandler(newFakeSource(), WithPolicies(bigPolicies())), "/policies")
}
