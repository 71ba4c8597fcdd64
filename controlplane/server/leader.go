package server

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pilothouse/pilothouse/controlplane/consul"
)

// Defaults of the leader-only jobs.
const (
	// DefaultPolicyHistory is Config.PolicyHistory's default.
	DefaultPolicyHistory = 200
	// DefaultCompactEvery is Config.CompactEvery's default.
	DefaultCompactEvery = 10 * time.Minute
)

// historyCompactor is a policy store whose shared history can be
// trimmed (*consul.PolicyStore).
type historyCompactor interface {
	Compact(ctx context.Context, keep int) (int, error)
}

var _ historyCompactor = (*consul.PolicyStore)(nil)

// leadership runs the jobs on state every replica shares on exactly one
// replica: with Config.Consul, the one holding the Consul session lock
// (consul.RunAsLeader); without it, this process, which is then always
// the leader.
//
// The shared state is in Consul KV: the leader keeps the newest
// Config.PolicyHistory versions of every service's policy, and deletes
// expired sessions. Everything else is per replica and trimmed locally
// by every replica, leader or not: the embedded store (spans, logs:
// store.Options retention) and the audit log in DataDir. Loki and the trace backend
// apply their own retention.
type leadership struct {
	leader  prometheus.Gauge
	deleted prometheus.Counter
	isLead  func() bool

	cancel context.CancelFunc
	done   chan struct{}
}

// startLeadership registers the leader metrics and, with Consul, starts
// campaigning for the lock. Stop it with stopLeadership.
func (s *Server) startLeadership() {
	l := &s.lead
	l.leader = prometheus.NewGauge(prometheus.GaugeOpts{Name: "pilothouse_leader",
		Help: "1 while this control plane replica runs the leader-only jobs (always 1 without Consul), else 0."})
	l.deleted = prometheus.NewCounter(prometheus.CounterOpts{Name: "pilothouse_policy_history_deleted_total",
		Help: "Policy version records the leader deleted from Consul KV beyond the kept history."})
	s.metrics.MustRegister(l.leader, l.deleted)
	if s.cfg.Consul == "" {
		l.leader.Set(1)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel, l.done = cancel, make(chan struct{})
	go func() {
		defer close(l.done)
		// RunAsLeader fails only on a malformed config; it logs Consul
		// errors and retries.
		if err := consul.RunAsLeader(ctx, consul.LeaderConfig{Address: s.cfg.Consul, Token: s.cfg.ConsulToken, Logger: s.cfg.Logger}, s.runLeaderJobs); err != nil {
			s.cfg.Logger.Error("server: leader election", "err", err)
		}
	}()
}

// stopLeadership gives up the lock (at once, so another replica takes
// over without waiting for the session to expire) and waits, within ctx,
// for the jobs to end. It may be called more than once.
func (s *Server) stopLeadership(ctx context.Context) error {
	l := &s.lead
	if l.cancel == nil {
		return nil
	}
	l.cancel()
	select {
	case <-l.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Leader reports whether this replica runs the leader-only jobs now.
func (s *Server) Leader() bool {
	if s.cfg.Consul == "" {
		return true
	}
	return s.leading.Load()
}

// runLeaderJobs runs while this replica holds the lock: compaction of the
// policy history and the sweep of expired sessions from the shared
// users, sessions and tokens, at once, then every Config.CompactEvery,
// until ctx ends.
func (s *Server) runLeaderJobs(ctx context.Context) {
	s.leading.Store(true)
	s.lead.leader.Set(1)
	defer func() {
		s.leading.Store(false)
		s.lead.leader.Set(0)
	}()
	s.cfg.Logger.Info("server: this replica is the leader")
	tick := time.NewTicker(s.cfg.CompactEvery)
	defer tick.Stop()
	for {
		s.compactPolicies(ctx)
		s.sweepSessions(ctx)
		select {
		case <-ctx.Done():
			s.cfg.Logger.Info("server: this replica is no longer the leader")
			return
		case <-tick.C:
		}
	}
}

// compactPolicies trims the shared policy history to Config.PolicyHistory
// versions per service.
func (s *Server) compactPolicies(ctx context.Context) {
	c, ok := s.policies.(historyCompactor)
	if !ok {
		return
	}
	n, err := c.Compact(ctx, s.cfg.PolicyHistory)
	s.lead.deleted.Add(float64(n))
	if err != nil && ctx.Err() == nil {
		s.cfg.Logger.Warn("server: compact policy history", "deleted", n, "err", err)
		return
	}
	if n > 0 {
		s.cfg.Logger.Info("server: compacted policy history", "deleted", n, "kept_per_service", s.cfg.PolicyHistory)
	}
}
