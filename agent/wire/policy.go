package wire

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Mode says whether a rule acts or only reports what it would have done.
type Mode string

// Rule modes.
const (
	// Enforce applies the rule.
	Enforce Mode = "enforce"
	// Shadow only counts and marks what the rule would have done.
	Shadow Mode = "shadow"
)

// Actions recorded on spans, log lines and counters when a rule acts.
const (
	ActionLimited  = "limited"
	ActionDegraded = "degraded"
	ActionBroken   = "broken"
	ActionRouted   = "routed"
	ActionShadow   = "shadow"
	ActionPassed   = "passed"
)

// Span and log attribute keys for rule decisions.
const (
	AttrRuleID = "pilothouse.rule.id"
	AttrAction = "pilothouse.action"
)

// Policy is one versioned snapshot of every rule for one service.
type Policy struct {
	Service string `json:"service"`
	// Version increases with every change; the control plane sets it.
	Version      int64             `json:"version"`
	RateLimits   []RateLimitRule   `json:"rate_limits,omitempty"`
	Breakers     []BreakerRule     `json:"breakers,omitempty"`
	Degradations []DegradationRule `json:"degradations,omitempty"`
	Routes       []RoutingRule     `json:"routes,omitempty"`
	Timeouts     []TimeoutRule     `json:"timeouts,omitempty"`
}

// RuleMeta is common to every rule.
type RuleMeta struct {
	ID          string `json:"id"`
	Description string `json:"description,omitempty"`
	// Mode defaults to enforce.
	Mode Mode `json:"mode,omitempty"`
}

// Match selects inbound requests. Empty fields match everything.
type Match struct {
	// Route is a Gin route template such as "/orders/:id".
	Route  string       `json:"route,omitempty"`
	Method string       `json:"method,omitempty"`
	Header *HeaderMatch `json:"header,omitempty"`
}

// HeaderMatch matches a request header exactly.
type HeaderMatch struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Response is a canned answer: a rate limit's rejection, a breaker's or a
// degradation's fallback.
type Response struct {
	Status      int    `json:"status,omitempty"`
	ContentType string `json:"content_type,omitempty"`
	Body        string `json:"body,omitempty"`
}

// Rate limit keys.
const (
	KeyGlobal   = "global"
	KeyClientIP = "client_ip"
	// KeyHeaderPrefix followed by a header name keys by that header's value.
	KeyHeaderPrefix = "header:"
)

// Rate limit scopes.
const (
	ScopeInstance = "instance"
	// ScopeCluster shares Rate among the live instances of the service.
	ScopeCluster = "cluster"
)

// RateLimitRule is a token bucket on inbound requests.
type RateLimitRule struct {
	RuleMeta
	Match Match `json:"match"`
	// Rate is tokens per second; Burst the bucket size (default Rate,
	// at least 1).
	Rate  float64 `json:"rate"`
	Burst int     `json:"burst,omitempty"`
	// Key is global (default), client_ip, or header:<Name>.
	Key string `json:"key,omitempty"`
	// Scope is instance (default) or cluster.
	Scope string `json:"scope,omitempty"`
	// InstanceRate is set by the control plane for cluster-scoped rules:
	// this instance's share of Rate.
	InstanceRate float64 `json:"instance_rate,omitempty"`
	// Response defaults to 429 with a JSON body and Retry-After.
	Response *Response `json:"response,omitempty"`
}

// Breaker strategies.
const (
	StrategyErrorRatio        = "error_ratio"
	StrategySlowCallRatio     = "slow_call_ratio"
	StrategyConsecutiveErrors = "consecutive_errors"
)

// BreakerRule is a circuit breaker on an inbound route (Match) or an
// outbound target service (Target).
type BreakerRule struct {
	RuleMeta
	Match  *Match `json:"match,omitempty"`
	Target string `json:"target,omitempty"`
	// Strategy is error_ratio (default), slow_call_ratio or
	// consecutive_errors.
	Strategy string `json:"strategy,omitempty"`
	// Threshold is a ratio in (0,1] for the ratio strategies, or a count
	// for consecutive_errors.
	Threshold float64 `json:"threshold"`
	// SlowCall is the latency over which a call counts as slow.
	SlowCall    Duration `json:"slow_call,omitempty"`
	MinRequests int      `json:"min_requests,omitempty"`
	Window      Duration `json:"window,omitempty"`
	OpenFor     Duration `json:"open_for,omitempty"`
	// HalfOpenProbes is how many trial calls pass while half-open.
	HalfOpenProbes int `json:"half_open_probes,omitempty"`
	// ErrorStatuses lists statuses ("500", "5xx") that count as errors;
	// default 5xx.
	ErrorStatuses []string  `json:"error_statuses,omitempty"`
	Fallback      *Response `json:"fallback,omitempty"`
}

