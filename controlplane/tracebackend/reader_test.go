package tracebackend

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/pilothouse/pilothouse/controlplane/store"
)

const testTrace = "4bf92f3577b34da6a3ce929d0e0e4736"

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func at(ms int) time.Time {
	return time.Unix(0, 1764000000000000000).Add(time.Duration(ms) * time.Millisecond).UTC()
}

// brief is the part of a span the readers must get right.
type brief struct {
	SpanID, Parent, Service, Instance, Name, Kind, Status, StatusMsg, RequestID, Route string
	HTTPStatus                                                                         int
	Start                                                                              time.Time
	Duration                                                                           time.Duration
	Events                                                                             []string
}

func briefs(spans []store.Span) []brief {
	out := make([]brief, 0, len(spans))
	for _, s := range spans {
		b := brief{
			SpanID: s.SpanID, Parent: s.ParentSpanID, Service: s.Service, Instance: s.Instance, Name: s.Name, Kind: s.Kind,
			Status: s.StatusCode, StatusMsg: s.StatusMessage, RequestID: s.RequestID, Route: s.Route, HTTPStatus: s.HTTPStatus,
			Start: s.Start.UTC(), Duration: s.Duration,
		}
		for _, e := range s.Events {
			b.Events = append(b.Events, e.Name+"@"+e.Time.UTC().Format(time.StampMilli))
		}
		out = append(out, b)
	}
	return out
}

