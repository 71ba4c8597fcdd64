package consul

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/pilothouse/pilothouse/agent/wire"
	"github.com/pilothouse/pilothouse/controlplane/registry"
)

// MetaInstance is the service-meta key naming the agent's instance ID
// (the one its heartbeats carry), when the Consul service ID differs.
const MetaInstance = wire.ConsulMetaInstance

// MetaVersion is the service-meta key naming the instance's version.
const MetaVersion = "version"

// CatalogInstance is one service instance as Consul's catalog and health
// checks see it.
type CatalogInstance struct {
	Service string
	// ID is the agent's instance ID: Meta[MetaInstance], else the Consul
	// service ID.
	ID      string
	Node    string
	Address string
	Port    int
	Tags    []string
	Meta    map[string]string
	// Status is the worst of the instance's and its node's checks:
	// api.HealthPassing, api.HealthWarning or api.HealthCritical.
	Status string
	Checks []wire.CheckResult
}

// CatalogConfig configures WatchCatalog. Zero values mean the defaults.
type CatalogConfig struct {
	// Address and Token reach Consul as in Config.
	Address string
	Token   string
	// WaitTime is how long one blocking query waits.
	WaitTime time.Duration
	// RetryWait is the pause after a failed query.
	RetryWait time.Duration
	// Logger receives watch errors; nil discards them.
	Logger *slog.Logger
}

// Catalog mirrors Consul's catalog and health for every service, kept up
// to date by blocking queries: one on the service list, one per service
// on its health. It is safe for concurrent use.
type Catalog struct {
	cfg    CatalogConfig
	client *api.Client
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	instances map[string][]CatalogInstance
	watchers  map[string]context.CancelFunc
	changed   chan struct{}
}

// WatchCatalog starts mirroring Consul's catalog. Close stops it.
func WatchCatalog(cfg CatalogConfig) (*Catalog, error) {
	if cfg.WaitTime <= 0 {
		cfg.WaitTime = DefaultWaitTime
	}
	if cfg.RetryWait <= 0 {
		cfg.RetryWait = DefaultRetryWait
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	client, err := newClient(cfg.Address, cfg.Token)
	if err != nil {
		return nil, err
	}
	c := &Catalog{
		cfg: cfg, client: client,
		instances: map[string][]CatalogInstance{},
		watchers:  map[string]context.CancelFunc{},
		changed:   make(chan struct{}),
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.wg.Add(1)
	go c.watchServices()
	return c, nil
}

// Close stops the watches.
func (c *Catalog) Close() error {
	c.cancel()
	c.wg.Wait()
	return nil
}

// Changed returns a channel closed at the next change of the mirror.
func (c *Catalog) Changed() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.changed
}

// Services lists the services in the catalog, sorted.
func (c *Catalog) Services() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, 0, len(c.watchers))
	for name := range c.watchers {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// Instances returns service's instances, sorted by ID.
func (c *Catalog) Instances(service string) []CatalogInstance {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.instances[service])
}

// notifyLocked wakes the Changed waiters. c.mu must be held.
func (c *Catalog) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// watchServices follows the service list and starts or stops one health
// watch per service.
func (c *Catalog) watchServices() {
	defer c.wg.Done()
	var index uint64
	for {
		services, meta, err := c.client.Catalog().Services((&api.QueryOptions{WaitIndex: index, WaitTime: c.cfg.WaitTime}).WithContext(c.ctx))
		if c.ctx.Err() != nil {
			return
		}
		if err != nil {
			c.cfg.Logger.Warn("consul: watch catalog", "err", err)
			wait(c.ctx, c.cfg.RetryWait)
			continue
		}
		index = nextIndex(index, meta.LastIndex)
		c.mu.Lock()
		for name := range services {
			if _, ok := c.watchers[name]; !ok && name != "consul" {
				ctx, cancel := context.WithCancel(c.ctx)
				c.watchers[name] = cancel
				c.wg.Add(1)
				go c.watchHealth(ctx, name)
			}
		}
		gone := false
		for name, cancel := range c.watchers {
			if _, ok := services[name]; !ok {
				cancel()
				delete(c.watchers, name)
				delete(c.instances, name)
				gone = true
			}
		}
		if gone {
			c.notifyLocked()
		}
		c.mu.Unlock()
	}
}

// watchHealth follows one service's instances and checks.
func (c *Catalog) watchHealth(ctx context.Context, service string) {
	defer c.wg.Done()
	var index uint64
	for {
		entries, meta, err := c.client.Health().Service(service, "", false, (&api.QueryOptions{WaitIndex: index, WaitTime: c.cfg.WaitTime}).WithContext(ctx))
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			c.cfg.Logger.Warn("consul: watch health", "service", service, "err", err)
			wait(ctx, c.cfg.RetryWait)
			continue
		}
		index = nextIndex(index, meta.LastIndex)
		list := make([]CatalogInstance, 0, len(entries))
		for _, e := range entries {
			list = append(list, catalogInstance(e))
		}
		sort.Slice(list, func(i, j int) bool { return list[i].ID < list[j].ID })
		c.mu.Lock()
		if ctx.Err() == nil {
			c.instances[service] = list
			c.notifyLocked()
		}
		c.mu.Unlock()
	}
}

func catalogInstance(e *api.ServiceEntry) CatalogInstance {
	in := CatalogInstance{
		Service: e.Service.Service,
		ID:      e.Service.ID,
		Node:    e.Node.Node,
		Address: e.Service.Address,
		Port:    e.Service.Port,
		Tags:    slices.Clone(e.Service.Tags),
		Meta:    e.Service.Meta,
		Status:  e.Checks.AggregatedStatus(),
	}
	if id := e.Service.Meta[MetaInstance]; id != "" {
		in.ID = id
	}
	if in.Address == "" {
		in.Address = e.Node.Address
	}
	for _, chk := range e.Checks {
		in.Checks = append(in.Checks, wire.CheckResult{
			Name:    "consul: " + chk.Name,
			OK:      chk.Status == api.HealthPassing,
			Message: chk.Output,
		})
	}
	return in
}

// MergeInstances merges Consul's view of one service into the
// heartbeat registry's: an instance in both keeps its heartbeat data,
// gains Consul's checks, and is Down when Consul says critical (Degraded
// when warning); an instance only Consul knows is listed with Consul's
// health. The result is sorted by ID.
func MergeInstances(beats []registry.Instance, catalog []CatalogInstance) []registry.Instance {
	out := slices.Clone(beats)
	byID := make(map[string]int, len(out))
	for i, in := range out {
		byID[in.ID] = i
	}
	for _, ci := range catalog {
		health := consulHealth(ci.Status)
		i, ok := byID[ci.ID]
		if !ok {
			out = append(out, registry.Instance{
				ID: ci.ID, Service: ci.Service, Address: fmt.Sprintf("%s:%d", ci.Address, ci.Port),
				Version: ci.Meta[MetaVersion], Health: health, Checks: slices.Clone(ci.Checks),
			})
			byID[ci.ID] = len(out) - 1
			continue
		}
		in := &out[i]
		in.Checks = append(slices.Clone(in.Checks), ci.Checks...)
		if worse(health, in.Health) {
			in.Health = health
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func consulHealth(status string) registry.Health {
	switch status {
	case api.HealthPassing:
		return registry.Healthy
	case api.HealthWarning:
		return registry.Degraded
	default:
		return registry.Down
	}
}

// worse reports whether a is a worse health than b.
func worse(a, b registry.Health) bool {
	rank := map[registry.Health]int{registry.Healthy: 0, registry.Degraded: 1, registry.Down: 2}
	return rank[a] > rank[b]
}
