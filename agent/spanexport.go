package agent

import (
	"context"
	"log/slog"
	"math"
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"google.golang.org/protobuf/encoding/protowire"
)

// spanExporter writes OTLP ExportTraceServiceRequest protobuf straight
// from the SDK's read-only spans with protowire and posts it to an
// OTLP/HTTP traces endpoint. It replaces otlptracehttp, whose conversion to
// generated message objects cost about 11 allocations per span, a third of
// all the agent's allocations (see BENCHMARKS.md). It is used by one
// goroutine at a time (the span queue's) and reuses its buffers.
type spanExporter struct {
	post poster

	spans, sp, kv, arr, anyb, ev, scope, res, rs, out []byte
	done                                              []bool
}

var _ sdktrace.SpanExporter = (*spanExporter)(nil)

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

func newSpanExporter(url, token string, client *http.Client) *spanExporter {
	return &spanExporter{post: poster{url: url, token: token, client: client, what: "spans"}}
}

func (e *spanExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	if len(spans) == 0 {
		return nil
	}
	return e.post.send(ctx, e.encode(spans))
}

func (e *spanExporter) Shutdown(context.Context) error { return nil }

// encode returns the request for spans; valid until the next call. Spans
// are grouped by instrumentation scope; they share the agent's resource.
func (e *spanExporter) encode(spans []sdktrace.ReadOnlySpan) []byte {
	e.res = e.res[:0]
	for _, kv := range spans[0].Resource().Attributes() {
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
		sc := first.InstrumentationScope()
		e.spans = e.spans[:0]
		for j := i; j < len(spans); j++ {
			if done[j] || spans[j].InstrumentationScope().Name != sc.Name || spans[j].InstrumentationScope().Version != sc.Version {
				continue
			}
			done[j] = true
			e.sp = e.appendSpan(e.sp[:0], spans[j])
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

func (e *spanExporter) appendSpan(b []byte, s sdktrace.ReadOnlySpan) []byte {
	sc := s.SpanContext()
	tid, sid := sc.TraceID(), sc.SpanID()
	b = protowire.AppendTag(b, fieldSpanTraceID, protowire.BytesType)
	b = protowire.AppendBytes(b, tid[:])
	b = protowire.AppendTag(b, fieldSpanSpanID, protowire.BytesType)
	b = protowire.AppendBytes(b, sid[:])
	if ts := sc.TraceState().String(); ts != "" {
		b = protowire.AppendTag(b, fieldSpanTraceState, protowire.BytesType)
		b = appendUTF8(b, ts)
	}
	parent := s.Parent()
	if parent.SpanID().IsValid() {
		pid := parent.SpanID()
		b = protowire.AppendTag(b, fieldSpanParentID, protowire.BytesType)
		b = protowire.AppendBytes(b, pid[:])
	}
	b = protowire.AppendTag(b, fieldSpanName, protowire.BytesType)
	b = appendUTF8(b, s.Name())
	b = protowire.AppendTag(b, fieldSpanKind, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(s.SpanKind())) // same numbering as OTLP
	b = protowire.AppendTag(b, fieldSpanStart, protowire.Fixed64Type)
	b = protowire.AppendFixed64(b, uint64(s.StartTime().UnixNano()))
	b = protowire.AppendTag(b, fieldSpanEnd, protowire.Fixed64Type)
	b = protowire.AppendFixed64(b, uint64(s.EndTime().UnixNano()))
	for _, kv := range s.Attributes() {
		b = e.appendAttr(b, fieldSpanAttrs, kv)
	}
	if n := s.DroppedAttributes(); n > 0 {
		b = protowire.AppendTag(b, fieldSpanDroppedAttrs, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(n))
	}
	for _, ev := range s.Events() {
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
	if n := s.DroppedEvents(); n > 0 {
		b = protowire.AppendTag(b, fieldSpanDroppedEvents, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(n))
	}
	for _, l := range s.Links() {
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
	if n := s.DroppedLinks(); n > 0 {
		b = protowire.AppendTag(b, fieldSpanDroppedLinks, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(n))
	}
	if st := s.Status(); st.Code != codes.Unset {
		code := uint64(2) // OTLP STATUS_CODE_ERROR
		if st.Code == codes.Ok {
			code = 1
		}
		size := protowire.SizeTag(fieldStatusCode) + protowire.SizeVarint(code)
		if st.Description != "" {
			size += protowire.SizeTag(fieldStatusMessage) + protowire.SizeBytes(utf8Len(st.Description))
		}
		b = protowire.AppendTag(b, fieldSpanStatus, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(size))
		if st.Description != "" {
			b = protowire.AppendTag(b, fieldStatusMessage, protowire.BytesType)
			b = appendUTF8(b, st.Description)
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
	size := protowire.SizeTag(fieldKVKey) + protowire.SizeBytes(utf8Len(k)) +
		protowire.SizeTag(fieldKVValue) + protowire.SizeBytes(len(anyValue))
	b = protowire.AppendTag(b, field, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(size))
	b = protowire.AppendTag(b, fieldKVKey, protowire.BytesType)
	b = appendUTF8(b, k)
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
