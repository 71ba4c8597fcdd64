package ui

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/a-h/templ"
)

//go:embed static
var staticFiles embed.FS

// Defaults for the options.
const (
	DefaultRefresh      = 5 * time.Second
	DefaultTailInterval = time.Second
	// tailBatch caps the lines one live-tail event carries.
	tailBatch = 200
)

// Option configures the handler returned by New.
type Option func(*config)

type config struct {
	now        func() time.Time
	agentURL   string
	middleware []func(http.Handler) http.Handler
	user       func(*http.Request) string
	admin      func(*http.Request) bool
	refresh    time.Duration
	tail       time.Duration
	log        *slog.Logger
	policies   PolicySource
	csrf       func(*http.Request) string
	alerts     func(context.Context) []string
}

// WithClock sets the clock the pages read "now" from (default time.Now).
func WithClock(now func() time.Time) Option {
	return func(c *config) {
		if now != nil {
			c.now = now
		}
	}
}

// WithAgentURL sets the URL empty states tell the user to point agents at.
// By default it is derived from the request: http://<Host>.
func WithAgentURL(u string) Option { return func(c *config) { c.agentURL = u } }

// WithMiddleware wraps every dashboard route (pages, stream, static) in mw,
// outermost first. It is the seam for authentication.
func WithMiddleware(mw func(http.Handler) http.Handler) Option {
	return func(c *config) {
		if mw != nil {
			c.middleware = append(c.middleware, mw)
		}
	}
}

// WithUser sets how the header learns the current user's name; an empty
// name shows nothing.
func WithUser(user func(*http.Request) string) Option { return func(c *config) { c.user = user } }

// WithAdmin sets how the header learns whether the current user may
// manage users and tokens (it then links to /admin). With WithUser set,
// the header also links to /audit and shows a sign-out button that posts
// to /logout with the CSRF token.
func WithAdmin(admin func(*http.Request) bool) Option { return func(c *config) { c.admin = admin } }

// WithPolicies turns on the policy pages (/policies and the Policy tab of
// every service) over ps. Without it those pages do not exist.
func WithPolicies(ps PolicySource) Option { return func(c *config) { c.policies = ps } }

// WithCSRFToken sets how the pages learn the current session's CSRF token:
// every state-changing form then carries it as a hidden "csrf_token"
// field, and the layout tells htmx to send it as the X-CSRF-Token header.
// The token is checked by the middleware that issues it, not by the ui.
func WithCSRFToken(token func(*http.Request) string) Option {
	return func(c *config) { c.csrf = token }
}

// WithAlerts sets where the overview learns of conditions an operator
// must know about, such as a store that fails writes: each message is
// shown in an error banner above the services. Nil shows none.
func WithAlerts(alerts func(ctx context.Context) []string) Option {
	return func(c *config) { c.alerts = alerts }
}

// WithRefresh sets how often the overview and service pages poll for
// fresh figures (default DefaultRefresh).
func WithRefresh(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.refresh = d
		}
	}
}

// WithTailInterval sets how often the live log tail asks the source for
// new lines (default DefaultTailInterval).
func WithTailInterval(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.tail = d
		}
	}
}

// WithLogger sets where source failures and render errors are logged
// (default: discarded).
func WithLogger(l *slog.Logger) Option {
	return func(c *config) {
		if l != nil {
			c.log = l
		}
	}
}

// Handler serves the dashboard. It is safe for concurrent use.
type Handler struct {
	src          Source
	cfg          config
	root         http.Handler
	assetVersion string
	buffers      sync.Pool
}

var _ http.Handler = (*Handler)(nil)

