package dashboard

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/pilothouse/pilothouse/agent/wire"
	"github.com/pilothouse/pilothouse/controlplane/policy"
	"github.com/pilothouse/pilothouse/controlplane/registry"
	"github.com/pilothouse/pilothouse/ui"
)

// policyFixture is a real policy store and registry behind the dashboard.
type policyFixture struct {
	now     time.Time
	pol     *policy.Store
	reg     *registry.Registry
	src     *Source
	h       http.Handler
	changed []policy.Change
}

func newPolicyFixture(t *testing.T) *policyFixture {
	t.Helper()
	f := &policyFixture{now: time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)}
	clock := f.now.Add(-5 * time.Minute)
	pol, err := policy.Open(t.TempDir(), func() time.Time { clock = clock.Add(time.Minute); return clock })
	if err != nil {
		t.Fatalf("open policy store: %v", err)
	}
	t.Cleanup(func() { pol.Close() })
	f.pol = pol
	f.reg = registry.New(registry.Options{})
	ctx := context.Background()
	// A fresh policy per write: the store keeps the slices it is given.
	orders := func(enabled bool) wire.Policy {
		return wire.Policy{Service: "orders", Degradations: []wire.DegradationRule{{RuleMeta: wire.RuleMeta{ID: "reports-off", Description: "slow <b>reports</b>"},
			Match: wire.Match{Route: "/reports/daily", Method: "GET"}, Enabled: enabled, Fallback: wire.Response{Status: 503, Body: "later"}}}}
	}
	if _, err := pol.Put(ctx, orders(false), 0, policy.Author{Actor: "alice", Reason: "first"}); err != nil {
		t.Fatal(err)
	}
	if _, err := pol.Put(ctx, orders(true), 1, policy.Author{Actor: "bob", Reason: "reports are slow"}); err != nil {
		t.Fatal(err)
	}
	if _, err := pol.Put(ctx, wire.Policy{Service: "billing", Timeouts: []wire.TimeoutRule{{RuleMeta: wire.RuleMeta{ID: "t"}, Target: "bank", Timeout: wire.Duration(time.Second)}}}, 0, policy.Author{Actor: "alice"}); err != nil {
		t.Fatal(err)
	}
	for i, inst := range []string{"orders-0", "orders-1"} {
		hb := wire.Heartbeat{Service: "orders", InstanceID: inst, StartedAt: f.now.Add(-time.Hour), SentAt: f.now, Interval: wire.Duration(2 * time.Second),
			PolicyVersion: 2, Rules: []wire.RuleStats{{RuleID: "reports-off", Action: wire.ActionDegraded, Count: 10}},
			Breakers: []wire.BreakerStatus{{RuleID: "payments-breaker", Target: "payments", State: "open", Since: f.now.Add(-time.Second), Reason: "error ratio 0.7"}}}
		if i == 1 {
			hb.PolicyVersion, hb.PolicyErrorVersion, hb.PolicyError = 1, 2, "degradations[0].match.route: unknown route"
		}
		f.reg.Observe(hb, "127.0.0.1", f.now)
	}
	f.src = New(openStore(t, t.TempDir()), f.reg, WithPolicies(pol), WithPolicyChanged(func(ctx context.Context, c policy.Change) { f.changed = append(f.changed, c) }))
	f.h = ui.New(f.src, ui.WithPolicies(f.src), ui.WithClock(func() time.Time { return f.now }), ui.WithUser(func(*http.Request) string { return "carol" }))
	return f
}

func TestPolicySourceReadsTheStores(t *testing.T) {
	f := newPolicyFixture(t)
	ctx := context.Background()
	sums, err := f.src.PolicyServices(ctx, f.now)
	if err != nil {
		t.Fatal(err)
	}
	if len(sums) != 2 || sums[0].Service != "billing" || sums[1].Service != "orders" || sums[1].Policy.Version != 2 || len(sums[1].Instances) != 2 {
		t.Fatalf("policy services: got %+v, want billing (stored only) and orders (both)", sums)
	}
	d, err := f.src.Policy(ctx, "orders", f.now, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.History) != 2 || d.History[0].Actor != "bob" || d.History[0].Reason != "reports are slow" || !strings.Contains(d.History[0].Diff, `+      "enabled": true`) {
		t.Errorf("history: got %+v", d.History)
	}
	if len(d.Counters) != 1 || d.Counters[0].Count != 20 {
		t.Errorf("counters: got %+v, want 20 degraded summed over 2 instances", d.Counters)
	}
	if in := d.Instances[1]; in.RejectedVersion != 2 || in.Error == "" || in.AppliedVersion != 1 || len(in.Breakers) != 1 {
		t.Errorf("rejecting instance: got %+v", in)
	}
	if len(d.Breakers) != 2 || d.Breakers[0].To != "open" || d.Breakers[0].Reason != "error ratio 0.7" {
		t.Errorf("breaker events: got %+v, want one per instance", d.Breakers)
	}
	changes, err := f.src.PolicyChanges(ctx, "orders", f.now.Add(-3*time.Minute-time.Second), f.now)
	if err != nil || len(changes) != 1 || changes[0].Version != 2 {
		t.Errorf("changes since 3 minutes ago: got %+v (%v), want version 2 only", changes, err)
	}
}

