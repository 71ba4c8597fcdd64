// Command controlplane is the Pilothouse control plane.
//
//	go run ./controlplane serve [--addr 127.0.0.1:7070] [--data ./pilothouse-data] [--consul 127.0.0.1:8500] [--policy-history 200] [--metrics-token ...]
//	go run ./controlplane demo  [--addr 127.0.0.1:7070] [--rate 8]
//	go run ./controlplane policy get|diff|apply ...
//	go run ./controlplane users list|add|passwd|set-role|disable|enable|delete ... [--data DIR]
//	go run ./controlplane tokens list|create|revoke ... [--data DIR]
//
// serve runs the control plane alone; demo also starts the example shop
// with the agent embedded and sends it traffic, so the dashboard has live
// data at once.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/pilothouse/pilothouse/controlplane/admincli"
	"github.com/pilothouse/pilothouse/controlplane/auth"
	"github.com/pilothouse/pilothouse/controlplane/demo"
	"github.com/pilothouse/pilothouse/controlplane/policycli"
	"github.com/pilothouse/pilothouse/controlplane/server"
	"github.com/pilothouse/pilothouse/controlplane/tracebackend"
)

// Environment variables read by the control plane.
const (
	EnvAgentToken = "PILOTHOUSE_AGENT_TOKEN"
	// EnvMetricsToken is the bearer token that opens GET /metrics only.
	EnvMetricsToken = "PILOTHOUSE_METRICS_TOKEN"
	// EnvAdminPassword is the first admin's password (auth.EnvAdminPassword).
	EnvAdminPassword = auth.EnvAdminPassword
)

