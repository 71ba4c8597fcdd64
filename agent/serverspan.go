package agent

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"reflect"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/embedded"

	"github.com/pilothouse/pilothouse/agent/wire"
)

// Limits on what code other than the middleware adds to a server span,
// the SDK's defaults.
const (
	maxSpanAttrs  = sdktrace.DefaultAttributeCountLimit
	maxSpanEvents = sdktrace.DefaultEventCountLimit
	maxSpanLinks  = sdktrace.DefaultLinkCountLimit
)

// serverSpan is the middleware's span for one request. It is a
// trace.Span, so handlers, the Transport and the SDK's tracer see it as
// the request's span (child spans and traceparent headers take its
// context), but it is not an SDK span: the middleware writes its fixed
// attributes into plain fields and End hands the struct to the span queue,
// where the exporter encodes it straight to OTLP. The SDK's span start,
// attribute de-duplication and end snapshot cost about a third of the
// agent's CPU per request (see BENCHMARKS.md).
//
// The fields above mu are written by the middleware's goroutine before End
// and read by the exporter after it. Everything code outside the
// middleware may touch lives under mu; after End it is frozen.
type serverSpan struct {
	embedded.Span

	a      *Agent
	sc     trace.SpanContext
	parent trace.SpanContext
	start  time.Time

	// The request's fixed attributes.
	method, route, path, client, requestID string
	status                                 int
	verdict                                *verdict

	mu         sync.Mutex
	name       string
	dur        time.Duration // end minus start, once ended
	ended      bool
	recording  bool // set at start, with the fields above mu
	statusCode codes.Code
	extra      *spanExtra // what other code added; nil until then
}

// spanExtra holds what code other than the middleware adds to a server
// span, kept apart so that a span nobody touches stays small.
type spanExtra struct {
	attrs         []attribute.KeyValue
	droppedAttrs  int
	events        []sdktrace.Event
	droppedEvents int
	links         []sdktrace.Link
	droppedLinks  int
	statusDesc    string
}

var _ trace.Span = (*serverSpan)(nil)

// startServerSpan starts the request's span in s (part of the request's
// state, so it costs no allocation of its own) as a child of the remote
// parent in ctx (if any), sampled by the agent's sampler. The request state
// carries it in the request's context (see requestState.Value).
func (a *Agent) startServerSpan(ctx context.Context, s *serverSpan, name string, start time.Time) {
	parent := trace.SpanContextFromContext(ctx)
	cfg := trace.SpanContextConfig{SpanID: newSpanID()}
	if parent.IsValid() {
		cfg.TraceID = parent.TraceID()
	} else {
		cfg.TraceID = newTraceID()
	}
	res := a.sampler.ShouldSample(sdktrace.SamplingParameters{
		ParentContext: ctx, TraceID: cfg.TraceID, Name: name, Kind: trace.SpanKindServer,
	})
	cfg.TraceState = res.Tracestate
	if res.Decision == sdktrace.RecordAndSample {
		cfg.TraceFlags = parent.TraceFlags() | trace.FlagsSampled
	} else {
		cfg.TraceFlags = parent.TraceFlags() &^ trace.FlagsSampled
	}
	s.a, s.sc, s.parent, s.start, s.name = a, trace.NewSpanContext(cfg), parent, start, name
	s.recording = res.Decision != sdktrace.Drop
	if len(res.Attributes) > 0 {
		s.extras().attrs = append(s.extras().attrs, res.Attributes...)
	}
}

// otelSpanKey is the context key trace.ContextWithSpan stores a span
// under. It is unexported, so it is read once from a probe: with it the
// request state answers trace.SpanFromContext itself and the request's
// context needs no extra node for the span. It is nil if the probe saw no
// key (a future otel version), and then the middleware falls back to
// trace.ContextWithSpan.
var otelSpanKey = func() any {
	var p keyProbe
	trace.SpanFromContext(&p)
	if p.calls != 1 {
		return nil
	}
	return p.key
}()

