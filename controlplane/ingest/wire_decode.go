package ingest

// The walk every OTLP export request shares (resource -> scope -> item),
// written once for spans and log records.

import (
	"errors"
	"fmt"

	"github.com/pilothouse/pilothouse/controlplane/store"
)

// wireSignal says how one OTLP signal's items are read and named.
type wireSignal[W, T any] struct {
	// message names the export request in errors ("ExportTraceServiceRequest").
	message string
	// resourceField, scopeField and itemField name the repeated fields in
	// rejection paths ("resourceSpans", "scopeSpans", "spans").
	resourceField, scopeField, itemField string
	// items names the items in the partial-success message ("spans").
	items string
	// parse reads one item's raw fields, reusing scratch for attributes;
	// it returns them and the attribute slice to reuse next.
	parse func(b []byte, scratch []wireKV) (W, []wireKV, error)
	// convert maps a parsed item with its resource onto the store's type.
	// It takes the item by value: a pointer passed through a func value
	// would escape, one allocation per item.
	convert func(in *interner, w W, res resourceInfo) (T, error)
}

// decodeWire decodes a protobuf export request of sig's signal. Items the
// store cannot take are rejected one by one (partial success); a body that
// is not the message at all is an error.
func decodeWire[W, T any](body []byte, sig *wireSignal[W, T]) ([]T, Rejected, error) {
	out := make([]T, 0, 64)
	in := newInterner()
	var (
		rej     rejections
		scratch []wireKV
		scopes  [][]byte
	)
	err := forEachResource(body, func(ri int, rb []byte) error {
		resBufs, sc, err := splitResourceMessage(rb, scopes[:0])
		if err != nil {
			return err
		}
		scopes = sc
		res, _, err := wireResource(in, resBufs)
		if err != nil {
			return err
		}
		for si, scope := range scopes {
			err := forEachItem(scope, func(i int, b []byte) error {
				w, attrs, err := sig.parse(b, scratch[:0])
				if err != nil {
					return err
				}
				scratch = attrs
				item, err := sig.convert(in, w, res)
				if errors.Is(err, errMalformedWire) {
					return err
				}
				if err != nil {
					rej.add(func() string {
						return fmt.Sprintf("%s[%d].%s[%d].%s[%d]", sig.resourceField, ri, sig.scopeField, si, sig.itemField, i)
					}, err)
					return nil
				}
				out = append(out, item)
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, Rejected{}, malformedProto(sig.message, unwrapMalformed(err))
	}
	return out, rej.result(sig.items), nil
}

var tracesWire = wireSignal[wireSpan, store.Span]{
	message: "ExportTraceServiceRequest", resourceField: "resourceSpans", scopeField: "scopeSpans", itemField: "spans",
	items: "spans",
	parse: func(b []byte, scratch []wireKV) (wireSpan, []wireKV, error) {
		ws, err := parseWireSpan(b, scratch)
		return ws, ws.attrs, err
	},
	convert: func(in *interner, ws wireSpan, res resourceInfo) (store.Span, error) {
		return mapWireSpan(in, &ws, res)
	},
}

var logsWire = wireSignal[wireLog, store.LogRecord]{
	message: "ExportLogsServiceRequest", resourceField: "resourceLogs", scopeField: "scopeLogs", itemField: "logRecords",
	items: "log records",
	parse: func(b []byte, scratch []wireKV) (wireLog, []wireKV, error) {
		wl, err := parseWireLog(b, scratch)
		return wl, wl.attrs, err
	},
	convert: func(in *interner, wl wireLog, res resourceInfo) (store.LogRecord, error) {
		return mapWireLog(in, &wl, res)
	},
}

// decodeTracesWire decodes a protobuf ExportTraceServiceRequest.
func decodeTracesWire(body []byte) ([]store.Span, Rejected, error) {
	return decodeWire(body, &tracesWire)
}

// decodeLogsWire decodes a protobuf ExportLogsServiceRequest.
func decodeLogsWire(body []byte) ([]store.LogRecord, Rejected, error) {
	return decodeWire(body, &logsWire)
}
