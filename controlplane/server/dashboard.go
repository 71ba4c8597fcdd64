package server

import (
	"net/http"

	"github.com/pilothouse/pilothouse/controlplane/auth"
	"github.com/pilothouse/pilothouse/controlplane/dashboard"
	"github.com/pilothouse/pilothouse/controlplane/registry"
	"github.com/pilothouse/pilothouse/controlplane/store"
	"github.com/pilothouse/pilothouse/ui"
)

// actorName is the signed-in user's name for the dashboard header.
func actorName(r *http.Request) string {
	if id, ok := auth.UserFrom(r.Context()); ok {
		return id.Name
	}
	return ""
}

// mountDashboard serves the UI on every path the API does not claim.
func mountDashboard(mux *http.ServeMux, st *store.Store, reg *registry.Registry, cfg Config) {
	opts := []ui.Option{ui.WithLogger(cfg.Logger), ui.WithUser(actorName)}
	if cfg.PublicURL != "" {
		opts = append(opts, ui.WithAgentURL(cfg.PublicURL))
	}
	if cfg.Now != nil {
		opts = append(opts, ui.WithClock(cfg.Now))
	}
	mux.Handle("/", ui.New(dashboard.New(st, reg), opts...))
}