func TestPolicySourceErrors(t *testing.T) {
	f := newPolicyFixture(t)
	ctx := context.Background()
	cur := f.pol.Current("orders")

	_, err := f.src.SavePolicy(ctx, cur, 1, ui.Author{Actor: "carol"})
	var ce *ui.ConflictError
	if !errors.Is(err, ui.ErrConflict) || !errors.As(err, &ce) || ce.Actor != "bob" || ce.Current != 2 || ce.Base != 1 {
		t.Errorf("stale save: got %v (%+v), want a conflict naming bob and version 2", err, ce)
	}
	bad := cur
	bad.Degradations = []wire.DegradationRule{{RuleMeta: wire.RuleMeta{ID: "x"}}}
	_, err = f.src.SavePolicy(ctx, bad, 2, ui.Author{Actor: "carol"})
	if fe, ok := wire.AsFieldErrors(err); !ok || len(fe) == 0 {
		t.Errorf("invalid save: got %v, want field errors", err)
	}
	_, err = f.src.RollbackPolicy(ctx, "orders", 9, 2, ui.Author{Actor: "carol"})
	if !errors.Is(err, ui.ErrNotFound) {
		t.Errorf("rollback to a missing version: got %v, want ui.ErrNotFound", err)
	}
	if len(f.changed) != 0 {
		t.Errorf("change hook: got %d calls for failed writes, want 0", len(f.changed))
	}
	if _, err := New(nil, f.reg).Policy(ctx, "orders", f.now, 1); !errors.Is(err, ErrNoPolicies) {
		t.Errorf("without WithPolicies: got %v, want ErrNoPolicies", err)
	}
}

func postForm(t *testing.T, h http.Handler, target string, form url.Values) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, target, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.RemoteAddr = "198.51.100.4:999"
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestPolicyPagesOverRealStore(t *testing.T) {
	f := newPolicyFixture(t)
	// Toggle off, then a rule from the form, then roll back to v1.
	steps := []struct {
		name   string
		target string
		form   url.Values
		check  func(t *testing.T, p wire.Policy)
	}{
		{"toggle", "/services/orders/policy/degradations/reports-off/toggle", url.Values{"base": {"2"}, "enabled": {"false"}},
			func(t *testing.T, p wire.Policy) {
				if p.Degradations[0].Enabled {
					t.Errorf("after toggle: got enabled, want off")
				}
			}},
		{"create rate limit", "/services/orders/policy/rate_limits", url.Values{"base": {"3"}, "id": {"rl"}, "rate": {"10"}, "reason": {"protect the db"}},
			func(t *testing.T, p wire.Policy) {
				if len(p.RateLimits) != 1 || p.RateLimits[0].Rate != 10 {
					t.Errorf("after create: got %+v", p.RateLimits)
				}
			}},
		{"rollback", "/services/orders/policy/rollback", url.Values{"base": {"4"}, "to": {"1"}},
			func(t *testing.T, p wire.Policy) {
				if len(p.RateLimits) != 0 || p.Degradations[0].Enabled {
					t.Errorf("after rollback to v1: got %+v", p)
				}
			}},
	}
	for i, s := range steps {
		rec := postForm(t, f.h, s.target, s.form)
		if rec.Code != http.StatusSeeOther {
			t.Fatalf("%s: got %d, want 303: %s", s.name, rec.Code, rec.Body.String())
		}
		p := f.pol.Current("orders")
		if want := int64(3 + i); p.Version != want {
			t.Fatalf("%s: got version %d, want %d", s.name, p.Version, want)
		}
		s.check(t, p)
	}
	hist, err := f.pol.History(context.Background(), "orders", 3)
	if err != nil {
		t.Fatal(err)
	}
	if hist[1].Actor != "carol" || hist[1].Remote != "198.51.100.4:999" || hist[1].Reason != "protect the db" || hist[0].Action != "rollback" {
		t.Errorf("audit records: got %+v", hist)
	}
	if len(f.changed) != 3 || f.changed[2].Version != 5 || f.changed[2].Diff == "" {
		t.Errorf("change hook: got %d calls, want 3 with diffs", len(f.changed))
	}

	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/services/orders/policy", nil))
	doc, err := goquery.NewDocumentFromReader(rec.Body)
	if err != nil {
		t.Fatal(err)
	}
	if got := doc.Find(sel("history-row")).Length(); got != 5 {
		t.Errorf("history rows: got %d, want 5", got)
	}
	if got := doc.Find(sel("convergence")).Text(); got != "0/2 instances on v5" {
		t.Errorf("convergence: got %q, want 0/2 on v5", got)
	}
	if got := doc.Find(sel("rule-description")).Text(); got != "slow <b>reports</b>" {
		t.Errorf("description: got %q, want the text, escaped", got)
	}
}
