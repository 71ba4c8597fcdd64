// Package ui is the Pilothouse dashboard: server-rendered pages (templ)
// that get better with htmx (partial refresh, live log tail over SSE) and
// read fine with JavaScript off.
//
// The package declares what it reads as the Source interface and its own
// small view-model types; it imports nothing from the control plane. The
// control plane wires a Source (see controlplane/dashboard) and mounts the
// handler returned by New on "/":
//
//	h := ui.New(src, ui.WithAgentURL("http://cp.example:4318"))
//	mux.Handle("/", h)
//
// Pages (every filter is a query parameter, so every view is linkable):
//
//	/                      overview of every service
//	/services/{name}       routes, instances, recent errors, slowest traces
//	/traces                trace search
//	/traces/{traceID}      waterfall of one trace
//	/logs                  log search with a live tail (/logs/stream, SSE)
//	/map                   service map
//	/search?q=             a request ID or trace ID goes to its trace
//	/static/...            CSS and the vendored htmx
//
// Everything taken from stored data is escaped by templ; the package never
// writes stored data through templ.Raw.
package ui
