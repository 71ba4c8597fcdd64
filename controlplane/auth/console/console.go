// Package console serves the access pages and APIs of the control plane:
// sign in and out, the users and tokens admin page and its JSON API, and
// the audit log page. It records every login, failed login, logout, user
// and token change in the audit log.
//
// Access control is the server's: it decides which role each route needs
// and checks CSRF tokens before these handlers run. The handlers read the
// caller from auth.UserFrom.
package console

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/a-h/templ"

	"github.com/pilothouse/pilothouse/controlplane/audit"
	"github.com/pilothouse/pilothouse/controlplane/auth"
	"github.com/pilothouse/pilothouse/controlplane/jsonbody"
	authui "github.com/pilothouse/pilothouse/ui/auth"
)

// LoginCSRFCookie double-submits the login form's CSRF token: the form
// must carry the cookie's value, which a cross-site page cannot read.
const LoginCSRFCookie = "pilothouse_login"

// maxFormBytes caps form bodies.
const maxFormBytes = 64 << 10

// Config configures the console.
type Config struct {
	Auth  *auth.Store
	Audit *audit.Log
	// Limiter limits sign-in attempts; nil means auth.NewLoginLimiter().
	Limiter *auth.LoginLimiter
	Metrics *auth.Metrics
	// AgentsOpen reports whether agent endpoints accept any agent (shown
	// as a warning on the admin page); nil means never.
	AgentsOpen func(ctx context.Context) bool
	Logger     *slog.Logger
	// Now is the clock for rate limits; nil means time.Now.
	Now func() time.Time
	// Policies says the dashboard has policy pages, linked from the
	// header the access pages share with it.
	Policies bool
}

// Console serves the access pages. It is safe for concurrent use.
type Console struct{ cfg Config }

// New returns a Console.
func New(cfg Config) *Console {
	if cfg.Limiter == nil {
		cfg.Limiter = auth.NewLoginLimiter()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.AgentsOpen == nil {
		cfg.AgentsOpen = func(context.Context) bool { return false }
	}
	return &Console{cfg: cfg}
}

// Register mounts the routes on mux:
//
//	GET/POST /login, POST /logout                         public / any session
//	GET /admin, POST /admin/...                           admin
//	GET /audit, GET /api/v1/audit                          viewer
//	GET/POST /api/v1/users, PATCH/DELETE /api/v1/users/{name}  admin
//	GET/POST /api/v1/tokens, DELETE /api/v1/tokens/{id}        admin
//	GET /static/auth/...                                   public
func (c *Console) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /login", c.loginForm)
	mux.HandleFunc("POST /login", c.login)
	mux.HandleFunc("POST /logout", c.logout)
	mux.HandleFunc("GET /admin", c.adminPage)
	mux.HandleFunc("POST /admin/users", c.adminCreateUser)
	mux.HandleFunc("POST /admin/users/{name}/role", c.adminSetRole)
	mux.HandleFunc("POST /admin/users/{name}/password", c.adminResetPassword)
	mux.HandleFunc("POST /admin/users/{name}/disabled", c.adminSetDisabled)
	mux.HandleFunc("POST /admin/tokens", c.adminCreateToken)
	mux.HandleFunc("POST /admin/tokens/{id}/revoke", c.adminRevokeToken)
	mux.HandleFunc("GET /audit", c.auditPage)
	mux.Handle("GET /api/v1/audit", audit.Handler(c.cfg.Audit))
	mux.HandleFunc("GET /api/v1/users", c.apiUsers)
	mux.HandleFunc("POST /api/v1/users", c.apiCreateUser)
	mux.HandleFunc("PATCH /api/v1/users/{name}", c.apiUpdateUser)
	mux.HandleFunc("DELETE /api/v1/users/{name}", c.apiDeleteUser)
	mux.HandleFunc("GET /api/v1/tokens", c.apiTokens)
	mux.HandleFunc("POST /api/v1/tokens", c.apiCreateToken)
	mux.HandleFunc("DELETE /api/v1/tokens/{id}", c.apiRevokeToken)
	mux.Handle("GET "+authui.StaticPath, authui.Static())
}

