package ui

import (
	"cmp"
	"math"
	"net"
	"slices"
	"strings"
	"time"
)

// Sparkline geometry (SVG user units).
const (
	sparkWidth  = 120.0
	sparkHeight = 28.0
)

// sparkline is a server-rendered SVG of a service's recent traffic.
type sparkline struct {
	Requests string // polyline points
	Area     string // polygon points: the requests line closed along the bottom
	Errors   string // polyline points, same scale
	Title    string
	Empty    bool
	Markers  []sparkMarker // policy changes
	Wide     bool          // stretch to the container's width
}

func newSparkline(series []Point) sparkline {
	var total, totalErr int64
	for _, p := range series {
		total += p.Requests
		totalErr += p.Errors
	}
	series = drawnSeries(series)
	var peak int64
	for _, p := range series {
		peak = max(peak, p.Requests)
	}
	if len(series) < 2 || peak == 0 {
		return sparkline{Empty: true, Title: "no requests in the last 15 minutes", Requests: "0," + px(sparkHeight-1) + " " + px(sparkWidth) + "," + px(sparkHeight-1)}
	}
	var req, errs strings.Builder
	step := sparkWidth / float64(len(series)-1)
	for i, p := range series {
		x := px(float64(i) * step)
		req.WriteString(x + "," + px(sparkY(p.Requests, peak)) + " ")
		errs.WriteString(x + "," + px(sparkY(p.Errors, peak)) + " ")
	}
	line := strings.TrimSpace(req.String())
	return sparkline{
		Requests: line,
		Area:     "0," + px(sparkHeight) + " " + line + " " + px(sparkWidth) + "," + px(sparkHeight),
		Errors:   strings.TrimSpace(errs.String()),
		Title:    formatCount(total) + " requests, " + formatCount(totalErr) + " errors; peak " + formatCount(peak) + " per bucket",
	}
}

// minBucketShare is how much of the bucket in progress must have passed
// before the sparkline extrapolates it.
const minBucketShare = 0.25

// drawnSeries is what the sparkline draws of series: the bucket in
// progress scaled up to a whole bucket's worth (its rate so far), or,
// while less than minBucketShare of it has passed, the bucket before it
// again. Drawn as it is, its few seconds of requests look like traffic
// dropping off. The number of points stays, so markers keep their place.
func drawnSeries(series []Point) []Point {
	n := len(series)
	if n < 2 {
		return series
	}
	full, last := series[n-2].Span, series[n-1]
	if full <= 0 || last.Span <= 0 || last.Span >= full {
		return series
	}
	out := slices.Clone(series)
	if float64(last.Span) < minBucketShare*float64(full) {
		out[n-1].Requests, out[n-1].Errors = series[n-2].Requests, series[n-2].Errors
		return out
	}
	scale := float64(full) / float64(last.Span)
	out[n-1].Requests = int64(math.Round(float64(last.Requests) * scale))
	out[n-1].Errors = int64(math.Round(float64(last.Errors) * scale))
	return out
}

func sparkY(v, peak int64) float64 {
	return sparkHeight - 1 - float64(v)/float64(peak)*(sparkHeight-3)
}

// waterfallRow is one span placed on the trace's time axis.
type waterfallRow struct {
	Span Span
	// Peer is what a client span called: the service whose server span
	// is its child, else the address it names; "" for other spans.
	Peer   string
	Depth  int
	Offset float64 // percent of the trace from its start
	Width  float64 // percent of the trace
	Error  bool
	Class  string // service colour class
}

type tick struct {
	Offset float64
	Label  string
}

// waterfall is a trace laid out for display: spans in tree order (each
// parent followed by its children, siblings by start).
type waterfall struct {
	TraceID   string
	Rows      []waterfallRow
	Start     time.Time
	Total     time.Duration
	Ticks     []tick
	Services  []string
	RequestID string
	Errors    int
	RootName  string
}

// maxIndent caps the visual nesting so deep traces stay readable.
const maxIndent = 24

