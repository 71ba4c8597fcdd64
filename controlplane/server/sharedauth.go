package server

import (
	"context"

	"github.com/pilothouse/pilothouse/controlplane/auth"
	"github.com/pilothouse/pilothouse/controlplane/consul"
)

// shareAuth makes users, sessions and tokens shared through Consul KV
// when Config.Consul is set: the local auth.db becomes this replica's
// copy (see auth.Store.Share). It runs before EnsureAdmin, so a replica
// joining others creates no admin of its own.
func shareAuth(users *auth.Store, cfg Config) error {
	if cfg.Consul == "" {
		return nil
	}
	kv, err := consul.NewAuthKV(consul.AuthConfig{Address: cfg.Consul, Token: cfg.ConsulToken})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), consulOpenTimeout)
	defer cancel()
	return users.Share(ctx, kv, cfg.Logger)
}

// sweepSessions deletes expired sessions from the shared store; the
// leader runs it.
func (s *Server) sweepSessions(ctx context.Context) {
	n, err := s.auth.SweepSessions(ctx)
	if err != nil && ctx.Err() == nil {
		s.cfg.Logger.Warn("server: sweep expired sessions", "deleted", n, "err", err)
		return
	}
	if n > 0 {
		s.cfg.Logger.Info("server: swept expired sessions", "deleted", n)
	}
}
