// Package demo runs a complete Pilothouse in one process: the control plane,
// the example shop (gateway -> orders -> payments, inventory) with the agent
// embedded in every service, and a traffic generator. `go run ./controlplane
// demo` uses it, and so do the end-to-end tests.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/pilothouse/pilothouse/agent"
	"github.com/pilothouse/pilothouse/controlplane/audit"
	"github.com/pilothouse/pilothouse/controlplane/auth"
	"github.com/pilothouse/pilothouse/controlplane/server"
	"github.com/pilothouse/pilothouse/examples/shop/services"
)

// Options configures the demo. Zero values mean the defaults.
type Options struct {
	// Addr is the control plane's listen address; "127.0.0.1:0" picks a
	// free port. Default server.DefaultAddr.
	Addr string
	// DataDir holds the store. Default server.DefaultDataDir.
	DataDir string
	// Rate is the traffic generator's requests per second; negative
	// turns it off. Default 8.
	Rate float64
	// ErrorRate is the share of requests each shop service fails on
	// purpose. Default 0.03; negative means none.
	ErrorRate float64
	// Heartbeat is the agents' heartbeat interval. Default 2s.
	Heartbeat time.Duration
	// Server adjusts the control plane's configuration.
	Server server.Config
	// TLSCert and TLSKey, when set, serve the control plane over HTTPS.
	// The demo agents then need to trust the certificate.
	TLSCert, TLSKey string
	// Logger receives the demo's own logs.
	Logger *slog.Logger
	// StarterPolicies stores a starter policy for the orders and gateway
	// services when they have none (the demo command sets it), so a first
	// run has rules to look at and switch.
	StarterPolicies bool
}

// Demo is a running demo.
type Demo struct {
	// URL is the control plane's base URL (dashboard and API).
	URL string
	// Services maps each shop service to its base URL.
	Services map[string]string
	// AdminUser and AdminPassword sign in to the dashboard. The password
	// is Server.AdminPassword (env PILOTHOUSE_ADMIN_PASSWORD in the demo
	// command) or generated at each start: the demo resets the admin's
	// password so it can always print a working one.
	AdminUser     string
	AdminPassword string
	// APIToken is a viewer API token for the JSON API (curl -H
	// "Authorization: Bearer ..."), made at each start; the previous
	// start's is revoked.
	APIToken string

	server  *server.Server
	cpAddr  string        // the control plane's listen address, kept across restarts
	cpCfg   server.Config // its configuration, for StartControlPlane
	cpTLS   [2]string     // certificate and key files, or empty
	cpLog   *slog.Logger
	cpDown  bool // StopControlPlane ran and StartControlPlane did not yet
	servers []*http.Server
	agents  []*agent.Agent
	cancel  context.CancelFunc
	done    chan struct{}
}

// GatewayURL is the shop's public entry point.
func (d *Demo) GatewayURL() string { return d.Services[services.Gateway] }

// Server returns the control plane.
func (d *Demo) Server() *server.Server { return d.server }

