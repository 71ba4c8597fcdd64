// Package consulreg registers a service instance that embeds the
// Pilothouse agent in Consul's catalog, with a health check, and
// deregisters it on Close.
//
// It is a separate package so that a service which does not use Consul
// does not link the Consul client: package agent never imports it.
//
// The health check is either an HTTP check Consul runs against the
// instance's health URL (Config.HealthURL), or a TTL check this package
// keeps passing from a goroutine while Config.Health reports no error.
// An instance whose check stays critical for DeregisterCriticalAfter is
// removed by Consul itself, so a crashed instance does not linger.
//
//	reg, err := consulreg.Register(ctx, consulreg.Config{
//		Service:   "orders",
//		Address:   "10.0.0.7",
//		Port:      8080,
//		HealthURL: "http://10.0.0.7:8080/healthz",
//	})
//	if err != nil { ... }
//	defer reg.Close()
package consulreg

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/pilothouse/pilothouse/agent/wire"
)

// Defaults for Config.
const (
	DefaultCheckInterval           = 10 * time.Second
	DefaultCheckTimeout            = 5 * time.Second
	DefaultTTL                     = 15 * time.Second
	DefaultDeregisterCriticalAfter = time.Minute
)

// ErrConfig reports a Config that cannot be registered.
var ErrConfig = errors.New("consulreg: invalid config")

// Config describes the instance and its check. Zero values mean the
// defaults; Service and Port are required.
type Config struct {
	// ConsulAddress is the Consul agent's HTTP address (host:port);
	// empty uses CONSUL_HTTP_ADDR, else 127.0.0.1:8500.
	ConsulAddress string
	// ConsulToken is the ACL token; empty uses CONSUL_HTTP_TOKEN.
	ConsulToken string

	// Service is the service name in the catalog.
	Service string
	// ID identifies this instance; empty means "<service>-<host>-<port>".
	ID string
	// Address is the address others reach the instance at; empty lets
	// Consul use its node's address.
	Address string
	// Port is the instance's port.
	Port int
	// InstanceID is the agent's instance ID (Agent.InstanceID), stored
	// as service meta wire.ConsulMetaInstance so the control plane merges
	// this entry with the instance's heartbeats; empty means that meta
	// key if Meta has it, else ID.
	InstanceID string
	// Tags and Meta are stored with the instance.
	Tags []string
	Meta map[string]string

	// HealthURL, when set, makes Consul GET it every CheckInterval
	// (timeout CheckTimeout): 2xx is passing, 429 warning, else critical.
	HealthURL     string
	CheckInterval time.Duration
	CheckTimeout  time.Duration

	// TTL is the TTL check's period, used when HealthURL is empty: the
	// check is refreshed every TTL/3 and turns critical if it is not
	// refreshed for TTL (the process hung or died).
	TTL time.Duration
	// Health, for a TTL check, reports the instance's health at each
	// refresh; nil means always healthy.
	Health func() error

	// DeregisterCriticalAfter is how long the check may stay critical
	// before Consul removes the instance.
	DeregisterCriticalAfter time.Duration
}

func (c *Config) fill() error {
	if c.Service == "" {
		return fmt.Errorf("%w: Service is required", ErrConfig)
	}
	if c.Port <= 0 || c.Port > 65535 {
		return fmt.Errorf("%w: Port %d is out of range", ErrConfig, c.Port)
	}
	if c.ID == "" {
		host := c.Address
		if host == "" {
			host, _ = os.Hostname()
		}
		c.ID = c.Service + "-" + host + "-" + strconv.Itoa(c.Port)
	}
	if c.InstanceID == "" {
		c.InstanceID = c.Meta[wire.ConsulMetaInstance]
	}
	if c.InstanceID == "" {
		c.InstanceID = c.ID
	}
	meta := make(map[string]string, len(c.Meta)+1)
	for k, v := range c.Meta {
		meta[k] = v
	}
	meta[wire.ConsulMetaInstance] = c.InstanceID
	c.Meta = meta
	if c.CheckInterval <= 0 {
		c.CheckInterval = DefaultCheckInterval
	}
	if c.CheckTimeout <= 0 {
		c.CheckTimeout = DefaultCheckTimeout
	}
	if c.TTL <= 0 {
		c.TTL = DefaultTTL
	}
	if c.DeregisterCriticalAfter <= 0 {
		c.DeregisterCriticalAfter = DefaultDeregisterCriticalAfter
	}
	return nil
}

