package ui

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
)

func newTestHandler(src Source, opts ...Option) *Handler {
	return New(src, append([]Option{WithClock(func() time.Time { return testNow })}, opts...)...)
}

type response struct {
	code   int
	header http.Header
	body   string
	doc    *goquery.Document
}

func get(t *testing.T, h http.Handler, target string, header ...string) response {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, target, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	doc, err := goquery.NewDocumentFromReader(strings.NewReader(rec.Body.String()))
	if err != nil {
		t.Fatalf("parse %s: %v", target, err)
	}
	return response{code: rec.Code, header: rec.Header(), body: rec.Body.String(), doc: doc}
}

func testid(id string) string { return `[data-testid="` + id + `"]` }

func TestPagesRender(t *testing.T) {
	h := newTestHandler(newFakeSource())
	tests := []struct {
		name     string
		target   string
		wantCode int
		want     map[string]int // data-testid -> minimum count
	}{
		{"overview", "/", 200, map[string]int{"services-table": 1, "service-row": 4, "sparkline": 4, "health": 4, "drops": 1, "search-input": 1}},
		{"service", "/services/payments", 200, map[string]int{"service-page": 1, "routes-table": 1, "route-row": 3, "instance-row": 2, "check-message": 2, "recent-errors": 1, "slowest-traces": 1, "drops": 1}},
		{"traces", "/traces", 200, map[string]int{"traces-form": 1, "traces-table": 1, "trace-row": 20, "duration-bar": 20, "service-chip": 60}},
		{"trace", "/traces/" + testTraceID, 200, map[string]int{"waterfall": 1, "span": 6, "span-error": 3, "span-detail": 6, "trace-logs-link": 1, "span-events": 1}},
		{"logs", "/logs", 200, map[string]int{"logs-form": 1, "log-line": 100, "older-link": 1, "tail-pause": 1, "log-trace-link": 100}},
		{"map", "/map", 200, map[string]int{"map-svg": 1, "map-edge": 3, "map-node": 4, "edge-row": 3}},
		{"unknown page", "/nope", 404, map[string]int{"error-page": 1}},
		{"unknown service", "/services/ghost", 404, map[string]int{"error-message": 1}},
		{"unknown trace", "/traces/" + strings.Repeat("0", 32), 404, map[string]int{"error-message": 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := get(t, h, tt.target)
			if r.code != tt.wantCode {
				t.Fatalf("GET %s: got status %d, want %d", tt.target, r.code, tt.wantCode)
			}
			if got := r.doc.Find(testid("header")).Length(); got != 1 {
				t.Errorf("header: got %d, want 1 (full page with layout)", got)
			}
			for id, min := range tt.want {
				if got := r.doc.Find(testid(id)).Length(); got < min {
					t.Errorf("%s: got %d elements, want at least %d", id, got, min)
				}
			}
		})
	}
}

func TestEmptyStates(t *testing.T) {
	empty := &fakeSource{details: map[string]ServiceDetail{}, traces: map[string]Trace{}}
	tests := []struct {
		name   string
		opts   []Option
		target string
		want   string
	}{
		{"overview derives the URL from the request", nil, "/", "PILOTHOUSE_URL=http://example.com"},
		{"overview uses the configured URL", []Option{WithAgentURL("http://cp.internal:8080")}, "/", "PILOTHOUSE_URL=http://cp.internal:8080"},
		{"traces", nil, "/traces", "No traces yet: point an agent at PILOTHOUSE_URL=http://example.com"},
		{"traces filtered", nil, "/traces?service=orders", "No traces match these filters."},
		{"logs", nil, "/logs", "No logs yet: point an agent at PILOTHOUSE_URL=http://example.com"},
		{"map", nil, "/map", "No calls between services"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := get(t, newTestHandler(empty, tt.opts...), tt.target)
			if r.code != http.StatusOK {
				t.Fatalf("got status %d, want 200", r.code)
			}
			got := strings.Join(strings.Fields(r.doc.Find(testid("empty-state")).Text()), " ")
			if !strings.Contains(got, tt.want) {
				t.Errorf("empty state: got %q, want it to contain %q", got, tt.want)
			}
		})
	}
}

