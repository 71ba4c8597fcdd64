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
	// Logger receives the demo's own logs.
	Logger *slog.Logger
}

// Demo is a running demo.
type Demo struct {
	// URL is the control plane's base URL (dashboard and API).
	URL string
	// Services maps each shop service to its base URL.
	Services map[string]string

	server  *server.Server
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
	if scfg.PublicURL == "" {
		scfg.PublicURL = d.URL
	}
	d.server, err = server.New(scfg)
	if err != nil {
		cpLn.Close()
		return nil, err
	}
	go func() {
		if err := d.server.Serve(cpLn); err != nil {
			opts.Logger.Error("demo: control plane stopped", "err", err)
		}
	}()

	// Listen first so every service knows its peers' addresses.
	names := []string{services.Inventory, services.Payments, services.Orders, services.Gateway}
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
			agent.WithToken(scfg.AgentToken),
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
	if d.server != nil {
		errs = append(errs, d.server.Shutdown(ctx))
	}
	return errors.Join(errs...)
}
