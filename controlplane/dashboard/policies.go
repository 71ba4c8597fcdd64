package dashboard

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/pilothouse/pilothouse/agent/wire"
	"github.com/pilothouse/pilothouse/controlplane/policy"
	"github.com/pilothouse/pilothouse/controlplane/registry"
	"github.com/pilothouse/pilothouse/ui"
)

// PolicyStore is the part of *policy.Store the policy pages use.
type PolicyStore interface {
	Current(service string) wire.Policy
	Services() []string
	History(ctx context.Context, service string, limit int) ([]policy.Change, error)
	Version(ctx context.Context, service string, version int64) (policy.Change, error)
	Put(ctx context.Context, p wire.Policy, base int64, by policy.Author) (wire.Policy, error)
	Rollback(ctx context.Context, service string, to, base int64, by policy.Author) (wire.Policy, error)
}

var (
	_ PolicyStore     = (*policy.Store)(nil)
	_ ui.PolicySource = (*Source)(nil)
)

// Option configures a Source.
type Option func(*Source)

// WithPolicies serves the policy pages from pol: pass the Source to
// ui.WithPolicies as well. Without it the PolicySource methods fail with
// ErrNoPolicies.
func WithPolicies(pol PolicyStore) Option { return func(s *Source) { s.policies = pol } }

// WithPolicyChanged calls onChange after every policy change made through
// the dashboard, with the stored version and its audit record (for an
// audit log). ctx is the request's.
func WithPolicyChanged(onChange func(ctx context.Context, c policy.Change)) Option {
	return func(s *Source) { s.onChange = onChange }
}

// ErrNoPolicies is returned by the policy methods of a Source built
// without WithPolicies.
var ErrNoPolicies = errors.New("dashboard: no policy store configured")

// markerScan caps the history read for chart markers.
const markerScan = 100

func (s *Source) policyStore() (PolicyStore, error) {
	if s.policies == nil {
		return nil, ErrNoPolicies
	}
	return s.policies, nil
}

// PolicyServices implements ui.PolicySource: services known from the
// registry or with a stored policy.
func (s *Source) PolicyServices(ctx context.Context, now time.Time) ([]ui.PolicySummary, error) {
	pol, err := s.policyStore()
	if err != nil {
		return nil, err
	}
	byName := map[string]*ui.PolicySummary{}
	for _, svc := range s.reg.Services(now) {
		byName[svc.Name] = &ui.PolicySummary{Service: svc.Name, Instances: policyInstances(svc.Instances)}
	}
	for _, name := range pol.Services() {
		if _, ok := byName[name]; !ok {
			byName[name] = &ui.PolicySummary{Service: name}
		}
	}
	out := make([]ui.PolicySummary, 0, len(byName))
	for name, sum := range byName {
		sum.Policy = pol.Current(name)
		out = append(out, *sum)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Service < out[j].Service })
	return out, nil
}

func policyInstances(ins []registry.Instance) []ui.PolicyInstance {
	out := make([]ui.PolicyInstance, len(ins))
	for i, in := range ins {
		pi := ui.PolicyInstance{ID: in.ID, Health: ui.Health(in.Health), AppliedVersion: in.PolicyVersion, AppliedAt: in.PolicyAppliedAt,
			RejectedVersion: in.PolicyErrorVersion, Error: in.PolicyError}
		for _, b := range in.Breakers {
			pi.Breakers = append(pi.Breakers, ui.BreakerState{RuleID: b.RuleID, Target: b.Target, State: b.State, Since: b.Since, Reason: b.Reason})
		}
		out[i] = pi
	}
	return out
}

