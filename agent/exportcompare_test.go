package agent

import (
	"context"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	collogs "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	"google.golang.org/protobuf/proto"
)

// The agent exports spans and log records with its own protowire
// encoders instead of otlptracehttp and the log SDK's otlploghttp. These
// benchmarks are the measurement behind that: the same batches, posted to
// the same discarding receiver (spans) or encoded (log records), per item.
//
//	go test ./agent -run '^$' -bench 'ExportSpans|EncodeLogs' -benchtime 2s -count 3

// serverSpanBatch is 512 ended SDK spans shaped like the middleware's.
func serverSpanBatch() []sdktrace.ReadOnlySpan {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	for range 512 {
		_, s := tp.Tracer(instrumentationName).Start(context.Background(), "GET /users/:id", trace.WithSpanKind(trace.SpanKindServer))
		s.SetAttributes(attribute.String("http.request.method", "GET"), attribute.String("http.route", "/users/:id"),
			attribute.String("url.path", "/users/42"), attribute.String("client.address", "10.1.2.3"),
			attribute.String("request_id", "0123456789abcdef0123456789abcdef"), attribute.Int("http.response.status_code", 200))
		s.End()
	}
	return rec.Ended()
}

func BenchmarkExportSpans(b *testing.B) {
	spans := serverSpanBatch()
	sink := sinkServer(b)
	perSpan := func(b *testing.B) {
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(spans)), "ns/span")
		b.ReportMetric(0, "ns/op")
	}
	b.Run("otlptracehttp", func(b *testing.B) {
		exp, err := otlptracehttp.New(context.Background(), otlptracehttp.WithEndpointURL(sink.URL+"/v1/traces"))
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if err := exp.ExportSpans(context.Background(), spans); err != nil {
				b.Fatal(err)
			}
		}
		perSpan(b)
	})
	b.Run("agent", func(b *testing.B) {
		exp := &spanExporter{post: poster{url: sink.URL + "/v1/traces", client: http.DefaultClient, what: "spans"}}
		queued := sdkSpans(spans)
		b.ReportAllocs()
		for b.Loop() {
			if err := exp.sendSpans(context.Background(), queued); err != nil {
				b.Fatal(err)
			}
		}
		perSpan(b)
	})
}

// logBatch is 512 log entries like the handler's line in the agent
// benchmark.
func logBatch() []logEntry {
	out := make([]logEntry, 512)
	for i := range out {
		out[i] = logEntry{time: time.Unix(1764000000, int64(i)), level: slog.LevelInfo, msg: "loading user",
			traceID: trace.TraceID{1, 2, 3}, spanID: trace.SpanID{4, 5, 6}, requestID: "0123456789abcdef0123456789abcdef",
			attrs: []slog.Attr{slog.String("user", "42")}}
	}
	return out
}

// BenchmarkEncodeLogs compares the agent's log encoder with what an
// otlploghttp export does at least: generated OTLP messages, then
// proto.Marshal (the log SDK's record handling comes on top of that).
func BenchmarkEncodeLogs(b *testing.B) {
	entries := logBatch()
	perRecord := func(b *testing.B) {
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(entries)), "ns/record")
		b.ReportMetric(0, "ns/op")
	}
	str := func(s string) *commonpb.AnyValue {
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: s}}
	}
	b.Run("generated+proto.Marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			recs := make([]*logspb.LogRecord, len(entries))
			for i := range entries {
				e := &entries[i]
				attrs := []*commonpb.KeyValue{{Key: "request_id", Value: str(e.requestID)}}
				for _, a := range e.attrs {
					attrs = append(attrs, &commonpb.KeyValue{Key: a.Key, Value: str(a.Value.String())})
				}
				recs[i] = &logspb.LogRecord{TimeUnixNano: uint64(e.time.UnixNano()), SeverityNumber: logspb.SeverityNumber(severity(e.level)),
					SeverityText: e.level.String(), Body: str(e.msg), Attributes: attrs, Flags: 1, TraceId: e.traceID[:], SpanId: e.spanID[:]}
			}
			req := &collogs.ExportLogsServiceRequest{ResourceLogs: []*logspb.ResourceLogs{{
				Resource:  &resourcepb.Resource{Attributes: []*commonpb.KeyValue{{Key: "service.name", Value: str("bench")}}},
				ScopeLogs: []*logspb.ScopeLogs{{Scope: &commonpb.InstrumentationScope{Name: instrumentationName}, LogRecords: recs}},
			}}}
			if _, err := proto.Marshal(req); err != nil {
				b.Fatal(err)
			}
		}
		perRecord(b)
	})
	b.Run("agent", func(b *testing.B) {
		exp := newLogExporter([]attribute.KeyValue{attribute.String("service.name", "bench")}, poster{})
		b.ReportAllocs()
		for b.Loop() {
			exp.encode(entries)
		}
		perRecord(b)
	})
}
