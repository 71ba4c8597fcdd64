package loki

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pilothouse/pilothouse/controlplane/store"
)

// QueryRangePath is Loki's range query endpoint, relative to its base URL.
const QueryRangePath = "/loki/api/v1/query_range"

// Defaults for zero ClientConfig fields.
const (
	DefaultLookback     = time.Hour
	DefaultWindowBefore = time.Minute
	DefaultWindowAfter  = 15 * time.Minute
	DefaultLimit        = 100
	MaxLimit            = 5000
	// MaxResponseBytes caps the query_range answer read.
	MaxResponseBytes = 32 << 20
)

// Errors of the query side.
var (
	// ErrQuery reports a query Loki refused or answered with something
	// other than streams.
	ErrQuery = errors.New("loki: query failed")
	// ErrUnsupportedFilter reports a store.LogFilter LogQL cannot
	// express as the store answers it (see LogQL).
	ErrUnsupportedFilter = errors.New("loki: unsupported filter")
)

// ClientConfig configures a Client. Zero values mean the defaults.
type ClientConfig struct {
	// URL is Loki's base URL (http://loki:3100).
	URL string
	// TenantID, when set, is sent as X-Scope-OrgID.
	TenantID string
	// Lookback is the window searched when a filter gives no Since.
	Lookback time.Duration
	// WindowBefore and WindowAfter narrow a request ID search around
	// the start of its trace.
	WindowBefore, WindowAfter time.Duration
	// Client sends the queries; nil means a client with a 30s timeout.
	Client *http.Client
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Client reads logs from Loki with LogQL. It is safe for concurrent use.
type Client struct {
	cfg      ClientConfig
	queryURL string
}

// NewClient returns a query client for the Loki at cfg.URL.
func NewClient(cfg ClientConfig) (*Client, error) {
	if cfg.URL == "" {
		return nil, ErrNoURL
	}
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("loki: URL %q: want http(s)://host[:port]", cfg.URL)
	}
	if cfg.Lookback <= 0 {
		cfg.Lookback = DefaultLookback
	}
	if cfg.WindowBefore <= 0 {
		cfg.WindowBefore = DefaultWindowBefore
	}
	if cfg.WindowAfter <= 0 {
		cfg.WindowAfter = DefaultWindowAfter
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 30 * time.Second}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Client{cfg: cfg, queryURL: strings.TrimRight(cfg.URL, "/") + QueryRangePath}, nil
}

// LogsByRequest returns the log lines of one request, newest first. A
// non-zero traceStart narrows the search to [traceStart-WindowBefore,
// traceStart+WindowAfter]; else the last Lookback is searched.
func (c *Client) LogsByRequest(ctx context.Context, requestID string, traceStart time.Time, limit int) ([]store.LogRecord, error) {
	f := store.LogFilter{RequestID: requestID, Limit: limit}
	if !traceStart.IsZero() {
		f.Since = traceStart.Add(-c.cfg.WindowBefore)
		f.Until = traceStart.Add(c.cfg.WindowAfter)
	}
	return c.Logs(ctx, f)
}

// Logs answers a store.LogFilter from Loki, newest first, so it can stand
// in for the store's Logs: see LogQL for how each field is asked and what
// Loki cannot be asked (ErrUnsupportedFilter, nothing sent). Since is
// inclusive and Until exclusive, as in the store; a zero Since searches
// the Lookback before Until (or now). Seq is 0 in the results.
func (c *Client) Logs(ctx context.Context, f store.LogFilter) ([]store.LogRecord, error) {
	query, err := LogQL(f)
	if err != nil {
		return nil, err
	}
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultLimit
	}
	limit = min(limit, MaxLimit)
	until := f.Until
	if until.IsZero() {
		until = c.cfg.Now()
	}
	since := f.Since
	if since.IsZero() {
		since = until.Add(-c.cfg.Lookback)
	}
	q := url.Values{}
	q.Set("query", query)
	q.Set("start", strconv.FormatInt(since.UnixNano(), 10))
	q.Set("end", strconv.FormatInt(until.UnixNano(), 10))
	q.Set("limit", strconv.Itoa(limit))
	q.Set("direction", "backward")
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.queryURL+"?"+q.Encode(), nil)
	if err != nil {
		return nil, fmt.Errorf("loki: query: %w", err)
	}
	// Ask for structured metadata apart from stream labels (Loki 3.x);
	// older answers merge them into the stream, which parses too.
	req.Header.Set("X-Loki-Response-Encoding-Flags", "categorize-labels")
	if c.cfg.TenantID != "" {
		req.Header.Set("X-Scope-OrgID", c.cfg.TenantID)
	}
	resp, err := c.cfg.Client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrQuery, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes))
	if err != nil {
		return nil, fmt.Errorf("%w: read answer: %w", ErrQuery, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: %s: %s", ErrQuery, resp.Status, strings.TrimSpace(string(body[:min(len(body), 512)])))
	}
	recs, err := DecodeQueryRange(body)
	if err != nil {
		return nil, err
	}
	if len(recs) > limit {
		recs = recs[:limit]
	}
	return recs, nil
}

