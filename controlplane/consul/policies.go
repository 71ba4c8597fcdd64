package consul

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/pilothouse/pilothouse/agent/wire"
	"github.com/pilothouse/pilothouse/controlplane/policy"
)

// Defaults for Config.
const (
	DefaultPrefix    = "pilothouse/policies/"
	DefaultWaitTime  = 5 * time.Minute
	DefaultRetryWait = time.Second
)

// ErrConsul reports that Consul refused or failed a request.
var ErrConsul = fmt.Errorf("consul: request failed: %w", policy.ErrUnavailable)

// Config configures a PolicyStore. Zero values mean the defaults.
type Config struct {
	// Address is Consul's HTTP address (host:port); empty uses
	// CONSUL_HTTP_ADDR, else 127.0.0.1:8500.
	Address string
	// Token is the ACL token; empty uses CONSUL_HTTP_TOKEN.
	Token string
	// Prefix is the KV prefix, ending in "/".
	Prefix string
	// WaitTime is how long one blocking query waits (Consul caps it at
	// 10 minutes).
	WaitTime time.Duration
	// RetryWait is the pause after a failed blocking query before the
	// next, so an unreachable Consul is not hammered.
	RetryWait time.Duration
	// Now stamps audit records; nil means time.Now.
	Now func() time.Time
	// Logger receives watch errors; nil discards them.
	Logger *slog.Logger
}

// PolicyStore is the policy store of package policy over Consul KV. It
// implements the policyapi.Store interface. It is safe for concurrent use.
//
// It mirrors every service's current policy in memory, kept up to date by
// one blocking query on the heads (<prefix>_current/): reads never wait
// on Consul, and while Consul is unreachable they answer the last known
// policies (agents keep theirs, fail-static).
type PolicyStore struct {
	cfg    Config
	client *api.Client

	ctx    context.Context // ends the watcher
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	current map[string]wire.Policy
	// waiters is closed and replaced when a newer version of the service
	// is seen.
	waiters map[string]chan struct{}

	// beforeCommit, when set (by tests), runs between reading the head
	// and committing the transaction: the window a concurrent writer hits.
	beforeCommit func()
}

// headsDir holds one key per service with its current policy; it cannot
// clash with a service, whose name starts with a letter or digit.
const headsDir = "_current/"

