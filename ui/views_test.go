package ui

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestWaterfallLayout(t *testing.T) {
	start := testNow
	tests := []struct {
		name      string
		spans     []Span
		wantOrder string // span IDs in row order
		wantDepth []int
	}{
		{
			name: "children follow their parent, siblings by start",
			spans: []Span{
				{SpanID: "r", Start: start, Duration: 100 * time.Millisecond},
				{SpanID: "b", ParentSpanID: "r", Start: start.Add(50 * time.Millisecond), Duration: 10 * time.Millisecond},
				{SpanID: "a", ParentSpanID: "r", Start: start.Add(10 * time.Millisecond), Duration: 10 * time.Millisecond},
				{SpanID: "a1", ParentSpanID: "a", Start: start.Add(11 * time.Millisecond), Duration: time.Millisecond},
			},
			wantOrder: "r a a1 b",
			wantDepth: []int{0, 1, 2, 1},
		},
		{
			name: "unknown parent becomes a root",
			spans: []Span{
				{SpanID: "x", ParentSpanID: "gone", Start: start, Duration: time.Millisecond},
				{SpanID: "y", ParentSpanID: "x", Start: start, Duration: time.Millisecond},
			},
			wantOrder: "x y",
			wantDepth: []int{0, 1},
		},
		{
			name: "a parent cycle is still shown",
			spans: []Span{
				{SpanID: "p", ParentSpanID: "q", Start: start, Duration: time.Millisecond},
				{SpanID: "q", ParentSpanID: "p", Start: start.Add(time.Millisecond), Duration: time.Millisecond},
			},
			wantOrder: "p q",
			wantDepth: []int{0, 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWaterfall(Trace{TraceID: "t", Spans: tt.spans})
			var order []string
			var depth []int
			for _, r := range w.Rows {
				order = append(order, r.Span.SpanID)
				depth = append(depth, r.Depth)
				if r.Offset < 0 || r.Offset+r.Width > 100.0001 {
					t.Errorf("span %s: offset %.2f width %.2f outside the axis", r.Span.SpanID, r.Offset, r.Width)
				}
			}
			if got := strings.Join(order, " "); got != tt.wantOrder {
				t.Errorf("order: got %q, want %q", got, tt.wantOrder)
			}
			if fmt.Sprint(depth) != fmt.Sprint(tt.wantDepth) {
				t.Errorf("depth: got %v, want %v", depth, tt.wantDepth)
			}
		})
	}
}

func TestWaterfallDeepChain(t *testing.T) {
	var spans []Span
	for i := range 5000 {
		spans = append(spans, Span{SpanID: fmt.Sprint(i), ParentSpanID: fmt.Sprint(i - 1), Start: testNow.Add(time.Duration(i)), Duration: time.Duration(5000 - i)})
	}
	spans[0].ParentSpanID = ""
	w := newWaterfall(Trace{Spans: spans})
	if got := len(w.Rows); got != 5000 {
		t.Fatalf("rows: got %d, want 5000", got)
	}
	if got := w.Rows[4999].Depth; got != 4999 {
		t.Errorf("last depth: got %d, want 4999", got)
	}
	if got := indent(4999); got != indent(maxIndent) {
		t.Errorf("indent is not capped: got %s", got)
	}
}

func TestServiceMapLayout(t *testing.T) {
	tests := []struct {
		name      string
		edges     []Edge
		wantX     map[string]float64
		wantRates map[string]string // caller>callee -> req/s
	}{
		{
			name:  "chain left to right",
			edges: []Edge{{Caller: "orders", Callee: "payments", Requests: 600, Errors: 60}, {Caller: "gateway", Callee: "orders", Requests: 900}},
			wantX: map[string]float64{"gateway": mapMargin, "orders": mapMargin + mapColumnGap, "payments": mapMargin + 2*mapColumnGap},
		},
		{
			name:  "cycle terminates",
			edges: []Edge{{Caller: "a", Callee: "b", Requests: 1}, {Caller: "b", Callee: "a", Requests: 1}, {Caller: "a", Callee: "a", Requests: 1}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newServiceMap(tt.edges, testNow.Add(-5*time.Minute), testNow)
			for _, n := range m.Nodes {
				if want, ok := tt.wantX[n.Name]; ok && n.X != want {
					t.Errorf("%s x: got %.0f, want %.0f", n.Name, n.X, want)
				}
				if n.X+mapNodeWidth > m.Width || n.Y+mapNodeHeight > m.Height {
					t.Errorf("%s outside the canvas", n.Name)
				}
			}
			if len(m.Edges) != len(tt.edges) {
				t.Errorf("edges: got %d, want %d", len(m.Edges), len(tt.edges))
			}
		})
	}
	m := newServiceMap([]Edge{{Caller: "a", Callee: "b", Requests: 600, Errors: 60}}, testNow.Add(-5*time.Minute), testNow)
	if e := m.Edges[0]; e.RequestsPerSec != 2 || e.ErrorRate != 0.1 || m.Partial() {
		t.Errorf("rates: got %v req/s %v errors (partial %v), want 2 and 0.1 over the window", e.RequestsPerSec, e.ErrorRate, m.Partial())
	}
}