// LogQL renders the LogQL query of f; its time range and limit travel as
// query_range parameters. Every value is a quoted LogQL string, so no
// service, text or ID can change the query's structure:
//   - Service is the stream selector {service="x"} ({service=~".+"} for all);
//   - Level, a minimum, is a regexp on the lower-case level label: INFO is
//     info|warn|error. DEBUG and TRACE select every level; records of a
//     TRACE severity number are labelled debug, so DEBUG finds them where
//     the store does not;
//   - Query matches the body as the store's LIKE does: a substring, ASCII
//     letters in any case, other characters exactly. Without ASCII
//     letters it is a line filter |= "q"; with them a regexp |~ where each
//     letter is a class ([eE]) and the rest is regexp.QuoteMeta'd;
//   - RequestID and TraceID are structured metadata filters.
//
// ErrUnsupportedFilter reports what Loki cannot answer as the store does:
// the Seq cursors (Loki records have none), attributes (pushed in the
// line, not as labels or metadata), FATAL or unknown levels (the
// label holds four levels; the store rejects unknown ones) and text that
// is not valid UTF-8.
func LogQL(f store.LogFilter) (string, error) {
	if f.BeforeSeq != 0 || f.AfterSeq != 0 {
		return "", fmt.Errorf("%w: BeforeSeq/AfterSeq", ErrUnsupportedFilter)
	}
	if len(f.Attributes) > 0 {
		return "", fmt.Errorf("%w: attributes (not labels or structured metadata in Loki)", ErrUnsupportedFilter)
	}
	levels, ok := levelsFrom(f.Level)
	if !ok {
		return "", fmt.Errorf("%w: level %q", ErrUnsupportedFilter, f.Level)
	}
	for _, v := range [...]struct{ name, val string }{
		{"service", f.Service}, {"query", f.Query}, {"request_id", f.RequestID}, {"trace_id", f.TraceID},
	} {
		if !utf8.ValidString(v.val) {
			return "", fmt.Errorf("%w: %s is not UTF-8", ErrUnsupportedFilter, v.name)
		}
	}
	var b strings.Builder
	b.WriteString("{")
	if f.Service != "" {
		b.WriteString(LabelService + "=" + strconv.Quote(f.Service))
	} else {
		b.WriteString(LabelService + `=~".+"`)
	}
	if levels != "" {
		b.WriteString(", " + LabelLevel + "=~" + strconv.Quote(levels))
	}
	b.WriteString("}")
	if f.Query != "" {
		if re, ok := caseFoldASCII(f.Query); ok {
			b.WriteString(" |~ " + strconv.Quote(re))
		} else {
			b.WriteString(" |= " + strconv.Quote(f.Query))
		}
	}
	if f.RequestID != "" {
		b.WriteString(" | " + MetaRequestID + "=" + strconv.Quote(f.RequestID))
	}
	if f.TraceID != "" {
		b.WriteString(" | " + MetaTraceID + "=" + strconv.Quote(f.TraceID))
	}
	return b.String(), nil
}

