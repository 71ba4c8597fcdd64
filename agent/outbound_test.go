package agent

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/pilothouse/pilothouse/agent/wire"
)

// instance is one httptest instance of a service that says who it is.
type instance struct {
	*httptest.Server
	name string
	mu   sync.Mutex
	hits int
	last *http.Request
	code int
}

func newInstance(t *testing.T, name string) *instance {
	t.Helper()
	in := &instance{name: name, code: http.StatusOK}
	in.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in.mu.Lock()
		in.hits++
		in.last = r
		code := in.code
		in.mu.Unlock()
		w.WriteHeader(code)
		_, _ = io.WriteString(w, in.name+" "+r.URL.RequestURI())
	}))
	t.Cleanup(in.Close)
	return in
}

func (in *instance) addr() string { return strings.TrimPrefix(in.URL, "http://") }

func (in *instance) count() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.hits
}

func (in *instance) setCode(c int) {
	in.mu.Lock()
	in.code = c
	in.mu.Unlock()
}

// knowEndpoints feeds the agent a heartbeat reply naming the instances.
func knowEndpoints(t *testing.T, a *Agent, eps map[string][]wire.Endpoint) {
	t.Helper()
	b, err := json.Marshal(wire.HeartbeatReply{OK: true, Endpoints: eps})
	if err != nil {
		t.Fatal(err)
	}
	a.readReply(b)
}

func get(t *testing.T, c *http.Client, url string, h http.Header) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestDiscoveryAndWeightedRouting(t *testing.T) {
	a, rec := newTestAgent(t)
	stable, canary := newInstance(t, "stable"), newInstance(t, "canary")
	knowEndpoints(t, a, map[string][]wire.Endpoint{"orders": {
		{Instance: "o-1", Address: stable.addr(), Version: "v1"},
		{Instance: "o-2", Address: canary.addr(), Version: "v2"},
	}})
	c := &http.Client{Transport: a.Transport(nil)}

	// No rule: round robin over both instances.
	for range 4 {
		get(t, c, "http://orders/orders/1", nil)
	}
	if stable.count() != 2 || canary.count() != 2 {
		t.Fatalf("round robin: got %d/%d, want 2/2", stable.count(), canary.count())
	}
	sp := lastSpan(t, rec)
	if attrs := spanAttrs(sp); attrs[wire.AttrAction] != wire.ActionRouted || attrs["pilothouse.route.target"] != "orders" {
		t.Errorf("client span: got %v, want action routed to orders", attrs)
	}

	mustApply(t, a, wire.Policy{Version: 1, Routes: []wire.RoutingRule{{
		RuleMeta: wire.RuleMeta{ID: "orders-canary"}, Target: "orders",
		Subsets:   []wire.Subset{{Name: "stable", Version: "v1", Weight: 90}, {Name: "canary", Version: "v2", Weight: 10}},
		Overrides: []wire.HeaderRoute{{Header: wire.HeaderMatch{Name: "X-Canary", Value: "yes"}, Subset: "canary"}},
	}}})
	s0, c0 := stable.count(), canary.count()
	const n = 1000
	for range n {
		code, _ := get(t, c, "http://orders/orders/1?x=1", nil)
		if code != http.StatusOK {
			t.Fatalf("routed call: got %d, want 200", code)
		}
	}
	got := canary.count() - c0
	// 10% of 1000: the binomial standard deviation is about 9.5; 5 of them
	// either way fails once in millions of runs.
	if got < 52 || got > 148 {
		t.Errorf("canary share: got %d of %d, want about 100", got, n)
	}
	if stable.count()-s0+got != n {
		t.Errorf("calls: got %d, want %d", stable.count()-s0+got, n)
	}
	c1 := canary.count()
	for range 5 {
		get(t, c, "http://orders/x", http.Header{"X-Canary": {"yes"}})
	}
	if canary.count()-c1 != 5 {
		t.Errorf("header override: got %d canary calls, want 5", canary.count()-c1)
	}
	if attrs := spanAttrs(lastSpan(t, rec)); attrs[wire.AttrRuleID] != "orders-canary" || attrs["pilothouse.route.subset"] != "canary" {
		t.Errorf("client span: got %v, want rule orders-canary, subset canary", attrs)
	}
	if ruleCount(a, "orders-canary", wire.ActionRouted) != n+5 {
		t.Errorf("routed count: got %d, want %d", ruleCount(a, "orders-canary", wire.ActionRouted), n+5)
	}

	// Unknown hosts are called as they are.
	if code, body := get(t, c, stable.URL+"/direct", nil); code != 200 || body != "stable /direct" {
		t.Errorf("direct call: got %d %q", code, body)
	}
}

