package server

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/pilothouse/pilothouse/controlplane/auth"
)

// TestMetricsToken: Config.MetricsToken opens GET /metrics and nothing
// else; a viewer still reads /metrics; nobody else does.
func TestMetricsToken(t *testing.T) {
	const token = "scrape-token-for-tests"
	srv, err := New(Config{DataDir: t.TempDir(), AdminPassword: testAdminPassword, Auth: auth.Config{BcryptCost: bcrypt.MinCost},
		MetricsToken: token})
	if err != nil {
		t.Fatalf("new server: %v", err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	viewer := apiToken(t, srv, auth.RoleViewer)
	tests := []struct {
		name, method, path, bearer string
		want                       int
	}{
		{name: "metrics token reads metrics", method: "GET", path: "/metrics", bearer: token, want: 200},
		{name: "metrics token, another spelling", method: "GET", path: "/./metrics", bearer: token, want: 401},
		{name: "metrics token below metrics", method: "GET", path: "/metrics/x", bearer: token, want: 401},
		{name: "viewer reads metrics", method: "GET", path: "/metrics", bearer: viewer, want: 200},
		{name: "no token", method: "GET", path: "/metrics", want: 401},
		{name: "wrong token", method: "GET", path: "/metrics", bearer: token + "x", want: 401},
		{name: "token prefix", method: "GET", path: "/metrics", bearer: token[:5], want: 401},
		{name: "metrics token on the API", method: "GET", path: "/api/v1/services", bearer: token, want: 401},
		{name: "metrics token on traces", method: "GET", path: "/api/v1/traces", bearer: token, want: 401},
		{name: "metrics token on the dashboard", method: "GET", path: "/", bearer: token, want: 401},
		{name: "metrics token cannot write", method: "POST", path: "/metrics", bearer: token, want: 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, tt.path, nil)
			r.Header.Set("Accept", "application/json")
			if tt.bearer != "" {
				r.Header.Set("Authorization", "Bearer "+tt.bearer)
			}
			w := httptest.NewRecorder()
			srv.Handler().ServeHTTP(w, r)
			if w.Code != tt.want {
				t.Fatalf("%s %s: got %d, want %d", tt.method, tt.path, w.Code, tt.want)
			}
			if w.Code == http.StatusOK && !strings.Contains(w.Body.String(), "pilothouse_leader 1") {
				t.Errorf("body: got no pilothouse_leader gauge")
			}
		})
	}
}

// TestNoMetricsTokenByDefault: without Config.MetricsToken an empty
// bearer opens nothing.
func TestNoMetricsTokenByDefault(t *testing.T) {
	srv, err := New(Config{DataDir: t.TempDir(), AdminPassword: testAdminPassword, Auth: auth.Config{BcryptCost: bcrypt.MinCost}})
	if err != nil {
		t.Fatalf("new server: %v", err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	r := httptest.NewRequest("GET", "/metrics", nil)
	r.Header.Set("Authorization", "Bearer ")
	w := httptest.NewRecorder()
	srv.Handler().ServeHTTP(w, r)
	if w.Code != http.StatusUnauthorized {
		t.Errorf("GET /metrics with an empty bearer: got %d, want 401", w.Code)
	}
}