const usage = `usage: controlplane <command> [flags]

commands:
  serve   run the control plane (dashboard, API, OTLP ingest)
  demo    run the control plane plus the example shop and traffic
  policy  get, diff or apply a service's policy (policy -h for more)
  users   list, add, change or delete dashboard users, on the data directory (users -h)
  tokens  list, create or revoke API and agent tokens, on the data directory (tokens -h)

run "controlplane <command> -h" for the flags of a command
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "controlplane:", err)
		}
		os.Exit(2)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command given")
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stdout, stderr)
	case "demo":
		return runDemo(ctx, args[1:], stdout, stderr)
	case "policy":
		return policycli.Run(ctx, args[1:], stdout, stderr)
	case "users":
		return admincli.Users(ctx, args[1:], admincli.Config{Stdin: os.Stdin, Stdout: stdout, Stderr: stderr})
	case "tokens":
		return admincli.Tokens(ctx, args[1:], admincli.Config{Stdin: os.Stdin, Stdout: stdout, Stderr: stderr})
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

type commonFlags struct {
	addr, data, agentToken, logLevel string
	tlsCert, tlsKey                  string
	retention                        retentionFlags
}

func (c *commonFlags) scheme() string {
	if c.tlsCert != "" {
		return "https://"
	}
	return "http://"
}

func (c *commonFlags) checkTLS() error {
	if (c.tlsCert == "") != (c.tlsKey == "") {
		return errors.New("--tls-cert and --tls-key go together")
	}
	return nil
}

func (c *commonFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.addr, "addr", server.DefaultAddr, "listen address")
	fs.StringVar(&c.data, "data", server.DefaultDataDir, "data directory of the embedded store")
	fs.StringVar(&c.agentToken, "agent-token", os.Getenv(EnvAgentToken), "token agents must send (env "+EnvAgentToken+"); empty accepts any agent")
	fs.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&c.tlsCert, "tls-cert", "", "TLS certificate file (PEM); serves HTTPS with --tls-key")
	fs.StringVar(&c.tlsKey, "tls-key", "", "TLS private key file (PEM)")
	c.retention.register(fs)
}

func (c *commonFlags) logger(w io.Writer) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: lvl})), nil
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c commonFlags
	c.register(fs)
	consulAddr := fs.String("consul", "", "Consul HTTP address (host:port): keep policies, users, sessions and tokens in Consul KV, shared by replicas, list Consul's catalog with the heartbeat instances, and run the leader-only jobs on one replica (token from CONSUL_HTTP_TOKEN)")
	policyHistory := fs.Int("policy-history", server.DefaultPolicyHistory, "with --consul: policy versions kept per service in Consul KV (the leader deletes older ones; the current one is always kept)")
	metricsToken := fs.String("metrics-token", os.Getenv(EnvMetricsToken), "bearer token that opens GET /metrics and nothing else, for Prometheus (env "+EnvMetricsToken+"); viewers may read /metrics too")
	lokiURL := fs.String("loki-url", "", "Loki base URL (http://loki:3100): forward received logs there too")
	otlpForward := fs.String("otlp-forward-url", "", "OTLP/HTTP endpoint (http://collector:4318): forward received spans there too")
	traceBackend := fs.String("trace-backend", "jaeger", "kind of --trace-backend-url: jaeger or tempo")
	traceBackendURL := fs.String("trace-backend-url", "", "Jaeger or Tempo query URL (http://jaeger:16686): the API reads traces from it as well as the store")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log, err := c.logger(stderr)
	if err != nil {
		return err
	}
	if err := c.checkTLS(); err != nil {
		return err
	}
	storeOpts, err := c.retention.storeOptions()
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		return err
	}
	url := c.scheme() + ln.Addr().String()
	srv, err := server.New(server.Config{DataDir: c.data, AgentToken: c.agentToken, AdminPassword: os.Getenv(EnvAdminPassword), Logger: log, PublicURL: url, Consul: *consulAddr,
		PolicyHistory: *policyHistory, MetricsToken: *metricsToken, Store: storeOpts,
		LokiURL: *lokiURL, OTLPForwardURL: *otlpForward,
		TraceBackend: tracebackend.Kind(*traceBackend), TraceBackendURL: *traceBackendURL})
	if err != nil {
		ln.Close()
		return err
	}
	fmt.Fprintf(stdout, "Pilothouse control plane\n  dashboard:  %s/\n  OTLP/HTTP:  %s/v1/traces, %s/v1/logs\n  agents:     PILOTHOUSE_URL=%s\n", url, url, url, url)
	if *lokiURL != "" {
		fmt.Fprintf(stdout, "  logs:       also to Loki at %s\n", *lokiURL)
	}
	if *otlpForward != "" {
		fmt.Fprintf(stdout, "  traces:     also to %s\n", *otlpForward)
	}
	if *consulAddr != "" {
		fmt.Fprintf(stdout, "  policies:   Consul KV at %s (newest %d versions per service)\n", *consulAddr, *policyHistory)
		fmt.Fprintf(stdout, "  users:      users, sessions and tokens shared in Consul KV (manage them with --consul %s)\n", *consulAddr)
		fmt.Fprintf(stdout, "  instances:  heartbeats and Consul's catalog; leader-only jobs by Consul lock\n")
	}
	if pw := srv.InitialAdminPassword(); pw != "" {
		fmt.Fprintf(stdout, "  login:      %s / %s   (generated once; not stored in clear, change it or keep it safe)\n", auth.AdminName, pw)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(ln, c.tlsCert, c.tlsKey) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	fmt.Fprintln(stdout, "shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c commonFlags
	c.register(fs)
	rate := fs.Float64("rate", 8, "shop requests per second from the traffic generator (0 = none)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log, err := c.logger(stderr)
	if err != nil {
		return err
	}
	if err := c.checkTLS(); err != nil {
		return err
	}
	storeOpts, err := c.retention.storeOptions()
	if err != nil {
		return err
	}
	r := *rate
	if r == 0 {
		r = -1
	}
	d, err := demo.Start(demo.Options{
		Addr: c.addr, DataDir: c.data, Rate: r, Logger: log, StarterPolicies: true,
		Server:  server.Config{AgentToken: c.agentToken, AdminPassword: os.Getenv(EnvAdminPassword), Store: storeOpts},
		TLSCert: c.tlsCert, TLSKey: c.tlsKey,
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, `Pilothouse demo is running.

  Open the dashboard:  %s/
  login:               %s / %s
  Shop gateway:        %s  (try %s/api/orders/42)
  JSON API:            curl -H 'Authorization: Bearer %s' %s/api/v1/services
                       (a viewer token of this run; signed in, the browser opens it too)

Traffic: about %.0f requests/s into the shop. Press Ctrl-C to stop.
`, d.URL, d.AdminUser, d.AdminPassword, d.GatewayURL(), d.GatewayURL(), d.APIToken, d.URL, *rate)
	<-ctx.Done()
	fmt.Fprintln(stdout, "\nstopping the demo")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return d.Close(sctx)
}
