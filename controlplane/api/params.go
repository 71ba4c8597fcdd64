package api

import (
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/pilothouse/pilothouse/controlplane/store"
)

// ParamError names the query parameter at fault.
type ParamError struct {
	Param   string `json:"field"`
	Message string `json:"error"`
}

func (e *ParamError) Error() string { return "api: " + e.Param + ": " + e.Message }

var (
	traceIDPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)
	statusPattern  = regexp.MustCompile(`^(error|ok|[1-5][0-9][0-9]|[1-5]xx)$`)
)

// Limits on query parameters.
const (
	MaxLimit      = 1000
	maxParamBytes = 512
)

// params reads typed query parameters, keeping the first error.
type params struct {
	q   url.Values
	now time.Time
	err *ParamError
}

func (p *params) fail(name, format string, args ...any) {
	if p.err == nil {
		p.err = &ParamError{Param: name, Message: fmt.Sprintf(format, args...)}
	}
}

func (p *params) str(name string) string {
	v := strings.TrimSpace(p.q.Get(name))
	if len(v) > maxParamBytes {
		p.fail(name, "longer than %d bytes", maxParamBytes)
		return ""
	}
	return v
}

// time accepts RFC 3339, Unix seconds, or a duration meaning "that long ago".
func (p *params) time(name string) time.Time {
	v := p.str(name)
	if v == "" {
		return time.Time{}
	}
	if d, err := time.ParseDuration(v); err == nil {
		if d < 0 {
			p.fail(name, "a relative time must be positive, like 15m")
			return time.Time{}
		}
		return p.now.Add(-d)
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
		return time.Unix(n, 0)
	}
	p.fail(name, "must be RFC 3339 (2026-01-02T15:04:05Z), Unix seconds, or a duration ago like 15m")
	return time.Time{}
}

func (p *params) duration(name string) time.Duration {
	v := p.str(name)
	if v == "" {
		return 0
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		p.fail(name, "must be a non-negative duration like 250ms or 2s")
		return 0
	}
	return d
}

func (p *params) int(name string, lo, hi int64) int64 {
	v := p.str(name)
	if v == "" {
		return 0
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < lo || n > hi {
		p.fail(name, "must be a whole number from %d to %d", lo, hi)
		return 0
	}
	return n
}

func (p *params) traceID(name string) string {
	v := strings.ToLower(p.str(name))
	if v != "" && !traceIDPattern.MatchString(v) {
		p.fail(name, "must be 32 hex characters")
		return ""
	}
	return v
}

func (p *params) level(name string) string {
	v := strings.ToUpper(p.str(name))
	switch v {
	case "", "DEBUG", "INFO", "WARN", "ERROR":
		return v
	case "WARNING":
		return "WARN"
	}
	p.fail(name, "must be one of debug, info, warn, error")
	return ""
}

func (p *params) timeRange(since, until string) (time.Time, time.Time) {
	s, u := p.time(since), p.time(until)
	if !s.IsZero() && !u.IsZero() && u.Before(s) {
		p.fail(until, "must not be before %s", since)
	}
	return s, u
}

// ParseTraceFilter reads a TraceFilter from query parameters.
func ParseTraceFilter(q url.Values, now time.Time) (store.TraceFilter, error) {
	p := params{q: q, now: now}
	var f store.TraceFilter
	f.Service = p.str("service")
	f.Route = p.str("route")
	f.Status = strings.ToLower(p.str("status"))
	if f.Status != "" && !statusPattern.MatchString(f.Status) {
		p.fail("status", "must be error, ok, an HTTP status like 503, or a class like 5xx")
	}
	f.MinDuration = p.duration("min_duration")
	f.RequestID = p.str("request_id")
	f.Attributes = p.attributes("attr")
	f.Since, f.Until = p.timeRange("since", "until")
	f.Limit = int(p.int("limit", 1, MaxLimit))
	if p.err != nil {
		return f, p.err
	}
	return f, nil
}

// attributes reads every name=key=value parameter (at most
// store.MaxAttributeMatches of them).
func (p *params) attributes(name string) []store.AttributeMatch {
	vs := p.q[name]
	if len(vs) > store.MaxAttributeMatches {
		p.fail(name, "at most %d of them, got %d", store.MaxAttributeMatches, len(vs))
		return nil
	}
	var out []store.AttributeMatch
	for _, v := range vs {
		if len(v) > maxParamBytes {
			p.fail(name, "longer than %d bytes", maxParamBytes)
			return nil
		}
		m, err := store.ParseAttributeMatch(v)
		if err != nil {
			p.fail(name, "%s", strings.TrimPrefix(err.Error(), store.ErrInvalid.Error()+": attribute: "))
			return nil
		}
		out = append(out, m)
	}
	return out
}

// ParseLogFilter reads a LogFilter from query parameters.
func ParseLogFilter(q url.Values, now time.Time) (store.LogFilter, error) {
	p := params{q: q, now: now}
	var f store.LogFilter
	f.RequestID = p.str("request_id")
	f.TraceID = p.traceID("trace_id")
	f.Service = p.str("service")
	f.Level = p.level("level")
	f.Query = p.str("q")
	f.Attributes = p.attributes("attr")
	f.Since, f.Until = p.timeRange("since", "until")
	f.BeforeSeq = p.int("before", 1, 1<<62)
	f.AfterSeq = p.int("after", 0, 1<<62)
	f.Limit = int(p.int("limit", 1, MaxLimit))
	if p.err != nil {
		return f, p.err
	}
	return f, nil
}

// ParseTraceID validates a trace ID taken from a path.
func ParseTraceID(v string) (string, error) {
	p := params{q: url.Values{"trace_id": {v}}}
	id := p.traceID("trace_id")
	if p.err != nil {
		return "", p.err
	}
	return id, nil
}
