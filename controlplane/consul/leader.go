package consul

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/hashicorp/consul/api"
)

// DefaultLeaderKey is the lock key of the control plane's leader-only
// jobs (retention).
const DefaultLeaderKey = "pilothouse/leader"

// LeaderConfig configures RunAsLeader. Zero values mean the defaults.
type LeaderConfig struct {
	// Address and Token reach Consul as in Config.
	Address string
	Token   string
	// Key is the KV key the lock holds; DefaultLeaderKey if empty.
	Key string
	// SessionTTL is how long Consul keeps the lock of a replica that
	// stopped renewing its session (crashed); 15s if zero.
	SessionTTL time.Duration
	// LockDelay is how long Consul refuses the lock after a holder's
	// session was lost (so a stalled leader's last writes land first);
	// Consul's default (15s) if zero.
	LockDelay time.Duration
	// RetryWait is the pause after Consul failed to answer; DefaultRetryWait
	// if zero.
	RetryWait time.Duration
	// Logger receives lock errors; nil discards them.
	Logger *slog.Logger
}

// RunAsLeader calls work each time this process becomes the leader: it
// holds a lock on cfg.Key through a Consul session, and work's context
// ends when the lock is lost or ctx ends. Several replicas may run it at
// once; at most one runs work at a time. RunAsLeader returns when ctx
// ends, after work has returned and the lock is released.
func RunAsLeader(ctx context.Context, cfg LeaderConfig, work func(ctx context.Context)) error {
	if cfg.Key == "" {
		cfg.Key = DefaultLeaderKey
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = 15 * time.Second
	}
	if cfg.RetryWait <= 0 {
		cfg.RetryWait = DefaultRetryWait
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	client, err := newClient(cfg.Address, cfg.Token)
	if err != nil {
		return err
	}
	for ctx.Err() == nil {
		if err := campaign(ctx, client, cfg, work); err != nil && ctx.Err() == nil {
			cfg.Logger.Warn("consul: leader lock", "key", cfg.Key, "err", err)
			wait(ctx, cfg.RetryWait)
		}
	}
	return nil
}

// wait pauses for d or until ctx ends.
func wait(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// campaign creates a session, waits to acquire the lock with it, runs
// work while it holds the lock, then gives the lock and session up.
func campaign(ctx context.Context, client *api.Client, cfg LeaderConfig, work func(ctx context.Context)) error {
	sess := client.Session()
	id, _, err := sess.Create(&api.SessionEntry{
		Name:      "pilothouse leader",
		TTL:       cfg.SessionTTL.String(),
		Behavior:  api.SessionBehaviorRelease,
		LockDelay: cfg.LockDelay,
	}, (&api.WriteOptions{}).WithContext(ctx))
	if err != nil {
		return fmt.Errorf("%w: create session: %w", ErrConsul, err)
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stopRenew := make(chan struct{})
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		// Returns when stopRenew closes (destroying the session, which
		// releases the lock) or when the session is lost.
		_ = sess.RenewPeriodic(cfg.SessionTTL.String(), id, &api.WriteOptions{}, stopRenew)
		cancel()
	}()
	defer func() {
		close(stopRenew)
		<-renewed
	}()

	kv := client.KV()
	lockPair := &api.KVPair{Key: cfg.Key, Session: id}
	if err := acquire(sctx, kv, lockPair, cfg); err != nil {
		return err
	}
	lead(sctx, work, func(wctx context.Context) { holdWhile(wctx, kv, cfg, id) })
	if _, _, err := kv.Release(lockPair, nil); err != nil {
		return fmt.Errorf("%w: release %s: %w", ErrConsul, cfg.Key, err)
	}
	return nil
}

// acquire takes the lock for pair.Session, waiting with blocking queries
// while another session holds it.
func acquire(ctx context.Context, kv *api.KV, pair *api.KVPair, cfg LeaderConfig) error {
	var index uint64
	for {
		ok, _, err := kv.Acquire(pair, (&api.WriteOptions{}).WithContext(ctx))
		if err != nil {
			return fmt.Errorf("%w: acquire %s: %w", ErrConsul, cfg.Key, err)
		}
		if ok {
			return nil
		}
		for {
			held, meta, err := kv.Get(cfg.Key, (&api.QueryOptions{WaitIndex: index, WaitTime: DefaultWaitTime}).WithContext(ctx))
			if err != nil {
				return fmt.Errorf("%w: watch %s: %w", ErrConsul, cfg.Key, err)
			}
			index = nextIndex(index, meta.LastIndex)
			if held == nil || held.Session == "" {
				break
			}
		}
		// Free but refused: Consul's lock-delay after a holder's session
		// was lost. Try again shortly.
		wait(ctx, cfg.RetryWait)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// holdWhile returns when session id no longer holds the lock, or ctx
// ends.
func holdWhile(ctx context.Context, kv *api.KV, cfg LeaderConfig, id string) {
	var index uint64
	for {
		held, meta, err := kv.Get(cfg.Key, (&api.QueryOptions{WaitIndex: index, WaitTime: DefaultWaitTime}).WithContext(ctx))
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			// Keep leading through a blip; the session TTL decides.
			cfg.Logger.Warn("consul: watch leader lock", "key", cfg.Key, "err", err)
			wait(ctx, cfg.RetryWait)
			continue
		}
		if held == nil || held.Session != id {
			return
		}
		index = nextIndex(index, meta.LastIndex)
	}
}

// nextIndex applies Consul's rules for blocking-query indexes: start over
// when the index goes backwards, and never wait on index 0.
func nextIndex(prev, last uint64) uint64 {
	if last < prev {
		return 1
	}
	if last == 0 {
		return 1
	}
	return last
}

// lead runs work and hold side by side: work's context ends when hold
// returns (the lock is lost) or ctx ends. lead returns once work has.
func lead(ctx context.Context, work func(ctx context.Context), hold func(ctx context.Context)) {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	held := make(chan struct{})
	go func() {
		defer close(held)
		hold(wctx)
		cancel()
	}()
	work(wctx)
	cancel()
	<-held
}
