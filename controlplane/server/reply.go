package server

import (
	"sync"
	"time"

	"github.com/pilothouse/pilothouse/agent/wire"
	"github.com/pilothouse/pilothouse/controlplane/registry"
)

// heartbeatReply tells an agent what it needs besides its policy: the live
// instances of every service (for outbound routing), its share of each
// cluster-scoped rate limit, and the current policy version so an agent
// that missed a long-poll answer catches up at its next beat.
func heartbeatReply(reg *registry.Registry, endpoints endpointSource, pol PolicyStore) func(hb wire.Heartbeat, now time.Time) wire.HeartbeatReply {
	return func(hb wire.Heartbeat, now time.Time) wire.HeartbeatReply {
		p := pol.Current(hb.Service)
		reply := wire.HeartbeatReply{OK: true, PolicyVersion: p.Version, Endpoints: endpoints.Endpoints(now)}
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

// endpointSource gives the routing endpoints of every service: the
// heartbeat registry's, or with Consul the merged view's.
type endpointSource interface {
	Endpoints(now time.Time) map[string][]wire.Endpoint
}

// cachedEndpoints answers from one computation per second: with Consul,
// merging the catalog into every service is too much work to repeat on
// every heartbeat of every instance.
type cachedEndpoints struct {
	src endpointSource
	ttl time.Duration

	mu   sync.Mutex
	at   time.Time
	last map[string][]wire.Endpoint
}

func (c *cachedEndpoints) Endpoints(now time.Time) map[string][]wire.Endpoint {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.last == nil || now.Sub(c.at) >= c.ttl || now.Before(c.at) {
		c.last, c.at = c.src.Endpoints(now), now
	}
	return c.last
}
