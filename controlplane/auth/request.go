package auth

import (
	"context"
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"
	"time"
)

// Names used on the wire.
const (
	// SessionCookie holds the session ID on plain HTTP; over TLS the
	// cookie is SecureSessionCookie, whose __Host- prefix makes the
	// browser refuse it unless Secure, host-only and Path=/.
	SessionCookie       = "pilothouse_session"
	SecureSessionCookie = "__Host-pilothouse_session"
	// HeaderCSRF carries the CSRF token on htmx and fetch requests.
	HeaderCSRF = "X-CSRF-Token"
	// FormCSRF carries the CSRF token in HTML forms.
	FormCSRF = "csrf_token"
)

// Method says how a request was authenticated.
type Method string

// Methods.
const (
	MethodSession Method = "session"
	MethodToken   Method = "token"
)

// Identity is who makes a request.
type Identity struct {
	// Name is the user name, or "token:<name>" for an API token.
	Name   string
	Role   Role
	Method Method
	// TokenID is set for API tokens.
	TokenID string
	csrf    string
}

type identityKey struct{}

// WithIdentity returns ctx carrying id.
func WithIdentity(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// UserFrom returns the identity the server's middleware found for the
// request whose context is ctx.
func UserFrom(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(Identity)
	return id, ok
}

// CSRFToken returns the CSRF token to embed in pages for the session of
// ctx, or "" without a session. Pages put it in forms as FormCSRF and in
// hx-headers as HeaderCSRF.
func CSRFToken(ctx context.Context) string {
	id, _ := UserFrom(ctx)
	return id.csrf
}

// bearer returns the bearer token of r, if any.
func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	return strings.TrimSpace(tok), true
}

// Bearer returns the bearer token of r, if any.
func Bearer(r *http.Request) (string, bool) { return bearer(r) }

// SessionID returns the session cookie's value, or "".
func SessionID(r *http.Request) string {
	for _, name := range []string{SecureSessionCookie, SessionCookie} {
		if c, err := r.Cookie(name); err == nil && c.Value != "" {
			return c.Value
		}
	}
	return ""
}

// Identify finds who makes r: an API token in "Authorization: Bearer"
// first, else the session cookie. Errors: ErrUnauthenticated (nothing
// valid presented), ErrExpired, ErrRevoked, or a storage error.
func (s *Store) Identify(r *http.Request) (Identity, error) {
	if tok, ok := bearer(r); ok {
		t, err := s.LookupToken(r.Context(), KindAPI, tok)
		if err != nil {
			return Identity{}, err
		}
		return Identity{Name: "token:" + t.Name, Role: t.Role, Method: MethodToken, TokenID: t.ID}, nil
	}
	id := SessionID(r)
	if id == "" {
		return Identity{}, ErrUnauthenticated
	}
	sess, err := s.Session(r.Context(), id)
	if err != nil {
		return Identity{}, err
	}
	return Identity{Name: sess.User.Name, Role: sess.User.Role, Method: MethodSession, csrf: sess.CSRF()}, nil
}

// Unsafe reports whether method changes state (anything but GET, HEAD,
// OPTIONS, TRACE).
func Unsafe(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return false
	}
	return true
}

// CheckCSRF guards a state-changing request made with a session cookie:
// it needs the session's token in the HeaderCSRF header or the FormCSRF
// form field. Requests with a bearer token carry no ambient credential and
// pass, as do safe methods.
func CheckCSRF(r *http.Request, id Identity) error {
	if id.Method != MethodSession || !Unsafe(r.Method) {
		return nil
	}
	got := r.Header.Get(HeaderCSRF)
	if got == "" {
		got = r.PostFormValue(FormCSRF)
	}
	if got == "" || !equalSecret(got, id.csrf) {
		return ErrCSRF
	}
	return nil
}

func equalSecret(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// SetSessionCookie sends the session cookie: HttpOnly, SameSite=Lax,
// Secure (and __Host- prefixed) when secure, expiring with the session's
// absolute timeout. Lax rather than Strict: a link to a trace pasted in
// chat must open signed in; CSRF tokens guard every state change.
func (s *Store) SetSessionCookie(w http.ResponseWriter, sess Session, secure bool) {
	name := SessionCookie
	if secure {
		name = SecureSessionCookie
	}
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: sess.ID, Path: "/",
		Expires:  sess.Created.Add(s.cfg.AbsoluteTimeout),
		MaxAge:   int(s.cfg.AbsoluteTimeout / time.Second),
		HttpOnly: true, Secure: secure, SameSite: http.SameSiteLaxMode,
	})
}

// ClearSessionCookie removes the session cookie.
func ClearSessionCookie(w http.ResponseWriter, secure bool) {
	name := SessionCookie
	if secure {
		name = SecureSessionCookie
	}
	http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: secure, SameSite: http.SameSiteLaxMode})
}

// IsAuthError reports whether err means "present valid credentials"
// rather than a server failure.
func IsAuthError(err error) bool {
	return errors.Is(err, ErrUnauthenticated) || errors.Is(err, ErrExpired) || errors.Is(err, ErrRevoked)
}