func TestStoredDataIsEscaped(t *testing.T) {
	f := newFakeSource()
	f.services[0].Name = xssPayload
	f.details[xssPayload] = f.details["gateway"]
	h := newTestHandler(f)
	for _, target := range []string{"/", "/logs", "/logs?request_id=" + url.QueryEscape(testRequestID), "/traces/" + testTraceID, "/traces?service=" + url.QueryEscape(xssPayload)} {
		t.Run(target, func(t *testing.T) {
			r := get(t, h, target)
			if r.code != http.StatusOK {
				t.Fatalf("got status %d, want 200", r.code)
			}
			if strings.Contains(r.body, xssPayload) {
				t.Errorf("raw %q found in the page", xssPayload)
			}
			r.doc.Find("script").Each(func(_ int, s *goquery.Selection) {
				if src, _ := s.Attr("src"); !strings.HasPrefix(src, "/static/vendor/") {
					t.Errorf("unexpected script element: %q", s.Text())
				}
			})
			shown := strings.Contains(r.doc.Text(), xssPayload)
			r.doc.Find("input").Each(func(_ int, s *goquery.Selection) {
				if v, _ := s.Attr("value"); v == xssPayload {
					shown = true
				}
			})
			if !shown {
				t.Errorf("payload not shown as text")
			}
		})
	}
	r := get(t, h, "/logs")
	if got := r.doc.Find(testid("log-body")).First().Text(); got != "payment failed: "+xssPayload {
		t.Errorf("log body: got %q, want %q", got, "payment failed: "+xssPayload)
	}
}

func TestTraceFiltersPassThrough(t *testing.T) {
	f := newFakeSource()
	h := newTestHandler(f)
	r := get(t, h, "/traces?service=orders&route=%2Fapi%2Forders%2F%3Aid&status=5XX&min=250ms&since=15m&until=2026-11-24T11:59&request_id=req-1&attr=order_id%3D42&limit=20")
	if r.code != http.StatusOK {
		t.Fatalf("got status %d, want 200: %s", r.code, r.doc.Find(testid("error-message")).Text())
	}
	want := TraceQuery{Service: "orders", Route: "/api/orders/:id", Status: "5xx", MinDuration: 250 * time.Millisecond, RequestID: "req-1",
		Attributes: []Attr{{Key: "order_id", Value: "42"}},
		Since:      testNow.Add(-15 * time.Minute), Until: time.Date(2026, 11, 24, 11, 59, 0, 0, time.UTC), Limit: 20}
	if !reflect.DeepEqual(f.lastTraceQuery, want) {
		t.Errorf("query: got %+v, want %+v", f.lastTraceQuery, want)
	}
	if got, _ := r.doc.Find(`input[name="service"]`).Attr("value"); got != "orders" {
		t.Errorf("service field: got %q, want %q", got, "orders")
	}
	if got, _ := r.doc.Find(`input[name="attr"]`).Attr("value"); got != "order_id=42" {
		t.Errorf("attribute field: got %q, want order_id=42", got)
	}
	if got, _ := r.doc.Find(`select[name="since"] option[selected]`).Attr("value"); got != "15m" {
		t.Errorf("since select: got %q, want %q", got, "15m")
	}
}

func TestLogFiltersPassThrough(t *testing.T) {
	f := newFakeSource()
	h := newTestHandler(f)
	r := get(t, h, "/logs?request_id=req-0003&trace_id=ABCDEF0123456789ABCDEF0123456789&service=orders&level=warn&q=timeout&attr=order_id%3D7&since=1h&before=900&limit=10")
	if r.code != http.StatusOK {
		t.Fatalf("got status %d, want 200: %s", r.code, r.doc.Find(testid("error-message")).Text())
	}
	want := LogQuery{RequestID: "req-0003", TraceID: "abcdef0123456789abcdef0123456789", Service: "orders", Level: "WARN", Text: "timeout",
		Attributes: []Attr{{Key: "order_id", Value: "7"}}, Since: testNow.Add(-time.Hour), BeforeSeq: 900, Limit: 10}
	if !reflect.DeepEqual(f.lastLogQuery, want) {
		t.Errorf("query: got %+v, want %+v", f.lastLogQuery, want)
	}
	if got := r.doc.Find(testid("tail-pause")).Length(); got != 0 {
		t.Errorf("an older page must not tail: got %d pause buttons, want 0", got)
	}
	if href, _ := r.doc.Find(testid("newest-link")).Attr("href"); !strings.Contains(href, "attr=order_id%3D7") {
		t.Errorf("newest link %q: the attribute filter is lost", href)
	}
	if got := r.doc.Find(testid("newest-link")).Length(); got != 1 {
		t.Errorf("newest link: got %d, want 1", got)
	}
}

