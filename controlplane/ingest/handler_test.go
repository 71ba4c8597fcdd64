package ingest

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/pilothouse/pilothouse/agent/wire"
	"github.com/pilothouse/pilothouse/controlplane/store"
)

// memoryStore records what it is given, or fails with err.
type memoryStore struct {
	mu    sync.Mutex
	spans []store.Span
	logs  []store.LogRecord
	err   error
}

func (m *memoryStore) WriteSpans(_ context.Context, spans []store.Span) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return m.err
	}
	m.spans = append(m.spans, spans...)
	return nil
}

func (m *memoryStore) WriteLogs(_ context.Context, logs []store.LogRecord) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return m.err
	}
	m.logs = append(m.logs, logs...)
	return nil
}

func (m *memoryStore) Spans() []store.Span {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]store.Span(nil), m.spans...)
}

// busyError is what a store with a full write queue returns.
type busyError struct{}

func (busyError) Error() string { return "store: write queue full" }
func (busyError) Busy() bool    { return true }

type heartbeatRecorder struct {
	mu     sync.Mutex
	beats  []wire.Heartbeat
	remote []string
	times  []time.Time
}

func (r *heartbeatRecorder) Observe(hb wire.Heartbeat, remoteAddr string, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.beats = append(r.beats, hb)
	r.remote = append(r.remote, remoteAddr)
	r.times = append(r.times, now)
}

var testNow = time.Date(2026, 11, 24, 15, 0, 0, 0, time.UTC)

func newTestHandler(t *testing.T, mutate func(*Config)) (*Handler, *memoryStore, *prometheus.Registry) {
	t.Helper()
	st := &memoryStore{}
	reg := prometheus.NewRegistry()
	cfg := Config{
		Spans:      st,
		Logs:       st,
		Heartbeats: &heartbeatRecorder{},
		Registerer: reg,
		Now:        func() time.Time { return testNow },
	}
	if mutate != nil {
		mutate(&cfg)
	}
	return New(cfg), st, reg
}

func mux(h *Handler) *http.ServeMux {
	m := http.NewServeMux()
	m.Handle(wire.PathTraces, h.Traces())
	m.Handle(wire.PathLogs, h.Logs())
	m.Handle(wire.PathHeartbeat, h.Heartbeats())
	return m
}

func TestTracesFromOTelSDKExporter(t *testing.T) {
	tests := []struct {
		name        string
		compression otlptracehttp.Compression
	}{
		{"uncompressed", otlptracehttp.NoCompression},
		{"gzip", otlptracehttp.GzipCompression},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, st, reg := newTestHandler(t, func(c *Config) { c.Authenticate = BearerToken("s3cret") })
			srv := httptest.NewServer(mux(h))
			defer srv.Close()

			ctx := context.Background()
			exp, err := otlptracehttp.New(ctx,
				otlptracehttp.WithEndpointURL(srv.URL+wire.PathTraces),
				otlptracehttp.WithHeaders(map[string]string{"Authorization": "Bearer s3cret"}),
				otlptracehttp.WithCompression(tt.compression),
				otlptracehttp.WithRetry(otlptracehttp.RetryConfig{Enabled: false}),
			)
			if err != nil {
				t.Fatalf("exporter: %v", err)
			}
			tp := sdktrace.NewTracerProvider(
				sdktrace.WithBatcher(exp),
				sdktrace.WithResource(resource.NewSchemaless(
					attribute.String("service.name", "gateway"),
					attribute.String("service.instance.id", "gw-1"),
				)),
			)
			tr := tp.Tracer("ingest-test")
			ctx, server := tr.Start(ctx, "GET /orders/:id", trace.WithSpanKind(trace.SpanKindServer),
				trace.WithAttributes(
					attribute.String("http.route", "/orders/:id"),
					attribute.Int("http.response.status_code", 502),
					attribute.String("request_id", "req-7"),
					attribute.StringSlice("tags", []string{"a", "b"}),
				))
			_, client := tr.Start(ctx, "POST orders", trace.WithSpanKind(trace.SpanKindClient))
			client.AddEvent("retry", trace.WithAttributes(attribute.Int("attempt", 2)))
			client.SetStatus(otelcodes.Error, "upstream failed")
			client.End()
			server.End()
			if err := tp.Shutdown(ctx); err != nil {
				t.Fatalf("shutdown (flush): %v", err)
			}

			spans := st.Spans()
			if len(spans) != 2 {
				t.Fatalf("got %d spans, want 2", len(spans))
			}
			byName := map[string]store.Span{}
			for _, s := range spans {
				byName[s.Name] = s
			}
			gotServer, gotClient := byName["GET /orders/:id"], byName["POST orders"]
			sc, cc := server.SpanContext(), client.SpanContext()
			checks := []struct {
				name      string
				got, want any
			}{
				{"server trace id", gotServer.TraceID, sc.TraceID().String()},
				{"server span id", gotServer.SpanID, sc.SpanID().String()},
				{"server is root", gotServer.ParentSpanID, ""},
				{"client trace id", gotClient.TraceID, sc.TraceID().String()},
				{"client span id", gotClient.SpanID, cc.SpanID().String()},
				{"client parent", gotClient.ParentSpanID, sc.SpanID().String()},
				{"service", gotServer.Service, "gateway"},
				{"instance", gotServer.Instance, "gw-1"},
				{"server kind", gotServer.Kind, "server"},
				{"client kind", gotClient.Kind, "client"},
				{"route", gotServer.Route, "/orders/:id"},
				{"http status", gotServer.HTTPStatus, 502},
				{"request id", gotServer.RequestID, "req-7"},
				{"slice attribute", len(gotServer.Attributes["tags"].([]any)), 2},
				{"client status", gotClient.StatusCode, "error"},
				{"client status message", gotClient.StatusMessage, "upstream failed"},
				{"event", gotClient.Events[0].Name, "retry"},
				{"event attribute", gotClient.Events[0].Attributes["attempt"], int64(2)},
			}
			for _, c := range checks {
				if c.got != c.want {
					t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
				}
			}
			if got := testutil.ToFloat64(h.metrics.spans.WithLabelValues(resultAccepted)); got != 2 {
				t.Errorf("accepted spans metric: got %v, want 2", got)
			}
			if n, err := testutil.GatherAndCount(reg, "pilothouse_ingest_bytes_total"); err != nil || n != 1 {
				t.Errorf("bytes metric series: got %d (%v), want 1", n, err)
			}
		})
	}
}

