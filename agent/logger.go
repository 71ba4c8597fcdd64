package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/otel/trace"

	"github.com/pilothouse/pilothouse/agent/internal/batch"
	"github.com/pilothouse/pilothouse/agent/internal/linewriter"
)

// Logger returns the request-scoped logger the middleware set up for c:
// its records carry service, instance, request_id, trace_id and span_id.
// Without the middleware it returns a plain JSON logger on stderr; it never
// panics.
func Logger(c *gin.Context) *slog.Logger {
	if c == nil || c.Request == nil {
		return fallbackLogger()
	}
	return LoggerFromContext(c.Request.Context())
}

// LoggerFromContext returns the request-scoped logger held by ctx (the
// request context the middleware set up, or one derived from it), or a
// plain JSON logger on stderr.
func LoggerFromContext(ctx context.Context) *slog.Logger {
	if ctx != nil {
		if st := stateFrom(ctx); st != nil {
			return st.log()
		}
	}
	return fallbackLogger()
}

func fallbackLogger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(os.Stderr, nil))
}

// logEntry is one record waiting for export. Values are resolved when the
// record is made so that later changes by the caller do not race.
type logEntry struct {
	time      time.Time
	level     slog.Level
	msg       string
	traceID   trace.TraceID
	spanID    trace.SpanID
	requestID string
	attrs     []slog.Attr
}

// logSink is shared by every handler of one agent.
type logSink struct {
	service  string
	instance string
	level    slog.Level

	// serviceJSON is `,"service":…,"instance":…`, encoded once.
	serviceJSON []byte

	// local writes the JSON lines from its own goroutine, so a slow
	// stderr never holds up a request; nil when local output is off.
	local *linewriter.Writer
	bufs  sync.Pool
	times timeCache

	queue *batch.Queue[logEntry] // nil when logs are not exported
}

func newLogSink(a *Agent, cfg config) *logSink {
	s := &logSink{
		service:  a.service,
		instance: cfg.instanceID,
		level:    cfg.logLevel,
	}
	if cfg.localLog != nil && cfg.localLog != io.Discard {
		s.local = linewriter.New(cfg.localLog, 0, 0)
	}
	s.serviceJSON = appendJSONString(append(s.serviceJSON, `,"service":`...), s.service)
	s.serviceJSON = appendJSONString(append(s.serviceJSON, `,"instance":`...), s.instance)
	s.bufs.New = func() any { b := make([]byte, 0, 1024); return &b }
	if cfg.logs.endpoint != "" && !cfg.otelDisabled {
		exp := newLogExporter(a.resource.Attributes(), cfg.poster(cfg.logs))
		s.queue = batch.New(cfg.logBatch.settings(cfg.logQueue), exp.export)
	}
	return s
}

// logHandler is the agent's slog.Handler: it writes JSON to the local
// writer and queues the record for OTLP export. Group names are flattened
// into dotted keys ("db.query") in both outputs.
type logHandler struct {
	sink *logSink
	req  *requestState // nil when not bound to a request
	// scope holds what WithGroup and WithAttrs added; nil for nothing, so
	// that the handler kept in every request's state stays small.
	scope *logScope
}

// logScope is a handler's open groups and attributes.
type logScope struct {
	prefix string      // open groups, "a.b."
	attrs  []slog.Attr // flattened, resolved
	json   []byte      // attrs pre-encoded, each ",\"k\":v"
}

// scoped returns h's scope; the empty one when it has none.
func (h *logHandler) scoped() logScope {
	if h.scope == nil {
		return logScope{}
	}
	return *h.scope
}

var _ slog.Handler = (*logHandler)(nil)

func (h *logHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.sink.level }

func (h *logHandler) WithAttrs(as []slog.Attr) slog.Handler {
	if len(as) == 0 {
		return h
	}
	old := h.scoped()
	sc := &logScope{prefix: old.prefix}
	sc.attrs = append(old.attrs[:len(old.attrs):len(old.attrs)], flattenAttrs(nil, old.prefix, as)...)
	sc.json = old.json[:len(old.json):len(old.json)]
	for _, a := range sc.attrs[len(old.attrs):] {
		sc.json = appendJSONAttr(sc.json, a)
	}
	return &logHandler{sink: h.sink, req: h.req, scope: sc}
}

func (h *logHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	sc := h.scoped()
	sc.prefix += name + "."
	return &logHandler{sink: h.sink, req: h.req, scope: &sc}
}

