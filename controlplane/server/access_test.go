package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"golang.org/x/crypto/bcrypt"

	"github.com/pilothouse/pilothouse/controlplane/audit"
	"github.com/pilothouse/pilothouse/controlplane/auth"
)

// testClock is a settable clock for session expiry.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// env is a control plane served in process, with a user per role.
type env struct {
	srv    *Server
	h      http.Handler
	clock  *testClock
	tokens map[auth.Role]string       // API token per role
	cookie map[auth.Role]auth.Session // session per role
}

func newEnv(t *testing.T, sharedAgentToken string) *env {
	t.Helper()
	c := &testClock{t: time.Now().UTC()}
	srv, err := New(Config{DataDir: t.TempDir(), AgentToken: sharedAgentToken, AdminPassword: testAdminPassword,
		Auth: auth.Config{BcryptCost: bcrypt.MinCost}, Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	e := &env{srv: srv, h: srv.Handler(), clock: c, tokens: map[auth.Role]string{}, cookie: map[auth.Role]auth.Session{}}
	ctx := context.Background()
	for _, role := range auth.Roles {
		name := "user-" + string(role)
		u, err := srv.Auth().CreateUser(ctx, name, "password-"+name, role)
		if err != nil {
			t.Fatal(err)
		}
		if e.cookie[role], err = srv.Auth().CreateSession(ctx, u); err != nil {
			t.Fatal(err)
		}
		e.tokens[role] = apiToken(t, srv, role)
	}
	return e
}

type call struct {
	method, path, body string
	bearer             string
	session            *auth.Session
	csrf               string // header value; "session" means the session's token
	header             map[string]string
	cookies            []*http.Cookie
	ctx                context.Context // nil: the test's own
}

func (e *env) do(t *testing.T, c call) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(c.method, c.path, strings.NewReader(c.body))
	if c.ctx != nil {
		r = r.WithContext(c.ctx)
	}
	r.RemoteAddr = "192.0.2.10:4321"
	if c.body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	if c.bearer != "" {
		r.Header.Set("Authorization", "Bearer "+c.bearer)
	}
	if c.session != nil {
		r.AddCookie(&http.Cookie{Name: auth.SessionCookie, Value: c.session.ID})
		if c.csrf == "session" {
			r.Header.Set(auth.HeaderCSRF, c.session.CSRF())
		}
	}
	if c.csrf != "" && c.csrf != "session" {
		r.Header.Set(auth.HeaderCSRF, c.csrf)
	}
	for k, v := range c.header {
		r.Header.Set(k, v)
	}
	for _, ck := range c.cookies {
		r.AddCookie(ck)
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	return w
}

func policyBody(service string) string {
	return fmt.Sprintf(`{"service":%q,"version":0,"degradations":[{"id":"off","match":{"route":"/x"},"enabled":true,"fallback":{"status":200,"body":"{}"}}]}`, service)
}

// TestRolesByEndpointClass: every role against every class of endpoint,
// with API tokens (no CSRF involved).
func TestRolesByEndpointClass(t *testing.T) {
	e := newEnv(t, "")
	type endpoint struct {
		name         string
		method, path string
		body         func(role string) string
	}
	endpoints := []endpoint{
		{name: "read API", method: "GET", path: "/api/v1/services"},
		{name: "read dashboard", method: "GET", path: "/traces"},
		{name: "metrics", method: "GET", path: "/metrics"},
		{name: "audit API", method: "GET", path: "/api/v1/audit"},
		{name: "audit page", method: "GET", path: "/audit"},
		{name: "put policy", method: "PUT", path: "/api/v1/policies/svc-%s", body: func(role string) string { return policyBody("svc-" + role) }},
		{name: "admin page", method: "GET", path: "/admin"},
		{name: "list users", method: "GET", path: "/api/v1/users"},
		{name: "create token", method: "POST", path: "/api/v1/tokens", body: func(role string) string { return `{"kind":"api","name":"made-by-` + role + `","role":"viewer"}` }},
	}
	want := map[string]map[string]int{
		"read API":       {"anonymous": 401, "viewer": 200, "operator": 200, "admin": 200},
		"read dashboard": {"anonymous": 302, "viewer": 200, "operator": 200, "admin": 200},
		"metrics":        {"anonymous": 401, "viewer": 200, "operator": 200, "admin": 200},
		"audit API":      {"anonymous": 401, "viewer": 200, "operator": 200, "admin": 200},
		"audit page":     {"anonymous": 302, "viewer": 200, "operator": 200, "admin": 200},
		"put policy":     {"anonymous": 401, "viewer": 403, "operator": 200, "admin": 200},
		"admin page":     {"anonymous": 302, "viewer": 403, "operator": 403, "admin": 200},
		"list users":     {"anonymous": 401, "viewer": 403, "operator": 403, "admin": 200},
		"create token":   {"anonymous": 401, "viewer": 403, "operator": 403, "admin": 201},
	}
	for _, ep := range endpoints {
		for _, who := range []string{"anonymous", "viewer", "operator", "admin"} {
			t.Run(ep.name+"/"+who, func(t *testing.T) {
				c := call{method: ep.method, path: ep.path}
				if strings.Contains(c.path, "%s") {
					c.path = fmt.Sprintf(c.path, who)
				}
				if ep.body != nil {
					c.body = ep.body(who)
				}
				if who != "anonymous" {
					c.bearer = e.tokens[auth.Role(who)]
				}
				w := e.do(t, c)
				if got := w.Code; got != want[ep.name][who] {
					t.Errorf("got %d, want %d: %s", got, want[ep.name][who], w.Body)
				}
			})
		}
	}
}

func TestPublicRoutesAndRedirects(t *testing.T) {
	e := newEnv(t, "")
	tests := []struct {
		name         string
		call         call
		wantCode     int
		wantLocation string
	}{
		{name: "healthz", call: call{method: "GET", path: "/healthz"}, wantCode: 200},
		{name: "login page", call: call{method: "GET", path: "/login"}, wantCode: 200},
		{name: "static", call: call{method: "GET", path: "/static/pilothouse.css"}, wantCode: 200},
		{name: "access CSS", call: call{method: "GET", path: "/static/auth/auth.css"}, wantCode: 200},
		{name: "browser to login with next", call: call{method: "GET", path: "/traces?status=error"}, wantCode: 302, wantLocation: "/login?next=%2Ftraces%3Fstatus%3Derror"},
		{name: "JSON client gets 401", call: call{method: "GET", path: "/traces", header: map[string]string{"Accept": "application/json"}}, wantCode: 401},
		{name: "htmx gets HX-Redirect", call: call{method: "GET", path: "/traces", header: map[string]string{"HX-Request": "true"}}, wantCode: 401},
		{name: "static path trick", call: call{method: "GET", path: "/static/../admin"}, wantCode: 302, wantLocation: "/login?next=%2Fstatic%2F..%2Fadmin"},
		{name: "revoked-looking bearer", call: call{method: "GET", path: "/api/v1/services", bearer: "pha_nope"}, wantCode: 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := e.do(t, tt.call)
			if w.Code != tt.wantCode {
				t.Fatalf("got %d, want %d: %s", w.Code, tt.wantCode, w.Body)
			}
			if tt.wantLocation != "" && w.Header().Get("Location") != tt.wantLocation {
				t.Errorf("Location: got %q, want %q", w.Header().Get("Location"), tt.wantLocation)
			}
			if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") {
				t.Errorf("CSP: got %q, want frame-ancestors 'none'", csp)
			}
		})
	}
}