func gzipBytes(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatalf("gzip: %v", err)
	}
	if err := zw.Close(); err != nil {
		t.Fatalf("gzip: %v", err)
	}
	return buf.Bytes()
}

func logsRequest(records ...*logspb.LogRecord) *collogspb.ExportLogsServiceRequest {
	return &collogspb.ExportLogsServiceRequest{ResourceLogs: []*logspb.ResourceLogs{{
		Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{
			strAttr("service.name", "payments"), strAttr("service.version", "2.0.0"),
		}},
		ScopeLogs: []*logspb.ScopeLogs{{LogRecords: records}},
	}}}
}

func TestLogsProtobufGzip(t *testing.T) {
	h, st, _ := newTestHandler(t, nil)
	good := &logspb.LogRecord{
		TimeUnixNano:   uint64(testNow.Add(-time.Second).UnixNano()),
		SeverityNumber: logspb.SeverityNumber_SEVERITY_NUMBER_WARN,
		Body:           &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: "retrying"}},
		TraceId:        bytes.Repeat([]byte{0xab}, 16),
		SpanId:         bytes.Repeat([]byte{0xcd}, 8),
		Attributes:     []*commonpb.KeyValue{strAttr("request_id", "req-9")},
	}
	untimed := &logspb.LogRecord{Body: &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: 42}}}
	bad := &logspb.LogRecord{TraceId: []byte{1, 2, 3}}
	body := gzipBytes(t, marshal(t, logsRequest(good, untimed, bad)))

	req := httptest.NewRequest(http.MethodPost, wire.PathLogs, bytes.NewReader(body))
	req.Header.Set("Content-Type", ContentTypeProtobuf)
	req.Header.Set("Content-Encoding", "gzip")
	rec := httptest.NewRecorder()
	mux(h).ServeHTTP(rec, req)

	if rec.Code != http.StatusOK {
		t.Fatalf("got status %d (%s), want 200", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != ContentTypeProtobuf {
		t.Errorf("got Content-Type %q, want %q", ct, ContentTypeProtobuf)
	}
	var resp collogspb.ExportLogsServiceResponse
	if err := proto.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
		t.Fatalf("response: %v", err)
	}
	if got := resp.GetPartialSuccess().GetRejectedLogRecords(); got != 1 {
		t.Errorf("got %d rejected log records, want 1", got)
	}
	if msg := resp.GetPartialSuccess().GetErrorMessage(); !strings.Contains(msg, "logRecords[2]: traceId") {
		t.Errorf("got error message %q, want it to name logRecords[2] traceId", msg)
	}
	if len(st.logs) != 2 {
		t.Fatalf("got %d stored logs, want 2", len(st.logs))
	}
	l := st.logs[0]
	if l.Service != "payments" || l.Level != LevelWarn || l.Body != "retrying" || l.RequestID != "req-9" ||
		l.TraceID != strings.Repeat("ab", 16) || l.SpanID != strings.Repeat("cd", 8) || l.Attributes["service.version"] != "2.0.0" {
		t.Errorf("got %+v, want payments WARN retrying req-9 with IDs and service.version", l)
	}
	if got := st.logs[1]; !got.Time.Equal(testNow) || got.Body != "42" {
		t.Errorf("untimed record: got time %v body %q, want %v and \"42\"", got.Time, got.Body, testNow)
	}
}

