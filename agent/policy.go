package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pilothouse/pilothouse/agent/internal/breaker"
	"github.com/pilothouse/pilothouse/agent/internal/ratelimit"
	"github.com/pilothouse/pilothouse/agent/internal/routing"
	"github.com/pilothouse/pilothouse/agent/wire"
)

// ErrWrongService is returned by ApplyPolicy for a policy of another
// service.
var ErrWrongService = errors.New("agent: policy is for another service")

// maxInboundBreakers bounds how many inbound breakers one request is
// checked against; further matching breakers are ignored.
const maxInboundBreakers = 4

// action indexes a rule's counters.
type action uint8

const (
	actPassed action = iota
	actLimited
	actDegraded
	actBroken
	actRouted
	actShadow
	numActions
)

var actionNames = [numActions]string{
	wire.ActionPassed, wire.ActionLimited, wire.ActionDegraded, wire.ActionBroken, wire.ActionRouted, wire.ActionShadow,
}

func (a action) String() string { return actionNames[a] }

// ruleCounters are the cumulative counts of one rule ID since the agent
// started; they survive policy versions, whatever changed in the rule.
type ruleCounters struct {
	id string
	n  [numActions]atomic.Uint64
}

func (rc *ruleCounters) add(a action) { rc.n[a].Add(1) }

// counterSet holds every rule's counters.
type counterSet struct {
	mu   sync.Mutex
	byID map[string]*ruleCounters
}

// maxCountedRules bounds the counter set (rule IDs of every version seen).
const maxCountedRules = wire.MaxRuleStats / 2

// get returns id's counters, creating them; past maxCountedRules new
// rules share one "other" entry.
func (cs *counterSet) get(id string) *ruleCounters {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.byID == nil {
		cs.byID = map[string]*ruleCounters{}
	}
	if rc, ok := cs.byID[id]; ok {
		return rc
	}
	if len(cs.byID) >= maxCountedRules {
		id = "other"
		if rc, ok := cs.byID[id]; ok {
			return rc
		}
	}
	rc := &ruleCounters{id: id}
	cs.byID[id] = rc
	return rc
}

// stats returns the non-zero counts, sorted by rule and action.
func (cs *counterSet) stats() []wire.RuleStats {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	var out []wire.RuleStats
	for _, rc := range cs.byID {
		for a := range numActions {
			if n := rc.n[a].Load(); n > 0 {
				out = append(out, wire.RuleStats{RuleID: rc.id, Action: a.String(), Count: n})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].RuleID != out[j].RuleID {
			return out[i].RuleID < out[j].RuleID
		}
		return out[i].Action < out[j].Action
	})
	if len(out) > wire.MaxRuleStats {
		out = out[:wire.MaxRuleStats]
	}
	return out
}

// cannedResponse is a precomputed answer: a rejection or a fallback.
type cannedResponse struct {
	status      int
	contentType string
	body        []byte
}

func newCanned(r *wire.Response, defStatus int, defBody string) cannedResponse {
	c := cannedResponse{status: defStatus, contentType: "application/json", body: []byte(defBody)}
	if r == nil {
		return c
	}
	if r.Status != 0 {
		c.status = r.Status
	}
	if r.Body != "" || r.ContentType != "" {
		c.body = []byte(r.Body)
		c.contentType = r.ContentType
	}
	if c.contentType == "" {
		c.contentType = sniffContentType(r.Body)
	}
	return c
}

func sniffContentType(body string) string {
	b := strings.TrimSpace(body)
	if strings.HasPrefix(b, "{") || strings.HasPrefix(b, "[") {
		return "application/json"
	}
	return "text/plain; charset=utf-8"
}

// jsonError builds {"error": msg, "rule": id}.
func jsonError(msg, id string) string {
	b, _ := json.Marshal(map[string]string{"error": msg, "rule": id})
	return string(b)
}

// matcher is a compiled wire.Match (the route is the lookup key).
type matcher struct {
	method      string
	headerKey   string // canonical; "" when no header is matched
	headerValue string
}

func newMatcher(m *wire.Match) matcher {
	mt := matcher{method: m.Method}
	if m.Header != nil {
		mt.headerKey, mt.headerValue = http.CanonicalHeaderKey(m.Header.Name), m.Header.Value
	}
	return mt
}

