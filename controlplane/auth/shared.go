package auth

import (
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"time"
)

// Errors of a Shared store.
var (
	// ErrUnavailable means the shared store refused or could not be
	// reached: the change was not made, here or anywhere.
	ErrUnavailable = errors.New("auth: shared store unavailable")
	// ErrConflict means a check of a Commit failed: another replica
	// changed a row first. Nothing was changed.
	ErrConflict = errors.New("auth: changed concurrently by another replica")
)

// Verb is what an Op does.
type Verb string

// Verbs of Op. Index is the ModifyIndex a check compares with.
const (
	// OpCAS sets Key to Value if its ModifyIndex is Index; Index 0 means
	// only if Key does not exist (create-only).
	OpCAS Verb = "cas"
	// OpDelete deletes Key; a missing key is not an error.
	OpDelete Verb = "delete"
	// OpDeleteCAS deletes Key if its ModifyIndex is Index.
	OpDeleteCAS Verb = "delete-cas"
	// OpDeleteTree deletes every key starting with Key.
	OpDeleteTree Verb = "delete-tree"
	// OpCheckIndex fails the Commit unless Key's ModifyIndex is Index.
	OpCheckIndex Verb = "check-index"
)

// Op is one operation of a Commit. Keys are relative to the shared
// store's prefix.
type Op struct {
	Verb  Verb
	Key   string
	Value []byte
	Index uint64
}

// Entry is one key of a Snapshot with its value and ModifyIndex.
type Entry struct {
	Key   string
	Value []byte
	Index uint64
}

// Snapshot is every key of the shared store at Index.
type Snapshot struct {
	Entries []Entry
	Index   uint64
}

// Shared is where a Store's users, sessions and tokens live when several
// control-plane replicas share them (package consul implements it over
// Consul KV). The Store keeps its SQLite file as the local copy every
// read uses, and sends every change through Shared.
//
// Values are JSON of a row's columns: bcrypt hashes and SHA-256 digests,
// never a password, session ID or token in clear.
type Shared interface {
	// Commit applies ops atomically: all of them or none. A failed check
	// gives an error wrapping ErrConflict; an unreachable or refusing
	// store one wrapping ErrUnavailable.
	Commit(ctx context.Context, ops []Op) error
	// List reads every key. waitIndex 0 reads at once (consistently);
	// otherwise it is a blocking query that answers when something
	// changed past waitIndex, or after the store's wait time. Errors
	// wrap ErrUnavailable.
	List(ctx context.Context, waitIndex uint64) (Snapshot, error)
}

// Keys in the shared store.
const (
	keyUsers    = "users/"
	keyTokens   = "tokens/"
	keySessions = "sessions/" // sessions/<user>/<hex of the ID's digest>
	// keySeeded marks a shared store that holds the rows: created (with
	// check-and-set) by the first replica, which pushes its own rows.
	keySeeded = "_seeded"
)

func userKey(name string) string { return keyUsers + name }
func tokenKey(id string) string  { return keyTokens + id }
func sessionKey(user string, digest []byte) string {
	return keySessions + user + "/" + hex.EncodeToString(digest)
}
func userSessionsKey(user string) string { return keySessions + user + "/" }

// Row records in the shared store.
type (
	userRecord struct {
		Role      string `json:"role"`
		Hash      string `json:"bcrypt"`
		Disabled  bool   `json:"disabled,omitempty"`
		CreatedNS int64  `json:"created_ns"`
		UpdatedNS int64  `json:"updated_ns"`
	}
	tokenRecord struct {
		Kind       string   `json:"kind"`
		Name       string   `json:"name"`
		Role       string   `json:"role,omitempty"`
		Services   []string `json:"services,omitempty"`
		Digest     string   `json:"sha256"`
		CreatedBy  string   `json:"created_by"`
		CreatedNS  int64    `json:"created_ns"`
		LastUsedNS int64    `json:"last_used_ns,omitempty"`
		RevokedNS  int64    `json:"revoked_ns,omitempty"`
	}
	sessionRecord struct {
		CreatedNS int64 `json:"created_ns"`
		SeenNS    int64 `json:"seen_ns"`
	}
)

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		// The records hold strings and numbers only.
		panic(err)
	}
	return b
}

