package agent

import (
	"context"
	"log/slog"
	"math"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/pilothouse/pilothouse/agent/wire"
)

// spanExporter writes OTLP ExportTraceServiceRequest protobuf straight
// from the SDK's read-only spans with protowire and posts it to an
// OTLP/HTTP traces endpoint. It replaces otlptracehttp, whose conversion to
// generated message objects costs about 24 allocations and 3.7 times the
// time per exported span (BenchmarkExportSpans; BENCHMARKS.md, "Span and
// log export"). It is used by one goroutine at a time (the span queue's)
// and reuses its buffers.
type spanExporter struct {
	post poster
	// resource is the agent's resource, for batches of server spans only
	// (SDK spans carry theirs).
	resource []attribute.KeyValue

	spans, sp, kv, arr, anyb, ev, scope, res, rs, out []byte
	done                                              []bool
}

var (
	_ sdktrace.SpanExporter = (*spanExporter)(nil)
	_ spanSender            = (*spanExporter)(nil)
)

// Field numbers of the OTLP trace messages written here.
const (
	fieldTraceReqResourceSpans = 1
	fieldResourceSpansResource = 1
	fieldResourceSpansScope    = 2
	fieldScopeSpansScope       = 1
	fieldScopeSpansSpans       = 2
	fieldScopeVersion          = 2
	fieldSpanTraceID           = 1
	fieldSpanSpanID            = 2
	fieldSpanTraceState        = 3
	fieldSpanParentID          = 4
	fieldSpanName              = 5
	fieldSpanKind              = 6
	fieldSpanStart             = 7
	fieldSpanEnd               = 8
	fieldSpanAttrs             = 9
	fieldSpanDroppedAttrs      = 10
	fieldSpanEvents            = 11
	fieldSpanDroppedEvents     = 12
	fieldSpanLinks             = 13
	fieldSpanDroppedLinks      = 14
	fieldSpanStatus            = 15
	fieldSpanFlags             = 16
	fieldEventTime             = 1
	fieldEventName             = 2
	fieldEventAttrs            = 3
	fieldLinkTraceID           = 1
	fieldLinkSpanID            = 2
	fieldLinkTraceState        = 3
	fieldLinkAttrs             = 4
	fieldLinkFlags             = 6
	fieldStatusMessage         = 2
	fieldStatusCode            = 3
	fieldAnyArray              = 5
	fieldArrayValues           = 1
	flagHasIsRemote            = 0x100
	flagIsRemote               = 0x200
)

// ExportSpans implements sdktrace.SpanExporter.
func (e *spanExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	return e.sendSpans(ctx, sdkSpans(spans))
}

// sendSpans posts one batch of queued spans.
func (e *spanExporter) sendSpans(ctx context.Context, spans []queuedSpan) error {
	if len(spans) == 0 {
		return nil
	}
	return e.post.send(ctx, e.encode(spans))
}

func (e *spanExporter) Shutdown(context.Context) error { return nil }

// encode returns the request for spans; valid until the next call. Spans
// are grouped by instrumentation scope; they share the agent's resource.
func (e *spanExporter) encode(spans []queuedSpan) []byte {
	e.res = e.res[:0]
	resAttrs := e.resource
	for _, s := range spans {
		if s.sdk != nil {
			resAttrs = s.sdk.Resource().Attributes()
			break
		}
	}
	for _, kv := range resAttrs {
		e.res = e.appendAttr(e.res, fieldResourceAttrs, kv)
	}
	e.out = e.out[:0]
	rs := protowire.AppendTag(e.rs[:0], fieldResourceSpansResource, protowire.BytesType)
	rs = protowire.AppendBytes(rs, e.res)
	e.done = append(e.done[:0], make([]bool, len(spans))...)
	done := e.done
	for i, first := range spans {
		if done[i] {
			continue
		}
		sc := first.scope()
		e.spans = e.spans[:0]
		for j := i; j < len(spans); j++ {
			if done[j] {
				continue
			}
			if other := spans[j].scope(); other.Name != sc.Name || other.Version != sc.Version {
				continue
			}
			done[j] = true
			if own := spans[j].own; own != nil {
				e.sp = e.appendServerSpan(e.sp[:0], own)
			} else {
				e.sp = e.appendSpan(e.sp[:0], spans[j].sdk)
			}
			e.spans = protowire.AppendTag(e.spans, fieldScopeSpansSpans, protowire.BytesType)
			e.spans = protowire.AppendBytes(e.spans, e.sp)
		}
		e.scope = e.scope[:0]
		e.scope = protowire.AppendTag(e.scope, fieldScopeName, protowire.BytesType)
		e.scope = appendUTF8(e.scope, sc.Name)
		if sc.Version != "" {
			e.scope = protowire.AppendTag(e.scope, fieldScopeVersion, protowire.BytesType)
			e.scope = appendUTF8(e.scope, sc.Version)
		}
		size := protowire.SizeTag(fieldScopeSpansScope) + protowire.SizeBytes(len(e.scope)) + len(e.spans)
		rs = protowire.AppendTag(rs, fieldResourceSpansScope, protowire.BytesType)
		rs = protowire.AppendVarint(rs, uint64(size))
		rs = protowire.AppendTag(rs, fieldScopeSpansScope, protowire.BytesType)
		rs = protowire.AppendBytes(rs, e.scope)
		rs = append(rs, e.spans...)
	}
	e.rs = rs
	e.out = protowire.AppendTag(e.out, fieldTraceReqResourceSpans, protowire.BytesType)
	e.out = protowire.AppendBytes(e.out, rs)
	return e.out
}

