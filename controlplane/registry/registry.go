// Package registry keeps the live picture of every agent instance from its
// heartbeats: identity, health, checks, policy version, telemetry drops and
// RED figures per route, bucketed over time for sparklines.
//
// A Registry is safe for concurrent use. Time is always an argument, so
// tests step a clock instead of sleeping.
package registry

import (
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/pilothouse/pilothouse/agent/wire"
)

// Health is the state of an instance or a service.
type Health string

// Health values.
const (
	Healthy  Health = "healthy"
	Degraded Health = "degraded"
	Down     Health = "down"
)

// Defaults for Options.
const (
	DefaultBucket      = 30 * time.Second
	DefaultHistory     = 15 * time.Minute
	DefaultRouteWindow = 5 * time.Minute
	DefaultRateWindow  = time.Minute
	DefaultForgetAfter = time.Hour
	// MissedBeats is how many heartbeat intervals may pass before an
	// instance is marked down.
	MissedBeats = 3
	// MaxServices and MaxInstancesPerService bound memory against a
	// misbehaving agent fleet; beats over the cap are counted and dropped.
	MaxServices            = 500
	MaxInstancesPerService = 1000
	// MaxRoutesPerService caps distinct route keys; the rest fold into
	// one "other" route.
	MaxRoutesPerService = 200
	otherRoute          = "other"
)

// Options configures a Registry. Zero values mean the defaults above.
type Options struct {
	Bucket      time.Duration // width of one series point
	History     time.Duration // how far back series reach
	RouteWindow time.Duration // window of the per-route table
	RateWindow  time.Duration // window of the service req/s, error rate, p95
	ForgetAfter time.Duration // instances silent this long are removed
}

func (o *Options) fill() {
	if o.Bucket <= 0 {
		o.Bucket = DefaultBucket
	}
	if o.History <= 0 {
		o.History = DefaultHistory
	}
	if o.RouteWindow <= 0 {
		o.RouteWindow = DefaultRouteWindow
	}
	if o.RateWindow <= 0 {
		o.RateWindow = DefaultRateWindow
	}
	if o.ForgetAfter <= 0 {
		o.ForgetAfter = DefaultForgetAfter
	}
}

// Instance is one agent as last reported.
type Instance struct {
	ID            string             `json:"id"`
	Service       string             `json:"service"`
	Address       string             `json:"address,omitempty"`
	Version       string             `json:"version,omitempty"`
	RemoteAddr    string             `json:"remote_addr,omitempty"`
	StartedAt     time.Time          `json:"started_at"`
	LastSeen      time.Time          `json:"last_seen"`
	Interval      time.Duration      `json:"interval"`
	Health        Health             `json:"health"`
	Checks        []wire.CheckResult `json:"checks,omitempty"`
	PolicyVersion int64              `json:"policy_version,omitempty"`
	PolicyError   string             `json:"policy_error,omitempty"`
	// PolicyErrorVersion is the policy version the instance rejected.
	PolicyErrorVersion int64 `json:"policy_error_version,omitempty"`
	// PolicyAppliedAt is when the instance first reported PolicyVersion.
	PolicyAppliedAt time.Time            `json:"policy_applied_at"`
	Telemetry       wire.TelemetryStats  `json:"telemetry"`
	Rules           []wire.RuleStats     `json:"rules,omitempty"`
	Breakers        []wire.BreakerStatus `json:"breakers,omitempty"`
}

// BreakerEvent is one observed change of a breaker's state on one
// instance.
type BreakerEvent struct {
	Time     time.Time `json:"time"`
	Instance string    `json:"instance"`
	RuleID   string    `json:"rule_id"`
	Target   string    `json:"target,omitempty"`
	From     string    `json:"from"`
	To       string    `json:"to"`
	Reason   string    `json:"reason,omitempty"`
}

// MaxBreakerEvents bounds the breaker history kept per service.
const MaxBreakerEvents = 500

