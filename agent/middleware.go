package agent

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// unmatchedRoute is the route label of requests no route matched, so that
// unknown paths cannot blow up metric cardinality.
const unmatchedRoute = "unmatched"

// maxRequestIDLen bounds an incoming X-Request-ID; longer or non-printable
// values are replaced by a minted one.
const maxRequestIDLen = 128

// requestIDKey is wire.HeaderRequestID in canonical form, so the header map
// can be used directly without canonicalising on every request.
const requestIDKey = "X-Request-Id"

type stateKey struct{}

// requestState is what the middleware keeps for one request; it is found
// through the request context by Logger and Transport. It is itself the
// request's context (its parent carries the span), which saves the
// allocation of a context.WithValue node per request.
type requestState struct {
	context.Context
	span    serverSpan // also holds the request ID and client address
	handler logHandler
	logger  slog.Logger // zero until first used
	verdict verdict
}

// Value implements context.Context: the state under stateKey, the
// server span under otel's span key (so trace.SpanFromContext finds it),
// the parent's values otherwise.
func (st *requestState) Value(key any) any {
	switch key {
	case stateKey{}:
		return st
	case otelSpanKey:
		if otelSpanKey != nil {
			return trace.Span(&st.span)
		}
	}
	return st.Context.Value(key)
}

func stateFrom(ctx context.Context) *requestState {
	st, _ := ctx.Value(stateKey{}).(*requestState)
	return st
}

// log returns the request's logger, built on first use. A request is
// served by one goroutine at a time, like gin.Context itself.
func (st *requestState) log() *slog.Logger {
	if st.logger.Handler() == nil {
		st.logger = *slog.New(&st.handler)
	}
	return &st.logger
}

// RequestID returns the request ID held by ctx, or "".
func RequestID(ctx context.Context) string {
	if st := stateFrom(ctx); st != nil {
		return st.span.requestID
	}
	return ""
}

// Middleware returns the Gin middleware: request ID, server span, metrics,
// per-route heartbeat figures and the access log. It never fails a request
// itself. Install it before the routes (engine.Use) so unmatched routes are
// seen too.
func (a *Agent) Middleware() gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		a.metrics.inFlight.Add(1)

		req := c.Request
		var requestID string
		if v := req.Header[requestIDKey]; len(v) > 0 {
			requestID = v[0]
		}
		if !validRequestID(requestID) {
			requestID = newRequestID()
		}
		c.Writer.Header()[requestIDKey] = []string{requestID}

		method := normalizeMethod(req.Method)
		route := c.FullPath()
		if route == "" {
			route = unmatchedRoute
		}
		ctx := a.cfg.propagators.extract(req.Context(), req.Header)
		st := &requestState{}
		span := &st.span
		span.requestID, span.client = requestID, clientAddress(c)
		ri := a.names.get(method, route)
		a.startServerSpan(ctx, span, ri.name, start)
		if otelSpanKey == nil {
			ctx = trace.ContextWithSpan(ctx, span)
		}
		st.handler = logHandler{sink: a.sink, req: st}
		st.Context = ctx
		c.Request = req.WithContext(st)

		defer func() {
			if p := recover(); p != nil {
				span.SetStatus(codes.Error, fmt.Sprint("panic: ", p))
				a.recordOutcome(&st.verdict, http.StatusInternalServerError, time.Since(start))
				a.finish(c, st, ri, method, route, http.StatusInternalServerError, start)
				panic(p)
			}
		}()

		// Policy: degradation -> rate limit -> breaker -> handler.
		if a.decide(c, st, method, route) {
			answer(c, &st.verdict)
		} else {
			c.Next()
			if st.verdict.nAdmitted > 0 { // a breaker admitted it: the only reader of this clock
				a.recordOutcome(&st.verdict, c.Writer.Status(), time.Since(start))
			}
		}
		a.finish(c, st, ri, method, route, c.Writer.Status(), start)
	}
}

// traceparentKey is the W3C header in canonical form.
const traceparentKey = "Traceparent"

// forwardingHeaders are the headers gin.Context.ClientIP may read the
// client's address from (X-Forwarded-For, X-Real-IP, and the platform
// headers of Google App Engine, Cloudflare and Fly.io).
var forwardingHeaders = [...]string{"X-Forwarded-For", "X-Real-Ip", "X-Appengine-Remote-Addr", "Cf-Connecting-Ip", "Fly-Client-Ip"}

