package registry

import (
	"fmt"
	"testing"
	"time"

	"github.com/pilothouse/pilothouse/agent/wire"
)

var t0 = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

func beat(service, id string, routes ...wire.RouteSummary) wire.Heartbeat {
	return wire.Heartbeat{
		Service: service, InstanceID: id, Address: "127.0.0.1:8080", Version: "v1",
		StartedAt: t0, SentAt: t0, Interval: wire.Duration(5 * time.Second), Routes: routes,
	}
}

func route(method, path string, requests, errors int64, p95 time.Duration) wire.RouteSummary {
	return wire.RouteSummary{Method: method, Route: path, Requests: requests, Errors: errors,
		DurationSum: wire.Duration(time.Duration(requests) * p95 / 2), P50: wire.Duration(p95 / 2),
		P95: wire.Duration(p95), P99: wire.Duration(p95), Max: wire.Duration(p95)}
}

func TestHealth(t *testing.T) {
	tests := []struct {
		name    string
		checks  []wire.CheckResult
		age     time.Duration
		want    Health
		wantSvc Health
	}{
		{name: "fresh beat", age: time.Second, want: Healthy, wantSvc: Healthy},
		{name: "two missed beats", age: 14 * time.Second, want: Healthy, wantSvc: Healthy},
		{name: "three missed beats", age: 16 * time.Second, want: Down, wantSvc: Down},
		{name: "failing check", age: time.Second, checks: []wire.CheckResult{{Name: "db", OK: false, Message: "timeout"}}, want: Degraded, wantSvc: Degraded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := New(Options{})
			hb := beat("orders", "a")
			hb.Checks = tt.checks
			r.Observe(hb, "127.0.0.1:1", t0)
			s, ok := r.Service("orders", t0.Add(tt.age))
			if !ok {
				t.Fatal("service not found")
			}
			if got := s.Instances[0].Health; got != tt.want {
				t.Errorf("instance health: got %s, want %s", got, tt.want)
			}
			if s.Health != tt.wantSvc {
				t.Errorf("service health: got %s, want %s", s.Health, tt.wantSvc)
			}
		})
	}
}

func TestOneDownInstanceDegradesService(t *testing.T) {
	r := New(Options{})
	r.Observe(beat("orders", "a"), "", t0)
	r.Observe(beat("orders", "b"), "", t0.Add(20*time.Second))
	s, _ := r.Service("orders", t0.Add(21*time.Second))
	if s.Health != Degraded {
		t.Errorf("got %s, want %s", s.Health, Degraded)
	}
	if got := len(r.Instances("orders", t0.Add(21*time.Second))); got != 1 {
		t.Errorf("live instances: got %d, want 1", got)
	}
}

func TestRoutesAndRates(t *testing.T) {
	r := New(Options{})
	// Two instances report the same route in the same bucket.
	r.Observe(beat("orders", "a", route("GET", "/orders/:id", 100, 10, 40*time.Millisecond)), "", t0)
	r.Observe(beat("orders", "b", route("GET", "/orders/:id", 300, 0, 80*time.Millisecond)), "", t0.Add(time.Second))
	s, _ := r.Service("orders", t0.Add(2*time.Second))
	if len(s.Routes) != 1 {
		t.Fatalf("routes: got %d, want 1", len(s.Routes))
	}
	rs := s.Routes[0]
	if rs.Requests != 400 || rs.Errors != 10 {
		t.Errorf("got %d requests %d errors, want 400 and 10", rs.Requests, rs.Errors)
	}
	if want := 70 * time.Millisecond; rs.P95 != want {
		t.Errorf("weighted p95: got %s, want %s", rs.P95, want)
	}
	// Seen for 7 s: the first beat's 5 s interval plus 2 s.
	if want := 400.0 / 7; s.RequestsPerSec != want {
		t.Errorf("req/s: got %v, want %v", s.RequestsPerSec, want)
	}
	if want := 10.0 / 400; s.ErrorRate != want {
		t.Errorf("error rate: got %v, want %v", s.ErrorRate, want)
	}
	if n := len(s.Series); n != 30 {
		t.Fatalf("series points: got %d, want 30", n)
	}
	if last := s.Series[len(s.Series)-1]; last.Requests != 400 {
		t.Errorf("last point requests: got %d, want 400", last.Requests)
	}
}

func TestOldBucketsLeaveWindows(t *testing.T) {
	r := New(Options{})
	r.Observe(beat("orders", "a", route("GET", "/x", 60, 0, time.Millisecond)), "", t0)
	r.Observe(beat("orders", "a"), "", t0.Add(10*time.Minute))
	s, _ := r.Service("orders", t0.Add(10*time.Minute))
	if s.RequestsPerSec != 0 {
		t.Errorf("req/s after 10 min: got %v, want 0", s.RequestsPerSec)
	}
	if len(s.Routes) != 0 {
		t.Errorf("routes after 10 min: got %d, want 0", len(s.Routes))
	}
	if got := s.Series[len(s.Series)-21].Requests; got != 60 {
		t.Errorf("series 10 min back: got %d, want 60", got)
	}
}

// TestSeriesSpans: every point covers its whole bucket but the one in
// progress, which covers the time since its start.
func TestSeriesSpans(t *testing.T) {
	r := New(Options{})
	now := t0.Truncate(DefaultBucket).Add(12 * time.Second)
	r.Observe(beat("orders", "a", route("GET", "/x", 5, 0, time.Millisecond)), "", now)
	s, _ := r.Service("orders", now)
	for i, p := range s.Series[:len(s.Series)-1] {
		if p.Span != DefaultBucket {
			t.Fatalf("point %d: span %v, want %v", i, p.Span, DefaultBucket)
		}
	}
	if last := s.Series[len(s.Series)-1]; last.Span != 12*time.Second || last.Requests != 5 {
		t.Errorf("point in progress: span %v with %d requests, want 12s and 5", last.Span, last.Requests)
	}
}