// Replication tuning.
const (
	// retryFirst and retryMax bound the back-off of the watcher after a
	// failed blocking query.
	retryFirst = time.Second
	retryMax   = 30 * time.Second
	// commitTries is how often a change is tried when another replica
	// changed the same rows first (a last-used touch, say).
	commitTries = 5
	// touchQueue bounds the last-used/last-seen writes waiting to be
	// shared; more are dropped (the next one, a minute later, carries
	// the time).
	touchQueue = 256
	// maxOps is how many operations one Commit may hold (Consul's
	// transaction limit).
	maxOps = 64
	// missRefreshBurst and missRefreshEvery bound how often lookups that
	// find nothing read the shared store (refreshOnMiss): a burst of 10,
	// then one every 100 ms, per replica, whatever unknown cookies or
	// tokens are sent.
	missRefreshBurst = 10
	missRefreshEvery = 100 * time.Millisecond
)

// replication is the Store's state when it is shared.
type replication struct {
	shared Shared
	log    *slog.Logger

	mu sync.Mutex
	// known is the ModifyIndex of every key applied to the local copy
	// (0: a local row not yet matched with the shared store).
	known map[string]uint64
	// applied is the index of the last snapshot applied.
	applied uint64
	// seeded is the ModifyIndex of the seed marker: every change checks
	// it, so none lands in a shared store that lost its rows.
	seeded uint64

	touches chan touchJob
	// misses bounds the reads of the shared store that lookups finding
	// nothing cause (refreshOnMiss).
	misses *Limiter
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// touchJob shares a last-used/last-seen time (or an expiry) of one key.
type touchJob struct {
	key    string
	expire bool
}

// Share makes the store one replica of the users, sessions and tokens
// kept in sh. Call it once, right after Open and before any other use.
//
// If sh has never held rows, this replica's local rows are pushed to it
// (so a single control plane keeps its users when it gets replicas);
// otherwise sh is the truth and local rows it lacks are removed. Then a
// watcher applies what other replicas change, until Close. From then on
// every change goes to sh first and fails, changing nothing, when sh
// refuses it or cannot be reached; reads stay local.
func (s *Store) Share(ctx context.Context, sh Shared, log *slog.Logger) error {
	if s.rep != nil {
		return errors.New("auth: Share called twice")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &replication{shared: sh, log: log, known: map[string]uint64{}, touches: make(chan touchJob, touchQueue),
		misses: NewLimiter(missRefreshEvery, missRefreshBurst, 1)}
	local, err := s.localRecords(ctx)
	if err != nil {
		return err
	}
	for _, e := range local {
		r.known[e.Key] = 0
	}
	snap, err := sh.List(ctx, 0)
	if err != nil {
		return err
	}
	if !seeded(snap) {
		if err := s.seed(ctx, sh, local, log); err != nil {
			return err
		}
		if snap, err = sh.List(ctx, 0); err != nil {
			return err
		}
	}
	s.rep = r
	if err := s.apply(ctx, snap, false); err != nil {
		s.rep = nil
		return err
	}
	wctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	r.wg.Add(2)
	go s.watch(wctx, snap.Index)
	go s.shareTouches(wctx)
	return nil
}

func (r *replication) stop() {
	r.cancel()
	r.wg.Wait()
}

func seeded(snap Snapshot) bool { return seedIndex(snap) != 0 }

func seedIndex(snap Snapshot) uint64 {
	for _, e := range snap.Entries {
		if e.Key == keySeeded {
			return e.Index
		}
	}
	return 0
}

// seed pushes local rows to an unseeded shared store: the marker and the
// first rows (users first) in one create-only transaction, so of two
// replicas seeding at once exactly one does; the rest in further ones.
func (s *Store) seed(ctx context.Context, sh Shared, local []Entry, log *slog.Logger) error {
	ops := []Op{{Verb: OpCAS, Key: keySeeded, Value: []byte(`{"v":1}`)}}
	for _, e := range local {
		ops = append(ops, Op{Verb: OpCAS, Key: e.Key, Value: e.Value})
	}
	first := ops[:min(len(ops), maxOps)]
	err := sh.Commit(ctx, first)
	if errors.Is(err, ErrConflict) {
		// Another replica seeded first, or rows exist without the
		// marker: the shared rows are the truth; make sure of the marker.
		if err := sh.Commit(ctx, ops[:1]); err != nil && !errors.Is(err, ErrConflict) {
			return err
		}
		log.Info("auth: users, sessions and tokens are shared; the local copy follows them")
		return nil
	}
	if err != nil {
		return err
	}
	for rest := ops[len(first):]; len(rest) > 0; {
		chunk := rest[:min(len(rest), maxOps)]
		rest = rest[len(chunk):]
		if err := sh.Commit(ctx, chunk); err != nil {
			if !errors.Is(err, ErrConflict) {
				return err
			}
			log.Warn("auth: seeding the shared store: some rows existed already", "err", err)
		}
	}
	log.Info("auth: seeded the shared store with this replica's users, sessions and tokens", "rows", len(local))
	return nil
}

// localRecords returns every local row as its shared key and value.
func (s *Store) localRecords(ctx context.Context) ([]Entry, error) {
	var out []Entry
	rows, err := s.db.QueryContext(ctx, `SELECT name, role, hash, disabled, created_ns, updated_ns FROM users ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("auth: read users: %w", err)
	}
	for rows.Next() {
		var (
			name string
			rec  userRecord
			hash []byte
		)
		if err := rows.Scan(&name, &rec.Role, &hash, &rec.Disabled, &rec.CreatedNS, &rec.UpdatedNS); err != nil {
			rows.Close()
			return nil, fmt.Errorf("auth: read users: %w", err)
		}
		rec.Hash = string(hash)
		out = append(out, Entry{Key: userKey(name), Value: mustJSON(rec)})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("auth: read users: %w", err)
	}
	ids, err := s.queryStrings(ctx, "read tokens", `SELECT id FROM tokens ORDER BY created_ns`)
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		v, err := s.tokenValue(ctx, id)
		if err != nil {
			return nil, err
		}
		out = append(out, Entry{Key: tokenKey(id), Value: v})
	}
	rows, err = s.db.QueryContext(ctx, `SELECT id_hash, user, created_ns, seen_ns FROM sessions`)
	if err != nil {
		return nil, fmt.Errorf("auth: read sessions: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			d    []byte
			user string
			rec  sessionRecord
		)
		if err := rows.Scan(&d, &user, &rec.CreatedNS, &rec.SeenNS); err != nil {
			return nil, fmt.Errorf("auth: read sessions: %w", err)
		}
		out = append(out, Entry{Key: sessionKey(user, d), Value: mustJSON(rec)})
	}
	return out, rows.Err()
}

// queryStrings runs a query of one text column and returns its values,
// with its rows closed (the database's one connection is then free
// again).
func (s *Store) queryStrings(ctx context.Context, what, q string, args ...any) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("auth: %s: %w", what, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("auth: %s: %w", what, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("auth: %s: %w", what, err)
	}
	return out, nil
}

func (s *Store) tokenValue(ctx context.Context, id string) ([]byte, error) {
	var (
		rec      tokenRecord
		services string
		d        []byte
	)
	err := s.db.QueryRowContext(ctx, `SELECT kind, name, role, services, hash, created_by, created_ns, last_used_ns, revoked_ns FROM tokens WHERE id = ?`, id).
		Scan(&rec.Kind, &rec.Name, &rec.Role, &services, &d, &rec.CreatedBy, &rec.CreatedNS, &rec.LastUsedNS, &rec.RevokedNS)
	if err != nil {
		return nil, fmt.Errorf("auth: read token %s: %w", id, err)
	}
	if services != "" {
		rec.Services = strings.Split(services, ",")
	}
	rec.Digest = hex.EncodeToString(d)
	return mustJSON(rec), nil
}

// watch holds one blocking query on the shared store until ctx ends and
// applies each answer. After a failure it waits, doubling the wait up to
// retryMax.
func (s *Store) watch(ctx context.Context, index uint64) {
	r := s.rep
	defer r.wg.Done()
	retry := retryFirst
	for {
		snap, err := r.shared.List(ctx, index)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			r.log.Warn("auth: watch shared users, sessions and tokens", "err", err, "retry_in", retry)
			pause(ctx, retry)
			retry = min(2*retry, retryMax)
			continue
		}
		// An index going backwards means the shared store was rebuilt:
		// apply what it holds now rather than skip it as old.
		err = s.apply(ctx, snap, snap.Index < index)
		if errors.Is(err, errNotSeeded) {
			// Wait for the next change rather than spin on this one.
			r.log.Error("auth: watch shared users, sessions and tokens", "err", err)
		} else if err != nil && ctx.Err() == nil {
			r.log.Warn("auth: apply shared users, sessions and tokens", "err", err, "retry_in", retry)
			pause(ctx, retry)
			retry = min(2*retry, retryMax)
			continue
		}
		retry, index = retryFirst, snap.Index
	}
}

func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// errNotSeeded refuses a snapshot without the seed marker.
var errNotSeeded = fmt.Errorf("%w: it lost its users, sessions and tokens (no seed marker): keeping the local copy; restart a replica to seed it again", ErrUnavailable)

// refreshOnMiss reads the shared store once more for a session or token
// this replica does not know, and reports whether it did: one made on
// another replica a moment ago may not be applied here yet (the watcher
// is some milliseconds behind), and a browser sent back from a sign-in on
// replica A may ask replica B at once. The reads are rate limited, so
// made-up cookies or tokens cannot turn into load on the shared store.
func (s *Store) refreshOnMiss(ctx context.Context) bool {
	if s.rep == nil {
		return false
	}
	if ok, _ := s.rep.misses.Allow("", time.Now()); !ok {
		return false
	}
	if err := s.refresh(ctx); err != nil {
		s.rep.log.Warn("auth: read the shared store for an unknown session or token", "err", err)
		return false
	}
	return true
}

// refresh reads the shared store now and applies it: after a change, so
// the caller reads its own write, and after a conflict.
func (s *Store) refresh(ctx context.Context) error {
	snap, err := s.rep.shared.List(ctx, 0)
	if err != nil {
		return err
	}
	return s.apply(ctx, snap, false)
}

// apply makes the local copy what snap holds: changed keys are written,
// local rows whose keys are gone are deleted. An older snapshot than the
// last applied is skipped unless force. A snapshot without the seed
// marker is refused: an emptied shared store must not sign everyone out
// and delete every user here (a restart seeds it again from this copy).
func (s *Store) apply(ctx context.Context, snap Snapshot, force bool) error {
	r := s.rep
	r.mu.Lock()
	defer r.mu.Unlock()
	if !force && snap.Index <= r.applied && r.applied != 0 {
		return nil
	}
	if !seeded(snap) {
		return errNotSeeded
	}
	if force {
		for k := range r.known {
			r.known[k] = 0
		}
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("auth: apply: %w", err)
	}
	defer tx.Rollback()
	present := make(map[string]bool, len(snap.Entries))
	known := make(map[string]uint64, len(snap.Entries))
	// Users before the tokens and sessions that name them.
	for _, pass := range []string{keyUsers, keyTokens, keySessions} {
		for _, e := range snap.Entries {
			if !strings.HasPrefix(e.Key, pass) {
				continue
			}
			present[e.Key] = true
			if idx, ok := r.known[e.Key]; ok && idx == e.Index && idx != 0 {
				known[e.Key] = idx
				continue
			}
			if err := applyEntry(ctx, tx, e); err != nil {
				r.log.Warn("auth: skip shared row", "key", e.Key, "err", err)
				continue
			}
			known[e.Key] = e.Index
		}
	}
	// Sessions before users (a user's deletion cascades anyway).
	for _, pass := range []string{keySessions, keyTokens, keyUsers} {
		for k := range r.known {
			if strings.HasPrefix(k, pass) && !present[k] {
				if err := deleteEntry(ctx, tx, k); err != nil {
					return err
				}
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("auth: apply: %w", err)
	}
	r.known, r.applied, r.seeded = known, snap.Index, seedIndex(snap)
	return nil
}

func applyEntry(ctx context.Context, tx *sql.Tx, e Entry) error {
	switch {
	case strings.HasPrefix(e.Key, keyUsers):
		name := strings.TrimPrefix(e.Key, keyUsers)
		var rec userRecord
		if err := json.Unmarshal(e.Value, &rec); err != nil {
			return err
		}
		if !ValidName(name) || !Role(rec.Role).Valid() || rec.Hash == "" {
			return fmt.Errorf("%w: user record", ErrInvalid)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO users (name, role, hash, disabled, created_ns, updated_ns) VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT(name) DO UPDATE SET role = excluded.role, hash = excluded.hash, disabled = excluded.disabled,
			created_ns = excluded.created_ns, updated_ns = excluded.updated_ns`,
			name, rec.Role, []byte(rec.Hash), rec.Disabled, rec.CreatedNS, rec.UpdatedNS)
		return err
	case strings.HasPrefix(e.Key, keyTokens):
		id := strings.TrimPrefix(e.Key, keyTokens)
		var rec tokenRecord
		if err := json.Unmarshal(e.Value, &rec); err != nil {
			return err
		}
		d, err := hex.DecodeString(rec.Digest)
		if err != nil || len(d) != 32 || id == "" {
			return fmt.Errorf("%w: token record", ErrInvalid)
		}
		// A revoked token stays revoked whatever a record says.
		_, err = tx.ExecContext(ctx, `INSERT INTO tokens (id, kind, name, role, services, hash, created_by, created_ns, last_used_ns, revoked_ns)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT(id) DO UPDATE SET kind = excluded.kind, name = excluded.name, role = excluded.role, services = excluded.services,
			hash = excluded.hash, created_by = excluded.created_by, created_ns = excluded.created_ns,
			last_used_ns = max(tokens.last_used_ns, excluded.last_used_ns),
			revoked_ns = CASE WHEN tokens.revoked_ns != 0 THEN tokens.revoked_ns ELSE excluded.revoked_ns END`,
			id, rec.Kind, rec.Name, rec.Role, strings.Join(rec.Services, ","), d, rec.CreatedBy, rec.CreatedNS, rec.LastUsedNS, rec.RevokedNS)
		return err
	case strings.HasPrefix(e.Key, keySessions):
		user, d, err := parseSessionKey(e.Key)
		if err != nil {
			return err
		}
		var rec sessionRecord
		if err := json.Unmarshal(e.Value, &rec); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO sessions (id_hash, user, created_ns, seen_ns) VALUES (?, ?, ?, ?)
			ON CONFLICT(id_hash) DO UPDATE SET user = excluded.user, created_ns = excluded.created_ns,
			seen_ns = max(sessions.seen_ns, excluded.seen_ns)`, d, user, rec.CreatedNS, rec.SeenNS)
		return err
	}
	return fmt.Errorf("%w: unknown key", ErrInvalid)
}

func parseSessionKey(key string) (user string, d []byte, err error) {
	user, h, ok := strings.Cut(strings.TrimPrefix(key, keySessions), "/")
	if !ok {
		return "", nil, fmt.Errorf("%w: session key", ErrInvalid)
	}
	d, err = hex.DecodeString(h)
	if err != nil || len(d) != 32 {
		return "", nil, fmt.Errorf("%w: session key", ErrInvalid)
	}
	return user, d, nil
}

func deleteEntry(ctx context.Context, tx *sql.Tx, key string) error {
	var err error
	switch {
	case strings.HasPrefix(key, keyUsers):
		_, err = tx.ExecContext(ctx, `DELETE FROM users WHERE name = ?`, strings.TrimPrefix(key, keyUsers))
	case strings.HasPrefix(key, keyTokens):
		_, err = tx.ExecContext(ctx, `DELETE FROM tokens WHERE id = ?`, strings.TrimPrefix(key, keyTokens))
	case strings.HasPrefix(key, keySessions):
		_, d, perr := parseSessionKey(key)
		if perr != nil {
			return nil
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM sessions WHERE id_hash = ?`, d)
	}
	if err != nil {
		return fmt.Errorf("auth: apply: delete %s: %w", key, err)
	}
	return nil
}

