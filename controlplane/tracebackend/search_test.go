package tracebackend

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pilothouse/pilothouse/controlplane/store"
)

// searchBackend serves body (status 200) at any path and records the
// requests; it is closed when the test ends.
func searchBackend(t *testing.T, kind Kind, body string) (*Reader, *[]*http.Request) {
	t.Helper()
	var got []*http.Request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r)
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	r, err := NewReader(ReaderConfig{Kind: kind, URL: srv.URL, TenantID: "t1", Now: func() time.Time { return at(500_000) }})
	if err != nil {
		t.Fatal(err)
	}
	return r, &got
}

func TestSearchQuery(t *testing.T) {
	since, until := at(-60_000), at(250)
	tests := []struct {
		name     string
		kind     Kind
		filter   store.TraceFilter
		wantPath string
		want     url.Values // nil: the backend is not asked
	}{
		{name: "jaeger service only", kind: Jaeger, filter: store.TraceFilter{Service: "orders"},
			wantPath: "/api/traces", want: url.Values{"service": {"orders"}, "limit": {"50"}}},
		{name: "jaeger every field", kind: Jaeger,
			filter: store.TraceFilter{Service: "orders", Route: "/orders/:id", Status: "error", MinDuration: 250 * time.Millisecond,
				RequestID: "req-42", Since: since, Until: until, Limit: 20},
			wantPath: "/api/traces", want: url.Values{"service": {"orders"}, "limit": {"20"},
				"tags":        {`{"error":"true","http.route":"/orders/:id","request_id":"req-42"}`},
				"minDuration": {"250ms"}, "start": {"1763999940000000"}, "end": {"1764000000250000"}}},
		{name: "jaeger exact HTTP status", kind: Jaeger, filter: store.TraceFilter{Service: "orders", Status: "503", MinDuration: 1500 * time.Millisecond},
			wantPath: "/api/traces", want: url.Values{"service": {"orders"}, "limit": {"50"},
				"tags": {`{"http.response.status_code":"503"}`}, "minDuration": {"1.5s"}}},
		{name: "jaeger attributes", kind: Jaeger, filter: store.TraceFilter{Service: "orders",
			Attributes: []store.AttributeMatch{{Key: "order_id", Value: "42"}, {Key: "customer", Value: "c 7"}}},
			wantPath: "/api/traces", want: url.Values{"service": {"orders"}, "limit": {"50"},
				"tags": {`{"customer":"c 7","order_id":"42"}`}}},
		{name: "jaeger limit over the maximum", kind: Jaeger, filter: store.TraceFilter{Service: "orders", Limit: 5000},
			wantPath: "/api/traces", want: url.Values{"service": {"orders"}, "limit": {"1000"}}},
		{name: "jaeger without a service", kind: Jaeger, filter: store.TraceFilter{Route: "/orders/:id"}},
		{name: "jaeger status class", kind: Jaeger, filter: store.TraceFilter{Service: "orders", Status: "5xx"}},
		{name: "jaeger status ok", kind: Jaeger, filter: store.TraceFilter{Service: "orders", Status: "ok"}},
		{name: "tempo no filter", kind: Tempo, filter: store.TraceFilter{},
			wantPath: "/api/search", want: url.Values{"limit": {"50"}}},
		{name: "tempo every field", kind: Tempo,
			filter: store.TraceFilter{Service: "orders", Route: "/orders/:id", Status: "ERROR", MinDuration: 250 * time.Millisecond,
				RequestID: "req 42", Since: since, Until: until, Limit: 20},
			wantPath: "/api/search", want: url.Values{"limit": {"20"},
				"tags":        {`service.name=orders http.route=/orders/:id request_id="req 42" status=error`},
				"minDuration": {"250ms"}, "start": {"1763999940"}, "end": {"1764000001"}}},
		{name: "tempo since only ends now", kind: Tempo, filter: store.TraceFilter{Since: since},
			wantPath: "/api/search", want: url.Values{"limit": {"50"}, "start": {"1763999940"}, "end": {"1764000500"}}},
		{name: "tempo until only starts a week earlier", kind: Tempo, filter: store.TraceFilter{Until: at(0)},
			wantPath: "/api/search", want: url.Values{"limit": {"50"}, "start": {"1763395200"}, "end": {"1764000000"}}},
		{name: "tempo quoted value", kind: Tempo, filter: store.TraceFilter{Service: `a"b=c`},
			wantPath: "/api/search", want: url.Values{"limit": {"50"}, "tags": {`service.name="a\"b=c"`}}},
		{name: "tempo attributes", kind: Tempo, filter: store.TraceFilter{
			Attributes: []store.AttributeMatch{{Key: "order_id", Value: "42"}, {Key: "customer", Value: "c 7"}}},
			wantPath: "/api/search", want: url.Values{"limit": {"50"}, "tags": {`order_id=42 customer="c 7"`}}},
		{name: "tempo exact HTTP status", kind: Tempo, filter: store.TraceFilter{Status: "503"}},
		{name: "tempo status class", kind: Tempo, filter: store.TraceFilter{Status: "5xx"}},
		{name: "tempo status ok", kind: Tempo, filter: store.TraceFilter{Status: "ok"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := `{"data":[]}`
			if tt.kind == Tempo {
				body = `{"traces":[]}`
			}
			r, reqs := searchBackend(t, tt.kind, body)
			sums, err := r.Search(context.Background(), tt.filter)
			if err != nil || len(sums) != 0 {
				t.Fatalf("Search: got %v, %v, want no summaries and no error", sums, err)
			}
			if tt.want == nil {
				if len(*reqs) != 0 {
					t.Errorf("requests: got %v, want none", (*reqs)[0].URL)
				}
				return
			}
			if len(*reqs) != 1 {
				t.Fatalf("requests: got %d, want 1", len(*reqs))
			}
			req := (*reqs)[0]
			if req.URL.Path != tt.wantPath {
				t.Errorf("path: got %s, want %s", req.URL.Path, tt.wantPath)
			}
			if got := req.URL.Query(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("query:\ngot  %v\nwant %v", got, tt.want)
			}
			if got := req.Header.Get("X-Scope-OrgID"); got != "t1" {
				t.Errorf("X-Scope-OrgID: got %q, want t1", got)
			}
		})
	}
}