// New returns the dashboard handler reading from src. Mount it on "/".
// Nil options are ignored.
func New(src Source, opts ...Option) *Handler {
	cfg := config{now: time.Now, refresh: DefaultRefresh, tail: DefaultTailInterval, log: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	h := &Handler{src: src, cfg: cfg, assetVersion: assetVersion()}
	h.buffers.New = func() any { return new(bytes.Buffer) }

	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", h.overview)
	mux.HandleFunc("GET /services/{name}", h.service)
	mux.HandleFunc("GET /traces", h.traces)
	mux.HandleFunc("GET /traces/{traceID}", h.trace)
	mux.HandleFunc("GET /logs", h.logs)
	mux.HandleFunc("GET /logs/stream", h.logStream)
	mux.HandleFunc("GET /map", h.serviceMap)
	mux.HandleFunc("GET /search", h.search)
	if cfg.policies != nil {
		h.registerPolicies(mux)
	}
	mux.Handle("GET /static/", staticHandler())
	mux.HandleFunc("/", h.notFound)

	var root http.Handler = securityHeaders(mux)
	for i := len(cfg.middleware) - 1; i >= 0; i-- {
		root = cfg.middleware[i](root)
	}
	h.root = root
	return h
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.root.ServeHTTP(w, r) }

func assetVersion() string {
	b, err := staticFiles.ReadFile("static/pilothouse.css")
	if err != nil {
		return "0"
	}
	f := fnv.New32a()
	_, _ = f.Write(b)
	return strconv.FormatUint(uint64(f.Sum32()), 36)
}

func staticHandler() http.Handler {
	files := http.FileServerFS(staticFiles)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		files.ServeHTTP(w, r)
	})
}

// securityHeaders forbids inline scripts and framing: stored data is
// escaped, and the CSP is a second line of defence.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "same-origin")
		next.ServeHTTP(w, r)
	})
}

// isPartial reports whether htmx asked for a fragment: the page's content
// component without the layout around it.
func isPartial(r *http.Request) bool {
	return r.Header.Get("HX-Request") == "true" && r.Header.Get("HX-Boosted") != "true" &&
		r.Header.Get("HX-History-Restore-Request") != "true"
}

func (h *Handler) meta(r *http.Request, title, nav string) pageMeta {
	m := pageMeta{Title: title, Nav: nav, AssetVersion: h.assetVersion, CSRF: h.csrfToken(r), Policies: h.cfg.policies != nil}
	if h.cfg.user != nil {
		m.User = h.cfg.user(r)
	}
	if h.cfg.admin != nil {
		m.Admin = h.cfg.admin(r)
	}
	return m
}

