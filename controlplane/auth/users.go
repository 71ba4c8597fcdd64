package auth

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Password length bounds. bcrypt ignores bytes after the 72nd, so longer
// passwords are refused rather than silently truncated.
const (
	MinPasswordLen = 8
	MaxPasswordLen = 72
)

// ErrLastAdmin is returned for a change that would leave no enabled admin.
var ErrLastAdmin = errors.New("auth: the last enabled admin cannot be removed, disabled or demoted")

var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`)

// User is a person who signs in to the dashboard.
type User struct {
	Name     string    `json:"name"`
	Role     Role      `json:"role"`
	Disabled bool      `json:"disabled"`
	Created  time.Time `json:"created"`
	Updated  time.Time `json:"updated"`
}

// ValidName reports whether name is acceptable for a user or a token:
// 1 to 64 letters, digits, '.', '_', '@' or '-', starting with a letter or
// digit.
func ValidName(name string) bool { return namePattern.MatchString(name) }

func checkPassword(pw string) error {
	switch {
	case len(pw) < MinPasswordLen:
		return fmt.Errorf("%w: password must have at least %d characters", ErrInvalid, MinPasswordLen)
	case len(pw) > MaxPasswordLen:
		return fmt.Errorf("%w: password must have at most %d bytes", ErrInvalid, MaxPasswordLen)
	}
	return nil
}

// GeneratePassword returns a random 24-character password (144 bits).
func GeneratePassword() string {
	return base64.RawURLEncoding.EncodeToString(randomBytes(18))
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	// crypto/rand.Read never returns an error (Go 1.24+); it panics if
	// the system's source fails, which we cannot recover from anyway.
	_, _ = rand.Read(b)
	return b
}

func (s *Store) hash(pw string) ([]byte, error) {
	if err := checkPassword(pw); err != nil {
		return nil, err
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pw), s.cfg.BcryptCost)
	if err != nil {
		return nil, fmt.Errorf("auth: hash password: %w", err)
	}
	return h, nil
}

// CreateUser adds a user.
func (s *Store) CreateUser(ctx context.Context, name, password string, role Role) (User, error) {
	if !ValidName(name) {
		return User{}, fmt.Errorf("%w: user name %q: 1 to 64 letters, digits, . _ @ -", ErrInvalid, name)
	}
	if !role.Valid() {
		return User{}, fmt.Errorf("%w: role %q", ErrInvalid, role)
	}
	h, err := s.hash(password)
	if err != nil {
		return User{}, err
	}
	if s.rep != nil {
		return s.sharedCreateUser(ctx, name, h, role)
	}
	now := s.now().UTC()
	_, err = s.db.ExecContext(ctx, `INSERT INTO users (name, role, hash, created_ns, updated_ns) VALUES (?, ?, ?, ?, ?)`,
		name, string(role), h, now.UnixNano(), now.UnixNano())
	if err != nil {
		if strings.Contains(err.Error(), "UNIQUE") {
			return User{}, fmt.Errorf("%w: user %q", ErrExists, name)
		}
		return User{}, fmt.Errorf("auth: create user: %w", err)
	}
	return User{Name: name, Role: role, Created: now, Updated: now}, nil
}

// EnsureAdmin creates the first admin, AdminName, when there are no users
// yet. password is its password; empty generates one, which is returned:
// it is the only time the password exists in clear. When users exist
// already, EnsureAdmin changes nothing and returns "".
func (s *Store) EnsureAdmin(ctx context.Context, password string) (generated string, err error) {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM users`).Scan(&n); err != nil {
		return "", fmt.Errorf("auth: count users: %w", err)
	}
	if n > 0 {
		return "", nil
	}
	if password == "" {
		password = GeneratePassword()
		generated = password
	}
	if _, err := s.CreateUser(ctx, AdminName, password, RoleAdmin); err != nil {
		if s.rep != nil && errors.Is(err, ErrExists) {
			// Another replica created it a moment ago.
			return "", nil
		}
		return "", err
	}
	return generated, nil
}

// Users lists every user by name.
func (s *Store) Users(ctx context.Context) ([]User, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT name, role, disabled, created_ns, updated_ns FROM users ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("auth: list users: %w", err)
	}
	defer rows.Close()
	var out []User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("auth: list users: %w", err)
	}
	return out, nil
}

type scanner interface{ Scan(dst ...any) error }

func scanUser(sc scanner) (User, error) {
	var (
		u                User
		role             string
		created, updated int64
	)
	if err := sc.Scan(&u.Name, &role, &u.Disabled, &created, &updated); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return User{}, fmt.Errorf("%w: user", ErrNotFound)
		}
		return User{}, fmt.Errorf("auth: read user: %w", err)
	}
	u.Role, u.Created, u.Updated = Role(role), nsTime(created), nsTime(updated)
	return u, nil
}

