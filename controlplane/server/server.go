// Package server wires the control plane together: the embedded store, the
// instance registry, OTLP and heartbeat ingest, the JSON query API, the
// dashboard, /metrics and /healthz, behind one HTTP server, and guards it:
// users and API tokens with roles for people, agent tokens for agents,
// CSRF tokens on state changes, and an audit log of every change.
//
// Who may call what (see classify): /login, /static/ and /healthz are
// public; the agent endpoints need an agent token once one exists; every
// other route needs a session or an API token: viewer for reads,
// operator for policy changes, admin for users and tokens.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pilothouse/pilothouse/agent/wire"
	"github.com/pilothouse/pilothouse/controlplane/api"
	"github.com/pilothouse/pilothouse/controlplane/audit"
	"github.com/pilothouse/pilothouse/controlplane/auth"
	"github.com/pilothouse/pilothouse/controlplane/auth/console"
	"github.com/pilothouse/pilothouse/controlplane/consul"
	"github.com/pilothouse/pilothouse/controlplane/ingest"
	"github.com/pilothouse/pilothouse/controlplane/policyapi"
	"github.com/pilothouse/pilothouse/controlplane/registry"
	"github.com/pilothouse/pilothouse/controlplane/store"
	"github.com/pilothouse/pilothouse/controlplane/tracebackend"
)

// StreamGrace is how long Shutdown lets requests finish before it ends
// the long-lived ones.
const StreamGrace = 500 * time.Millisecond

// Defaults for Config.
const (
	DefaultAddr    = "127.0.0.1:7070"
	DefaultDataDir = "./pilothouse-data"
	// DefaultReadTimeout is Config.ReadTimeout's default.
	DefaultReadTimeout = 30 * time.Second
)

// Config configures a control plane. Zero values mean the defaults.
type Config struct {
	// DataDir holds the embedded store.
	DataDir string
	// PublicURL is the base URL agents and browsers reach this control
	// plane at; the dashboard shows it in its hints.
	PublicURL string
	// AgentToken, when set, is a shared token agents may present on the
	// agent endpoints (named agent tokens work too).
	AgentToken string
	// MetricsToken, when set, is a bearer token that opens GET /metrics
	// and nothing else, for Prometheus to scrape with (`authorization:
	// credentials_file`) instead of a viewer API token. Any viewer may
	// still read /metrics.
	MetricsToken string
	// AdminPassword is the first admin's password, used only when there
	// are no users yet; empty generates one (see InitialAdminPassword).
	AdminPassword string
	// Auth tunes sessions and password hashing; its Now defaults to Now.
	Auth auth.Config
	// Store tunes the embedded store (retention, queue size).
	Store store.Options
	// Logger receives the control plane's own logs.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Consul, when set, is a Consul agent's HTTP address (host:port):
	// policies and their audit records then live in Consul KV, shared by
	// every control plane replica pointed at it, instead of DataDir; so
	// do users, sessions and API/agent tokens, with auth.db in DataDir as
	// this replica's copy (see auth.Store.Share).
	Consul string
	// ConsulToken is the Consul ACL token; empty uses CONSUL_HTTP_TOKEN.
	ConsulToken string
	// LokiURL, when set, is Loki's base URL (http://loki:3100): received
	// logs are stored and then forwarded there (bounded, dropping queue).
	LokiURL string
	// OTLPForwardURL, when set, is an OTLP/HTTP endpoint (a collector,
	// Jaeger or Tempo; http://host:4318 gets /v1/traces) received spans
	// are stored and then forwarded to (bounded, dropping queue).
	OTLPForwardURL string
	// TraceBackend and TraceBackendURL, when the URL is set, name the
	// Jaeger or Tempo query API (http://jaeger:16686) the JSON API reads
	// traces from as well as the store.
	TraceBackend    tracebackend.Kind
	TraceBackendURL string
	// PolicyHistory is how many policy versions per service the leader
	// keeps in Consul KV (the head is always kept); 0 means
	// DefaultPolicyHistory. Only used with Consul.
	PolicyHistory int
	// CompactEvery is how often the leader compacts the policy history;
	// 0 means DefaultCompactEvery. Only used with Consul.
	CompactEvery time.Duration
	// ReadTimeout bounds reading a whole request, body included, against
	// slow clients; 0 means DefaultReadTimeout. OTLP ingest has its own,
	// shorter bound (ingest.DefaultReadTimeout).
	ReadTimeout time.Duration
}

// consulOpenTimeout bounds how long New waits for Consul to answer.
const consulOpenTimeout = 10 * time.Second

// Server is a running control plane's state. Create it with New, serve it
// with Serve, stop it with Shutdown.
type Server struct {
	cfg      Config
	store    *store.Store
	policies PolicyStore
	registry *registry.Registry
	metrics  *prometheus.Registry
	auth     *auth.Store
	audit    *audit.Log
	handler  http.Handler

	mu   sync.Mutex
	http *http.Server
	// requests is the base context of every request; cancelling it ends
	// long-lived ones (policy long-polls, live tails) at shutdown.
	requests    context.Context
	endRequests context.CancelFunc

	initialPassword string

	// engines are the optional log and trace backends (engines.go).
	engines engines
	// catalog mirrors Consul's catalog when Config.Consul is set
	// (cluster.go).
	catalog *consul.Catalog
	// lead runs the leader-only jobs (leader.go); leading is true while
	// this replica holds the Consul lock.
	lead    leadership
	leading atomic.Bool
}

