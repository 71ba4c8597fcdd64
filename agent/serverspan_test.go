package agent

import (
	"context"
	"encoding/hex"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/pilothouse/pilothouse/agent/wire"
)

// exportedServerSpans returns the server spans the fake control plane
// received, by name.
func exportedServerSpans(cp *fakeControlPlane) map[string]*tracepb.Span {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	out := map[string]*tracepb.Span{}
	for _, req := range cp.traces {
		for _, rs := range req.GetResourceSpans() {
			for _, ss := range rs.GetScopeSpans() {
				for _, s := range ss.GetSpans() {
					if s.GetKind() == tracepb.Span_SPAN_KIND_SERVER {
						out[s.GetName()] = s
					}
				}
			}
		}
	}
	return out
}

// TestServerSpanOverOTLP follows the middleware's own span through the
// real export path: what handlers add (attributes, a duplicate of a
// request attribute, events, status) arrives in the OTLP request next to
// the request attributes, with the remote parent and the resource.
func TestServerSpanOverOTLP(t *testing.T) {
	const parentTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	const parentSpan = "00f067aa0ba902b7"
	cp := newFakeControlPlane(t)
	a, _ := newTestAgent(t, WithControlPlane(cp.URL), WithHeartbeatInterval(time.Minute))
	r := gin.New()
	r.Use(a.Middleware())
	r.GET("/orders/:id", func(c *gin.Context) {
		span := trace.SpanFromContext(c.Request.Context())
		span.SetAttributes(attribute.String("order.id", c.Param("id")), attribute.Int("items", 3),
			attribute.String("http.route", "/spoofed"), attribute.StringSlice("tags", []string{"a", "b"}))
		span.SetAttributes(attribute.Int("items", 4)) // a key set again replaces its value
		span.AddEvent("cache miss", trace.WithAttributes(attribute.String("key", "o1")))
		_ = c.Error(errors.New("payment declined"))
		c.String(http.StatusPaymentRequired, "declined")
	})
	w := serve(t, r, http.MethodGet, "/orders/7", http.Header{"Traceparent": {"00-" + parentTrace + "-" + parentSpan + "-01"}})
	shutdown(t, a)

	s := exportedServerSpans(cp)["GET /orders/:id"]
	if s == nil {
		t.Fatalf("exported server spans: got %v, want GET /orders/:id", exportedServerSpans(cp))
	}
	if got := hex.EncodeToString(s.GetTraceId()); got != parentTrace {
		t.Errorf("trace ID: got %s, want %s", got, parentTrace)
	}
	if got := hex.EncodeToString(s.GetParentSpanId()); got != parentSpan {
		t.Errorf("parent span ID: got %s, want %s", got, parentSpan)
	}
	if s.GetFlags()&0x300 != 0x300 || s.GetFlags()&1 != 1 {
		t.Errorf("flags: got %#x, want sampled with a remote parent", s.GetFlags())
	}
	if s.GetEndTimeUnixNano() < s.GetStartTimeUnixNano() || s.GetStartTimeUnixNano() == 0 {
		t.Errorf("times: got start %d end %d, want 0 < start <= end", s.GetStartTimeUnixNano(), s.GetEndTimeUnixNano())
	}
	at := kvMap(s.GetAttributes())
	wantStr := map[string]string{
		"http.request.method": "GET",
		"http.route":          "/orders/:id",
		"url.path":            "/orders/7",
		wire.AttrRequestID:    w.Header().Get(wire.HeaderRequestID),
		"order.id":            "7",
	}
	for k, v := range wantStr {
		if got := at[k].GetStringValue(); got != v {
			t.Errorf("attribute %s: got %q, want %q", k, got, v)
		}
	}
	if got := at["http.response.status_code"].GetIntValue(); got != http.StatusPaymentRequired {
		t.Errorf("status code attribute: got %d, want 402", got)
	}
	if got := at["items"].GetIntValue(); got != 4 {
		t.Errorf("items: got %d, want 4", got)
	}
	if got := len(at["tags"].GetArrayValue().GetValues()); got != 2 {
		t.Errorf("tags: got %d values, want 2", got)
	}
	if n := len(s.GetAttributes()); n != len(at) {
		t.Errorf("attributes: got %d with duplicate keys, want each key once", n)
	}
	var names []string
	for _, ev := range s.GetEvents() {
		names = append(names, ev.GetName())
	}
	if len(names) != 2 || names[0] != "cache miss" || names[1] != "exception" {
		t.Errorf("events: got %v, want [cache miss exception]", names)
	}
	if s.GetStatus().GetCode() != tracepb.Status_STATUS_CODE_ERROR || s.GetStatus().GetMessage() != "payment declined" {
		t.Errorf("status: got %v, want error \"payment declined\"", s.GetStatus())
	}
}