// RouteStats are RED figures for one route over the route window.
type RouteStats struct {
	Method         string        `json:"method"`
	Route          string        `json:"route"`
	Requests       int64         `json:"requests"`
	Errors         int64         `json:"errors"`
	RequestsPerSec float64       `json:"requests_per_sec"`
	ErrorRate      float64       `json:"error_rate"`
	P50            time.Duration `json:"p50"`
	P95            time.Duration `json:"p95"`
	P99            time.Duration `json:"p99"`
	Max            time.Duration `json:"max"`
}

// Point is one time bucket of a service's series.
type Point struct {
	Time     time.Time     `json:"time"`
	Requests int64         `json:"requests"`
	Errors   int64         `json:"errors"`
	P95      time.Duration `json:"p95"`
	// Span is how much of the point's bucket has passed: the bucket's
	// width, less for the bucket in progress.
	Span time.Duration `json:"span"`
}

// Service aggregates the instances of one service.
type Service struct {
	Name           string              `json:"name"`
	Health         Health              `json:"health"`
	Instances      []Instance          `json:"instances"`
	Routes         []RouteStats        `json:"routes"`
	RequestsPerSec float64             `json:"requests_per_sec"`
	ErrorRate      float64             `json:"error_rate"`
	P95            time.Duration       `json:"p95"`
	Series         []Point             `json:"series"`
	Telemetry      wire.TelemetryStats `json:"telemetry"`
	LastHeartbeat  time.Time           `json:"last_heartbeat"`
	// Rules sums each rule's action counters over the live instances.
	Rules []wire.RuleStats `json:"rules,omitempty"`
	// BreakerEvents are the breaker state changes seen, oldest first.
	BreakerEvents []BreakerEvent `json:"breaker_events,omitempty"`
}

// Registry holds instances and their recent traffic figures.
type Registry struct {
	opts Options

	mu       sync.Mutex
	services map[string]*serviceState
	dropped  int64
	folded   int64
}

type serviceState struct {
	firstSeen time.Time
	instances map[string]*Instance
	// buckets holds per-route figures keyed by bucket start.
	buckets map[int64]map[routeKey]*routeBucket
	routes  map[routeKey]struct{}
	events  []BreakerEvent
}

type routeKey struct{ method, route string }

// routeBucket accumulates route summaries that fall in one bucket. The
// percentiles of several summaries are combined as request-weighted means:
// an approximation good enough for a sparkline and a table, and exact for a
// single instance reporting once per bucket.
type routeBucket struct {
	requests, errors int64
	durationSum      time.Duration
	p50w, p95w, p99w float64 // sums of percentile*requests
	max              time.Duration
}

// New returns an empty Registry.
func New(opts Options) *Registry {
	opts.fill()
	return &Registry{opts: opts, services: map[string]*serviceState{}}
}

// Dropped reports how many heartbeats were refused by the caps.
func (r *Registry) Dropped() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.dropped
}

// FoldedRoutes reports how many route summaries were counted under the
// "other" route because their service already had MaxRoutesPerService
// distinct routes.
func (r *Registry) FoldedRoutes() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.folded
}

// foldMethod keeps the standard HTTP methods and folds the rest.
func foldMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return m
	}
	return otherRoute
}