// record writes an audit event; a failure is logged, not fatal to the
// request that caused it.
func (c *Console) record(r *http.Request, e audit.Event) {
	if e.Remote == "" {
		e.Remote = ClientIP(r)
	}
	if e.Actor == "" {
		if id, ok := auth.UserFrom(r.Context()); ok {
			e.Actor = id.Name
		}
	}
	if _, err := c.cfg.Audit.Record(r.Context(), e); err != nil {
		c.cfg.Logger.Error("console: audit record failed", "action", e.Action, "err", err)
	}
}

// ClientIP is the request's peer address without the port. Proxies'
// X-Forwarded-For is not trusted.
func ClientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// SafeNext returns next when it is a local path ("/..." but not "//..."
// or "/\..."), else "/". It keeps /login from redirecting off-site.
func SafeNext(next string) string {
	if next == "" || next[0] != '/' || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") {
		return "/"
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil {
		return "/"
	}
	if strings.ContainsAny(next, "\r\n\t") {
		return "/"
	}
	return next
}

func render(w http.ResponseWriter, r *http.Request, status int, comp templ.Component) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = comp.Render(r.Context(), w)
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func secure(r *http.Request) bool { return r.TLS != nil }

func (c *Console) setLoginCookie(w http.ResponseWriter, r *http.Request) string {
	// Keep a token the browser already has: two tabs, or a page loaded
	// twice, must not invalidate each other's form.
	if ck, err := r.Cookie(LoginCSRFCookie); err == nil && len(ck.Value) == 43 {
		return ck.Value
	}
	tok := randomToken()
	http.SetCookie(w, &http.Cookie{
		Name: LoginCSRFCookie, Value: tok, Path: "/login", MaxAge: 3600,
		HttpOnly: true, Secure: secure(r), SameSite: http.SameSiteStrictMode,
	})
	return tok
}

func (c *Console) loginForm(w http.ResponseWriter, r *http.Request) {
	next := SafeNext(r.URL.Query().Get("next"))
	if id := auth.SessionID(r); id != "" {
		if _, err := c.cfg.Auth.Session(r.Context(), id); err == nil {
			http.Redirect(w, r, next, http.StatusSeeOther)
			return
		}
	}
	p := authui.LoginProps{Next: next, CSRF: c.setLoginCookie(w, r)}
	if r.URL.Query().Has("signed_out") {
		p.Notice = "You are signed out."
	}
	render(w, r, http.StatusOK, authui.LoginPage(p))
}