func TestCSRF(t *testing.T) {
	e := newEnv(t, "")
	op := e.cookie[auth.RoleOperator]
	tests := []struct {
		name     string
		csrf     string
		service  string
		wantCode int
	}{
		{name: "missing", csrf: "", service: "a", wantCode: 403},
		{name: "wrong", csrf: "not-the-token", service: "b", wantCode: 403},
		{name: "another session's", csrf: e.cookie[auth.RoleAdmin].CSRF(), service: "c", wantCode: 403},
		{name: "right", csrf: "session", service: "d", wantCode: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := e.do(t, call{method: "PUT", path: "/api/v1/policies/" + tt.service, body: policyBody(tt.service), session: &op, csrf: tt.csrf})
			if w.Code != tt.wantCode {
				t.Errorf("got %d, want %d: %s", w.Code, tt.wantCode, w.Body)
			}
		})
	}
	// A GET with the session needs no token.
	if w := e.do(t, call{method: "GET", path: "/api/v1/services", session: &op}); w.Code != 200 {
		t.Errorf("GET with session: got %d, want 200", w.Code)
	}
	// Form field works for HTML forms.
	adm := e.cookie[auth.RoleAdmin]
	r := httptest.NewRequest("POST", "/admin/users", strings.NewReader(url.Values{"csrf_token": {adm.CSRF()}, "name": {"frank"}, "role": {"viewer"}}.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.AddCookie(&http.Cookie{Name: auth.SessionCookie, Value: adm.ID})
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	if w.Code != 200 || !strings.Contains(w.Body.String(), `data-testid="new-secret-value"`) {
		t.Errorf("create user by form: got %d, want 200 with the password shown once", w.Code)
	}
}

// login runs the browser flow: GET /login for the form token, POST it.
func (e *env) login(t *testing.T, user, password, ip string) *httptest.ResponseRecorder {
	t.Helper()
	w := e.do(t, call{method: "GET", path: "/login?next=/traces"})
	tok := regexp.MustCompile(`name="csrf_token" value="([^"]+)"`).FindStringSubmatch(w.Body.String())
	if tok == nil {
		t.Fatalf("login form without a token: %s", w.Body)
	}
	form := url.Values{"csrf_token": {tok[1]}, "username": {user}, "password": {password}, "next": {"/traces"}}
	r := httptest.NewRequest("POST", "/login", strings.NewReader(form.Encode()))
	r.RemoteAddr = ip + ":5555"
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, ck := range w.Result().Cookies() {
		r.AddCookie(ck)
	}
	out := httptest.NewRecorder()
	e.h.ServeHTTP(out, r)
	return out
}

func sessionCookie(w *httptest.ResponseRecorder) *http.Cookie {
	for _, ck := range w.Result().Cookies() {
		if ck.Name == auth.SessionCookie && ck.Value != "" {
			return ck
		}
	}
	return nil
}

func TestLoginLogoutAndExpiry(t *testing.T) {
	e := newEnv(t, "")
	w := e.login(t, "user-viewer", "password-user-viewer", "198.51.100.1")
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/traces" {
		t.Fatalf("login: got %d to %q, want 303 to /traces", w.Code, w.Header().Get("Location"))
	}
	ck := sessionCookie(w)
	if ck == nil || !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode {
		t.Fatalf("session cookie: got %+v, want HttpOnly SameSite=Lax", ck)
	}
	sess := auth.Session{ID: ck.Value}
	if w := e.do(t, call{method: "GET", path: "/traces", session: &sess}); w.Code != 200 {
		t.Fatalf("with the session: got %d, want 200", w.Code)
	}
	// Logout needs the CSRF token, then ends the session.
	if w := e.do(t, call{method: "POST", path: "/logout", session: &sess}); w.Code != 403 {
		t.Errorf("logout without CSRF: got %d, want 403", w.Code)
	}
	if w := e.do(t, call{method: "POST", path: "/logout", session: &sess, csrf: "session"}); w.Code != http.StatusSeeOther {
		t.Errorf("logout: got %d, want 303", w.Code)
	}
	if w := e.do(t, call{method: "GET", path: "/traces", session: &sess}); w.Code != 302 {
		t.Errorf("after logout: got %d, want 302 to login", w.Code)
	}

	// Idle expiry, on the injected clock.
	w = e.login(t, "user-viewer", "password-user-viewer", "198.51.100.1")
	sess = auth.Session{ID: sessionCookie(w).Value}
	e.clock.add(auth.DefaultIdleTimeout - time.Minute)
	if w := e.do(t, call{method: "GET", path: "/api/v1/services", session: &sess}); w.Code != 200 {
		t.Errorf("just before idle expiry: got %d, want 200", w.Code)
	}
	e.clock.add(auth.DefaultIdleTimeout + time.Minute)
	if w := e.do(t, call{method: "GET", path: "/api/v1/services", session: &sess}); w.Code != 401 {
		t.Errorf("after idle expiry: got %d, want 401", w.Code)
	}

	// Open redirects are refused.
	if got := e.login(t, "user-viewer", "password-user-viewer", "198.51.100.1"); got.Code != http.StatusSeeOther {
		t.Fatalf("login: %d", got.Code)
	}
}