// Observe records one heartbeat received at now. The heartbeat must have
// been validated (wire.DecodeHeartbeat does).
func (r *Registry) Observe(hb wire.Heartbeat, remoteAddr string, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	svc, ok := r.services[hb.Service]
	if !ok {
		if len(r.services) >= MaxServices {
			r.dropped++
			return
		}
		svc = &serviceState{
			// The first beat reports the interval before it.
			firstSeen: now.Add(-hb.Interval.D()),
			instances: map[string]*Instance{},
			buckets:   map[int64]map[routeKey]*routeBucket{},
			routes:    map[routeKey]struct{}{},
		}
		r.services[hb.Service] = svc
	}
	inst, ok := svc.instances[hb.InstanceID]
	if !ok {
		if len(svc.instances) >= MaxInstancesPerService {
			r.dropped++
			return
		}
		inst = &Instance{ID: hb.InstanceID, Service: hb.Service}
		svc.instances[hb.InstanceID] = inst
	}
	inst.Address = hb.Address
	inst.Version = hb.Version
	inst.RemoteAddr = remoteAddr
	inst.StartedAt = hb.StartedAt
	inst.LastSeen = now
	inst.Interval = hb.Interval.D()
	inst.Checks = append(inst.Checks[:0], hb.Checks...)
	if hb.PolicyVersion != inst.PolicyVersion || inst.PolicyAppliedAt.IsZero() {
		inst.PolicyAppliedAt = now
	}
	inst.PolicyVersion = hb.PolicyVersion
	inst.PolicyError = hb.PolicyError
	inst.PolicyErrorVersion = hb.PolicyErrorVersion
	inst.Telemetry = hb.Telemetry
	inst.Rules = append(inst.Rules[:0], hb.Rules...)
	svc.recordBreakers(inst, hb.Breakers, now)

	start := now.Truncate(r.opts.Bucket).UnixNano()
	b, ok := svc.buckets[start]
	if !ok {
		b = map[routeKey]*routeBucket{}
		svc.buckets[start] = b
	}
	for _, rs := range hb.Routes {
		if rs.Requests == 0 {
			continue
		}
		k := routeKey{rs.Method, rs.Route}
		if _, known := svc.routes[k]; !known {
			if len(svc.routes) >= MaxRoutesPerService {
				// Fold; a made-up method folds too, or distinct
				// methods would grow the "other" keys without bound.
				k = routeKey{foldMethod(rs.Method), otherRoute}
				r.folded++
			}
			svc.routes[k] = struct{}{}
		}
		rb, ok := b[k]
		if !ok {
			rb = &routeBucket{}
			b[k] = rb
		}
		rb.add(rs)
	}
	r.pruneLocked(svc, now)
}

// recordBreakers notes every breaker whose state differs from the
// instance's previous report, then keeps the new states.
func (svc *serviceState) recordBreakers(inst *Instance, states []wire.BreakerStatus, now time.Time) {
	prev := map[string]string{}
	for _, b := range inst.Breakers {
		prev[b.RuleID+"\x00"+b.Target] = b.State
	}
	for _, b := range states {
		from, seen := prev[b.RuleID+"\x00"+b.Target]
		if !seen {
			from = "closed"
		}
		if from == b.State {
			continue
		}
		at := b.Since
		if at.IsZero() || at.After(now) {
			at = now
		}
		svc.events = append(svc.events, BreakerEvent{Time: at, Instance: inst.ID, RuleID: b.RuleID, Target: b.Target, From: from, To: b.State, Reason: b.Reason})
	}
	if over := len(svc.events) - MaxBreakerEvents; over > 0 {
		svc.events = append(svc.events[:0], svc.events[over:]...)
	}
	inst.Breakers = append(inst.Breakers[:0], states...)
}

func (b *routeBucket) add(rs wire.RouteSummary) {
	n := float64(rs.Requests)
	b.requests += rs.Requests
	b.errors += rs.Errors
	b.durationSum += rs.DurationSum.D()
	b.p50w += float64(rs.P50) * n
	b.p95w += float64(rs.P95) * n
	b.p99w += float64(rs.P99) * n
	if rs.Max.D() > b.max {
		b.max = rs.Max.D()
	}
}

func (b *routeBucket) merge(o *routeBucket) {
	b.requests += o.requests
	b.errors += o.errors
	b.durationSum += o.durationSum
	b.p50w += o.p50w
	b.p95w += o.p95w
	b.p99w += o.p99w
	if o.max > b.max {
		b.max = o.max
	}
}

func (b *routeBucket) percentile(w float64) time.Duration {
	if b.requests == 0 {
		return 0
	}
	return time.Duration(w / float64(b.requests))
}

func (r *Registry) pruneLocked(svc *serviceState, now time.Time) {
	oldest := now.Add(-r.opts.History - r.opts.Bucket).UnixNano()
	for t := range svc.buckets {
		if t < oldest {
			delete(svc.buckets, t)
		}
	}
}

