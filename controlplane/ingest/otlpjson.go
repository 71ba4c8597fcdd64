package ingest

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"mime"
	"reflect"
	"strconv"

	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

// OTLP/HTTP content types.
const (
	ContentTypeProtobuf = "application/x-protobuf"
	ContentTypeJSON     = "application/json"
)

type encoding int

const (
	encodingProto encoding = iota + 1
	encodingJSON
)

// encodingOf maps a Content-Type header to the body encoding.
func encodingOf(contentType string) (encoding, error) {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return 0, fmt.Errorf("%w %q: want %s or %s", ErrUnsupportedMediaType, contentType, ContentTypeProtobuf, ContentTypeJSON)
	}
	switch mt {
	case ContentTypeProtobuf, "application/protobuf":
		return encodingProto, nil
	case ContentTypeJSON:
		return encodingJSON, nil
	}
	return 0, fmt.Errorf("%w %q: want %s or %s", ErrUnsupportedMediaType, mt, ContentTypeProtobuf, ContentTypeJSON)
}

// The types below mirror the OTLP/JSON encoding: lowerCamelCase keys,
// trace and span IDs as hex strings, 64-bit integers as strings or
// numbers, enums as integers (names are accepted too). encoding/json
// matches keys case-insensitively; snake_case keys are rewritten to
// camelCase first (see camelCaseKeys). Decoded documents are converted to
// the protobuf types so both encodings share one mapping.

type jsonTracesRequest struct {
	ResourceSpans []jsonResourceSpans `json:"resourceSpans"`
}

type jsonResourceSpans struct {
	Resource   jsonResource     `json:"resource"`
	ScopeSpans []jsonScopeSpans `json:"scopeSpans"`
}

type jsonResource struct {
	Attributes []jsonKeyValue `json:"attributes"`
}

type jsonScopeSpans struct {
	Spans []jsonSpan `json:"spans"`
}

type jsonSpan struct {
	TraceID           jsonHexID      `json:"traceId"`
	SpanID            jsonHexID      `json:"spanId"`
	ParentSpanID      jsonHexID      `json:"parentSpanId"`
	Name              string         `json:"name"`
	Kind              jsonEnum       `json:"kind"`
	StartTimeUnixNano jsonUint64     `json:"startTimeUnixNano"`
	EndTimeUnixNano   jsonUint64     `json:"endTimeUnixNano"`
	Attributes        []jsonKeyValue `json:"attributes"`
	Events            []jsonEvent    `json:"events"`
	Status            jsonStatus     `json:"status"`
}

type jsonEvent struct {
	TimeUnixNano jsonUint64     `json:"timeUnixNano"`
	Name         string         `json:"name"`
	Attributes   []jsonKeyValue `json:"attributes"`
}

type jsonStatus struct {
	Message string   `json:"message"`
	Code    jsonEnum `json:"code"`
}

type jsonLogsRequest struct {
	ResourceLogs []jsonResourceLogs `json:"resourceLogs"`
}

type jsonResourceLogs struct {
	Resource  jsonResource    `json:"resource"`
	ScopeLogs []jsonScopeLogs `json:"scopeLogs"`
}

type jsonScopeLogs struct {
	LogRecords []jsonLogRecord `json:"logRecords"`
}

type jsonLogRecord struct {
	TimeUnixNano         jsonUint64     `json:"timeUnixNano"`
	ObservedTimeUnixNano jsonUint64     `json:"observedTimeUnixNano"`
	SeverityNumber       jsonEnum       `json:"severityNumber"`
	SeverityText         string         `json:"severityText"`
	Body                 *jsonAnyValue  `json:"body"`
	Attributes           []jsonKeyValue `json:"attributes"`
	TraceID              jsonHexID      `json:"traceId"`
	SpanID               jsonHexID      `json:"spanId"`
}

type jsonKeyValue struct {
	Key   string        `json:"key"`
	Value *jsonAnyValue `json:"value"`
}