// Start brings the demo up and returns once every service listens.
func Start(opts Options) (_ *Demo, err error) {
	if opts.Addr == "" {
		opts.Addr = server.DefaultAddr
	}
	if opts.Rate == 0 {
		opts.Rate = 8
	}
	if opts.ErrorRate == 0 {
		opts.ErrorRate = 0.03
	} else if opts.ErrorRate < 0 {
		opts.ErrorRate = 0
	}
	if opts.Heartbeat == 0 {
		opts.Heartbeat = 2 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	scfg := opts.Server
	if opts.DataDir != "" {
		scfg.DataDir = opts.DataDir
	}
	if scfg.Logger == nil {
		scfg.Logger = opts.Logger
	}

	d := &Demo{Services: map[string]string{}, done: make(chan struct{})}
	// Listen first so every service knows its peers' addresses.
	names := []string{services.Inventory, services.Payments, services.Orders, services.Gateway}
	defer func() {
		if err != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = d.Close(ctx)
		}
	}()

	cpLn, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("demo: control plane: %w", err)
	}
	d.URL = "http://" + cpLn.Addr().String()
	if opts.TLSCert != "" {
		d.URL = "https://" + cpLn.Addr().String()
	}
	if scfg.PublicURL == "" {
		scfg.PublicURL = d.URL
	}
	d.server, err = server.New(scfg)
	if err != nil {
		cpLn.Close()
		return nil, err
	}
	if err := d.setUpAccess(scfg.AdminPassword); err != nil {
		cpLn.Close()
		return nil, err
	}
	if opts.StarterPolicies {
		if err := d.storeStarterPolicies(context.Background()); err != nil {
			cpLn.Close()
			return nil, err
		}
	}
	agentTokens, err := d.agentTokens(names)
	if err != nil {
		cpLn.Close()
		return nil, err
	}
	if d.APIToken, err = d.apiToken(); err != nil {
		cpLn.Close()
		return nil, err
	}
	d.cpAddr, d.cpCfg, d.cpTLS, d.cpLog = cpLn.Addr().String(), scfg, [2]string{opts.TLSCert, opts.TLSKey}, opts.Logger
	d.serveControlPlane(cpLn)

	listeners := map[string]net.Listener{}
	for _, name := range names {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			for _, l := range listeners {
				l.Close()
			}
			return nil, fmt.Errorf("demo: %s: %w", name, err)
		}
		listeners[name] = ln
		d.Services[name] = "http://" + ln.Addr().String()
	}
	for _, name := range names {
		ln := listeners[name]
		ag, err := agent.New(name,
			agent.WithControlPlane(d.URL),
			agent.WithToken(agentTokens[name]),
			agent.WithAddress(ln.Addr().String()),
			agent.WithVersion("v1.4.2"),
			agent.WithHeartbeatInterval(opts.Heartbeat),
			agent.WithLocalLog(io.Discard),
		)
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("demo: agent for %s: %w", name, err)
		}
		d.agents = append(d.agents, ag)
		engine := services.Builders[name](services.Config{Agent: ag, Peers: d.Services, ErrorRate: opts.ErrorRate})
		srv := &http.Server{Handler: engine, ReadHeaderTimeout: 5 * time.Second}
		d.servers = append(d.servers, srv)
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				opts.Logger.Error("demo: service stopped", "service", name, "err", err)
			}
		}()
	}

	ctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	go func() {
		defer close(d.done)
		if opts.Rate > 0 {
			services.Traffic(ctx, d.GatewayURL(), opts.Rate, nil)
		}
	}()
	return d, nil
}

func (d *Demo) serveControlPlane(ln net.Listener) {
	srv := d.server
	go func() {
		if err := srv.ServeTLS(ln, d.cpTLS[0], d.cpTLS[1]); err != nil {
			d.cpLog.Error("demo: control plane stopped", "err", err)
		}
	}()
}

// StopControlPlane shuts the control plane down within ctx, as an
// operator stopping it would, and leaves the shop, its agents and the
// traffic running: the agents keep serving on their last policy and
// retry their exports and heartbeats. It is for fault tests and is not
// safe for concurrent use with StartControlPlane.
func (d *Demo) StopControlPlane(ctx context.Context) error {
	if d.cpDown {
		return nil
	}
	d.cpDown = true
	if err := d.server.Shutdown(ctx); err != nil {
		return fmt.Errorf("demo: stop control plane: %w", err)
	}
	return nil
}

// StartControlPlane starts a new control plane after StopControlPlane, on
// the same address and data directory, so the agents find it again. The
// admin password and agent tokens are those of the first start.
func (d *Demo) StartControlPlane() error {
	if !d.cpDown {
		return nil
	}
	ln, err := net.Listen("tcp", d.cpAddr)
	if err != nil {
		return fmt.Errorf("demo: restart control plane: %w", err)
	}
	srv, err := server.New(d.cpCfg)
	if err != nil {
		ln.Close()
		return fmt.Errorf("demo: restart control plane: %w", err)
	}
	d.server, d.cpDown = srv, false
	d.serveControlPlane(ln)
	return nil
}

