package ui

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/pilothouse/pilothouse/agent/wire"
)

// fakePolicies is an in-memory PolicySource: versions with authors, the
// same conflict rule as the real store, and the instances' reports.
type fakePolicies struct {
	mu        sync.Mutex
	versions  map[string][]wire.Policy // per service, oldest first
	changes   map[string][]PolicyChange
	instances map[string][]PolicyInstance
	counters  map[string][]RuleCount
	breakers  map[string][]BreakerEvent
	series    []Point
	now       time.Time
	err       error

	lastAuthor Author
}

var _ PolicySource = (*fakePolicies)(nil)

func newFakePolicies() *fakePolicies {
	f := &fakePolicies{versions: map[string][]wire.Policy{}, changes: map[string][]PolicyChange{}, instances: map[string][]PolicyInstance{},
		counters: map[string][]RuleCount{}, breakers: map[string][]BreakerEvent{}, series: series(testNow, 100), now: testNow.Add(-10 * time.Minute)}
	p := wire.Policy{Service: "orders",
		RateLimits: []wire.RateLimitRule{{RuleMeta: wire.RuleMeta{ID: "orders-per-client", Description: "keep one client from hogging orders"}, Match: wire.Match{Route: "/orders/:id", Method: "GET"}, Rate: 50, Burst: 100, Key: wire.KeyClientIP}},
		Breakers: []wire.BreakerRule{{RuleMeta: wire.RuleMeta{ID: "payments-breaker"}, Target: "payments", Threshold: 0.5, MinRequests: 20,
			Window: wire.Duration(10 * time.Second), OpenFor: wire.Duration(30 * time.Second)}},
		Degradations: []wire.DegradationRule{{RuleMeta: wire.RuleMeta{ID: "reports-off", Description: "reports are slow: " + xssPayload},
			Match: wire.Match{Route: "/reports/daily", Method: "GET"}, Fallback: wire.Response{Status: 503, ContentType: "application/json", Body: `{"error":"later"}`}}},
		Routes: []wire.RoutingRule{{RuleMeta: wire.RuleMeta{ID: "payments-canary"}, Target: "payments",
			Subsets:   []wire.Subset{{Name: "stable", Version: "v1", Weight: 90}, {Name: "canary", Version: "v2", Weight: 10}},
			Overrides: []wire.HeaderRoute{{Header: wire.HeaderMatch{Name: "X-Canary", Value: "1"}, Subset: "canary"}}}},
		Timeouts: []wire.TimeoutRule{{RuleMeta: wire.RuleMeta{ID: "inventory-timeout", Mode: wire.Shadow}, Target: "inventory", Timeout: wire.Duration(2 * time.Second)}},
	}
	f.mustPut(p, "alice", "first rules")
	p.Degradations[0].Enabled = true
	f.mustPut(p, "bob", "reports too slow "+xssPayload)
	p.Degradations[0].Enabled = false
	f.mustPut(p, "alice", "reports back")
	f.instances["orders"] = []PolicyInstance{
		{ID: "orders-0", Health: Healthy, AppliedVersion: 3, AppliedAt: testNow.Add(-time.Minute)},
		{ID: "orders-1", Health: Healthy, AppliedVersion: 2, AppliedAt: testNow.Add(-5 * time.Minute), RejectedVersion: 3, Error: "breakers[0].threshold: " + xssPayload,
			Breakers: []BreakerState{{RuleID: "payments-breaker", Target: "payments", State: "open", Since: testNow.Add(-time.Minute), Reason: "error ratio 0.62 over 10s"}}},
	}
	f.counters["orders"] = []RuleCount{{"orders-per-client", "passed", 1200}, {"orders-per-client", "limited", 17}, {"reports-off", "degraded", 40}, {"inventory-timeout", "shadow", 3}}
	f.breakers["orders"] = []BreakerEvent{
		{Time: testNow.Add(-2 * time.Minute), Instance: "orders-1", RuleID: "payments-breaker", Target: "payments", From: "closed", To: "open", Reason: "error ratio 0.62 over 10s"},
		{Time: testNow.Add(-90 * time.Second), Instance: "orders-1", RuleID: "payments-breaker", Target: "payments", From: "open", To: "half-open", Reason: "open for 30s"},
	}
	f.instances["gateway"] = []PolicyInstance{{ID: "gateway-0", Health: Healthy}}
	return f
}

func (f *fakePolicies) mustPut(p wire.Policy, actor, reason string) {
	base := int64(len(f.versions[p.Service]))
	if _, err := f.SavePolicy(context.Background(), p, base, Author{Actor: actor, Reason: reason}); err != nil {
		panic(err)
	}
}

