package ingest

import (
	"reflect"
	"testing"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protowire"
)

// mergeSeeds are requests whose meaning depends on protobuf merge rules:
// a message field sent twice merges, a scalar sent twice keeps the last.
func mergeSeeds(t testing.TB) [][]byte {
	t.Helper()
	span := marshal(t, validSpan())
	// Append a second status and a second name to the span.
	span = protowire.AppendTag(span, 15, protowire.BytesType)
	span = protowire.AppendBytes(span, marshal(t, &tracepb.Status{Code: tracepb.Status_STATUS_CODE_ERROR}))
	span = protowire.AppendTag(span, 15, protowire.BytesType)
	span = protowire.AppendBytes(span, marshal(t, &tracepb.Status{Message: "second"}))
	span = protowire.AppendTag(span, 5, protowire.BytesType)
	span = protowire.AppendString(span, "renamed")
	// An attribute whose value is an array sent in two pieces.
	kv := marshal(t, &commonpb.KeyValue{Key: "arr", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_ArrayValue{ArrayValue: &commonpb.ArrayValue{
		Values: []*commonpb.AnyValue{{Value: &commonpb.AnyValue_IntValue{IntValue: 1}}},
	}}}})
	kv = protowire.AppendTag(kv, 2, protowire.BytesType)
	kv = protowire.AppendBytes(kv, marshal(t, &commonpb.AnyValue{Value: &commonpb.AnyValue_ArrayValue{ArrayValue: &commonpb.ArrayValue{
		Values: []*commonpb.AnyValue{{Value: &commonpb.AnyValue_StringValue{StringValue: "two"}}},
	}}}))
	span = protowire.AppendTag(span, 9, protowire.BytesType)
	span = protowire.AppendBytes(span, kv)
	// A field with the wrong wire type, skipped as unknown.
	span = protowire.AppendTag(span, 1, protowire.VarintType)
	span = protowire.AppendVarint(span, 7)

	scope := protowire.AppendTag(nil, 2, protowire.BytesType)
	scope = protowire.AppendBytes(scope, span)
	// Resource after the scope spans, and sent twice.
	rs := protowire.AppendTag(nil, 2, protowire.BytesType)
	rs = protowire.AppendBytes(rs, scope)
	for _, attr := range []*commonpb.KeyValue{strAttr("service.name", "late"), strAttr("service.version", "9")} {
		res := protowire.AppendTag(nil, 1, protowire.BytesType)
		res = protowire.AppendBytes(res, marshal(t, attr))
		rs = protowire.AppendTag(rs, 1, protowire.BytesType)
		rs = protowire.AppendBytes(rs, res)
	}
	req := protowire.AppendTag(nil, 1, protowire.BytesType)
	req = protowire.AppendBytes(req, rs)
	return [][]byte{req}
}

func TestWireDecoderMergeRules(t *testing.T) {
	body := mergeSeeds(t)[0]
	spans, _, err := DecodeTraces(body, ContentTypeProtobuf)
	if err != nil {
		t.Fatalf("DecodeTraces: %v", err)
	}
	if len(spans) != 1 {
		t.Fatalf("got %d spans, want 1", len(spans))
	}
	sp := spans[0]
	checks := []struct {
		name      string
		got, want any
	}{
		{"last name wins", sp.Name, "renamed"},
		{"status merged: code", sp.StatusCode, "error"},
		{"status merged: message", sp.StatusMessage, "second"},
		{"resource after spans", sp.Service, "late"},
		{"second resource merged", sp.Attributes["service.version"], "9"},
		{"array merged", sp.Attributes["arr"], []any{int64(1), "two"}},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			if !reflect.DeepEqual(c.got, c.want) {
				t.Errorf("got %#v, want %#v", c.got, c.want)
			}
		})
	}
	gen, _, err := decodeTracesGenerated(body)
	if err != nil || !reflect.DeepEqual(gen, spans) {
		t.Errorf("generated path: got %+v (%v), want %+v", gen, err, spans)
	}
}

// FuzzTracesProtoPathsAgree checks that the wire decoder returns what
// proto.Unmarshal plus mapping returns, and fails only where it fails.
func FuzzTracesProtoPathsAgree(f *testing.F) {
	for _, s := range traceProtoSeeds(f) {
		f.Add(s)
	}
	for _, s := range mergeSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		want, wantRej, wantErr := decodeTracesGenerated(body)
		got, gotRej, gotErr := decodeTracesWire(body)
		if wantErr != nil {
			return // the wire decoder may be more lenient on unused fields
		}
		if gotErr != nil {
			t.Fatalf("wire decoder failed where the generated one did not: %v", gotErr)
		}
		if !reflect.DeepEqual(got, want) || gotRej != wantRej {
			t.Fatalf("paths differ:\nwire      %+v %+v\ngenerated %+v %+v", got, gotRej, want, wantRej)
		}
	})
}

// FuzzLogsProtoPathsAgree is FuzzTracesProtoPathsAgree for logs.
func FuzzLogsProtoPathsAgree(f *testing.F) {
	for _, s := range logProtoSeeds(f) {
		f.Add(s)
	}
	f.Add(marshal(f, logsRequest(&logspb.LogRecord{Body: &commonpb.AnyValue{}, SeverityNumber: 30, EventName: "e"})))
	f.Fuzz(func(t *testing.T, body []byte) {
		want, wantRej, wantErr := decodeLogsGenerated(body)
		got, gotRej, gotErr := decodeLogsWire(body)
		if wantErr != nil {
			return
		}
		if gotErr != nil {
			t.Fatalf("wire decoder failed where the generated one did not: %v", gotErr)
		}
		if !reflect.DeepEqual(got, want) || gotRej != wantRej {
			t.Fatalf("paths differ:\nwire      %+v %+v\ngenerated %+v %+v", got, gotRej, want, wantRej)
		}
	})
}