func newWaterfall(t Trace) waterfall {
	w := waterfall{TraceID: t.TraceID}
	if len(t.Spans) == 0 {
		return w
	}
	spans := slices.Clone(t.Spans)
	slices.SortStableFunc(spans, func(a, b Span) int { return a.Start.Compare(b.Start) })
	byID := make(map[string]int, len(spans))
	start, end := spans[0].Start, spans[0].Start
	seen := map[string]bool{}
	for i, s := range spans {
		byID[s.SpanID] = i
		if s.Start.Before(start) {
			start = s.Start
		}
		if e := s.Start.Add(s.Duration); e.After(end) {
			end = e
		}
		if !seen[s.Service] {
			seen[s.Service] = true
			w.Services = append(w.Services, s.Service)
		}
		if w.RequestID == "" && s.RequestID != "" {
			w.RequestID = s.RequestID
		}
		if s.Status == "error" {
			w.Errors++
		}
	}
	children := make(map[int][]int, len(spans))
	var roots []int
	for i, s := range spans {
		p, ok := byID[s.ParentSpanID]
		if s.ParentSpanID == "" || !ok || p == i {
			roots = append(roots, i)
			continue
		}
		children[p] = append(children[p], i)
	}
	if len(roots) == 0 {
		// Every span names a parent: a cycle. Start from the earliest.
		roots = []int{0}
	}
	w.Start = start
	w.Total = max(end.Sub(start), time.Nanosecond)
	w.RootName = spans[roots[0]].Name
	total := float64(w.Total)

	// Iterative depth-first walk: a 2,000-deep chain must not blow the stack.
	type item struct{ idx, depth int }
	stack := make([]item, 0, len(spans))
	for i := len(roots) - 1; i >= 0; i-- {
		stack = append(stack, item{roots[i], 0})
	}
	placed := make([]bool, len(spans))
	w.Rows = make([]waterfallRow, 0, len(spans))
	for len(stack) > 0 {
		it := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if placed[it.idx] {
			continue
		}
		placed[it.idx] = true
		s := spans[it.idx]
		off := float64(s.Start.Sub(start)) / total * 100
		width := max(float64(s.Duration)/total*100, 0.15)
		if off+width > 100 {
			width = max(100-off, 0.15)
		}
		kids := children[it.idx]
		w.Rows = append(w.Rows, waterfallRow{Span: s, Peer: peer(s, kids, spans), Depth: it.depth, Offset: off, Width: width, Error: s.Status == "error", Class: serviceClass(s.Service)})
		for i := len(kids) - 1; i >= 0; i-- {
			stack = append(stack, item{kids[i], it.depth + 1})
		}
	}
	// Spans caught in a parent cycle were never reached from a root.
	for i, ok := range placed {
		if !ok {
			s := spans[i]
			off := float64(s.Start.Sub(start)) / total * 100
			w.Rows = append(w.Rows, waterfallRow{Span: s, Offset: off, Width: max(float64(s.Duration)/total*100, 0.15), Error: s.Status == "error", Class: serviceClass(s.Service)})
		}
	}
	for i := 0; i <= 4; i++ {
		w.Ticks = append(w.Ticks, tick{Offset: float64(i) * 25, Label: formatDuration(w.Total * time.Duration(i) / 4)})
	}
	return w
}

// peer names what client span s called: the service of a server span
// among its children (kids index spans) from another service, else its
// peer.service, else its server.address and server.port attributes.
func peer(s Span, kids []int, spans []Span) string {
	if s.Kind != "client" {
		return ""
	}
	for _, k := range kids {
		if c := spans[k]; c.Kind == "server" && c.Service != s.Service {
			return c.Service
		}
	}
	var addr, port string
	for _, a := range s.Attributes {
		switch a.Key {
		case "peer.service":
			return a.Value
		case "server.address":
			addr = a.Value
		case "server.port":
			port = a.Value
		}
	}
	if addr != "" && port != "" {
		return net.JoinHostPort(addr, port)
	}
	return addr
}

func indent(depth int) string {
	return px(float64(min(depth, maxIndent))*12) + "px"
}

// Service map geometry.
const (
	mapNodeWidth  = 160.0
	mapNodeHeight = 40.0
	mapColumnGap  = 340.0
	mapRowGap     = 90.0
	mapMargin     = 30.0
)

type mapNode struct {
	Name  string
	X, Y  float64
	Class string
}

type mapEdge struct {
	Edge
	Path           string // SVG path
	LabelX, LabelY float64
	RequestsPerSec float64
	ErrorRate      float64
}

type serviceMap struct {
	Nodes         []mapNode
	Edges         []mapEdge
	Width, Height float64
	Window        time.Duration
	// Over is the time the rates are averaged over: the window, or less
	// when the window's earliest call is younger (a store that started a
	// minute ago has a minute of calls, not fifteen).
	Over time.Duration
}

// Partial reports whether the rates cover less than the window.
func (m serviceMap) Partial() bool { return m.Over < m.Window }

