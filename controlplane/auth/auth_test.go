package auth

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func openStore(t *testing.T) (*Store, *clock) {
	t.Helper()
	c := &clock{t: t0}
	s, err := Open(t.TempDir(), Config{BcryptCost: bcrypt.MinCost, Now: c.now})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, c
}

func mustUser(t *testing.T, s *Store, name string, role Role) User {
	t.Helper()
	u, err := s.CreateUser(context.Background(), name, "password-"+name, role)
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	return u
}

func TestEnsureAdmin(t *testing.T) {
	ctx := context.Background()
	s, _ := openStore(t)
	pw, err := s.EnsureAdmin(ctx, "")
	if err != nil || len(pw) != 24 {
		t.Fatalf("got %q, %v; want a generated 24-character password", pw, err)
	}
	if _, err := s.Authenticate(ctx, AdminName, pw); err != nil {
		t.Errorf("admin with the generated password: %v", err)
	}
	again, err := s.EnsureAdmin(ctx, "")
	if err != nil || again != "" {
		t.Errorf("second start: got %q, %v; want nothing generated", again, err)
	}

	s2, _ := openStore(t)
	if pw, err := s2.EnsureAdmin(ctx, "from-the-environment"); err != nil || pw != "" {
		t.Fatalf("got %q, %v; want no generated password", pw, err)
	}
	if u, err := s2.Authenticate(ctx, AdminName, "from-the-environment"); err != nil || u.Role != RoleAdmin {
		t.Errorf("got %+v, %v; want the admin", u, err)
	}
}

func TestAuthenticate(t *testing.T) {
	ctx := context.Background()
	s, _ := openStore(t)
	mustUser(t, s, "alice", RoleOperator)
	mustUser(t, s, "bob", RoleViewer)
	disabled := true
	if _, err := s.UpdateUser(ctx, "bob", UserChange{Disabled: &disabled}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, user, password string
		wantErr              error
	}{
		{"right password", "alice", "password-alice", nil},
		{"wrong password", "alice", "password-bob", ErrBadCredentials},
		{"unknown user", "carol", "password-carol", ErrBadCredentials},
		{"disabled user", "bob", "password-bob", ErrBadCredentials},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := s.Authenticate(ctx, tt.user, tt.password)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("got %v, want %v", err, tt.wantErr)
			}
			if err == nil && (u.Name != tt.user || u.Role != RoleOperator) {
				t.Errorf("got %+v, want alice the operator", u)
			}
		})
	}
}

func TestUserValidationAndLastAdmin(t *testing.T) {
	ctx := context.Background()
	s, _ := openStore(t)
	mustUser(t, s, "root", RoleAdmin)
	viewer, demoted, off := RoleViewer, RoleOperator, true
	tests := []struct {
		name    string
		do      func() error
		wantErr error
	}{
		{"bad name", func() error { _, err := s.CreateUser(ctx, "no spaces", "long-enough", RoleViewer); return err }, ErrInvalid},
		{"short password", func() error { _, err := s.CreateUser(ctx, "eve", "short", RoleViewer); return err }, ErrInvalid},
		{"unknown role", func() error { _, err := s.CreateUser(ctx, "eve", "long-enough", Role("root")); return err }, ErrInvalid},
		{"duplicate", func() error { _, err := s.CreateUser(ctx, "root", "long-enough", RoleViewer); return err }, ErrExists},
		{"demote last admin", func() error { _, err := s.UpdateUser(ctx, "root", UserChange{Role: &demoted}); return err }, ErrLastAdmin},
		{"disable last admin", func() error { _, err := s.UpdateUser(ctx, "root", UserChange{Disabled: &off}); return err }, ErrLastAdmin},
		{"delete last admin", func() error { return s.DeleteUser(ctx, "root") }, ErrLastAdmin},
		{"update unknown", func() error { _, err := s.UpdateUser(ctx, "nobody", UserChange{Role: &viewer}); return err }, ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.do(); !errors.Is(err, tt.wantErr) {
				t.Errorf("got %v, want %v", err, tt.wantErr)
			}
		})
	}
	mustUser(t, s, "second", RoleAdmin)
	if _, err := s.UpdateUser(ctx, "root", UserChange{Role: &demoted}); err != nil {
		t.Errorf("demote with another admin: %v", err)
	}
}

