package tracebackend

import (
	"encoding/hex"
	"fmt"
	"math"
	"sort"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/pilothouse/pilothouse/controlplane/store"
)

// Attribute names of the OpenTelemetry semantic conventions used here.
const (
	attrServiceName    = "service.name"
	attrServiceVersion = "service.version"
	attrInstanceID     = "service.instance.id"
	attrRequestID      = "request_id"
	attrRequestIDHdr   = "http.request.header.x-request-id"
)

// scopeName names the instrumentation scope of forwarded spans.
const scopeName = "github.com/pilothouse/pilothouse/controlplane"

// exportRequest builds one OTLP export request from spans, one resource
// per service, instance and version. Spans with malformed IDs are left
// out and counted.
func exportRequest(spans []store.Span) (*coltracepb.ExportTraceServiceRequest, int) {
	type resKey struct{ service, instance, version string }
	index := make(map[resKey]*tracepb.ScopeSpans)
	req := &coltracepb.ExportTraceServiceRequest{}
	skipped := 0
	for i := range spans {
		s := &spans[i]
		version, _ := s.Attributes[attrServiceVersion].(string)
		key := resKey{s.Service, s.Instance, version}
		ss, ok := index[key]
		if !ok {
			attrs := []*commonpb.KeyValue{stringKV(attrServiceName, s.Service)}
			if s.Instance != "" {
				attrs = append(attrs, stringKV(attrInstanceID, s.Instance))
			}
			if version != "" {
				attrs = append(attrs, stringKV(attrServiceVersion, version))
			}
			ss = &tracepb.ScopeSpans{Scope: &commonpb.InstrumentationScope{Name: scopeName}}
			req.ResourceSpans = append(req.ResourceSpans, &tracepb.ResourceSpans{
				Resource:   &resourcepb.Resource{Attributes: attrs},
				ScopeSpans: []*tracepb.ScopeSpans{ss},
			})
			index[key] = ss
		}
		sp, err := otlpSpan(s)
		if err != nil {
			skipped++
			continue
		}
		ss.Spans = append(ss.Spans, sp)
	}
	return req, skipped
}

func otlpSpan(s *store.Span) (*tracepb.Span, error) {
	traceID, err := decodeID(s.TraceID, 16, false)
	if err != nil {
		return nil, fmt.Errorf("trace ID: %w", err)
	}
	spanID, err := decodeID(s.SpanID, 8, false)
	if err != nil {
		return nil, fmt.Errorf("span ID: %w", err)
	}
	parentID, err := decodeID(s.ParentSpanID, 8, true)
	if err != nil {
		return nil, fmt.Errorf("parent span ID: %w", err)
	}
	start := unixNano(s.Start.UnixNano())
	sp := &tracepb.Span{
		TraceId:           traceID,
		SpanId:            spanID,
		ParentSpanId:      parentID,
		Name:              s.Name,
		Kind:              kindOf(s.Kind),
		StartTimeUnixNano: start,
		EndTimeUnixNano:   start + uint64(max(s.Duration, 0)),
		Attributes:        keyValues(s.Attributes, attrServiceVersion),
		Status:            &tracepb.Status{Code: statusOf(s.StatusCode), Message: s.StatusMessage},
	}
	if s.RequestID != "" && s.Attributes[attrRequestID] == nil && s.Attributes[attrRequestIDHdr] == nil {
		sp.Attributes = append(sp.Attributes, stringKV(attrRequestID, s.RequestID))
	}
	for _, ev := range s.Events {
		sp.Events = append(sp.Events, &tracepb.Span_Event{
			Name:         ev.Name,
			TimeUnixNano: unixNano(ev.Time.UnixNano()),
			Attributes:   keyValues(ev.Attributes, ""),
		})
	}
	return sp, nil
}

func unixNano(n int64) uint64 {
	if n < 0 {
		return 0
	}
	return uint64(n)
}

// decodeID parses a hex ID of size bytes; optional IDs may be empty.
func decodeID(s string, size int, optional bool) ([]byte, error) {
	if s == "" && optional {
		return nil, nil
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, err
	}
	if len(b) != size {
		return nil, fmt.Errorf("%d bytes, want %d", len(b), size)
	}
	return b, nil
}

func kindOf(k string) tracepb.Span_SpanKind {
	switch k {
	case "internal":
		return tracepb.Span_SPAN_KIND_INTERNAL
	case "server":
		return tracepb.Span_SPAN_KIND_SERVER
	case "client":
		return tracepb.Span_SPAN_KIND_CLIENT
	case "producer":
		return tracepb.Span_SPAN_KIND_PRODUCER
	case "consumer":
		return tracepb.Span_SPAN_KIND_CONSUMER
	}
	return tracepb.Span_SPAN_KIND_UNSPECIFIED
}

func statusOf(code string) tracepb.Status_StatusCode {
	switch code {
	case "ok":
		return tracepb.Status_STATUS_CODE_OK
	case "error":
		return tracepb.Status_STATUS_CODE_ERROR
	}
	return tracepb.Status_STATUS_CODE_UNSET
}

func stringKV(k, v string) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
}

// keyValues converts stored attributes, in key order, leaving out skip.
func keyValues(m map[string]any, skip string) []*commonpb.KeyValue {
	if len(m) == 0 {
		return nil
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		if k != skip {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	out := make([]*commonpb.KeyValue, 0, len(keys))
	for _, k := range keys {
		out = append(out, &commonpb.KeyValue{Key: k, Value: anyValue(m[k], 0)})
	}
	return out
}

// anyValue converts a stored attribute value (as decoded from JSON or
// produced by ingest) to an OTLP value.
func anyValue(v any, depth int) *commonpb.AnyValue {
	switch x := v.(type) {
	case string:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: x}}
	case bool:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_BoolValue{BoolValue: x}}
	case int:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: int64(x)}}
	case int64:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: x}}
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: int64(x)}}
		}
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_DoubleValue{DoubleValue: x}}
	case []byte:
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_BytesValue{BytesValue: x}}
	case []any:
		if depth < 4 {
			arr := &commonpb.ArrayValue{}
			for _, e := range x {
				arr.Values = append(arr.Values, anyValue(e, depth+1))
			}
			return &commonpb.AnyValue{Value: &commonpb.AnyValue_ArrayValue{ArrayValue: arr}}
		}
	case map[string]any:
		if depth < 4 {
			kvs := &commonpb.KeyValueList{}
			for _, kv := range keyValues(x, "") {
				kvs.Values = append(kvs.Values, kv)
			}
			return &commonpb.AnyValue{Value: &commonpb.AnyValue_KvlistValue{KvlistValue: kvs}}
		}
	case nil:
		return &commonpb.AnyValue{}
	}
	return &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: fmt.Sprint(v)}}
}
