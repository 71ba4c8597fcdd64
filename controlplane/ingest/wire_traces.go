package ingest

// Spans from the protobuf wire format (see protowire.go).

import (
	"math"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/pilothouse/pilothouse/controlplane/store"
)

type wireSpan struct {
	traceID, spanID, parentID []byte
	name                      []byte
	kind                      int32
	start, end                uint64
	attrs                     []wireKV
	events                    [][]byte
	statusMsg                 []byte
	statusCode                int32
}

func parseWireSpan(b []byte, scratch []wireKV) (wireSpan, error) {
	ws := wireSpan{attrs: scratch}
	f := wireFields{b: b}
	for {
		num, typ, v, ok := f.next()
		if !ok {
			return ws, f.err
		}
		var err error
		switch {
		case num == 1 && typ == protowire.BytesType:
			ws.traceID = v
		case num == 2 && typ == protowire.BytesType:
			ws.spanID = v
		case num == 4 && typ == protowire.BytesType:
			ws.parentID = v
		case num == 5 && typ == protowire.BytesType:
			ws.name, err = utf8String(v)
		case num == 6 && typ == protowire.VarintType:
			ws.kind = int32(varint(v))
		case num == 7 && typ == protowire.Fixed64Type:
			ws.start = fixed64(v)
		case num == 8 && typ == protowire.Fixed64Type:
			ws.end = fixed64(v)
		case num == 9 && typ == protowire.BytesType:
			ws.attrs, err = appendKV(ws.attrs, v)
		case num == 11 && typ == protowire.BytesType:
			ws.events = append(ws.events, v)
		case num == 15 && typ == protowire.BytesType:
			err = ws.feedStatus(v)
		}
		if err != nil {
			return ws, err
		}
	}
}

func (ws *wireSpan) feedStatus(b []byte) error {
	f := wireFields{b: b}
	for {
		num, typ, v, ok := f.next()
		if !ok {
			return f.err
		}
		switch {
		case num == 2 && typ == protowire.BytesType:
			s, err := utf8String(v)
			if err != nil {
				return err
			}
			ws.statusMsg = s
		case num == 3 && typ == protowire.VarintType:
			ws.statusCode = int32(varint(v))
		}
	}
}

// mapWireSpan mirrors mapSpan. Wire errors in nested values come back as
// malformedWire.
func mapWireSpan(in *interner, ws *wireSpan, res resourceInfo) (store.Span, error) {
	traceID, err := in.hexID("traceId", ws.traceID, 16, false)
	if err != nil {
		return store.Span{}, err
	}
	spanID, err := hexID("spanId", ws.spanID, 8, false)
	if err != nil {
		return store.Span{}, err
	}
	parentID, err := hexID("parentSpanId", ws.parentID, 8, true)
	if err != nil {
		return store.Span{}, err
	}
	start, err := unixNanos("startTimeUnixNano", ws.start)
	if err != nil {
		return store.Span{}, err
	}
	sp := store.Span{
		TraceID:       traceID,
		SpanID:        spanID,
		ParentSpanID:  parentID,
		Service:       res.service,
		Instance:      res.instance,
		Name:          truncate(in.str(ws.name), MaxNameBytes),
		Kind:          spanKind(spanKindOf(ws.kind)),
		Start:         start,
		StatusCode:    statusCode(statusCodeOf(ws.statusCode)),
		StatusMessage: truncate(string(ws.statusMsg), MaxAttributeValueBytes),
		RequestID:     wireRequestID(in, ws.attrs),
	}
	if end := ws.end; end > ws.start && end <= math.MaxInt64 {
		sp.Duration = durationNs(end - ws.start)
	}
	if route, ok := wireString(in, ws.attrs, attrRoute); ok {
		sp.Route = truncate(route, MaxNameBytes)
	}
	if code, ok := wireInt(ws.attrs, attrStatusCode); ok && validHTTPStatus(code) {
		sp.HTTPStatus = code
	} else if code, ok := wireInt(ws.attrs, attrStatusCodeOld); ok && validHTTPStatus(code) {
		sp.HTTPStatus = code
	}
	conv := newAttrConverter()
	conv.intern = in
	if sp.Attributes, err = conv.addWire(nil, ws.attrs); err != nil {
		return store.Span{}, malformedWire{err}
	}
	if res.version != "" {
		if sp.Attributes == nil {
			sp.Attributes = make(map[string]any, 1)
		}
		sp.Attributes[attrServiceVersion] = res.version
	}
	if n := min(len(ws.events), MaxEvents); n > 0 {
		sp.Events = make([]store.SpanEvent, 0, n)
		var kvs []wireKV
		for _, b := range ws.events[:n] {
			ev, evKVs, err := parseWireEvent(in, b, kvs[:0])
			if err != nil {
				return store.Span{}, malformedWire{err}
			}
			kvs = evKVs
			evConv := newAttrConverter()
			evConv.intern = in
			if ev.Attributes, err = evConv.addWire(nil, evKVs); err != nil {
				return store.Span{}, malformedWire{err}
			}
			sp.Events = append(sp.Events, ev)
		}
	}
	return sp, nil
}

func parseWireEvent(in *interner, b []byte, kvs []wireKV) (store.SpanEvent, []wireKV, error) {
	var (
		ev   store.SpanEvent
		name []byte
		ts   uint64
	)
	f := wireFields{b: b}
	for {
		num, typ, v, ok := f.next()
		if !ok {
			if f.err != nil {
				return ev, kvs, f.err
			}
			break
		}
		var err error
		switch {
		case num == 1 && typ == protowire.Fixed64Type:
			ts = fixed64(v)
		case num == 2 && typ == protowire.BytesType:
			name, err = utf8String(v)
		case num == 3 && typ == protowire.BytesType:
			kvs, err = appendKV(kvs, v)
		}
		if err != nil {
			return ev, kvs, err
		}
	}
	ev.Name = truncate(in.str(name), MaxNameBytes)
	ev.Time = timeOrZero(ts)
	return ev, kvs, nil
}