// DegradationRule switches a route to a fallback answer without running
// its handler while Enabled.
type DegradationRule struct {
	RuleMeta
	Match    Match    `json:"match"`
	Enabled  bool     `json:"enabled"`
	Fallback Response `json:"fallback"`
}

// Subset is a named group of instances of a target service.
type Subset struct {
	Name string `json:"name"`
	// Version selects instances reporting this version; empty = all.
	Version string `json:"version,omitempty"`
	Weight  int    `json:"weight"`
}

// HeaderRoute sends requests carrying a header value to one subset.
type HeaderRoute struct {
	Header HeaderMatch `json:"header"`
	Subset string      `json:"subset"`
}

// RoutingRule splits outbound calls to Target across subsets.
type RoutingRule struct {
	RuleMeta
	Target    string        `json:"target"`
	Subsets   []Subset      `json:"subsets"`
	Overrides []HeaderRoute `json:"overrides,omitempty"`
}

// TimeoutRule bounds outbound calls to Target.
type TimeoutRule struct {
	RuleMeta
	Target  string   `json:"target"`
	Timeout Duration `json:"timeout"`
}

// Limits on a policy's contents.
const (
	MaxPolicyBytes   = 1 << 20
	MaxRulesPerKind  = 200
	MaxResponseBytes = 64 << 10
)

var (
	idPattern     = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._-]{0,99}$`)
	headerPattern = regexp.MustCompile(`^[A-Za-z0-9!#$%&'*+.^_` + "`" + `|~-]{1,100}$`)
	statusPattern = regexp.MustCompile(`^([1-5][0-9][0-9]|[1-5]xx)$`)
)

// DecodePolicy reads one JSON policy, rejecting unknown fields and
// anything over MaxPolicyBytes, and validates it.
func DecodePolicy(r io.Reader) (Policy, error) {
	var p Policy
	lr := &io.LimitedReader{R: r, N: MaxPolicyBytes + 1}
	data, err := io.ReadAll(lr)
	if err != nil {
		return p, fmt.Errorf("wire: read policy: %w", err)
	}
	if len(data) > MaxPolicyBytes {
		return p, ErrTooLarge
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return p, decodeError(err, data)
	}
	if dec.More() {
		return p, FieldError{"", "unexpected data after the policy document"}
	}
	return p, p.Validate()
}

// decodeError turns encoding/json errors into field errors where it can;
// an unknown field is named by its path in data.
func decodeError(err error, data []byte) error {
	var te *json.UnmarshalTypeError
	if ok := asErr(err, &te); ok {
		return FieldError{te.Field, "must be " + te.Type.String()}
	}
	msg := err.Error()
	if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		if path, found := unknownFieldPath(data, reflect.TypeFor[Policy]()); found {
			return FieldError{path, "unknown field"}
		}
		return FieldError{strings.Trim(f, `"`), "unknown field"}
	}
	return FieldError{"", "not valid JSON: " + msg}
}

