package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/pilothouse/pilothouse/agent/wire"
)

// testClock is a settable clock for limiters and breakers.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newTestClock() *testClock {
	return &testClock{t: time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)}
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// syncBuffer collects local log lines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// lines returns the JSON log lines whose msg is msg.
func (s *syncBuffer) lines(t *testing.T, msg string) []map[string]any {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(s.b.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

func mustApply(t *testing.T, a *Agent, p wire.Policy) {
	t.Helper()
	if p.Service == "" {
		p.Service = "svc"
	}
	if err := a.ApplyPolicy(p); err != nil {
		t.Fatalf("ApplyPolicy v%d: got %v, want nil", p.Version, err)
	}
}

func spanAttrs(s sdktrace.ReadOnlySpan) map[string]string { return attrsOf(s.Attributes()) }

// lastServerSpan returns the most recent ended span.
func lastSpan(t *testing.T, rec *tracetest.SpanRecorder) sdktrace.ReadOnlySpan {
	t.Helper()
	spans := rec.Ended()
	if len(spans) == 0 {
		t.Fatalf("spans: got none, want at least one")
	}
	return spans[len(spans)-1]
}

func ruleCount(a *Agent, rule, act string) uint64 {
	for _, r := range a.pol.counters.stats() {
		if r.RuleID == rule && r.Action == act {
			return r.Count
		}
	}
	return 0
}

func TestDegradationAnswersTheFallback(t *testing.T) {
	logs := &syncBuffer{}
	a, rec := newTestAgent(t, WithLocalLog(logs))
	r := newEngine(a)
	mustApply(t, a, wire.Policy{Version: 3, Degradations: []wire.DegradationRule{{
		RuleMeta: wire.RuleMeta{ID: "users-off"},
		Match:    wire.Match{Route: "/users/:id", Method: http.MethodGet},
		Enabled:  true,
		Fallback: wire.Response{Status: http.StatusOK, Body: `{"user":null,"degraded":true}`},
	}}})

	w := serve(t, r, http.MethodGet, "/users/7", nil)
	if w.Code != http.StatusOK || w.Body.String() != `{"user":null,"degraded":true}` {
		t.Fatalf("response: got %d %q, want the fallback", w.Code, w.Body.String())
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("content type: got %q, want application/json", ct)
	}
	flushLocalLog(t, a)
	if n := len(logs.lines(t, "loading user")); n != 0 {
		t.Errorf("handler log lines: got %d, want 0 (the handler must not run)", n)
	}
	sp := lastSpan(t, rec)
	attrs := spanAttrs(sp)
	if attrs[wire.AttrRuleID] != "users-off" || attrs[wire.AttrAction] != wire.ActionDegraded {
		t.Errorf("span attributes: got rule %q action %q, want users-off degraded", attrs[wire.AttrRuleID], attrs[wire.AttrAction])
	}
	if evs := sp.Events(); len(evs) != 1 || evs[0].Name != policyEvent {
		t.Errorf("span events: got %v, want one %s event", evs, policyEvent)
	}
	access := logs.lines(t, "request")
	if len(access) != 1 || access[0]["rule_id"] != "users-off" || access[0]["action"] != wire.ActionDegraded {
		t.Errorf("access log: got %v, want rule_id users-off and action degraded", access)
	}
	// Another route and method are untouched.
	if w := serve(t, r, http.MethodGet, "/fail", nil); w.Code != http.StatusServiceUnavailable {
		t.Errorf("GET /fail: got %d, want the handler's 503", w.Code)
	}
	if got := ruleCount(a, "users-off", wire.ActionDegraded); got != 1 {
		t.Errorf("degraded count: got %d, want 1", got)
	}
	if a.PolicyVersion() != 3 {
		t.Errorf("PolicyVersion: got %d, want 3", a.PolicyVersion())
	}
}

func TestRateLimit(t *testing.T) {
	tests := []struct {
		name string
		rule wire.RateLimitRule
		// reqs are sent in order at the same instant; header values
		// and client addresses vary the key.
		reqs []limitReq
	}{
		{
			name: "global",
			rule: wire.RateLimitRule{Rate: 1, Burst: 2},
			reqs: []limitReq{{ip: "10.0.0.1", want: 200}, {ip: "10.0.0.2", want: 200}, {ip: "10.0.0.3", want: 429}},
		},
		{
			name: "per client IP",
			rule: wire.RateLimitRule{Rate: 1, Key: wire.KeyClientIP},
			reqs: []limitReq{{ip: "10.0.0.1", want: 200}, {ip: "10.0.0.1", want: 429}, {ip: "10.0.0.2", want: 200}},
		},
		{
			name: "per header value",
			rule: wire.RateLimitRule{Rate: 1, Key: "header:X-Tenant"},
			reqs: []limitReq{{tenant: "a", want: 200}, {tenant: "a", want: 429}, {tenant: "b", want: 200}, {tenant: "b", want: 429}},
		},
		{
			name: "custom response",
			rule: wire.RateLimitRule{Rate: 0.25, Response: &wire.Response{Status: 503, Body: "slow down"}},
			reqs: []limitReq{{want: 200}, {want: 503, body: "slow down", retry: "4"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newTestClock()
			a, rec := newTestAgent(t, withClock(clock.now))
			r := newEngine(a)
			tt.rule.ID = "rl"
			tt.rule.Match = wire.Match{Route: "/users/:id"}
			mustApply(t, a, wire.Policy{Version: 1, RateLimits: []wire.RateLimitRule{tt.rule}})
			for i, lr := range tt.reqs {
				req := httptest.NewRequest(http.MethodGet, "/users/1", nil)
				req.RemoteAddr = lr.ip + ":4000"
				if lr.ip == "" {
					req.RemoteAddr = "192.0.2.1:4000"
				}
				if lr.tenant != "" {
					req.Header.Set("X-Tenant", lr.tenant)
				}
				w := httptest.NewRecorder()
				r.ServeHTTP(w, req)
				if w.Code != lr.want {
					t.Fatalf("request %d: got %d, want %d", i, w.Code, lr.want)
				}
				if lr.want == 200 {
					continue
				}
				wantBody, wantRetry := `{"error":"rate limited","rule":"rl"}`, "1"
				if lr.body != "" {
					wantBody, wantRetry = lr.body, lr.retry
				}
				if w.Body.String() != wantBody {
					t.Errorf("request %d body: got %q, want %q", i, w.Body.String(), wantBody)
				}
				if got := w.Header().Get("Retry-After"); got != wantRetry {
					t.Errorf("request %d Retry-After: got %q, want %q", i, got, wantRetry)
				}
				if attrs := spanAttrs(lastSpan(t, rec)); attrs[wire.AttrAction] != wire.ActionLimited {
					t.Errorf("request %d span action: got %q, want limited", i, attrs[wire.AttrAction])
				}
			}
		})
	}
}

type limitReq struct {
	ip, tenant string
	want       int
	body       string
	retry      string
}

func TestRateLimitRefillsWithTheClock(t *testing.T) {
	clock := newTestClock()
	a, _ := newTestAgent(t, withClock(clock.now))
	r := newEngine(a)
	mustApply(t, a, wire.Policy{Version: 1, RateLimits: []wire.RateLimitRule{{RuleMeta: wire.RuleMeta{ID: "rl"}, Rate: 2}}})
	steps := []struct {
		name string
		at   time.Duration
		want int
	}{
		{"first token", 0, 200},
		{"second token", 0, 200},
		{"empty", 0, 429},
		{"half a second refills one", 500 * time.Millisecond, 200},
		{"empty again", 0, 429},
	}
	for _, s := range steps {
		clock.advance(s.at)
		if w := serve(t, r, http.MethodGet, "/users/1", nil); w.Code != s.want {
			t.Fatalf("%s: got %d, want %d", s.name, w.Code, s.want)
		}
	}
	if got := ruleCount(a, "rl", wire.ActionPassed); got != 3 {
		t.Errorf("passed: got %d, want 3", got)
	}
	if got := ruleCount(a, "rl", wire.ActionLimited); got != 2 {
		t.Errorf("limited: got %d, want 2", got)
	}
}

func TestShadowRulesOnlyCount(t *testing.T) {
	clock := newTestClock()
	logs := &syncBuffer{}
	a, rec := newTestAgent(t, withClock(clock.now), WithLocalLog(logs))
	r := newEngine(a)
	shadow := wire.RuleMeta{Mode: wire.Shadow}
	mustApply(t, a, wire.Policy{Version: 1,
		RateLimits: []wire.RateLimitRule{{RuleMeta: withID(shadow, "rl-shadow"), Rate: 1}},
		Degradations: []wire.DegradationRule{{RuleMeta: withID(shadow, "deg-shadow"), Match: wire.Match{Route: "/fail"}, Enabled: true,
			Fallback: wire.Response{Status: 200, Body: "fallback"}}},
	})
	for i := range 3 {
		if w := serve(t, r, http.MethodGet, "/users/1", nil); w.Code != http.StatusOK {
			t.Fatalf("request %d: got %d, want 200 (shadow never blocks)", i, w.Code)
		}
	}
	if w := serve(t, r, http.MethodGet, "/fail", nil); w.Code != http.StatusServiceUnavailable {
		t.Fatalf("GET /fail: got %d, want the handler's 503", w.Code)
	}
	if got := ruleCount(a, "rl-shadow", wire.ActionShadow); got != 3 {
		// the fourth request (/fail) matched the limit too: 1 passed, 3 shadow
		t.Errorf("rl-shadow shadow count: got %d, want 3", got)
	}
	if got := ruleCount(a, "deg-shadow", wire.ActionShadow); got != 1 {
		t.Errorf("deg-shadow shadow count: got %d, want 1", got)
	}
	attrs := spanAttrs(lastSpan(t, rec))
	if attrs[wire.AttrAction] != wire.ActionShadow || attrs[AttrShadowAction] != wire.ActionDegraded || attrs[wire.AttrRuleID] != "deg-shadow" {
		t.Errorf("span: got %v, want the first shadow decision (deg-shadow would degrade)", attrs)
	}
	flushLocalLog(t, a)
	access := logs.lines(t, "request")
	if len(access) == 0 {
		t.Fatal("access log: no lines")
	}
	last := access[len(access)-1]
	if last["action"] != wire.ActionShadow || last["would"] != wire.ActionDegraded {
		t.Errorf("access log: got %v, want action shadow, would degraded", last)
	}
}

func withID(m wire.RuleMeta, id string) wire.RuleMeta { m.ID = id; return m }

// switchable is a route whose status the test sets.
type switchable struct {
	mu     sync.Mutex
	status int
	calls  int
}

func (s *switchable) set(code int) { s.mu.Lock(); s.status = code; s.mu.Unlock() }

func (s *switchable) handle(c *gin.Context) {
	s.mu.Lock()
	code := s.status
	s.calls++
	s.mu.Unlock()
	c.String(code, "status %d", code)
}

func TestInboundBreaker(t *testing.T) {
	clock := newTestClock()
	a, rec := newTestAgent(t, withClock(clock.now))
	r := newEngine(a)
	sw := &switchable{status: 500}
	r.GET("/flaky", sw.handle)
	mustApply(t, a, wire.Policy{Version: 1, Breakers: []wire.BreakerRule{{
		RuleMeta: wire.RuleMeta{ID: "flaky-breaker"},
		Match:    &wire.Match{Route: "/flaky"},
		Strategy: wire.StrategyConsecutiveErrors, Threshold: 2,
		OpenFor:  wire.Duration(10 * time.Second),
		Fallback: &wire.Response{Status: 200, Body: `{"cached":true}`},
	}}})
	steps := []struct {
		name      string
		advance   time.Duration
		status    int
		want      int
		wantState string
	}{
		{"error 1", 0, 500, 500, "closed"},
		{"error 2 opens", time.Second, 500, 500, "open"},
		{"open: fallback", time.Second, 200, 200, "open"},
		{"half-open probe fails", 10 * time.Second, 500, 500, "open"},
		{"still open", time.Second, 200, 200, "open"},
		{"half-open probe succeeds", 10 * time.Second, 200, 200, "closed"},
		{"closed passes", 0, 200, 200, "closed"},
	}
	for _, s := range steps {
		clock.advance(s.advance)
		sw.set(s.status)
		sw.mu.Lock()
		before := sw.calls
		sw.mu.Unlock()
		w := serve(t, r, http.MethodGet, "/flaky", nil)
		if w.Code != s.want {
			t.Fatalf("%s: got %d, want %d", s.name, w.Code, s.want)
		}
		_, _, _, _, breakers := a.policyReport(clock.now())
		if len(breakers) != 1 || breakers[0].State != s.wantState {
			t.Fatalf("%s: breaker got %+v, want state %s", s.name, breakers, s.wantState)
		}
		sw.mu.Lock()
		called := sw.calls > before
		sw.mu.Unlock()
		if s.name == "open: fallback" || s.name == "still open" {
			if called || w.Body.String() != `{"cached":true}` {
				t.Fatalf("%s: handler called %v, body %q, want the fallback without the handler", s.name, called, w.Body.String())
			}
			if attrs := spanAttrs(lastSpan(t, rec)); attrs[wire.AttrAction] != wire.ActionBroken {
				t.Errorf("%s: span action got %q, want broken", s.name, attrs[wire.AttrAction])
			}
		}
	}
	_, _, _, _, breakers := a.policyReport(clock.now())
	if !strings.Contains(breakers[0].Reason, "half-open probes succeeded") || !breakers[0].Since.Equal(clock.now()) {
		t.Errorf("breaker status: got %+v, want closed since now by a probe", breakers[0])
	}
}

func TestStateAcrossVersions(t *testing.T) {
	clock := newTestClock()
	a, _ := newTestAgent(t, withClock(clock.now))
	r := newEngine(a)
	limit := wire.RateLimitRule{RuleMeta: wire.RuleMeta{ID: "rl"}, Rate: 1}
	mustApply(t, a, wire.Policy{Version: 1, RateLimits: []wire.RateLimitRule{limit}})
	if w := serve(t, r, http.MethodGet, "/users/1", nil); w.Code != 200 {
		t.Fatalf("first request: got %d, want 200", w.Code)
	}
	// Version 2 changes another rule: the bucket stays empty.
	mustApply(t, a, wire.Policy{Version: 2, RateLimits: []wire.RateLimitRule{limit},
		Degradations: []wire.DegradationRule{{RuleMeta: wire.RuleMeta{ID: "d"}, Match: wire.Match{Route: "/fail"}, Enabled: true, Fallback: wire.Response{Status: 200}}}})
	if w := serve(t, r, http.MethodGet, "/users/1", nil); w.Code != 429 {
		t.Fatalf("after an unrelated change: got %d, want 429 (limiter state kept)", w.Code)
	}
	// Version 3 changes the rule itself: a new, full bucket.
	limit.Rate = 5
	mustApply(t, a, wire.Policy{Version: 3, RateLimits: []wire.RateLimitRule{limit}})
	if w := serve(t, r, http.MethodGet, "/users/1", nil); w.Code != 200 {
		t.Fatalf("after changing the rule: got %d, want 200 (fresh limiter)", w.Code)
	}
	if got := ruleCount(a, "rl", wire.ActionLimited); got != 1 {
		t.Errorf("counters survive versions: limited got %d, want 1", got)
	}
}

func TestClusterRateShare(t *testing.T) {
	clock := newTestClock()
	a, _ := newTestAgent(t, withClock(clock.now))
	r := newEngine(a)
	mustApply(t, a, wire.Policy{Version: 1, RateLimits: []wire.RateLimitRule{{RuleMeta: wire.RuleMeta{ID: "cl"}, Rate: 4, Scope: wire.ScopeCluster}}})
	// Without a share the whole rate applies (fail-open): 4 pass.
	for i := range 4 {
		if w := serve(t, r, http.MethodGet, "/users/1", nil); w.Code != 200 {
			t.Fatalf("request %d without a share: got %d, want 200", i, w.Code)
		}
	}
	a.readReply([]byte(`{"ok":true,"rate_shares":{"cl":1}}`))
	clock.advance(10 * time.Second)
	codes := []int{}
	for range 3 {
		codes = append(codes, serve(t, r, http.MethodGet, "/users/1", nil).Code)
	}
	if codes[0] != 200 || codes[1] != 429 {
		t.Errorf("with a share of 1/s: got %v, want 200 then 429", codes)
	}
}

// policyServer is a control plane that serves policy long-polls and
// heartbeats.
type policyServer struct {
	*httptest.Server
	mu         sync.Mutex
	body       []byte // the PolicyUpdate served
	version    int64
	changed    chan struct{}
	polls      []string // version query of each poll
	heartbeats []wire.Heartbeat
	reply      wire.HeartbeatReply
}

func newPolicyServer(t *testing.T) *policyServer {
	t.Helper()
	ps := &policyServer{changed: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+wire.PathPolicy, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(wire.HeaderAuthorization) != "Bearer tok" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		have := r.URL.Query().Get("version")
		ps.mu.Lock()
		ps.polls = append(ps.polls, have)
		body, version, changed := ps.body, ps.version, ps.changed
		ps.mu.Unlock()
		if body == nil || have == itoa(version) {
			if !holdPoll(w, r, changed) {
				return
			}
			ps.mu.Lock()
			body = ps.body
			ps.mu.Unlock()
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	})
	mux.HandleFunc("POST "+wire.PathHeartbeat, func(w http.ResponseWriter, r *http.Request) {
		hb, err := wire.DecodeHeartbeat(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		ps.mu.Lock()
		ps.heartbeats = append(ps.heartbeats, hb)
		reply := ps.reply
		ps.mu.Unlock()
		_ = json.NewEncoder(w).Encode(reply)
	})
	mux.HandleFunc("POST /v1/", func(w http.ResponseWriter, r *http.Request) {})
	ps.Server = httptest.NewServer(mux)
	t.Cleanup(ps.Close)
	return ps
}

func itoa(v int64) string { b, _ := json.Marshal(v); return string(b) }

// publish serves body (a PolicyUpdate document) as version and wakes the
// waiting polls.
func (ps *policyServer) publish(version int64, body []byte) {
	ps.mu.Lock()
	ps.version, ps.body = version, body
	close(ps.changed)
	ps.changed = make(chan struct{})
	ps.mu.Unlock()
}

func (ps *policyServer) lastHeartbeat() (wire.Heartbeat, bool) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if len(ps.heartbeats) == 0 {
		return wire.Heartbeat{}, false
	}
	return ps.heartbeats[len(ps.heartbeats)-1], true
}

func update(t *testing.T, p wire.Policy) []byte {
	t.Helper()
	b, err := json.Marshal(wire.PolicyUpdate{Policy: p})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func degradeUsers(version int64) wire.Policy {
	return wire.Policy{Service: "svc", Version: version, Degradations: []wire.DegradationRule{{
		RuleMeta: wire.RuleMeta{ID: "users-off"}, Match: wire.Match{Route: "/users/:id"}, Enabled: true,
		Fallback: wire.Response{Status: 200, Body: "degraded"},
	}}}
}

func TestLongPollAppliesAndNACKs(t *testing.T) {
	ps := newPolicyServer(t)
	a, _ := newTestAgent(t, WithControlPlane(ps.URL), WithToken("tok"), WithPolicyWait(5*time.Second),
		WithHeartbeatInterval(100*time.Millisecond))
	r := newEngine(a)

	ps.publish(1, update(t, degradeUsers(1)))
	waitFor(t, "version 1 applied", func() bool { return a.PolicyVersion() == 1 })
	if w := serve(t, r, http.MethodGet, "/users/1", nil); w.Body.String() != "degraded" {
		t.Fatalf("after v1: got %q, want the fallback", w.Body.String())
	}
	waitFor(t, "heartbeat reports v1", func() bool {
		hb, ok := ps.lastHeartbeat()
		return ok && hb.PolicyVersion == 1 && hb.PolicyError == ""
	})

	// Version 2 is invalid: rejected, reported, v1 still enforced.
	bad := degradeUsers(2)
	bad.RateLimits = []wire.RateLimitRule{{RuleMeta: wire.RuleMeta{ID: "rl"}, Rate: -1}}
	ps.publish(2, update(t, bad))
	waitFor(t, "heartbeat NACKs v2", func() bool {
		hb, ok := ps.lastHeartbeat()
		return ok && hb.PolicyVersion == 1 && hb.PolicyErrorVersion == 2 && strings.Contains(hb.PolicyError, "rate_limits[0].rate")
	})
	if w := serve(t, r, http.MethodGet, "/users/1", nil); w.Body.String() != "degraded" {
		t.Fatalf("after the rejected v2: got %q, want v1's fallback", w.Body.String())
	}
	// The agent waits on v2 instead of fetching it again and again.
	waitFor(t, "a poll based on v2", func() bool {
		ps.mu.Lock()
		defer ps.mu.Unlock()
		return ps.polls[len(ps.polls)-1] == "2"
	})

	// Version 3 turns the rule off; the NACK clears.
	off := degradeUsers(3)
	off.Degradations[0].Enabled = false
	ps.publish(3, update(t, off))
	waitFor(t, "version 3 applied", func() bool { return a.PolicyVersion() == 3 })
	if w := serve(t, r, http.MethodGet, "/users/1", nil); w.Body.String() != "user 1" {
		t.Fatalf("after v3: got %q, want the handler", w.Body.String())
	}
	waitFor(t, "heartbeat reports v3 without error", func() bool {
		hb, ok := ps.lastHeartbeat()
		return ok && hb.PolicyVersion == 3 && hb.PolicyError == "" && hb.PolicyErrorVersion == 0
	})
	ps.mu.Lock()
	polls := len(ps.polls)
	ps.mu.Unlock()
	if polls > 10 {
		t.Errorf("polls: got %d, want a few (no busy loop)", polls)
	}
}

func TestPolicyFileSurvivesRestartWithoutControlPlane(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.json")
	ps := newPolicyServer(t)
	a, _ := newTestAgent(t, WithControlPlane(ps.URL), WithToken("tok"), WithPolicyFile(path), WithPolicyWait(5*time.Second))
	ps.publish(4, update(t, degradeUsers(4)))
	waitFor(t, "version 4 applied", func() bool { return a.PolicyVersion() == 4 })
	shutdown(t, a)
	ps.Close()

	// A new process, the control plane gone: the file's policy is enforced.
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	b, _ := newTestAgent(t, WithControlPlane(dead.URL), WithPolicyFile(path))
	if b.PolicyVersion() != 4 {
		t.Fatalf("after restart: got version %d, want 4", b.PolicyVersion())
	}
	if w := serve(t, newEngine(b), http.MethodGet, "/users/1", nil); w.Body.String() != "degraded" {
		t.Errorf("after restart: got %q, want the fallback", w.Body.String())
	}
}

func TestPolicyFileInvalidIsIgnored(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.json")
	if err := writePolicyFile(path, wire.Policy{Service: "svc", Version: 2, RateLimits: []wire.RateLimitRule{{RuleMeta: wire.RuleMeta{ID: "x"}}}}); err != nil {
		t.Fatal(err)
	}
	a, _ := newTestAgent(t, WithPolicyFile(path))
	if a.PolicyVersion() != 0 {
		t.Errorf("version: got %d, want 0", a.PolicyVersion())
	}
	if _, msg, v, _, _ := a.policyReport(time.Now()); v != 2 || msg == "" {
		t.Errorf("NACK: got version %d %q, want version 2 with a message", v, msg)
	}
}

func TestApplyPolicyRejects(t *testing.T) {
	tests := []struct {
		name string
		p    wire.Policy
		want error
	}{
		{"other service", wire.Policy{Service: "other", Version: 1}, ErrWrongService},
		{"invalid", wire.Policy{Service: "svc", Version: 1, Breakers: []wire.BreakerRule{{RuleMeta: wire.RuleMeta{ID: "b"}, Threshold: 0.5}}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, _ := newTestAgent(t)
			err := a.ApplyPolicy(tt.p)
			if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Fatalf("ApplyPolicy: got %v, want an error wrapping %v", err, tt.want)
			}
			if a.PolicyVersion() != 0 {
				t.Errorf("version: got %d, want 0", a.PolicyVersion())
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	tests := []struct {
		name    string
		attempt int
		r       float64
		want    time.Duration
	}{
		{"first, no jitter", 0, 0.5, time.Second},
		{"first, low jitter", 0, 0, 500 * time.Millisecond},
		{"third", 2, 0.5, 4 * time.Second},
		{"capped", 10, 0.5, 30 * time.Second},
		{"capped high jitter stays at max", 10, 0.99, 30 * time.Second},
		{"capped low jitter", 10, 0, 15 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := backoff(tt.attempt, time.Second, 30*time.Second, tt.r); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestPolicyMetrics(t *testing.T) {
	a, _ := newTestAgent(t)
	r := newEngine(a)
	mustApply(t, a, degradeUsers(5))
	serve(t, r, http.MethodGet, "/users/1", nil)
	w := httptest.NewRecorder()
	a.MetricsHandler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	for _, want := range []string{
		`pilothouse_agent_policy_actions_total{action="degraded",rule="users-off"} 1`,
		`pilothouse_agent_policy_version 5`,
	} {
		if !strings.Contains(w.Body.String(), want) {
			t.Errorf("metrics: got no line %q", want)
		}
	}
}

func TestNoRuleMatchAllocatesNothing(t *testing.T) {
	a, _ := newTestAgent(t)
	mustApply(t, a, degradeUsers(1))
	c, _ := gin.CreateTestContext(httptest.NewRecorder())
	c.Request = httptest.NewRequest(http.MethodGet, "/other", nil)
	st := &requestState{}
	allocs := testing.AllocsPerRun(100, func() {
		if a.decide(c, st, http.MethodGet, "/other") {
			t.Fatal("decide: got reject, want pass")
		}
	})
	if allocs != 0 {
		t.Errorf("allocations: got %v, want 0", allocs)
	}
}

func FuzzCompilePolicy(f *testing.F) {
	seeds := []wire.Policy{
		degradeUsers(1),
		{Service: "svc", Version: 2, RateLimits: []wire.RateLimitRule{{RuleMeta: wire.RuleMeta{ID: "r", Mode: wire.Shadow}, Rate: 3, Key: "header:X-A", Scope: wire.ScopeCluster}}},
		{Service: "svc", Version: 3, Breakers: []wire.BreakerRule{{RuleMeta: wire.RuleMeta{ID: "b"}, Target: "orders", Threshold: 0.5}},
			Routes:   []wire.RoutingRule{{RuleMeta: wire.RuleMeta{ID: "c"}, Target: "orders", Subsets: []wire.Subset{{Name: "a", Weight: 1}}}},
			Timeouts: []wire.TimeoutRule{{RuleMeta: wire.RuleMeta{ID: "t"}, Target: "orders", Timeout: wire.Duration(time.Second)}}},
	}
	for _, p := range seeds {
		b, _ := json.Marshal(p)
		f.Add(b)
	}
	f.Add([]byte(`{"service":"svc","version":1,"breakers":[{"id":"x","match":{},"threshold":1,"strategy":"consecutive_errors"}]}`))
	f.Add([]byte(`{`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := wire.DecodePolicy(bytes.NewReader(data))
		if err != nil {
			return
		}
		var counters counterSet
		env := compileEnv{counters: &counters, now: time.Now}
		prev, err := compilePolicy(p, nil, env)
		if err != nil {
			t.Fatalf("compile a valid policy: %v", err)
		}
		if _, err := compilePolicy(p, prev, env); err != nil {
			t.Fatalf("recompile: %v", err)
		}
	})
}

// holdPoll holds a fake control plane's policy long-poll until changed
// closes (true: answer with the new policy), the poll's wait passes (it
// answers 304) or the client goes away.
func holdPoll(w http.ResponseWriter, r *http.Request, changed <-chan struct{}) bool {
	wait, _ := time.ParseDuration(r.URL.Query().Get("wait"))
	select {
	case <-changed:
		return true
	case <-time.After(wait):
		w.WriteHeader(http.StatusNotModified)
		return false
	case <-r.Context().Done():
		return false
	}
}