// A store that holds a minute of calls averages over that minute, not
// over the whole window: the demo's map right after it starts.
func TestServiceMapRatesOverTheCallsSeen(t *testing.T) {
	since, until := testNow.Add(-15*time.Minute), testNow
	tests := []struct {
		name     string
		edges    []Edge
		wantOver time.Duration
	}{
		{"calls from before the window", []Edge{{Caller: "a", Callee: "b", Requests: 90, First: since.Add(-time.Hour)}}, 15 * time.Minute},
		{"first call a minute ago", []Edge{{Caller: "a", Callee: "b", Requests: 600, First: until.Add(-time.Minute)}, {Caller: "b", Callee: "c", Requests: 60, First: until.Add(-30 * time.Second)}}, time.Minute},
		{"a call just now", []Edge{{Caller: "a", Callee: "b", Requests: 1, First: until.Add(-time.Millisecond)}}, minRatePeriod},
		{"first unknown", []Edge{{Caller: "a", Callee: "b", Requests: 90}}, 15 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newServiceMap(tt.edges, since, until)
			if m.Over != tt.wantOver {
				t.Fatalf("over: got %v, want %v", m.Over, tt.wantOver)
			}
			want := float64(tt.edges[0].Requests) / tt.wantOver.Seconds()
			if got := m.Edges[0].RequestsPerSec; got != want {
				t.Errorf("req/s: got %v, want %v", got, want)
			}
			if m.Partial() != (tt.wantOver < 15*time.Minute) {
				t.Errorf("partial: got %v", m.Partial())
			}
		})
	}
}

func TestSparkline(t *testing.T) {
	s := newSparkline(series(testNow, 10))
	if s.Empty || strings.Count(s.Requests, ",") != 30 || strings.Count(s.Errors, ",") != 30 {
		t.Errorf("got %+v, want 30 points per line", s)
	}
	if e := newSparkline(make([]Point, 30)); !e.Empty {
		t.Errorf("all-zero series: got not empty, want empty")
	}
}

func TestFormatting(t *testing.T) {
	tests := []struct {
		name, got, want string
	}{
		{"ns", formatDuration(800), "800ns"},
		{"µs", formatDuration(1500 * time.Nanosecond), "1.50µs"},
		{"ms", formatDuration(12345 * time.Microsecond), "12.3ms"},
		{"s", formatDuration(2500 * time.Millisecond), "2.50s"},
		{"min", formatDuration(90 * time.Second), "1m30s"},
		{"rate", formatRate(8.25), "8.25/s"},
		{"slow rate", formatRate(0.05), "3.0/min"},
		{"percent", formatPercent(0.0123), "1.2%"},
		{"tiny percent", formatPercent(0.0001), "<0.1%"},
		{"age", formatAge(testNow, testNow.Add(-3*time.Second)), "3s ago"},
		{"count", formatCount(int64(123456)), "123.5k"},
		{"seconds", seconds(5 * time.Second), "5s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %q, want %q", tt.got, tt.want)
			}
		})
	}
	if serviceClass("orders") != serviceClass("orders") || !strings.HasPrefix(serviceClass("x"), "svc-") {
		t.Errorf("service colour class is not stable")
	}
}

func TestParseDurationAndTimes(t *testing.T) {
	tests := []struct {
		name, since string
		want        time.Time
		wantErr     bool
	}{
		{"age", "15m", testNow.Add(-15 * time.Minute), false},
		{"days", "2d", testNow.Add(-48 * time.Hour), false},
		{"rfc3339", "2026-11-24T10:00:00+01:00", time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC), false},
		{"datetime-local", "2026-11-24T10:00", time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC), false},
		{"date", "2026-11-24", time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC), false},
		{"nonsense", "last tuesday", time.Time{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, _, _, err := parseTraceQuery(url.Values{"since": {tt.since}}, testNow)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err: got %v, want error %v", err, tt.wantErr)
			}
			if !q.Since.Equal(tt.want) {
				t.Errorf("since: got %v, want %v", q.Since, tt.want)
			}
		})
	}
}

