package auth

import (
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
)

// The changes of a shared store: each builds its ops from the local copy,
// with checks on the ModifyIndex of every row it relies on, so a change
// made meanwhile by another replica makes it conflict and run again on
// fresh data rather than undo that change.

func (s *Store) sharedCreateUser(ctx context.Context, name string, hash []byte, role Role) (User, error) {
	var u User
	err := s.mutate(ctx, "create user", func(v versions) ([]Op, error) {
		if _, err := s.User(ctx, name); err == nil {
			return nil, fmt.Errorf("%w: user %q", ErrExists, name)
		}
		now := s.now().UTC()
		u = User{Name: name, Role: role, Created: now, Updated: now}
		rec := userRecord{Role: string(role), Hash: string(hash), CreatedNS: now.UnixNano(), UpdatedNS: now.UnixNano()}
		// Index 0: create-only, so two replicas cannot both create it.
		return []Op{{Verb: OpCAS, Key: userKey(name), Value: mustJSON(rec)}}, nil
	})
	if err != nil {
		return User{}, err
	}
	return u, nil
}

// adminChecks guards the last enabled admin across replicas: it fails
// with ErrLastAdmin when no other enabled admin exists here, else returns
// ops checking that the others are unchanged when the change commits.
func (s *Store) adminChecks(ctx context.Context, except string, v versions) ([]Op, error) {
	names, err := s.queryStrings(ctx, "count admins", `SELECT name FROM users WHERE role = 'admin' AND disabled = 0 AND name != ?`, except)
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return nil, ErrLastAdmin
	}
	// One other admin known unchanged is enough.
	return []Op{{Verb: OpCheckIndex, Key: userKey(names[0]), Index: v[userKey(names[0])]}}, nil
}

func (s *Store) userRecordOf(ctx context.Context, name string) (userRecord, error) {
	var (
		rec  userRecord
		hash []byte
	)
	err := s.db.QueryRowContext(ctx, `SELECT role, hash, disabled, created_ns, updated_ns FROM users WHERE name = ?`, name).
		Scan(&rec.Role, &hash, &rec.Disabled, &rec.CreatedNS, &rec.UpdatedNS)
	if errors.Is(err, sql.ErrNoRows) {
		return rec, fmt.Errorf("%w: user", ErrNotFound)
	}
	if err != nil {
		return rec, fmt.Errorf("auth: read user: %w", err)
	}
	rec.Hash = string(hash)
	return rec, nil
}

func (s *Store) sharedUpdateUser(ctx context.Context, name string, c UserChange, hash []byte) (User, error) {
	var u User
	err := s.mutate(ctx, "update user", func(v versions) ([]Op, error) {
		var err error
		if u, err = s.User(ctx, name); err != nil {
			return nil, err
		}
		rec, err := s.userRecordOf(ctx, name)
		if err != nil {
			return nil, err
		}
		var ops []Op
		if c.takesAdmin(u) {
			if ops, err = s.adminChecks(ctx, name, v); err != nil {
				return nil, err
			}
		}
		now := s.now().UTC()
		u = c.applyTo(u, now)
		rec.Role, rec.Disabled, rec.UpdatedNS = string(u.Role), u.Disabled, now.UnixNano()
		if hash != nil {
			rec.Hash = string(hash)
		}
		ops = append(ops, Op{Verb: OpCAS, Key: userKey(name), Value: mustJSON(rec), Index: v[userKey(name)]})
		if hash != nil || u.Disabled {
			// Every session of the user, including those this replica
			// has not seen yet.
			ops = append(ops, Op{Verb: OpDeleteTree, Key: userSessionsKey(name)})
		}
		return ops, nil
	})
	if err != nil {
		return User{}, err
	}
	return u, nil
}

func (s *Store) sharedDeleteUser(ctx context.Context, name string) error {
	return s.mutate(ctx, "delete user", func(v versions) ([]Op, error) {
		u, err := s.User(ctx, name)
		if err != nil {
			return nil, err
		}
		var ops []Op
		if u.Role == RoleAdmin && !u.Disabled {
			if ops, err = s.adminChecks(ctx, name, v); err != nil {
				return nil, err
			}
		}
		return append(ops,
			Op{Verb: OpDeleteCAS, Key: userKey(name), Index: v[userKey(name)]},
			Op{Verb: OpDeleteTree, Key: userSessionsKey(name)}), nil
	})
}

func (s *Store) sharedCreateSession(ctx context.Context, u User, sess Session) error {
	return s.mutate(ctx, "create session", func(v versions) ([]Op, error) {
		cur, err := s.User(ctx, u.Name)
		// A user changed since the caller read it (a new password, say,
		// on another replica after this sign-in checked the old one) gets
		// no session.
		if err != nil || cur.Disabled || !cur.Updated.Equal(u.Updated) {
			return nil, ErrUnauthenticated
		}
		rec := sessionRecord{CreatedNS: sess.Created.UnixNano(), SeenNS: sess.Seen.UnixNano()}
		return []Op{
			// The user must be as this replica knows it: not disabled,
			// deleted or given a new password meanwhile.
			{Verb: OpCheckIndex, Key: userKey(u.Name), Index: v[userKey(u.Name)]},
			{Verb: OpCAS, Key: sessionKey(u.Name, digest(sess.ID)), Value: mustJSON(rec)},
		}, nil
	})
}

