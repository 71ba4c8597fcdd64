package ingest

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/pilothouse/pilothouse/agent/wire"
	"github.com/pilothouse/pilothouse/controlplane/store"
)

// TestIntoEmbeddedStore sends a trace with the OTel SDK exporter and a log
// line as OTLP/JSON into the real embedded store, then finds both by
// trace ID and request ID.
func TestIntoEmbeddedStore(t *testing.T) {
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	defer st.Close()
	h := New(Config{Spans: st, Logs: st})
	srv := httptest.NewServer(mux(h))
	defer srv.Close()

	ctx := context.Background()
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(srv.URL+wire.PathTraces))
	if err != nil {
		t.Fatalf("exporter: %v", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp),
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", "orders"))))
	_, span := tp.Tracer("t").Start(ctx, "GET /orders/:id", trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("request_id", "req-store-1"), attribute.String("http.route", "/orders/:id")))
	span.End()
	if err := tp.Shutdown(ctx); err != nil {
		t.Fatalf("flush: %v", err)
	}
	traceID := span.SpanContext().TraceID().String()

	logDoc := `{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"orders"}}]},
		"scopeLogs":[{"logRecords":[{"timeUnixNano":"` + itoa(time.Now().UnixNano()) + `","severityNumber":9,
		"traceId":"` + traceID + `","body":{"stringValue":"order loaded"},
		"attributes":[{"key":"request_id","value":{"stringValue":"req-store-1"}}]}]}]}]}`
	req := httptest.NewRequest(http.MethodPost, wire.PathLogs, bytes.NewReader([]byte(logDoc)))
	req.Header.Set("Content-Type", ContentTypeJSON)
	rec := httptest.NewRecorder()
	mux(h).ServeHTTP(rec, req)
	if rec.Code != http.StatusOK || strings.TrimSpace(rec.Body.String()) != "{}" {
		t.Fatalf("logs: got %d %s, want 200 {}", rec.Code, rec.Body)
	}

	spans, err := st.Trace(ctx, traceID)
	if err != nil {
		t.Fatalf("Trace: %v", err)
	}
	if len(spans) != 1 || spans[0].RequestID != "req-store-1" || spans[0].Route != "/orders/:id" || spans[0].Service != "orders" {
		t.Errorf("got spans %+v, want one orders span with request ID and route", spans)
	}
	logs, err := st.Logs(ctx, store.LogFilter{RequestID: "req-store-1"})
	if err != nil {
		t.Fatalf("Logs: %v", err)
	}
	if len(logs) != 1 || logs[0].Body != "order loaded" || logs[0].TraceID != traceID {
		t.Errorf("got logs %+v, want one \"order loaded\" with trace ID %s", logs, traceID)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