// Open connects to Consul, reads every service's current policy and
// starts watching them.
func Open(ctx context.Context, cfg Config) (*PolicyStore, error) {
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if !strings.HasSuffix(cfg.Prefix, "/") {
		cfg.Prefix += "/"
	}
	if cfg.WaitTime <= 0 {
		cfg.WaitTime = DefaultWaitTime
	}
	if cfg.RetryWait <= 0 {
		cfg.RetryWait = DefaultRetryWait
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	client, err := newClient(cfg.Address, cfg.Token)
	if err != nil {
		return nil, err
	}
	s := &PolicyStore{cfg: cfg, client: client, current: map[string]wire.Policy{}, waiters: map[string]chan struct{}{}}
	index, err := s.readHeads(ctx, 0)
	if err != nil {
		return nil, fmt.Errorf("%w (at %s)", err, addressOf(cfg.Address))
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.wg.Add(1)
	go s.watch(index)
	return s, nil
}

// Close stops the watcher. Waiting long-polls are not woken.
func (s *PolicyStore) Close() error {
	s.cancel()
	s.wg.Wait()
	return nil
}

func (s *PolicyStore) headKey(service string) string { return s.cfg.Prefix + headsDir + service }

func (s *PolicyStore) versionsPrefix(service string) string {
	return s.cfg.Prefix + service + "/versions/"
}

func (s *PolicyStore) versionKey(service string, version int64) string {
	return fmt.Sprintf("%s%020d", s.versionsPrefix(service), version)
}

// observe records p as its service's current policy if it is newer than
// what this store holds, and wakes the service's waiters.
func (s *PolicyStore) observe(p wire.Policy) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.observeLocked(p)
}

func (s *PolicyStore) observeLocked(p wire.Policy) {
	if p.Version <= s.current[p.Service].Version {
		return
	}
	s.current[p.Service] = p
	if ch, ok := s.waiters[p.Service]; ok {
		close(ch)
		delete(s.waiters, p.Service)
	}
}

// readHeads reads every head; waitIndex > 0 makes it a blocking query
// that answers when a head changes past waitIndex. It returns the index
// to wait on next.
func (s *PolicyStore) readHeads(ctx context.Context, waitIndex uint64) (uint64, error) {
	q := &api.QueryOptions{WaitIndex: waitIndex}
	if waitIndex > 0 {
		q.WaitTime = s.cfg.WaitTime
	}
	pairs, meta, err := s.client.KV().List(s.cfg.Prefix+headsDir, q.WithContext(ctx))
	if err != nil {
		return 0, fmt.Errorf("%w: list %s: %w", ErrConsul, s.cfg.Prefix+headsDir, err)
	}
	heads := make([]wire.Policy, 0, len(pairs))
	for _, pair := range pairs {
		service := strings.TrimPrefix(pair.Key, s.cfg.Prefix+headsDir)
		p, err := decodeHead(service, pair)
		if err != nil {
			s.cfg.Logger.Warn("consul: skip corrupt head", "key", pair.Key, "err", err)
			continue
		}
		heads = append(heads, p)
	}
	s.mu.Lock()
	for _, p := range heads {
		s.observeLocked(p)
	}
	s.mu.Unlock()
	return nextIndex(waitIndex, meta.LastIndex), nil
}

// watch holds a blocking query on the heads until Close.
func (s *PolicyStore) watch(index uint64) {
	defer s.wg.Done()
	for {
		next, err := s.readHeads(s.ctx, index)
		if s.ctx.Err() != nil {
			return
		}
		if err != nil {
			s.cfg.Logger.Warn("consul: watch policies", "err", err)
			wait(s.ctx, s.cfg.RetryWait)
			continue
		}
		index = next
	}
}

// readHead reads service's current policy and its KV pair (nil when
// there is none).
func (s *PolicyStore) readHead(ctx context.Context, service string, q *api.QueryOptions) (wire.Policy, *api.KVPair, error) {
	pair, _, err := s.client.KV().Get(s.headKey(service), q.WithContext(ctx))
	if err != nil {
		return wire.Policy{}, nil, fmt.Errorf("%w: get %s: %w", ErrConsul, s.headKey(service), err)
	}
	p, err := decodeHead(service, pair)
	return p, pair, err
}

func decodeHead(service string, pair *api.KVPair) (wire.Policy, error) {
	if pair == nil {
		return wire.Policy{Service: service}, nil
	}
	var p wire.Policy
	if err := json.Unmarshal(pair.Value, &p); err != nil {
		return wire.Policy{}, fmt.Errorf("consul: stored policy of %s is corrupt: %w", service, err)
	}
	if p.Service != service {
		return wire.Policy{}, fmt.Errorf("consul: head of %s holds service %q", service, p.Service)
	}
	return p, nil
}

// Current returns the latest policy of service; version 0 and no rules
// when none was ever written.
func (s *PolicyStore) Current(service string) wire.Policy {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.currentLocked(service)
}

func (s *PolicyStore) currentLocked(service string) wire.Policy {
	if p, ok := s.current[service]; ok {
		return clonePolicy(p)
	}
	return wire.Policy{Service: service}
}

func (s *PolicyStore) waiterLocked(service string) chan struct{} {
	ch, ok := s.waiters[service]
	if !ok {
		ch = make(chan struct{})
		s.waiters[service] = ch
	}
	return ch
}

// Watch returns the current policy and a channel closed when a newer
// version is seen, written through this store or any other.
func (s *PolicyStore) Watch(service string) (wire.Policy, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.currentLocked(service), s.waiterLocked(service)
}

// WatchVersion is Watch without the copy of the policy.
func (s *PolicyStore) WatchVersion(service string) (int64, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.current[service].Version, s.waiterLocked(service)
}

// Services lists every service with a stored policy, sorted.
func (s *PolicyStore) Services() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.current))
	for name := range s.current {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// Put validates p and stores it as the next version of p.Service, if the
// current version is still base. It returns the stored policy.
func (s *PolicyStore) Put(ctx context.Context, p wire.Policy, base int64, by policy.Author) (wire.Policy, error) {
	return s.write(ctx, p, base, by, "update")
}

// Rollback stores the content of an earlier version as a new version.
func (s *PolicyStore) Rollback(ctx context.Context, service string, to, base int64, by policy.Author) (wire.Policy, error) {
	old, err := s.Version(ctx, service, to)
	if err != nil {
		return wire.Policy{}, err
	}
	if by.Reason == "" {
		by.Reason = fmt.Sprintf("rollback to version %d", to)
	}
	return s.write(ctx, old.Policy, base, by, "rollback")
}

func (s *PolicyStore) write(ctx context.Context, p wire.Policy, base int64, by policy.Author, action string) (wire.Policy, error) {
	if err := p.Validate(); err != nil {
		return wire.Policy{}, err
	}
	if by.Actor == "" {
		return wire.Policy{}, errors.New("consul: a change needs an actor")
	}
	cur, head, err := s.readHead(ctx, p.Service, &api.QueryOptions{RequireConsistent: true})
	if err != nil {
		return wire.Policy{}, err
	}
	if cur.Version != base {
		s.observe(cur)
		return wire.Policy{}, &policy.ConflictError{Service: p.Service, Base: base, Current: cur.Version}
	}
	var headIndex uint64
	if head != nil {
		headIndex = head.ModifyIndex
	}
	p.Version = cur.Version + 1
	doc, err := json.Marshal(p)
	if err != nil {
		return wire.Policy{}, fmt.Errorf("consul: encode: %w", err)
	}
	var stored wire.Policy
	if err := json.Unmarshal(doc, &stored); err != nil {
		return wire.Policy{}, fmt.Errorf("consul: decode: %w", err)
	}
	var before any
	if cur.Version > 0 {
		before = withoutVersion(cur)
	}
	change := policy.Change{
		Service: p.Service, Version: p.Version, Time: s.cfg.Now().UTC(),
		Actor: by.Actor, Remote: by.Remote, Action: action, Reason: by.Reason,
		Diff: policy.Diff(before, withoutVersion(stored)), Policy: stored,
	}
	record, err := json.Marshal(change)
	if err != nil {
		return wire.Policy{}, fmt.Errorf("consul: encode: %w", err)
	}
	versionKey := s.versionKey(p.Service, p.Version)
	ops := api.TxnOps{
		// Index 0 means "only if the key does not exist yet".
		{KV: &api.KVTxnOp{Verb: api.KVCAS, Key: s.headKey(p.Service), Value: doc, Index: headIndex}},
		{KV: &api.KVTxnOp{Verb: api.KVCheckNotExists, Key: versionKey}},
		{KV: &api.KVTxnOp{Verb: api.KVSet, Key: versionKey, Value: record}},
	}
	if s.beforeCommit != nil {
		s.beforeCommit()
	}
	ok, resp, _, err := s.client.Txn().Txn(ops, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return wire.Policy{}, fmt.Errorf("%w: write %s version %d: %w", ErrConsul, p.Service, p.Version, err)
	}
	if !ok {
		// Someone else wrote first: report what is current now.
		now, _, rerr := s.readHead(ctx, p.Service, &api.QueryOptions{RequireConsistent: true})
		if rerr == nil && now.Version != cur.Version {
			s.observe(now)
			return wire.Policy{}, &policy.ConflictError{Service: p.Service, Base: base, Current: now.Version}
		}
		return wire.Policy{}, fmt.Errorf("%w: write %s version %d rolled back: %s", ErrConsul, p.Service, p.Version, txnErrors(resp))
	}
	s.observe(stored)
	return clonePolicy(stored), nil
}

func txnErrors(resp *api.TxnResponse) string {
	if resp == nil || len(resp.Errors) == 0 {
		return "no reason given"
	}
	msgs := make([]string, 0, len(resp.Errors))
	for _, e := range resp.Errors {
		msgs = append(msgs, fmt.Sprintf("op %d: %s", e.OpIndex, e.What))
	}
	return strings.Join(msgs, "; ")
}

// Version returns one stored version.
func (s *PolicyStore) Version(ctx context.Context, service string, version int64) (policy.Change, error) {
	pair, _, err := s.client.KV().Get(s.versionKey(service, version), (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return policy.Change{}, fmt.Errorf("%w: get %s version %d: %w", ErrConsul, service, version, err)
	}
	if pair == nil {
		return policy.Change{}, fmt.Errorf("%w: %s version %d", policy.ErrNotFound, service, version)
	}
	return decodeChange(pair)
}

func decodeChange(pair *api.KVPair) (policy.Change, error) {
	var c policy.Change
	if err := json.Unmarshal(pair.Value, &c); err != nil {
		return policy.Change{}, fmt.Errorf("consul: stored version %s is corrupt: %w", pair.Key, err)
	}
	return c, nil
}

// History returns service's versions, newest first, at most limit (0 =
// all). With a limit it reads only the newest limit records.
func (s *PolicyStore) History(ctx context.Context, service string, limit int) ([]policy.Change, error) {
	if limit <= 0 {
		return s.allHistory(ctx, service)
	}
	keys, _, err := s.client.KV().Keys(s.versionsPrefix(service), "", (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("%w: history of %s: %w", ErrConsul, service, err)
	}
	// Zero-padded version numbers sort as numbers: the newest are last.
	sort.Strings(keys)
	if len(keys) > limit {
		keys = keys[len(keys)-limit:]
	}
	slices.Reverse(keys)
	out := make([]policy.Change, 0, len(keys))
	for chunk := range slices.Chunk(keys, maxTxnOps) {
		ops := make(api.TxnOps, 0, len(chunk))
		for _, k := range chunk {
			ops = append(ops, &api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVGet, Key: k}})
		}
		ok, resp, _, err := s.client.Txn().Txn(ops, (&api.QueryOptions{}).WithContext(ctx))
		if err != nil {
			return nil, fmt.Errorf("%w: history of %s: %w", ErrConsul, service, err)
		}
		if !ok {
			// A record vanished between the two reads: read them all.
			return s.allHistory(ctx, service)
		}
		for _, r := range resp.Results {
			c, err := decodeChange(r.KV)
			if err != nil {
				return nil, err
			}
			out = append(out, c)
		}
	}
	return out, nil
}

// maxTxnOps is how many operations one Consul transaction may hold.
const maxTxnOps = 64

func (s *PolicyStore) allHistory(ctx context.Context, service string) ([]policy.Change, error) {
	pairs, _, err := s.client.KV().List(s.versionsPrefix(service), (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("%w: history of %s: %w", ErrConsul, service, err)
	}
	out := make([]policy.Change, 0, len(pairs))
	for _, pair := range pairs {
		c, err := decodeChange(pair)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version > out[j].Version })
	return out, nil
}

// withoutVersion hides the version number so diffs show only rule changes.
func withoutVersion(p wire.Policy) wire.Policy {
	p.Version = 0
	return p
}

// clonePolicy deep-copies p through its JSON form, which holds every
// field, so callers may change what they get.
func clonePolicy(p wire.Policy) wire.Policy {
	b, err := json.Marshal(p)
	if err != nil {
		return p
	}
	var out wire.Policy
	if err := json.Unmarshal(b, &out); err != nil {
		return p
	}
	return out
}