func TestReaderTrace(t *testing.T) {
	root := brief{SpanID: "00f067aa0ba902b7", Service: "gateway", Instance: "gw-1", Name: "GET /api/orders/:id", Kind: "server",
		Status: "error", StatusMsg: "upstream failed", RequestID: "req-42", Route: "/api/orders/:id", HTTPStatus: 502,
		Start: at(0), Duration: 12 * time.Millisecond, Events: []string{"pilothouse.policy@" + at(11).Format(time.StampMilli)}}
	tests := []struct {
		name string
		kind Kind
		file string
		want []brief
	}{
		{name: "jaeger", kind: Jaeger, file: "jaeger_trace.json", want: []brief{
			root,
			{SpanID: "b7ad6b7169203331", Parent: "00f067aa0ba902b7", Service: "gateway", Instance: "gw-1", Name: "GET orders", Kind: "client", Status: "unset", Start: at(1), Duration: 9 * time.Millisecond},
			{SpanID: "0000a1b2c3d4e5f6", Parent: "b7ad6b7169203331", Service: "orders", Instance: "orders-1", Name: "GET /orders/:id", Kind: "server", Status: "unset", Route: "/orders/:id", HTTPStatus: 200, Start: at(2), Duration: 7 * time.Millisecond},
		}},
		{name: "tempo base64 batches", kind: Tempo, file: "tempo_trace.json", want: []brief{
			root,
			{SpanID: "a1b2c3d4e5f60718", Parent: "00f067aa0ba902b7", Service: "orders", Name: "GET /orders/:id", Kind: "server", Status: "unset", Route: "/orders/:id", Start: at(2), Duration: 7 * time.Millisecond},
		}},
		{name: "tempo v2 hex", kind: Tempo, file: "tempo_v2_hex.json", want: []brief{
			{SpanID: "a1b2c3d4e5f60718", Parent: "00f067aa0ba902b7", Service: "orders", Name: "GET /orders/:id", Kind: "server", Status: "unset", Route: "/orders/:id", Start: at(2), Duration: 7 * time.Millisecond},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var gotPath, gotTenant string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				gotPath, gotTenant = r.URL.Path, r.Header.Get("X-Scope-OrgID")
				w.Header().Set("Content-Type", "application/json")
				w.Write(readTestdata(t, tt.file))
			}))
			defer srv.Close()
			r, err := NewReader(ReaderConfig{Kind: tt.kind, URL: srv.URL, TenantID: "t1"})
			if err != nil {
				t.Fatal(err)
			}
			spans, err := r.Trace(context.Background(), "4BF92F3577B34DA6A3CE929D0E0E4736")
			if err != nil {
				t.Fatalf("Trace: %v", err)
			}
			if want := "/api/traces/" + testTrace; gotPath != want {
				t.Errorf("path: got %s, want %s", gotPath, want)
			}
			if gotTenant != "t1" {
				t.Errorf("X-Scope-OrgID: got %q, want t1", gotTenant)
			}
			for _, s := range spans {
				if s.TraceID != testTrace {
					t.Errorf("trace ID: got %s, want %s", s.TraceID, testTrace)
				}
			}
			if got := briefs(spans); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("spans:\ngot  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestReaderJaegerKeepsTags(t *testing.T) {
	spans, err := DecodeJaeger(readTestdata(t, "jaeger_trace.json"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		span int
		key  string
		want any
	}{
		{name: "service version from the process", span: 0, key: "service.version", want: "1.4.0"},
		{name: "bool tag", span: 0, key: "error", want: true},
		{name: "float tag", span: 1, key: "retry", want: 0.5},
		{name: "event field", span: -1, key: "rule", want: "orders-breaker"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			attrs := spans[0].Events[0].Attributes
			if tt.span >= 0 {
				attrs = spans[tt.span].Attributes
			}
			if got := attrs[tt.key]; got != tt.want {
				t.Errorf("%s: got %#v, want %#v", tt.key, got, tt.want)
			}
		})
	}
	if _, ok := spans[0].Attributes[tagSpanKind]; ok {
		t.Errorf("span.kind: got it in attributes, want it mapped to Kind only")
	}
}

func TestReaderErrors(t *testing.T) {
	tests := []struct {
		name    string
		kind    Kind
		id      string
		status  int
		body    string
		wantErr error
	}{
		{name: "bad id", kind: Jaeger, id: "xyz", wantErr: ErrBadTraceID},
		{name: "jaeger 404", kind: Jaeger, id: testTrace, status: 404, body: `{"data":null,"errors":[{"code":404,"msg":"trace not found"}]}`, wantErr: store.ErrNotFound},
		{name: "jaeger 200 with not found error", kind: Jaeger, id: testTrace, status: 200, body: `{"data":[],"errors":[{"code":404,"msg":"trace not found"}]}`, wantErr: store.ErrNotFound},
		{name: "tempo 404", kind: Tempo, id: testTrace, status: 404, body: "trace not found", wantErr: store.ErrNotFound},
		{name: "tempo empty", kind: Tempo, id: testTrace, status: 200, body: `{"batches":[]}`, wantErr: store.ErrNotFound},
		{name: "server error", kind: Tempo, id: testTrace, status: 500, body: "boom", wantErr: ErrRead},
		{name: "garbage", kind: Jaeger, id: testTrace, status: 200, body: "<html>", wantErr: ErrRead},
		{name: "tempo bad span", kind: Tempo, id: testTrace, status: 200, body: `{"batches":[{"scopeSpans":[{"spans":[{"startTimeUnixNano":{}}]}]}]}`, wantErr: ErrRead},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := readerAnswering(t, tt.kind, tt.status, tt.body)
			if _, err := r.Trace(context.Background(), tt.id); !errors.Is(err, tt.wantErr) {
				t.Errorf("got %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestNewReaderRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  ReaderConfig
	}{
		{name: "no kind", cfg: ReaderConfig{URL: "http://jaeger:16686"}},
		{name: "no url", cfg: ReaderConfig{Kind: Tempo}},
		{name: "bad url", cfg: ReaderConfig{Kind: Tempo, URL: "tempo:3200"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewReader(tt.cfg); err == nil {
				t.Errorf("got nil error, want one")
			}
		})
	}
}

// readerAnswering is a Reader of kind whose backend answers every
// request with status and body.
func readerAnswering(t *testing.T, kind Kind, status int, body string) *Reader {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(status)
		w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	r, err := NewReader(ReaderConfig{Kind: kind, URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	return r
}
