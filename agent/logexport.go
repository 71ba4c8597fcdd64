package agent

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/pilothouse/pilothouse/agent/wire"
)

// logExporter encodes batches of log entries as an OTLP
// ExportLogsServiceRequest and posts them to the control plane. The
// protobuf is written directly with protowire (no intermediate message
// objects: this runs for every log line). It is used by one goroutine at a
// time (the log queue's), so it reuses its buffers.
type logExporter struct {
	post poster
	// resource and scope are the encoded ResourceLogs.resource and
	// ScopeLogs.scope fields, the same for every batch.
	resource []byte
	scope    []byte

	records, rec, scopeLogs, resourceLogs, body []byte
}

// Field numbers of the OTLP messages written here.
const (
	fieldRequestResourceLogs = 1 // ExportLogsServiceRequest.resource_logs
	fieldResourceLogsRes     = 1 // ResourceLogs.resource
	fieldResourceLogsScope   = 2 // ResourceLogs.scope_logs
	fieldResourceAttrs       = 1 // Resource.attributes
	fieldScopeLogsScope      = 1 // ScopeLogs.scope
	fieldScopeLogsRecords    = 2 // ScopeLogs.log_records
	fieldScopeName           = 1 // InstrumentationScope.name
	fieldRecordTime          = 1
	fieldRecordSeverity      = 2
	fieldRecordSeverityText  = 3
	fieldRecordBody          = 5
	fieldRecordAttrs         = 6
	fieldRecordFlags         = 8
	fieldRecordTraceID       = 9
	fieldRecordSpanID        = 10
	fieldRecordObserved      = 11
	fieldKVKey               = 1
	fieldKVValue             = 2
	fieldAnyString           = 1
	fieldAnyBool             = 2
	fieldAnyInt              = 3
	fieldAnyDouble           = 4
)

// newLogExporter returns the exporter of log records; resource is the
// agent's, the same as its spans'.
func newLogExporter(resource []attribute.KeyValue, post poster) *logExporter {
	var res []byte
	for _, kv := range resource {
		res = appendStringKV(res, fieldResourceAttrs, string(kv.Key), kv.Value.Emit())
	}
	var scope []byte
	scope = protowire.AppendTag(scope, fieldScopeName, protowire.BytesType)
	scope = protowire.AppendString(scope, instrumentationName)
	return &logExporter{
		post:     post,
		resource: protowire.AppendBytes(protowire.AppendTag(nil, fieldResourceLogsRes, protowire.BytesType), res),
		scope:    protowire.AppendBytes(protowire.AppendTag(nil, fieldScopeLogsScope, protowire.BytesType), scope),
	}
}

// encode returns the ExportLogsServiceRequest for entries. The result is
// valid until the next call.
func (e *logExporter) encode(entries []logEntry) []byte {
	e.records = e.records[:0]
	for i := range entries {
		e.rec = appendLogRecord(e.rec[:0], &entries[i])
		e.records = protowire.AppendTag(e.records, fieldScopeLogsRecords, protowire.BytesType)
		e.records = protowire.AppendBytes(e.records, e.rec)
	}
	e.scopeLogs = append(append(e.scopeLogs[:0], e.scope...), e.records...)
	e.resourceLogs = append(e.resourceLogs[:0], e.resource...)
	e.resourceLogs = protowire.AppendTag(e.resourceLogs, fieldResourceLogsScope, protowire.BytesType)
	e.resourceLogs = protowire.AppendBytes(e.resourceLogs, e.scopeLogs)
	e.body = protowire.AppendTag(e.body[:0], fieldRequestResourceLogs, protowire.BytesType)
	e.body = protowire.AppendBytes(e.body, e.resourceLogs)
	return e.body
}

func (e *logExporter) export(ctx context.Context, entries []logEntry) error {
	err := e.post.send(ctx, e.encode(entries))
	if cap(e.body) > 4<<20 { // do not hold on to one huge batch's buffers
		e.records, e.scopeLogs, e.resourceLogs, e.body = nil, nil, nil, nil
	}
	return err
}