func TestBadParametersAnswer400(t *testing.T) {
	h := newTestHandler(newFakeSource())
	tests := []struct {
		name   string
		target string
		want   string
	}{
		{"min duration", "/traces?min=soon", `min "soon"`},
		{"status", "/traces?status=teapot", `status "teapot"`},
		{"since", "/traces?since=yesterday", `since "yesterday"`},
		{"until before since", "/traces?since=2026-11-24T10:00&until=2026-11-24T09:00", "must be after since"},
		{"limit", "/traces?limit=0", `limit "0"`},
		{"trace id", "/traces?trace_id=xyz", `trace_id "xyz"`},
		{"attribute", "/traces?attr=order_id", `attr "order_id"`},
		{"log level", "/logs?level=LOUD", `level "LOUD"`},
		{"log cursor", "/logs?before=-4", `before "-4"`},
		{"route sort", "/services/orders?sort=colour", `sort "colour"`},
		{"sort dir", "/services/orders?dir=up", `dir "up"`},
		{"map window", "/map?window=5s", "between 1m and 1h"},
		{"trace path", "/traces/not-hex", "Bad trace ID"},
		{"stream", "/logs/stream?level=LOUD", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := get(t, h, tt.target)
			if r.code != http.StatusBadRequest {
				t.Fatalf("got status %d, want 400", r.code)
			}
			if got := r.doc.Find(testid("error-message")).Text(); !strings.Contains(got, tt.want) {
				t.Errorf("message: got %q, want it to contain %q", got, tt.want)
			}
		})
	}
}

// TestTraceSearchRefusedBySource: a query the source refuses (here an
// attribute key it does not take) keeps the search form, with the reason.
func TestTraceSearchRefusedBySource(t *testing.T) {
	f := newFakeSource()
	f.err = fmt.Errorf("source: %w: attribute: key %q is not allowed", ErrBadParam, `a"b`)
	r := get(t, newTestHandler(f), "/traces?attr=a%22b%3D1")
	if r.code != http.StatusBadRequest {
		t.Fatalf("got status %d, want 400", r.code)
	}
	if got := r.doc.Find(testid("error-message")).Text(); !strings.Contains(got, "is not allowed") {
		t.Errorf("message: got %q, want the source's reason", got)
	}
	if r.doc.Find(testid("traces-form")).Length() != 1 {
		t.Error("the search form is gone, want it kept")
	}
}

func TestPartialsRenderFragments(t *testing.T) {
	h := newTestHandler(newFakeSource())
	tests := []struct {
		target string
		root   string
	}{
		{"/", "overview"},
		{"/services/orders?sort=p95&dir=desc", "service"},
		{"/traces?status=error", "traces"},
		{"/logs?service=orders", "logs"},
		{"/logs?live=0", "logs"},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			r := get(t, h, tt.target, "HX-Request", "true")
			if r.code != http.StatusOK {
				t.Fatalf("got status %d, want 200", r.code)
			}
			if strings.Contains(r.body, "<html") || r.doc.Find(testid("header")).Length() != 0 {
				t.Errorf("partial contains the layout")
			}
			body := r.doc.Find("body").Children()
			if body.Length() != 1 {
				t.Fatalf("partial: got %d top-level elements, want 1", body.Length())
			}
			if id, _ := body.Attr("id"); id != tt.root {
				t.Errorf("partial root: got id %q, want %q", id, tt.root)
			}
			if got := r.header.Get("Vary"); got != "HX-Request" {
				t.Errorf("Vary: got %q, want HX-Request", got)
			}
		})
	}
	full := get(t, h, "/", "HX-Request", "true", "HX-History-Restore-Request", "true")
	if full.doc.Find(testid("header")).Length() != 1 {
		t.Errorf("history restore must get the full page")
	}
}

