package agent

import (
	"log/slog"
	"math"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	collogs "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	"google.golang.org/protobuf/proto"

	"github.com/pilothouse/pilothouse/agent/wire"
)

func decodeLogs(t *testing.T, b []byte) *collogs.ExportLogsServiceRequest {
	t.Helper()
	var req collogs.ExportLogsServiceRequest
	if err := proto.Unmarshal(b, &req); err != nil {
		t.Fatalf("unmarshal: got %v, want nil", err)
	}
	return &req
}

func TestLogEncodingRoundTrip(t *testing.T) {
	exp := newLogExporter([]attribute.KeyValue{attribute.String("service.name", "svc"),
		attribute.String(wire.AttrInstanceID, "i-1"), attribute.String("service.version", "v1")},
		poster{})
	ts := time.Date(2026, 5, 6, 7, 8, 9, 10, time.UTC)
	tid := trace.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	sid := trace.SpanID{1, 2, 3, 4, 5, 6, 7, 8}
	entries := []logEntry{
		{time: ts, level: slog.LevelError, msg: "boom", traceID: tid, spanID: sid, requestID: "r-1",
			attrs: []slog.Attr{
				slog.String("s", "x"), slog.Int("i", -5), slog.Uint64("u", math.MaxUint64), slog.Float64("f", 1.5),
				slog.Bool("b", true), slog.Duration("d", time.Second), slog.Time("t", ts),
			}},
		{time: ts, level: slog.LevelDebug, msg: ""},
	}
	for range 2 { // the second pass reuses the buffers
		req := decodeLogs(t, exp.encode(entries))
		rl := req.GetResourceLogs()
		if len(rl) != 1 || len(rl[0].GetScopeLogs()) != 1 {
			t.Fatalf("shape: got %d resource logs, want 1 with 1 scope", len(rl))
		}
		res := kvMap(rl[0].GetResource().GetAttributes())
		if res["service.name"].GetStringValue() != "svc" || res["service.version"].GetStringValue() != "v1" {
			t.Errorf("resource: got %v", res)
		}
		sl := rl[0].GetScopeLogs()[0]
		if sl.GetScope().GetName() != instrumentationName {
			t.Errorf("scope: got %q, want %q", sl.GetScope().GetName(), instrumentationName)
		}
		recs := sl.GetLogRecords()
		if len(recs) != 2 {
			t.Fatalf("records: got %d, want 2", len(recs))
		}
		r := recs[0]
		if r.GetTimeUnixNano() != uint64(ts.UnixNano()) || r.GetSeverityNumber() != logspb.SeverityNumber_SEVERITY_NUMBER_ERROR ||
			r.GetSeverityText() != "ERROR" || r.GetBody().GetStringValue() != "boom" {
			t.Errorf("record head: got %v", r)
		}
		if string(r.GetTraceId()) != string(tid[:]) || string(r.GetSpanId()) != string(sid[:]) {
			t.Errorf("ids: got %x/%x, want %x/%x", r.GetTraceId(), r.GetSpanId(), tid, sid)
		}
		at := kvMap(r.GetAttributes())
		tests := []struct {
			name string
			got  *commonpb.AnyValue
			want *commonpb.AnyValue
		}{
			{name: "request_id", got: at["request_id"], want: strVal("r-1")},
			{name: "string", got: at["s"], want: strVal("x")},
			{name: "int", got: at["i"], want: &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: -5}}},
			{name: "huge uint", got: at["u"], want: strVal("18446744073709551615")},
			{name: "float", got: at["f"], want: &commonpb.AnyValue{Value: &commonpb.AnyValue_DoubleValue{DoubleValue: 1.5}}},
			{name: "bool", got: at["b"], want: &commonpb.AnyValue{Value: &commonpb.AnyValue_BoolValue{BoolValue: true}}},
			{name: "duration", got: at["d"], want: strVal("1s")},
			{name: "time", got: at["t"], want: strVal(ts.Format(time.RFC3339Nano))},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if !proto.Equal(tt.got, tt.want) {
					t.Errorf("got %v, want %v", tt.got, tt.want)
				}
			})
		}
		if len(recs[1].GetTraceId()) != 0 || recs[1].GetSeverityNumber() != logspb.SeverityNumber_SEVERITY_NUMBER_DEBUG {
			t.Errorf("second record: got %v", recs[1])
		}
	}
}

func strVal(s string) *commonpb.AnyValue {
	return &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: s}}
}

// FuzzLogEncoding checks that any record encodes to a request the
// reference protobuf decoder accepts and reads back unchanged.
func FuzzLogEncoding(f *testing.F) {
	f.Add("hello", "key", "value", int64(42), 0.5, true)
	f.Add("", "", "", int64(-1), math.Inf(1), false)
	f.Add("\xff\x00bad utf8", "k\n", "\u2028", int64(math.MinInt64), math.NaN(), true)
	f.Fuzz(func(t *testing.T, msg, key, sval string, ival int64, fval float64, bval bool) {
		exp := newLogExporter([]attribute.KeyValue{attribute.String("service.name", "svc")}, poster{})
		e := logEntry{time: time.Unix(0, ival), level: slog.Level(ival % 30), msg: msg, requestID: sval,
			attrs: []slog.Attr{slog.String(key, sval), slog.Int64("i", ival), slog.Float64("f", fval), slog.Bool("b", bval)}}
		b := exp.encode([]logEntry{e})
		var req collogs.ExportLogsServiceRequest
		if err := proto.Unmarshal(b, &req); err != nil {
			t.Fatalf("unmarshal: got %v, want nil", err)
		}
		r := req.GetResourceLogs()[0].GetScopeLogs()[0].GetLogRecords()[0]
		if want := strings.ToValidUTF8(msg, "\uFFFD"); r.GetBody().GetStringValue() != want {
			t.Errorf("body: got %q, want %q", r.GetBody().GetStringValue(), want)
		}
		if got := len(r.GetAttributes()); got != 5 && sval != "" || got != 4 && sval == "" {
			t.Errorf("attributes: got %d", got)
		}
	})
}