// appendSpanStart appends the fields every span starts with: IDs, trace
// state, parent, name, kind and times.
func appendSpanStart(b []byte, sc, parent trace.SpanContext, name string, kind trace.SpanKind, start, end time.Time) []byte {
	tid, sid := sc.TraceID(), sc.SpanID()
	b = protowire.AppendTag(b, fieldSpanTraceID, protowire.BytesType)
	b = protowire.AppendBytes(b, tid[:])
	b = protowire.AppendTag(b, fieldSpanSpanID, protowire.BytesType)
	b = protowire.AppendBytes(b, sid[:])
	if ts := sc.TraceState(); ts.Len() > 0 {
		b = protowire.AppendTag(b, fieldSpanTraceState, protowire.BytesType)
		b = appendUTF8(b, ts.String())
	}
	if parent.SpanID().IsValid() {
		pid := parent.SpanID()
		b = protowire.AppendTag(b, fieldSpanParentID, protowire.BytesType)
		b = protowire.AppendBytes(b, pid[:])
	}
	b = protowire.AppendTag(b, fieldSpanName, protowire.BytesType)
	b = appendUTF8(b, name)
	b = protowire.AppendTag(b, fieldSpanKind, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(kind)) // same numbering as OTLP
	b = protowire.AppendTag(b, fieldSpanStart, protowire.Fixed64Type)
	b = protowire.AppendFixed64(b, uint64(start.UnixNano()))
	b = protowire.AppendTag(b, fieldSpanEnd, protowire.Fixed64Type)
	return protowire.AppendFixed64(b, uint64(end.UnixNano()))
}

func (e *spanExporter) appendSpan(b []byte, s sdktrace.ReadOnlySpan) []byte {
	sc, parent := s.SpanContext(), s.Parent()
	b = appendSpanStart(b, sc, parent, s.Name(), s.SpanKind(), s.StartTime(), s.EndTime())
	for _, kv := range s.Attributes() {
		b = e.appendAttr(b, fieldSpanAttrs, kv)
	}
	return e.appendSpanEnd(b, sc, parent, s.DroppedAttributes(), s.Events(), s.DroppedEvents(),
		s.Links(), s.DroppedLinks(), s.Status())
}

// appendServerSpan writes the middleware's span: its request attributes
// straight from their fields, then what other code added.
func (e *spanExporter) appendServerSpan(b []byte, s *serverSpan) []byte {
	b = appendSpanStart(b, s.sc, s.parent, s.name, trace.SpanKindServer, s.start, s.endTime())
	b = appendKV(b, fieldSpanAttrs, "http.request.method", slog.StringValue(s.method))
	b = appendKV(b, fieldSpanAttrs, "http.route", slog.StringValue(s.route))
	b = appendKV(b, fieldSpanAttrs, "url.path", slog.StringValue(s.path))
	b = appendKV(b, fieldSpanAttrs, "client.address", slog.StringValue(s.client))
	b = appendKV(b, fieldSpanAttrs, wire.AttrRequestID, slog.StringValue(s.requestID))
	b = appendKV(b, fieldSpanAttrs, "http.response.status_code", slog.Int64Value(int64(s.status)))
	fixed := 6
	if v := s.verdict; v != nil && v.marked {
		b = appendKV(b, fieldSpanAttrs, wire.AttrRuleID, slog.StringValue(v.rule))
		b = appendKV(b, fieldSpanAttrs, wire.AttrAction, slog.StringValue(v.act.String()))
		fixed += 2
		if v.act == actShadow {
			b = appendKV(b, fieldSpanAttrs, AttrShadowAction, slog.StringValue(v.would.String()))
			fixed++
		}
	}
	var x spanExtra
	if s.extra != nil {
		x = *s.extra
	}
	for _, kv := range x.attrs {
		if !isServerSpanAttr(kv.Key, fixed > 6) {
			b = e.appendAttr(b, fieldSpanAttrs, kv)
		}
	}
	return e.appendSpanEnd(b, s.sc, s.parent, x.droppedAttrs, x.events, x.droppedEvents, x.links, x.droppedLinks,
		sdktrace.Status{Code: s.statusCode, Description: x.statusDesc})
}