// Services returns every known service, sorted by name, as of now.
// Instances silent for longer than ForgetAfter are removed.
func (r *Registry) Services(now time.Time) []Service {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Service, 0, len(r.services))
	for name, svc := range r.services {
		if s, ok := r.serviceLocked(name, svc, now); ok {
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Service returns one service as of now.
func (r *Registry) Service(name string, now time.Time) (Service, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	svc, ok := r.services[name]
	if !ok {
		return Service{}, false
	}
	return r.serviceLocked(name, svc, now)
}

// Instances returns the live (not down) instances of a service.
func (r *Registry) Instances(name string, now time.Time) []Instance {
	s, ok := r.Service(name, now)
	if !ok {
		return nil
	}
	out := s.Instances[:0:0]
	for _, in := range s.Instances {
		if in.Health != Down {
			out = append(out, in)
		}
	}
	return out
}

func (r *Registry) serviceLocked(name string, svc *serviceState, now time.Time) (Service, bool) {
	for id, in := range svc.instances {
		if now.Sub(in.LastSeen) > r.opts.ForgetAfter {
			delete(svc.instances, id)
		}
	}
	if len(svc.instances) == 0 {
		delete(r.services, name)
		return Service{}, false
	}
	r.pruneLocked(svc, now)
	s := Service{Name: name}
	rules := map[[2]string]uint64{}
	for _, in := range svc.instances {
		c := *in
		c.Checks = append([]wire.CheckResult(nil), in.Checks...)
		c.Rules = append([]wire.RuleStats(nil), in.Rules...)
		c.Breakers = append([]wire.BreakerStatus(nil), in.Breakers...)
		c.Health = instanceHealth(in, now)
		if c.LastSeen.After(s.LastHeartbeat) {
			s.LastHeartbeat = c.LastSeen
		}
		addTelemetry(&s.Telemetry, c.Telemetry)
		if c.Health != Down {
			for _, r := range c.Rules {
				rules[[2]string{r.RuleID, r.Action}] += r.Count
			}
		}
		s.Instances = append(s.Instances, c)
	}
	for k, n := range rules {
		s.Rules = append(s.Rules, wire.RuleStats{RuleID: k[0], Action: k[1], Count: n})
	}
	sort.Slice(s.Rules, func(i, j int) bool {
		if s.Rules[i].RuleID != s.Rules[j].RuleID {
			return s.Rules[i].RuleID < s.Rules[j].RuleID
		}
		return s.Rules[i].Action < s.Rules[j].Action
	})
	s.BreakerEvents = append([]BreakerEvent(nil), svc.events...)
	sort.Slice(s.Instances, func(i, j int) bool { return s.Instances[i].ID < s.Instances[j].ID })
	s.Health = ServiceHealth(s.Instances)
	s.Routes = r.routesLocked(svc, now)
	s.Series = r.seriesLocked(svc, now)
	rate := r.windowLocked(svc, now, r.opts.RateWindow)
	if rate.requests > 0 {
		s.RequestsPerSec = float64(rate.requests) / observed(svc, now, r.opts.RateWindow).Seconds()
		s.ErrorRate = float64(rate.errors) / float64(rate.requests)
		s.P95 = rate.percentile(rate.p95w)
	}
	return s, true
}

// ServiceHealth is a service's health from its instances': Down when
// every instance is down (or there is none), Degraded when some are down
// or degraded, else Healthy.
func ServiceHealth(instances []Instance) Health {
	down, degraded := 0, 0
	for _, in := range instances {
		switch in.Health {
		case Down:
			down++
		case Degraded:
			degraded++
		}
	}
	switch {
	case down == len(instances):
		return Down
	case down > 0 || degraded > 0:
		return Degraded
	}
	return Healthy
}

// observed is how much of window the registry has seen of svc, so that
// rates are not understated in a service's first minutes. It is at least one second.
func observed(svc *serviceState, now time.Time, window time.Duration) time.Duration {
	seen := now.Sub(svc.firstSeen)
	if seen < time.Second {
		seen = time.Second
	}
	return min(seen, window)
}

func instanceHealth(in *Instance, now time.Time) Health {
	iv := in.Interval
	if iv <= 0 {
		iv = wire.DefaultBeatPeriod
	}
	if now.Sub(in.LastSeen) > MissedBeats*iv {
		return Down
	}
	for _, c := range in.Checks {
		if !c.OK {
			return Degraded
		}
	}
	return Healthy
}

func addTelemetry(dst *wire.TelemetryStats, src wire.TelemetryStats) {
	dst.SpansExported += src.SpansExported
	dst.SpansDropped += src.SpansDropped
	dst.LogsExported += src.LogsExported
	dst.LogsDropped += src.LogsDropped
	dst.ExportErrors += src.ExportErrors
	dst.LocalLogsDropped += src.LocalLogsDropped
}

// windowLocked sums every route bucket that starts within window of now.
func (r *Registry) windowLocked(svc *serviceState, now time.Time, window time.Duration) routeBucket {
	var sum routeBucket
	from := now.Add(-window).UnixNano()
	for t, routes := range svc.buckets {
		if t < from {
			continue
		}
		for _, rb := range routes {
			sum.merge(rb)
		}
	}
	return sum
}

func (r *Registry) routesLocked(svc *serviceState, now time.Time) []RouteStats {
	from := now.Add(-r.opts.RouteWindow).UnixNano()
	agg := map[routeKey]*routeBucket{}
	for t, routes := range svc.buckets {
		if t < from {
			continue
		}
		for k, rb := range routes {
			a, ok := agg[k]
			if !ok {
				a = &routeBucket{}
				agg[k] = a
			}
			a.merge(rb)
		}
	}
	out := make([]RouteStats, 0, len(agg))
	for k, a := range agg {
		out = append(out, RouteStats{
			Method:         k.method,
			Route:          k.route,
			Requests:       a.requests,
			Errors:         a.errors,
			RequestsPerSec: float64(a.requests) / observed(svc, now, r.opts.RouteWindow).Seconds(),
			ErrorRate:      float64(a.errors) / float64(a.requests),
			P50:            a.percentile(a.p50w),
			P95:            a.percentile(a.p95w),
			P99:            a.percentile(a.p99w),
			Max:            a.max,
		})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Route != out[j].Route {
			return out[i].Route < out[j].Route
		}
		return out[i].Method < out[j].Method
	})
	return out
}

func (r *Registry) seriesLocked(svc *serviceState, now time.Time) []Point {
	n := int(r.opts.History / r.opts.Bucket)
	end := now.Truncate(r.opts.Bucket)
	out := make([]Point, n)
	for i := range out {
		t := end.Add(-time.Duration(n-1-i) * r.opts.Bucket)
		p := Point{Time: t, Span: min(r.opts.Bucket, now.Sub(t))}
		if routes, ok := svc.buckets[t.UnixNano()]; ok {
			var sum routeBucket
			for _, rb := range routes {
				sum.merge(rb)
			}
			p.Requests, p.Errors, p.P95 = sum.requests, sum.errors, sum.percentile(sum.p95w)
		}
		out[i] = p
	}
	return out
}

// Endpoints returns the live instances of every service that reported an
// address, for agents to route outbound calls.
func (r *Registry) Endpoints(now time.Time) map[string][]wire.Endpoint {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string][]wire.Endpoint{}
	for name, svc := range r.services {
		var eps []wire.Endpoint
		for _, in := range svc.instances {
			if in.Address == "" || instanceHealth(in, now) == Down {
				continue
			}
			eps = append(eps, wire.Endpoint{Instance: in.ID, Address: in.Address, Version: in.Version})
		}
		if len(eps) > 0 {
			sort.Slice(eps, func(i, j int) bool { return eps[i].Instance < eps[j].Instance })
			out[name] = eps
		}
	}
	return out
}

// LiveInstances counts the instances of service that are not down.
func (r *Registry) LiveInstances(service string, now time.Time) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	svc, ok := r.services[service]
	if !ok {
		return 0
	}
	n := 0
	for _, in := range svc.instances {
		if instanceHealth(in, now) != Down {
			n++
		}
	}
	return n
}
