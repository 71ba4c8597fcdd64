package server

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/pilothouse/pilothouse/agent/wire"
	"github.com/pilothouse/pilothouse/controlplane/api"
	"github.com/pilothouse/pilothouse/controlplane/audit"
	"github.com/pilothouse/pilothouse/controlplane/auth"
	"github.com/pilothouse/pilothouse/controlplane/auth/console"
	"github.com/pilothouse/pilothouse/controlplane/ingest"
	"github.com/pilothouse/pilothouse/controlplane/jsonbody"
	"github.com/pilothouse/pilothouse/controlplane/policy"
	"github.com/pilothouse/pilothouse/controlplane/store"
)

// class is what a route needs from the caller.
type class int

const (
	classPublic class = iota // anyone: /login, /static/, /healthz
	classAgent               // an agent token (when agents must authenticate)
	classUser                // a session or API token with at least a role
)

// classify says who may call r, and for users, the least role. Viewers
// read everything (GET); operators also change policies (and any other
// state-changing dashboard route); admins also manage users and tokens.
func classify(r *http.Request) (class, auth.Role) {
	p := path.Clean("/" + r.URL.Path)
	switch {
	case p == "/login" || p == "/healthz" || strings.HasPrefix(p, "/static/"):
		return classPublic, ""
	case r.Method == http.MethodPost && (p == wire.PathTraces || p == wire.PathLogs || p == wire.PathHeartbeat):
		return classAgent, ""
	case p == wire.PathPolicy:
		return classAgent, ""
	case p == "/logout":
		return classUser, auth.RoleViewer
	case p == "/admin" || strings.HasPrefix(p, "/admin/") ||
		p == "/api/v1/users" || strings.HasPrefix(p, "/api/v1/users/") ||
		p == "/api/v1/tokens" || strings.HasPrefix(p, "/api/v1/tokens/"):
		return classUser, auth.RoleAdmin
	case auth.Unsafe(r.Method):
		return classUser, auth.RoleOperator
	}
	return classUser, auth.RoleViewer
}

// wantsJSON tells API clients (401/403 as JSON) from browsers (redirect
// to the login page, HTML errors).
func wantsJSON(r *http.Request) bool {
	p := r.URL.Path
	if strings.HasPrefix(p, "/api/") || strings.HasPrefix(p, "/v1/") || p == "/metrics" {
		return true
	}
	accept := r.Header.Get("Accept")
	return strings.Contains(accept, "application/json") && !strings.Contains(accept, "text/html")
}

// securityHeaders go on every answer to people. The dashboard handler
// sets its own, stricter-or-equal CSP over these.
func securityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'self'; form-action 'self'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
}

// maxFormBytes caps a form the gate parses for its CSRF token: the
// largest form any page posts (the policy rule forms).
const maxFormBytes = 256 << 10

// gate is the control plane's access middleware.
type gate struct {
	store    *auth.Store
	agents   *auth.AgentAuthenticator
	audit    *audit.Log
	metrics  *auth.Metrics
	throttle *audit.Throttle
	now      func() time.Time
	// metricsToken, when not empty, opens GET /metrics and nothing else
	// (Config.MetricsToken).
	metricsToken []byte
	log          interface {
		Error(msg string, args ...any)
	}
}

type agentErrKey struct{}

// agentError is the refusal the gate decided for an agent request; the
// ingest and policy handlers answer it (401 in their own formats).
func agentError(ctx context.Context) error {
	if err, ok := ctx.Value(agentErrKey{}).(error); ok {
		return err
	}
	return nil
}

