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
)

// Environment variables read by the stand-alone shop binaries, besides the
// agent's own (PILOTHOUSE_URL, PILOTHOUSE_TOKEN).
const (
	EnvGatewayURL   = "SHOP_GATEWAY_URL"
	EnvOrdersURL    = "SHOP_ORDERS_URL"
	EnvPaymentsURL  = "SHOP_PAYMENTS_URL"
	EnvInventoryURL = "SHOP_INVENTORY_URL"
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
	if err := run(name, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, name+":", err)
		os.Exit(1)
	}
}

func run(name string, args []string) error {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	addr := fs.String("addr", DefaultAddrs[name], "listen address")
	errRate := fs.Float64("error-rate", 0.03, "share of requests that fail on purpose")
	rate := fs.Float64("traffic", 0, "gateway only: also generate this many requests/s against itself")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ag, err := agent.New(name, agent.WithAddress(*addr), agent.WithVersion("v1"))
	if err != nil {
		return err
	}
	peers := map[string]string{
		Orders:    envOr(EnvOrdersURL, "http://"+DefaultAddrs[Orders]),
		Payments:  envOr(EnvPaymentsURL, "http://"+DefaultAddrs[Payments]),
		Inventory: envOr(EnvInventoryURL, "http://"+DefaultAddrs[Inventory]),
	}
	engine := Builders[name](Config{Agent: ag, Peers: peers, ErrorRate: *errRate})
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: engine, ReadHeaderTimeout: 5 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if name == Gateway && *rate > 0 {
		go Traffic(ctx, "http://"+ln.Addr().String(), *rate, nil)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	ag.Logger().Info("shop service listening", "addr", ln.Addr().String())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = srv.Shutdown(shutdownCtx)
	if aerr := ag.Shutdown(shutdownCtx); aerr != nil {
		slog.Warn("agent shutdown", "err", aerr)
	}
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