// Validate reports every field at fault, with paths such as
// "rate_limits[0].rate".
func (p *Policy) Validate() error {
	var v validator
	v.name("service", p.Service, true)
	if p.Version < 0 {
		v.add("version", "must not be negative")
	}
	ids := map[string]string{}
	seen := func(path, id string) {
		if prev, dup := ids[id]; dup && id != "" {
			v.add(path+".id", fmt.Sprintf("duplicate of %s.id", prev))
			return
		}
		ids[id] = path
	}
	v.count("rate_limits", len(p.RateLimits))
	for i, r := range p.RateLimits {
		path := fmt.Sprintf("rate_limits[%d]", i)
		v.meta(path, r.RuleMeta)
		seen(path, r.ID)
		v.match(path+".match", &r.Match)
		if !(r.Rate > 0) || r.Rate > 1e9 {
			v.add(path+".rate", "must be more than 0 requests per second")
		}
		if r.Burst < 0 || r.Burst > 1e9 {
			v.add(path+".burst", "must be from 0 to 1000000000")
		}
		switch {
		case r.Key == "", r.Key == KeyGlobal, r.Key == KeyClientIP:
		case strings.HasPrefix(r.Key, KeyHeaderPrefix) && headerPattern.MatchString(strings.TrimPrefix(r.Key, KeyHeaderPrefix)):
		default:
			v.add(path+".key", "must be global, client_ip or header:<Header-Name>")
		}
		switch r.Scope {
		case "", ScopeInstance, ScopeCluster:
		default:
			v.add(path+".scope", "must be instance or cluster")
		}
		if r.InstanceRate < 0 {
			v.add(path+".instance_rate", "must not be negative")
		}
		v.response(path+".response", r.Response, false)
	}
	v.count("breakers", len(p.Breakers))
	for i, b := range p.Breakers {
		path := fmt.Sprintf("breakers[%d]", i)
		v.meta(path, b.RuleMeta)
		seen(path, b.ID)
		switch {
		case b.Match == nil && b.Target == "":
			v.add(path+".target", "a breaker needs a match (inbound route) or a target (outbound service)")
		case b.Match != nil && b.Target != "":
			v.add(path+".target", "set either match or target, not both")
		case b.Match != nil:
			v.match(path+".match", b.Match)
		default:
			v.name(path+".target", b.Target, true)
		}
		switch b.Strategy {
		case "", StrategyErrorRatio, StrategySlowCallRatio:
			if !(b.Threshold > 0 && b.Threshold <= 1) {
				v.add(path+".threshold", "must be a ratio above 0 and at most 1")
			}
		case StrategyConsecutiveErrors:
			if b.Threshold < 1 || b.Threshold != float64(int(b.Threshold)) || b.Threshold > 1e6 {
				v.add(path+".threshold", "must be a whole number of consecutive errors, at least 1")
			}
		default:
			v.add(path+".strategy", "must be error_ratio, slow_call_ratio or consecutive_errors")
		}
		if b.Strategy == StrategySlowCallRatio && b.SlowCall <= 0 {
			v.add(path+".slow_call", "is required for slow_call_ratio, like 500ms")
		}
		v.nonNegative(path+".slow_call", b.SlowCall)
		if b.MinRequests < 0 || b.MinRequests > 1e6 {
			v.add(path+".min_requests", "must be from 0 to 1000000")
		}
		v.nonNegative(path+".window", b.Window)
		v.nonNegative(path+".open_for", b.OpenFor)
		if b.HalfOpenProbes < 0 || b.HalfOpenProbes > 1000 {
			v.add(path+".half_open_probes", "must be from 0 to 1000")
		}
		for j, s := range b.ErrorStatuses {
			if !statusPattern.MatchString(s) {
				v.add(fmt.Sprintf("%s.error_statuses[%d]", path, j), "must be a status like 503 or a class like 5xx")
			}
		}
		v.response(path+".fallback", b.Fallback, false)
	}
	v.count("degradations", len(p.Degradations))
	for i, d := range p.Degradations {
		path := fmt.Sprintf("degradations[%d]", i)
		v.meta(path, d.RuleMeta)
		seen(path, d.ID)
		v.match(path+".match", &d.Match)
		if d.Match.Route == "" {
			v.add(path+".match.route", "a degradation needs a route")
		}
		v.response(path+".fallback", &d.Fallback, true)
	}
	v.count("routes", len(p.Routes))
	for i, r := range p.Routes {
		path := fmt.Sprintf("routes[%d]", i)
		v.meta(path, r.RuleMeta)
		seen(path, r.ID)
		v.name(path+".target", r.Target, true)
		if len(r.Subsets) == 0 {
			v.add(path+".subsets", "at least one subset is required")
		}
		names := map[string]bool{}
		total := 0
		for j, s := range r.Subsets {
			sp := fmt.Sprintf("%s.subsets[%d]", path, j)
			v.name(sp+".name", s.Name, true)
			if names[s.Name] {
				v.add(sp+".name", "duplicate subset name")
			}
			names[s.Name] = true
			v.name(sp+".version", s.Version, false)
			if s.Weight < 0 || s.Weight > 10000 {
				v.add(sp+".weight", "must be from 0 to 10000")
			}
			total += s.Weight
		}
		if len(r.Subsets) > 0 && total == 0 {
			v.add(path+".subsets", "weights must not all be 0")
		}
		for j, o := range r.Overrides {
			op := fmt.Sprintf("%s.overrides[%d]", path, j)
			v.header(op+".header", &o.Header)
			if !names[o.Subset] {
				v.add(op+".subset", fmt.Sprintf("no subset named %q", o.Subset))
			}
		}
	}
	v.count("timeouts", len(p.Timeouts))
	for i, t := range p.Timeouts {
		path := fmt.Sprintf("timeouts[%d]", i)
		v.meta(path, t.RuleMeta)
		seen(path, t.ID)
		v.name(path+".target", t.Target, true)
		if t.Timeout <= 0 || t.Timeout.D() > time.Hour {
			v.add(path+".timeout", "must be above 0 and at most 1h, like 2s")
		}
	}
	return v.errs.errOrNil()
}

