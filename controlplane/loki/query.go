package loki

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

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
	// ErrUnsupportedFilter reports a store.LogFilter field LogQL cannot
	// express here (the store's Seq cursors).
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
// in for the store's Logs. Seq is 0 in the results; BeforeSeq and
// AfterSeq are not supported (ErrUnsupportedFilter).
func (c *Client) Logs(ctx context.Context, f store.LogFilter) ([]store.LogRecord, error) {
	if f.BeforeSeq != 0 || f.AfterSeq != 0 {
		return nil, fmt.Errorf("%w: BeforeSeq/AfterSeq", ErrUnsupportedFilter)
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
	q.Set("query", LogQL(f))
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

// LogQL renders the LogQL query of f (its time range and limit travel as
// query_range parameters).
func LogQL(f store.LogFilter) string {
	var b strings.Builder
	b.WriteString("{")
	if f.Service != "" {
		b.WriteString(LabelService + "=" + strconv.Quote(f.Service))
	} else {
		b.WriteString(LabelService + `=~".+"`)
	}
	if lv := levelsFrom(f.Level); lv != "" {
		b.WriteString(", " + LabelLevel + `=~"` + lv + `"`)
	}
	b.WriteString("}")
	if f.Query != "" {
		b.WriteString(" |= " + strconv.Quote(f.Query))
	}
	if f.RequestID != "" {
		b.WriteString(" | " + MetaRequestID + "=" + strconv.Quote(f.RequestID))
	}
	if f.TraceID != "" {
		b.WriteString(" | " + MetaTraceID + "=" + strconv.Quote(f.TraceID))
	}
	return b.String()
}

var levelOrder = []string{"debug", "info", "warn", "error"}

// levelsFrom is the regexp alternation of levels at or above min; ""
// when min is empty or unknown (no filter).
func levelsFrom(min string) string {
	for i, l := range levelOrder {
		if strings.EqualFold(l, min) {
			if i == 0 {
				return ""
			}
			return strings.Join(levelOrder[i:], "|")
		}
	}
	return ""
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
