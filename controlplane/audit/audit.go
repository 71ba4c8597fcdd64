// Package audit keeps the control plane's append-only audit log: who did
// what, when, from where, and what changed. Events live in their own SQLite
// file (audit.db) written with synchronous=FULL, so a recorded event
// survives a crash. The package offers Record and List and nothing else:
// the schema's triggers refuse UPDATE and DELETE, so not even a bug in
// another package can rewrite history through this database handle.
package audit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "modernc.org/sqlite" // database/sql driver "sqlite"
)

// FileName is the audit database's file name inside the data directory.
const FileName = "audit.db"

// Actions recorded by the control plane.
const (
	ActionLogin           = "login"
	ActionLoginFailed     = "login_failed"
	ActionLogout          = "logout"
	ActionPolicyUpdate    = "policy_update"
	ActionPolicyRollback  = "policy_rollback"
	ActionUserCreate      = "user_create"
	ActionUserUpdate      = "user_update"
	ActionUserDelete      = "user_delete"
	ActionTokenCreate     = "token_create"
	ActionTokenRevoke     = "token_revoke"
	ActionAgentAuthFailed = "agent_auth_failed"
)

// Actions lists every action, for filters in the UI.
var Actions = []string{
	ActionLogin, ActionLoginFailed, ActionLogout, ActionPolicyUpdate, ActionPolicyRollback,
	ActionUserCreate, ActionUserUpdate, ActionUserDelete, ActionTokenCreate, ActionTokenRevoke,
	ActionAgentAuthFailed,
}

// Limits on List.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// maxFieldBytes caps each text field of an event; maxDiffBytes the diff.
const (
	maxFieldBytes = 1024
	maxDiffBytes  = 256 << 10
)

// Sentinel errors.
var (
	// ErrInvalid is returned for an event without an action or a filter
	// out of range.
	ErrInvalid = errors.New("audit: invalid")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("audit: log closed")
)

// Event is one audit record.
type Event struct {
	// ID orders events; it is assigned by Record.
	ID     int64     `json:"id"`
	Time   time.Time `json:"time"`
	Actor  string    `json:"actor"`
	Action string    `json:"action"`
	Target string    `json:"target,omitempty"`
	// Remote is the client address the action came from.
	Remote string `json:"remote,omitempty"`
	Detail string `json:"detail,omitempty"`
	// Diff is what changed, as a unified-style text diff.
	Diff string `json:"diff,omitempty"`
}

// Filter selects events for List. Zero fields do not filter.
type Filter struct {
	Actor  string
	Action string
	Since  time.Time // inclusive
	Until  time.Time // exclusive
	// Limit caps the events returned, newest first (default DefaultLimit,
	// at most MaxLimit).
	Limit int
	// Before pages backwards: only events with an ID below it.
	Before int64
}

// Log is the audit log. It is safe for concurrent use.
type Log struct {
	db  *sql.DB
	now func() time.Time
}

// Open opens or creates dir/audit.db. now stamps events recorded without
// a time; nil means time.Now.
func Open(dir string, now func() time.Time) (*Log, error) {
	if now == nil {
		now = time.Now
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	dsn := "file:" + filepath.Join(dir, FileName) +
		"?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(5000)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("audit: open: %w", err)
	}
	db.SetMaxOpenConns(1)
	const schema = `
CREATE TABLE IF NOT EXISTS events (
	id      INTEGER PRIMARY KEY AUTOINCREMENT,
	time_ns INTEGER NOT NULL,
	actor   TEXT NOT NULL,
	action  TEXT NOT NULL,
	target  TEXT NOT NULL,
	remote  TEXT NOT NULL,
	detail  TEXT NOT NULL,
	diff    TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_actor ON events(actor, id);
CREATE INDEX IF NOT EXISTS events_action ON events(action, id);
CREATE TRIGGER IF NOT EXISTS events_no_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END;
CREATE TRIGGER IF NOT EXISTS events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END;`
	if _, err := db.Exec(schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("audit: schema: %w", err)
	}
	return &Log{db: db, now: now}, nil
}

// Close closes the database.
func (l *Log) Close() error { return l.db.Close() }

// recordTimeout bounds one Record once it no longer follows its caller's
// cancellation.
const recordTimeout = 10 * time.Second

// Record appends e and returns it with its ID and time set. It returns
// once the event is durable. What happened is recorded even when ctx ends
// first (the client that made a policy change hung up, say): Record keeps
// ctx's values but not its cancellation, and gives up after recordTimeout.
func (l *Log) Record(ctx context.Context, e Event) (Event, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	if e.Action == "" {
		return Event{}, fmt.Errorf("%w: event without an action", ErrInvalid)
	}
	if e.Time.IsZero() {
		e.Time = l.now()
	}
	e.Time = e.Time.UTC()
	e.Actor = clip(e.Actor, maxFieldBytes)
	e.Action = clip(e.Action, maxFieldBytes)
	e.Target = clip(e.Target, maxFieldBytes)
	e.Remote = clip(e.Remote, maxFieldBytes)
	e.Detail = clip(e.Detail, maxFieldBytes)
	e.Diff = clip(e.Diff, maxDiffBytes)
	res, err := l.db.ExecContext(ctx,
		`INSERT INTO events (time_ns, actor, action, target, remote, detail, diff) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		e.Time.UnixNano(), e.Actor, e.Action, e.Target, e.Remote, e.Detail, e.Diff)
	if err != nil {
		return Event{}, fmt.Errorf("audit: record %s: %w", e.Action, err)
	}
	if e.ID, err = res.LastInsertId(); err != nil {
		return Event{}, fmt.Errorf("audit: record %s: %w", e.Action, err)
	}
	return e, nil
}

// List returns the events f selects, newest first.
func (l *Log) List(ctx context.Context, f Filter) ([]Event, error) {
	switch {
	case f.Limit < 0 || f.Limit > MaxLimit:
		return nil, fmt.Errorf("%w: limit must be 1 to %d", ErrInvalid, MaxLimit)
	case f.Limit == 0:
		f.Limit = DefaultLimit
	}
	return l.list(ctx, f)
}

func (l *Log) list(ctx context.Context, f Filter) ([]Event, error) {
	var (
		where []string
		args  []any
	)
	if f.Actor != "" {
		where, args = append(where, "actor = ?"), append(args, f.Actor)
	}
	if f.Action != "" {
		where, args = append(where, "action = ?"), append(args, f.Action)
	}
	if !f.Since.IsZero() {
		where, args = append(where, "time_ns >= ?"), append(args, f.Since.UnixNano())
	}
	if !f.Until.IsZero() {
		where, args = append(where, "time_ns < ?"), append(args, f.Until.UnixNano())
	}
	if f.Before > 0 {
		where, args = append(where, "id < ?"), append(args, f.Before)
	}
	q := `SELECT id, time_ns, actor, action, target, remote, detail, diff FROM events`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY id DESC LIMIT ?"
	args = append(args, f.Limit)
	rows, err := l.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("audit: list: %w", err)
	}
	defer rows.Close()
	out := []Event{}
	for rows.Next() {
		var (
			e  Event
			ns int64
		)
		if err := rows.Scan(&e.ID, &ns, &e.Actor, &e.Action, &e.Target, &e.Remote, &e.Detail, &e.Diff); err != nil {
			return nil, fmt.Errorf("audit: list: %w", err)
		}
		e.Time = time.Unix(0, ns).UTC()
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("audit: list: %w", err)
	}
	return out, nil
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	// Cut on a rune boundary.
	for n > 0 && n < len(s) && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n] + "…"
}