func (g *gate) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cls, need := classify(r)
		switch cls {
		case classPublic:
			securityHeaders(w.Header())
			next.ServeHTTP(w, r)
			return
		case classAgent:
			g.serveAgent(w, r, next)
			return
		}
		securityHeaders(w.Header())
		if g.metricsScrape(r) {
			next.ServeHTTP(w, r)
			return
		}
		id, err := g.store.Identify(r)
		if err != nil && clientGone(r) {
			return // nobody to answer; not a failed sign-in
		}
		if err != nil {
			if !auth.IsAuthError(err) {
				g.log.Error("server: identify", "err", err)
				api.WriteJSON(w, http.StatusInternalServerError, map[string]string{"error": "server: cannot check credentials"})
				return
			}
			if _, bearer := auth.Bearer(r); bearer {
				g.metrics.Fail(auth.FailToken)
			} else {
				g.metrics.Fail(auth.FailSession)
			}
			g.unauthenticated(w, r, err)
			return
		}
		if !id.Role.Allows(need) {
			g.metrics.Fail(auth.FailForbidden)
			g.refuse(w, r, http.StatusForbidden, fmt.Sprintf("%v: %s needs %s, you are %s", auth.ErrForbidden, r.Method+" "+r.URL.Path, need, id.Role))
			return
		}
		if id.Method == auth.MethodSession && auth.Unsafe(r.Method) && r.Header.Get(auth.HeaderCSRF) == "" {
			// CheckCSRF then reads the token from the form: parse it here
			// within the largest form a page posts, else the form parser's
			// own 10 MB default would apply before any handler's cap.
			if err := jsonbody.ParseForm(w, r, maxFormBytes); err != nil {
				e := jsonbody.AsError(err)
				g.refuse(w, r, e.Status, e.Error())
				return
			}
		}
		if err := auth.CheckCSRF(r, id); err != nil {
			g.metrics.Fail(auth.FailCSRF)
			g.refuse(w, r, http.StatusForbidden, err.Error())
			return
		}
		next.ServeHTTP(w, r.WithContext(auth.WithIdentity(r.Context(), id)))
	})
}

// metricsScrape reports whether r reads /metrics with the metrics token.
// The token is compared in constant time; any other path (even one that
// cleans to /metrics) or method, or another bearer, goes through the
// ordinary checks.
func (g *gate) metricsScrape(r *http.Request) bool {
	if len(g.metricsToken) == 0 || (r.Method != http.MethodGet && r.Method != http.MethodHead) || r.URL.Path != "/metrics" {
		return false
	}
	tok, ok := auth.Bearer(r)
	return ok && subtle.ConstantTimeCompare([]byte(tok), g.metricsToken) == 1
}

func (g *gate) unauthenticated(w http.ResponseWriter, r *http.Request, err error) {
	next := r.URL.Path
	if r.URL.RawQuery != "" {
		next += "?" + r.URL.RawQuery
	}
	login := "/login?next=" + url.QueryEscape(console.SafeNext(next))
	switch {
	case wantsJSON(r):
		w.Header().Set("WWW-Authenticate", `Bearer realm="pilothouse"`)
		api.WriteJSON(w, http.StatusUnauthorized, map[string]string{"error": err.Error()})
	case r.Header.Get("HX-Request") == "true":
		// A redirect would swap the login page into a fragment.
		w.Header().Set("HX-Redirect", login)
		w.WriteHeader(http.StatusUnauthorized)
	case r.Method == http.MethodGet || r.Method == http.MethodHead:
		http.Redirect(w, r, login, http.StatusFound)
	default:
		g.refuse(w, r, http.StatusUnauthorized, err.Error())
	}
}

func (g *gate) refuse(w http.ResponseWriter, r *http.Request, status int, msg string) {
	if wantsJSON(r) {
		api.WriteJSON(w, status, map[string]string{"error": msg})
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	fmt.Fprintln(w, msg)
}

// serveAgent authenticates an agent request and checks the services it
// names (heartbeat body, long-poll query); OTLP bodies are checked by the
// span and log writers. A refusal is left in the context for the handler
// to answer, so ingest keeps its OTLP error encoding.
func (g *gate) serveAgent(w http.ResponseWriter, r *http.Request, next http.Handler) {
	a, err := g.agents.Authenticate(r)
	if err == nil && len(a.Services) > 0 {
		switch r.URL.Path {
		case wire.PathPolicy:
			err = a.CheckService(r.URL.Query().Get("service"))
		case wire.PathHeartbeat:
			var service string
			service, r.Body = peekHeartbeatService(r)
			err = a.CheckService(service)
		}
	}
	ctx := r.Context()
	if err != nil && clientGone(r) {
		// The agent hung up (a long-poll it gave up on, a shutdown) while
		// its token was being looked up: nothing was refused.
		return
	}
	if err != nil {
		if !auth.IsAuthError(err) && !errors.Is(err, auth.ErrServiceNotAllowed) {
			g.log.Error("server: agent auth", "err", err)
		}
		g.agentFailed(r, a.Token, err)
		ctx = context.WithValue(ctx, agentErrKey{}, fmt.Errorf("%w: %w", ingest.ErrUnauthorized, err))
	} else {
		ctx = auth.WithAgent(ctx, a)
	}
	next.ServeHTTP(w, r.WithContext(ctx))
}

// clientGone reports whether r's client went away (its context ended), so
// that a lookup cut short is not taken for a credential that failed.
func clientGone(r *http.Request) bool { return r.Context().Err() != nil }

// agentFailed counts every agent refusal and audits at most one per
// source address a minute.
func (g *gate) agentFailed(r *http.Request, token string, err error) {
	g.metrics.Fail(auth.FailAgent)
	ip := console.ClientIP(r)
	if !g.throttle.Allow(ip, g.now()) {
		return
	}
	actor := "agent"
	if token != "" {
		actor = "agent:" + token
	}
	if _, aerr := g.audit.Record(r.Context(), audit.Event{Actor: actor, Action: audit.ActionAgentAuthFailed, Target: r.URL.Path, Remote: ip,
		Detail: err.Error() + " (at most one event per source a minute; every failure is counted in pilothouse_auth_failures_total)"}); aerr != nil {
		g.log.Error("server: audit", "err", aerr)
	}
}

// peekHeartbeatService reads the "service" of a heartbeat body and
// returns a body that replays what was read. Bodies beyond the heartbeat
// cap or malformed ones give "", which a limited token is refused for;
// ingest answers them itself when no limit applies.
func peekHeartbeatService(r *http.Request) (string, io.ReadCloser) {
	buf, err := io.ReadAll(io.LimitReader(r.Body, wire.MaxHeartbeatBytes+1))
	body := struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(buf), r.Body), r.Body}
	if err != nil {
		return "", body
	}
	plain := buf
	if strings.Contains(strings.ToLower(r.Header.Get("Content-Encoding")), "gzip") {
		zr, err := gzip.NewReader(bytes.NewReader(buf))
		if err != nil {
			return "", body
		}
		plain, err = io.ReadAll(io.LimitReader(zr, wire.MaxHeartbeatBytes+1))
		if err != nil {
			return "", body
		}
	}
	var hb struct {
		Service string `json:"service"`
	}
	if json.Unmarshal(plain, &hb) != nil {
		return "", body
	}
	return hb.Service, body
}

