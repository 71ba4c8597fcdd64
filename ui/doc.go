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
// With WithPolicies, the policy pages (every change is a POST form that
// works without JavaScript, answered 303, or with the re-rendered fragment
// for htmx; 409 on a conflicting edit, 422 on invalid input):
//
//	/policies                                   every service's version and convergence
//	/services/{name}/policy                     rules, counters, instances, breakers, history
//	/services/{name}/policy/status              the live part of the tab (polled)
//	/services/{name}/policy/new/{kind}          form for a new rule (kind: rate_limits,
//	                                            breakers, degradations, routes, timeouts)
//	/services/{name}/policy/{kind}/{id}         form to edit a rule; POST saves it
//	POST /services/{name}/policy/{kind}         create a rule
//	POST .../policy/{kind}/{id}/delete          delete a rule
//	POST .../policy/degradations/{id}/toggle    switch a degradation (enabled=true|false)
//	POST .../policy/rollback                    roll back (to=version)
//
// Every POST carries base, the version the page showed, and an optional
// reason for the audit record.
//
// Everything taken from stored data is escaped by templ; the package never
// writes stored data through templ.Raw.
package ui
