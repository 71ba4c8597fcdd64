package consul

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/pilothouse/pilothouse/controlplane/auth"
)

// DefaultAuthPrefix is where AuthKV keeps users, sessions and tokens.
const DefaultAuthPrefix = "pilothouse/auth/"

// AuthConfig configures an AuthKV. Zero values mean the defaults.
type AuthConfig struct {
	// Address and Token reach Consul as in Config.
	Address string
	Token   string
	// Prefix is the KV prefix, ending in "/"; DefaultAuthPrefix if empty.
	Prefix string
	// WaitTime is how long one blocking query waits; DefaultWaitTime if
	// zero.
	WaitTime time.Duration
}

// AuthKV keeps the control plane's users, sessions and API/agent tokens
// in Consul KV for auth.Store.Share: one key per row under the prefix
// (users/<name>, tokens/<id>, sessions/<user>/<hex of the ID's SHA-256>),
// JSON of the row's columns as the value: bcrypt hashes and digests,
// never a secret. It is safe for concurrent use.
type AuthKV struct {
	cfg    AuthConfig
	client *api.Client
}

var _ auth.Shared = (*AuthKV)(nil)

// NewAuthKV returns an AuthKV; it does not contact Consul.
func NewAuthKV(cfg AuthConfig) (*AuthKV, error) {
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultAuthPrefix
	}
	if !strings.HasSuffix(cfg.Prefix, "/") {
		cfg.Prefix += "/"
	}
	if cfg.WaitTime <= 0 {
		cfg.WaitTime = DefaultWaitTime
	}
	client, err := newClient(cfg.Address, cfg.Token)
	if err != nil {
		return nil, err
	}
	return &AuthKV{cfg: cfg, client: client}, nil
}

// Commit applies ops in one Consul transaction.
func (k *AuthKV) Commit(ctx context.Context, ops []auth.Op) error {
	if len(ops) == 0 {
		return nil
	}
	txn := make(api.TxnOps, 0, len(ops))
	for _, op := range ops {
		kv := &api.KVTxnOp{Key: k.cfg.Prefix + op.Key, Value: op.Value, Index: op.Index}
		switch op.Verb {
		case auth.OpCAS:
			kv.Verb = api.KVCAS
		case auth.OpDelete:
			kv.Verb = api.KVDelete
		case auth.OpDeleteCAS:
			kv.Verb = api.KVDeleteCAS
		case auth.OpDeleteTree:
			kv.Verb = api.KVDeleteTree
		case auth.OpCheckIndex:
			kv.Verb = api.KVCheckIndex
		default:
			return fmt.Errorf("consul: unknown auth op %q", op.Verb)
		}
		txn = append(txn, &api.TxnOp{KV: kv})
	}
	ok, resp, _, err := k.client.Txn().Txn(txn, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return fmt.Errorf("%w: consul: write %s: %w", auth.ErrUnavailable, k.cfg.Prefix, err)
	}
	if !ok {
		return fmt.Errorf("%w: consul: %s", auth.ErrConflict, txnErrors(resp))
	}
	return nil
}

// List reads every key under the prefix; with waitIndex > 0 it is a
// blocking query.
func (k *AuthKV) List(ctx context.Context, waitIndex uint64) (auth.Snapshot, error) {
	q := &api.QueryOptions{WaitIndex: waitIndex}
	if waitIndex > 0 {
		q.WaitTime = k.cfg.WaitTime
	} else {
		q.RequireConsistent = true
	}
	pairs, meta, err := k.client.KV().List(k.cfg.Prefix, q.WithContext(ctx))
	if err != nil {
		return auth.Snapshot{}, fmt.Errorf("%w: consul: list %s: %w", auth.ErrUnavailable, k.cfg.Prefix, err)
	}
	snap := auth.Snapshot{Index: nextIndex(waitIndex, meta.LastIndex), Entries: make([]auth.Entry, 0, len(pairs))}
	for _, p := range pairs {
		snap.Entries = append(snap.Entries, auth.Entry{Key: strings.TrimPrefix(p.Key, k.cfg.Prefix), Value: p.Value, Index: p.ModifyIndex})
	}
	return snap, nil
}
