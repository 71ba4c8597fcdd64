package agent

import (
	"context"
	"encoding/hex"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

func TestSpanEncodingRoundTrip(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec),
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", "svc"))))
	parent := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
		SpanID:  trace.SpanID{9, 9, 9, 9, 9, 9, 9, 9}, TraceFlags: trace.FlagsSampled, Remote: true,
	})
	ctx := trace.ContextWithRemoteSpanContext(context.Background(), parent)
	_, s := tp.Tracer("scope-a", trace.WithInstrumentationVersion("1.0")).Start(ctx, "GET /x",
		trace.WithSpanKind(trace.SpanKindServer),
		trace.WithLinks(trace.Link{SpanContext: parent, Attributes: []attribute.KeyValue{attribute.Int("l", 1)}}))
	s.SetAttributes(
		attribute.String("s", "v"), attribute.Int64("i", -3), attribute.Float64("f", 2.5), attribute.Bool("b", true),
		attribute.StringSlice("ss", []string{"a", "b"}), attribute.Int64Slice("is", []int64{1, 2}),
		attribute.Float64Slice("fs", []float64{0.5}), attribute.BoolSlice("bs", []bool{true, false}),
	)
	s.AddEvent("evt", trace.WithAttributes(attribute.String("k", "v")))
	s.SetStatus(codes.Error, "broken")
	s.End()
	_, s2 := tp.Tracer("scope-b").Start(context.Background(), "other")
	s2.End()

	exp := &spanExporter{post: poster{url: "http://x/v1/traces", what: "spans"}}
	for range 2 { // the second pass reuses buffers
		var req coltrace.ExportTraceServiceRequest
		if err := proto.Unmarshal(exp.encode(sdkSpans(rec.Ended())), &req); err != nil {
			t.Fatalf("unmarshal: got %v, want nil", err)
		}
		rs := req.GetResourceSpans()
		if len(rs) != 1 || len(rs[0].GetScopeSpans()) != 2 {
			t.Fatalf("shape: got %v, want one resource with two scopes", &req)
		}
		if got := kvMap(rs[0].GetResource().GetAttributes())["service.name"].GetStringValue(); got != "svc" {
			t.Errorf("service.name: got %q, want svc", got)
		}
		ss := rs[0].GetScopeSpans()[0]
		if ss.GetScope().GetName() != "scope-a" || ss.GetScope().GetVersion() != "1.0" {
			t.Errorf("scope: got %v, want scope-a 1.0", ss.GetScope())
		}
		sp := ss.GetSpans()[0]
		sc := s.SpanContext()
		tests := []struct {
			name      string
			got, want any
		}{
			{name: "trace id", got: hex.EncodeToString(sp.GetTraceId()), want: sc.TraceID().String()},
			{name: "span id", got: hex.EncodeToString(sp.GetSpanId()), want: sc.SpanID().String()},
			{name: "parent", got: hex.EncodeToString(sp.GetParentSpanId()), want: parent.SpanID().String()},
			{name: "name", got: sp.GetName(), want: "GET /x"},
			{name: "kind", got: sp.GetKind(), want: tracepb.Span_SPAN_KIND_SERVER},
			{name: "start", got: sp.GetStartTimeUnixNano(), want: uint64(rec.Ended()[0].StartTime().UnixNano())},
			{name: "end", got: sp.GetEndTimeUnixNano(), want: uint64(rec.Ended()[0].EndTime().UnixNano())},
			{name: "status", got: sp.GetStatus().GetCode(), want: tracepb.Status_STATUS_CODE_ERROR},
			{name: "status message", got: sp.GetStatus().GetMessage(), want: "broken"},
			{name: "flags", got: sp.GetFlags(), want: uint32(0x301)},
			{name: "event", got: sp.GetEvents()[0].GetName(), want: "evt"},
			{name: "event attr", got: kvMap(sp.GetEvents()[0].GetAttributes())["k"].GetStringValue(), want: "v"},
			{name: "link", got: hex.EncodeToString(sp.GetLinks()[0].GetSpanId()), want: parent.SpanID().String()},
			{name: "link attr", got: kvMap(sp.GetLinks()[0].GetAttributes())["l"].GetIntValue(), want: int64(1)},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if tt.got != tt.want {
					t.Errorf("got %v, want %v", tt.got, tt.want)
				}
			})
		}
		at := kvMap(sp.GetAttributes())
		wantAttrs := map[string]*commonpb.AnyValue{
			"s":  strVal("v"),
			"i":  {Value: &commonpb.AnyValue_IntValue{IntValue: -3}},
			"f":  {Value: &commonpb.AnyValue_DoubleValue{DoubleValue: 2.5}},
			"b":  {Value: &commonpb.AnyValue_BoolValue{BoolValue: true}},
			"ss": arrayVal(strVal("a"), strVal("b")),
			"is": arrayVal(&commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: 1}}, &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: 2}}),
			"fs": arrayVal(&commonpb.AnyValue{Value: &commonpb.AnyValue_DoubleValue{DoubleValue: 0.5}}),
			"bs": arrayVal(&commonpb.AnyValue{Value: &commonpb.AnyValue_BoolValue{BoolValue: true}}, &commonpb.AnyValue{Value: &commonpb.AnyValue_BoolValue{BoolValue: false}}),
		}
		for k, want := range wantAttrs {
			if !proto.Equal(at[k], want) {
				t.Errorf("attribute %s: got %v, want %v", k, at[k], want)
			}
		}
		other := rs[0].GetScopeSpans()[1].GetSpans()[0]
		if other.GetName() != "other" || len(other.GetParentSpanId()) != 0 || other.GetStatus() != nil {
			t.Errorf("second span: got %v, want root span named other with no status", other)
		}
	}
}

func arrayVal(vs ...*commonpb.AnyValue) *commonpb.AnyValue {
	return &commonpb.AnyValue{Value: &commonpb.AnyValue_ArrayValue{ArrayValue: &commonpb.ArrayValue{Values: vs}}}
}

func BenchmarkSpanEncode(b *testing.B) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	for range 512 {
		_, s := tp.Tracer("t").Start(context.Background(), "GET /users/:id")
		s.SetAttributes(attribute.String("http.route", "/users/:id"), attribute.Int("http.response.status_code", 200),
			attribute.String("request_id", "0123456789abcdef0123456789abcdef"))
		s.End()
	}
	spans := sdkSpans(rec.Ended())
	exp := &spanExporter{post: poster{url: "http://x", what: "spans"}}
	b.ReportAllocs()
	for b.Loop() {
		exp.encode(spans)
	}
}
