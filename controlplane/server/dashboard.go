package server

import (
	"net/http"

	"github.com/pilothouse/pilothouse/controlplane/dashboard"
	"github.com/pilothouse/pilothouse/controlplane/registry"
	"github.com/pilothouse/pilothouse/controlplane/store"
	"github.com/pilothouse/pilothouse/ui"
)

// mountDashboard serves the UI on every path the API does not claim.
func mountDashboard(mux *http.ServeMux, st *store.Store, reg *registry.Registry, cfg Config) {
	opts := []ui.Option{ui.WithLogger(cfg.Logger)}
	if cfg.PublicURL != "" {
		opts = append(opts, ui.WithAgentURL(cfg.PublicURL))
	}
	if cfg.Now != nil {
		opts = append(opts, ui.WithClock(cfg.Now))
	}
	mux.Handle("/", ui.New(dashboard.New(st, reg), opts...))
}
