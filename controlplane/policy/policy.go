// Package policy keeps every version of every service's policy with an
// audit record per change, detects concurrent edits, and wakes agents
// long-polling for a newer version the moment one is written.
//
// Versions are never overwritten: a change or a rollback writes a new
// version. The store is a SQLite database (pure Go) written with
// synchronous=FULL: an acknowledged policy write survives a crash.
package policy

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	_ "modernc.org/sqlite" // database/sql driver "sqlite"

	"github.com/pilothouse/pilothouse/agent/wire"
)

// Errors returned by Store.
var (
	ErrConflict = errors.New("policy: version conflict")
	ErrNotFound = errors.New("policy: version not found")
	// ErrUnavailable marks a backend (such as Consul) that cannot be
	// reached right now; the HTTP layer answers 503 with Retry-After.
	ErrUnavailable = errors.New("policy: store unavailable")
)

// ConflictError says which version is current when an edit was based on
// an older one.
type ConflictError struct {
	Service string
	Base    int64
	Current int64
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("policy: %s was edited from version %d but the current version is %d", e.Service, e.Base, e.Current)
}

// Unwrap lets errors.Is(err, ErrConflict) match.
func (e *ConflictError) Unwrap() error { return ErrConflict }

// Change is one stored version with its audit record.
type Change struct {
	Service string      `json:"service"`
	Version int64       `json:"version"`
	Time    time.Time   `json:"time"`
	Actor   string      `json:"actor"`
	Remote  string      `json:"remote,omitempty"`
	Action  string      `json:"action"` // "update" or "rollback"
	Reason  string      `json:"reason,omitempty"`
	Diff    string      `json:"diff"`
	Policy  wire.Policy `json:"policy"`
}

// Author says who makes a change, from where and why.
type Author struct {
	Actor  string
	Remote string
	Reason string
}

// Store holds policy versions. It is safe for concurrent use.
type Store struct {
	db  *sql.DB
	now func() time.Time

	mu      sync.Mutex
	current map[string]wire.Policy
	// waiters is closed and replaced when the service's policy changes.
	waiters map[string]chan struct{}
}

