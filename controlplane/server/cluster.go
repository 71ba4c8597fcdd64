package server

import (
	"fmt"

	"github.com/pilothouse/pilothouse/controlplane/api"
	"github.com/pilothouse/pilothouse/controlplane/consul"
	"github.com/pilothouse/pilothouse/controlplane/dashboard"
	"github.com/pilothouse/pilothouse/controlplane/registry"
)

// instanceSource is what the JSON API and the dashboard read of the
// instance registry: the heartbeat *registry.Registry alone, or with
// Config.Consul the consul.InstanceView merging Consul's catalog in.
type instanceSource interface {
	api.Services
	dashboard.Registry
	endpointSource
}

var (
	_ instanceSource = (*registry.Registry)(nil)
	_ instanceSource = consul.InstanceView{}
)

// startCatalog mirrors Consul's catalog when Config.Consul is set and
// returns the instance view the API and dashboard read; without Consul
// it is the heartbeat registry itself.
func (s *Server) startCatalog() (instanceSource, error) {
	if s.cfg.Consul == "" {
		return s.registry, nil
	}
	cat, err := consul.WatchCatalog(consul.CatalogConfig{Address: s.cfg.Consul, Token: s.cfg.ConsulToken, Logger: s.cfg.Logger})
	if err != nil {
		return nil, fmt.Errorf("server: consul catalog: %w", err)
	}
	s.catalog = cat
	return consul.InstanceView{Heartbeats: s.registry, Catalog: cat}, nil
}

// closeCatalog stops the catalog watch, if any.
func (s *Server) closeCatalog() error {
	if s.catalog == nil {
		return nil
	}
	return s.catalog.Close()
}