// New opens the store and builds the HTTP handler.
func New(cfg Config) (*Server, error) {
	if cfg.DataDir == "" {
		cfg.DataDir = DefaultDataDir
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = DefaultReadTimeout
	}
	if cfg.PolicyHistory <= 0 {
		cfg.PolicyHistory = DefaultPolicyHistory
	}
	if cfg.CompactEvery <= 0 {
		cfg.CompactEvery = DefaultCompactEvery
	}
	st, err := store.Open(cfg.DataDir, cfg.Store)
	if err != nil {
		return nil, fmt.Errorf("server: open store: %w", err)
	}
	pol, err := openPolicies(cfg)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("server: open policy store: %w", err)
	}
	if cfg.Auth.Now == nil {
		cfg.Auth.Now = cfg.Now
	}
	users, err := auth.Open(cfg.DataDir, cfg.Auth)
	if err != nil {
		st.Close()
		pol.Close()
		return nil, fmt.Errorf("server: open auth store: %w", err)
	}
	if err := shareAuth(users, cfg); err != nil {
		st.Close()
		pol.Close()
		users.Close()
		return nil, fmt.Errorf("server: share users, sessions and tokens through Consul: %w", err)
	}
	auditLog, err := audit.Open(cfg.DataDir, cfg.Now)
	if err != nil {
		st.Close()
		pol.Close()
		users.Close()
		return nil, fmt.Errorf("server: open audit log: %w", err)
	}
	s := &Server{
		cfg:      cfg,
		store:    st,
		policies: pol,
		registry: registry.New(registry.Options{}),
		metrics:  prometheus.NewRegistry(),
		auth:     users,
		audit:    auditLog,
	}
	s.requests, s.endRequests = context.WithCancel(context.Background())
	s.initialPassword, err = users.EnsureAdmin(context.Background(), cfg.AdminPassword)
	if err != nil {
		s.closeStores()
		return nil, fmt.Errorf("server: first admin: %w", err)
	}
	authMetrics := auth.NewMetrics(s.metrics)
	g := &gate{
		store: users, agents: auth.NewAgentAuthenticator(users, cfg.AgentToken), audit: auditLog,
		metrics: authMetrics, throttle: audit.NewThrottle(time.Minute, 10000), now: cfg.Now, log: cfg.Logger,
		metricsToken: []byte(cfg.MetricsToken),
	}
	s.metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s.registerStoreMetrics()

	spanWriter, logWriter, err := s.startEngines(st, st)
	if err != nil {
		s.closeStores()
		return nil, err
	}
	instances, err := s.startCatalog()
	if err != nil {
		s.closeEngines(context.Background())
		s.closeStores()
		return nil, err
	}
	var endpoints endpointSource = s.registry
	if instances != instanceSource(s.registry) {
		endpoints = &cachedEndpoints{src: instances, ttl: time.Second}
	}
	checked := serviceChecked{spans: spanWriter, logs: logWriter, gate: g}
	ingestCfg := ingest.Config{
		Spans:          checked,
		Logs:           checked,
		Heartbeats:     s.registry,
		HeartbeatReply: heartbeatReply(s.registry, endpoints, pol),
		Registerer:     s.metrics,
		Now:            cfg.Now,
	}
	// The gate authenticates agents; the handlers answer its refusals.
	ingestCfg.Authenticate = func(r *http.Request) error { return agentError(r.Context()) }
	policyCfg := policyapi.Config{
		Store:             pol,
		Actor:             actorOf,
		AuthenticateAgent: ingestCfg.Authenticate,
		OnChange:          g.auditPolicyChange,
	}
	in := ingest.New(ingestCfg)

	mux := http.NewServeMux()
	mux.Handle("POST "+wire.PathTraces, in.Traces())
	mux.Handle("POST "+wire.PathLogs, in.Logs())
	mux.Handle("POST "+wire.PathHeartbeat, in.Heartbeats())
	reader, err := s.newEngineReader(st)
	if err != nil {
		s.closeCatalog()
		s.closeEngines(context.Background())
		s.closeStores()
		return nil, err
	}
	api.New(reader, instances, cfg.Now, cfg.Logger).Register(mux)
	policyapi.New(policyCfg).Register(mux)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics, promhttp.HandlerOpts{Registry: s.metrics}))
	mux.HandleFunc("GET /healthz", s.healthz)
	console.New(console.Config{
		Auth: users, Audit: auditLog, Metrics: authMetrics, Logger: cfg.Logger, Now: cfg.Now,
		Policies: true, // mountDashboard serves the policy pages
		AgentsOpen: func(ctx context.Context) bool {
			open, err := g.agentsOpen(ctx, cfg.AgentToken)
			return err == nil && open
		},
	}).Register(mux)
	mountDashboard(mux, reader, st, instances, pol, g, cfg)
	s.handler = g.wrap(mux)
	s.startLeadership()
	return s, nil
}