// Open opens or creates the policy database in dir. now may be nil.
func Open(dir string, now func() time.Time) (*Store, error) {
	if now == nil {
		now = time.Now
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	dsn := "file:" + filepath.Join(dir, "policy.db") +
		"?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(5000)&_pragma=foreign_keys(ON)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("policy: open: %w", err)
	}
	db.SetMaxOpenConns(1)
	const schema = `
CREATE TABLE IF NOT EXISTS policy_versions (
	service TEXT NOT NULL,
	version INTEGER NOT NULL,
	time_ns INTEGER NOT NULL,
	actor   TEXT NOT NULL,
	remote  TEXT NOT NULL,
	action  TEXT NOT NULL,
	reason  TEXT NOT NULL,
	diff    TEXT NOT NULL,
	doc     TEXT NOT NULL,
	PRIMARY KEY (service, version)
) WITHOUT ROWID;`
	if _, err := db.Exec(schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("policy: schema: %w", err)
	}
	s := &Store{db: db, now: now, current: map[string]wire.Policy{}, waiters: map[string]chan struct{}{}}
	if err := s.loadCurrent(); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the database. Waiting long-polls are not woken.
func (s *Store) Close() error { return s.db.Close() }

func (s *Store) loadCurrent() error {
	rows, err := s.db.Query(`SELECT doc FROM policy_versions p WHERE version = (SELECT MAX(version) FROM policy_versions WHERE service = p.service)`)
	if err != nil {
		return fmt.Errorf("policy: load: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var doc string
		if err := rows.Scan(&doc); err != nil {
			return fmt.Errorf("policy: load: %w", err)
		}
		var p wire.Policy
		if err := json.Unmarshal([]byte(doc), &p); err != nil {
			return fmt.Errorf("policy: load: stored policy is corrupt: %w", err)
		}
		s.current[p.Service] = p
	}
	return rows.Err()
}

// Current returns the latest policy of service; version 0 and no rules
// when none was ever written.
func (s *Store) Current(service string) wire.Policy {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.currentLocked(service)
}

// currentLocked returns a deep copy, so callers may change what they get.
func (s *Store) currentLocked(service string) wire.Policy {
	if p, ok := s.current[service]; ok {
		return clonePolicy(p)
	}
	return wire.Policy{Service: service}
}

// clonePolicy deep-copies p through its JSON form, which holds every field.
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

// Services lists every service with a stored policy, sorted.
func (s *Store) Services() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.current))
	for name := range s.current {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// Watch returns the current policy and a channel closed at the next change
// of service's policy. A long-poll waits on it.
func (s *Store) Watch(service string) (wire.Policy, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, ok := s.waiters[service]
	if !ok {
		ch = make(chan struct{})
		s.waiters[service] = ch
	}
	return s.currentLocked(service), ch
}

// WatchVersion is Watch without the copy of the policy: the current
// version number and the channel closed at the next change.
func (s *Store) WatchVersion(service string) (int64, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, ok := s.waiters[service]
	if !ok {
		ch = make(chan struct{})
		s.waiters[service] = ch
	}
	return s.current[service].Version, ch
}

// Put validates p and stores it as the next version of p.Service, if the
// current version is still base. It returns the stored policy.
func (s *Store) Put(ctx context.Context, p wire.Policy, base int64, by Author) (wire.Policy, error) {
	return s.write(ctx, p, base, by, "update")
}

// Rollback stores the content of an earlier version as a new version.
func (s *Store) Rollback(ctx context.Context, service string, to, base int64, by Author) (wire.Policy, error) {
	old, err := s.Version(ctx, service, to)
	if err != nil {
		return wire.Policy{}, err
	}
	if by.Reason == "" {
		by.Reason = fmt.Sprintf("rollback to version %d", to)
	}
	return s.write(ctx, old.Policy, base, by, "rollback")
}

func (s *Store) write(ctx context.Context, p wire.Policy, base int64, by Author, action string) (wire.Policy, error) {
	if err := p.Validate(); err != nil {
		return wire.Policy{}, err
	}
	if by.Actor == "" {
		return wire.Policy{}, errors.New("policy: a change needs an actor")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.currentLocked(p.Service)
	if cur.Version != base {
		return wire.Policy{}, &ConflictError{Service: p.Service, Base: base, Current: cur.Version}
	}
	p.Version = cur.Version + 1
	doc, err := json.Marshal(p)
	if err != nil {
		return wire.Policy{}, fmt.Errorf("policy: encode: %w", err)
	}
	var before any
	if cur.Version > 0 {
		before = withoutVersion(cur)
	}
	diff := Diff(before, withoutVersion(p))
	_, err = s.db.ExecContext(ctx, `INSERT INTO policy_versions (service, version, time_ns, actor, remote, action, reason, diff, doc) VALUES (?,?,?,?,?,?,?,?,?)`,
		p.Service, p.Version, s.now().UnixNano(), by.Actor, by.Remote, action, by.Reason, diff, string(doc))
	if err != nil {
		return wire.Policy{}, fmt.Errorf("policy: write: %w", err)
	}
	// Keep our own copy: the caller may go on changing p's slices.
	var stored wire.Policy
	if err := json.Unmarshal(doc, &stored); err != nil {
		return wire.Policy{}, fmt.Errorf("policy: decode: %w", err)
	}
	s.current[p.Service] = stored
	if ch, ok := s.waiters[p.Service]; ok {
		close(ch)
		delete(s.waiters, p.Service)
	}
	return p, nil
}

// withoutVersion hides the version number so diffs show only rule changes.
func withoutVersion(p wire.Policy) wire.Policy {
	p.Version = 0
	return p
}

// Version returns one stored version.
func (s *Store) Version(ctx context.Context, service string, version int64) (Change, error) {
	row := s.db.QueryRowContext(ctx, `SELECT service, version, time_ns, actor, remote, action, reason, diff, doc FROM policy_versions WHERE service = ? AND version = ?`, service, version)
	c, err := scanChange(row)
	if errors.Is(err, sql.ErrNoRows) {
		return Change{}, fmt.Errorf("%w: %s version %d", ErrNotFound, service, version)
	}
	return c, err
}

// History returns service's versions, newest first, at most limit (0 =
// all).
func (s *Store) History(ctx context.Context, service string, limit int) ([]Change, error) {
	if limit <= 0 {
		limit = -1
	}
	rows, err := s.db.QueryContext(ctx, `SELECT service, version, time_ns, actor, remote, action, reason, diff, doc FROM policy_versions WHERE service = ? ORDER BY version DESC LIMIT ?`, service, limit)
	if err != nil {
		return nil, fmt.Errorf("policy: history: %w", err)
	}
	defer rows.Close()
	var out []Change
	for rows.Next() {
		c, err := scanChange(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

type scanner interface{ Scan(dest ...any) error }

func scanChange(row scanner) (Change, error) {
	var c Change
	var ns int64
	var doc string
	if err := row.Scan(&c.Service, &c.Version, &ns, &c.Actor, &c.Remote, &c.Action, &c.Reason, &c.Diff, &doc); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return c, err
		}
		return c, fmt.Errorf("policy: read: %w", err)
	}
	c.Time = time.Unix(0, ns).UTC()
	if err := json.Unmarshal([]byte(doc), &c.Policy); err != nil {
		return c, fmt.Errorf("policy: stored version is corrupt: %w", err)
	}
	return c, nil
}