func FuzzParseQueries(f *testing.F) {
	f.Add("service=orders&status=5xx&min=250ms&since=15m")
	f.Add("until=2026-11-24T10:00&since=2026-11-24T11:00")
	f.Add("trace_id=ZZZ&limit=-1&before=abc&level=loud")
	f.Add("q=%3Cscript%3E&since=1e300d&min=-1s")
	f.Add("sort=p95&dir=desc&window=24h")
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		if q, _, _, err := parseTraceQuery(v, testNow); err == nil && (q.Limit < 1 || q.Limit > maxRows || q.MinDuration < 0) {
			t.Errorf("trace query out of range: %+v", q)
		}
		if q, _, err := parseLogQuery(v, testNow); err == nil && (q.Limit < 1 || q.Limit > maxRows || q.BeforeSeq < 0) {
			t.Errorf("log query out of range: %+v", q)
		}
		_, _, _ = parseRouteSort(v)
		_, _ = parseWindow(v)
	})
}

// A client span shows what it called: the callee's service when its
// server span is there, else the address it names.
func TestWaterfallPeer(t *testing.T) {
	start := testNow
	spans := []Span{
		{SpanID: "root", Service: "gateway", Kind: "server", Name: "GET /api/orders/:id", Start: start, Duration: 10 * time.Millisecond},
		{SpanID: "c1", ParentSpanID: "root", Service: "gateway", Kind: "client", Name: "GET", Start: start.Add(time.Millisecond), Duration: 8 * time.Millisecond,
			Attributes: []Attr{{Key: "server.address", Value: "127.0.0.1"}, {Key: "server.port", Value: "38415"}}},
		{SpanID: "s1", ParentSpanID: "c1", Service: "orders", Kind: "server", Name: "GET /orders/:id", Start: start.Add(2 * time.Millisecond), Duration: 6 * time.Millisecond},
		{SpanID: "c2", ParentSpanID: "s1", Service: "orders", Kind: "client", Name: "POST", Start: start.Add(3 * time.Millisecond), Duration: time.Millisecond,
			Attributes: []Attr{{Key: "server.address", Value: "psp.example"}, {Key: "server.port", Value: "443"}}},
		{SpanID: "c3", ParentSpanID: "s1", Service: "orders", Kind: "client", Name: "GET", Start: start.Add(5 * time.Millisecond), Duration: time.Millisecond,
			Attributes: []Attr{{Key: "peer.service", Value: "ledger"}, {Key: "server.address", Value: "10.0.0.7"}}},
	}
	want := map[string]string{"root": "", "c1": "orders", "s1": "", "c2": "psp.example:443", "c3": "ledger"}
	for _, r := range newWaterfall(Trace{TraceID: "t", Spans: spans}).Rows {
		if r.Peer != want[r.Span.SpanID] {
			t.Errorf("span %s peer: got %q, want %q", r.Span.SpanID, r.Peer, want[r.Span.SpanID])
		}
	}
}

// TestSparklineBucketInProgress: the bucket in progress is drawn at its
// rate so far, or as the bucket before it while too little of it has
// passed, never as the few requests of its first seconds.
func TestSparklineBucketInProgress(t *testing.T) {
	mk := func(lastSpan time.Duration, last int64) []Point {
		s := make([]Point, 30)
		for i := range s {
			s[i] = Point{Time: testNow.Add(-time.Duration(29-i) * 30 * time.Second), Requests: 300, Span: 30 * time.Second}
		}
		s[29].Requests, s[29].Span = last, lastSpan
		return s
	}
	lastY := func(sp sparkline) string {
		pts := strings.Fields(sp.Requests)
		return strings.Split(pts[len(pts)-1], ",")[1]
	}
	steady := lastY(newSparkline(mk(30*time.Second, 300)))
	for _, tt := range []struct {
		name     string
		span     time.Duration
		requests int64
	}{
		{"a third of the bucket, the same rate", 10 * time.Second, 100},
		{"two seconds in: the bucket before", 2 * time.Second, 7},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sp := newSparkline(mk(tt.span, tt.requests))
			if got := lastY(sp); got != steady {
				t.Errorf("last point at y=%s, want %s like a steady bucket", got, steady)
			}
			if want := formatCount(int64(29*300) + tt.requests); !strings.HasPrefix(sp.Title, want+" requests") {
				t.Errorf("title: got %q, want the %s requests counted", sp.Title, want)
			}
		})
	}
}