func TestIngestBadInput(t *testing.T) {
	validTraces := marshal(t, tracesRequest("svc", validSpan()))
	bomb := gzipBytes(t, make([]byte, 2<<20))
	tests := []struct {
		name        string
		method      string
		path        string
		contentType string
		encoding    string
		body        []byte
		chunked     bool
		wantStatus  int
		wantMessage string
		wantProto   bool // error body is a google.rpc.Status protobuf
	}{
		{name: "GET", method: http.MethodGet, path: wire.PathTraces, contentType: ContentTypeProtobuf, wantStatus: http.StatusMethodNotAllowed, wantMessage: "POST"},
		{name: "wrong content type", path: wire.PathTraces, contentType: "text/plain", body: validTraces, wantStatus: http.StatusUnsupportedMediaType, wantMessage: "unsupported content type"},
		{name: "no content type", path: wire.PathLogs, body: validTraces, wantStatus: http.StatusUnsupportedMediaType, wantMessage: "unsupported content type"},
		{name: "unsupported encoding", path: wire.PathTraces, contentType: ContentTypeProtobuf, encoding: "br", body: validTraces, wantStatus: http.StatusUnsupportedMediaType, wantMessage: "unsupported content encoding", wantProto: true},
		{name: "bad gzip header", path: wire.PathTraces, contentType: ContentTypeProtobuf, encoding: "gzip", body: validTraces, wantStatus: http.StatusBadRequest, wantMessage: "gzip", wantProto: true},
		{name: "truncated gzip", path: wire.PathTraces, contentType: ContentTypeJSON, encoding: "gzip", body: gzipBytes(t, []byte(`{"resourceSpans":[]}`))[:20], wantStatus: http.StatusBadRequest, wantMessage: "gzip"},
		{name: "gzip bomb", path: wire.PathTraces, contentType: ContentTypeProtobuf, encoding: "gzip", body: bomb, wantStatus: http.StatusRequestEntityTooLarge, wantMessage: "decompressed body exceeds 1048576 bytes", wantProto: true},
		{name: "oversize", path: wire.PathLogs, contentType: ContentTypeJSON, body: make([]byte, 70<<10), wantStatus: http.StatusRequestEntityTooLarge, wantMessage: "exceeds 65536 bytes"},
		{name: "oversize gzip", path: wire.PathLogs, contentType: ContentTypeJSON, encoding: "gzip", body: gzipBytes(t, noise(200<<10)), chunked: true, wantStatus: http.StatusRequestEntityTooLarge, wantMessage: "body exceeds 65536 bytes"},
		{name: "oversize chunked", path: wire.PathLogs, contentType: ContentTypeJSON, body: make([]byte, 70<<10), chunked: true, wantStatus: http.StatusRequestEntityTooLarge, wantMessage: "exceeds 65536 bytes"},
		{name: "malformed protobuf", path: wire.PathTraces, contentType: ContentTypeProtobuf, body: []byte("\x0a\xff\xff\xff\x0f"), wantStatus: http.StatusBadRequest, wantMessage: "malformed", wantProto: true},
		{name: "malformed JSON", path: wire.PathLogs, contentType: ContentTypeJSON, body: []byte(`{"resourceLogs": [}`), wantStatus: http.StatusBadRequest, wantMessage: "OTLP/JSON logs"},
		{name: "empty protobuf is fine", path: wire.PathTraces, contentType: ContentTypeProtobuf, wantStatus: http.StatusOK, wantProto: true},
		{name: "empty JSON object is fine", path: wire.PathLogs, contentType: ContentTypeJSON, body: []byte(`{}`), wantStatus: http.StatusOK},
		{name: "invalid IDs are partial success", path: wire.PathTraces, contentType: ContentTypeJSON,
			body:       []byte(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"abcd","spanId":"eee19b7ec3c1b174","startTimeUnixNano":"1"}]}]}]}`),
			wantStatus: http.StatusOK, wantMessage: `"rejectedSpans":"1"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, _, _ := newTestHandler(t, func(c *Config) {
				c.MaxBodyBytes = 64 << 10
				c.MaxDecompressedBytes = 1 << 20
			})
			method := tt.method
			if method == "" {
				method = http.MethodPost
			}
			var body io.Reader = bytes.NewReader(tt.body)
			if tt.chunked {
				body = io.MultiReader(body) // hides the length
			}
			req := httptest.NewRequest(method, tt.path, body)
			if tt.chunked {
				req.ContentLength = -1
			}
			if tt.contentType != "" {
				req.Header.Set("Content-Type", tt.contentType)
			}
			if tt.encoding != "" {
				req.Header.Set("Content-Encoding", tt.encoding)
			}
			rec := httptest.NewRecorder()
			mux(h).ServeHTTP(rec, req)
			if rec.Code != tt.wantStatus {
				t.Fatalf("got status %d (%q), want %d", rec.Code, rec.Body, tt.wantStatus)
			}
			msg := rec.Body.String()
			if tt.wantProto {
				if ct := rec.Header().Get("Content-Type"); ct != ContentTypeProtobuf {
					t.Errorf("got Content-Type %q, want %q", ct, ContentTypeProtobuf)
				}
				if rec.Code != http.StatusOK {
					var st statuspb.Status
					if err := proto.Unmarshal(rec.Body.Bytes(), &st); err != nil {
						t.Fatalf("error body is not a google.rpc.Status: %v", err)
					}
					msg = st.Message
				}
			} else if rec.Code != http.StatusOK {
				var je jsonError
				if err := json.Unmarshal(rec.Body.Bytes(), &je); err != nil || je.Error == "" {
					t.Fatalf("error body %q is not JSON {\"error\": ...}: %v", rec.Body, err)
				}
				msg = je.Error
			}
			if !strings.Contains(msg, tt.wantMessage) {
				t.Errorf("got message %q, want it to contain %q", msg, tt.wantMessage)
			}
		})
	}
}