func (h *Handler) render(w http.ResponseWriter, r *http.Request, status int, m pageMeta, content templ.Component) {
	buf := h.buffers.Get().(*bytes.Buffer)
	buf.Reset()
	defer h.buffers.Put(buf)
	c := content
	if !isPartial(r) {
		c = layout(m, content)
	}
	if err := c.Render(r.Context(), buf); err != nil {
		h.cfg.log.Error("ui: render failed", "path", r.URL.Path, "err", err)
		http.Error(w, "ui: render failed", http.StatusInternalServerError)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", "text/html; charset=utf-8")
	hd.Set("Cache-Control", "no-store")
	hd.Add("Vary", "HX-Request")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func (h *Handler) renderError(w http.ResponseWriter, r *http.Request, status int, message string) {
	h.render(w, r, status, h.meta(r, http.StatusText(status), ""), errorView(status, http.StatusText(status), message))
}

// sourceError answers a failed read: 404 for ErrNotFound, else 500.
func (h *Handler) sourceError(w http.ResponseWriter, r *http.Request, what string, err error) {
	if errors.Is(err, ErrNotFound) {
		h.renderError(w, r, http.StatusNotFound, what+" not found. It may not have arrived yet, or retention has removed it.")
		return
	}
	if errors.Is(err, ErrBadParam) {
		h.renderError(w, r, http.StatusBadRequest, "Bad query: "+err.Error())
		return
	}
	if errors.Is(err, context.Canceled) {
		return
	}
	h.cfg.log.Error("ui: source failed", "path", r.URL.Path, "err", err)
	h.renderError(w, r, http.StatusInternalServerError, "The data source could not answer: "+err.Error())
}

// redirect sends the browser to target; htmx requests get HX-Redirect so
// the whole page navigates instead of a fragment being swapped.
func redirect(w http.ResponseWriter, r *http.Request, target string) {
	if isPartial(r) {
		w.Header().Set("HX-Redirect", target)
		w.WriteHeader(http.StatusOK)
		return
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}

func paramMessage(err error) string {
	var pe *ParamError
	if errors.As(err, &pe) {
		return "Bad query: " + pe.Message()
	}
	return err.Error()
}

func (h *Handler) agentURL(r *http.Request) string {
	if h.cfg.agentURL != "" {
		return h.cfg.agentURL
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

func (h *Handler) notFound(w http.ResponseWriter, r *http.Request) {
	h.renderError(w, r, http.StatusNotFound, "There is no page at "+r.URL.Path+".")
}

func (h *Handler) overview(w http.ResponseWriter, r *http.Request) {
	svcs, err := h.src.Services(r.Context(), h.cfg.now())
	if err != nil {
		h.sourceError(w, r, "Services", err)
		return
	}
	var alerts []string
	if h.cfg.alerts != nil {
		alerts = h.cfg.alerts(r.Context())
	}
	h.render(w, r, http.StatusOK, h.meta(r, "Overview", "overview"),
		overviewView(overviewProps{Services: svcs, AgentURL: h.agentURL(r), Refresh: h.cfg.refresh, Alerts: alerts}))
}

func (h *Handler) service(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	key, desc, err := parseRouteSort(r.URL.Query())
	if err != nil {
		h.renderError(w, r, http.StatusBadRequest, paramMessage(err))
		return
	}
	now := h.cfg.now()
	d, err := h.src.Service(r.Context(), name, now)
	if err != nil {
		h.sourceError(w, r, "Service "+strconv.Quote(name), err)
		return
	}
	p := serviceProps{Detail: d, Routes: sortRoutes(d.Routes, key, desc), Sort: key, Desc: desc, Now: now, Refresh: h.cfg.refresh, PolicyTab: h.cfg.policies != nil}
	p.Markers = h.serviceMarkers(r, name, d.Summary.Series)
	h.render(w, r, http.StatusOK, h.meta(r, name, "overview"), serviceView(p))
}

func (h *Handler) traces(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	q, form, traceID, err := parseTraceQuery(v, h.cfg.now())
	m := h.meta(r, "Traces", "traces")
	p := tracesProps{Form: form, AgentURL: h.agentURL(r)}
	if err != nil {
		p.Error = paramMessage(err)
		h.render(w, r, http.StatusBadRequest, m, tracesView(p))
		return
	}
	if traceID != "" {
		redirect(w, r, traceURL(traceID))
		return
	}
	rows, err := h.src.Traces(r.Context(), q)
	if errors.Is(err, ErrBadParam) { // e.g. an attribute key the source refuses: keep the form
		p.Error = "Bad query: " + err.Error()
		h.render(w, r, http.StatusBadRequest, m, tracesView(p))
		return
	}
	if err != nil {
		h.sourceError(w, r, "Traces", err)
		return
	}
	p.Rows = rows
	p.Filtered = q.Service != "" || q.Route != "" || q.Status != "" || q.MinDuration > 0 || q.RequestID != "" ||
		len(q.Attributes) > 0 || !q.Since.IsZero() || !q.Until.IsZero()
	h.render(w, r, http.StatusOK, m, tracesView(p))
}

func (h *Handler) trace(w http.ResponseWriter, r *http.Request) {
	id := strings.ToLower(r.PathValue("traceID"))
	if !isTraceID(id) {
		h.renderError(w, r, http.StatusBadRequest, fmt.Sprintf("Bad trace ID %q: a trace ID is 32 hex digits.", id))
		return
	}
	t, err := h.src.Trace(r.Context(), id)
	if err != nil {
		h.sourceError(w, r, "Trace "+id, err)
		return
	}
	if t.TraceID == "" {
		t.TraceID = id
	}
	m := h.meta(r, "Trace "+id, "traces")
	m.Search = id
	h.render(w, r, http.StatusOK, m, traceView(newWaterfall(t)))
}

// logFilterValues is the canonical query of a log search without paging.
func logFilterValues(f LogForm) url.Values {
	v := url.Values{}
	for _, kv := range [][2]string{{"request_id", f.RequestID}, {"trace_id", f.TraceID}, {"service", f.Service}, {"level", f.Level}, {"q", f.Text}, {"attr", f.Attr}, {"since", f.Since}, {"until", f.Until}} {
		if s := strings.TrimSpace(kv[1]); s != "" {
			v.Set(kv[0], s)
		}
	}
	return v
}

func withParam(v url.Values, key, value string) string {
	c := make(url.Values, len(v)+1)
	for k, vs := range v {
		c[k] = vs
	}
	c.Set(key, value)
	return c.Encode()
}

func (h *Handler) logs(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	q, form, err := parseLogQuery(v, h.cfg.now())
	m := h.meta(r, "Logs", "logs")
	m.Search = form.RequestID
	p := logsProps{Form: form, AgentURL: h.agentURL(r)}
	if err != nil {
		p.Error = paramMessage(err)
		h.render(w, r, http.StatusBadRequest, m, logsView(p))
		return
	}
	q.AfterSeq = 0
	lines, err := h.src.Logs(r.Context(), q)
	if errors.Is(err, ErrBadParam) { // e.g. an attribute key the source refuses: keep the form
		p.Error = "Bad query: " + err.Error()
		h.render(w, r, http.StatusBadRequest, m, logsView(p))
		return
	}
	if err != nil {
		h.sourceError(w, r, "Logs", err)
		return
	}
	filters := logFilterValues(form)
	p.Lines = lines
	p.Filtered = len(filters) > 0
	// Lines without a Seq come from a log engine (Loki) that has no
	// cursor: a live tail or an older page after them would repeat them,
	// so the page offers neither, only a reload (Newest).
	cursor := len(lines) == 0 || maxSeq(lines) > 0
	p.FirstPage = q.BeforeSeq == 0 && cursor
	p.Live = p.FirstPage && v.Get("live") != "0"
	p.NewestURL = "/logs?" + filters.Encode()
	p.ResumeURL = p.NewestURL
	p.PauseURL = "/logs?" + withParam(filters, "live", "0")
	p.StreamURL = "/logs/stream?" + withParam(filters, "after", strconv.FormatInt(maxSeq(lines), 10))
	if cursor && len(lines) == q.Limit && len(lines) > 0 {
		older := filters
		if v.Get("live") == "0" {
			older = url.Values{}
			for k, vs := range filters {
				older[k] = vs
			}
			older.Set("live", "0")
		}
		p.OlderURL = "/logs?" + withParam(older, "before", strconv.FormatInt(lines[len(lines)-1].Seq, 10))
	}
	h.render(w, r, http.StatusOK, m, logsView(p))
}

func (h *Handler) serviceMap(w http.ResponseWriter, r *http.Request) {
	window, err := parseWindow(r.URL.Query())
	if err != nil {
		h.renderError(w, r, http.StatusBadRequest, paramMessage(err))
		return
	}
	now := h.cfg.now()
	edges, err := h.src.Edges(r.Context(), now.Add(-window), now)
	if err != nil {
		h.sourceError(w, r, "Service map", err)
		return
	}
	label := r.URL.Query().Get("window")
	if label == "" {
		label = "15m"
	}
	h.render(w, r, http.StatusOK, h.meta(r, "Service map", "map"), mapView(newServiceMap(edges, now.Add(-window), now), label))
}

// search resolves the header search box: a request ID goes to the trace of
// that request, a trace ID to its trace, anything unknown to a log search.
func (h *Handler) search(w http.ResponseWriter, r *http.Request) {
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	switch {
	case q == "":
		redirect(w, r, "/traces")
		return
	case len(q) > maxTextParam:
		h.renderError(w, r, http.StatusBadRequest, fmt.Sprintf("Bad query: q is longer than %d bytes.", maxTextParam))
		return
	}
	rows, err := h.src.Traces(r.Context(), TraceQuery{RequestID: q, Limit: 1})
	if err != nil {
		h.sourceError(w, r, "Traces", err)
		return
	}
	switch {
	case len(rows) > 0:
		redirect(w, r, traceURL(rows[0].TraceID))
	case isTraceID(q):
		redirect(w, r, traceURL(strings.ToLower(q)))
	default:
		redirect(w, r, logsURL("request_id", q))
	}
}

// Template helpers.

func seconds(d time.Duration) string {
	if d < time.Second {
		return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
	}
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + "s"
}

// query encodes key/value pairs as a query string.
func query(kv ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return v.Encode()
}

// sortURL links the service page sorted by key; the current key toggles
// its direction, a new numeric key starts descending. An empty key keeps
// the current order.
func sortURL(p serviceProps, key string) string {
	base := serviceURL(p.Detail.Summary.Name)
	desc := p.Desc
	switch {
	case key == "":
		key = p.Sort
	case key == p.Sort:
		desc = !desc
	default:
		desc = key != "route"
	}
	dir := "asc"
	if desc {
		dir = "desc"
	}
	if key == "route" && !desc {
		return base
	}
	return base + "?" + query("sort", key, "dir", dir)
}

// withCurrent returns options plus value when value is not one of them, so
// a hand-written URL keeps its filter visible in the form.
func withCurrent(options []option, value string) []option {
	for _, o := range options {
		if o.Value == value {
			return options
		}
	}
	out := make([]option, 0, len(options)+1)
	out = append(out, options...)
	return append(out, option{value, value})
}
