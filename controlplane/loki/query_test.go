package loki

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/pilothouse/pilothouse/controlplane/store"
)

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodeQueryRange(t *testing.T) {
	trace := "4bf92f3577b34da6a3ce929d0e0e4736"
	tests := []struct {
		name    string
		file    string
		want    []store.LogRecord
		wantErr error
	}{
		{
			name: "labels and metadata merged into streams",
			file: "query_range_merged.json",
			want: []store.LogRecord{
				{Time: time.Unix(0, 1764000002000000000).UTC(), Service: "orders", Instance: "orders-1", Level: "INFO", Body: "order created", TraceID: trace, SpanID: "00f067aa0ba902b7", RequestID: "req-42"},
				{Time: time.Unix(0, 1764000001000000000).UTC(), Service: "payments", Level: "ERROR", Body: "card declined", TraceID: trace, SpanID: "b7ad6b7169203331", RequestID: "req-42", Attributes: map[string]any{"detected_level": "error"}},
				{Time: time.Unix(0, 1764000000500000000).UTC(), Service: "orders", Instance: "orders-1", Level: "INFO", Body: "loading cart", TraceID: trace, SpanID: "00f067aa0ba902b7", RequestID: "req-42"},
			},
		},
		{
			name: "categorized labels",
			file: "query_range_categorized.json",
			want: []store.LogRecord{
				{Time: time.Unix(0, 1764000004000000000).UTC(), Service: "gateway", Level: "WARN", Body: "retrying", RequestID: "req-7", Attributes: map[string]any{"attempt": "2"}},
				{Time: time.Unix(0, 1764000003000000123).UTC(), Service: "gateway", Instance: "gw-2", Level: "WARN", Body: "slow upstream", TraceID: "0af7651916cd43dd8448eb211c80319c", SpanID: "b9c7c989f97918e1", RequestID: "req-7"},
			},
		},
		{name: "matrix is not logs", file: "query_range_matrix.json", wantErr: ErrQuery},
		{name: "error status", file: "query_range_error.json", wantErr: ErrQuery},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeQueryRange(readTestdata(t, tt.file))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err: got %v, want %v", err, tt.wantErr)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("records:\ngot  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestDecodeQueryRangeMalformed(t *testing.T) {
	tests := []struct {
		name string
		body string
	}{
		{name: "not json", body: "<html>"},
		{name: "short value", body: `{"status":"success","data":{"resultType":"streams","result":[{"stream":{},"values":[["1"]]}]}}`},
		{name: "bad time", body: `{"status":"success","data":{"resultType":"streams","result":[{"stream":{},"values":[["x","l"]]}]}}`},
		{name: "bad metadata", body: `{"status":"success","data":{"resultType":"streams","result":[{"stream":{},"values":[["1","l",[]]]}]}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := DecodeQueryRange([]byte(tt.body)); !errors.Is(err, ErrQuery) {
				t.Errorf("got %v, want ErrQuery", err)
			}
		})
	}
}

func TestLogQL(t *testing.T) {
	tests := []struct {
		name string
		f    store.LogFilter
		want string
	}{
		{name: "request id", f: store.LogFilter{RequestID: "req-1"}, want: `{service=~".+"} | request_id="req-1"`},
		{name: "quotes escaped", f: store.LogFilter{RequestID: `a"b\c`}, want: `{service=~".+"} | request_id="a\"b\\c"`},
		{name: "service, level, text, trace", f: store.LogFilter{Service: "orders", Level: "WARN", Query: "timeout", TraceID: "abc"},
			want: `{service="orders", level=~"warn|error"} |= "timeout" | trace_id="abc"`},
		{name: "debug is no level filter", f: store.LogFilter{Level: "DEBUG"}, want: `{service=~".+"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := LogQL(tt.f); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestLogsByRequestNarrowsTheWindow(t *testing.T) {
	now := time.Date(2026, 11, 24, 17, 0, 0, 0, time.UTC)
	traceStart := time.Date(2026, 11, 24, 16, 0, 0, 0, time.UTC)
	tests := []struct {
		name      string
		start     time.Time
		wantStart time.Time
		wantEnd   time.Time
	}{
		{name: "around the trace start", start: traceStart, wantStart: traceStart.Add(-time.Minute), wantEnd: traceStart.Add(15 * time.Minute)},
		{name: "no trace: the lookback", wantStart: now.Add(-time.Hour), wantEnd: now},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got http.Header
			var q map[string][]string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != QueryRangePath {
					http.NotFound(w, r)
					return
				}
				got, q = r.Header.Clone(), r.URL.Query()
				w.Header().Set("Content-Type", "application/json")
				w.Write(readTestdata(t, "query_range_merged.json"))
			}))
			defer srv.Close()
			c, err := NewClient(ClientConfig{URL: srv.URL + "/", TenantID: "team-a", Now: func() time.Time { return now }})
			if err != nil {
				t.Fatal(err)
			}
			recs, err := c.LogsByRequest(context.Background(), "req-42", tt.start, 2)
			if err != nil {
				t.Fatalf("LogsByRequest: %v", err)
			}
			if len(recs) != 2 || recs[0].Body != "order created" {
				t.Errorf("records: got %+v, want the 2 newest", recs)
			}
			checks := []struct{ key, want string }{
				{"query", `{service=~".+"} | request_id="req-42"`},
				{"start", strconv.FormatInt(tt.wantStart.UnixNano(), 10)},
				{"end", strconv.FormatInt(tt.wantEnd.UnixNano(), 10)},
				{"limit", "2"},
				{"direction", "backward"},
			}
			for _, c := range checks {
				if v := q[c.key]; len(v) != 1 || v[0] != c.want {
					t.Errorf("%s: got %v, want %s", c.key, v, c.want)
				}
			}
			if v := got.Get("X-Scope-OrgID"); v != "team-a" {
				t.Errorf("X-Scope-OrgID: got %q, want team-a", v)
			}
		})
	}
}

func TestLogsErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "parse error", http.StatusBadRequest)
	}))
	defer srv.Close()
	c, err := NewClient(ClientConfig{URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Logs(context.Background(), store.LogFilter{RequestID: "r"}); !errors.Is(err, ErrQuery) {
		t.Errorf("400: got %v, want ErrQuery", err)
	}
	if _, err := c.Logs(context.Background(), store.LogFilter{BeforeSeq: 3}); !errors.Is(err, ErrUnsupportedFilter) {
		t.Errorf("BeforeSeq: got %v, want ErrUnsupportedFilter", err)
	}
}
