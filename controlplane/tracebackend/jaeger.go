package tracebackend

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/pilothouse/pilothouse/controlplane/store"
)

// jaegerResponse is Jaeger's query API answer (/api/traces/{id}).
type jaegerResponse struct {
	Data   []jaegerTrace `json:"data"`
	Errors []struct {
		Code int    `json:"code"`
		Msg  string `json:"msg"`
	} `json:"errors"`
}

type jaegerTrace struct {
	TraceID   string                   `json:"traceID"`
	Spans     []jaegerSpan             `json:"spans"`
	Processes map[string]jaegerProcess `json:"processes"`
}

type jaegerSpan struct {
	TraceID       string `json:"traceID"`
	SpanID        string `json:"spanID"`
	OperationName string `json:"operationName"`
	References    []struct {
		RefType string `json:"refType"`
		TraceID string `json:"traceID"`
		SpanID  string `json:"spanID"`
	} `json:"references"`
	StartTime int64       `json:"startTime"` // microseconds since the epoch
	Duration  int64       `json:"duration"`  // microseconds
	Tags      []jaegerTag `json:"tags"`
	Logs      []struct {
		Timestamp int64       `json:"timestamp"`
		Fields    []jaegerTag `json:"fields"`
	} `json:"logs"`
	ProcessID string `json:"processID"`
}

type jaegerProcess struct {
	ServiceName string      `json:"serviceName"`
	Tags        []jaegerTag `json:"tags"`
}

type jaegerTag struct {
	Key   string          `json:"key"`
	Type  string          `json:"type"`
	Value json.RawMessage `json:"value"`
}

// Tags Jaeger's OTLP translation adds that map back to span fields.
const (
	tagSpanKind      = "span.kind"
	tagStatusCode    = "otel.status_code"
	tagStatusMessage = "otel.status_description"
	tagError         = "error"
	fieldEvent       = "event"
)

// translationTags are dropped from attributes: they are span fields.
var translationTags = map[string]bool{
	tagSpanKind: true, tagStatusCode: true, tagStatusMessage: true,
	"otel.scope.name": true, "otel.scope.version": true, "otel.library.name": true,
	"otel.library.version": true, "internal.span.format": true,
}

// DecodeJaeger maps Jaeger's /api/traces/{id} answer to spans ordered by
// start. Jaeger's error list is reported when there is no data.
func DecodeJaeger(body []byte) ([]store.Span, error) {
	var r jaegerResponse
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("%w: decode Jaeger trace: %w", ErrRead, err)
	}
	if len(r.Data) == 0 {
		for _, e := range r.Errors {
			if e.Code == 404 {
				return nil, nil
			}
			return nil, fmt.Errorf("%w: Jaeger: %d %s", ErrRead, e.Code, e.Msg)
		}
		return nil, nil
	}
	req := &coltracepb.ExportTraceServiceRequest{}
	for _, tr := range r.Data {
		byProcess := make(map[string]*tracepb.ScopeSpans)
		pids := make([]string, 0, len(tr.Processes))
		for pid := range tr.Processes {
			pids = append(pids, pid)
		}
		sort.Strings(pids)
		for _, pid := range pids {
			p := tr.Processes[pid]
			attrs := []*commonpb.KeyValue{stringKV(attrServiceName, p.ServiceName)}
			for _, t := range p.Tags {
				if t.Key != attrServiceName {
					attrs = append(attrs, &commonpb.KeyValue{Key: t.Key, Value: tagValue(t)})
				}
			}
			ss := &tracepb.ScopeSpans{}
			req.ResourceSpans = append(req.ResourceSpans, &tracepb.ResourceSpans{
				Resource: &resourcepb.Resource{Attributes: attrs}, ScopeSpans: []*tracepb.ScopeSpans{ss},
			})
			byProcess[pid] = ss
		}
		for i := range tr.Spans {
			js := &tr.Spans[i]
			ss, ok := byProcess[js.ProcessID]
			if !ok {
				ss = &tracepb.ScopeSpans{}
				req.ResourceSpans = append(req.ResourceSpans, &tracepb.ResourceSpans{ScopeSpans: []*tracepb.ScopeSpans{ss}})
				byProcess[js.ProcessID] = ss
			}
			ss.Spans = append(ss.Spans, jaegerToOTLP(js))
		}
	}
	return spansOf(req)
}