func TestPolling(t *testing.T) {
	h := newTestHandler(newFakeSource(), WithRefresh(3*time.Second))
	tests := []struct {
		target, root, wantGet string
	}{
		{"/", "overview", "/"},
		{"/services/orders?sort=p95&dir=desc", "service-page", "/services/orders?dir=desc&sort=p95"},
	}
	for _, tt := range tests {
		r := get(t, h, tt.target)
		sel := r.doc.Find(testid(tt.root))
		if got, _ := sel.Attr("hx-trigger"); got != "every 3s" {
			t.Errorf("%s hx-trigger: got %q, want %q", tt.target, got, "every 3s")
		}
		if got, _ := sel.Attr("hx-get"); got != tt.wantGet {
			t.Errorf("%s hx-get: got %q, want %q", tt.target, got, tt.wantGet)
		}
	}
}

func TestSearchResolves(t *testing.T) {
	h := newTestHandler(newFakeSource())
	tests := []struct {
		name, q, want string
	}{
		{"request id with a trace", testRequestID, "/traces/" + testTraceID},
		{"trace id", strings.ToUpper("0123456789abcdef0123456789abcdef"), "/traces/0123456789abcdef0123456789abcdef"},
		{"unknown request id", "req-unknown", "/logs?request_id=req-unknown"},
		{"empty", "  ", "/traces"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := get(t, h, "/search?q="+url.QueryEscape(tt.q))
			if r.code != http.StatusSeeOther {
				t.Fatalf("got status %d, want 303", r.code)
			}
			if got := r.header.Get("Location"); got != tt.want {
				t.Errorf("Location: got %q, want %q", got, tt.want)
			}
			hx := get(t, h, "/search?q="+url.QueryEscape(tt.q), "HX-Request", "true")
			if got := hx.header.Get("HX-Redirect"); got != tt.want {
				t.Errorf("HX-Redirect: got %q, want %q", got, tt.want)
			}
		})
	}
	r := get(t, h, "/traces?trace_id="+testTraceID)
	if got := r.header.Get("Location"); got != "/traces/"+testTraceID {
		t.Errorf("trace_id filter: got Location %q, want the trace", got)
	}
}

func TestServiceRoutesSort(t *testing.T) {
	h := newTestHandler(newFakeSource())
	tests := []struct {
		target    string
		wantFirst string
		wantLink  string // href of the p95 header
	}{
		{"/services/orders", "/api/orders", "/services/orders?dir=desc&sort=p95"},
		{"/services/orders?sort=p95&dir=desc", "/api/orders", "/services/orders?dir=asc&sort=p95"},
		{"/services/orders?sort=p95", "/healthz", "/services/orders?dir=desc&sort=p95"},
		{"/services/orders?sort=route&dir=desc", "/healthz", "/services/orders?dir=desc&sort=p95"},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			r := get(t, h, tt.target)
			if got, _ := r.doc.Find(testid("route-row")).First().Attr("data-route"); got != tt.wantFirst {
				t.Errorf("first route: got %q, want %q", got, tt.wantFirst)
			}
			if got, _ := r.doc.Find(testid("sort-p95")).Attr("href"); got != tt.wantLink {
				t.Errorf("p95 header link: got %q, want %q", got, tt.wantLink)
			}
		})
	}
}

func TestTracePage(t *testing.T) {
	h := newTestHandler(newFakeSource())
	r := get(t, h, "/traces/"+strings.ToUpper(testTraceID))
	if r.code != http.StatusOK {
		t.Fatalf("got status %d, want 200", r.code)
	}
	if got, _ := r.doc.Find(testid("trace-logs-link")).Attr("href"); got != "/logs?request_id="+testRequestID {
		t.Errorf("logs link: got %q, want %q", got, "/logs?request_id="+testRequestID)
	}
	var order []string
	r.doc.Find(testid("span")).Each(func(_ int, s *goquery.Selection) {
		id, _ := s.Attr("data-span-id")
		order = append(order, id[len(id)-1:])
	})
	// inventory (4) starts before payments (5), whose child (6) follows it.
	if got := strings.Join(order, ""); got != "123456" {
		t.Errorf("span order: got %s, want 123456", got)
	}
	pay := r.doc.Find("#span-a000000000000005")
	if got := pay.Find(testid("span-status")).Text(); !strings.Contains(got, "bank declined") {
		t.Errorf("status: got %q, want the status message", got)
	}
	if pay.Find(testid("span-error")).Length() != 1 {
		t.Errorf("payments span not marked as an error")
	}
	if got := r.doc.Find(testid("service-chip")).Length(); got < 4 {
		t.Errorf("service chips: got %d, want at least 4", got)
	}
}

