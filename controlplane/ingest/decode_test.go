package ingest

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/pilothouse/pilothouse/controlplane/store"
)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatalf("read testdata: %v", err)
	}
	return b
}

func TestDecodeTracesJSONExample(t *testing.T) {
	spans, rej, err := DecodeTraces(readTestdata(t, "traces.json"), "application/json")
	if err != nil {
		t.Fatalf("DecodeTraces: %v", err)
	}
	if rej.Count != 0 {
		t.Fatalf("got %d rejected (%s), want 0", rej.Count, rej.Message)
	}
	if len(spans) != 2 {
		t.Fatalf("got %d spans, want 2", len(spans))
	}
	start := time.Unix(0, 1544712660000000000).UTC()
	want := store.Span{
		TraceID:       "5b8efff798038103d269b633813fc60c",
		SpanID:        "eee19b7ec3c1b174",
		ParentSpanID:  "eee19b7ec3c1b173",
		Service:       "orders",
		Instance:      "orders-7f9c",
		Name:          "GET /api/orders/:id",
		Kind:          "server",
		Start:         start,
		Duration:      250 * time.Millisecond,
		StatusCode:    "error",
		StatusMessage: "payment declined",
		RequestID:     "req-42",
		Route:         "/api/orders/:id",
		HTTPStatus:    500,
		Attributes: map[string]any{
			"http.route":                "/api/orders/:id",
			"http.response.status_code": int64(500),
			"request_id":                "req-42",
			"retry":                     true,
			"ratio":                     0.25,
			"tags":                      []any{"a", int64(7)},
			"user":                      map[string]any{"id": "u1"},
			"blob":                      "aGVsbG8=",
			"service.version":           "1.4.2",
		},
		Events: []store.SpanEvent{{
			Name:       "exception",
			Time:       start.Add(100 * time.Millisecond),
			Attributes: map[string]any{"exception.message": "boom"},
		}},
	}
	if !reflect.DeepEqual(spans[0], want) {
		t.Errorf("span 0:\ngot  %+v\nwant %+v", spans[0], want)
	}
	client := spans[1]
	checks := []struct {
		name      string
		got, want any
	}{
		{"kind", client.Kind, "client"},
		{"status", client.StatusCode, "ok"},
		{"legacy http.status_code", client.HTTPStatus, 402},
		{"request id from header attribute", client.RequestID, "req-42"},
		{"numeric start time", client.Start, start.Add(10 * time.Millisecond)},
		{"duration", client.Duration, 190 * time.Millisecond},
		{"parent", client.ParentSpanID, "eee19b7ec3c1b174"},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			if !reflect.DeepEqual(c.got, c.want) {
				t.Errorf("got %v, want %v", c.got, c.want)
			}
		})
	}
}

func TestDecodeTracesSnakeCaseJSON(t *testing.T) {
	spans, rej, err := DecodeTraces(readTestdata(t, "traces_snake.json"), "application/json; charset=utf-8")
	if err != nil {
		t.Fatalf("DecodeTraces: %v", err)
	}
	if rej.Count != 0 || len(spans) != 1 {
		t.Fatalf("got %d spans, %d rejected (%s), want 1 and 0", len(spans), rej.Count, rej.Message)
	}
	sp := spans[0]
	if sp.Service != "inventory" || sp.TraceID != "0af7651916cd43dd8448eb211c80319c" || sp.SpanID != "b7ad6b7169203331" ||
		sp.Kind != "server" || sp.StatusCode != "ok" || sp.Route != "/stock/:sku" || sp.Duration != 5*time.Millisecond {
		t.Errorf("got %+v, want inventory server span with route /stock/:sku, 5ms, ok", sp)
	}
}

func TestDecodeLogsJSONExample(t *testing.T) {
	logs, rej, err := DecodeLogs(readTestdata(t, "logs.json"), "application/json")
	if err != nil {
		t.Fatalf("DecodeLogs: %v", err)
	}
	if rej.Count != 0 || len(logs) != 2 {
		t.Fatalf("got %d logs, %d rejected (%s), want 2 and 0", len(logs), rej.Count, rej.Message)
	}
	want := store.LogRecord{
		Time:           time.Unix(0, 1544712660300000000).UTC(),
		Service:        "payments",
		Instance:       "payments-1",
		Level:          LevelError,
		SeverityNumber: 17,
		Body:           "card declined",
		TraceID:        "5b8efff798038103d269b633813fc60c",
		SpanID:         "eee19b7ec3c1b175",
		RequestID:      "req-42",
		Attributes:     map[string]any{"request_id": "req-42", "amount": int64(1299)},
	}
	if !reflect.DeepEqual(logs[0], want) {
		t.Errorf("log 0:\ngot  %+v\nwant %+v", logs[0], want)
	}
	second := logs[1]
	if got, want := second.Time, time.Unix(0, 1544712660400000000).UTC(); !got.Equal(want) {
		t.Errorf("observed time fallback: got %v, want %v", got, want)
	}
	if second.Level != LevelWarn {
		t.Errorf("severity text fallback: got %q, want %q", second.Level, LevelWarn)
	}
	if second.Body != `{"msg":"slow"}` {
		t.Errorf("kvlist body: got %q, want %q", second.Body, `{"msg":"slow"}`)
	}
}

