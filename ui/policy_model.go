package ui

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/pilothouse/pilothouse/agent/wire"
)

// ErrConflict is wrapped by a PolicySource when an edit was based on a
// version that is no longer the current one.
var ErrConflict = errors.New("ui: policy changed meanwhile")

// ConflictError says who wrote the version that made an edit stale.
type ConflictError struct {
	Service string
	Base    int64 // the version the edit was based on
	Current int64 // the version that is current now
	Actor   string
	Time    time.Time
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("ui: %s: edit based on version %d, but %s wrote version %d meanwhile", e.Service, e.Base, e.Actor, e.Current)
}

// Unwrap makes errors.Is(err, ErrConflict) true.
func (e *ConflictError) Unwrap() error { return ErrConflict }

// Author says who makes a policy change, from where and why.
type Author struct {
	Actor  string
	Remote string
	Reason string
}

// PolicySource reads and changes service policies for the policy pages.
// Implementations must be safe for concurrent use.
//
// SavePolicy and RollbackPolicy return a *ConflictError (wrapping
// ErrConflict) when base is not the current version, and wire.FieldErrors
// when the policy is invalid.
type PolicySource interface {
	// PolicyServices lists every service that has a stored policy or a
	// live instance, sorted by name.
	PolicyServices(ctx context.Context, now time.Time) ([]PolicySummary, error)
	// Policy is everything the policy tab shows, with at most history
	// versions of history (newest first).
	Policy(ctx context.Context, service string, now time.Time, history int) (PolicyDetail, error)
	// PolicyChanges lists the changes of service made in [since, until],
	// newest first, for markers on charts.
	PolicyChanges(ctx context.Context, service string, since, until time.Time) ([]PolicyChange, error)
	// SavePolicy stores p as the next version of p.Service if base is
	// still the current version, and returns what was stored.
	SavePolicy(ctx context.Context, p wire.Policy, base int64, by Author) (wire.Policy, error)
	// RollbackPolicy stores the content of version to as a new version.
	// It wraps ErrNotFound when version to does not exist.
	RollbackPolicy(ctx context.Context, service string, to, base int64, by Author) (wire.Policy, error)
}

// PolicyInstance is what one instance reports about its policy.
type PolicyInstance struct {
	ID     string
	Health Health
	// AppliedVersion is the version the instance runs, since AppliedAt.
	AppliedVersion int64
	AppliedAt      time.Time
	// RejectedVersion and Error are set when the instance refused a
	// version (a NACK).
	RejectedVersion int64
	Error           string
	Breakers        []BreakerState
}

// BreakerState is one circuit breaker's state on one instance.
type BreakerState struct {
	RuleID string
	Target string
	State  string // closed, open, half-open
	Since  time.Time
	Reason string
}

// PolicySummary is one row of the policies page.
type PolicySummary struct {
	Service   string
	Policy    wire.Policy // Version 0: none stored yet
	Instances []PolicyInstance
}

// RuleCount is how often one rule took one action, summed over the live
// instances (passed, limited, degraded, broken, shadow, routed).
type RuleCount struct {
	RuleID string
	Action string
	Count  uint64
}

// PolicyChange is one stored version with its audit record.
type PolicyChange struct {
	Version int64
	Time    time.Time
	Actor   string
	Remote  string
	Action  string // update or rollback
	Reason  string
	// Diff is a line diff: "+" added, "-" removed, " " kept.
	Diff string
}

// BreakerEvent is one observed breaker state change on one instance.
type BreakerEvent struct {
	Time     time.Time
	Instance string
	RuleID   string
	Target   string
	From     string
	To       string
	Reason   string
}

// PolicyDetail is everything the policy tab of a service shows.
type PolicyDetail struct {
	Service   string
	Policy    wire.Policy
	Instances []PolicyInstance
	Counters  []RuleCount
	History   []PolicyChange // newest first
	// Breakers are breaker state changes, oldest first.
	Breakers []BreakerEvent
	// Series is the service's recent traffic, oldest first.
	Series []Point
}