func TestLogsPaging(t *testing.T) {
	h := newTestHandler(newFakeSource())
	r := get(t, h, "/logs?service=orders&limit=20")
	lines := r.doc.Find(testid("log-line"))
	if lines.Length() != 20 {
		t.Fatalf("lines: got %d, want 20", lines.Length())
	}
	last, _ := lines.Last().Attr("data-seq")
	older, _ := r.doc.Find(testid("older-link")).Attr("href")
	if want := "/logs?before=" + last + "&service=orders"; older != want {
		t.Errorf("older link: got %q, want %q", older, want)
	}
	first, _ := lines.First().Attr("data-seq")
	stream, _ := r.doc.Find(testid("log-results")).Attr("sse-connect")
	if want := "/logs/stream?after=" + first + "&service=orders"; stream != want {
		t.Errorf("stream: got %q, want %q", stream, want)
	}
	pause, _ := r.doc.Find(testid("tail-pause")).Attr("hx-get")
	if want := "/logs?live=0&service=orders"; pause != want {
		t.Errorf("pause: got %q, want %q", pause, want)
	}
	paused := get(t, h, pause)
	if _, ok := paused.doc.Find(testid("log-results")).Attr("sse-connect"); ok {
		t.Errorf("paused page still streams")
	}
	if paused.doc.Find(testid("tail-resume")).Length() != 1 {
		t.Errorf("paused page has no resume link")
	}
}

func TestSourceFailureAnswers500(t *testing.T) {
	f := newFakeSource()
	f.err = errors.New("disk on fire")
	r := get(t, newTestHandler(f), "/")
	if r.code != http.StatusInternalServerError {
		t.Fatalf("got status %d, want 500", r.code)
	}
	if got := r.doc.Find(testid("error-message")).Text(); !strings.Contains(got, "disk on fire") {
		t.Errorf("message: got %q, want the cause", got)
	}
}

func TestStaticAndOptions(t *testing.T) {
	h := newTestHandler(newFakeSource(),
		WithUser(func(*http.Request) string { return "ada" }),
		WithMiddleware(func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("X-Auth-Seam", "yes")
				next.ServeHTTP(w, r)
			})
		}), nil)
	tests := []struct {
		target, wantType string
	}{
		{"/static/pilothouse.css", "text/css; charset=utf-8"},
		{"/static/vendor/htmx-2.0.11.min.js", "text/javascript; charset=utf-8"},
		{"/static/vendor/htmx-ext-sse-2.2.4.min.js", "text/javascript; charset=utf-8"},
	}
	for _, tt := range tests {
		r := get(t, h, tt.target)
		if r.code != http.StatusOK || r.header.Get("Content-Type") != tt.wantType {
			t.Errorf("%s: got %d %q, want 200 %q", tt.target, r.code, r.header.Get("Content-Type"), tt.wantType)
		}
	}
	r := get(t, h, "/")
	if got := r.doc.Find(testid("current-user")).Text(); got != "ada" {
		t.Errorf("current user: got %q, want ada", got)
	}
	if got := r.header.Get("X-Auth-Seam"); got != "yes" {
		t.Errorf("middleware: got %q, want yes", got)
	}
	if got := r.header.Get("Content-Security-Policy"); !strings.Contains(got, "script-src 'self'") {
		t.Errorf("CSP: got %q", got)
	}
}

// TestLogsWithoutCursor: lines without a Seq come from a log engine
// (Loki) with no cursor, so the page neither tails nor pages after them.
func TestLogsWithoutCursor(t *testing.T) {
	f := newFakeSource()
	for i := range f.logs {
		f.logs[i].Seq = 0
	}
	r := get(t, newTestHandler(f), "/logs?limit=20")
	if got := r.doc.Find(testid("log-line")).Length(); got != 20 {
		t.Fatalf("lines: got %d, want 20", got)
	}
	if _, ok := r.doc.Find(testid("log-results")).Attr("sse-connect"); ok {
		t.Error("page streams a live tail, want none")
	}
	if got := r.doc.Find(testid("older-link")).Length(); got != 0 {
		t.Errorf("older links: got %d, want 0", got)
	}
	if got := r.doc.Find(testid("newest-link")).Length(); got != 1 {
		t.Errorf("newest links: got %d, want 1", got)
	}
}