// isServerSpanAttr reports whether k is one of the attributes the
// middleware sets itself (they win over the same key set by others).
func isServerSpanAttr(k attribute.Key, withVerdict bool) bool {
	switch k {
	case "http.request.method", "http.route", "url.path", "client.address", wire.AttrRequestID, "http.response.status_code":
		return true
	case wire.AttrRuleID, wire.AttrAction, AttrShadowAction:
		return withVerdict
	}
	return false
}

// appendSpanEnd appends the fields after the attributes: dropped counts,
// events, links, status and flags.
func (e *spanExporter) appendSpanEnd(b []byte, sc, parent trace.SpanContext, droppedAttrs int, events []sdktrace.Event,
	droppedEvents int, links []sdktrace.Link, droppedLinks int, st sdktrace.Status) []byte {
	if droppedAttrs > 0 {
		b = protowire.AppendTag(b, fieldSpanDroppedAttrs, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(droppedAttrs))
	}
	for _, ev := range events {
		e.ev = e.ev[:0]
		e.ev = protowire.AppendTag(e.ev, fieldEventTime, protowire.Fixed64Type)
		e.ev = protowire.AppendFixed64(e.ev, uint64(ev.Time.UnixNano()))
		e.ev = protowire.AppendTag(e.ev, fieldEventName, protowire.BytesType)
		e.ev = appendUTF8(e.ev, ev.Name)
		for _, kv := range ev.Attributes {
			e.ev = e.appendAttr(e.ev, fieldEventAttrs, kv)
		}
		b = protowire.AppendTag(b, fieldSpanEvents, protowire.BytesType)
		b = protowire.AppendBytes(b, e.ev)
	}
	if droppedEvents > 0 {
		b = protowire.AppendTag(b, fieldSpanDroppedEvents, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(droppedEvents))
	}
	for _, l := range links {
		ltid, lsid := l.SpanContext.TraceID(), l.SpanContext.SpanID()
		e.ev = e.ev[:0]
		e.ev = protowire.AppendTag(e.ev, fieldLinkTraceID, protowire.BytesType)
		e.ev = protowire.AppendBytes(e.ev, ltid[:])
		e.ev = protowire.AppendTag(e.ev, fieldLinkSpanID, protowire.BytesType)
		e.ev = protowire.AppendBytes(e.ev, lsid[:])
		if ts := l.SpanContext.TraceState().String(); ts != "" {
			e.ev = protowire.AppendTag(e.ev, fieldLinkTraceState, protowire.BytesType)
			e.ev = appendUTF8(e.ev, ts)
		}
		for _, kv := range l.Attributes {
			e.ev = e.appendAttr(e.ev, fieldLinkAttrs, kv)
		}
		e.ev = protowire.AppendTag(e.ev, fieldLinkFlags, protowire.Fixed32Type)
		e.ev = protowire.AppendFixed32(e.ev, linkFlags(l.SpanContext.TraceFlags(), l.SpanContext.IsRemote()))
		b = protowire.AppendTag(b, fieldSpanLinks, protowire.BytesType)
		b = protowire.AppendBytes(b, e.ev)
	}
	if droppedLinks > 0 {
		b = protowire.AppendTag(b, fieldSpanDroppedLinks, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(droppedLinks))
	}
	if st.Code != codes.Unset {
		code := uint64(2) // OTLP STATUS_CODE_ERROR
		if st.Code == codes.Ok {
			code = 1
		}
		desc := validUTF8(st.Description)
		size := protowire.SizeTag(fieldStatusCode) + protowire.SizeVarint(code)
		if desc != "" {
			size += protowire.SizeTag(fieldStatusMessage) + protowire.SizeBytes(len(desc))
		}
		b = protowire.AppendTag(b, fieldSpanStatus, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(size))
		if desc != "" {
			b = protowire.AppendTag(b, fieldStatusMessage, protowire.BytesType)
			b = protowire.AppendString(b, desc)
		}
		b = protowire.AppendTag(b, fieldStatusCode, protowire.VarintType)
		b = protowire.AppendVarint(b, code)
	}
	b = protowire.AppendTag(b, fieldSpanFlags, protowire.Fixed32Type)
	return protowire.AppendFixed32(b, linkFlags(sc.TraceFlags(), parent.IsRemote()))
}