// poster sends one OTLP/HTTP protobuf request. With planes set the
// request goes to path on the current control-plane replica, else to url.
// A failure worth another try (a network error, a 5xx or a 429; see
// isReplicaFailure) moves the agent to the next replica and the batch is
// sent once more: at once to that replica when there is another, else
// after resendAfter to the same target, which bridges a control-plane
// restart. If that fails too the error is returned and the caller drops
// the batch and counts it. The queue in front keeps taking (or dropping
// and counting) items meanwhile; the request path never waits.
type poster struct {
	url    string
	planes *controlPlanes
	path   string
	token  string // sent as a Bearer token when set
	// headers go with every request (OTEL_EXPORTER_OTLP_*HEADERS).
	headers []keyValue
	client  *http.Client
	what    string
	// resendAfter overrides defaultResendAfter (tests).
	resendAfter time.Duration
}

func (p *poster) send(ctx context.Context, body []byte) error {
	retryable, err := p.sendOnce(ctx, body)
	if err == nil || !retryable {
		return err
	}
	if p.planes == nil || len(p.planes.urls) < 2 {
		wait := p.resendAfter
		if wait == 0 {
			wait = defaultResendAfter
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return err
		}
	}
	_, err = p.sendOnce(ctx, body)
	return err
}

// defaultResendAfter is how long a batch waits before it is sent again to
// the only target.
const defaultResendAfter = 500 * time.Millisecond