// clientAddress is gin's ClientIP, whose proxy checks cost more than the
// rest of the span: without a forwarding header, the answer is the peer's
// address, taken from RemoteAddr without parsing or allocating.
func clientAddress(c *gin.Context) string {
	h := c.Request.Header
	for _, k := range forwardingHeaders {
		if _, ok := h[k]; ok {
			return c.ClientIP()
		}
	}
	addr := c.Request.RemoteAddr
	if i := strings.LastIndexByte(addr, ':'); i > 0 {
		addr = addr[:i]
	}
	return strings.TrimSuffix(strings.TrimPrefix(addr, "["), "]")
}

// finish ends the span and records metrics, route figures and the access
// log line.
func (a *Agent) finish(c *gin.Context, st *requestState, ri *routeInfo, method, route string, status int, start time.Time) {
	span := &st.span
	span.method, span.route, span.path = method, route, c.Request.URL.Path
	span.status = status
	span.verdict = &st.verdict
	for _, e := range c.Errors {
		span.RecordError(e.Err)
	}
	switch {
	case status >= 500:
		span.SetStatus(codes.Error, http.StatusText(status))
	case len(c.Errors) > 0:
		span.SetStatus(codes.Error, c.Errors.Last().Error())
	}
	end := time.Now()
	span.endAt(end)

	d := end.Sub(start)
	a.metrics.observe(ri, method, route, status, d)
	a.routes.Observe(method, route, status, d)
	a.metrics.inFlight.Add(-1)

	if a.cfg.accessLog {
		level := slog.LevelInfo
		if status >= 500 {
			level = slog.LevelError
		}
		// Straight to the handler: slog.Logger would capture the caller's
		// PC (runtime.Callers), which nobody reads here.
		if st.handler.Enabled(context.Background(), level) {
			r := slog.NewRecord(end, level, "request", 0)
			r.AddAttrs(
				slog.String("method", method),
				slog.String("route", route),
				slog.Int("status", status),
				slog.Duration("duration", d),
				slog.String("client_ip", st.span.client),
			)
			if v := &st.verdict; v.marked {
				r.AddAttrs(slog.String("rule_id", v.rule), slog.String("action", v.act.String()))
				if v.act == actShadow {
					r.AddAttrs(slog.String("would", v.would.String()))
				}
			}
			_ = st.handler.Handle(context.Background(), r)
		}
	}
}

func validRequestID(s string) bool {
	if s == "" || len(s) > maxRequestIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// newRequestID returns 16 random bytes as 32 hex digits. math/rand/v2's
// top-level functions use a per-thread ChaCha8 source: no shared lock.
func newRequestID() string {
	var raw [16]byte
	binary.LittleEndian.PutUint64(raw[:8], rand.Uint64())
	binary.LittleEndian.PutUint64(raw[8:], rand.Uint64())
	var out [32]byte
	return string(hexEncode(out[:], raw[:]))
}

// normalizeMethod keeps the label set bounded: unknown methods become
// "_OTHER", as the OpenTelemetry HTTP conventions say.
func normalizeMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch,
		http.MethodHead, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "_OTHER"
}

// spanNames caches, per method and route, the span name ("METHOD
// /route") and the duration histogram's children, so that a request
// allocates nothing and hashes no label strings for them. The map is
// copied on write and read without a lock: methods and routes are bounded
// sets, written once each.
type spanNames struct {
	mu    sync.Mutex // serialises writers
	names atomic.Pointer[map[[2]string]*routeInfo]
}

// routeInfo is what spanNames keeps for one method and route.
type routeInfo struct {
	name string
	// observers holds the histogram children by status code (int ->
	// prometheus.Observer).
	observers sync.Map
}

const maxSpanNames = 4096

func (n *spanNames) init() {
	m := map[[2]string]*routeInfo{}
	n.names.Store(&m)
}

func (n *spanNames) get(method, route string) *routeInfo {
	k := [2]string{method, route}
	if ri, ok := (*n.names.Load())[k]; ok {
		return ri
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	old := *n.names.Load()
	if ri, ok := old[k]; ok {
		return ri
	}
	ri := &routeInfo{name: method + " " + route}
	if len(old) < maxSpanNames {
		m := make(map[[2]string]*routeInfo, len(old)+1)
		for k, v := range old {
			m[k] = v
		}
		m[k] = ri
		n.names.Store(&m)
	}
	return ri
}
