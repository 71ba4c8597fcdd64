package tracebackend

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pilothouse/pilothouse/agent/wire"
	"github.com/pilothouse/pilothouse/controlplane/store"
)

// Search paths, and the attributes searched on.
const (
	JaegerSearchPath = "/api/traces"
	TempoSearchPath  = "/api/search"

	attrRoute      = "http.route"
	attrHTTPStatus = "http.response.status_code"
)

// tempoMaxWindow is how far back a Tempo search given only an end goes:
// Tempo's default max_duration for a search.
const tempoMaxWindow = 168 * time.Hour

// Search returns summaries of the traces the backend finds for f, newest
// start first, at most f.Limit of them (the store's default and maximum
// apply). Both backends match all conditions within a search of their
// own, which may leave out traces the store would list, never the other
// way round: a filter a backend cannot express answers nil, nil without
// asking it.
//
// Jaeger requires a service: without f.Service nothing is asked. Jaeger
// matches a span of that service carrying the route (http.route), request
// ID (request_id), error (error=true) or HTTP status tags asked for; its
// answer holds whole traces, which are summarized as the store does (root
// span: no parent, else the earliest) and checked against f with the
// store's meaning (route and HTTP status of the root span, start in
// [Since, Until)), so a row matches f exactly. Status "ok" and classes
// ("5xx") are not asked.
//
// Tempo is asked with tags in logfmt (service.name, http.route,
// request_id, status=error), minDuration and a window in whole seconds;
// only status "error" is asked. Its answer has the root span's service
// and name, the start and the duration (in milliseconds), and, when
// Tempo sends serviceStats, the services and span and error counts;
// route, HTTP status and request ID stay zero. As Tempo matches a route
// on any span, a row is kept for a route only if its root span's name is
// "{method} {route}" (the OpenTelemetry HTTP server span name) or the
// route. Starts are checked against [Since, Until) to the nanosecond. A
// window with only Since ends now; with only Until it starts a week
// earlier.
//
// Errors wrap ErrRead (a failed, refused, malformed or oversized answer)
// or are the context's error when ctx ends.
func (r *Reader) Search(ctx context.Context, f store.TraceFilter) ([]store.TraceSummary, error) {
	limit := store.TraceLimit(f.Limit)
	var (
		path  string
		query url.Values
	)
	if r.cfg.Kind == Jaeger {
		path, query = JaegerSearchPath, jaegerQuery(f, limit)
	} else {
		path, query = TempoSearchPath, tempoQuery(f, limit, r.cfg.Now())
	}
	if query == nil {
		return nil, nil
	}
	status, body, err := r.get(ctx, path, query)
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("%w: search: %d %s: %s", ErrRead, status, http.StatusText(status), errorText(body))
	}
	decode, matches := DecodeTempoSearch, matchesTempo
	if r.cfg.Kind == Jaeger {
		decode, matches = DecodeJaegerSearch, matchesStore
	}
	sums, err := decode(body)
	if err != nil {
		return nil, err
	}
	sums = slices.DeleteFunc(sums, func(s store.TraceSummary) bool { return !matches(f, s) })
	SortSummaries(sums)
	return sums[:min(len(sums), limit)], nil
}

// SortSummaries orders summaries newest start first, then by trace ID,
// as search results are listed.
func SortSummaries(sums []store.TraceSummary) {
	slices.SortStableFunc(sums, func(a, b store.TraceSummary) int {
		if c := b.Start.Compare(a.Start); c != 0 {
			return c
		}
		return strings.Compare(a.TraceID, b.TraceID)
	})
}

// httpStatusCode is the HTTP status a filter's Status names exactly
// ("503"), or 0.
func httpStatusCode(status string) int {
	if len(status) != 3 {
		return 0
	}
	code, err := strconv.Atoi(status)
	if err != nil || code < 100 {
		return 0
	}
	return code
}

// jaegerQuery is the query of a Jaeger search for f, or nil when Jaeger
// cannot be asked.
func jaegerQuery(f store.TraceFilter, limit int) url.Values {
	if f.Service == "" {
		return nil
	}
	tags := map[string]string{}
	switch status := strings.ToLower(f.Status); {
	case status == "":
	case status == "error":
		tags[tagError] = "true"
	case httpStatusCode(status) != 0:
		tags[attrHTTPStatus] = status
	default:
		return nil
	}
	if f.Route != "" {
		tags[attrRoute] = f.Route
	}
	if f.RequestID != "" {
		tags[wire.AttrRequestID] = f.RequestID
	}
	for _, m := range f.Attributes {
		tags[m.Key] = m.Value
	}
	q := url.Values{"service": {f.Service}, "limit": {strconv.Itoa(limit)}}
	if len(tags) > 0 {
		b, err := json.Marshal(tags) // keys sorted
		if err != nil {
			return nil
		}
		q.Set("tags", string(b))
	}
	if f.MinDuration > 0 {
		q.Set("minDuration", f.MinDuration.String())
	}
	if !f.Since.IsZero() {
		q.Set("start", strconv.FormatInt(f.Since.UnixMicro(), 10))
	}
	if !f.Until.IsZero() {
		q.Set("end", strconv.FormatInt(f.Until.UnixMicro(), 10))
	}
	return q
}