func (m *matcher) matches(method string, h http.Header) bool {
	if m.method != "" && m.method != method {
		return false
	}
	if m.headerKey != "" {
		v := h[m.headerKey]
		return len(v) > 0 && v[0] == m.headerValue
	}
	return true
}

// ruleBase is common to compiled rules.
type ruleBase struct {
	id     string
	shadow bool
	counts *ruleCounters
	// spec is the rule's JSON: a rule whose spec did not change between
	// versions is carried over with its state.
	spec string
}

type degradeRule struct {
	ruleBase
	match    matcher
	fallback cannedResponse
}

// limitKey says what a rate limit's buckets are keyed by.
type limitKey uint8

const (
	keyGlobal limitKey = iota
	keyClientIP
	keyHeader
)

type limitRule struct {
	ruleBase
	match   matcher
	key     limitKey
	header  string // canonical header name for keyHeader
	rate    float64
	burst   int
	cluster bool
	global  *ratelimit.Bucket
	keyed   *ratelimit.Keyed
	reject  cannedResponse
	// applied is the rate the buckets run at, as float64 bits.
	applied atomic.Uint64
}

// effectiveRate is the rate for this instance: the control plane's share
// for a cluster-scoped rule when known, else its instance rate, else the
// whole rate (fail-open).
func (l *limitRule) effectiveRate(shares map[string]float64, instanceRate float64) float64 {
	if l.cluster {
		if s, ok := shares[l.id]; ok && s > 0 {
			return s
		}
		if instanceRate > 0 {
			return instanceRate
		}
	}
	return l.rate
}

// burstFor is the bucket size at rate: the rule's burst scaled to this
// instance's share, or the rate itself, at least 1.
func (l *limitRule) burstFor(rate float64) int {
	if l.burst > 0 {
		return max(1, int(math.Ceil(float64(l.burst)*rate/l.rate)))
	}
	return max(1, int(math.Ceil(rate)))
}

func (l *limitRule) setRate(rate float64) {
	if math.Float64frombits(l.applied.Load()) == rate {
		return
	}
	l.applied.Store(math.Float64bits(rate))
	if l.global != nil {
		l.global.SetRate(rate, l.burstFor(rate))
	} else {
		l.keyed.SetRate(rate, l.burstFor(rate))
	}
}

func (l *limitRule) allow(key string, now time.Time) (bool, time.Duration) {
	if l.global != nil {
		return l.global.AllowAt(now)
	}
	return l.keyed.AllowAt(key, now)
}

type breakerRule struct {
	ruleBase
	match    *matcher // nil for an outbound breaker
	target   string
	b        *breaker.Breaker
	statuses []string // nil means 5xx
	slowCall time.Duration
	fallback cannedResponse
	since    atomic.Int64 // unix nanos of the last state change
}

func (br *breakerRule) failed(status int) bool {
	if br.statuses == nil {
		return status >= 500 && status <= 599
	}
	for _, s := range br.statuses {
		if wire.StatusMatches(s, status) {
			return true
		}
	}
	return false
}

type routeRule struct {
	ruleBase
	target string
	table  *routing.Table
}

// inboundRules are the rules that apply to one route, in policy order.
type inboundRules struct {
	degradations []*degradeRule
	limits       []*limitRule
	breakers     []*breakerRule
}

func (ir *inboundRules) empty() bool {
	return len(ir.degradations) == 0 && len(ir.limits) == 0 && len(ir.breakers) == 0
}

// outboundRules are the rules for calls to one target service.
type outboundRules struct {
	route       *routeRule
	breaker     *breakerRule
	timeout     time.Duration
	timeoutRule string
}

// compiledPolicy is one policy version ready for lookups. It is immutable
// once published; the limiter and breaker objects it points to carry
// their own synchronised state.
type compiledPolicy struct {
	policy wire.Policy
	// routes maps a route template to its rules, including the rules
	// without a route; anyRoute holds those alone, for other routes.
	routes   map[string]*inboundRules
	anyRoute *inboundRules
	targets  map[string]*outboundRules
	limits   []*limitRule
	breakers []*breakerRule
	// reusable maps "kind/id" to the rule objects by spec.
	reusable map[string]any
}

// inbound returns the rules for route, or nil.
func (cp *compiledPolicy) inbound(route string) *inboundRules {
	if ir, ok := cp.routes[route]; ok {
		return ir
	}
	return cp.anyRoute
}