func TestSessionExpiry(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		steps   []time.Duration // time between uses
		wantErr error
	}{
		{name: "fresh", steps: []time.Duration{time.Minute}, wantErr: nil},
		{name: "idle too long", steps: []time.Duration{12*time.Hour + time.Minute}, wantErr: ErrExpired},
		{name: "used often stays", steps: []time.Duration{11 * time.Hour, 11 * time.Hour, 11 * time.Hour}, wantErr: nil},
		{name: "absolute limit", steps: []time.Duration{11 * time.Hour, 11 * time.Hour, 11 * time.Hour, 11 * time.Hour, 11 * time.Hour, 11 * time.Hour, 11 * time.Hour, 11 * time.Hour, 11 * time.Hour, 11 * time.Hour, 11 * time.Hour, 11 * time.Hour, 11 * time.Hour, 11 * time.Hour, 11 * time.Hour, 11 * time.Hour}, wantErr: ErrExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, c := openStore(t)
			u := mustUser(t, s, "alice", RoleViewer)
			sess, err := s.CreateSession(ctx, u)
			if err != nil {
				t.Fatal(err)
			}
			var got error
			for _, d := range tt.steps {
				c.add(d)
				if _, got = s.Session(ctx, sess.ID); got != nil {
					break
				}
			}
			if !errors.Is(got, tt.wantErr) {
				t.Errorf("got %v, want %v", got, tt.wantErr)
			}
			if tt.wantErr != nil {
				// An expired session is gone, not just refused once.
				if _, err := s.Session(ctx, sess.ID); !errors.Is(err, ErrUnauthenticated) {
					t.Errorf("after expiry: got %v, want ErrUnauthenticated", err)
				}
			}
		})
	}
}

func TestSessionEnds(t *testing.T) {
	ctx := context.Background()
	newPW, off := "a-new-password", true
	tests := []struct {
		name string
		end  func(s *Store, sess Session) error
	}{
		{"logout", func(s *Store, sess Session) error { return s.DeleteSession(ctx, sess.ID) }},
		{"password reset", func(s *Store, sess Session) error {
			_, err := s.UpdateUser(ctx, "alice", UserChange{Password: &newPW})
			return err
		}},
		{"user disabled", func(s *Store, sess Session) error {
			_, err := s.UpdateUser(ctx, "alice", UserChange{Disabled: &off})
			return err
		}},
		{"user deleted", func(s *Store, sess Session) error { return s.DeleteUser(ctx, "alice") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := openStore(t)
			u := mustUser(t, s, "alice", RoleViewer)
			sess, err := s.CreateSession(ctx, u)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.Session(ctx, sess.ID); err != nil {
				t.Fatalf("before: %v", err)
			}
			if err := tt.end(s, sess); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Session(ctx, sess.ID); !errors.Is(err, ErrUnauthenticated) {
				t.Errorf("got %v, want ErrUnauthenticated", err)
			}
		})
	}
}

func TestSessionSecretsAreNotStored(t *testing.T) {
	ctx := context.Background()
	s, _ := openStore(t)
	u := mustUser(t, s, "alice", RoleViewer)
	sess, _ := s.CreateSession(ctx, u)
	secret, _, err := s.CreateToken(ctx, NewToken{Kind: KindAPI, Name: "ci", Role: RoleViewer})
	if err != nil {
		t.Fatal(err)
	}
	if len(sess.ID) < 43 {
		t.Errorf("session ID %q: want 256 bits", sess.ID)
	}
	var n int
	s.db.QueryRow(`SELECT COUNT(*) FROM sessions WHERE id_hash = ?`, sess.ID).Scan(&n)
	var m int
	s.db.QueryRow(`SELECT COUNT(*) FROM tokens WHERE hash = ?`, secret).Scan(&m)
	if n != 0 || m != 0 {
		t.Errorf("got secrets stored in clear (%d sessions, %d tokens), want none", n, m)
	}
}