func TestSearchMapping(t *testing.T) {
	gateway := store.TraceSummary{TraceID: testTrace, RootService: "gateway", RootName: "GET /api/orders/:id", Route: "/api/orders/:id",
		HTTPStatus: 502, RequestID: "req-42", Start: at(0), Duration: 16 * time.Millisecond, SpanCount: 3, ErrorCount: 1,
		Services: []string{"gateway", "orders"}}
	orders := store.TraceSummary{TraceID: "0af7651916cd43dd8448eb211c80319c", RootService: "orders", RootName: "GET /orders/:id",
		Route: "/orders/:id", HTTPStatus: 200, RequestID: "req-43", Start: at(100), Duration: 5 * time.Millisecond, SpanCount: 1,
		Services: []string{"orders"}}
	// No root span in the answer: the earliest span stands in, as in the store.
	noRoot := store.TraceSummary{TraceID: "00000000000000001234567890abcdef", RootService: "orders", RootName: "SELECT orders",
		RequestID: "req-44", Start: at(50), Duration: 3 * time.Millisecond, SpanCount: 1, Services: []string{"orders"}}
	tempoGateway := store.TraceSummary{TraceID: testTrace, RootService: "gateway", RootName: "GET /api/orders/:id",
		Start: at(0), Duration: 16 * time.Millisecond, SpanCount: 3, ErrorCount: 1, Services: []string{"gateway", "orders"}}
	tempoOrders := store.TraceSummary{TraceID: "0af7651916cd43dd8448eb211c80319c", RootService: "orders", RootName: "GET /orders/:id",
		Start: at(100), Duration: 5 * time.Millisecond}
	tests := []struct {
		name   string
		kind   Kind
		file   string
		filter store.TraceFilter
		want   []store.TraceSummary
	}{
		{name: "jaeger newest first", kind: Jaeger, file: "jaeger_search.json", filter: store.TraceFilter{Service: "orders"},
			want: []store.TraceSummary{orders, noRoot, gateway}},
		{name: "jaeger limit", kind: Jaeger, file: "jaeger_search.json", filter: store.TraceFilter{Service: "orders", Limit: 2},
			want: []store.TraceSummary{orders, noRoot}},
		// Jaeger matched a span of orders with that route; the store's
		// meaning is the root span's route.
		{name: "jaeger route of the root only", kind: Jaeger, file: "jaeger_search.json",
			filter: store.TraceFilter{Service: "orders", Route: "/orders/:id"}, want: []store.TraceSummary{orders}},
		{name: "jaeger error", kind: Jaeger, file: "jaeger_search.json",
			filter: store.TraceFilter{Service: "orders", Status: "error"}, want: []store.TraceSummary{gateway}},
		{name: "jaeger HTTP status of the root", kind: Jaeger, file: "jaeger_search.json",
			filter: store.TraceFilter{Service: "orders", Status: "200"}, want: []store.TraceSummary{orders}},
		{name: "jaeger request ID", kind: Jaeger, file: "jaeger_search.json",
			filter: store.TraceFilter{Service: "orders", RequestID: "req-44"}, want: []store.TraceSummary{noRoot}},
		{name: "jaeger window and min duration", kind: Jaeger, file: "jaeger_search.json",
			filter: store.TraceFilter{Service: "orders", Since: at(0), Until: at(100), MinDuration: 3 * time.Millisecond},
			want:   []store.TraceSummary{noRoot, gateway}},
		{name: "jaeger service in no span", kind: Jaeger, file: "jaeger_search.json",
			filter: store.TraceFilter{Service: "payments"}, want: []store.TraceSummary{}},
		{name: "tempo newest first", kind: Tempo, file: "tempo_search.json",
			want: []store.TraceSummary{tempoOrders, tempoGateway}},
		{name: "tempo route by root name", kind: Tempo, file: "tempo_search.json", filter: store.TraceFilter{Route: "/orders/:id"},
			want: []store.TraceSummary{tempoOrders}},
		{name: "tempo window to the nanosecond", kind: Tempo, file: "tempo_search.json", filter: store.TraceFilter{Until: at(100)},
			want: []store.TraceSummary{tempoGateway}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, _ := searchBackend(t, tt.kind, string(readTestdata(t, tt.file)))
			got, err := r.Search(context.Background(), tt.filter)
			if err != nil {
				t.Fatalf("Search: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("summaries:\ngot  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestSearchErrors(t *testing.T) {
	tests := []struct {
		name   string
		kind   Kind
		status int
		body   string
	}{
		{name: "jaeger server error", kind: Jaeger, status: 500, body: "boom"},
		{name: "jaeger garbage", kind: Jaeger, status: 200, body: "<html>"},
		{name: "jaeger error list", kind: Jaeger, status: 200, body: `{"data":null,"errors":[{"code":400,"msg":"bad tags"}]}`},
		{name: "tempo bad request", kind: Tempo, status: 400, body: "invalid tags"},
		{name: "tempo garbage", kind: Tempo, status: 200, body: `{"traces":{}}`},
		{name: "tempo bad trace ID", kind: Tempo, status: 200, body: `{"traces":[{"traceID":"xyz","startTimeUnixNano":"1"}]}`},
		{name: "tempo long trace ID", kind: Tempo, status: 200, body: `{"traces":[{"traceID":"` + testTrace + `00","startTimeUnixNano":"1"}]}`},
		{name: "tempo bad start", kind: Tempo, status: 200, body: `{"traces":[{"traceID":"` + testTrace + `","startTimeUnixNano":"soon"}]}`},
		{name: "tempo negative duration", kind: Tempo, status: 200, body: `{"traces":[{"traceID":"` + testTrace + `","startTimeUnixNano":1,"durationMs":-1}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := readerAnswering(t, tt.kind, tt.status, tt.body)
			sums, err := r.Search(context.Background(), store.TraceFilter{Service: "orders"})
			if !errors.Is(err, ErrRead) || sums != nil {
				t.Errorf("got %v, %v, want nil and %v", sums, err, ErrRead)
			}
		})
	}
}

// TestSearchAnswerCap: an answer over MaxAnswerBytes is an error, not a
// truncated read.
func TestSearchAnswerCap(t *testing.T) {
	for _, kind := range []Kind{Jaeger, Tempo} {
		t.Run(string(kind), func(t *testing.T) {
			body := `{"data":[],"traces":[],"pad":"` + strings.Repeat("x", 200) + `"}`
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(body)) }))
			defer srv.Close()
			for _, tt := range []struct {
				max     int64
				wantErr bool
			}{{max: int64(len(body)), wantErr: false}, {max: int64(len(body)) - 1, wantErr: true}} {
				r, err := NewReader(ReaderConfig{Kind: kind, URL: srv.URL, MaxAnswerBytes: tt.max})
				if err != nil {
					t.Fatal(err)
				}
				_, err = r.Search(context.Background(), store.TraceFilter{Service: "orders"})
				if gotErr := errors.Is(err, ErrRead); gotErr != tt.wantErr {
					t.Errorf("cap %d for %d bytes: got %v, want error %v", tt.max, len(body), err, tt.wantErr)
				}
			}
		})
	}
}

// TestSearchContextEnds: a caller that gives up gets its context's error.
func TestSearchContextEnds(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // answers only when the caller gives up
	}))
	defer srv.Close()
	for _, kind := range []Kind{Jaeger, Tempo} {
		t.Run(string(kind), func(t *testing.T) {
			r, err := NewReader(ReaderConfig{Kind: kind, URL: srv.URL})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			if _, err := r.Search(ctx, store.TraceFilter{Service: "orders"}); !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("got %v, want %v", err, context.DeadlineExceeded)
			}
		})
	}
}
