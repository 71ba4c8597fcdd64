package ingest

import (
	"encoding/json"
	"testing"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/pilothouse/pilothouse/controlplane/store"
)

// Seeds live in f.Add below and in testdata/fuzz/<FuzzName>/.

func traceProtoSeeds(t testing.TB) [][]byte {
	t.Helper()
	rich := validSpan()
	rich.ParentSpanId = []byte{8, 7, 6, 5, 4, 3, 2, 1}
	rich.Attributes = []*commonpb.KeyValue{
		strAttr("http.route", "/a/:b"),
		{Key: "http.response.status_code", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: 200}}},
		{Key: "list", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_ArrayValue{ArrayValue: &commonpb.ArrayValue{
			Values: []*commonpb.AnyValue{{Value: &commonpb.AnyValue_DoubleValue{DoubleValue: 1.5}}},
		}}}},
	}
	rich.Events = []*tracepb.Span_Event{{Name: "e", TimeUnixNano: 5}}
	rich.Status = &tracepb.Status{Code: tracepb.Status_STATUS_CODE_ERROR, Message: "x"}
	bad := validSpan()
	bad.TraceId = bad.TraceId[:3]
	return [][]byte{
		{},
		marshal(t, tracesRequest("svc", validSpan())),
		marshal(t, tracesRequest("", rich, bad)),
	}
}

func logProtoSeeds(t testing.TB) [][]byte {
	t.Helper()
	return [][]byte{
		{},
		marshal(t, logsRequest(&logspb.LogRecord{TimeUnixNano: 1, SeverityNumber: 9, Body: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: "hi"}}})),
		marshal(t, logsRequest(&logspb.LogRecord{TraceId: []byte{1}, SeverityText: "warn"}, &logspb.LogRecord{
			Body: &commonpb.AnyValue{Value: &commonpb.AnyValue_KvlistValue{KvlistValue: &commonpb.KeyValueList{
				Values: []*commonpb.KeyValue{strAttr("k", "v")},
			}}},
		})),
	}
}

// checkSpans asserts the invariants every decoded span must hold.
func checkSpans(t *testing.T, spans []store.Span) {
	t.Helper()
	for i, s := range spans {
		if len(s.TraceID) != 32 || len(s.SpanID) != 16 || (s.ParentSpanID != "" && len(s.ParentSpanID) != 16) {
			t.Fatalf("span %d: bad IDs %q %q %q", i, s.TraceID, s.SpanID, s.ParentSpanID)
		}
		if s.Service == "" || s.Start.IsZero() || s.Duration < 0 {
			t.Fatalf("span %d: service %q, start %v, duration %v", i, s.Service, s.Start, s.Duration)
		}
		if len(s.Attributes) > MaxAttributes+1 || len(s.Events) > MaxEvents {
			t.Fatalf("span %d: %d attributes, %d events over the caps", i, len(s.Attributes), len(s.Events))
		}
	}
	if _, err := json.Marshal(spans); err != nil {
		t.Fatalf("decoded spans do not encode as JSON: %v", err)
	}
}

func checkLogs(t *testing.T, logs []store.LogRecord) {
	t.Helper()
	for i, l := range logs {
		if (l.TraceID != "" && len(l.TraceID) != 32) || (l.SpanID != "" && len(l.SpanID) != 16) {
			t.Fatalf("log %d: bad IDs %q %q", i, l.TraceID, l.SpanID)
		}
		switch l.Level {
		case LevelDebug, LevelInfo, LevelWarn, LevelError:
		default:
			t.Fatalf("log %d: level %q", i, l.Level)
		}
		if l.Service == "" || len(l.Body) > MaxLogBodyBytes || len(l.Attributes) > MaxAttributes+1 {
			t.Fatalf("log %d: service %q, body %d bytes, %d attributes", i, l.Service, len(l.Body), len(l.Attributes))
		}
	}
	if _, err := json.Marshal(logs); err != nil {
		t.Fatalf("decoded logs do not encode as JSON: %v", err)
	}
}

func FuzzDecodeTracesProto(f *testing.F) {
	for _, s := range traceProtoSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		spans, rej, err := DecodeTraces(body, ContentTypeProtobuf)
		if err != nil {
			return
		}
		if rej.Count < 0 || (rej.Count > 0) != (rej.Message != "") {
			t.Fatalf("rejected %d with message %q", rej.Count, rej.Message)
		}
		checkSpans(t, spans)
	})
}

func FuzzDecodeTracesJSON(f *testing.F) {
	// Small seeds: the mutator and minimizer slow down badly on large
	// ones. The full example documents run in TestDecodeTraces*.
	f.Add([]byte(`{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"a"}}]},"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","startTimeUnixNano":"1","endTimeUnixNano":2,"kind":2,"attributes":[{"key":"x","value":{"intValue":"3"}}],"status":{"code":2}}]}]}]}`))
	f.Add([]byte(`{"resource_spans":[{"scope_spans":[{"spans":[{"trace_id":"ab","events":[{"name":"e"}]}]}]}]}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"resourceSpans":[{"scopeSpans":[{"spans":[null,{"traceId":"00","kind":"SPAN_KIND_CLIENT"}]}]}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		spans, _, err := DecodeTraces(body, ContentTypeJSON)
		if err != nil {
			return
		}
		checkSpans(t, spans)
	})
}

func FuzzDecodeLogsProto(f *testing.F) {
	for _, s := range logProtoSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		logs, rej, err := DecodeLogs(body, ContentTypeProtobuf)
		if err != nil {
			return
		}
		if rej.Count < 0 || (rej.Count > 0) != (rej.Message != "") {
			t.Fatalf("rejected %d with message %q", rej.Count, rej.Message)
		}
		checkLogs(t, logs)
	})
}

func FuzzDecodeLogsJSON(f *testing.F) {
	f.Add([]byte(`{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"timeUnixNano":"1","severityNumber":17,"traceId":"5b8efff798038103d269b633813fc60c","body":{"stringValue":"x"},"attributes":[{"key":"request_id","value":{"stringValue":"r"}}]}]}]}]}`))
	f.Add([]byte(`{"resource_logs":[{"scope_logs":[{"log_records":[{"severity_text":"warn","body":{"array_value":{"values":[{"bool_value":true}]}}}]}]}]}`))
	f.Add([]byte(`{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"doubleValue":"NaN"},"severityNumber":"SEVERITY_NUMBER_FATAL"}]}]}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		logs, _, err := DecodeLogs(body, ContentTypeJSON)
		if err != nil {
			return
		}
		checkLogs(t, logs)
	})
}

func FuzzDecodeHeartbeat(f *testing.F) {
	f.Add(readTestdata(f, "heartbeat.json"))
	f.Add([]byte(`{"service":"a","instance_id":"b","interval":"5s"}`))
	f.Add([]byte(`{"service":"a","instance_id":"b","interval":5000000000,"routes":[{"method":"GET","route":"/","requests":1,"errors":2}]}`))
	f.Add([]byte(`{`))
	f.Fuzz(func(t *testing.T, body []byte) {
		hb, err := DecodeHeartbeat(body)
		if err != nil {
			return
		}
		if verr := hb.Validate(); verr != nil {
			t.Fatalf("decoded heartbeat does not validate: %v", verr)
		}
	})
}