func TestForgetSilentInstances(t *testing.T) {
	r := New(Options{ForgetAfter: time.Minute})
	r.Observe(beat("orders", "a"), "", t0)
	if got := len(r.Services(t0.Add(2 * time.Minute))); got != 0 {
		t.Errorf("services: got %d, want 0", got)
	}
}

func TestRouteCardinalityCap(t *testing.T) {
	r := New(Options{})
	var routes []wire.RouteSummary
	for i := 0; i < MaxRoutesPerService+50; i++ {
		routes = append(routes, route("GET", fmt.Sprintf("/r%d", i), 1, 0, time.Millisecond))
	}
	r.Observe(beat("orders", "a", routes...), "", t0)
	s, _ := r.Service("orders", t0)
	if got := len(s.Routes); got > MaxRoutesPerService+1 {
		t.Errorf("routes: got %d, want at most %d", got, MaxRoutesPerService+1)
	}
	var other int64
	for _, rs := range s.Routes {
		if rs.Route == otherRoute {
			other = rs.Requests
		}
	}
	if other != 50 {
		t.Errorf("other bucket: got %d requests, want 50", other)
	}
}

func TestFoldedRoutesAndMethods(t *testing.T) {
	r := New(Options{})
	var routes []wire.RouteSummary
	for i := 0; i < MaxRoutesPerService; i++ {
		routes = append(routes, route("GET", fmt.Sprintf("/r%d", i), 1, 0, time.Millisecond))
	}
	// Past the cap: made-up methods must not add keys one by one.
	for i := 0; i < 300; i++ {
		routes = append(routes, route(fmt.Sprintf("M%d", i), fmt.Sprintf("/x%d", i), 1, 0, time.Millisecond))
	}
	routes = append(routes, route("POST", "/late", 1, 0, time.Millisecond))
	r.Observe(beat("orders", "a", routes...), "", t0)
	s, _ := r.Service("orders", t0)
	if got, want := len(s.Routes), MaxRoutesPerService+2; got != want {
		t.Errorf("routes: got %d, want %d (the cap, other for POST, other for made-up methods)", got, want)
	}
	if got := r.FoldedRoutes(); got != 301 {
		t.Errorf("FoldedRoutes: got %d, want 301", got)
	}
}

func TestRateOfANewService(t *testing.T) {
	r := New(Options{})
	r.Observe(beat("orders", "a", route("GET", "/x", 100, 0, time.Millisecond)), "", t0)
	s, _ := r.Service("orders", t0.Add(10*time.Second))
	if want := 100.0 / 15; s.RequestsPerSec != want {
		t.Errorf("req/s 10 s after a first beat covering 5 s: got %v, want %v", s.RequestsPerSec, want)
	}
}

func TestRulesAndBreakerHistory(t *testing.T) {
	r := New(Options{})
	hb := beat("orders", "a")
	hb.PolicyVersion = 3
	hb.Rules = []wire.RuleStats{{RuleID: "rl", Action: "limited", Count: 5}}
	hb.Breakers = []wire.BreakerStatus{{RuleID: "br", Target: "payments", State: "closed"}}
	r.Observe(hb, "", t0)
	hb2 := beat("orders", "b")
	hb2.Rules = []wire.RuleStats{{RuleID: "rl", Action: "limited", Count: 2}}
	r.Observe(hb2, "", t0)

	hb.Breakers = []wire.BreakerStatus{{RuleID: "br", Target: "payments", State: "open", Since: t0.Add(time.Second), Reason: "errors 60%"}}
	r.Observe(hb, "", t0.Add(2*time.Second))
	hb.Breakers[0].State = "half-open"
	r.Observe(hb, "", t0.Add(4*time.Second))

	s, _ := r.Service("orders", t0.Add(4*time.Second))
	if len(s.Rules) != 1 || s.Rules[0].Count != 7 {
		t.Errorf("rule counters: got %+v, want limited=7", s.Rules)
	}
	if len(s.BreakerEvents) != 2 {
		t.Fatalf("breaker events: got %+v, want 2", s.BreakerEvents)
	}
	if e := s.BreakerEvents[0]; e.From != "closed" || e.To != "open" || e.Reason != "errors 60%" || !e.Time.Equal(t0.Add(time.Second)) {
		t.Errorf("first event: got %+v", e)
	}
	if in := s.Instances[0]; in.PolicyVersion != 3 || !in.PolicyAppliedAt.Equal(t0) {
		t.Errorf("policy applied: got version %d at %s", in.PolicyVersion, in.PolicyAppliedAt)
	}
}

func TestEndpointsAndLiveInstances(t *testing.T) {
	r := New(Options{})
	a := beat("orders", "a")
	a.Address = "127.0.0.1:9001"
	b := beat("orders", "b")
	b.Address = "127.0.0.1:9002"
	b.Version = "v2"
	r.Observe(a, "", t0)
	r.Observe(b, "", t0.Add(20*time.Second))
	now := t0.Add(21 * time.Second) // a missed three beats
	eps := r.Endpoints(now)["orders"]
	if len(eps) != 1 || eps[0].Address != "127.0.0.1:9002" || eps[0].Version != "v2" {
		t.Errorf("endpoints: got %+v, want only b", eps)
	}
	if n := r.LiveInstances("orders", now); n != 1 {
		t.Errorf("live instances: got %d, want 1", n)
	}
}
