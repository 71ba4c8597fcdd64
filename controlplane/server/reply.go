package server

import (
	"time"

	"github.com/pilothouse/pilothouse/agent/wire"
	"github.com/pilothouse/pilothouse/controlplane/registry"
)

// heartbeatReply tells an agent what it needs besides its policy: the live
// instances of every service (for outbound routing), its share of each
// cluster-scoped rate limit, and the current policy version so an agent
// that missed a long-poll answer catches up at its next beat.
func heartbeatReply(reg *registry.Registry, pol PolicyStore) func(hb wire.Heartbeat, now time.Time) wire.HeartbeatReply {
	return func(hb wire.Heartbeat, now time.Time) wire.HeartbeatReply {
		p := pol.Current(hb.Service)
		reply := wire.HeartbeatReply{OK: true, PolicyVersion: p.Version, Endpoints: reg.Endpoints(now)}
		live := max(1, reg.LiveInstances(hb.Service, now))
		for _, rl := range p.RateLimits {
			if rl.Scope != wire.ScopeCluster {
				continue
			}
			if reply.RateShares == nil {
				reply.RateShares = map[string]float64{}
			}
			reply.RateShares[rl.ID] = rl.Rate / float64(live)
		}
		return reply
	}
}
