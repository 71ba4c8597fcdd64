package loki

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

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
		name    string
		f       store.LogFilter
		want    string
		wantErr error
	}{
		{name: "no filter: every service", f: store.LogFilter{}, want: `{service=~".+"}`},
		{name: "request id", f: store.LogFilter{RequestID: "req-1"}, want: `{service=~".+"} | request_id="req-1"`},
		{name: "quotes escaped", f: store.LogFilter{RequestID: `a"b\c`}, want: `{service=~".+"} | request_id="a\"b\\c"`},
		{name: "service", f: store.LogFilter{Service: "orders"}, want: `{service="orders"}`},
		{name: "service with quote, backslash, backtick, regexp", f: store.LogFilter{Service: "a\"}`b\\.*"},
			want: `{service="a\"}` + "`" + `b\\.*"}`},
		{name: "service, level, text, trace", f: store.LogFilter{Service: "orders", Level: "WARN", Query: "timeout", TraceID: "abc"},
			want: `{service="orders", level=~"warn|error"} |~ "[tT][iI][mM][eE][oO][uU][tT]" | trace_id="abc"`},
		{name: "trace is no level filter", f: store.LogFilter{Level: "TRACE"}, want: `{service=~".+"}`},
		{name: "debug is no level filter", f: store.LogFilter{Level: "DEBUG"}, want: `{service=~".+"}`},
		{name: "info and up", f: store.LogFilter{Level: "INFO"}, want: `{service=~".+", level=~"info|warn|error"}`},
		{name: "warning is warn, any case", f: store.LogFilter{Level: "Warning"}, want: `{service=~".+", level=~"warn|error"}`},
		{name: "error", f: store.LogFilter{Level: "error"}, want: `{service=~".+", level=~"error"}`},
		{name: "text without letters is a line filter", f: store.LogFilter{Query: "500 = 42"}, want: `{service=~".+"} |= "500 = 42"`},
		{name: "line filter escaped", f: store.LogFilter{Query: "\"} |= \\`\n"}, want: `{service=~".+"} |= "\"} |= \\` + "`" + `\n"`},
		{name: "regexp metacharacters quoted", f: store.LogFilter{Query: `a.*(b)|"c"\`},
			want: `{service=~".+"} |~ "[aA]\\.\\*\\([bB]\\)\\|\"[cC]\"\\\\"`},
		{name: "non-ASCII letters exact, as in LIKE", f: store.LogFilter{Query: "Ünïcode"}, want: `{service=~".+"} |~ "Ü[nN]ï[cC][oO][dD][eE]"`},
		{name: "LIKE wildcards are literal", f: store.LogFilter{Query: "100%_"}, want: `{service=~".+"} |= "100%_"`},
		{name: "everything", f: store.LogFilter{Service: "gw", Level: "INFO", Query: "x", RequestID: "r", TraceID: "t", Limit: 5, Since: time.Unix(1, 0)},
			want: `{service="gw", level=~"info|warn|error"} |~ "[xX]" | request_id="r" | trace_id="t"`},
		{name: "fatal is part of error", f: store.LogFilter{Level: "FATAL"}, wantErr: ErrUnsupportedFilter},
		{name: "unknown level", f: store.LogFilter{Level: "loud"}, wantErr: ErrUnsupportedFilter},
		{name: "older page", f: store.LogFilter{BeforeSeq: 9}, wantErr: ErrUnsupportedFilter},
		{name: "live tail", f: store.LogFilter{AfterSeq: 9}, wantErr: ErrUnsupportedFilter},
		{name: "attributes", f: store.LogFilter{Attributes: []store.AttributeMatch{{Key: "order_id", Value: "7"}}}, wantErr: ErrUnsupportedFilter},
		{name: "text not UTF-8", f: store.LogFilter{Query: "\xff"}, wantErr: ErrUnsupportedFilter},
		{name: "service not UTF-8", f: store.LogFilter{Service: "\xff"}, wantErr: ErrUnsupportedFilter},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := LogQL(tt.f)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err: got %v, want %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
			if err == nil {
				checkLogQL(t, got, tt.f)
			}
		})
	}
}

// TestLogQLTextMatchesLikeTheStore checks the body filter against the
// store's semantics on sample lines: substring, ASCII case folded only.
func TestLogQLTextMatchesLikeTheStore(t *testing.T) {
	tests := []struct {
		name  string
		query string
		line  string
		want  bool
	}{
		{name: "same case", query: "Timeout", line: "upstream Timeout after 2s", want: true},
		{name: "other case", query: "timeout", line: "UPSTREAM TIMEOUT", want: true},
		{name: "metacharacters literal", query: "a.c", line: "abc", want: false},
		{name: "metacharacters found", query: "(a.c)", line: "x (A.C) y", want: true},
		{name: "non-ASCII case kept", query: "é", line: "É", want: false},
		{name: "kelvin sign is not k", query: "k", line: "\u212a", want: false},
		{name: "missing", query: "nope", line: "yes", want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := lineFilterMatches(t, store.LogFilter{Query: tt.query}, tt.line)
			if got != tt.want {
				t.Errorf("%q in %q: got %v, want %v", tt.query, tt.line, got, tt.want)
			}
		})
	}
}

// logQLShape is one stream selector and its pipeline, as LogQL renders
// it: every value a Go-quoted string.
var logQLShape = regexp.MustCompile(`^\{service(=|=~)("(?:[^"\\]|\\.)*")(?:, level=~("(?:[^"\\]|\\.)*"))?\}` +
	`(?: (\|=|\|~) ("(?:[^"\\]|\\.)*"))?` +
	`(?: \| request_id=("(?:[^"\\]|\\.)*"))?` +
	`(?: \| trace_id=("(?:[^"\\]|\\.)*"))?$`)

// checkLogQL asserts that q is one selector plus the pipeline f asks
// for, each quoted part unquoting to f's value.
func checkLogQL(t *testing.T, q string, f store.LogFilter) {
	t.Helper()
	m := logQLShape.FindStringSubmatch(q)
	if m == nil {
		t.Fatalf("query %s: not one selector and the expected pipeline", q)
	}
	unquote := func(part, s string) string {
		t.Helper()
		v, err := strconv.Unquote(s)
		if err != nil {
			t.Fatalf("query %s: %s %s does not unquote: %v", q, part, s, err)
		}
		return v
	}
	wantOp, wantSvc := "=", f.Service
	if f.Service == "" {
		wantOp, wantSvc = "=~", ".+"
	}
	if m[1] != wantOp || unquote("service", m[2]) != wantSvc {
		t.Errorf("query %s: service: got %s%s, want %s%q", q, m[1], m[2], wantOp, wantSvc)
	}
	if levels, _ := levelsFrom(f.Level); (m[3] == "") != (levels == "") || (m[3] != "" && unquote("level", m[3]) != levels) {
		t.Errorf("query %s: level: got %s, want %q", q, m[3], levels)
	}
	switch {
	case f.Query == "" && m[4] != "":
		t.Errorf("query %s: line filter without a text", q)
	case f.Query != "" && m[4] == "|=" && unquote("text", m[5]) != f.Query:
		t.Errorf("query %s: text: got %s, want %q", q, m[5], f.Query)
	case f.Query != "" && m[4] == "|~":
		re, err := regexp.Compile(unquote("text", m[5]))
		if err != nil {
			t.Fatalf("query %s: text regexp: %v", q, err)
		}
		if !re.MatchString(f.Query) || !re.MatchString(strings.ToUpper(f.Query)) && isASCII(f.Query) {
			t.Errorf("query %s: text regexp %s does not match %q", q, re, f.Query)
		}
	case f.Query != "" && m[4] == "":
		t.Errorf("query %s: no line filter for %q", q, f.Query)
	}
	if got := optionalUnquote(t, m[6]); got != f.RequestID {
		t.Errorf("query %s: request_id: got %q, want %q", q, got, f.RequestID)
	}
	if got := optionalUnquote(t, m[7]); got != f.TraceID {
		t.Errorf("query %s: trace_id: got %q, want %q", q, got, f.TraceID)
	}
}

func optionalUnquote(t *testing.T, s string) string {
	t.Helper()
	if s == "" {
		return ""
	}
	v, err := strconv.Unquote(s)
	if err != nil {
		t.Fatalf("%s does not unquote: %v", s, err)
	}
	return v
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// lineFilterMatches applies the line filter LogQL builds for f to line,
// as Loki does (|= substring, |~ unanchored regexp).
func lineFilterMatches(t *testing.T, f store.LogFilter, line string) bool {
	t.Helper()
	q, err := LogQL(f)
	if err != nil {
		t.Fatal(err)
	}
	m := logQLShape.FindStringSubmatch(q)
	if m == nil || m[4] == "" {
		t.Fatalf("query %s: no line filter", q)
	}
	v := optionalUnquote(t, m[5])
	if m[4] == "|=" {
		return strings.Contains(line, v)
	}
	return regexp.MustCompile(v).MatchString(line)
}

// TestLogsParameters checks what a filter sends to query_range.
func TestLogsParameters(t *testing.T) {
	now := time.Date(2026, 11, 24, 17, 0, 0, 0, time.UTC)
	since := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	until := time.Date(2026, 11, 24, 13, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		f    store.LogFilter
		want map[string]string
	}{
		{name: "defaults: the last hour, 100", f: store.LogFilter{},
			want: map[string]string{"query": `{service=~".+"}`, "start": ns(now.Add(-time.Hour)), "end": ns(now), "limit": "100", "direction": "backward"}},
		{name: "since and until", f: store.LogFilter{Service: "orders", Since: since, Until: until, Limit: 7},
			want: map[string]string{"query": `{service="orders"}`, "start": ns(since), "end": ns(until), "limit": "7", "direction": "backward"}},
		{name: "until only: the lookback before it", f: store.LogFilter{Level: "ERROR", Until: until},
			want: map[string]string{"query": `{service=~".+", level=~"error"}`, "start": ns(until.Add(-time.Hour)), "end": ns(until), "limit": "100", "direction": "backward"}},
		{name: "since only: until now", f: store.LogFilter{Query: "42", Since: since, Limit: 9000},
			want: map[string]string{"query": `{service=~".+"} |= "42"`, "start": ns(since), "end": ns(now), "limit": strconv.Itoa(MaxLimit), "direction": "backward"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var q map[string][]string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				q = r.URL.Query()
				w.Write(readTestdata(t, "query_range_categorized.json"))
			}))
			defer srv.Close()
			c, err := NewClient(ClientConfig{URL: srv.URL, Now: func() time.Time { return now }})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Logs(context.Background(), tt.f); err != nil {
				t.Fatalf("Logs: %v", err)
			}
			if len(q) != len(tt.want) {
				t.Errorf("parameters: got %v, want %v", q, tt.want)
			}
			for k, want := range tt.want {
				if v := q[k]; len(v) != 1 || v[0] != want {
					t.Errorf("%s: got %v, want %s", k, v, want)
				}
			}
		})
	}
}

func ns(t time.Time) string { return strconv.FormatInt(t.UnixNano(), 10) }

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
	if _, err := c.Logs(context.Background(), store.LogFilter{Level: "FATAL"}); !errors.Is(err, ErrUnsupportedFilter) {
		t.Errorf("FATAL: got %v, want ErrUnsupportedFilter", err)
	}
}