// keyProbe records the key of the one Value call made on it.
type keyProbe struct {
	context.Context
	key   any
	calls int
}

func (p *keyProbe) Value(k any) any {
	p.key = k
	p.calls++
	return nil
}

// extras returns s.extra, allocating it; call it with mu held (or before
// the span is shared).
func (s *serverSpan) extras() *spanExtra {
	if s.extra == nil {
		s.extra = &spanExtra{}
	}
	return s.extra
}

// newTraceID and newSpanID use math/rand/v2's per-thread generator: no
// shared lock on the request path. IDs are never all zero.
func newTraceID() trace.TraceID {
	var id trace.TraceID
	for !id.IsValid() {
		binary.LittleEndian.PutUint64(id[:8], rand.Uint64())
		binary.LittleEndian.PutUint64(id[8:], rand.Uint64())
	}
	return id
}

func newSpanID() trace.SpanID {
	var id trace.SpanID
	for !id.IsValid() {
		binary.LittleEndian.PutUint64(id[:], rand.Uint64())
	}
	return id
}

// SpanContext implements trace.Span.
func (s *serverSpan) SpanContext() trace.SpanContext { return s.sc }

// IsRecording implements trace.Span.
func (s *serverSpan) IsRecording() bool {
	if !s.recording {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.ended
}

// SetStatus implements trace.Span with the SDK's precedence: Ok is
// final, Error replaces Unset, and only Error keeps a description.
func (s *serverSpan) SetStatus(code codes.Code, description string) {
	if !s.recording {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended || s.statusCode > code {
		return
	}
	s.statusCode = code
	if code == codes.Error && description != "" {
		s.extras().statusDesc = description
	} else if s.extra != nil {
		s.extra.statusDesc = ""
	}
}

// lockLive locks s and returns its extras while it records and has not
// ended; otherwise it returns nil, unlocked.
func (s *serverSpan) lockLive() *spanExtra {
	if !s.recording {
		return nil
	}
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return nil
	}
	return s.extras()
}

// SetAttributes implements trace.Span; a key set again replaces its value.
func (s *serverSpan) SetAttributes(kv ...attribute.KeyValue) {
	x := s.lockLive()
	if x == nil {
		return
	}
	defer s.mu.Unlock()
	for _, a := range kv {
		if !a.Valid() {
			x.droppedAttrs++
			continue
		}
		x.setAttr(a)
	}
}

func (x *spanExtra) setAttr(kv attribute.KeyValue) {
	for i := range x.attrs {
		if x.attrs[i].Key == kv.Key {
			x.attrs[i] = kv
			return
		}
	}
	if len(x.attrs) >= maxSpanAttrs {
		x.droppedAttrs++
		return
	}
	x.attrs = append(x.attrs, kv)
}

// AddEvent implements trace.Span.
func (s *serverSpan) AddEvent(name string, opts ...trace.EventOption) {
	if !s.recording {
		return
	}
	cfg := trace.NewEventConfig(opts...)
	x := s.lockLive()
	if x == nil {
		return
	}
	defer s.mu.Unlock()
	if len(x.events) >= maxSpanEvents {
		x.droppedEvents++
		return
	}
	x.events = append(x.events, sdktrace.Event{Name: name, Attributes: cfg.Attributes(), Time: cfg.Timestamp()})
}

// AddLink implements trace.Span.
func (s *serverSpan) AddLink(link trace.Link) {
	if !link.SpanContext.IsValid() {
		return
	}
	x := s.lockLive()
	if x == nil {
		return
	}
	defer s.mu.Unlock()
	if len(x.links) >= maxSpanLinks {
		x.droppedLinks++
		return
	}
	x.links = append(x.links, sdktrace.Link{SpanContext: link.SpanContext, Attributes: link.Attributes})
}

// RecordError implements trace.Span: an "exception" event with the
// error's type and message, as the SDK records it.
func (s *serverSpan) RecordError(err error, opts ...trace.EventOption) {
	if !s.recording || err == nil {
		return
	}
	opts = append(opts, trace.WithAttributes(
		attribute.String("exception.type", errorType(err)),
		attribute.String("exception.message", err.Error()),
	))
	s.AddEvent("exception", opts...)
}

func errorType(err error) string {
	t := reflect.TypeOf(err)
	if t.PkgPath() == "" && t.Name() == "" {
		return t.String()
	}
	return t.PkgPath() + "." + t.Name()
}

// SetName implements trace.Span.
func (s *serverSpan) SetName(name string) {
	if !s.recording {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.ended {
		s.name = name
	}
}

// TracerProvider implements trace.Span.
func (s *serverSpan) TracerProvider() trace.TracerProvider { return s.a.tp }

// End implements trace.Span: it freezes the span and queues it for
// export (when sampled) and for the span processors added with
// WithSpanProcessor. It never blocks.
func (s *serverSpan) End(opts ...trace.SpanEndOption) {
	var end time.Time
	if len(opts) > 0 {
		cfg := trace.NewSpanEndConfig(opts...)
		end = cfg.Timestamp()
	}
	if end.IsZero() {
		end = time.Now()
	}
	s.endAt(end)
}

// endAt is End at the time the middleware already read.
func (s *serverSpan) endAt(end time.Time) {
	if !s.recording {
		return
	}
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return
	}
	s.ended, s.dur = true, end.Sub(s.start)
	s.mu.Unlock()
	if s.sc.IsSampled() && s.a.spans != nil {
		s.a.spans.q.Offer(queuedSpan{own: s})
	}
	if len(s.a.cfg.spanProcessors) > 0 {
		snap := s.snapshot()
		for _, p := range s.a.cfg.spanProcessors {
			p.OnEnd(snap)
		}
	}
}

// fixedAttrs returns the request attributes the middleware set, as the
// exporter writes them first.
func (s *serverSpan) fixedAttrs() []attribute.KeyValue {
	kv := make([]attribute.KeyValue, 0, 9)
	kv = append(kv,
		attribute.String("http.request.method", s.method),
		attribute.String("http.route", s.route),
		attribute.String("url.path", s.path),
		attribute.String("client.address", s.client),
		attribute.String(wire.AttrRequestID, s.requestID),
		attribute.Int("http.response.status_code", s.status),
	)
	if v := s.verdict; v != nil && v.marked {
		kv = append(kv, attribute.String(wire.AttrRuleID, v.rule), attribute.String(wire.AttrAction, v.act.String()))
		if v.act == actShadow {
			kv = append(kv, attribute.String(AttrShadowAction, v.would.String()))
		}
	}
	return kv
}

// snapshot is the ended span as an SDK ReadOnlySpan, for span processors.
// Call it only after End.
func (s *serverSpan) snapshot() sdktrace.ReadOnlySpan {
	attrs := s.fixedAttrs()
	var x spanExtra
	if s.extra != nil {
		x = *s.extra
	}
	for _, kv := range x.attrs {
		if !hasKey(attrs, kv.Key) {
			attrs = append(attrs, kv)
		}
	}
	return tracetest.SpanStub{
		Name:                 s.name,
		SpanContext:          s.sc,
		Parent:               s.parent,
		SpanKind:             trace.SpanKindServer,
		StartTime:            s.start,
		EndTime:              s.endTime(),
		Attributes:           attrs,
		Events:               x.events,
		Links:                x.links,
		Status:               sdktrace.Status{Code: s.statusCode, Description: x.statusDesc},
		DroppedAttributes:    x.droppedAttrs,
		DroppedEvents:        x.droppedEvents,
		DroppedLinks:         x.droppedLinks,
		Resource:             s.a.resource,
		InstrumentationScope: instrumentation.Scope{Name: instrumentationName},
	}.Snapshot()
}

func hasKey(kvs []attribute.KeyValue, k attribute.Key) bool {
	for _, kv := range kvs {
		if kv.Key == k {
			return true
		}
	}
	return false
}

// endTime is when the span ended; call it only after End.
func (s *serverSpan) endTime() time.Time { return s.start.Add(s.dur) }