func jaegerToOTLP(js *jaegerSpan) *tracepb.Span {
	start := uint64(max(js.StartTime, 0)) * 1000
	sp := &tracepb.Span{
		TraceId:           jaegerID(js.TraceID, 16),
		SpanId:            jaegerID(js.SpanID, 8),
		Name:              js.OperationName,
		StartTimeUnixNano: start,
		EndTimeUnixNano:   start + uint64(max(js.Duration, 0))*1000,
		Status:            &tracepb.Status{},
	}
	for _, ref := range js.References {
		if ref.RefType == "CHILD_OF" && ref.TraceID == js.TraceID {
			sp.ParentSpanId = jaegerID(ref.SpanID, 8)
			break
		}
	}
	for _, t := range js.Tags {
		switch t.Key {
		case tagSpanKind:
			sp.Kind = kindOf(stringOf(t))
		case tagStatusCode:
			sp.Status.Code = statusOf(strings.ToLower(stringOf(t)))
		case tagStatusMessage:
			sp.Status.Message = stringOf(t)
		case tagError:
			if stringOf(t) == "true" && sp.Status.Code == tracepb.Status_STATUS_CODE_UNSET {
				sp.Status.Code = tracepb.Status_STATUS_CODE_ERROR
			}
		}
		if !translationTags[t.Key] {
			sp.Attributes = append(sp.Attributes, &commonpb.KeyValue{Key: t.Key, Value: tagValue(t)})
		}
	}
	for _, l := range js.Logs {
		ev := &tracepb.Span_Event{TimeUnixNano: uint64(max(l.Timestamp, 0)) * 1000}
		for _, f := range l.Fields {
			if f.Key == fieldEvent {
				ev.Name = stringOf(f)
				continue
			}
			ev.Attributes = append(ev.Attributes, &commonpb.KeyValue{Key: f.Key, Value: tagValue(f)})
		}
		sp.Events = append(sp.Events, ev)
	}
	return sp
}

// jaegerID decodes a Jaeger hex ID, which drops leading zeros, left
// padded to size bytes. An undecodable ID stays invalid (ingest rejects
// the span).
func jaegerID(s string, size int) []byte {
	if len(s) < 2*size {
		s = strings.Repeat("0", 2*size-len(s)) + s
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return []byte{0}
	}
	return b
}

func stringOf(t jaegerTag) string {
	var s string
	if err := json.Unmarshal(t.Value, &s); err == nil {
		return s
	}
	return string(t.Value)
}

func tagValue(t jaegerTag) *commonpb.AnyValue {
	switch t.Type {
	case "bool":
		var b bool
		if json.Unmarshal(t.Value, &b) == nil {
			return &commonpb.AnyValue{Value: &commonpb.AnyValue_BoolValue{BoolValue: b}}
		}
	case "int64":
		var n json.Number
		if json.Unmarshal(t.Value, &n) == nil {
			if i, err := n.Int64(); err == nil {
				return &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: i}}
			}
		}
	case "float64":
		var f float64
		if json.Unmarshal(t.Value, &f) == nil {
			return &commonpb.AnyValue{Value: &commonpb.AnyValue_DoubleValue{DoubleValue: f}}
		}
	case "binary":
		var s string
		if json.Unmarshal(t.Value, &s) == nil {
			if b, err := base64.StdEncoding.DecodeString(s); err == nil {
				return &commonpb.AnyValue{Value: &commonpb.AnyValue_BytesValue{BytesValue: b}}
			}
		}
	}
	return &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: stringOf(t)}}
}

// sortByStart orders spans by start time, then span ID, as the store does.
func sortByStart(spans []store.Span) {
	sort.SliceStable(spans, func(i, j int) bool {
		if !spans[i].Start.Equal(spans[j].Start) {
			return spans[i].Start.Before(spans[j].Start)
		}
		return spans[i].SpanID < spans[j].SpanID
	})
}
