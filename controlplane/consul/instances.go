package consul

import (
	"sort"
	"strings"
	"time"

	"github.com/pilothouse/pilothouse/agent/wire"
	"github.com/pilothouse/pilothouse/controlplane/registry"
)

// CatalogSource is what InstanceView reads of a Catalog.
type CatalogSource interface {
	Services() []string
	Instances(service string) []CatalogInstance
}

// HeartbeatSource is what InstanceView reads of the heartbeat registry.
type HeartbeatSource interface {
	Services(now time.Time) []registry.Service
	Service(name string, now time.Time) (registry.Service, bool)
}

var (
	_ CatalogSource   = (*Catalog)(nil)
	_ HeartbeatSource = (*registry.Registry)(nil)
	_ HeartbeatSource = InstanceView{}
)

// InstanceView is the heartbeat registry's services with Consul's
// catalog merged in (see MergeInstances): a service only Consul knows is
// listed with its Consul instances and health, and a service's health is
// recomputed from its merged instances. Traffic figures (routes, series,
// rates) come from heartbeats only. It reads both sources on every call
// and is safe for concurrent use when they are.
type InstanceView struct {
	Heartbeats HeartbeatSource
	Catalog    CatalogSource
}

// Services returns every service either source knows, sorted by name.
func (v InstanceView) Services(now time.Time) []registry.Service {
	beats := v.Heartbeats.Services(now)
	seen := make(map[string]bool, len(beats))
	out := make([]registry.Service, 0, len(beats))
	for _, svc := range beats {
		seen[svc.Name] = true
		out = append(out, mergeService(svc, v.Catalog.Instances(svc.Name)))
	}
	for _, name := range v.Catalog.Services() {
		if seen[name] {
			continue
		}
		if svc, ok := catalogOnly(name, v.Catalog.Instances(name)); ok {
			out = append(out, svc)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Service returns one service as either source knows it.
func (v InstanceView) Service(name string, now time.Time) (registry.Service, bool) {
	cat := v.Catalog.Instances(name)
	if svc, ok := v.Heartbeats.Service(name, now); ok {
		return mergeService(svc, cat), true
	}
	return catalogOnly(name, cat)
}

func mergeService(svc registry.Service, cat []CatalogInstance) registry.Service {
	if len(cat) == 0 {
		return svc
	}
	svc.Instances = MergeInstances(svc.Instances, cat)
	svc.Health = registry.ServiceHealth(svc.Instances)
	return svc
}

// catalogOnly is a service no agent sends heartbeats for; false when
// Consul lists no instance of it either.
func catalogOnly(name string, cat []CatalogInstance) (registry.Service, bool) {
	if len(cat) == 0 {
		return registry.Service{}, false
	}
	in := MergeInstances(nil, cat)
	return registry.Service{Name: name, Instances: in, Health: registry.ServiceHealth(in)}, true
}

// Endpoints returns, for each service, the instances agents may route
// to: those of the merged view with an address that are not down. So an
// instance Consul calls critical stops receiving routed calls even while
// it still sends heartbeats, and an instance only Consul knows (a service
// without the agent) is a target too. Sorted by instance ID.
func (v InstanceView) Endpoints(now time.Time) map[string][]wire.Endpoint {
	out := map[string][]wire.Endpoint{}
	for _, svc := range v.Services(now) {
		var eps []wire.Endpoint
		for _, in := range svc.Instances {
			if in.Address == "" || strings.HasPrefix(in.Address, ":") || in.Health == registry.Down {
				continue
			}
			eps = append(eps, wire.Endpoint{Instance: in.ID, Address: in.Address, Version: in.Version})
		}
		if len(eps) > 0 {
			out[svc.Name] = eps
		}
	}
	return out
}