func TestTokens(t *testing.T) {
	ctx := context.Background()
	s, c := openStore(t)
	apiSecret, api, err := s.CreateToken(ctx, NewToken{Kind: KindAPI, Name: "ci", Role: RoleOperator, CreatedBy: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	agentSecret, _, err := s.CreateToken(ctx, NewToken{Kind: KindAgent, Name: "orders", Services: []string{"orders", "orders"}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		kind    TokenKind
		secret  string
		wantErr error
	}{
		{"api token", KindAPI, apiSecret, nil},
		{"agent token", KindAgent, agentSecret, nil},
		{"agent token as api", KindAPI, agentSecret, ErrUnauthenticated},
		{"api token as agent", KindAgent, apiSecret, ErrUnauthenticated},
		{"unknown", KindAPI, "pha_nope", ErrUnauthenticated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := s.LookupToken(ctx, tt.kind, tt.secret); !errors.Is(err, tt.wantErr) {
				t.Errorf("got %v, want %v", err, tt.wantErr)
			}
		})
	}
	c.add(time.Hour)
	got, err := s.LookupToken(ctx, KindAPI, apiSecret)
	if err != nil || !got.LastUsed.Equal(t0.Add(time.Hour)) || got.Role != RoleOperator {
		t.Errorf("got %+v, %v; want last used at t0+1h, role operator", got, err)
	}
	if _, err := s.RevokeToken(ctx, api.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.LookupToken(ctx, KindAPI, apiSecret); !errors.Is(err, ErrRevoked) {
		t.Errorf("revoked: got %v, want ErrRevoked", err)
	}
	list, _ := s.Tokens(ctx, KindAgent)
	if len(list) != 1 || strings.Join(list[0].Services, ",") != "orders" {
		t.Errorf("got %+v, want one agent token limited to orders", list)
	}
	if _, _, err := s.CreateToken(ctx, NewToken{Kind: KindAPI, Name: "x"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("API token without role: got %v, want ErrInvalid", err)
	}
}

func TestLimiter(t *testing.T) {
	l := NewLimiter(time.Minute, 2, 100)
	steps := []struct {
		at       time.Duration
		key      string
		want     bool
		wantWait time.Duration
	}{
		{0, "a", true, 0},
		{0, "a", true, 0},
		{0, "a", false, time.Minute},
		{0, "b", true, 0},
		{30 * time.Second, "a", false, 30 * time.Second},
		{60 * time.Second, "a", true, 0},
		{60 * time.Second, "a", false, time.Minute},
	}
	for i, s := range steps {
		ok, wait := l.Allow(s.key, t0.Add(s.at))
		if ok != s.want || wait != s.wantWait {
			t.Errorf("step %d: got %v, %v; want %v, %v", i, ok, wait, s.want, s.wantWait)
		}
	}
}

func TestLimiterBoundsKeys(t *testing.T) {
	l := NewLimiter(time.Minute, 1, 10)
	for i := 0; i < 1000; i++ {
		l.Allow(strings.Repeat("k", i), t0)
	}
	if n := len(l.buckets); n > 10 {
		t.Errorf("got %d keys, want at most 10", n)
	}
}

func TestLoginLimiter(t *testing.T) {
	l := NewLoginLimiter()
	for i := 0; i < DefaultUserBurst; i++ {
		if ok, _ := l.Allow("alice", "10.0.0.1", t0); !ok {
			t.Fatalf("attempt %d refused", i)
		}
	}
	if ok, wait := l.Allow("alice", "10.0.0.2", t0); ok || wait != DefaultUserEvery {
		t.Errorf("per user: got %v, %v; want refused for %v", ok, wait, DefaultUserEvery)
	}
	for i := 0; i < DefaultIPBurst-DefaultUserBurst; i++ {
		l.Allow("user"+strings.Repeat("x", i), "10.0.0.1", t0)
	}
	if ok, wait := l.Allow("zed", "10.0.0.1", t0); ok || wait != DefaultIPEvery {
		t.Errorf("per IP: got %v, %v; want refused for %v", ok, wait, DefaultIPEvery)
	}
}

func TestIdentifyAndCSRF(t *testing.T) {
	ctx := context.Background()
	s, _ := openStore(t)
	u := mustUser(t, s, "alice", RoleOperator)
	sess, _ := s.CreateSession(ctx, u)
	apiSecret, _, _ := s.CreateToken(ctx, NewToken{Kind: KindAPI, Name: "ci", Role: RoleViewer})

	tests := []struct {
		name     string
		method   string
		cookie   string
		bearer   string
		header   string
		form     string
		wantName string
		wantErr  error
		wantCSRF error
	}{
		{name: "session GET", method: "GET", cookie: sess.ID, wantName: "alice"},
		{name: "session POST without token", method: "POST", cookie: sess.ID, wantName: "alice", wantCSRF: ErrCSRF},
		{name: "session POST wrong header", method: "POST", cookie: sess.ID, header: "nope", wantName: "alice", wantCSRF: ErrCSRF},
		{name: "session PUT right header", method: "PUT", cookie: sess.ID, header: sess.CSRF(), wantName: "alice"},
		{name: "session POST right form field", method: "POST", cookie: sess.ID, form: sess.CSRF(), wantName: "alice"},
		{name: "bearer POST needs no CSRF", method: "POST", bearer: apiSecret, wantName: "token:ci"},
		{name: "nothing", method: "GET", wantErr: ErrUnauthenticated},
		{name: "unknown cookie", method: "GET", cookie: "forged", wantErr: ErrUnauthenticated},
		{name: "bad bearer beats good cookie", method: "GET", cookie: sess.ID, bearer: "pha_bad", wantErr: ErrUnauthenticated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body *strings.Reader = strings.NewReader("")
			if tt.form != "" {
				body = strings.NewReader(url.Values{FormCSRF: {tt.form}}.Encode())
			}
			r := httptest.NewRequest(tt.method, "/x", body)
			if tt.form != "" {
				r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			if tt.cookie != "" {
				r.AddCookie(&http.Cookie{Name: SessionCookie, Value: tt.cookie})
			}
			if tt.bearer != "" {
				r.Header.Set("Authorization", "Bearer "+tt.bearer)
			}
			if tt.header != "" {
				r.Header.Set(HeaderCSRF, tt.header)
			}
			id, err := s.Identify(r)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("identify: got %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if id.Name != tt.wantName {
				t.Errorf("name: got %q, want %q", id.Name, tt.wantName)
			}
			if err := CheckCSRF(r, id); !errors.Is(err, tt.wantCSRF) {
				t.Errorf("csrf: got %v, want %v", err, tt.wantCSRF)
			}
			if id.Method == MethodSession && CSRFToken(WithIdentity(ctx, id)) != sess.CSRF() {
				t.Errorf("CSRFToken(ctx): got %q, want the session's", CSRFToken(WithIdentity(ctx, id)))
			}
		})
	}
}

func TestAgentAuthenticator(t *testing.T) {
	ctx := context.Background()
	req := func(token string) *http.Request {
		r := httptest.NewRequest("POST", "/v1/traces", nil)
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		return r
	}
	s, _ := openStore(t)

	// No shared token, no named tokens: open, as before auth existed.
	if a, err := NewAgentAuthenticator(s, "").Authenticate(req("")); err != nil || !a.AllowsService("any") {
		t.Fatalf("open: got %+v, %v; want any agent", a, err)
	}
	ordersSecret, _, _ := s.CreateToken(ctx, NewToken{Kind: KindAgent, Name: "orders-agents", Services: []string{"orders"}})
	anySecret, anyTok, _ := s.CreateToken(ctx, NewToken{Kind: KindAgent, Name: "all"})
	apiSecret, _, _ := s.CreateToken(ctx, NewToken{Kind: KindAPI, Name: "ci", Role: RoleAdmin})
	auth := NewAgentAuthenticator(s, "shared-secret")

	tests := []struct {
		name        string
		token       string
		service     string
		wantErr     error
		wantAllowed bool
	}{
		{name: "no token once tokens exist", token: "", wantErr: ErrUnauthenticated},
		{name: "shared token", token: "shared-secret", service: "payments", wantAllowed: true},
		{name: "wrong token", token: "phg_wrong", wantErr: ErrUnauthenticated},
		{name: "API token is not an agent token", token: apiSecret, wantErr: ErrUnauthenticated},
		{name: "limited token, its service", token: ordersSecret, service: "orders", wantAllowed: true},
		{name: "limited token, another service", token: ordersSecret, service: "payments", wantAllowed: false},
		{name: "unlimited named token", token: anySecret, service: "payments", wantAllowed: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := auth.Authenticate(req(tt.token))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("got %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if got := a.AllowsService(tt.service); got != tt.wantAllowed {
				t.Errorf("AllowsService(%q): got %v, want %v", tt.service, got, tt.wantAllowed)
			}
			if err := a.CheckService(tt.service); (err == nil) != tt.wantAllowed || (err != nil && !errors.Is(err, ErrServiceNotAllowed)) {
				t.Errorf("CheckService: got %v", err)
			}
		})
	}
	s.RevokeToken(ctx, anyTok.ID)
	if _, err := auth.Authenticate(req(anySecret)); !errors.Is(err, ErrRevoked) {
		t.Errorf("revoked: got %v, want ErrRevoked", err)
	}
}

func TestRoleAllows(t *testing.T) {
	tests := []struct {
		name       string
		have, need Role
		want       bool
	}{
		{"viewer reads", RoleViewer, RoleViewer, true},
		{"viewer cannot operate", RoleViewer, RoleOperator, false},
		{"operator operates", RoleOperator, RoleOperator, true},
		{"operator cannot administer", RoleOperator, RoleAdmin, false},
		{"admin does all", RoleAdmin, RoleOperator, true},
		{"unknown role nothing", Role("root"), RoleViewer, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.have.Allows(tt.need); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}