// versions is the ModifyIndex of every shared key as applied here
// (missing: 0, unknown).
type versions map[string]uint64

// versions returns the applied indexes now. A change takes them before it
// reads the rows it relies on: apply writes rows before it records their
// indexes, so a row read afterwards is at least as new as its index here,
// and a check on that index can never pass for a change the row read did
// not see (it conflicts instead, and the change is built again).
func (s *Store) versions() versions {
	s.rep.mu.Lock()
	defer s.rep.mu.Unlock()
	return maps.Clone(s.rep.known)
}

// mutate sends a change to the shared store: build computes the ops from
// the local copy (nil: nothing to do), checking the indexes v of the keys
// it relies on (taken before it reads any row), they are committed, and
// the local copy is refreshed. On a conflict the local copy is refreshed
// and build runs again, up to commitTries times.
func (s *Store) mutate(ctx context.Context, what string, build func(v versions) ([]Op, error)) error {
	var err error
	for range commitTries {
		var ops []Op
		ops, err = build(s.versions())
		if err != nil || ops == nil {
			return err
		}
		s.rep.mu.Lock()
		ops = append(ops, Op{Verb: OpCheckIndex, Key: keySeeded, Index: s.rep.seeded})
		s.rep.mu.Unlock()
		err = s.rep.shared.Commit(ctx, ops)
		if err == nil {
			if err := s.refresh(ctx); err != nil {
				return fmt.Errorf("auth: %s: made, but not yet applied on this replica: %w", what, err)
			}
			return nil
		}
		if !errors.Is(err, ErrConflict) {
			return fmt.Errorf("auth: %s: %w", what, err)
		}
		if rerr := s.refresh(ctx); rerr != nil {
			return fmt.Errorf("auth: %s: %w", what, rerr)
		}
	}
	return fmt.Errorf("auth: %s: %w", what, err)
}

