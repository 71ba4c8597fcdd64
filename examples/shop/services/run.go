package services

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/pilothouse/pilothouse/agent"
	"github.com/pilothouse/pilothouse/agent/consulreg"
)

// Environment variables read by the stand-alone shop binaries, besides the
// agent's own (PILOTHOUSE_URL, PILOTHOUSE_TOKEN).
const (
	EnvGatewayURL   = "SHOP_GATEWAY_URL"
	EnvOrdersURL    = "SHOP_ORDERS_URL"
	EnvPaymentsURL  = "SHOP_PAYMENTS_URL"
	EnvInventoryURL = "SHOP_INVENTORY_URL"
	// EnvAdvertiseAddr is the host:port other services reach this
	// instance at (the -advertise flag's default).
	EnvAdvertiseAddr = "SHOP_ADVERTISE_ADDR"
	// EnvConsulAddr is Consul's own variable for its HTTP address (the
	// -consul flag's default).
	EnvConsulAddr = "CONSUL_HTTP_ADDR"
)

// DefaultAddrs are where the stand-alone binaries listen by default.
var DefaultAddrs = map[string]string{
	Gateway:   "127.0.0.1:8080",
	Orders:    "127.0.0.1:8081",
	Payments:  "127.0.0.1:8082",
	Inventory: "127.0.0.1:8083",
}

// Builders maps each service name to its constructor.
var Builders = map[string]func(Config) *gin.Engine{
	Gateway:   NewGateway,
	Orders:    NewOrders,
	Payments:  NewPayments,
	Inventory: NewInventory,
}

// Main runs one shop service as a process: flags, agent from the
// environment, graceful shutdown on SIGINT/SIGTERM. It is what the
// examples/shop/<name> binaries call.
func Main(name string) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, name, os.Args[1:], os.Getenv, nil); err != nil {
		fmt.Fprintln(os.Stderr, name+":", err)
		os.Exit(1)
	}
}

// run serves one shop service until ctx ends. getenv reads the
// environment; listening, when not nil, is told the address the service
// listens on once it does (for tests).
func run(ctx context.Context, name string, args []string, getenv func(string) string, listening func(addr string)) error {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	addr := fs.String("addr", DefaultAddrs[name], "listen address")
	errRate := fs.Float64("error-rate", 0.03, "share of requests that fail on purpose")
	rate := fs.Float64("traffic", 0, "gateway only: also generate this many requests/s against itself")
	consulAddr := fs.String("consul", getenv(EnvConsulAddr),
		"Consul agent HTTP address (host:port): register this instance there with an HTTP health check and "+
			"call peers by service name (default $"+EnvConsulAddr+")")
	advertise := fs.String("advertise", getenv(EnvAdvertiseAddr),
		"host:port other services reach this instance at (default the listen address, "+
			"with this host's name for an unspecified host; $"+EnvAdvertiseAddr+")")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	defer ln.Close()
	reachAt := *advertise
	if reachAt == "" {
		reachAt = advertisedAddr(ln.Addr().String())
	}
	ag, err := agent.New(name, agent.WithAddress(reachAt), agent.WithVersion("v1"))
	if err != nil {
		return err
	}
	engine := Builders[name](Config{Agent: ag, Peers: peerURLs(getenv, *consulAddr != ""), ErrorRate: *errRate})
	srv := &http.Server{Handler: engine, ReadHeaderTimeout: 5 * time.Second}
	if name == Gateway && *rate > 0 {
		go Traffic(ctx, "http://"+ln.Addr().String(), *rate, nil)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	ag.Logger().Info("shop service listening", "addr", ln.Addr().String())
	var reg *consulreg.Registration
	if *consulAddr != "" {
		var rerr error
		if reg, rerr = registerInConsul(ctx, *consulAddr, name, reachAt, ag.InstanceID()); rerr != nil {
			// The shop works without Consul: peers may still be
			// found through the control plane's heartbeats.
			ag.Logger().Warn("shop: not registered in Consul", "consul", *consulAddr, "err", rerr.Error())
		} else {
			ag.Logger().Info("shop: registered in Consul", "consul", *consulAddr, "id", reg.ID())
		}
	}
	if listening != nil {
		listening(ln.Addr().String())
	}
	select {
	case err = <-errc:
	case <-ctx.Done():
	}
	// Leave the catalog first, so no new call is routed here while the
	// server drains.
	if reg != nil {
		if cerr := reg.Close(); cerr != nil {
			ag.Logger().Warn("shop: deregister from Consul", "err", cerr.Error())
		}
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err == nil {
		err = srv.Shutdown(shutdownCtx)
	}
	if aerr := ag.Shutdown(shutdownCtx); aerr != nil {
		slog.Warn("agent shutdown", "err", aerr)
	}
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// peerURLs returns the base URL of every peer: $SHOP_<NAME>_URL when set,
// else, with Consul, the bare service name (http://orders), which the
// agent's Transport sends to a live instance it learnt of from the
// control plane (Consul's catalog merged with heartbeats), else the
// default local address.
func peerURLs(getenv func(string) string, byName bool) map[string]string {
	peers := map[string]string{}
	for name, env := range map[string]string{Orders: EnvOrdersURL, Payments: EnvPaymentsURL, Inventory: EnvInventoryURL} {
		switch {
		case getenv(env) != "":
			peers[name] = getenv(env)
		case byName:
			peers[name] = "http://" + name
		default:
			peers[name] = "http://" + DefaultAddrs[name]
		}
	}
	return peers
}
