package store

import "time"

// Span is one stored span. IDs are lowercase hex (32 chars for trace IDs,
// 16 for span IDs); ParentSpanID is empty for a root span.
type Span struct {
	TraceID       string         `json:"trace_id"`
	SpanID        string         `json:"span_id"`
	ParentSpanID  string         `json:"parent_span_id,omitempty"`
	Service       string         `json:"service"`
	Instance      string         `json:"instance,omitempty"`
	Name          string         `json:"name"`
	Kind          string         `json:"kind"` // internal, server, client, producer, consumer, unspecified
	Start         time.Time      `json:"start"`
	Duration      time.Duration  `json:"duration"`
	StatusCode    string         `json:"status"` // unset, ok, error
	StatusMessage string         `json:"status_message,omitempty"`
	RequestID     string         `json:"request_id,omitempty"`
	Route         string         `json:"route,omitempty"`       // http.route attribute, if any
	HTTPStatus    int            `json:"http_status,omitempty"` // http.response.status_code, if any
	Attributes    map[string]any `json:"attributes,omitempty"`
	Events        []SpanEvent    `json:"events,omitempty"`
}

// SpanEvent is a timestamped annotation on a span.
type SpanEvent struct {
	Name       string         `json:"name"`
	Time       time.Time      `json:"time"`
	Attributes map[string]any `json:"attributes,omitempty"`
}

// LogRecord is one stored log line.
type LogRecord struct {
	// Seq is assigned by the store on write; it orders records that share
	// a timestamp and serves as a pagination cursor.
	Seq            int64          `json:"seq"`
	Time           time.Time      `json:"time"`
	Service        string         `json:"service"`
	Instance       string         `json:"instance,omitempty"`
	Level          string         `json:"level"` // DEBUG, INFO, WARN, ERROR (from severity)
	SeverityNumber int            `json:"severity_number,omitempty"`
	Body           string         `json:"body"`
	TraceID        string         `json:"trace_id,omitempty"`
	SpanID         string         `json:"span_id,omitempty"`
	RequestID      string         `json:"request_id,omitempty"`
	Attributes     map[string]any `json:"attributes,omitempty"`
}

// TraceSummary describes one trace for search results.
type TraceSummary struct {
	TraceID     string        `json:"trace_id"`
	RootService string        `json:"root_service"`
	RootName    string        `json:"root_name"` // e.g. "GET /api/orders/:id"
	Route       string        `json:"route,omitempty"`
	HTTPStatus  int           `json:"http_status,omitempty"`
	RequestID   string        `json:"request_id,omitempty"`
	Start       time.Time     `json:"start"`
	Duration    time.Duration `json:"duration"`
	SpanCount   int           `json:"span_count"`
	ErrorCount  int           `json:"error_count"`
	Services    []string      `json:"services"`
}

// TraceFilter selects trace summaries. Zero fields do not filter.
type TraceFilter struct {
	Service     string // any span of the trace belongs to this service
	Route       string // root span route template
	Status      string // "error", "ok", or an HTTP status code / class ("500", "5xx")
	MinDuration time.Duration
	RequestID   string
	// Attributes each match a span of the trace (not necessarily the
	// same span) whose attribute Key has the value Value, compared as
	// text: 42, 1.5 and true match numbers and booleans. At most
	// MaxAttributeMatches.
	Attributes []AttributeMatch
	Since      time.Time
	Until      time.Time
	Limit      int // default 50, max 1000
}

// AttributeMatch is one key=value term of a trace search.
type AttributeMatch struct {
	Key, Value string
}

// LogFilter selects log records, newest first. Zero fields do not filter.
type LogFilter struct {
	RequestID string
	TraceID   string
	Service   string
	Level     string // minimum level: DEBUG, INFO, WARN, ERROR
	Query     string // substring of the body
	// Attributes each match an attribute of the record (compared as
	// text, as in TraceFilter). At most MaxAttributeMatches.
	Attributes []AttributeMatch
	Since      time.Time
	Until      time.Time
	// BeforeSeq returns the records that come after the record with this
	// Seq in the result order (time, then Seq, descending): pass the last
	// Seq of a page to get the next page. Exact even when records arrived
	// out of time order; if that record is gone, Seq < BeforeSeq.
	BeforeSeq int64
	// AfterSeq returns only records stored after the record with this Seq
	// (Seq > AfterSeq: live tail, late arrivals with older times included).
	AfterSeq int64
	Limit    int // default 100, max 1000
}

// Edge is a caller -> callee relation seen in spans over a time range.
type Edge struct {
	Caller   string `json:"caller"`
	Callee   string `json:"callee"`
	Requests int64  `json:"requests"`
	Errors   int64  `json:"errors"`
	// First is when the earliest of these calls started.
	First time.Time `json:"first"`
}

// Stats describes the store for /metrics and the dashboard.
type Stats struct {
	Spans       int64 `json:"spans"`
	Logs        int64 `json:"logs"`
	Traces      int64 `json:"traces"`
	SizeBytes   int64 `json:"size_bytes"`
	QueueDepth  int   `json:"queue_depth"`
	WriteErrors int64 `json:"write_errors"`
	// Rejected counts batches refused because the write queue was full.
	Rejected int64 `json:"rejected"`
	// Deleted counts rows removed by retention.
	Deleted int64 `json:"deleted"`
}