func TestLoginRateLimit(t *testing.T) {
	e := newEnv(t, "")
	for i := 0; i < auth.DefaultUserBurst; i++ {
		if w := e.login(t, "user-admin", "wrong-password", "203.0.113.7"); w.Code != 401 {
			t.Fatalf("attempt %d: got %d, want 401", i, w.Code)
		}
	}
	w := e.login(t, "user-admin", "password-user-admin", "203.0.113.8")
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") == "" {
		t.Errorf("after %d failures: got %d, Retry-After %q; want 429 with Retry-After", auth.DefaultUserBurst, w.Code, w.Header().Get("Retry-After"))
	}
	// Another user from another address is not affected.
	if w := e.login(t, "user-viewer", "password-user-viewer", "203.0.113.9"); w.Code != http.StatusSeeOther {
		t.Errorf("other user: got %d, want 303", w.Code)
	}
	if body := e.do(t, call{method: "GET", path: "/metrics", bearer: e.tokens[auth.RoleViewer]}).Body.String(); !strings.Contains(body, `pilothouse_auth_failures_total{kind="login_throttled"} 1`) ||
		!strings.Contains(body, `pilothouse_auth_failures_total{kind="login"} 5`) {
		t.Errorf("metrics lack the login failures: %s", grepLines(body, "pilothouse_auth_failures_total"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestTokenRevoke(t *testing.T) {
	e := newEnv(t, "")
	w := e.do(t, call{method: "POST", path: "/api/v1/tokens", bearer: e.tokens[auth.RoleAdmin], body: `{"kind":"api","name":"ci","role":"operator"}`})
	var created struct {
		Secret string
		Token  auth.Token
	}
	if err := json.Unmarshal(w.Body.Bytes(), &created); w.Code != 201 || err != nil {
		t.Fatalf("create: got %d %s", w.Code, w.Body)
	}
	id, secret := created.Token.ID, created.Secret
	if w := e.do(t, call{method: "GET", path: "/api/v1/services", bearer: secret}); w.Code != 200 {
		t.Fatalf("new token: got %d, want 200", w.Code)
	}
	if w := e.do(t, call{method: "DELETE", path: "/api/v1/tokens/" + id, bearer: e.tokens[auth.RoleAdmin]}); w.Code != 200 {
		t.Fatalf("revoke: got %d %s", w.Code, w.Body)
	}
	if w := e.do(t, call{method: "GET", path: "/api/v1/services", bearer: secret}); w.Code != 401 {
		t.Errorf("revoked token: got %d, want 401", w.Code)
	}
}

const heartbeatOrders = `{"service":"orders","instance_id":"orders-1","started_at":"2026-11-24T14:00:00Z","sent_at":"2026-11-24T14:05:00Z","interval":"5s","telemetry":{}}`

func TestAgentTokens(t *testing.T) {
	e := newEnv(t, "shared-secret")
	ctx := context.Background()
	orders, _, err := e.srv.Auth().CreateToken(ctx, auth.NewToken{Kind: auth.KindAgent, Name: "orders-agents", Services: []string{"orders"}})
	if err != nil {
		t.Fatal(err)
	}
	checkout, _, _ := e.srv.Auth().CreateToken(ctx, auth.NewToken{Kind: auth.KindAgent, Name: "checkout-agents", Services: []string{"checkout"}})
	tests := []struct {
		name     string
		call     call
		wantCode int
	}{
		{"traces, shared token", call{method: "POST", path: "/v1/traces", body: otlpTraceJSON, bearer: "shared-secret"}, 200},
		{"traces, no token", call{method: "POST", path: "/v1/traces", body: otlpTraceJSON}, 401},
		{"traces, wrong token", call{method: "POST", path: "/v1/traces", body: otlpTraceJSON, bearer: "phg_wrong"}, 401},
		{"traces, API token", call{method: "POST", path: "/v1/traces", body: otlpTraceJSON, bearer: e.tokens[auth.RoleAdmin]}, 401},
		{"traces, token of its service", call{method: "POST", path: "/v1/traces", body: otlpTraceJSON, bearer: checkout}, 200},
		{"traces, token of another service", call{method: "POST", path: "/v1/traces", body: otlpTraceJSON, bearer: orders}, 403},
		{"logs, token of another service", call{method: "POST", path: "/v1/logs", body: otlpLogJSON, bearer: orders}, 403},
		{"heartbeat, its service", call{method: "POST", path: "/api/v1/agents/heartbeat", body: heartbeatOrders, bearer: orders}, 200},
		{"heartbeat, another service", call{method: "POST", path: "/api/v1/agents/heartbeat", body: heartbeatOrders, bearer: checkout}, 401},
		{"long-poll, its service", call{method: "GET", path: "/api/v1/agents/policy?service=orders&wait=0s", bearer: orders}, 200},
		{"long-poll, another service", call{method: "GET", path: "/api/v1/agents/policy?service=payments&wait=0s", bearer: orders}, 401},
		{"agent token is not a user token", call{method: "GET", path: "/api/v1/services", bearer: orders}, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if w := e.do(t, tt.call); w.Code != tt.wantCode {
				t.Errorf("got %d, want %d: %s", w.Code, tt.wantCode, w.Body)
			}
		})
	}
	metrics := e.do(t, call{method: "GET", path: "/metrics", bearer: e.tokens[auth.RoleViewer]}).Body.String()
	if !strings.Contains(metrics, `pilothouse_auth_failures_total{kind="agent"} 7`) {
		t.Errorf("agent failures: got %s, want 7", grepLines(metrics, `kind="agent"`))
	}
	// Seven failures from one address within a minute: one audit event.
	events, _ := e.srv.Audit().List(ctx, audit.Filter{Action: audit.ActionAgentAuthFailed})
	if len(events) != 1 || events[0].Remote != "192.0.2.10" {
		t.Errorf("got %+v, want one agent_auth_failed event from 192.0.2.10", events)
	}
	e.clock.add(time.Minute)
	e.do(t, call{method: "POST", path: "/v1/traces", body: otlpTraceJSON, bearer: "phg_wrong"})
	if events, _ := e.srv.Audit().List(ctx, audit.Filter{Action: audit.ActionAgentAuthFailed}); len(events) != 2 {
		t.Errorf("a minute later: got %d events, want 2", len(events))
	}
}

// TestClientGoneIsNotAFailedSignIn: a request whose client hung up while
// its credentials were being looked up (an agent's long-poll it gave up on)
// is neither counted nor audited as a refusal.
func TestClientGoneIsNotAFailedSignIn(t *testing.T) {
	e := newEnv(t, "shared-secret")
	ctx := context.Background()
	orders, _, err := e.srv.Auth().CreateToken(ctx, auth.NewToken{Kind: auth.KindAgent, Name: "orders-agents", Services: []string{"orders"}})
	if err != nil {
		t.Fatal(err)
	}
	gone, cancel := context.WithCancel(ctx)
	cancel()
	e.do(t, call{method: "GET", path: "/api/v1/agents/policy?service=orders&wait=0s", bearer: orders, ctx: gone})
	e.do(t, call{method: "GET", path: "/api/v1/services", bearer: e.tokens[auth.RoleViewer], ctx: gone})
	metrics := e.do(t, call{method: "GET", path: "/metrics", bearer: e.tokens[auth.RoleViewer]}).Body.String()
	if lines := grepLines(metrics, "pilothouse_auth_failures_total{"); strings.Contains(lines, `kind="agent"} 1`) || strings.Contains(lines, `kind="token"} 1`) {
		t.Errorf("auth failures: got %s, want none for clients that hung up", lines)
	}
	if events, _ := e.srv.Audit().List(ctx, audit.Filter{Action: audit.ActionAgentAuthFailed}); len(events) != 0 {
		t.Errorf("got %+v, want no agent_auth_failed event", events)
	}
	// The same token with a live client still works.
	if w := e.do(t, call{method: "GET", path: "/api/v1/agents/policy?service=orders&wait=0s", bearer: orders}); w.Code != 200 {
		t.Errorf("live long-poll: got %d, want 200", w.Code)
	}
}

// TestAgentsOpenUntilATokenExists keeps the pre-auth behaviour for
// installs with no agent token at all.
func TestAgentsOpenUntilATokenExists(t *testing.T) {
	e := newEnv(t, "")
	if w := e.do(t, call{method: "POST", path: "/v1/traces", body: otlpTraceJSON}); w.Code != 200 {
		t.Fatalf("no agent tokens: got %d, want 200", w.Code)
	}
	e.srv.Auth().CreateToken(context.Background(), auth.NewToken{Kind: auth.KindAgent, Name: "first"})
	if w := e.do(t, call{method: "POST", path: "/v1/traces", body: otlpTraceJSON}); w.Code != 401 {
		t.Errorf("once a token exists: got %d, want 401", w.Code)
	}
}

// TestAuditTrail: every kind of event lands in the audit log, and no
// route edits or deletes it.
func TestAuditTrail(t *testing.T) {
	e := newEnv(t, "")
	admin := e.tokens[auth.RoleAdmin]
	e.login(t, "user-viewer", "password-user-viewer", "198.51.100.1")
	e.login(t, "user-viewer", "not-it", "198.51.100.1")
	w := e.login(t, "user-operator", "password-user-operator", "198.51.100.1")
	op := auth.Session{ID: sessionCookie(w).Value}
	e.do(t, call{method: "PUT", path: "/api/v1/policies/orders", body: policyBody("orders"), session: &op, csrf: "session"})
	e.do(t, call{method: "PUT", path: "/api/v1/policies/orders", body: strings.Replace(policyBody("orders"), `"version":0`, `"version":1`, 1), session: &op, csrf: "session"})
	e.do(t, call{method: "POST", path: "/api/v1/policies/orders/rollback", body: `{"to":1,"base_version":2}`, session: &op, csrf: "session"})
	e.do(t, call{method: "POST", path: "/logout", session: &op, csrf: "session"})
	e.do(t, call{method: "POST", path: "/api/v1/users", bearer: admin, body: `{"name":"gina","role":"viewer"}`})
	e.do(t, call{method: "PATCH", path: "/api/v1/users/gina", bearer: admin, body: `{"role":"operator"}`})
	e.do(t, call{method: "DELETE", path: "/api/v1/users/gina", bearer: admin})
	w = e.do(t, call{method: "POST", path: "/api/v1/tokens", bearer: admin, body: `{"kind":"agent","name":"edge","services":["orders"]}`})
	id := regexp.MustCompile(`"id":"([0-9a-f]+)"`).FindStringSubmatch(w.Body.String())[1]
	e.do(t, call{method: "DELETE", path: "/api/v1/tokens/" + id, bearer: admin})
	e.srv.Auth().CreateToken(context.Background(), auth.NewToken{Kind: auth.KindAgent, Name: "x"})
	e.do(t, call{method: "POST", path: "/v1/traces", body: otlpTraceJSON, bearer: "phg_bad"})

	events, err := e.srv.Audit().List(context.Background(), audit.Filter{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]audit.Event{}
	for _, ev := range events {
		seen[ev.Action] = ev
	}
	for _, action := range audit.Actions {
		if _, ok := seen[action]; !ok {
			t.Errorf("no %s event; got %v", action, events)
		}
	}
	if up := seen[audit.ActionPolicyUpdate]; up.Actor != "user-operator" || up.Target != "orders" || !strings.Contains(up.Diff, "+") || up.Remote != "192.0.2.10" {
		t.Errorf("policy update: got %+v, want who, what, from where and the diff", up)
	}
	if lf := seen[audit.ActionLoginFailed]; lf.Actor != "user-viewer" {
		t.Errorf("login failed: got actor %q, want user-viewer", lf.Actor)
	}

	// No route changes the audit log, whatever the role.
	for _, m := range []string{"PUT", "PATCH", "DELETE", "POST"} {
		w := e.do(t, call{method: m, path: "/api/v1/audit", bearer: admin, body: "{}"})
		if w.Code != http.StatusMethodNotAllowed && w.Code != http.StatusNotFound {
			t.Errorf("%s /api/v1/audit: got %d, want 405", m, w.Code)
		}
	}
	after, _ := e.srv.Audit().List(context.Background(), audit.Filter{Limit: 100})
	if len(after) != len(events) {
		t.Errorf("got %d events after edit attempts, want %d", len(after), len(events))
	}
	// The page shows them.
	page := e.do(t, call{method: "GET", path: "/audit?action=policy_update", bearer: e.tokens[auth.RoleViewer]}).Body.String()
	if !strings.Contains(page, `data-testid="audit-diff"`) || strings.Count(page, `data-testid="audit-row"`) != 2 {
		t.Errorf("audit page: want two policy_update rows with their diffs")
	}
}

// TestEveryPageHasTheSameHeader: the access pages (audit, admin) show the
// dashboard's header, so moving between them keeps the navigation, the
// search box and the account links.
func TestEveryPageHasTheSameHeader(t *testing.T) {
	e := newEnv(t, "")
	adm := e.cookie[auth.RoleAdmin]
	header := func(path string) string {
		t.Helper()
		w := e.do(t, call{method: "GET", path: path, session: &adm})
		if w.Code != 200 {
			t.Fatalf("GET %s: got %d, want 200", path, w.Code)
		}
		doc, err := goquery.NewDocumentFromReader(w.Body)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		doc.Find(`[data-testid="header"] [data-testid]`).Each(func(_ int, s *goquery.Selection) {
			id, _ := s.Attr("data-testid")
			ids = append(ids, id)
		})
		return strings.Join(ids, " ")
	}
	want := header("/")
	for _, id := range []string{"nav-map", "nav-policies", "search-form", "nav-audit", "nav-admin", "logout-form"} {
		if !strings.Contains(want, id) {
			t.Fatalf("overview header %q: want %s in it", want, id)
		}
	}
	for _, path := range []string{"/traces", "/audit", "/admin"} {
		if got := header(path); got != want {
			t.Errorf("header of %s:\ngot  %s\nwant %s (the overview's)", path, got, want)
		}
	}
}

// TestRevokedTokensAreFoldedAway: the admin page lists active agent
// tokens in the open and the revoked ones under a collapsed "N revoked
// tokens".
func TestRevokedTokensAreFoldedAway(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	_, old, err := e.srv.Auth().CreateToken(ctx, auth.NewToken{Kind: auth.KindAgent, Name: "orders-old", Services: []string{"orders"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.srv.Auth().RevokeToken(ctx, old.ID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.srv.Auth().CreateToken(ctx, auth.NewToken{Kind: auth.KindAgent, Name: "orders-new", Services: []string{"orders"}}); err != nil {
		t.Fatal(err)
	}
	adm := e.cookie[auth.RoleAdmin]
	w := e.do(t, call{method: "GET", path: "/admin", session: &adm})
	doc, err := goquery.NewDocumentFromReader(w.Body)
	if err != nil {
		t.Fatal(err)
	}
	folded := doc.Find(`[data-testid="revoked-tokens"]`)
	if got := strings.TrimSpace(folded.Find("summary").Text()); got != "1 revoked token" {
		t.Errorf("summary: got %q, want 1 revoked token", got)
	}
	if _, open := folded.Attr("open"); open {
		t.Error("the revoked tokens are unfolded, want them folded")
	}
	if folded.Find(`[data-token="orders-old"]`).Length() != 1 || folded.Find(`[data-token="orders-new"]`).Length() != 0 {
		t.Error("folded away: want the revoked token only")
	}
	if doc.Find(`[data-token="orders-new"]`).Length() != 1 {
		t.Error("the active token is not listed")
	}
}