// sendOnce posts body to the current target; retryable reports a failure
// worth another try (which, with planes, moved the agent to the next
// replica).
func (p *poster) sendOnce(ctx context.Context, body []byte) (retryable bool, err error) {
	o := outbound{client: p.client, method: http.MethodPost, contentType: "application/x-protobuf", token: p.token,
		headers: p.headers, body: body}
	var resp *http.Response
	if p.planes != nil {
		resp, retryable, err = p.planes.do(ctx, p.path, o)
	} else {
		resp, retryable, err = o.do(ctx, p.url)
	}
	if err != nil {
		return retryable, fmt.Errorf("agent: export %s: %w", p.what, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return retryable, fmt.Errorf("agent: export %s: %s", p.what, resp.Status)
	}
	return false, nil
}

func appendLogRecord(b []byte, e *logEntry) []byte {
	ts := uint64(e.time.UnixNano())
	b = protowire.AppendTag(b, fieldRecordTime, protowire.Fixed64Type)
	b = protowire.AppendFixed64(b, ts)
	b = protowire.AppendTag(b, fieldRecordSeverity, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(severity(e.level)))
	b = protowire.AppendTag(b, fieldRecordSeverityText, protowire.BytesType)
	b = appendUTF8(b, e.level.String())
	b = protowire.AppendTag(b, fieldRecordBody, protowire.BytesType)
	msg := validUTF8(e.msg)
	b = protowire.AppendVarint(b, uint64(protowire.SizeTag(fieldAnyString)+protowire.SizeBytes(len(msg))))
	b = protowire.AppendTag(b, fieldAnyString, protowire.BytesType)
	b = protowire.AppendString(b, msg)
	if e.requestID != "" {
		b = appendStringKV(b, fieldRecordAttrs, wire.AttrRequestID, e.requestID)
	}
	for _, a := range e.attrs {
		b = appendKV(b, fieldRecordAttrs, a.Key, a.Value)
	}
	if e.spanID.IsValid() {
		b = protowire.AppendTag(b, fieldRecordFlags, protowire.Fixed32Type)
		b = protowire.AppendFixed32(b, 1) // sampled
	}
	if e.traceID.IsValid() {
		b = protowire.AppendTag(b, fieldRecordTraceID, protowire.BytesType)
		b = protowire.AppendBytes(b, e.traceID[:])
	}
	if e.spanID.IsValid() {
		b = protowire.AppendTag(b, fieldRecordSpanID, protowire.BytesType)
		b = protowire.AppendBytes(b, e.spanID[:])
	}
	b = protowire.AppendTag(b, fieldRecordObserved, protowire.Fixed64Type)
	return protowire.AppendFixed64(b, ts)
}

// severity maps slog levels onto OTLP severity numbers: Debug 5, Info 9,
// Warn 13, Error 17, with the levels in between kept in order.
func severity(l slog.Level) logspb.SeverityNumber {
	n := 9 + int(l)
	return logspb.SeverityNumber(min(max(n, 1), 24))
}

func appendStringKV(b []byte, field protowire.Number, k, v string) []byte {
	return appendKV(b, field, k, slog.StringValue(v))
}

// appendKV appends a KeyValue with a scalar AnyValue as field. Each string
// is checked for UTF-8 once and each size computed once: this runs for
// every attribute of every span and log record.
func appendKV(b []byte, field protowire.Number, k string, v slog.Value) []byte {
	k = validUTF8(k)
	v = scalar(v)
	var (
		anySize int
		str     string
	)
	switch v.Kind() {
	case slog.KindBool:
		anySize = protowire.SizeTag(fieldAnyBool) + 1
	case slog.KindInt64:
		anySize = protowire.SizeTag(fieldAnyInt) + protowire.SizeVarint(uint64(v.Int64()))
	case slog.KindFloat64:
		anySize = protowire.SizeTag(fieldAnyDouble) + 8
	default:
		str = validUTF8(v.String())
		anySize = protowire.SizeTag(fieldAnyString) + protowire.SizeBytes(len(str))
	}
	kvSize := protowire.SizeTag(fieldKVKey) + protowire.SizeBytes(len(k)) +
		protowire.SizeTag(fieldKVValue) + protowire.SizeBytes(anySize)
	b = protowire.AppendTag(b, field, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(kvSize))
	b = protowire.AppendTag(b, fieldKVKey, protowire.BytesType)
	b = protowire.AppendString(b, k)
	b = protowire.AppendTag(b, fieldKVValue, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(anySize))
	switch v.Kind() {
	case slog.KindBool:
		b = protowire.AppendTag(b, fieldAnyBool, protowire.VarintType)
		return protowire.AppendVarint(b, protowire.EncodeBool(v.Bool()))
	case slog.KindInt64:
		b = protowire.AppendTag(b, fieldAnyInt, protowire.VarintType)
		return protowire.AppendVarint(b, uint64(v.Int64()))
	case slog.KindFloat64:
		b = protowire.AppendTag(b, fieldAnyDouble, protowire.Fixed64Type)
		return protowire.AppendFixed64(b, math.Float64bits(v.Float64()))
	default:
		b = protowire.AppendTag(b, fieldAnyString, protowire.BytesType)
		return protowire.AppendString(b, str)
	}
}

// scalar reduces v to the kinds OTLP has: string, bool, int, double.
func scalar(v slog.Value) slog.Value {
	switch v.Kind() {
	case slog.KindString, slog.KindBool, slog.KindInt64, slog.KindFloat64:
		return v
	case slog.KindUint64:
		if u := v.Uint64(); u <= 1<<63-1 {
			return slog.Int64Value(int64(u))
		}
	case slog.KindTime:
		return slog.StringValue(v.Time().Format(time.RFC3339Nano))
	}
	return slog.StringValue(v.String())
}

// appendUTF8 appends s as a protobuf string. Proto3 strings must be valid
// UTF-8 (decoders reject the whole request otherwise), so invalid bytes
// become U+FFFD.
func appendUTF8(b []byte, s string) []byte {
	return protowire.AppendString(b, validUTF8(s))
}

// validUTF8 returns s with invalid bytes replaced by U+FFFD, as proto3
// strings must be valid UTF-8.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}
