package console

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/pilothouse/pilothouse/controlplane/auth"
)

func TestSafeNext(t *testing.T) {
	tests := []struct {
		name, next, want string
	}{
		{"empty", "", "/"},
		{"local path", "/traces?status=error", "/traces?status=error"},
		{"absolute URL", "https://evil.example/", "/"},
		{"scheme-relative", "//evil.example/x", "/"},
		{"backslash trick", "/\\evil.example", "/"},
		{"relative", "traces", "/"},
		{"header injection", "/x\r\nSet-Cookie: a=b", "/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := SafeNext(tt.next); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestStatusOf(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"invalid", fmt.Errorf("%w: role", auth.ErrInvalid), http.StatusBadRequest},
		{"exists", auth.ErrExists, http.StatusConflict},
		{"changed by another replica", fmt.Errorf("auth: revoke token: %w", auth.ErrConflict), http.StatusConflict},
		{"Consul unreachable", fmt.Errorf("auth: create user: %w", auth.ErrUnavailable), http.StatusServiceUnavailable},
		{"other", errors.New("disk full"), http.StatusInternalServerError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := statusOf(tt.err); got != tt.want {
				t.Errorf("got %d, want %d", got, tt.want)
			}
		})
	}
}