// User returns one user.
func (s *Store) User(ctx context.Context, name string) (User, error) {
	return scanUser(s.db.QueryRowContext(ctx, `SELECT name, role, disabled, created_ns, updated_ns FROM users WHERE name = ?`, name))
}

// Authenticate checks a user's password. A wrong name, a wrong password
// and a disabled user all give ErrBadCredentials, in about the same time.
func (s *Store) Authenticate(ctx context.Context, name, password string) (User, error) {
	var (
		hash             []byte
		u                User
		role             string
		created, updated int64
	)
	err := s.db.QueryRowContext(ctx, `SELECT name, role, disabled, created_ns, updated_ns, hash FROM users WHERE name = ?`, name).
		Scan(&u.Name, &role, &u.Disabled, &created, &updated, &hash)
	if errors.Is(err, sql.ErrNoRows) {
		_ = bcrypt.CompareHashAndPassword(s.dummyHash, []byte(password))
		return User{}, ErrBadCredentials
	}
	if err != nil {
		return User{}, fmt.Errorf("auth: authenticate: %w", err)
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(password)) != nil || u.Disabled {
		return User{}, ErrBadCredentials
	}
	u.Role, u.Created, u.Updated = Role(role), nsTime(created), nsTime(updated)
	return u, nil
}

// UserChange is a change to a user; nil fields stay as they are.
type UserChange struct {
	Role     *Role
	Disabled *bool
	Password *string
}

// takesAdmin reports whether c leaves u, an enabled admin, no longer one.
func (c UserChange) takesAdmin(u User) bool {
	return u.Role == RoleAdmin && !u.Disabled &&
		((c.Role != nil && *c.Role != RoleAdmin) || (c.Disabled != nil && *c.Disabled))
}

// applyTo returns u with c's role and disabled flag, updated at now.
func (c UserChange) applyTo(u User, now time.Time) User {
	if c.Role != nil {
		u.Role = *c.Role
	}
	if c.Disabled != nil {
		u.Disabled = *c.Disabled
	}
	u.Updated = now
	return u
}

// UpdateUser applies c to the user. A new password or disabling the user
// ends every session of that user. It refuses to leave no enabled admin.
func (s *Store) UpdateUser(ctx context.Context, name string, c UserChange) (User, error) {
	u, err := s.User(ctx, name)
	if err != nil {
		return User{}, err
	}
	var hash []byte
	if c.Password != nil {
		if hash, err = s.hash(*c.Password); err != nil {
			return User{}, err
		}
	}
	if c.Role != nil && !c.Role.Valid() {
		return User{}, fmt.Errorf("%w: role %q", ErrInvalid, *c.Role)
	}
	if s.rep != nil {
		return s.sharedUpdateUser(ctx, name, c, hash)
	}
	takesAdmin := c.takesAdmin(u)
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return User{}, fmt.Errorf("auth: update user: %w", err)
	}
	defer tx.Rollback()
	if takesAdmin {
		if err := lastAdminGuard(ctx, tx, name); err != nil {
			return User{}, err
		}
	}
	now := s.now().UTC()
	u = c.applyTo(u, now)
	if _, err := tx.ExecContext(ctx, `UPDATE users SET role = ?, disabled = ?, updated_ns = ? WHERE name = ?`,
		string(u.Role), u.Disabled, now.UnixNano(), name); err != nil {
		return User{}, fmt.Errorf("auth: update user: %w", err)
	}
	if hash != nil {
		if _, err := tx.ExecContext(ctx, `UPDATE users SET hash = ? WHERE name = ?`, hash, name); err != nil {
			return User{}, fmt.Errorf("auth: update user: %w", err)
		}
	}
	if hash != nil || u.Disabled {
		if _, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE user = ?`, name); err != nil {
			return User{}, fmt.Errorf("auth: update user: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return User{}, fmt.Errorf("auth: update user: %w", err)
	}
	return u, nil
}

// DeleteUser removes a user and their sessions.
func (s *Store) DeleteUser(ctx context.Context, name string) error {
	if s.rep != nil {
		return s.sharedDeleteUser(ctx, name)
	}
	u, err := s.User(ctx, name)
	if err != nil {
		return err
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("auth: delete user: %w", err)
	}
	defer tx.Rollback()
	if u.Role == RoleAdmin && !u.Disabled {
		if err := lastAdminGuard(ctx, tx, name); err != nil {
			return err
		}
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM users WHERE name = ?`, name); err != nil {
		return fmt.Errorf("auth: delete user: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("auth: delete user: %w", err)
	}
	return nil
}

func lastAdminGuard(ctx context.Context, tx *sql.Tx, except string) error {
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM users WHERE role = 'admin' AND disabled = 0 AND name != ?`, except).Scan(&n); err != nil {
		return fmt.Errorf("auth: count admins: %w", err)
	}
	if n == 0 {
		return ErrLastAdmin
	}
	return nil
}
