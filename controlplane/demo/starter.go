package demo

import (
	"context"
	"fmt"
	"time"

	"github.com/pilothouse/pilothouse/agent/wire"
	"github.com/pilothouse/pilothouse/controlplane/audit"
	"github.com/pilothouse/pilothouse/controlplane/policy"
	"github.com/pilothouse/pilothouse/examples/shop/services"
)

// starterActor is who the starter policies are stored and audited as.
const starterActor = "demo"

// starterPolicies gives the shop something to steer on the first run: a
// degradation of the slow daily report, switched off, to switch on from
// the Policies page; a per-client rate limit on order lookups in shadow
// mode, which marks what it would limit without limiting; and a breaker
// on orders' calls to payments.
func starterPolicies() []wire.Policy {
	return []wire.Policy{
		{
			Service: services.Orders,
			Degradations: []wire.DegradationRule{{
				RuleMeta: wire.RuleMeta{ID: "daily-report-cached", Description: "serve a canned answer instead of the slow daily report"},
				Match:    wire.Match{Route: "/reports/daily", Method: "GET"},
				Enabled:  false,
				Fallback: wire.Response{Status: 200, ContentType: "application/json", Body: `{"report":"daily","degraded":true}`},
			}},
			Breakers: []wire.BreakerRule{{
				RuleMeta:    wire.RuleMeta{ID: "payments-breaker", Description: "stop calling payments while half its calls fail"},
				Target:      services.Payments,
				Threshold:   0.5,
				MinRequests: 20,
				Window:      wire.Duration(30 * time.Second),
				OpenFor:     wire.Duration(10 * time.Second),
			}},
		},
		{
			Service: services.Gateway,
			RateLimits: []wire.RateLimitRule{{
				RuleMeta: wire.RuleMeta{ID: "order-lookups-per-client", Mode: wire.Shadow,
					Description: "3 order lookups per second per client; shadow: only marks what it would limit"},
				Match: wire.Match{Route: "/api/orders/:id"},
				Rate:  3,
				Burst: 3,
				Key:   wire.KeyClientIP,
			}},
		},
	}
}

// storeStarterPolicies stores each starter policy whose service has none
// yet (so a restart keeps the operator's changes), through the policy
// store's history and the audit log like any other change.
func (d *Demo) storeStarterPolicies(ctx context.Context) error {
	store, log := d.server.Policies(), d.server.Audit()
	for _, p := range starterPolicies() {
		if store.Current(p.Service).Version != 0 {
			continue
		}
		by := policy.Author{Actor: starterActor, Reason: "starter policy of the demo"}
		stored, err := store.Put(ctx, p, 0, by)
		if err != nil {
			return fmt.Errorf("demo: starter policy for %s: %w", p.Service, err)
		}
		e := audit.Event{Time: time.Now(), Actor: starterActor, Action: audit.ActionPolicyUpdate, Target: p.Service,
			Detail: fmt.Sprintf("version %d: %s", stored.Version, by.Reason)}
		if h, err := store.History(ctx, p.Service, 1); err == nil && len(h) == 1 {
			e.Time, e.Diff = h[0].Time, h[0].Diff
		}
		if _, err := log.Record(ctx, e); err != nil {
			return fmt.Errorf("demo: audit starter policy for %s: %w", p.Service, err)
		}
	}
	return nil
}
