package ingest

import (
	"errors"
	"fmt"
	"math"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/pilothouse/pilothouse/controlplane/store"
)

// DecodeTraces decodes an uncompressed OTLP/HTTP trace export body,
// protobuf or OTLP/JSON according to contentType, into store spans.
// Spans that cannot be stored (bad IDs, missing start time) are left out
// and counted in Rejected. The error wraps ErrUnsupportedMediaType or
// ErrMalformed.
func DecodeTraces(body []byte, contentType string) ([]store.Span, Rejected, error) {
	enc, err := encodingOf(contentType)
	if err != nil {
		return nil, Rejected{}, err
	}
	if enc == encodingProto {
		return decodeTracesWire(body)
	}
	req, err := tracesFromJSON(body)
	if err != nil {
		return nil, Rejected{}, err
	}
	spans, rej := spansFromRequest(req)
	return spans, rej, nil
}

// decodeTracesGenerated is the protobuf path through the generated
// types: the reference decodeTracesWire is checked against.
func decodeTracesGenerated(body []byte) ([]store.Span, Rejected, error) {
	req := &coltracepb.ExportTraceServiceRequest{}
	if err := proto.Unmarshal(body, req); err != nil {
		return nil, Rejected{}, fmt.Errorf("%w: protobuf ExportTraceServiceRequest: %w", ErrMalformed, err)
	}
	spans, rej := spansFromRequest(req)
	return spans, rej, nil
}

// spansFromRequest maps every valid span of req.
func spansFromRequest(req *coltracepb.ExportTraceServiceRequest) ([]store.Span, Rejected) {
	total := 0
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			total += len(ss.GetSpans())
		}
	}
	out := make([]store.Span, 0, total)
	var rej rejections
	for ri, rs := range req.GetResourceSpans() {
		res := newResourceInfo(rs.GetResource())
		for si, ss := range rs.GetScopeSpans() {
			for i, s := range ss.GetSpans() {
				sp, err := mapSpan(s, res)
				if err != nil {
					rej.add(func() string {
						return fmt.Sprintf("resourceSpans[%d].scopeSpans[%d].spans[%d]", ri, si, i)
					}, err)
					continue
				}
				out = append(out, sp)
			}
		}
	}
	return out, rej.result("spans")
}

var errNilSpan = errors.New("span is null")

func mapSpan(s *tracepb.Span, res resourceInfo) (store.Span, error) {
	if s == nil {
		return store.Span{}, errNilSpan
	}
	traceID, err := hexID("traceId", s.TraceId, 16, false)
	if err != nil {
		return store.Span{}, err
	}
	spanID, err := hexID("spanId", s.SpanId, 8, false)
	if err != nil {
		return store.Span{}, err
	}
	parentID, err := hexID("parentSpanId", s.ParentSpanId, 8, true)
	if err != nil {
		return store.Span{}, err
	}
	start, err := unixNanos("startTimeUnixNano", s.StartTimeUnixNano)
	if err != nil {
		return store.Span{}, err
	}
	var dur time.Duration
	if end := s.EndTimeUnixNano; end > s.StartTimeUnixNano && end <= math.MaxInt64 {
		dur = time.Duration(end - s.StartTimeUnixNano)
	}

	sp := store.Span{
		TraceID:       traceID,
		SpanID:        spanID,
		ParentSpanID:  parentID,
		Service:       res.service,
		Instance:      res.instance,
		Name:          truncate(s.Name, MaxNameBytes),
		Kind:          spanKind(s.Kind),
		Start:         start,
		Duration:      dur,
		StatusCode:    statusCode(s.Status.GetCode()),
		StatusMessage: truncate(s.Status.GetMessage(), MaxAttributeValueBytes),
		RequestID:     requestID(s.Attributes),
	}
	if route, ok := findString(s.Attributes, attrRoute); ok {
		sp.Route = truncate(route, MaxNameBytes)
	}
	if code, ok := findInt(s.Attributes, attrStatusCode); ok && validHTTPStatus(code) {
		sp.HTTPStatus = code
	} else if code, ok := findInt(s.Attributes, attrStatusCodeOld); ok && validHTTPStatus(code) {
		sp.HTTPStatus = code
	}

	conv := newAttrConverter()
	sp.Attributes = conv.addTo(nil, s.Attributes)
	if res.version != "" {
		if sp.Attributes == nil {
			sp.Attributes = make(map[string]any, 1)
		}
		sp.Attributes[attrServiceVersion] = res.version
	}
	if n := min(len(s.Events), MaxEvents); n > 0 {
		sp.Events = make([]store.SpanEvent, 0, n)
		for _, ev := range s.Events[:n] {
			if ev == nil {
				continue
			}
			evConv := newAttrConverter()
			sp.Events = append(sp.Events, store.SpanEvent{
				Name:       truncate(ev.Name, MaxNameBytes),
				Time:       timeOrZero(ev.TimeUnixNano),
				Attributes: evConv.addTo(nil, ev.Attributes),
			})
		}
	}
	return sp, nil
}

// validHTTPStatus keeps nonsense codes out of the indexed column; the
// attribute itself is kept as sent.
func validHTTPStatus(code int) bool { return code >= 100 && code <= 999 }

// unixNanos converts a required OTLP timestamp.
func unixNanos(field string, ns uint64) (time.Time, error) {
	if ns == 0 {
		return time.Time{}, fmt.Errorf("%s is required", field)
	}
	if ns > math.MaxInt64 {
		return time.Time{}, fmt.Errorf("%s is out of range", field)
	}
	return time.Unix(0, int64(ns)).UTC(), nil
}

// timeOrZero converts an optional OTLP timestamp; 0 and out-of-range
// values give the zero time.
func timeOrZero(ns uint64) time.Time {
	if ns == 0 || ns > math.MaxInt64 {
		return time.Time{}
	}
	return time.Unix(0, int64(ns)).UTC()
}

func spanKind(k tracepb.Span_SpanKind) string {
	switch k {
	case tracepb.Span_SPAN_KIND_INTERNAL:
		return "internal"
	case tracepb.Span_SPAN_KIND_SERVER:
		return "server"
	case tracepb.Span_SPAN_KIND_CLIENT:
		return "client"
	case tracepb.Span_SPAN_KIND_PRODUCER:
		return "producer"
	case tracepb.Span_SPAN_KIND_CONSUMER:
		return "consumer"
	default:
		return "unspecified"
	}
}

func statusCode(c tracepb.Status_StatusCode) string {
	switch c {
	case tracepb.Status_STATUS_CODE_OK:
		return "ok"
	case tracepb.Status_STATUS_CODE_ERROR:
		return "error"
	default:
		return "unset"
	}
}