// noise returns n bytes that do not compress.
func noise(n int) []byte {
	b := make([]byte, n)
	x := uint32(2463534242)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

func TestAuthentication(t *testing.T) {
	h, st, _ := newTestHandler(t, func(c *Config) { c.Authenticate = BearerToken("s3cret") })
	tests := []struct {
		name       string
		path       string
		header     string
		wantStatus int
	}{
		{"no header", wire.PathTraces, "", http.StatusUnauthorized},
		{"wrong token", wire.PathLogs, "Bearer nope", http.StatusUnauthorized},
		{"wrong scheme", wire.PathTraces, "Basic s3cret", http.StatusUnauthorized},
		{"token prefix", wire.PathTraces, "Bearer s3cre", http.StatusUnauthorized},
		{"heartbeat without token", wire.PathHeartbeat, "", http.StatusUnauthorized},
		{"right token", wire.PathTraces, "Bearer s3cret", http.StatusOK},
		{"scheme case-insensitive", wire.PathTraces, "bearer s3cret", http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, tt.path, bytes.NewReader(marshal(t, tracesRequest("svc", validSpan()))))
			req.Header.Set("Content-Type", ContentTypeProtobuf)
			if tt.header != "" {
				req.Header.Set("Authorization", tt.header)
			}
			rec := httptest.NewRecorder()
			mux(h).ServeHTTP(rec, req)
			if rec.Code != tt.wantStatus {
				t.Errorf("got status %d, want %d", rec.Code, tt.wantStatus)
			}
		})
	}
	if got := testutil.ToFloat64(h.metrics.authFailures); got != 5 {
		t.Errorf("auth failures metric: got %v, want 5", got)
	}
	if got := len(st.Spans()); got != 2 {
		t.Errorf("got %d stored spans, want 2 (only authenticated requests)", got)
	}
	if BearerToken("") != nil {
		t.Errorf("BearerToken(\"\") is not nil, want nil (open)")
	}
}