func TestOutboundBreakerAndTimeout(t *testing.T) {
	clock := newTestClock()
	a, rec := newTestAgent(t, withClock(clock.now))
	down := newInstance(t, "payments")
	down.setCode(http.StatusInternalServerError)
	knowEndpoints(t, a, map[string][]wire.Endpoint{"payments": {{Instance: "p-1", Address: down.addr()}}})
	mustApply(t, a, wire.Policy{Version: 1, Breakers: []wire.BreakerRule{{
		RuleMeta: wire.RuleMeta{ID: "payments-breaker"}, Target: "payments",
		Strategy: wire.StrategyConsecutiveErrors, Threshold: 2, OpenFor: wire.Duration(time.Minute),
	}}})
	c := &http.Client{Transport: a.Transport(nil)}
	for i := range 2 {
		if code, _ := get(t, c, "http://payments/charge", nil); code != 500 {
			t.Fatalf("call %d: got %d, want 500", i, code)
		}
	}
	// Open: answered without calling, also when called by address.
	for _, url := range []string{"http://payments/charge", down.URL + "/charge"} {
		code, body := get(t, c, url, nil)
		if code != http.StatusServiceUnavailable || !strings.Contains(body, `"rule":"payments-breaker"`) {
			t.Errorf("%s while open: got %d %q, want 503 from the breaker", url, code, body)
		}
	}
	if down.count() != 2 {
		t.Errorf("calls reaching payments: got %d, want 2", down.count())
	}
	if attrs := spanAttrs(lastSpan(t, rec)); attrs[wire.AttrAction] != wire.ActionBroken {
		t.Errorf("client span: got %v, want action broken", attrs)
	}

	// A timeout rule bounds calls to a slow target.
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	defer slow.Close()
	knowEndpoints(t, a, map[string][]wire.Endpoint{"reports": {{Instance: "r-1", Address: strings.TrimPrefix(slow.URL, "http://")}}})
	mustApply(t, a, wire.Policy{Version: 2, Timeouts: []wire.TimeoutRule{{RuleMeta: wire.RuleMeta{ID: "t"}, Target: "reports", Timeout: wire.Duration(50 * time.Millisecond)}}})
	start := time.Now()
	_, err := c.Get("http://reports/daily")
	if err == nil || time.Since(start) > 3*time.Second {
		t.Errorf("slow call: got err %v after %s, want a timeout error", err, time.Since(start))
	}
}

func TestProxy(t *testing.T) {
	a, _ := newTestAgent(t)
	orders := newInstance(t, "orders")
	knowEndpoints(t, a, map[string][]wire.Endpoint{"orders": {{Instance: "o-1", Address: orders.addr()}}})
	r := newEngine(a)
	r.Any("/api/*path", a.Proxy("orders"))
	w := serve(t, r, http.MethodGet, "/api/orders/9?full=1", http.Header{"X-Request-Id": {"proxy-req-1"}})
	if w.Code != 200 || w.Body.String() != "orders /api/orders/9?full=1" {
		t.Fatalf("proxied: got %d %q, want the orders answer for the same path and query", w.Code, w.Body.String())
	}
	orders.mu.Lock()
	last := orders.last
	orders.mu.Unlock()
	if last.Header.Get("X-Request-ID") != "proxy-req-1" || last.Header.Get("Traceparent") == "" {
		t.Errorf("forwarded headers: got request id %q traceparent %q, want both", last.Header.Get("X-Request-ID"), last.Header.Get("Traceparent"))
	}

	// An unreachable target answers 502.
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	r2 := gin.New()
	r2.Use(a.Middleware())
	r2.GET("/x", a.Proxy(strings.TrimPrefix(dead.URL, "http://")))
	if w := serve(t, r2, http.MethodGet, "/x", nil); w.Code != http.StatusBadGateway {
		t.Errorf("dead target: got %d, want 502", w.Code)
	}
}