// compileEnv is what compiling needs from the agent.
type compileEnv struct {
	counters *counterSet
	now      func() time.Time
	shares   map[string]float64
}

// compilePolicy turns a validated policy into lookups. Rules whose spec is
// unchanged from prev keep their state (limiter tokens, breaker state).
func compilePolicy(p wire.Policy, prev *compiledPolicy, env compileEnv) (*compiledPolicy, error) {
	cp := &compiledPolicy{
		policy:   p,
		routes:   map[string]*inboundRules{},
		anyRoute: &inboundRules{},
		targets:  map[string]*outboundRules{},
		reusable: map[string]any{},
	}
	reuse := func(kind, id, spec string) any {
		if prev == nil {
			return nil
		}
		old, ok := prev.reusable[kind+"/"+id]
		if !ok {
			return nil
		}
		switch o := old.(type) {
		case *limitRule:
			if o.spec == spec {
				return o
			}
		case *breakerRule:
			if o.spec == spec {
				return o
			}
		case *routeRule:
			if o.spec == spec {
				return o
			}
		}
		return nil
	}
	base := func(m wire.RuleMeta, rule any) (ruleBase, error) {
		spec, err := json.Marshal(rule)
		if err != nil {
			return ruleBase{}, fmt.Errorf("agent: compile rule %s: %w", m.ID, err)
		}
		return ruleBase{id: m.ID, shadow: m.Mode == wire.Shadow, counts: env.counters.get(m.ID), spec: string(spec)}, nil
	}
	inboundFor := func(route string) []*inboundRules {
		if route == "" {
			return nil
		}
		ir, ok := cp.routes[route]
		if !ok {
			ir = &inboundRules{}
			cp.routes[route] = ir
		}
		return []*inboundRules{ir}
	}
	outboundFor := func(target string) *outboundRules {
		or, ok := cp.targets[target]
		if !ok {
			or = &outboundRules{}
			cp.targets[target] = or
		}
		return or
	}
	// Rules without a route apply to every route: they go to anyRoute and,
	// once all routes are known, to the end of each route's lists.
	for _, d := range p.Degradations {
		if !d.Enabled {
			continue
		}
		rb, err := base(d.RuleMeta, d)
		if err != nil {
			return nil, err
		}
		dr := &degradeRule{ruleBase: rb, match: newMatcher(&d.Match), fallback: newCanned(&d.Fallback, http.StatusOK, "")}
		for _, ir := range inboundFor(d.Match.Route) {
			ir.degradations = append(ir.degradations, dr)
		}
		if d.Match.Route == "" {
			cp.anyRoute.degradations = append(cp.anyRoute.degradations, dr)
		}
	}
	now := env.now()
	for _, r := range p.RateLimits {
		spec := r
		spec.InstanceRate = 0 // a new share is a rate change, not a new rule
		rb, err := base(r.RuleMeta, spec)
		if err != nil {
			return nil, err
		}
		lr, _ := reuse("limit", r.ID, rb.spec).(*limitRule)
		if lr == nil {
			lr = &limitRule{ruleBase: rb, match: newMatcher(&r.Match), rate: r.Rate, burst: r.Burst, cluster: r.Scope == wire.ScopeCluster,
				reject: newCanned(r.Response, http.StatusTooManyRequests, jsonError("rate limited", r.ID))}
			switch {
			case r.Key == wire.KeyClientIP:
				lr.key = keyClientIP
			case strings.HasPrefix(r.Key, wire.KeyHeaderPrefix):
				lr.key, lr.header = keyHeader, http.CanonicalHeaderKey(strings.TrimPrefix(r.Key, wire.KeyHeaderPrefix))
			}
			rate := lr.effectiveRate(env.shares, r.InstanceRate)
			lr.applied.Store(math.Float64bits(rate))
			if lr.key == keyGlobal {
				lr.global = ratelimit.NewBucket(rate, lr.burstFor(rate), now)
			} else {
				lr.keyed = ratelimit.NewKeyed(rate, lr.burstFor(rate))
			}
		} else {
			lr.setRate(lr.effectiveRate(env.shares, r.InstanceRate))
		}
		cp.reusable["limit/"+r.ID] = lr
		cp.limits = append(cp.limits, lr)
		for _, ir := range inboundFor(r.Match.Route) {
			ir.limits = append(ir.limits, lr)
		}
		if r.Match.Route == "" {
			cp.anyRoute.limits = append(cp.anyRoute.limits, lr)
		}
	}
	for _, b := range p.Breakers {
		rb, err := base(b.RuleMeta, b)
		if err != nil {
			return nil, err
		}
		br, _ := reuse("breaker", b.ID, rb.spec).(*breakerRule)
		if br == nil {
			br = newBreakerRule(rb, b, env.now)
		}
		cp.reusable["breaker/"+b.ID] = br
		cp.breakers = append(cp.breakers, br)
		if b.Match == nil {
			if or := outboundFor(b.Target); or.breaker == nil {
				or.breaker = br
			}
			continue
		}
		for _, ir := range inboundFor(b.Match.Route) {
			ir.breakers = append(ir.breakers, br)
		}
		if b.Match.Route == "" {
			cp.anyRoute.breakers = append(cp.anyRoute.breakers, br)
		}
	}
	for _, r := range p.Routes {
		rb, err := base(r.RuleMeta, r)
		if err != nil {
			return nil, err
		}
		rr, _ := reuse("route", r.ID, rb.spec).(*routeRule)
		if rr == nil {
			subsets := make([]routing.Subset, len(r.Subsets))
			for i, s := range r.Subsets {
				subsets[i] = routing.Subset{Name: s.Name, Version: s.Version, Weight: s.Weight}
			}
			overrides := make([]routing.Override, len(r.Overrides))
			for i, o := range r.Overrides {
				overrides[i] = routing.Override{Header: o.Header.Name, Value: o.Header.Value, Subset: o.Subset}
			}
			rr = &routeRule{ruleBase: rb, target: r.Target, table: routing.New(subsets, overrides)}
		}
		cp.reusable["route/"+r.ID] = rr
		if or := outboundFor(r.Target); or.route == nil {
			or.route = rr
		}
	}
	for _, t := range p.Timeouts {
		if or := outboundFor(t.Target); or.timeout == 0 {
			or.timeout, or.timeoutRule = t.Timeout.D(), t.ID
		}
	}
	// Route-specific rules come first, then the route-less ones.
	if !cp.anyRoute.empty() {
		for _, ir := range cp.routes {
			ir.degradations = append(ir.degradations, cp.anyRoute.degradations...)
			ir.limits = append(ir.limits, cp.anyRoute.limits...)
			ir.breakers = append(ir.breakers, cp.anyRoute.breakers...)
		}
	}
	if cp.anyRoute.empty() {
		cp.anyRoute = nil
	}
	return cp, nil
}