func TestStoreFailures(t *testing.T) {
	tests := []struct {
		name           string
		err            error
		wantStatus     int
		wantRetryAfter string
	}{
		{"store.ErrBusy", fmt.Errorf("batch: %w", store.ErrBusy), http.StatusTooManyRequests, "1"},
		{"busy", busyError{}, http.StatusTooManyRequests, "1"},
		{"invalid input is not retried", fmt.Errorf("%w: kind", store.ErrInvalid), http.StatusBadRequest, ""},
		{"wrapped busy", errors.Join(errors.New("batch 3"), busyError{}), http.StatusTooManyRequests, "1"},
		{"disk full", errors.New("store: disk full"), http.StatusServiceUnavailable, "5"},
	}
	for _, tt := range tests {
		for _, path := range []string{wire.PathTraces, wire.PathLogs} {
			t.Run(tt.name+path, func(t *testing.T) {
				h, st, _ := newTestHandler(t, nil)
				st.err = tt.err
				body := marshal(t, tracesRequest("svc", validSpan()))
				if path == wire.PathLogs {
					body = marshal(t, logsRequest(&logspb.LogRecord{TimeUnixNano: 1}))
				}
				req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
				req.Header.Set("Content-Type", ContentTypeProtobuf)
				rec := httptest.NewRecorder()
				mux(h).ServeHTTP(rec, req)
				if rec.Code != tt.wantStatus {
					t.Errorf("got status %d, want %d", rec.Code, tt.wantStatus)
				}
				if got := rec.Header().Get("Retry-After"); got != tt.wantRetryAfter {
					t.Errorf("got Retry-After %q, want %q", got, tt.wantRetryAfter)
				}
				var st2 statuspb.Status
				if err := proto.Unmarshal(rec.Body.Bytes(), &st2); err != nil || st2.Message == "" {
					t.Errorf("body is not a google.rpc.Status with a message: %v", err)
				}
			})
		}
	}
}

func TestHeartbeats(t *testing.T) {
	valid := string(readTestdata(t, "heartbeat.json"))
	tests := []struct {
		name        string
		contentType string
		body        string
		wantStatus  int
		wantField   string
		wantErrors  int
	}{
		{"valid", "application/json", valid, http.StatusOK, "", 0},
		{"no content type", "", valid, http.StatusOK, "", 0},
		{"protobuf refused", ContentTypeProtobuf, valid, http.StatusUnsupportedMediaType, "Content-Type", 0},
		{"missing fields", "application/json", `{"interval":"5s"}`, http.StatusBadRequest, "service", 2},
		{"bad interval", "application/json", `{"service":"a","instance_id":"b","interval":"1h"}`, http.StatusBadRequest, "interval", 1},
		{"malformed", "application/json", `{"service":`, http.StatusBadRequest, "", 0},
		{"too large", "application/json", `{"service":"` + strings.Repeat("x", wire.MaxHeartbeatBytes) + `"}`, http.StatusRequestEntityTooLarge, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := &heartbeatRecorder{}
			h, _, _ := newTestHandler(t, func(c *Config) { c.Heartbeats = sink })
			req := httptest.NewRequest(http.MethodPost, wire.PathHeartbeat, strings.NewReader(tt.body))
			req.RemoteAddr = "10.0.0.7:5555"
			if tt.contentType != "" {
				req.Header.Set("Content-Type", tt.contentType)
			}
			rec := httptest.NewRecorder()
			mux(h).ServeHTTP(rec, req)
			if rec.Code != tt.wantStatus {
				t.Fatalf("got status %d (%s), want %d", rec.Code, rec.Body, tt.wantStatus)
			}
			if tt.wantStatus == http.StatusOK {
				if rec.Body.String() != `{"ok":true}` {
					t.Errorf("got body %s, want {\"ok\":true}", rec.Body)
				}
				if len(sink.beats) != 1 || sink.beats[0].InstanceID != "orders-7f9c" || sink.remote[0] != "10.0.0.7:5555" || !sink.times[0].Equal(testNow) {
					t.Errorf("got observed %+v from %v at %v, want orders-7f9c from 10.0.0.7:5555 at %v", sink.beats, sink.remote, sink.times, testNow)
				}
				return
			}
			if len(sink.beats) != 0 {
				t.Errorf("got %d observed heartbeats, want 0", len(sink.beats))
			}
			var je jsonError
			if err := json.Unmarshal(rec.Body.Bytes(), &je); err != nil || je.Error == "" {
				t.Fatalf("body %s is not JSON {\"error\": ...}: %v", rec.Body, err)
			}
			if je.Field != tt.wantField || len(je.Errors) != tt.wantErrors {
				t.Errorf("got field %q and %d errors, want %q and %d", je.Field, len(je.Errors), tt.wantField, tt.wantErrors)
			}
		})
	}
}