func TestServerSpanSemantics(t *testing.T) {
	a, _ := newTestAgent(t)
	start := time.Now()
	var s serverSpan
	a.startServerSpan(context.Background(), &s, "GET /x", start)
	if !s.SpanContext().IsValid() || !s.SpanContext().IsSampled() || s.parent.IsValid() {
		t.Fatalf("root span context: got %+v, want a valid sampled root", s.SpanContext())
	}

	s.SetStatus(codes.Error, "first")
	s.SetStatus(codes.Unset, "ignored")
	if s.statusCode != codes.Error || s.extra.statusDesc != "first" {
		t.Errorf("status after Unset: got %v %q, want Error \"first\"", s.statusCode, s.extra.statusDesc)
	}
	s.SetStatus(codes.Ok, "dropped description")
	s.SetStatus(codes.Error, "too late")
	if s.statusCode != codes.Ok || s.extra.statusDesc != "" {
		t.Errorf("status after Ok: got %v %q, want Ok without description", s.statusCode, s.extra.statusDesc)
	}

	for i := range maxSpanAttrs + 5 {
		s.SetAttributes(attribute.Int("k"+string(rune('a'+i%26))+string(rune('a'+i/26)), i))
	}
	if got := len(s.extra.attrs); got != maxSpanAttrs || s.extra.droppedAttrs != 5 {
		t.Errorf("attribute cap: got %d kept, %d dropped, want %d and 5", got, s.extra.droppedAttrs, maxSpanAttrs)
	}
	s.SetName("GET /renamed")
	s.End()
	if s.IsRecording() {
		t.Errorf("IsRecording after End: got true, want false")
	}
	s.SetName("after end")
	s.SetAttributes(attribute.String("late", "x"))
	s.AddEvent("late")
	if s.name != "GET /renamed" || len(s.extra.events) != 0 {
		t.Errorf("after End: got name %q, %d events, want changes ignored", s.name, len(s.extra.events))
	}
}

func TestServerSpanNotSampled(t *testing.T) {
	tests := []struct {
		name   string
		opts   []Option
		parent string
	}{
		{name: "ratio 0", opts: []Option{WithSampleRatio(0)}},
		{name: "parent not sampled", parent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, rec := newTestAgent(t, tt.opts...)
			var sc trace.SpanContext
			r := gin.New()
			r.Use(a.Middleware())
			r.GET("/x", func(c *gin.Context) {
				sc = trace.SpanContextFromContext(c.Request.Context())
				_, child := a.TracerProvider().Tracer("t").Start(c.Request.Context(), "child")
				child.End()
			})
			var h http.Header
			if tt.parent != "" {
				h = http.Header{"Traceparent": {tt.parent}}
			}
			serve(t, r, http.MethodGet, "/x", h)
			if !sc.IsValid() || sc.IsSampled() {
				t.Errorf("span context: got valid=%v sampled=%v, want valid and not sampled", sc.IsValid(), sc.IsSampled())
			}
			if got := len(endedSpans(rec)); got != 0 {
				t.Errorf("recorded spans: got %d, want 0 (the child follows its parent's decision)", got)
			}
		})
	}
}

// TestRequestContextCarriesServerSpan checks that the request context
// answers trace.SpanFromContext with the server span itself (the request
// state stands in for trace.ContextWithSpan), that a span code puts on top
// of it wins, and that the remote parent below it stays hidden.
func TestRequestContextCarriesServerSpan(t *testing.T) {
	if otelSpanKey == nil {
		t.Fatal("otelSpanKey: the probe found no key; trace.SpanFromContext no longer makes exactly one Value call")
	}
	a, _ := newTestAgent(t)
	r := gin.New()
	r.Use(a.Middleware())
	var inHandler, onTop trace.Span
	var st *requestState
	r.GET("/x", func(c *gin.Context) {
		ctx := c.Request.Context()
		inHandler, st = trace.SpanFromContext(ctx), stateFrom(ctx)
		_, child := a.tp.Tracer("test").Start(ctx, "child")
		onTop = trace.SpanFromContext(trace.ContextWithSpan(ctx, child))
		if child.SpanContext().TraceID() != inHandler.SpanContext().TraceID() {
			t.Errorf("child trace: got %s, want the server span's", child.SpanContext().TraceID())
		}
		child.End()
		c.Status(http.StatusNoContent)
	})
	serve(t, r, http.MethodGet, "/x", http.Header{"Traceparent": {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}})
	if st == nil || inHandler != trace.Span(&st.span) {
		t.Fatalf("SpanFromContext in the handler: got %v, want the server span", inHandler)
	}
	if onTop == inHandler {
		t.Error("SpanFromContext over ContextWithSpan: got the server span, want the span put on top")
	}
	if inHandler.SpanContext().IsRemote() || inHandler.SpanContext().SpanID().String() == "00f067aa0ba902b7" {
		t.Errorf("server span: got %+v, want a local child of the remote parent", inHandler.SpanContext())
	}
}