// queueTouch shares a last-seen/last-used time, or an expiry, off the
// request path; when the queue is full it is dropped.
func (s *Store) queueTouch(j touchJob) {
	select {
	case s.rep.touches <- j:
	default:
	}
}

// shareTouches writes queued touches with a check-and-set on the index
// the local row was read at: a touch never overwrites a newer change (a
// revocation, a logout) made by another replica.
func (s *Store) shareTouches(ctx context.Context) {
	r := s.rep
	defer r.wg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-r.touches:
			if err := s.shareTouch(ctx, j); err != nil && !errors.Is(err, ErrConflict) && ctx.Err() == nil {
				r.log.Warn("auth: share last-used time", "key", j.key, "err", err)
			}
		}
	}
}

func (s *Store) shareTouch(ctx context.Context, j touchJob) error {
	r := s.rep
	r.mu.Lock()
	idx := r.known[j.key]
	var (
		op  Op
		err error
	)
	switch {
	case idx == 0:
	case j.expire:
		op = Op{Verb: OpDeleteCAS, Key: j.key, Index: idx}
	case strings.HasPrefix(j.key, keyTokens):
		var v []byte
		v, err = s.tokenValue(ctx, strings.TrimPrefix(j.key, keyTokens))
		op = Op{Verb: OpCAS, Key: j.key, Value: v, Index: idx}
	case strings.HasPrefix(j.key, keySessions):
		var (
			rec sessionRecord
			d   []byte
		)
		if _, d, err = parseSessionKey(j.key); err == nil {
			err = s.db.QueryRowContext(ctx, `SELECT created_ns, seen_ns FROM sessions WHERE id_hash = ?`, d).Scan(&rec.CreatedNS, &rec.SeenNS)
		}
		op = Op{Verb: OpCAS, Key: j.key, Value: mustJSON(rec), Index: idx}
	}
	r.mu.Unlock()
	if err != nil || op.Verb == "" {
		return err
	}
	return r.shared.Commit(ctx, []Op{op})
}