func TestNilWritersAnswerNotImplemented(t *testing.T) {
	h := New(Config{})
	for _, path := range []string{wire.PathTraces, wire.PathLogs, wire.PathHeartbeat} {
		t.Run(path, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(`{}`))
			req.Header.Set("Content-Type", ContentTypeJSON)
			rec := httptest.NewRecorder()
			mux(h).ServeHTTP(rec, req)
			if rec.Code != http.StatusNotImplemented {
				t.Errorf("got status %d, want 501", rec.Code)
			}
		})
	}
}

func TestSlowBodyTimesOut(t *testing.T) {
	h, _, _ := newTestHandler(t, func(c *Config) { c.ReadTimeout = 50 * time.Millisecond })
	srv := httptest.NewServer(mux(h))
	defer srv.Close()

	pr, pw := io.Pipe()
	defer pw.Close()
	go func() { _, _ = pw.Write([]byte(`{"resourceSpans":[`)) }() // then stall
	req, err := http.NewRequest(http.MethodPost, srv.URL+wire.PathTraces, pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", ContentTypeJSON)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Errorf("got status %d, want 408", resp.StatusCode)
	}
}

func TestMetricsRegisterTwice(t *testing.T) {
	reg := prometheus.NewRegistry()
	a := New(Config{Registerer: reg})
	b := New(Config{Registerer: reg})
	a.metrics.authFailures.Inc()
	b.metrics.authFailures.Inc()
	if got := testutil.ToFloat64(a.metrics.authFailures); got != 2 {
		t.Errorf("got shared counter %v, want 2", got)
	}
}

func TestHeartbeatReply(t *testing.T) {
	h, _, _ := newTestHandler(t, func(c *Config) {
		c.HeartbeatReply = func(hb wire.Heartbeat, now time.Time) wire.HeartbeatReply {
			return wire.HeartbeatReply{OK: true, PolicyVersion: 7, Endpoints: map[string][]wire.Endpoint{
				hb.Service: {{Instance: hb.InstanceID, Address: now.Format(time.RFC3339)}},
			}}
		}
	})
	req := httptest.NewRequest(http.MethodPost, wire.PathHeartbeat, bytes.NewReader(readTestdata(t, "heartbeat.json")))
	rec := httptest.NewRecorder()
	mux(h).ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("got status %d (%s), want 200", rec.Code, rec.Body)
	}
	var reply wire.HeartbeatReply
	if err := json.Unmarshal(rec.Body.Bytes(), &reply); err != nil {
		t.Fatalf("reply: %v", err)
	}
	eps := reply.Endpoints["orders"]
	if !reply.OK || reply.PolicyVersion != 7 || len(eps) != 1 || eps[0].Address != testNow.Format(time.RFC3339) {
		t.Errorf("got reply %+v, want ok, policy 7 and one orders endpoint stamped %v", reply, testNow)
	}
}

// blockingStore holds every write until release is closed.
type blockingStore struct {
	entered chan struct{}
	release chan struct{}
}

func (b blockingStore) WriteSpans(ctx context.Context, _ []store.Span) error {
	b.entered <- struct{}{}
	<-b.release
	return nil
}

func (b blockingStore) WriteLogs(context.Context, []store.LogRecord) error { return nil }

func TestConcurrencyLimit(t *testing.T) {
	bs := blockingStore{entered: make(chan struct{}, 2), release: make(chan struct{})}
	h := New(Config{Spans: bs, MaxConcurrent: 2})
	body := marshal(t, tracesRequest("svc", validSpan()))
	post := func() *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, wire.PathTraces, bytes.NewReader(body))
		req.Header.Set("Content-Type", ContentTypeProtobuf)
		rec := httptest.NewRecorder()
		h.Traces().ServeHTTP(rec, req)
		return rec
	}
	done := make(chan int, 2)
	for range 2 {
		go func() { done <- post().Code }()
	}
	<-bs.entered
	<-bs.entered // both slots are held inside the store

	rec := post()
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") != "1" {
		t.Errorf("third request: got %d Retry-After %q, want 429 and 1", rec.Code, rec.Header().Get("Retry-After"))
	}
	close(bs.release)
	for range 2 {
		if code := <-done; code != http.StatusOK {
			t.Errorf("held request: got %d, want 200", code)
		}
	}
	go func() { <-bs.entered }()
	if rec := post(); rec.Code != http.StatusOK {
		t.Errorf("after release: got %d, want 200", rec.Code)
	}
}
