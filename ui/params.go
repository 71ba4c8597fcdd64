package ui

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// ErrBadParam is wrapped by every query-parameter error, so a handler can
// answer 400 with the message.
var ErrBadParam = errors.New("ui: bad query parameter")

// ParamError names the query parameter at fault and why.
type ParamError struct {
	Param  string
	Value  string
	Reason string
}

func (e *ParamError) Error() string {
	return fmt.Sprintf("ui: query parameter %q = %q: %s", e.Param, e.Value, e.Reason)
}

// Unwrap makes errors.Is(err, ErrBadParam) true.
func (e *ParamError) Unwrap() error { return ErrBadParam }

// Message is the text shown to the user.
func (e *ParamError) Message() string {
	return fmt.Sprintf("%s %q: %s", e.Param, e.Value, e.Reason)
}

const (
	maxTextParam     = 500
	defaultTraceRows = 50
	defaultLogRows   = 100
	maxRows          = 1000
)

// timeLayouts are accepted for absolute times, besides durations ("15m",
// "2d") that mean "that long before now". Times without a zone are UTC.
func timeLayouts() []string {
	return []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02 15:04:05", "2006-01-02 15:04", "2006-01-02"}
}

// paramReader reads query parameters and keeps the first error.
type paramReader struct {
	v   url.Values
	now time.Time
	err error
}

func (p *paramReader) fail(param, value, reason string) {
	if p.err == nil {
		p.err = &ParamError{Param: param, Value: value, Reason: reason}
	}
}

func (p *paramReader) text(name string) string {
	s := strings.TrimSpace(p.v.Get(name))
	if len(s) > maxTextParam {
		p.fail(name, s[:40]+"...", fmt.Sprintf("longer than %d bytes", maxTextParam))
		return ""
	}
	return s
}

func (p *paramReader) duration(name string) time.Duration {
	s := p.text(name)
	if s == "" {
		return 0
	}
	d, err := parseDuration(s)
	if err != nil || d < 0 {
		p.fail(name, s, "not a duration like 250ms, 1.5s, 15m or 2d")
		return 0
	}
	return d
}

// instant reads a time: absolute, or a duration meaning now minus it.
func (p *paramReader) instant(name string) time.Time {
	s := p.text(name)
	if s == "" {
		return time.Time{}
	}
	if d, err := parseDuration(s); err == nil && d >= 0 {
		return p.now.Add(-d)
	}
	for _, l := range timeLayouts() {
		if t, err := time.ParseInLocation(l, s, time.UTC); err == nil {
			return t
		}
	}
	p.fail(name, s, "not a time (2026-01-02T15:04:05Z, 2026-01-02T15:04) or an age (15m, 2h, 7d)")
	return time.Time{}
}

func (p *paramReader) integer(name string, min, max int64) int64 {
	s := p.text(name)
	if s == "" {
		return 0
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < min || n > max {
		p.fail(name, s, fmt.Sprintf("not a whole number between %d and %d", min, max))
		return 0
	}
	return n
}

// traceID reads a W3C trace ID: 32 hex digits, returned in lowercase.
func (p *paramReader) traceID(name string) string {
	s := strings.ToLower(p.text(name))
	if s == "" {
		return ""
	}
	if !isTraceID(s) {
		p.fail(name, s, "not a trace ID (32 hex digits)")
		return ""
	}
	return s
}

func (p *paramReader) timeRange(since, until string) (time.Time, time.Time) {
	s, u := p.instant(since), p.instant(until)
	if !s.IsZero() && !u.IsZero() && !u.After(s) {
		p.fail(until, p.v.Get(until), "must be after "+since)
	}
	return s, u
}

// parseDuration is time.ParseDuration plus a "d" (24h) unit.
func parseDuration(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.ParseFloat(n, 64)
		if err != nil {
			return 0, fmt.Errorf("ui: bad duration %q: %w", s, err)
		}
		return time.Duration(days * float64(24*time.Hour)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("ui: bad duration %q: %w", s, err)
	}
	return d, nil
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') && (c < 'A' || c > 'F') {
			return false
		}
	}
	return true
}

// isTraceID reports whether s looks like a W3C trace ID (32 hex digits).
func isTraceID(s string) bool { return len(s) == 32 && isHex(s) }

// validStatus reports whether s is a trace status filter.
func validStatus(s string) bool {
	switch s {
	case "", "error", "ok":
		return true
	}
	if len(s) != 3 {
		return false
	}
	if s[1:] == "xx" {
		return s[0] >= '1' && s[0] <= '5'
	}
	n, err := strconv.Atoi(s)
	return err == nil && n >= 100 && n <= 599
}

// TraceForm is a trace search as typed, echoed back into the form.
type TraceForm struct {
	Service, Route, Status, Min, RequestID, TraceID, Since, Until, Attr string
}

// maxAttrFilters bounds the attribute terms of one search (the store's
// own bound).
const maxAttrFilters = 4