// tempoQuery is the query of a Tempo search for f, or nil when Tempo
// cannot be asked.
func tempoQuery(f store.TraceFilter, limit int, now time.Time) url.Values {
	var tags []string
	if f.Service != "" {
		tags = append(tags, logfmtPair(attrServiceName, f.Service))
	}
	if f.Route != "" {
		tags = append(tags, logfmtPair(attrRoute, f.Route))
	}
	if f.RequestID != "" {
		tags = append(tags, logfmtPair(wire.AttrRequestID, f.RequestID))
	}
	for _, m := range f.Attributes {
		tags = append(tags, logfmtPair(m.Key, m.Value))
	}
	switch strings.ToLower(f.Status) {
	case "":
	case "error":
		tags = append(tags, "status=error")
	default:
		return nil
	}
	q := url.Values{"limit": {strconv.Itoa(limit)}}
	if len(tags) > 0 {
		q.Set("tags", strings.Join(tags, " "))
	}
	if f.MinDuration > 0 {
		q.Set("minDuration", f.MinDuration.String())
	}
	if !f.Since.IsZero() || !f.Until.IsZero() {
		since, until := f.Since, f.Until
		if until.IsZero() {
			until = now
		}
		if since.IsZero() {
			since = until.Add(-tempoMaxWindow)
		}
		end := until.Unix()
		if until.After(time.Unix(end, 0)) {
			end++ // Until is exclusive to the nanosecond; Tempo's end is in seconds
		}
		q.Set("start", strconv.FormatInt(since.Unix(), 10))
		q.Set("end", strconv.FormatInt(end, 10))
	}
	return q
}