// sessionUser returns the user of the session whose ID digests to d.
func (s *Store) sessionUser(ctx context.Context, d []byte) (string, error) {
	var user string
	err := s.db.QueryRowContext(ctx, `SELECT user FROM sessions WHERE id_hash = ?`, d).Scan(&user)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("auth: session: %w", err)
	}
	return user, nil
}

func (s *Store) sharedDeleteSession(ctx context.Context, id string) error {
	d := digest(id)
	refreshed := false
	return s.mutate(ctx, "delete session", func(v versions) ([]Op, error) {
		user, err := s.sessionUser(ctx, d)
		if err != nil {
			return nil, err
		}
		if user == "" && !refreshed {
			// Perhaps created on another replica a moment ago.
			refreshed = true
			if err := s.refresh(ctx); err != nil {
				return nil, err
			}
			if user, err = s.sessionUser(ctx, d); err != nil {
				return nil, err
			}
		}
		if user == "" {
			return nil, nil
		}
		return []Op{{Verb: OpDelete, Key: sessionKey(user, d)}}, nil
	})
}

// SweepSessions deletes the sessions that have expired, here and, when
// the store is shared, in the shared store (the control plane's leader
// runs it there). It returns how many it deleted.
func (s *Store) SweepSessions(ctx context.Context) (int, error) {
	now := s.now().UTC()
	idle, absolute := now.Add(-s.cfg.IdleTimeout).UnixNano(), now.Add(-s.cfg.AbsoluteTimeout).UnixNano()
	if s.rep == nil {
		res, err := s.exec(ctx, "sweep sessions", `DELETE FROM sessions WHERE seen_ns < ? OR created_ns < ?`, idle, absolute)
		if err != nil {
			return 0, err
		}
		n, _ := res.RowsAffected()
		return int(n), nil
	}
	v := s.versions() // before the rows: see versions
	rows, err := s.db.QueryContext(ctx, `SELECT id_hash, user FROM sessions WHERE seen_ns < ? OR created_ns < ?`, idle, absolute)
	if err != nil {
		return 0, fmt.Errorf("auth: sweep sessions: %w", err)
	}
	var keys []string
	for rows.Next() {
		var (
			d    []byte
			user string
		)
		if err := rows.Scan(&d, &user); err != nil {
			rows.Close()
			return 0, fmt.Errorf("auth: sweep sessions: %w", err)
		}
		keys = append(keys, sessionKey(user, d))
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("auth: sweep sessions: %w", err)
	}
	n := 0
	for _, k := range keys {
		// Check-and-set: a session another replica saw again meanwhile
		// (a newer last-seen time) is kept.
		err := s.rep.shared.Commit(ctx, []Op{{Verb: OpDeleteCAS, Key: k, Index: v[k]}})
		switch {
		case err == nil:
			n++
		case errors.Is(err, ErrConflict):
		default:
			return n, fmt.Errorf("auth: sweep sessions: %w", err)
		}
	}
	if n > 0 {
		return n, s.refresh(ctx)
	}
	return n, nil
}

func (s *Store) sharedCreateToken(ctx context.Context, t *Token, secret string, newID func() string) error {
	return s.mutate(ctx, "create token", func(v versions) ([]Op, error) {
		if v[tokenKey(t.ID)] != 0 {
			t.ID = newID()
		}
		rec := tokenRecord{
			Kind: string(t.Kind), Name: t.Name, Role: string(t.Role), Services: t.Services,
			Digest: hexDigest(secret), CreatedBy: t.CreatedBy, CreatedNS: t.Created.UnixNano(),
		}
		return []Op{{Verb: OpCAS, Key: tokenKey(t.ID), Value: mustJSON(rec)}}, nil
	})
}

func (s *Store) sharedRevokeToken(ctx context.Context, id string) (Token, error) {
	var t Token
	err := s.mutate(ctx, "revoke token", func(v versions) ([]Op, error) {
		var err error
		t, err = scanToken(s.db.QueryRowContext(ctx, `SELECT `+tokenColumns+` FROM tokens WHERE id = ?`, id))
		if err != nil || !t.Active() {
			return nil, err
		}
		now := s.now().UTC()
		cur, err := s.tokenValue(ctx, id)
		if err != nil {
			return nil, err
		}
		var rec tokenRecord
		if err := json.Unmarshal(cur, &rec); err != nil {
			return nil, fmt.Errorf("auth: revoke token: %w", err)
		}
		rec.RevokedNS, t.Revoked = now.UnixNano(), now
		return []Op{{Verb: OpCAS, Key: tokenKey(id), Value: mustJSON(rec), Index: v[tokenKey(id)]}}, nil
	})
	if err != nil {
		return Token{}, err
	}
	return t, nil
}

func hexDigest(secret string) string { return hex.EncodeToString(digest(secret)) }

// touchShared queues the sharing of a row's new last-seen or last-used
// time, when the store is shared.
func (s *Store) touchShared(key string) {
	if s.rep != nil {
		s.queueTouch(touchJob{key: key})
	}
}

// expireShared queues the deletion of an expired session's shared key.
func (s *Store) expireShared(key string) {
	if s.rep != nil {
		s.queueTouch(touchJob{key: key, expire: true})
	}
}