type validator struct{ errs FieldErrors }

func (v *validator) add(field, msg string) { v.errs = append(v.errs, FieldError{field, msg}) }

func (v *validator) name(field, s string, required bool) { checkName(&v.errs, field, s, required) }

func (v *validator) count(field string, n int) {
	if n > MaxRulesPerKind {
		v.add(field, fmt.Sprintf("at most %d rules", MaxRulesPerKind))
	}
}

func (v *validator) nonNegative(field string, d Duration) {
	if d < 0 {
		v.add(field, "must not be negative")
	}
}

func (v *validator) meta(path string, m RuleMeta) {
	if !idPattern.MatchString(m.ID) {
		v.add(path+".id", "is required: letters, digits, '.', '_' or '-', at most 100")
	}
	if len(m.Description) > MaxMessageLen {
		v.add(path+".description", fmt.Sprintf("longer than %d bytes", MaxMessageLen))
	}
	switch m.Mode {
	case "", Enforce, Shadow:
	default:
		v.add(path+".mode", "must be enforce or shadow")
	}
}

func (v *validator) match(path string, m *Match) {
	if m.Route != "" && (!strings.HasPrefix(m.Route, "/") || len(m.Route) > MaxNameLen) {
		v.add(path+".route", "must be a route template starting with /, like /orders/:id")
	}
	switch m.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions:
	default:
		v.add(path+".method", "must be an HTTP method in capitals, like GET")
	}
	if m.Header != nil {
		v.header(path+".header", m.Header)
	}
}

func (v *validator) header(path string, h *HeaderMatch) {
	if !headerPattern.MatchString(h.Name) {
		v.add(path+".name", "must be a header name")
	}
	if len(h.Value) > MaxNameLen {
		v.add(path+".value", fmt.Sprintf("longer than %d bytes", MaxNameLen))
	}
}

func (v *validator) response(path string, r *Response, required bool) {
	if r == nil {
		if required {
			v.add(path, "is required")
		}
		return
	}
	if r.Status != 0 && (r.Status < 200 || r.Status > 599) {
		v.add(path+".status", "must be an HTTP status from 200 to 599")
	}
	if required && r.Status == 0 {
		v.add(path+".status", "is required")
	}
	if len(r.Body) > MaxResponseBytes {
		v.add(path+".body", fmt.Sprintf("longer than %d bytes", MaxResponseBytes))
	}
	if len(r.ContentType) > MaxNameLen || strings.ContainsAny(r.ContentType, "\r\n") {
		v.add(path+".content_type", "must be a media type like application/json")
	}
}

// StatusMatches reports whether code matches a status pattern such as
// "503" or "5xx".
func StatusMatches(pattern string, code int) bool {
	if strings.HasSuffix(pattern, "xx") {
		return len(pattern) == 3 && code/100 == int(pattern[0]-'0')
	}
	n, err := strconv.Atoi(pattern)
	return err == nil && n == code
}

// PolicyUpdate is the control plane's answer to a policy long-poll.
type PolicyUpdate struct {
	Policy Policy `json:"policy"`
}
