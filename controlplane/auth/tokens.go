package auth

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// TokenKind tells API tokens (people's tools: CLI, automation) from agent
// tokens (ingest, heartbeats, policy long-poll).
type TokenKind string

// Token kinds.
const (
	KindAPI   TokenKind = "api"
	KindAgent TokenKind = "agent"
)

// prefix starts every raw token of a kind, so a leaked token says what it
// is (and secret scanners can find it).
func (k TokenKind) prefix() string {
	if k == KindAgent {
		return "phg_"
	}
	return "pha_"
}

// Token is an API or agent token as stored: never the secret itself.
type Token struct {
	ID   string    `json:"id"`
	Kind TokenKind `json:"kind"`
	Name string    `json:"name"`
	// Role is what an API token may do; agent tokens have none.
	Role Role `json:"role,omitempty"`
	// Services limits an agent token to these services; empty means any.
	Services  []string  `json:"services,omitempty"`
	CreatedBy string    `json:"created_by"`
	Created   time.Time `json:"created"`
	LastUsed  time.Time `json:"last_used,omitzero"`
	Revoked   time.Time `json:"revoked,omitzero"`
}

// Active reports whether the token is not revoked.
func (t Token) Active() bool { return t.Revoked.IsZero() }

// AllowsService reports whether an agent token may act for service.
func (t Token) AllowsService(service string) bool {
	return len(t.Services) == 0 || slices.Contains(t.Services, service)
}

// NewToken describes a token to create.
type NewToken struct {
	Kind TokenKind
	Name string
	// Role is required for API tokens and ignored for agent tokens.
	Role Role
	// Services limits an agent token; empty means any service.
	Services  []string
	CreatedBy string
}

// CreateToken stores a new token and returns its secret, which is shown
// once: only its SHA-256 digest is kept.
func (s *Store) CreateToken(ctx context.Context, nt NewToken) (secret string, t Token, err error) {
	if !ValidName(nt.Name) {
		return "", Token{}, fmt.Errorf("%w: token name %q: 1 to 64 letters, digits, . _ @ -", ErrInvalid, nt.Name)
	}
	switch nt.Kind {
	case KindAPI:
		if !nt.Role.Valid() {
			return "", Token{}, fmt.Errorf("%w: API token role %q", ErrInvalid, nt.Role)
		}
		nt.Services = nil
	case KindAgent:
		nt.Role = ""
		for _, svc := range nt.Services {
			if svc == "" || len(svc) > 255 || strings.ContainsAny(svc, ",\n") {
				return "", Token{}, fmt.Errorf("%w: service name %q", ErrInvalid, svc)
			}
		}
	default:
		return "", Token{}, fmt.Errorf("%w: token kind %q", ErrInvalid, nt.Kind)
	}
	now := s.now().UTC()
	t = Token{
		ID: hex.EncodeToString(randomBytes(8)), Kind: nt.Kind, Name: nt.Name, Role: nt.Role,
		Services: slices.Compact(slices.Sorted(slices.Values(nt.Services))), CreatedBy: nt.CreatedBy, Created: now,
	}
	if len(t.Services) == 0 {
		t.Services = nil
	}
	secret = nt.Kind.prefix() + base64.RawURLEncoding.EncodeToString(randomBytes(32))
	if s.rep != nil {
		if err := s.sharedCreateToken(ctx, &t, secret, func() string { return hex.EncodeToString(randomBytes(8)) }); err != nil {
			return "", Token{}, err
		}
		return secret, t, nil
	}
	if _, err := s.exec(ctx, "create token",
		`INSERT INTO tokens (id, kind, name, role, services, hash, created_by, created_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		t.ID, string(t.Kind), t.Name, string(t.Role), strings.Join(t.Services, ","), digest(secret), t.CreatedBy, now.UnixNano()); err != nil {
		return "", Token{}, err
	}
	return secret, t, nil
}

const tokenColumns = `id, kind, name, role, services, created_by, created_ns, last_used_ns, revoked_ns`

func scanToken(sc scanner) (Token, error) {
	var (
		t                      Token
		kind, role, services   string
		created, used, revoked int64
	)
	if err := sc.Scan(&t.ID, &kind, &t.Name, &role, &services, &t.CreatedBy, &created, &used, &revoked); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return Token{}, fmt.Errorf("%w: token", ErrNotFound)
		}
		return Token{}, fmt.Errorf("auth: read token: %w", err)
	}
	t.Kind, t.Role = TokenKind(kind), Role(role)
	if services != "" {
		t.Services = strings.Split(services, ",")
	}
	t.Created, t.LastUsed, t.Revoked = nsTime(created), nsTime(used), nsTime(revoked)
	return t, nil
}

// Tokens lists the tokens of a kind, newest first, revoked ones included.
func (s *Store) Tokens(ctx context.Context, kind TokenKind) ([]Token, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+tokenColumns+` FROM tokens WHERE kind = ? ORDER BY created_ns DESC, id`, string(kind))
	if err != nil {
		return nil, fmt.Errorf("auth: list tokens: %w", err)
	}
	defer rows.Close()
	var out []Token
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("auth: list tokens: %w", err)
	}
	return out, nil
}

// HasActiveTokens reports whether any unrevoked token of kind exists.
func (s *Store) HasActiveTokens(ctx context.Context, kind TokenKind) (bool, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM tokens WHERE kind = ? AND revoked_ns = 0`, string(kind)).Scan(&n); err != nil {
		return false, fmt.Errorf("auth: count tokens: %w", err)
	}
	return n > 0, nil
}