// Policy implements ui.PolicySource. A service nobody has heard of yet
// gets an empty policy: a rule can be written before the service starts.
func (s *Source) Policy(ctx context.Context, service string, now time.Time, history int) (ui.PolicyDetail, error) {
	pol, err := s.policyStore()
	if err != nil {
		return ui.PolicyDetail{}, err
	}
	d := ui.PolicyDetail{Service: service, Policy: pol.Current(service)}
	if svc, ok := s.reg.Service(service, now); ok {
		d.Instances = policyInstances(svc.Instances)
		for _, r := range svc.Rules {
			d.Counters = append(d.Counters, ui.RuleCount{RuleID: r.RuleID, Action: r.Action, Count: r.Count})
		}
		for _, e := range svc.BreakerEvents {
			d.Breakers = append(d.Breakers, ui.BreakerEvent{Time: e.Time, Instance: e.Instance, RuleID: e.RuleID, Target: e.Target, From: e.From, To: e.To, Reason: e.Reason})
		}
		d.Series = summary(svc).Series
	}
	if history > 0 && d.Policy.Version > 0 {
		changes, err := pol.History(ctx, service, history)
		if err != nil {
			return d, fmt.Errorf("dashboard: %w", err)
		}
		d.History = make([]ui.PolicyChange, len(changes))
		for i, c := range changes {
			d.History[i] = change(c)
		}
	}
	return d, nil
}

func change(c policy.Change) ui.PolicyChange {
	return ui.PolicyChange{Version: c.Version, Time: c.Time, Actor: c.Actor, Remote: c.Remote, Action: c.Action, Reason: c.Reason, Diff: c.Diff}
}

// PolicyChanges implements ui.PolicySource.
func (s *Source) PolicyChanges(ctx context.Context, service string, since, until time.Time) ([]ui.PolicyChange, error) {
	pol, err := s.policyStore()
	if err != nil {
		return nil, err
	}
	if pol.Current(service).Version == 0 {
		return nil, nil
	}
	changes, err := pol.History(ctx, service, markerScan)
	if err != nil {
		return nil, fmt.Errorf("dashboard: %w", err)
	}
	var out []ui.PolicyChange
	for _, c := range changes {
		if c.Time.Before(since) {
			break
		}
		if !c.Time.After(until) {
			out = append(out, change(c))
		}
	}
	return out, nil
}

// SavePolicy implements ui.PolicySource.
func (s *Source) SavePolicy(ctx context.Context, p wire.Policy, base int64, by ui.Author) (wire.Policy, error) {
	pol, err := s.policyStore()
	if err != nil {
		return wire.Policy{}, err
	}
	saved, err := pol.Put(ctx, p, base, policy.Author(by))
	return s.written(ctx, p.Service, base, saved, err)
}

// RollbackPolicy implements ui.PolicySource.
func (s *Source) RollbackPolicy(ctx context.Context, service string, to, base int64, by ui.Author) (wire.Policy, error) {
	pol, err := s.policyStore()
	if err != nil {
		return wire.Policy{}, err
	}
	saved, err := pol.Rollback(ctx, service, to, base, policy.Author(by))
	return s.written(ctx, service, base, saved, err)
}

// written maps the policy store's errors to the ui's and tells the
// change hook about a stored version.
func (s *Source) written(ctx context.Context, service string, base int64, saved wire.Policy, err error) (wire.Policy, error) {
	var ce *policy.ConflictError
	switch {
	case err == nil:
	case errors.As(err, &ce):
		uce := &ui.ConflictError{Service: service, Base: ce.Base, Current: ce.Current}
		if last, herr := s.policies.History(ctx, service, 1); herr == nil && len(last) > 0 {
			uce.Actor, uce.Time = last[0].Actor, last[0].Time
		}
		return saved, fmt.Errorf("dashboard: %w", uce)
	case errors.Is(err, policy.ErrNotFound):
		return saved, fmt.Errorf("dashboard: %w: %w", ui.ErrNotFound, err)
	default:
		if _, ok := wire.AsFieldErrors(err); ok {
			return saved, err
		}
		return saved, fmt.Errorf("dashboard: %w", err)
	}
	if s.onChange != nil {
		if c, err := s.policies.Version(ctx, service, saved.Version); err == nil {
			s.onChange(ctx, c)
		}
	}
	return saved, nil
}