// InitialAdminPassword is the first admin's generated password when this
// New created the admin without Config.AdminPassword, else "". It is
// kept in memory only, for the caller to print once.
func (s *Server) InitialAdminPassword() string { return s.initialPassword }

// Auth returns the users, sessions and tokens store.
func (s *Server) Auth() *auth.Store { return s.auth }

// Audit returns the audit log.
func (s *Server) Audit() *audit.Log { return s.audit }

func (s *Server) closeStores() error {
	return errors.Join(s.store.Close(), s.policies.Close(), s.auth.Close(), s.audit.Close())
}

// Handler returns the control plane's HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

// Store returns the embedded store.
func (s *Server) Store() *store.Store { return s.store }

// Policies returns the policy store.
func (s *Server) Policies() PolicyStore { return s.policies }

// Registry returns the instance registry.
func (s *Server) Registry() *registry.Registry { return s.registry }

// Serve answers on ln until Shutdown. It returns nil after a clean
// shutdown.
func (s *Server) Serve(ln net.Listener) error {
	return s.serve(ln, "", "")
}

// ServeTLS is Serve over TLS with the certificate and key files (PEM).
// Session cookies are then Secure.
func (s *Server) ServeTLS(ln net.Listener, certFile, keyFile string) error {
	return s.serve(ln, certFile, keyFile)
}

func (s *Server) serve(ln net.Listener, certFile, keyFile string) error {
	hs := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       s.cfg.ReadTimeout,
		// Long enough for SSE and policy long-polls.
		WriteTimeout: 0,
		IdleTimeout:  2 * time.Minute,
		ErrorLog:     slog.NewLogLogger(s.cfg.Logger.Handler(), slog.LevelWarn),
		BaseContext:  func(net.Listener) context.Context { return s.requests },
	}
	s.mu.Lock()
	s.http = hs
	s.mu.Unlock()
	var err error
	if certFile != "" || keyFile != "" {
		err = hs.ServeTLS(ln, certFile, keyFile)
	} else {
		err = hs.Serve(ln)
	}
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops serving, waits for requests in flight within ctx, then
// closes the store (which drains pending writes).
//
// Ordinary requests get StreamGrace to finish; long-lived ones (agents'
// policy long-polls, dashboard live tails) are then ended, so a stop does
// not wait out a 30 s long-poll.
func (s *Server) Shutdown(ctx context.Context) error {
	var errs []error
	s.mu.Lock()
	hs := s.http
	s.mu.Unlock()
	if hs != nil {
		end := time.AfterFunc(StreamGrace, s.endRequests)
		errs = append(errs, hs.Shutdown(ctx))
		end.Stop()
	}
	s.endRequests()
	errs = append(errs, s.stopLeadership(ctx))
	errs = append(errs, s.closeCatalog())
	errs = append(errs, s.closeEngines(ctx))
	errs = append(errs, s.closeStores())
	return errors.Join(errs...)
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	api.WriteJSON(w, http.StatusOK, map[string]any{"ok": true, "store": s.store.Stats(), "leader": s.Leader()})
}

func (s *Server) registerStoreMetrics() {
	gauge := func(name, help string, f func(store.Stats) float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help},
			func() float64 { return f(s.store.Stats()) })
	}
	counter := func(name, help string, f func(store.Stats) float64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
			func() float64 { return f(s.store.Stats()) })
	}
	s.metrics.MustRegister(
		gauge("pilothouse_store_spans", "Spans in the embedded store.", func(st store.Stats) float64 { return float64(st.Spans) }),
		gauge("pilothouse_store_logs", "Log records in the embedded store.", func(st store.Stats) float64 { return float64(st.Logs) }),
		gauge("pilothouse_store_traces", "Traces in the embedded store.", func(st store.Stats) float64 { return float64(st.Traces) }),
		gauge("pilothouse_store_size_bytes", "Size of the embedded store on disk.", func(st store.Stats) float64 { return float64(st.SizeBytes) }),
		gauge("pilothouse_store_queue_depth", "Write batches waiting for the store writer.", func(st store.Stats) float64 { return float64(st.QueueDepth) }),
		counter("pilothouse_store_write_errors_total", "Store write transactions that failed.", func(st store.Stats) float64 { return float64(st.WriteErrors) }),
		counter("pilothouse_store_rejected_total", "Write batches refused because the queue was full.", func(st store.Stats) float64 { return float64(st.Rejected) }),
		counter("pilothouse_store_retention_deleted_total", "Rows removed by retention.", func(st store.Stats) float64 { return float64(st.Deleted) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "pilothouse_registry_dropped_heartbeats_total", Help: "Heartbeats refused by the registry's caps."},
			func() float64 { return float64(s.registry.Dropped()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "pilothouse_registry_folded_routes_total", Help: "Route summaries counted under the \"other\" route by the registry's per-service cap."},
			func() float64 { return float64(s.registry.FoldedRoutes()) }),
	)
}