// newServiceMap lays services out in columns by call depth: callers on
// the left, callees to their right. Its rates are per second over
// [since, until), or from the earliest call on when that is later.
func newServiceMap(edges []Edge, since, until time.Time) serviceMap {
	m := serviceMap{Window: until.Sub(since)}
	m.Over = ratePeriod(edges, since, until)
	edges = slices.Clone(edges)
	slices.SortFunc(edges, func(a, b Edge) int {
		return cmp.Or(cmp.Compare(a.Caller, b.Caller), cmp.Compare(a.Callee, b.Callee))
	})
	layer := map[string]int{}
	var names []string
	for _, e := range edges {
		for _, n := range []string{e.Caller, e.Callee} {
			if _, ok := layer[n]; !ok {
				layer[n] = 0
				names = append(names, n)
			}
		}
	}
	// Longest path from a caller, bounded so that cycles terminate.
	for range len(names) {
		changed := false
		for _, e := range edges {
			if e.Caller != e.Callee && layer[e.Callee] < layer[e.Caller]+1 && layer[e.Caller]+1 < len(names) {
				layer[e.Callee] = layer[e.Caller] + 1
				changed = true
			}
		}
		if !changed {
			break
		}
	}
	slices.SortFunc(names, func(a, b string) int { return cmp.Or(cmp.Compare(layer[a], layer[b]), cmp.Compare(a, b)) })
	pos := map[string]mapNode{}
	rows := map[int]int{}
	maxRows, maxLayer := 0, 0
	for _, n := range names {
		l := layer[n]
		node := mapNode{Name: n, X: mapMargin + float64(l)*mapColumnGap, Y: mapMargin + float64(rows[l])*mapRowGap, Class: serviceClass(n)}
		rows[l]++
		maxRows, maxLayer = max(maxRows, rows[l]), max(maxLayer, l)
		pos[n] = node
		m.Nodes = append(m.Nodes, node)
	}
	m.Width = 2*mapMargin + float64(maxLayer)*mapColumnGap + mapNodeWidth
	m.Height = 2*mapMargin + float64(max(maxRows-1, 0))*mapRowGap + mapNodeHeight + 20
	secs := m.Over.Seconds()
	for _, e := range edges {
		a, b := pos[e.Caller], pos[e.Callee]
		x1, y1 := a.X+mapNodeWidth, a.Y+mapNodeHeight/2
		x2, y2 := b.X, b.Y+mapNodeHeight/2
		var path string
		if e.Caller == e.Callee || x2 <= x1 {
			// Back edge or self call: loop below the nodes.
			x1, x2 = a.X+mapNodeWidth/2, b.X+mapNodeWidth/2
			y1, y2 = a.Y+mapNodeHeight, b.Y+mapNodeHeight
			path = "M" + px(x1) + " " + px(y1) + " C" + px(x1) + " " + px(y1+50) + " " + px(x2) + " " + px(y2+50) + " " + px(x2) + " " + px(y2+2)
		} else {
			cx := (x1 + x2) / 2
			path = "M" + px(x1) + " " + px(y1) + " C" + px(cx) + " " + px(y1) + " " + px(cx) + " " + px(y2) + " " + px(x2-2) + " " + px(y2)
		}
		me := mapEdge{Edge: e, Path: path, LabelX: (x1 + x2) / 2, LabelY: (y1+y2)/2 - 6}
		if e.Caller == e.Callee || b.X <= a.X {
			me.LabelY = max(y1, y2) + 40
		}
		if secs > 0 {
			me.RequestsPerSec = float64(e.Requests) / secs
		}
		if e.Requests > 0 {
			me.ErrorRate = float64(e.Errors) / float64(e.Requests)
		}
		m.Edges = append(m.Edges, me)
	}
	return m
}

// minRatePeriod keeps a map of a few calls made just now from showing
// rates over a few milliseconds.
const minRatePeriod = 10 * time.Second

// ratePeriod is how long the edges' calls were counted over: until minus
// the later of since and the earliest call (edges without First do not
// narrow it), at least minRatePeriod unless the window is shorter.
func ratePeriod(edges []Edge, since, until time.Time) time.Duration {
	start := time.Time{}
	for _, e := range edges {
		if !e.First.IsZero() && (start.IsZero() || e.First.Before(start)) {
			start = e.First
		}
	}
	if start.IsZero() || start.Before(since) {
		start = since
	}
	window := until.Sub(since)
	return min(window, max(until.Sub(start), minRatePeriod))
}

// sortRoutes returns routes ordered by one column.
func sortRoutes(routes []RouteStats, key string, desc bool) []RouteStats {
	out := slices.Clone(routes)
	by := func(a, b RouteStats) int {
		switch key {
		case "requests":
			return cmp.Compare(a.Requests, b.Requests)
		case "rps":
			return cmp.Compare(a.RequestsPerSec, b.RequestsPerSec)
		case "errors":
			return cmp.Compare(a.Errors, b.Errors)
		case "error_rate":
			return cmp.Compare(a.ErrorRate, b.ErrorRate)
		case "p50":
			return cmp.Compare(a.P50, b.P50)
		case "p95":
			return cmp.Compare(a.P95, b.P95)
		case "p99":
			return cmp.Compare(a.P99, b.P99)
		case "max":
			return cmp.Compare(a.Max, b.Max)
		default:
			return cmp.Compare(a.Route, b.Route)
		}
	}
	slices.SortStableFunc(out, func(a, b RouteStats) int {
		c := by(a, b)
		if desc {
			c = -c
		}
		return cmp.Or(c, cmp.Compare(a.Route, b.Route), cmp.Compare(a.Method, b.Method))
	})
	return out
}

// maxDuration is the longest trace of a result list, for duration bars.
func maxDuration(rows []TraceRow) time.Duration {
	var m time.Duration
	for _, r := range rows {
		m = max(m, r.Duration)
	}
	return m
}

func barWidth(d, longest time.Duration) string {
	if longest <= 0 {
		return "0%"
	}
	return pct(max(float64(d)/float64(longest)*100, 0.5))
}