type jsonAnyValue struct {
	StringValue *string        `json:"stringValue"`
	BoolValue   *bool          `json:"boolValue"`
	IntValue    *jsonInt64     `json:"intValue"`
	DoubleValue *jsonFloat64   `json:"doubleValue"`
	ArrayValue  *jsonValueList `json:"arrayValue"`
	KvlistValue *jsonKVList    `json:"kvlistValue"`
	BytesValue  *[]byte        `json:"bytesValue"` // base64, as protobuf JSON prescribes
}

type jsonValueList struct {
	Values []*jsonAnyValue `json:"values"`
}

type jsonKVList struct {
	Values []jsonKeyValue `json:"values"`
}

// jsonHexID is a trace or span ID in hex. A value that is not valid hex
// decodes to a 1-byte ID, which no ID length accepts, so the item is
// rejected (partial success) rather than the whole request.
type jsonHexID []byte

func (id *jsonHexID) UnmarshalJSON(b []byte) error {
	var s []byte
	if len(b) >= 2 && b[0] == '"' && b[len(b)-1] == '"' && bytes.IndexByte(b, '\\') < 0 {
		s = b[1 : len(b)-1] // the common case: no escapes to undo
	} else {
		var str string
		if err := json.Unmarshal(b, &str); err != nil {
			return fmt.Errorf("ID must be a hex string: %w", err)
		}
		s = []byte(str)
	}
	d := make([]byte, hex.DecodedLen(len(s)))
	_, err := hex.Decode(d, s)
	if err != nil {
		d = []byte{0} // no ID length accepts one byte
	}
	*id = d
	return nil
}

// typeError reports a value of the wrong kind as a *json.UnmarshalTypeError,
// which encoding/json completes with the path of the field ("resourceLogs.
// scopeLogs.logRecords.timeUnixNano"), so a 400 can name the field.
func typeError(b []byte, want string, of any) error {
	return &json.UnmarshalTypeError{Value: truncate(string(b), 40) + " (want " + want + ")", Type: reflect.TypeOf(of)}
}

// jsonUint64 accepts a JSON number or a decimal string.
type jsonUint64 uint64

func (v *jsonUint64) UnmarshalJSON(b []byte) error {
	n, err := strconv.ParseUint(string(unquote(b)), 10, 64)
	if err != nil {
		return typeError(b, "an unsigned integer", uint64(0))
	}
	*v = jsonUint64(n)
	return nil
}

// jsonInt64 accepts a JSON number or a decimal string.
type jsonInt64 int64

func (v *jsonInt64) UnmarshalJSON(b []byte) error {
	n, err := strconv.ParseInt(string(unquote(b)), 10, 64)
	if err != nil {
		return typeError(b, "an integer", int64(0))
	}
	*v = jsonInt64(n)
	return nil
}

// jsonFloat64 accepts a JSON number, or a string holding a number,
// "NaN", "Infinity" or "-Infinity".
type jsonFloat64 float64

func (v *jsonFloat64) UnmarshalJSON(b []byte) error {
	s := string(unquote(b))
	switch s {
	case "NaN":
		*v = jsonFloat64(math.NaN())
		return nil
	case "Infinity":
		*v = jsonFloat64(math.Inf(1))
		return nil
	case "-Infinity":
		*v = jsonFloat64(math.Inf(-1))
		return nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return typeError(b, "a number", float64(0))
	}
	*v = jsonFloat64(f)
	return nil
}

// jsonEnum accepts an integer, as OTLP/JSON requires, or an enum value
// name as protobuf JSON writes it.
type jsonEnum int32

// enumValue looks up a protobuf enum value name of the OTLP enums that
// appear in spans and log records.
func enumValue(name string) (int32, bool) {
	for _, m := range []map[string]int32{
		tracepb.Span_SpanKind_value,
		tracepb.Status_StatusCode_value,
		logspb.SeverityNumber_value,
	} {
		if n, ok := m[name]; ok {
			return n, true
		}
	}
	return 0, false
}