func TestDecodeLogsSnakeCaseJSON(t *testing.T) {
	logs, _, err := DecodeLogs(readTestdata(t, "logs_snake.json"), "application/json")
	if err != nil {
		t.Fatalf("DecodeLogs: %v", err)
	}
	if len(logs) != 1 {
		t.Fatalf("got %d logs, want 1", len(logs))
	}
	if l := logs[0]; l.Service != "gateway" || l.Level != LevelInfo || l.Body != "request done" || l.TraceID != "0af7651916cd43dd8448eb211c80319c" {
		t.Errorf("got %+v, want gateway INFO \"request done\" with trace ID", l)
	}
}

// validSpan returns a span that decodes without rejection.
func validSpan() *tracepb.Span {
	return &tracepb.Span{
		TraceId:           []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
		SpanId:            []byte{1, 2, 3, 4, 5, 6, 7, 8},
		Name:              "GET /",
		Kind:              tracepb.Span_SPAN_KIND_SERVER,
		StartTimeUnixNano: 1_700_000_000_000_000_000,
		EndTimeUnixNano:   1_700_000_000_001_000_000,
	}
}

func tracesRequest(service string, spans ...*tracepb.Span) *coltracepb.ExportTraceServiceRequest {
	res := &resourcepb.Resource{}
	if service != "" {
		res.Attributes = []*commonpb.KeyValue{strAttr("service.name", service)}
	}
	return &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
		Resource:   res,
		ScopeSpans: []*tracepb.ScopeSpans{{Spans: spans}},
	}}}
}

func strAttr(k, v string) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
}

func marshal(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	return b
}

func TestDecodeTracesRejectsInvalidSpans(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*tracepb.Span)
		wantMsg string
	}{
		{"short trace id", func(s *tracepb.Span) { s.TraceId = s.TraceId[:4] }, "traceId must be 16 bytes"},
		{"missing trace id", func(s *tracepb.Span) { s.TraceId = nil }, "traceId must be 16 bytes"},
		{"zero trace id", func(s *tracepb.Span) { s.TraceId = make([]byte, 16) }, "traceId must not be all zeros"},
		{"long span id", func(s *tracepb.Span) { s.SpanId = append(s.SpanId, 9) }, "spanId must be 8 bytes"},
		{"bad parent id", func(s *tracepb.Span) { s.ParentSpanId = []byte{1, 2} }, "parentSpanId must be empty or 8 bytes"},
		{"no start time", func(s *tracepb.Span) { s.StartTimeUnixNano = 0 }, "startTimeUnixNano is required"},
		{"start time overflow", func(s *tracepb.Span) { s.StartTimeUnixNano = 1 << 63 }, "startTimeUnixNano is out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bad := validSpan()
			tt.mutate(bad)
			body := marshal(t, tracesRequest("svc", validSpan(), bad))
			spans, rej, err := DecodeTraces(body, ContentTypeProtobuf)
			if err != nil {
				t.Fatalf("DecodeTraces: %v", err)
			}
			if len(spans) != 1 || rej.Count != 1 {
				t.Fatalf("got %d spans and %d rejected, want 1 and 1", len(spans), rej.Count)
			}
			if !strings.Contains(rej.Message, tt.wantMsg) || !strings.Contains(rej.Message, "spans[1]") {
				t.Errorf("got message %q, want it to contain %q and spans[1]", rej.Message, tt.wantMsg)
			}
		})
	}
}

