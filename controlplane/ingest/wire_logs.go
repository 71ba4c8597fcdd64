package ingest

// Log records from the protobuf wire format (see protowire.go).

import (
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/pilothouse/pilothouse/controlplane/store"
)

type wireLog struct {
	time, observed  uint64
	severity        int32
	severityText    []byte
	body            wireAny
	attrs           []wireKV
	traceID, spanID []byte
}

func parseWireLog(b []byte, scratch []wireKV) (wireLog, error) {
	wl := wireLog{attrs: scratch}
	f := wireFields{b: b}
	for {
		num, typ, v, ok := f.next()
		if !ok {
			return wl, f.err
		}
		var err error
		switch {
		case num == 1 && typ == protowire.Fixed64Type:
			wl.time = fixed64(v)
		case num == 2 && typ == protowire.VarintType:
			wl.severity = int32(varint(v))
		case num == 3 && typ == protowire.BytesType:
			wl.severityText, err = utf8String(v)
		case num == 5 && typ == protowire.BytesType:
			err = wl.body.feed(v)
		case num == 6 && typ == protowire.BytesType:
			wl.attrs, err = appendKV(wl.attrs, v)
		case num == 9 && typ == protowire.BytesType:
			wl.traceID = v
		case num == 10 && typ == protowire.BytesType:
			wl.spanID = v
		case num == 11 && typ == protowire.Fixed64Type:
			wl.observed = fixed64(v)
		case num == 12 && typ == protowire.BytesType:
			_, err = utf8String(v) // event_name: validated as protobuf does
		}
		if err != nil {
			return wl, err
		}
	}
}

// mapWireLog mirrors mapLogRecord.
func mapWireLog(in *interner, wl *wireLog, res resourceInfo) (store.LogRecord, error) {
	traceID, err := in.hexID("traceId", wl.traceID, 16, true)
	if err != nil {
		return store.LogRecord{}, err
	}
	spanID, err := hexID("spanId", wl.spanID, 8, true)
	if err != nil {
		return store.LogRecord{}, err
	}
	ts := timeOrZero(wl.time)
	if ts.IsZero() {
		ts = timeOrZero(wl.observed)
	}
	body, err := wireBodyString(in, &wl.body)
	if err != nil {
		return store.LogRecord{}, malformedWire{err}
	}
	rec := store.LogRecord{
		Time:           ts,
		Service:        res.service,
		Instance:       res.instance,
		Level:          logLevel(severityOf(wl.severity), in.str(wl.severityText)),
		SeverityNumber: int(wl.severity),
		Body:           body,
		TraceID:        traceID,
		SpanID:         spanID,
		RequestID:      wireRequestID(in, wl.attrs),
	}
	if rec.SeverityNumber < 0 || rec.SeverityNumber > 24 {
		rec.SeverityNumber = 0
	}
	conv := newAttrConverter()
	conv.intern = in
	if rec.Attributes, err = conv.addWire(nil, wl.attrs); err != nil {
		return store.LogRecord{}, malformedWire{err}
	}
	if res.version != "" {
		if rec.Attributes == nil {
			rec.Attributes = make(map[string]any, 1)
		}
		rec.Attributes[attrServiceVersion] = res.version
	}
	return rec, nil
}

// wireBodyString mirrors bodyString.
func wireBodyString(in *interner, v *wireAny) (string, error) {
	if v.kind == anyStr {
		return truncate(string(v.raw), MaxLogBodyBytes), nil
	}
	c := attrConverter{budget: MaxLogBodyBytes, intern: in}
	val, err := c.wireValue(v, 0)
	if err != nil || val == nil {
		return "", err
	}
	return truncate(jsonText(val), MaxLogBodyBytes), nil
}
