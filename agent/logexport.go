package agent

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	collogs "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	"google.golang.org/protobuf/proto"

	"github.com/pilothouse/pilothouse/agent/wire"
)

// logExporter encodes batches of log entries as an OTLP
// ExportLogsServiceRequest and posts them to the control plane. It is used
// by one goroutine at a time (the log queue's), so it reuses its buffer.
type logExporter struct {
	url      string
	token    string
	client   *http.Client
	resource *resourcepb.Resource
	scope    *commonpb.InstrumentationScope
	buf      []byte
}

func newLogExporter(service string, cfg config) *logExporter {
	attrs := []*commonpb.KeyValue{
		stringKV("service.name", service),
		stringKV(wire.AttrInstanceID, cfg.instanceID),
	}
	if cfg.version != "" {
		attrs = append(attrs, stringKV("service.version", cfg.version))
	}
	return &logExporter{
		url:      cfg.controlPlane + wire.PathLogs,
		token:    cfg.token,
		client:   cfg.httpClient,
		resource: &resourcepb.Resource{Attributes: attrs},
		scope:    &commonpb.InstrumentationScope{Name: instrumentationName},
	}
}

func stringKV(k, v string) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
}

// encode builds the OTLP request for entries.
func (e *logExporter) encode(entries []logEntry) *collogs.ExportLogsServiceRequest {
	records := make([]*logspb.LogRecord, len(entries))
	for i := range entries {
		records[i] = toLogRecord(&entries[i])
	}
	return &collogs.ExportLogsServiceRequest{
		ResourceLogs: []*logspb.ResourceLogs{{
			Resource: e.resource,
			ScopeLogs: []*logspb.ScopeLogs{{
				Scope:      e.scope,
				LogRecords: records,
			}},
		}},
	}
}

func (e *logExporter) export(ctx context.Context, entries []logEntry) error {
	var err error
	e.buf, err = proto.MarshalOptions{}.MarshalAppend(e.buf[:0], e.encode(entries))
	if err != nil {
		return fmt.Errorf("agent: encode logs: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.url, bytes.NewReader(e.buf))
	if err != nil {
		return fmt.Errorf("agent: export logs: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	if e.token != "" {
		req.Header.Set(wire.HeaderAuthorization, "Bearer "+e.token)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return fmt.Errorf("agent: export logs: %w", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("agent: export logs: %s", resp.Status)
	}
	if cap(e.buf) > 4<<20 {
		e.buf = nil
	}
	return nil
}

func toLogRecord(e *logEntry) *logspb.LogRecord {
	n := len(e.attrs)
	if e.requestID != "" {
		n++
	}
	attrs := make([]*commonpb.KeyValue, 0, n)
	if e.requestID != "" {
		attrs = append(attrs, stringKV(wire.AttrRequestID, e.requestID))
	}
	for _, a := range e.attrs {
		attrs = append(attrs, &commonpb.KeyValue{Key: a.Key, Value: anyValue(a.Value)})
	}
	rec := &logspb.LogRecord{
		TimeUnixNano:         uint64(e.time.UnixNano()),
		ObservedTimeUnixNano: uint64(e.time.UnixNano()),
		SeverityNumber:       severity(e.level),
		SeverityText:         e.level.String(),
		Body:                 &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: e.msg}},
		Attributes:           attrs,
	}
	if e.traceID.IsValid() {
		rec.TraceId = append([]byte(nil), e.traceID[:]...)
	}
	if e.spanID.IsValid() {
		rec.SpanId = append([]byte(nil), e.spanID[:]...)
		rec.Flags = 1
	}
	return rec
}

// severity maps slog levels onto OTLP severity numbers: Debug 5, Info 9,
// Warn 13, Error 17, with the levels in between kept in order.
func severity(l slog.Level) logspb.SeverityNumber {
	n := 9 + int(l)
	return logspb.SeverityNumber(min(max(n, 1), 24))
}

func anyValue(v slog.Value) *commonpb.AnyValue {
	switch v.Kind() {
	case slog.KindString:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v.String()}}
	case slog.KindInt64:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: v.Int64()}}
	case slog.KindUint64:
		u := v.Uint64()
		if u > 1<<63-1 {
			return &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v.String()}}
		}
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: int64(u)}}
	case slog.KindFloat64:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_DoubleValue{DoubleValue: v.Float64()}}
	case slog.KindBool:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_BoolValue{BoolValue: v.Bool()}}
	default:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v.String()}}
	}
}