func (v *jsonEnum) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		n, ok := enumValue(s)
		if !ok {
			return typeError(b, "a known enum value", int32(0))
		}
		*v = jsonEnum(n)
		return nil
	}
	n, err := strconv.ParseInt(string(b), 10, 32)
	if err != nil {
		return typeError(b, "an enum integer", int32(0))
	}
	*v = jsonEnum(n)
	return nil
}

func unquote(b []byte) []byte {
	if len(b) >= 2 && b[0] == '"' && b[len(b)-1] == '"' {
		return b[1 : len(b)-1]
	}
	return b
}

func tracesFromJSON(body []byte) (*coltracepb.ExportTraceServiceRequest, error) {
	var doc jsonTracesRequest
	if err := json.Unmarshal(camelCaseKeys(body), &doc); err != nil {
		return nil, fmt.Errorf("%w: OTLP/JSON traces: %w", ErrMalformed, err)
	}
	req := &coltracepb.ExportTraceServiceRequest{
		ResourceSpans: make([]*tracepb.ResourceSpans, len(doc.ResourceSpans)),
	}
	for i, rs := range doc.ResourceSpans {
		out := &tracepb.ResourceSpans{
			Resource:   rs.Resource.proto(),
			ScopeSpans: make([]*tracepb.ScopeSpans, len(rs.ScopeSpans)),
		}
		for j, ss := range rs.ScopeSpans {
			spans := make([]*tracepb.Span, len(ss.Spans))
			for k := range ss.Spans {
				spans[k] = ss.Spans[k].proto()
			}
			out.ScopeSpans[j] = &tracepb.ScopeSpans{Spans: spans}
		}
		req.ResourceSpans[i] = out
	}
	return req, nil
}

func logsFromJSON(body []byte) (*collogspb.ExportLogsServiceRequest, error) {
	var doc jsonLogsRequest
	if err := json.Unmarshal(camelCaseKeys(body), &doc); err != nil {
		return nil, fmt.Errorf("%w: OTLP/JSON logs: %w", ErrMalformed, err)
	}
	req := &collogspb.ExportLogsServiceRequest{
		ResourceLogs: make([]*logspb.ResourceLogs, len(doc.ResourceLogs)),
	}
	for i, rl := range doc.ResourceLogs {
		out := &logspb.ResourceLogs{
			Resource:  rl.Resource.proto(),
			ScopeLogs: make([]*logspb.ScopeLogs, len(rl.ScopeLogs)),
		}
		for j, sl := range rl.ScopeLogs {
			recs := make([]*logspb.LogRecord, len(sl.LogRecords))
			for k := range sl.LogRecords {
				recs[k] = sl.LogRecords[k].proto()
			}
			out.ScopeLogs[j] = &logspb.ScopeLogs{LogRecords: recs}
		}
		req.ResourceLogs[i] = out
	}
	return req, nil
}

func (r *jsonResource) proto() *resourcepb.Resource {
	return &resourcepb.Resource{Attributes: keyValuesProto(r.Attributes)}
}

func (s *jsonSpan) proto() *tracepb.Span {
	out := &tracepb.Span{
		TraceId:           s.TraceID,
		SpanId:            s.SpanID,
		ParentSpanId:      s.ParentSpanID,
		Name:              s.Name,
		Kind:              tracepb.Span_SpanKind(s.Kind),
		StartTimeUnixNano: uint64(s.StartTimeUnixNano),
		EndTimeUnixNano:   uint64(s.EndTimeUnixNano),
		Attributes:        keyValuesProto(s.Attributes),
		Status: &tracepb.Status{
			Message: s.Status.Message,
			Code:    tracepb.Status_StatusCode(s.Status.Code),
		},
	}
	if len(s.Events) > 0 {
		out.Events = make([]*tracepb.Span_Event, len(s.Events))
		for i, ev := range s.Events {
			out.Events[i] = &tracepb.Span_Event{
				TimeUnixNano: uint64(ev.TimeUnixNano),
				Name:         ev.Name,
				Attributes:   keyValuesProto(ev.Attributes),
			}
		}
	}
	return out
}