func linkFlags(tf interface{ IsSampled() bool }, remote bool) uint32 {
	f := uint32(flagHasIsRemote)
	if tf.IsSampled() {
		f |= 1
	}
	if remote {
		f |= flagIsRemote
	}
	return f
}

// appendAttr appends one KeyValue as field; slices become ArrayValues.
func (e *spanExporter) appendAttr(b []byte, field protowire.Number, kv attribute.KeyValue) []byte {
	k := string(kv.Key)
	switch kv.Value.Type() {
	case attribute.BOOL:
		return appendKV(b, field, k, slog.BoolValue(kv.Value.AsBool()))
	case attribute.INT64:
		return appendKV(b, field, k, slog.Int64Value(kv.Value.AsInt64()))
	case attribute.FLOAT64:
		return appendKV(b, field, k, slog.Float64Value(kv.Value.AsFloat64()))
	case attribute.STRING:
		return appendKV(b, field, k, slog.StringValue(kv.Value.AsString()))
	case attribute.BOOLSLICE, attribute.INT64SLICE, attribute.FLOAT64SLICE, attribute.STRINGSLICE:
		e.arr = e.arr[:0]
		e.kv = e.kv[:0]
		switch kv.Value.Type() {
		case attribute.BOOLSLICE:
			for _, v := range kv.Value.AsBoolSlice() {
				e.kv = anyBool(e.kv[:0], v)
				e.arr = appendArrayElem(e.arr, e.kv)
			}
		case attribute.INT64SLICE:
			for _, v := range kv.Value.AsInt64Slice() {
				e.kv = anyInt(e.kv[:0], v)
				e.arr = appendArrayElem(e.arr, e.kv)
			}
		case attribute.FLOAT64SLICE:
			for _, v := range kv.Value.AsFloat64Slice() {
				e.kv = anyDouble(e.kv[:0], v)
				e.arr = appendArrayElem(e.arr, e.kv)
			}
		default:
			for _, v := range kv.Value.AsStringSlice() {
				e.kv = protowire.AppendTag(e.kv[:0], fieldAnyString, protowire.BytesType)
				e.kv = appendUTF8(e.kv, v)
				e.arr = appendArrayElem(e.arr, e.kv)
			}
		}
		e.anyb = protowire.AppendTag(e.anyb[:0], fieldAnyArray, protowire.BytesType)
		e.anyb = protowire.AppendBytes(e.anyb, e.arr)
		return appendKVAny(b, field, k, e.anyb)
	default:
		return appendKV(b, field, k, slog.StringValue(kv.Value.Emit()))
	}
}

func appendArrayElem(arr, elem []byte) []byte {
	arr = protowire.AppendTag(arr, fieldArrayValues, protowire.BytesType)
	return protowire.AppendBytes(arr, elem)
}

// appendKVAny appends a KeyValue whose AnyValue is already encoded.
func appendKVAny(b []byte, field protowire.Number, k string, anyValue []byte) []byte {
	k = validUTF8(k)
	size := protowire.SizeTag(fieldKVKey) + protowire.SizeBytes(len(k)) +
		protowire.SizeTag(fieldKVValue) + protowire.SizeBytes(len(anyValue))
	b = protowire.AppendTag(b, field, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(size))
	b = protowire.AppendTag(b, fieldKVKey, protowire.BytesType)
	b = protowire.AppendString(b, k)
	b = protowire.AppendTag(b, fieldKVValue, protowire.BytesType)
	return protowire.AppendBytes(b, anyValue)
}

func anyBool(b []byte, v bool) []byte {
	b = protowire.AppendTag(b, fieldAnyBool, protowire.VarintType)
	return protowire.AppendVarint(b, protowire.EncodeBool(v))
}

func anyInt(b []byte, v int64) []byte {
	b = protowire.AppendTag(b, fieldAnyInt, protowire.VarintType)
	return protowire.AppendVarint(b, uint64(v))
}

func anyDouble(b []byte, v float64) []byte {
	b = protowire.AppendTag(b, fieldAnyDouble, protowire.Fixed64Type)
	return protowire.AppendFixed64(b, math.Float64bits(v))
}