func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	if err := jsonbody.ParseForm(w, r, maxFormBytes); err != nil {
		http.Error(w, "console: bad form: "+err.Error(), jsonbody.AsError(err).Status)
		return
	}
	name := r.PostForm.Get("username")
	p := authui.LoginProps{Next: SafeNext(r.PostForm.Get("next")), Username: name}
	cookie, err := r.Cookie(LoginCSRFCookie)
	form := r.PostForm.Get(auth.FormCSRF)
	if err != nil || form == "" || subtle.ConstantTimeCompare([]byte(cookie.Value), []byte(form)) != 1 {
		c.cfg.Metrics.Fail(auth.FailCSRF)
		p.CSRF = c.setLoginCookie(w, r)
		p.Error = "The sign-in form expired. Please try again."
		render(w, r, http.StatusForbidden, authui.LoginPage(p))
		return
	}
	ip := ClientIP(r)
	if ok, wait := c.cfg.Limiter.Allow(name, ip, c.cfg.Now()); !ok {
		c.cfg.Metrics.Fail(auth.FailLoginThrottled)
		secs := max(int((wait+time.Second-1)/time.Second), 1)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		p.CSRF = cookie.Value
		p.Error = "Too many sign-in attempts. Try again in " + strconv.Itoa(secs) + " seconds."
		render(w, r, http.StatusTooManyRequests, authui.LoginPage(p))
		return
	}
	u, err := c.cfg.Auth.Authenticate(r.Context(), name, r.PostForm.Get("password"))
	if err != nil {
		if !errors.Is(err, auth.ErrBadCredentials) {
			c.cfg.Logger.Error("console: login", "err", err)
			http.Error(w, "console: sign-in failed, see the server log", http.StatusInternalServerError)
			return
		}
		c.cfg.Metrics.Fail(auth.FailLogin)
		c.record(r, audit.Event{Actor: name, Action: audit.ActionLoginFailed})
		p.CSRF = cookie.Value
		p.Error = "Wrong user name or password."
		render(w, r, http.StatusUnauthorized, authui.LoginPage(p))
		return
	}
	sess, err := c.cfg.Auth.CreateSession(r.Context(), u)
	if err != nil {
		c.cfg.Logger.Error("console: create session", "err", err)
		http.Error(w, "console: sign-in failed, see the server log", http.StatusInternalServerError)
		return
	}
	c.cfg.Auth.SetSessionCookie(w, sess, secure(r))
	http.SetCookie(w, &http.Cookie{Name: LoginCSRFCookie, Path: "/login", MaxAge: -1, HttpOnly: true, Secure: secure(r), SameSite: http.SameSiteStrictMode})
	c.record(r, audit.Event{Actor: u.Name, Action: audit.ActionLogin, Detail: "role " + string(u.Role)})
	http.Redirect(w, r, p.Next, http.StatusSeeOther)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	if id := auth.SessionID(r); id != "" {
		if err := c.cfg.Auth.DeleteSession(r.Context(), id); err != nil {
			c.cfg.Logger.Error("console: logout", "err", err)
		}
	}
	auth.ClearSessionCookie(w, secure(r))
	c.record(r, audit.Event{Action: audit.ActionLogout})
	http.Redirect(w, r, "/login?signed_out=1", http.StatusSeeOther)
}

func (c *Console) shell(r *http.Request, nav string) authui.Shell {
	id, _ := auth.UserFrom(r.Context())
	return authui.Shell{User: id.Name, Role: string(id.Role), CSRF: auth.CSRFToken(r.Context()), Nav: nav, Policies: c.cfg.Policies}
}

func (c *Console) auditPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	p := authui.AuditProps{Shell: c.shell(r, "audit"), Actions: audit.Actions}
	f, err := audit.ParseFilter(q)
	if err != nil {
		p.Error = err.Error()
		render(w, r, http.StatusBadRequest, authui.AuditPage(p))
		return
	}
	if f.Limit == 0 {
		f.Limit = 50
	}
	p.Actor, p.Action = f.Actor, f.Action
	page, err := audit.ListPage(r.Context(), c.cfg.Audit, f)
	if err != nil {
		p.Error = err.Error()
		render(w, r, http.StatusInternalServerError, authui.AuditPage(p))
		return
	}
	for _, e := range page.Events {
		p.Events = append(p.Events, authui.EventRow{ID: e.ID, Time: e.Time, Actor: e.Actor, Action: e.Action, Target: e.Target, Remote: e.Remote, Detail: e.Detail, Diff: e.Diff})
	}
	link := func(before int64) string {
		v := url.Values{}
		if f.Actor != "" {
			v.Set("actor", f.Actor)
		}
		if f.Action != "" {
			v.Set("action", f.Action)
		}
		if before > 0 {
			v.Set("before", strconv.FormatInt(before, 10))
		}
		if len(v) == 0 {
			return "/audit"
		}
		return "/audit?" + v.Encode()
	}
	if page.NextBefore > 0 {
		p.OlderURL = link(page.NextBefore)
	}
	if f.Before > 0 {
		p.NewestURL = link(0)
	}
	render(w, r, http.StatusOK, authui.AuditPage(p))
}