// setUpAccess makes sure the admin exists with a password the demo can
// print: the configured one, the one the server just generated, or a
// fresh one.
func (d *Demo) setUpAccess(password string) error {
	ctx := context.Background()
	users := d.server.Auth()
	d.AdminUser = auth.AdminName
	if pw := d.server.InitialAdminPassword(); pw != "" {
		d.AdminPassword = pw
		return nil
	}
	if password == "" {
		password = auth.GeneratePassword()
	}
	d.AdminPassword = password
	u, err := users.User(ctx, auth.AdminName)
	switch {
	case errors.Is(err, auth.ErrNotFound):
		_, err = users.CreateUser(ctx, auth.AdminName, password, auth.RoleAdmin)
	case err == nil && u.Role == auth.RoleAdmin && !u.Disabled:
		// A configured password may be the current one: keep sessions.
		if _, aerr := users.Authenticate(ctx, auth.AdminName, password); aerr == nil {
			return nil
		}
		_, err = users.UpdateUser(ctx, auth.AdminName, auth.UserChange{Password: &password})
	case err == nil:
		admin, off := auth.RoleAdmin, false
		_, err = users.UpdateUser(ctx, auth.AdminName, auth.UserChange{Password: &password, Role: &admin, Disabled: &off})
	}
	if err != nil {
		return fmt.Errorf("demo: admin user: %w", err)
	}
	_, err = d.server.Audit().Record(ctx, audit.Event{Actor: "demo", Action: audit.ActionUserUpdate, Target: auth.AdminName, Detail: "password reset by the demo at start"})
	return err
}

// revokeDemoTokens revokes the tokens of kind that earlier runs made.
func (d *Demo) revokeDemoTokens(ctx context.Context, kind auth.TokenKind) error {
	users := d.server.Auth()
	old, err := users.Tokens(ctx, kind)
	if err != nil {
		return err
	}
	for _, t := range old {
		if t.Active() && t.CreatedBy == "demo" {
			if _, err := users.RevokeToken(ctx, t.ID); err != nil {
				return err
			}
		}
	}
	return nil
}

// apiToken makes this run's viewer API token, revoking earlier runs'.
func (d *Demo) apiToken() (string, error) {
	ctx := context.Background()
	if err := d.revokeDemoTokens(ctx, auth.KindAPI); err != nil {
		return "", fmt.Errorf("demo: API token: %w", err)
	}
	secret, _, err := d.server.Auth().CreateToken(ctx, auth.NewToken{Kind: auth.KindAPI, Name: "demo-api", Role: auth.RoleViewer, CreatedBy: "demo"})
	if err != nil {
		return "", fmt.Errorf("demo: API token: %w", err)
	}
	return secret, nil
}

// agentTokens gives each shop service its own agent token, limited to
// that service, revoking those of earlier runs.
func (d *Demo) agentTokens(names []string) (map[string]string, error) {
	ctx := context.Background()
	users := d.server.Auth()
	if err := d.revokeDemoTokens(ctx, auth.KindAgent); err != nil {
		return nil, fmt.Errorf("demo: agent tokens: %w", err)
	}
	out := map[string]string{}
	for _, name := range names {
		secret, _, err := users.CreateToken(ctx, auth.NewToken{Kind: auth.KindAgent, Name: "demo-" + name, Services: []string{name}, CreatedBy: "demo"})
		if err != nil {
			return nil, fmt.Errorf("demo: agent token for %s: %w", name, err)
		}
		out[name] = secret
	}
	return out, nil
}

// Close stops traffic, the shop (flushing each agent) and the control
// plane, in that order, within ctx.
func (d *Demo) Close(ctx context.Context) error {
	var errs []error
	if d.cancel != nil {
		d.cancel()
		<-d.done
	}
	for _, srv := range d.servers {
		errs = append(errs, srv.Shutdown(ctx))
	}
	for _, ag := range d.agents {
		errs = append(errs, ag.Shutdown(ctx))
	}
	if d.server != nil && !d.cpDown {
		errs = append(errs, d.server.Shutdown(ctx))
	}
	return errors.Join(errs...)
}
