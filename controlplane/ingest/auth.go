package ingest

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"strings"

	"github.com/pilothouse/pilothouse/agent/wire"
)

// BearerToken returns an Authenticate function that accepts requests
// carrying "Authorization: Bearer <token>" and refuses others with an
// error wrapping ErrUnauthorized. The comparison takes the same time
// whatever the presented token. An empty token returns nil: no
// authentication. The returned function is safe for concurrent use.
func BearerToken(token string) func(*http.Request) error {
	if token == "" {
		return nil
	}
	// Comparing digests keeps the comparison constant-time even when the
	// lengths differ.
	want := sha256.Sum256([]byte(token))
	return func(r *http.Request) error {
		h := r.Header.Get(wire.HeaderAuthorization)
		scheme, got, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return fmt.Errorf("%w: missing bearer token", ErrUnauthorized)
		}
		sum := sha256.Sum256([]byte(strings.TrimSpace(got)))
		if subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
			return fmt.Errorf("%w: invalid token", ErrUnauthorized)
		}
		return nil
	}
}