// logfmtPair is key=value in logfmt, the value quoted (JSON escapes) when
// it holds a space, '=', a quote or a control character, or is empty.
func logfmtPair(key, value string) string {
	if value != "" && !strings.ContainsFunc(value, func(c rune) bool { return c <= ' ' || c == '=' || c == '"' || c == 0x7f }) {
		return key + "=" + value
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(value); err != nil {
		return key + `=""`
	}
	return key + "=" + strings.TrimSuffix(b.String(), "\n")
}

// matchesStore reports whether s matches f as the store's search does.
func matchesStore(f store.TraceFilter, s store.TraceSummary) bool {
	if f.Service != "" && !slices.Contains(s.Services, serviceKey(f.Service)) {
		return false
	}
	if (f.Route != "" && s.Route != f.Route) || (f.RequestID != "" && s.RequestID != f.RequestID) {
		return false
	}
	if !inWindow(f, s.Start) || s.Duration < f.MinDuration {
		return false
	}
	switch status := strings.ToLower(f.Status); {
	case status == "":
		return true
	case status == "error":
		return s.ErrorCount > 0 || s.HTTPStatus >= 500
	default:
		return s.HTTPStatus == httpStatusCode(status)
	}
}

// matchesTempo checks what a Tempo summary tells of f.
func matchesTempo(f store.TraceFilter, s store.TraceSummary) bool {
	if f.Route != "" && s.RootName != f.Route && !strings.HasSuffix(s.RootName, " "+f.Route) {
		return false
	}
	return inWindow(f, s.Start)
}

func inWindow(f store.TraceFilter, start time.Time) bool {
	return (f.Since.IsZero() || !start.Before(f.Since)) && (f.Until.IsZero() || start.Before(f.Until))
}

// serviceKey is a service name as the store keeps it in a trace's set.
func serviceKey(s string) string { return strings.ReplaceAll(s, ",", "_") }

// DecodeJaegerSearch maps Jaeger's search answer (/api/traces?service=,
// whole traces) to one summary per trace, built from its spans as the
// store builds its own. Jaeger's error list is reported when there is no
// data.
func DecodeJaegerSearch(body []byte) ([]store.TraceSummary, error) {
	spans, err := DecodeJaeger(body)
	if err != nil {
		return nil, err
	}
	byTrace := make(map[string][]store.Span)
	var order []string
	for _, sp := range spans {
		if _, ok := byTrace[sp.TraceID]; !ok {
			order = append(order, sp.TraceID)
		}
		byTrace[sp.TraceID] = append(byTrace[sp.TraceID], sp)
	}
	sums := make([]store.TraceSummary, 0, len(order))
	for _, id := range order {
		sums = append(sums, Summarize(byTrace[id]))
	}
	return sums, nil
}

// Summarize builds the summary of one trace's spans, ordered by start,
// as the store does: the root span (no parent; the earliest of several,
// else the earliest span) gives the root service and name, route, HTTP
// status and request ID (else the first span's that has one); start and
// duration cover every span; errors are spans with error status.
func Summarize(spans []store.Span) store.TraceSummary {
	if len(spans) == 0 {
		return store.TraceSummary{}
	}
	root := &spans[0]
	for i := range spans {
		if spans[i].ParentSpanID == "" {
			root = &spans[i]
			break
		}
	}
	s := store.TraceSummary{
		TraceID: root.TraceID, RootService: root.Service, RootName: root.Name, Route: root.Route,
		HTTPStatus: root.HTTPStatus, RequestID: root.RequestID, Start: spans[0].Start.UTC(), SpanCount: len(spans),
	}
	end := spans[0].Start
	for _, sp := range spans {
		if e := sp.Start.Add(sp.Duration); e.After(end) {
			end = e
		}
		if sp.StatusCode == "error" {
			s.ErrorCount++
		}
		if k := serviceKey(sp.Service); !slices.Contains(s.Services, k) {
			s.Services = append(s.Services, k)
		}
		if s.RequestID == "" {
			s.RequestID = sp.RequestID
		}
	}
	slices.Sort(s.Services)
	s.Duration = end.Sub(s.Start)
	return s
}

// tempoSearchResponse is Tempo's search answer (/api/search).
type tempoSearchResponse struct {
	Traces []struct {
		TraceID           string          `json:"traceID"`
		RootServiceName   string          `json:"rootServiceName"`
		RootTraceName     string          `json:"rootTraceName"`
		StartTimeUnixNano json.RawMessage `json:"startTimeUnixNano"` // a string (protobuf JSON) or a number
		DurationMs        int64           `json:"durationMs"`
		ServiceStats      map[string]struct {
			SpanCount  int `json:"spanCount"`
			ErrorCount int `json:"errorCount"`
		} `json:"serviceStats"`
	} `json:"traces"`
}

// DecodeTempoSearch maps Tempo's search answer to summaries. Tempo gives
// the root service and name, start, duration (whole milliseconds) and,
// in newer versions, serviceStats (services, span and error counts);
// route, HTTP status and request ID stay zero, as do the counts and
// services without serviceStats. Trace IDs, which Tempo may write
// without leading zeros, are padded to 32 digits.
func DecodeTempoSearch(body []byte) ([]store.TraceSummary, error) {
	var r tempoSearchResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("%w: decode Tempo search: %w", ErrRead, err)
	}
	sums := make([]store.TraceSummary, 0, len(r.Traces))
	for i, t := range r.Traces {
		id := strings.ToLower(t.TraceID)
		if len(id) < 32 {
			id = strings.Repeat("0", 32-len(id)) + id
		}
		if len(id) != 32 || !isHex(id) {
			return nil, fmt.Errorf("%w: Tempo search: trace %d: bad trace ID %q", ErrRead, i, t.TraceID)
		}
		startNs, err := strconv.ParseInt(string(bytes.Trim(t.StartTimeUnixNano, `"`)), 10, 64)
		if err != nil || startNs < 0 {
			return nil, fmt.Errorf("%w: Tempo search: trace %s: bad startTimeUnixNano %s", ErrRead, id, t.StartTimeUnixNano)
		}
		if t.DurationMs < 0 || t.DurationMs > int64(time.Duration(1<<62)/time.Millisecond) {
			return nil, fmt.Errorf("%w: Tempo search: trace %s: bad durationMs %d", ErrRead, id, t.DurationMs)
		}
		s := store.TraceSummary{
			TraceID: id, RootService: t.RootServiceName, RootName: t.RootTraceName,
			Start: time.Unix(0, startNs).UTC(), Duration: time.Duration(t.DurationMs) * time.Millisecond,
		}
		for svc, st := range t.ServiceStats {
			s.Services = append(s.Services, serviceKey(svc))
			s.SpanCount += st.SpanCount
			s.ErrorCount += st.ErrorCount
		}
		slices.Sort(s.Services)
		s.Services = slices.Compact(s.Services)
		sums = append(sums, s)
	}
	return sums, nil
}