func (r *jsonLogRecord) proto() *logspb.LogRecord {
	return &logspb.LogRecord{
		TimeUnixNano:         uint64(r.TimeUnixNano),
		ObservedTimeUnixNano: uint64(r.ObservedTimeUnixNano),
		SeverityNumber:       logspb.SeverityNumber(r.SeverityNumber),
		SeverityText:         r.SeverityText,
		Body:                 r.Body.proto(),
		Attributes:           keyValuesProto(r.Attributes),
		TraceId:              r.TraceID,
		SpanId:               r.SpanID,
	}
}

func keyValuesProto(kvs []jsonKeyValue) []*commonpb.KeyValue {
	if len(kvs) == 0 {
		return nil
	}
	out := make([]*commonpb.KeyValue, len(kvs))
	for i, kv := range kvs {
		out[i] = &commonpb.KeyValue{Key: kv.Key, Value: kv.Value.proto()}
	}
	return out
}

func (v *jsonAnyValue) proto() *commonpb.AnyValue {
	if v == nil {
		return nil
	}
	switch {
	case v.StringValue != nil:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: *v.StringValue}}
	case v.BoolValue != nil:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_BoolValue{BoolValue: *v.BoolValue}}
	case v.IntValue != nil:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: int64(*v.IntValue)}}
	case v.DoubleValue != nil:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_DoubleValue{DoubleValue: float64(*v.DoubleValue)}}
	case v.ArrayValue != nil:
		vals := make([]*commonpb.AnyValue, len(v.ArrayValue.Values))
		for i, e := range v.ArrayValue.Values {
			vals[i] = e.proto()
		}
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_ArrayValue{ArrayValue: &commonpb.ArrayValue{Values: vals}}}
	case v.KvlistValue != nil:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_KvlistValue{KvlistValue: &commonpb.KeyValueList{Values: keyValuesProto(v.KvlistValue.Values)}}}
	case v.BytesValue != nil:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_BytesValue{BytesValue: *v.BytesValue}}
	}
	return &commonpb.AnyValue{}
}

// camelCaseKeys rewrites snake_case object keys ("resource_spans") to the
// lowerCamelCase OTLP/JSON uses ("resourceSpans"), leaving string values
// alone. Documents that use camelCase (the common case) are returned
// as they are. Invalid JSON passes through for json.Unmarshal to report.
func camelCaseKeys(body []byte) []byte {
	if !bytes.Contains(body, []byte(`"resource_`)) && !bytes.Contains(body, []byte(`"scope_`)) {
		return body
	}
	out := make([]byte, 0, len(body))
	// inObject[depth] tells whether the container at that depth is an
	// object; a string directly after '{' or ',' in an object is a key.
	var inObject []bool
	expectKey := false
	for i := 0; i < len(body); i++ {
		c := body[i]
		switch c {
		case '{':
			inObject = append(inObject, true)
			expectKey = true
		case '[':
			inObject = append(inObject, false)
			expectKey = false
		case '}', ']':
			if len(inObject) > 0 {
				inObject = inObject[:len(inObject)-1]
			}
			expectKey = false
		case ',':
			expectKey = len(inObject) > 0 && inObject[len(inObject)-1]
		case ':':
			expectKey = false
		case '"':
			end := stringEnd(body, i)
			str := body[i:end]
			if expectKey {
				out = appendCamel(out, str)
			} else {
				out = append(out, str...)
			}
			i = end - 1
			continue
		}
		out = append(out, c)
	}
	return out
}

// stringEnd returns the index just past the JSON string starting at
// body[start] (a quote), or len(body) when it is unterminated.
func stringEnd(body []byte, start int) int {
	for i := start + 1; i < len(body); i++ {
		switch body[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(body)
}

// appendCamel appends the quoted key with each "_x" turned into "X".
func appendCamel(out, key []byte) []byte {
	upper := false
	for _, c := range key {
		if c == '_' {
			upper = true
			continue
		}
		if upper && c >= 'a' && c <= 'z' {
			c -= 'a' - 'A'
		}
		upper = false
		out = append(out, c)
	}
	return out
}