func TestDecodeTracesJSONInvalidHexIsPartial(t *testing.T) {
	body := `{"resourceSpans":[{"scopeSpans":[{"spans":[
		{"traceId":"zz8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","startTimeUnixNano":"1"},
		{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","startTimeUnixNano":"1"}]}]}]}`
	spans, rej, err := DecodeTraces([]byte(body), ContentTypeJSON)
	if err != nil {
		t.Fatalf("DecodeTraces: %v", err)
	}
	if len(spans) != 1 || rej.Count != 1 {
		t.Fatalf("got %d spans and %d rejected, want 1 and 1", len(spans), rej.Count)
	}
	if spans[0].Service != UnknownService {
		t.Errorf("got service %q, want %q", spans[0].Service, UnknownService)
	}
}

func TestDecodeTracesRejectMessageIsBounded(t *testing.T) {
	var spans []*tracepb.Span
	for range 50 {
		s := validSpan()
		s.SpanId = nil
		spans = append(spans, s)
	}
	_, rej, err := DecodeTraces(marshal(t, tracesRequest("svc", spans...)), ContentTypeProtobuf)
	if err != nil {
		t.Fatalf("DecodeTraces: %v", err)
	}
	if rej.Count != 50 {
		t.Errorf("got %d rejected, want 50", rej.Count)
	}
	if !strings.HasSuffix(rej.Message, "and 47 more") {
		t.Errorf("got message %q, want it to end with %q", rej.Message, "and 47 more")
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name        string
		body        string
		contentType string
		logs        bool
		wantErr     error
	}{
		{"text/plain", "{}", "text/plain", false, ErrUnsupportedMediaType},
		{"empty content type", "{}", "", true, ErrUnsupportedMediaType},
		{"malformed protobuf", "\xff\xff\xff", ContentTypeProtobuf, false, ErrMalformed},
		{"malformed protobuf logs", "\x0a\x05\x01", ContentTypeProtobuf, true, ErrMalformed},
		{"malformed JSON", `{"resourceSpans":[`, ContentTypeJSON, false, ErrMalformed},
		{"wrong JSON type", `{"resourceLogs":{}}`, ContentTypeJSON, true, ErrMalformed},
		{"negative timestamp", `{"resourceSpans":[{"scopeSpans":[{"spans":[{"startTimeUnixNano":"-1"}]}]}]}`, ContentTypeJSON, false, ErrMalformed},
		{"unknown enum name", `{"resourceSpans":[{"scopeSpans":[{"spans":[{"kind":"SPAN_KIND_NOPE"}]}]}]}`, ContentTypeJSON, false, ErrMalformed},
		{"id not a string", `{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"traceId":12}]}]}]}`, ContentTypeJSON, true, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			if tt.logs {
				_, _, err = DecodeLogs([]byte(tt.body), tt.contentType)
			} else {
				_, _, err = DecodeTraces([]byte(tt.body), tt.contentType)
			}
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("got error %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestLogLevel(t *testing.T) {
	tests := []struct {
		name   string
		number logspb.SeverityNumber
		text   string
		want   string
	}{
		{"trace", 1, "", LevelDebug},
		{"trace4", 4, "", LevelDebug},
		{"debug", 5, "", LevelDebug},
		{"debug4", 8, "", LevelDebug},
		{"info", 9, "", LevelInfo},
		{"info4", 12, "", LevelInfo},
		{"warn", 13, "", LevelWarn},
		{"warn4", 16, "", LevelWarn},
		{"error", 17, "", LevelError},
		{"fatal", 21, "", LevelError},
		{"number wins over text", 9, "ERROR", LevelInfo},
		{"text warning", 0, "warning", LevelWarn},
		{"text err", 0, "Err", LevelError},
		{"text fatal", 0, "FATAL", LevelError},
		{"text trace", 0, "trace", LevelDebug},
		{"text info", 0, "Information", LevelInfo},
		{"nothing", 0, "", LevelInfo},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := logLevel(tt.number, tt.text); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestAttributeCaps(t *testing.T) {
	long := strings.Repeat("é", 3000) // 6000 bytes
	var kvs []*commonpb.KeyValue
	kvs = append(kvs, strAttr("long", long), strAttr(strings.Repeat("k", 1000), "v"))
	for i := range 300 {
		kvs = append(kvs, strAttr("a"+strings.Repeat("x", i%7)+string(rune('a'+i%26))+string(rune('a'+i/26)), "v"))
	}
	s := validSpan()
	s.Attributes = kvs
	spans, _, err := DecodeTraces(marshal(t, tracesRequest("svc", s)), ContentTypeProtobuf)
	if err != nil {
		t.Fatalf("DecodeTraces: %v", err)
	}
	attrs := spans[0].Attributes
	if len(attrs) != MaxAttributes {
		t.Errorf("got %d attributes, want %d", len(attrs), MaxAttributes)
	}
	got, _ := attrs["long"].(string)
	if len(got) > MaxAttributeValueBytes || len(got) < MaxAttributeValueBytes-3 {
		t.Errorf("got long value of %d bytes, want about %d", len(got), MaxAttributeValueBytes)
	}
	if !strings.HasPrefix(long, got) || !utf8Valid(got) {
		t.Errorf("truncated value is not a valid UTF-8 prefix")
	}
	if _, ok := attrs[strings.Repeat("k", MaxAttributeKeyBytes)]; !ok {
		t.Errorf("long key not truncated to %d bytes", MaxAttributeKeyBytes)
	}
}

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }

func TestAttributeByteBudget(t *testing.T) {
	var kvs []*commonpb.KeyValue
	for i := range 100 {
		kvs = append(kvs, strAttr(string(rune('A'+i%26))+string(rune('A'+i/26)), strings.Repeat("x", MaxAttributeValueBytes)))
	}
	s := validSpan()
	s.Attributes = kvs
	spans, _, err := DecodeTraces(marshal(t, tracesRequest("svc", s)), ContentTypeProtobuf)
	if err != nil {
		t.Fatalf("DecodeTraces: %v", err)
	}
	total := 0
	for k, v := range spans[0].Attributes {
		total += len(k) + len(v.(string))
	}
	if total > MaxAttributeBytes {
		t.Errorf("got %d attribute bytes, want at most %d", total, MaxAttributeBytes)
	}
}

func TestNestedValues(t *testing.T) {
	// Nest arrays deeper than MaxValueDepth.
	v := &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: "leaf"}}
	for range 10 {
		v = &commonpb.AnyValue{Value: &commonpb.AnyValue_ArrayValue{ArrayValue: &commonpb.ArrayValue{Values: []*commonpb.AnyValue{v}}}}
	}
	c := newAttrConverter()
	got := c.value(v, 0)
	for range MaxValueDepth {
		arr, ok := got.([]any)
		if !ok || len(arr) != 1 {
			t.Fatalf("got %#v, want a one-element array", got)
		}
		got = arr[0]
	}
	if got != truncatedValue {
		t.Errorf("got %#v at depth %d, want %q", got, MaxValueDepth, truncatedValue)
	}
}

func TestCamelCaseKeys(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"camel untouched", `{"resourceSpans":[]}`, `{"resourceSpans":[]}`},
		{"snake keys", `{"resource_spans":[{"scope_spans":[]}]}`, `{"resourceSpans":[{"scopeSpans":[]}]}`},
		{"values kept", `{"resource_spans":[{"key":"service_name","v":["a_b"]}]}`, `{"resourceSpans":[{"key":"service_name","v":["a_b"]}]}`},
		{"escaped quote", `{"resource_spans":"a\"_b","x_y":1}`, `{"resourceSpans":"a\"_b","xY":1}`},
		{"unterminated", `{"resource_spans":"abc`, `{"resourceSpans":"abc`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(camelCaseKeys([]byte(tt.in))); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestSpecialDoubles(t *testing.T) {
	body := `{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"timeUnixNano":"1","attributes":[
		{"key":"nan","value":{"doubleValue":"NaN"}},{"key":"inf","value":{"doubleValue":"Infinity"}}]}]}]}]}`
	logs, _, err := DecodeLogs([]byte(body), ContentTypeJSON)
	if err != nil {
		t.Fatalf("DecodeLogs: %v", err)
	}
	if got := logs[0].Attributes; got["nan"] != "NaN" || got["inf"] != "+Inf" {
		t.Errorf("got %v, want NaN and +Inf as strings", got)
	}
}

func TestHTTPStatusOutOfRangeIsIgnored(t *testing.T) {
	tests := []struct {
		name  string
		value int64
		want  int
	}{
		{"valid", 404, 404},
		{"too big", 5000, 0},
		{"negative", -1, 0},
		{"too small", 42, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := validSpan()
			s.Attributes = []*commonpb.KeyValue{{Key: "http.response.status_code", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: tt.value}}}}
			spans, _, err := DecodeTraces(marshal(t, tracesRequest("svc", s)), ContentTypeProtobuf)
			if err != nil {
				t.Fatalf("DecodeTraces: %v", err)
			}
			if got := spans[0].HTTPStatus; got != tt.want {
				t.Errorf("got HTTPStatus %d, want %d", got, tt.want)
			}
			if got := spans[0].Attributes["http.response.status_code"]; got != tt.value {
				t.Errorf("got attribute %v, want %d kept as sent", got, tt.value)
			}
		})
	}
}
