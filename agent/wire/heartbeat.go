package wire

import (
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// Heartbeat is what an agent reports every few seconds: who it is, whether
// its checks pass, what it served since the previous beat and what it had
// to drop.
type Heartbeat struct {
	Service    string    `json:"service"`
	InstanceID string    `json:"instance_id"`
	Address    string    `json:"address,omitempty"`
	Version    string    `json:"version,omitempty"`
	StartedAt  time.Time `json:"started_at"`
	SentAt     time.Time `json:"sent_at"`
	// Interval is how often the agent beats; the control plane marks the
	// instance down after three missed beats.
	Interval Duration `json:"interval"`

	Checks    []CheckResult  `json:"checks,omitempty"`
	Routes    []RouteSummary `json:"routes,omitempty"`
	Telemetry TelemetryStats `json:"telemetry"`

	// PolicyVersion is the policy version the agent runs; PolicyError is
	// set when it rejected a newer one (a NACK).
	PolicyVersion int64  `json:"policy_version,omitempty"`
	PolicyError   string `json:"policy_error,omitempty"`
	// PolicyErrorVersion is the version that was rejected.
	PolicyErrorVersion int64 `json:"policy_error_version,omitempty"`

	// Rules are cumulative counters of what each rule did.
	Rules []RuleStats `json:"rules,omitempty"`
	// Breakers are the current states of the agent's circuit breakers.
	Breakers []BreakerStatus `json:"breakers,omitempty"`
}

// RuleStats counts how often one rule took one action (passed, limited,
// degraded, broken, routed, shadow) since the agent started.
type RuleStats struct {
	RuleID string `json:"rule_id"`
	Action string `json:"action"`
	Count  uint64 `json:"count"`
}

// BreakerStatus is one circuit breaker's state.
type BreakerStatus struct {
	RuleID string `json:"rule_id"`
	// Target is the outbound service, or empty for an inbound route.
	Target string    `json:"target,omitempty"`
	State  string    `json:"state"` // closed, open, half-open
	Since  time.Time `json:"since"`
	Reason string    `json:"reason,omitempty"`
}

// HeartbeatReply is the control plane's answer to a heartbeat: what the
// agent needs to route outbound calls and share cluster-wide limits.
type HeartbeatReply struct {
	OK bool `json:"ok"`
	// PolicyVersion is the control plane's current policy version for the
	// service; an agent behind it re-polls at once.
	PolicyVersion int64 `json:"policy_version,omitempty"`
	// Endpoints maps each service name to its live instances.
	Endpoints map[string][]Endpoint `json:"endpoints,omitempty"`
	// RateShares maps a cluster-scoped rate-limit rule ID to this
	// instance's share of its rate, in requests per second.
	RateShares map[string]float64 `json:"rate_shares,omitempty"`
}

// Endpoint is one live instance of a service.
type Endpoint struct {
	Instance string `json:"instance"`
	Address  string `json:"address"`
	Version  string `json:"version,omitempty"`
}

// CheckResult is the outcome of one user-registered health check.
type CheckResult struct {
	Name     string   `json:"name"`
	OK       bool     `json:"ok"`
	Message  string   `json:"message,omitempty"`
	Duration Duration `json:"duration"`
}

// RouteSummary holds RED figures for one route template since the
// previous heartbeat.
type RouteSummary struct {
	Method   string `json:"method"`
	Route    string `json:"route"`
	Requests int64  `json:"requests"`
	// Errors counts responses with status >= 500.
	Errors      int64    `json:"errors"`
	DurationSum Duration `json:"duration_sum"`
	P50         Duration `json:"p50"`
	P95         Duration `json:"p95"`
	P99         Duration `json:"p99"`
	Max         Duration `json:"max"`
}

// TelemetryStats are cumulative counters of the agent's export queues.
type TelemetryStats struct {
	SpansExported uint64 `json:"spans_exported"`
	SpansDropped  uint64 `json:"spans_dropped"`
	LogsExported  uint64 `json:"logs_exported"`
	LogsDropped   uint64 `json:"logs_dropped"`
	// ExportErrors counts export requests that failed.
	ExportErrors uint64 `json:"export_errors"`
	// LocalLogsDropped counts local JSON log lines (stderr by default)
	// lost because the writer fell behind or failed.
	LocalLogsDropped uint64 `json:"local_logs_dropped,omitempty"`
}

// Limits on a heartbeat's contents.
const (
	MaxNameLen        = 200
	MaxChecks         = 64
	MaxRoutes         = 1000
	MaxRuleStats      = 1000
	MaxMessageLen     = 2000
	MinBeatInterval   = 100 * time.Millisecond
	MaxBeatInterval   = 10 * time.Minute
	DefaultBeatPeriod = 5 * time.Second
)

// Validate reports every field at fault.
func (h *Heartbeat) Validate() error {
	var es FieldErrors
	checkName(&es, "service", h.Service, true)
	checkName(&es, "instance_id", h.InstanceID, true)
	checkName(&es, "address", h.Address, false)
	checkName(&es, "version", h.Version, false)
	if iv := h.Interval.D(); iv < MinBeatInterval || iv > MaxBeatInterval {
		es = append(es, FieldError{"interval", fmt.Sprintf("must be between %s and %s", MinBeatInterval, MaxBeatInterval)})
	}
	if len(h.Checks) > MaxChecks {
		es = append(es, FieldError{"checks", fmt.Sprintf("at most %d checks", MaxChecks)})
	}
	for i, c := range h.Checks {
		checkName(&es, fmt.Sprintf("checks[%d].name", i), c.Name, true)
		if len(c.Message) > MaxMessageLen {
			es = append(es, FieldError{fmt.Sprintf("checks[%d].message", i), fmt.Sprintf("longer than %d bytes", MaxMessageLen)})
		}
	}
	if len(h.Routes) > MaxRoutes {
		es = append(es, FieldError{"routes", fmt.Sprintf("at most %d routes", MaxRoutes)})
	}
	for i, r := range h.Routes {
		checkName(&es, fmt.Sprintf("routes[%d].route", i), r.Route, true)
		checkName(&es, fmt.Sprintf("routes[%d].method", i), r.Method, true)
		if r.Requests < 0 || r.Errors < 0 || r.Errors > r.Requests {
			es = append(es, FieldError{fmt.Sprintf("routes[%d].errors", i), "requests and errors must be >= 0 and errors <= requests"})
		}
	}
	if len(h.Rules) > MaxRuleStats {
		es = append(es, FieldError{"rules", fmt.Sprintf("at most %d entries", MaxRuleStats)})
	}
	for i, r := range h.Rules {
		checkName(&es, fmt.Sprintf("rules[%d].rule_id", i), r.RuleID, true)
		checkName(&es, fmt.Sprintf("rules[%d].action", i), r.Action, true)
	}
	if len(h.Breakers) > MaxRuleStats {
		es = append(es, FieldError{"breakers", fmt.Sprintf("at most %d entries", MaxRuleStats)})
	}
	for i, b := range h.Breakers {
		checkName(&es, fmt.Sprintf("breakers[%d].rule_id", i), b.RuleID, true)
		checkName(&es, fmt.Sprintf("breakers[%d].state", i), b.State, true)
		if len(b.Reason) > MaxMessageLen {
			es = append(es, FieldError{fmt.Sprintf("breakers[%d].reason", i), fmt.Sprintf("longer than %d bytes", MaxMessageLen)})
		}
	}
	if len(h.PolicyError) > MaxMessageLen {
		es = append(es, FieldError{"policy_error", fmt.Sprintf("longer than %d bytes", MaxMessageLen)})
	}
	return es.errOrNil()
}

func checkName(es *FieldErrors, field, v string, required bool) {
	switch {
	case v == "" && required:
		*es = append(*es, FieldError{field, "is required"})
	case len(v) > MaxNameLen:
		*es = append(*es, FieldError{field, fmt.Sprintf("longer than %d bytes", MaxNameLen)})
	}
}

// DecodeHeartbeat reads one JSON heartbeat of at most MaxHeartbeatBytes
// and validates it. Unknown fields are ignored so that newer agents can
// talk to older control planes.
func DecodeHeartbeat(r io.Reader) (Heartbeat, error) {
	var h Heartbeat
	lr := &io.LimitedReader{R: r, N: MaxHeartbeatBytes + 1}
	dec := json.NewDecoder(lr)
	if err := dec.Decode(&h); err != nil {
		if lr.N <= 0 {
			return h, ErrTooLarge
		}
		return h, fmt.Errorf("wire: heartbeat is not valid JSON: %w", err)
	}
	if lr.N <= 0 {
		return h, ErrTooLarge
	}
	return h, h.Validate()
}