func (h *logHandler) Handle(ctx context.Context, r slog.Record) error {
	st := h.req
	if st == nil && ctx != nil {
		st = stateFrom(ctx)
	}
	var (
		spanCtx   trace.SpanContext
		requestID string
	)
	if st != nil {
		spanCtx, requestID = st.span.SpanContext(), st.span.requestID
	} else if ctx != nil {
		spanCtx = trace.SpanContextFromContext(ctx)
	}
	var attrs []slog.Attr
	sc := h.scoped()
	if n := len(sc.attrs) + r.NumAttrs(); n > 0 {
		attrs = make([]slog.Attr, 0, n)
		attrs = append(attrs, sc.attrs...)
		r.Attrs(func(a slog.Attr) bool {
			attrs = flattenAttr(attrs, sc.prefix, a)
			return true
		})
	}
	if h.sink.local != nil {
		h.writeLocal(&r, spanCtx, requestID, sc.json, attrs[len(sc.attrs):])
	}
	if q := h.sink.queue; q != nil {
		q.Offer(logEntry{
			time:      r.Time,
			level:     r.Level,
			msg:       r.Message,
			traceID:   spanCtx.TraceID(),
			spanID:    spanCtx.SpanID(),
			requestID: requestID,
			attrs:     attrs,
		})
	}
	return nil
}

// writeLocal encodes the record as one JSON line and hands it to the local
// writer; a line that finds no room there is dropped and counted. Errors
// are written without the writer's linger: such a line may be the last
// before the process exits.
func (h *logHandler) writeLocal(r *slog.Record, sc trace.SpanContext, requestID string, scopeJSON []byte, recAttrs []slog.Attr) {
	bp := h.sink.bufs.Get().(*[]byte)
	b := (*bp)[:0]
	b = append(b, `{"time":"`...)
	b = h.sink.times.appendRFC3339Nano(b, r.Time)
	b = append(b, `","level":`...)
	b = appendJSONString(b, r.Level.String())
	b = append(b, `,"msg":`...)
	b = appendJSONString(b, r.Message)
	b = append(b, h.sink.serviceJSON...)
	if requestID != "" {
		b = append(b, `,"request_id":`...)
		b = appendJSONString(b, requestID)
	}
	if sc.IsValid() {
		var tid [32]byte
		var sid [16]byte
		traceID, spanID := sc.TraceID(), sc.SpanID()
		b = append(b, `,"trace_id":"`...)
		b = append(b, hexEncode(tid[:], traceID[:])...)
		b = append(b, `","span_id":"`...)
		b = append(b, hexEncode(sid[:], spanID[:])...)
		b = append(b, '"')
	}
	b = append(b, scopeJSON...)
	for _, a := range recAttrs {
		b = appendJSONAttr(b, a)
	}
	b = append(b, '}', '\n')
	if r.Level >= slog.LevelError {
		h.sink.local.WriteLineNow(b)
	} else {
		h.sink.local.WriteLine(b)
	}
	*bp = b
	if cap(b) <= 64<<10 {
		h.sink.bufs.Put(bp)
	}
}

// flattenAttrs appends as, flattened under prefix, to dst.
func flattenAttrs(dst []slog.Attr, prefix string, as []slog.Attr) []slog.Attr {
	for _, a := range as {
		dst = flattenAttr(dst, prefix, a)
	}
	return dst
}

// flattenAttr resolves a and appends it to dst with dotted group keys.
// Values of kind Any are turned into strings now, so that the exporter
// never reads memory the caller may change.
func flattenAttr(dst []slog.Attr, prefix string, a slog.Attr) []slog.Attr {
	v := a.Value.Resolve()
	if v.Kind() == slog.KindGroup {
		gs := v.Group()
		if len(gs) == 0 {
			return dst
		}
		p := prefix
		if a.Key != "" {
			p = prefix + a.Key + "."
		}
		return flattenAttrs(dst, p, gs)
	}
	if a.Key == "" {
		return dst
	}
	key := a.Key
	if prefix != "" {
		key = prefix + a.Key
	}
	if v.Kind() == slog.KindAny {
		v = slog.StringValue(anyString(v.Any()))
	}
	return append(dst, slog.Attr{Key: key, Value: v})
}

func anyString(x any) string {
	switch x := x.(type) {
	case nil:
		return "<nil>"
	case error:
		return x.Error()
	case fmt.Stringer:
		return x.String()
	case []byte:
		return string(x)
	}
	if b, err := json.Marshal(x); err == nil {
		return string(b)
	}
	return fmt.Sprintf("%+v", x)
}