// Registration is a registered instance. Close deregisters it.
type Registration struct {
	cfg     Config
	client  *api.Client
	checkID string

	stop      context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// Register registers the instance and its check with the Consul agent
// and, for a TTL check, starts refreshing it.
func Register(ctx context.Context, cfg Config) (*Registration, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	ccfg := api.DefaultConfig()
	if cfg.ConsulAddress != "" {
		ccfg.Address = cfg.ConsulAddress
	}
	if cfg.ConsulToken != "" {
		ccfg.Token = cfg.ConsulToken
	}
	client, err := api.NewClient(ccfg)
	if err != nil {
		return nil, fmt.Errorf("consulreg: client: %w", err)
	}
	r := &Registration{cfg: cfg, client: client, checkID: "service:" + cfg.ID, done: make(chan struct{})}
	check := &api.AgentServiceCheck{
		CheckID:                        r.checkID,
		Name:                           cfg.Service + " health",
		DeregisterCriticalServiceAfter: cfg.DeregisterCriticalAfter.String(),
	}
	if cfg.HealthURL != "" {
		check.HTTP = cfg.HealthURL
		check.Interval = cfg.CheckInterval.String()
		check.Timeout = cfg.CheckTimeout.String()
	} else {
		check.TTL = cfg.TTL.String()
	}
	reg := &api.AgentServiceRegistration{
		ID:      cfg.ID,
		Name:    cfg.Service,
		Address: cfg.Address,
		Port:    cfg.Port,
		Tags:    cfg.Tags,
		Meta:    cfg.Meta,
		Check:   check,
	}
	opts := api.ServiceRegisterOpts{ReplaceExistingChecks: true}.WithContext(ctx)
	if err := client.Agent().ServiceRegisterOpts(reg, opts); err != nil {
		return nil, fmt.Errorf("consulreg: register %s: %w", cfg.ID, err)
	}
	loopCtx, stop := context.WithCancel(context.Background())
	r.stop = stop
	if cfg.HealthURL == "" {
		// Report the first status now so the instance is passing at once.
		r.refreshTTL(ctx)
		go r.keepTTL(loopCtx)
	} else {
		close(r.done)
	}
	return r, nil
}

// ID returns the instance's service ID in Consul.
func (r *Registration) ID() string { return r.cfg.ID }

// CheckID returns the ID of the instance's health check.
func (r *Registration) CheckID() string { return r.checkID }

// keepTTL refreshes the TTL check every TTL/3 until ctx ends.
func (r *Registration) keepTTL(ctx context.Context) {
	defer close(r.done)
	tick := time.NewTicker(r.cfg.TTL / 3)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			r.refreshTTL(ctx)
		}
	}
}

// refreshTTL reports the current health; a failed update is retried at
// the next tick (the check turns critical if they keep failing).
func (r *Registration) refreshTTL(ctx context.Context) {
	status, output := api.HealthPassing, "ok"
	if r.cfg.Health != nil {
		if err := r.cfg.Health(); err != nil {
			status, output = api.HealthCritical, err.Error()
		}
	}
	q := (&api.QueryOptions{}).WithContext(ctx)
	_ = r.client.Agent().UpdateTTLOpts(r.checkID, output, status, q)
}

// Close stops the TTL refresh and deregisters the instance. It is safe
// to call more than once.
func (r *Registration) Close() error {
	r.closeOnce.Do(func() {
		r.stop()
		<-r.done
		if err := r.client.Agent().ServiceDeregister(r.cfg.ID); err != nil {
			r.closeErr = fmt.Errorf("consulreg: deregister %s: %w", r.cfg.ID, err)
		}
	})
	return r.closeErr
}
