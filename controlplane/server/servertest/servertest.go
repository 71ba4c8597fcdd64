// Package servertest starts real control planes for tests in other
// packages: server.New on a loopback port, served until the test ends.
package servertest

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/pilothouse/pilothouse/controlplane/auth"
	"github.com/pilothouse/pilothouse/controlplane/server"
)

// AdminPassword is the first admin's password when cfg names none.
const AdminPassword = "admin-password-for-tests"

// ShutdownTimeout bounds the shutdown when the test ends.
const ShutdownTimeout = 10 * time.Second

// Start builds a control plane from cfg and serves it on a free loopback
// port until the test ends. Zero values get test defaults: a temporary
// data directory, AdminPassword, the cheapest bcrypt cost and a
// discarding logger. It returns the base URL ("http://127.0.0.1:port").
func Start(t testing.TB, cfg server.Config) (url string, srv *server.Server) {
	t.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	if cfg.AdminPassword == "" {
		cfg.AdminPassword = AdminPassword
	}
	if cfg.Auth.BcryptCost == 0 {
		cfg.Auth.BcryptCost = bcrypt.MinCost
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatalf("servertest: server.New: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("servertest: listen: %v", err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return "http://" + ln.Addr().String(), srv
}

// Token creates an API token with role on srv and returns its secret.
func Token(t testing.TB, srv *server.Server, role auth.Role) string {
	t.Helper()
	secret, _, err := srv.Auth().CreateToken(context.Background(), auth.NewToken{
		Kind: auth.KindAPI, Name: "test-" + string(role), Role: role, CreatedBy: "servertest",
	})
	if err != nil {
		t.Fatalf("servertest: create %s token: %v", role, err)
	}
	return secret
}
