package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pilothouse/pilothouse/controlplane/auth"
	"github.com/pilothouse/pilothouse/controlplane/loki"
	"github.com/pilothouse/pilothouse/controlplane/store"
	"github.com/pilothouse/pilothouse/controlplane/tracebackend"
)

// TestEngineReads: with Loki and a Jaeger configured, the JSON API reads
// a request's logs from Loki (around its trace's start) and a trace as
// the union of the store's and Jaeger's spans; with Loki failing, the
// store answers.
func TestEngineReads(t *testing.T) {
	const traceID = "5b8efff798038103d269b633813fc60c"
	var mu sync.Mutex
	var lokiQuery map[string][]string
	lokiDown := false
	lokiSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case loki.PushPath:
			w.WriteHeader(http.StatusNoContent)
		case loki.QueryRangePath:
			mu.Lock()
			lokiQuery = r.URL.Query()
			down := lokiDown
			mu.Unlock()
			if down {
				http.Error(w, "ingester unavailable", http.StatusServiceUnavailable)
				return
			}
			w.Write([]byte(`{"status":"success","data":{"resultType":"streams","result":[{"stream":{"service":"payments","level":"info"},
"values":[["1764000000200000000","charged on replica B",{"structuredMetadata":{"request_id":"req-restart-1"}}]]}]}}`))
		default:
			http.NotFound(w, r)
		}
	}))
	defer lokiSrv.Close()
	jaegerSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/traces/"+traceID {
			http.NotFound(w, r)
			return
		}
		// The root span the store also has, and a child only Jaeger has.
		w.Write([]byte(`{"data":[{"traceID":"` + traceID + `","spans":[
{"traceID":"` + traceID + `","spanID":"eee19b7ec3c1b174","operationName":"GET /cart","references":[],"startTime":1764000000000000,"duration":250000,"tags":[],"processID":"p1"},
{"traceID":"` + traceID + `","spanID":"aaa19b7ec3c1b175","operationName":"charge","references":[{"refType":"CHILD_OF","traceID":"` + traceID + `","spanID":"eee19b7ec3c1b174"}],"startTime":1764000000100000,"duration":50000,"tags":[],"processID":"p2"}],
"processes":{"p1":{"serviceName":"checkout"},"p2":{"serviceName":"payments"}}}]}`))
	}))
	defer jaegerSrv.Close()

	url, viewer := startWithEngines(t, lokiSrv.URL, jaegerSrv.URL)
	postFixtures(t, url)

	code, body := get(t, url+"/api/v1/logs?request_id=req-restart-1", viewer)
	var logs struct {
		Logs []struct {
			Body string `json:"body"`
		} `json:"logs"`
	}
	if err := json.Unmarshal([]byte(body), &logs); err != nil || code != 200 || len(logs.Logs) != 1 || logs.Logs[0].Body != "charged on replica B" {
		t.Errorf("logs with Loki: got %d %s, want Loki's line", code, body)
	}
	start := time.Unix(0, 1764000000000000000)
	mu.Lock()
	gotStart, gotEnd, gotQuery := lokiQuery["start"], lokiQuery["end"], lokiQuery["query"]
	mu.Unlock()
	if want := strconv.FormatInt(start.Add(-loki.DefaultWindowBefore).UnixNano(), 10); len(gotStart) != 1 || gotStart[0] != want {
		t.Errorf("Loki start: got %v, want %s (the trace start minus the window)", gotStart, want)
	}
	if want := strconv.FormatInt(start.Add(loki.DefaultWindowAfter).UnixNano(), 10); len(gotEnd) != 1 || gotEnd[0] != want {
		t.Errorf("Loki end: got %v, want %s", gotEnd, want)
	}
	if len(gotQuery) != 1 || !strings.Contains(gotQuery[0], `request_id="req-restart-1"`) {
		t.Errorf("Loki query: got %v, want a request_id filter", gotQuery)
	}

	mu.Lock()
	lokiDown = true
	mu.Unlock()
	code, body = get(t, url+"/api/v1/logs?request_id=req-restart-1", viewer)
	if err := json.Unmarshal([]byte(body), &logs); err != nil || code != 200 || len(logs.Logs) != 1 || logs.Logs[0].Body != "cart loaded" {
		t.Errorf("logs with Loki down: got %d %s, want the store's line", code, body)
	}

	code, body = get(t, url+"/api/v1/traces/"+traceID, viewer)
	var trace struct {
		Spans []struct {
			SpanID  string `json:"span_id"`
			Service string `json:"service"`
		} `json:"spans"`
	}
	if err := json.Unmarshal([]byte(body), &trace); err != nil || code != 200 {
		t.Fatalf("trace: got %d %s", code, body)
	}
	var got []string
	for _, s := range trace.Spans {
		got = append(got, s.Service+"/"+s.SpanID)
	}
	if want := "checkout/eee19b7ec3c1b174 payments/aaa19b7ec3c1b175"; strings.Join(got, " ") != want {
		t.Errorf("trace spans: got %v, want %s", got, want)
	}
}