// serviceChecked refuses spans and logs of services the request's agent
// token is not limited to. The refusal wraps ingest.ErrForbidden, which
// ingest answers with 403 (not retried) and the reason.
type serviceChecked struct {
	spans ingest.SpanWriter
	logs  ingest.LogWriter
	gate  *gate
}

func (s serviceChecked) check(ctx context.Context, services func(yield func(string) bool)) error {
	a, ok := auth.AgentFrom(ctx)
	if !ok || len(a.Services) == 0 {
		return nil
	}
	for svc := range services {
		if err := a.CheckService(svc); err != nil {
			s.gate.metrics.Fail(auth.FailAgent)
			return fmt.Errorf("%w: %w", ingest.ErrForbidden, err)
		}
	}
	return nil
}

// WriteSpans implements ingest.SpanWriter.
func (s serviceChecked) WriteSpans(ctx context.Context, spans []store.Span) error {
	if err := s.check(ctx, func(yield func(string) bool) {
		for i := range spans {
			if !yield(spans[i].Service) {
				return
			}
		}
	}); err != nil {
		return err
	}
	return s.spans.WriteSpans(ctx, spans)
}

// WriteLogs implements ingest.LogWriter.
func (s serviceChecked) WriteLogs(ctx context.Context, logs []store.LogRecord) error {
	if err := s.check(ctx, func(yield func(string) bool) {
		for i := range logs {
			if !yield(logs[i].Service) {
				return
			}
		}
	}); err != nil {
		return err
	}
	return s.logs.WriteLogs(ctx, logs)
}

// auditPolicyChange is policyapi's OnChange hook.
func (g *gate) auditPolicyChange(r *http.Request, c policy.Change) {
	action := audit.ActionPolicyUpdate
	if c.Action == "rollback" {
		action = audit.ActionPolicyRollback
	}
	detail := fmt.Sprintf("version %d", c.Version)
	if c.Reason != "" {
		detail += ": " + c.Reason
	}
	if _, err := g.audit.Record(r.Context(), audit.Event{Time: c.Time, Actor: c.Actor, Action: action, Target: c.Service,
		Remote: console.ClientIP(r), Detail: detail, Diff: c.Diff}); err != nil {
		g.log.Error("server: audit policy change", "err", err)
	}
}

// agentsOpen reports whether agent endpoints accept any agent.
func (g *gate) agentsOpen(ctx context.Context, shared string) (bool, error) {
	if shared != "" {
		return false, nil
	}
	any, err := g.store.HasActiveTokens(ctx, auth.KindAgent)
	return !any, err
}

func actorOf(r *http.Request) string {
	if id, ok := auth.UserFrom(r.Context()); ok {
		return id.Name
	}
	return "anonymous"
}
