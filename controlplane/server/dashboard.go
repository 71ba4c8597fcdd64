package server

import (
	"net/http"

	"github.com/pilothouse/pilothouse/controlplane/registry"
	"github.com/pilothouse/pilothouse/controlplane/store"
)

// mountDashboard serves the UI on every path the API does not claim.
func mountDashboard(mux *http.ServeMux, st *store.Store, reg *registry.Registry, cfg Config) {
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(`<!doctype html><title>Pilothouse</title><p>Pilothouse control plane. The dashboard is coming; the JSON API is at <a href="/api/v1/services">/api/v1/services</a>.</p>`))
	})
}
