package server

import (
	"context"
	"fmt"
	"net"
	"net/http"

	"github.com/pilothouse/pilothouse/controlplane/audit"
	"github.com/pilothouse/pilothouse/controlplane/auth"
	"github.com/pilothouse/pilothouse/controlplane/dashboard"
	"github.com/pilothouse/pilothouse/controlplane/policy"
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

// isAdmin reports whether the signed-in user manages users and tokens.
func isAdmin(r *http.Request) bool {
	id, ok := auth.UserFrom(r.Context())
	return ok && id.Role == auth.RoleAdmin
}

// csrfToken is the session's CSRF token, put into every dashboard form.
func csrfToken(r *http.Request) string { return auth.CSRFToken(r.Context()) }

// mountDashboard serves the UI, with its policy pages, on every path the
// API does not claim. It reads spans and logs through reader (the engine
// reader when Loki or a trace backend is configured, else the store) and
// the store's write health from st. Policy changes made there are
// audited like those made through the API.
func mountDashboard(mux *http.ServeMux, reader dashboard.Store, st *store.Store, reg dashboard.Registry, pol PolicyStore, g *gate, cfg Config) {
	src := dashboard.New(reader, reg, dashboard.WithPolicies(pol), dashboard.WithPolicyChanged(g.auditDashboardChange))
	opts := []ui.Option{ui.WithLogger(cfg.Logger), ui.WithUser(actorName), ui.WithAdmin(isAdmin), ui.WithPolicies(src), ui.WithCSRFToken(csrfToken),
		ui.WithAlerts(dashboard.StoreAlerts(st))}
	if cfg.PublicURL != "" {
		opts = append(opts, ui.WithAgentURL(cfg.PublicURL))
	}
	if cfg.Now != nil {
		opts = append(opts, ui.WithClock(cfg.Now))
	}
	mux.Handle("/", ui.New(src, opts...))
}

// auditDashboardChange records a policy change made on the dashboard.
func (g *gate) auditDashboardChange(ctx context.Context, c policy.Change) {
	action := audit.ActionPolicyUpdate
	if c.Action == "rollback" {
		action = audit.ActionPolicyRollback
	}
	detail := fmt.Sprintf("version %d", c.Version)
	if c.Reason != "" {
		detail += ": " + c.Reason
	}
	remote := c.Remote
	if host, _, err := net.SplitHostPort(remote); err == nil {
		remote = host
	}
	if _, err := g.audit.Record(ctx, audit.Event{Time: c.Time, Actor: c.Actor, Action: action, Target: c.Service,
		Remote: remote, Detail: detail, Diff: c.Diff}); err != nil {
		g.log.Error("server: audit dashboard policy change", "err", err)
	}
}