func (f *fakePolicies) current(service string) wire.Policy {
	vs := f.versions[service]
	if len(vs) == 0 {
		return wire.Policy{Service: service}
	}
	return vs[len(vs)-1]
}

func (f *fakePolicies) PolicyServices(ctx context.Context, now time.Time) ([]PolicySummary, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	var out []PolicySummary
	for _, name := range []string{"gateway", "orders"} {
		out = append(out, PolicySummary{Service: name, Policy: f.current(name), Instances: f.instances[name]})
	}
	return out, nil
}

func (f *fakePolicies) Policy(ctx context.Context, service string, now time.Time, history int) (PolicyDetail, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return PolicyDetail{}, f.err
	}
	d := PolicyDetail{Service: service, Policy: f.current(service), Instances: f.instances[service], Counters: f.counters[service], Breakers: f.breakers[service], Series: f.series}
	cs := f.changes[service]
	for i := len(cs) - 1; i >= 0 && len(d.History) < history; i-- {
		d.History = append(d.History, cs[i])
	}
	return d, nil
}

func (f *fakePolicies) PolicyChanges(ctx context.Context, service string, since, until time.Time) ([]PolicyChange, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []PolicyChange
	cs := f.changes[service]
	for i := len(cs) - 1; i >= 0; i-- {
		if !cs[i].Time.Before(since) && !cs[i].Time.After(until) {
			out = append(out, cs[i])
		}
	}
	return out, f.err
}

func (f *fakePolicies) SavePolicy(ctx context.Context, p wire.Policy, base int64, by Author) (wire.Policy, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := p.Validate(); err != nil {
		return wire.Policy{}, err
	}
	return f.writeLocked(p, base, by, "update")
}

func (f *fakePolicies) writeLocked(p wire.Policy, base int64, by Author, action string) (wire.Policy, error) {
	cur := f.current(p.Service)
	if cur.Version != base {
		last := f.changes[p.Service][len(f.changes[p.Service])-1]
		return wire.Policy{}, fmt.Errorf("fake: %w", &ConflictError{Service: p.Service, Base: base, Current: cur.Version, Actor: last.Actor, Time: last.Time})
	}
	// Keep a deep copy, as a store would: callers reuse their slices.
	doc, _ := json.Marshal(p)
	p = wire.Policy{}
	_ = json.Unmarshal(doc, &p)
	p.Version = cur.Version + 1
	// Like the store, diff without the version numbers.
	unversioned := func(p wire.Policy) wire.Policy { p.Version = 0; return p }
	before, _ := json.MarshalIndent(unversioned(cur), "", "  ")
	after, _ := json.MarshalIndent(unversioned(p), "", "  ")
	diff := prefixSuffixDiff(string(before), string(after))
	f.versions[p.Service] = append(f.versions[p.Service], p)
	f.now = f.now.Add(time.Minute)
	f.changes[p.Service] = append(f.changes[p.Service], PolicyChange{Version: p.Version, Time: f.now, Actor: by.Actor, Remote: by.Remote, Action: action, Reason: by.Reason, Diff: diff})
	f.lastAuthor = by
	return p, nil
}

func (f *fakePolicies) RollbackPolicy(ctx context.Context, service string, to, base int64, by Author) (wire.Policy, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	vs := f.versions[service]
	if to < 1 || to > int64(len(vs)) {
		return wire.Policy{}, fmt.Errorf("fake: %s version %d: %w", service, to, ErrNotFound)
	}
	if by.Reason == "" {
		by.Reason = fmt.Sprintf("rollback to version %d", to)
	}
	return f.writeLocked(vs[to-1], base, by, "rollback")
}

// prefixSuffixDiff is a small line diff in the store's format: the lines
// both share at the start and the end are kept, the middle is replaced.
func prefixSuffixDiff(before, after string) string {
	a, b := strings.Split(before, "\n"), strings.Split(after, "\n")
	pre := 0
	for pre < len(a) && pre < len(b) && a[pre] == b[pre] {
		pre++
	}
	suf := 0
	for suf < len(a)-pre && suf < len(b)-pre && a[len(a)-1-suf] == b[len(b)-1-suf] {
		suf++
	}
	var sb strings.Builder
	for _, l := range a[:pre] {
		sb.WriteString(" " + l + "\n")
	}
	for _, l := range a[pre : len(a)-suf] {
		sb.WriteString("-" + l + "\n")
	}
	for _, l := range b[pre : len(b)-suf] {
		sb.WriteString("+" + l + "\n")
	}
	for _, l := range a[len(a)-suf:] {
		sb.WriteString(" " + l + "\n")
	}
	return sb.String()
}
