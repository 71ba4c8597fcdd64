package ui

import (
	"context"
	"errors"
	"time"
)

// ErrNotFound is returned by a Source when a service or trace is unknown.
// A Source may also wrap ErrBadParam when it rejects a query; the page
// then answers 400 with the message.
var ErrNotFound = errors.New("ui: not found")

// Source is what the dashboard reads. Implementations must be safe for
// concurrent use; every method may be called from many requests at once.
type Source interface {
	// Services lists every known service as of now, sorted by name.
	Services(ctx context.Context, now time.Time) ([]ServiceSummary, error)
	// Service describes one service; ErrNotFound when it is unknown.
	Service(ctx context.Context, name string, now time.Time) (ServiceDetail, error)
	// Traces searches trace summaries, newest first.
	Traces(ctx context.Context, q TraceQuery) ([]TraceRow, error)
	// Trace returns every span of one trace ordered by start; ErrNotFound
	// when it is unknown.
	Trace(ctx context.Context, traceID string) (Trace, error)
	// Logs searches log lines, newest first.
	Logs(ctx context.Context, q LogQuery) ([]LogLine, error)
	// Edges returns caller -> callee relations seen in [since, until).
	Edges(ctx context.Context, since, until time.Time) ([]Edge, error)
}

// Health is the state of a service or an instance.
type Health string

// Health values.
const (
	Healthy  Health = "healthy"
	Degraded Health = "degraded"
	Down     Health = "down"
)

// Point is one time bucket of a service's traffic.
type Point struct {
	Time     time.Time
	Requests int64
	Errors   int64
	P95      time.Duration
	// Span is how much of the point's bucket has passed; less than the
	// others' for the bucket in progress, 0 when unknown (a full bucket).
	Span time.Duration
}

// Drops counts telemetry an agent could not deliver.
type Drops struct {
	Spans uint64
	Logs  uint64
	// LocalLogs are log lines the agents could not write to their own
	// stderr (or other local writer) in time.
	LocalLogs    uint64
	ExportErrors uint64
}

// Any reports whether anything was dropped or failed.
func (d Drops) Any() bool { return d.Spans+d.Logs+d.LocalLogs+d.ExportErrors > 0 }

// ServiceSummary is one row of the overview.
type ServiceSummary struct {
	Name           string
	Health         Health
	InstanceCount  int
	RequestsPerSec float64
	ErrorRate      float64 // 0..1
	P95            time.Duration
	Series         []Point // oldest first
	Drops          Drops
}

// RouteStats are RED figures for one route template.
type RouteStats struct {
	Method         string
	Route          string
	Requests       int64
	Errors         int64
	RequestsPerSec float64
	ErrorRate      float64 // 0..1
	P50, P95, P99  time.Duration
	Max            time.Duration
}

// Check is the outcome of one health check of an instance.
type Check struct {
	Name     string
	OK       bool
	Message  string
	Duration time.Duration
}

// Instance is one running copy of a service.
type Instance struct {
	ID            string
	Address       string
	Version       string
	StartedAt     time.Time
	LastSeen      time.Time
	Health        Health
	Checks        []Check
	PolicyVersion int64
	PolicyError   string
	Drops         Drops
}

// ServiceDetail is everything the service page shows.
type ServiceDetail struct {
	Summary      ServiceSummary
	Routes       []RouteStats
	Instances    []Instance
	RecentErrors []TraceRow // newest first
	Slowest      []TraceRow // slowest first
}

// TraceQuery selects traces. Zero fields do not filter.
type TraceQuery struct {
	Service     string
	Route       string
	Status      string // "error", "ok", an HTTP status ("503") or class ("5xx")
	MinDuration time.Duration
	RequestID   string
	// Attributes each match a span of the trace whose attribute Key has
	// the value Value (compared as text).
	Attributes []Attr
	Since      time.Time
	Until      time.Time
	Limit      int
}

// TraceRow is one trace in search results.
type TraceRow struct {
	TraceID     string
	RootService string
	RootName    string
	Route       string
	HTTPStatus  int
	RequestID   string
	Start       time.Time
	Duration    time.Duration
	SpanCount   int
	ErrorCount  int
	Services    []string
}

// Attr is one attribute, rendered as text.
type Attr struct {
	Key   string
	Value string
}

// SpanEvent is a timestamped annotation on a span.
type SpanEvent struct {
	Name       string
	Time       time.Time
	Attributes []Attr
}

// Span is one span of a trace.
type Span struct {
	SpanID        string
	ParentSpanID  string
	Service       string
	Instance      string
	Name          string
	Kind          string
	Start         time.Time
	Duration      time.Duration
	Status        string // unset, ok, error
	StatusMessage string
	RequestID     string
	Route         string
	HTTPStatus    int
	Attributes    []Attr // sorted by key
	Events        []SpanEvent
}

// Trace is every span of one trace, ordered by start.
type Trace struct {
	TraceID string
	Spans   []Span
}

// LogQuery selects log lines, newest first. Zero fields do not filter.
type LogQuery struct {
	RequestID string
	TraceID   string
	Service   string
	Level     string // minimum level: DEBUG, INFO, WARN, ERROR
	Text      string // substring of the body
	// Attributes each match an attribute of the record (compared as
	// text).
	Attributes []Attr
	Since      time.Time
	Until      time.Time
	BeforeSeq  int64 // older page: Seq < BeforeSeq
	AfterSeq   int64 // live tail: Seq > AfterSeq
	Limit      int
}

// LogLine is one log record.
type LogLine struct {
	Seq        int64
	Time       time.Time
	Service    string
	Instance   string
	Level      string
	Body       string
	TraceID    string
	SpanID     string
	RequestID  string
	Attributes []Attr
}

// Edge is a caller -> callee relation over a time range.
type Edge struct {
	Caller   string
	Callee   string
	Requests int64
	Errors   int64
	// First is when the earliest of these calls started (zero: unknown).
	First time.Time
}
