// Package auth holds who may use the control plane: users with a role
// (bcrypt password hashes), browser sessions, API tokens for the CLI and
// automation, and agent tokens that may be limited to named services. All
// of it lives in one SQLite file, auth.db, in the data directory. Secrets
// (session IDs, tokens) are stored only as SHA-256 digests and passwords
// only as bcrypt hashes, so a copy of auth.db lets no one in.
//
// Several control-plane replicas share their users, sessions and tokens
// through a Shared store (Consul KV, wired by the server): Store.Share
// makes auth.db this replica's copy, read on every request, while every
// change goes to the shared store first.
//
// The package also carries the request-side mechanism: Identify finds the
// session or bearer token of a request, CheckCSRF guards state-changing
// requests made with a session cookie, and UserFrom/CSRFToken give pages
// the current user and the CSRF token to embed. Which path needs which
// role is the server's decision, not this package's.
package auth

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/crypto/bcrypt"
	_ "modernc.org/sqlite" // database/sql driver "sqlite"
)

// FileName is the auth database's file name inside the data directory.
const FileName = "auth.db"

// EnvAdminPassword, when set, is the first admin's password.
const EnvAdminPassword = "PILOTHOUSE_ADMIN_PASSWORD"

// AdminName is the name of the first admin user.
const AdminName = "admin"

// Defaults for Config.
const (
	DefaultIdleTimeout     = 12 * time.Hour
	DefaultAbsoluteTimeout = 7 * 24 * time.Hour
	// touchEvery is how stale a session's or token's last-seen time may
	// get before it is written again: a write per request would turn
	// every dashboard poll into a disk sync.
	touchEvery = time.Minute
)

// Sentinel errors.
var (
	ErrBadCredentials    = errors.New("auth: wrong user name or password")
	ErrUnauthenticated   = errors.New("auth: not signed in")
	ErrExpired           = errors.New("auth: session expired")
	ErrForbidden         = errors.New("auth: not allowed for this role")
	ErrCSRF              = errors.New("auth: missing or wrong CSRF token")
	ErrNotFound          = errors.New("auth: not found")
	ErrExists            = errors.New("auth: already exists")
	ErrInvalid           = errors.New("auth: invalid")
	ErrRevoked           = errors.New("auth: token revoked")
	ErrServiceNotAllowed = errors.New("auth: token not allowed for this service")
)

// Config tunes a Store. Zero values mean the defaults.
type Config struct {
	// IdleTimeout ends a session unused for this long (default 12h).
	IdleTimeout time.Duration
	// AbsoluteTimeout ends a session this long after login, used or not
	// (default 7 days).
	AbsoluteTimeout time.Duration
	// BcryptCost is the password hashing cost (default bcrypt.DefaultCost;
	// tests use bcrypt.MinCost).
	BcryptCost int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Store holds users, sessions and tokens. It is safe for concurrent use.
type Store struct {
	db  *sql.DB
	cfg Config
	// dummyHash is compared against when a user does not exist, so a
	// wrong name takes as long as a wrong password.
	dummyHash []byte
	// rep is set when the rows are shared with other replicas (Share).
	rep *replication
}

// Open opens or creates dir/auth.db.
func Open(dir string, cfg Config) (*Store, error) {
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.AbsoluteTimeout <= 0 {
		cfg.AbsoluteTimeout = DefaultAbsoluteTimeout
	}
	if cfg.BcryptCost == 0 {
		cfg.BcryptCost = bcrypt.DefaultCost
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	dsn := "file:" + filepath.Join(dir, FileName) +
		"?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(5000)&_pragma=foreign_keys(ON)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("auth: open: %w", err)
	}
	db.SetMaxOpenConns(1)
	const schema = `
CREATE TABLE IF NOT EXISTS users (
	name       TEXT PRIMARY KEY,
	role       TEXT NOT NULL,
	hash       BLOB NOT NULL,
	disabled   INTEGER NOT NULL DEFAULT 0,
	created_ns INTEGER NOT NULL,
	updated_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
	id_hash    BLOB PRIMARY KEY,
	user       TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
	created_ns INTEGER NOT NULL,
	seen_ns    INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS sessions_user ON sessions(user);
CREATE TABLE IF NOT EXISTS tokens (
	id           TEXT PRIMARY KEY,
	kind         TEXT NOT NULL,
	name         TEXT NOT NULL,
	role         TEXT NOT NULL,
	services     TEXT NOT NULL,
	hash         BLOB NOT NULL UNIQUE,
	created_by   TEXT NOT NULL,
	created_ns   INTEGER NOT NULL,
	last_used_ns INTEGER NOT NULL DEFAULT 0,
	revoked_ns   INTEGER NOT NULL DEFAULT 0
);`
	if _, err := db.Exec(schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("auth: schema: %w", err)
	}
	dummy, err := bcrypt.GenerateFromPassword([]byte("pilothouse timing guard"), cfg.BcryptCost)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("auth: %w", err)
	}
	return &Store{db: db, cfg: cfg, dummyHash: dummy}, nil
}

// Close stops sharing, if the store is shared, and closes the database.
func (s *Store) Close() error {
	if s.rep != nil {
		s.rep.stop()
	}
	return s.db.Close()
}

// Config returns the store's configuration with defaults filled in.
func (s *Store) Config() Config { return s.cfg }

func (s *Store) now() time.Time { return s.cfg.Now() }

func nsTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}

func (s *Store) exec(ctx context.Context, op, q string, args ...any) (sql.Result, error) {
	res, err := s.db.ExecContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("auth: %s: %w", op, err)
	}
	return res, nil
}