// attributes reads the attr parameters, each "key=value"; the source
// checks the key's characters.
func (p *paramReader) attributes(name string) []Attr {
	vs := p.v[name]
	if len(vs) > maxAttrFilters {
		p.fail(name, strings.Join(vs, " "), fmt.Sprintf("at most %d attributes", maxAttrFilters))
		return nil
	}
	var out []Attr
	for _, v := range vs {
		if strings.TrimSpace(v) == "" {
			continue // the form's empty field
		}
		if len(v) > maxTextParam {
			p.fail(name, v[:40]+"...", fmt.Sprintf("longer than %d bytes", maxTextParam))
			return nil
		}
		k, val, ok := strings.Cut(v, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			p.fail(name, v, "not key=value, like order_id=42")
			return nil
		}
		out = append(out, Attr{Key: k, Value: strings.TrimSpace(val)})
	}
	return out
}

// parseTraceQuery reads the /traces query parameters. A trace ID, if any,
// is returned separately: the handler goes straight to that trace.
func parseTraceQuery(v url.Values, now time.Time) (TraceQuery, TraceForm, string, error) {
	p := &paramReader{v: v, now: now}
	form := TraceForm{
		Service: v.Get("service"), Route: v.Get("route"), Status: v.Get("status"), Min: v.Get("min"),
		RequestID: v.Get("request_id"), TraceID: v.Get("trace_id"), Since: v.Get("since"), Until: v.Get("until"),
		Attr: v.Get("attr"),
	}
	q := TraceQuery{
		Service:     p.text("service"),
		Route:       p.text("route"),
		Status:      strings.ToLower(p.text("status")),
		MinDuration: p.duration("min"),
		RequestID:   p.text("request_id"),
		Attributes:  p.attributes("attr"),
		Limit:       int(p.integer("limit", 1, maxRows)),
	}
	if !validStatus(q.Status) {
		p.fail("status", q.Status, `not one of "error", "ok", an HTTP status like 503 or a class like 5xx`)
	}
	traceID := p.traceID("trace_id")
	q.Since, q.Until = p.timeRange("since", "until")
	if q.Limit == 0 {
		q.Limit = defaultTraceRows
	}
	return q, form, traceID, p.err
}

// LogForm is a log search as typed, echoed back into the form.
type LogForm struct {
	RequestID, TraceID, Service, Level, Text, Since, Until, Attr string
}

func levels() []string { return []string{"DEBUG", "INFO", "WARN", "ERROR"} }

// parseLogQuery reads the /logs query parameters.
func parseLogQuery(v url.Values, now time.Time) (LogQuery, LogForm, error) {
	p := &paramReader{v: v, now: now}
	form := LogForm{
		RequestID: v.Get("request_id"), TraceID: v.Get("trace_id"), Service: v.Get("service"),
		Level: v.Get("level"), Text: v.Get("q"), Since: v.Get("since"), Until: v.Get("until"),
		Attr: v.Get("attr"),
	}
	q := LogQuery{
		RequestID:  p.text("request_id"),
		TraceID:    p.traceID("trace_id"),
		Service:    p.text("service"),
		Level:      strings.ToUpper(p.text("level")),
		Text:       p.text("q"),
		Attributes: p.attributes("attr"),
		BeforeSeq:  p.integer("before", 1, 1<<62),
		AfterSeq:   p.integer("after", 0, 1<<62),
		Limit:      int(p.integer("limit", 1, maxRows)),
	}
	if q.Level != "" && !contains(levels(), q.Level) {
		p.fail("level", q.Level, "not one of DEBUG, INFO, WARN, ERROR")
	}
	q.Since, q.Until = p.timeRange("since", "until")
	if q.Limit == 0 {
		q.Limit = defaultLogRows
	}
	return q, form, p.err
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// routeSortKeys are the sortable columns of the routes table.
func routeSortKeys() []string {
	return []string{"route", "requests", "rps", "errors", "error_rate", "p50", "p95", "p99", "max"}
}

// parseRouteSort reads sort and dir for the service page.
func parseRouteSort(v url.Values) (string, bool, error) {
	p := &paramReader{v: v}
	key := p.text("sort")
	if key == "" {
		key = "route"
	}
	if !contains(routeSortKeys(), key) {
		p.fail("sort", key, "not one of "+strings.Join(routeSortKeys(), ", "))
	}
	desc := false
	switch dir := p.text("dir"); dir {
	case "", "asc":
	case "desc":
		desc = true
	default:
		p.fail("dir", dir, `not "asc" or "desc"`)
	}
	return key, desc, p.err
}

// maxWindow caps the service map's window: the store derives edges from
// spans on every request, at about 90 ms per hour of 1.2 req/s traffic
// (see BenchmarkRealStore in controlplane/dashboard), so longer windows
// would break the page's latency budget.
const maxWindow = time.Hour

// parseWindow reads the map's window: how far back edges reach.
func parseWindow(v url.Values) (time.Duration, error) {
	p := &paramReader{v: v}
	d := p.duration("window")
	if p.err == nil && d != 0 && (d < time.Minute || d > maxWindow) {
		p.fail("window", v.Get("window"), "must be between 1m and 1h")
	}
	if d == 0 {
		d = 15 * time.Minute
	}
	return d, p.err
}