// TestDashboardEngineReads: with Loki and a Jaeger configured, the
// dashboard's logs page for a request ID shows Loki's lines (not only
// what this replica stored) and its trace page Jaeger's spans.
func TestDashboardEngineReads(t *testing.T) {
	const traceID = "5b8efff798038103d269b633813fc60c"
	lokiSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != loki.QueryRangePath || !strings.Contains(r.URL.Query().Get("query"), `request_id="req-restart-1"`) {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(`{"status":"success","data":{"resultType":"streams","result":[{"stream":{"service":"payments","level":"info"},
"values":[["1764000000200000000","charged on replica B",{"structuredMetadata":{"request_id":"req-restart-1"}}],
["1764000000150000000","card accepted on replica B",{"structuredMetadata":{"request_id":"req-restart-1"}}]]}]}}`))
	}))
	defer lokiSrv.Close()
	jaegerSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/traces/"+traceID {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(`{"data":[{"traceID":"` + traceID + `","spans":[
{"traceID":"` + traceID + `","spanID":"aaa19b7ec3c1b175","operationName":"charge-card","references":[],"startTime":1764000000100000,"duration":50000,"tags":[],"processID":"p2"}],
"processes":{"p2":{"serviceName":"payments"}}}]}`))
	}))
	defer jaegerSrv.Close()

	url, viewer := startWithEngines(t, lokiSrv.URL, jaegerSrv.URL)
	// This replica stored the trace's root span and one log line.
	postFixtures(t, url)

	tests := []struct {
		name, path string
		want       []string
		notWant    []string
	}{
		{name: "logs page of a request", path: "/logs?request_id=req-restart-1",
			want:    []string{"charged on replica B", "card accepted on replica B"},
			notWant: []string{"sse-connect"}},
		{name: "trace page", path: "/traces/" + traceID, want: []string{"GET /cart", "charge-card"}},
		{name: "logs search Loki fails reads the store", path: "/logs?service=checkout", want: []string{"cart loaded", "sse-connect"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, page := get(t, url+tt.path, viewer)
			if code != 200 {
				t.Fatalf("GET %s: got %d, want 200", tt.path, code)
			}
			for _, w := range tt.want {
				if !strings.Contains(page, w) {
					t.Errorf("GET %s: got no %q, want it on the page", tt.path, w)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(page, w) {
					t.Errorf("GET %s: got %q, want none", tt.path, w)
				}
			}
		})
	}
}

// TestEngineLogSearch: with Loki configured, a log search without a
// request ID (API and dashboard) asks Loki for the filter and lists the
// lines only Loki has (another replica's) with the store's, each once;
// such a page carries no Seq, so the dashboard offers no older page or
// live tail. When Loki adds nothing, or is down, the store's page
// answers with its cursors, and an older page reads the store alone.
func TestEngineLogSearch(t *testing.T) {
	// The store's line (postFixtures) as Loki has it, and a line another
	// replica forwarded.
	const (
		storedLine = `["1764000000100000000","cart loaded",{"structuredMetadata":{"request_id":"req-restart-1","trace_id":"5b8efff798038103d269b633813fc60c","span_id":"eee19b7ec3c1b174"}}]`
		remoteLine = `["1764000000300000000","paid on replica B",{"structuredMetadata":{"request_id":"req-on-replica-b","instance":"cp-b"}}]`
	)
	var mu sync.Mutex
	var queries []map[string][]string
	lines := storedLine + "," + remoteLine
	lokiDown := false
	lokiSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case loki.PushPath:
			w.WriteHeader(http.StatusNoContent)
		case loki.QueryRangePath:
			mu.Lock()
			queries = append(queries, r.URL.Query())
			down, values := lokiDown, lines
			mu.Unlock()
			if down {
				http.Error(w, "ingester unavailable", http.StatusServiceUnavailable)
				return
			}
			w.Write([]byte(`{"status":"success","data":{"resultType":"streams","result":[{"stream":{"service":"checkout","level":"info"},"values":[` + values + `]}]}}`))
		default:
			http.NotFound(w, r)
		}
	}))
	defer lokiSrv.Close()
	url, viewer := startWithEngines(t, lokiSrv.URL, "")
	postFixtures(t, url)

	type line struct {
		Seq  int64  `json:"seq"`
		Body string `json:"body"`
	}
	search := func(t *testing.T, query string) []line {
		t.Helper()
		code, body := get(t, url+"/api/v1/logs?"+query, viewer)
		var out struct {
			Logs []line `json:"logs"`
		}
		if err := json.Unmarshal([]byte(body), &out); err != nil || code != 200 {
			t.Fatalf("GET /api/v1/logs?%s: got %d %s", query, code, body)
		}
		return out.Logs
	}
	lastQuery := func(t *testing.T) (map[string][]string, int) {
		t.Helper()
		mu.Lock()
		defer mu.Unlock()
		if len(queries) == 0 {
			return nil, 0
		}
		return queries[len(queries)-1], len(queries)
	}

	t.Run("API: Loki's lines and the store's, each once", func(t *testing.T) {
		got := search(t, "service=checkout")
		if fmt.Sprint(got) != "[{0 paid on replica B} {0 cart loaded}]" {
			t.Errorf("logs: got %v, want Loki's line, then the stored one once, Seq 0", got)
		}
		q, _ := lastQuery(t)
		if v := q["query"]; len(v) != 1 || v[0] != `{service="checkout"}` {
			t.Errorf("Loki query: got %v, want {service=\"checkout\"}", v)
		}
		if v := q["limit"]; len(v) != 1 || v[0] != "100" {
			t.Errorf("Loki limit: got %v, want 100", v)
		}
	})
	t.Run("API: every filter goes to Loki", func(t *testing.T) {
		got := search(t, "service=checkout&level=info&q=PAID&since=2025-11-24T16:00:00Z&until=2025-11-24T17:00:00Z&limit=1")
		if fmt.Sprint(got) != "[{0 paid on replica B}]" {
			t.Errorf("logs: got %v, want the newest line only", got)
		}
		q, _ := lastQuery(t)
		want := map[string]string{
			"query": `{service="checkout", level=~"info|warn|error"} |~ "[pP][aA][iI][dD]"`,
			"start": strconv.FormatInt(time.Date(2025, 11, 24, 16, 0, 0, 0, time.UTC).UnixNano(), 10),
			"end":   strconv.FormatInt(time.Date(2025, 11, 24, 17, 0, 0, 0, time.UTC).UnixNano(), 10),
			"limit": "1", "direction": "backward",
		}
		for k, w := range want {
			if v := q[k]; len(v) != 1 || v[0] != w {
				t.Errorf("Loki %s: got %v, want %s", k, v, w)
			}
		}
	})
	t.Run("API: a full page with Loki's lines has no cursor", func(t *testing.T) {
		code, body := get(t, url+"/api/v1/logs?service=checkout&limit=2", viewer)
		if code != 200 || strings.Contains(body, "next_before") {
			t.Errorf("GET /api/v1/logs?service=checkout&limit=2: got %d %s, want 200 without next_before (Loki's lines have no Seq)", code, body)
		}
	})
	t.Run("dashboard: Loki's line, no older page or live tail", func(t *testing.T) {
		code, page := get(t, url+"/logs?service=checkout&limit=2", viewer)
		if code != 200 {
			t.Fatalf("GET /logs: got %d, want 200", code)
		}
		for _, w := range []string{"paid on replica B", "cart loaded"} {
			if !strings.Contains(page, w) {
				t.Errorf("logs page: got no %q, want it", w)
			}
		}
		for _, w := range []string{"sse-connect", "before="} {
			if strings.Contains(page, w) {
				t.Errorf("logs page: got %q, want none (no Seq cursor on Loki's lines)", w)
			}
		}
	})

	mu.Lock()
	lines = storedLine // Loki has only what this replica stored
	mu.Unlock()
	var seq int64
	t.Run("Loki adds nothing: the store's page, with its cursors", func(t *testing.T) {
		got := search(t, "service=checkout")
		if len(got) != 1 || got[0].Body != "cart loaded" || got[0].Seq <= 0 {
			t.Fatalf("logs: got %v, want the stored line with its Seq", got)
		}
		seq = got[0].Seq
		code, page := get(t, url+"/logs?service=checkout&limit=1", viewer)
		if code != 200 || !strings.Contains(page, "sse-connect") || !strings.Contains(page, "before="+strconv.FormatInt(seq, 10)) {
			t.Errorf("logs page: got %d, want the live tail and an older page after Seq %d", code, seq)
		}
	})
	t.Run("older page reads the store, not Loki", func(t *testing.T) {
		_, before := lastQuery(t)
		if got := search(t, "service=checkout&before="+strconv.FormatInt(seq+1, 10)); len(got) != 1 || got[0].Seq != seq {
			t.Errorf("older page: got %v, want the stored line", got)
		}
		if code, _ := get(t, url+"/logs?service=checkout&before="+strconv.FormatInt(seq+1, 10), viewer); code != 200 {
			t.Errorf("older dashboard page: got %d, want 200", code)
		}
		if _, after := lastQuery(t); after != before {
			t.Errorf("Loki queries: got %d more, want none for Seq cursors", after-before)
		}
	})

	mu.Lock()
	lines, lokiDown = storedLine+","+remoteLine, true
	mu.Unlock()
	t.Run("Loki down: the store answers", func(t *testing.T) {
		if got := search(t, "service=checkout"); len(got) != 1 || got[0].Body != "cart loaded" || got[0].Seq != seq {
			t.Errorf("logs: got %v, want the stored line with Seq %d", got, seq)
		}
	})
}

// TestMergeLogs: the store's page and Loki's, one record per time,
// service, instance, body and request ID, newest first, at the limit;
// Seq kept only when Loki adds nothing to the page.
func TestMergeLogs(t *testing.T) {
	at := func(ms int64) time.Time { return time.UnixMilli(1764000000000 + ms).UTC() }
	rec := func(ms, seq int64, svc, body string) store.LogRecord {
		return store.LogRecord{Seq: seq, Time: at(ms), Service: svc, Body: body}
	}
	brief := func(recs []store.LogRecord) string {
		var s []string
		for _, r := range recs {
			s = append(s, fmt.Sprintf("%d:%d:%s/%s", r.Time.UnixMilli()-1764000000000, r.Seq, r.Service, r.Body))
		}
		return strings.Join(s, " ")
	}
	withInstance := func(r store.LogRecord, inst string) store.LogRecord { r.Instance = inst; return r }
	withRequest := func(r store.LogRecord, id string) store.LogRecord { r.RequestID = id; return r }
	tests := []struct {
		name          string
		local, remote []store.LogRecord
		limit         int
		want          string
	}{
		{name: "nothing", limit: 10, want: ""},
		{name: "Loki only", remote: []store.LogRecord{rec(2, 0, "a", "y"), rec(1, 0, "a", "x")}, limit: 10, want: "2:0:a/y 1:0:a/x"},
		{name: "same records: the store's page with Seq",
			local: []store.LogRecord{rec(2, 8, "a", "y"), rec(1, 7, "a", "x")}, remote: []store.LogRecord{rec(2, 0, "a", "y"), rec(1, 0, "a", "x")},
			limit: 10, want: "2:8:a/y 1:7:a/x"},
		{name: "interleaved, each once, no Seq",
			local:  []store.LogRecord{rec(3, 9, "a", "z"), rec(1, 7, "a", "x")},
			remote: []store.LogRecord{rec(3, 0, "a", "z"), rec(2, 0, "b", "y"), rec(1, 0, "a", "x")},
			limit:  10, want: "3:0:a/z 2:0:b/y 1:0:a/x"},
		{name: "Loki lags: the store's newest first",
			local:  []store.LogRecord{rec(5, 9, "a", "new")},
			remote: []store.LogRecord{rec(2, 0, "b", "old")},
			limit:  10, want: "5:0:a/new 2:0:b/old"},
		{name: "limit cuts Loki's line off: the store's page",
			local:  []store.LogRecord{rec(5, 9, "a", "new"), rec(4, 8, "a", "mid")},
			remote: []store.LogRecord{rec(2, 0, "b", "old")},
			limit:  2, want: "5:9:a/new 4:8:a/mid"},
		{name: "limit", remote: []store.LogRecord{rec(3, 0, "a", "z"), rec(2, 0, "a", "y"), rec(1, 0, "a", "x")}, limit: 2, want: "3:0:a/z 2:0:a/y"},
		{name: "no service is Loki's unknown",
			local: []store.LogRecord{rec(1, 7, "", "x")}, remote: []store.LogRecord{rec(1, 0, "unknown", "x")}, limit: 10, want: "1:7:/x"},
		{name: "other instance is another record",
			local: []store.LogRecord{rec(1, 7, "a", "x")}, remote: []store.LogRecord{withInstance(rec(1, 0, "a", "x"), "cp-b")}, limit: 10, want: "1:0:a/x 1:0:a/x"},
		{name: "other request is another record",
			local: []store.LogRecord{rec(1, 7, "a", "x")}, remote: []store.LogRecord{withRequest(rec(1, 0, "a", "x"), "r2")}, limit: 10, want: "1:0:a/x 1:0:a/x"},
		{name: "same time, other body",
			local: []store.LogRecord{rec(1, 7, "a", "x")}, remote: []store.LogRecord{rec(1, 0, "a", "x2")}, limit: 10, want: "1:0:a/x 1:0:a/x2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := brief(mergeLogs(tt.local, tt.remote, tt.limit)); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

// TestEngineLogSearchLokiUnavailable: a Loki that is too slow, or a
// filter it cannot express, leaves a log search to the store; a reader
// that went away is not a Loki failure.
func TestEngineLogSearchLokiUnavailable(t *testing.T) {
	var mu sync.Mutex
	asked := 0
	counting := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		asked++
		mu.Unlock()
		w.Write([]byte(`{"status":"success","data":{"resultType":"streams","result":[]}}`))
	}))
	defer counting.Close()
	lokiAt := func(t *testing.T, url string) *loki.Client {
		t.Helper()
		c, err := loki.NewClient(loki.ClientConfig{URL: url})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	t.Run("slow Loki: the store answers, with a warning", func(t *testing.T) {
		r, logs := bareEngineReader(t)
		r.loki, r.searchWait = lokiAt(t, hangingServer(t).URL), 50*time.Millisecond
		got, err := r.Logs(context.Background(), store.LogFilter{Service: "checkout"})
		if err != nil || len(got) != 0 {
			t.Errorf("Logs: got %v, %v; want the store's (none), no error", got, err)
		}
		if !strings.Contains(logs.String(), "loki log search failed") {
			t.Errorf("log: got %q, want Loki's failure", logs.String())
		}
	})
	t.Run("reader gone: its error, nothing logged", func(t *testing.T) {
		r, logs := bareEngineReader(t)
		r.loki = lokiAt(t, hangingServer(t).URL)
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		if _, err := r.Logs(ctx, store.LogFilter{Service: "checkout"}); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Logs: got %v, want the caller's deadline", err)
		}
		if logs.Len() > 0 {
			t.Errorf("log: got %q, want nothing (Loki did not fail)", logs.String())
		}
	})
	t.Run("FATAL: the store answers, Loki not asked", func(t *testing.T) {
		r, logs := bareEngineReader(t)
		r.loki = lokiAt(t, counting.URL)
		if got, err := r.Logs(context.Background(), store.LogFilter{Level: "FATAL"}); err != nil || len(got) != 0 {
			t.Errorf("Logs: got %v, %v; want the store's (none)", got, err)
		}
		mu.Lock()
		defer mu.Unlock()
		if asked != 0 || logs.Len() > 0 {
			t.Errorf("got %d Loki queries, log %q; want none", asked, logs.String())
		}
	})
	t.Run("invalid level: the store's error, Loki not asked", func(t *testing.T) {
		r, _ := bareEngineReader(t)
		r.loki = lokiAt(t, counting.URL)
		if _, err := r.Logs(context.Background(), store.LogFilter{Level: "loud"}); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("Logs: got %v, want store.ErrInvalid", err)
		}
		mu.Lock()
		defer mu.Unlock()
		if asked != 0 {
			t.Errorf("got %d Loki queries, want none", asked)
		}
	})
}

// startWithEngines serves a control plane reading Loki at lokiURL and a
// Jaeger at jaegerURL, stopped when the test ends, and returns its URL
// and a viewer token.
func startWithEngines(t *testing.T, lokiURL, jaegerURL string) (url, viewer string) {
	t.Helper()
	url, srv := listenAndServe(t, Config{
		DataDir: t.TempDir(), AdminPassword: testAdminPassword,
		LokiURL: lokiURL, TraceBackend: tracebackend.Jaeger, TraceBackendURL: jaegerURL,
	})
	t.Cleanup(func() { stop(t, srv) })
	return url, apiToken(t, srv, auth.RoleViewer)
}

// TestEngineTraceSearch: with a Jaeger configured, trace search in the
// JSON API and the dashboard lists the store's traces and the ones only
// Jaeger knows (spans another replica received), each trace once, the
// store's summary winning; without a service Jaeger is not asked; when
// Jaeger fails the store answers alone.
func TestEngineTraceSearch(t *testing.T) {
	const (
		localID  = "5b8efff798038103d269b633813fc60c" // in the store (postFixtures) and in Jaeger
		remoteID = "7a1c2f9e0d3b4a5c8e6f1a2b3c4d5e6f" // only in Jaeger
	)
	var mu sync.Mutex
	var searches []string
	jaegerDown := false
	jaegerSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != tracebackend.JaegerSearchPath {
			http.NotFound(w, r)
			return
		}
		mu.Lock()
		searches = append(searches, r.URL.RawQuery)
		down := jaegerDown
		mu.Unlock()
		if down {
			http.Error(w, "storage unavailable", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte(`{"data":[{"traceID":"` + localID + `","spans":[
{"traceID":"` + localID + `","spanID":"eee19b7ec3c1b174","operationName":"GET /cart as Jaeger has it","references":[],"startTime":1764000000000000,"duration":250000,"tags":[],"processID":"p1"}],
"processes":{"p1":{"serviceName":"checkout"}}},
{"traceID":"` + remoteID + `","spans":[
{"traceID":"` + remoteID + `","spanID":"bbb19b7ec3c1b176","operationName":"POST /checkout","references":[],"startTime":1764000000500000,"duration":80000,
"tags":[{"key":"http.route","type":"string","value":"/checkout"},{"key":"request_id","type":"string","value":"req-on-replica-b"}],"processID":"p1"},
{"traceID":"` + remoteID + `","spanID":"ccc19b7ec3c1b177","operationName":"charge","references":[{"refType":"CHILD_OF","traceID":"` + remoteID + `","spanID":"bbb19b7ec3c1b176"}],
"startTime":1764000000510000,"duration":40000,"tags":[{"key":"otel.status_code","type":"string","value":"ERROR"}],"processID":"p2"}],
"processes":{"p1":{"serviceName":"checkout"},"p2":{"serviceName":"payments"}}}]}`))
	}))
	defer jaegerSrv.Close()
	url, viewer := startWithEngines(t, "", jaegerSrv.URL)
	postFixtures(t, url)

	type row struct {
		TraceID    string   `json:"trace_id"`
		RootName   string   `json:"root_name"`
		RequestID  string   `json:"request_id"`
		SpanCount  int      `json:"span_count"`
		ErrorCount int      `json:"error_count"`
		Services   []string `json:"services"`
	}
	search := func(t *testing.T, query string) []row {
		t.Helper()
		code, body := get(t, url+"/api/v1/traces?"+query, viewer)
		var out struct {
			Traces []row `json:"traces"`
		}
		if err := json.Unmarshal([]byte(body), &out); err != nil || code != 200 {
			t.Fatalf("GET /api/v1/traces?%s: got %d %s", query, code, body)
		}
		return out.Traces
	}
	brief := func(rows []row) string {
		var s []string
		for _, r := range rows {
			s = append(s, fmt.Sprintf("%s %q %s spans=%d errors=%d %v", r.TraceID, r.RootName, r.RequestID, r.SpanCount, r.ErrorCount, r.Services))
		}
		return strings.Join(s, "\n")
	}

	want := strings.Join([]string{
		remoteID + ` "POST /checkout" req-on-replica-b spans=2 errors=1 [checkout payments]`,
		localID + ` "GET /cart" req-restart-1 spans=1 errors=0 [checkout]`,
	}, "\n")
	if got := brief(search(t, "service=checkout")); got != want {
		t.Errorf("search by service:\ngot  %s\nwant %s", got, want)
	}
	if got := brief(search(t, "service=checkout&limit=1")); got != strings.Split(want, "\n")[0] {
		t.Errorf("search with limit 1:\ngot  %s\nwant the newest only", got)
	}
	mu.Lock()
	if len(searches) != 2 || !strings.Contains(searches[0], "service=checkout") || !strings.Contains(searches[1], "limit=1") {
		t.Errorf("Jaeger searches: got %q, want two for service checkout, the second with limit 1", searches)
	}
	searches = nil
	mu.Unlock()

	if got, want := brief(search(t, "route=/cart")), localID+` "GET /cart" req-restart-1 spans=1 errors=0 [checkout]`; got != want {
		t.Errorf("search without a service:\ngot  %s\nwant %s (the store's only)", got, want)
	}
	mu.Lock()
	if len(searches) != 0 {
		t.Errorf("Jaeger searches without a service: got %q, want none (Jaeger needs a service)", searches)
	}
	mu.Unlock()

	code, page := get(t, url+"/traces?service=checkout", viewer)
	if code != 200 {
		t.Fatalf("GET /traces?service=checkout: got %d, want 200", code)
	}
	for _, w := range []string{"POST /checkout", "GET /cart", remoteID} {
		if !strings.Contains(page, w) {
			t.Errorf("dashboard traces list: got no %q, want it", w)
		}
	}
	if strings.Contains(page, "as Jaeger has it") {
		t.Errorf("dashboard traces list: got Jaeger's copy of the stored trace, want the store's")
	}

	mu.Lock()
	jaegerDown = true
	mu.Unlock()
	if got, want := brief(search(t, "service=checkout")), localID+` "GET /cart" req-restart-1 spans=1 errors=0 [checkout]`; got != want {
		t.Errorf("search with Jaeger down:\ngot  %s\nwant %s (the store's only)", got, want)
	}
}

// engineRead is one read of an engineReader whose engine never answers:
// a request's logs from Loki, a trace search or one trace from the
// trace backend.
type engineRead struct {
	name    string
	engine  func(t *testing.T, r *engineReader, url string) // points r's engine at url
	read    func(ctx context.Context, r *engineReader) error
	failLog string // the warning when the engine fails
	// callerErr: when the caller goes away, the read returns its error
	// (one trace answers from the store instead).
	callerErr bool
}

var engineReads = []engineRead{
	{
		name: "logs of a request from Loki",
		engine: func(t *testing.T, r *engineReader, url string) {
			lc, err := loki.NewClient(loki.ClientConfig{URL: url})
			if err != nil {
				t.Fatal(err)
			}
			r.loki = lc
		},
		read: func(ctx context.Context, r *engineReader) error {
			got, err := r.Logs(ctx, store.LogFilter{RequestID: "req-1"})
			return storeAnswer(len(got), err)
		},
		failLog:   "loki query failed",
		callerErr: true,
	},
	{
		name:   "trace search",
		engine: func(t *testing.T, r *engineReader, url string) { r.traces = traceBackendAt(t, url) },
		read: func(ctx context.Context, r *engineReader) error {
			got, err := r.Traces(ctx, store.TraceFilter{Service: "checkout"})
			return storeAnswer(len(got), err)
		},
		failLog:   "trace backend search failed",
		callerErr: true,
	},
	{
		name:   "one trace",
		engine: func(t *testing.T, r *engineReader, url string) { r.traces = traceBackendAt(t, url) },
		read: func(ctx context.Context, r *engineReader) error {
			_, err := r.Trace(ctx, "4bf92f3577b34da6a3ce929d0e0e4736")
			if errors.Is(err, store.ErrNotFound) {
				return nil // the empty store's answer
			}
			return err
		},
		failLog: "trace backend read failed",
	},
}

// storeAnswer is nil for the empty store's answer to a read: nothing.
func storeAnswer(n int, err error) error {
	if err == nil && n != 0 {
		return fmt.Errorf("%d rows from an empty store", n)
	}
	return err
}

// TestEngineReadsCallerGone: a reader that went away while an engine was
// being asked is not the engine's failure: nothing is logged and the
// store is not asked in its place.
func TestEngineReadsCallerGone(t *testing.T) {
	for _, tt := range engineReads {
		t.Run(tt.name, func(t *testing.T) {
			r, logs := bareEngineReader(t)
			tt.engine(t, r, hangingServer(t).URL)
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			if err := tt.read(ctx, r); tt.callerErr && !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("got %v, want the caller's deadline", err)
			}
			if logs.Len() > 0 {
				t.Errorf("log: got %q, want nothing (the engine did not fail)", logs.String())
			}
		})
	}
}

// TestEngineReadsSlowEngine: an engine that does not answer in time
// leaves the read to the store, with a warning, instead of holding the
// page.
func TestEngineReadsSlowEngine(t *testing.T) {
	for _, tt := range engineReads {
		t.Run(tt.name, func(t *testing.T) {
			r, logs := bareEngineReader(t)
			tt.engine(t, r, hangingServer(t).URL)
			r.searchWait = 50 * time.Millisecond
			if err := tt.read(context.Background(), r); err != nil {
				t.Errorf("got %v, want the store's answer (nothing), no error", err)
			}
			if !strings.Contains(logs.String(), tt.failLog) {
				t.Errorf("log: got %q, want %q", logs.String(), tt.failLog)
			}
		})
	}
}

// hangingServer answers nothing until the caller gives up.
func hangingServer(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	t.Cleanup(srv.Close)
	return srv
}

// bareEngineReader is an engineReader over an empty store, logging to
// the returned buffer; the test sets its engines.
func bareEngineReader(t *testing.T) (*engineReader, *bytes.Buffer) {
	t.Helper()
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var logs bytes.Buffer
	return &engineReader{Store: st, store: st, s: &Server{cfg: Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))}}}, &logs
}

// traceBackendAt is a Jaeger reader for url.
func traceBackendAt(t *testing.T, url string) *tracebackend.Reader {
	t.Helper()
	tr, err := tracebackend.NewReader(tracebackend.ReaderConfig{Kind: tracebackend.Jaeger, URL: url})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}
