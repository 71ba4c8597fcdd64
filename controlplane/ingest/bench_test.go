package ingest

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync/atomic"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/pilothouse/pilothouse/agent/wire"
	"github.com/pilothouse/pilothouse/controlplane/store"
)

const benchSpans = 512

// benchRequest builds a request shaped like an agent's export: server
// and client spans with HTTP attributes, a request ID and some events.
func benchRequest() *coltracepb.ExportTraceServiceRequest {
	intAttr := func(k string, v int64) *commonpb.KeyValue {
		return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: v}}}
	}
	spans := make([]*tracepb.Span, benchSpans)
	for i := range spans {
		s := validSpan()
		// Eight spans per trace, as a request through a few services gives.
		s.TraceId[0], s.TraceId[1] = byte(i/8), byte(i/8>>8)
		s.SpanId[0], s.SpanId[1] = byte(i), byte(i>>8)
		if i%4 != 0 {
			s.ParentSpanId = []byte{9, 9, 9, 9, 9, 9, byte(i), byte(i >> 8)}
			s.Kind = tracepb.Span_SPAN_KIND_CLIENT
		}
		s.Name = "GET /api/orders/:id"
		s.Attributes = []*commonpb.KeyValue{
			strAttr("http.request.method", "GET"),
			strAttr("http.route", "/api/orders/:id"),
			strAttr("url.path", fmt.Sprintf("/api/orders/%d", i)),
			intAttr("http.response.status_code", 200),
			strAttr("server.address", "orders.internal"),
			intAttr("server.port", 8080),
			strAttr("user_agent.original", "Go-http-client/1.1"),
			strAttr("request_id", fmt.Sprintf("01JD5Z%020d", i)),
			strAttr("network.peer.address", "10.0.3.17"),
		}
		s.Status = &tracepb.Status{Code: tracepb.Status_STATUS_CODE_UNSET}
		if i%16 == 0 {
			s.Events = []*tracepb.Span_Event{{Name: "exception", TimeUnixNano: s.StartTimeUnixNano + 10, Attributes: []*commonpb.KeyValue{
				strAttr("exception.type", "*errors.errorString"), strAttr("exception.message", "payment declined"),
			}}}
			s.Status = &tracepb.Status{Code: tracepb.Status_STATUS_CODE_ERROR, Message: "payment declined"}
		}
		spans[i] = s
	}
	req := tracesRequest("orders", spans...)
	req.ResourceSpans[0].Resource.Attributes = append(req.ResourceSpans[0].Resource.Attributes,
		strAttr("service.instance.id", "orders-7f9c"), strAttr("service.version", "1.4.2"),
		strAttr("telemetry.sdk.name", "opentelemetry"), strAttr("telemetry.sdk.language", "go"))
	return req
}

func reportSpanRate(b *testing.B) {
	b.ReportMetric(float64(benchSpans)*float64(b.N)/b.Elapsed().Seconds(), "spans/s")
}

// BenchmarkDecodeTracesProto is the ingest decode path: protobuf bytes to
// store spans.
func BenchmarkDecodeTracesProto(b *testing.B) {
	body := marshal(b, benchRequest())
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		spans, _, err := DecodeTraces(body, ContentTypeProtobuf)
		if err != nil || len(spans) != benchSpans {
			b.Fatalf("got %d spans, %v", len(spans), err)
		}
	}
	reportSpanRate(b)
}

// BenchmarkDecodeTracesGenerated is the same decode through
// proto.Unmarshal into the generated types, then mapping: the path the
// wire decoder replaced.
func BenchmarkDecodeTracesGenerated(b *testing.B) {
	body := marshal(b, benchRequest())
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		spans, _, err := decodeTracesGenerated(body)
		if err != nil || len(spans) != benchSpans {
			b.Fatalf("got %d spans, %v", len(spans), err)
		}
	}
	reportSpanRate(b)
}

// BenchmarkUnmarshalTracesProto is proto.Unmarshal alone: proto.Unmarshal alone,
// without mapping to store spans.
func BenchmarkUnmarshalTracesProto(b *testing.B) {
	body := marshal(b, benchRequest())
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		var req coltracepb.ExportTraceServiceRequest
		if err := proto.Unmarshal(body, &req); err != nil {
			b.Fatal(err)
		}
	}
	reportSpanRate(b)
}

// BenchmarkDecodeTracesJSON decodes the same request as OTLP/JSON.
func BenchmarkDecodeTracesJSON(b *testing.B) {
	// protojson writes IDs as base64; rewrite them as OTLP/JSON hex by
	// decoding through our own path once to check the document is right.
	body := otlpJSON(b, benchRequest())
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		spans, _, err := DecodeTraces(body, ContentTypeJSON)
		if err != nil || len(spans) != benchSpans {
			b.Fatalf("got %d spans, %v", len(spans), err)
		}
	}
	reportSpanRate(b)
}