func newBreakerRule(rb ruleBase, b wire.BreakerRule, now func() time.Time) *breakerRule {
	br := &breakerRule{ruleBase: rb, target: b.Target, slowCall: b.SlowCall.D(),
		fallback: newCanned(b.Fallback, http.StatusServiceUnavailable, jsonError("circuit open", b.ID))}
	if b.Match != nil {
		m := newMatcher(b.Match)
		br.match = &m
	}
	if len(b.ErrorStatuses) > 0 {
		br.statuses = append([]string(nil), b.ErrorStatuses...)
	}
	s := breaker.Settings{
		Threshold:      b.Threshold,
		MinRequests:    b.MinRequests,
		Window:         b.Window.D(),
		OpenFor:        b.OpenFor.D(),
		HalfOpenProbes: b.HalfOpenProbes,
		// Called with the breaker's lock held: only store.
		OnStateChange: func(_, _ breaker.State, _ string) { br.since.Store(now().UnixNano()) },
	}
	switch b.Strategy {
	case wire.StrategySlowCallRatio:
		s.Strategy = breaker.SlowCallRatio
	case wire.StrategyConsecutiveErrors:
		s.Strategy = breaker.ConsecutiveErrors
	}
	br.since.Store(now().UnixNano())
	br.b = breaker.New(s)
	return br
}

// policyState is the agent's view of its policy: the compiled version in
// force, what it last received and what it rejected.
type policyState struct {
	current  atomic.Pointer[compiledPolicy]
	counters counterSet
	shares   atomic.Pointer[map[string]float64]

	mu         sync.Mutex // serialises applies
	seen       int64      // last version received, applied or not
	errMsg     string
	errVersion int64
	appliedAt  time.Time
}