// caseFoldASCII is the regexp matching s with ASCII letters in either
// case and everything else literally (SQLite's LIKE); ok is false when s
// has no ASCII letter, so a plain substring filter does.
func caseFoldASCII(s string) (re string, ok bool) {
	var b strings.Builder
	for _, r := range s {
		switch {
		case 'a' <= r && r <= 'z':
			b.WriteString("[" + string(r) + string(r-'a'+'A') + "]")
			ok = true
		case 'A' <= r && r <= 'Z':
			b.WriteString("[" + string(r-'A'+'a') + string(r) + "]")
			ok = true
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	return b.String(), ok
}

// levelOrder is the level label's values, lowest first (push.go writes
// the record's level in lower case).
var levelOrder = []string{"debug", "info", "warn", "error"}

// levelsFrom is the regexp alternation of the levels at or above min;
// "" (no filter) for no level, TRACE and DEBUG. ok is false for a level
// the label cannot express: FATAL (a part of error) or an unknown one.
func levelsFrom(min string) (levels string, ok bool) {
	switch strings.ToLower(min) {
	case "", "trace":
		return "", true
	case "warning":
		min = "warn"
	}
	for i, l := range levelOrder {
		if strings.EqualFold(l, min) {
			if i == 0 {
				return "", true
			}
			return strings.Join(levelOrder[i:], "|"), true
		}
	}
	return "", false
}

// queryRangeResponse is the part of Loki's query_range answer read here.
type queryRangeResponse struct {
	Status string `json:"status"`
	Error  string `json:"error"`
	Data   struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Stream map[string]string   `json:"stream"`
			Values [][]json.RawMessage `json:"values"`
		} `json:"result"`
	} `json:"data"`
}

// valueMetadata is the optional third element of a value when the query
// asked for categorized labels.
type valueMetadata struct {
	StructuredMetadata map[string]string `json:"structuredMetadata"`
	Parsed             map[string]string `json:"parsed"`
}

// DecodeQueryRange maps a query_range answer of result type "streams" to
// log records, newest first.
func DecodeQueryRange(body []byte) ([]store.LogRecord, error) {
	var r queryRangeResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("%w: decode answer: %w", ErrQuery, err)
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("%w: status %q: %s", ErrQuery, r.Status, r.Error)
	}
	if r.Data.ResultType != "streams" {
		return nil, fmt.Errorf("%w: result type %q, want streams", ErrQuery, r.Data.ResultType)
	}
	var out []store.LogRecord
	for si, s := range r.Data.Result {
		for vi, v := range s.Values {
			rec, err := recordOf(s.Stream, v)
			if err != nil {
				return nil, fmt.Errorf("%w: result[%d].values[%d]: %w", ErrQuery, si, vi, err)
			}
			out = append(out, rec)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time.After(out[j].Time) })
	return out, nil
}

func recordOf(stream map[string]string, v []json.RawMessage) (store.LogRecord, error) {
	if len(v) < 2 {
		return store.LogRecord{}, fmt.Errorf("want [time, line], got %d elements", len(v))
	}
	var ts, line string
	if err := json.Unmarshal(v[0], &ts); err != nil {
		return store.LogRecord{}, fmt.Errorf("time: %w", err)
	}
	ns, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return store.LogRecord{}, fmt.Errorf("time: %w", err)
	}
	if err := json.Unmarshal(v[1], &line); err != nil {
		return store.LogRecord{}, fmt.Errorf("line: %w", err)
	}
	labels := make(map[string]string, len(stream)+4)
	for k, val := range stream {
		labels[k] = val
	}
	if len(v) > 2 {
		var meta valueMetadata
		if err := json.Unmarshal(v[2], &meta); err != nil {
			return store.LogRecord{}, fmt.Errorf("metadata: %w", err)
		}
		for k, val := range meta.StructuredMetadata {
			labels[k] = val
		}
		for k, val := range meta.Parsed {
			labels[k] = val
		}
	}
	rec := store.LogRecord{
		Time: time.Unix(0, ns).UTC(),
		Body: line,
	}
	for _, k := range sortedKeys(labels) {
		val := labels[k]
		switch k {
		case LabelService:
			rec.Service = val
		case LabelLevel:
			rec.Level = strings.ToUpper(val)
		case MetaRequestID:
			rec.RequestID = val
		case MetaTraceID:
			rec.TraceID = val
		case MetaSpanID:
			rec.SpanID = val
		case MetaInstance:
			rec.Instance = val
		default:
			if rec.Attributes == nil {
				rec.Attributes = make(map[string]any)
			}
			rec.Attributes[k] = val
		}
	}
	if rec.Level == "WARNING" {
		rec.Level = "WARN"
	}
	return rec, nil
}
