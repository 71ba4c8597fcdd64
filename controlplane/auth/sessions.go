package auth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"time"
)

// Session is a signed-in browser.
type Session struct {
	// ID is the secret cookie value: 256 random bits. Only its SHA-256
	// digest is stored.
	ID      string
	User    User
	Created time.Time
	Seen    time.Time
}

// CSRF is the session's CSRF token: an HMAC of a fixed label keyed by the
// session ID. It is bound to the session, needs no storage, and does not
// reveal the ID.
func (s Session) CSRF() string { return csrfFor(s.ID) }

func csrfFor(id string) string {
	m := hmac.New(sha256.New, []byte(id))
	m.Write([]byte("pilothouse csrf v1"))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func digest(secret string) []byte {
	sum := sha256.Sum256([]byte(secret))
	return sum[:]
}

// CreateSession starts a session for u and returns it with its secret ID.
// Expired sessions of every user are swept at the same time. When the
// store is shared, u must be as last read (User, Authenticate): a user
// changed since then, here or on another replica, gets ErrUnauthenticated.
func (s *Store) CreateSession(ctx context.Context, u User) (Session, error) {
	now := s.now().UTC()
	sess := Session{ID: base64.RawURLEncoding.EncodeToString(randomBytes(32)), User: u, Created: now, Seen: now}
	if s.rep != nil {
		// The leader sweeps expired sessions (SweepSessions).
		if err := s.sharedCreateSession(ctx, u, sess); err != nil {
			return Session{}, err
		}
		return sess, nil
	}
	if _, err := s.exec(ctx, "sweep sessions", `DELETE FROM sessions WHERE seen_ns < ? OR created_ns < ?`,
		now.Add(-s.cfg.IdleTimeout).UnixNano(), now.Add(-s.cfg.AbsoluteTimeout).UnixNano()); err != nil {
		return Session{}, err
	}
	if _, err := s.exec(ctx, "create session", `INSERT INTO sessions (id_hash, user, created_ns, seen_ns) VALUES (?, ?, ?, ?)`,
		digest(sess.ID), u.Name, now.UnixNano(), now.UnixNano()); err != nil {
		return Session{}, err
	}
	return sess, nil
}

// Session looks up a session by its secret ID. It fails with ErrExpired
// when the session was idle longer than IdleTimeout or began more than
// AbsoluteTimeout ago (and deletes it), and with ErrUnauthenticated when
// it does not exist or its user is disabled or gone. A valid session's
// last-seen time moves forward (written at most once a minute).
func (s *Store) Session(ctx context.Context, id string) (Session, error) {
	if id == "" {
		return Session{}, ErrUnauthenticated
	}
	now := s.now().UTC()
	key := digest(id)
	var (
		sess          = Session{ID: id}
		created, seen int64
	)
	var ucreated, uupdated int64
	var role string
	lookup := func() error {
		row := s.db.QueryRowContext(ctx, `SELECT s.created_ns, s.seen_ns, u.name, u.role, u.disabled, u.created_ns, u.updated_ns
			FROM sessions s JOIN users u ON u.name = s.user WHERE s.id_hash = ?`, key)
		return row.Scan(&created, &seen, &sess.User.Name, &role, &sess.User.Disabled, &ucreated, &uupdated)
	}
	err := lookup()
	if errors.Is(err, sql.ErrNoRows) && s.refreshOnMiss(ctx) {
		err = lookup() // signed in on another replica a moment ago?
	}
	if errors.Is(err, sql.ErrNoRows) {
		return Session{}, ErrUnauthenticated
	}
	if err != nil {
		return Session{}, fmt.Errorf("auth: session: %w", err)
	}
	sess.User.Role, sess.User.Created, sess.User.Updated = Role(role), nsTime(ucreated), nsTime(uupdated)
	sess.Created, sess.Seen = nsTime(created), nsTime(seen)
	if sess.User.Disabled {
		return Session{}, ErrUnauthenticated
	}
	if now.Sub(sess.Seen) > s.cfg.IdleTimeout || now.Sub(sess.Created) > s.cfg.AbsoluteTimeout {
		if s.rep != nil {
			// Refused here at once; deleted everywhere once the shared
			// store has it (unless another replica saw it meanwhile).
			s.expireShared(sessionKey(sess.User.Name, key))
			return Session{}, ErrExpired
		}
		if _, err := s.exec(ctx, "expire session", `DELETE FROM sessions WHERE id_hash = ?`, key); err != nil {
			return Session{}, err
		}
		return Session{}, ErrExpired
	}
	if now.Sub(sess.Seen) >= touchEvery {
		if _, err := s.exec(ctx, "touch session", `UPDATE sessions SET seen_ns = ? WHERE id_hash = ?`, now.UnixNano(), key); err != nil {
			return Session{}, err
		}
		sess.Seen = now
		s.touchShared(sessionKey(sess.User.Name, key))
	}
	return sess, nil
}

// DeleteSession ends a session (logout). An unknown ID is not an error.
func (s *Store) DeleteSession(ctx context.Context, id string) error {
	if s.rep != nil {
		return s.sharedDeleteSession(ctx, id)
	}
	_, err := s.exec(ctx, "delete session", `DELETE FROM sessions WHERE id_hash = ?`, digest(id))
	return err
}