// RevokeToken revokes a token by ID; it stays listed as revoked. Revoking
// twice is not an error.
func (s *Store) RevokeToken(ctx context.Context, id string) (Token, error) {
	if s.rep != nil {
		return s.sharedRevokeToken(ctx, id)
	}
	t, err := scanToken(s.db.QueryRowContext(ctx, `SELECT `+tokenColumns+` FROM tokens WHERE id = ?`, id))
	if err != nil {
		return Token{}, err
	}
	if !t.Active() {
		return t, nil
	}
	now := s.now().UTC()
	if _, err := s.exec(ctx, "revoke token", `UPDATE tokens SET revoked_ns = ? WHERE id = ?`, now.UnixNano(), id); err != nil {
		return Token{}, err
	}
	t.Revoked = now
	return t, nil
}

// LookupToken finds the token of kind whose secret is presented. It fails
// with ErrUnauthenticated for an unknown secret or another kind's, and
// ErrRevoked for a revoked one. Its last-used time moves forward (written
// at most once a minute).
func (s *Store) LookupToken(ctx context.Context, kind TokenKind, secret string) (Token, error) {
	if !strings.HasPrefix(secret, kind.prefix()) {
		return Token{}, ErrUnauthenticated
	}
	lookup := func() (Token, error) {
		return scanToken(s.db.QueryRowContext(ctx, `SELECT `+tokenColumns+` FROM tokens WHERE hash = ? AND kind = ?`, digest(secret), string(kind)))
	}
	t, err := lookup()
	if errors.Is(err, ErrNotFound) && s.refreshOnMiss(ctx) {
		t, err = lookup() // made on another replica a moment ago?
	}
	if errors.Is(err, ErrNotFound) {
		return Token{}, ErrUnauthenticated
	}
	if err != nil {
		return Token{}, err
	}
	if !t.Active() {
		return Token{}, ErrRevoked
	}
	if now := s.now().UTC(); now.Sub(t.LastUsed) >= touchEvery {
		if _, err := s.exec(ctx, "touch token", `UPDATE tokens SET last_used_ns = ? WHERE id = ?`, now.UnixNano(), t.ID); err != nil {
			return Token{}, err
		}
		t.LastUsed = now
		s.touchShared(tokenKey(t.ID))
	}
	return t, nil
}
