package ui

import (
	"fmt"
	"hash/fnv"
	"net/url"
	"strconv"
	"time"
)

// serviceColours is the number of service colour classes in the CSS
// (svc-0 ... svc-9).
const serviceColours = 10

// serviceClass maps a service name to a stable colour class.
func serviceClass(name string) string {
	h := fnv.New32a()
	_, _ = h.Write([]byte(name))
	return "svc-" + strconv.Itoa(int(h.Sum32()%serviceColours))
}

// formatDuration prints a duration with three significant figures.
func formatDuration(d time.Duration) string {
	switch {
	case d <= 0:
		return "0"
	case d < time.Microsecond:
		return strconv.FormatInt(int64(d), 10) + "ns"
	case d < time.Millisecond:
		return sig3(float64(d)/float64(time.Microsecond)) + "µs"
	case d < time.Second:
		return sig3(float64(d)/float64(time.Millisecond)) + "ms"
	case d < time.Minute:
		return sig3(d.Seconds()) + "s"
	default:
		return d.Round(time.Second).String()
	}
}

func sig3(v float64) string {
	switch {
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

func formatRate(perSec float64) string {
	switch {
	case perSec == 0:
		return "0"
	case perSec < 0.1:
		return strconv.FormatFloat(perSec*60, 'f', 1, 64) + "/min"
	default:
		return sig3(perSec) + "/s"
	}
}

func formatPercent(ratio float64) string {
	if ratio == 0 {
		return "0%"
	}
	p := ratio * 100
	if p < 0.1 {
		return "<0.1%"
	}
	return strconv.FormatFloat(p, 'f', 1, 64) + "%"
}

// errorRateClass colours an error rate: ok under 1 %, warn under 5 %.
func errorRateClass(ratio float64) string {
	switch {
	case ratio >= 0.05:
		return "rate-bad"
	case ratio >= 0.01:
		return "rate-warn"
	default:
		return "rate-ok"
	}
}

func formatAge(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	switch {
	case d < 0:
		return "just now"
	case d < time.Minute:
		return strconv.Itoa(int(d.Seconds())) + "s ago"
	case d < time.Hour:
		return strconv.Itoa(int(d.Minutes())) + "m ago"
	case d < 48*time.Hour:
		return strconv.Itoa(int(d.Hours())) + "h ago"
	default:
		return strconv.Itoa(int(d.Hours()/24)) + "d ago"
	}
}

// formatPeriod renders a length of time in whole seconds or minutes.
func formatPeriod(d time.Duration) string {
	if d < time.Minute {
		return strconv.Itoa(int(d.Seconds())) + " s"
	}
	return strconv.Itoa(int(d.Minutes())) + " min"
}

func formatClock(t time.Time) string { return t.UTC().Format("15:04:05.000") }

func formatStamp(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05.000") }

func formatCount[T int | int64 | uint64](n T) string {
	v := float64(n)
	switch {
	case v >= 1e9:
		return strconv.FormatFloat(v/1e9, 'f', 1, 64) + "G"
	case v >= 1e6:
		return strconv.FormatFloat(v/1e6, 'f', 1, 64) + "M"
	case v >= 1e4:
		return strconv.FormatFloat(v/1e3, 'f', 1, 64) + "k"
	default:
		return strconv.FormatInt(int64(n), 10)
	}
}

func levelClass(level string) string {
	switch level {
	case "ERROR":
		return "lvl lvl-error"
	case "WARN":
		return "lvl lvl-warn"
	case "DEBUG":
		return "lvl lvl-debug"
	default:
		return "lvl lvl-info"
	}
}

func healthClass(h Health) string {
	switch h {
	case Healthy, Degraded, Down:
		return "badge badge-" + string(h)
	default:
		return "badge"
	}
}

func statusText(row TraceRow) string {
	if row.HTTPStatus != 0 {
		return strconv.Itoa(row.HTTPStatus)
	}
	if row.ErrorCount > 0 {
		return "error"
	}
	return "ok"
}

// Links. Path segments from data are escaped; query strings are encoded.

func serviceURL(name string) string { return "/services/" + url.PathEscape(name) }

func traceURL(id string) string { return "/traces/" + url.PathEscape(id) }

func spanURL(traceID, spanID string) string {
	if spanID == "" {
		return traceURL(traceID)
	}
	return traceURL(traceID) + "#span-" + url.PathEscape(spanID)
}

func logsURL(key, value string) string { return "/logs?" + url.Values{key: {value}}.Encode() }

// traceLogsURL links a trace to its logs: by request ID when the trace has
// one (it covers every service the request touched), else by trace ID.
func traceLogsURL(traceID, requestID string) string {
	if requestID != "" {
		return logsURL("request_id", requestID)
	}
	return logsURL("trace_id", traceID)
}

func pct(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) + "%" }

func px(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }

func itoa[T int | int64](n T) string { return strconv.FormatInt(int64(n), 10) }

func plural(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("1 %s", one)
	}
	return fmt.Sprintf("%d %s", n, many)
}