// ApplyPolicy validates p and, if it is valid and for this agent's service,
// makes it the policy in force atomically: a request sees either the old
// or the new policy, never half of each. Rules unchanged from the previous
// version keep their limiter and breaker state. An invalid policy is
// rejected, recorded for the next heartbeat (the NACK) and the previous
// policy stays in force. With WithPolicyFile the applied policy is also
// written to the file. ApplyPolicy is safe for concurrent use; the policy
// client calls it for every update from the control plane.
func (a *Agent) ApplyPolicy(p wire.Policy) error {
	ps := &a.pol
	ps.mu.Lock()
	defer ps.mu.Unlock()
	ps.seen = p.Version
	err := p.Validate()
	if err == nil && p.Service != a.service {
		err = fmt.Errorf("%w: got %q, want %q", ErrWrongService, p.Service, a.service)
	}
	var cp *compiledPolicy
	if err == nil {
		cp, err = compilePolicy(p, ps.current.Load(), a.compileEnv())
	}
	if err != nil {
		ps.errMsg, ps.errVersion = truncate(err.Error(), wire.MaxMessageLen), p.Version
		return fmt.Errorf("agent: policy version %d rejected: %w", p.Version, err)
	}
	ps.current.Store(cp)
	ps.appliedAt = a.cfg.now()
	if ps.errVersion <= p.Version {
		ps.errMsg, ps.errVersion = "", 0
	}
	if a.cfg.policyFile != "" {
		if werr := writePolicyFile(a.cfg.policyFile, p); werr != nil {
			a.logger.Warn("agent: could not persist the policy", "path", a.cfg.policyFile, "err", werr.Error())
		}
	}
	return nil
}

func (a *Agent) compileEnv() compileEnv {
	env := compileEnv{counters: &a.pol.counters, now: a.cfg.now}
	if m := a.pol.shares.Load(); m != nil {
		env.shares = *m
	}
	return env
}

// PolicyVersion returns the version of the policy in force, 0 for none.
func (a *Agent) PolicyVersion() int64 {
	if cp := a.pol.current.Load(); cp != nil {
		return cp.policy.Version
	}
	return 0
}

// policyReport is what a heartbeat says about policy.
func (a *Agent) policyReport(now time.Time) (version int64, errMsg string, errVersion int64, rules []wire.RuleStats, breakers []wire.BreakerStatus) {
	a.pol.mu.Lock()
	errMsg, errVersion = a.pol.errMsg, a.pol.errVersion
	a.pol.mu.Unlock()
	cp := a.pol.current.Load()
	if cp != nil {
		version = cp.policy.Version
		for _, br := range cp.breakers {
			if len(breakers) >= wire.MaxRuleStats {
				break
			}
			breakers = append(breakers, wire.BreakerStatus{
				RuleID: br.id,
				Target: br.target,
				State:  br.b.State(now).String(),
				Since:  time.Unix(0, br.since.Load()).UTC(),
				Reason: truncate(br.b.Reason(), wire.MaxMessageLen),
			})
		}
	}
	return version, errMsg, errVersion, a.pol.counters.stats(), breakers
}

// setRateShares stores the control plane's shares of cluster-scoped rate
// limits and retunes the limiters in force.
func (a *Agent) setRateShares(shares map[string]float64) {
	if len(shares) == 0 && a.pol.shares.Load() == nil {
		return
	}
	m := make(map[string]float64, len(shares))
	for k, v := range shares {
		if v > 0 && !math.IsInf(v, 0) && !math.IsNaN(v) {
			m[k] = v
		}
	}
	a.pol.mu.Lock()
	defer a.pol.mu.Unlock()
	a.pol.shares.Store(&m)
	cp := a.pol.current.Load()
	if cp == nil {
		return
	}
	byID := map[string]float64{}
	for _, r := range cp.policy.RateLimits {
		byID[r.ID] = r.InstanceRate
	}
	for _, lr := range cp.limits {
		if lr.cluster {
			lr.setRate(lr.effectiveRate(m, byID[lr.id]))
		}
	}
}

// retryAfter is a wait in whole seconds, rounded up, at least 1.
func retryAfter(d time.Duration) string {
	s := int64(math.Ceil(d.Seconds()))
	if s < 1 {
		s = 1
	}
	return strconv.FormatInt(s, 10)
}