// otlpJSON encodes req as OTLP/JSON: protojson with the IDs in hex.
func otlpJSON(b *testing.B, req *coltracepb.ExportTraceServiceRequest) []byte {
	b.Helper()
	out, err := protojson.MarshalOptions{}.Marshal(req)
	if err != nil {
		b.Fatal(err)
	}
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				for _, id := range [][]byte{s.TraceId, s.SpanId, s.ParentSpanId} {
					if len(id) == 0 {
						continue
					}
					b64, _ := protojson.Marshal(&commonpb.AnyValue{Value: &commonpb.AnyValue_BytesValue{BytesValue: id}})
					// {"bytesValue":"..."} -> the quoted base64 string
					q := b64[bytes.IndexByte(b64, ':')+1 : len(b64)-1]
					out = bytes.Replace(out, q, fmt.Appendf(nil, "%q", fmt.Sprintf("%x", id)), 1)
				}
			}
		}
	}
	return out
}

type discardStore struct{}

func (discardStore) WriteSpans(context.Context, []store.Span) error     { return nil }
func (discardStore) WriteLogs(context.Context, []store.LogRecord) error { return nil }

// BenchmarkTracesHandler is the whole endpoint with gzip, in parallel,
// storing into a store that discards.
func BenchmarkTracesHandler(b *testing.B) {
	body := gzipBytes(b, marshal(b, benchRequest()))
	h := New(Config{Spans: discardStore{}, Logs: discardStore{}})
	handler := h.Traces()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req := httptest.NewRequest(http.MethodPost, wire.PathTraces, bytes.NewReader(body))
			req.Header.Set("Content-Type", ContentTypeProtobuf)
			req.Header.Set("Content-Encoding", "gzip")
			rec := httptest.NewRecorder()
			handler.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				b.Fatalf("got status %d: %s", rec.Code, rec.Body)
			}
		}
	})
	reportSpanRate(b)
}

// BenchmarkDecodeLogsProto decodes 512 log records shaped like the
// agent's slog export.
func BenchmarkDecodeLogsProto(b *testing.B) {
	recs := make([]*logspb.LogRecord, benchSpans)
	for i := range recs {
		recs[i] = &logspb.LogRecord{
			TimeUnixNano:   1_700_000_000_000_000_000 + uint64(i),
			SeverityNumber: logspb.SeverityNumber_SEVERITY_NUMBER_INFO,
			SeverityText:   "INFO",
			Body:           &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: fmt.Sprintf("order %d loaded from cache", i)}},
			TraceId:        []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, byte(i), byte(i >> 8)},
			SpanId:         []byte{1, 2, 3, 4, 5, 6, byte(i), byte(i >> 8)},
			Attributes: []*commonpb.KeyValue{
				strAttr("request_id", fmt.Sprintf("01JD5Z%020d", i)),
				strAttr("service.instance.id", "orders-7f9c"),
				strAttr("http.route", "/api/orders/:id"),
				strAttr("order_id", fmt.Sprint(i)),
			},
		}
	}
	body := marshal(b, logsRequest(recs...))
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		logs, _, err := DecodeLogs(body, ContentTypeProtobuf)
		if err != nil || len(logs) != benchSpans {
			b.Fatalf("got %d logs, %v", len(logs), err)
		}
	}
	b.ReportMetric(float64(benchSpans)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkIngestIntoStore is the whole ingest path into the embedded
// store: 512-span protobuf requests (uncompressed, 64 traces of 8 spans)
// from 4 concurrent clients, each with trace IDs never stored before, answered
// once the store has committed them.
func BenchmarkIngestIntoStore(b *testing.B) {
	st, err := store.Open(b.TempDir(), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	h := New(Config{Spans: st, Logs: st})
	handler := h.Traces()

	req := benchRequest()
	body := marshal(b, req)
	// Offsets of every trace ID in body, to make each request's unique.
	var offsets []int
	for _, s := range req.ResourceSpans[0].ScopeSpans[0].Spans {
		i := bytes.Index(body, s.TraceId)
		if i < 0 {
			b.Fatal("trace ID not found in the encoded request")
		}
		if !slices.Contains(offsets, i) {
			for j := i; j >= 0; {
				offsets = append(offsets, j)
				next := bytes.Index(body[j+1:], s.TraceId)
				if next < 0 {
					break
				}
				j += 1 + next
			}
		}
	}
	if len(offsets) != benchSpans {
		b.Fatalf("found %d trace IDs, want %d", len(offsets), benchSpans)
	}
	var seq atomic.Uint64
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.SetParallelism(2)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		own := make([]byte, len(body))
		for pb.Next() {
			copy(own, body)
			n := seq.Add(1)
			for _, off := range offsets {
				binary.BigEndian.PutUint64(own[off+2:], n)
			}
			r := httptest.NewRequest(http.MethodPost, wire.PathTraces, bytes.NewReader(own))
			r.Header.Set("Content-Type", ContentTypeProtobuf)
			rec := httptest.NewRecorder()
			handler.ServeHTTP(rec, r)
			if rec.Code != http.StatusOK {
				b.Errorf("got status %d: %s", rec.Code, rec.Body)
				return
			}
		}
	})
	reportSpanRate(b)
}
