package server

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pilothouse/pilothouse/controlplane/auth"
	"github.com/pilothouse/pilothouse/controlplane/await"
	"github.com/pilothouse/pilothouse/controlplane/consul/consultest"
)

// serveNew runs New(cfg) on a loopback port until the test ends; unlike
// startReplicaWith it leaves the admin password to cfg.
func serveNew(t *testing.T, cfg Config) (string, *Server) {
	t.Helper()
	cfg.DataDir, cfg.Auth = t.TempDir(), auth.Config{}
	url, srv := listenAndServe(t, cfg)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return url, srv
}

// shareWithin bounds the waits for a change to reach the other replica.
const shareWithin = 20 * time.Second

var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// signIn signs in through the login form at base and returns the
// session cookie, or nil.
func signIn(t *testing.T, base, user, password string) *http.Cookie {
	t.Helper()
	resp, err := noRedirects.Get(base + "/login")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	tok := regexp.MustCompile(`name="csrf_token" value="([^"]+)"`).FindSubmatch(page)
	if tok == nil {
		t.Fatalf("login form without a token: %s", page)
	}
	form := url.Values{"csrf_token": {string(tok[1])}, "username": {user}, "password": {password}}
	req, _ := http.NewRequest(http.MethodPost, base+"/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, ck := range resp.Cookies() {
		req.AddCookie(ck)
	}
	resp, err = noRedirects.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, ck := range resp.Cookies() {
		if ck.Name == auth.SessionCookie && ck.Value != "" {
			return ck
		}
	}
	return nil
}

// withSession makes a request to base+path with the session cookie (and
// its CSRF token) and returns the status.
func withSession(t *testing.T, method, base, path string, ck *http.Cookie) int {
	t.Helper()
	req, _ := http.NewRequest(method, base+path, nil)
	req.AddCookie(ck)
	req.Header.Set(auth.HeaderCSRF, auth.Session{ID: ck.Value}.CSRF())
	resp, err := noRedirects.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestReplicasShareUsersAndSessions: two control planes on one Consul,
// behind a load balancer as far as the browser can tell.
func TestReplicasShareUsersAndSessions(t *testing.T) {
	c := consultest.Start(t)
	a, srvA := serveNew(t, Config{Consul: c.Addr})
	password := srvA.InitialAdminPassword()
	if password == "" {
		t.Fatal("first replica: no generated admin password")
	}
	b, srvB := serveNew(t, Config{Consul: c.Addr})
	if got := srvB.InitialAdminPassword(); got != "" {
		t.Fatalf("second replica generated an admin password too")
	}
	if ck := signIn(t, b, auth.AdminName, password); ck == nil {
		t.Fatal("the admin cannot sign in on B with the password A printed")
	}

	// A user created through A's API, with an admin API token made on B.
	admin, _, err := srvB.Auth().CreateToken(context.Background(), auth.NewToken{Kind: auth.KindAPI, Name: "admin-cli", Role: auth.RoleAdmin})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, a+"/api/v1/users", strings.NewReader(`{"name":"olivia","role":"operator","password":"olivia-password"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+admin)
	var resp *http.Response
	await.Until(t, shareWithin, "B's admin token works on A", func() (bool, string) {
		r := req.Clone(context.Background())
		r.Body = io.NopCloser(strings.NewReader(`{"name":"olivia","role":"operator","password":"olivia-password"}`))
		var err error
		if resp, err = http.DefaultClient.Do(r); err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusCreated || resp.StatusCode == http.StatusOK, fmt.Sprintf("create user through A: %d", resp.StatusCode)
	})

	// Signed in on B, the session works on A; logged out on A, B refuses it.
	var ck *http.Cookie
	await.Until(t, shareWithin, "olivia, created through A, signs in on B", func() (bool, string) {
		ck = signIn(t, b, "olivia", "olivia-password")
		return ck != nil, "no session cookie"
	})
	await.Until(t, shareWithin, "B's session works on A", func() (bool, string) {
		code := withSession(t, http.MethodGet, a, "/api/v1/services", ck)
		return code == http.StatusOK, fmt.Sprintf("GET /api/v1/services on A: %d", code)
	})
	if code := withSession(t, http.MethodPost, a, "/logout", ck); code != http.StatusSeeOther {
		t.Fatalf("logout on A: got %d, want 303", code)
	}
	await.Until(t, shareWithin, "a session logged out on A is refused on B", func() (bool, string) {
		code := withSession(t, http.MethodGet, b, "/api/v1/services", ck)
		return code == http.StatusUnauthorized, fmt.Sprintf("GET /api/v1/services on B: %d", code)
	})
}

// TestLeaderSweepsExpiredSessions: expired sessions do not pile up in
// Consul KV; the leader deletes them.
func TestLeaderSweepsExpiredSessions(t *testing.T) {
	c := consultest.Start(t)
	clock := &testClock{t: time.Now().UTC()}
	_, srv := startReplicaWith(t, Config{Consul: c.Addr, Now: clock.now, CompactEvery: 200 * time.Millisecond})
	ctx := context.Background()
	admin, err := srv.Auth().User(ctx, auth.AdminName)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Auth().CreateSession(ctx, admin); err != nil {
		t.Fatal(err)
	}
	sessions := func() []string {
		keys, _, err := c.Client(t).KV().Keys("pilothouse/auth/sessions/", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		return keys
	}
	if got := sessions(); len(got) != 1 {
		t.Fatalf("session keys: got %v, want one", got)
	}
	clock.add(auth.DefaultIdleTimeout + time.Minute)
	await.Until(t, shareWithin, "the leader sweeps the expired session", func() (bool, string) {
		got := sessions()
		return len(got) == 0, fmt.Sprintf("session keys %v", got)
	})
}
